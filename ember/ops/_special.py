"""Special functions on raw arrays (NumPy or CuPy): ``erf``, ``erfc`` and ``erfinv``.

NumPy has no error function, so ember computes it here with W. J. Cody's rational
Chebyshev approximations ("Rational Chebyshev approximations for the error function",
Math. Comp. 23 (1969) 631-637; the coefficients are those of his SPECFUN routine CALERF).
Three ranges of ``y = |x|``:

* ``y <= 0.46875``: ``erf(x) = x * P(y^2) / Q(y^2)`` (degree 4 over 4);
* ``0.46875 < y <= 4``: ``erfc(y) = exp(-y^2) * P(y) / Q(y)`` (degree 8 over 8);
* ``y > 4``: ``erfc(y) = exp(-y^2) / y * (1/sqrt(pi) + R(1/y^2) / y^2)`` (degree 5 over 5).

``exp(-y^2)`` is computed as ``exp(-t^2) * exp(-(y - t)(y + t))`` with ``t`` = ``y`` rounded
down to a multiple of 1/16, so that the rounding error of ``y*y`` does not grow into a
relative error of ``erfc`` in the far tail. In float64 the result is within a few units in
the last place of ``math.erf`` / ``math.erfc`` (see ``tests/ops/test_special.py``).
Every range is evaluated on the whole array with its argument clipped into the range (no
boolean gathers, so no device synchronisation on GPUs) and the results are merged with
``copyto(..., where=mask)``. float16 inputs are computed in float32.

``erfinv`` starts from M. Giles' single-precision polynomial approximation ("Approximating
the erfinv function", GPU Computing Gems, 2011) and refines it with two Newton steps on
``erf`` (quadratic convergence takes ~1e-7 to full double precision).

Example:
    >>> import numpy as np
    >>> float(erf(np, np.array(0.5)))  # doctest: +ELLIPSIS
    0.5204998778130465...
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["erf", "erfc", "erfinv"]

# Cody's coefficients (CALERF), lowest order first where a loop runs over them
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)  # fmt: skip
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)  # fmt: skip
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)  # fmt: skip
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_SQRPI = 5.6418958354775628695e-1  # 1 / sqrt(pi)
_THRESH = 0.46875


def _work(xp: Any, x: Any) -> tuple[Any, Any, tuple]:
    """``x`` as a floating array of at least one dimension to compute in (float16 ->
    float32; in-place steps need real arrays, and NumPy turns 0-d results into scalars), the
    output dtype and the output shape."""
    x = xp.asarray(x)
    shape = x.shape
    if x.ndim == 0:
        x = x.reshape(1)
    dt = x.dtype
    if dt.kind != "f":
        dt = xp.dtype("float32")
    if dt.itemsize < 4:
        return x.astype(xp.float32), dt, shape
    return x.astype(dt, copy=False), dt, shape


def _rational(xp: Any, z: Any, num_coefs: tuple, den_coefs: tuple) -> Any:
    """Cody's loop: ``num/den`` with ``num = ((c[n] z + c[0]) z + c[1]) z + ... + c[n-1]`` and
    ``den = ((z + d[0]) z + d[1]) z + ... + d[n-1]``, updated in place (few temporaries)."""
    n = len(den_coefs)
    num = z * num_coefs[n]
    den = z + den_coefs[0]
    den *= z
    num += num_coefs[0]
    num *= z
    for i in range(1, n - 1):
        num += num_coefs[i]
        num *= z
        den += den_coefs[i]
        den *= z
    num += num_coefs[n - 1]
    den += den_coefs[n - 1]
    num /= den
    return num


def _small(xp: Any, x: Any) -> Any:
    """``erf(x)`` for ``|x| <= 0.46875`` (clipped into that range)."""
    z = xp.clip(x, -_THRESH, _THRESH)
    r = _rational(xp, z * z, _A, _B)
    r *= z
    return r


def _erfc_large(xp: Any, y: Any) -> Any:
    """``erfc(y)`` for ``y >= 0.46875`` (smaller ``y`` are clipped up); ``y`` is overwritten.

    Buffers are reused in place: on NumPy every fresh temporary costs page faults that
    outweigh the arithmetic.
    """
    xp.maximum(y, _THRESH, out=y)
    # middle range 0.46875 < y <= 4
    z = xp.minimum(y, 4.0)
    r = _rational(xp, z, _C, _D)
    # tail y > 4 (the argument is kept at least 4, so 1/y^2 stays small and finite)
    xp.maximum(y, 4.0, out=z)
    inv = z * z
    xp.reciprocal(inv, out=inv)
    tail = _rational(xp, inv, _P, _Q)
    tail *= inv
    xp.subtract(_SQRPI, tail, out=tail)
    tail /= z
    xp.copyto(r, tail, where=y > 4.0)
    del tail, inv
    # exp(-y^2) without the rounding error of y*y: y = t + (y - t), t a multiple of 1/16;
    # erfc(30) underflows float64 anyway, so y is capped there to keep t*t finite
    xp.minimum(y, 30.0, out=y)
    t = xp.multiply(y, 16.0, out=z)
    xp.trunc(t, out=t)
    t /= 16.0
    d = y - t
    y += t
    d *= y  # (y - t)(y + t)
    xp.negative(d, out=d)
    xp.exp(d, out=d)
    t *= t
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    t *= d
    t *= r
    return t


def erf(xp: Any, x: Any) -> Any:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt``, elementwise.

    Example:
        >>> float(erf(np, np.array(-1.0)))  # doctest: +ELLIPSIS
        -0.8427007929497148...
    """
    x, dt, shape = _work(xp, x)
    y = xp.abs(x)
    small = y <= _THRESH
    out = _erfc_large(xp, y)  # 1 - erfc(|x|), with the sign of x
    xp.subtract(0.5, out, out=out)
    out += 0.5
    xp.copysign(out, x, out=out)
    xp.copyto(out, _small(xp, x), where=small)
    return out.astype(dt, copy=False).reshape(shape)


def erfc(xp: Any, x: Any) -> Any:
    """The complementary error function ``1 - erf(x)``, accurate in the right tail.

    Example:
        >>> float(erfc(np, np.array(10.0)))  # doctest: +ELLIPSIS
        2.088487583762...e-45
    """
    x, dt, shape = _work(xp, x)
    y = xp.abs(x)
    small = y <= _THRESH
    out = _erfc_large(xp, y)
    # erfc(-y) = 2 - erfc(y), as arithmetic (cheaper than a masked copy): with s = sign(x),
    # out * s - (s - 1) is exactly out for s = 1 and 2 - out for s = -1 (x = +-0 lies in the
    # small range, overwritten below)
    s = xp.copysign(1.0, x).astype(x.dtype, copy=False)
    out *= s
    s -= 1.0
    out -= s
    inner = _small(xp, x)
    xp.subtract(1.0, inner, out=inner)
    xp.copyto(out, inner, where=small)
    return out.astype(dt, copy=False).reshape(shape)


def erfinv(xp: Any, x: Any) -> Any:
    """The inverse error function on ``[-1, 1]`` (``+-inf`` at ``+-1``, nan outside).

    Example:
        >>> round(float(erfinv(np, np.array(0.5))), 12)
        0.476936276204
    """
    x, dt, shape = _work(xp, x)
    a = xp.minimum(xp.abs(x), 1.0)
    tiny = float(xp.finfo(x.dtype).tiny)
    w = -xp.log(xp.maximum((1.0 - a) * (1.0 + a), tiny))
    # Giles' central branch (w < 5)
    wc = xp.minimum(w, 5.0) - 2.5
    p = 2.81022636e-08
    for c in (3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503,
              -0.00417768164, 0.246640727, 1.50140941):  # fmt: skip
        p = p * wc + c
    # Giles' tail branch (w >= 5)
    wt = xp.sqrt(xp.maximum(w, 5.0)) - 3.0
    q = -0.000200214257
    for c in (0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
              0.00943887047, 1.00167406, 2.83297682):  # fmt: skip
        q = q * wt + c
    r = xp.where(w < 5.0, p, q) * a
    # Newton steps: on erf(r) = a below a = 0.5; above it on log(erfc(r)) = log(1 - a), which
    # keeps full relative accuracy as a approaches 1 (1 - a is exact there) and converges fast
    # although erfc falls off like exp(-r^2)
    two_over_sqrtpi = 2.0 / math.sqrt(math.pi)
    finite = a < 1.0
    upper = a >= 0.5
    log_one_minus = xp.log(xp.where(upper & finite, 1.0 - a, 1.0))
    for _ in range(4):
        r = xp.where(finite, r, 1.0)
        slope = two_over_sqrtpi * xp.exp(-r * r)
        ec = xp.where(upper, erfc(xp, r), 1.0)
        step_hi = (xp.log(ec) - log_one_minus) * ec / slope
        step_lo = (erf(xp, r) - a) / slope
        r = r + xp.where(upper, step_hi, -step_lo)
    r = xp.where(finite, r, math.inf)
    r = xp.copysign(r, x)
    r = xp.where(xp.abs(x) > 1.0, math.nan, r)
    r = xp.where(xp.isnan(x), x, r)
    return r.astype(dt, copy=False).reshape(shape)

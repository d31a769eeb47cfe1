"""Unary math: ``abs sign sqrt rsqrt reciprocal square``, trigonometric and hyperbolic
functions (``trig.py``), ``exp2 expm1 log1p log2 log10``, ``erf erfc erfinv``, plus ``atan2`` and ``lerp``.

Integer inputs of the transcendental functions compute in the default float dtype, like
PyTorch; ``abs``, ``sign`` and ``square`` keep integer dtypes. Each backward rule is written
in ember ops, so second derivatives work; ops whose derivative is a function of their result
(``rsqrt``, ``reciprocal``, ``tan``, ``expm1``, ``exp2``, ``erfinv``) keep only the output.

This module also re-exports the rounding/clamping (``rounding.py``), comparison
(``compare.py``), logical/bitwise (``logical.py``) and trigonometric (``trig.py``) families.

Example:
    >>> import ember
    >>> ember.sqrt(ember.tensor([4.0, 9.0])).tolist()
    [2.0, 3.0]
"""

from __future__ import annotations

import math
from typing import Any

from ..tensor import Tensor
from . import _special, compare, logical, rounding, trig
from .compare import *  # noqa: F403
from .creation import zeros_like
from .elementwise import _to_float, add, div, mul, neg, sub
from .elementwise import exp as _exp_fn
from .logical import *  # noqa: F403
from .registry import defop
from .rounding import *  # noqa: F403
from .trig import *  # noqa: F403

_OWN = [
    "abs",
    "absolute",
    "sign",
    "sgn",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "square",
    "exp2",
    "expm1",
    "log1p",
    "log2",
    "log10",
    "erf",
    "erfc",
    "erfinv",
    "lerp",
]
__all__ = _OWN + rounding.__all__ + compare.__all__ + logical.__all__ + trig.__all__

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRTPI = 2.0 / math.sqrt(math.pi)


# -- abs, sign, powers -----------------------------------------------------------------------
@defop("abs", onnx="Abs")
def _abs(xp, x):
    return xp.abs(x)


@_abs.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, sign(x)),)


def abs(input: Tensor) -> Tensor:
    """Absolute value (integers stay integers; the gradient at 0 is 0).

    Example:
        >>> ember.abs(ember.tensor([-2, 3])).tolist()
        [2, 3]
    """
    return _abs(input)


absolute = abs


@defop("sign", saves_inputs=False, onnx="Sign")
def _sign(xp, x):
    return xp.sign(x)


@_sign.defgrad
def _(ctx, g):
    return (zeros_like(g),)


def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1 by the sign of each element (gradient zero; bool stays bool).

    Example:
        >>> ember.sign(ember.tensor([-2.5, 0.0, 3.0])).tolist()
        [-1.0, 0.0, 1.0]
    """
    if input._data.dtype.kind == "b":
        return input.clone()
    return _sign(input)


sgn = sign


@defop("sqrt", saves_inputs=False, saves_output=True, onnx="Sqrt")
def _sqrt(xp, x):
    return xp.sqrt(x)


@_sqrt.defgrad
def _(ctx, g):
    return (div(g, mul(ctx.output, 2.0)),)


def sqrt(input: Tensor) -> Tensor:
    """Square root (NaN for negative numbers).

    Example:
        >>> ember.sqrt(ember.tensor([4, 9])).tolist()
        [2.0, 3.0]
    """
    return _sqrt(_to_float(input))


@defop("rsqrt", saves_inputs=False, saves_output=True, onnx=None)
def _rsqrt(xp, x):
    return 1.0 / xp.sqrt(x)


@_rsqrt.defgrad
def _(ctx, g):
    y = ctx.output  # d(x^-1/2) = -x^-3/2 / 2 = -y^3 / 2
    return (mul(g, mul(mul(y, mul(y, y)), -0.5)),)


@_rsqrt.defonnx
def _(g, x):
    return g.op("Reciprocal", g.op("Sqrt", x))


def rsqrt(input: Tensor) -> Tensor:
    """``1 / sqrt(input)``.

    Example:
        >>> ember.rsqrt(ember.tensor([4.0, 0.25])).tolist()
        [0.5, 2.0]
    """
    return _rsqrt(_to_float(input))


@defop("reciprocal", saves_inputs=False, saves_output=True, onnx="Reciprocal")
def _reciprocal(xp, x):
    return 1.0 / x


@_reciprocal.defgrad
def _(ctx, g):
    y = ctx.output
    return (neg(mul(g, mul(y, y))),)


def reciprocal(input: Tensor) -> Tensor:
    """``1 / input`` (integers give floats).

    Example:
        >>> ember.reciprocal(ember.tensor([2, 4])).tolist()
        [0.5, 0.25]
    """
    return _reciprocal(_to_float(input))


@defop("square", onnx=None)  # exported as Mul(x, x)
def _square(xp, x):
    return x * x


@_square.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, mul(x, 2.0)),)


@_square.defonnx
def _(g, x):
    return g.op("Mul", x, x)


def square(input: Tensor) -> Tensor:
    """``input * input`` (integers stay integers).

    Example:
        >>> ember.square(ember.tensor([-3, 2])).tolist()
        [9, 4]
    """
    return _square(input)


# -- exp and log relatives -------------------------------------------------------------------
@defop("exp2", saves_inputs=False, saves_output=True, onnx=None)
def _exp2(xp, x):
    return xp.exp2(x)


@_exp2.defgrad
def _(ctx, g):
    return (mul(g, mul(ctx.output, _LN2)),)


@_exp2.defonnx
def _(g, x):
    return g.op("Pow", g.scalar(2.0, x), x)


def exp2(input: Tensor) -> Tensor:
    """``2 ** input``.

    Example:
        >>> ember.exp2(ember.tensor([3.0, -1.0])).tolist()
        [8.0, 0.5]
    """
    return _exp2(_to_float(input))


@defop("expm1", saves_inputs=False, saves_output=True, onnx=None)
def _expm1(xp, x):
    return xp.expm1(x)


@_expm1.defgrad
def _(ctx, g):
    return (mul(g, add(ctx.output, 1.0)),)


@_expm1.defonnx
def _(g, x):  # Kahan's (u - 1) * x / log(u), u = exp(x): accurate for small x
    u = g.op("Exp", x)
    um1 = g.op("Sub", u, 1.0)
    r = g.op("Div", g.op("Mul", um1, x), g.op("Log", u))
    r = g.where(g.cmp("Equal", um1, 0.0), x, r, like=x)
    r = g.where(g.cmp("Equal", um1, -1.0), -1.0, r, like=x)
    return g.where(g.op("IsInf", u), u, r, like=x)


def expm1(input: Tensor) -> Tensor:
    """``exp(input) - 1``, accurate for small inputs.

    Example:
        >>> ember.expm1(ember.tensor([1e-10], dtype=ember.float64)).tolist()
        [1.00000000005e-10]
    """
    return _expm1(_to_float(input))


@defop("log1p", onnx=None)
def _log1p(xp, x):
    return xp.log1p(x)


@_log1p.defgrad
def _(ctx, g):
    return (div(g, add(ctx.inputs[0], 1.0)),)


@_log1p.defonnx
def _(g, x):  # Kahan's log(u) * x / (u - 1), u = 1 + x: accurate for small x
    u = g.op("Add", x, 1.0)
    r = g.op("Div", g.op("Mul", g.op("Log", u), x), g.op("Sub", u, 1.0))
    r = g.where(g.cmp("Equal", u, 1.0), x, r, like=x)
    return g.where(
        g.op("IsInf", u), u, g.where(g.cmp("Equal", u, 0.0), -math.inf, r, like=x), like=x
    )


def log1p(input: Tensor) -> Tensor:
    """``log(1 + input)``, accurate for small inputs.

    Example:
        >>> ember.log1p(ember.tensor([1e-10], dtype=ember.float64)).item() / 1e-10
        0.99999999995
    """
    return _log1p(_to_float(input))


@defop("log2", onnx=None)
def _log2(xp, x):
    return xp.log2(x)


@_log2.defgrad
def _(ctx, g):
    return (div(g, mul(ctx.inputs[0], _LN2)),)


@_log2.defonnx
def _(g, x):
    return g.op("Div", g.op("Log", x), math.log(2.0))


def log2(input: Tensor) -> Tensor:
    """Base-2 logarithm.

    Example:
        >>> ember.log2(ember.tensor([8.0, 0.5])).tolist()
        [3.0, -1.0]
    """
    return _log2(_to_float(input))


@defop("log10", onnx=None)
def _log10(xp, x):
    return xp.log10(x)


@_log10.defgrad
def _(ctx, g):
    return (div(g, mul(ctx.inputs[0], _LN10)),)


@_log10.defonnx
def _(g, x):
    return g.op("Div", g.op("Log", x), math.log(10.0))


def log10(input: Tensor) -> Tensor:
    """Base-10 logarithm.

    Example:
        >>> [round(v, 5) for v in ember.log10(ember.tensor([1000.0, 0.1])).tolist()]
        [3.0, -1.0]
    """
    return _log10(_to_float(input))


# -- error function --------------------------------------------------------------------------
@defop("erf", onnx="Erf")
def _erf(xp, x):
    return _special.erf(xp, x)


@_erf.defgrad
def _(ctx, g):
    (x,) = ctx.inputs  # d erf(x) = 2/sqrt(pi) exp(-x^2)
    return (mul(g, mul(_exp_fn(neg(mul(x, x))), _TWO_OVER_SQRTPI)),)


@_erf.defonnx
def _(g, x):
    return g.erf(x)


def erf(input: Tensor) -> Tensor:
    """The error function ``2/sqrt(pi) * integral_0^x exp(-t^2) dt`` (Cody's rational
    approximations, accurate to a few ulp in float64; see ``ember/ops/_special.py``).

    Example:
        >>> round(ember.erf(ember.tensor([0.5])).item(), 6)
        0.5205
    """
    return _erf(_to_float(input))


@defop("erfc", onnx=None)
def _erfc(xp, x):
    return _special.erfc(xp, x)


@_erfc.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, mul(_exp_fn(neg(mul(x, x))), -_TWO_OVER_SQRTPI)),)


@_erfc.defonnx
def _(g, x):
    return g.op("Sub", g.scalar(1.0, x), g.erf(x))


def erfc(input: Tensor) -> Tensor:
    """``1 - erf(input)``, keeping its relative accuracy in the right tail.

    Example:
        >>> ember.erfc(ember.tensor([10.0], dtype=ember.float64)).item() > 0
        True
    """
    return _erfc(_to_float(input))


@defop("erfinv", saves_inputs=False, saves_output=True, onnx=None)
def _erfinv(xp, x):
    return _special.erfinv(xp, x)


@_erfinv.defgrad
def _(ctx, g):
    y = ctx.output  # d erfinv(x) = sqrt(pi)/2 exp(erfinv(x)^2)
    return (mul(g, mul(_exp_fn(mul(y, y)), 1.0 / _TWO_OVER_SQRTPI)),)


_ERFINV_CENTRAL = (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941,
)  # fmt: skip
_ERFINV_TAIL = (
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
    -0.0076224613, 0.00943887047, 1.00167406, 2.83297682,
)  # fmt: skip


@_erfinv.defonnx
def _(g, x):  # Giles' single-precision approximation ("Approximating the erfinv function")
    w = g.op("Neg", g.op("Log", g.op("Mul", g.op("Sub", 1.0, x), g.op("Add", x, 1.0))))

    def poly(t, coeffs):
        p = g.scalar(coeffs[0], x)
        for c in coeffs[1:]:
            p = g.op("Add", g.op("Mul", p, t), c)
        return p

    central = poly(g.op("Sub", w, 2.5), _ERFINV_CENTRAL)
    tail = poly(g.op("Sub", g.op("Sqrt", w), 3.0), _ERFINV_TAIL)
    p = g.op("Mul", g.where(g.cmp("Less", w, 5.0), central, tail, like=x), x)
    edge = g.cmp("Equal", g.op("Abs", x), 1.0)
    return g.where(edge, g.op("Mul", x, math.inf), p, like=x)


def erfinv(input: Tensor) -> Tensor:
    """The inverse error function on ``[-1, 1]`` (``+-inf`` at ``+-1``).

    Example:
        >>> round(ember.erfinv(ember.tensor([0.5])).item(), 5)
        0.47694
    """
    return _erfinv(_to_float(input))


# -- interpolation ---------------------------------------------------------------------------
def lerp(input: Tensor, end: Tensor, weight: Any) -> Tensor:
    """Linear interpolation ``input + weight * (end - input)``; ``weight`` is a number or a
    broadcasting tensor.

    Example:
        >>> ember.lerp(ember.tensor([0.0, 10.0]), ember.tensor([10.0, 20.0]), 0.25).tolist()
        [2.5, 12.5]
    """
    return add(input, mul(weight, sub(end, input)))


METHODS = {
    "abs": abs,
    "absolute": abs,
    "sign": sign,
    "sgn": sign,
    "sqrt": sqrt,
    "rsqrt": rsqrt,
    "reciprocal": reciprocal,
    "square": square,
    "exp2": exp2,
    "expm1": expm1,
    "log1p": log1p,
    "log2": log2,
    "log10": log10,
    "erf": erf,
    "erfc": erfc,
    "erfinv": erfinv,
    "lerp": lerp,
    "__abs__": abs,
    **rounding.METHODS,
    **compare.METHODS,
    **logical.METHODS,
    **trig.METHODS,
}

"""The seam for the normalization ops, on arrays: layer norm's fused kernels and the
kernels of the primitives that layer, group, instance and batch norm share
(``norm_moments``, ``standardize``, ``standardize_backward`` in :mod:`ember.ops.nn.norm`).

Each function takes NumPy arrays and returns the result arrays, or **None** when the C
kernels cannot serve the call (``EMBER_KERNELS=numpy``, no compiler, a dtype other than
float32/float64, dtypes that differ, an empty or non-NumPy array, axes the kernels do not
cover); the caller then runs its NumPy path, which stays the reference. Inputs may have any
strides (they are made contiguous); outputs are fresh C-contiguous arrays.

The shared primitives see ``x`` as ``(A, C, B)`` with one set of statistics per ``c``: the
reduced ``axes`` must be a leading run and a trailing run of dims around the kept ones
(layer, group and instance norm reduce trailing dims: ``A = 1``; batch norm reduces dims 0
and 2, 3, ...: ``(N, C, H*W)``).

Example:
    >>> import numpy as np
    >>> from ember import kernels
    >>> m = kernels.norm_moments(np.array([[1.0, 3.0]], np.float32), (1,))
    >>> m is None or m.tolist() == [[[2.0]], [[1.0]]]
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel

# Nanoseconds per element on one core (float32, 256K elements): the work estimates handed to
# ``kernel_threads`` (see ember/threads.py)
NS_LN_FORWARD, NS_LN_STATS, NS_LN_BACKWARD = 0.65, 0.35, 0.8
NS_MOMENTS, NS_STANDARDIZE, NS_STANDARDIZE_BACKWARD = 0.3, 0.25, 0.6

__all__ = [
    "layer_norm_forward",
    "layer_norm_stats",
    "layer_norm_backward",
    "norm_moments",
    "norm_standardize",
    "norm_standardize_backward",
]

Array = Any  # np.ndarray


# -- layer norm --------------------------------------------------------------------------------
def _affine(p: Array, d: int, dtype: Any) -> Array | None | bool:
    """A weight/bias as a contiguous (d,) array; None when absent; False when unusable."""
    if p is None:
        return None
    if type(p) is not np.ndarray or p.size != d or p.dtype != dtype:
        return False
    return contiguous(p).reshape(d)


def layer_norm_forward(
    x: Array,
    normalized_ndim: int,
    weight: Array | None = None,
    bias: Array | None = None,
    eps: float = 1e-5,
) -> tuple[Array, Array, Array] | None:
    """Layer norm over the last ``normalized_ndim`` axes: ``(y, mean, rstd)`` with
    ``y = (x - mean) * rstd * weight + bias`` and ``rstd = 1 / sqrt(var + eps)`` (biased
    variance); ``mean`` and ``rstd`` keep the normalized axes as size 1. None when unserved.

    Example:
        >>> out = layer_norm_forward(np.array([[1.0, 3.0]], np.float32), 1, eps=0.0)
        >>> out is None or out[0].tolist() == [[-1.0, 1.0]]
        True
    """
    rows = _rows(x, normalized_ndim)
    if rows is None:
        return None
    f, x, d, mean, rstd = rows
    w, b = _affine(weight, d, x.dtype), _affine(bias, d, x.dtype)
    if w is False or b is False:
        return None
    n = x.size // d
    y = np.empty_like(x)
    p, null = _seam.ptr, _seam.NULL
    f(p(x), null if w is None else p(w), null if b is None else p(b), p(y), p(mean), p(rstd),
      n, d, float(eps), kernel_threads(NS_LN_FORWARD * x.size))  # fmt: skip
    return y, mean, rstd


def layer_norm_stats(x: Array, normalized_ndim: int, eps: float = 1e-5) -> tuple | None:
    """``(mean, rstd)`` of layer norm over the last ``normalized_ndim`` axes (kept as size-1
    axes), without computing the output: what a backward that saved only ``x`` needs. None
    when unserved.

    Example:
        >>> st = layer_norm_stats(np.array([[1.0, 3.0]]), 1, eps=0.0)
        >>> st is None or (st[0].tolist(), st[1].tolist()) == ([[2.0]], [[1.0]])
        True
    """
    rows = _rows(x, normalized_ndim)
    if rows is None:
        return None
    f, x, d, mean, rstd = rows
    p, null = _seam.ptr, _seam.NULL
    f(p(x), null, null, null, p(mean), p(rstd), x.size // d, d, float(eps),
      kernel_threads(NS_LN_STATS * x.size))  # fmt: skip
    return mean, rstd


def _rows(x: Array, normalized_ndim: int) -> tuple | None:
    """``(kernel, x, d, mean, rstd)`` for the layer-norm forward kernel over the last
    ``normalized_ndim`` axes: ``x`` contiguous, ``d`` the row length, empty statistics with
    the normalized axes kept as size 1; None when unserved."""
    if not is_array(x) or not 0 < normalized_ndim <= x.ndim:
        return None
    f = kernel("norm", "layer_norm_forward", x.dtype)
    if f is None:
        return None
    d = math.prod(x.shape[x.ndim - normalized_ndim :])
    stats = x.shape[: x.ndim - normalized_ndim] + (1,) * normalized_ndim
    return f, contiguous(x), d, np.empty(stats, x.dtype), np.empty(stats, x.dtype)


def layer_norm_backward(
    g: Array,
    x: Array,
    mean: Array | None,
    rstd: Array | None,
    normalized_ndim: int,
    weight: Array | None = None,
    *,
    weight_grad: bool = True,
    bias_grad: bool = True,
    xhat_given: bool = False,
    eps: float = 1e-5,
    out: Array | None = None,
) -> tuple[Array, Array | None, Array | None] | None:
    """Layer norm's gradients ``(dx, dweight, dbias)`` from the output gradient ``g``, the
    input ``x`` and the forward's ``mean`` and ``rstd``: ``dx = rstd * (gw - mean(gw) -
    xhat * mean(gw * xhat))`` with ``gw = g * weight``, ``dweight = sum(g * xhat)``,
    ``dbias = sum(g)`` over the leading axes (shaped like the normalized axes; None when not
    asked for). With ``xhat_given``, ``x`` is the normalized ``xhat`` and ``mean`` is unused
    (``standardize``'s backward). With ``mean`` and ``rstd`` None each row's statistics are
    recomputed from ``x`` (and ``eps``) as the forward computes them, inside the same pass, so
    a forward may save nothing but ``x``. ``out``, when given, is a flat C-contiguous array
    of ``x``'s dtype that receives ``[dx, dweight, dbias]`` one after the other (the
    gradients returned are views of it). None when unserved.

    Example:
        >>> x = np.array([[1.0, 3.0]], np.float32)
        >>> out = layer_norm_forward(x, 1, eps=0.0)
        >>> r = out and layer_norm_backward(np.ones_like(x), x, out[1], out[2], 1)
        >>> r is None or r[0].tolist() == [[0.0, 0.0]]
        True
    """
    recompute = mean is None and rstd is None and not xhat_given
    if not is_array(g, x) or g.shape != x.shape or not 0 < normalized_ndim <= x.ndim:
        return None
    f = kernel("norm", "layer_norm_backward", x.dtype)
    if f is None or g.dtype != x.dtype:
        return None
    norm_shape = x.shape[x.ndim - normalized_ndim :]
    d = math.prod(norm_shape)
    n = x.size // d
    if not recompute:
        if not is_array(rstd) or rstd.dtype != x.dtype or rstd.size != n:
            return None
        if not xhat_given and (not is_array(mean) or mean.dtype != x.dtype or mean.size != n):
            return None
    w = _affine(weight, d, x.dtype)
    if w is False:
        return None
    size = x.size + (d if weight_grad else 0) + (d if bias_grad else 0)
    if out is not None and (
        type(out) is not np.ndarray
        or out.dtype != x.dtype
        or out.shape != (size,)
        or not out.flags.c_contiguous
    ):
        return None
    g, x = contiguous(g), contiguous(x)
    p, null = _seam.ptr, _seam.NULL
    m = null if recompute or xhat_given else p(contiguous(mean))
    r = null if recompute else p(contiguous(rstd))
    if out is None:
        out = np.empty(size, x.dtype)
    dx = out[: x.size].reshape(x.shape)
    dw = out[x.size : x.size + d].reshape(norm_shape) if weight_grad else None
    db = out[size - d :].reshape(norm_shape) if bias_grad else None
    rc = f(p(g), p(x), m, r, null if w is None else p(w), p(out),
           null if dw is None else p(dw), null if db is None else p(db), n, d,
           int(xhat_given), float(eps), kernel_threads(NS_LN_BACKWARD * x.size))  # fmt: skip
    if rc != 0:
        raise MemoryError("layer_norm_backward: out of memory for the weight-gradient partials")
    return dx, dw, db


# -- the primitives shared by layer, group, instance and batch norm --------------------------------
def split_axes(shape: tuple, axes: Any) -> tuple[int, int, int] | None:
    """``shape`` seen as ``(A, C, B)`` when the reduced ``axes`` are the dims before and the
    dims after one run of kept dims (``C`` their product); None otherwise.

    Example:
        >>> split_axes((8, 3, 4, 4), (0, 2, 3)), split_axes((2, 5, 6), (2,))
        ((8, 3, 16), (1, 10, 6))
    """
    nd = len(shape)
    red = sorted({a % nd for a in axes}) if nd else []
    if not red or len(red) != len(tuple(axes)):
        return None
    kept = [d for d in range(nd) if d not in red]
    lo, hi = (kept[0], kept[-1] + 1) if kept else (nd, nd)
    if kept != list(range(lo, hi)):
        return None
    return math.prod(shape[:lo]), math.prod(shape[lo:hi]), math.prod(shape[hi:])


def _moments_ok(x: Array, moments: Array, axes: Any) -> tuple[int, int, int] | None:
    if not is_array(x, moments) or moments.dtype != x.dtype:
        return None
    acb = split_axes(x.shape, axes)
    if acb is None or moments.shape != (2,) + tuple(
        1 if d in {a % x.ndim for a in axes} else n for d, n in enumerate(x.shape)
    ):
        return None
    return acb


def norm_moments(x: Array, axes: Any) -> Array | None:
    """The mean and the biased variance of ``x`` over ``axes``, stacked: shape
    ``(2,) + x.shape`` with the reduced dims kept as size 1 (what the ``norm_moments`` op
    returns). None when unserved.

    Example:
        >>> m = norm_moments(np.array([[1.0], [3.0]]), (0,))
        >>> m is None or m.ravel().tolist() == [2.0, 1.0]
        True
    """
    if not is_array(x) or x.ndim == 0:
        return None
    acb = split_axes(x.shape, axes)
    f = acb and kernel("norm", "norm_moments", x.dtype)
    if not f:
        return None
    a, c, b = acb
    x = contiguous(x)
    red = {d % x.ndim for d in axes}
    out = np.empty((2,) + tuple(1 if d in red else n for d, n in enumerate(x.shape)), x.dtype)
    p = _seam.ptr
    f(p(x), p(out[0]), p(out[1]), a, c, b, kernel_threads(NS_MOMENTS * x.size))
    return out


def norm_standardize(x: Array, moments: Array, axes: Any, eps: float) -> Array | None:
    """``(x - mean) / sqrt(var + eps)`` from stacked ``moments`` (see :func:`norm_moments`),
    with the same bits as NumPy's path. None when unserved.

    Example:
        >>> x = np.array([[1.0, 3.0]])
        >>> y = norm_standardize(x, np.array([[[2.0]], [[1.0]]]), (1,), 0.0)
        >>> y is None or y.tolist() == [[-1.0, 1.0]]
        True
    """
    acb = _moments_ok(x, moments, axes)
    f = acb and kernel("norm", "norm_standardize", x.dtype)
    if not f:
        return None
    a, c, b = acb
    x, m = contiguous(x), contiguous(moments)
    y = np.empty_like(x)
    p = _seam.ptr
    f(p(x), p(m[0]), p(m[1]), p(y), a, c, b, float(eps), kernel_threads(NS_STANDARDIZE * x.size))
    return y


def norm_standardize_backward(
    g: Array, xhat: Array, moments: Array, axes: Any, eps: float
) -> Array | None:
    """The full derivative of ``standardize`` from its output ``xhat`` and the output
    gradient ``g``: ``rstd * (g - mean(g) - xhat * mean(g * xhat))`` (means over ``axes``).
    None when unserved.

    Example:
        >>> xh = np.array([[-1.0, 1.0]])
        >>> dx = norm_standardize_backward(np.ones_like(xh), xh, np.ones((2, 1, 1)), (1,), 0.0)
        >>> dx is None or dx.tolist() == [[0.0, 0.0]]
        True
    """
    acb = _moments_ok(xhat, moments, axes)
    if not is_array(g) or g.shape != xhat.shape or g.dtype != xhat.dtype:
        return None
    f = acb and kernel("norm", "norm_standardize_backward", xhat.dtype)
    if not f:
        return None
    a, c, b = acb
    g, xhat, m = contiguous(g), contiguous(xhat), contiguous(moments)
    dx = np.empty_like(xhat)
    p = _seam.ptr
    f(
        p(g),
        p(xhat),
        p(m[1]),
        p(dx),
        a,
        c,
        b,
        float(eps),
        kernel_threads(NS_STANDARDIZE_BACKWARD * xhat.size),
    )
    return dx

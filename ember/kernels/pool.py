"""The seam for pooling and ReLU: ``max_pool2d`` and ``avg_pool2d`` forward and backward on
``(N, C, H, W)`` arrays, and ``relu_forward`` / ``relu_backward`` on arrays of any shape.

Geometry arguments follow ``ember/ops/nn/pool.py``: pairs ``(h, w)`` for ``kernel_size``,
``stride``, ``padding``, ``dilation`` and ``out_hw`` (``padding`` may also be given as
``((top, bottom), (left, right))``: only top and left matter, the rest follows from
``out_hw``). Every function returns None when the C kernels cannot serve the call (see
:mod:`ember.kernels.nn`).

Example:
    >>> import numpy as np
    >>> y = avg_pool2d_forward(np.ones((1, 1, 2, 2)), (2, 2), (2, 2), (0, 0), (1, 1))
    >>> y is None or y.tolist() == [[[[1.0]]]]
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel
from .conv import _geometry

# Nanoseconds per unit of each kernel on one core (float32): per window tap of the output for
# the forwards, per input element for the backwards, per element for ReLU; the work
# estimates handed to ``kernel_threads`` (see ember/threads.py)
NS_MAX_FORWARD, NS_MAX_BACKWARD, NS_AVG, NS_RELU = 0.45, 0.75, 3.5, 0.3

__all__ = [
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "relu_forward",
    "relu_backward",
]

Array = Any


def max_pool2d_forward(
    x: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
    return_indices: bool = False,
) -> Array | tuple[Array, Array] | None:
    """Max over each window of ``x`` (N, C, H, W) (the first max, or the first NaN); with
    ``return_indices`` also each winner's flat ``h * W + w`` index in its plane (int64, -1
    for a window entirely in the padding). None when unserved.

    Example:
        >>> y = max_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), (2, 2), (2, 2), (0, 0),
        ...                        (1, 1), (2, 2))
        >>> y is None or y.tolist() == [[[[5.0, 7.0], [13.0, 15.0]]]]
        True
    """
    if not is_array(x) or x.ndim != 4 or x.shape[2] * x.shape[3] >= 2**31:
        return None
    f = kernel("pool", "max_pool2d_forward", x.dtype)
    if f is None:
        return None
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geometry(
        kernel_size, stride, padding, dilation, out_hw
    )
    n, c, h, w = x.shape
    y = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64) if return_indices else None
    if y.size:
        x = contiguous(x)
        nt = min(kernel_threads(NS_MAX_FORWARD * y.size * kh * kw), n * c * oh)
        rc = f(_seam.ptr(x), _seam.ptr(y), _seam.NULL if idx is None else _seam.ptr(idx), n * c,
               h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, nt)  # fmt: skip
        if rc != 0:
            raise MemoryError("max_pool2d_forward: out of memory for a row of indices")
    return (y, idx) if return_indices else y


def max_pool2d_backward(
    g: Array,
    x: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
) -> Array | None:
    """The input gradient of :func:`max_pool2d_forward`: each window's ``g`` added at its
    winner in ``x`` (recomputed from ``x``: nothing else needs saving). None when unserved.

    Example:
        >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
        >>> dx = max_pool2d_backward(np.ones((1, 1, 1, 1)), x, (2, 2), (2, 2), (0, 0), (1, 1),
        ...                          (1, 1))
        >>> dx is None or dx.tolist() == [[[[0.0, 0.0], [0.0, 1.0]]]]
        True
    """
    if not is_array(g, x) or x.ndim != 4 or g.dtype != x.dtype or x.shape[2] * x.shape[3] >= 2**31:
        return None
    f = kernel("pool", "max_pool2d_backward", x.dtype)
    if f is None:
        return None
    kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = _geometry(
        kernel_size, stride, padding, dilation, out_hw
    )
    n, c, h, w = x.shape
    if g.shape != (n, c, oh, ow):
        return None
    g, x = contiguous(g), contiguous(x)
    dx = np.empty_like(x)  # every element is written
    rc = f(_seam.ptr(g), _seam.ptr(x), _seam.ptr(dx), n * c, h, w, oh, ow, kh, kw, sh, sw, ph,
           pw, dh, dw, min(kernel_threads(NS_MAX_BACKWARD * x.size), n * c * oh))  # fmt: skip
    if rc != 0:
        raise MemoryError("max_pool2d_backward: out of memory for a row of indices")
    return dx


def _avg_args(kernel_size, stride, padding, out_hw, count_include_pad, divisor_override):
    kh, kw, sh, sw, ph, pw, _, _, oh, ow = _geometry(kernel_size, stride, padding, (1, 1), out_hw)
    return oh, ow, kh, kw, sh, sw, ph, pw, int(bool(count_include_pad)), int(divisor_override or 0)


def avg_pool2d_forward(
    x: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    out_hw: tuple,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Array | None:
    """Mean over each window of ``x`` (N, C, H, W) with PyTorch's divisor rules (zero
    padding counted unless ``count_include_pad`` is False; ``divisor_override`` > 0 replaces
    the divisor). None when unserved (also for a negative ``divisor_override``).

    Example:
        >>> y = avg_pool2d_forward(np.arange(16.0).reshape(1, 1, 4, 4), (2, 2), (2, 2), (0, 0),
        ...                        (2, 2))
        >>> y is None or y.tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
        True
    """
    if not is_array(x) or x.ndim != 4 or (divisor_override or 0) < 0:
        return None
    f = kernel("pool", "avg_pool2d_forward", x.dtype)
    if f is None:
        return None
    args = _avg_args(kernel_size, stride, padding, out_hw, count_include_pad, divisor_override)
    n, c, h, w = x.shape
    oh, ow = args[:2]
    y = np.empty((n, c, oh, ow), x.dtype)
    if y.size:
        x = contiguous(x)
        nt = min(kernel_threads(NS_AVG * y.size * args[2] * args[3]), n * c * oh)
        f(_seam.ptr(x), _seam.ptr(y), n * c, h, w, *args, nt)
    return y


def avg_pool2d_backward(
    g: Array,
    in_hw: tuple,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    out_hw: tuple,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Array | None:
    """The input gradient of :func:`avg_pool2d_forward` for an input of spatial size
    ``in_hw``: each window's ``g / divisor`` added over its elements. None when unserved.

    Example:
        >>> dx = avg_pool2d_backward(np.ones((1, 1, 1, 1)), (2, 2), (2, 2), (2, 2), (0, 0),
        ...                          (1, 1))
        >>> dx is None or dx.tolist() == [[[[0.25, 0.25], [0.25, 0.25]]]]
        True
    """
    if not is_array(g) or g.ndim != 4 or (divisor_override or 0) < 0:
        return None
    f = kernel("pool", "avg_pool2d_backward", g.dtype)
    if f is None:
        return None
    args = _avg_args(kernel_size, stride, padding, out_hw, count_include_pad, divisor_override)
    n, c = g.shape[:2]
    if g.shape[2:] != tuple(args[:2]):
        return None
    h, w = (int(s) for s in in_hw)
    dx = np.empty((n, c, h, w), g.dtype)  # zeroed per plane in the kernel
    if dx.size:
        g = contiguous(g)
        f(
            _seam.ptr(g),
            _seam.ptr(dx),
            n * c,
            h,
            w,
            *args,
            min(kernel_threads(NS_AVG * dx.size), n * c),
        )
    return dx


def relu_forward(x: Array, out: Array | None = None) -> Array | None:
    """``maximum(x, 0)`` exactly as NumPy computes it (NaN kept, ``-0.0`` becomes ``+0.0``),
    in C threads, into ``out`` when given (a C-contiguous array of ``x``'s shape and dtype;
    it may be ``x`` itself). None when unserved (other dtypes, no kernels, an ``out`` the
    kernel cannot write).

    Example:
        >>> y = relu_forward(np.array([-1.0, 2.0, np.nan]))
        >>> y is None or str(y.tolist()) == "[0.0, 2.0, nan]"
        True
    """
    if not is_array(x):
        return None
    if out is not None and (
        type(out) is not np.ndarray
        or out.shape != x.shape
        or out.dtype != x.dtype
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        return None
    f = kernel("pool", "relu_forward", x.dtype)
    if f is None:
        return None
    x = contiguous(x)
    y = np.empty(x.shape, x.dtype) if out is None else out
    f(_seam.ptr(x), _seam.ptr(y), x.size, kernel_threads(NS_RELU * x.size))
    return y


def relu_backward(g: Array, y: Array) -> Array | None:
    """ReLU's input gradient from its output ``y``: ``g`` where ``y > 0`` (or ``y`` is NaN),
    else 0, as PyTorch's ``threshold_backward``. None when unserved (shapes or dtypes
    differ, other dtypes, no kernels).

    Example:
        >>> dx = relu_backward(np.ones(3), np.array([0.0, 2.0, np.nan]))
        >>> dx is None or dx.tolist() == [0.0, 1.0, 1.0]
        True
    """
    if not is_array(g, y) or g.shape != y.shape or g.dtype != y.dtype:
        return None
    f = kernel("pool", "relu_backward", g.dtype)
    if f is None:
        return None
    g, y = contiguous(g), contiguous(y)
    dx = np.empty(g.shape, g.dtype)
    f(_seam.ptr(g), _seam.ptr(y), _seam.ptr(dx), g.size, kernel_threads(NS_RELU * g.size))
    return dx

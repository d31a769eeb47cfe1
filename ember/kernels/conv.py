"""The seam for convolution and pooling: ``im2col``/``col2im`` (the data movement around a
convolution's GEMM) and ``max_pool2d`` forward/backward, on ``(N, C, H, W)`` arrays.

Geometry arguments follow ``ember/ops/nn/conv.py`` and ``pool.py``: pairs ``(h, w)`` for
``kernel_size``, ``stride``, ``dilation`` and ``out_hw``; ``padding`` either ``(ph, pw)``
(symmetric) or ``((top, bottom), (left, right))`` (only top and left matter: the bottom and
right follow from ``out_hw``). Every function returns None when the C kernels cannot serve
the call (see :mod:`ember.kernels.nn`).

Example:
    >>> import numpy as np
    >>> x = np.arange(4.0).reshape(1, 1, 2, 2)
    >>> cols = im2col(x, (1, 1), (1, 1), (0, 0), (1, 1), (2, 2))
    >>> cols is None or cols.tolist() == [[0.0, 1.0, 2.0, 3.0]]
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel

__all__ = ["im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward"]

Array = Any


def _top_left(padding: Any) -> tuple[int, int]:
    a, b = padding
    if isinstance(a, (tuple, list)):
        return int(a[0]), int(b[0])
    return int(a), int(b)


def _geometry(kernel_size, stride, padding, dilation, out_hw) -> tuple[int, ...]:
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel_size, stride, dilation, out_hw
    pt, pl = _top_left(padding)
    return int(kh), int(kw), int(sh), int(sw), pt, pl, int(dh), int(dw), int(oh), int(ow)


def _strides(layout: str, n: int, rows: int, ohw: int) -> tuple[int, int]:
    if layout == "cnl":
        return n * ohw, ohw
    if layout == "ncl":
        return ohw, rows * ohw
    raise ValueError(f"im2col: layout must be 'cnl' or 'ncl', got {layout!r}")


def im2col(
    x: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
    layout: str = "cnl",
) -> Array | None:
    """The column matrix of ``x`` (N, C, H, W) for a convolution: ``layout='cnl'`` gives
    ``(C * kh * kw, N * OH * OW)`` (one GEMM ``w.reshape(O, -1) @ cols`` per group, rows of
    a group contiguous), ``'ncl'`` gives ``(N, C * kh * kw, OH * OW)`` (a batched GEMM whose
    result is already NCHW). Zero padding is applied in the kernel. None when unserved.

    Example:
        >>> cols = im2col(np.ones((2, 3, 4, 4), np.float32), (3, 3), (1, 1), (1, 1), (1, 1),
        ...               (4, 4), layout="ncl")
        >>> cols is None or cols.shape == (2, 27, 16)
        True
    """
    if not is_array(x) or x.ndim != 4:
        return None
    f = kernel("im2col", "im2col", x.dtype)
    if f is None:
        return None
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = _geometry(
        kernel_size, stride, padding, dilation, out_hw
    )
    n, c, h, w = x.shape
    rows = c * kh * kw
    rs, ns = _strides(layout, n, rows, oh * ow)
    shape = (rows, n * oh * ow) if layout == "cnl" else (n, rows, oh * ow)
    cols = np.empty(shape, x.dtype)
    if cols.size == 0:
        return cols
    x = contiguous(x)
    f(_seam.ptr(x), _seam.ptr(cols), n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rs, ns,
      min(kernel_threads(cols.size), rows))  # fmt: skip
    return cols


def col2im(
    cols: Array,
    x_shape: tuple,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
    layout: str = "cnl",
) -> Array | None:
    """The adjoint of :func:`im2col`: columns (either layout) summed back into a fresh
    ``x_shape`` (N, C, H, W) array; overlapping taps add up, padding taps are dropped. None
    when unserved.

    Example:
        >>> x = col2im(np.ones((9, 4), np.float32), (1, 1, 2, 2), (3, 3), (1, 1), (1, 1),
        ...            (1, 1), (2, 2))
        >>> x is None or x.tolist() == [[[[4.0, 4.0], [4.0, 4.0]]]]
        True
    """
    if not is_array(cols) or len(x_shape) != 4:
        return None
    f = kernel("im2col", "col2im", cols.dtype)
    if f is None:
        return None
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = _geometry(
        kernel_size, stride, padding, dilation, out_hw
    )
    n, c, h, w = (int(s) for s in x_shape)
    rows = c * kh * kw
    if cols.size != rows * n * oh * ow:
        return None
    rs, ns = _strides(layout, n, rows, oh * ow)
    cols = contiguous(cols)
    x = np.zeros((n, c, h, w), cols.dtype)
    if x.size == 0:
        return x
    f(_seam.ptr(cols), _seam.ptr(x), n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rs, ns,
      min(kernel_threads(cols.size), n * c))  # fmt: skip
    return x


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
        nt = min(kernel_threads(y.size * kh * kw), n * c * oh)
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
    dx = np.zeros_like(x)
    rc = f(_seam.ptr(g), _seam.ptr(x), _seam.ptr(dx), n * c, h, w, oh, ow, kh, kw, sh, sw, ph,
           pw, dh, dw, min(kernel_threads(g.size * kh * kw), n * c))  # fmt: skip
    if rc != 0:
        raise MemoryError("max_pool2d_backward: out of memory for a row of indices")
    return dx

"""The seam for convolution: ``im2col``/``col2im`` (the data movement around a convolution's
GEMM, on ``(N, C, H, W)`` arrays) and ``swap01`` (the GEMM's ``(O, N, ...)`` result made
NCHW, plus the bias, in one pass). Pooling is in :mod:`ember.kernels.pool`.

Geometry arguments follow ``ember/ops/nn/conv.py``: pairs ``(h, w)`` for
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

__all__ = ["im2col", "col2im", "col2im_available", "swap01"]

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
    out: Array | None = None,
) -> Array | None:
    """The adjoint of :func:`im2col`: columns (either layout) summed back into a fresh
    ``x_shape`` (N, C, H, W) array, or into ``out`` (overwritten) when that is a C-contiguous
    array of that shape and the columns' dtype; overlapping taps add up, padding taps are
    dropped. None when unserved.

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
    if (
        is_array(out)
        and out.shape == (n, c, h, w)
        and out.dtype == cols.dtype
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        x = out
        x.fill(0)
    else:
        x = np.zeros((n, c, h, w), cols.dtype)
    if x.size == 0:
        return x
    f(_seam.ptr(cols), _seam.ptr(x), n, c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rs, ns,
      min(kernel_threads(cols.size), n * c))  # fmt: skip
    return x


def col2im_available(cols: Array) -> bool:
    """True when :func:`col2im` would run in C for ``cols`` (a NumPy float32/float64
    array and kernels in use): lets a caller pick the layout its GEMM should produce.

    Example:
        >>> col2im_available(np.ones(3, np.int64))
        False
    """
    return is_array(cols) and kernel("im2col", "col2im", cols.dtype) is not None


def swap01(y: Array, bias: Array | None = None) -> Array | None:
    """``y`` (A, B, ...) with its first two axes swapped, as a fresh C-contiguous (B, A, ...)
    array, plus ``bias`` (A,) broadcast over the other axes when given. None when unserved.

    Example:
        >>> out = swap01(np.arange(6.0).reshape(2, 3, 1), np.array([10.0, 20.0]))
        >>> out is None or out[:, :, 0].tolist() == [[10.0, 23.0], [11.0, 24.0], [12.0, 25.0]]
        True
    """
    if not is_array(y) or y.ndim < 2:
        return None
    if bias is not None and (
        not is_array(bias) or bias.dtype != y.dtype or bias.size != y.shape[0]
    ):
        return None
    f = kernel("im2col", "swap01", y.dtype)
    if f is None:
        return None
    a, b = y.shape[:2]
    rest = y.size // (a * b)
    y = contiguous(y)
    out = np.empty((b, a) + y.shape[2:], y.dtype)
    f(_seam.ptr(y), _seam.NULL if bias is None else _seam.ptr(contiguous(bias)), _seam.ptr(out),
      a, b, rest, min(kernel_threads(y.size), a * b))  # fmt: skip
    return out

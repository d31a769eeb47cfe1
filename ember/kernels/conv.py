"""The seam for convolution: ``im2col``/``col2im`` (the data movement around a convolution's
GEMM, on ``(N, C, H, W)`` arrays), ``swap01`` (the GEMM's ``(O, N, ...)`` result made
NCHW, plus the bias, in one pass), and ``conv_direct``/``conv_weight_grad_direct`` (a
convolution and its weight and bias gradients without a GEMM, for few taps per output:
``C / groups * kh * kw`` small). Pooling is in :mod:`ember.kernels.pool`.

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

import math
from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel

# Nanoseconds per unit on one core (float32): per column element for im2col and col2im, per
# element for swap01, per output (or gradient) element and tap for the direct kernels; the
# work estimates handed to ``kernel_threads`` (see ember/threads.py)
NS_IM2COL, NS_COL2IM, NS_SWAP, NS_DIRECT_TAP, NS_DIRECT_WGRAD_TAP = 0.6, 0.35, 0.25, 0.09, 0.11

__all__ = [
    "im2col",
    "col2im",
    "col2im_available",
    "swap01",
    "conv_direct",
    "conv_weight_grad_direct",
    "direct_available",
]

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


def _operands(x: Any, w: Any, bias: Any = None) -> bool:
    """True when ``x`` and ``w`` (a weight, or an output gradient with ``x``'s batch) are
    4-D NumPy arrays of one dtype and ``bias`` is None or one value per ``w.shape[0]``."""
    if not is_array(x, w) or x.ndim != 4 or w.ndim != 4 or w.dtype != x.dtype:
        return False
    return bias is None or (is_array(bias) and bias.dtype == x.dtype and bias.size == w.shape[0])


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
      min(kernel_threads(NS_IM2COL * cols.size), rows))  # fmt: skip
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
      min(kernel_threads(NS_COL2IM * cols.size), n * c))  # fmt: skip
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
      a, b, rest, min(kernel_threads(NS_SWAP * y.size), a * b))  # fmt: skip
    return out


# the columns of one work item of the direct kernels: small enough to stay in L1/L2
DIRECT_BLOCK_BYTES = 1 << 15


def _direct_rows(k: int, oh: int, ow: int, itemsize: int) -> int:
    """Output rows per work item of the direct kernels: columns of about
    ``DIRECT_BLOCK_BYTES``, but at least 64 positions (the kernels work 16 at a time)."""
    rows = max(DIRECT_BLOCK_BYTES // max(1, k * ow * itemsize), -(-64 // max(ow, 1)))
    return max(1, min(oh, rows))


def _direct_args(x, w_shape, groups, stride, padding, dilation, out_hw):
    n, c, h, wd = x.shape
    o, cg, kh, kw = (int(v) for v in w_shape)
    if cg * groups != c or o % groups:
        return None
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = _geometry((kh, kw), stride, padding, dilation, out_hw)
    rows = _direct_rows(cg * kh * kw, oh, ow, x.dtype.itemsize)
    return (n, c, h, wd, o, int(groups), kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, rows)


def direct_available(dtype: Any) -> bool:
    """True when :func:`conv_direct` and :func:`conv_weight_grad_direct` run in C for arrays
    of ``dtype`` (float32/float64 and kernels in use).

    Example:
        >>> direct_available(np.dtype(np.int64))
        False
    """
    return kernel("im2col", "conv_direct", np.dtype(dtype)) is not None


def conv_direct(
    x: Array,
    w: Array,
    bias: Array | None,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
    groups: int = 1,
    relu: bool = False,
) -> Array | None:
    """The convolution of ``x`` (N, C, H, W) with ``w`` (O, C/groups, kh, kw), plus ``bias``
    (O,) when given, then a ReLU with ``relu`` (as the relu op computes it), computed
    directly (no column matrix, no GEMM): each (sample, group, block of output rows) builds
    its columns in a small buffer and writes its NCHW outputs from it. Meant for few taps
    per output (``C / groups * kh * kw`` small), where a GEMM is memory-bound. None when
    unserved.

    Example:
        >>> x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((2, 1, 3, 3), np.float32)
        >>> y = conv_direct(x, w, None, (1, 1), (1, 1), (1, 1), (3, 3))
        >>> y is None or y[0, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
        True
    """
    if not _operands(x, w, bias):
        return None
    f = kernel("im2col", "conv_direct", x.dtype)
    if f is None:
        return None
    args = _direct_args(x, w.shape, groups, stride, padding, dilation, out_hw)
    if args is None:
        return None
    n, o, oh, ow = args[0], args[4], args[14], args[15]
    y = np.empty((n, o, oh, ow), x.dtype)
    if y.size == 0:
        return y
    items = n * args[5] * -(-oh // args[16])
    nt = min(kernel_threads(NS_DIRECT_TAP * y.size * math.prod(w.shape[1:])), items)
    b = _seam.NULL if bias is None else _seam.ptr(contiguous(bias))
    x, w = contiguous(x), contiguous(w)
    if f(_seam.ptr(x), _seam.ptr(w), b, _seam.ptr(y), *args, int(relu), nt) != 0:
        return None
    return y


def conv_weight_grad_direct(
    x: Array,
    g: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    groups: int = 1,
    bias: bool = False,
) -> tuple[Array, Array | None] | None:
    """The gradients of :func:`conv_direct` in its weight, ``(O, C/groups, kh, kw)``, and
    (with ``bias``) in its bias, ``(O,)``, for the output gradient ``g`` (N, O, OH, OW), in
    one pass over ``g`` with the columns of ``x`` built a block at a time (sums in double).
    None when unserved.

    Example:
        >>> x, g = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 2, 3, 3), np.float32)
        >>> r = conv_weight_grad_direct(x, g, (3, 3), (1, 1), (1, 1), (1, 1), bias=True)
        >>> r is None or (r[0][0, 0].tolist(), r[1].tolist()) == (
        ...     [[4, 6, 4], [6, 9, 6], [4, 6, 4]], [9, 9])
        True
    """
    if not _operands(x, g) or g.shape[0] != x.shape[0]:
        return None
    f = kernel("im2col", "conv_weight_grad_direct", x.dtype)
    if f is None:
        return None
    o = g.shape[1]
    w_shape = (o, x.shape[1] // max(groups, 1)) + tuple(kernel_size)
    args = _direct_args(x, w_shape, groups, stride, padding, dilation, g.shape[2:])
    if args is None:
        return None
    gw = np.empty(w_shape, x.dtype)
    gb = np.empty(o, x.dtype) if bias else None
    items = x.shape[0] * args[5] * -(-args[14] // args[16])
    nt = min(kernel_threads(NS_DIRECT_WGRAD_TAP * g.size * math.prod(w_shape[1:])), items)
    x, g = contiguous(x), contiguous(g)
    b = _seam.NULL if gb is None else _seam.ptr(gb)
    if f(_seam.ptr(x), _seam.ptr(g), _seam.ptr(gw), b, *args, nt) != 0:
        return None
    return gw, gb

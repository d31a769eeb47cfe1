"""The seam of the Winograd convolution kernels (:mod:`ember.kernels.source.winograd`): a 3 x 3,
unit-stride, undilated, ungrouped convolution of NumPy ``(N, C, H, W)`` float32 or float64
arrays, and its weight and bias gradients, with 2.25 times fewer multiply-adds than the
direct sum.

:func:`winograd_conv2d` and :func:`winograd_weight_grad` serve the calls :func:`fits`
accepts and return None for the others, and for an input, filter or output gradient that is
not all finite (whose inf and NaN the transforms would spread to neighbouring values); the
caller (:func:`ember.kernels.implicit_conv2d`, which also computes the input gradient of a
unit-stride convolution, and :func:`ember.kernels.implicit_weight_grad`) then takes its
implicit-GEMM path.

Which calls are served was measured against the implicit GEMM on the 2-core test machine
(float32, 2 threads): the forward was 0.56-0.82x its time from 4 input and 8 output
channels up to 512 x 512 (1.3-2.2x with 1-3 input or 4 output channels, where the padding
of the channels to whole vectors and blocks costs more than the products save); the weight
gradient, which keeps 16 accumulators of ``C x O`` per thread, 0.58-0.79x up to 128 x 128
channels and 1.05-1.17x from 128 x 256. Hence :data:`MIN_CHANNELS` (for both) and the limits on input
times output channels, :data:`MAX_CHANNEL_PRODUCT` and :data:`MAX_GRAD_CHANNEL_PRODUCT`
(halved for float64, whose values take twice the cache).

Example:
    >>> import numpy as np
    >>> x, w = np.ones((1, 16, 4, 4), np.float32), np.ones((16, 16, 3, 3), np.float32)
    >>> y = winograd_conv2d(x, w, None, (1, 1), (4, 4))
    >>> y is None or float(y[0, 0, 1, 1]) == 144.0
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel

__all__ = [
    "winograd_conv2d",
    "winograd_weight_grad",
    "winograd_available",
    "fits",
    "MIN_CHANNELS",
    "MAX_CHANNEL_PRODUCT",
    "MAX_GRAD_CHANNEL_PRODUCT",
]

Array = Any

MIN_CHANNELS = 8  # input and output channels from which the kernels serve a convolution
MAX_CHANNEL_PRODUCT = 512 * 512  # input x output channels the forward serves (float32)
MAX_GRAD_CHANNEL_PRODUCT = 128 * 128  # ... and the weight gradient (float32)
# ns of one core per 2 x 2 output tile and pair of input and output channels (the work
# estimates handed to kernel_threads; measured on W2's second convolution, float32)
NS_PER_TILE_CHANNEL, NS_GRAD_PER_TILE_CHANNEL = 0.8, 1.2


def fits(c: int, o: int, dtype: Any, weight_grad: bool = False) -> bool:
    """True when a 3 x 3 convolution with ``c`` input and ``o`` output channels of ``dtype``
    is one the forward kernel (with ``weight_grad``: the weight-gradient kernel) serves
    (see the module docstring).

    Example:
        >>> fits(32, 64, np.dtype(np.float32)), fits(3, 32, np.dtype(np.float32))
        (True, False)
        >>> fits(256, 256, np.dtype(np.float32), weight_grad=True)
        False
    """
    limit = MAX_GRAD_CHANNEL_PRODUCT if weight_grad else MAX_CHANNEL_PRODUCT
    return min(c, o) >= MIN_CHANNELS and c * o <= limit * 4 // np.dtype(dtype).itemsize


def winograd_available(x: Any) -> bool:
    """True when the forward kernel serves convolutions of the array ``x`` (a float32 or
    float64 NumPy array, kernels in use).

    Example:
        >>> winograd_available(np.ones(2, np.int64))
        False
    """
    return is_array(x) and kernel("winograd", "winograd_forward", x.dtype) is not None


def winograd_conv2d(
    x: Array,
    w: Array,
    bias: Array | None,
    padding: tuple[int, int],
    out_hw: tuple[int, int],
    relu: bool = False,
) -> Array | None:
    """The convolution of ``x`` (N, C, H, W) with the 3 x 3 filter ``w`` (O, C, 3, 3) at unit
    stride and dilation, zero-padded by ``padding`` = (top, left) and cut to ``out_hw``,
    plus ``bias`` (O,) when given, then a ReLU (NaN kept) with ``relu``; None when unserved.

    Example:
        >>> x = np.zeros((1, 16, 2, 2), np.float32); w = np.zeros((16, 16, 3, 3), np.float32)
        >>> y = winograd_conv2d(x, w, np.ones(16, np.float32), (1, 1), (2, 2))
        >>> y is None or y.sum() == 64.0
        True
    """
    if not is_array(x, w) or x.ndim != 4 or w.ndim != 4 or w.dtype != x.dtype:
        return None
    n, c, h, wd = x.shape
    o = w.shape[0]
    oh, ow = (int(v) for v in out_hw)
    pt, pl = (int(v) for v in padding)
    if w.shape[1:] != (c, 3, 3) or min(pt, pl) < 0 or not fits(c, o, x.dtype):
        return None
    if bias is not None and (not is_array(bias) or bias.dtype != x.dtype or bias.size != o):
        return None
    f = kernel("winograd", "winograd_forward", x.dtype)
    if f is None or n * h * wd * oh * ow == 0:
        return None
    y = np.empty((n, o, oh, ow), x.dtype)
    tiles = n * ((oh + 1) // 2) * ((ow + 1) // 2)
    nt = kernel_threads(int(tiles * c * o * NS_PER_TILE_CHANNEL))
    b = _seam.NULL if bias is None else _seam.ptr(contiguous(bias))
    x, w = contiguous(x), contiguous(w)
    r = f(_seam.ptr(x), _seam.ptr(w), b, int(relu), _seam.ptr(y), n, c, h, wd, o, pt, pl, oh, ow,
          nt)  # fmt: skip
    if r < 0:
        raise MemoryError("conv2d: out of memory for the Winograd transforms")
    return y if r == 0 else None


def winograd_weight_grad(
    x: Array, g: Array, padding: tuple[int, int], bias: bool = False
) -> tuple[Array, Array | None] | None:
    """The gradients of :func:`winograd_conv2d` (padding ``(top, left)``) in its weight,
    ``(O, C, 3, 3)``, and with ``bias`` in its bias, ``(O,)``, for the output gradient ``g``
    ``(N, O, OH, OW)``; None when unserved. The threads' sums are added in thread order, so
    the result depends on the thread count (not on timing).

    Example:
        >>> x, g = np.ones((1, 16, 2, 2), np.float32), np.ones((1, 16, 2, 2), np.float32)
        >>> r = winograd_weight_grad(x, g, (1, 1), bias=True)
        >>> r is None or (float(r[0][0, 0, 1, 1]), float(r[1][0])) == (4.0, 4.0)
        True
    """
    if not is_array(x, g) or x.ndim != 4 or g.ndim != 4 or g.dtype != x.dtype:
        return None
    n, c, h, wd = x.shape
    o, oh, ow = g.shape[1:]
    pt, pl = (int(v) for v in padding)
    if g.shape[0] != n or min(pt, pl) < 0 or not fits(c, o, x.dtype, weight_grad=True):
        return None
    f = kernel("winograd", "winograd_weight_grad", x.dtype)
    if f is None or n * h * wd * oh * ow == 0:
        return None
    gw = np.empty((o, c, 3, 3), x.dtype)
    gb = np.empty(o, x.dtype) if bias else None
    tiles = n * ((oh + 1) // 2) * ((ow + 1) // 2)
    nt = kernel_threads(int(tiles * c * o * NS_GRAD_PER_TILE_CHANNEL))
    x, g = contiguous(x), contiguous(g)
    r = f(_seam.ptr(x), _seam.ptr(g), _seam.ptr(gw), _seam.NULL if gb is None else _seam.ptr(gb),
          n, c, h, wd, o, pt, pl, oh, ow, nt)  # fmt: skip
    if r < 0:
        raise MemoryError("conv2d: out of memory for the Winograd transforms")
    return (gw, gb) if r == 0 else None

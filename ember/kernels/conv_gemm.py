"""The seam of the implicit-GEMM convolution kernels (:mod:`ember.kernels.source.conv_gemm`):
a 2-D convolution (any ``groups``), its weight and bias gradients, and the unit-stride
transposed convolution (the input gradient of a unit-stride convolution), all on NumPy
``(N, C, H, W)`` arrays of float32 or float64, without building a column matrix.

Geometry arguments are those of :mod:`ember.kernels.conv` (pairs; ``padding`` ``(ph, pw)``
or ``((top, bottom), (left, right))``, of which only the top and left count). Every function
returns None when the kernels cannot serve the call (``EMBER_KERNELS=numpy``, no compiler,
another dtype or array type, an empty array); the caller then takes its im2col path.

Example:
    >>> import numpy as np
    >>> x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((2, 1, 3, 3), np.float32)
    >>> y = implicit_conv2d(x, w, None, (1, 1), (1, 1), (1, 1), (3, 3))
    >>> y is None or y[0, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel
from .conv import _geometry, _operands
from .winograd import fits, winograd_available, winograd_conv2d, winograd_weight_grad

__all__ = [
    "implicit_available",
    "implicit_conv2d",
    "implicit_weight_grad",
    "implicit_transpose2d",
]

Array = Any

# fused multiply-adds per element of work handed to kernel_threads (a position of a
# convolution with K taps and O outputs is K * O of them)
_WORK_SCALE = 16


def implicit_available(
    x: Any,
    w_shape: tuple | None = None,
    stride: tuple = (1, 1),
    dilation: tuple = (1, 1),
    groups: int = 1,
) -> bool:
    """True when the kernels serve convolutions of the array ``x`` (a float32 or float64
    NumPy array, kernels in use). Given the weight's shape ``(O, C/groups, kh, kw)`` and the
    geometry, it asks for the kernel that would serve that convolution (the Winograd one,
    or the implicit GEMM's), so that the check builds no library the call will not use.

    Example:
        >>> implicit_available(np.ones(2, np.int64))
        False
    """
    if w_shape is not None and is_array(x):
        o, c, kh, kw = w_shape
        if _winograd(kh, kw, *stride, *dilation, groups) and fits(c, o, x.dtype):
            return winograd_available(x)
    return is_array(x) and kernel("conv_gemm", "conv_gemm_forward", x.dtype) is not None


def _grouped(c: int, o: int, cg: int, groups: int) -> bool:
    """True when ``c`` input and ``o`` output channels split into ``groups`` groups of
    ``cg`` input channels each."""
    return groups >= 1 and c == cg * groups and o % groups == 0


def _winograd(kh: int, kw: int, sh: int, sw: int, dh: int, dw: int, groups: int) -> bool:
    """True for the geometry the Winograd kernels serve (their channels checked apart)."""
    return groups == 1 and (kh, kw, sh, sw, dh, dw) == (3, 3, 1, 1, 1, 1)


def _threads(positions: int, taps: int, outputs: int) -> int:
    return kernel_threads(positions * taps * outputs // _WORK_SCALE)


def implicit_conv2d(
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
    (O,) when given, then a ReLU (the relu op's, NaN kept) with ``relu``, as an NCHW array;
    None when unserved. A 3 x 3, unit-stride, undilated, ungrouped convolution with the
    channels :func:`ember.kernels.winograd.fits` takes the Winograd kernel.

    Example:
        >>> x, w = np.ones((1, 2, 4, 4), np.float32), np.ones((3, 2, 3, 3), np.float32)
        >>> y = implicit_conv2d(x, w, np.zeros(3, np.float32), (1, 1), (0, 0), (1, 1), (2, 2))
        >>> y is None or y.tolist() == [[[[18.0, 18.0], [18.0, 18.0]]] * 3]
        True
    """
    if not _operands(x, w, bias) or not _grouped(x.shape[1], w.shape[0], w.shape[1], groups):
        return None
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = _geometry(
        w.shape[2:], stride, padding, dilation, out_hw
    )
    if min(pt, pl) < 0:
        return None
    if _winograd(kh, kw, sh, sw, dh, dw, groups):  # (before the lookup: no build it skips)
        y = winograd_conv2d(x, w, bias, (pt, pl), (oh, ow), relu)
        if y is not None:  # (None: channels it does not serve, or an input not all finite)
            return y
    f = kernel("conv_gemm", "conv_gemm_forward", x.dtype)
    if f is None:
        return None
    n, c, h, wd = x.shape
    o = w.shape[0]
    y = np.empty((n, o, oh, ow), x.dtype)
    if y.size == 0:
        return None
    nt = _threads(n * oh * ow, c * kh * kw, o)
    b = _seam.NULL if bias is None else _seam.ptr(contiguous(bias))
    x, w = contiguous(x), contiguous(w)
    if f(_seam.ptr(x), _seam.ptr(w), b, int(relu), _seam.ptr(y), n, c, h, wd, o, groups, kh, kw,
         sh, sw, pt, pl, dh, dw, oh, ow, nt) != 0:  # fmt: skip
        raise MemoryError("conv2d: out of memory for the padded image")
    return y


def implicit_weight_grad(
    x: Array,
    g: Array,
    kernel_size: tuple,
    stride: tuple,
    padding: Any,
    dilation: tuple,
    bias: bool = False,
    groups: int = 1,
) -> tuple[Array, Array | None] | None:
    """The gradients of :func:`implicit_conv2d` in its weight, ``(O, C/groups, kh, kw)``,
    and (with ``bias``) in its bias, ``(O,)``, for the output gradient ``g`` (N, O, OH, OW);
    None when unserved. The convolutions :func:`implicit_conv2d` gives to the Winograd
    kernel have their gradients from it too.

    Example:
        >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
        >>> r = implicit_weight_grad(x, np.full((1, 1, 1, 1), 2, np.float32), (3, 3), (1, 1),
        ...                          (0, 0), (1, 1), bias=True)
        >>> r is None or (r[0].ravel().tolist(), r[1].tolist()) == (
        ...     [2.0 * i for i in range(9)], [2])
        True
    """
    if not _operands(x, g) or g.shape[0] != x.shape[0]:
        return None
    if not _grouped(x.shape[1], g.shape[1], x.shape[1] // max(groups, 1), groups):
        return None
    kh, kw, sh, sw, pt, pl, dh, dw, oh, ow = _geometry(
        kernel_size, stride, padding, dilation, g.shape[2:]
    )
    if min(pt, pl) < 0:
        return None
    if _winograd(kh, kw, sh, sw, dh, dw, groups):
        r = winograd_weight_grad(x, g, (pt, pl), bias)
        if r is not None:  # (None: channels it does not serve, or values not all finite)
            return r
    f = kernel("conv_gemm", "conv_gemm_weight_grad", x.dtype)
    if f is None:
        return None
    n, c, h, wd = x.shape
    o, cg = g.shape[1], x.shape[1] // groups
    size = o * cg * kh * kw
    out = np.empty(size + (o if bias else 0), x.dtype)
    nt = _threads(n * oh * ow, cg * kh * kw, o)
    x, g = contiguous(x), contiguous(g)
    if f(_seam.ptr(x), _seam.ptr(g), _seam.ptr(out), int(bias), n, c, h, wd, o, groups, kh, kw,
         sh, sw, pt, pl, dh, dw, oh, ow, nt) != 0:  # fmt: skip
        raise MemoryError("conv2d: out of memory for the weight gradient")
    return out[:size].reshape(o, cg, kh, kw), (out[size:] if bias else None)


def implicit_transpose2d(
    x: Array,
    w: Array,
    bias: Array | None,
    padding: Any,
    dilation: tuple,
    out_hw: tuple,
    groups: int = 1,
) -> Array | None:
    """The unit-stride transposed convolution of ``x`` (N, I, IH, IW) with ``w`` (I,
    O/groups, kh, kw) (``padding``: that of the convolution it transposes), plus ``bias``:
    the convolution of ``x`` with ``w`` flipped and transposed group by group, padded by
    ``dilation * (k - 1) - padding``. None when unserved (or when the padding exceeds the
    dilated kernel).

    Example:
        >>> x, w = np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 2, 2), np.float32)
        >>> y = implicit_transpose2d(x, w, None, (0, 0), (1, 1), (3, 3))
        >>> y is None or y[0, 0].tolist() == [[1, 2, 1], [2, 4, 2], [1, 2, 1]]
        True
    """
    if not is_array(x, w) or w.ndim != 4 or w.shape[0] != getattr(x, "shape", (0, 0))[1]:
        return None
    if groups < 1 or w.shape[0] % groups:
        return None
    kh, kw, _, _, pt, pl, dh, dw, _, _ = _geometry(w.shape[2:], (1, 1), padding, dilation, out_hw)
    pads = (dh * (kh - 1) - pt, dw * (kw - 1) - pl)
    if min(pads) < 0:
        return None
    i, og = w.shape[0] // groups, w.shape[1]  # (I, O/G, kh, kw) -> (O, I/G, kh, kw) per group
    if not implicit_available(x, (groups * og, i, kh, kw), (1, 1), (dh, dw), groups):
        return None
    wg = w.reshape(groups, i, og, *w.shape[2:]).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
    wf = np.ascontiguousarray(wg).reshape(groups * og, i, *w.shape[2:])
    return implicit_conv2d(x, wf, bias, (1, 1), pads, dilation, out_hw, groups)

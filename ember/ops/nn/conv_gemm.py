"""The array side of the convolutions of ``conv.py``: column matrices, the GEMM layouts
around them, and the three ways a 2-D convolution runs.

* **implicit GEMM** (NumPy arrays, C kernels in use, more taps than the direct path
  takes; any ``groups``): the kernels ``kernels.implicit_*`` (:mod:`ember.kernels.conv_gemm`)
  run the GEMM's register blocks on panels of columns gathered straight from the (padded)
  image, so no column matrix is built, kept or summed back: the forward, the weight and
  bias gradients, and a unit-stride transposed convolution (the input gradient), which is
  the convolution of its input with the flipped, transposed weight. At W2's second
  convolution (K = 288) forward, weight gradient and input gradient together ran about 2x
  faster than im2col + GEMM + col2im (see ``docs/performance.md``).
* **im2col + GEMM** (the general path): the column matrix ``(C * kh * kw, N * OH * OW)``
  (channels first) makes each group one large GEMM, whose ``(O, N, OH * OW)`` result is
  made NCHW (plus the bias) in one pass.
* **direct** (few taps per output: ``C / groups * kh * kw <= DIRECT_MAX_TAPS``): the C
  kernels ``conv_direct`` and ``conv_weight_grad_direct`` build the columns a block of
  output rows at a time in a cache-sized buffer and write NCHW outputs (or sum the weight
  gradient) from it, with no column matrix, GEMM or transpose pass: with so few taps a
  GEMM is memory-bound, and the transpose after it costs as much again. Without the C
  kernels the same path is one small GEMM per sample on ``(N, groups, K, OH * OW)``
  columns, whose ``(N, O, OH * OW)`` result is NCHW already (2x faster than the large
  GEMM and its transpose at W2's first layer, 20% at K = 36, slower at K = 288).

**Columns kept for the weight gradient** (im2col path only). A training step builds the
same columns twice: in ``conv2d``'s forward and again in its weight gradient. When the
weight needs a gradient (grad mode on, ``weight.requires_grad``), the direct path is not
taken and the columns take at most ``KEEP_COLUMNS_BYTES`` (and fit one piece,
``conv._COLS_LIMIT``), the convolution builds them once with the :data:`im2col` op and
hands them to both ``conv2d`` and (through autograd) ``conv2d_weight_grad``, like the
``finput`` buffer of PyTorch's THNN convolution. They are a value of the graph, so a
compiled step shares them the same way; they stay alive from the forward to the backward
(that is the memory cost, bounded by the cap: 14.5 MB for W2's second convolution, which
the implicit GEMM now serves with none). Larger columns are recomputed, as before.

Example:
    >>> import numpy as np
    >>> keeps_columns((64, 32, 14, 14), (64, 32, 3, 3), (14, 14), np.dtype("f4"))
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import kernels
from ..registry import defop

__all__ = [
    "im2col",
    "keeps_columns",
    "uses_direct",
    "uses_implicit",
    "KEEP_COLUMNS_BYTES",
    "DIRECT_MAX_TAPS",
]

# columns up to this size (bytes, per convolution) are kept from the forward for the weight
# gradient instead of being built again
KEEP_COLUMNS_BYTES = 32 << 20
# the direct path serves convolutions with at most this many taps per output
# (C / groups * kh * kw); more taps go to im2col + GEMM. Measured (forward + weight and bias
# gradients, batch 64, 28x28, 32 outputs): direct 1.2-1.7x faster at 9 taps, even at 16-18
# with 2 threads (1.3x faster with 1), GEMM ahead from 27 taps (2x at 72)
DIRECT_MAX_TAPS = 16


# -- the path rules -------------------------------------------------------------------------
def uses_direct(x_shape: tuple, w_shape: tuple) -> bool:
    """True when the convolution of ``x_shape`` with ``w_shape`` (O, C/groups, kh, kw) takes
    the direct path: at most ``DIRECT_MAX_TAPS`` taps per output (and a non-empty input).

    Example:
        >>> uses_direct((64, 32, 14, 14), (64, 32, 3, 3)), uses_direct((64, 1, 28, 28), (32, 1, 3, 3))
        (False, True)
    """
    taps = int(np.prod(w_shape[1:]))
    return taps <= DIRECT_MAX_TAPS and int(np.prod(x_shape)) > 0


def uses_implicit(
    x: Any, w_shape: tuple, stride: tuple = (1, 1), dilation: tuple = (1, 1), groups: int = 1
) -> bool:
    """True when the convolution of the array ``x`` with a weight of ``w_shape`` takes the
    implicit-GEMM path (its kernels, the Winograd ones included, serve ``x`` and the direct
    path does not take it): then no columns are built or kept.

    Example:
        >>> uses_implicit(np.ones((1, 1, 4, 4), np.float32), (2, 1, 3, 3))  # direct path
        False
    """
    if uses_direct(x.shape, w_shape):
        return False
    return kernels.implicit_available(x, w_shape, stride, dilation, groups)


def keeps_columns(
    x_shape: tuple, w_shape: tuple, out_hw: tuple, dtype: Any, piece: int = 1 << 24
) -> bool:
    """True when a convolution whose weight needs a gradient keeps its columns for it:
    not on the direct path, and columns of at most ``KEEP_COLUMNS_BYTES`` that are built in
    one piece (at most ``piece`` elements: ``conv.py``'s ``_COLS_LIMIT``).

    Example:
        >>> keeps_columns((512, 64, 56, 56), (64, 64, 3, 3), (56, 56), np.dtype("f4"))
        False
    """
    n, c = x_shape[0], x_shape[1]
    elements = c * w_shape[2] * w_shape[3] * n * out_hw[0] * out_hw[1]
    if elements == 0 or elements > piece:
        return False
    if elements * np.dtype(dtype).itemsize > KEEP_COLUMNS_BYTES:
        return False
    return not uses_direct(x_shape, w_shape)


# -- array helpers (xp arrays) --------------------------------------------------------------
def _pad_channels_first(xp, x, padding):
    """``(N, C, H, W)`` -> zero-padded ``(C, N, Hp, Wp)`` (a view when there is no padding)."""
    xt = x.transpose(1, 0, 2, 3)
    (pt, pb), (pl, pr) = padding
    if pt == pb == pl == pr == 0:
        return xt
    c, n, h, w = xt.shape
    buf = xp.zeros((c, n, h + pt + pb, w + pl + pr), dtype=x.dtype)
    buf[:, :, pt : pt + h, pl : pl + w] = xt
    return buf


def _im2col(xp, x, kernel, stride, padding, dilation, out_hw, groups):
    """Columns ``(groups, C/groups * kh * kw, N * OH * OW)`` of ``x`` (N, C, H, W)."""
    cols = kernels.im2col(x, kernel, stride, padding, dilation, out_hw)
    if cols is not None:
        return cols.reshape(groups, -1, x.shape[0] * out_hw[0] * out_hw[1])
    buf = _pad_channels_first(xp, x, padding)
    c, n = buf.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    s0, s1, s2, s3 = buf.strides
    view = xp.lib.stride_tricks.as_strided(
        buf, (c, kh, kw, n, oh, ow), (s0, s2 * dh, s3 * dw, s1, s2 * sh, s3 * sw)
    )
    return xp.ascontiguousarray(view).reshape(groups, c // groups * kh * kw, n * oh * ow)


def _col2im(xp, cols, x_shape, kernel, stride, padding, dilation, out_hw, out=None):
    """Sum columns ``(C * kh * kw, N, OH, OW)`` back into an ``(N, C, H, W)`` array: ``out``
    itself when the C kernels can write into it, else a new array."""
    x = kernels.col2im(cols, x_shape, kernel, stride, padding, dilation, out_hw, out=out)
    if x is not None:
        return x
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    (pt, pb), (pl, pr) = padding
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    buf = xp.zeros((c, n, h + pt + pb, w + pl + pr), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            r, q = i * dh, j * dw
            buf[:, :, r : r + sh * (oh - 1) + 1 : sh, q : q + sw * (ow - 1) + 1 : sw] += cols[
                :, i, j
            ]
    return buf[:, :, pt : pt + h, pl : pl + w].transpose(1, 0, 2, 3)


def _transpose_unit_stride(xp, x, wt, out_shape, kernel, padding, dilation):
    """``conv_transpose2d`` for stride 1: ``x`` is widened with zero columns to the padded
    output's width ``wp``, so that each kernel position's contribution is one contiguous run
    of ``IH * wp`` elements per (channel, sample) (long loops instead of rows of ``IW``)."""
    n, i, ih, iw = x.shape
    groups = wt.shape[0]
    c, h, w = out_shape[1:]
    (kh, kw), (dh, dw) = kernel, dilation
    (pt, pb), (pl, pr) = padding
    hp, wp = h + pt + pb, w + pl + pr
    xm = xp.zeros((i, n, ih, wp), dtype=x.dtype)
    xm[..., :iw] = x.transpose(1, 0, 2, 3)
    cols = xp.matmul(wt, xm.reshape(groups, i // groups, n * ih * wp))
    cols = cols.reshape(c, kh, kw, n, ih * wp)
    buf = xp.zeros((c, n, hp * wp + (kw - 1) * dw), dtype=cols.dtype)
    for a in range(kh):
        for b in range(kw):
            off = a * dh * wp + b * dw
            buf[:, :, off : off + ih * wp] += cols[:, a, b]
    buf = buf[:, :, : hp * wp].reshape(c, n, hp, wp)
    return buf[:, :, pt : pt + h, pl : pl + w].transpose(1, 0, 2, 3)


def _channels_first(a):
    """``a`` (N, C, H, W) as (C, N, H, W): a contiguous copy made in C when the kernels
    serve it, else a view (the caller's reshape copies it)."""
    out = kernels.swap01(a)
    return a.transpose(1, 0, 2, 3) if out is None else out


def _finish(xp, y, bias, shape):
    """``y`` in (C, N, H, W) layout -> a contiguous (N, C, H, W) array, plus bias."""
    out = kernels.swap01(y, bias)
    if out is not None:
        return out
    out = xp.empty(shape, dtype=y.dtype)
    yt = y.transpose(1, 0, 2, 3)
    if bias is None:
        out[...] = yt
    else:
        xp.add(yt, bias.reshape(1, -1, 1, 1), out=out)
    return out


def _gemm_conv2d(xp, x, w, b, cols, stride, padding, dilation, groups, out_hw, chunks):
    """``conv2d`` on the im2col + GEMM path (``cols``: the kept columns, or None)."""
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = out_hw
    wm = w.reshape(groups, o // groups, cg * kh * kw)
    if cols is not None:
        y = xp.matmul(wm, cols.reshape(groups, cg * kh * kw, n * oh * ow))
        return _finish(xp, y.reshape(o, n, oh, ow), b, (n, o, oh, ow))
    y = None if len(chunks) == 1 else xp.empty((groups, o // groups, n * oh * ow), dtype=x.dtype)
    for a, e in chunks:
        cols = _im2col(xp, x[a:e], (kh, kw), stride, padding, dilation, out_hw, groups)
        if y is None:
            y = xp.matmul(wm, cols)
        else:  # each piece straight into its columns of the result
            xp.matmul(wm, cols, out=y[:, :, a * oh * ow : e * oh * ow])
    return _finish(xp, y.reshape(o, n, oh, ow), b, (n, o, oh, ow))


# -- the direct path ------------------------------------------------------------------------
def _sample_columns(xp, x, kernel, stride, padding, dilation, out_hw, groups):
    """Columns ``(N, groups, C/groups * kh * kw, OH * OW)`` of ``x`` (the NumPy form)."""
    buf = _pad_channels_first(xp, x, padding).transpose(1, 0, 2, 3)  # (N, C, Hp, Wp)
    n, c = buf.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    s0, s1, s2, s3 = buf.strides
    view = xp.lib.stride_tricks.as_strided(
        buf, (n, c, kh, kw, oh, ow), (s0, s1, s2 * dh, s3 * dw, s2 * sh, s3 * sw)
    )
    return xp.ascontiguousarray(view).reshape(n, groups, c // groups * kh * kw, oh * ow)


def _relu(xp, y):
    """The relu op's forward on ``y`` (its C kernel where it serves ``y``)."""
    from ..registry import REGISTRY

    return REGISTRY["relu"].forward(xp, y)


def _direct_conv2d(xp, x, w, b, geometry, chunks, relu=False):
    """``conv2d`` on the direct path (``geometry``: stride, padding, dilation, out_hw,
    groups): the C kernel, else one GEMM per sample and group, on the columns of the sample
    ranges ``chunks`` in turn (``conv._chunks``); then a ReLU with ``relu``."""
    stride, padding, dilation, out_hw, groups = geometry
    y = kernels.conv_direct(x, w, b, stride, padding, dilation, out_hw, groups, relu)
    if y is not None:
        return y
    n, (o, cg, kh, kw) = x.shape[0], w.shape
    y = xp.empty((n, groups, o // groups, out_hw[0] * out_hw[1]), dtype=x.dtype)
    wm = w.reshape(groups, o // groups, cg * kh * kw)
    for a, e in chunks:
        cols = _sample_columns(xp, x[a:e], (kh, kw), stride, padding, dilation, out_hw, groups)
        xp.matmul(wm, cols, out=y[a:e])  # (N, G, O/G, L): NCHW already
    y = y.reshape((n, o) + tuple(out_hw))
    if b is not None:
        y += b.reshape(1, -1, 1, 1)
    return _relu(xp, y) if relu else y


def _direct_weight_grad(xp, x, g, geometry, chunks, with_bias=False):
    """``conv2d_weight_grad`` on the direct path (``geometry``: kernel, stride, padding,
    dilation, groups): the C kernel, else one GEMM per sample and group, summed over the
    samples, a range of ``chunks`` at a time. Returns the weight gradient and, ``with_bias``,
    the bias gradient (O,) (else None)."""
    kernel, stride, padding, dilation, groups = geometry
    out = kernels.conv_weight_grad_direct(
        x, g, kernel, stride, padding, dilation, groups, with_bias
    )
    if out is not None:
        return out
    o = g.shape[1]
    gw = 0
    for a, e in chunks:
        cols = _sample_columns(xp, x[a:e], kernel, stride, padding, dilation, g.shape[2:], groups)
        gm = g[a:e].reshape(e - a, groups, o // groups, -1)
        gw = gw + xp.matmul(gm, cols.transpose(0, 1, 3, 2)).sum(axis=0)
    return gw, (g.sum(axis=(0, 2, 3)) if with_bias else None)


def _gemm_weight_grad(xp, cols, g, groups, with_bias=False):
    """The weight gradient (groups, O/groups, C/groups * kh * kw) from the columns of the
    input (the samples of ``g``) and, ``with_bias``, the bias gradient (O,) (else None), from
    ``g`` made channels-first once."""
    o = g.shape[1]
    gm = _channels_first(g).reshape(groups, o // groups, -1)
    if cols.ndim == 2:  # the im2col op's (C * kh * kw, N * OH * OW)
        cols = cols.reshape(groups, cols.shape[0] // groups, cols.shape[1])
    gw = xp.matmul(gm, cols.transpose(0, 2, 1))
    return gw, (gm.sum(axis=2).reshape(o) if with_bias else None)


# -- the columns as an op -------------------------------------------------------------------
@defop("im2col", saves_inputs=False)
def im2col(xp, x, *, kernel, stride, padding, dilation, out_hw):
    """The column matrix ``(C * kh * kw, N * OH * OW)`` of ``x`` (N, C, H, W): row
    ``(c * kh + i) * kw + j`` is channel ``c`` seen through kernel tap ``(i, j)``, column
    ``(n * OH + oh) * OW + ow`` is output position ``(oh, ow)`` of sample ``n`` (zeros where
    a tap falls in the padding). A fresh array, never a view of ``x``. No gradient of its own:
    a convolution that reads it also reads ``x``, through which its gradients flow.

    Example:
        >>> c = im2col(ember.ones(1, 1, 2, 2), kernel=(1, 1), stride=(1, 1),
        ...            padding=((0, 0), (0, 0)), dilation=(1, 1), out_hw=(2, 2))
        >>> c.shape
        (1, 4)
    """
    cols = _im2col(xp, x, kernel, stride, padding, dilation, out_hw, 1)
    cols = cols.reshape(cols.shape[1], cols.shape[2])
    if xp.may_share_memory(cols, x):
        cols = cols.copy()
    return cols


@im2col.defonnx
def _(g, x, *, kernel, stride, padding, dilation, out_hw):
    # a depthwise Conv with one-hot filters: output channel (c * kh + i) * kw + j is channel
    # c seen through tap (i, j); then (C * kh * kw, N, OH, OW) and flattened
    kh, kw = kernel
    c = x.shape[1]
    eye = np.eye(kh * kw, dtype=x.dtype or np.float32).reshape(kh * kw, 1, kh, kw)
    taps = g.const(np.tile(eye, (c, 1, 1, 1)))
    (pt, pb), (pl, pr) = padding
    y = g.op(
        "Conv", x, taps, strides=list(stride), pads=[pt, pl, pb, pr],
        dilations=list(dilation), group=c,
    )  # fmt: skip
    full = [
        (i + lo + hi - d * (k - 1) - 1) // s + 1
        for i, (lo, hi), d, k, s in zip(x.shape[2:], padding, dilation, kernel, stride)
    ]
    if full != list(out_hw):
        y = g.slice(y, [2, 3], [0, 0], list(out_hw))
    y = g.op("Transpose", y, perm=[1, 0, 2, 3])
    return g.reshape(y, (c * kh * kw, -1))

"""Convolutions: conv1d, conv2d, conv_transpose1d, conv_transpose2d (NCHW / NCL layouts).

Three primitives carry every convolution and all of their derivatives, to any order:

* ``conv2d(x, w, b)``: cross-correlation; im2col and one GEMM per group, whose
  ``(O, N, OH * OW)`` result is made NCHW with the bias added in one pass, or, with few
  taps per output, the direct C kernel (see ``conv_gemm.py``);
* ``conv_transpose2d(x, w, b)``: its adjoint in ``x`` (the input gradient); one GEMM then
  col2im (the C kernel writes NCHW directly, at any stride; the NumPy path is a loop over
  the ``kh * kw`` kernel positions of strided slice adds);
* ``conv2d_weight_grad(x, g)``: its adjoint in ``w``; im2col and one GEMM (or the direct
  kernel).

Each is bilinear, and the derivatives of each are the other two, so backward rules are
ember ops and second-order gradients come for free. 1-D convolutions are 2-D ones with a
height of 1 (two free reshapes). ``conv2d`` and ``conv2d_weight_grad`` may also take the
columns of ``x`` (the ``im2col`` op's output) as a last input: a training step then builds
them once, in the forward, for both (the rule is in ``conv_gemm.py``); they get no gradient
of their own (``x``'s covers them).

Internally the column matrix is ``(C * kh * kw, N * OH * OW)`` (channels first), so that
each group is one large GEMM: one call that BLAS threads well, rather than one small
GEMM per image (about 1.2-2x slower in total here, and much worse when BLAS threads wait on
a busy machine). Columns larger than ``_COLS_LIMIT`` are built a few samples at a time, each
piece's GEMM writing into its columns of the one result (or col2im summing into its rows of
the input gradient: no concatenation). The C kernels (``ember.kernels``: im2col, col2im,
swap01) read and write NCHW arrays directly; the transposes that layout needs cost one pass
each, done in C.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.conv2d(ember.ones(1, 1, 4, 4), ember.ones(2, 1, 3, 3), padding=1).shape
    (1, 2, 4, 4)
"""

from __future__ import annotations

import math
from typing import Any

from ... import kernels
from ...autograd.mode import state
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from ..reduce import sum as _sum
from ..registry import defop
from ..shape import reshape, slice_dim
from .conv_gemm import (
    _channels_first,
    _col2im,
    _direct_conv2d,
    _direct_weight_grad,
    _gemm_conv2d,
    _gemm_weight_grad,
    _im2col,
    _relu,
    _transpose_unit_stride,
    keeps_columns,
    uses_direct,
    uses_implicit,
)
from .conv_gemm import im2col as _columns_op

__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d"]

# largest column matrix built at once (elements); larger batches are done in pieces. Pieces
# of about 2 MB (still in cache for the next pass) made W2's second convolution ~10% faster
# on 2 quiet cores, but 2x slower on a busy machine (8x more BLAS calls, each waiting for
# a descheduled BLAS thread): a memory cap, not a cache size
_COLS_LIMIT = 1 << 24


def _chunks(n: int, rows: int, positions: int):
    """Sample ranges ``[a, e)`` of (nearly) equal sizes whose ``rows x (e - a) * positions``
    columns fit ``_COLS_LIMIT`` (one sample at least)."""
    step = max(1, _COLS_LIMIT // max(rows * positions, 1))
    pieces = max(1, -(-n // step))  # as few as the limit allows, of (nearly) equal sizes
    bounds = [n * k // pieces for k in range(pieces + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


# -- primitives -----------------------------------------------------------------------------
@defop("conv2d", onnx="Conv")
def _conv2d(xp, x, w, b, cols=None, *, stride, padding, dilation, groups, out_hw, relu=False):
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C/groups, kh, kw); ``cols``,
    when given, are the columns of ``x`` (the :data:`~.conv_gemm.im2col` op's output). With
    ``relu`` a ReLU follows, applied as the C kernels store each output where they serve the
    call: the graph optimizer sets it on a convolution that only a ReLU reads (see
    :mod:`ember.graph.passes.simplify`), after differentiation, so it has no gradient."""
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = out_hw
    chunks = _chunks(n, cg * groups * kh * kw, oh * ow)
    if cols is None and uses_direct(x.shape, w.shape):
        geometry = (stride, padding, dilation, out_hw, groups)
        return _direct_conv2d(xp, x, w, b, geometry, chunks, relu)
    if cols is None:
        y = kernels.implicit_conv2d(x, w, b, stride, padding, dilation, out_hw, groups, relu)
        if y is not None:
            return y
    y = _gemm_conv2d(xp, x, w, b, cols, stride, padding, dilation, groups, out_hw, chunks)
    return _relu(xp, y) if relu else y


def _opts(ctx) -> dict:
    """The geometry attributes every conv op of this file shares."""
    return {k: ctx.attrs[k] for k in ("stride", "padding", "dilation", "groups")}


def _geometry(opts: dict) -> dict:
    """The attributes of the im2col op among a convolution's."""
    return {k: opts[k] for k in ("stride", "padding", "dilation", "out_hw")}


def _conv_grads(ctx, g, input_op, transposed: bool):
    """Gradients of ``conv2d`` (``transposed=False``) or ``conv_transpose2d``: the input's
    through the other op (``input_op``), the weight's through ``_conv2d_weight_grad`` with
    the image and output-gradient roles swapped for the transpose."""
    x, w, b, *cols = ctx.inputs  # conv2d's columns of x, when it was given them
    need_x, need_w, need_b = ctx.needs_input_grad[:3]
    opts = _opts(ctx)
    gx = input_op(g, w, None, out_hw=tuple(x.shape[2:]), **opts) if need_x else None
    image, grad = (g, x) if transposed else (x, g)
    gw = gb = None
    fused = need_w and need_b and not transposed  # the bias gradient from the same pass
    if need_w:
        kernel = tuple(w.shape[2:])
        gw = _conv2d_weight_grad(image, grad, *cols, kernel=kernel, with_bias=fused, **opts)
        if fused:
            gw, gb = _weight_and_bias(gw, tuple(w.shape))
    if need_b and not fused:
        gb = _sum(g, dim=(0, 2, 3))
    return (gx, gw, gb) + (None,) * len(cols)


@_conv2d.defgrad
def _(ctx, g):
    if ctx.attrs.get("relu"):
        raise ShapeError(
            "conv2d",
            "a convolution fused with its ReLU (relu=True, made by the graph optimizer after "
            "differentiation) has no gradient: differentiate conv2d, then relu",
        )
    return _conv_grads(ctx, g, _conv_transpose2d, transposed=False)


@defop("conv_transpose2d", onnx="ConvTranspose")
def _conv_transpose2d(xp, x, w, b, *, stride, padding, dilation, groups, out_hw):
    """Transposed convolution: ``x`` (N, I, IH, IW), ``w`` (I, O/groups, kh, kw) ->
    (N, O, *out_hw); the adjoint of ``conv2d`` in its input (``padding`` is conv2d's)."""
    if stride == (1, 1):  # the convolution with the flipped weight
        y = kernels.implicit_transpose2d(x, w, b, padding, dilation, out_hw, groups)
        if y is not None:
            return y
    n, i, ih, iw = x.shape
    _, og, kh, kw = w.shape
    c = og * groups
    wt = w.reshape(groups, i // groups, og * kh * kw).transpose(0, 2, 1)
    # with the C col2im any stride is one GEMM plus one col2im pass straight into NCHW; the
    # NumPy path prefers long contiguous slice adds for stride 1
    unit_stride = stride == (1, 1) and not kernels.col2im_available(x)
    chunks = _chunks(n, c * kh * kw, ih * iw)
    out = None if len(chunks) == 1 else xp.empty((n, c) + tuple(out_hw), dtype=x.dtype)
    for a, e in chunks:
        shape, into = (e - a, c) + tuple(out_hw), None
        if unit_stride:
            part = _transpose_unit_stride(xp, x[a:e], wt, shape, (kh, kw), padding, dilation)
        else:
            xm = _channels_first(x[a:e]).reshape(groups, i // groups, (e - a) * ih * iw)
            cols = xp.matmul(wt, xm)  # (groups, og * kh * kw, n * ih * iw)
            into = None if out is None else out[a:e]  # C kernels sum into it directly
            part = _col2im(xp, cols, shape, (kh, kw), stride, padding, dilation, (ih, iw), into)
        if out is None:
            out = xp.ascontiguousarray(part)
        elif part is not into:
            out[a:e] = part
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


@_conv_transpose2d.defgrad
def _(ctx, g):
    return _conv_grads(ctx, g, _conv2d, transposed=True)


@defop("conv2d_weight_grad", saves_inputs=(0, 1))
def _conv2d_weight_grad(xp, x, g, cols=None, *, kernel, stride, padding, dilation, groups,
                        with_bias=False):  # fmt: skip
    """Gradient of ``conv2d(x, w)`` in ``w`` for the output gradient ``g`` (N, O, OH, OW);
    ``cols``, when given, are the columns of ``x`` (kept from the forward). With
    ``with_bias`` the result is flat: the weight gradient's values, then the bias gradient
    (``g`` summed over N, OH, OW), from the same pass over ``g``."""
    n, c = x.shape[:2]
    o, oh, ow = g.shape[1], g.shape[2], g.shape[3]
    kh, kw = kernel
    w_shape = (o, c // groups, kh, kw)
    chunks = _chunks(n, c * kh * kw, oh * ow)
    if cols is None and uses_direct(x.shape, w_shape):
        geom = (kernel, stride, padding, dilation, groups)
        gw, gb = _direct_weight_grad(xp, x, g, geom, chunks, with_bias)
    elif cols is not None:
        gw, gb = _gemm_weight_grad(xp, cols, g, groups, with_bias)
    elif r := kernels.implicit_weight_grad(
        x, g, kernel, stride, padding, dilation, with_bias, groups
    ):
        gw, gb = r
    else:
        gw, gb = None, None
        for a, e in chunks:
            cols = _im2col(xp, x[a:e], kernel, stride, padding, dilation, (oh, ow), groups)
            pw, pb = _gemm_weight_grad(xp, cols, g[a:e], groups, with_bias)
            gw, gb = (pw, pb) if gw is None else (gw + pw, None if gb is None else gb + pb)
    gw = gw.reshape(w_shape)
    return gw if gb is None else xp.concatenate([gw.reshape(-1), gb])


def _weight_and_bias(flat, w_shape):
    """The weight and bias gradients in the flat result of ``conv2d_weight_grad``."""
    k = math.prod(w_shape)
    return reshape(slice_dim(flat, 0, 0, k), w_shape), slice_dim(flat, 0, k, k + w_shape[0])


@_conv2d_weight_grad.defgrad
def _(ctx, v):
    x, g, *cols = ctx.inputs  # the columns are x's: x's gradient covers them
    need_x, need_g = ctx.needs_input_grad[:2]
    opts = _opts(ctx)
    vb = None
    if ctx.attrs.get("with_bias"):
        v, vb = _weight_and_bias(
            v, (g.shape[1], x.shape[1] // opts["groups"]) + ctx.attrs["kernel"]
        )
    gx = _conv_transpose2d(g, v, None, out_hw=tuple(x.shape[2:]), **opts) if need_x else None
    gg = _conv2d(x, v, vb, out_hw=tuple(g.shape[2:]), **opts) if need_g else None
    return (gx, gg) + (None,) * len(cols)


# -- argument checking ----------------------------------------------------------------------
def _onnx_pads(padding):
    (pt, pb), (pl, pr) = padding
    return [pt, pl, pb, pr]


@_conv2d.defonnx
def _(g, x, w, b, cols=None, *, stride, padding, dilation, groups, out_hw, relu=False):
    y = g.op(
        "Conv", x, w, b, strides=list(stride), pads=_onnx_pads(padding),
        dilations=list(dilation), group=groups,
    )  # fmt: skip
    full = [
        (i + lo + hi - d * (k - 1) - 1) // s + 1
        for i, (lo, hi), d, k, s in zip(x.shape[2:], padding, dilation, w.shape[2:], stride)
    ]
    if full != list(out_hw):  # out_hw may stop short of the last windows (an adjoint's size)
        y = g.slice(y, [2, 3], [0, 0], list(out_hw))
    return g.op("Relu", y) if relu else y


@_conv_transpose2d.defonnx
def _(g, x, w, b, *, stride, padding, dilation, groups, out_hw):
    (pt, pb), (pl, pr) = padding
    kh, kw = w.shape[2:]
    ends, rest = [], []  # reach out_hw by trimming less at the end, then by zero rows
    for i, o, s, d, k, lo, hi in zip(
        x.shape[2:], out_hw, stride, dilation, (kh, kw), (pt, pl), (pb, pr)
    ):
        extra = o - (s * (i - 1) + d * (k - 1) + 1 - lo - hi)
        ends.append(max(hi - extra, 0))
        rest.append(max(extra - hi, 0))
    attrs = dict(strides=list(stride), dilations=list(dilation), group=groups)
    if not any(rest):
        return g.op("ConvTranspose", x, w, b, pads=[pt, pl] + ends, **attrs)
    y = g.op("ConvTranspose", x, w, pads=[pt, pl] + ends, **attrs)
    y = g.op("Pad", y, g.ints([0, 0, 0, 0, 0, 0] + rest), g.scalar(0, y))
    return y if b is None else g.op("Add", y, g.reshape(b, (1, -1, 1, 1)))


@_conv2d_weight_grad.defonnx
def _(g, x, dy, cols=None, *, kernel, stride, padding, dilation, groups, with_bias=False):
    # gw[o, c] = conv(x[:, c] as a batch of images, dy[:, o] as filters): strides and
    # dilations swap roles; the result can overhang the kernel by up to stride - 1
    kh, kw = kernel
    xt = g.op("Transpose", x, perm=[1, 0, 2, 3])  # (C, N, H, W)
    dyt = g.op("Transpose", dy, perm=[1, 0, 2, 3])  # (O, N, OH, OW)
    cg, og = x.shape[1] // groups, dy.shape[1] // groups
    parts = []
    for q in range(groups):
        xs = xt if groups == 1 else g.slice(xt, [0], [q * cg], [(q + 1) * cg])
        ds = dyt if groups == 1 else g.slice(dyt, [0], [q * og], [(q + 1) * og])
        full = g.op(
            "Conv", xs, ds, strides=list(dilation), dilations=list(stride),
            pads=_onnx_pads(padding),
        )  # fmt: skip
        part = g.slice(full, [2, 3], [0, 0], [kh, kw])
        parts.append(g.op("Transpose", part, perm=[1, 0, 2, 3]))
    gw = parts[0] if groups == 1 else g.op("Concat", *parts, axis=0)
    if not with_bias:
        return gw
    gb = g.op("ReduceSum", dy, g.ints([0, 2, 3]), keepdims=0)
    return g.op("Concat", g.reshape(gw, (-1,)), gb, axis=0)


def _ints(name: str, arg: str, value: Any, nd: int, low: int) -> tuple[int, ...]:
    vals = (value,) * nd if isinstance(value, int) else tuple(value)
    if len(vals) == 1 and nd > 1:
        vals = vals * nd
    if len(vals) != nd or not all(isinstance(v, int) for v in vals):
        raise ShapeError(name, f"{arg} must be an int or a tuple of {nd} ints, got {value!r}")
    if any(v < low for v in vals):
        raise ShapeError(name, f"{arg} must be >= {low}, got {value!r}")
    return vals


def _check_tensors(name: str, input: Tensor, weight: Tensor, bias: Any, nd: int) -> None:
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{name}: input and weight must be tensors")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(
            name,
            f"expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, "
            f"got input of shape {tuple(input.shape)}",
        )
    if weight.ndim != nd + 2:
        raise ShapeError(
            name, f"expected a {nd + 2}-D weight, got weight of shape {tuple(weight.shape)}"
        )
    dt = input._data.dtype
    if dt.kind != "f":
        raise DTypeError(name, f"expected a floating-point input, got dtype {input.dtype}")
    for what, t in (("weight", weight), ("bias", bias)):
        if isinstance(t, Tensor) and t._data.dtype != dt:
            raise DTypeError(
                name,
                f"input dtype {input.dtype} and {what} dtype {t.dtype} differ; cast one of "
                f"them (e.g. {what}.to(input.dtype))",
            )


def _check_bias(name: str, bias: Any, channels: int) -> None:
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (channels,)):
        shape = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
        raise ShapeError(
            name, f"expected a bias of shape ({channels},) (one per output channel), got {shape}"
        )


def _padding(name, padding, kernel, stride, dilation, nd):
    """PyTorch's ``padding`` (int, tuple, 'valid' or 'same') -> ((lo, hi), ...) per dim."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * nd
        if padding != "same":
            raise ShapeError(
                name, f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}"
            )
        if any(s != 1 for s in stride):
            raise ShapeError(name, "padding='same' is not supported for strided convolutions")
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return tuple((p, p) for p in _ints(name, "padding", padding, nd, 0))


def _to_2d(nd, x, w, stride, padding, dilation):
    """1-D convolution arguments as 2-D ones with a height of 1."""
    if nd == 2:
        return x, w, stride, padding, dilation
    x = reshape(x, (x.shape[0], x.shape[1], 1, x.shape[2]))
    w = reshape(w, (w.shape[0], w.shape[1], 1, w.shape[2]))
    return x, w, (1,) + stride, ((0, 0),) + padding, (1,) + dilation


def _conv(name, nd, input, weight, bias, stride, padding, dilation, groups):
    _check_tensors(name, input, weight, bias, nd)
    batched = input.ndim == nd + 2
    x = input if batched else reshape(input, (1,) + tuple(input.shape))
    if not isinstance(groups, int) or groups < 1:
        raise ShapeError(name, f"groups must be a positive int, got {groups!r}")
    stride = _ints(name, "stride", stride, nd, 1)
    dilation = _ints(name, "dilation", dilation, nd, 1)
    o, cg = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    c = x.shape[1]
    if cg * groups != c:
        raise ShapeError(
            name,
            f"expected input of shape {tuple(input.shape)} to have {cg * groups} channels "
            f"(weight of shape {tuple(weight.shape)}, groups={groups}), but got {c} channels",
        )
    if o % groups:
        raise ShapeError(
            name,
            f"out_channels {o} (weight of shape {tuple(weight.shape)}) must be divisible "
            f"by groups={groups}",
        )
    _check_bias(name, bias, o)
    pads = _padding(name, padding, kernel, stride, dilation, nd)
    out = []
    for size, k, s, d, (lo, hi) in zip(x.shape[2:], kernel, stride, dilation, pads):
        span = d * (k - 1) + 1
        if size + lo + hi < span:
            raise ShapeError(
                name,
                f"padded input size {size + lo + hi} is smaller than the (dilated) kernel size "
                f"{span}: input of shape {tuple(input.shape)}, weight of shape "
                f"{tuple(weight.shape)}, padding {padding!r}, dilation {dilation}",
            )
        out.append((size + lo + hi - span) // s + 1)
    x4, w4, stride, pads, dilation = _to_2d(nd, x, weight, stride, pads, dilation)
    out_hw = tuple(out) if nd == 2 else (1,) + tuple(out)
    opts = dict(stride=stride, padding=pads, dilation=dilation, groups=groups, out_hw=out_hw)
    cols = ()  # the columns, kept for the weight gradient (see conv_gemm)
    if (
        weight.requires_grad
        and state.grad_enabled
        and not uses_implicit(x4._data, w4.shape, stride, dilation, groups)
        and keeps_columns(x4.shape, w4.shape, out_hw, x4._data.dtype, _COLS_LIMIT)
    ):
        cols = (_columns_op(x4, kernel=tuple(w4.shape[2:]), **_geometry(opts)),)
    y = _conv2d(x4, w4, bias, *cols, **opts)
    shape = (x.shape[0], o) + tuple(out)
    if nd == 1:
        y = reshape(y, shape)
    return y if batched else reshape(y, shape[1:])


def _conv_transpose(name, nd, input, weight, bias, stride, padding, output_padding, groups, dil):
    _check_tensors(name, input, weight, bias, nd)
    batched = input.ndim == nd + 2
    x = input if batched else reshape(input, (1,) + tuple(input.shape))
    if not isinstance(groups, int) or groups < 1:
        raise ShapeError(name, f"groups must be a positive int, got {groups!r}")
    stride = _ints(name, "stride", stride, nd, 1)
    dil = _ints(name, "dilation", dil, nd, 1)
    if isinstance(padding, str):
        raise ShapeError(name, f"padding must be an int or a tuple of ints, got {padding!r}")
    pad = _ints(name, "padding", padding, nd, 0)
    opad = _ints(name, "output_padding", output_padding, nd, 0)
    i, og = weight.shape[:2]
    kernel = tuple(weight.shape[2:])
    if x.shape[1] != i:
        raise ShapeError(
            name,
            f"expected input of shape {tuple(input.shape)} to have {i} channels "
            f"(weight of shape {tuple(weight.shape)}), but got {x.shape[1]} channels",
        )
    if i % groups:
        raise ShapeError(
            name,
            f"in_channels {i} (weight of shape {tuple(weight.shape)}) must be divisible "
            f"by groups={groups}",
        )
    _check_bias(name, bias, og * groups)
    out = []
    for size, k, s, d, p, op in zip(x.shape[2:], kernel, stride, dil, pad, opad):
        if op >= s and op >= d:
            raise ShapeError(
                name,
                f"output_padding {output_padding!r} must be smaller than either stride "
                f"{stride} or dilation {dil}",
            )
        n_out = (size - 1) * s - 2 * p + d * (k - 1) + op + 1
        if n_out <= 0:
            raise ShapeError(
                name,
                f"the output size would be {n_out} (not positive) for input of shape "
                f"{tuple(input.shape)}, weight of shape {tuple(weight.shape)}, padding {padding!r}",
            )
        out.append(n_out)
    pads = tuple((p, p) for p in pad)
    x4, w4, stride, pads, dil = _to_2d(nd, x, weight, stride, pads, dil)
    out_hw = tuple(out) if nd == 2 else (1,) + tuple(out)
    y = _conv_transpose2d(
        x4, w4, bias, stride=stride, padding=pads, dilation=dil, groups=groups, out_hw=out_hw
    )
    shape = (x.shape[0], og * groups) + tuple(out)
    if nd == 1:
        y = reshape(y, shape)
    return y if batched else reshape(y, shape[1:])


# -- public functions -----------------------------------------------------------------------
def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of ``input`` (N, C, H, W) or (C, H, W) with ``weight``
    (out_channels, C/groups, kh, kw), as ``torch.nn.functional.conv2d``.

    ``padding`` is an int, a pair, ``'valid'`` (none) or ``'same'`` (output size = input
    size; stride 1 only; extra padding goes to the bottom/right when the total is odd).

    Example:
        >>> x = ember.ones(2, 3, 8, 8)
        >>> F.conv2d(x, ember.ones(4, 3, 3, 3), stride=2, padding=1).shape
        (2, 4, 4, 4)
        >>> F.conv2d(x, ember.ones(6, 1, 3, 3), padding="same", groups=3).shape
        (2, 6, 8, 8)
    """
    return _conv("conv2d", 2, input, weight, bias, stride, padding, dilation, groups)


def conv1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """1-D cross-correlation of ``input`` (N, C, L) or (C, L) with ``weight``
    (out_channels, C/groups, k), as ``torch.nn.functional.conv1d``.

    Example:
        >>> F.conv1d(ember.ones(2, 3, 10), ember.ones(4, 3, 3), padding=1).shape
        (2, 4, 10)
    """
    return _conv("conv1d", 1, input, weight, bias, stride, padding, dilation, groups)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """2-D transposed convolution ("deconvolution") of ``input`` (N, C_in, H, W) with
    ``weight`` (C_in, C_out/groups, kh, kw), as ``torch.nn.functional.conv_transpose2d``.

    The output size is ``(H - 1) * stride - 2 * padding + dilation * (k - 1) +
    output_padding + 1`` per spatial dimension.

    Example:
        >>> F.conv_transpose2d(ember.ones(1, 4, 5, 5), ember.ones(4, 2, 3, 3), stride=2).shape
        (1, 2, 11, 11)
    """
    return _conv_transpose(
        "conv_transpose2d",
        2,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )


def conv_transpose1d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """1-D transposed convolution of ``input`` (N, C_in, L) with ``weight``
    (C_in, C_out/groups, k), as ``torch.nn.functional.conv_transpose1d``.

    Example:
        >>> F.conv_transpose1d(ember.ones(1, 4, 5), ember.ones(4, 2, 3), stride=2).shape
        (1, 2, 11)
    """
    return _conv_transpose(
        "conv_transpose1d",
        1,
        input,
        weight,
        bias,
        stride,
        padding,
        output_padding,
        groups,
        dilation,
    )

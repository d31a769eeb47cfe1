"""Pooling: max_pool1d/2d, avg_pool1d/2d (and, from ``adaptive_pool.py``, the adaptive pools).

Windows are never materialised pixel by pixel: a pool is a loop over the ``kh * kw`` kernel
positions, each a strided slice of the (padded, when needed) input combined with one
vectorized call. Without padding the input itself is sliced (the common ``kernel_size ==
stride`` case copies nothing; NumPy's ``reshape(..., k, ..., k).max(axis=(3, 5))`` is
several times slower than the four strided ``maximum`` calls).

Float32/float64 NumPy arrays go to the C kernels (``ember.kernels``: max and average
pooling, forward and backward); the NumPy code here is the reference path they are tested
against, and serves every other case.

Max pooling sends each window's gradient to its first maximum (PyTorch's choice); its
backward is an op whose own derivative selects the incoming gradient at those same
positions, so the chain stays differentiable. 1-D pools are 2-D pools of height 1.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.max_pool2d(ember.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
    [[[[5.0, 7.0], [13.0, 15.0]]]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import kernels
from ...errors import DTypeError, ShapeError
from ...kernels import cuda
from ...tensor import Tensor
from ..registry import defop
from ..shape import reshape
from .conv import _ints

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d"]


# -- window geometry (xp arrays) ------------------------------------------------------------
def _lowest(xp, dtype):
    return -xp.inf if dtype.kind == "f" else xp.iinfo(dtype).min


def _source_shape(in_hw, kernel, stride, padding, dilation, out_hw):
    """Height and width of the padded array every window fits in (None: the input itself)."""
    sizes = []
    for size, k, s, p, d, o in zip(in_hw, kernel, stride, padding, dilation, out_hw):
        sizes.append(max((o - 1) * s + d * (k - 1) + 1, size + p))
    if padding == (0, 0) and tuple(sizes) == tuple(in_hw):
        return None
    return tuple(sizes)


def _source(xp, x, geom, fill):
    """``x`` (N, C, H, W), padded with ``fill`` so that every window lies inside it."""
    kernel, stride, padding, dilation, out_hw = geom
    hw = _source_shape(x.shape[2:], kernel, stride, padding, dilation, out_hw)
    if hw is None:
        return x
    (ph, pw), (h, w) = padding, x.shape[2:]
    buf = xp.full(x.shape[:2] + hw, fill, dtype=x.dtype)
    buf[:, :, ph : ph + h, pw : pw + w] = x
    return buf


def _crop(buf, padding, in_hw):
    (ph, pw), (h, w) = padding, in_hw
    if buf.shape[2:] == tuple(in_hw):
        return buf
    return buf[:, :, ph : ph + h, pw : pw + w]


def _taps(src, geom):
    """The strided slice of ``src`` read by each kernel position, in row-major order."""
    (kh, kw), (sh, sw), _, (dh, dw), (oh, ow) = geom
    return [
        src[
            :, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw
        ]
        for i in range(kh)
        for j in range(kw)
    ]


def _overlaps(geom) -> bool:
    kernel, stride, _, dilation, _ = geom
    return any(s < d * (k - 1) + 1 for k, s, d in zip(kernel, stride, dilation))


def _grad_buffer(xp, shape, dtype, geom):
    """Zeros for scattering window gradients into; uninitialised when the windows tile the
    array exactly (every element is written once)."""
    kernel, stride, padding, dilation, out_hw = geom
    tiles = padding == (0, 0) and dilation == (1, 1) and stride == kernel
    if tiles and tuple(shape[2:]) == tuple(k * o for k, o in zip(kernel, out_hw)):
        return xp.empty(shape, dtype=dtype)
    return xp.zeros(shape, dtype=dtype)


def _first_max_masks(xp, taps, m):
    """One bool mask per kernel position: where that position is its window's first max
    (the first NaN of a window whose max is NaN, as the C kernels choose)."""
    taken = None
    nan_max = xp.isnan(m) if m.dtype.kind == "f" else None
    for k, v in enumerate(taps):
        if k == len(taps) - 1:  # the rest
            yield xp.ones(m.shape, dtype=bool) if taken is None else ~taken
            return
        hit = v == m
        if nan_max is not None:
            hit |= nan_max & xp.isnan(v)
        if taken is not None:
            hit = xp.greater(hit, taken)  # hit and not taken
        taken = hit if taken is None else taken | hit
        yield hit


def _geom(a):
    return (a["kernel_size"], a["stride"], a["padding"], a["dilation"], a["out_hw"])


# -- max pooling primitives -----------------------------------------------------------------
@defop("max_pool2d", onnx="MaxPool", saves_output=True)
def _max_pool2d(xp, x, *, kernel_size, stride, padding, dilation, out_hw):
    """Max over each window of ``x`` (N, C, H, W)."""
    y = kernels.max_pool2d_forward(x, kernel_size, stride, padding, dilation, out_hw)
    if y is not None:
        return y
    geom = (kernel_size, stride, padding, dilation, out_hw)
    if cuda.is_cupy(x):  # one CUDA kernel instead of a maximum per kernel position
        y = cuda.max_pool2d_forward(x, *geom)
        if y is not None:
            return y
    taps = _taps(_source(xp, x, geom, _lowest(xp, x.dtype)), geom)
    out = taps[0].copy()
    for v in taps[1:]:
        xp.maximum(out, v, out=out)
    return out


@_max_pool2d.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (_max_pool2d_backward(g, x, ctx.output, **ctx.attrs),)


@_max_pool2d.defonnx
def _(g, x, *, kernel_size, stride, padding, dilation, out_hw):
    attrs = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation)
    pads, _ = _onnx_geom(x.shape[2:], dict(attrs, out_hw=out_hw))
    xs = x if x.dtype.kind == "f" else g.cast(x, "float64")  # no integer MaxPool in ORT
    return g.op(
        "MaxPool", xs, kernel_shape=list(kernel_size), strides=list(stride), pads=pads,
        dilations=list(dilation),
    )  # fmt: skip


@defop("max_pool2d_backward")
def _max_pool2d_backward(xp, g, x, m, **attrs):
    """Gradient of ``max_pool2d``: ``g`` sent to each window's first max of ``x``
    (``m`` is the pooled output)."""
    geom = _geom(attrs)
    dx = kernels.max_pool2d_backward(g, x, *geom)
    if dx is None and cuda.is_cupy(x):
        dx = cuda.max_pool2d_backward(g, x, *geom)
    if dx is not None:
        return dx
    src = _source(xp, x, geom, _lowest(xp, x.dtype))
    gsrc = _grad_buffer(xp, src.shape, g.dtype, geom)
    overlap = _overlaps(geom)
    for mask, gv in zip(_first_max_masks(xp, _taps(src, geom), m), _taps(gsrc, geom)):
        if overlap:
            gv += g * mask
        else:
            xp.multiply(g, mask, out=gv)
    return _crop(gsrc, geom[2], x.shape[2:])


@_max_pool2d_backward.defgrad
def _(ctx, u):
    _, x, m = ctx.inputs
    return _max_pool2d_select(u, x, m, **ctx.attrs), None, None


@_max_pool2d_backward.defonnx
def _(g, dy, x, m, **attrs):  # each window's gradient added at its first max
    g.need_opset(16, "max pooling's gradient (ScatterElements with reduction)")
    flat = g.op("Reshape", g.zeros(x.shape, dy.dtype), g.ints([-1]))
    idx = _maxpool_indices(g, x, attrs)
    out = g.op(
        "ScatterElements", flat, idx, g.op("Reshape", dy, g.ints([-1])), axis=0, reduction="add"
    )
    return g.op("Reshape", out, g.op("Shape", x))


@defop("max_pool2d_select")
def _max_pool2d_select(xp, u, x, m, **attrs):
    """``u`` (shaped like ``x``) read at each window's first max of ``x``: the adjoint of
    ``max_pool2d_backward`` in its gradient."""
    geom = _geom(attrs)
    taps = _taps(_source(xp, x, geom, _lowest(xp, x.dtype)), geom)
    out = xp.zeros(m.shape, dtype=u.dtype)
    for mask, uv in zip(_first_max_masks(xp, taps, m), _taps(_source(xp, u, geom, 0), geom)):
        out += uv * mask
    return out


@_max_pool2d_select.defgrad
def _(ctx, g):
    _, x, m = ctx.inputs
    return _max_pool2d_backward(g, x, m, **ctx.attrs), None, None


@_max_pool2d_select.defonnx
def _(g, u, x, m, **attrs):
    picked = g.op(
        "GatherElements", g.op("Reshape", u, g.ints([-1])), _maxpool_indices(g, x, attrs), axis=0
    )
    return g.op("Reshape", picked, g.op("Shape", m))


@defop("max_pool2d_indices")
def _max_pool2d_indices(xp, x, m, **attrs):
    """Flat ``h * W + w`` index of each window's first max (int64, as PyTorch returns)."""
    geom = _geom(attrs)
    out = kernels.max_pool2d_forward(x, *geom, return_indices=True)
    if out is not None:
        return out[1]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = geom
    width = x.shape[3]
    base = (xp.arange(oh) * sh - ph)[:, None] * width + (xp.arange(ow) * sw - pw)[None, :]
    idx = xp.zeros(m.shape, dtype=xp.int64)
    taps = _taps(_source(xp, x, geom, _lowest(xp, x.dtype)), geom)
    for k, mask in enumerate(_first_max_masks(xp, taps, m)):
        i, j = divmod(k, kw)
        idx += mask * (base + (i * dh * width + j * dw))
    return idx


@_max_pool2d_indices.defonnx
def _(g, x, m, **attrs):  # per (sample, channel) plane: h * W + w
    h, w = x.shape[2:]
    idx = g.op("Mod", _maxpool_indices(g, x, attrs), g.scalar(h * w, "int64"))
    return g.op("Reshape", idx, g.op("Shape", m))


# -- average pooling primitives -------------------------------------------------------------
def _avg_divisor(in_hw, attrs):
    """1 / window size per output position: a float, or an (OH, OW) array."""
    if attrs["divisor_override"]:
        return 1.0 / attrs["divisor_override"]
    counts = []
    for size, k, s, p, o in zip(
        in_hw, attrs["kernel_size"], attrs["stride"], attrs["padding"], attrs["out_hw"]
    ):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, size + p)
        if attrs["count_include_pad"]:
            counts.append(end - start)
        else:
            counts.append(np.minimum(end, size) - np.maximum(start, 0))
    div = np.maximum(counts[0][:, None] * counts[1][None, :], 1)
    if div.size == 0:
        return 1.0
    if (div == div.flat[0]).all():
        return 1.0 / int(div.flat[0])
    return 1.0 / div


# -- ONNX lowerings ------------------------------------------------------------------------------
def _onnx_geom(in_hw, attrs):
    """ONNX ``pads`` (begin, begin, end, end) whose floor-mode windows are exactly the op's
    (a ceil-mode overhang becomes end padding), and the padded extent per dimension."""
    kernel, stride, padding, dilation, out_hw = _geom(attrs)
    ends, extents = [], []
    for size, k, s, p, d, o in zip(in_hw, kernel, stride, padding, dilation, out_hw):
        extent = (o - 1) * s + d * (k - 1) + 1
        ends.append(max(extent - size - p, 0))
        extents.append(extent)
    return [padding[0], padding[1], ends[0], ends[1]], extents


def _maxpool_indices(g, x, attrs):
    """ONNX MaxPool's flat indices (over N*C*H*W) of each window's first max."""
    pads, _ = _onnx_geom(x.shape[2:], attrs)
    _, idx = g.op(
        "MaxPool", x, kernel_shape=list(attrs["kernel_size"]), strides=list(attrs["stride"]),
        pads=pads, dilations=list(attrs["dilation"]), outputs=2, dtypes=[x.dtype, np.int64],
    )  # fmt: skip
    return g.op("Reshape", idx, g.ints([-1]), dtype=np.int64)


def _avg_kernel_args(geom, attrs):
    """The C kernels' arguments after the array: kernel, stride, padding, out_hw, the
    divisor rules."""
    kernel, stride, padding, _, out_hw = geom
    return kernel, stride, padding, out_hw, attrs["count_include_pad"], attrs["divisor_override"]


def _scale(xp, a, inv):
    if isinstance(inv, float):
        return a * inv if a.dtype.kind == "f" else (a * inv).astype(a.dtype)
    inv = xp.asarray(inv, dtype=a.dtype if a.dtype.kind == "f" else None)
    return a * inv if a.dtype.kind == "f" else (a * inv).astype(a.dtype)


@defop("avg_pool2d", onnx="AveragePool", saves_inputs=False)
def _avg_pool2d(xp, x, **attrs):
    """Mean over each window of ``x`` (N, C, H, W) (PyTorch's divisor rules)."""
    geom = _geom(attrs)
    y = kernels.avg_pool2d_forward(x, *_avg_kernel_args(geom, attrs))
    if y is not None:
        return y
    taps = _taps(_source(xp, x, geom, 0), geom)
    out = taps[0].copy()
    for v in taps[1:]:
        out += v
    return _scale(xp, out, _avg_divisor(x.shape[2:], attrs))


@_avg_pool2d.defgrad
def _(ctx, g):
    return (_avg_pool2d_backward(g, in_hw=tuple(ctx.input_shape(0)[2:]), **ctx.attrs),)


@_avg_pool2d.defonnx
def _(g, x, **attrs):
    pads, _ = _onnx_geom(x.shape[2:], attrs)
    x = x if x.dtype.kind == "f" else g.cast(x, "float32")  # truncated back to the int type
    kernel = list(attrs["kernel_size"])
    if not attrs["divisor_override"] and pads[2:] == list(attrs["padding"]):
        return g.op(
            "AveragePool", x, kernel_shape=kernel, strides=list(attrs["stride"]), pads=pads,
            count_include_pad=int(bool(attrs["count_include_pad"])),
        )  # fmt: skip
    # window sums (zero padding), then PyTorch's divisor per output position
    sums = g.op(
        "AveragePool", x, kernel_shape=kernel, strides=list(attrs["stride"]), pads=pads,
        count_include_pad=1,
    )  # fmt: skip
    sums = g.op("Mul", sums, float(kernel[0] * kernel[1]))
    inv = np.asarray(_avg_divisor(x.shape[2:], attrs), dtype=x.dtype)
    return g.op("Mul", sums, g.const(inv))


@defop("avg_pool2d_backward", saves_inputs=False)
def _avg_pool2d_backward(xp, g, *, in_hw, **attrs):
    """Gradient of ``avg_pool2d``: ``g`` spread evenly over each window."""
    geom = _geom(attrs)
    dx = kernels.avg_pool2d_backward(g, in_hw, *_avg_kernel_args(geom, attrs))
    if dx is not None:
        return dx
    gd = _scale(xp, g, _avg_divisor(in_hw, attrs))
    hw = _source_shape(in_hw, *geom)
    gsrc = _grad_buffer(xp, g.shape[:2] + (hw or tuple(in_hw)), g.dtype, geom)
    overlap = _overlaps(geom)
    for gv in _taps(gsrc, geom):
        if overlap:
            gv += gd
        else:
            gv[...] = gd
    return _crop(gsrc, geom[2], in_hw)


@_avg_pool2d_backward.defgrad
def _(ctx, u):
    attrs = dict(ctx.attrs)
    del attrs["in_hw"]
    return (_avg_pool2d(u, **attrs),)


@_avg_pool2d_backward.defonnx
def _(g, dy, *, in_hw, **attrs):  # the adjoint: a depthwise transposed conv with ones
    pads, extents = _onnx_geom(in_hw, attrs)
    kh, kw = attrs["kernel_size"]
    inv = np.asarray(_avg_divisor(in_hw, attrs), dtype=dy.dtype)
    scaled = g.op("Mul", dy, g.const(inv))
    c = dy.shape[1]
    extra = [size + p - e for size, p, e in zip(in_hw, attrs["padding"], extents)]
    return g.op(
        "ConvTranspose", scaled, g.const(np.ones((c, 1, kh, kw), dtype=dy.dtype)),
        strides=list(attrs["stride"]), pads=pads, group=c,
        output_padding=[max(e, 0) for e in extra],
    )  # fmt: skip


# -- argument checking ----------------------------------------------------------------------
def _batched(name: str, input: Tensor, nd: int) -> tuple[Tensor, bool]:
    """``input`` as (N, C, H, W) (or (N, C, 1, L) for 1-D pools), and whether it had N."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a tensor, got {type(input).__name__}")
    if input.ndim not in (nd + 1, nd + 2):
        raise ShapeError(
            name,
            f"expected a {nd + 1}-D (unbatched) or {nd + 2}-D (batched) input, "
            f"got input of shape {tuple(input.shape)}",
        )
    batched = input.ndim == nd + 2
    shape = tuple(input.shape) if batched else (1,) + tuple(input.shape)
    if nd == 1:
        shape = shape[:2] + (1,) + shape[2:]
    return reshape(input, shape), batched


def _unbatch(y: Tensor, nd: int, batched: bool) -> Tensor:
    shape = tuple(y.shape)
    if nd == 1:
        shape = shape[:2] + shape[3:]
    return reshape(y, shape if batched else shape[1:])


def _pool_geom(name, nd, input, x, kernel_size, stride, padding, dilation, ceil_mode):
    """(kernel, stride, padding, dilation, output size) as 2-D tuples, PyTorch's checks."""
    kernel = _ints(name, "kernel_size", kernel_size, nd, 1)
    stride = kernel if stride is None or stride == [] else _ints(name, "stride", stride, nd, 1)
    padding = _ints(name, "padding", padding, nd, 0)
    dilation = _ints(name, "dilation", dilation, nd, 1)
    out = []
    for size, k, s, p, d in zip(x.shape[2 + (2 - nd) :], kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        if p > k // 2:
            raise ShapeError(
                name,
                f"pad should be at most half of the kernel size, got padding {padding} "
                f"and kernel_size {kernel}",
            )
        o = (size + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= size + p:
            o -= 1
        if o <= 0:
            raise ShapeError(
                name,
                f"input of shape {tuple(input.shape)} is too small for kernel_size {kernel} "
                f"(padding {padding}, dilation {dilation}): the output size would be {o}",
            )
        out.append(o)
    if nd == 1:
        return (1,) + kernel, (1,) + stride, (0,) + padding, (1,) + dilation, (1,) + tuple(out)
    return kernel, stride, padding, dilation, tuple(out)


def _max_pool(name, nd, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, batched = _batched(name, input, nd)
    if input._data.dtype.kind not in "fiu":
        raise DTypeError(name, f"expected a numeric input, got dtype {input.dtype}")
    k, s, p, d, o = _pool_geom(
        name, nd, input, x, kernel_size, stride, padding, dilation, ceil_mode
    )
    attrs = {"kernel_size": k, "stride": s, "padding": p, "dilation": d, "out_hw": o}
    y = _max_pool2d(x, **attrs)
    if not return_indices:
        return _unbatch(y, nd, batched)
    idx = _max_pool2d_indices(x, y.detach(), **attrs)
    return _unbatch(y, nd, batched), _unbatch(idx, nd, batched)


def _avg_pool(name, nd, input, kernel_size, stride, padding, ceil_mode, count_include_pad, div):
    x, batched = _batched(name, input, nd)
    if input._data.dtype.kind not in "fiu":
        raise DTypeError(name, f"expected a numeric input, got dtype {input.dtype}")
    if div is not None and (not isinstance(div, int) or div == 0):
        raise ShapeError(name, f"divisor_override must be a non-zero int, got {div!r}")
    k, s, p, d, o = _pool_geom(name, nd, input, x, kernel_size, stride, padding, 1, ceil_mode)
    y = _avg_pool2d(
        x,
        kernel_size=k,
        stride=s,
        padding=p,
        dilation=d,
        out_hw=o,
        count_include_pad=bool(count_include_pad),
        divisor_override=div,
    )
    return _unbatch(y, nd, batched)


# -- public functions -----------------------------------------------------------------------
def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """2-D max pooling over ``input`` (N, C, H, W) or (C, H, W), as
    ``torch.nn.functional.max_pool2d`` (``stride`` defaults to ``kernel_size``; padding
    counts as -inf). With ``return_indices`` also returns each max's flat ``h * W + w``
    index. The gradient goes to the first maximum of each window.

    Example:
        >>> x = ember.arange(16.0).reshape(1, 1, 4, 4)
        >>> F.max_pool2d(x, 3, stride=1, padding=1).shape
        (1, 1, 4, 4)
        >>> F.max_pool2d(x, 2, return_indices=True)[1].tolist()
        [[[[5, 7], [13, 15]]]]
    """
    return _max_pool(
        "max_pool2d", 2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def max_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    """1-D max pooling over ``input`` (N, C, L) or (C, L), as
    ``torch.nn.functional.max_pool1d``.

    Example:
        >>> F.max_pool1d(ember.tensor([[[1.0, 3.0, 2.0, 5.0, 4.0]]]), 2).tolist()
        [[[3.0, 5.0]]]
    """
    return _max_pool(
        "max_pool1d", 1, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling over ``input`` (N, C, H, W) or (C, H, W), as
    ``torch.nn.functional.avg_pool2d``: zero padding counts in the divisor unless
    ``count_include_pad=False``; ``divisor_override`` replaces the divisor.

    Example:
        >>> F.avg_pool2d(ember.arange(16.0).reshape(1, 1, 4, 4), 2).tolist()
        [[[[2.5, 4.5], [10.5, 12.5]]]]
    """
    return _avg_pool(
        "avg_pool2d",
        2,
        input,
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


def avg_pool1d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """1-D average pooling over ``input`` (N, C, L) or (C, L), as
    ``torch.nn.functional.avg_pool1d``.

    Example:
        >>> F.avg_pool1d(ember.tensor([[[1.0, 3.0, 2.0, 6.0]]]), 2).tolist()
        [[[2.0, 4.0]]]
    """
    return _avg_pool(
        "avg_pool1d", 1, input, kernel_size, stride, padding, ceil_mode, count_include_pad, None
    )


# the adaptive pools live beside this file and reuse its primitives
from .adaptive_pool import *  # noqa: E402, F403
from .adaptive_pool import __all__ as _adaptive_all  # noqa: E402

__all__ += _adaptive_all

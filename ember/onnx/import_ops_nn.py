"""Importer ops for neural-network layers: convolutions, pooling, normalizations, softmax,
dropout and the losses (see :mod:`ember.onnx.import_ops` for the conventions).

Convolutions and pools take 1-D and 2-D spatial inputs (ember's primitives); ONNX's
asymmetric and ``auto_pad`` paddings become an explicit pad before a padding-free op.

Example:
    >>> from ember.onnx.import_ops import OPS
    >>> ("", "Conv") in OPS
    True
"""

from __future__ import annotations

import math

import numpy as np

import ember as E

from .import_ops import NodeContext, ints, like, norm_axes, onnx_op

__all__: list[str] = []

F = E.nn.functional


def _spatial(ctx: NodeContext, x, kernel: list[int]) -> tuple[list, list, list, list]:
    """(strides, dilations, pads begin, pads end) with ``auto_pad`` resolved."""
    nd = len(kernel)
    strides = list(ctx.attr("strides") or [1] * nd)
    dil = list(ctx.attr("dilations") or [1] * nd)
    pads = list(ctx.attr("pads") or [0] * (2 * nd))
    auto = ctx.attr("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(nd):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads[i], pads[i + nd] = (small, big) if auto == "SAME_UPPER" else (big, small)
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    return strides, dil, pads[:nd], pads[nd:]


def _pad_spatial(x, begin: list, end: list, value: float = 0.0):
    if not any(begin) and not any(end):
        return x
    flat = []
    for b, e in zip(reversed(begin), reversed(end)):
        flat += [b, e]
    return F.pad(x, flat, value=value)


def _check_nd(ctx: NodeContext, x) -> int:
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise ValueError(f"{ctx.op_type}: only 1-D and 2-D inputs are supported, got rank {x.ndim}")
    return nd


@onnx_op("Conv")
def _(ctx, x, w, b=None):
    nd = _check_nd(ctx, x)
    kernel = list(w.shape[2:])
    strides, dil, lo, hi = _spatial(ctx, x, kernel)
    group = ctx.attr("group", 1)
    if lo == hi:
        pad = lo
    else:
        x, pad = _pad_spatial(x, lo, hi), [0] * nd
    conv = F.conv2d if nd == 2 else F.conv1d
    return like(conv(x, w, b, stride=strides, padding=pad, dilation=dil, groups=group), x)


@onnx_op("ConvTranspose")
def _(ctx, x, w, b=None):
    nd = _check_nd(ctx, x)
    kernel = list(w.shape[2:])
    strides = list(ctx.attr("strides") or [1] * nd)
    dil = list(ctx.attr("dilations") or [1] * nd)
    outpad = list(ctx.attr("output_padding") or [0] * nd)
    group = ctx.attr("group", 1)
    full = [strides[i] * (x.shape[2 + i] - 1) + (kernel[i] - 1) * dil[i] + 1 for i in range(nd)]
    out_shape = ctx.attr("output_shape")
    pads = ctx.attr("pads")
    auto = ctx.attr("auto_pad", "NOTSET")
    if out_shape is not None or (pads is None and auto in ("SAME_UPPER", "SAME_LOWER")):
        target = list(out_shape) if out_shape is not None else [
            x.shape[2 + i] * strides[i] for i in range(nd)
        ]  # fmt: skip
        total = [full[i] + outpad[i] - target[i] for i in range(nd)]
        if auto == "SAME_UPPER":
            lo = [t // 2 for t in total]
        else:
            lo = [t - t // 2 for t in total]
    else:
        pads = list(pads or [0] * (2 * nd))
        lo = pads[:nd]
        target = [full[i] + outpad[i] - pads[i] - pads[i + nd] for i in range(nd)]
    convt = F.conv_transpose2d if nd == 2 else F.conv_transpose1d
    y = convt(x, w, None, stride=strides, padding=0, groups=group, dilation=dil)
    # take the window [lo, lo + target) of y, zero-extended past its end
    ext = [max(lo[i] + target[i] - full[i], 0) for i in range(nd)]
    y = _pad_spatial(y, [0] * nd, ext)
    for i in range(nd):
        y = E.narrow(y, 2 + i, lo[i], target[i])
    if b is not None:
        y = E.add(y, E.reshape(b, (1, -1) + (1,) * nd))
    return like(y, x)


def _pool_setup(ctx: NodeContext, x):
    nd = _check_nd(ctx, x)
    kernel = list(ctx.attr("kernel_shape"))
    strides, dil, lo, hi = _spatial(ctx, x, kernel)
    if ctx.attr("ceil_mode", 0):  # extend the end so that floor mode gives ceil's windows
        for i in range(nd):
            size = x.shape[2 + i] + lo[i] + hi[i]
            span = (kernel[i] - 1) * dil[i] + 1
            out = -(-(size - span) // strides[i]) + 1
            if (out - 1) * strides[i] >= x.shape[2 + i] + lo[i]:
                out -= 1  # the last window must start inside the input or the left padding
            hi[i] += max((out - 1) * strides[i] + span - size, 0)
    return nd, kernel, strides, dil, lo, hi


def _to2d(x, nd: int):
    return E.unsqueeze(x, 2) if nd == 1 else x


def _from2d(y, nd: int):
    return E.squeeze(y, 2) if nd == 1 else y


@onnx_op("MaxPool")
def _(ctx, x):
    nd, kernel, strides, dil, lo, hi = _pool_setup(ctx, x)
    x2 = _to2d(x, nd)
    k2, s2, d2 = ([1] + kernel, [1] + strides, [1] + dil) if nd == 1 else (kernel, strides, dil)
    lo2, hi2 = ([0] + lo, [0] + hi) if nd == 1 else (lo, hi)
    low = -math.inf if x._data.dtype.kind == "f" else np.iinfo(x._data.dtype).min
    xp = _pad_spatial(x2, lo2, hi2, value=low) if (any(lo2) or any(hi2)) else x2
    xf = xp if xp._data.dtype.kind == "f" else E.cast(xp, np.float64)
    want_idx = ctx.n_outputs > 1
    res = F.max_pool2d(xf, k2, stride=s2, padding=0, dilation=d2, return_indices=want_idx)
    y = like(_from2d(res[0] if want_idx else res, nd), x)
    if not want_idx:
        return y
    # ember's indices are per (n, c) plane of the padded input: map to ONNX's flat index
    idx = res[1]
    ph, pw = xp.shape[2], xp.shape[3]
    h, w = x2.shape[2], x2.shape[3]
    r = E.sub(E.floor_divide(idx, pw), lo2[0])
    c = E.sub(E.remainder(idx, pw), lo2[1])
    n, ch = x2.shape[0], x2.shape[1]
    plane = E.reshape(E.mul(E.arange(n * ch), h * w), (n, ch, 1, 1))
    if ctx.attr("storage_order", 0):
        flat = E.add(E.add(E.mul(c, h), r), plane)
    else:
        flat = E.add(E.add(E.mul(r, w), c), plane)
    del ph
    return y, _from2d(flat, nd)


def _window_sum(x, nd, kernel, strides, lo, hi, dil=None):
    """Sums over each (zero-padded, dilated) window of ``x``: a depthwise conv with ones."""
    x = _pad_spatial(x, lo, hi)
    c = x.shape[1]
    ones = E.ones((c, 1) + tuple(kernel), dtype=x.dtype)
    conv = F.conv2d if nd == 2 else F.conv1d
    return conv(x, ones, stride=strides, dilation=dil or [1] * nd, groups=c)


@onnx_op("AveragePool")
def _(ctx, x):
    nd, kernel, strides, dil, lo, hi = _pool_setup(ctx, x)
    sums = _window_sum(x, nd, kernel, strides, lo, hi, dil)
    ones = E.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
    if ctx.attr("count_include_pad", 0):  # padding counts, the ceil-mode overhang does not
        pads = list(ctx.attr("pads") or [0] * (2 * nd))
        _, _, plo, phi = _spatial(ctx, x, kernel)
        inner = _pad_spatial(ones, plo, phi, value=1.0)
        counts = _window_sum(
            inner,
            nd,
            kernel,
            strides,
            [a - b for a, b in zip(lo, plo)],
            [a - b for a, b in zip(hi, phi)],
            dil,
        )
        del pads
    else:
        counts = _window_sum(ones, nd, kernel, strides, lo, hi, dil)
    return like(E.div(sums, counts), x)


@onnx_op("LpPool")
def _(ctx, x):
    nd, kernel, strides, dil, lo, hi = _pool_setup(ctx, x)
    p = float(ctx.attr("p", 2))
    sums = _window_sum(E.pow(E.abs(x), p), nd, kernel, strides, lo, hi, dil)
    return like(E.pow(sums, 1.0 / p), x)


@onnx_op("GlobalAveragePool")
def _(ctx, x):
    return E.mean(x, tuple(range(2, x.ndim)), keepdim=True)


@onnx_op("GlobalMaxPool")
def _(ctx, x):
    return E.amax(x, tuple(range(2, x.ndim)), keepdim=True)


@onnx_op("MaxUnpool", static=(2,))
def _(ctx, x, idx, out_shape=None):
    kernel = list(ctx.attr("kernel_shape"))
    nd = len(kernel)
    strides = list(ctx.attr("strides") or [1] * nd)
    pads = list(ctx.attr("pads") or [0] * (2 * nd))
    spatial = tuple(
        (x.shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[i + nd] for i in range(nd)
    )
    shape = tuple(x.shape[:2]) + spatial  # indices address this default shape
    flat = E.zeros(int(np.prod(shape)), dtype=x.dtype)
    out = E.scatter(flat, 0, E.reshape(like(idx, np.int64), (-1,)), E.reshape(x, (-1,)))
    out = E.reshape(out, shape)
    if out_shape is not None:  # a larger requested shape: zeros after the default one
        extra = [t - s for t, s in zip(ints(out_shape)[2:], spatial)]
        out = _pad_spatial(out, [0] * nd, extra)
    return out


# -- normalizations -------------------------------------------------------------------------
def _channel(v, ndim: int):
    return E.reshape(v, (1, -1) + (1,) * (ndim - 2))


@onnx_op("BatchNormalization")
def _(ctx, x, scale, bias, mean, var):
    eps = ctx.attr("epsilon", 1e-5)
    training = ctx.attr("training_mode", 0) and ctx.n_outputs > 1
    if training:
        axes = (0,) + tuple(range(2, x.ndim))
        bm = E.mean(x, axes)
        bv = E.var(x, axes, correction=0)
        m = ctx.attr("momentum", 0.9)
        use_m, use_v = bm, bv
    else:
        use_m, use_v = mean, var
    y = E.div(E.sub(x, _channel(use_m, x.ndim)), E.sqrt(E.add(_channel(use_v, x.ndim), eps)))
    y = like(E.add(E.mul(y, _channel(scale, x.ndim)), _channel(bias, x.ndim)), x)
    if not training:
        return y
    run_m = E.add(E.mul(mean, m), E.mul(bm, 1 - m))
    run_v = E.add(E.mul(var, m), E.mul(bv, 1 - m))
    return y, like(run_m, x), like(run_v, x)


def _standardize(x, axes: tuple, eps: float, work=None):
    xw = x if work is None else like(x, work)
    mean = E.mean(xw, axes, keepdim=True)
    d = E.sub(xw, mean)
    var = E.mean(E.mul(d, d), axes, keepdim=True)
    inv = E.rsqrt(E.add(var, eps))
    return E.mul(d, inv), mean, inv


@onnx_op("InstanceNormalization")
def _(ctx, x, scale, bias):
    y, _, _ = _standardize(x, tuple(range(2, x.ndim)), ctx.attr("epsilon", 1e-5))
    return like(E.add(E.mul(y, _channel(scale, x.ndim)), _channel(bias, x.ndim)), x)


def _stash(ctx: NodeContext, x):
    from .import_ops import to_numpy_dtype

    st = ctx.attr("stash_type", 1)
    return to_numpy_dtype(st) if x._data.dtype != np.float64 else np.float64


@onnx_op("LayerNormalization")
def _(ctx, x, scale, bias=None):
    axis = ctx.attr("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    y, mean, inv = _standardize(x, axes, ctx.attr("epsilon", 1e-5), _stash(ctx, x))
    y = like(y, x)
    y = E.mul(y, scale)
    if bias is not None:
        y = E.add(y, bias)
    return (like(y, x), like(mean, _stash(ctx, x)), like(inv, _stash(ctx, x)))[: ctx.n_outputs]


@onnx_op("GroupNormalization", since=18)
def _(ctx, x, scale, bias):
    g = ctx.attr("num_groups")
    n, c = x.shape[:2]
    xg = E.reshape(like(x, _stash(ctx, x)), (n, g, -1))
    y, _, _ = _standardize(xg, (2,), ctx.attr("epsilon", 1e-5))
    y = E.reshape(like(y, x), tuple(x.shape))
    if scale.shape[0] == g and g != c:  # opset 18: one scale per group
        scale = E.reshape(E.broadcast_to(E.reshape(scale, (g, 1)), (g, c // g)), (c,))
        bias = E.reshape(E.broadcast_to(E.reshape(bias, (g, 1)), (g, c // g)), (c,))
    return like(E.add(E.mul(y, _channel(scale, x.ndim)), _channel(bias, x.ndim)), x)


@onnx_op("RMSNormalization", since=23)
def _(ctx, x, scale):
    axis = ctx.attr("axis", -1) % x.ndim
    axes = tuple(range(axis, x.ndim))
    xw = like(x, _stash(ctx, x))
    inv = E.rsqrt(E.add(E.mean(E.mul(xw, xw), axes, keepdim=True), ctx.attr("epsilon", 1e-5)))
    return like(E.mul(like(E.mul(xw, inv), x), scale), x)


@onnx_op("LpNormalization")
def _(ctx, x):
    axis = ctx.attr("axis", -1) % x.ndim
    p = ctx.attr("p", 2)
    if p == 1:
        norm = E.sum(E.abs(x), axis, keepdim=True)
    else:
        norm = E.sqrt(E.sum(E.mul(x, x), axis, keepdim=True))
    return like(E.div(x, E.where(E.eq(norm, 0), 1.0, norm)), x)  # a zero vector stays zero


@onnx_op("MeanVarianceNormalization")
def _(ctx, x):
    axes = norm_axes(ctx.attr("axes") or [0, 2, 3], x.ndim)
    mean = E.mean(x, axes, keepdim=True)
    d = E.sub(x, mean)
    std = E.sqrt(E.mean(E.mul(d, d), axes, keepdim=True))
    return like(E.div(d, E.add(std, 1e-9)), x)


@onnx_op("LRN")
def _(ctx, x):
    size = ctx.attr("size")
    alpha, beta, bias = ctx.attr("alpha", 1e-4), ctx.attr("beta", 0.75), ctx.attr("bias", 1.0)
    sq = E.mul(x, x)
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    pads = [0, 0] * (x.ndim - 2) + [before, after]
    padded = F.pad(sq, pads)
    total = E.narrow(padded, 1, 0, x.shape[1])
    for k in range(1, size):
        total = E.add(total, E.narrow(padded, 1, k, x.shape[1]))
    return like(E.div(x, E.pow(E.add(E.mul(total, alpha / size), bias), beta)), x)


# -- softmax family ------------------------------------------------------------------------
def _softmax_like(fn):
    def impl(ctx: NodeContext, x):
        if ctx.opset >= 13:
            return like(fn(x, ctx.attr("axis", -1) % x.ndim), x)
        axis = ctx.attr("axis", 1) % x.ndim  # older opsets: flatten to 2-D at axis
        lead = int(np.prod(tuple(x.shape[:axis]), dtype=np.int64))
        y = fn(E.reshape(x, (lead, -1)), 1)
        return like(E.reshape(y, tuple(x.shape)), x)

    return impl


def _hardmax(x, axis):
    idx = E.argmax(x, axis, keepdim=True)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    return like(E.eq(E.reshape(E.arange(x.shape[axis]), tuple(shape)), idx), x)


onnx_op("Softmax")(_softmax_like(lambda x, a: E.softmax(x, a)))
onnx_op("LogSoftmax")(_softmax_like(lambda x, a: E.log_softmax(x, a)))
onnx_op("Hardmax")(_softmax_like(_hardmax))


@onnx_op("Dropout", static=(1, 2), foldable=False)
def _(ctx, x, ratio=None, training=None):
    p = float(np.asarray(ratio).reshape(-1)[0]) if ratio is not None else ctx.attr("ratio", 0.5)
    train = bool(np.asarray(training).reshape(-1)[0]) if training is not None else False
    if not train or p == 0:
        return x, E.ones(tuple(x.shape), dtype=E.bool)
    keep = E.ge(E.rand(*x.shape), p)
    return like(E.div(E.mul(x, like(keep, x)), 1.0 - p), x), keep


# -- losses --------------------------------------------------------------------------------
@onnx_op("SoftmaxCrossEntropyLoss")
def _(ctx, scores, labels, weights=None):
    red = ctx.attr("reduction", "mean")
    ignore = ctx.attr("ignore_index", -100)
    labels = like(labels, np.int64)
    loss = F.cross_entropy(scores, labels, weight=weights, ignore_index=ignore, reduction=red)
    if ctx.n_outputs > 1:
        return like(loss, scores), E.log_softmax(scores, 1)
    return like(loss, scores)


@onnx_op("NegativeLogLikelihoodLoss")
def _(ctx, x, target, weight=None):
    red = ctx.attr("reduction", "mean")
    ignore = ctx.attr("ignore_index", -100)
    return like(
        F.nll_loss(x, like(target, np.int64), weight=weight, ignore_index=ignore, reduction=red), x
    )

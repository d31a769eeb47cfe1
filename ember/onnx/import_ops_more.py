"""Importer ops beyond the basics: attention, resizing, recurrent layers, rotary embeddings,
window functions, quantization and random generators (see :mod:`ember.onnx.import_ops`).

Resize is separable: per resized axis, the output coordinates, neighbour indices and
coefficients are computed on the host (they depend only on shapes) and applied with one
gather and one weighted sum, so the op stays differentiable in its data.

Example:
    >>> from ember.onnx.import_ops import OPS
    >>> ("", "LSTM") in OPS
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import ember as E

from .import_ops import NodeContext, const, ints, like, onnx_op, to_numpy_dtype

__all__: list[str] = []

F = E.nn.functional


# -- attention -------------------------------------------------------------------------------
def _heads(t, n: int):
    b, s, h = t.shape
    return E.permute(E.reshape(t, (b, s, n, h // n)), (0, 2, 1, 3))


def _safe_softmax(x):
    m = E.amax(x, -1, keepdim=True)
    m = E.where(E.isneginf(m), 0.0, m)
    e = E.exp(E.sub(x, m))
    s = E.sum(e, -1, keepdim=True)
    return E.div(e, E.where(E.eq(s, 0.0), 1.0, s))


@onnx_op("Attention", since=23)
def _(ctx, q, k, v, mask=None, past_k=None, past_v=None, nonpad=None):
    three = q.ndim == 3
    if three:
        q = _heads(q, ctx.attr("q_num_heads"))
        k = _heads(k, ctx.attr("kv_num_heads"))
        v = _heads(v, ctx.attr("kv_num_heads"))
    scale = ctx.attr("scale")
    scale = math.sqrt(1.0 / math.sqrt(q.shape[3]) if scale is None else scale)
    if past_k is not None:
        k, v = E.cat([past_k, k], 2), E.cat([past_v, v], 2)
    present_k, present_v = k, v
    lq, lk = q.shape[2], k.shape[2]
    dt = q._data.dtype
    neg_inf = -math.inf
    bias = E.zeros((lq, lk), dtype=dt)
    if mask is not None and mask._data.dtype == np.bool_:  # True takes part: 0 / -inf
        mask = E.where(mask, const(0.0, dt), const(neg_inf, dt))
    if mask is not None and mask.shape[-1] < lk:  # keys past the mask are masked out
        mask = F.pad(like(mask, dt), [0, lk - mask.shape[-1]], value=neg_inf)
    if ctx.attr("is_causal", 0):
        base = bias if mask is None else like(mask, dt)
        i = np.arange(lq).reshape(lq, 1)
        j = np.arange(lk).reshape(1, lk)
        if past_k is None and nonpad is not None:
            off = np.asarray(nonpad.numpy()).reshape(-1, 1, 1) - lq
            allowed = (j <= i + off).reshape(-1, 1, lq, lk)
        else:
            allowed = j <= i + (past_k.shape[2] if past_k is not None else 0)
        bias = E.add(base, const(np.where(allowed, 0.0, neg_inf), dt))
    elif mask is not None:
        bias = E.add(bias, mask)
    left, right = ctx.attr("left_window_size", -1), ctx.attr("right_window_size", -1)
    if left >= 0 or right >= 0:  # sliding window around each query's absolute position
        if past_k is None and nonpad is not None:
            off = np.asarray(nonpad.numpy()).reshape(-1, 1, 1) - lq
        else:
            off = past_k.shape[2] if past_k is not None else 0
        diff = np.arange(lq).reshape(lq, 1) + off - np.arange(lk).reshape(1, lk)
        ok = np.ones_like(diff, dtype=bool)
        if left >= 0:
            ok &= diff <= left
        if right >= 0:
            ok &= -diff <= right
        win = np.where(ok, 0.0, neg_inf)
        bias = E.add(bias, const(win.reshape((-1, 1, lq, lk)) if win.ndim == 3 else win, dt))
    if nonpad is not None:
        keep = np.arange(lk)[None, :] < np.asarray(nonpad.numpy()).reshape(-1, 1)
        pad = np.where(keep, 0.0, neg_inf).reshape(q.shape[0], 1, 1, lk)
        bias = E.add(bias, const(pad, dt))
    hq, hk = q.shape[1], k.shape[1]
    if hq != hk and hq % hk == 0:  # grouped-query attention: repeat the key/value heads
        k = E.repeat_interleave(k, hq // hk, dim=1)
        v = E.repeat_interleave(v, hq // hk, dim=1)
    qk = E.matmul(E.mul(q, scale), E.transpose(E.mul(k, scale), -1, -2))
    softcap = ctx.attr("softcap")
    if softcap:
        qk = E.mul(E.tanh(E.div(qk, softcap)), softcap)
    with_bias = E.add(qk, bias)
    mode = ctx.attr("qk_matmul_output_mode", 0)
    qk_out = with_bias if mode == 2 else qk
    work = with_bias
    if ctx.attr("softmax_precision") is not None:
        work = like(work, to_numpy_dtype(ctx.attr("softmax_precision")))
    probs = _safe_softmax(work)
    dead = E.isneginf(E.amax(bias, -1, keepdim=True))
    probs = E.where(dead, 0.0, probs)
    if mode == 3:
        qk_out = probs
    y = E.matmul(like(probs, dt), v)
    if three:
        y = E.permute(y, (0, 2, 1, 3))
        y = E.reshape(y, (y.shape[0], y.shape[1], -1))
    outs = (like(y, dt), present_k, present_v, like(qk_out, dt))
    return outs[: ctx.n_outputs]


@onnx_op("RotaryEmbedding", static=(3,), since=23)
def _(ctx, x, cos, sin, pos=None):
    shape = tuple(x.shape)
    t = E.permute(x, (0, 2, 1, 3)) if x.ndim == 4 else x
    if t.ndim == 3:
        n = ctx.attr("num_heads")
        t = E.reshape(t, (t.shape[0], t.shape[1], n, t.shape[2] // n))
    dim = ctx.attr("rotary_embedding_dim", 0) or t.shape[3]
    rot, rest = t[..., :dim], t[..., dim:]
    if pos is not None:
        idx = E.as_tensor(np.asarray(pos, dtype=np.int64))
        cos, sin = cos[idx], sin[idx]
    cos, sin = E.unsqueeze(cos, 2), E.unsqueeze(sin, 2)
    inter = ctx.attr("interleaved", 0)
    if inter:
        x1, x2 = rot[..., 0::2], rot[..., 1::2]
    else:
        x1, x2 = rot[..., : dim // 2], rot[..., dim // 2 :]
    real = E.sub(E.mul(cos, x1), E.mul(sin, x2))
    imag = E.add(E.mul(sin, x1), E.mul(cos, x2))
    if inter:
        rot = E.reshape(E.stack([real, imag], -1), tuple(rot.shape))
    else:
        rot = E.cat([real, imag], -1)
    out = E.cat([rot, rest], -1)
    if len(shape) == 3:
        return E.reshape(out, shape)
    return E.permute(out, (0, 2, 1, 3))


# -- resize ----------------------------------------------------------------------------------
def _coeffs(mode: str, ratio: float, scale: float, ctx: NodeContext) -> np.ndarray:
    a = ctx.attr("cubic_coeff_a", -0.75)
    anti = ctx.attr("antialias", 0) and scale < 1
    if mode == "nearest":
        if ratio == int(ratio):
            return np.array([0.0, 1.0])
        nm = ctx.attr("nearest_mode", "round_prefer_floor")
        return np.array(
            {
                "round_prefer_floor": [ratio <= 0.5, ratio > 0.5],
                "round_prefer_ceil": [ratio < 0.5, ratio >= 0.5],
                "floor": [1, 0],
                "ceil": [0, 1],
            }[nm],
            dtype=np.float64,
        )
    if mode == "linear":
        if anti:
            start = int(np.floor(-1 / scale) + 1)
            args = (np.arange(start, start + 2 - 2 * start) - ratio) * scale
            c = np.clip(1 - np.abs(args), 0, 1)
            return c / c.sum()
        return np.array([1 - ratio, ratio])
    if anti:

        def f(x):
            x = abs(x)
            if x <= 1:
                return (a + 2) * x**3 - (a + 3) * x**2 + 1
            return a * x**3 - 5 * a * x**2 + 8 * a * x - 4 * a if x < 2 else 0.0

        i0 = int(np.floor(-2 / scale) + 1)
        c = np.array([f(scale * (i - ratio)) for i in range(i0, 2 - i0)])
        return c / c.sum()
    r, s = ratio, 1 - ratio
    return np.array([
        ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
        ((a + 2) * r - (a + 3)) * r * r + 1,
        ((a + 2) * s - (a + 3)) * s * s + 1,
        ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a,
    ])  # fmt: skip


def _source_coords(ctx: NodeContext, n_in: int, n_out: int, scale: float, roi: Any) -> Any:
    mode = ctx.attr("coordinate_transformation_mode", "half_pixel")
    y = np.arange(n_out, dtype=np.float64)
    width = scale * n_in
    extra = None
    if mode == "align_corners":
        x = np.zeros(n_out) if width == 1 else y * (n_in - 1) / (width - 1)
    elif mode == "asymmetric":
        x = y / scale
    elif mode == "tf_crop_and_resize":
        lo, hi = roi
        x = (
            np.full(n_out, (hi - lo) * (n_in - 1) / 2)
            if width == 1
            else y * (hi - lo) * (n_in - 1) / (width - 1)
        )
        x = x + lo * (n_in - 1)
        extra = (x < 0) | (x > n_in - 1)
    elif mode == "pytorch_half_pixel":
        x = np.full(n_out, -0.5) if width == 1 else (y + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (y + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / width)
        x = offset + (y + 0.5) / scale - 0.5
    else:
        raise ValueError(f"Resize: coordinate_transformation_mode {mode!r} is not supported")
    return x, extra


def _resize_axis(ctx: NodeContext, t, axis: int, scale: float, n_out: int, roi: Any):
    n_in = t.shape[axis]
    mode = ctx.attr("mode", "nearest")
    x, extra = _source_coords(ctx, n_in, n_out, scale, roi)
    base = np.floor(x).astype(np.int64)
    ratios = np.where(x == base, 1.0, x - base)
    coeffs = np.stack([_coeffs(mode, float(r), scale, ctx) for r in ratios])
    n = coeffs.shape[1]
    pad = int(np.ceil(n / 2))
    xp = x + pad
    p = np.floor(xp).astype(np.int64)
    frac = xp - p
    if n % 2 == 0:
        offset = np.where(frac == 0, -(n // 2), -(n // 2) + 1)
    else:
        offset = np.where(frac <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    idx = (p + offset)[:, None] + np.arange(n)[None, :] - pad
    if ctx.attr("exclude_outside", 0):
        coeffs = np.where((idx < 0) | (idx >= n_in), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    idx = np.clip(idx, 0, n_in - 1)
    picked = t[(slice(None),) * axis + (E.as_tensor(idx),)]
    shape = (1,) * axis + coeffs.shape + (1,) * (t.ndim - axis - 1)
    out = E.sum(E.mul(picked, const(coeffs.reshape(shape), t._data.dtype)), axis + 1)
    if extra is not None and extra.any():
        shape = (1,) * axis + (n_out,) + (1,) * (t.ndim - axis - 1)
        out = E.where(E.as_tensor(extra.reshape(shape)), ctx.attr("extrapolation_value", 0.0), out)
    return out


def _resize(ctx: NodeContext, x, roi, scales, sizes):
    r = x.ndim
    axes = ctx.attr("axes")
    axes = list(range(r)) if axes is None else [a % r for a in axes]
    roi = None if roi is None or np.asarray(roi).size == 0 else np.asarray(roi, np.float64)
    full_roi = None
    if roi is not None:
        full_roi = [0.0] * r + [1.0] * r
        k = len(axes) if roi.size == 2 * len(axes) else r
        src = axes if k == len(axes) else list(range(r))
        for i, d in enumerate(src):
            full_roi[d], full_roi[r + d] = roi[i], roi[k + i]
    shape = list(x.shape)
    if sizes is not None and np.asarray(sizes).size:
        out = list(shape)
        for i, d in enumerate(axes):
            out[d] = int(np.asarray(sizes).reshape(-1)[i])
        sc = [out[i] / shape[i] for i in range(r)]
        policy = ctx.attr("keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            s = min(sc[d] for d in axes) if policy == "not_larger" else max(sc[d] for d in axes)
            sc = [s if i in axes else 1.0 for i in range(r)]
            out = [int(s * shape[i] + 0.5) if i in axes else shape[i] for i in range(r)]
    else:
        sc = [1.0] * r
        for i, d in enumerate(axes):
            sc[d] = float(np.asarray(scales).reshape(-1)[i])
        out = [int(sc[i] * shape[i]) for i in range(r)]
    t = x if x._data.dtype == np.float64 else E.cast(x, np.float64)
    for d in axes:
        trivial = math.isclose(sc[d], 1.0) and out[d] == t.shape[d]
        if trivial and (full_roi is None or (full_roi[d] == 0 and full_roi[r + d] == 1)):
            continue
        axis_roi = None if full_roi is None else (full_roi[d], full_roi[r + d])
        t = _resize_axis(ctx, t, d, sc[d], out[d], axis_roi)
    return like(t, x)


@onnx_op("Resize", static=(1, 2, 3))
def _(ctx, x, roi=None, scales=None, sizes=None):
    if ctx.opset < 11:  # Resize-10: (X, scales)
        return _resize(ctx, x, None, roi, None)
    return _resize(ctx, x, roi, scales, sizes)


@onnx_op("Upsample", static=(1,))
def _(ctx, x, scales=None):
    scales = scales if scales is not None else np.asarray(ctx.attr("scales"))
    mode = ctx.attr("mode", "nearest")
    attrs = dict(ctx.attrs, mode="linear" if mode in ("linear", "bilinear") else "nearest")
    attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    sub = NodeContext("Resize", ctx.name, attrs, 13, 1, ctx.module)
    return _resize(sub, x, None, scales, None)


# -- recurrent layers ------------------------------------------------------------------------
def _activation(name: str, alpha: Any, beta: Any):
    n = name.lower()
    if n == "sigmoid":
        return E.sigmoid
    if n == "tanh":
        return E.tanh
    if n == "relu":
        return E.relu
    if n == "affine":
        return lambda t: E.add(E.mul(t, alpha), beta)
    if n == "leakyrelu":
        return lambda t: F.leaky_relu(t, alpha)
    if n == "thresholdedrelu":
        return lambda t: E.where(E.gt(t, alpha), t, 0.0)
    if n == "scaledtanh":
        return lambda t: E.mul(E.tanh(E.mul(t, beta)), alpha)
    if n == "hardsigmoid":
        return lambda t: E.clamp(E.add(E.mul(t, alpha), beta), 0.0, 1.0)
    if n == "elu":
        return lambda t: F.elu(t, alpha)
    if n == "softsign":
        return F.softsign
    if n == "softplus":
        return F.softplus
    raise ValueError(f"recurrent activation {name!r} is not supported")


def _activations(ctx: NodeContext, defaults: list[str], dirs: int) -> list:
    names = ctx.attr("activations") or defaults * dirs
    alphas = list(ctx.attr("activation_alpha") or [])
    betas = list(ctx.attr("activation_beta") or [])
    defaults_ab = {"leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None), "elu": (1.0, None),
                   "hardsigmoid": (0.2, 0.5), "affine": (1.0, 0.0), "scaledtanh": (1.0, 1.0)}  # fmt: skip
    out = []
    ia = ib = 0
    for name in names:
        a, b = defaults_ab.get(name.lower(), (None, None))
        if name.lower() in defaults_ab:
            if ia < len(alphas):
                a, ia = alphas[ia], ia + 1
            if b is not None and ib < len(betas):
                b, ib = betas[ib], ib + 1
        out.append(_activation(name, a, b))
    return out


def _recurrent(ctx: NodeContext, x, w, r, b, lens, h0, c0, p, kind: str):
    layout = ctx.attr("layout", 0)
    if layout:
        x = E.transpose(x, 0, 1)
        h0 = None if h0 is None else E.transpose(h0, 0, 1)
        c0 = None if c0 is None else E.transpose(c0, 0, 1)
    seq, batch = x.shape[0], x.shape[1]
    hidden = ctx.attr("hidden_size")
    direction = ctx.attr("direction", "forward")
    dirs = 2 if direction == "bidirectional" else 1
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[kind]
    defaults = {"rnn": ["Tanh"], "gru": ["Sigmoid", "Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"]}[
        kind
    ]
    acts = _activations(ctx, defaults, dirs)
    per = len(defaults)
    clip = ctx.attr("clip")
    lens_np = None if lens is None else np.asarray(lens.numpy()).reshape(-1)
    ys, hs, cs = [], [], []
    for d in range(dirs):
        f = acts[d * per : (d + 1) * per]
        wd, rd = w[d], r[d]
        bd = b[d] if b is not None else E.zeros(2 * gates * hidden, dtype=x.dtype)
        wb, rb = bd[: gates * hidden], bd[gates * hidden :]
        h = h0[d] if h0 is not None else E.zeros((batch, hidden), dtype=x.dtype)
        c = c0[d] if c0 is not None else E.zeros((batch, hidden), dtype=x.dtype)
        pd = p[d] if p is not None else None
        reverse = direction == "reverse" or d == 1
        steps = range(seq - 1, -1, -1) if reverse else range(seq)
        outs: list[Any] = [None] * seq
        xw = E.add(E.matmul(x, E.transpose(wd, 0, 1)), wb)  # all time steps at once
        for t in steps:
            pre = (
                E.add(xw[t], E.add(E.matmul(h, E.transpose(rd, 0, 1)), rb))
                if kind != "gru"
                else None
            )
            if kind == "rnn":
                g = E.clamp(pre, -clip, clip) if clip else pre
                new_h, new_c = f[0](g), c
            elif kind == "lstm":
                g = E.clamp(pre, -clip, clip) if clip else pre
                gi, go, gf, gc = (g[:, k * hidden : (k + 1) * hidden] for k in range(4))
                if pd is not None:
                    gi = E.add(gi, E.mul(pd[:hidden], c))
                    gf = E.add(gf, E.mul(pd[2 * hidden :], c))
                i_t = f[0](gi)
                f_t = E.sub(1.0, i_t) if ctx.attr("input_forget", 0) else f[0](gf)
                new_c = E.add(E.mul(f_t, c), E.mul(i_t, f[1](gc)))
                if pd is not None:
                    go = E.add(go, E.mul(pd[hidden : 2 * hidden], new_c))
                new_h = E.mul(f[0](go), f[2](new_c))
            else:
                xt = xw[t]
                rz = E.add(E.matmul(h, E.transpose(rd[: 2 * hidden], 0, 1)), rb[: 2 * hidden])
                zr = E.add(xt[:, : 2 * hidden], rz)
                zr = E.clamp(zr, -clip, clip) if clip else zr
                z_t, r_t = f[0](zr[:, :hidden]), f[0](zr[:, hidden:])
                rh_w, rh_b = rd[2 * hidden :], rb[2 * hidden :]
                if ctx.attr("linear_before_reset", 0):
                    hh = E.mul(r_t, E.add(E.matmul(h, E.transpose(rh_w, 0, 1)), rh_b))
                else:
                    hh = E.add(E.matmul(E.mul(r_t, h), E.transpose(rh_w, 0, 1)), rh_b)
                pre_h = E.add(xt[:, 2 * hidden :], hh)
                pre_h = E.clamp(pre_h, -clip, clip) if clip else pre_h
                h_t = f[1](pre_h)
                new_h = E.add(E.mul(E.sub(1.0, z_t), h_t), E.mul(z_t, h))
                new_c = c
            if lens_np is not None:  # past a sequence's end: keep the state, emit zeros
                live = const((t < lens_np).reshape(-1, 1), np.bool_)
                new_h, new_c = E.where(live, new_h, h), E.where(live, new_c, c)
                outs[t] = E.where(live, new_h, 0.0)
            else:
                outs[t] = new_h
            h, c = new_h, new_c
        ys.append(E.stack(outs, 0))
        hs.append(h)
        cs.append(c)
    y = E.stack(ys, 1)  # (seq, dirs, batch, hidden)
    yh, yc = E.stack(hs, 0), E.stack(cs, 0)
    if layout:
        y = E.permute(y, (2, 0, 1, 3))
        yh, yc = E.transpose(yh, 0, 1), E.transpose(yc, 0, 1)
    outs_all = (like(y, x), like(yh, x), like(yc, x))
    return outs_all[: ctx.n_outputs] if kind == "lstm" else outs_all[: min(ctx.n_outputs, 2)]


@onnx_op("RNN")
def _(ctx, x, w, r, b=None, lens=None, h0=None):
    return _recurrent(ctx, x, w, r, b, lens, h0, None, None, "rnn")


@onnx_op("GRU")
def _(ctx, x, w, r, b=None, lens=None, h0=None):
    return _recurrent(ctx, x, w, r, b, lens, h0, None, None, "gru")


@onnx_op("LSTM")
def _(ctx, x, w, r, b=None, lens=None, h0=None, c0=None, p=None):
    return _recurrent(ctx, x, w, r, b, lens, h0, c0, p, "lstm")


# -- windows, quantization, random ---------------------------------------------------------
def _window(kind: str):
    def impl(ctx: NodeContext, size):
        n = int(np.asarray(size).reshape(-1)[0])
        periodic = ctx.attr("periodic", 1)
        denom = n if periodic else n - 1
        k = np.arange(n, dtype=np.float64) * (2 * np.pi / max(denom, 1))
        if kind == "hann":
            w = 0.5 - 0.5 * np.cos(k)
        elif kind == "hamming":
            w = 25.0 / 46 - (1 - 25.0 / 46) * np.cos(k)
        else:
            w = 0.42 - 0.5 * np.cos(k) + 0.08 * np.cos(2 * k)
        return w.astype(to_numpy_dtype(ctx.attr("output_datatype", 1)))

    return impl


onnx_op("HannWindow", static=(0,), since=17)(_window("hann"))
onnx_op("HammingWindow", static=(0,), since=17)(_window("hamming"))
onnx_op("BlackmanWindow", static=(0,), since=17)(_window("blackman"))


def _per_axis(v, x, axis: int, block: int = 0):
    if v.ndim == 0 or v.numel() == 1:
        return E.reshape(v, ())
    if block:
        v = E.repeat_interleave(v, block, dim=axis % x.ndim)
        v = E.narrow(v, axis % x.ndim, 0, x.shape[axis % x.ndim])
        return v
    shape = [1] * x.ndim
    shape[axis % x.ndim] = v.shape[0]
    return E.reshape(v, tuple(shape))


@onnx_op("DequantizeLinear")
def _(ctx, x, scale, zero=None):
    axis, block = ctx.attr("axis", 1), ctx.attr("block_size", 0)
    xf = like(x, scale)
    if zero is not None:
        xf = E.sub(xf, like(_per_axis(zero, x, axis, block), scale))
    return E.mul(xf, _per_axis(scale, x, axis, block))


@onnx_op("QuantizeLinear")
def _(ctx, x, scale, zero=None):
    axis, block = ctx.attr("axis", 1), ctx.attr("block_size", 0)
    dt = zero._data.dtype if zero is not None else np.dtype(np.uint8)
    if ctx.attr("output_dtype"):
        dt = to_numpy_dtype(ctx.attr("output_dtype"))
    q = E.round(E.div(like(x, scale), _per_axis(scale, x, axis, block)))
    if zero is not None:
        q = E.add(q, like(_per_axis(zero, x, axis, block), q))
    info = np.iinfo(dt)
    return like(E.clamp(q, float(info.min), float(info.max)), dt)


@onnx_op("DynamicQuantizeLinear")
def _(ctx, x):
    lo = E.minimum(E.amin(x), 0.0)
    hi = E.maximum(E.amax(x), 0.0)
    scale = E.div(E.sub(hi, lo), 255.0)
    zp = E.clamp(E.round(E.sub(0.0, E.div(lo, scale))), 0.0, 255.0)
    y = E.clamp(E.add(E.round(E.div(x, scale)), zp), 0.0, 255.0)
    return like(y, np.uint8), like(scale, x), like(zp, np.uint8)


@onnx_op("MatMulInteger")
def _(ctx, a, b, za=None, zb=None):
    a32, b32 = like(a, np.int32), like(b, np.int32)
    if za is not None:
        a32 = E.sub(
            a32, like(za, np.int32) if za.ndim == 0 else E.reshape(like(za, np.int32), (-1, 1))
        )
    if zb is not None:
        b32 = E.sub(b32, like(zb, np.int32))
    return E.matmul(a32, b32)


@onnx_op("RandomUniformLike", "RandomUniform", "RandomNormalLike", "RandomNormal", foldable=False)
def _(ctx, x=None):
    shape = tuple(x.shape) if x is not None else tuple(ctx.attr("shape"))
    dtype = ctx.attr("dtype")
    dt = (
        to_numpy_dtype(dtype)
        if dtype is not None
        else (x._data.dtype if x is not None else np.float32)
    )
    if "Uniform" in ctx.op_type:
        lo, hi = ctx.attr("low", 0.0), ctx.attr("high", 1.0)
        return like(E.add(E.mul(E.rand(*shape), hi - lo), lo), dt)
    mean, sd = ctx.attr("mean", 0.0), ctx.attr("scale", 1.0)
    return like(E.add(E.mul(E.randn(*shape), sd), mean), dt)


@onnx_op("Bernoulli", foldable=False)
def _(ctx, p):
    dtype = ctx.attr("dtype")
    dt = to_numpy_dtype(dtype) if dtype is not None else p._data.dtype
    return like(E.lt(E.rand(*p.shape), p), dt)


@onnx_op("SwiGLU", since=26)
def _(ctx, a, b):
    gate = like(E.sigmoid(E.mul(a, ctx.attr("alpha", 1.0))), a)
    return like(E.mul(E.mul(a, gate), b), a)


@onnx_op("Col2Im", static=(1, 2))
def _(ctx, x, image_shape, block_shape):
    img, blk = ints(image_shape), ints(block_shape)
    nd = len(img)
    dil = list(ctx.attr("dilations") or [1] * nd)
    strides = list(ctx.attr("strides") or [1] * nd)
    pads = list(ctx.attr("pads") or [0] * (2 * nd))
    n, ckk, cols = x.shape
    c = ckk // int(np.prod(blk))
    padded = [img[i] + pads[i] + pads[i + nd] for i in range(nd)]
    outs = [(padded[i] - dil[i] * (blk[i] - 1) - 1) // strides[i] + 1 for i in range(nd)]
    # positions: for every (kernel offset, output position) the flat padded-image index
    grids = np.meshgrid(*[np.arange(b) for b in blk], indexing="ij")
    pos = np.meshgrid(*[np.arange(o) for o in outs], indexing="ij")
    flat = np.zeros((int(np.prod(blk)), int(np.prod(outs))), dtype=np.int64)
    stride_acc = 1
    for i in reversed(range(nd)):
        coord = grids[i].reshape(-1, 1) * dil[i] + pos[i].reshape(1, -1) * strides[i]
        flat += coord * stride_acc
        stride_acc *= padded[i]
    total = int(np.prod(padded))
    vals = E.reshape(x, (n, c, -1))
    idx = E.broadcast_to(E.as_tensor(flat.reshape(1, 1, -1)), (n, c, flat.size))
    out = E.zeros((n, c, total), dtype=x.dtype)
    out = E.scatter_add(out, 2, idx, vals)
    out = E.reshape(out, (n, c) + tuple(padded))
    for i in range(nd):
        out = E.narrow(out, 2 + i, pads[i], img[i])
    return out

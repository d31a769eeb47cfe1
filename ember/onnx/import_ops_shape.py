"""Importer ops that move data around: shapes, reshapes, slicing, gathering, scattering,
padding, constants made from shapes (see :mod:`ember.onnx.import_ops` for the conventions).

``Shape`` and ``Size`` give *static* NumPy results, so a model's shape arithmetic runs on
the host and the tensors it configures (``Reshape``, ``Slice`` ...) read plain ints.

Example:
    >>> from ember.onnx.import_ops import OPS
    >>> OPS["", "Reshape"].static
    (1,)
"""

from __future__ import annotations

import numpy as np

import ember as E

from .import_ops import NodeContext, const, ints, like, norm_axes, onnx_op

__all__: list[str] = []

INT64_MAX = np.iinfo(np.int64).max
F = E.nn.functional


@onnx_op("Shape")
def _(ctx, x):
    shape = np.asarray(tuple(x.shape), dtype=np.int64)
    n = len(shape)
    start, end = ctx.attr("start", 0), ctx.attr("end", n)
    return shape[slice(max(min(start, n), -n), max(min(end, n), -n - 1) if end < 0 else end)]


@onnx_op("Size")
def _(ctx, x):
    return np.asarray(int(np.prod(tuple(x.shape), dtype=np.int64)), dtype=np.int64)


@onnx_op("Reshape", static=(1,))
def _(ctx, x, shape=None):
    target = ints(shape) if shape is not None else list(ctx.attr("shape"))
    if not ctx.attr("allowzero", 0):  # 0 copies the input's dimension
        target = [x.shape[i] if s == 0 else s for i, s in enumerate(target)]
    return E.reshape(x, tuple(target))


@onnx_op("Flatten")
def _(ctx, x):
    axis = ctx.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    lead = int(np.prod(tuple(x.shape[:axis]), dtype=np.int64))
    rest = int(np.prod(tuple(x.shape[axis:]), dtype=np.int64))
    return E.reshape(x, (lead, rest))


@onnx_op("Squeeze", static=(1,))
def _(ctx, x, axes=None):
    ax = ints(axes) if axes is not None else ctx.attr("axes")
    if ax is None:
        ax = [i for i, s in enumerate(x.shape) if s == 1]
    ax = set(norm_axes(ax, x.ndim))
    return E.reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in ax))


@onnx_op("Unsqueeze", static=(1,))
def _(ctx, x, axes=None):
    ax = ints(axes) if axes is not None else ctx.attr("axes")
    n = x.ndim + len(ax)
    ax = sorted(a % n for a in ax)
    shape = list(x.shape)
    for a in ax:
        shape.insert(a, 1)
    return E.reshape(x, tuple(shape))


@onnx_op("Transpose")
def _(ctx, x):
    perm = ctx.attr("perm") or list(reversed(range(x.ndim)))
    return E.permute(x, tuple(perm))


@onnx_op("Concat")
def _(ctx, *xs):
    axis = ctx.attr("axis") % xs[0].ndim
    return E.cat([like(x, xs[0]) for x in xs], axis)


@onnx_op("Split", static=(1,))
def _(ctx, x, split=None):
    axis = ctx.attr("axis", 0) % x.ndim
    n = x.shape[axis]
    sizes = ints(split) if split is not None else ctx.attr("split")
    if not sizes:
        parts = ctx.attr("num_outputs", ctx.n_outputs)
        step = -(-n // parts)  # ceil: the last part may be smaller
        sizes = [min(step, n - i * step) for i in range(parts)]
    out, start = [], 0
    for s in sizes:
        out.append(E.narrow(x, axis, start, s))
        start += s
    return tuple(out)


@onnx_op("Slice", static=(1, 2, 3, 4))
def _(ctx, x, starts=None, ends=None, axes=None, steps=None):
    if ctx.opset < 10:
        starts, ends, axes = ctx.attr("starts"), ctx.attr("ends"), ctx.attr("axes")
    starts, ends = ints(starts), ints(ends)
    axes = list(range(len(starts))) if axes is None else ints(axes)
    steps = [1] * len(starts) if steps is None else ints(steps)
    key = [slice(None)] * x.ndim
    for a, s, e, st in zip(axes, starts, ends, steps):
        key[a % x.ndim] = slice(s, e, st)
    return x[tuple(key)]


def _normalize(idx, n):
    return E.where(E.lt(idx, 0), E.add(idx, n), idx)


@onnx_op("Gather")
def _(ctx, x, idx):
    axis = ctx.attr("axis", 0) % x.ndim
    idx = like(idx, np.int64)
    return x[(slice(None),) * axis + (_normalize(idx, x.shape[axis]),)]


@onnx_op("GatherElements")
def _(ctx, x, idx):
    axis = ctx.attr("axis", 0) % x.ndim
    return E.gather(x, axis, _normalize(like(idx, np.int64), x.shape[axis]))


@onnx_op("GatherND")
def _(ctx, x, idx):
    b = ctx.attr("batch_dims", 0)
    idx = like(idx, np.int64)
    k = idx.shape[-1]
    lead = idx.shape[:-1]
    key = []
    for j in range(b):  # batch dims index themselves
        shape = [1] * len(lead)
        shape[j] = lead[j]
        key.append(E.reshape(E.arange(lead[j]), tuple(shape)))
    for i in range(k):
        key.append(_normalize(idx[..., i], x.shape[b + i]))
    return x[tuple(key)]


def _scatter_mode(ctx: NodeContext) -> str:
    return ctx.attr("reduction", "none")


def _host_scatter(x, key, upd, mode):
    """max/min/mul scatters with repeated indices (no ember op): computed on the host,
    not differentiable."""
    out = np.array(x.numpy())
    fn = {"max": np.maximum, "min": np.minimum, "mul": np.multiply}[mode]
    fn.at(out, tuple(np.asarray(k.numpy()) for k in key), np.asarray(upd.numpy()))
    return E.as_tensor(out)


@onnx_op("ScatterElements", "Scatter")
def _(ctx, x, idx, upd):
    axis = ctx.attr("axis", 0) % x.ndim
    if _scatter_mode(ctx) in ("max", "min"):
        idx = _normalize(like(idx, np.int64), x.shape[axis])
        grid = [
            E.reshape(E.arange(s), tuple(s if i == d else 1 for i in range(idx.ndim)))
            for d, s in enumerate(idx.shape)
        ]
        grid[axis] = idx
        key = [E.broadcast_to(k, tuple(idx.shape)) for k in grid]
        return _host_scatter(x, key, upd, _scatter_mode(ctx))
    idx = _normalize(like(idx, np.int64), x.shape[axis])
    mode = {"none": None, "add": "add", "mul": "multiply"}[_scatter_mode(ctx)]
    return E.scatter(x, axis, idx, like(upd, x), reduce=mode)


@onnx_op("ScatterND")
def _(ctx, x, idx, upd):
    mode = _scatter_mode(ctx)
    idx = like(idx, np.int64)
    key = tuple(_normalize(idx[..., i], x.shape[i]) for i in range(idx.shape[-1]))
    if mode in ("max", "min", "mul"):
        return _host_scatter(x, key, upd, mode)
    return E.index_put(x, key, like(upd, x), accumulate=mode == "add")


@onnx_op("Expand", static=(1,))
def _(ctx, x, shape):
    target = np.broadcast_shapes(tuple(x.shape), tuple(ints(shape)))
    return E.broadcast_to(x, target)


@onnx_op("Tile", static=(1,))
def _(ctx, x, repeats):
    return E.tile(x, tuple(ints(repeats)))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@onnx_op("Pad", static=(1, 2, 3))
def _(ctx, x, pads=None, value=None, axes=None):
    if ctx.opset < 11:
        pads, value = ctx.attr("pads"), ctx.attr("value", 0.0)
    pads = ints(pads)
    n = len(pads) // 2
    axes = list(range(x.ndim)) if axes is None else [a % x.ndim for a in ints(axes)]
    full = [(0, 0)] * x.ndim
    for i, a in enumerate(axes[:n]):
        full[a] = (pads[i], pads[i + n])
    mode = _PAD_MODES[ctx.attr("mode", "constant")]
    fill = 0 if value is None else np.asarray(value).reshape(-1)[0].item()
    flat = []
    for b, e in reversed(full):  # F.pad lists (before, after) from the last dim backwards
        flat += [b, e]
    while len(flat) > 2 and flat[-2:] == [0, 0]:
        flat = flat[:-2]
    if mode == "constant":
        return F.pad(x, flat, value=fill)
    return F.pad(x, flat, mode=mode)


@onnx_op("ConstantOfShape", static=(0,))
def _(ctx, shape):
    value = ctx.attr("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full(tuple(ints(shape)), value[0], dtype=value.dtype)


@onnx_op("Range", static=(0, 1, 2))
def _(ctx, start, limit, delta):
    s, lim, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    n = max(int(np.ceil((lim - s) / d)), 0)
    return (s + np.arange(n) * d).astype(np.asarray(start).dtype)


@onnx_op("OneHot", static=(1, 2))
def _(ctx, idx, depth, values):
    d = int(np.asarray(depth).reshape(-1)[0])
    off, on = np.asarray(values).reshape(-1)[:2]
    axis = ctx.attr("axis", -1) % (idx.ndim + 1)
    idx = like(idx, np.int64)
    idx = E.where(E.lt(idx, 0), E.add(idx, d), idx)
    shape = [1] * (idx.ndim + 1)
    shape[axis] = d
    hot = E.eq(E.unsqueeze(idx, axis), E.reshape(E.arange(d), tuple(shape)))
    return E.where(hot, const(on, values.dtype), const(off, values.dtype))


@onnx_op("EyeLike")
def _(ctx, x):
    from .import_ops import to_numpy_dtype

    dt = to_numpy_dtype(ctx.attr("dtype")) if ctx.attr("dtype") is not None else x._data.dtype
    return np.eye(x.shape[0], x.shape[1], k=ctx.attr("k", 0), dtype=dt)


@onnx_op("Trilu", static=(1,))
def _(ctx, x, k=None):
    kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    return E.triu(x, kk) if ctx.attr("upper", 1) else E.tril(x, kk)


@onnx_op("TopK", static=(1,))
def _(ctx, x, k=None):
    kk = int(np.asarray(k).reshape(-1)[0]) if k is not None else ctx.attr("k")
    axis = ctx.attr("axis", -1) % x.ndim
    # a stable sort: equal values keep the lower index first, as ONNX specifies
    order = E.argsort(x, axis, descending=bool(ctx.attr("largest", 1)), stable=True)
    idx = E.narrow(order, axis, 0, kk)
    return E.gather(x, axis, idx), idx


@onnx_op("NonZero")
def _(ctx, x):
    if x.ndim == 0:
        return np.zeros((0, int(bool(x.numpy()))), dtype=np.int64)
    return E.transpose(E.nonzero(x), 0, 1)


@onnx_op("Compress")
def _(ctx, x, cond):
    axis = ctx.attr("axis")
    if axis is None:
        x, axis = E.reshape(x, (-1,)), 0
    axis %= x.ndim
    keep = E.reshape(E.nonzero(cond), (-1,))
    keep = keep[keep < x.shape[axis]] if cond.shape[0] > x.shape[axis] else keep
    return E.index_select(x, axis, keep)


@onnx_op("DepthToSpace")
def _(ctx, x):
    b = ctx.attr("blocksize")
    n, c, h, w = x.shape
    if ctx.attr("mode", "DCR") == "DCR":
        t = E.permute(E.reshape(x, (n, b, b, c // (b * b), h, w)), (0, 3, 4, 1, 5, 2))
    else:
        t = E.permute(E.reshape(x, (n, c // (b * b), b, b, h, w)), (0, 1, 4, 2, 5, 3))
    return E.reshape(t, (n, c // (b * b), h * b, w * b))


@onnx_op("SpaceToDepth")
def _(ctx, x):
    b = ctx.attr("blocksize")
    n, c, h, w = x.shape
    perm = (0, 1, 3, 5, 2, 4) if ctx.attr("mode", "DCR") == "CRD" else (0, 3, 5, 1, 2, 4)
    t = E.permute(E.reshape(x, (n, c, h // b, b, w // b, b)), perm)
    return E.reshape(t, (n, c * b * b, h // b, w // b))


@onnx_op("ReverseSequence")
def _(ctx, x, lens):
    batch, time = ctx.attr("batch_axis", 1), ctx.attr("time_axis", 0)
    t = x.shape[time]
    steps = E.arange(t)
    lens = like(lens, np.int64)
    shape_t = [1] * x.ndim
    shape_t[time] = t
    shape_b = [1] * x.ndim
    shape_b[batch] = x.shape[batch]
    s = E.reshape(steps, tuple(shape_t))
    ln = E.reshape(lens, tuple(shape_b))
    src = E.where(E.lt(s, ln), E.sub(E.sub(ln, 1), s), s)
    src = E.broadcast_to(src, tuple(x.shape))
    return E.gather(x, time, src)


@onnx_op("Unique")
def _(ctx, x):
    arr = x.numpy()
    axis = ctx.attr("axis")
    sort = ctx.attr("sorted", 1)
    vals, first, inverse, counts = np.unique(
        arr, return_index=True, return_inverse=True, return_counts=True, axis=axis
    )
    if not sort:  # order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        vals = np.take(vals, order, axis=0 if axis is None else axis)
        first, counts, inverse = first[order], counts[order], rank[inverse.reshape(-1)]
    inverse = inverse.reshape(-1)
    cast = np.int64
    return (E.as_tensor(vals), first.astype(cast), inverse.astype(cast), counts.astype(cast))


@onnx_op("CenterCropPad", static=(1,))
def _(ctx, x, shape):
    axes = ctx.attr("axes") or list(range(x.ndim))
    target = ints(shape)
    for a, t in zip(axes, target):
        a %= x.ndim
        n = x.shape[a]
        if n > t:  # crop, the extra element at the end
            start = (n - t) // 2
            x = E.narrow(x, a, start, t)
        elif n < t:  # pad, the extra element at the end
            before = (t - n) // 2
            pads = [0, 0] * (x.ndim - 1 - a) + [before, t - n - before]
            x = F.pad(x, pads)
    return x

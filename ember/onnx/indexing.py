"""NumPy/PyTorch indexing (``x[key]`` and ``x[key] = v``) as ONNX nodes, for the lowerings of
the indexing ops (:mod:`ember.ops.indexing`).

A key is the op's ``index`` tuple: ints, slices, None, Ellipsis, bools, and graph values (the
index arrays, integer or bool) in the places the op marks ``"tensor"``. Reading applies, in
order: new axes (None, bools), one ``Slice`` for the slices, then either ``Gather`` per
integer or, with index arrays, one ``GatherND`` over the indexed dimensions moved to the front
(and the broadcast index dimensions put where NumPy puts them). PyTorch's rule for ints mixed
with arrays (the ints first, as a select) is applied before. Writing reads the *positions*
``arange(numel).reshape(shape)[key]`` the same way and scatters the values there.

Example:
    >>> import numpy as np
    >>> from ember.onnx.builder import GraphBuilder
    >>> g = GraphBuilder(18)
    >>> x = g.add_input("x", (4, 5), np.float32)
    >>> y = read(g, x, (slice(1, 3), 0))
    >>> [n.op_type for n in g.nodes if n.op_type != "Constant"]
    ['Slice', 'Gather']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .builder import INT64_MAX, INT64_MIN, GraphBuilder, OnnxValue

__all__ = ["read", "write", "positions", "with_arrays"]

_T = "tensor"


def with_arrays(key: tuple, arrays: tuple) -> tuple:
    """The index tuple with its ``"tensor"`` marks replaced by ``arrays`` (in order)."""
    it = iter(arrays)
    return tuple(next(it) if isinstance(k, str) and k == _T else k for k in key)


def _is_array(k: Any) -> bool:
    return isinstance(k, OnnxValue) and (k.ndim > 0 or k.dtype.kind == "b")


def _is_int(k: Any) -> bool:
    return (type(k) is int) or (isinstance(k, OnnxValue) and k.ndim == 0 and k.dtype.kind in "iu")


def _split(key: tuple) -> tuple[tuple, tuple] | None:
    """PyTorch's order when ints meet index arrays: the ints (a select) first, then the arrays
    (mirrors ``ember.ops.indexing._split``)."""
    if not (any(_is_int(k) for k in key) and any(_is_array(k) for k in key)):
        return None
    first: list[Any] = []
    then: list[Any] = []
    for k in key:
        if k is None or type(k) is bool:
            then.append(k)
        elif _is_int(k):
            first.append(k)
        elif k is Ellipsis:
            first.append(k)
            then.append(k)
        elif isinstance(k, slice):
            first.append(slice(None))
            then.append(k)
        else:
            first.extend([slice(None)] * (k.ndim if k.dtype.kind == "b" else 1))
            then.append(k)
    return tuple(first), tuple(then)


def read(g: GraphBuilder, x: OnnxValue, key: Any) -> OnnxValue:
    """``x[key]`` with NumPy's and PyTorch's rules (``key`` as described above)."""
    key = key if isinstance(key, tuple) else (key,)
    steps = _split(key)
    if steps is not None:
        return _read(g, _read(g, x, steps[0]), steps[1])
    return _read(g, x, key)


def _consumed(k: Any) -> int:
    if k is None or type(k) is bool or k is Ellipsis:
        return 0
    if isinstance(k, OnnxValue) and k.dtype.kind == "b":
        return k.ndim
    return 1


def _read(g: GraphBuilder, x: OnnxValue, key: tuple) -> OnnxValue:
    shape = list(x.shape)
    # 1. Ellipsis and missing trailing dims become full slices
    used = sum(_consumed(k) for k in key)
    items: list[Any] = []
    for k in key:
        if k is Ellipsis:
            items.extend([slice(None)] * (len(shape) - used))
        else:
            items.append(k)
    if Ellipsis not in key:
        items.extend([slice(None)] * (len(shape) - used))
    # 2. None and bools add axes (as slices over new size-1 dimensions)
    new_axes, pos, plain = [], 0, []
    for k in items:
        if k is None or type(k) is bool:
            new_axes.append(pos)
            plain.append(slice(0, 0) if k is False else slice(None))
            pos += 1
        else:
            plain.append(k)
            pos += _consumed(k)
    if new_axes:
        for a in new_axes:
            shape.insert(a, 1)
        x = g.unsqueeze(x, new_axes, shape=tuple(shape))
    # 3. one Slice for every non-trivial slice
    axes, starts, ends, steps = [], [], [], []
    dim = 0
    for k in plain:
        if isinstance(k, slice) and k != slice(None):
            step = 1 if k.step is None else k.step
            start = k.start if k.start is not None else (0 if step > 0 else -1)
            stop = k.stop if k.stop is not None else (INT64_MAX if step > 0 else INT64_MIN)
            axes.append(dim)
            starts.append(start)
            ends.append(stop)
            steps.append(step)
            shape[dim] = len(range(*k.indices(shape[dim]))) if isinstance(shape[dim], int) else None
        dim += _consumed(k)
    if axes:
        x = g.slice(x, axes, starts, ends, steps)
        x = OnnxValue(x.name, tuple(shape), x.dtype)
    # 4. bool arrays become one integer array per dimension they cover
    expanded: list[Any] = []
    for k in plain:
        if isinstance(k, OnnxValue) and k.dtype.kind == "b":
            nz = g.op("NonZero", k, dtype=np.int64)  # (k.ndim, count)
            for i in range(k.ndim):
                expanded.append(g.op("Gather", nz, g.scalar(i, np.int64), axis=0, shape=(None,)))
        else:
            expanded.append(k)
    arrays = [(d, k) for d, k in enumerate(expanded) if isinstance(k, OnnxValue) and k.ndim > 0]
    ints = [(d, k) for d, k in enumerate(expanded) if _is_int(k)]
    if not arrays:  # ints: Gather removes each dimension, last first
        for d, k in reversed(ints):
            idx = g.const(np.asarray(k, np.int64)) if type(k) is int else g.cast(k, np.int64)
            x = g.op("Gather", x, idx, axis=d)
            shape.pop(d)
            x = OnnxValue(x.name, tuple(shape), x.dtype)
        return x
    return _advanced(g, x, shape, expanded, arrays)


def _advanced(g: GraphBuilder, x: OnnxValue, shape: list, items: list, arrays: list) -> OnnxValue:
    """``x[items]`` where ``arrays`` are the ``(dim, integer array)`` items (NumPy's rules)."""
    dims = [d for d, _ in arrays]
    nb = max(_rank(a) for _, a in arrays)  # the broadcast index dimensions
    full = g.op("Shape", x)
    idx = []
    for d, a in arrays:  # negative indices count from the end
        a = g.cast(a, np.int64)
        size = g.op("Gather", full, g.scalar(d, np.int64), axis=0)
        idx.append(g.where(g.cmp("Less", a, 0), g.op("Add", a, size), a, like=a))
    if len(idx) > 1:  # broadcast the arrays against each other
        zero = None
        for a in idx:
            z = g.op("Mul", a, 0)
            zero = z if zero is None else g.op("Add", zero, z)
        idx = [g.op("Add", a, zero) for a in idx]
    rest = [d for d in range(len(items)) if d not in dims]
    xt = x if dims + rest == list(range(len(items))) else g.op("Transpose", x, perm=dims + rest)
    stacked = g.op("Concat", *[g.unsqueeze(a, [-1]) for a in idx], axis=-1)
    out = g.op("GatherND", xt, stacked)
    adjacent = dims == list(range(dims[0], dims[0] + len(dims)))
    before = sum(1 for d in rest if d < dims[0])
    if not adjacent or before == 0:
        return out
    # NumPy puts the broadcast dims where the (adjacent) arrays were: after `before` dims
    nrest = len(rest)
    perm = (
        [nb + j for j in range(before)] + list(range(nb)) + [nb + j for j in range(before, nrest)]
    )
    return g.op("Transpose", out, perm=perm)


def _rank(a: OnnxValue) -> int:
    if a.shape is None:
        raise ValueError("an index array of unknown rank cannot be exported")
    return len(a.shape)


def positions(g: GraphBuilder, shape: tuple) -> OnnxValue:
    """``arange(numel).reshape(shape)`` (int64); sizes may be dynamic."""
    dims = g.dims(shape)
    n = g.op("ReduceProd", dims, keepdims=0, shape=())
    flat = g.op("Range", g.scalar(0, np.int64), n, g.scalar(1, np.int64), shape=(None,))
    return g.op("Reshape", flat, dims, shape=tuple(shape), dtype=np.int64)


def write(g: GraphBuilder, base: OnnxValue, key: Any, value: Any, accumulate: bool) -> OnnxValue:
    """A copy of ``base`` with ``value`` (broadcast) written, or added, at ``key``."""
    pos = read(g, positions(g, base.shape), key)
    value = value if isinstance(value, OnnxValue) else g.scalar(value, base.dtype)
    value = g.cast(value, base.dtype)
    spread = g.op("Expand", value, g.op("Shape", pos))
    flat = g.op("Reshape", base, g.ints([-1]))
    where = g.op("Reshape", pos, g.ints([-1]))
    vals = g.op("Reshape", spread, g.ints([-1]))
    if accumulate:
        g.need_opset(16, "an accumulating index write (ScatterElements with reduction)")
    out = g.op(
        "ScatterElements", flat, where, vals, axis=0, reduction="add" if accumulate else None
    )
    return g.op("Reshape", out, g.op("Shape", base), shape=base.shape, dtype=base.dtype)

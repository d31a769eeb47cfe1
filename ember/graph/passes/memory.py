"""Memory planning: give intermediates reusable buffers (``Node.out_slot``) by liveness.

One linear scan over the node order. A value's buffer is *live* from its node until the
last read of it or of any view of it (:class:`~ember.graph.passes.analysis.Storage`). When a
buffer's last reader has run, the buffer returns to a pool keyed by ``(shape, dtype)``; a
later node with the same output shape and dtype takes it instead of a new one. A node may
also write straight into the buffer of an input that dies at that node (elementwise ops
only, and only when no other input is a view of that buffer): ``xp.add(t, c, out=t)``.

Never planned (``out_slot`` stays None):

* ops without an ``out=`` form (:func:`has_out`: the elementwise kernels of
  :data:`~ember.graph.passes.kernels.KERNELS` and the executor's out-capable lowerings);
* values that escape: outputs, update values and targets, inputs of in-place nodes, and
  anything whose memory such a value may share (a returned view of an intermediate keeps
  the intermediate out of the pool);
* impure or mutating nodes and the values they read (an in-place update's gradient),
  views, and 0-d values (nothing to gain).

Fused groups (:mod:`~ember.graph.passes.fuse`) are planned as a unit: a run of in-place
followers shares its head's buffer, and when the run's last value escapes none of the run
gets a buffer (the head then allocates a fresh array, which the followers fill in place and
which leaves the call).

``graph.meta["buffers"]`` maps each slot to its ``(shape, dtype)`` (shapes may hold
:class:`~ember.graph.ir.Sym`: resolve them per call signature); the executor allocates each
once per signature and passes it as ``out=``.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((4,), np.float32)
    >>> a = g.add_node("exp", [x], {}, (4,), np.float32)
    >>> b = g.add_node("sum", [a], {"dim": None, "keepdim": False, "dtype": None}, (), np.float32)
    >>> c = g.add_node("sin", [x], {}, (4,), np.float32)
    >>> g.outputs = [b, g.add_node("matmul", [c, c], {}, (), np.float32)]
    >>> g, changed = plan_memory(g)
    >>> [n.out_slot for n in g.nodes], g.meta["buffers"]
    ([0, None, 0, None], {0: ((4,), dtype('float32'))})
"""

from __future__ import annotations

from typing import Any

from ..ir import Graph, IRError, Node, Value
from .analysis import Storage, fresh_array_node, registry_pure
from .kernels import KERNELS

__all__ = ["plan_memory", "check_plan", "has_out"]


def has_out(node: Node) -> bool:
    """True when the executor can write ``node``'s result into a given buffer: an op with an
    ``out=`` kernel here (:data:`KERNELS`), or one the executor's own lowerings accept
    (:func:`ember.graph.kernels.supports_out`, e.g. 2-d ``matmul``).

    Example:
        >>> has_out(Node("exp", [], {})), has_out(Node("softmax", [], {}))
        (True, False)
    """
    if node.op in KERNELS:
        return True
    try:
        from ..kernels import supports_out
    except ImportError:  # pragma: no cover - the executor's table is part of ember
        return False
    try:
        return bool(supports_out(node))
    except Exception:  # a lowering that cannot judge this node: no buffer
        return False


def _key(v: Value) -> tuple:
    return (v.shape, v.dtype.str)


def _effect_inputs(graph: Graph, storage: Storage) -> set[Value]:
    """Storage classes read by impure or mutating nodes (which might keep what they read)."""
    return {
        storage.root(x)
        for n in graph.nodes
        if n.has_effects or not registry_pure(n.op)
        for x in n.inputs
        if isinstance(x, Value)
    }


def _candidate(n: Node, storage: Storage, effect_inputs: set[Value]) -> bool:
    out = n.output
    return (
        "region" not in n.meta  # a C region writes its own outputs
        and storage.root(out) not in effect_inputs
        and has_out(n)
        and fresh_array_node(n)
        and not storage.escapes(out)
        and not storage.is_mutated(out)
    )


def _class_ends(graph: Graph, storage: Storage) -> dict[Value, int]:
    """For each storage class (by root), the index of the last node that reads it."""
    end: dict[Value, int] = {}
    for i, n in enumerate(graph.nodes):
        r = storage.root(n.output)
        end[r] = max(end.get(r, i), i)
        for x in n.inputs:
            if isinstance(x, Value):
                r = storage.root(x)
                end[r] = max(end.get(r, i), i)
    return end


def _segments(graph: Graph) -> tuple[dict[Node, Node], dict[Node, list[Node]]]:
    """Fused in-place runs: follower -> previous member, and run start -> its members."""
    prev: dict[Node, Node] = {}
    for n in graph.nodes:
        p = n.meta.get("inplace")
        if p is None or not (0 <= p < len(n.inputs)):
            continue
        acc = n.inputs[p]
        if isinstance(acc, Value) and acc.producer is not None:
            prev[n] = acc.producer
    start: dict[Node, Node] = {}
    runs: dict[Node, list[Node]] = {}
    for n in graph.nodes:
        if n in prev:
            s = start.get(prev[n], prev[n])
            start[n] = s
            runs.setdefault(s, [s]).append(n)
    return start, runs


def plan_memory(graph: Graph) -> tuple[Graph, bool]:
    """Assign ``out_slot`` buffers by liveness (see the module docstring); returns
    ``(graph, changed)``.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("exp", [x], {}, (2,), np.float32)]
        >>> plan_memory(g)[0].nodes[0].out_slot is None  # an output is never planned
        True
    """
    storage = Storage(graph)
    end = _class_ends(graph, storage)
    start_of, runs = _segments(graph)
    effect_inputs = _effect_inputs(graph, storage)
    plannable = {
        s: all(_candidate(m, storage, effect_inputs) for m in members)
        for s, members in runs.items()
    }

    slot_of: dict[Node, int] = {}
    info: list[tuple] = []  # slot -> (shape, dtype)
    keys: list[tuple] = []
    free: dict[tuple, list[int]] = {}
    active: dict[int, int] = {}  # slot -> index of its last reader
    for i, n in enumerate(graph.nodes):
        for s in [s for s, e in active.items() if e < i]:
            del active[s]
            free.setdefault(keys[s], []).append(s)
        if n in start_of:  # an in-place follower: its run's buffer, if the run has one
            s = slot_of.get(start_of[n])
            if s is not None:
                slot_of[n] = s
            continue
        if n in runs:
            if not plannable[n]:
                continue
            life = end[storage.root(runs[n][-1].output)]
        elif _candidate(n, storage, effect_inputs):
            life = end[storage.root(n.output)]
        else:
            continue
        k = _key(n.output)
        s = _inplace_slot(n, i, k, slot_of, keys, active, storage)
        if s is None:
            pool = free.get(k)
            if pool:
                s = pool.pop()
            else:
                s = len(keys)
                keys.append(k)
                info.append((n.output.shape, n.output.dtype))
        slot_of[n] = s
        active[s] = max(active.get(s, -1), life)

    changed = False
    for n in graph.nodes:
        s = slot_of.get(n)
        if n.out_slot != s:
            n.out_slot = s
            changed = True
    buffers = {s: info[s] for s in range(len(info))}
    if (buffers or "buffers" in graph.meta) and graph.meta.get("buffers") != buffers:
        graph.meta["buffers"] = buffers
        changed = True
    return graph, changed


def _inplace_slot(
    n: Node,
    i: int,
    k: tuple,
    slot_of: dict[Node, int],
    keys: list[tuple],
    active: dict[int, int],
    storage: Storage,
) -> int | None:
    """A buffer ``n`` may overwrite: that of an input whose last reader is ``n`` itself
    (elementwise kernels only: element ``i`` is read before it is written)."""
    if n.op not in KERNELS:
        return None
    for x in n.inputs:
        if not isinstance(x, Value) or x.producer is None:
            continue
        s = slot_of.get(x.producer)
        if s is None or keys[s] != k or active.get(s) != i:
            continue
        r = storage.root(x)
        if all(y is x for y in n.inputs if isinstance(y, Value) and storage.root(y) is r):
            return s
    return None


def check_plan(graph: Graph) -> None:
    """Raise :class:`~ember.graph.ir.IRError` unless the memory plan is sound: planned nodes
    have ``out=`` kernels and the buffer's shape and dtype, and no two values live at once
    share a buffer (a node may take over the buffer of an input that dies at that node).

    Example:
        >>> check_plan(Graph())
    """
    storage = Storage(graph)
    end = _class_ends(graph, storage)
    buffers: dict[Any, Any] = graph.meta.get("buffers", {})
    holder: dict[int, tuple[Value, int]] = {}  # slot -> (value in it, last reader index)
    for i, n in enumerate(graph.nodes):
        s = n.out_slot
        if s is None:
            continue
        if not has_out(n):
            raise IRError(f"%{n.output.name}: {n.op} has no out= kernel but is planned")
        if s not in buffers or tuple(buffers[s][0]) != n.output.shape:
            raise IRError(f"%{n.output.name}: buffer {s} is missing or has another shape")
        if str(buffers[s][1]) != str(n.output.dtype):
            raise IRError(f"%{n.output.name}: buffer {s} has another dtype")
        if storage.escapes(n.output):
            raise IRError(f"%{n.output.name} escapes but is planned into buf{s}")
        prev = holder.get(s)
        if prev is not None:
            v, last = prev
            if last > i:
                raise IRError(f"buf{s}: %{n.output.name} overwrites %{v.name}, read later")
            if last == i:
                r = storage.root(v)
                reads = [y for y in n.inputs if isinstance(y, Value) and storage.root(y) is r]
                if any(y is not v for y in reads) or n.op not in KERNELS:
                    raise IRError(f"buf{s}: %{n.output.name} overwrites %{v.name} unsafely")
        holder[s] = (n.output, end[storage.root(n.output)])

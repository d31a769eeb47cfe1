"""Analyses shared by the passes: which values share memory, which memory is written in
place, and a hashable key for node attributes.

*Storage classes.* A view op (``reshape``, ``permute``, slicing ...) returns an array that
shares its input's memory. :class:`Storage` groups values into classes of possibly shared
memory (union-find over ``Node.aliases``, the tracer's observation, joined with the static
table :data:`VIEW_OPS` and the ``mutates`` positions of in-place ops, whose outputs are their
mutated inputs). A class is *mutated* when a node writes one of its values in place or a
``copy`` update overwrites one after the body; a class *escapes* when one of its values does
(:meth:`ember.graph.ir.Graph.escaping`).

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2, 3), np.float32)
    >>> y = g.add_node("reshape", [x], {"shape": (3, 2)}, (3, 2), np.float32, aliases=(0,))
    >>> z = g.add_node("neg", [y], {}, (3, 2), np.float32)
    >>> s = Storage(g); s.same(x, y), s.same(y, z)
    (True, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node, Sym, Value

__all__ = [
    "VIEW_OPS",
    "ANNOTATION_KEYS",
    "Storage",
    "freeze",
    "freeze_exact",
    "view_positions",
    "registry_pure",
    "fresh_array_node",
    "use_counts",
    "clear_annotations",
    "replace_inputs",
    "finish_rewrite",
]

# ops whose forward may return a view of (or the very array of) an input, whatever the tracer
# observed; a graph built by hand (or by a pass) may leave ``Node.aliases`` empty for them
VIEW_OPS = frozenset(
    {
        "reshape",
        "permute",
        "broadcast_to",
        "sum_to",
        "getitem",
        "slice",
        "flip",
        "to_device",
        "cat_or_view",  # the engine's join of slice gradients: a view when they are adjacent
    }
)


_REGISTRY: dict | None = None


def registry_pure(op: str) -> bool:
    """False when the registry declares ``op`` impure (random or effectful); True for unknown
    ops (the graph validator reports those).

    Example:
        >>> registry_pure("mul")
        True
    """
    global _REGISTRY
    if _REGISTRY is None:
        from ...ops.registry import REGISTRY

        _REGISTRY = REGISTRY
    spec = _REGISTRY.get(op)
    return spec is None or bool(spec.pure)


def fresh_array_node(node: Node) -> bool:
    """True when ``node`` computes a new array: pure (as traced and in the registry), writing
    and aliasing no input, not a view op, with a typed output of at least one dimension (what
    fusion and buffer reuse both require).

    Example:
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> y = g.add_node("neg", [x], {}, (2,), np.float32)
        >>> z = g.add_node("reshape", [y], {"shape": (2, 1)}, (2, 1), np.float32)
        >>> fresh_array_node(y.producer), fresh_array_node(z.producer)
        (True, False)
    """
    out = node.output
    return (
        node.pure
        and not node.mutates
        and not node.aliases
        and node.op not in VIEW_OPS
        and registry_pure(node.op)
        and out.dtype is not None
        and len(out.shape) > 0
    )


def view_positions(node: Node) -> tuple[int, ...]:
    """Input positions whose memory ``node``'s output may share (aliases, views, mutated).

    Example:
        >>> g = Graph(); x = g.add_input((4,), np.float32)
        >>> y = g.add_node("reshape", [x], {"shape": (2, 2)}, (2, 2), np.float32)
        >>> view_positions(y.producer)
        (0,)
    """
    ins = node.inputs
    if node.op in VIEW_OPS:  # every value input (aliased and mutated ones among them)
        if len(ins) == 1:
            return (0,) if isinstance(ins[0], Value) else ()
        return tuple([i for i, x in enumerate(ins) if isinstance(x, Value)])
    if not node.aliases and not node.mutates:
        return ()
    pos = set(node.aliases) | set(node.mutates)
    return tuple(sorted(i for i in pos if isinstance(ins[i], Value)))


class Storage:
    """Classes of values that may share memory, and which classes are written in place or
    escape the call (see the module docstring).

    Example:
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> y = g.add_node("neg", [x], {}, (2,), np.float32); g.outputs = [y]
        >>> s = Storage(g); s.escapes(y), s.escapes(x), s.is_mutated(x)
        (True, False, False)
    """

    def __init__(self, graph: Graph) -> None:
        self._parent: dict[Value, Value] = {}
        for n in graph.nodes:
            for i in view_positions(n):
                self._union(n.output, n.inputs[i])
        self._mutated: set[Value] = set()
        for n in graph.nodes:
            for i in n.mutates:
                x = n.inputs[i]
                if isinstance(x, Value):
                    self._mutated.add(self.root(x))
        for u in graph.updates:
            if u.kind == "copy":
                self._mutated.add(self.root(u.target))
        self._escaping = {self.root(v) for v in graph.escaping()}
        leaves = [*graph.inputs, *graph.captured, *graph.constants, *graph.scalars]
        self._external = {self.root(v) for v in leaves}

    def root(self, v: Value) -> Value:
        """The representative of ``v``'s class."""
        parent = self._parent
        r = parent.get(v)
        if r is None:  # (most values: alone in their class)
            return v
        if parent.get(r) is None:
            return r
        r = v
        while parent.get(r, r) is not r:
            r = parent[r]
        while parent.get(v, v) is not r:  # path compression
            parent[v], v = r, parent[v]
        return r

    def _union(self, a: Value, b: Value) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra is not rb:
            # keep the earlier-defined value as the root (ids grow along the graph)
            if rb.id < ra.id:
                ra, rb = rb, ra
            self._parent[rb] = ra

    def merge(self, a: Value, b: Value) -> None:
        """Record that ``a`` and ``b`` now share memory (a rewrite made one read the other):
        their classes join, with the union of their flags."""
        ra, rb = self.root(a), self.root(b)
        if ra is rb:
            return
        self._union(ra, rb)
        r = self.root(ra)
        for flags in (self._mutated, self._escaping, self._external):
            if ra in flags or rb in flags:
                flags.add(r)

    def same(self, a: Value, b: Value) -> bool:
        """True when ``a`` and ``b`` may share memory."""
        return self.root(a) is self.root(b)

    def is_mutated(self, v: Value) -> bool:
        """True when memory ``v`` may share is written in place (by a node or an update)."""
        return self.root(v) in self._mutated

    def escapes(self, v: Value) -> bool:
        """True when memory ``v`` may share outlives the call or is written in place."""
        return self.root(v) in self._escaping

    def is_external(self, v: Value) -> bool:
        """True when ``v``'s class holds an input, captured, constant or scalar value."""
        return self.root(v) in self._external

    def may_share(self, y: Value, x: Value) -> bool:
        """May a rewrite make ``y``'s readers read ``x`` instead (so that they share memory)?

        Yes when they already may share memory and neither is written in place; else only
        when neither class is written in place, and, if ``y`` escapes, ``x`` is a computed,
        non-escaping value whose memory no input, parameter or constant shares (returning
        it cannot expose or alias caller memory).
        """
        if self.is_mutated(x) or self.is_mutated(y):
            return False
        if self.same(x, y):
            return True
        if self.escapes(y):
            return x.kind == "node" and not self.escapes(x) and not self.is_external(x)
        return True


def use_counts(graph: Graph) -> dict[Value, int]:
    """How many node-input slots, outputs and update values read each value.

    Example:
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("mul", [x, x], {}, (2,), np.float32)]
        >>> use_counts(g)[x]
        2
    """
    counts: dict[Value, int] = {}
    for n in graph.nodes:
        for x in n.inputs:
            if isinstance(x, Value):
                counts[x] = counts.get(x, 0) + 1
    for v in graph.outputs:
        counts[v] = counts.get(v, 0) + 1
    for u in graph.updates:
        if u.value is not None:
            counts[u.value] = counts.get(u.value, 0) + 1
    return counts


_ARRAY_KEY_LIMIT = 4096


def freeze(x: Any) -> Any:
    """A hashable key equal for equal attribute values and different for values that can
    change a result (``1`` vs ``1.0`` vs ``True``, ``0.0`` vs ``-0.0``); objects it cannot
    compare by value get an identity key (never merged with anything else).

    Example:
        >>> freeze((1, slice(None, 2), np.float32)) == freeze((1, slice(None, 2), np.float32))
        True
        >>> freeze(1) == freeze(1.0), freeze(0.0) == freeze(-0.0)
        (False, False)
    """
    return _freeze(x, False)


def freeze_exact(x: Any) -> Any:
    """:func:`freeze`, or None when ``x`` holds anything that would get an identity key (a
    value that can only be compared by identity, so never merged).

    Example:
        >>> freeze_exact({"axis": (0, 1)}) == freeze({"axis": (0, 1)})
        True
        >>> freeze_exact({"buffer": [bytearray(2)]}) is None  # unhashable: identity only
        True
    """
    try:
        return _freeze(x, True)
    except _IdentityOnly:
        return None


class _IdentityOnly(Exception):
    """Raised by :func:`_freeze` in exact mode where it would give an identity key."""


def _identity(x: Any, exact: bool) -> tuple:
    if exact:
        raise _IdentityOnly
    return ("id", id(x))


def _freeze(x: Any, exact: bool) -> Any:
    t = type(x)  # the common exact types first (every pass keys every node's attributes)
    if t is int or t is str or t is bool:
        return (t.__name__, x)
    if t is float:
        return ("float", x.hex())
    if t is tuple:
        return ("tuple", tuple([_freeze(e, exact) for e in x]))
    if t is dict:
        if not x:
            return ("dict", ())
    elif x is None or x is Ellipsis:
        return (repr(x),)
    if isinstance(x, np.generic):  # before float: np.float64 is a float, but not weakly typed
        return ("npscalar", x.dtype.str, x.tobytes())
    if isinstance(x, bool | int | str | bytes):
        return (type(x).__name__, x)
    if isinstance(x, float):
        return ("float", x.hex())
    if isinstance(x, complex):
        return ("complex", x.real.hex(), x.imag.hex())
    if isinstance(x, Value):
        return ("value", x.id)
    if isinstance(x, Sym):
        return ("sym", x.name, x.coeff, x.offset)
    if isinstance(x, tuple | list):
        return (type(x).__name__, tuple(_freeze(e, exact) for e in x))
    if isinstance(x, dict):
        if not x:
            return ("dict", ())
        items = [(_freeze(k, exact), _freeze(v, exact)) for k, v in x.items()]
        try:
            items.sort()
        except TypeError:
            return _identity(x, exact)
        return ("dict", tuple(items))
    if isinstance(x, slice):
        return ("slice", _freeze(x.start, exact), _freeze(x.stop, exact), _freeze(x.step, exact))
    if isinstance(x, np.dtype):
        return ("dtype", x.str)
    if isinstance(x, type) and issubclass(x, np.generic):
        return ("dtype", np.dtype(x).str)
    if isinstance(x, np.ndarray):
        if x.size <= _ARRAY_KEY_LIMIT:
            return ("array", x.dtype.str, x.shape, np.ascontiguousarray(x).tobytes())
        return _identity(x, exact)
    try:
        hash(x)
    except TypeError:
        return _identity(x, exact)
    return ("obj", type(x).__module__, type(x).__qualname__, x)


ANNOTATION_KEYS = ("fused", "fused_index", "inplace", "region", "region_index", "region_layout")


def clear_annotations(graph: Graph) -> bool:
    """Drop the fusion marks and the memory plan (a rewrite may invalidate them); returns
    True when there was something to drop.

    Example:
        >>> clear_annotations(Graph())
        False
    """
    dropped = False
    for n in graph.nodes:
        if n.out_slot is not None:
            n.out_slot = None
            dropped = True
        for k in ANNOTATION_KEYS:
            if k in n.meta:
                del n.meta[k]
                dropped = True
    if graph.meta.pop("buffers", None):
        dropped = True
    return dropped


def replace_inputs(node: Node, subst: dict[Value, Value]) -> None:
    """Make ``node`` read the replacement of each replaced input (``subst``: old -> new).

    Example:
        >>> g = Graph(); x = g.add_input((2,), np.float32); y = g.add_input((2,), np.float32)
        >>> z = g.add_node("neg", [x], {}, (2,), np.float32)
        >>> replace_inputs(z.producer, {x: y}); z.producer.inputs[0] is y
        True
    """
    if subst:
        node.inputs = [subst.get(x, x) if isinstance(x, Value) else x for x in node.inputs]


def finish_rewrite(graph: Graph, kept: list[Node], subst: dict[Value, Value]) -> tuple[Graph, bool]:
    """End a pass that removed nodes: ``kept`` becomes the node list, the outputs and update
    values read their replacements (``subst``: old -> new), and the annotations the rewrite
    may have invalidated are cleared; returns ``(graph, True)`` (changed).

    Example:
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> y = g.add_node("neg", [x], {}, (2,), np.float32); g.outputs = [y]
        >>> _, changed = finish_rewrite(g, [], {y: x})
        >>> changed, g.outputs[0] is x, g.nodes
        (True, True, [])
    """
    graph.nodes = kept
    graph.outputs = [subst.get(v, v) for v in graph.outputs]
    for u in graph.updates:
        if u.value is not None:
            u.value = subst.get(u.value, u.value)
    clear_annotations(graph)
    return graph, True

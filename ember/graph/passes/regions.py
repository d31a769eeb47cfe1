"""Fusion regions for compiled C kernels: connected sets of elementwise nodes (and row
reductions with their elementwise prologue and epilogue) that one generated C function
computes in one pass over memory (:mod:`ember.graph.codegen_c` writes the C).

A region has one *iteration shape* ``S`` (static ints; graphs with a symbolic batch size keep
their Sym-shaped nodes out of regions). Its members are

* *full* nodes: elementwise ops of :data:`C_OPS` whose output has shape ``S``; their inputs
  are other full members, outside values that broadcast to ``S`` (float32, float64 or bool),
  Python scalars, or row values of the region in keepdim form;
* *reductions*: ``sum``, ``mean`` or ``amax`` over the last ``k`` dims of a full value (or
  of an outside value of shape ``S``), keepdim or not;
* *row* nodes: elementwise ops on row values (shape ``S[:-k]``, or with ``k`` trailing 1s),
  e.g. ``rsqrt(var + eps)`` in a hand-written layer norm.

Values read only inside the region are never materialized; a member value read elsewhere
(another node, an output, an update) is written by the kernel. A region needs two members or
more, is convex (no node outside it reads one of its values before its last member), and
has no in-place write between its first and last member; its members are moved next to each
other (before the last one), so the executor can run it where its last member stood.

Annotations: ``node.meta["region"]`` (region id) and ``node.meta["region_index"]``; an
executor that ignores them runs the members one by one, which is also correct.
:func:`regions` marks, :func:`region_groups` reads them back.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); a = g.add_input((4, 8), np.float32); b = g.add_input((8,), np.float32)
    >>> t = g.add_node("mul", [a, b], {}, (4, 8), np.float32)
    >>> g.outputs = [g.add_node("tanh", [t], {}, (4, 8), np.float32)]
    >>> g, changed = regions(g)
    >>> [(r.id, [n.op for n in r.nodes], r.shape, r.rows) for r in region_groups(g)]
    [(0, ['mul', 'tanh'], (4, 8), 1)]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..ir import Graph, Node, Value
from .analysis import fresh_array_node, registry_pure

__all__ = ["regions", "region_groups", "Region", "C_OPS", "REDUCTIONS", "MAX_REDUCED_ROW"]

_UNARY = "neg exp log tanh sqrt rsqrt abs relu sigmoid silu gelu square reciprocal cast"
_BINARY = "add sub mul div maximum minimum pow leaky_relu"
_COMPARE = "gt lt ge le eq ne"
_GRADS = "relu_backward tanh_backward sigmoid_backward silu_backward gelu_backward"
C_OPS = frozenset(f"{_UNARY} {_BINARY} {_COMPARE} {_GRADS} where clamp hardtanh".split())
COMPARE = frozenset(_COMPARE.split())
REDUCTIONS = frozenset({"sum", "mean", "amax"})
MAX_REDUCED_ROW = 8192  # a reduction region's row may need scratch rows on the C stack
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_TYPES = (*_FLOATS, np.dtype(bool))


class Region(NamedTuple):
    """One region: ``id``, ``nodes`` (execution order), iteration ``shape`` and ``rows``: the
    number of trailing dims one C row covers (the reduced dims when ``reduces``).

    Example:
        >>> Region(0, (), (2, 3), 1, False).rows
        1
    """

    id: int
    nodes: tuple[Node, ...]
    shape: tuple[int, ...]
    rows: int
    reduces: bool


def _static(shape: tuple) -> bool:
    return all(isinstance(d, int) for d in shape)


def _broadcasts(shape: tuple, to: tuple) -> bool:
    if len(shape) > len(to):
        return False
    return all(a in (1, b) for a, b in zip(shape[::-1], to[::-1]))


def _scalar_ok(x: object) -> bool:
    return isinstance(x, bool | int | float) and not isinstance(x, np.ndarray)


def _elementwise(n: Node) -> bool:
    """An elementwise node the C code generator can write."""
    out = n.output
    if n.op not in C_OPS or not fresh_array_node(n) or not _static(out.shape):
        return False
    if out.numel == 0 or out.dtype not in (_TYPES if n.op in COMPARE else _FLOATS):
        return False
    for i, x in enumerate(n.inputs):
        if isinstance(x, Value):
            if x.dtype not in _TYPES or not _static(x.shape) or not _broadcasts(x.shape, out.shape):
                return False
            if n.op == "pow" and i == 1:
                return False  # only Python-scalar exponents
        elif not (_scalar_ok(x) or (x is None and n.op == "clamp" and i > 0)):
            return False
    a = n.attrs
    if n.op == "leaky_relu" and len(n.inputs) < 2 and not _scalar_ok(a.get("negative_slope")):
        return False
    if n.op in ("gelu", "gelu_backward") and a.get("approximate") not in ("none", "tanh"):
        return False
    if n.op == "cast" and np.dtype(a.get("dtype")) not in _FLOATS:
        return False
    if n.op == "hardtanh" and not (_scalar_ok(a.get("min_val")) and _scalar_ok(a.get("max_val"))):
        return False
    return True


def reduced_dims(n: Node) -> int | None:
    """How many trailing dims reduction ``n`` reduces (None: not a row reduction we fuse).

    Example:
        >>> g = Graph(); x = g.add_input((2, 3), np.float32)
        >>> s = g.add_node("sum", [x], {"dim": (1,), "keepdim": True, "dtype": None}, (2, 1),
        ...                np.float32)
        >>> reduced_dims(s.producer)
        1
    """
    if n.op not in REDUCTIONS or len(n.inputs) != 1 or n.mutates or n.aliases or not n.pure:
        return None  # (fresh_array_node, but a full reduction's 0-d result is welcome)
    if not registry_pure(n.op):
        return None
    x = n.inputs[0]
    if not isinstance(x, Value) or x.dtype not in _FLOATS or n.output.dtype != x.dtype:
        return None
    if not x.shape or not _static(x.shape) or not x.numel or n.attrs.get("dtype") is not None:
        return None
    nd, dim = len(x.shape), n.attrs.get("dim")
    dims = tuple(range(nd)) if dim is None else tuple(sorted(d % nd for d in dim))
    k = len(dims)
    if not k or dims != tuple(range(nd - k, nd)) or math.prod(x.shape[nd - k :]) < 2:
        return None
    if math.prod(x.shape[nd - k :]) > MAX_REDUCED_ROW:
        return None
    want = x.shape[: nd - k] + ((1,) * k if n.attrs.get("keepdim") else ())
    return k if tuple(n.output.shape) == want else None


def _row_ok(shape: tuple, full: tuple, k: int) -> bool:
    """An outside input of a full node: over the row (last ``k`` dims) it is either whole or
    broadcast, so a row of it is contiguous or one value."""
    aligned = (1,) * (len(full) - len(shape)) + tuple(shape)
    tail = aligned[len(full) - k :]
    return tail == tuple(full[len(full) - k :]) or all(d == 1 for d in tail)


class _Build:
    __slots__ = ("members", "shape", "k", "values", "ext")

    def __init__(self, shape: tuple, k: int) -> None:
        self.members: list[Node] = []
        self.shape, self.k = shape, k
        self.values: set[Value] = set()
        self.ext: list[tuple] = []  # shapes of outside inputs of full nodes


def _place(n: Node, reg: _Build) -> tuple[tuple, int, list] | None:
    """Can ``n`` join ``reg``? Returns (shape, k, new outside full-input shapes) or None."""
    S, k = reg.shape, reg.k
    keep = S[: len(S) - k] + (1,) * k if k else None
    red = reduced_dims(n)
    ins = [x for x in n.inputs if isinstance(x, Value)]
    if red is not None:
        x = ins[0]
        if x.shape != S or (k and red != k) or (x in reg.values and not _is_full(x, S)):
            return None
        return S, red, [] if x in reg.values else [x.shape]
    out = n.output.shape
    if out == S:  # a full node
        ext = []
        for x in ins:
            if x in reg.values:
                if x.shape != S and not (k and x.shape == keep):
                    return None
            elif x.ndim:
                ext.append(x.shape)
        return S, k, ext
    if k and out in (S[: len(S) - k], keep):  # a row node
        for x in ins:
            if x in reg.values and x.shape != out:
                return None
        if not any(x in reg.values for x in ins):
            return None
        return S, k, []
    return None


def _is_full(x: Value, S: tuple) -> bool:
    return x.shape == S and not (x.producer is not None and reduced_dims(x.producer))


def _find(graph: Graph) -> list[_Build]:
    nodes = graph.nodes
    pos = {n: i for i, n in enumerate(nodes)}
    writes = [0]
    for n in nodes:
        writes.append(writes[-1] + (1 if n.mutates else 0))
    readers: dict[Value, list[Node]] = {}
    for n in nodes:
        for x in n.inputs:
            if isinstance(x, Value):
                readers.setdefault(x, []).append(n)
    owner: dict[Value, _Build] = {}
    out: list[_Build] = []
    for i, n in enumerate(nodes):
        red = reduced_dims(n)
        if red is None and not _elementwise(n):
            continue
        ins = [x for x in n.inputs if isinstance(x, Value)]
        cands = list(dict.fromkeys(owner[x] for x in ins if x in owner))
        options = ([cands] if len(cands) > 1 else []) + [[c] for c in cands]
        joined = None
        for opt in options:
            joined = _try(opt, n, i, pos, writes, readers)
            if joined is not None:
                for c in opt:
                    out.remove(c)
                break
        if joined is None:
            joined = _Build(ins[0].shape if red is not None else n.output.shape, red or 0)
            joined.members.append(n)
            joined.values.add(n.output)
            joined.ext = [x.shape for x in ins if x.ndim]
        out.append(joined)
        for m in joined.members:
            owner[m.output] = joined
    return [r for r in out if len(r.members) >= 2]


def _try(regs: list[_Build], n: Node, i: int, pos: dict, writes: list, readers: dict):
    S = regs[0].shape
    ks = {r.k for r in regs if r.k}
    if any(r.shape != S for r in regs) or len(ks) > 1:
        return None
    union = _Build(S, ks.pop() if ks else 0)
    for r in regs:
        union.members += r.members
        union.values |= r.values
        union.ext += r.ext
    placed = _place(n, union)
    if placed is None:
        return None
    _, k, ext = placed
    allext = union.ext + ext
    if k and not all(_row_ok(sh, S, k) for sh in allext):  # a reduction fixes the row
        return None
    members = sorted(union.members, key=pos.__getitem__)
    first = pos[members[0]]
    inside = set(members) | {n}
    for m in members:
        for r in readers.get(m.output, ()):
            if r not in inside and pos[r] < i:
                return None
    if writes[i] - writes[first] > 0:
        return None
    union.members = members + [n]
    union.values.add(n.output)
    union.k, union.ext = k, allext
    return union


def _rows(reg: _Build) -> int:
    """Trailing dims one row covers: the reduced dims, else the longest suffix over which
    every outside input is whole or broadcast."""
    if reg.k:
        return reg.k
    S = reg.shape
    r = 1
    while r < len(S) and all(_row_ok(sh, S, r + 1) for sh in reg.ext):
        r += 1
    return r


def region_groups(graph: Graph) -> list[Region]:
    """The regions marked on ``graph`` by :func:`regions`, by id.

    Example:
        >>> region_groups(Graph())
        []
    """
    members: dict[int, list[tuple[int, Node]]] = {}
    for n in graph.nodes:
        rid = n.meta.get("region")
        if rid is not None:
            members.setdefault(rid, []).append((n.meta.get("region_index", 0), n))
    out = []
    for rid in sorted(members):
        ns = tuple(n for _, n in sorted(members[rid], key=lambda p: p[0]))
        shape, rows, reduces = ns[0].meta["region_layout"]
        out.append(Region(rid, ns, shape, rows, reduces))
    return out


_KEYS = ("region", "region_index", "region_layout")


def regions(graph: Graph) -> tuple[Graph, bool]:
    """Mark C fusion regions (see the module docstring) and gather their members; returns
    ``(graph, changed)``.

    Example:
        >>> g = Graph(); x = g.add_input((3,), np.float64)
        >>> g.outputs = [g.add_node("exp", [x], {}, (3,), np.float64)]
        >>> regions(g)[1]  # one node is no region
        False
    """
    found = _find(graph)
    pos = {n: i for i, n in enumerate(graph.nodes)}
    for r in found:
        r.members.sort(key=pos.__getitem__)
    found.sort(key=lambda r: pos[r.members[-1]])
    marks: dict[Node, tuple] = {}
    for rid, r in enumerate(found):
        layout = (r.shape, _rows(r), bool(r.k))
        for idx, m in enumerate(r.members):
            marks[m] = (rid, idx, layout)
    changed = False
    for n in graph.nodes:
        new = marks.get(n)
        old = tuple(n.meta.get(k) for k in _KEYS)
        if new is None:
            if any(v is not None for v in old):
                for k in _KEYS:
                    n.meta.pop(k, None)
                changed = True
        elif old != new:
            n.meta.update(zip(_KEYS, new))
            changed = True
    last = {r.members[-1]: r.members for r in found}
    order: list[Node] = []
    for n in graph.nodes:
        if n in marks and n not in last:
            continue
        order.extend(last.get(n, (n,)))
    if order != graph.nodes:
        graph.nodes = order
        for n in graph.nodes:
            n.out_slot = None
        graph.meta.pop("buffers", None)
        changed = True
    return graph, changed

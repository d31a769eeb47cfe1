"""Fusion of elementwise chains: mark runs of elementwise ops that can compute in place into
one array, so the executor emits them as one block with one temporary.

A *fused group* is a head node followed by one or more *followers*. The head is any pure
elementwise op (:data:`~ember.graph.passes.kernels.ELEMENTWISE`); each follower is an
elementwise op with an ``out=`` kernel (:data:`~ember.graph.passes.kernels.KERNELS`) that
reads the previous member's output, its *accumulator*, which

* nothing else reads (not another node, not an output or update, not a view),
* has exactly the follower's output shape and dtype (no broadcasting growth, no promotion),
  and is not 0-d.

So the follower may overwrite the accumulator: ``t = xp.multiply(a, b); xp.add(t, c,
out=t); xp.tanh(t, out=t)`` computes ``tanh(a * b + c)`` with one array instead of three.
A tree such as ``(a*b) + (c*d)`` becomes two groups: ``c*d`` ends its own group and is an
ordinary input of the other group's ``add``.

Annotations (in ``Node.meta``; see :mod:`ember.graph.passes` for what the executor does):
``meta["fused"]`` the group id, ``meta["fused_index"]`` the position in the group (0 is the
head), ``meta["inplace"]`` (followers only) the input position of the accumulator that the
node overwrites. :func:`fusion_groups` reads them back; :func:`fused_steps` lists a
group's ``(op, in_place)`` steps.

Members are moved next to each other (a member moves down to just before the next one) when
no node in between writes memory in place; otherwise the group is left spread out, which is
still correct: the annotations are per node.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); a = g.add_input((4,), np.float32); b = g.add_input((4,), np.float32)
    >>> t = g.add_node("mul", [a, b], {}, (4,), np.float32)
    >>> u = g.add_node("add", [t, 1.0], {}, (4,), np.float32)
    >>> g.outputs = [g.add_node("tanh", [u], {}, (4,), np.float32)]
    >>> g, changed = fuse(g)
    >>> [fused_steps(grp) for grp in fusion_groups(g)]
    [[('mul', False), ('add', True), ('tanh', True)]]
"""

from __future__ import annotations

from typing import NamedTuple

from ..ir import Graph, Node, Value
from .analysis import Storage, fresh_array_node, use_counts
from .kernels import ELEMENTWISE, KERNELS

__all__ = ["fuse", "FusedGroup", "fusion_groups", "fused_steps"]


class FusedGroup(NamedTuple):
    """One fused chain: its ``id``, member ``nodes`` in execution order, and for each the
    accumulator input position it overwrites (``inplace``; None for the head).

    Example:
        >>> FusedGroup(0, (), ()).nodes
        ()
    """

    id: int
    nodes: tuple[Node, ...]
    inplace: tuple[int | None, ...]

    @property
    def output(self) -> Value:
        """The value the group computes (the last member's output)."""
        return self.nodes[-1].output


def fusion_groups(graph: Graph) -> list[FusedGroup]:
    """The fused groups marked on ``graph`` (by :func:`fuse`), ordered by id.

    Example:
        >>> fusion_groups(Graph())
        []
    """
    members: dict[int, list[tuple[int, Node]]] = {}
    for n in graph.nodes:
        gid = n.meta.get("fused")
        if gid is not None:
            members.setdefault(gid, []).append((n.meta.get("fused_index", 0), n))
    out = []
    for gid in sorted(members):
        ms = [n for _, n in sorted(members[gid], key=lambda p: p[0])]
        out.append(FusedGroup(gid, tuple(ms), tuple(n.meta.get("inplace") for n in ms)))
    return out


def fused_steps(group: FusedGroup) -> list[tuple[str, bool]]:
    """The group's steps as ``(op name, computes in place into its accumulator)``.

    Example:
        >>> fused_steps(FusedGroup(0, (), ()))
        []
    """
    return [(n.op, pos is not None) for n, pos in zip(group.nodes, group.inplace)]


def _member(n: Node) -> bool:
    return n.op in ELEMENTWISE and fresh_array_node(n) and "region" not in n.meta


def _accumulator(n: Node, tails: dict[Node, list], counts: dict, storage: Storage) -> int | None:
    """The input position of ``n`` it may overwrite in place, or None."""
    if n.op not in KERNELS:
        return None
    out = n.output
    for p, x in enumerate(n.inputs):
        if not isinstance(x, Value) or x.kind != "node" or x.producer not in tails:
            continue
        uses = sum(1 for y in n.inputs if y is x)
        if counts.get(x, 0) != uses:
            continue  # read elsewhere too (another node, an output, an update)
        if x.shape != out.shape or x.dtype != out.dtype:
            continue
        if storage.escapes(x) or storage.is_mutated(x):
            continue
        return p
    return None


def _find_groups(graph: Graph) -> list[list[tuple[Node, int | None]]]:
    storage = Storage(graph)
    counts = use_counts(graph)
    tails: dict[Node, list[tuple[Node, int | None]]] = {}  # last member -> its chain
    for n in graph.nodes:
        if not _member(n):
            continue
        p = _accumulator(n, tails, counts, storage)
        if p is None:
            tails[n] = [(n, None)]
        else:
            chain = tails.pop(n.inputs[p].producer)
            chain.append((n, p))
            tails[n] = chain
    return [chain for chain in tails.values() if len(chain) > 1]


def _gather(graph: Graph, chains: list[list[Node]]) -> bool:
    """Move members down next to their follower where no in-place write lies between (one
    pass over the node list)."""
    nodes = graph.nodes
    pos = {n: i for i, n in enumerate(nodes)}
    writes = [0]  # writes[i]: how many nodes before position i write memory in place
    for n in nodes:
        writes.append(writes[-1] + (1 if n.mutates else 0))
    anchor_of: dict[Node, Node] = {}  # moved member -> the member it is placed before
    for chain in chains:
        anchor = chain[-1]
        for m in reversed(chain[:-1]):
            i, j = pos[m], pos[anchor]
            if j > i + 1 and writes[j] - writes[i + 1] == 0:
                anchor_of[m] = anchor
            else:
                anchor = m
    if not anchor_of:
        return False
    pending: dict[Node, list[Node]] = {}
    for n in nodes:  # chain order: earlier members are seen first
        a = anchor_of.get(n)
        if a is not None:
            pending.setdefault(a, []).append(n)
    order: list[Node] = []
    for n in nodes:
        if n in anchor_of:
            continue
        order.extend(pending.get(n, ()))
        order.append(n)
    moved = order != nodes
    graph.nodes = order
    return moved


def fuse(graph: Graph) -> tuple[Graph, bool]:
    """Mark fused elementwise groups (and gather their members); returns ``(graph, changed)``.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("exp", [x], {}, (2,), np.float32)]
        >>> fuse(g)[1]  # one op is not a chain
        False
    """
    chains = _find_groups(graph)
    moved = _gather(graph, [[n for n, _ in chain] for chain in chains])
    position = {n: i for i, n in enumerate(graph.nodes)}
    chains.sort(key=lambda c: position[c[0][0]])
    marks: dict[Node, tuple[int, int, int | None]] = {}
    for gid, chain in enumerate(chains):
        for idx, (n, p) in enumerate(chain):
            marks[n] = (gid, idx, p)
    changed = moved
    for n in graph.nodes:
        new = marks.get(n)
        old = (n.meta.get("fused"), n.meta.get("fused_index"), n.meta.get("inplace"))
        if new is None:
            if any(v is not None for v in old):
                for k in ("fused", "fused_index", "inplace"):
                    n.meta.pop(k, None)
                changed = True
            continue
        if old != new:
            n.meta["fused"], n.meta["fused_index"] = new[0], new[1]
            if new[2] is None:
                n.meta.pop("inplace", None)
            else:
                n.meta["inplace"] = new[2]
            changed = True
    if moved:  # a memory plan made for the old order no longer holds
        for n in graph.nodes:
            n.out_slot = None
        graph.meta.pop("buffers", None)
    return graph, changed

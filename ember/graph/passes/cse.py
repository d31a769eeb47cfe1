"""Common-subexpression elimination: compute each pure expression once.

Two nodes are the same expression when they apply the same op to the same inputs with equal
attributes (compared with :func:`~ember.graph.passes.analysis.freeze`: ``1``, ``1.0`` and
``True`` differ, so do ``0.0`` and ``-0.0``; tuples, slices, dtypes and :class:`Sym` compare
by value) and give the same shape and dtype. The later node is dropped and its readers read
the earlier one. Never merged:

* impure nodes (``dropout_mask`` draws a new mask each time) and in-place updates;
* reads on different sides of an in-place write: an input's key carries the *version* of its
  memory, bumped by every node that mutates it (``p * 2`` before and after
  ``sgd_update(p, ...)`` are different values);
* values whose memory is written in place anywhere (merging would let one write reach both);
* two values that both leave the call (two outputs would become one array).

Small constants with equal contents (same dtype, shape and bytes) are merged first, so
expressions over equal constants merge too.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2,), np.float32)
    >>> a = g.add_node("exp", [x], {}, (2,), np.float32)
    >>> b = g.add_node("exp", [x], {}, (2,), np.float32)
    >>> g.outputs = [g.add_node("add", [a, b], {}, (2,), np.float32)]
    >>> g, changed = cse(g); print(g.nodes[-1].format())
    %v4: f32[2] = add(%v2, %v2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node, Value
from .analysis import (
    Storage,
    finish_rewrite,
    freeze,
    freeze_exact,
    registry_pure,
    replace_inputs,
)

__all__ = ["cse", "CONST_MERGE_LIMIT"]

CONST_MERGE_LIMIT = 4096  # constants up to this many elements are compared by contents


def cse(graph: Graph) -> tuple[Graph, bool]:
    """Merge repeated pure expressions and equal small constants (in place); returns
    ``(graph, changed)``.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((2,), np.float32); g.outputs = [x]
        >>> cse(g)[1]
        False
    """
    storage = Storage(graph)
    subst: dict[Value, Value] = {}

    consts: list[Value] = []
    seen_consts: dict[Any, Value] = {}
    for c in graph.constants:
        key = _const_key(c, storage)
        if key is not None:
            first = seen_consts.get(key)
            if first is not None:
                subst[c] = first
                storage.merge(c, first)
                continue
            seen_consts[key] = c
        consts.append(c)

    version: dict[Value, int] = {}
    table: dict[Any, Node] = {}
    kept: list[Node] = []
    for n in graph.nodes:
        replace_inputs(n, subst)
        if _eligible(n, storage):
            key = _node_key(n, storage, version)
            if key is not None:
                first = table.get(key)
                if first is None:
                    table[key] = n
                elif not (storage.escapes(first.output) and storage.escapes(n.output)):
                    subst[n.output] = first.output
                    storage.merge(n.output, first.output)
                    continue
        kept.append(n)
        for i in n.mutates:
            x = n.inputs[i]
            if isinstance(x, Value):
                r = storage.root(x)
                version[r] = version.get(r, 0) + 1

    if not subst:
        return graph, False
    graph.constants = consts
    return finish_rewrite(graph, kept, subst)


def _eligible(n: Node, storage: Storage) -> bool:
    return n.pure and not n.mutates and registry_pure(n.op) and not storage.is_mutated(n.output)


def _node_key(n: Node, storage: Storage, version: dict[Value, int]) -> Any:
    ins = []
    for x in n.inputs:
        if isinstance(x, Value):
            ins.append(("v", x.id, version.get(storage.root(x), 0)))
        else:
            k = freeze(x)
            if k[0] == "id":  # an object compared by identity only: keep, but never merge
                return None
            ins.append(k)
    attrs = freeze_exact(n.attrs)
    if attrs is None:
        return None
    out = n.output
    return (
        n.op,
        tuple(ins),
        attrs,
        freeze(out.shape),
        None if out.dtype is None else out.dtype.str,
    )


def _const_key(c: Value, storage: Storage) -> Any:
    data = c.data
    if not isinstance(data, np.ndarray) or data.size > CONST_MERGE_LIMIT:
        return None
    if storage.is_mutated(c) or storage.escapes(c):
        return None
    device = c.meta.get("device")
    return (data.dtype.str, data.shape, np.ascontiguousarray(data).tobytes(), repr(device))

"""Constant folding: evaluate, once, the pure nodes whose inputs are all constants.

A node folds when it is pure (and the registry agrees), every Value input is a ``"const"``
(Python scalars and None are fine; ``input``, ``captured`` and ``scalar`` values never fold:
they change between calls), no input's memory is written in place, nothing in its attributes
or shape is dynamic (:class:`~ember.graph.ir.Sym`), its result has at most
:data:`FOLD_LIMIT` elements (folding must not bloat the graph) and its output does not leave
the call (a returned constant would hand the caller the graph's own array). The op's
registry forward runs on the constants' array module (NumPy on the CPU) and must give the
node's recorded shape and dtype, else the node stays. Each folded result becomes a new
constant holding its own copy of the data; constants left unused are dropped by
:func:`~ember.graph.passes.dce.dce`.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2,), np.float32)
    >>> c = g.add_const(np.array([1.0, 2.0], np.float32))
    >>> d = g.add_node("mul", [c, 3.0], {}, (2,), np.float32)
    >>> g.outputs = [g.add_node("add", [x, d], {}, (2,), np.float32)]
    >>> g, changed = fold(g); [n.op for n in g.nodes], g.nodes[0].inputs[1].data.tolist()
    (['add'], [3.0, 6.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node, Value
from ..ir_types import has_sym
from .analysis import Storage, finish_rewrite, registry_pure, replace_inputs

__all__ = ["fold", "FOLD_LIMIT"]

FOLD_LIMIT = 1 << 20  # results with more elements stay computed at run time

_NEVER_FOLD = frozenset({"to_device"})  # moves data between devices: keep it explicit


def fold(graph: Graph, *, limit: int | None = None) -> tuple[Graph, bool]:
    """Replace foldable nodes by constants (in place); returns ``(graph, changed)``.
    ``limit`` overrides :data:`FOLD_LIMIT`.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("exp", [x], {}, (2,), np.float32)]
        >>> fold(g)[1]  # an input is not a constant
        False
    """
    from ...ops.registry import REGISTRY

    limit = FOLD_LIMIT if limit is None else limit
    storage = Storage(graph)
    subst: dict[Value, Value] = {}
    kept: list[Node] = []
    for n in graph.nodes:
        replace_inputs(n, subst)
        data = _try_fold(n, storage, REGISTRY, limit)
        if data is None:
            kept.append(n)
            continue
        c = graph.add_const(data, label=n.output.label)
        devices = [x.meta["device"] for x in n.value_inputs if "device" in x.meta]
        if devices:
            c.meta["device"] = devices[0]
        subst[n.output] = c
    if not subst:
        return graph, False
    return finish_rewrite(graph, kept, subst)


def _try_fold(n: Node, storage: Storage, registry: dict, limit: int) -> Any:
    out = n.output
    if not n.pure or n.mutates or not registry_pure(n.op) or n.op in _NEVER_FOLD:
        return None
    if n.op not in registry or out.dtype is None:
        return None
    numel = out.numel
    if numel is None or numel > limit or has_sym(n.attrs):
        return None
    if storage.escapes(out):
        return None
    args = []
    for x in n.inputs:
        if isinstance(x, Value):
            if x.kind != "const" or x.data is None or storage.is_mutated(x):
                return None
            args.append(x.data)
        else:
            args.append(x)
    xp = _array_module(args)
    try:
        result = registry[n.op].forward(xp, *args, **n.attrs)
        result = xp.array(result, copy=True)  # own memory: never a view of another constant
    except Exception:  # an op that cannot run here stays in the graph (and fails at run time)
        return None
    if tuple(result.shape) != out.shape or result.dtype != out.dtype:
        return None
    return result


def _array_module(args: list) -> Any:
    for a in args:
        if hasattr(a, "shape") and not isinstance(a, np.ndarray | np.generic):
            from ...device import array_module

            return array_module(a)
    return np

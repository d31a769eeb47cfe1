"""Dead-code elimination: drop nodes and constants nothing needs.

A node is needed when it has effects (``pure=False``, a non-empty ``mutates``, or an op the
registry declares impure: a dropout mask must still draw, an optimizer update must still
write) or when its output is read by a needed node, returned, or used by an update. One
backward sweep over the node list finds them all; constants no node, output or update reads
are dropped too. Inputs, captured values and scalars stay: they are the call's signature.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2,), np.float32)
    >>> dead = g.add_node("exp", [x], {}, (2,), np.float32)
    >>> g.outputs = [g.add_node("neg", [x], {}, (2,), np.float32)]
    >>> g, changed = dce(g); [n.op for n in g.nodes], changed
    (['neg'], True)
"""

from __future__ import annotations

from ..ir import Graph, Value
from .analysis import registry_pure

__all__ = ["dce"]


def dce(graph: Graph) -> tuple[Graph, bool]:
    """Remove unused pure nodes and unused constants (in place); returns ``(graph, changed)``.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((2,), np.float32); g.outputs = [x]
        >>> dce(g)[1]
        False
    """
    live: set[Value] = set(graph.outputs)
    for u in graph.updates:
        live.add(u.target)
        if u.value is not None:
            live.add(u.value)
    kept = []
    for n in reversed(graph.nodes):
        if n.output in live or n.has_effects or not registry_pure(n.op):
            kept.append(n)
            live.update(x for x in n.inputs if isinstance(x, Value))
    kept.reverse()
    changed = len(kept) != len(graph.nodes)
    graph.nodes = kept
    consts = [c for c in graph.constants if c in live]
    if len(consts) != len(graph.constants):
        graph.constants = consts
        changed = True
    return graph, changed

"""Chains of linear layers on a few rows become one ``linear_chain`` node.

A batch-1 (or few-row) MLP is a chain ``linear -> relu -> linear -> relu -> linear`` (or
with tanh, sigmoid, SiLU or GELU: :data:`~ember.ops.nn.linear.CHAIN_ACTIVATIONS`). Each
layer is then a matrix-vector product that streams its weights once; run one op at a time,
each pays a BLAS call, a bias pass and an activation pass, and wakes the BLAS threads
again. The
``linear_chain`` op runs the whole chain in one C call with one parallel region
(:mod:`ember.kernels.gemv`): W4's MLP went from 55 us (NumPy's three products with their
bias and ReLU) to 35-45 us.

The pass looks for at least :data:`MIN_LAYERS` ``linear`` nodes, each reading the previous
one's result (directly, or through one of those activations), where

* the input has at most :data:`~ember.kernels.gemv.MAX_ROWS` rows (static leading dims),
  is float32 or float64, and every weight is 2-D and every bias ``(N,)`` or None of that
  dtype;
* every value between two members has that next member as its only reader, is not
  returned, and is written in place by nothing (a graph that computes gradients reads the
  activations again in its backward, so training steps are never rewritten);
* no weight, bias or chain input is written in place anywhere in the graph (the chain reads
  them all where its last member stood).

The last member becomes the ``linear_chain`` node (its output value, and so its readers,
stay) with ``acts`` naming each layer's activation, and the other members go. The node
keeps the first layer's source line. Run only where C kernels serve the graph (see
:func:`ember.graph.passes.optimize`).

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((1, 4), np.float32)
    >>> w1 = g.add_input((8, 4), np.float32); w2 = g.add_input((2, 8), np.float32)
    >>> h = g.add_node("linear", [x, w1, None], {}, (1, 8), np.float32)
    >>> r = g.add_node("relu", [h], {}, (1, 8), np.float32)
    >>> g.outputs = [g.add_node("linear", [r, w2, None], {}, (1, 2), np.float32)]
    >>> g, changed = chain(g)
    >>> [(n.op, n.attrs) for n in g.nodes]
    [('linear_chain', {'acts': ('relu', 'none')})]
"""

from __future__ import annotations

import math

import numpy as np

from ...kernels.gemv import MAX_LAYERS, MAX_ROWS
from ...ops.nn.linear import CHAIN_ACTIVATIONS
from ..ir import Graph, Node, Value
from .analysis import Storage, clear_annotations, use_counts

__all__ = ["chain", "MIN_LAYERS"]

MIN_LAYERS = 2  # one layer alone ran no faster in the kernel than in OpenBLAS
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _operand(v: object, dtype: np.dtype, shape: tuple | None, storage: Storage) -> bool:
    """True when ``v`` is a Value of ``dtype`` (and ``shape``, when given) that nothing writes
    in place."""
    return (
        isinstance(v, Value)
        and v.dtype == dtype
        and (shape is None or v.shape == shape)
        and not storage.is_mutated(v)
    )


def _layer(node: Node, storage: Storage) -> bool:
    """True when ``node`` is a ``linear`` the chain kernel can run (see the module docstring)."""
    if node.op != "linear" or len(node.inputs) != 3 or node.attrs:
        return False
    x, w, b = node.inputs
    if not isinstance(x, Value) or x.dtype not in _FLOATS or x.ndim == 0:
        return False
    if not all(isinstance(d, int) for d in x.shape) or math.prod(x.shape[:-1]) > MAX_ROWS:
        return False
    if not _operand(w, x.dtype, None, storage) or w.ndim != 2 or w.shape[1] != x.shape[-1]:
        return False
    return b is None or _operand(b, x.dtype, (w.shape[0],), storage)


def _activation(node: Node) -> str | None:
    """The name in :data:`~ember.ops.nn.linear.CHAIN_ACTIVATIONS` of the activation
    ``node`` applies to its one input, or None when it is not one of them."""
    if len(node.inputs) != 1 or node.mutates:
        return None
    for name, (op, attrs) in CHAIN_ACTIVATIONS.items():
        if op and node.op == op and node.attrs == attrs:
            return name
    return None


def chain(graph: Graph) -> tuple[Graph, bool]:
    """Put chains of linear layers on a few rows into ``linear_chain`` nodes (in place);
    returns ``(graph, changed)``.

    Example:
        >>> chain(Graph())[1]
        False
    """
    counts = use_counts(graph)
    storage = Storage(graph)
    users = graph.users()

    def sole_reader(node: Node) -> Node | None:
        out = node.output
        readers = users.get(out, ())
        if counts.get(out, 0) != 1 or len(readers) != 1 or storage.escapes(out):
            return None
        return None if storage.is_mutated(out) else readers[0]

    gone: set[Node] = set()
    changed = False
    for node in list(graph.nodes):
        if node in gone or not _layer(node, storage) or storage.is_mutated(node.inputs[0]):
            continue
        members: list[Node] = []
        params: list = []
        acts: list[str] = []
        cur: Node | None = node
        while cur is not None and len(acts) < MAX_LAYERS:
            members.append(cur)
            params += cur.inputs[1:]
            act, end = "none", cur
            nxt = sole_reader(cur)
            named = None if nxt is None else _activation(nxt)
            if named is not None and nxt.inputs[0] is cur.output:
                act, end = named, nxt
                members.append(nxt)
                nxt = sole_reader(nxt)
            acts.append(act)
            ok = nxt is not None and _layer(nxt, storage) and nxt.inputs[0] is end.output
            cur = nxt if ok else None
        if len(acts) < MIN_LAYERS:
            continue
        last = members[-1]
        last.op = "linear_chain"
        last.inputs = [node.inputs[0], *params]
        last.attrs = {"acts": tuple(acts)}
        last.source = node.source
        last.pure, last.mutates, last.aliases = True, (), ()
        gone.update(members[:-1])
        changed = True
    if changed:
        graph.nodes = [n for n in graph.nodes if n not in gone]
        clear_annotations(graph)
    return graph, changed

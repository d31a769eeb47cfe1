"""Algebraic simplification: rewrites that are exact for the shapes and dtypes at hand.

Identities (the node's readers read ``x`` instead, and the node goes):

* ``x * 1``, ``1 * x``, ``x + 0``, ``0 + x``, ``x - 0``, ``x / 1``, ``x ** 1`` (the 1 or 0
  a Python number or a small constant whose elements all equal it);
* ``neg(neg(x))``;
* ``permute`` by the identity, ``reshape``/``broadcast_to``/``sum_to`` to x's own shape,
  ``cast`` to x's own dtype.

Each applies only when the result has exactly ``x``'s shape and dtype: ``x * 1`` that
broadcasts ``x`` to a larger shape, or promotes it (``int * 1.0``, ``f32 * f64-ones``), is
not an identity and stays. ``x + 0`` turns ``-0.0`` into ``+0.0``; the rewrite keeps the
``-0.0`` (equal under ``==``, the one difference it makes).

Chains (the outer node now reads ``x`` directly; the inner one is left to DCE):

* ``permute(permute(x, p), q)`` becomes ``permute(x, p∘q)`` (removed when that is the
  identity);
* ``reshape(reshape(x, s), t)`` becomes ``reshape(x, t)`` (removed when ``t`` is x's shape).

A ReLU fused into the convolution it follows (the ReLU's node goes):

* ``relu(conv2d(...))`` becomes ``conv2d(..., relu=True)`` when the ReLU is the only reader
  of the convolution's result: the C kernels apply it as they store each output, which
  saves a pass over the activations (the ReLU's gradient reads its output, which is now the
  convolution's).

A mask moved before a scatter (the node of the mask goes):

* ``relu_backward(max_pool2d_backward(g, r, m), r)`` becomes
  ``max_pool2d_backward(relu_backward(g, m), r, m)`` when the pooled ``r`` is what the mask
  reads (a ReLU's output pooled, as in conv -> ReLU -> max pool) and nothing else reads the
  unmasked gradient. Each window sends its gradient to one element of ``r``, its max ``m``,
  so "that element is positive" is "``m`` is positive": the mask (NaN passing, like
  ``relu_backward``'s own) then runs on the pooled size, a quarter of the pass for 2x2
  windows.

Memory: these ops return fresh arrays (or views); after a rewrite the result *is* ``x``. The
rewrite is made only when that sharing is unobservable (:meth:`Storage.may_share`): neither
memory is written in place later (``w_old = w * 1`` before an optimizer step must stay a
copy), and a returned result never becomes the caller's input or the graph's constant.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2, 3), np.float32, label="x")
    >>> y = g.add_node("mul", [x, 1], {}, (2, 3), np.float32)
    >>> g.outputs = [g.add_node("exp", [y], {}, (2, 3), np.float32)]
    >>> g, changed = simplify(g); print(g.nodes[0].format())
    %v3: f32[2,3] = exp(%x)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir import Graph, Node, Value
from .analysis import Storage, finish_rewrite, registry_pure, replace_inputs, use_counts

__all__ = ["simplify", "CONST_CHECK_LIMIT"]

CONST_CHECK_LIMIT = 4096  # constants up to this size are inspected for all-ones / all-zeros


def simplify(graph: Graph) -> tuple[Graph, bool]:
    """Apply the algebraic rewrites above (in place); returns ``(graph, changed)``.

    Example:
        >>> import numpy as np
        >>> from ember.graph.ir import Graph
        >>> g = Graph(); x = g.add_input((3,), np.float32)
        >>> g.outputs = [g.add_node("mul", [x, 2.0], {}, (3,), np.float32)]
        >>> simplify(g)[1]
        False
    """
    storage = Storage(graph)
    uses = use_counts(graph)  # kept current: the rewrites that fuse need an exact count
    subst: dict[Value, Value] = {}
    kept: list[Node] = []
    changed = False
    for n in graph.nodes:
        replace_inputs(n, subst)
        if not n.pure or n.mutates or not registry_pure(n.op):
            kept.append(n)
            continue
        x = _identity_of(n)
        if x is None:
            x = _relu_into_conv(n, uses, storage)
        if x is None:
            x = _mask_before_pool(graph, n, kept, uses, storage)
        if x is not None and storage.may_share(n.output, x):
            subst[n.output] = x
            storage.merge(n.output, x)
            uses[x] = uses.get(x, 0) - 1 + uses.get(n.output, 0)  # n's readers read x now
            changed = True
            continue
        if _fuse_chain(n, storage, uses):
            changed = True
        kept.append(n)
    if not changed:
        return graph, False
    return finish_rewrite(graph, kept, subst)


# -- identities ----------------------------------------------------------------------------------
def _same_type(v: Any, out: Value) -> bool:
    # a "scalar" value is a Python number at run time, not an array: never a replacement
    return (
        isinstance(v, Value)
        and v.kind != "scalar"
        and v.shape == out.shape
        and v.dtype == out.dtype
    )


def _is_number(v: Any, target: float) -> bool:
    """True when ``v`` is the number ``target``: a Python number, or a small numeric constant
    whose every element equals it."""
    if isinstance(v, bool):
        return False  # x * True may change dtype rules; leave it
    if isinstance(v, int | float):
        return v == target
    if isinstance(v, Value) and v.kind == "const" and isinstance(v.data, np.ndarray):
        d = v.data
        if d.size == 0 or d.size > CONST_CHECK_LIMIT or d.dtype.kind not in "biuf":
            return False
        return bool(np.all(d == target))
    return False


def _identity_of(n: Node) -> Value | None:
    """The value ``n`` equals exactly, or None."""
    out, ins, op = n.output, n.inputs, n.op
    if op in ("mul", "add") and len(ins) == 2:
        unit = 1 if op == "mul" else 0
        a, b = ins
        if _is_number(b, unit) and _same_type(a, out):
            return a
        if _is_number(a, unit) and _same_type(b, out):
            return b
        return None
    if op in ("sub", "div", "pow") and len(ins) == 2:
        unit = 0 if op == "sub" else 1
        a, b = ins
        return a if _is_number(b, unit) and _same_type(a, out) else None
    if not ins or not _same_type(ins[0], out):
        return None
    x = ins[0]
    if op == "neg":
        inner = x.producer
        if inner is not None and inner.op == "neg" and _same_type(inner.inputs[0], out):
            if inner.pure and not inner.mutates:
                return inner.inputs[0]
        return None
    if op == "permute":
        dims = n.attrs.get("dims")
        return x if dims is not None and _is_identity(dims, len(out.shape)) else None
    if op in ("reshape", "broadcast_to", "sum_to"):
        return x  # same shape and dtype as the input (checked above)
    if op == "cast":
        dtype = n.attrs.get("dtype")
        try:
            same = dtype is not None and np.dtype(dtype) == x.dtype
        except TypeError:
            same = False
        return x if same else None
    return None


def _is_identity(dims: Any, ndim: int) -> bool:
    try:
        return [int(d) % max(ndim, 1) for d in dims] == list(range(ndim))
    except (TypeError, ValueError):
        return False


# -- chains ----------------------------------------------------------------------------------------
def _fuse_chain(n: Node, storage: Storage, uses: dict) -> bool:
    """Rewrite ``permute(permute(x))`` / ``reshape(reshape(x))`` to read ``x`` directly."""
    if n.op not in ("permute", "reshape") or not n.inputs or not isinstance(n.inputs[0], Value):
        return False
    mid = n.inputs[0]
    inner = mid.producer
    if inner is None or inner.op != n.op or not inner.pure or inner.mutates:
        return False
    x = inner.inputs[0]
    if not isinstance(x, Value) or x.dtype != n.output.dtype:
        return False
    if not storage.may_share(n.output, x):
        return False
    if n.op == "permute":
        p, q = inner.attrs.get("dims"), n.attrs.get("dims")
        if p is None or q is None or len(p) != len(q):
            return False
        nd = len(p)
        try:
            dims = tuple(int(p[int(q[i]) % nd]) % nd for i in range(nd))
        except (TypeError, ValueError):
            return False
        n.attrs = {**n.attrs, "dims": dims}
    n.inputs = [x, *n.inputs[1:]]
    uses[x], uses[mid] = uses.get(x, 0) + 1, uses.get(mid, 0) - 1
    n.aliases = (0,)  # a view of x now (or at least it may be)
    storage.merge(n.output, x)
    return True


# -- a mask moved before a scatter ---------------------------------------------------------------
def _mask_before_pool(
    graph: Graph, n: Node, kept: list[Node], uses: dict, storage: Storage
) -> Value | None:
    """For ``n = relu_backward(max_pool2d_backward(g, r, m), r)`` (the pool's gradient read by
    ``n`` alone): insert ``relu_backward(g, m)`` before the pool's gradient node, make that
    node read it, and return its output, which ``n``'s readers then read; else None."""
    if n.op != "relu_backward" or len(n.inputs) != 2 or n.attrs:
        return None
    d, r = n.inputs
    p = d.producer if isinstance(d, Value) else None
    if p is None or p.op != "max_pool2d_backward" or uses.get(d) != 1 or p not in kept:
        return None
    if not p.pure or p.mutates or len(p.inputs) != 3 or p.inputs[1] is not r:
        return None
    g, m = p.inputs[0], p.inputs[2]
    if not isinstance(g, Value) or not isinstance(m, Value) or g.shape != m.shape:
        return None
    if d.shape != n.output.shape or d.dtype != n.output.dtype or g.dtype != d.dtype:
        return None
    if not storage.may_share(n.output, d):
        return None
    mask = graph.make_node("relu_backward", [g, m], {}, g.shape, g.dtype, source=n.source)
    kept.insert(kept.index(p), mask)
    p.inputs = [mask.output, r, m]
    uses[mask.output], uses[m], uses[r] = 1, uses.get(m, 0) + 1, uses.get(r, 0) - 1
    return d


# -- a ReLU fused into its convolution -----------------------------------------------------------
def _relu_into_conv(n: Node, uses: dict, storage: Storage) -> Value | None:
    """For ``n = relu(y)`` with ``y`` a ``conv2d`` result read by ``n`` alone: set the
    convolution's ``relu`` and return ``y`` (which ``n``'s readers then read); else None."""
    if n.op != "relu" or len(n.inputs) != 1 or not isinstance(n.inputs[0], Value):
        return None
    y = n.inputs[0]
    c = y.producer
    if c is None or c.op != "conv2d" or c.attrs.get("relu") or uses.get(y) != 1:
        return None
    if (
        not c.pure
        or c.mutates
        or c.aliases
        or y.shape != n.output.shape
        or y.dtype != n.output.dtype
        or not storage.may_share(n.output, y)
    ):
        return None
    c.attrs = {**c.attrs, "relu": True}
    return y

"""The backward engine: an iterative walk of the graph in reverse topological order.

No recursion anywhere, so a chain of 10,000 ops backpropagates. Each node's backward rule
runs once, after every gradient flowing into it has been summed; broadcasting is undone in
one place (``sum_to``) and only gradients that some leaf needs are computed.

Example:
    >>> import ember
    >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> ember.autograd.grad(y, x)
    (tensor([2., 4.]),)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..memory import owns_memory
from ..tensor import Tensor
from .mode import set_grad_enabled, state
from .node import Node
from .slices import SliceGrad, merge

__all__ = ["backward", "grad"]


def _as_list(x: Any) -> list:
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def _seed_grads(outputs: list[Tensor], grads: list | None) -> list[Tensor]:
    from ..ops.creation import ones_like

    if grads is None or len(grads) == 0:
        grads = [None] * len(outputs)
    if len(grads) != len(outputs):
        raise ValueError(f"got {len(grads)} gradients for {len(outputs)} outputs")
    seeds = []
    for out, g in zip(outputs, grads):
        if not out.requires_grad:
            raise RuntimeError(
                "element 0 of tensors does not require grad and does not have a grad_fn: "
                "did you create it under no_grad, or from tensors without requires_grad=True?"
            )
        if g is None:
            if out.numel() != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; got shape "
                    f"{tuple(out.shape)}: pass gradient= (a tensor of that shape)"
                )
            g = ones_like(out)
        elif not isinstance(g, Tensor):
            g = Tensor(out.device.xp.asarray(g, dtype=out._data.dtype))
        if tuple(g.shape) != tuple(out.shape):
            raise RuntimeError(
                f"gradient has shape {tuple(g.shape)} but the output has shape {tuple(out.shape)}"
            )
        seeds.append(g)
    return seeds


def _topo_counts(roots: list[Node]) -> dict[Node, int]:
    """For every node reachable from ``roots``: how many edges from reachable nodes reach it."""
    deps: dict[Node, int] = {}
    stack = list(roots)
    seen = set(roots)
    while stack:
        node = stack.pop()
        for e in node.edges:
            if isinstance(e, Node):
                deps[e] = deps.get(e, 0) + 1
                if e not in seen:
                    seen.add(e)
                    stack.append(e)
    return deps


def _run_hooks(hooks: list | None, g: Tensor) -> Tensor:
    if hooks:
        for h in list(hooks):
            r = h(g)
            if r is not None:
                g = r
    return g


def _accumulate(store: dict, key: Any, g: Tensor) -> None:
    prev = store.get(key)
    store[key] = g if prev is None else prev + g


def _execute(
    outputs: list[Tensor],
    seeds: list[Tensor],
    retain_graph: bool,
    create_graph: bool,
    targets: list[Tensor] | None,
) -> dict[int, Tensor]:
    """Propagate ``seeds`` back from ``outputs``.

    With ``targets`` None, gradients are added to the leaves' ``.grad``; otherwise the
    gradients of the targets are returned (keyed by ``id``) and ``.grad`` is untouched.
    """
    from ..ops.shape import sum_to

    node_grads: dict[Node, Tensor] = {}
    leaf_grads: dict[int, Tensor] = {}
    pieces: dict[Any, list[SliceGrad]] = {}  # slice gradients per node / leaf id, unmerged
    leaves: dict[int, Tensor] = {}
    roots = []
    for out, g in zip(outputs, seeds):
        if out._node is None:
            _accumulate(leaf_grads, id(out), g)
            leaves[id(out)] = out
        else:
            _accumulate(node_grads, out._node, g)
            roots.append(out._node)
    target_nodes = {}
    if targets is not None:
        for t in targets:
            if t._node is not None:
                target_nodes[t._node] = t
    found: dict[int, Tensor] = {}

    deps = _topo_counts(roots)
    ready = [n for n in dict.fromkeys(roots) if deps.get(n, 0) == 0]
    with set_grad_enabled(create_graph):
        while ready:
            node = ready.pop()
            g = node_grads.pop(node, None)
            if node in pieces:
                g = merge(pieces.pop(node), g)
            if g is not None:
                g = _run_hooks(node.hooks, g)
                if node.retain is not None and targets is None:
                    node.retain.grad = g if create_graph else g.detach()
                if node in target_nodes:
                    found[id(target_nodes[node])] = g
                in_grads = _call_backward(node, g)
            else:
                in_grads = ()
            for i, e in enumerate(node.edges):
                if e is None:
                    continue
                gi = in_grads[i] if i < len(in_grads) else None
                if type(gi) is SliceGrad:
                    key = e if isinstance(e, Node) else id(e)
                    pieces.setdefault(key, []).append(gi)
                    if not isinstance(e, Node):
                        leaves[id(e)] = e
                elif gi is not None:
                    shape = node.in_meta[i][0]
                    if gi.shape != shape:
                        gi = sum_to(gi, shape)
                    if isinstance(e, Node):
                        _accumulate(node_grads, e, gi)
                    else:
                        _accumulate(leaf_grads, id(e), gi)
                        leaves[id(e)] = e
                if isinstance(e, Node):
                    deps[e] -= 1
                    if deps[e] == 0:
                        ready.append(e)
            if not retain_graph:
                node.free()

    if pieces:
        with set_grad_enabled(create_graph):
            for key, ps in pieces.items():
                leaf_grads[key] = merge(ps, leaf_grads.get(key))
    for key, g in leaf_grads.items():
        leaf = leaves[key]
        g = _run_hooks(leaf._hooks, g)
        if targets is not None:
            found[key] = g
        else:
            _add_to_grad(leaf, g, create_graph)
    return found


def _call_backward(node: Node, g: Tensor) -> Sequence[Tensor | None]:
    if node.op.backward is None:
        raise RuntimeError(f"op {node.op.name} has no backward rule")
    node._check_saved()
    grads = node.op.backward(node, g)
    if isinstance(grads, Tensor) or grads is None:
        grads = (grads,)
    return grads


def _add_to_grad(leaf: Tensor, g: Tensor, create_graph: bool) -> None:
    tracer = state.tracer
    if tracer is not None and not create_graph:  # ember.compile: accumulate as traced ops
        tracer.accumulate_grad(leaf, g)
        return
    if g.dtype is not leaf.dtype and g._data.dtype != leaf._data.dtype:
        g = g.to(leaf.dtype)
    if not create_graph:
        # own the buffer: a rule may hand the same array to two inputs, or a read-only view
        arr = g._data
        if not getattr(arr.flags, "writeable", True) or not owns_memory(arr):
            arr = arr.copy()
        g = Tensor._make(arr, g.device)
    if leaf.grad is None:
        leaf.grad = g
    else:
        leaf.grad = (
            leaf.grad + g if create_graph else Tensor._make(leaf.grad._data + g._data, g.device)
        )


def backward(
    tensors: Sequence[Tensor] | Tensor,
    grad_tensors: Sequence[Tensor | None] | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | Tensor | None = None,
) -> None:
    """Add the gradients of ``tensors`` with respect to the graph's leaves to their ``.grad``.

    Example:
        >>> x = ember.ones(3, requires_grad=True)
        >>> ember.autograd.backward([(x * 2).sum()])
        >>> x.grad
        tensor([2., 2., 2.])
    """
    outputs = _as_list(tensors)
    seeds = _seed_grads(outputs, None if grad_tensors is None else _as_list(grad_tensors))
    if retain_graph is None:
        retain_graph = create_graph
    only = _as_list(inputs)
    if only:
        found = _execute(outputs, seeds, retain_graph, create_graph, only)
        for t in only:
            g = found.get(id(t))
            if g is not None:
                _add_to_grad(t, g, create_graph)
        return
    _execute(outputs, seeds, retain_graph, create_graph, None)


def grad(
    outputs: Sequence[Tensor] | Tensor,
    inputs: Sequence[Tensor] | Tensor,
    grad_outputs: Sequence[Tensor | None] | Tensor | None = None,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Tensor | None, ...]:
    """Return the gradients of ``outputs`` with respect to ``inputs`` (``.grad`` untouched).

    With ``create_graph=True`` the result is itself differentiable (second derivatives).

    Example:
        >>> x = ember.tensor(3.0, requires_grad=True)
        >>> (dy,) = ember.autograd.grad(x ** 3, x, create_graph=True)
        >>> ember.autograd.grad(dy, x)[0]
        tensor(18.)
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    for t in ins:
        if not t.requires_grad:
            raise RuntimeError("one of the inputs does not require grad")
    seeds = _seed_grads(outs, None if grad_outputs is None else _as_list(grad_outputs))
    if retain_graph is None:
        retain_graph = create_graph
    found = _execute(outs, seeds, retain_graph, create_graph, ins)
    result = []
    for t in ins:
        g = found.get(id(t))
        if g is None and not allow_unused:
            raise RuntimeError(
                "one of the differentiated tensors appears to not have been used in the graph; "
                "pass allow_unused=True if this is intended"
            )
        if g is not None and not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)

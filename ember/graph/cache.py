"""The cache of :func:`ember.graph.compile`: one :class:`Entry` per traced graph (its
program, guards, and how to rebuild the function's result from the output arrays), and the
:class:`FastPath` that lets a repeated call skip building its signature key.

Example:
    >>> import ember
    >>> f = ember.compile(lambda x: x + 1)
    >>> _ = f(ember.ones(2)); _ = f(ember.ones(2))
    >>> f._fast is not None, f._fast.match((ember.ones(2),)) is f._last
    (True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..autograd.mode import state
from ..tensor import Tensor
from .executor import Program
from .guards import dynamic_key
from .ir import Graph

__all__ = ["Entry", "FastPath", "single_output", "requires_grad", "rebuilder", "rebuild"]


class Entry:
    """One cached graph: its program, guards, the objects its key refers to by id, which
    tensor arguments are graph inputs (``picks``) and how to rebuild the result.

    Example:
        >>> import ember
        >>> Entry((), Graph("f"), [], [], [ember.ones(2), ember.ones(3)]).picks is None
        True
    """

    __slots__ = (
        "key",
        "graph",
        "raw",
        "program",
        "guards",
        "objects",
        "tensors",
        "eager",
        "dyn",
        "rebuild",
        "picks",
    )

    def __init__(self, key: tuple, raw: Graph, guards: list, objects: list, tensors: list):
        self.key, self.raw, self.guards, self.objects = key, raw, guards, objects
        self.tensors = [tuple(t.shape) for t in tensors]
        # the tensor arguments that are graph inputs: an argument sharing its array with an
        # earlier one is the same input (None: all of them, nothing shared)
        seen: set[int] = set()
        picks = []
        for i, t in enumerate(tensors):
            if id(t._data) not in seen:
                seen.add(id(t._data))
                picks.append(i)
        self.picks = None if len(picks) == len(tensors) else tuple(picks)
        self.graph: Graph | None = None
        self.program: Program | None = None
        self.eager = False
        self.dyn: tuple[int, ...] | None = None
        self.rebuild: Callable[[list, Any], Any] = _no_program

    def check(self) -> str | None:
        """The description of the first guard that fails (or raises), else None."""
        for fn, desc in self.guards:
            try:
                ok = fn()
            except Exception:
                ok = False
            if not ok:
                return desc
        return None


def _no_program(outs: list, tensors: Any) -> Any:
    raise RuntimeError("this cached entry has no program")


class FastPath:
    """The last hit's signature, checked without building a key.

    Built only when every argument is a positional tensor, no two share an array, and the
    entry is the one :meth:`CompiledFunction._lookup` would pick for this key whenever its
    guards pass (the first cached entry under the key, or a dynamic entry that no exact entry
    or earlier dynamic entry shadows). :meth:`arrays` compares what the key holds (shape,
    dtype, device, requires_grad per tensor, and the grad mode) and runs every guard of the
    entry; any difference sends the call down the full path. The compiled function drops it
    whenever its cache changes (a trace, ``reset()``).

    Everything constant per entry is worked out once here: the guards as a tuple of
    callables, and ``output`` (the index of the single output array when the result is one
    tensor computed by the graph, else None) with ``device``, so that a hit needs no
    ``rebuild`` call.

    Example:
        >>> import ember
        >>> f = ember.compile(lambda x: x * 2)
        >>> _ = f(ember.ones(2)); _ = f(ember.ones(2))
        >>> f._fast.match((ember.ones(3),)) is None  # another shape: the full path
        True
    """

    __slots__ = ("entry", "specs", "grad", "n", "guards", "output", "device", "direct")

    def __init__(self, entry: Entry, specs: tuple, grad: bool) -> None:
        self.entry, self.specs, self.grad, self.n = entry, specs, grad, len(specs)
        self.guards = tuple(fn for fn, _ in entry.guards)
        program = entry.program
        self.output = None if program is None else single_output(program)
        self.device = None if program is None else program.device
        # the whole call as one function, once a call ran the graph's step program
        # (``StepProgram.direct``): None until then, and again after it declines a call
        self.direct: Callable[[tuple], Any] | None = None

    @staticmethod
    def build(
        entry: Entry,
        key: tuple,
        args: tuple,
        kwargs: dict,
        tensors: list,
        cache: dict,
        dynamic: list,
    ) -> FastPath | None:
        """The fast path for a call that hit ``entry`` under ``key``, or None when the call
        is not of the simple kind (see the class docstring)."""
        if kwargs or entry.program is None or len(tensors) != len(args):
            return None
        if not all(isinstance(a, Tensor) for a in args):
            return None
        if any(p[4] is not None for p in key[:-1]):  # two arguments share an array
            return None
        exact = cache.get(key)
        if entry.dyn is None:
            if not exact or exact[0] is not entry:
                return None
        elif exact or entry not in dynamic:
            return None
        else:
            for e in dynamic[: dynamic.index(entry)]:
                if dynamic_key(key, e.dyn) == e.key:  # an earlier graph for this call
                    return None
        specs = tuple((a._data.shape, a._data.dtype, a.device, a.requires_grad) for a in args)
        return FastPath(entry, specs, key[-1][1][1])

    def arrays(self, args: tuple) -> list | None:
        """The input arrays of ``args`` when they have the recorded signature and every
        guard of the entry passes (a guard that raises fails), else None.

        Example:
            >>> import ember
            >>> f = ember.compile(lambda x: x + 1)
            >>> x = ember.ones(2); _ = f(x); _ = f(x)
            >>> f._fast.arrays((x,))[0] is x._data
            True
        """
        if len(args) != self.n or state.grad_enabled != self.grad:
            return None
        arrays = []
        for a, spec in zip(args, self.specs):
            if not isinstance(a, Tensor):
                return None
            arr = a._data
            # one tuple comparison: each item is compared by identity, then by ==
            if (arr.shape, arr.dtype, a.device, a.requires_grad) != spec:
                return None
            arrays.append(arr)
        if self.n > 1 and len({id(arr) for arr in arrays}) != self.n:
            return None
        if self.guards:
            try:
                for guard in self.guards:
                    if not guard():
                        return None
            except Exception:
                return None
        return arrays

    def match(self, args: tuple) -> Entry | None:
        """The entry, when ``args`` have the recorded signature and its guards pass."""
        return None if self.arrays(args) is None else self.entry


def single_output(prog: Program) -> int | None:
    """The index of the output array that is the whole result, when the function returns
    one tensor its graph computes (not a returned input or captured tensor); else None.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("neg", [x], {}, (2,), np.float32)]
        >>> g.output_tree = ("tensor", 0, False)
        >>> single_output(Program(g))
        0
    """
    g = prog.graph
    tree = g.output_tree
    if tree is not None and tree[0] == "tensor" and g.outputs[tree[1]].kind == "node":
        return tree[1]
    return None


def requires_grad(tree: Any) -> bool:
    """Whether a traced output tree holds a tensor that requires grad.

    Example:
        >>> requires_grad(("tuple", [("tensor", 0, False), ("leaf", 1)]))
        False
    """
    kind = tree[0]
    if kind == "tensor":
        return tree[2]
    if kind in ("tuple", "list"):
        return any(requires_grad(t) for t in tree[1])
    if kind == "namedtuple":
        return any(requires_grad(t) for t in tree[2])
    if kind == "dict":
        return any(requires_grad(t) for _, t in tree[1])
    return False


def rebuilder(prog: Program) -> Callable[[list, Any], Any]:
    """``fn(outs, tensors)`` building the function's result from the output arrays (a fresh
    tensor per node output); one plain function for the common single-tensor result.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); x = g.add_input((2,), np.float32)
        >>> g.outputs = [g.add_node("neg", [x], {}, (2,), np.float32)]
        >>> g.output_tree = ("tensor", 0, False)
        >>> rebuilder(Program(g))([np.ones(2, np.float32)], []).tolist()
        [1.0, 1.0]
    """
    g, device = prog.graph, prog.device
    tree = g.output_tree
    make = Tensor._make
    i = single_output(prog)
    if i is not None:
        return lambda outs, tensors: make(outs[i], device)
    return lambda outs, tensors: rebuild(tree, outs, g, tensors, device)


def rebuild(tree: Any, outs: list, g: Graph, tensors: list, device: Any) -> Any:
    """The function's result with the nesting of ``tree``: output arrays become tensors,
    returned inputs and captured tensors are those objects, other leaves are as traced.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); g.outputs = []
        >>> rebuild(("tuple", [("leaf", 3)]), [], g, [], None)
        (3,)
    """
    kind = tree[0]
    if kind == "tensor":
        v = g.outputs[tree[1]]
        if v.kind == "captured" and isinstance(v.ref, Tensor):
            return v.ref
        if v.kind == "input":
            return tensors[g.inputs.index(v)]
        return Tensor._make(outs[tree[1]], device)
    if kind == "tuple":
        return tuple(rebuild(t, outs, g, tensors, device) for t in tree[1])
    if kind == "list":
        return [rebuild(t, outs, g, tensors, device) for t in tree[1]]
    if kind == "namedtuple":
        return tree[1](*(rebuild(t, outs, g, tensors, device) for t in tree[2]))
    if kind == "dict":
        return {k: rebuild(t, outs, g, tensors, device) for k, t in tree[1]}
    return tree[1]

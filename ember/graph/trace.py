"""Tracing: run a function once, eagerly, with a :class:`Tracer` listening, and record a
:class:`~ember.graph.ir.Graph`.

The tracer is installed as ``ember.autograd.mode.state.tracer``; ember's core calls it:

* the dispatcher (``ops.registry.apply``) calls :meth:`Tracer.record` after every op, so the
  graph uses the registry's ops and no op is defined twice;
* ``Tensor._read`` calls :meth:`Tracer.on_value_read` for ``item()``, ``numpy()``,
  ``bool()``, ``tolist()``: a *graph break* (the value would otherwise be baked in);
* ``ops.inplace.apply_inplace`` calls :meth:`Tracer.record_inplace`;
* the autograd engine hands leaf gradients to :meth:`Tracer.accumulate_grad`, and optimizers
  clear them through :meth:`Tracer.set_grad`;
* optimizers pass their learning rate through :meth:`Tracer.scalar_input` (read live on each
  call, never baked) and guard their other hyper-parameters with :meth:`Tracer.add_guard`.

Values are tracked by the identity of their arrays, so ``detach()``, ``.data`` and other
aliases of a traced tensor resolve to the same value. A tensor the trace has not seen before
is *captured*: read by reference on every call if it is still alive when the function returns
(parameters, buffers, optimizer state created on the first step), else turned into a constant
holding its value at first read (``ember.tensor([...])`` temporaries).

Example:
    >>> import ember
    >>> from ember.graph.trace import trace
    >>> w = ember.ones(3)
    >>> g, out = trace(lambda x: (x * w).sum(), ember.arange(3.0))
    >>> g.op_counts(), out.item()
    ({'mul': 1, 'sum': 1}, 3.0)
"""

from __future__ import annotations

import functools
import linecache
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd.mode import no_grad, state
from ..errors import EmberError, user_frame
from ..tensor import Tensor
from .ir import Graph, SourceLoc, Update, Value

__all__ = ["Tracer", "GraphBreak", "trace", "source_here", "GradSlot"]


class GraphBreak(EmberError):
    """A traced function read a tensor's value (``fullgraph=True`` raises this).

    Example:
        >>> import ember
        >>> issubclass(GraphBreak, ember.EmberError)
        True
    """

    def __init__(self, message: str, loc: SourceLoc | None = None) -> None:
        super().__init__(message)
        self.loc = loc


class GradSlot:
    """The captured reference ``leaf.grad`` (read live: gradients are new tensors each step).

    Example:
        >>> import ember
        >>> GradSlot(ember.ones(1)).read() is None
        True
    """

    __slots__ = ("leaf",)

    def __init__(self, leaf: Tensor) -> None:
        self.leaf = leaf

    def read(self) -> Any:
        g = self.leaf.grad
        return None if g is None else g._data


def source_here(skip: int = 2) -> SourceLoc | None:
    """The user's source line (outside the ember package) that led to this call.

    Example:
        >>> source_here(1).filename == __file__ or True
        True
    """
    f = user_frame(skip + 1)
    if f is None:
        return None
    code = f.f_code
    return SourceLoc(
        code.co_filename,
        f.f_lineno,
        linecache.getline(code.co_filename, f.f_lineno).strip(),
        code.co_name,
    )


def _mutating_ops() -> Callable[[str, int, dict], tuple[int, ...]]:
    """``positions(op, n_inputs, attrs)``: the input positions an op writes in place (the
    optimizer updates' ``MUTATES`` table, whose variadic ops compute them from their inputs)."""
    try:
        from ..ops.optim import mutated_positions
    except ImportError:  # pragma: no cover - the optim ops are part of ember
        return lambda op, n, attrs: ()
    return mutated_positions


class Tracer:
    """Records the ops a function runs into a :class:`Graph` (see the module docstring).

    Example:
        >>> t = Tracer("f")
        >>> t.graph.name
        'f'
    """

    def __init__(
        self, name: str = "graph", *, fullgraph: bool = False, labels: dict | None = None
    ) -> None:
        self.graph = Graph(name)
        self.fullgraph = fullgraph
        self.labels = labels or {}  # id(tensor) -> readable name ("fc1.weight")
        self.broken: GraphBreak | None = None
        self.guards: list[tuple[Callable[[], bool], str]] = []
        self.entry_grad_none: dict[int, bool] = {}  # id(leaf) -> leaf.grad was None at entry
        # id(array) -> (a weak reference to the array, its value): an entry counts only while
        # its array lives, so a new array that reuses a dead one's id is not taken for it. (An
        # array that cannot be weakly referenced is held, alive.) Keeping every array alive
        # instead would hold all of the step's intermediates until the trace ends: each then
        # needs fresh memory, which makes the traced step much slower than an eager one (page
        # faults) and its peak memory larger.
        self._by_array: dict[int, tuple[Callable[[], Any], Value]] = {}
        self._roots: dict[int, Value] = {}  # id(tensor) -> its input/captured value
        self._tentative: list[tuple[Value, Any]] = []  # (value, weakref to tensor)
        self._updates: dict[Value, Value] = {}
        self._grads: dict[int, Tensor] = {}  # leaves whose .grad the trace owns
        self.did_backward = False  # a backward pass ran inside the trace
        self.entry_grads: dict[int, Tensor] = {}  # id(grad tensor at entry) -> its leaf
        self._mutates = _mutating_ops()
        self._prev = None

    # -- lifetime ------------------------------------------------------------------------------
    def __enter__(self) -> Tracer:
        self._prev = state.tracer
        state.tracer = self
        return self

    def __exit__(self, *exc: object) -> None:
        state.tracer = self._prev

    def stop(self) -> None:
        """Detach from the dispatcher (after a graph break the rest runs purely eagerly)."""
        if state.tracer is self:
            state.tracer = self._prev

    # -- values --------------------------------------------------------------------------------
    def _bind(self, arr: Any, v: Value) -> None:
        try:
            ref = weakref.ref(arr)
        except TypeError:  # (NumPy scalars)
            ref = functools.partial(_same, arr)
        self._by_array[id(arr)] = (ref, v)

    def _lookup(self, arr: Any) -> Value | None:
        """The value ``arr`` was bound to, or None."""
        entry = self._by_array.get(id(arr))
        if entry is None or entry[0]() is not arr:
            return None
        return entry[1]

    def add_input(self, t: Tensor, label: str) -> Value:
        """Declare tensor argument ``t`` (path ``label``) as a graph input."""
        v = self._lookup(t._data)
        if v is not None:
            return v
        v = self.graph.add_input(tuple(t.shape), t._data.dtype, label=label)
        self._bind(t._data, v)
        self._roots[id(t)] = v
        v.meta["device"] = t.device
        return v

    def value_of(self, t: Tensor) -> Value:
        """The value ``t`` holds now (capturing it if the trace has not seen it)."""
        v = self._lookup(t._data)
        if v is None:
            v = self._capture(t)
        return v

    def _capture(self, t: Tensor) -> Value:
        leaf = self.entry_grads.get(id(t))
        if leaf is not None and leaf.grad is t:
            self._slot(leaf)
            return self._lookup(t._data)  # type: ignore[return-value]
        arr = t._data
        v = self.graph.add_captured(
            tuple(arr.shape), arr.dtype, ref=None, label=self.labels.get(id(t))
        )
        v.data = arr.copy()  # the value at first read, should this turn out a constant
        v.meta["device"] = t.device
        self._tentative.append((v, weakref.ref(t)))
        self._bind(arr, v)
        self._roots[id(t)] = v
        return v

    def scalar_input(
        self,
        getter: Callable[[], Any],
        value: Any,
        dtype: Any = np.float64,
        label: str = "",
        device: Any = None,
    ) -> Tensor:
        """A 0-d tensor (on ``device``, default CPU) holding ``value`` that the graph reads
        live through ``getter()`` once per call (e.g. a learning rate a scheduler changes; a
        step counter whose getter increments it); op forwards receive the Python number at
        run time, a 0-d array while tracing."""
        from ..device import CPU

        dev = CPU if device is None else device
        arr = dev.xp.asarray(np.asarray(value, dtype=dtype))
        v = self.graph.add_scalar(getter, np.dtype(dtype), label=label or None)
        t = Tensor._make(arr, dev)
        self._bind(arr, v)
        return t

    def add_guard(self, check: Callable[[], bool], description: str) -> None:
        """Require ``check()`` to be true before this graph may be reused (else: retrace)."""
        self.guards.append((check, description))

    # -- hooks called by ember's core ------------------------------------------------------------
    def record(self, op: Any, inputs: tuple, attrs: dict, out: Tensor) -> None:
        """The dispatcher ran ``op``: add a node."""
        if self.broken is not None:
            return
        ins: list[Any] = []
        for x in inputs:
            if isinstance(x, Tensor):
                ins.append(self.value_of(x))
            elif hasattr(x, "__array_interface__") or hasattr(x, "__cuda_array_interface__"):
                ins.append(self.graph.add_const(x.copy()))  # a raw array argument
            else:
                ins.append(x)
        ob = _base(out._data)
        aliases = tuple(
            k for k, x in enumerate(inputs) if isinstance(x, Tensor) and _base(x._data) is ob
        )
        v = self.graph.add_node(
            op.name,
            ins,
            attrs,
            tuple(out._data.shape),
            out._data.dtype,
            source=source_here(2),
            pure=op.pure,
            mutates=tuple(
                k for k in self._mutates(op.name, len(ins), attrs) if isinstance(ins[k], Value)
            ),
            aliases=aliases,
        )
        self._bind(out._data, v)

    def on_value_read(self, t: Tensor, what: str) -> None:
        """A tensor's value is being read by Python: a graph break."""
        if self.broken is not None:
            return
        loc = source_here(3)
        where = loc.describe() if loc is not None else "an unknown line"
        msg = (
            f"ember.compile({self.graph.name}): graph break: {what} reads a tensor's value "
            f"at {where}. A compiled graph cannot depend on tensor values in Python (it would "
            "bake them in); the function runs eagerly instead. Return tensors and read them "
            "outside the compiled function, or use tensor ops (ember.where) for control flow."
        )
        self._break(msg, loc)

    def _break(self, msg: str, loc: SourceLoc | None) -> None:
        err = GraphBreak(msg, loc)
        if self.fullgraph:
            raise err
        self.broken = err
        self.stop()

    def record_inplace(self, target: Tensor, result: Tensor) -> None:
        """``target`` now holds ``result``'s values (an in-place op ran)."""
        if self.broken is not None:
            return
        new = self.value_of(result)
        arr = target._data
        root = self._roots.get(id(target))
        if arr is not result._data:  # written into target's memory
            cur = self._lookup(arr)
            if cur is not None and cur.kind in ("input", "captured"):
                root = cur
            elif root is None and getattr(arr, "base", None) is not None:
                self._break(
                    f"ember.compile({self.graph.name}): graph break: an in-place write into a "
                    f"view of another tensor at {_where()} is not supported in graph mode; "
                    "the function runs eagerly instead",
                    source_here(3),
                )
                return
            self._bind(arr, new)
        if root is not None and root.kind in ("input", "captured"):
            self._updates[root] = new

    def _slot(self, leaf: Tensor) -> Tensor:
        """Capture ``leaf.grad`` (set before the trace) as a live read of the attribute."""
        prev = leaf.grad
        v = self._lookup(prev._data)
        if v is None:
            shape, dtype = tuple(prev.shape), prev._data.dtype
            v = self.graph.add_captured(
                shape, dtype, ref=GradSlot(leaf), label=f"{self._name(leaf)}.grad"
            )
            v.meta["device"] = prev.device
            self._bind(prev._data, v)
            self._roots[id(prev)] = v
            self.add_guard(
                lambda: (
                    leaf.grad is not None
                    and leaf.grad._data.shape == shape
                    and leaf.grad._data.dtype == dtype
                ),
                f"{self._name(leaf)}.grad is a {dtype} tensor of shape {shape}",
            )
        return prev

    def grad_of(self, leaf: Tensor) -> Tensor | None:
        """``leaf.grad`` for code that reads it during a trace (optimizers): a traced value,
        a live read of a gradient set before the call, or None (guarded)."""
        if id(leaf) in self._grads or self.broken is not None:
            return leaf.grad
        if leaf.grad is None:
            self.add_guard(lambda: leaf.grad is None, f"{self._name(leaf)}.grad is None")
            return None
        return self._slot(leaf)

    def accumulate_grad(self, leaf: Tensor, g: Tensor) -> None:
        """The engine's ``leaf.grad += g`` (or ``= g``), as traced ember ops."""
        from ..ops.elementwise import add

        key = id(leaf)
        self.did_backward = True
        with no_grad():
            if g._data.dtype != leaf._data.dtype:
                g = g.to(leaf.dtype)
            if key in self._grads:
                new = g if leaf.grad is None else add(leaf.grad, g)
            elif leaf.grad is None:
                if self.entry_grad_none.get(key, True):
                    self.add_guard(lambda: leaf.grad is None, f"{self._name(leaf)}.grad is None")
                new = g
            else:
                new = add(self._slot(leaf), g)
        arr = new._data
        v = self.value_of(new)
        if getattr(arr, "base", None) is not None or not getattr(arr.flags, "writeable", True):
            arr = arr.copy()
            self._bind(arr, v)
        leaf.grad = Tensor._make(arr, new.device)
        self._grads[key] = leaf

    def set_grad(self, leaf: Tensor, zeros: bool = False) -> None:
        """Python code set ``leaf.grad`` (to None, or with ``zeros`` filled it with zeros in
        place); from here on the trace owns that gradient."""
        if self.broken is not None:
            return
        if zeros and leaf.grad is not None:
            arr = leaf.grad._data
            self._bind(arr, self.graph.add_const(arr.copy(), label="zeros"))
        self._grads[id(leaf)] = leaf

    def _name(self, t: Tensor) -> str:
        return self.labels.get(id(t)) or f"tensor{tuple(t.shape)}"

    # -- the result ------------------------------------------------------------------------------
    def finish(self, result: Any) -> Graph:
        """Close the trace on the function's ``result``: outputs, updates, captured values."""
        g = self.graph
        outputs: list[Value] = []
        g.output_tree = self._tree(result, outputs)
        g.outputs = outputs
        for v, ref in self._tentative:
            t = ref()
            if t is None:
                v.kind, v.ref = "const", None
                g.captured.remove(v)
                g.constants.append(v)
            else:
                v.ref, v.data = t, None
        for target, value in self._updates.items():
            if target.kind in ("input", "captured"):
                g.updates.append(Update(target, value, "copy"))
        for leaf in self._grads.values():
            value = None if leaf.grad is None else self.value_of(leaf.grad)
            target = self._roots.get(id(leaf))
            if target is None:
                target = g.add_captured(
                    tuple(leaf.shape), leaf._data.dtype, ref=leaf, label=self.labels.get(id(leaf))
                )
                target.meta["device"] = leaf.device
            g.updates.append(Update(target, value, "grad"))
        _protect_mutated_constants(g)
        return g

    def _tree(self, x: Any, outputs: list[Value]) -> Any:
        if isinstance(x, Tensor):
            v = self.value_of(x)
            outputs.append(v)
            return ("tensor", len(outputs) - 1, x.requires_grad)
        if isinstance(x, tuple | list):
            kind = "tuple" if isinstance(x, tuple) else "list"
            if isinstance(x, tuple) and hasattr(x, "_fields"):
                return ("namedtuple", type(x), [self._tree(e, outputs) for e in x])
            return (kind, [self._tree(e, outputs) for e in x])
        if isinstance(x, dict):
            return ("dict", [(k, self._tree(e, outputs)) for k, e in x.items()])
        return ("leaf", x)


def _same(x: Any) -> Any:
    return x


def _base(arr: Any) -> Any:
    b = getattr(arr, "base", None)
    return arr if b is None else b


def _where() -> str:
    loc = source_here(3)
    return loc.describe() if loc is not None else "an unknown line"


def _protect_mutated_constants(g: Graph) -> None:
    """A constant that an op writes in place gets a fresh copy (``clone``) on every call."""
    for n in list(g.nodes):
        for k in n.mutates:
            c = n.inputs[k]
            if isinstance(c, Value) and c.kind == "const":
                node = g.make_node("clone", [c], {}, c.shape, c.dtype, source=n.source)
                idx = g.nodes.index(n)
                g.insert_node(idx, node)
                for later in g.nodes[idx + 1 :]:
                    later.inputs = [node.output if x is c else x for x in later.inputs]


def trace(
    fn: Callable[..., Any], *args: Any, fullgraph: bool = True, name: str | None = None
) -> tuple[Graph, Any]:
    """Trace ``fn(*args)`` (run once, eagerly) into a graph; returns ``(graph, result)``.

    Tensor arguments (also inside tuples, lists and dicts) become graph inputs. With
    ``fullgraph=True`` (the default here) a graph break raises :class:`GraphBreak`.

    Example:
        >>> import ember
        >>> g, y = trace(lambda a, b: a @ b, ember.ones(2, 3), ember.ones(3))
        >>> [v.shape for v in g.inputs], g.nodes[0].op
        ([(2, 3), (3,)], 'matmul')
    """
    tracer = Tracer(name or getattr(fn, "__name__", "graph"), fullgraph=fullgraph)
    for path, t in _tensor_leaves(args, "args"):
        tracer.add_input(t, path)
    with tracer:
        result = fn(*args)
    if tracer.broken is not None:
        raise tracer.broken
    return tracer.finish(result), result


def _tensor_leaves(x: Any, path: str) -> list[tuple[str, Tensor]]:
    out: list[tuple[str, Tensor]] = []
    stack = [(path, x)]
    while stack:
        p, v = stack.pop()
        if isinstance(v, Tensor):
            out.append((p, v))
        elif isinstance(v, tuple | list):
            stack.extend((f"{p}[{i}]", e) for i, e in reversed(list(enumerate(v))))
        elif isinstance(v, dict):
            stack.extend((f"{p}[{k!r}]", e) for k, e in reversed(list(v.items())))
    return out

"""The graph IR: what ``ember.compile`` traces into, what passes rewrite, what the executor
runs and what ONNX export reads.

A :class:`Graph` is a straight-line program in SSA form over :class:`Value` objects:

* **Values** carry a ``shape`` (a tuple of ints; a dynamic dimension is a :class:`Sym`) and a
  NumPy ``dtype``. Every value is defined exactly once, by its ``kind``:

  - ``"input"``: a tensor argument of the compiled function (``Graph.inputs``, in call order;
    ``Value.label`` is its path, e.g. ``"x"`` or ``"batch['y']"``);
  - ``"captured"``: a tensor created outside the function (parameter, buffer, optimizer state)
    read *by reference* on every call (``Value.ref`` is the :class:`ember.Tensor`;
    ``Graph.captured``). Never fold a captured value into a constant: it changes between
    calls;
  - ``"const"``: a tensor made inside the function from Python data (``Value.data`` is its
    array; ``Graph.constants``); safe to fold;
  - ``"scalar"``: a Python number read live on every call (e.g. an optimizer's learning rate:
    ``Value.ref`` is a zero-argument callable returning it; ``Graph.scalars``); shape ``()``.
    Each getter runs exactly once per call, before the body, and may have effects (an
    optimizer's step-count getter increments the counter): passes must keep every scalar,
    used or not, and never fold one into a constant;
  - ``"node"``: the output of a :class:`Node` (``Value.producer``).

* **Nodes** apply one registry op (``Node.op`` is the name in ``ember.ops.registry.REGISTRY``;
  there is no second vocabulary) to ``inputs`` (Values, or plain Python scalars / None exactly
  as the op's forward receives them) with keyword ``attrs`` (plain Python values; a dynamic
  size appears as a :class:`Sym`). Each node has one ``output`` Value and remembers the user's
  ``source`` line (:class:`SourceLoc`) that created it. ``Node.pure`` is False for random or
  effectful ops (dropout masks draw fresh values on every call); ``Node.mutates`` lists the input
  positions whose arrays the op overwrites in place (optimizer updates: ``adam_update`` mutates
  the parameter and its moments). Dead-code elimination must keep every node with
  ``pure=False`` or a non-empty ``mutates``; such a node is also an ordering barrier for the
  values it mutates (a read of a mutated value must stay on its side of the node).
  ``Node.aliases`` lists the input positions whose memory the output may share (views:
  ``reshape``, ``permute``, slicing ...; the tracer fills it from the real arrays; a pass that
  creates a view op must set it). A value's buffer lives as long as any value aliasing it.

* **Outputs and updates**: ``Graph.outputs`` lists the values returned (``Graph.output_tree``
  is an opaque description the compiler uses to rebuild the user's nesting of tuples, lists
  and dicts). ``Graph.updates`` lists :class:`Update` records applied after the body runs:
  ``kind="copy"`` writes ``value`` into the array of ``target`` (an input or captured value;
  in-place ops such as ``running_mean.mul_(0.9)`` become these), ``kind="grad"`` sets the
  captured ``target`` tensor's ``.grad`` to ``value`` (``value`` None means ``.grad = None``).

* **Execution hooks** for passes: ``Node.out_slot`` (None, or an int naming a reusable buffer
  that the executor allocates once and hands to the kernel as ``out=``; the memory planner
  assigns these; never give one to a value that escapes: an output, an update's value, or an
  input of a later ``mutates`` node) and ``Node.meta`` (a free dict for pass annotations;
  e.g. ``meta["fused"]`` for a fusion pass).

Passes are functions ``pass_(graph) -> (graph, changed)``; call :meth:`Graph.validate` after
each one in tests. Useful editing methods: :meth:`Graph.users`, :meth:`Graph.replace_uses`,
:meth:`Graph.remove_node`, :meth:`Graph.insert_node`, :meth:`Graph.make_node`,
:meth:`Graph.add_const`, :meth:`Graph.copy`, :meth:`Graph.escaping`.

Example:
    >>> import ember
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph("f")
    >>> x = g.add_input((2, 3), np.float32, label="x")
    >>> y = g.add_node("mul", [x, 2.0], {}, (2, 3), np.float32)
    >>> z = g.add_node("sum", [y], {"dim": None, "keepdim": False}, (), np.float32)
    >>> g.outputs = [z]
    >>> g.validate()
    >>> print(g)  # doctest: +NORMALIZE_WHITESPACE
    graph f(%x: f32[2,3]):
      %v2: f32[2,3] = mul(%x, 2.0)
      %v3: f32[] = sum(%v2) {dim=None, keepdim=False}
      return (%v3)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from .ir_types import IRError, SourceLoc, Sym, dtype_name, format_shape

__all__ = [
    "Graph",
    "Node",
    "Value",
    "Update",
    "SourceLoc",
    "Sym",
    "IRError",
    "VALUE_KINDS",
    "dtype_name",
    "format_shape",
]

VALUE_KINDS = ("input", "captured", "const", "scalar", "node")


class Value:
    """One SSA value of a :class:`Graph` (see the module docstring for the kinds).

    Example:
        >>> import numpy as np
        >>> g = Graph(); v = g.add_input((3,), np.float32, label="x"); v
        %x: f32[3]
    """

    __slots__ = ("id", "kind", "shape", "dtype", "producer", "label", "ref", "data", "meta")

    def __init__(
        self,
        id: int,
        kind: str,
        shape: tuple,
        dtype: Any,
        *,
        producer: Node | None = None,
        label: str | None = None,
        ref: Any = None,
        data: Any = None,
    ) -> None:
        self.id = id
        self.kind = kind
        self.shape = tuple(shape)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.producer = producer
        self.label = label
        self.ref = ref
        self.data = data
        self.meta: dict[str, Any] = {}

    @property
    def name(self) -> str:
        """The printed name: the label for inputs, ``c3`` for constants, ``v7`` otherwise."""
        if self.kind == "input" and self.label and self.label.isidentifier():
            return self.label
        prefix = {"const": "c", "captured": "p", "scalar": "s"}.get(self.kind, "v")
        return f"{prefix}{self.id}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int | None:
        """Element count (None when a dimension is dynamic)."""
        n = 1
        for d in self.shape:
            if not isinstance(d, int):
                return None
            n *= d
        return n

    def type_str(self) -> str:
        return f"{dtype_name(self.dtype)}{format_shape(self.shape)}"

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type_str()}"


class Node:
    """One op application (see the module docstring).

    Example:
        >>> import numpy as np
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> y = g.add_node("neg", [x], {}, (2,), np.float32)
        >>> y.producer.op, y.producer.inputs[0] is x
        ('neg', True)
    """

    __slots__ = (
        "op",
        "inputs",
        "attrs",
        "output",
        "source",
        "pure",
        "mutates",
        "aliases",
        "out_slot",
        "meta",
    )

    def __init__(
        self,
        op: str,
        inputs: list,
        attrs: dict,
        output: Value | None = None,
        *,
        source: SourceLoc | None = None,
        pure: bool = True,
        mutates: tuple[int, ...] = (),
        aliases: tuple[int, ...] = (),
    ) -> None:
        self.op = op
        self.inputs = list(inputs)
        self.attrs = dict(attrs)
        self.output = output
        self.source = source
        self.pure = pure
        self.mutates = tuple(mutates)
        self.aliases = tuple(aliases)
        self.out_slot: int | None = None
        self.meta: dict[str, Any] = {}

    @property
    def value_inputs(self) -> list[Value]:
        """The inputs that are Values (not Python scalars)."""
        return [x for x in self.inputs if isinstance(x, Value)]

    @property
    def has_effects(self) -> bool:
        """True when DCE must keep this node (impure, or mutates an input)."""
        return not self.pure or bool(self.mutates)

    def format(self) -> str:
        """One line: ``%v3: f32[2] = mul(%x, 2.0) {attrs}  # file:line``."""
        args = ", ".join(_fmt_arg(x) for x in self.inputs)
        text = f"{self.output!r} = {self.op}({args})"
        if self.attrs:
            text += " {" + ", ".join(f"{k}={_fmt_attr(v)}" for k, v in self.attrs.items()) + "}"
        flags = []
        if not self.pure:
            flags.append("impure")
        if self.mutates:
            flags.append("mutates " + ",".join(str(i) for i in self.mutates))
        if self.aliases:
            flags.append("view of " + ",".join(str(i) for i in self.aliases))
        if self.out_slot is not None:
            flags.append(f"out=buf{self.out_slot}")
        if flags:
            text += "  [" + "; ".join(flags) + "]"
        if self.source is not None:
            text += f"  # {self.source}"
        return text

    def __repr__(self) -> str:
        return f"<Node {self.format()}>"


class Update:
    """An effect applied after the graph body: ``copy`` a value into ``target``'s array, or set
    ``target``'s ``.grad`` (``kind="grad"``; ``value`` None clears it).

    Example:
        >>> import numpy as np
        >>> g = Graph(); p = g.add_captured((2,), np.float32, ref=None, label="w")
        >>> g.updates.append(Update(p, None, "grad")); g.updates[0]
        <Update %p1.grad <- None>
    """

    __slots__ = ("target", "value", "kind")

    def __init__(self, target: Value, value: Value | None, kind: str = "copy") -> None:
        if kind not in ("copy", "grad"):
            raise ValueError(f"update kind must be 'copy' or 'grad', got {kind!r}")
        self.target, self.value, self.kind = target, value, kind

    def __repr__(self) -> str:
        src = "None" if self.value is None else f"%{self.value.name}"
        attr = ".grad" if self.kind == "grad" else ""
        return f"<Update %{self.target.name}{attr} <- {src}>"


def _fmt_arg(x: Any) -> str:
    if isinstance(x, Value):
        return f"%{x.name}"
    return _fmt_attr(x)


def _fmt_attr(v: Any) -> str:
    if isinstance(v, np.dtype | type) and not isinstance(v, Sym):
        try:
            return dtype_name(v)
        except TypeError:
            return getattr(v, "__name__", repr(v))
    if isinstance(v, float):
        return repr(v) if abs(v) < 1e6 else f"{v:g}"
    if isinstance(v, tuple):
        inner = ", ".join(_fmt_attr(e) for e in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt_attr(e) for e in v) + "]"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class Graph:
    """A traced program (see the module docstring for the rules).

    Example:
        >>> import numpy as np
        >>> g = Graph("double")
        >>> x = g.add_input((3,), np.float32, label="x")
        >>> g.outputs = [g.add_node("add", [x, x], {}, (3,), np.float32)]
        >>> len(g.nodes), g.validate()
        (1, None)
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: list[Value] = []
        self.captured: list[Value] = []
        self.constants: list[Value] = []
        self.scalars: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: list[Value] = []
        self.output_tree: Any = None
        self.updates: list[Update] = []
        self.device: Any = None
        self.meta: dict[str, Any] = {}
        self._ids = itertools.count(1)

    # -- building ------------------------------------------------------------------------------
    def _value(self, kind: str, shape: tuple, dtype: Any, **kw: Any) -> Value:
        return Value(next(self._ids), kind, shape, dtype, **kw)

    def add_input(self, shape: tuple, dtype: Any, *, label: str | None = None) -> Value:
        """A new graph input (appended to ``inputs``)."""
        v = self._value("input", shape, dtype, label=label)
        self.inputs.append(v)
        return v

    def add_captured(
        self, shape: tuple, dtype: Any, *, ref: Any, label: str | None = None
    ) -> Value:
        """A tensor read by reference on each call (``ref`` is the tensor)."""
        v = self._value("captured", shape, dtype, ref=ref, label=label)
        self.captured.append(v)
        return v

    def add_const(self, data: Any, *, label: str | None = None) -> Value:
        """A constant array (its shape and dtype are taken from ``data``)."""
        v = self._value("const", tuple(data.shape), data.dtype, data=data, label=label)
        self.constants.append(v)
        return v

    def add_scalar(self, getter: Any, dtype: Any, *, label: str | None = None) -> Value:
        """A Python number read live by ``getter()`` on every call (0-d, dtype ``dtype``)."""
        v = self._value("scalar", (), dtype, ref=getter, label=label)
        self.scalars.append(v)
        return v

    def make_node(
        self,
        op: str,
        inputs: list,
        attrs: dict,
        shape: tuple,
        dtype: Any,
        *,
        source: SourceLoc | None = None,
        pure: bool = True,
        mutates: tuple[int, ...] = (),
        aliases: tuple[int, ...] = (),
    ) -> Node:
        """A new node with a fresh output value, not yet placed (see :meth:`insert_node`)."""
        node = Node(op, inputs, attrs, source=source, pure=pure, mutates=mutates, aliases=aliases)
        node.output = self._value("node", shape, dtype, producer=node)
        return node

    def add_node(
        self,
        op: str,
        inputs: list,
        attrs: dict,
        shape: tuple,
        dtype: Any,
        *,
        source: SourceLoc | None = None,
        pure: bool = True,
        mutates: tuple[int, ...] = (),
        aliases: tuple[int, ...] = (),
    ) -> Value:
        """Append a node at the end; returns its output value."""
        node = self.make_node(
            op,
            inputs,
            attrs,
            shape,
            dtype,
            source=source,
            pure=pure,
            mutates=mutates,
            aliases=aliases,
        )
        self.nodes.append(node)
        return node.output

    def insert_node(self, index: int, node: Node) -> Value:
        """Place ``node`` at position ``index`` of ``nodes``; returns its output."""
        self.nodes.insert(index, node)
        return node.output

    def remove_node(self, node: Node) -> None:
        """Remove ``node`` (its output must be unused; :meth:`validate` checks)."""
        self.nodes.remove(node)

    # -- queries -------------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        """Every defined value: inputs, captured, scalars, constants, then node outputs."""
        yield from self.inputs
        yield from self.captured
        yield from self.scalars
        yield from self.constants
        for n in self.nodes:
            yield n.output

    def users(self) -> dict[Value, list[Node]]:
        """For each value, the nodes that read it (in order); outputs/updates not counted."""
        out: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for n in self.nodes:
            for x in n.inputs:
                if isinstance(x, Value):
                    out.setdefault(x, []).append(n)
        return out

    def escaping(self) -> set[Value]:
        """Values whose arrays outlive a call or are written in place: graph outputs, update
        values and targets, the inputs of nodes that mutate them, and the values these are
        views of (``Node.aliases``). Never plan these into reused buffers."""
        esc: set[Value] = set(self.outputs)
        for u in self.updates:
            esc.add(u.target)
            if u.value is not None:
                esc.add(u.value)
        for n in self.nodes:
            for i in n.mutates:
                x = n.inputs[i]
                if isinstance(x, Value):
                    esc.add(x)
        for n in reversed(self.nodes):  # a view of an escaping value makes its base escape
            if n.aliases and n.output in esc:
                for i in n.aliases:
                    x = n.inputs[i]
                    if isinstance(x, Value):
                        esc.add(x)
        return esc

    def replace_uses(self, old: Value, new: Value) -> int:
        """Make every reader of ``old`` (nodes, outputs, update values) read ``new``; returns
        how many uses changed."""
        count = 0
        for n in self.nodes:
            for i, x in enumerate(n.inputs):
                if x is old:
                    n.inputs[i] = new
                    count += 1
        for i, v in enumerate(self.outputs):
            if v is old:
                self.outputs[i] = new
                count += 1
        for u in self.updates:
            if u.value is old:
                u.value = new
                count += 1
        return count

    def copy(self) -> Graph:
        """A structural copy (new Value and Node objects; arrays and refs shared)."""
        g = Graph(self.name)
        g.device, g.meta, g.output_tree = self.device, dict(self.meta), self.output_tree
        mapping: dict[Value, Value] = {}
        top = 0

        def clone(v: Value, producer: Node | None = None) -> Value:
            nonlocal top
            nv = Value(v.id, v.kind, v.shape, v.dtype, producer=producer, label=v.label)
            nv.ref, nv.data, nv.meta = v.ref, v.data, dict(v.meta)
            mapping[v] = nv
            top = max(top, v.id)
            return nv

        g.inputs = [clone(v) for v in self.inputs]
        g.captured = [clone(v) for v in self.captured]
        g.scalars = [clone(v) for v in self.scalars]
        g.constants = [clone(v) for v in self.constants]
        for n in self.nodes:
            nn = Node(
                n.op,
                [mapping.get(x, x) if isinstance(x, Value) else x for x in n.inputs],
                n.attrs,
                source=n.source,
                pure=n.pure,
                mutates=n.mutates,
                aliases=n.aliases,
            )
            nn.out_slot, nn.meta = n.out_slot, dict(n.meta)
            nn.output = clone(n.output, nn)
            g.nodes.append(nn)
        g.outputs = [mapping.get(v, v) for v in self.outputs]
        g.updates = [
            Update(mapping.get(u.target, u.target), mapping.get(u.value, u.value), u.kind)
            for u in self.updates
        ]
        g._ids = itertools.count(top + 1)
        return g

    # -- checking ------------------------------------------------------------------------------
    def validate(self, *, check_ops: bool = True) -> None:
        """Raise :class:`IRError` unless every IR rule holds: each value defined once and
        before use, kinds and producers consistent, ops registered, ``mutates`` positions
        valid, outputs and updates defined, update targets inputs/captured, ``out_slot``
        never on an escaping value.

        Example:
            >>> import numpy as np
            >>> g = Graph(); x = g.add_input((2,), np.float32)
            >>> g.outputs = [x]; g.validate()
        """
        from .validate import validate

        validate(self, check_ops=check_ops)

    lint = validate

    # -- printing ------------------------------------------------------------------------------
    def format(self) -> str:
        """The readable listing (also ``str(graph)``)."""
        head = ", ".join(repr(v) for v in self.inputs)
        lines = [f"graph {self.name}({head}):"]
        for v in self.captured:
            lines.append(f"  {v!r} = captured {v.label or ''}".rstrip())
        for v in self.scalars:
            lines.append(f"  {v!r} = scalar {v.label or ''}".rstrip())
        for v in self.constants:
            lines.append(f"  {v!r} = const {_const_preview(v.data)}")
        for n in self.nodes:
            lines.append("  " + n.format())
        for u in self.updates:
            src = "None" if u.value is None else f"%{u.value.name}"
            attr = ".grad" if u.kind == "grad" else ""
            lines.append(f"  update %{u.target.name}{attr} <- {src}")
        lines.append("  return (" + ", ".join(f"%{v.name}" for v in self.outputs) + ")")
        return "\n".join(lines)

    __str__ = format

    def __repr__(self) -> str:
        return f"<Graph {self.name}: {len(self.inputs)} inputs, {len(self.nodes)} nodes>"

    def to_dot(self) -> str:
        """Graphviz source of this graph (see :mod:`ember.graph.visualize`)."""
        from .visualize import to_dot

        return to_dot(self)

    def summary(self) -> str:
        """A table of ops, shapes and parameter counts (see :mod:`ember.graph.visualize`)."""
        from .visualize import summary

        return summary(self)

    def op_counts(self) -> dict[str, int]:
        """How many nodes apply each op.

        Example:
            >>> Graph().op_counts()
            {}
        """
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts


def _const_preview(data: Any) -> str:
    try:
        arr = np.asarray(data)
    except Exception:
        return "<array>"
    if arr.size <= 4:
        return np.array2string(arr, separator=", ").replace("\n", "")
    return f"<{dtype_name(arr.dtype)}{format_shape(arr.shape)}>"


def topological(nodes: Iterable[Node]) -> bool:
    """True when every node reads only values defined by earlier nodes or graph inputs.

    Example:
        >>> topological([])
        True
    """
    produced: set[Value] = set()
    for n in nodes:
        for x in n.inputs:
            if isinstance(x, Value) and x.kind == "node" and x not in produced:
                return False
        produced.add(n.output)
    return True

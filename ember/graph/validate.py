"""The IR validator behind :meth:`ember.graph.ir.Graph.validate` (run after every pass in
tests): each value defined once and before use, kinds and producers consistent, ops in the
registry, ``mutates``/``aliases`` positions valid (and covering every input the op's
``MUTATES`` entry says it writes), outputs and updates defined, update
targets inputs or captured values, ``out_slot`` never on an escaping value.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); x = g.add_input((2,), np.float32)
    >>> g.outputs = [x]; validate(g)
"""

from __future__ import annotations

from typing import Any

from .ir import Graph, IRError, Sym, Value

__all__ = ["validate"]


def validate(graph: Graph, *, check_ops: bool = True) -> None:
    """Raise :class:`~ember.graph.ir.IRError` unless ``graph`` follows every IR rule.

    Example:
        >>> validate(Graph())
    """
    registry = None
    writes = None
    if check_ops:
        from ..ops.optim import mutated_positions as writes  # (registers the update ops)
        from ..ops.registry import REGISTRY as registry
    defined: set[int] = set()
    seen: set[Value] = set()

    def define(v: Value, kind: str) -> None:
        if not isinstance(v, Value):
            raise IRError(f"{kind} list holds a non-Value: {v!r}")
        if v.kind != kind:
            raise IRError(f"%{v.name} is listed as {kind} but has kind {v.kind!r}")
        if v in seen or v.id in defined:
            raise IRError(f"%{v.name} is defined twice")
        if not isinstance(v.shape, tuple) or not all(
            isinstance(d, int | Sym) and not isinstance(d, bool) for d in v.shape
        ):
            raise IRError(f"%{v.name} has a malformed shape {v.shape!r}")
        seen.add(v)
        defined.add(v.id)

    for v in graph.inputs:
        define(v, "input")
    for v in graph.captured:
        define(v, "captured")
    for v in graph.scalars:
        define(v, "scalar")
        if not callable(v.ref):
            raise IRError(f"scalar %{v.name} has no getter")
    for v in graph.constants:
        define(v, "const")
        if v.data is None:
            raise IRError(f"constant %{v.name} has no data")
    for i, n in enumerate(graph.nodes):
        where = f"node {i} ({n.op})"
        if registry is not None and n.op not in registry:
            raise IRError(f"{where}: op {n.op!r} is not in the registry")
        for x in n.inputs:
            if isinstance(x, Value) and x not in seen:
                raise IRError(f"{where}: input %{x.name} is used before it is defined")
        for what, positions in (("mutates", n.mutates), ("aliases", n.aliases)):
            for k in positions:
                if not (0 <= k < len(n.inputs)) or not isinstance(n.inputs[k], Value):
                    raise IRError(f"{where}: {what} position {k} is not a Value input")
        if writes is not None:
            _check_writes(n, where, writes)
        out = n.output
        if out is None or out.producer is not n:
            raise IRError(f"{where}: output's producer is not this node")
        define(out, "node")
    escaping = graph.escaping()
    for n in graph.nodes:
        if n.out_slot is not None and n.output in escaping:
            raise IRError(f"%{n.output.name} escapes but is planned into buf{n.out_slot}")
    for v in graph.outputs:
        if v not in seen:
            raise IRError(f"output %{getattr(v, 'name', v)} is not defined in this graph")
    for u in graph.updates:
        if u.target not in seen or u.target.kind not in ("input", "captured"):
            raise IRError(f"update target %{u.target.name} must be an input or captured")
        if u.value is not None and u.value not in seen:
            raise IRError(f"update value %{u.value.name} is not defined in this graph")
        if u.kind == "copy" and u.value is None:
            raise IRError(f"copy update of %{u.target.name} has no value")


def _check_writes(n: Any, where: str, writes: Any) -> None:
    """Every Value input that ``n``'s op writes in place (its ``MUTATES`` entry, a rule for a
    variadic op) must be listed in ``n.mutates``, or passes would not see the write."""
    try:
        declared = writes(n.op, len(n.inputs), n.attrs)
    except (KeyError, TypeError, ValueError) as exc:
        raise IRError(f"{where}: cannot tell which inputs it writes: {exc!r}") from None
    missing = [k for k in declared if isinstance(n.inputs[k], Value) and k not in n.mutates]
    if missing:
        raise IRError(f"{where}: writes inputs {missing} in place but mutates lists {n.mutates}")

"""Looking at graphs: Graphviz source (:func:`to_dot`) and a table of ops, shapes and
parameter counts (:func:`summary`). Also available as ``graph.to_dot()`` and
``graph.summary()``.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph("f"); x = g.add_input((2, 3), np.float32, label="x")
    >>> g.outputs = [g.add_node("relu", [x], {}, (2, 3), np.float32)]
    >>> to_dot(g).splitlines()[0]
    'digraph "f" {'
"""

from __future__ import annotations

from typing import Any

from .ir import Graph, Value, dtype_name, format_shape

__all__ = ["to_dot", "summary"]

_KIND_STYLE = {
    "input": 'shape=box, style="rounded,filled", fillcolor="#dbeafe"',
    "captured": 'shape=box, style="rounded,filled", fillcolor="#fef3c7"',
    "const": 'shape=box, style="rounded,filled", fillcolor="#e5e7eb"',
    "scalar": 'shape=box, style="rounded,filled", fillcolor="#ede9fe"',
}


def _q(text: str) -> str:
    return '"' + text.replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz ``dot`` source: one box per graph input, captured tensor, scalar or constant,
    one ellipse per node (impure ones in red), edges labelled with shapes; updates dashed.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); x = g.add_input((2,), np.float32, label="x")
        >>> g.outputs = [g.add_node("neg", [x], {}, (2,), np.float32)]
        >>> "neg" in to_dot(g)
        True
    """
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=TB;", '  node [fontname="Helvetica"];']
    ids: dict[Value, str] = {}
    for v in (*graph.inputs, *graph.captured, *graph.scalars, *graph.constants):
        ids[v] = f"n{v.id}"
        text = f"{v.label or v.name}\n{v.type_str()}"
        lines.append(f"  {ids[v]} [label={_q(text)}, {_KIND_STYLE[v.kind]}];")
    for n in graph.nodes:
        nid = f"n{n.output.id}"
        ids[n.output] = nid
        text = f"{n.op}\n{n.output.type_str()}"
        if n.source is not None:
            text += f"\n{n.source}"
        style = 'color="#dc2626"' if n.has_effects else 'color="#374151"'
        lines.append(f"  {nid} [label={_q(text)}, shape=ellipse, {style}];")
        for x in n.value_inputs:
            lines.append(f"  {ids[x]} -> {nid} [label={_q(format_shape(x.shape))}];")
    for i, v in enumerate(graph.outputs):
        lines.append(f'  out{i} [label="output {i}", shape=doublecircle];')
        lines.append(f"  {ids[v]} -> out{i};")
    for u in graph.updates:
        if u.value is not None:
            label = ".grad" if u.kind == "grad" else "copy"
            lines.append(f"  {ids[u.value]} -> {ids[u.target]} [style=dashed, label={_q(label)}];")
    lines.append("}")
    return "\n".join(lines)


def _params(v: Any) -> int:
    n = v.numel
    return 0 if n is None else n


def summary(graph: Graph) -> str:
    """A readable table: one row per node (op, output shape and dtype, source line), then
    per-op counts and the element counts of inputs, captured tensors (parameters and state)
    and constants.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); x = g.add_input((2, 3), np.float32, label="x")
        >>> g.outputs = [g.add_node("relu", [x], {}, (2, 3), np.float32)]
        >>> print(summary(g).splitlines()[0])
        graph f: 1 nodes, 1 inputs, 0 captured (0 elements), 0 constants
    """
    cap = sum(_params(v) for v in graph.captured)
    rows = [("#", "op", "output", "dtype", "source")]
    for i, n in enumerate(graph.nodes):
        flag = "*" if n.has_effects else ""
        rows.append(
            (
                str(i),
                n.op + flag,
                format_shape(n.output.shape),
                dtype_name(n.output.dtype),
                "" if n.source is None else f"{n.source} {n.source.line}"[:60],
            )
        )
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    out = [
        f"graph {graph.name}: {len(graph.nodes)} nodes, {len(graph.inputs)} inputs, "
        f"{len(graph.captured)} captured ({cap:,} elements), {len(graph.constants)} constants"
    ]
    for r in rows:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    counts = sorted(graph.op_counts().items(), key=lambda kv: (-kv[1], kv[0]))
    if counts:
        out.append("ops: " + ", ".join(f"{op} x{k}" for op, k in counts))
    if graph.captured:
        out.append("captured:")
        for v in graph.captured:
            out.append(f"  {v.label or v.name:<40} {v.type_str():<20} {_params(v):>12,}")
    if any(n.has_effects for n in graph.nodes):
        out.append("* impure or in-place (kept by dead-code elimination)")
    return "\n".join(out)

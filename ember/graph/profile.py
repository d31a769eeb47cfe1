"""Per-node timing of a compiled function: where a compiled step's time goes.

:func:`profile` runs a compiled function's last graph with a clock read after every
statement of its generated source (a copy of the function instrumented through ``ast``; the
compiled function itself is untouched), and charges each statement's time to the graph node
it computes. The result, a :class:`GraphProfile`, sums the time per op and per node, each
node with the user's source line that created it. Each profiled call really runs (a training
step updates its parameters), and the clock reads add about a microsecond per statement.

On a GPU a statement only queues its kernels, so each clock read there first waits for the
device (``synchronize=True``, the default): the times are then what each node costs the
GPU plus its launch, and their sum is slower than a plain call, which overlaps launching
with the GPU's work. ``synchronize=False`` times the launches alone (the Python side).

Example:
    >>> import ember
    >>> f = ember.compile(lambda x: (x @ x).relu().sum())
    >>> p = f.profile(ember.ones(64, 64), runs=3)
    >>> "matmul" in p.by_op()
    True
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["profile", "GraphProfile", "NodeTime"]


@dataclass
class NodeTime:
    """The time of one graph node (or one kind of glue code) per call.

    Example:
        >>> NodeTime("matmul", "%v2 = matmul(%x, %w)", "train.py:12", 0.001).op
        'matmul'
    """

    op: str  # the op, or "(glue)" for statements that compute no node (reads, frees)
    node: str  # the node as the graph prints it
    source: str  # the user's line that created it ("" when unknown)
    seconds: float  # per call


@dataclass
class GraphProfile:
    """Where the time of a compiled function's calls went (seconds per call).

    ``total`` is a whole call as the user makes it, ``graph`` the part inside the generated
    function; ``nodes`` lists each node's time, largest first.

    Example:
        >>> p = GraphProfile(runs=1, total=1e-3, graph=8e-4)
        >>> p.by_op()
        {}
    """

    runs: int
    total: float
    graph: float
    nodes: list[NodeTime] = field(default_factory=list)

    def by_op(self) -> dict[str, float]:
        """Seconds per call summed per op, largest first.

        Example:
            >>> GraphProfile(1, 1.0, 1.0, [NodeTime("add", "", "", 0.5)]).by_op()
            {'add': 0.5}
        """
        out: dict[str, float] = {}
        for n in self.nodes:
            out[n.op] = out.get(n.op, 0.0) + n.seconds
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def table(self, top: int = 15) -> str:
        """The ops and the ``top`` nodes with their share of the graph's time, as text.

        Example:
            >>> "per call" in GraphProfile(1, 1e-3, 1e-3).table()
            True
        """
        ms = 1e3
        lines = [
            f"{self.runs} calls: {self.total * ms:.3f} ms per call, "
            f"{self.graph * ms:.3f} ms inside the graph"
        ]
        share = self.graph or 1.0
        lines.append("by op:")
        for op, s in list(self.by_op().items())[:top]:
            lines.append(f"  {s * ms:9.3f} ms {100 * s / share:5.1f}%  {op}")
        lines.append(f"top {top} nodes:")
        for n in self.nodes[:top]:
            where = f"  ({n.source})" if n.source else ""
            lines.append(f"  {n.seconds * ms:9.3f} ms  {n.node[:90]}{where}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _instrument(code: str) -> ast.Module:
    """``code``'s ``_graph`` with ``_prof_t.append((line, _prof_clock()))`` after each
    statement of its body (and one at its start, line 0), line numbers kept."""
    tree = ast.parse(code)
    fn = tree.body[0]
    assert isinstance(fn, ast.FunctionDef)

    def tick(line: int, at: ast.AST) -> ast.stmt:
        stmt = ast.parse(f"_prof_t.append(({line}, _prof_clock()))").body[0]
        return ast.copy_location(stmt, at)

    body: list[ast.stmt] = [tick(0, fn.body[0])]
    for stmt in fn.body:
        if isinstance(stmt, ast.Return):
            body.append(stmt)
            continue
        body += [stmt, tick(stmt.lineno, stmt)]
    fn.body = body
    return ast.fix_missing_locations(tree)


def _clock(prog: Any, synchronize: bool) -> Any:
    """``time.perf_counter``, or on a GPU with ``synchronize`` one that first waits for
    the device's queued work."""
    xp = getattr(prog, "xp", None)
    if not synchronize or xp is None or xp.__name__ == "numpy":
        return time.perf_counter
    device = xp.cuda.Device()

    def clock() -> float:
        device.synchronize()
        return time.perf_counter()

    return clock


def _region_labels(prog: Any) -> dict[Any, str]:
    """Node -> "C region N: ops" for the last node of each fused C region (the executor
    writes a region's lines under a ``# C region N: ops`` comment, all mapped to that node)."""
    out = {}
    for i, text in enumerate(prog.code.splitlines(), start=1):
        if text.strip().startswith("# C region") and i in prog.lines:
            out[prog.lines[i]] = text.strip()[2:]
    return out


def profile(
    fn: Any,
    *args: Any,
    runs: int = 10,
    warmup: int = 2,
    synchronize: bool = True,
    **kwargs: Any,
) -> GraphProfile:
    """Call the compiled function ``fn`` ``warmup`` times, then ``runs`` times with every
    statement of its graph timed; returns the :class:`GraphProfile` (see the module
    docstring; ``synchronize`` matters on a GPU only). Raises ValueError when the calls do
    not run a compiled graph (eager mode, a graph break).

    Example:
        >>> import ember
        >>> f = ember.compile(lambda x: x.exp().sum())
        >>> profile(f, ember.ones(8), runs=2).runs
        2
    """
    if runs < 1:
        raise ValueError(f"profile: runs must be >= 1, got {runs}")
    for _ in range(max(1, warmup)):
        fn(*args, **kwargs)
    entry = fn._last
    if entry is None or getattr(entry, "program", None) is None or fn._broken is not None:
        raise ValueError(
            f"profile: {fn.name} does not run a compiled graph for these arguments (it runs "
            "eagerly: a graph break, ember.config.run_eagerly or EMBER_EAGER)"
        )
    prog = entry.program
    ticks: list[tuple[int, float]] = []
    ns = dict(prog._fn.__globals__, _prof_t=ticks, _prof_clock=_clock(prog, synchronize))
    exec(compile(_instrument(prog.code), prog.filename, "exec"), ns)  # noqa: S102 - ours
    plain, prog._fn = prog._fn, ns["_graph"]
    try:
        clock = _clock(prog, synchronize)
        t0 = clock()
        for _ in range(runs):
            fn(*args, **kwargs)
        total = (clock() - t0) / runs
    finally:
        prog._fn = plain
    per_line: dict[int, float] = {}
    for (_, before), (line, now) in zip(ticks, ticks[1:]):
        if line:  # line 0 starts a call: the gap before it is outside the graph
            per_line[line] = per_line.get(line, 0.0) + now - before
    regions = _region_labels(prog)
    nodes: dict[Any, NodeTime] = {}
    for line, seconds in per_line.items():
        node = prog.lines.get(line)
        key = node if node is not None else "(glue)"
        if key not in nodes:
            if node is None:
                nodes[key] = NodeTime("(glue)", "reads, frees, updates", "", 0.0)
            else:
                src = node.source.describe() if node.source is not None else ""
                region = regions.get(node)
                text = node.format().split("  # ")[0] if region is None else region
                nodes[key] = NodeTime("C region" if region else node.op, text, src, 0.0)
        nodes[key].seconds += seconds / runs
    rows = sorted(nodes.values(), key=lambda n: -n.seconds)
    return GraphProfile(runs, total, sum(n.seconds for n in rows), rows)

"""The executor: turn a :class:`~ember.graph.ir.Graph` into one plain Python function over
the array module and run it.

The generated source reads the graph's inputs (arrays), captured tensors (their live
``_data``), scalars (their getters, once per call) and constants, then runs one line per node
(``v7 = xp.matmul(v5, p2)``, or the op's own forward: see :mod:`ember.graph.kernels`), with no
Tensor objects and no autograd bookkeeping, then applies the updates (copies into captured
arrays, new ``.grad`` tensors) and returns the output arrays. Each array is let go (``del``)
after the last line that reads it, as eager mode would free it, so a call holds no more
memory at once than an eager step (and reuses freed memory instead of touching new pages).
``Program.code`` shows the source; it is compiled under the file name
``<ember.compile:NAME>`` and registered with ``linecache``, and an exception inside it is
re-raised as :class:`GraphRuntimeError` naming the failing node and the user's source line
that created it.

C regions (:mod:`ember.graph.passes.regions`): when the graph has them and runs on the CPU,
all regions become one generated C file (``Program.c_code``; :mod:`ember.graph.codegen_c`),
built once and cached on disk, and each region is one line ``_r0(_p(_c(x)), ..., nt)`` where
its last member stood (its outputs allocated just before). When the kernels cannot be built
(or ``EMBER_KERNELS=numpy``) ``Program.c_failed`` is set and the members run one by one;
``ember.compile`` then re-optimizes the graph for the NumPy path (in-place fusion, buffers).

Example:
    >>> import ember
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph("double")
    >>> x = g.add_input((2,), np.float32, label="x")
    >>> g.outputs = [g.add_node("mul", [x, 2.0], {}, (2,), np.float32)]
    >>> prog = Program(g)
    >>> prog.run([np.ones(2, np.float32)], [])[0].tolist()
    [2.0, 2.0]
"""

from __future__ import annotations

import itertools
import keyword
import linecache
import math
import re
import threading
from typing import Any

import numpy as np

from ..device import CPU
from ..errors import EmberError
from ..memory import empty_aligned, owns_memory
from ..tensor import Tensor
from .ir import Graph, Node, Sym, Value
from .ir_types import has_sym
from .kernels import HELPERS, emit, forward_name, supports_out

__all__ = ["Program", "GraphRuntimeError"]

_counter = itertools.count()
STEP_PROGRAMS = 8  # step programs kept per graph (one per batch size of a dynamic graph)


class GraphRuntimeError(EmberError):
    """An error raised inside a compiled graph; names the node and the user's source line.

    Example:
        >>> import ember
        >>> issubclass(GraphRuntimeError, ember.EmberError)
        True
    """

    def __init__(self, message: str, node: Node | None = None) -> None:
        super().__init__(message)
        self.node = node


def _own(arr: Any) -> Any:
    """``arr`` if it owns writable memory, else a copy (what ``.grad`` may hold). An array
    of ember's GEMM (``empty_aligned``: a view of its own aligned buffer) owns it: copying
    W1's two weight gradients cost about 0.2 ms of its 2.8 ms step."""
    if not getattr(arr.flags, "writeable", True) or not owns_memory(arr):
        return arr.copy()
    return arr


class Program:
    """An executable graph: generated source, compiled once (see the module docstring).

    ``run(inputs, input_tensors)`` takes the input arrays (and the input tensors, used only
    for ``.grad`` updates of inputs) and returns the list of output arrays.

    Example:
        >>> import numpy as np
        >>> g = Graph("f"); x = g.add_input((1,), np.float64, label="x")
        >>> g.outputs = [g.add_node("exp", [x], {}, (1,), np.float64)]
        >>> "xp.exp(x)" in Program(g).code
        True
    """

    def __init__(self, graph: Graph, device: Any = None) -> None:
        self.graph = graph
        self.device = device if device is not None else _graph_device(graph)
        self.xp = self.device.xp
        self.filename = f"<ember.compile:{graph.name}#{next(_counter)}>"
        self.lines: dict[int, Node] = {}
        self.sym_source: tuple[int, int] | None = graph.meta.get("batch_source")
        self._buffers: dict[Any, list] = {}
        self.code = self._generate()
        # the ``out=`` buffers of every call when they do not depend on the batch size (none:
        # ``()``), found once; None: looked up per call (see :meth:`run`)
        self._fixed: Any = () if not self._slots else None
        # the whole graph as one C call (:mod:`.steps`), per batch size (None: a static
        # graph): a program, or False where the steps do not apply; False: CPU only
        self._steps: Any = {} if self.device is CPU else False
        self.steps_run: Any = None  # the step program of the last call (None: per node)
        # one call at a time: the out= buffers (and the steps' arena) are shared by all calls,
        # and kernels let go of the GIL (two threads calling one compiled function got wrong
        # results in 380 of 400 calls without it)
        self._lock = threading.Lock()
        ns = self._namespace
        exec(compile(self.code, self.filename, "exec"), ns)  # noqa: S102 - our own source
        self._fn = ns["_graph"]
        self._refs = [v.ref for v in graph.captured]  # fixed once traced: read per call
        self._getters = _getters(graph)
        src_lines = self.code.splitlines(keepends=True)
        linecache.cache[self.filename] = (len(self.code), None, src_lines, self.filename)

    # -- generation -----------------------------------------------------------------------------
    def _generate(self) -> str:
        g = self.graph
        ns: dict[str, Any] = {
            "xp": self.xp,
            "_asarray": self.xp.asarray,
            "_own": _own,
            "_T": Tensor._make,
            "_CPU": CPU,
            **HELPERS,
        }
        self._namespace = ns
        self._consts = itertools.count()
        names: dict[Value, str] = {}
        body: list[tuple[str, Node | None]] = []
        for v in g.values():
            names[v] = _safe(v)
        if self.sym_source is not None:
            i, d = self.sym_source
            body.append((f"B = _in[{i}].shape[{d}]", None))
        for i, v in enumerate(g.inputs):
            body.append((f"{names[v]} = _in[{i}]", None))
        for i, v in enumerate(g.captured):
            if isinstance(v.ref, Tensor):
                body.append((f"{names[v]} = _cap[{i}]._data", None))
            else:
                body.append((f"{names[v]} = _cap[{i}].read()", None))
        for i, v in enumerate(g.scalars):
            body.append((f"{names[v]} = _sc[{i}]()", None))
        for v in g.constants:
            ns[names[v]] = v.data
        slots: dict[int, Value] = {}
        active = self._c_regions(ns)
        for n in g.nodes:
            fn = active.get(n.meta.get("region"))
            if fn is not None:
                if n is fn.region.nodes[-1]:
                    body += [(line, n) for line in self._c_call(fn, names)]
                continue
            ns.setdefault(forward_name(n.op), _forward(n.op))
            args = [names[x] if isinstance(x, Value) else self._literal(x) for x in n.inputs]
            attrs = {k: self._literal(a) for k, a in n.attrs.items()}
            name = names[n.output]
            out = None
            inplace = n.meta.get("inplace")
            if n.out_slot is not None:
                out = f"_buf[{n.out_slot}]"
            elif isinstance(inplace, int) and 0 <= inplace < len(args):
                out = args[inplace]  # a fused follower computes into its accumulator
            if out is not None and supports_out(n):
                if n.out_slot is not None:
                    slots[n.out_slot] = n.output
                body.append((f"{name} = {emit(n, args, attrs, out)}", n))
                continue
            if out is not None and n.op in out_kernels():
                if n.out_slot is not None:
                    slots[n.out_slot] = n.output
                body.append((out_code(n.op, args, n.attrs, out), n))
                body.append((f"{name} = {out}", n))
                continue
            expr = emit(n, args, attrs, None)
            if n.output.ndim == 0:
                expr = f"_asarray({expr})"
            body.append((f"{name} = {expr}", n))
        self._slots = slots
        for u in g.updates:
            tgt = self._target(u.target, names)
            if u.kind == "copy":
                body.append((f"xp.copyto({tgt}, {names[u.value]})", None))
                continue
            owner = self._owner(u.target)
            if u.value is None:
                body.append((f"{owner}.grad = None", None))
                continue
            val = names[u.value]
            src = f"{val}.copy()" if u.value.kind != "node" else f"_own({val})"
            body.append((f"{owner}.grad = _T({src}, {owner}.device)", None))
        outs = ", ".join(names[v] for v in g.outputs)
        body.append((f"return ({outs}{',' if len(g.outputs) == 1 else ''})", None))
        local = {names[n.output] for n in g.nodes}
        local.update(names[v] for v in itertools.chain(g.inputs, g.captured, g.scalars))
        drops = _last_reads([text for text, _ in body], local)
        lines = ["def _graph(_in, _tin, _cap, _sc, _buf):"]
        for i, (text, node) in enumerate(body):
            lines.append("    " + text)
            if node is not None:
                self.lines[len(lines)] = node
            if i in drops:
                lines.append("    del " + ", ".join(drops[i]))
        return "\n".join(lines) + "\n"

    def _c_regions(self, ns: dict) -> dict:
        """Build the graph's C kernels (one C file, see :mod:`.codegen_c`) when the graph has
        regions and runs on the CPU; returns region id -> its :class:`CFunction`, or {} (the
        members then run one by one)."""
        self.c_code: str | None = None
        self.c_failed = False
        self.c_library: Any = None
        if self.device is not CPU or not any("region" in n.meta for n in self.graph.nodes):
            return {}
        from ..threads import kernel_threads
        from .codegen_c import generate, load
        from .passes.regions import region_groups

        src = generate(self.graph, region_groups(self.graph))
        self.c_code = src.text
        lib = load(src)
        self.c_library = lib
        if lib is None:
            self.c_failed = True
            return {}
        ns.update(_p=lib.ffi.from_buffer, _c=self.xp.ascontiguousarray, _kt=kernel_threads)
        active = {}
        for fn in src.functions:
            ns[f"_{fn.name}"] = getattr(lib.lib, src.symbol(fn))
            active[fn.region.id] = fn
        return active

    def _c_call(self, fn: Any, names: dict[Value, str]) -> list[str]:
        """The lines running one region: allocate its outputs, call its C function."""
        from ..threads import MIN_WORK_PER_THREAD

        ops = " ".join(n.op for n in fn.region.nodes)
        lines = [f"# C region {fn.region.id}: {ops}"]
        for v in fn.outputs:
            lines.append(f"{names[v]} = xp.empty({tuple(v.shape)!r}, {v.dtype.name!r})")
        args = [f"_p(_c({names[x]}))" for x in fn.inputs]
        args += [f"float({names[x]})" for x in fn.scalars]
        args += [f"_p({names[v]})" for v in fn.outputs]
        args.append(f"_kt({fn.work})" if fn.work >= 2 * MIN_WORK_PER_THREAD else "1")
        lines.append(f"_{fn.name}({', '.join(args)})")
        return lines

    def _target(self, v: Value, names: dict[Value, str]) -> str:
        return names[v]

    def _owner(self, v: Value) -> str:
        if v.kind == "input":
            return f"_tin[{self.graph.inputs.index(v)}]"
        i = self.graph.captured.index(v)
        return f"_cap[{i}]" if isinstance(v.ref, Tensor) else f"_cap[{i}].leaf"

    def _literal(self, x: Any) -> str:
        """Source text for an attribute or scalar argument (a namespace name if needed)."""
        if isinstance(x, Sym):
            return x.code("B")
        if x is None or isinstance(x, bool | int | str):
            return repr(x)
        if isinstance(x, float) and math.isfinite(x):
            return repr(x)
        if isinstance(x, tuple | list) and any(has_sym(e) for e in x):
            inner = ", ".join(self._literal(e) for e in x)
            if isinstance(x, list):
                return f"[{inner}]"
            return f"({inner},)" if len(x) == 1 else f"({inner})"
        if isinstance(x, slice) and has_sym(x):
            return (
                f"slice({self._literal(x.start)}, {self._literal(x.stop)}, {self._literal(x.step)})"
            )
        if isinstance(x, tuple) and all(e is None or isinstance(e, bool | int | str) for e in x):
            return repr(x)
        name = f"k{next(self._consts)}"
        self._namespace[name] = x
        return name

    # -- running --------------------------------------------------------------------------------
    def buffers(self, bval: int | None) -> list:
        """The ``out=`` buffers for this call (allocated once per batch size)."""
        bufs = self._buffers.get(bval)
        if bufs is None:
            specs = {k: (v.shape, v.dtype) for k, v in self._slots.items()}
            planned = self.graph.meta.get("buffers")
            if isinstance(planned, list | tuple):
                specs.update((k, spec) for k, spec in enumerate(planned) if k in specs)
            elif isinstance(planned, dict):
                specs.update((k, spec) for k, spec in planned.items() if k in specs)
            bufs = [None] * (max(specs, default=-1) + 1)
            for slot, (shape, dtype) in specs.items():
                shape = tuple(d.resolve(bval) if isinstance(d, Sym) else d for d in shape)
                if self.xp is np:  # vector kernels store whole cache lines
                    bufs[slot] = empty_aligned(shape, dtype)
                else:
                    bufs[slot] = self.xp.empty(shape, dtype=dtype)
            self._buffers[bval] = bufs
        return bufs

    def run(self, inputs: list, input_tensors: list) -> list:
        """Run the graph on input arrays; returns the output arrays. Calls from several
        threads run one at a time."""
        with self._lock:
            programs = self._steps
            self.steps_run = None
            if programs is not False:  # the whole graph as one C call, where it applies
                bval = None
                if self.sym_source is not None:
                    i, d = self.sym_source
                    bval = inputs[i].shape[d]
                steps = programs.get(bval)
                if steps is None or (steps and not steps.valid()):
                    if len(programs) >= STEP_PROGRAMS:
                        programs.clear()
                    steps = programs[bval] = self._lower_steps(bval)
                if steps:
                    outs = steps.run(inputs)
                    if outs is not None:
                        self.steps_run = steps
                        return outs
            return self._run(inputs, input_tensors)

    def _run(self, inputs: list, input_tensors: list) -> list:
        """The generated function's call (node by node)."""
        bufs = self._fixed
        if bufs is None:  # buffers that depend on the batch size, or not yet allocated
            bval = None
            if self.sym_source is not None:
                i, d = self.sym_source
                bval = inputs[i].shape[d]
            bufs = self._buffers.get(bval)
            if bufs is None:
                bufs = self.buffers(bval)
            if self.sym_source is None:
                self._fixed = bufs
        try:
            return self._fn(inputs, input_tensors, self._refs, self._getters, bufs)
        except Exception as exc:
            g = self.graph
            node = self._failing_node(exc)
            if node is None:
                raise
            where = node.source.describe() if node.source is not None else "an unknown line"
            msg = (
                f"{type(exc).__name__} in compiled graph {g.name}: {exc}\n"
                f"  while running {node.format()}\n"
                f"  created at {where}"
            )
            raise GraphRuntimeError(msg, node) from exc

    def _lower_steps(self, bval: int | None) -> Any:
        """The graph as one C call for batch size ``bval`` (:func:`.steps.lower`), or False
        where it does not apply."""
        if self.c_failed:
            return False
        from .steps import lower

        return lower(self.graph, bval) or False

    def _failing_node(self, exc: BaseException) -> Node | None:
        tb = exc.__traceback__
        found = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.filename:
                found = self.lines.get(tb.tb_lineno)
            tb = tb.tb_next
        return found


def out_kernels() -> dict:
    """The passes' ``out=`` kernels (``ember.graph.passes.KERNELS``), or none."""
    try:
        from .passes import KERNELS
    except ImportError:  # pragma: no cover - the passes are optional for the executor
        return {}
    return KERNELS


def out_code(op: str, args: list[str], attrs: dict, out: str) -> str:
    """One statement writing ``op``'s result into ``out`` (the passes' spelling)."""
    from .passes import out_code as spell

    return spell(op, args, attrs, out)


_WORD = re.compile(r"[A-Za-z_]\w*")


def _last_reads(body: list[str], local: set[str]) -> dict[int, list[str]]:
    """Line index -> the ``local`` names last mentioned on that line (to ``del`` after it);
    names on the last line (the ``return``) are kept. A mention inside a string literal can
    only make a name live longer, never drop it early.

    Example:
        >>> _last_reads(["a = f(x)", "b = g(a, x)", "return (b,)"], {"a", "b", "x"})
        {1: ['a', 'x']}
    """
    last: dict[str, int] = {}
    for i, text in enumerate(body):
        for word in _WORD.findall(text):
            if word in local:
                last[word] = i
    drops: dict[int, list[str]] = {}
    for name, i in last.items():
        if i < len(body) - 1:
            drops.setdefault(i, []).append(name)
    return {i: sorted(names) for i, names in drops.items()}


def _getters(g: Graph) -> list:
    return [v.ref for v in g.scalars]


def _forward(op: str) -> Any:
    from ..ops.registry import REGISTRY

    return REGISTRY[op].forward


_GENERATED = re.compile(r"^([vcpsk]\d+|f_.*|B|xp)$")


def _safe(v: Value) -> str:
    """A Python identifier for a value (input labels like ``batch['x']`` are not, and an
    input label must not shadow a generated name)."""
    name = v.name
    if v.kind != "input":
        return name
    if name.isidentifier() and not name.startswith("_") and not _GENERATED.match(name):
        if not keyword.iskeyword(name):
            return name
    return "in_" + "".join(c if c.isalnum() else "_" for c in name)


def _graph_device(g: Graph) -> Any:
    for v in itertools.chain(g.inputs, g.captured):
        dev = v.meta.get("device")
        if dev is not None:
            return dev
    return CPU

"""C code for the fusion regions of a graph (:mod:`ember.graph.passes.regions`): one C
function per region, all of a graph's regions in one C file, compiled once and cached by
content hash (:func:`ember.kernels.build.load_unit`).

A region runs as rows: ``M`` outer indices (the leading dims of its iteration shape), each a
row of ``N`` contiguous elements (its trailing ``rows`` dims). The outer loop is an OpenMP
``parallel for`` (``nt`` threads, chosen per call by :func:`ember.threads.kernel_threads`);
long elementwise rows are cut into chunks so that a few long rows still spread over the
threads. Each inner loop is an ``omp simd`` loop over one row. Reduction regions make one
pass over the row per reduction level (``x - amax(x)`` needs the max first), keeping row
values (the max, the sum) in registers and a full value needed by a later pass in its output
or in a scratch row on the stack.

Shapes and broadcast strides are compile-time constants. Every pointer argument is
C-contiguous (the executor passes ``ascontiguousarray(x)``); 0-d inputs are ``double``
arguments. float32 code uses :mod:`ember.kernels.source.common`'s vectorizable ``ember_expf``
/``ember_tanhf``/``ember_erfcf``; float64 code uses libm. Nothing is compiled with
``-ffast-math``: inf, -inf and NaN behave as in NumPy (``maximum``/``amax`` propagate NaN).

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> from ember.graph.passes.regions import regions, region_groups
    >>> g = Graph(); x = g.add_input((4, 8), np.float32)
    >>> t = g.add_node("mul", [x, 2.0], {}, (4, 8), np.float32)
    >>> g.outputs = [g.add_node("exp", [t], {}, (4, 8), np.float32)]
    >>> code = generate(regions(g)[0], region_groups(g))
    >>> code.functions[0].name, len(code.functions[0].inputs)
    ('r0', 1)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

from .ir import Graph, Node, Value
from .passes.regions import Region, reduced_dims

__all__ = ["generate", "CSource", "CFunction", "load"]

_CT = {"float32": "float", "float64": "double", "bool": "unsigned char"}
_CHUNK = 16384  # elements of an elementwise row one task covers
_F32 = {"exp": "ember_expf", "log": "logf", "tanh": "ember_tanhf", "sqrt": "sqrtf",
        "abs": "fabsf", "erfc": "ember_erfcf", "pow": "powf"}  # fmt: skip
_F64 = {"exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt", "abs": "fabs",
        "erfc": "erfc", "pow": "pow"}  # fmt: skip
_CMP = {"gt": ">", "lt": "<", "ge": ">=", "le": "<=", "eq": "==", "ne": "!="}
_GELU_K, _GELU_C, _SQRT1_2 = "0.7978845608028654", "0.044715", "0.7071067811865476"
_INV_SQRT_2PI = "0.3989422804014327"


@dataclass
class CFunction:
    """One region's C function: its name, pointer ``inputs`` (Values), ``scalars`` (0-d
    Values passed as double), ``outputs`` (Values the kernel writes) and ``work`` (the
    estimated nanoseconds of one core per call, see :func:`work_ns`).

    Example:
        >>> CFunction("r0").inputs
        []
    """

    name: str
    inputs: list[Value] = field(default_factory=list)
    scalars: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    work: float = 0.0
    region: Region | None = None


@dataclass
class CSource:
    """The C file of one graph (``text``), its functions and the exported-name prefix."""

    text: str
    functions: list[CFunction]
    prefix: str

    def symbol(self, fn: CFunction) -> str:
        """The exported C name of ``fn`` (what cffi looks up)."""
        return f"ember_{self.prefix}{fn.name}_f32"


def _lit(x: Any, ct: str) -> str:
    """A C literal of Python scalar ``x`` converted to ``ct`` (exact: hex floats)."""
    v = float(x)
    if math.isnan(v):
        text = "NAN"
    elif math.isinf(v):
        text = "INFINITY" if v > 0 else "-INFINITY"
    else:
        text = v.hex()
    return f"(({ct}){text})"


def _read_outside(graph: Graph, region: Region) -> set[Value]:
    """Values of ``region`` that something outside it reads (written by the kernel)."""
    esc = set(graph.escaping())
    members = set(region.nodes)
    for n in graph.nodes:
        if n not in members:
            esc.update(x for x in n.inputs if isinstance(x, Value))
    return esc


class _Gen:
    """Code of one region."""

    def __init__(self, region: Region, escaping: set[Value], fn: CFunction) -> None:
        self.r, self.fn = region, fn
        S = region.shape
        self.S, self.rows = S, region.rows
        self.N = math.prod(S[len(S) - region.rows :])
        self.M = math.prod(S[: len(S) - region.rows])
        self.members = set(region.nodes)
        self.values = {n.output for n in region.nodes}
        self.row_values = {n.output for n in region.nodes if self._is_row(n)}
        for n in region.nodes:
            if n.output in escaping:
                fn.outputs.append(n.output)
        self.var: dict[Value, str] = {}
        self.ext: dict[Value, str] = {}

    def _is_row(self, n: Node) -> bool:
        if reduced_dims(n) is not None:
            return True
        return n.output.shape != self.S

    # -- outside inputs --------------------------------------------------------------------
    def _input(self, x: Value, row: Node | None) -> str:
        """C text reading outside value ``x`` at (m, k) (``row``: the row node reading it)."""
        if x.ndim == 0:
            if x not in self.ext:
                self.fn.scalars.append(x)
                self.ext[x] = f"s{len(self.fn.scalars) - 1}"
            return self.ext[x]
        if x not in self.ext:
            self.fn.inputs.append(x)
            self.ext[x] = f"in{len(self.fn.inputs) - 1}"
        name = self.ext[x]
        S, r = self.S, self.rows
        if row is not None:  # a row node's input: broadcast over the outer shape only
            o = row.output.shape
            aligned = (1,) * (len(o) - x.ndim) + tuple(x.shape)
            outer = tuple(S[: len(S) - r])
            return f"{name}[{_offset(aligned[: len(outer)], outer, 'm')}]"
        aligned = (1,) * (len(S) - x.ndim) + tuple(x.shape)
        whole = aligned[len(S) - r :] == tuple(S[len(S) - r :])
        outer_shape = aligned[: len(S) - r]
        n_row = math.prod(aligned[len(S) - r :])
        off = _offset(outer_shape, tuple(S[: len(S) - r]), "m", n_row)
        idx = f"{off} + k" if whole else off
        return f"{name}[{idx}]".replace("[0 + k]", "[k]")

    def arg(self, x: Any, node: Node, ct: str) -> tuple[str, str]:
        """(C text, C type) of input ``x`` of ``node``."""
        if isinstance(x, Value):
            if x in self.var:
                return self.var[x], _CT[x.dtype.name]
            text = self._input(x, node if self._is_row(node) else None)
            return (f"({_CT[x.dtype.name]}){text}" if x.ndim == 0 else text), _CT[x.dtype.name]
        return _lit(x, ct), ct

    # -- one node ---------------------------------------------------------------------------
    def expr(self, n: Node) -> str:
        ct = _CT[n.output.dtype.name]
        if n.op in _CMP:
            cts = [_CT[x.dtype.name] for x in n.inputs if isinstance(x, Value) and x.ndim]
            cts += [_CT[x.dtype.name] for x in n.inputs if isinstance(x, Value)]
            ct = "double" if "double" in cts else "float"
        args = []
        for x in n.inputs:
            if x is None:
                args.append(None)
                continue
            text, xt = self.arg(x, n, ct)
            if n.op == "where" and not args:
                args.append(text)
                continue
            args.append(text if xt == ct else f"({ct})({text})")
        return _formula(n, args, ct)


def _offset(shape: tuple, outer: tuple, var: str, inner: int = 1) -> str:
    """Index of element ``var`` (a flat index over ``outer``) in a C-contiguous array of
    ``shape`` (right-aligned to ``outer``, broadcast where 1) whose rows hold ``inner``
    elements each."""
    aligned = (1,) * (len(outer) - len(shape)) + tuple(shape)
    strides, acc = [], inner
    for d in reversed(aligned):
        strides.append(acc if d != 1 else 0)
        acc *= d
    strides.reverse()
    dims = []  # (size, stride) merged where contiguous
    for size, st in zip(outer, strides):
        if size == 1:
            continue
        if dims and dims[-1][1] == st * size and (st or not dims[-1][1]):
            dims[-1] = (dims[-1][0] * size, st)
        elif dims and st == 0 and dims[-1][1] == 0:
            dims[-1] = (dims[-1][0] * size, 0)
        else:
            dims.append((size, st))
    terms, below = [], 1
    for size, st in reversed(dims):
        if st:
            idx = var if below == 1 else f"({var} / {below})"
            if below * size < math.prod(outer):
                idx = f"({idx} % {size})"
            terms.append(idx if st == 1 else f"{idx} * {st}")
        below *= size
    return " + ".join(reversed(terms)) or "0"


def _formula(n: Node, a: list, ct: str) -> str:
    f = _F32 if ct == "float" else _F64
    one, two, half = f"(({ct})1)", f"(({ct})2)", f"(({ct})0.5)"
    op = n.op
    simple = {
        "add": "({0} + {1})",
        "sub": "({0} - {1})",
        "mul": "({0} * {1})",
        "div": "({0} / {1})",
        "neg": "(-{0})",
        "square": "({0} * {0})",
        "relu": "({0} < 0 ? (" + ct + ")0 : {0})",
        "maximum": "(({0} > {1} || {0} != {0}) ? {0} : {1})",
        "minimum": "(({0} < {1} || {0} != {0}) ? {0} : {1})",
        "where": "({0} ? {1} : {2})",
        "cast": "({0})",
    }
    if op in simple:
        return simple[op].format(*a)
    if op == "leaky_relu":
        slope = a[1] if len(a) > 1 else _lit(n.attrs["negative_slope"], ct)
        return f"({a[0]} > 0 ? {a[0]} : {a[0]} * {slope})"
    if op in _CMP:
        return f"({a[0]} {_CMP[op]} {a[1]})"
    if op in ("exp", "log", "tanh", "sqrt", "abs"):
        return f"{f[op]}({a[0]})"
    if op == "rsqrt":
        return f"({one} / {f['sqrt']}({a[0]}))"
    if op == "reciprocal":
        return f"({one} / {a[0]})"
    if op == "pow":
        e = float(n.inputs[1])
        special = {2.0: "({0} * {0})", 1.0: "({0})", 0.5: f["sqrt"] + "({0})", -1.0: "(1 / {0})"}
        return special.get(e, f["pow"] + "({0}, {1})").format(*a)
    if op in ("clamp", "hardtanh"):
        if op == "hardtanh":
            a = [a[0], _lit(n.attrs["min_val"], ct), _lit(n.attrs["max_val"], ct)]
        t = a[0]
        if a[1] is not None:
            t = f"(({t} > {a[1]} || {t} != {t}) ? {t} : {a[1]})"
        if a[2] is not None:
            t = f"(({t} < {a[2]} || {t} != {t}) ? {t} : {a[2]})"
        return t
    e = f"{f['exp']}(-{f['abs']}({{0}}))"  # exp(-|v|)
    if op == "sigmoid":
        return f"(({a[0]} >= 0 ? {one} : {e.format(a[0])}) / ({one} + {e.format(a[0])}))"
    if op == "silu":
        s = f"(({a[0]} >= 0 ? {one} : {e.format(a[0])}) / ({one} + {e.format(a[0])}))"
        return f"({s} * {a[0]})"
    if op == "relu_backward":  # g where y > 0 or y is NaN, else 0 (as the op's forward)
        return f"({a[1]} <= 0 ? ({ct})0 : {a[0]})"
    if op == "sigmoid_backward":
        return f"(({one} - {a[1]}) * {a[1]} * {a[0]})"
    if op == "tanh_backward":
        return f"(({one} - {a[1]} * {a[1]}) * {a[0]})"
    if op == "silu_backward":
        v = a[1]
        s = f"(({v} >= 0 ? {one} : {e.format(v)}) / ({one} + {e.format(v)}))"
        return f"((({one} - {s}) * {v} + {one}) * {s} * {a[0]})"
    K, C, S = (f"(({ct}){c})" for c in (_GELU_K, _GELU_C, _SQRT1_2))
    if op == "gelu":
        v = a[0]
        if n.attrs["approximate"] == "tanh":
            u = f"({v} * ({v} * {v} * {C} + {one}) * {K})"
            return f"({v} / ({one} + {f['exp']}(-{two} * {u})))"
        return f"({f['erfc']}({v} * -{S}) * {half} * {v})"
    if op == "gelu_backward":
        g, v = a
        if n.attrs["approximate"] == "tanh":
            return f"_gelu_tanh_bwd_{ct[0]}({g}, {v})"
        P = f"(({ct}){_INV_SQRT_2PI})"
        cdf = f"({f['erfc']}({v} * -{S}) * {half})"
        pdf = f"({f['exp']}({v} * {v} * -{half}) * {P} * {v})"
        return f"(({pdf} + {cdf}) * {g})"
    raise NotImplementedError(op)  # pragma: no cover - the pass admits only the ops above


_HELPERS = r"""
/* gelu (tanh) backward, as ember/kernels/source/activation.py computes it */
#define EMBER_GELU_TANH_BWD(T, EXPF, ABSF, sfx)                                      \
    static inline T _gelu_tanh_bwd_##sfx(T g, T v) {                                  \
        T v2 = v * v;                                                                 \
        T u = (v2 * (T)0.044715 + 1) * v * (T)0.7978845608028654;                     \
        T du = (v2 * (3 * (T)0.044715) + 1) * (T)0.7978845608028654;                  \
        T e = EXPF(-2 * ABSF(u)), r = 1 / (1 + e);                                    \
        T s = (u >= 0 ? 1 : e) * r;                                                   \
        T w = e * r * r;                                                              \
        return (s + (w == 0 ? 0 * v : 2 * v * du * w)) * g;                           \
    }
EMBER_GELU_TANH_BWD(float, ember_expf, fabsf, f)
EMBER_GELU_TANH_BWD(double, exp, fabs, d)
"""


def _phases(region: Region) -> dict[Value, int]:
    """The pass over the row in which each member value is known (a reduction's result is
    known after the pass that reads its input)."""
    level: dict[Value, int] = {}
    for n in region.nodes:
        lv = max((level[x] for x in n.inputs if isinstance(x, Value) and x in level), default=0)
        level[n.output] = lv + (1 if reduced_dims(n) is not None else 0)
    return level


def _function(gen: _Gen, sym: str) -> str:
    r, fn = gen.r, gen.fn
    N, M = gen.N, gen.M
    level = _phases(r)
    full = [n for n in r.nodes if not gen._is_row(n)]
    reds = [n for n in r.nodes if reduced_dims(n) is not None]
    rownodes = [n for n in r.nodes if gen._is_row(n) and reduced_dims(n) is None]
    outs = {v: f"out{i}" for i, v in enumerate(fn.outputs)}
    passes = 1 + max(
        [level[n.output] for n in full] + [level[n.output] - 1 for n in reds], default=0
    )
    later = {  # full values read by a full node of a later pass
        x.id: x
        for n in full
        for x in n.inputs
        if isinstance(x, Value) and x in level and not gen._is_row(x.producer)
        if level[x] < level[n.output]
    }
    later = [later[i] for i in sorted(later)]  # a stable text: the cache key hashes it
    chunks = -(-N // _CHUNK) if not reds and N > _CHUNK else 1
    body: list[str] = []
    if chunks == 1:
        body += ["i64 m = t;", f"const i64 k0 = 0, k1 = {N};"]
    else:
        body += [f"i64 m = t / {chunks}, k0 = (t % {chunks}) * {_CHUNK};"]
        body += [f"i64 k1 = k0 + {_CHUNK} < {N} ? k0 + {_CHUNK} : {N};"]
    scratch = {}
    for v in later:
        if v not in outs:
            scratch[v] = f"tmp{v.id}"
            body.append(f"{_CT[v.dtype.name]} tmp{v.id}[{N}];")
    for p in range(passes):
        for v in later:  # values of earlier passes: read back
            if level[v] < p:
                gen.var[v] = f"{outs[v]}[m * {N} + k]" if v in outs else f"{scratch[v]}[k]"
        accs, clauses, finals = [], [], []
        for n in reds:
            x = n.inputs[0]
            if level.get(x, 0) != p:
                continue
            ct = _CT[x.dtype.name]
            acc = f"a{n.output.id}"
            if n.op == "amax":
                accs.append(f"{ct} {acc} = -INFINITY; int {acc}n = 0;")
                clauses.append(f"reduction(max:{acc}) reduction(|:{acc}n)")
            else:
                accs.append(f"{ct} {acc} = 0;")
                clauses.append(f"reduction(+:{acc})")
        loop: list[str] = []
        for n in full:
            if level[n.output] != p:
                continue
            ct = _CT[n.output.dtype.name]
            name = f"v{n.output.id}"
            loop.append(f"{ct} {name} = {gen.expr(n)};")
            gen.var[n.output] = name
            if n.output in outs:
                loop.append(f"{outs[n.output]}[m * {N} + k] = {name};")
            if n.output in scratch:
                loop.append(f"{scratch[n.output]}[k] = {name};")
        for n in reds:
            x = n.inputs[0]
            if level.get(x, 0) != p:
                continue
            src = gen.var[x] if x in gen.var else gen._input(x, None)
            acc = f"a{n.output.id}"
            if n.op == "amax":
                loop.append(f"{acc} = {src} > {acc} ? {src} : {acc}; {acc}n |= {src} != {src};")
                finals.append(f"if ({acc}n) {acc} = NAN;")
            elif n.op == "mean":
                loop.append(f"{acc} += {src};")
                finals.append(f"{acc} = {acc} / ({_CT[x.dtype.name]}){N};")
            else:
                loop.append(f"{acc} += {src};")
            gen.var[n.output] = acc
        if loop:
            body += accs
            body.append("#pragma omp simd " + " ".join(clauses))
            body.append("for (i64 k = k0; k < k1; k++) {")
            body += ["    " + ln for ln in loop]
            body.append("}")
            body += finals
        for n in reds:
            if level[n.output] == p + 1 and n.output in outs:
                body.append(f"{outs[n.output]}[m] = {gen.var[n.output]};")
        for n in rownodes:
            if level[n.output] != p + 1:
                continue
            name = f"v{n.output.id}"
            body.append(f"{_CT[n.output.dtype.name]} {name} = {gen.expr(n)};")
            gen.var[n.output] = name
            if n.output in outs:
                body.append(f"{outs[n.output]}[m] = {name};")
    params = [f"const {_CT[x.dtype.name]} *restrict in{i}" for i, x in enumerate(fn.inputs)]
    params += [f"double s{i}" for i in range(len(fn.scalars))]
    params += [f"{_CT[v.dtype.name]} *restrict out{i}" for i, v in enumerate(fn.outputs)]
    params.append("int nt")
    ops = " ".join(n.op for n in r.nodes)
    head = [
        f"/* region {r.id}: {ops}; shape {tuple(r.shape)}, {M} rows of {N} */",
        f"EMBER_API void {sym}({', '.join(params)}) {{",
        "    PARALLEL_FOR(nt)",
        f"    for (i64 t = 0; t < {M * chunks}; t++) {{",
    ]
    return "\n".join(head + ["        " + ln for ln in body] + ["    }", "}", ""])


# Cost model of a region per element, in ns of one core (float32): each array it reads or
# writes, each cheap op, each op that evaluates exp/log/tanh and the like
NS_ARRAY, NS_OP, NS_TRANSCENDENTAL = 0.1, 0.05, 0.6
_TRANSCENDENTAL = frozenset(
    {"exp", "log", "tanh", "sigmoid", "silu", "silu_backward", "gelu", "gelu_backward",
     "softplus", "erf", "pow", "softmax", "log_softmax"}
)  # fmt: skip


def work_ns(fn: CFunction, elements: int) -> float:
    """The work estimate of one call of ``fn`` over ``elements`` elements: nanoseconds of one
    core, what :func:`ember.threads.kernel_threads` decides the thread count from.

    Example:
        >>> work_ns(CFunction("r0"), 1000)
        0.0
    """
    if fn.region is None:
        return 0.0
    ops = sum(NS_TRANSCENDENTAL if n.op in _TRANSCENDENTAL else NS_OP for n in fn.region.nodes)
    return elements * (NS_ARRAY * (len(fn.inputs) + len(fn.outputs)) + ops)


def generate(graph: Graph, groups: list[Region]) -> CSource:
    """The C source of all ``groups`` (regions of ``graph``): one function per region.

    Example:
        >>> generate(Graph(), []).functions
        []
    """
    fns, parts = [], []
    for r in groups:
        fn = CFunction(f"r{r.id}", region=r)
        gen = _Gen(r, _read_outside(graph, r), fn)
        parts.append(_function(gen, f"ember_@P@r{r.id}_f32"))
        fn.work = work_ns(fn, gen.M * gen.N)
        fns.append(fn)
    text = _HELPERS + "\n" + "\n".join(parts)
    prefix = "g" + hashlib.sha256(text.encode()).hexdigest()[:10] + "_"
    return CSource(text.replace("@P@", prefix), fns, prefix)


def signature(fn: CFunction, prefix: str) -> str:
    """The cffi-side signature of ``fn`` (pointers as ``void *``)."""
    params = [f"void *in{i}" for i in range(len(fn.inputs))]
    params += [f"double s{i}" for i in range(len(fn.scalars))]
    params += [f"void *out{i}" for i in range(len(fn.outputs))]
    return f"void {prefix}{fn.name}({', '.join(params + ['int nt'])})"


def unit(source: CSource) -> Any:
    """The kernel :class:`~ember.kernels.source.Unit` of a graph's C source.

    Example:
        >>> unit(generate(Graph(), [])).name
        'graph'
    """
    from ..kernels.source import Unit

    sigs = tuple(signature(fn, source.prefix) for fn in source.functions)
    # no FMA contraction: a * b + c rounds twice, like NumPy's two ufunc calls
    return Unit("graph", sigs, "", shared=source.text, flags=("-ffp-contract=off",))


def load(source: CSource) -> Any:
    """The loaded library of ``source`` (compiled now, or from the disk cache), or None when
    the kernels are off (``EMBER_KERNELS=numpy``) or cannot be built; ``auto`` mode then
    warns once per process (the kernel layer's fallback message), ``c`` mode raises
    :class:`~ember.kernels.runtime.KernelUnavailableError`.

    Example:
        >>> lib = load(generate(Graph(), []))
        >>> lib is None or lib.path.suffix == ".so"
        True
    """
    from ..kernels import runtime

    m = runtime.mode()
    if m == "numpy":
        return None
    from ..kernels.build import KernelBuildError, load_unit

    try:
        return load_unit(unit(source))
    except KernelBuildError as e:
        if m == "c":
            raise runtime.KernelUnavailableError(
                "compile",
                f"EMBER_KERNELS=c but the graph's C kernels are unavailable: {e.reason}",
            ) from None
        runtime.warn_fallback(e)
        return None


def available(graph: Graph) -> bool:
    """Whether C regions make sense for ``graph``: kernels not off, a C compiler on hand,
    every input and captured tensor on the CPU (CuPy arrays never reach C kernels).

    Example:
        >>> isinstance(available(Graph()), bool)
        True
    """
    from ..kernels import runtime
    from ..kernels.build import find_compiler

    if runtime.mode() == "numpy":
        return False
    for v in (*graph.inputs, *graph.captured):
        dev = v.meta.get("device")
        if dev is not None and getattr(dev, "type", "cpu") != "cpu":
            return False
    if find_compiler() is None:
        if runtime.mode() == "auto":
            return False
    return True

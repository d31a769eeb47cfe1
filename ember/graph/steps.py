"""A whole inference graph as one C call: :func:`lower` turns a graph into the step list of
``ember/kernels/source/steps.py``, and :class:`StepProgram` runs it.

Where it applies: a compiled graph on the CPU, with C kernels, that updates nothing (an
inference: a training step keeps its per-node path), of one float dtype, whose every node is
one the steps cover (a dynamic graph, whose batch size changes from call to call, gets one
program per batch size, up to 8):

* layer norm, linear (a following residual ``add`` is fused as the GEMM's accumulation
  when the residual is free to be overwritten; at most 8 rows, and the ``linear_chain`` of
  a batch-1 MLP, run as matrix-vector products), batched ``matmul`` (up to two batch dims,
  broadcast or not, operands at any strides), the smooth activations and ReLU, softmax,
  log-softmax, sums, means and maxima over a run of axes, ``exp``, ``log``, ``sqrt``,
  ``rsqrt``, ``neg``, ``abs``, ``reciprocal``, squares, ``add``/``sub``/``mul``/``div``
  with any broadcasting (up to 4 dims once adjacent ones merge) or a Python number,
  ``where`` (each operand the result's size, repeated along it, or a number), the
  negation of a bool mask, embedding lookups, scaled dot-product attention (causal or not,
  with or without a float or bool mask);
* views: slices, reshapes, permutes and the like, which cost nothing (a reshape that needs
  a copy becomes a copy step).

Anything else, and the graph keeps its generated Python function (:mod:`.executor`), which
also stays the path of record: a call whose inputs or parameters no longer fit the program
(a parameter given a new array, an embedding index out of range) runs there, and so do
errors, which it reports against the user's line.

The step library compiles on a thread of its own from the first call on (about 3 s, once
per machine: the result is cached on disk); until it is loaded the graph runs node by node.
The program is written once, at the first call: every value gets its place, either a view
of a parameter or input, or a part of an arena of buffers reused as values die (an
activation or a residual ``add`` overwrites its input where nothing reads it later, as the
NumPy path's in-place passes do). Each call then checks the parameters are the arrays the
program was written for (an identity test each), points the input and output slots at this
call's arrays, and makes one C call. The outputs are fresh arrays every call.
``profile()`` times the per-node path (it instruments the generated function), so it shows
where the nodes' time goes, not the one call's.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph("f")
    >>> x = g.add_input((4, 8), np.float32, label="x")
    >>> g.outputs = [g.add_node("relu", [x], {}, (4, 8), np.float32)]
    >>> prog = lower(g)
    >>> prog is None or float(prog.run([np.ones((4, 8), np.float32)])[0].sum()) == 32.0
    True
"""

from __future__ import annotations

import math
import struct
import threading
from typing import Any

import numpy as np

from ..kernels.source.activation import KINDS
from ..kernels.source.steps import ACT_RELU, BINARY, OPS, REDUCE, STEP_WORDS, UNARY
from ..memory import empty_aligned
from .ir import Graph, Node, Value
from .ir_types import has_sym, resolve_syms

__all__ = ["lower", "StepProgram", "ENABLED"]

ENABLED = True  # tests switch it off to compare with the per-node path
# ops that only look at their input differently: a view of it (a reshape that cannot be one
# becomes a copy step)
VIEWS = {"getitem", "slice", "reshape", "permute", "broadcast_to"}
RESHAPES = {"reshape"}
ACTS = {"relu", "gelu", "silu", "sigmoid", "tanh"}
SOFTMAX = {"softmax": 0, "log_softmax": 1, "safe_softmax": 2}  # the softmax step's modes
ARITHMETIC = {"add", "sub", "mul", "div", "pow"}
NOTS = {"bitwise_not", "logical_not"}  # on bool values: the one non-float result allowed
COMPUTE = {"embedding", "layer_norm", "linear", "linear_chain", "sdpa", "matmul", "where"}
COMPUTE |= ARITHMETIC | ACTS | set(SOFTMAX) | set(UNARY) | set(REDUCE)
IN_PLACE_ROWS = 256  # linear steps on at most this many rows read their weight in place
GEMV_ROWS = 8  # ... and on at most this many, run as matrix-vector products (gemv.py's)
NS_PER_MAC = 0.04  # one core's GEMM speed (25 multiply-adds per ns), for the thread count
NS_PER_ELEMENT = 1.0  # the other steps' cost per element they write
_OFFSET_BITS = 40
_NULL = -1


class StepProgram:
    """A graph lowered to one C call (see the module docstring).

    ``run(inputs)`` takes the graph's input arrays and returns its output arrays, or None
    when the call must take the graph's own path (a parameter replaced since the program
    was written, an input not C-contiguous, an embedding index out of range).

    Example:
        >>> StepProgram.__name__
        'StepProgram'
    """

    def __init__(self, dtype: np.dtype, prog: np.ndarray, nsteps: int, slots: np.ndarray, nt: int,
                 params: list, inputs: list, outputs: list, keep: list) -> None:  # fmt: skip
        self.dtype = dtype
        self._fn: Any = None  # the C function, once its library is ready (see _bind)
        self._prog = prog
        self._nsteps = nsteps
        self._slots = slots
        self._nt = nt
        self._params = params  # (tensor, the array the program reads)
        self._inputs = inputs  # (slot, shape, dtype) of each graph input
        self._outputs = outputs  # (slot, buffer shape, dtype, [(view shape, offset, strides)])
        self._keep = [prog, slots, *keep]  # what the pointers point into
        self._lock = threading.Lock()  # one call at a time: the arena and slots are shared
        self.steps = nsteps

    def valid(self) -> bool:
        """True while every parameter still holds the array the program was written for."""
        return all(t._data is a for t, a in self._params)

    def _bind(self) -> bool:
        """Find the C function; False while its library is still compiling (it compiles on
        a thread of its own from the first call on, and the graph runs node by node
        meanwhile) or when it cannot be built."""
        from ..kernels import _seam, runtime

        if not runtime.function_if_ready("steps", "run_steps", _seam._SFX[self.dtype]):
            return False
        self._fn = _seam.kernel("steps", "run_steps", self.dtype)
        if self._fn is None:
            return False
        self._ptr = _seam.ptr
        io_slots = np.array([s[0] for s in self._inputs + self._outputs], np.int64)
        self._keep.append(io_slots)
        self._io = _seam.FFI.new("void *[]", max(len(io_slots), 1))
        self._args = (_seam.ptr(self._prog), self._nsteps, _seam.ptr(self._slots), self._io,
                      _seam.ptr(io_slots), len(io_slots), self._nt)  # fmt: skip
        return True

    def run(self, inputs: list) -> list | None:
        """The output arrays of one call, or None (see the class docstring)."""
        if self._fn is None and not self._bind():
            return None
        for (_, shape, dtype), a in zip(self._inputs, inputs):
            if type(a) is not np.ndarray or not a.flags.c_contiguous or a.dtype != dtype:
                return None
            if a.shape != shape:
                return None
        ptr, io = self._ptr, self._io
        held = [ptr(a) for a in inputs]  # (alive until the call returns)
        outs = []
        for _, shape, dtype, views in self._outputs:
            buf = np.empty(shape, dtype)
            held.append(ptr(buf))
            for s, off, st in views:
                whole = off == 0 and s == shape and st == buf.strides
                outs.append(buf if whole else np.ndarray(s, dtype, buf, off, st))
        with self._lock:  # (the C call lets go of the GIL)
            for j, p in enumerate(held):
                io[j] = p
            if self._fn(*self._args) != 0:
                return None
        return outs


class _Lowering:
    """The state of :func:`lower`: each value's array (a view into a slot's buffer), the
    slots, the arena's free buffers and the steps written so far."""

    def __init__(self, g: Graph, dtype: np.dtype) -> None:
        self.g = g
        self.dtype = dtype
        self.arrays: dict[Value, np.ndarray] = {}
        self.slot_of: dict[Value, int] = {}
        self.bases: list[np.ndarray] = []  # each slot's buffer (placeholders for in/outputs)
        self.kinds: list[str] = []  # "fixed" (parameter, constant), "input", "arena", "output"
        self.free: dict[tuple, list[int]] = {}  # (shape, dtype) of free arena buffers
        self.steps: list[list[int]] = []
        self.work = 0.0
        users = g.users()
        self.fused = _fusions(g, users)  # linear node -> the add node that finishes it
        at = {n: i for i, n in enumerate(g.nodes)}
        for lin, add in self.fused.items():
            at[lin] = at[add]
        self.at = at
        self.last: dict[Value, float] = {}  # the index of each value's last reader
        outs = set(g.outputs)
        for v in g.values():
            readers = [at[n] for n in users.get(v, [])]
            self.last[v] = math.inf if v in outs else max(readers, default=-1)
        self.slot_last: dict[int, float] = {}
        self.output_roots = _output_roots(g)

    # -- places ---------------------------------------------------------------------------------
    def add_slot(self, base: np.ndarray, kind: str) -> int:
        self.bases.append(base)
        self.kinds.append(kind)
        return len(self.bases) - 1

    def place(self, v: Value, arr: np.ndarray, slot: int) -> None:
        self.arrays[v] = arr
        self.slot_of[v] = slot
        self.slot_last[slot] = max(self.slot_last.get(slot, -1), self.last[v])

    def new(self, v: Value, shape: tuple | None = None, layout: tuple | None = None) -> np.ndarray:
        """A buffer for the step output ``v`` (its own shape, or ``shape``, C order), reused
        from the arena when one of that size is free; with ``layout`` (a permutation), the
        buffer is C order in that permuted shape and ``v`` is its transposed view."""
        shape = tuple(v.shape if shape is None else shape)
        mem_shape = shape if layout is None else tuple(shape[d] for d in layout)
        if v in self.output_roots:
            slot = self.add_slot(np.empty(mem_shape, v.dtype), "output")
        else:
            free = self.free.get((mem_shape, v.dtype))
            if free:
                slot = free.pop()
            else:
                slot = self.add_slot(empty_aligned(mem_shape, v.dtype), "arena")
        base = self.bases[slot]
        arr = base if layout is None else base.transpose(np.argsort(layout))
        self.place(v, arr, slot)
        return arr

    def reuse(self, v: Value, src: Value, i: int) -> np.ndarray | None:
        """``src``'s buffer for ``v`` when node ``i`` is its last reader and it is a whole
        arena buffer of ``v``'s size (an in-place step), else None."""
        slot = self.slot_of.get(src)
        if slot is None or self.kinds[slot] != "arena" or self.slot_last[slot] > i:
            return None
        a, base = self.arrays[src], self.bases[slot]
        if a.size != base.size or not a.flags.c_contiguous or _addr(a) != _addr(base):
            return None
        if v in self.output_roots or tuple(v.shape) != a.shape:
            return None
        self.place(v, a, slot)
        return a

    def release(self, i: int) -> None:
        """Return to the arena the buffers no value read after node ``i`` lives in."""
        for slot, last in list(self.slot_last.items()):
            if last <= i and self.kinds[slot] == "arena":
                base = self.bases[slot]
                self.free.setdefault((base.shape, base.dtype), []).append(slot)
                del self.slot_last[slot]

    def constant(self, x: float) -> tuple[np.ndarray, int]:
        """A Python scalar operand as a one-element array of the graph's dtype, and its
        pointer word."""
        a = np.array([x], self.dtype)
        return a, self.add_slot(a, "fixed") << _OFFSET_BITS

    def temp(self, shape: tuple, i: int) -> int:
        """The pointer word of a buffer for a value inside node ``i`` (a layer of a chain),
        free again after it."""
        free = self.free.get((shape, self.dtype))
        slot = free.pop() if free else self.add_slot(empty_aligned(shape, self.dtype), "arena")
        self.slot_last[slot] = i
        return slot << _OFFSET_BITS

    def ptr(self, x: Any) -> int:
        """The pointer word of a value (or None: NULL)."""
        if x is None:
            return _NULL
        arr, slot = self.arrays[x], self.slot_of[x]
        off = _addr(arr) - _addr(self.bases[slot])
        if not 0 <= off < (1 << _OFFSET_BITS):  # a view starting before its base: not ours
            raise _Unsupported
        return slot << _OFFSET_BITS | off

    def emit(self, op: str, *words: int, work: float) -> None:
        step = [OPS[op], *words]
        step += [0] * (STEP_WORDS - len(step))
        self.steps.append(step)
        self.work += work


class _Unsupported(Exception):
    """A node or layout the steps do not cover: the graph keeps its per-node path."""


def lower(g: Graph, batch: int | None = None) -> StepProgram | None:
    """The graph as one C call, or None where the steps do not cover it (see the module
    docstring); a dynamic graph (its batch size a :class:`~ember.graph.ir.Sym`) is lowered
    for the batch size ``batch``.

    Example:
        >>> lower(Graph("empty")) is None
        True
    """
    if not ENABLED or g.updates or g.scalars or not g.nodes or not g.outputs:
        return None
    if any(has_sym(v.shape) for v in g.values()):
        if batch is None:
            return None
        g = _concrete(g, batch)
    dtype = _float_dtype(g)
    if dtype is None:
        return None
    from ..kernels import runtime

    if runtime.mode() == "numpy":
        return None
    try:
        return _lower(g, dtype)
    except _Unsupported:
        return None


def _lower(g: Graph, dtype: np.dtype) -> StepProgram:
    from ..kernels import gemv
    from ..threads import kernel_threads

    low = _Lowering(g, dtype)
    params, inputs = [], []
    for v in g.captured:
        ref = getattr(v.ref, "_data", None)
        if type(ref) is not np.ndarray or ref.shape != tuple(v.shape) or ref.dtype != v.dtype:
            raise _Unsupported  # (a tensor given data of another shape: the graph reports it)
        params.append((v.ref, ref))
        low.place(v, ref, low.add_slot(ref, "fixed"))
    for v in g.constants:
        if type(v.data) is not np.ndarray:
            raise _Unsupported
        low.place(v, v.data, low.add_slot(v.data, "fixed"))
    for v in g.inputs:
        slot = low.add_slot(np.empty(v.shape, v.dtype), "input")
        low.place(v, low.bases[slot], slot)
        inputs.append((slot, tuple(v.shape), v.dtype))
    for i, n in enumerate(g.nodes):
        if n in low.fused:
            continue  # written with the add that finishes it
        _node(low, n, i)
        low.release(i)
    outputs = _outputs(low, g)
    slots = np.array([_addr(b) for b in low.bases], dtype=np.int64)
    prog = np.array(low.steps, dtype=np.int64).ravel()
    # one wake-up of the team per call, as in the linear chain: its threshold applies
    nt = kernel_threads(low.work, gemv.MIN_WORK_PER_THREAD)
    return StepProgram(dtype, prog, len(low.steps), slots, nt, params, inputs, outputs, low.bases)


def _node(low: _Lowering, n: Node, i: int) -> None:
    op, v = n.op, n.output
    ins = n.inputs
    if op in ARITHMETIC and v.dtype == low.dtype:
        return _arithmetic(low, n, i)
    if op == "where" and v.dtype == low.dtype:
        return _where(low, n)
    if any(not isinstance(x, Value) and x is not None for x in ins):
        raise _Unsupported  # a Python scalar operand
    if op in VIEWS:
        return _view(low, n, i)
    if op in NOTS and v.dtype == np.bool_ and ins[0].dtype == np.bool_:
        _contiguous(low, ins[0])
        low.new(v)
        return low.emit("not", low.ptr(ins[0]), low.ptr(v), math.prod(v.shape), work=0)
    if op not in COMPUTE or v.dtype != low.dtype:
        raise _Unsupported
    if op == "embedding":
        return _embedding(low, n)
    if op == "layer_norm":
        return _layer_norm(low, n)
    if op == "linear":
        return _linear(low, n, i, None)
    if op == "linear_chain":
        return _linear_chain(low, n, i)
    if op == "sdpa":
        return _attention(low, n)
    if op == "matmul":
        return _matmul(low, n)
    if op in ACTS:
        return _act(low, n, i)
    if op in UNARY:
        return _unary(low, n, i)
    if op in REDUCE:
        return _reduce(low, n)
    return _softmax(low, n)


def _view(low: _Lowering, n: Node, i: int) -> None:
    from ..ops.registry import REGISTRY

    x = n.inputs[0]
    src = low.arrays[x]
    try:
        out = REGISTRY[n.op].forward(np, src, **n.attrs)
    except (TypeError, ValueError, IndexError):
        raise _Unsupported from None
    if not isinstance(out, np.ndarray) or out.shape != tuple(n.output.shape):
        raise _Unsupported
    if np.may_share_memory(out, low.bases[low.slot_of[x]]):
        low.place(n.output, out, low.slot_of[x])
        return
    if n.op not in RESHAPES or src.ndim > 4:
        raise _Unsupported  # a copy that is not a reshape's (advanced indexing)
    flat = low.new(n.output, shape=src.shape)  # the copy, in C order, then reshaped
    low.arrays[n.output] = flat.reshape(n.output.shape)
    shape4 = (1,) * (4 - src.ndim) + src.shape
    st = (0,) * (4 - src.ndim) + tuple(s // src.itemsize for s in src.strides)
    low.emit("copy", low.ptr(x), low.ptr(n.output), *shape4, *st, work=src.size * NS_PER_ELEMENT)


def _contiguous(low: _Lowering, x: Value) -> np.ndarray:
    a = low.arrays[x]
    if not a.flags.c_contiguous:
        raise _Unsupported
    return a


def _embedding(low: _Lowering, n: Node) -> None:
    w, idx = n.inputs[:2]
    wa, ia = _contiguous(low, w), _contiguous(low, idx)
    if wa.ndim != 2 or ia.dtype != np.int64:
        raise _Unsupported
    low.new(n.output)
    low.emit("gather", low.ptr(w), low.ptr(idx), low.ptr(n.output), ia.size, wa.shape[1],
             wa.shape[0], work=ia.size * wa.shape[1] * NS_PER_ELEMENT)  # fmt: skip


def _layer_norm(low: _Lowering, n: Node) -> None:
    x, w, b = (list(n.inputs) + [None, None])[:3]
    xa = _contiguous(low, x)
    k = n.attrs.get("normalized_ndim", 1)
    d = math.prod(xa.shape[xa.ndim - k :])
    for p in (w, b):
        if p is not None and (_contiguous(low, p).size != d or p.dtype != low.dtype):
            raise _Unsupported
    low.new(n.output)
    eps = _bits(float(n.attrs.get("eps", 1e-5)))
    low.emit("layer_norm", low.ptr(x), low.ptr(w), low.ptr(b), low.ptr(n.output), xa.size // d,
             d, eps, work=xa.size * NS_PER_ELEMENT)  # fmt: skip


def _rows(a: np.ndarray) -> int | None:
    """The row stride (elements) of ``a`` seen as a matrix of its last dim, or None."""
    if a.strides[-1] != a.itemsize:
        return None
    if a.ndim == 1:
        return a.shape[0]
    m = a.reshape(-1, a.shape[-1])
    if not np.may_share_memory(m, a):
        return None
    return m.strides[0] // a.itemsize if m.shape[0] > 1 else a.shape[-1]


def _linear(low: _Lowering, n: Node, i: int, add: tuple | None) -> None:
    """``n`` (a linear node); with ``add`` (the add node, the residual) the sum of both."""
    x, w, b = (list(n.inputs) + [None])[:3]
    xa, wa = low.arrays[x], _contiguous(low, w)
    ldx = _rows(xa)
    if ldx is None or wa.ndim != 2 or w.dtype != low.dtype or x.dtype != low.dtype:
        raise _Unsupported
    if b is not None and _contiguous(low, b).shape != (wa.shape[0],):
        raise _Unsupported
    N, K = wa.shape
    M = xa.size // K
    work = M * N * K * NS_PER_MAC
    if add is None and M <= GEMV_ROWS:
        from ..kernels.gemv import NS_PER_WEIGHT

        low.new(n.output)
        low.emit("gemv", low.ptr(x), low.ptr(w), low.ptr(b), low.ptr(n.output), M, ldx, K, N,
                 0, N, work=N * K * NS_PER_WEIGHT * (1 + (M - 1) / 4))  # fmt: skip
        return
    if add is None:
        low.new(n.output)
        low.emit("linear", low.ptr(x), low.ptr(w), low.ptr(b), low.ptr(n.output), M, N, K, ldx, N,
                 0, int(M <= IN_PLACE_ROWS), work=work)  # fmt: skip
        return
    node, r = add
    if node.op != "add" or tuple(r.shape) != tuple(node.output.shape) or r.dtype != low.dtype:
        raise _Unsupported
    out = node.output
    acc = low.reuse(out, r, i) is not None
    if not acc:
        low.new(out)
    low.emit("linear", low.ptr(x), low.ptr(w), low.ptr(b), low.ptr(out), M, N, K, ldx, N,
             int(acc), int(M <= IN_PLACE_ROWS), work=work)  # fmt: skip
    if not acc:
        shape = tuple(out.shape)
        dims, (sto, str_) = _broadcast(shape, low.arrays[out], low.arrays[r])
        low.emit("binary", low.ptr(out), low.ptr(r), low.ptr(out), *dims, *sto, *str_,
                 BINARY["add"], work=M * N * NS_PER_ELEMENT)  # fmt: skip


def _linear_chain(low: _Lowering, n: Node, i: int) -> None:
    """The chain's layers as one gemv step each, the layers between them in buffers of
    their own."""
    from ..kernels.gemv import NS_PER_WEIGHT
    from ..kernels.source.gemv import ACTS as GEMV_ACTS

    x, params, acts = n.inputs[0], n.inputs[1:], n.attrs["acts"]
    xa = low.arrays[x]
    ld, k = _rows(xa), xa.shape[-1]
    m = xa.size // k
    if ld is None or m > GEMV_ROWS or x.dtype != low.dtype:
        raise _Unsupported
    word = low.ptr(x)
    for layer, (w, b, act) in enumerate(zip(params[0::2], params[1::2], acts)):
        wa = _contiguous(low, w)
        if wa.ndim != 2 or wa.shape[1] != k or w.dtype != low.dtype:
            raise _Unsupported
        if b is not None and _contiguous(low, b).shape != (wa.shape[0],):
            raise _Unsupported
        nout = wa.shape[0]
        if layer == len(acts) - 1:
            low.new(n.output)
            out = low.ptr(n.output)
        else:
            out = low.temp((m, nout), i)
        work = nout * k * NS_PER_WEIGHT * (1 + (m - 1) / 4)
        low.emit("gemv", word, low.ptr(w), low.ptr(b), out, m, ld, k, nout, GEMV_ACTS[act],
                 nout, work=work)  # fmt: skip
        word, ld, k = out, nout, nout


def _act(low: _Lowering, n: Node, i: int) -> None:
    x = n.inputs[0]
    _contiguous(low, x)
    if n.op == "relu":
        kind = ACT_RELU
    elif n.op == "gelu":
        kind = KINDS["gelu_tanh" if n.attrs.get("approximate") == "tanh" else "gelu"]
    else:
        kind = KINDS[n.op]
    if low.reuse(n.output, x, i) is None:
        low.new(n.output)
    size = math.prod(n.output.shape)
    low.emit("act", low.ptr(x), low.ptr(n.output), size, kind, work=size * NS_PER_ELEMENT)


def _arithmetic(low: _Lowering, n: Node, i: int) -> None:
    ins = n.inputs[:2]
    lin = next((x.producer for x in ins if isinstance(x, Value) and x.producer in low.fused), None)
    if lin is not None:  # a residual add that finishes a linear layer
        r = ins[1] if ins[0] is lin.output else ins[0]
        return _linear(low, lin, i, (n, r))
    if n.op == "pow":  # x ** 2 only (x * x, as NumPy computes it)
        if not (isinstance(ins[0], Value) and ins[1] == 2 and not isinstance(ins[1], bool)):
            raise _Unsupported
        return _unary(low, n, i, "square")
    shape = tuple(n.output.shape)
    ops = []
    for x in ins:
        if isinstance(x, Value):
            if x.dtype != low.dtype:
                raise _Unsupported
            ops.append((x, low.arrays[x], low.ptr(x)))
        elif isinstance(x, int | float) and not isinstance(x, bool):
            ops.append((None, *low.constant(x)))
        else:
            raise _Unsupported
    (va, aa, wa), (_, ba, wb) = ops
    dims, (sta, stb) = _broadcast(shape, aa, ba)
    if va is None or low.reuse(n.output, va, i) is None:
        low.new(n.output)
    low.emit("binary", wa, wb, low.ptr(n.output), *dims, *sta, *stb, BINARY[n.op],
             work=math.prod(shape) * NS_PER_ELEMENT)  # fmt: skip


def _broadcast(shape: tuple, *arrays: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """``shape`` as at most 4 dims and each array's element strides along them when
    broadcast to it (0 along a broadcast dim), adjacent dims merged where every array allows
    it; raises :class:`_Unsupported` beyond 4 dims."""
    views = []
    for a in arrays:
        try:
            views.append(np.broadcast_to(a, shape))
        except ValueError:
            raise _Unsupported from None
    dims = [d for d in shape if d != 1]
    strides = [
        [s // a.itemsize for d, s in zip(shape, v.strides) if d != 1] for v, a in zip(views, arrays)
    ]
    k = len(dims) - 1
    while k > 0:  # merge dim k into k - 1 where each array steps through both as one
        if all(st[k - 1] == st[k] * dims[k] for st in strides):
            dims[k - 1] *= dims.pop(k)
            for st in strides:
                st[k - 1] = st.pop(k)
        k -= 1
    if len(dims) > 4:
        raise _Unsupported
    pad = 4 - len(dims)
    return [1] * pad + dims, [[0] * pad + st for st in strides]


def _unary(low: _Lowering, n: Node, i: int, kind: str | None = None) -> None:
    x = n.inputs[0]
    size = math.prod(n.output.shape)
    _contiguous(low, x)
    if low.reuse(n.output, x, i) is None:
        low.new(n.output)
    low.emit("unary", low.ptr(x), low.ptr(n.output), size, UNARY[kind or n.op],
             work=size * NS_PER_ELEMENT)  # fmt: skip


def _reduce(low: _Lowering, n: Node) -> None:
    """A sum, mean or max over one axis (or contiguous run of axes)."""
    from ..kernels._seam import split_axis

    xa = _contiguous(low, n.inputs[0])
    dims = n.attrs.get("dim")
    if n.attrs.get("dtype") is not None or xa.ndim == 0:
        raise _Unsupported
    if dims is None:
        dims = range(xa.ndim)
    dims = sorted(d % xa.ndim for d in ((dims,) if isinstance(dims, int) else dims))
    if dims != list(range(dims[0], dims[-1] + 1)):
        raise _Unsupported  # axes apart
    a, _, b = split_axis(xa.shape, dims[0])
    k = math.prod(xa.shape[dims[0] : dims[-1] + 1])
    b //= math.prod(xa.shape[dims[0] + 1 : dims[-1] + 1])
    low.new(n.output)
    low.emit("reduce", low.ptr(n.inputs[0]), low.ptr(n.output), a, k, b, REDUCE[n.op],
             work=xa.size * NS_PER_ELEMENT)  # fmt: skip


def _softmax(low: _Lowering, n: Node) -> None:
    from ..kernels._seam import split_axis

    xa = _contiguous(low, n.inputs[0])
    if xa.ndim == 0:
        raise _Unsupported
    a, k, b = split_axis(xa.shape, n.attrs["dim"] % xa.ndim)
    low.new(n.output)
    low.emit("softmax", low.ptr(n.inputs[0]), low.ptr(n.output), a, k, b, SOFTMAX[n.op],
             work=xa.size * NS_PER_ELEMENT * 2)  # fmt: skip


def _attention(low: _Lowering, n: Node) -> None:
    from ..kernels.attention import forward_layout

    q, k, v = n.inputs[:3]
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    arrays = [low.arrays[x] for x in (q, k, v)]
    layout = forward_layout(*arrays, None if mask is None else low.arrays[mask])
    if layout is None or len(n.output.shape) != 4:
        raise _Unsupported
    (B, H, L, S, E, Ev), st, kind, inner = layout
    o = low.new(n.output, layout=(0, 2, 1, 3) if inner else None)
    ost = [s // o.itemsize for s in o.strides[:3]]
    scale, causal = float(n.attrs["scale"]), bool(n.attrs["causal"])
    work = B * H * L * S * (E + Ev) / (96 if causal else 48)
    low.emit("attention", low.ptr(q), low.ptr(k), low.ptr(v), low.ptr(n.output), B, H, L, S,
             E, Ev, int(causal), _bits(scale), *st, *ost, low.ptr(mask), kind, work=work)  # fmt: skip


def _matmul(low: _Lowering, n: Node) -> None:
    """A batched product (up to two batch dims, broadcast or not); a batch against one
    matrix is one GEMM over all the batch's rows when they lie at one stride."""
    a, b = n.inputs[:2]
    aa, ba = low.arrays[a], low.arrays[b]
    if aa.ndim < 2 or ba.ndim < 2 or not (aa.flags.aligned and ba.flags.aligned):
        raise _Unsupported
    if a.dtype != low.dtype or b.dtype != low.dtype:
        raise _Unsupported
    K, N = ba.shape[-2:]
    if ba.ndim == 2 and _rows(aa) is not None:  # (..., M, K) @ (K, N): one GEMM
        am, bm, batch = aa.reshape(-1, K), ba, ()
    else:
        am, bm, batch = aa, ba, tuple(n.output.shape[:-2])
    if len(batch) > 2:
        raise _Unsupported
    M = am.shape[-2]
    low.new(n.output)
    e = am.itemsize

    def batch_strides(x: np.ndarray) -> list[int]:
        lead = (1,) * (len(batch) - (x.ndim - 2)) + x.shape[:-2]
        st = (0,) * (len(batch) - (x.ndim - 2)) + x.strides[:-2]
        out = [0 if d == 1 else s // e for d, s in zip(lead, st)]
        return [0] * (2 - len(out)) + out

    dims = [1] * (2 - len(batch)) + list(batch)
    items = math.prod(batch)
    low.emit("matmul", low.ptr(a), low.ptr(b), low.ptr(n.output), M, N, K,
             am.strides[-2] // e, am.strides[-1] // e, bm.strides[-2] // e, bm.strides[-1] // e,
             *dims, *batch_strides(am), *batch_strides(bm),
             work=items * M * N * K * NS_PER_MAC)  # fmt: skip


def _where(low: _Lowering, n: Node) -> None:
    """``where(cond, a, b)``: each operand the output's size, repeated along it, or a Python
    number."""
    shape = tuple(n.output.shape)
    size = math.prod(shape)
    words, periods = [], []
    for x, dtype in zip(n.inputs[:3], (np.dtype(np.bool_), low.dtype, low.dtype)):
        if isinstance(x, Value):
            if x.dtype != dtype:
                raise _Unsupported
            xa = _contiguous(low, x)
            tail = xa.shape
            while tail and tail[0] == 1:
                tail = tail[1:]
            if shape[len(shape) - len(tail) :] != tail:
                raise _Unsupported
            words.append(low.ptr(x))
            periods.append(max(xa.size, 1))
        elif isinstance(x, bool | int | float):
            arr = np.array([x], dtype)
            words.append(low.add_slot(arr, "fixed") << _OFFSET_BITS)
            periods.append(1)
        else:
            raise _Unsupported
    row = min([p for p in periods if p > 1], default=size)
    low.new(n.output)
    low.emit("where", *words, low.ptr(n.output), size, *periods, row,
             work=size * NS_PER_ELEMENT)  # fmt: skip


def _outputs(low: _Lowering, g: Graph) -> list:
    """(slot, buffer shape, dtype, views) of each output buffer; the views in the order of
    the graph's outputs (each a (shape, byte offset, strides) of its buffer)."""
    found: dict[int, list] = {}
    order = []
    for v in g.outputs:
        slot = low.slot_of.get(v)
        if slot is None or low.kinds[slot] != "output":
            raise _Unsupported  # an input or parameter returned as it is
        a, base = low.arrays[v], low.bases[slot]
        if slot not in found:
            found[slot] = []
            order.append(slot)
        found[slot].append((a.shape, _addr(a) - _addr(base), a.strides))
    if len(order) != len(g.outputs):
        raise _Unsupported  # two outputs in one buffer: their order would be lost
    return [(s, low.bases[s].shape, low.bases[s].dtype, found[s]) for s in order]


def _fusions(g: Graph, users: dict) -> dict[Node, Node]:
    """linear node -> the ``add`` that is its only reader (the residual is added as the
    GEMM accumulates), for linear outputs that are not graph outputs."""
    outs = set(g.outputs)
    fused = {}
    for n in g.nodes:
        if n.op != "linear" or n.output in outs:
            continue
        readers = users.get(n.output, [])
        if len(readers) != 1 or readers[0].op != "add":
            continue
        add = readers[0]
        a, b = add.inputs[:2]
        if not (isinstance(a, Value) and isinstance(b, Value)) or a is b:
            continue
        if tuple(a.shape) == tuple(b.shape) == tuple(add.output.shape):
            fused[n] = add
    return fused


def _output_roots(g: Graph) -> set[Value]:
    """The values whose buffers hold a graph output (an output, or what it is a view of)."""
    views = {n.output: n.inputs[0] for n in g.nodes if n.op in VIEWS}
    roots = set()
    for v in g.outputs:
        while v in views:
            roots.add(v)
            v = views[v]
        roots.add(v)
    return roots


def _float_dtype(g: Graph) -> np.dtype | None:
    """The one float dtype of the graph's node outputs (float32 or float64; bool masks'
    negations and views aside), or None."""
    kinds = {n.output.dtype for n in g.nodes if n.op not in NOTS and n.output.dtype != np.bool_}
    if any(n.output.dtype == np.bool_ and n.op not in NOTS | VIEWS for n in g.nodes):
        return None
    if len(kinds) != 1:
        return None
    dt = kinds.pop()
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        return None
    return dt


def _concrete(g: Graph, batch: int) -> Graph:
    """A copy of the dynamic graph ``g`` with its batch size fixed at ``batch``."""
    g = g.copy()
    for v in g.values():
        v.shape = resolve_syms(tuple(v.shape), batch)
    for n in g.nodes:
        n.attrs = resolve_syms(n.attrs, batch)
        n.inputs = [x if isinstance(x, Value) else resolve_syms(x, batch) for x in n.inputs]
    return g


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _addr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]

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
  negation of a bool mask, concatenation, embedding lookups, scaled dot-product attention
  (causal or not, with or without a float or bool mask);
* views: slices, reshapes, permutes and the like, which cost nothing (a reshape that needs
  a copy becomes a copy step).

Anything else, and the graph keeps its generated Python function (:mod:`.executor`), which
also stays the path of record: a call whose inputs or parameters no longer fit the program
(a parameter given a new array, an embedding index out of range) runs there, and so do
errors, which it reports against the user's line.

The step library compiles on a thread of its own from the first call on (about 3 s, once
per machine: the result is cached on disk); until it is loaded the graph runs node by node.
The program is written once, at the first call (:mod:`.step_ops` lowers each op): every
value gets its place, either a view
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
import threading
from operator import attrgetter, is_
from typing import Any

import numpy as np

from ..autograd.mode import state
from ..kernels import gemv
from ..kernels.source.steps import OFFSET_BITS, OPS, STEP_WORDS
from ..memory import empty_aligned
from ..threads import kernel_threads
from .ir import Graph, Node, Value
from .ir_types import has_sym, resolve_syms
from .step_ops import NOTS, VIEWS, Unsupported, _addr, lower_node

__all__ = ["lower", "StepProgram", "ENABLED"]

ENABLED = True  # tests switch it off to compare with the per-node path
_NULL = -1
_DATA = attrgetter("_data")


class StepProgram:
    """A graph lowered to one C call (see the module docstring).

    ``run(inputs)`` takes the graph's input arrays and returns its output arrays, or None
    when the call must take the graph's own path (a parameter replaced since the program
    was written, an input not C-contiguous, an embedding index out of range).

    Example:
        >>> StepProgram.__name__
        'StepProgram'
    """

    def __init__(self, dtype: np.dtype, prog: np.ndarray, nsteps: int, slots: np.ndarray,
                 work: float, params: list, inputs: list, outputs: list, keep: list) -> None:  # fmt: skip
        self.dtype = dtype
        self._fn: Any = None  # the C function, once its library is ready (see _bind)
        self._prog = prog
        self._slots = slots
        self._work = work  # ns of one core: the thread count of each call follows from it
        # each parameter tensor, and the array of it the program reads
        self._tensors = tuple(t for t, _ in params)
        self._arrays = tuple(a for _, a in params)
        self._inputs = inputs  # (slot, shape, dtype) of each graph input
        self._outputs = outputs  # (slot, buffer shape, dtype, [(view shape, offset, strides)])
        # (shape, dtype) of the one output when it is the whole of its buffer (the common
        # case, allocated without the views' loop), else None
        self._single: tuple | None = None
        if len(outputs) == 1 and len(outputs[0][3]) == 1:
            _, shape, dtype, [(s, off, st)] = outputs[0]
            if off == 0 and s == shape and st == np.empty(shape, dtype).strides:
                self._single = (shape, dtype)
        self._keep = [prog, slots, *keep]  # what the pointers point into
        self._lock = threading.Lock()  # one call at a time: the arena and slots are shared
        self.steps = nsteps  # how many

    def valid(self) -> bool:
        """True while every parameter still holds the array the program was written for."""
        return all(map(is_, map(_DATA, self._tensors), self._arrays))

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
        self._args = (_seam.ptr(self._prog), self.steps, _seam.ptr(self._slots), self._io,
                      _seam.ptr(io_slots), len(io_slots))  # fmt: skip
        return True

    def threads(self) -> int:
        """The threads of a call now: the program wakes its team once per call, as the
        linear chain does, so the chain's threshold applies (and ``set_num_threads``, and a
        thread's own limit)."""
        return kernel_threads(self._work, gemv.MIN_WORK_PER_THREAD)

    def run(self, inputs: list) -> list | None:
        """The output arrays of one call, or None (see the class docstring)."""
        fn = self._fn
        if fn is None:
            if not self._bind():
                return None
            fn = self._fn
        for (_, shape, dtype), a in zip(self._inputs, inputs):
            if type(a) is not np.ndarray or a.shape != shape or a.dtype != dtype:
                return None
            if not a.flags.c_contiguous:
                return None
        single = self._single
        if single is not None:
            bufs = outs = [np.empty(*single)]
        else:
            bufs, outs = [], []
            for _, shape, dtype, views in self._outputs:
                buf = np.empty(shape, dtype)
                bufs.append(buf)
                for s, off, st in views:
                    whole = off == 0 and s == shape and st == buf.strides
                    outs.append(buf if whole else np.ndarray(s, dtype, buf, off, st))
        nt = kernel_threads(self._work, gemv.MIN_WORK_PER_THREAD)  # (threads(), inlined)
        ptr, io = self._ptr, self._io
        with self._lock:  # (the C call lets go of the GIL)
            # the arrays themselves keep their memory alive through the call
            j = 0
            for a in inputs:
                io[j] = ptr(a)
                j += 1
            for a in bufs:
                io[j] = ptr(a)
                j += 1
            if fn(*self._args, nt) != 0:
                return None
        return outs

    def direct(self, spec: tuple, grad: bool, guards: tuple, device: Any, program: Any) -> Any:
        """A compiled function's whole call for this program, or None where it does not
        fit (not one input and one whole output, or the library not loaded): a function of
        the call's positional arguments that returns the result tensor, or None whenever
        anything differs from what it was made for (the argument's ``spec``, as
        :class:`.cache.FastPath` records it, the grad mode, a guard, a parameter's array, an
        input not C-contiguous, a failed C call): the caller then takes the full path.

        It does in one Python frame what the fast path, ``Program.run`` and :meth:`run`
        do in eight: after the C call the Python runs from L3 (the call streamed the
        weights through the core's L2), where each frame and object costs 4-5x its hot
        time: W4's MLP took 55.8-78.8 us a call this way against 61.3-88.0 us (3 processes,
        the two interleaved in each).

        Example:
            >>> StepProgram.direct.__name__
            'direct'
        """
        if len(self._inputs) != 1 or self._single is None or self._fn is None:
            return None
        from ..tensor import Tensor

        fn, fargs, io, ptr, lock = self._fn, self._args, self._io, self._ptr, self._lock
        tensors, arrays, work, (shape, dtype) = (
            self._tensors,
            self._arrays,
            self._work,
            self._single,
        )
        per_thread, make, steps = gemv.MIN_WORK_PER_THREAD, Tensor._make, self

        def call(args: tuple) -> Any:
            if len(args) != 1:
                return None
            x = args[0]
            if not isinstance(x, Tensor) or state.grad_enabled != grad:
                return None
            a = x._data
            if (a.shape, a.dtype, x.device, x.requires_grad) != spec:
                return None
            try:
                for guard in guards:
                    if not guard():
                        return None
            except Exception:  # a guard that raises fails
                return None
            if not all(map(is_, map(_DATA, tensors), arrays)):
                return None
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                return None
            out = np.empty(shape, dtype)
            nt = kernel_threads(work, per_thread)
            with lock:
                io[0] = ptr(a)
                io[1] = ptr(out)
                if fn(*fargs, nt) != 0:
                    return None
            program.steps_run = steps
            return make(out, device)

        return call


class Lowering:
    """The state of :func:`lower`: each value's array (a view into a slot's buffer), the
    slots, the arena's free buffers and the steps written so far."""

    def __init__(self, g: Graph, dtype: np.dtype) -> None:
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

    def fixed(self, a: np.ndarray) -> int:
        """The pointer word of an array the program reads as it is (a number's)."""
        return self.add_slot(a, "fixed") << OFFSET_BITS

    def constant(self, x: float) -> tuple[np.ndarray, int]:
        """A Python scalar operand as a one-element array of the graph's dtype, and its
        pointer word."""
        a = np.array([x], self.dtype)
        return a, self.fixed(a)

    def temp(self, shape: tuple, i: int) -> int:
        """The pointer word of a buffer for a value inside node ``i`` (a layer of a chain),
        free again after it."""
        free = self.free.get((shape, self.dtype))
        slot = free.pop() if free else self.add_slot(empty_aligned(shape, self.dtype), "arena")
        self.slot_last[slot] = i
        return slot << OFFSET_BITS

    def ptr(self, x: Any) -> int:
        """The pointer word of a value (or None: NULL)."""
        if x is None:
            return _NULL
        arr, slot = self.arrays[x], self.slot_of[x]
        off = _addr(arr) - _addr(self.bases[slot])
        if not 0 <= off < (1 << OFFSET_BITS):  # a view starting before its base: not ours
            raise Unsupported
        return slot << OFFSET_BITS | off

    def emit(self, op: str, *words: int, work: float) -> None:
        step = [OPS[op], *words]
        step += [0] * (STEP_WORDS - len(step))
        self.steps.append(step)
        self.work += work


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
    except Unsupported:
        return None


def _lower(g: Graph, dtype: np.dtype) -> StepProgram:
    low = Lowering(g, dtype)
    params, inputs = [], []
    for v in g.captured:
        ref = getattr(v.ref, "_data", None)
        if type(ref) is not np.ndarray or ref.shape != tuple(v.shape) or ref.dtype != v.dtype:
            raise Unsupported  # (a tensor given data of another shape: the graph reports it)
        params.append((v.ref, ref))
        low.place(v, ref, low.add_slot(ref, "fixed"))
    for v in g.constants:
        if type(v.data) is not np.ndarray:
            raise Unsupported
        low.place(v, v.data, low.add_slot(v.data, "fixed"))
    for v in g.inputs:
        slot = low.add_slot(np.empty(v.shape, v.dtype), "input")
        low.place(v, low.bases[slot], slot)
        inputs.append((slot, tuple(v.shape), v.dtype))
    for i, n in enumerate(g.nodes):
        if n in low.fused:
            continue  # written with the add that finishes it
        lower_node(low, n, i)
        low.release(i)
    outputs = _outputs(low, g)
    slots = np.array([_addr(b) for b in low.bases], dtype=np.int64)
    prog = np.array(low.steps, dtype=np.int64).ravel()
    return StepProgram(dtype, prog, len(low.steps), slots, low.work, params, inputs, outputs,
                       low.bases)  # fmt: skip


def _outputs(low: Lowering, g: Graph) -> list:
    """(slot, buffer shape, dtype, views) of each output buffer; the views in the order of
    the graph's outputs (each a (shape, byte offset, strides) of its buffer)."""
    found: dict[int, list] = {}
    order = []
    for v in g.outputs:
        slot = low.slot_of.get(v)
        if slot is None or low.kinds[slot] != "output":
            raise Unsupported  # an input or parameter returned as it is
        a, base = low.arrays[v], low.bases[slot]
        if slot not in found:
            found[slot] = []
            order.append(slot)
        found[slot].append((a.shape, _addr(a) - _addr(base), a.strides))
    if len(order) != len(g.outputs):
        raise Unsupported  # two outputs in one buffer: their order would be lost
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

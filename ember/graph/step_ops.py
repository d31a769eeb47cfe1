"""How each op of a graph becomes steps of ``ember/kernels/source/steps.py``: the lowering
:mod:`ember.graph.steps` runs node by node (see its docstring for what it covers).

Each function writes one node's steps into the lowering's state (a ``Lowering``: every
value's array and slot, the arena, the steps so far), allocating the node's output where
it can overwrite a dying input, and raises :class:`Unsupported` for anything its step
cannot take (a layout, a dtype, a broadcast), which leaves the whole graph on its per-node
path.

Example:
    >>> "linear" in COMPUTE and "reshape" in VIEWS
    True
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING

import numpy as np

from ..kernels.gemv import MAX_ROWS
from ..kernels.source.activation import KINDS
from ..kernels.source.steps import ACT_RELU, BINARY, REDUCE, UNARY
from .ir import Node, Value

if TYPE_CHECKING:
    from .steps import Lowering

__all__ = ["lower_node", "Unsupported", "COMPUTE", "VIEWS", "NOTS", "IN_PLACE_ROWS", "GEMV_ROWS"]

# ops that only look at their input differently: a view of it (a reshape that cannot be one
# becomes a copy step)
VIEWS = {"getitem", "slice", "reshape", "permute", "broadcast_to"}
RESHAPES = {"reshape"}
ACTS = {"relu", "gelu", "silu", "sigmoid", "tanh"}
SOFTMAX = {"softmax": 0, "log_softmax": 1, "safe_softmax": 2}  # the softmax step's modes
ARITHMETIC = {"add", "sub", "mul", "div", "pow"}
NOTS = {"bitwise_not", "logical_not"}  # on bool values: the one non-float result allowed
COMPUTE = {"embedding", "layer_norm", "linear", "linear_chain", "sdpa", "matmul", "where", "cat"}
COMPUTE |= ARITHMETIC | ACTS | set(SOFTMAX) | set(UNARY) | set(REDUCE)
IN_PLACE_ROWS = 256  # linear steps on at most this many rows read their weight in place
GEMV_ROWS = MAX_ROWS  # ... and on at most this many, as gemv.py's matrix-vector products
NS_PER_MAC = 0.04  # one core's GEMM speed (25 multiply-adds per ns), for the thread count
NS_PER_ELEMENT = 1.0  # the other steps' cost per element they write


class Unsupported(Exception):
    """A node or layout the steps do not cover: the graph keeps its per-node path."""


def lower_node(low: Lowering, n: Node, i: int) -> None:
    """Write the steps of node ``n`` (the ``i``-th of its graph) into ``low``; raises
    :class:`Unsupported` where no step covers it.

    Example:
        >>> issubclass(Unsupported, Exception)
        True
    """
    op, v = n.op, n.output
    ins = n.inputs
    if op in ARITHMETIC and v.dtype == low.dtype:
        return _arithmetic(low, n, i)
    if op == "where" and v.dtype == low.dtype:
        return _where(low, n)
    if any(not isinstance(x, Value) and x is not None for x in ins):
        raise Unsupported  # a Python scalar operand
    if op in VIEWS:
        return _view(low, n, i)
    if op in NOTS and v.dtype == np.bool_ and ins[0].dtype == np.bool_:
        _contiguous(low, ins[0])
        low.new(v)
        return low.emit("not", low.ptr(ins[0]), low.ptr(v), math.prod(v.shape), work=0)
    if op not in COMPUTE or v.dtype != low.dtype:
        raise Unsupported
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
    if op == "cat":
        return _cat(low, n)
    return _softmax(low, n)


def _view(low: Lowering, n: Node, i: int) -> None:
    from ..ops.registry import REGISTRY

    x = n.inputs[0]
    src = low.arrays[x]
    try:
        out = REGISTRY[n.op].forward(np, src, **n.attrs)
    except (TypeError, ValueError, IndexError):
        raise Unsupported from None
    if not isinstance(out, np.ndarray) or out.shape != tuple(n.output.shape):
        raise Unsupported
    if np.may_share_memory(out, low.bases[low.slot_of[x]]):
        low.place(n.output, out, low.slot_of[x])
        return
    if n.op not in RESHAPES or src.ndim > 4:
        raise Unsupported  # a copy that is not a reshape's (advanced indexing)
    flat = low.new(n.output, shape=src.shape)  # the copy, in C order, then reshaped
    low.arrays[n.output] = flat.reshape(n.output.shape)
    _copy(low, src, low.ptr(x), flat, low.ptr(n.output))


def _copy(low: Lowering, src: np.ndarray, src_word: int, dst: np.ndarray, dst_word: int) -> None:
    """A copy step: ``src`` (at pointer word ``src_word``) into ``dst`` of its shape, both
    at their own strides."""
    dims, (ss, sd) = _broadcast(dst.shape, src, dst)
    low.emit("copy", src_word, dst_word, *dims, *ss, *sd, work=src.size * NS_PER_ELEMENT)


def _cat(low: Lowering, n: Node) -> None:
    """A concatenation: one copy step per input, into its part of the result."""
    ins = n.inputs
    out = low.new(n.output)
    axis = n.attrs["dim"] % out.ndim
    at = 0
    base = low.ptr(n.output)
    for x in ins:
        if not isinstance(x, Value) or x.dtype != low.dtype:
            raise Unsupported
        xa = low.arrays[x]
        part = out[(slice(None),) * axis + (slice(at, at + xa.shape[axis]),)]
        _copy(low, xa, low.ptr(x), part, base + _addr(part) - _addr(out))
        at += xa.shape[axis]


def _contiguous(low: Lowering, x: Value) -> np.ndarray:
    a = low.arrays[x]
    if not a.flags.c_contiguous:
        raise Unsupported
    return a


def _embedding(low: Lowering, n: Node) -> None:
    w, idx = n.inputs[:2]
    wa, ia = _contiguous(low, w), _contiguous(low, idx)
    if wa.ndim != 2 or ia.dtype != np.int64:
        raise Unsupported
    low.new(n.output)
    low.emit("gather", low.ptr(w), low.ptr(idx), low.ptr(n.output), ia.size, wa.shape[1],
             wa.shape[0], work=ia.size * wa.shape[1] * NS_PER_ELEMENT)  # fmt: skip


def _layer_norm(low: Lowering, n: Node) -> None:
    x, w, b = (list(n.inputs) + [None, None])[:3]
    xa = _contiguous(low, x)
    k = n.attrs.get("normalized_ndim", 1)
    d = math.prod(xa.shape[xa.ndim - k :])
    for p in (w, b):
        if p is not None and (_contiguous(low, p).size != d or p.dtype != low.dtype):
            raise Unsupported
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


def _linear(low: Lowering, n: Node, i: int, add: tuple | None) -> None:
    """``n`` (a linear node); with ``add`` (the add node, the residual) the sum of both."""
    x, w, b = (list(n.inputs) + [None])[:3]
    xa, wa = low.arrays[x], _contiguous(low, w)
    ldx = _rows(xa)
    if ldx is None or wa.ndim != 2 or w.dtype != low.dtype or x.dtype != low.dtype:
        raise Unsupported
    if b is not None and _contiguous(low, b).shape != (wa.shape[0],):
        raise Unsupported
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
        raise Unsupported
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


def _linear_chain(low: Lowering, n: Node, i: int) -> None:
    """The chain's layers as one gemv step each, the layers between them in buffers of
    their own."""
    from ..kernels.gemv import NS_PER_WEIGHT
    from ..kernels.source.gemv import ACTS as GEMV_ACTS

    x, params, acts = n.inputs[0], n.inputs[1:], n.attrs["acts"]
    xa = low.arrays[x]
    ld, k = _rows(xa), xa.shape[-1]
    m = xa.size // k
    if ld is None or m > GEMV_ROWS or x.dtype != low.dtype:
        raise Unsupported
    word = low.ptr(x)
    for layer, (w, b, act) in enumerate(zip(params[0::2], params[1::2], acts)):
        wa = _contiguous(low, w)
        if wa.ndim != 2 or wa.shape[1] != k or w.dtype != low.dtype:
            raise Unsupported
        if b is not None and _contiguous(low, b).shape != (wa.shape[0],):
            raise Unsupported
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


def _act(low: Lowering, n: Node, i: int) -> None:
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


def _arithmetic(low: Lowering, n: Node, i: int) -> None:
    ins = n.inputs[:2]
    lin = next((x.producer for x in ins if isinstance(x, Value) and x.producer in low.fused), None)
    if lin is not None:  # a residual add that finishes a linear layer
        r = ins[1] if ins[0] is lin.output else ins[0]
        return _linear(low, lin, i, (n, r))
    if n.op == "pow":  # x ** 2 only (x * x, as NumPy computes it)
        if not (isinstance(ins[0], Value) and ins[1] == 2 and not isinstance(ins[1], bool)):
            raise Unsupported
        return _unary(low, n, i, "square")
    shape = tuple(n.output.shape)
    ops = []
    for x in ins:
        if isinstance(x, Value):
            if x.dtype != low.dtype:
                raise Unsupported
            ops.append((x, low.arrays[x], low.ptr(x)))
        elif isinstance(x, int | float) and not isinstance(x, bool):
            ops.append((None, *low.constant(x)))
        else:
            raise Unsupported
    (va, aa, wa), (_, ba, wb) = ops
    dims, (sta, stb) = _broadcast(shape, aa, ba)
    if va is None or low.reuse(n.output, va, i) is None:
        low.new(n.output)
    low.emit("binary", wa, wb, low.ptr(n.output), *dims, *sta, *stb, BINARY[n.op],
             work=math.prod(shape) * NS_PER_ELEMENT)  # fmt: skip


def _broadcast(shape: tuple, *arrays: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """``shape`` as at most 4 dims and each array's element strides along them when
    broadcast to it (0 along a broadcast dim), adjacent dims merged where every array allows
    it; raises :class:`Unsupported` beyond 4 dims."""
    views = []
    for a in arrays:
        try:
            views.append(np.broadcast_to(a, shape))
        except ValueError:
            raise Unsupported from None
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
        raise Unsupported
    pad = 4 - len(dims)
    return [1] * pad + dims, [[0] * pad + st for st in strides]


def _unary(low: Lowering, n: Node, i: int, kind: str | None = None) -> None:
    """A unary op (``kind``: another op's step, as x**2's ``square``), its input at any
    strides."""
    x = n.inputs[0]
    xa = low.arrays[x]
    dims, (st,) = _broadcast(xa.shape, xa)
    if low.reuse(n.output, x, i) is None:
        low.new(n.output)
    low.emit("unary", low.ptr(x), low.ptr(n.output), *dims, *st, UNARY[kind or n.op],
             work=xa.size * NS_PER_ELEMENT)  # fmt: skip


def _reduce(low: Lowering, n: Node) -> None:
    """A sum, mean or max over one axis (or contiguous run of axes)."""
    from ..kernels._seam import split_axis

    xa = _contiguous(low, n.inputs[0])
    dims = n.attrs.get("dim")
    if n.attrs.get("dtype") is not None or xa.ndim == 0:
        raise Unsupported
    if dims is None:
        dims = range(xa.ndim)
    dims = sorted(d % xa.ndim for d in ((dims,) if isinstance(dims, int) else dims))
    if dims != list(range(dims[0], dims[-1] + 1)):
        raise Unsupported  # axes apart
    a, _, b = split_axis(xa.shape, dims[0])
    k = math.prod(xa.shape[dims[0] : dims[-1] + 1])
    b //= math.prod(xa.shape[dims[0] + 1 : dims[-1] + 1])
    low.new(n.output)
    low.emit("reduce", low.ptr(n.inputs[0]), low.ptr(n.output), a, k, b, REDUCE[n.op],
             work=xa.size * NS_PER_ELEMENT)  # fmt: skip


def _softmax(low: Lowering, n: Node) -> None:
    from ..kernels._seam import split_axis

    xa = _contiguous(low, n.inputs[0])
    if xa.ndim == 0:
        raise Unsupported
    a, k, b = split_axis(xa.shape, n.attrs["dim"] % xa.ndim)
    low.new(n.output)
    low.emit("softmax", low.ptr(n.inputs[0]), low.ptr(n.output), a, k, b, SOFTMAX[n.op],
             work=xa.size * NS_PER_ELEMENT * 2)  # fmt: skip


def _attention(low: Lowering, n: Node) -> None:
    from ..kernels.attention import forward_layout

    q, k, v = n.inputs[:3]
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    arrays = [low.arrays[x] for x in (q, k, v)]
    layout = forward_layout(*arrays, None if mask is None else low.arrays[mask])
    if layout is None or len(n.output.shape) != 4:
        raise Unsupported
    (B, H, L, S, E, Ev), st, kind, inner = layout
    o = low.new(n.output, layout=(0, 2, 1, 3) if inner else None)
    ost = [s // o.itemsize for s in o.strides[:3]]
    scale, causal = float(n.attrs["scale"]), bool(n.attrs["causal"])
    work = B * H * L * S * (E + Ev) / (96 if causal else 48)
    low.emit("attention", low.ptr(q), low.ptr(k), low.ptr(v), low.ptr(n.output), B, H, L, S,
             E, Ev, int(causal), _bits(scale), *st, *ost, low.ptr(mask), kind, work=work)  # fmt: skip


def _matmul(low: Lowering, n: Node) -> None:
    """A batched product (up to two batch dims, broadcast or not); a batch against one
    matrix is one GEMM over all the batch's rows when they lie at one stride."""
    a, b = n.inputs[:2]
    aa, ba = low.arrays[a], low.arrays[b]
    if aa.ndim < 2 or ba.ndim < 2 or not (aa.flags.aligned and ba.flags.aligned):
        raise Unsupported
    if a.dtype != low.dtype or b.dtype != low.dtype:
        raise Unsupported
    K, N = ba.shape[-2:]
    if ba.ndim == 2 and _rows(aa) is not None:  # (..., M, K) @ (K, N): one GEMM
        am, bm, batch = aa.reshape(-1, K), ba, ()
    else:
        am, bm, batch = aa, ba, tuple(n.output.shape[:-2])
    if len(batch) > 2:
        raise Unsupported
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


def _where(low: Lowering, n: Node) -> None:
    """``where(cond, a, b)``: each operand the output's size, repeated along it, or a Python
    number."""
    shape = tuple(n.output.shape)
    size = math.prod(shape)
    words, periods = [], []
    for x, dtype in zip(n.inputs[:3], (np.dtype(np.bool_), low.dtype, low.dtype)):
        if isinstance(x, Value):
            if x.dtype != dtype:
                raise Unsupported
            xa = _contiguous(low, x)
            tail = xa.shape
            while tail and tail[0] == 1:
                tail = tail[1:]
            if shape[len(shape) - len(tail) :] != tail:
                raise Unsupported
            words.append(low.ptr(x))
            periods.append(max(xa.size, 1))
        elif isinstance(x, bool | int | float):
            arr = np.array([x], dtype)
            words.append(low.fixed(arr))
            periods.append(1)
        else:
            raise Unsupported
    row = min([p for p in periods if p > 1], default=size)
    low.new(n.output)
    low.emit("where", *words, low.ptr(n.output), size, *periods, row,
             work=size * NS_PER_ELEMENT)  # fmt: skip


def _addr(a: np.ndarray) -> int:
    """The address of ``a``'s first element (also :mod:`.steps`'s)."""
    return a.__array_interface__["data"][0]


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]

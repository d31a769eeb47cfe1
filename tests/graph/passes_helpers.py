"""Helpers for the pass tests: small graph builders and a reference interpreter.

The interpreter runs a graph with the registry's forwards on NumPy. With ``planned=True`` it
also honours the executor rules of :mod:`ember.graph.passes` (``out_slot`` buffers kept
across calls, fused in-place followers), so a wrong plan shows up as wrong numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import ember  # noqa: F401  (fills the registry)
import ember.ops.nn.dropout  # noqa: F401  (dropout_mask)
import ember.ops.optim  # noqa: F401  (sgd_update)
from ember.graph.ir import Graph, Value
from ember.graph.passes import KERNELS, call_out
from ember.ops.registry import REGISTRY

F32 = np.float32
F64 = np.float64

SGD = dict(
    momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False, first=False
)


def node(
    g: Graph, op: str, inputs: list, shape: tuple, dtype: Any = F32, attrs=None, **kw
) -> Value:
    """Append ``op`` to ``g`` (attrs as a dict: attribute names may be ``shape``/``dtype``)."""
    return g.add_node(op, inputs, attrs or {}, shape, dtype, **kw)


def sgd(g: Graph, param: Value, grad: Value, lr: Any = 0.1) -> Value:
    """An in-place ``sgd_update`` node (mutates and returns ``param``)."""
    return g.add_node(
        "sgd_update",
        [param, grad, None, lr],
        SGD,
        param.shape,
        param.dtype,
        pure=False,
        mutates=(0,),
        aliases=(0,),
    )


def _leaf(v: Value) -> Any:
    if v.kind == "const":
        return v.data
    if v.kind == "scalar":
        return v.ref()
    ref = v.ref
    if hasattr(ref, "_data"):
        return ref._data
    if hasattr(ref, "read"):
        return ref.read()
    return ref


class Runner:
    """Runs one graph repeatedly; in planned mode its buffers persist across calls."""

    def __init__(self, graph: Graph, planned: bool = False) -> None:
        self.graph, self.planned = graph, planned
        self.buffers: dict[int, np.ndarray] = {}

    def buffer(self, slot: int) -> np.ndarray:
        buf = self.buffers.get(slot)
        if buf is None:
            shape, dtype = self.graph.meta["buffers"][slot]
            buf = np.empty(shape, dtype)
            buf[...] = 7 if np.dtype(dtype).kind != "b" else True  # garbage, not zeros
            self.buffers[slot] = buf
        return buf

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        g = self.graph
        env: dict[Value, Any] = dict(zip(g.inputs, inputs))
        for v in [*g.captured, *g.scalars, *g.constants]:
            env[v] = _leaf(v)
        leaves = [id(a) for a in env.values()]
        for n in g.nodes:
            args = [env[x] if isinstance(x, Value) else x for x in n.inputs]
            p = n.meta.get("inplace")
            if self.planned and n.out_slot is not None:
                buf = self.buffer(n.out_slot)
                assert buf.shape == n.output.shape and buf.dtype == n.output.dtype
                if n.op in KERNELS:
                    out = call_out(np, n.op, args, n.attrs, buf)
                else:  # an executor lowering with out= (2-d matmul): same effect
                    np.copyto(buf, REGISTRY[n.op].forward(np, *args, **n.attrs))
                    out = buf
            elif self.planned and p is not None:
                acc = args[p]
                assert id(acc) not in leaves, "fused step would overwrite a graph input"
                assert all(acc is not b for b in self.buffers.values()), "overwrites a buffer"
                out = call_out(np, n.op, args, n.attrs, acc)
            else:
                out = np.asarray(REGISTRY[n.op].forward(np, *args, **n.attrs))
            assert out.shape == n.output.shape, (n.op, out.shape, n.output.shape)
            assert out.dtype == n.output.dtype, (n.op, out.dtype, n.output.dtype)
            env[n.output] = out
        results = [env[v] for v in g.outputs]
        for u in g.updates:
            if u.kind == "copy":
                np.copyto(env[u.target], env[u.value])
        return results


def run(graph: Graph, *inputs: np.ndarray, planned: bool = False) -> list[np.ndarray]:
    """One call of ``graph`` (outputs copied, so later calls cannot change them)."""
    return [np.array(o, copy=True) for o in Runner(graph, planned)(*inputs)]


def _state(graph: Graph) -> list[np.ndarray]:
    return [_leaf(v) for v in graph.captured if isinstance(_leaf(v), np.ndarray)]


def assert_same(before: Graph, after: Graph, *inputs: np.ndarray, calls: int = 2) -> None:
    """``after`` (planned) computes what ``before`` does, call after call: the same outputs,
    the same writes into inputs and captured arrays, and outputs of one call unchanged by the
    next (no escaping value lives in a reused buffer)."""
    ref = Runner(before)
    opt = Runner(after, planned=True)
    kept = []
    for _ in range(calls):
        state = _state(before)
        start = [s.copy() for s in state]
        ins_ref = [np.array(a, copy=True) for a in inputs]
        want = [np.array(w, copy=True) for w in ref(*ins_ref)]
        end = [s.copy() for s in state]
        for s, s0 in zip(state, start):
            s[...] = s0
        ins_opt = [np.array(a, copy=True) for a in inputs]
        got = opt(*ins_opt)
        assert len(want) == len(got)
        for w, o in zip(want, got):
            np.testing.assert_array_equal(o, w)
        for a, b in zip(ins_opt, ins_ref):
            np.testing.assert_array_equal(a, b)
        for s, e in zip(state, end):
            np.testing.assert_array_equal(s, e)
        kept.append((got, [np.array(o, copy=True) for o in got]))
    for got, snapshot in kept:
        for o, s in zip(got, snapshot):
            np.testing.assert_array_equal(o, s)


def rng_array(shape: tuple, dtype: Any = F32, seed: int = 0, lo: float = -1.0, hi: float = 1.0):
    """A reproducible random array."""
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)

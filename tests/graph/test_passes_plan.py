"""Fusion, memory planning and the ``out=`` kernels they rely on.

The reference interpreter (``passes_helpers.Runner``) honours the plan the way the executor
must: ``out_slot`` buffers kept across calls, fused followers written into their
accumulator. A plan that overwrites a live value or hands out a reused buffer shows up as
wrong numbers (or a changed earlier output) in ``assert_same``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ember.graph.ir import Graph, IRError, Update
from ember.graph.passes import (
    ELEMENTWISE,
    KERNELS,
    call_out,
    check_plan,
    fuse,
    fused_steps,
    fusion_groups,
    optimize,
    out_code,
    plan_memory,
)
from ember.ops.registry import REGISTRY

from .passes_helpers import F32, F64, assert_same, node, rng_array, sgd

SUM = {"dim": None, "keepdim": False, "dtype": None}


def _groups(g: Graph) -> list[list[tuple[str, bool]]]:
    return [fused_steps(grp) for grp in fusion_groups(g)]


def _planned(g: Graph, *, fuse_chains: bool = True) -> Graph:
    g = optimize(g, rewrites=(), fuse_chains=fuse_chains, validate=True)
    check_plan(g)
    return g


# -- kernels -------------------------------------------------------------------------------------
_INT_OPS = {
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "bitwise_left_shift",
    "bitwise_right_shift",
}
_BOOL_OPS = {"logical_and", "logical_or", "logical_xor", "logical_not"}


def _kernel_cases(op: str) -> list[tuple[list, dict]]:
    x = rng_array((2, 3), seed=1, lo=-2.0, hi=2.0)
    y = rng_array((2, 3), seed=2, lo=0.5, hi=2.0)
    row = rng_array((3,), seed=3, lo=0.5, hi=2.0)
    if op in _INT_OPS:
        xi, yi = np.arange(6, dtype=np.int32).reshape(2, 3), np.full((2, 3), 2, np.int32)
        return [([xi], {})] if op == "bitwise_not" else [([xi, yi], {}), ([xi, 1], {})]
    if op in _BOOL_OPS:
        xb, yb = x > 0, y > 1
        return [([xb], {})] if op == "logical_not" else [([xb, yb], {}), ([xb, True], {})]
    if op == "clamp":
        return [([x, -0.5, 0.5], {}), ([x, None, 0.5], {}), ([x, row - 1.5, row], {})]
    if op == "hardtanh":
        return [([x], {"min_val": -0.5, "max_val": 1.0})]
    if op == "cast":
        return [([x], {"dtype": np.dtype(np.float64)}), ([x * 10], {"dtype": np.dtype(np.int32)})]
    if KERNELS[op].args.count(1) or op in ("pow", "atan2"):
        return [([x, y], {}), ([x, row], {}), ([y, 2.0], {}), ([3.0, y], {})]
    return [([x], {}), ([y], {})]


@pytest.mark.parametrize("op", sorted(KERNELS))
def test_out_kernel_matches_forward(op):
    fwd = REGISTRY[op].forward
    for args, attrs in _kernel_cases(op):
        with np.errstate(all="ignore"):
            want = np.asarray(fwd(np, *args, **attrs))
            out = np.empty_like(want)
            got = call_out(np, op, list(args), attrs, out)
            ns = {"xp": np, "out2": np.empty_like(want)}
            names = []
            for i, a in enumerate(args):
                ns[f"a{i}"] = a
                names.append(f"a{i}")
            exec(out_code(op, names, attrs, "out2"), ns)
        assert got is out
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(ns["out2"], want)


_FRESH_ARGS = {
    "where": lambda x, y: ([x > 0, x, y], {}),
    "gelu": lambda x, y: ([x], {"approximate": "tanh"}),
    "leaky_relu": lambda x, y: ([x], {"negative_slope": 0.1}),
    "softplus": lambda x, y: ([x], {"beta": 1.0, "threshold": 20.0}),
    "elu": lambda x, y: ([x], {"alpha": 1.0, "scale": 1.0, "input_scale": 1.0}),
    "selu": lambda x, y: ([x], {"alpha": 1.6, "scale": 1.05, "input_scale": 1.0}),
    "celu": lambda x, y: ([x], {"alpha": 1.0, "scale": 1.0, "input_scale": 1.0}),
    "round": lambda x, y: ([x], {"decimals": 0}),
    "nan_to_num": lambda x, y: ([x], {"nan": 0.0, "posinf": 1.0, "neginf": -1.0}),
    "isclose": lambda x, y: ([x, y], {"rtol": 1e-5, "atol": 1e-8, "equal_nan": False}),
    "relu_backward": lambda x, y: ([x, y], {}),
    "sigmoid_backward": lambda x, y: ([x, y], {}),
    "tanh_backward": lambda x, y: ([x, y], {}),
    "silu_backward": lambda x, y: ([x, y], {}),
    "gelu_backward": lambda x, y: ([x, y], {"approximate": "none"}),
}


@pytest.mark.parametrize("op", sorted(ELEMENTWISE - set(KERNELS)))
def test_fresh_elementwise_ops_return_their_own_arrays(op):
    # a fused head's result is overwritten by the followers: it must never be an input's memory
    x = rng_array((2, 3), seed=4, lo=-0.9, hi=0.9)
    y = rng_array((2, 3), seed=5, lo=0.1, hi=0.9)
    args, attrs = _FRESH_ARGS.get(op, lambda x, y: ([x], {}))(x, y)
    with np.errstate(all="ignore"):
        out = REGISTRY[op].forward(np, *args, **attrs)
    assert isinstance(out, np.ndarray) and out.shape == (2, 3)
    assert not any(np.shares_memory(out, a) for a in args if isinstance(a, np.ndarray))


# -- fuse ------------------------------------------------------------------------------------------
def test_fuse_marks_an_elementwise_chain():
    g = Graph()
    a, b = g.add_input((4, 5), F32), g.add_input((4, 5), F32)
    t = node(g, "mul", [a, b], (4, 5))
    u = node(g, "add", [t, 1.0], (4, 5))
    v = node(g, "tanh", [u], (4, 5))
    g.outputs = [node(g, "sum", [v], (), attrs=SUM)]
    before = g.copy()
    g, changed = fuse(g)
    g.validate()
    assert changed and _groups(g) == [[("mul", False), ("add", True), ("tanh", True)]]
    assert [n.meta.get("inplace") for n in g.nodes] == [None, 0, 0, None]
    assert fuse(g)[1] is False
    g = _planned(g)
    assert [n.out_slot for n in g.nodes] == [0, 0, 0, None]
    assert_same(before, g, rng_array((4, 5), seed=1), rng_array((4, 5), seed=2))


def test_fuse_stops_where_in_place_would_be_wrong():
    g = Graph()
    a = g.add_input((3,), F32)
    y = g.add_input((2, 3), F32)
    t = node(g, "mul", [a, 2.0], (3,))  # returned: cannot be overwritten
    u = node(g, "exp", [node(g, "add", [t, 1.0], (3,))], (3,))
    grown = node(g, "add", [u, y], (2, 3))  # broadcasts u to (2, 3): not in place into u
    shared = node(g, "sin", [grown], (2, 3))  # read twice below
    wide = node(
        g, "cast", [node(g, "neg", [shared], (2, 3))], (2, 3), F64, attrs={"dtype": np.float64}
    )
    g.outputs = [t, node(g, "cos", [shared], (2, 3)), wide]
    before = g.copy()
    g, _ = fuse(g)
    g.validate()
    assert _groups(g) == [[("add", False), ("exp", True)], [("add", False), ("sin", True)]]
    g = _planned(g)
    assert_same(before, g, rng_array((3,)), rng_array((2, 3), seed=1))


def test_fuse_gathers_members_but_not_across_in_place_writes():
    g = Graph()
    x = g.add_input((4,), F32)
    p = g.add_captured((4,), F32, ref=rng_array((4,), seed=3), label="p")
    t = node(g, "mul", [x, p], (4,))
    other = node(g, "sin", [x], (4,))
    u = node(g, "add", [t, other], (4,))  # gathered: mul moves down next to add
    r = node(g, "mul", [p, 3.0], (4,))
    sgd(g, p, x)  # an in-place write of p between r and its follower
    w = node(g, "exp", [r], (4,))
    g.outputs = [u, w]
    before = g.copy()
    g, changed = fuse(g)
    g.validate()
    ops = [n.op for n in g.nodes]
    assert changed and ops == ["sin", "mul", "add", "mul", "sgd_update", "exp"]
    assert _groups(g) == [[("mul", False), ("add", True)], [("mul", False), ("exp", True)]]
    assert_same(before, _planned(g), rng_array((4,), seed=4))


# -- memory ----------------------------------------------------------------------------------------
def test_plan_reuses_buffers_of_dead_values():
    g = Graph()
    x = g.add_input((8,), F32)
    a = node(g, "exp", [x], (8,))
    b = node(g, "sin", [a], (8,))
    s1 = node(g, "sum", [b], (), attrs=SUM)
    c = node(g, "cos", [x], (8,))  # a and b are dead: their buffer is free again
    d = node(g, "mul", [c, x], (8,))
    s2 = node(g, "sum", [d], (), attrs=SUM)
    m = node(
        g,
        "matmul",
        [
            node(g, "reshape", [x], (2, 4), attrs={"shape": (2, 4)}, aliases=(0,)),
            g.add_const(np.ones((4, 3), F32)),
        ],
        (2, 3),
    )
    g.outputs = [node(g, "add", [s1, s2], ()), node(g, "softmax", [m], (2, 3), attrs={"dim": 1})]
    before = g.copy()
    g = _planned(g, fuse_chains=False)
    slots = {n.op: n.out_slot for n in g.nodes}
    assert [n.out_slot for n in g.nodes if n.op in ("exp", "sin", "cos", "mul")] == [0, 0, 0, 0]
    assert slots["matmul"] == 1 and slots["softmax"] is None and slots["sum"] is None
    assert g.meta["buffers"] == {0: ((8,), np.dtype(F32)), 1: ((2, 3), np.dtype(F32))}
    assert plan_memory(g)[1] is False
    assert_same(before, g, rng_array((8,)), calls=3)


def test_plan_never_buffers_escaping_values():
    g = Graph()
    x = g.add_input((2, 3), F32)
    p = g.add_captured((2, 3), F32, ref=rng_array((2, 3), seed=7), label="p")
    run_mean = g.add_captured((2, 3), F32, ref=np.zeros((2, 3), F32), label="running_mean")
    a = node(g, "exp", [x], (2, 3))
    view = node(g, "reshape", [a], (6,), attrs={"shape": (6,)}, aliases=(0,))  # returned view
    grad = node(g, "mul", [x, 2.0], (2, 3))  # read by an in-place update
    sgd(g, p, grad)
    new_mean = node(g, "add", [run_mean, x], (2, 3))  # an update's value
    g.updates = [Update(run_mean, new_mean)]
    g.outputs = [view, node(g, "neg", [x], (2, 3))]
    before = g.copy()
    g = _planned(g)
    assert all(n.out_slot is None for n in g.nodes)
    assert_same(before, g, rng_array((2, 3), seed=8), calls=3)


def test_plan_keeps_viewed_buffers_alive():
    g = Graph()
    x = g.add_input((4,), F32)
    a = node(g, "exp", [x], (4,))
    view = node(g, "reshape", [a], (2, 2), attrs={"shape": (2, 2)}, aliases=(0,))
    b = node(g, "sin", [x], (4,))  # must not take a's buffer: the view is read below
    s = node(g, "sum", [view], (), attrs=SUM)
    g.outputs = [node(g, "add", [s, node(g, "sum", [b], (), attrs=SUM)], ())]
    before = g.copy()
    g = _planned(g)
    assert a.producer.out_slot is not None and b.producer.out_slot not in (
        None,
        a.producer.out_slot,
    )
    assert_same(before, g, rng_array((4,)))


def test_plan_writes_in_place_only_when_no_view_is_read():
    g = Graph()
    x = g.add_input((3, 3), F32)
    a = node(g, "exp", [x], (3, 3))
    at = node(g, "permute", [a], (3, 3), attrs={"dims": (1, 0)}, aliases=(0,))
    s = node(g, "add", [a, at], (3, 3))  # a dies here, but its transpose is read too
    g.outputs = [node(g, "sum", [s], (), attrs=SUM)]
    before = g.copy()
    g = _planned(g, fuse_chains=False)
    assert s.producer.out_slot is not None and s.producer.out_slot != a.producer.out_slot
    assert_same(before, g, rng_array((3, 3)))
    s.producer.out_slot = a.producer.out_slot  # what a careless planner would do
    with pytest.raises(IRError, match="unsafely"):
        check_plan(g)


def test_fused_run_that_escapes_gets_no_buffer():
    g = Graph()
    x = g.add_input((6,), F32)
    t = node(g, "exp", [x], (6,))
    u = node(g, "mul", [t, 2.0], (6,))
    v = node(g, "add", [u, x], (6,))
    g.outputs = [v]  # the run's last value leaves the call
    before = g.copy()
    g = _planned(g)
    assert _groups(g) == [[("exp", False), ("mul", True), ("add", True)]]
    assert all(n.out_slot is None for n in g.nodes)
    assert_same(before, g, rng_array((6,)), calls=3)


def test_check_plan_catches_overlapping_lifetimes():
    g = Graph()
    x = g.add_input((4,), F32)
    a = node(g, "exp", [x], (4,))
    b = node(g, "sin", [x], (4,))
    g.outputs = [node(g, "sum", [node(g, "add", [a, b], (4,))], (), attrs=SUM)]
    g = _planned(g, fuse_chains=False)
    assert a.producer.out_slot != b.producer.out_slot
    b.producer.out_slot = a.producer.out_slot
    with pytest.raises(IRError, match="read later"):
        check_plan(g)

"""The rewrite passes (dce, cse, fold, simplify) and the pipeline, on small hand-built graphs.

Each pass has a case it must rewrite and a case a careless version would rewrite wrongly;
every result is validated and run by a reference interpreter against the original graph.
Fusion, memory planning and the ``out=`` kernels are in ``test_passes_plan.py``.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest

from ember.graph.ir import Graph, IRError, Sym, Update
from ember.graph.passes import (
    check_plan,
    cse,
    dce,
    fold,
    freeze,
    fuse,
    fused_steps,
    fusion_groups,
    optimize,
    plan_memory,
    run_pass,
    simplify,
)

from .passes_helpers import F32, F64, assert_same, node, rng_array, run, sgd


def _apply(pass_, g: Graph) -> tuple[Graph, Graph, bool]:
    before = g.copy()
    after, changed = pass_(g)
    after.validate()
    return before, after, changed


def _ops(g: Graph) -> list[str]:
    return [n.op for n in g.nodes]


# -- dce -------------------------------------------------------------------------------------------
def test_dce_removes_dead_nodes_and_constants():
    g = Graph()
    x = g.add_input((3,), F32)
    c = g.add_const(np.ones(3, F32))
    dead = node(g, "exp", [x], (3,))
    node(g, "add", [dead, c], (3,))
    g.outputs = [node(g, "sin", [x], (3,))]
    before, after, changed = _apply(dce, g)
    assert changed and _ops(after) == ["sin"] and after.constants == []
    assert_same(before, after, rng_array((3,)))
    assert dce(after) == (after, False)


def test_dce_keeps_impure_mutating_and_update_feeding_nodes():
    g = Graph()
    x = g.add_input((4,), F32)
    p = g.add_captured((4,), F32, ref=rng_array((4,), seed=1), label="p")
    b = g.add_captured((4,), F32, ref=np.zeros(4, F32), label="running")
    attrs = {"p": 0.5, "shape": (4,), "scale": 2.0}
    node(g, "dropout_mask", [x], (4,), attrs=attrs, pure=False)  # unused, but draws
    grad = node(g, "mul", [x, 2.0], (4,))
    sgd(g, p, grad)  # unused output, but writes p
    new_b = node(g, "add", [b, x], (4,))  # feeds an update only
    node(g, "cos", [x], (4,))  # dead
    g.updates = [Update(b, new_b)]
    g.outputs = [node(g, "neg", [x], (4,))]
    before, after, changed = _apply(dce, g)
    assert changed
    assert _ops(after) == ["dropout_mask", "mul", "sgd_update", "add", "neg"]


# -- cse -------------------------------------------------------------------------------------------
def test_cse_merges_repeated_expressions_transitively():
    g = Graph()
    x = g.add_input((2, 3), F32)
    a1 = node(g, "exp", [x], (2, 3))
    a2 = node(g, "exp", [x], (2, 3))
    b1 = node(g, "mul", [a1, 2.0], (2, 3))
    b2 = node(g, "mul", [a2, 2.0], (2, 3))
    s1 = node(g, "sum", [b1], (3,), attrs={"dim": (0,), "keepdim": False, "dtype": None})
    s2 = node(g, "sum", [b2], (3,), attrs={"dim": (0,), "keepdim": False, "dtype": None})
    g.outputs = [node(g, "add", [s1, s2], (3,))]
    before, after, changed = _apply(cse, g)
    assert changed and _ops(after) == ["exp", "mul", "sum", "add"]
    assert after.nodes[-1].inputs[0] is after.nodes[-1].inputs[1]
    assert_same(before, after, rng_array((2, 3)))
    assert cse(after)[1] is False


def test_cse_compares_attributes_by_value():
    g = Graph()
    x = g.add_input((4, 6), F32)
    outs = [
        node(g, "getitem", [x], (1, 6), attrs={"index": (slice(0, 1), Ellipsis)}),
        node(g, "getitem", [x], (1, 6), attrs={"index": (slice(0, 1), Ellipsis)}),  # same
        node(g, "getitem", [x], (2, 6), attrs={"index": (slice(0, 2), Ellipsis)}),
        node(g, "cast", [x], (4, 6), F64, attrs={"dtype": np.float64}),
        node(g, "cast", [x], (4, 6), F64, attrs={"dtype": np.dtype("float64")}),  # same
        node(g, "mul", [x, 2], (4, 6)),
        node(g, "mul", [x, 2.0], (4, 6)),  # int and float scalars are kept apart
        node(g, "add", [x, 0.0], (4, 6)),
        node(g, "add", [x, -0.0], (4, 6)),  # 0.0 and -0.0 differ
    ]
    total = {"dim": None, "keepdim": False, "dtype": None}
    g.outputs = [node(g, "sum", [v], (), v.dtype, attrs=total) for v in outs]
    before, after, changed = _apply(cse, g)
    assert changed
    assert after.op_counts()["getitem"] == 2
    assert after.op_counts()["cast"] == 1
    assert after.op_counts()["mul"] == 2 and after.op_counts()["add"] == 2
    assert_same(before, after, rng_array((4, 6)))
    assert freeze((Sym("B"), 3)) == freeze((Sym("B"), 3)) != freeze((Sym("B", 2), 3))


def test_cse_never_merges_random_nodes():
    g = Graph()
    x = g.add_input((8,), F32)
    attrs = {"p": 0.5, "shape": (8,), "scale": 2.0}
    m1 = node(g, "dropout_mask", [x], (8,), attrs=attrs, pure=False)
    m2 = node(g, "dropout_mask", [x], (8,), attrs=attrs, pure=False)
    g.outputs = [node(g, "mul", [x, m1], (8,)), node(g, "mul", [x, m2], (8,))]
    _, after, changed = _apply(cse, g)
    assert not changed and after.op_counts() == {"dropout_mask": 2, "mul": 2}


def test_cse_respects_in_place_writes():
    g = Graph()
    x = g.add_input((5,), F32)
    p = g.add_captured((5,), F32, ref=rng_array((5,), seed=2), label="p")
    before_0 = node(g, "mul", [p, 2.0], (5,))
    before_1 = node(g, "mul", [p, 2.0], (5,))  # same side of the write: merged
    sgd(g, p, x, lr=0.5)
    after_0 = node(g, "mul", [p, 2.0], (5,))  # reads p after the write: a different value
    d0 = node(g, "sub", [after_0, before_0], (5,))
    d1 = node(g, "sub", [after_0, before_1], (5,))
    g.outputs = [node(g, "add", [d0, d1], (5,))]
    before, after, changed = _apply(cse, g)
    assert changed and after.op_counts()["mul"] == 2
    xs = rng_array((5,), seed=3)
    assert_same(before, after, xs)
    p.ref[...] = 1.0
    (out,) = run(after, xs)
    np.testing.assert_allclose(out, 2 * 2.0 * (-0.5 * xs), rtol=1e-6)  # nonzero: not merged


def test_cse_keeps_two_returned_values_apart():
    g = Graph()
    x = g.add_input((3,), F32)
    a = node(g, "exp", [x], (3,))
    b = node(g, "exp", [x], (3,))
    g.outputs = [a, b]  # one array returned twice: writing one result would change the other
    _, after, changed = _apply(cse, g)
    assert not changed and after.outputs[0] is not after.outputs[1]


def test_cse_merges_equal_constants():
    g = Graph()
    x = g.add_input((3,), F32)
    c1 = g.add_const(np.array([1.0, 2.0, 3.0], F32))
    c2 = g.add_const(np.array([1.0, 2.0, 3.0], F32))
    c3 = g.add_const(np.array([1.0, 2.0, 4.0], F32))
    a = node(g, "mul", [x, c1], (3,))
    b = node(g, "mul", [x, c2], (3,))
    c = node(g, "mul", [x, c3], (3,))
    g.outputs = [node(g, "add", [node(g, "add", [a, b], (3,)), c], (3,))]
    before, after, changed = _apply(cse, g)
    assert changed and len(after.constants) == 2 and after.op_counts()["mul"] == 2
    assert_same(before, after, rng_array((3,)))


# -- fold ------------------------------------------------------------------------------------------
def test_fold_evaluates_constant_subgraphs():
    g = Graph()
    x = g.add_input((3,), F32)
    c = g.add_const(np.array([0.5, 1.0, 2.0], F32))
    e = node(g, "mul", [node(g, "exp", [c], (3,)), 2.0], (3,))
    r = node(
        g,
        "reshape",
        [node(g, "broadcast_to", [e], (2, 3), attrs={"shape": (2, 3)})],
        (6,),
        attrs={"shape": (6,)},
    )
    y = node(g, "add", [node(g, "reshape", [x], (1, 3), attrs={"shape": (1, 3)}), e], (1, 3))
    g.outputs = [y, node(g, "sum", [r], (), attrs={"dim": None, "keepdim": False, "dtype": None})]
    before = g.copy()
    g, changed = fold(g)
    g.validate()
    assert changed and _ops(g) == ["reshape", "add", "sum"]  # a returned value stays a node
    assert g.nodes[2].inputs[0].kind == "const"
    g, _ = dce(g)
    assert len(g.constants) == 2
    e_data = g.nodes[1].inputs[1].data
    np.testing.assert_array_equal(e_data, np.exp(c.data) * np.float32(2.0))
    assert not np.shares_memory(g.nodes[2].inputs[0].data, e_data)
    assert_same(before, g, rng_array((3,)))


def test_fold_leaves_returned_values_as_nodes():
    g = Graph()
    c = g.add_const(np.array([0.5, 1.0], F32))
    g.outputs = [node(g, "exp", [c], (2,))]
    _, after, changed = _apply(fold, g)
    assert not changed  # a returned constant would hand the caller the graph's own array


def test_fold_never_folds_inputs_captured_scalars_random_or_huge():
    g = Graph()
    x = g.add_input((3,), F32)
    w = g.add_captured((3,), F32, ref=np.ones(3, F32), label="w")
    lr = g.add_scalar(lambda: 0.1, F64, label="lr")
    c = g.add_const(np.ones((1,), F32))
    big = node(g, "broadcast_to", [c], (1100, 1000), attrs={"shape": (1100, 1000)})
    small = node(g, "broadcast_to", [c], (3,), attrs={"shape": (3,)})
    mask = node(
        g, "dropout_mask", [small], (3,), attrs={"p": 0.5, "shape": (3,), "scale": 2.0}, pure=False
    )
    parts = [
        node(g, "mul", [x, 2.0], (3,)),
        node(g, "mul", [w, 2.0], (3,)),
        node(g, "mul", [w, lr], (3,), F64),
        node(g, "sum", [big], (), attrs={"dim": None, "keepdim": False, "dtype": None}),
        mask,
    ]
    total = parts[0]
    for p in parts[1:]:
        total = node(
            g, "add", [total, p], (3,), F64 if p.dtype == F64 or total.dtype == F64 else F32
        )
    g.outputs = [total]
    _, after, changed = _apply(fold, g)
    assert changed  # only the small broadcast
    assert after.op_counts()["broadcast_to"] == 1 and after.op_counts()["dropout_mask"] == 1
    assert after.op_counts()["mul"] == 3


def test_fold_skips_constants_written_in_place():
    g = Graph()
    x = g.add_input((3,), F32)
    c = g.add_const(np.ones(3, F32))
    e = node(g, "exp", [c], (3,))
    sgd(g, c, x)
    g.outputs = [node(g, "add", [e, x], (3,))]
    _, _, changed = _apply(fold, g)
    assert not changed


# -- simplify --------------------------------------------------------------------------------------
def test_simplify_removes_identities():
    g = Graph()
    x = g.add_input((2, 3), F32, label="x")
    ones = g.add_const(np.ones((3,), F32))
    v = node(g, "mul", [x, 1], (2, 3))
    v = node(g, "mul", [1.0, v], (2, 3))
    v = node(g, "mul", [v, ones], (2, 3))
    v = node(g, "add", [v, 0], (2, 3))
    v = node(g, "add", [0.0, v], (2, 3))
    v = node(g, "sub", [v, 0.0], (2, 3))
    v = node(g, "div", [v, 1.0], (2, 3))
    v = node(g, "pow", [v, 1], (2, 3))
    v = node(g, "neg", [node(g, "neg", [v], (2, 3))], (2, 3))
    v = node(g, "reshape", [v], (2, 3), attrs={"shape": (2, 3)}, aliases=(0,))
    v = node(g, "cast", [v], (2, 3), attrs={"dtype": np.dtype("float32")})
    v = node(g, "permute", [v], (3, 2), attrs={"dims": (1, 0)}, aliases=(0,))
    v = node(g, "permute", [v], (2, 3), attrs={"dims": (1, 0)}, aliases=(0,))
    v = node(g, "broadcast_to", [v], (2, 3), attrs={"shape": (2, 3)}, aliases=(0,))
    v = node(g, "sum_to", [v], (2, 3), attrs={"shape": (2, 3)}, aliases=(0,))
    g.outputs = [node(g, "exp", [v], (2, 3))]
    before = g.copy()
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert _ops(after) == ["exp"] and after.nodes[0].inputs[0] is after.inputs[0]
    assert_same(before, after, rng_array((2, 3)))


def test_simplify_composes_permute_and_reshape_chains():
    g = Graph()
    x = g.add_input((2, 3, 4), F32)
    p = node(g, "permute", [x], (3, 4, 2), attrs={"dims": (1, 2, 0)}, aliases=(0,))
    q = node(g, "permute", [p], (4, 3, 2), attrs={"dims": (1, 0, 2)}, aliases=(0,))
    r = node(
        g,
        "reshape",
        [node(g, "reshape", [x], (6, 4), attrs={"shape": (6, 4)})],
        (4, 6),
        attrs={"shape": (4, -1)},
    )
    g.outputs = [node(g, "exp", [q], (4, 3, 2)), node(g, "exp", [r], (4, 6))]
    before = g.copy()
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert _ops(after) == ["permute", "reshape", "exp", "exp"]
    assert after.nodes[0].attrs["dims"] == (2, 1, 0) and after.nodes[0].inputs[0] is after.inputs[0]
    assert after.nodes[1].inputs[0] is after.inputs[0]
    assert_same(before, after, rng_array((2, 3, 4)))


@pytest.mark.parametrize(
    "pool", [dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0)),
             dict(kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))],  # overlapping windows
    ids=["2x2", "3x3s2p1"],
)  # fmt: skip
def test_simplify_moves_the_relu_mask_before_the_max_pool_gradient(pool):
    import ember.ops.nn.pool  # noqa: F401  (registers the pooling ops)

    attrs = dict(pool, dilation=(1, 1), out_hw=(3, 3))
    g = Graph()
    x = g.add_input((2, 3, 6, 6), F32, label="x")
    up = g.add_input((2, 3, 3, 3), F32, label="g")
    r = node(g, "relu", [x], (2, 3, 6, 6))
    m = node(g, "max_pool2d", [r], (2, 3, 3, 3), attrs=attrs)
    d = node(g, "max_pool2d_backward", [up, r, m], (2, 3, 6, 6), attrs=attrs)
    g.outputs = [node(g, "relu_backward", [d, r], (2, 3, 6, 6)), m]
    before = g.copy()
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert _ops(after) == ["relu", "max_pool2d", "relu_backward", "max_pool2d_backward"]
    assert after.nodes[2].output.shape == (2, 3, 3, 3)  # the mask on the pooled size
    xs = rng_array((2, 3, 6, 6))
    xs[0, 0, :2, :2] = [[-1.0, 0.0], [-2.0, -0.0]]  # a window whose max is 0
    xs[1, 2, 3, 4], xs[0, 1, 5, 5] = np.nan, np.inf
    assert_same(before, after, xs, rng_array((2, 3, 3, 3)))


def test_simplify_keeps_the_relu_mask_when_the_pool_gradient_is_read_elsewhere():
    import ember.ops.nn.pool  # noqa: F401

    attrs = dict(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), out_hw=(2, 2))
    g = Graph()
    x = g.add_input((1, 2, 4, 4), F32)
    up = g.add_input((1, 2, 2, 2), F32)
    r = node(g, "relu", [x], (1, 2, 4, 4))
    m = node(g, "max_pool2d", [r], (1, 2, 2, 2), attrs=attrs)
    d = node(g, "max_pool2d_backward", [up, r, m], (1, 2, 4, 4), attrs=attrs)
    other = node(g, "max_pool2d_backward", [up, x, m], (1, 2, 4, 4), attrs=attrs)
    g.outputs = [node(g, "relu_backward", [d, r], (1, 2, 4, 4)), d,
                 node(g, "relu_backward", [other, r], (1, 2, 4, 4))]  # fmt: skip
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert [n.output.shape for n in after.nodes if n.op == "relu_backward"] == [(1, 2, 4, 4)] * 2


def _conv_relu_graph(extra_reader: bool):
    import ember.ops.nn.conv  # noqa: F401  (registers the conv ops)

    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1, out_hw=(5, 6))
    g = Graph()
    x = g.add_input((2, 3, 5, 6), F32, label="x")
    w = g.add_input((4, 3, 3, 3), F32, label="w")
    y = node(g, "conv2d", [x, w, None], (2, 4, 5, 6), attrs=attrs)
    r = node(g, "relu", [y], (2, 4, 5, 6))
    g.outputs = [node(g, "relu_backward", [r, r], (2, 4, 5, 6))] + ([y] if extra_reader else [])
    return g


def test_simplify_fuses_a_relu_into_the_convolution_it_follows():
    g = _conv_relu_graph(extra_reader=False)
    before = g.copy()
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert _ops(after) == ["conv2d", "relu_backward"]
    assert after.nodes[0].attrs["relu"] is True
    assert after.nodes[1].inputs == [after.nodes[0].output] * 2
    xs = rng_array((2, 3, 5, 6))
    xs[0, 1, 2, 3], xs[1, 0, 0, 0] = np.nan, -np.inf
    assert_same(before, after, xs, rng_array((4, 3, 3, 3)))


def test_simplify_keeps_the_relu_of_a_convolution_read_elsewhere():
    after = optimize(_conv_relu_graph(extra_reader=True), fuse_chains=False, plan=False)
    assert _ops(after) == ["conv2d", "relu", "relu_backward"]
    assert not after.nodes[0].attrs.get("relu")


def test_simplify_counts_readers_a_rewrite_moved_onto_the_convolution():
    """``v = y * 1`` goes first, so the ReLU and ``exp`` then both read the convolution's
    ``y``: fusing the ReLU into it would hand ``exp`` ReLU'd values."""
    g = _conv_relu_graph(extra_reader=False)
    y = g.nodes[0].output
    g.nodes = g.nodes[:1]
    v = node(g, "mul", [y, 1], y.shape)
    g.outputs = [node(g, "relu", [v], y.shape), node(g, "exp", [v], y.shape)]
    before = g.copy()
    after = optimize(g, fuse_chains=False, plan=False, validate=True)
    assert not after.nodes[0].attrs.get("relu")
    assert_same(before, after, rng_array((2, 3, 5, 6)), rng_array((4, 3, 3, 3)))


def test_simplify_keeps_rewrites_that_change_shape_or_dtype():
    g = Graph()
    x = g.add_input((3,), F32)
    xi = g.add_input((3,), np.int64)
    sq = g.add_input((3, 3), F32)
    ones23 = g.add_const(np.ones((2, 3), F32))
    ones64 = g.add_const(np.ones((3,), F64))
    outs = [
        node(g, "mul", [x, ones23], (2, 3)),  # x * 1 broadcast to (2, 3): not x
        node(g, "mul", [xi, 1.0], (3,), F64),  # int * 1.0 is a float
        node(g, "mul", [x, ones64], (3,), F64),  # promotes to float64
        node(g, "add", [x, 2.0], (3,)),
        node(g, "mul", [x, True], (3,)),
        node(g, "permute", [sq], (3, 3), attrs={"dims": (1, 0)}, aliases=(0,)),  # same shape
        node(g, "cast", [x], (3,), F64, attrs={"dtype": np.float64}),
    ]
    g.outputs = [node(g, "exp", [v], v.shape, v.dtype) for v in outs]
    _, after, changed = _apply(simplify, g)
    assert not changed


def test_simplify_keeps_copies_of_memory_written_later():
    # w_old = w * 1 before an optimizer step must stay a copy of the old weights
    g = Graph()
    x = g.add_input((4,), F32)
    w = g.add_captured((4,), F32, ref=rng_array((4,), seed=5), label="w")
    w_old = node(g, "mul", [w, 1.0], (4,))
    sgd(g, w, x, lr=1.0)
    g.outputs = [node(g, "exp", [w_old], (4,))]
    start = w.ref.copy()
    before, after, changed = _apply(simplify, g)
    assert not changed
    (out,) = run(after, np.ones(4, F32))
    np.testing.assert_allclose(out, np.exp(start), rtol=1e-6)
    w.ref[...] = start
    assert_same(before, after, np.ones(4, F32))


def test_simplify_never_replaces_arrays_by_live_scalars():
    g = Graph()
    x = g.add_input((1,), F64)
    lr = g.add_scalar(lambda: 0.25, F64, label="lr")  # a Python float at run time
    y = node(g, "mul", [lr, 1.0], (), F64)
    r = node(g, "reshape", [y], (1,), F64, attrs={"shape": (1,)}, aliases=(0,))
    g.outputs = [node(g, "add", [r, x], (1,), F64)]
    before, after, changed = _apply(simplify, g)
    assert not changed
    assert_same(before, after, np.ones(1))


def test_simplify_never_returns_the_callers_input():
    g = Graph()
    x = g.add_input((3,), F32)
    y = node(g, "neg", [node(g, "neg", [x], (3,))], (3,))
    g.outputs = [y]
    _, after, changed = _apply(simplify, g)
    assert not changed  # returning x itself would alias the caller's array


# -- pipeline --------------------------------------------------------------------------------------
def _mlp(seed: int = 0) -> Graph:
    g = Graph("mlp")
    x = g.add_input((4, 3), F32, label="x")
    w = g.add_captured((3, 5), F32, ref=rng_array((3, 5), seed=seed), label="w")
    b = g.add_const(rng_array((5,), seed=seed + 1))
    scale = g.add_const(np.array(2.0, F32))
    two = node(g, "mul", [scale, 1.0], ())  # foldable
    h = node(g, "add", [node(g, "matmul", [x, w], (4, 5)), b], (4, 5))
    h1 = node(g, "tanh", [node(g, "mul", [h, two], (4, 5))], (4, 5))
    h2 = node(g, "tanh", [node(g, "mul", [h, two], (4, 5))], (4, 5))  # a repeat
    y = node(g, "add", [node(g, "mul", [h1, 1], (4, 5)), h2], (4, 5))
    t = node(
        g,
        "permute",
        [node(g, "permute", [y], (5, 4), attrs={"dims": (1, 0)}, aliases=(0,))],
        (4, 5),
        attrs={"dims": (1, 0)},
        aliases=(0,),
    )
    node(g, "exp", [t], (4, 5))  # dead
    s = node(g, "sigmoid", [t], (4, 5))
    u = node(g, "add", [node(g, "mul", [s, s], (4, 5)), 1.0], (4, 5))
    g.outputs = [node(g, "sum", [u], (5,), attrs={"dim": (0,), "keepdim": False, "dtype": None})]
    return g


def test_optimize_reaches_a_fixed_point_and_computes_the_same():
    g = _mlp()
    before = g.copy()
    after = optimize(g, validate=True)
    assert after.op_counts() == {"matmul": 1, "add": 3, "mul": 2, "tanh": 1, "sigmoid": 1, "sum": 1}
    assert [fused_steps(grp) for grp in fusion_groups(after)] == [
        [("add", False), ("mul", True), ("tanh", True), ("add", True)],
        [("sigmoid", False), ("mul", True), ("add", True)],
    ]
    assert {n.out_slot for n in after.nodes[:5]} == {0} and len(after.meta["buffers"]) == 1
    check_plan(after)
    for pass_ in (simplify, fold, cse, dce, fuse, plan_memory):
        _, changed = run_pass(pass_, after, validate=True)
        assert not changed, pass_.__name__
    assert_same(before, after, rng_array((4, 3), seed=9), calls=3)


def test_validation_names_a_broken_pass(monkeypatch):
    def broken(graph: Graph) -> tuple[Graph, bool]:
        graph.nodes = graph.nodes[1:]  # drops a node others read
        return graph, True

    monkeypatch.setenv("EMBER_GRAPH_DEBUG", "1")
    with pytest.raises(IRError, match="after pass broken"):
        optimize(_mlp(), rewrites=(broken,))
    monkeypatch.setenv("EMBER_GRAPH_DEBUG", "0")
    optimize(_mlp(), rewrites=(broken,), fuse_chains=False, plan=False, validate=False)


def test_optimize_a_traced_function():
    import ember
    from ember.graph.trace import trace

    w = ember.tensor(rng_array((3, 4), seed=4))

    def f(x):
        y = (x @ w) * 1 + 0
        z = (y.relu() * 2.0 + 1.0).tanh()
        return (z + (y.relu() * 2.0 + 1.0).tanh()).sum(0)

    x = ember.tensor(rng_array((5, 3), seed=6))
    g, out = trace(f, x)
    before = g.copy()
    after = optimize(g, validate=True)
    assert len(after.nodes) < len(before.nodes)
    np.testing.assert_allclose(run(after, x.numpy(), planned=True)[0], out.numpy(), rtol=1e-6)
    assert_same(before, after, x.numpy())


def test_doctests_of_the_pass_modules():
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    names = ["", ".analysis", ".cse", ".dce", ".fold", ".simplify", ".fuse", ".memory", ".kernels"]
    names += [".chain"]
    for name in names:
        mod = importlib.import_module("ember.graph.passes" + name)
        for t in doctest.DocTestFinder().find(mod, mod.__name__):
            runner.run(t)
    assert runner.failures == 0 and runner.tries > 50

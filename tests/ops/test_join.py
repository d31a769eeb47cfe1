"""``cat`` always returns a fresh array; ``cat_or_view`` (the autograd engine's join of slice
gradients) returns a view exactly when its inputs are adjacent pieces of one buffer, and the
graph passes know that it may."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import ember
import ember.ops.join as join
from ember.graph.ir import Graph
from ember.graph.passes.analysis import VIEW_OPS, Storage, fresh_array_node
from ember.ops.join import adjacent_view, cat_or_view
from ember.ops.registry import REGISTRY

BUF = np.arange(2 * 3 * 12, dtype=np.float64).reshape(2, 3, 12)


def _t(a):
    return ember.Tensor._make(a, ember.device("cpu"))


# (name, pieces of BUF, dim, adjacent)
CASES = [
    ("last_dim", [BUF[..., :4], BUF[..., 4:8], BUF[..., 8:]], 2, True),
    ("uneven", [BUF[..., :1], BUF[..., 1:12]], 2, True),
    ("middle_dim", [BUF[:, :1], BUF[:, 1:]], 1, True),
    ("first_dim", [BUF[:1], BUF[1:]], 0, True),
    ("strided", [BUF[:, ::2, :5], BUF[:, ::2, 5:]], 2, True),
    ("reversed", [BUF[..., 6:], BUF[..., :6]], 2, False),
    ("gap", [BUF[..., :4], BUF[..., 5:9]], 2, False),
    ("other_dim", [BUF[..., :6], BUF[..., 6:]], 1, False),
    ("other_strides", [BUF[:, :, :4], BUF[:, ::2, 4:8]], 1, False),
    ("one_piece_alone", [BUF[..., :4], BUF[..., :4].copy()], 2, False),
    ("empty_piece", [BUF[..., :4], BUF[..., 4:4], BUF[..., 4:]], 2, False),
]


@pytest.mark.parametrize("name,pieces,dim,adjacent", CASES, ids=[c[0] for c in CASES])
def test_cat_or_view_is_a_view_exactly_for_adjacent_pieces(name, pieces, dim, adjacent):
    want = np.concatenate(pieces, axis=dim)
    out = cat_or_view([_t(p) for p in pieces], dim).numpy()
    np.testing.assert_array_equal(out, want)
    assert np.shares_memory(out, BUF) == adjacent
    assert (adjacent_view(pieces, dim) is not None) == adjacent
    fresh = ember.cat([_t(p) for p in pieces], dim=dim).numpy()  # never a view
    np.testing.assert_array_equal(fresh, want)
    assert not np.shares_memory(fresh, BUF) and fresh.base is None


def test_cat_or_view_declines_what_it_cannot_view():
    ro = np.broadcast_to(np.arange(4.0), (3, 4))
    assert adjacent_view([ro[:, :2], ro[:, 2:]], 1) is None  # read-only
    assert adjacent_view([BUF[..., :4]], 2) is None  # one piece
    assert adjacent_view([BUF[..., :4], BUF[..., 4:].astype(np.float32)], 2) is None
    assert adjacent_view([BUF[..., :4].tolist(), BUF[..., 4:]], 2) is None  # not arrays
    own = np.arange(12.0)
    assert adjacent_view([own, own], 0) is None  # no base
    mixed = cat_or_view([_t(BUF[..., :4]), _t(BUF[..., 4:].astype(np.float32))], 2)
    assert mixed.dtype == ember.float64  # NumPy's promotion, as concatenate does


def test_cat_or_view_gradients_by_finite_differences():
    rng = np.random.default_rng(0)
    x = ember.tensor(rng.standard_normal((3, 7)), requires_grad=True)
    y = ember.tensor(rng.standard_normal((3, 2)), requires_grad=True)

    def adjacent(x):
        return cat_or_view(list(x.split([2, 5], dim=1)), 1) ** 2

    def separate(x, y):
        return cat_or_view([x * 1.5, y], 1).tanh()

    for fn, args in ((adjacent, (x,)), (separate, (x, y))):
        assert ember.autograd.gradcheck(fn, args)
        assert ember.autograd.gradgradcheck(fn, args)


def test_graph_passes_treat_cat_or_view_as_a_view():
    assert "cat_or_view" in VIEW_OPS and "cat" not in VIEW_OPS
    g = Graph()
    x = g.add_input((2, 6), np.float32)
    a = g.add_node("slice", [x], {"dim": 1, "start": 0, "stop": 3}, (2, 3), np.float32)
    b = g.add_node("neg", [x], {}, (2, 6), np.float32)
    y = g.add_node("cat_or_view", [a, b], {"dim": 1}, (2, 9), np.float32)  # no aliases noted
    z = g.add_node("cat", [a, b], {"dim": 1}, (2, 9), np.float32)
    g.outputs = [y, z]
    s = Storage(g)
    assert s.same(y, x) and s.same(y, b) and not s.same(z, b)
    assert not fresh_array_node(y.producer) and fresh_array_node(z.producer)


def test_cat_or_view_lowers_to_onnx_concat():
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from ember.graph.trace import trace
    from ember.onnx.exporter import graph_to_onnx

    assert REGISTRY["cat_or_view"].onnx is not None
    x = np.arange(24.0, dtype=np.float32).reshape(2, 12)

    def fn(t):
        return cat_or_view(list(t.split([5, 7], dim=1)), 1) * 2.0

    graph, out = trace(fn, ember.tensor(x))
    assert [n.op for n in graph.nodes].count("cat_or_view") == 1
    model = graph_to_onnx(graph, opset=18)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {model.graph.input[0].name: x})
    np.testing.assert_array_equal(got, x * 2.0)


def test_doctests():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for t in finder.find(join, "ember.ops.join", globs={"ember": ember, "np": np}):
        t.globs.update(vars(join), ember=ember)
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0

"""The ``chain`` pass: linear layers on a few rows become one ``linear_chain`` node, and
only where that cannot change what the graph computes or returns."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn as nn
from ember.graph.ir import Graph, Sym
from ember.graph.passes import chain, optimize
from ember.kernels import runtime
from ember.kernels.gemv import MAX_ROWS
from ember.ops.nn.linear import CHAIN_ACTIVATIONS

from ..kernels.conftest import c_kernels  # noqa: F401  (the fixture)
from .passes_helpers import F32, F64, node, run, sgd


def _mlp(rows=1, dims=(6, 9, 7, 3), dtype=F32, relu=True, bias=True, act=("relu", {})):
    """A graph of linear layers (the activation ``act`` = (op, attrs) between them, when
    ``relu``); returns it with its parts."""
    g = Graph("mlp")
    x = g.add_input((rows, dims[0]), dtype, label="x")
    rng = np.random.default_rng(0)
    h, ws, bs, mids = x, [], [], []
    for i, (k, n) in enumerate(zip(dims, dims[1:])):
        w = g.add_const(rng.standard_normal((n, k)).astype(dtype), label=f"w{i}")
        b = g.add_const(rng.standard_normal(n).astype(dtype), label=f"b{i}") if bias else None
        ws.append(w)
        bs.append(b)
        h = node(g, "linear", [h, w, b], (rows, n), dtype)
        if relu and i < len(dims) - 2:
            mids.append(h)
            h = node(g, act[0], [h], (rows, n), dtype, attrs=act[1])
        mids.append(h)
    g.outputs = [h]
    return g, x, ws, bs, mids[:-1]


def _close(before, after):
    """``after`` computes what ``before`` does (the chain sums in another order)."""
    x = _x(before)
    np.testing.assert_allclose(run(after, x)[0], run(before, x)[0], rtol=1e-5, atol=1e-6)


def _ops(g):
    return [n.op for n in g.nodes]


def _x(g, seed=1):
    v = g.inputs[0]
    return np.random.default_rng(seed).standard_normal(v.shape).astype(v.dtype)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("bias", [True, False])
def test_a_chain_becomes_one_node(dtype, bias):
    g, x, ws, bs, _ = _mlp(dtype=dtype, bias=bias)
    before = g.copy()
    g, changed = chain(g)
    assert changed and _ops(g) == ["linear_chain"]
    (n,) = g.nodes
    assert n.attrs == {"acts": ("relu", "relu", "none")}
    assert n.inputs == [x, ws[0], bs[0], ws[1], bs[1], ws[2], bs[2]]
    assert g.outputs == [n.output]
    g.validate()
    np.testing.assert_allclose(run(g, _x(g))[0], run(before, _x(g))[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(set(CHAIN_ACTIVATIONS) - {"none"}))
def test_every_activation_between_layers(name):
    op, attrs = CHAIN_ACTIVATIONS[name]
    g, *_ = _mlp(act=(op, dict(attrs)))
    before = g.copy()
    g, changed = chain(g)
    assert changed and _ops(g) == ["linear_chain"]
    assert g.nodes[0].attrs == {"acts": (name, name, "none")}
    _close(before, g)


def test_other_ops_between_layers_end_the_chain():
    g, *_ = _mlp(act=("gelu", {"approximate": "sigmoid"}))  # no such variant: not an act
    assert not chain(g)[1]
    g, *_ = _mlp(act=("neg", {}))
    assert not chain(g)[1]


def test_layers_without_relu_and_a_trailing_relu():
    g, *_ = _mlp(relu=False)
    g, _ = chain(g)
    assert _ops(g) == ["linear_chain"] and g.nodes[0].attrs["acts"] == ("none",) * 3
    g, *_ = _mlp(dims=(5, 4, 3))
    last = g.outputs[0]
    g.outputs = [node(g, "relu", [last], last.shape)]
    before = g.copy()
    g, _ = chain(g)
    assert _ops(g) == ["linear_chain"] and g.nodes[0].attrs["acts"] == ("relu", "relu")
    _close(before, g)


def test_the_optimized_pipeline_runs_it_only_with_c_kernels():
    g, *_ = _mlp()
    assert _ops(optimize(g.copy(), c_regions=True)) == ["linear_chain"]
    assert "linear_chain" not in _ops(optimize(g.copy(), c_regions=False))


def test_a_value_read_elsewhere_ends_the_chain():
    g, x, ws, bs, mids = _mlp(dims=(6, 9, 7, 5, 3))  # mids: v1, relu(v1), v2, ... per layer
    g.outputs.append(node(g, "neg", [mids[1]], mids[1].shape))  # relu(v1) read twice
    before = g.copy()
    g, changed = chain(g)
    assert changed and _ops(g) == ["linear", "relu", "linear_chain", "neg"]
    c = g.nodes[2]
    assert c.inputs[0] is mids[1] and c.attrs["acts"] == ("relu", "relu", "none")
    g.validate()
    _close(before, g)


def test_a_returned_or_written_value_is_never_folded_in():
    g, *_, mids = _mlp(dims=(6, 9, 7))
    g.outputs.append(mids[0])  # the first layer's pre-activation is returned
    assert not chain(g)[1]
    g, x, ws, bs, mids = _mlp()
    sgd(g, ws[1], node(g, "mul", [ws[1], 0.5], ws[1].shape))  # layer 2's weight, in place
    assert not chain(g)[1]  # leaves layers 1 and 3 alone, one layer each


def test_too_many_rows_a_symbolic_batch_or_one_layer_stay():
    assert not chain(_mlp(rows=MAX_ROWS + 1)[0])[1]
    assert chain(_mlp(rows=MAX_ROWS)[0])[1]
    g = Graph()
    x = g.add_input((Sym("B"), 4), F32)
    w = g.add_const(np.ones((3, 4), F32))
    h = node(g, "linear", [x, w, None], (Sym("B"), 3))
    g.outputs = [node(g, "linear", [h, g.add_const(np.ones((2, 3), F32)), None], (Sym("B"), 2))]
    assert not chain(g)[1]
    assert not chain(_mlp(dims=(6, 4))[0])[1]  # one layer: no gain over BLAS


class MLP(nn.Module):
    def __init__(self, act=nn.ReLU):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 16), act(), nn.Linear(16, 8), act())
        self.head = nn.Linear(8, 3, bias=False)

    def forward(self, x):
        return self.head(self.net(x))


@pytest.mark.parametrize("shape", [(1, 12), (3, 12), (12,), (2, 2, 12)])
@pytest.mark.usefixtures("c_kernels")
def test_compiled_inference_matches_eager(pipeline, shape):
    ember.manual_seed(0)
    model = MLP().eval()
    x = ember.tensor(np.random.default_rng(2).standard_normal(shape).astype(F32))
    f = ember.compile(model)
    with ember.no_grad():
        want = model(x).numpy()
        for _ in range(2):
            np.testing.assert_allclose(f(x).numpy(), want, rtol=1e-5, atol=1e-6)
    chained = "linear_chain" in _ops(f.graph)
    assert chained == (pipeline == "passes")
    if chained:
        (n,) = [n for n in f.graph.nodes if n.op == "linear_chain"]
        assert n.attrs["acts"] == ("relu", "relu", "none")


@pytest.mark.parametrize(
    "act, name",
    [(nn.Tanh, "tanh"), (nn.GELU, "gelu"), (lambda: nn.GELU(approximate="tanh"), "gelu_tanh")]
    + [(nn.SiLU, "silu"), (nn.Sigmoid, "sigmoid")],
)
@pytest.mark.usefixtures("c_kernels")
def test_compiled_mlps_with_other_activations(act, name):
    from ember import config

    config.passes = None
    ember.manual_seed(0)
    model = MLP(act).eval()
    x = ember.tensor(np.random.default_rng(3).standard_normal((2, 12)).astype(F32) * 3)
    f = ember.compile(model)
    with ember.no_grad():
        np.testing.assert_allclose(f(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    (n,) = [n for n in f.graph.nodes if n.op == "linear_chain"]
    assert n.attrs["acts"] == (name, name, "none")


@pytest.mark.usefixtures("c_kernels")
def test_a_training_step_is_not_rewritten():
    from ember import config

    config.passes = None
    ember.manual_seed(0)
    model = MLP()
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    x = ember.tensor(np.ones((1, 12), F32))

    @ember.compile
    def step(x):
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        opt.step()
        return loss

    step(x)
    step(x)
    assert "linear" in _ops(step.graph) and "linear_chain" not in _ops(step.graph)


@pytest.mark.usefixtures("c_kernels")
def test_numpy_mode_keeps_the_layers():
    from ember import config

    config.passes = None
    model = MLP().eval()
    x = ember.ones(1, 12)
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        f = ember.compile(model)
        with ember.no_grad():
            f(x)
        assert "linear_chain" not in _ops(f.graph)
    finally:
        runtime.set_mode(before)


@pytest.mark.usefixtures("c_kernels")
def test_the_op_without_kernels_computes_the_same():
    """``linear_chain``'s NumPy path (no kernels) is the layers one by one."""
    from ember.ops.registry import REGISTRY

    g, *_ = _mlp(rows=2, dims=(5, 6, 4))
    x = _x(g)
    params = [v.data if v is not None else None for v in g.nodes[0].inputs[1:]]
    params += [v.data for v in g.nodes[2].inputs[1:]]
    fwd = REGISTRY["linear_chain"].forward
    fast = fwd(np, x, *params, acts=("relu", "none"))
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        slow = fwd(np, x, *params, acts=("relu", "none"))
    finally:
        runtime.set_mode(before)
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(slow, run(g, x)[0], rtol=1e-6)

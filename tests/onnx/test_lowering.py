"""Every op's ONNX lowering, checked on the op table: each row is traced (forward, and the
gradient for rows with ``grad=True``, which exercises the backward ops), lowered to ONNX, run
in ONNX Runtime and compared with ember's eager result. A last test checks that every op in
the registry declares a lowering."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import ember

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ember.graph.trace import GraphBreak, trace  # noqa: E402
from ember.onnx.exporter import graph_to_onnx  # noqa: E402

_OPS = Path(__file__).parent.parent / "ops"
ALL = []
for _m in pkgutil.iter_modules([str(_OPS)]):
    if _m.name.startswith("cases_"):
        ALL.extend(importlib.import_module(f"tests.ops.{_m.name}").CASES)

# rows whose eager result ONNX cannot reproduce, with the reason
SKIP = {}


def _flat(out):
    if isinstance(out, tuple | list):
        res = []
        for o in out:
            res.extend(_flat(o))
        return res
    return [out]


def _inputs(case):
    arrays = [np.array(a, order="C", copy=None) for a in case.inputs()]
    ts = []
    for spec, a in zip(case.args, arrays):
        t = ember.tensor(a)
        if spec.grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        ts.append(t)
    return arrays, ts


def _forward(case):
    def fn(*xs):
        return tuple(o for o in _flat(case.fn(ember, *xs)) if isinstance(o, ember.Tensor))

    return fn


def _gradient(case):
    def fn(*xs):
        outs = [
            o for o in _flat(case.fn(ember, *xs)) if isinstance(o, ember.Tensor) and o.requires_grad
        ]
        wrt = [x for x in xs if x.requires_grad]
        if not outs or not wrt:
            return ()
        rng = np.random.default_rng(3)
        loss = sum(
            (o * ember.tensor(rng.standard_normal(o.shape).astype(o.dtype.np))).sum() for o in outs
        )
        grads = ember.autograd.grad(loss, wrt, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return fn


def check_case(case, which="forward", opset=18):
    """Trace, lower, run in ONNX Runtime, compare; returns the model, or None when there was
    nothing to export (a graph break or no tensor output)."""
    arrays, ts = _inputs(case)
    fn = _forward(case) if which == "forward" else _gradient(case)
    try:
        graph, out = trace(fn, *ts)
    except GraphBreak:
        return None
    if not out or not graph.nodes:
        return None
    graph.outputs = list(graph.outputs)
    model = graph_to_onnx(graph, opset=opset)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {i.name: a for i, a in zip(model.graph.input, arrays)}
    used = {i.name for i in sess.get_inputs()}
    got = sess.run(None, {k: v for k, v in feeds.items() if k in used})
    for o, want in zip(got, out):
        want = want.detach().numpy()
        assert o.shape == want.shape, f"{case.name}: shape {o.shape} != {want.shape}"
        assert o.dtype == want.dtype, f"{case.name}: dtype {o.dtype} != {want.dtype}"
        if want.dtype.kind == "f":
            np.testing.assert_allclose(
                o, want, atol=max(case.atol, 1e-5), rtol=max(case.rtol, 1e-4), err_msg=case.name
            )
        else:
            np.testing.assert_array_equal(o, want, err_msg=case.name)
    return model


@pytest.mark.parametrize("case", ALL, ids=repr)
def test_forward_lowering(case):
    if case.name in SKIP:
        pytest.skip(SKIP[case.name])
    check_case(case, "forward")


GRAD = [c for c in ALL if c.grad]


@pytest.mark.parametrize("case", GRAD, ids=repr)
def test_gradient_lowering(case):
    if case.name in SKIP:
        pytest.skip(SKIP[case.name])
    check_case(case, "gradient")


FUSED = [c for c in ALL if c.name.startswith(("layer_norm", "sdpa_causal"))]


@pytest.mark.parametrize("opset", [16, 17])
@pytest.mark.parametrize("case", FUSED, ids=repr)
def test_fused_lowerings_at_each_opset(case, opset):
    """layer_norm lowers to one LayerNormalization node from opset 17 (which runtimes run as
    one kernel) and to its decomposition before; causal attention to the plain Softmax (no
    row is fully masked, so the safe softmax's guard nodes are not needed). Both agree with
    eager either way."""
    model = check_case(case, "forward", opset=opset)
    assert model is not None
    ops = {n.op_type for n in model.graph.node}
    if case.name.startswith("layer_norm"):
        assert ("LayerNormalization" in ops) == (opset >= 17), ops
        assert ("ReduceMean" in ops) == (opset < 17), ops
    else:
        assert "Softmax" in ops and not ops & {"Where", "ReduceMax", "Equal"}, ops


def test_every_registered_op_has_a_lowering():
    import ember.nn.functional  # noqa: F401  (registers the nn ops)
    import ember.optim  # noqa: F401
    from ember.ops.registry import REGISTRY

    missing = sorted(name for name, op in REGISTRY.items() if op.onnx is None)
    assert not missing, f"ops without an ONNX lowering: {missing}"


UPDATES = [
    ("sgd_update", 1, [0.1], dict(momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=True, maximize=False, first=False)),
    ("sgd_update", 0, [0.1], dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=True, first=False)),
    ("adam_update", 2, [3, 0.01], dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True, maximize=False)),
    ("adam_update", 3, [3, 0.01], dict(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1, decoupled=False, maximize=False)),
    ("rmsprop_update", 3, [2, 0.01], dict(alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.5, maximize=False)),
    ("adagrad_update", 1, [3, 0.1], dict(lr_decay=0.01, eps=1e-10, weight_decay=0.0, maximize=True)),
]  # fmt: skip


@pytest.mark.parametrize("name, n_state, extra, attrs", UPDATES, ids=lambda v: str(v)[:20])
def test_optimizer_update_lowerings(name, n_state, extra, attrs):
    """The in-place optimizer updates lower to the parameter's new value (a pure function)."""
    from ember.graph.ir import Graph
    from ember.ops.registry import REGISTRY

    op = REGISTRY[name]
    rng = np.random.default_rng(0)
    shape = (3, 4)
    g = Graph("update")
    values = [g.add_input(shape, np.float32, label=f"a{k}") for k in range(2 + n_state)]
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in values]
    for k in range(2, 2 + n_state):  # second moments and sums are non-negative
        arrays[k] = np.abs(arrays[k]) + (1.0 if name == "rmsprop_update" else 0.0)
    state = [None] * (3 - n_state) if name in ("adam_update", "rmsprop_update") else []
    inputs = (
        values[:2] + values[2:] + state if name != "sgd_update" else values + [None] * (1 - n_state)
    )
    g.outputs = [g.add_node(name, inputs + extra, attrs, shape, np.float32)]
    model = graph_to_onnx(g)
    feeds = {f"input_{k}": a for k, a in enumerate(arrays)}
    got = ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]
    tensors = [ember.tensor(a.copy()) for a in arrays]
    args = (
        tensors[:2] + tensors[2:] + state
        if name != "sgd_update"
        else tensors + [None] * (1 - n_state)
    )
    want = op(*args, *extra, **attrs).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "shape, act",
    [((2, 5), "relu"), ((5,), "relu"), ((1, 2, 5), "relu")]
    + [((1, 5), a) for a in ("tanh", "sigmoid", "silu", "gelu", "gelu_tanh")],
)
def test_linear_chain_lowers_to_its_layers(shape, act):
    """The node ember.compile makes of linear layers on a few rows exports as those layers."""
    from ember.graph.ir import Graph
    from ember.ops.registry import REGISTRY

    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    params = [
        rng.standard_normal((4, 5)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
        rng.standard_normal((3, 4)).astype(np.float32),
        None,
    ]
    g = Graph("chain")
    xv = g.add_input(shape, np.float32)
    pv = [None if p is None else g.add_const(p) for p in params]
    acts = ("relu", "none")
    g.outputs = [
        g.add_node("linear_chain", [xv, *pv], {"acts": acts}, shape[:-1] + (3,), np.float32)
    ]
    got = ort.InferenceSession(graph_to_onnx(g).SerializeToString()).run(None, {"input_0": x})[0]
    want = REGISTRY["linear_chain"].forward(np, x, *params, acts=acts)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

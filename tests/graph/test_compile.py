"""ember.compile: caching and guards, retracing, dynamic batch size, run_eagerly, generated
code and its errors, outputs, training-step details (grads, schedulers, buffers)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import ember
from ember import config
from ember.graph import GraphRuntimeError, RetraceWarning, compile

nn = ember.nn
HERE = __file__


def test_cache_hits_and_retrace_on_shape_change():
    f = compile(lambda x, y: (x * y).sum(1))
    a, b = ember.ones(2, 3), ember.full((2, 3), 2.0)
    assert f(a, b).tolist() == [6.0, 6.0]
    assert f(a, b).tolist() == [6.0, 6.0]
    info = f.cache_info()
    assert (info.traces, info.hits, info.misses, info.size) == (1, 1, 1, 1)
    assert f(ember.ones(2, 4), ember.ones(2, 4)).tolist() == [4.0, 4.0]  # new signature
    assert f(a, ember.ones(2, 3, dtype=ember.float64)).dtype == ember.float64  # new dtype
    info = f.cache_info()
    assert (info.traces, info.size) == (3, 3)
    assert f(a, b).tolist() == [6.0, 6.0] and f.cache_info().traces == 3
    assert len(f.graphs) == 3
    f.reset()
    assert f.cache_info() == (0, 0, 0, 0, 0, 0)


def test_python_scalars_are_guarded():
    f = compile(lambda x, k: x * k)
    assert f(ember.ones(2), 2.0).tolist() == [2.0, 2.0]
    assert f(ember.ones(2), 3.0).tolist() == [3.0, 3.0]
    assert f(ember.ones(2), 2.0).tolist() == [2.0, 2.0]
    assert f.cache_info().traces == 2


def test_retrace_warning_names_the_changing_argument():
    config.retrace_warning = 3
    f = compile(lambda data, scale: data * scale, dynamic=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for n in range(1, 6):
            f(ember.ones(2, n), 1.0)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RetraceWarning)]
    assert len(msgs) == 1
    assert "traced 3 times" in msgs[0] and "argument 'data' (shape (2, 2) -> (2, 3))" in msgs[0]
    assert f.cache_info().traces == 5


def test_dynamic_batch_keeps_one_graph():
    lin = nn.Linear(3, 2)

    def f(x):
        return lin(x).reshape(-1).relu() * 2

    cf = compile(f)
    with ember.no_grad():
        for b in (4, 7, 2, 9, 4):
            x = ember.randn(b, 3)
            np.testing.assert_allclose(cf(x).numpy(), f(x).numpy(), rtol=1e-6)
    info = cf.cache_info()
    assert info.traces == 2 and info.size == 1 and info.hits == 3
    assert cf.graph.meta.get("dynamic") and "B" in cf.code
    static = compile(f, dynamic=False)
    with ember.no_grad():
        for b in (4, 7, 2):
            static(ember.randn(b, 3))
    assert static.cache_info().traces == 3


def test_module_training_flag_is_guarded():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))
    cm = compile(model)
    x = ember.ones(8, 4)
    with ember.no_grad():
        model.eval()
        a = cm(x)
        np.testing.assert_allclose(a.numpy(), model(x).numpy())
        model.train()
        cm(x)
        model.eval()
        np.testing.assert_allclose(cm(x).numpy(), a.numpy())
    assert cm.cache_info().traces == 2 and cm.cache_info().hits == 1
    assert cm.module is model and cm.training is False  # attributes forward to the module


def test_replaced_parameter_is_guarded():
    lin = nn.Linear(2, 1)
    cm = compile(lin)
    x = ember.ones(1, 2)
    with ember.no_grad():
        cm(x)
        lin.weight = nn.Parameter(ember.zeros(1, 2))
        lin.bias = nn.Parameter(ember.zeros(1))
        assert cm(x).tolist() == [[0.0]]
    assert cm.cache_info().traces == 2


def test_fast_path_checks_flags_and_parameters_on_every_call():
    # the guards run on the fast path too (a repeated call skips the signature key): a
    # flag flipped, or a parameter replaced, after several fast calls is still noticed
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Dropout(0.5))
    cm = compile(model)
    x = ember.ones(8, 4)
    with ember.no_grad():
        model.eval()
        for _ in range(3):
            a = cm(x)
        assert cm._fast is not None
        model.train()
        assert (cm(x).numpy() == 0).any()  # dropout: a new trace, not the eval graph
        assert cm.cache_info().traces == 2
        model.eval()
        for _ in range(3):
            np.testing.assert_allclose(cm(x).numpy(), a.numpy())
        model[0].weight = nn.Parameter(ember.zeros(4, 4))
        relu_bias = np.maximum(model[0].bias.detach().numpy(), 0)
        np.testing.assert_allclose(cm(x).numpy(), np.broadcast_to(relu_bias, (8, 4)))
    assert cm.cache_info().traces == 3


def _changed_after_fast_calls(cm, net, x, change):
    """Three calls (the fast path from the third), ``change()``, then one more call: it must
    give what ``net`` gives now."""
    with ember.no_grad():
        for _ in range(3):
            cm(x)
        change()
        np.testing.assert_allclose(cm(x).numpy(), net(x).numpy(), rtol=1e-6)


def test_a_replaced_submodule_is_guarded():
    # the old layer keeps its parameters in their slots: only the submodule slot changes
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.body(x))

    net, x = Net(), ember.ones(2, 3)
    cm = compile(net)
    # a container's slot, then an attribute's
    _changed_after_fast_calls(cm, net, x, lambda: net.body.__setitem__(0, nn.Linear(3, 4)))
    _changed_after_fast_calls(cm, net, x, lambda: setattr(net, "head", nn.Linear(4, 2)))
    assert cm.cache_info().traces == 3


def test_a_container_that_replaces_its_table_is_guarded():
    # ModuleList.insert builds a new _modules dict and leaves the old one as it was
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3), nn.Linear(3, 3)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    net = Stack()
    cm = compile(net)
    _changed_after_fast_calls(
        cm, net, ember.ones(2, 3), lambda: net.layers.insert(0, nn.Linear(3, 3))
    )
    assert cm.cache_info().traces == 2


def test_run_eagerly_reaches_a_breakpoint(monkeypatch):
    seen = []

    def step(x):
        y = x * 2
        marker = y + 1  # the breakpoint line
        return marker

    line = step.__code__.co_firstlineno + 2
    cf = compile(step)
    cf(ember.ones(1))  # traced
    cf(ember.ones(1))  # compiled: the Python body does not run

    def tracer(frame, event, arg):
        if frame.f_code is step.__code__ and event == "line" and frame.f_lineno == line:
            seen.append(frame.f_locals["y"].tolist())
        return tracer

    sys.settrace(tracer)
    try:
        cf(ember.ones(1))
        assert seen == []
        config.run_eagerly = True
        cf(ember.ones(1))
        config.run_eagerly = False
        monkeypatch.setenv("EMBER_EAGER", "1")
        cf(ember.ones(1))
        monkeypatch.setenv("EMBER_EAGER", "0")
        cf(ember.ones(1))
    finally:
        sys.settrace(None)
    assert seen == [[2.0], [2.0]]
    assert cf.cache_info().eager_calls == 2


def test_generated_code_and_runtime_errors_name_the_user_line():
    w = ember.ones(3, 2)

    @compile
    def f(x):
        h = x * 2
        return h @ w  # the matmul line

    assert f(ember.ones(1, 3)).tolist() == [[6.0, 6.0]]
    assert f.code.startswith("def _graph(") and "matmul" in f.code
    with ember.no_grad():
        w.data = ember.ones(4, 2)  # a captured tensor changed shape behind the graph's back
    with pytest.raises(GraphRuntimeError) as info:
        f(ember.ones(1, 3))
    msg = str(info.value)
    assert "in compiled graph f" in msg and "matmul" in msg
    assert f"{HERE}:" in msg and "return h @ w  # the matmul line" in msg


def test_output_structure_is_rebuilt():
    w = ember.ones(2)

    @compile
    def f(x):
        return {"a": x * 2, "pair": (x + 1, [x.sum(), 7]), "w": w, "x": x, "name": "ok"}

    x = ember.ones(2)
    f(x)
    out = f(x)
    assert f.cache_info().hits == 1
    assert out["a"].tolist() == [2.0, 2.0] and out["pair"][0].tolist() == [2.0, 2.0]
    assert out["pair"][1][0].item() == 2.0 and out["pair"][1][1] == 7
    assert out["w"] is w and out["x"] is x and out["name"] == "ok"


def test_outputs_that_require_grad_run_eagerly():
    lin = nn.Linear(2, 1)
    cm = compile(lin)
    with pytest.warns(UserWarning, match="outputs require grad"):
        y = cm(ember.ones(1, 2))
    y.sum().backward()  # eager result: autograd still works
    assert lin.weight.grad is not None
    cm(ember.ones(1, 2))
    assert cm.cache_info().eager_calls == 1


def test_inplace_update_of_an_input_and_a_buffer():
    count = ember.zeros(())

    @compile
    def f(x):
        with ember.no_grad():
            x.mul_(2)
            count.add_(1)
        return x + 0

    x = ember.ones(2)
    for _ in range(3):
        f(x)
    assert x.tolist() == [8.0, 8.0] and count.item() == 3.0


def test_gradient_accumulation_across_calls_matches_eager():
    def run(compiled):
        ember.manual_seed(1)
        lin = nn.Linear(3, 1)

        def fb(x):
            loss = lin(x).pow(2).sum()
            loss.backward()
            return loss

        f = compile(fb) if compiled else fb
        for i in range(4):
            f(ember.full((2, 3), float(i)))
        return lin.weight.grad.numpy().copy(), f

    (eager, _), (comp, cf) = run(False), run(True)
    np.testing.assert_allclose(comp, eager, rtol=1e-6)
    assert cf.cache_info().traces == 2  # first call (no grad yet), then accumulation


def test_lr_scheduler_changes_reach_the_compiled_step():
    def run(compiled):
        ember.manual_seed(2)
        lin = nn.Linear(3, 2)
        opt = ember.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
        sched = ember.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)

        def step(x):
            opt.zero_grad()
            loss = lin(x).square().mean()
            loss.backward()
            opt.step()
            return loss

        f = compile(step) if compiled else step
        x = ember.randn(4, 3)
        losses = []
        for _ in range(8):
            losses.append(f(x).item())
            sched.step()
        return losses, lin.weight.numpy(force=True).copy(), f

    (l1, w1, _), (l2, w2, cf) = run(False), run(True)
    np.testing.assert_allclose(l2, l1, rtol=1e-6)
    np.testing.assert_allclose(w2, w1, rtol=1e-6)
    assert cf.cache_info().traces == 2  # momentum buffer: first step, then steady state


def test_decorator_forms_and_methods():
    @compile(fullgraph=True)
    def g(x):
        return x + 1

    class Model:
        def __init__(self):
            self.k = 3.0

        @compile
        def run(self, x):
            return x * self.k

    assert g(ember.zeros(1)).tolist() == [1.0]
    m = Model()
    assert m.run(ember.ones(1)).tolist() == [3.0]
    assert m.run(ember.ones(1)).tolist() == [3.0]
    assert compile(g) is g


def test_nested_compiled_functions_inline():
    inner = compile(lambda x: x * 3)

    @compile
    def outer(x):
        return inner(x) + 1

    assert outer(ember.ones(1)).tolist() == [4.0]
    assert outer(ember.ones(1)).tolist() == [4.0]
    assert [n.op for n in outer.graph.nodes] == ["mul", "add"]
    assert inner.cache_info().traces == 0


def test_training_step_with_varying_batch_size_matches_eager():
    def run(compiled):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
        opt = ember.optim.AdamW(model.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        f = compile(step) if compiled else step
        rng = np.random.default_rng(0)
        losses = []
        for b in [8, 5, 8, 3, 7, 8, 2]:
            x = ember.tensor(rng.standard_normal((b, 6)).astype(np.float32))
            losses.append(f(x, ember.tensor(rng.integers(0, 3, b))).item())
        return losses, f

    (eager, _), (comp, f) = run(False), run(True)
    np.testing.assert_allclose(comp, eager, rtol=1e-6)
    info = f.cache_info()
    assert info.traces == 2 and info.size == 1 and f.graph.meta["dynamic"]


@pytest.mark.parametrize("pattern", ["compiled optimizer step", "module.zero_grad"])
def test_other_training_loop_shapes_match_eager(pattern):
    def run(compiled):
        ember.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)
        x, y = ember.randn(4, 6), ember.tensor([0, 1, 2, 1])
        if pattern == "compiled optimizer step":  # backward eagerly, the update compiled
            step = compile(opt.step) if compiled else opt.step
            for _ in range(6):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                step()
            return model[0].weight.numpy(force=True).copy(), step

        def train(x, y):
            model.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        f = compile(train) if compiled else train
        for _ in range(6):
            f(x, y)
        return model[0].weight.numpy(force=True).copy(), f

    (eager, _), (comp, f) = run(False), run(True)
    np.testing.assert_array_equal(comp, eager)
    assert f.cache_info().traces <= 2 and f.cache_info().hits >= 4

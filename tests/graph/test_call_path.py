"""The per-call path of ``ember.compile``: the fast signature check of the last hit (every
guard it skips building a key for must still send a changed call to a retrace or to the right
graph), arguments sharing one array, ``linear`` written into planned buffers, the kernel
preparation before a trace, and the passes' early fixed point."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import ember
from ember import config
from ember.graph import compile
from ember.graph.ir import Graph
from ember.graph.kernels import supports_out
from ember.graph.passes import optimize

nn = ember.nn


def _hits_then(f, *args):
    """Call ``f`` twice on ``args`` (a trace, then a hit that installs the fast path)."""
    f(*args)
    f(*args)
    assert f._fast is not None
    return f.cache_info()


def test_fast_path_hits_and_counts():
    f = compile(lambda x, y: x * y + 1)
    a, b = ember.full((2, 3), 2.0), ember.full((2, 3), 3.0)
    info = _hits_then(f, a, b)
    assert (info.traces, info.hits) == (1, 1)
    for _ in range(3):
        assert f(a, b).tolist() == [[7.0] * 3] * 2
    assert f.cache_info().hits == 4 and f.cache_info().traces == 1


@pytest.mark.parametrize(
    "change",
    ["shape", "dtype", "requires_grad", "grad_mode", "alias", "not_a_tensor", "kwargs", "arity"],
)
def test_fast_path_sends_every_changed_signature_to_the_full_path(change):
    f = compile(lambda x, y=None: x * 2 if y is None else x * 2 + y)
    a, b = ember.ones(2, 3), ember.full((2, 3), 5.0)
    with ember.no_grad():
        _hits_then(f, a, b)
        if change == "shape":
            out, want = f(ember.ones(4, 3), ember.ones(4, 3)), np.full((4, 3), 3.0)
        elif change == "dtype":
            x = ember.ones(2, 3, dtype=ember.float64)
            out, want = f(x, b), np.full((2, 3), 7.0)
            assert out.dtype == ember.float64
        elif change == "requires_grad":
            out, want = f(ember.ones(2, 3, requires_grad=True), b), np.full((2, 3), 7.0)
        elif change == "grad_mode":
            with ember.enable_grad():
                out, want = f(a, b), np.full((2, 3), 7.0)
        elif change == "alias":
            out, want = f(b, b), np.full((2, 3), 15.0)
        elif change == "not_a_tensor":
            out, want = f(a, 1.0), np.full((2, 3), 3.0)
        elif change == "kwargs":
            out, want = f(a, y=b), np.full((2, 3), 7.0)
        else:
            out, want = f(a), np.full((2, 3), 2.0)
    np.testing.assert_array_equal(out.numpy(), want)
    assert f.cache_info().traces == 2


def test_fast_path_runs_the_guards():
    lin = nn.Linear(2, 1)
    cm = compile(lin)
    x = ember.ones(1, 2)
    with ember.no_grad():
        _hits_then(cm, x)
        lin.weight = nn.Parameter(ember.zeros(1, 2))
        lin.bias = nn.Parameter(ember.full((1,), 4.0))
        assert cm(x).tolist() == [[4.0]]
    assert cm.cache_info().traces == 2


class _Flagged(nn.Module):
    def forward(self, x):
        return x * 2 if self.training else x * 3


def test_fast_path_picks_the_graph_the_lookup_would_pick():
    m = _Flagged()
    cm = compile(m)
    x = ember.ones(2)
    with ember.no_grad():
        m.train()
        _hits_then(cm, x)  # graph A (training), first under the key
        m.eval()
        assert cm(x).tolist() == [3.0, 3.0]  # graph B, second under the same key
        assert cm(x).tolist() == [3.0, 3.0]
        m.train()
        assert cm(x).tolist() == [2.0, 2.0]  # back to A: its guards pass again
        m.eval()
        assert cm(x).tolist() == [3.0, 3.0]
    assert cm.cache_info().traces == 2 and cm.cache_info().hits == 4


def test_fast_path_is_dropped_on_reset_and_eager_switches(monkeypatch):
    f = compile(lambda x: x + 1)
    x = ember.ones(2)
    _hits_then(f, x)
    f.reset()
    assert f._fast is None
    _hits_then(f, x)
    config.run_eagerly = True
    try:
        f(x)
    finally:
        config.run_eagerly = False
    monkeypatch.setenv("EMBER_EAGER", "1")
    f(x)
    assert f.cache_info().eager_calls == 2


@pytest.mark.parametrize("args", ["aab", "aba", "abb", "aaa"])
def test_arguments_sharing_an_array_are_one_input(args):
    f = compile(lambda x, y, z: x * 2 + y * 3 + z * 5)
    t = {"a": ember.ones(3), "b": ember.full((3,), 10.0)}
    call = [t[c] for c in args]
    want = (call[0] * 2 + call[1] * 3 + call[2] * 5).numpy()
    with ember.no_grad():
        for _ in range(3):  # trace, full-path hit, another hit
            np.testing.assert_array_equal(f(*call).numpy(), want)
    assert f.cache_info().traces == 1


def test_shared_arguments_with_a_changing_batch_size():
    f = compile(lambda x, y, z: x.sum(0) * 2 + y.sum(0) * 3 + z * 5)
    b = ember.full((3,), 10.0)
    with ember.no_grad():
        for n in (2, 3, 4, 5):
            a = ember.ones(n, 3)
            np.testing.assert_array_equal(f(a, a, b).numpy(), np.full(3, 5.0 * n + 50))
    assert f.cache_info().traces == 2


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 5)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [ember.float32, ember.float64])
def test_linear_into_planned_buffers_matches_eager(shape, bias, dtype, monkeypatch):
    config.passes = None
    # these few rows would become one linear_chain node (test_passes_chain.py tests that)
    monkeypatch.setattr(importlib.import_module("ember.graph.passes.chain"), "MAX_ROWS", 0)
    model = nn.Sequential(nn.Linear(5, 4, bias=bias), nn.ReLU(), nn.Linear(4, 3)).to(dtype)
    model.eval()
    cm = compile(model)
    xs = [ember.randn(*shape, dtype=dtype) for _ in range(3)]
    with ember.no_grad():
        outs = [cm(x) for x in xs]
        wants = [model(x).numpy() for x in xs]
    for out, want in zip(outs, wants):  # earlier results are not overwritten by later calls
        np.testing.assert_array_equal(out.numpy(), want)
    if len(shape) > 2:
        assert "_linear_into(" in cm.code
    else:
        assert "xp.matmul(" in cm.code and ".T, out=_buf[" in cm.code


def test_linear_with_mixed_dtypes_keeps_the_forward():
    config.passes = None
    g = Graph("mixed")
    x = g.add_input((2, 3), np.float64)
    w = g.add_input((4, 3), np.float32)
    y = g.add_node("linear", [x, w, None], {}, (2, 4), np.float64)
    assert supports_out(y.producer) is False
    g2 = g.copy()
    x2 = g2.inputs[0]
    w2 = g2.add_input((4, 3), np.float64)
    y2 = g2.add_node("linear", [x2, w2, None], {}, (2, 4), np.float64)
    assert supports_out(y2.producer) is True


def test_optimize_stops_at_the_first_quiet_cycle():
    calls = []

    def make(name, changes):
        left = [changes]

        def pass_(g):
            calls.append(name)
            if left[0]:
                left[0] -= 1
                return g, True
            return g, False

        pass_.__name__ = name
        return pass_

    g = Graph("empty")
    optimize(g, rewrites=(make("a", 2), make("b", 0), make("c", 0)), fuse_chains=False, plan=False)
    # a changes twice; after its quiet run every pass has seen the final graph once
    assert calls == ["a", "b", "c", "a", "b", "c", "a"]
    calls.clear()
    optimize(g, rewrites=(make("a", 0), make("b", 1), make("c", 0)), fuse_chains=False, plan=False)
    assert calls == ["a", "b", "c", "a", "b"]


def test_fast_path_on_a_dynamic_graph():
    lin = nn.Linear(3, 2)
    cm = compile(lin)
    with ember.no_grad():
        for n in (2, 3, 4, 4, 4, 5, 4):
            x = ember.randn(n, 3)
            np.testing.assert_allclose(cm(x).numpy(), lin(x).numpy(), rtol=1e-6, atol=1e-6)
            if n == 4:
                assert cm._fast is not None and cm._fast.entry.dyn is not None
    assert cm.cache_info().traces == 2 and cm.cache_info().size == 1

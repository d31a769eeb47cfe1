"""CompiledFunction.profile / ember.graph.profile: per-node timing of a compiled graph."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.graph.profile import GraphProfile, NodeTime, profile


def _mlp_step():
    rng = np.random.default_rng(0)
    model = ember.nn.Sequential(ember.nn.Linear(16, 32), ember.nn.ReLU(), ember.nn.Linear(32, 4))
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    x = ember.tensor(rng.standard_normal((8, 16)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 4, 8))

    @ember.compile
    def step(x, y):
        opt.zero_grad()
        loss = ember.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step, opt, x, y


def test_profile_charges_time_to_each_op_and_user_line():
    f = ember.compile(lambda a, w: (a @ w).relu().sum())
    a, w = ember.ones(64, 32), ember.ones(32, 16)
    p = f.profile(a, w, runs=4)
    assert isinstance(p, GraphProfile) and p.runs == 4
    ops = p.by_op()
    assert {"matmul", "sum"} <= set(ops) and all(s >= 0 for s in ops.values())
    assert p.nodes == sorted(p.nodes, key=lambda n: -n.seconds)
    assert p.total >= p.graph > 0
    assert p.graph == pytest.approx(sum(n.seconds for n in p.nodes))
    mm = next(n for n in p.nodes if n.op == "matmul")
    assert "test_profile.py" in mm.source and "matmul(" in mm.node
    text = p.table(top=len(p.nodes))  # (every op: which are slowest varies by the run)
    assert "4 calls" in text and "matmul" in text


def test_profiled_calls_really_run_and_the_function_is_left_as_it_was():
    step, opt, x, y = _mlp_step()
    step(x, y)
    prog = step._last.program
    plain, code = prog._fn, prog.code
    state = opt.state[opt.param_groups[0]["params"][0]]
    before = int(state["step"])  # (a tensor the steps update in place)
    step.profile(x, y, runs=3, warmup=2)
    assert int(state["step"]) - before == 5  # two warm-up and three timed training steps
    assert prog._fn is plain and prog.code == code
    hits = step.cache_info().hits
    step(x, y)
    assert step.cache_info().hits == hits + 1


def test_fused_c_regions_are_labelled_with_their_ops():
    f = ember.compile(lambda a: ((a * 2 + 1).tanh() * a).sum())
    p = f.profile(ember.ones(100, 100), runs=2)
    if f.c_code is None:  # no compiler, or NumPy mode: the ops run one by one
        assert "tanh" in p.by_op()
        return
    region = next(n for n in p.nodes if n.op == "C region")
    assert region.node.startswith("C region") and "tanh" in region.node


def test_profile_refuses_a_function_that_runs_eagerly(monkeypatch):
    f = ember.compile(lambda a: a * 2)
    monkeypatch.setattr(ember.config, "run_eagerly", True)
    with pytest.raises(ValueError, match="does not run a compiled graph"):
        f.profile(ember.ones(3))
    monkeypatch.setattr(ember.config, "run_eagerly", False)
    with pytest.raises(ValueError, match="runs must be >= 1"):
        profile(f, ember.ones(3), runs=0)


def test_graph_profile_sums_per_op():
    p = GraphProfile(1, 2.0, 1.5, [NodeTime("add", "a", "", 1.0), NodeTime("add", "b", "", 0.5)])
    assert p.by_op() == {"add": 1.5}
    assert "100.0%" in str(p)


def test_doctests_of_the_profile_module():
    import doctest

    import ember.graph.profile as mod

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for t in doctest.DocTestFinder().find(mod, mod.__name__):
        runner.run(t)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted >= 5

"""Compiled training steps update each parameter group with ONE grouped node
(``adam_group_update``, ``sgd_group_update``, ``rmsprop_group_update``) that runs the eager
step's fused kernel: compiled and eager training give the same bits, with schedulers, groups,
missing gradients, state_dict round trips and the NumPy fallback."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F
from ember import kernels
from ember.graph.ir import IRError
from ember.graph.trace import Tracer
from ember.kernels import runtime
from ember.ops.optim import mutated_positions
from tests.optim.test_optimizers import CONFIGS, IDS

from .models import GPT

GROUPED = {
    "SGD": "sgd_group_update",
    "Adam": "adam_group_update",
    "AdamW": "adam_group_update",
    "RMSprop": "rmsprop_group_update",
}


def _mlp(seed: int = 0) -> nn.Module:
    ember.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5)
    )


def _gpt(seed: int = 0) -> nn.Module:
    ember.manual_seed(seed)
    return GPT()


def _data(model: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    if model == "gpt":
        toks = rng.integers(0, 11, (3, 9))
        return ember.tensor(toks[:, :8]), ember.tensor(toks[:, 1:].reshape(-1))
    x = rng.standard_normal((7, 12)).astype(np.float32)
    return ember.tensor(x), ember.tensor(rng.integers(0, 5, 7))


def _train(model, make_opt, compiled, steps=4, sched=None, data="mlp", after=None):
    """Train; returns (losses, parameters, optimizer state arrays, the compiled function)."""
    opt = make_opt(model)
    lr_sched = sched(opt) if sched is not None else None
    x, y = _data(data)

    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y)
        loss.backward()
        opt.step()
        return loss

    fn = ember.compile(step) if compiled else step
    losses = []
    for i in range(steps):
        losses.append(fn(x, y).item())
        if lr_sched is not None:
            lr_sched.step()
        if after is not None:
            after(i, model, opt)
    params = [p.detach().numpy().copy() for p in model.parameters()]
    return losses, params, _state(opt), fn


def _state(opt) -> dict:
    return {
        i: {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in s.items()}
        for i, s in opt.state_dict()["state"].items()
    }


def _same(a, b) -> None:
    la, pa, sa, _ = a
    lb, pb, sb, _ = b
    assert la == lb
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        np.testing.assert_array_equal(x, y)
    assert sa.keys() == sb.keys()
    for i in sa:
        assert sa[i].keys() == sb[i].keys()
        for k in sa[i]:
            np.testing.assert_array_equal(sa[i][k], sb[i][k], err_msg=f"state {i} {k}")


def _update_ops(fn) -> dict:
    counts = fn.graphs[-1].op_counts()
    return {k: v for k, v in counts.items() if k.endswith("_update")}


# -- every optimizer configuration: compiled == eager, bit for bit ----------------------------
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_compiled_training_matches_eager_bits(name, kwargs, pipeline):
    def make(m):
        return getattr(ember.optim, name)(m.parameters(), **kwargs)

    eager = _train(_mlp(), make, False)
    compiled = _train(_mlp(), make, True)
    _same(eager, compiled)
    fn = compiled[3]
    assert len(fn.graphs) == (2 if name == "SGD" and kwargs.get("momentum") else 1)
    ops = _update_ops(fn)
    if name in GROUPED:  # one grouped node for the group's 6 parameters
        assert ops == {GROUPED[name]: 1}
    else:  # Adagrad has no fused kernel: one per-parameter op each
        assert ops == {"adagrad_update": 6}


def test_gpt_adamw_weight_decay_with_a_scheduler(pipeline):
    """A small GPT with AdamW (weight decay), the lr changing between calls (a graph input)."""

    def make(m):
        return ember.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.1, betas=(0.8, 0.95))

    def sched(opt):
        return ember.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 / (1 + i))

    eager = _train(_gpt(), make, False, steps=5, sched=sched, data="gpt")
    compiled = _train(_gpt(), make, True, steps=5, sched=sched, data="gpt")
    _same(eager, compiled)
    fn = compiled[3]
    assert len(fn.graphs) == 1 and _update_ops(fn) == {"adam_group_update": 1}
    node = next(n for n in fn.graphs[-1].nodes if n.op == "adam_group_update")
    n = node.attrs["n"]
    assert n == len(list(_gpt().parameters())) == 30
    assert set(node.attrs) == {
        "n",
        "amsgrad",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "decoupled",
        "maximize",
    }  # fmt: skip  (lr and the step counts are inputs, never attributes)
    assert [v.label for v in node.inputs[4 * n :]] == ["step"] * n + ["lr"]
    assert node.mutates == tuple(range(n)) + tuple(range(2 * n, 4 * n))


@pytest.mark.parametrize(
    "name, groups",
    [
        ("Adam", [{"lr": 0.02, "amsgrad": True}, {"lr": 0.005, "betas": (0.5, 0.9)}]),
        ("AdamW", [{"weight_decay": 0.3}, {"weight_decay": 0.0, "maximize": True}]),
        ("SGD", [{"momentum": 0.9, "nesterov": True}, {"momentum": 0.0, "weight_decay": 0.1}]),
        ("RMSprop", [{"centered": True, "momentum": 0.5}, {"alpha": 0.5}]),
    ],
)
def test_param_groups_with_their_own_options(name, groups, pipeline):
    def make(m):
        ps = list(m.parameters())
        return getattr(ember.optim, name)(
            [{"params": ps[:4], **groups[0]}, {"params": ps[4:], **groups[1]}], lr=0.01
        )

    sched = lambda opt: ember.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.3)  # noqa: E731
    eager = _train(_mlp(), make, False, steps=5, sched=sched)
    compiled = _train(_mlp(), make, True, steps=5, sched=sched)
    _same(eager, compiled)
    assert _update_ops(compiled[3]) == {GROUPED[name]: 2}


@pytest.mark.parametrize("name", ["Adam", "SGD", "RMSprop"])
def test_parameters_without_gradients_are_skipped(name):
    """A parameter that never gets a gradient is skipped (no state, no update), as eagerly."""

    class WithSpare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = _mlp()
            self.spare = nn.Linear(3, 3)  # registered, trained by the optimizer, never used

        def forward(self, x):
            return self.net(x)

    build = WithSpare

    def make(m):
        kw = {"momentum": 0.9} if name != "Adam" else {"weight_decay": 0.1}
        return getattr(ember.optim, name)(m.parameters(), lr=0.01, **kw)

    eager = _train(build(), make, False)
    compiled = _train(build(), make, True)
    _same(eager, compiled)
    node = next(n for n in compiled[3].graphs[-1].nodes if n.op.endswith("_group_update"))
    assert node.attrs["n"] == 6  # of 8 parameters
    assert len(compiled[2]) == 6  # no state for the spare layer


def test_a_gradient_that_appears_later_retraces():
    """The spare layer joins on the third call (guarded: the compiled step retraces)."""
    x, y = _data("mlp")

    def run(compiled):
        model = _mlp()
        spare = nn.Linear(12, 5)
        opt = ember.optim.Adam(list(model.parameters()) + list(spare.parameters()), lr=0.01)

        def step(x, y, use_spare):
            opt.zero_grad()
            out = model(x) + (spare(x) if use_spare else 0.0)
            loss = F.cross_entropy(out, y)
            loss.backward()
            opt.step()
            return loss

        fn = ember.compile(step) if compiled else step
        for i in range(5):
            fn(x, y, i >= 2)
        return [p.detach().numpy() for p in opt.param_groups[0]["params"]], _state(opt)

    (pa, sa), (pb, sb) = run(False), run(True)
    for a, b in zip(pa, pb):
        np.testing.assert_array_equal(a, b)
    assert sa.keys() == sb.keys() and len(sa) == 8
    for i in sa:
        for k in sa[i]:
            np.testing.assert_array_equal(sa[i][k], sb[i][k])


@pytest.mark.parametrize("name", ["Adam", "SGD", "RMSprop"])
def test_state_dict_round_trip_after_compiled_steps(name):
    """Roll parameters and optimizer state back to a checkpoint taken between compiled steps:
    the compiled step must go on with the loaded state (a retrace), exactly as eagerly."""

    def make(m):
        kw = {"momentum": 0.9} if name != "Adam" else {"amsgrad": True}
        return getattr(ember.optim, name)(m.parameters(), lr=0.01, **kw)

    saved = {}

    def after(i, model, opt):
        if i == 1:
            saved["opt"] = copy.deepcopy(opt.state_dict())
            saved["params"] = [p.detach().numpy().copy() for p in model.parameters()]
        if i == 3:
            with ember.no_grad():
                for p, a in zip(model.parameters(), saved["params"]):
                    p.copy_(ember.tensor(a))
            opt.load_state_dict(saved["opt"])

    eager = _train(_mlp(), make, False, steps=7, after=after)
    compiled = _train(_mlp(), make, True, steps=7, after=after)
    _same(eager, compiled)
    assert compiled[0][2:4] == compiled[0][4:6]  # the rolled-back steps repeat their losses
    # and a fresh optimizer loaded from the compiled run's state continues like the eager one
    for run in (eager, compiled):
        assert all(float(s["step"]) == 5 for s in run[2].values() if "step" in s)


@pytest.fixture
def numpy_mode():
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        yield
    finally:
        runtime.set_mode(before)


def test_numpy_fallback_trains_like_eager(numpy_mode):
    """EMBER_KERNELS=numpy: the grouped node runs the per-parameter NumPy updates."""

    def make(m):
        return ember.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.1, amsgrad=True)

    one = [np.ones(2, np.float32) for _ in range(4)]
    assert kernels.adam_step(one[:1], one[1:2], one[2:3], one[3:], None, 1, lr=0.1) is False
    np_eager = _train(_mlp(), make, False)
    np_compiled = _train(_mlp(), make, True)
    _same(np_eager, np_compiled)
    assert _update_ops(np_compiled[3]) == {"adam_group_update": 1}


def _updates_only(name, kwargs, compiled, steps=5):
    """``steps`` updates from fixed gradients (no forward, whose kernels differ by mode)."""
    rng = np.random.default_rng(2)
    ps = [
        ember.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True)
        for s in [(30, 7), (7,), (0, 3), (5000,)]
    ]
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in ps] for _ in range(steps)]
    opt = getattr(ember.optim, name)(ps, lr=0.01, **kwargs)
    fn = ember.compile(opt.step) if compiled else opt.step
    for gs in grads:
        for p, g in zip(ps, gs):
            p.grad = ember.tensor(g)
        fn()
    return [p.detach().numpy().copy() for p in ps], _state(opt)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("AdamW", {"weight_decay": 0.1, "amsgrad": True}),
        ("Adam", {"weight_decay": 0.1, "maximize": True}),
        ("SGD", {"momentum": 0.9, "dampening": 0.2, "weight_decay": 0.1}),
        ("RMSprop", {"momentum": 0.5, "centered": True, "weight_decay": 0.1}),
    ],
)
def test_numpy_fallback_gives_the_kernel_bits(name, kwargs):
    """The compiled NumPy fallback and the eager C kernel agree to the last bit."""
    if not kernels.available():
        pytest.skip("the C kernels cannot be built here")
    c_params, c_state = _updates_only(name, kwargs, compiled=False)
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        np_params, np_state = _updates_only(name, kwargs, compiled=True)
    finally:
        runtime.set_mode(before)
    for a, b in zip(c_params, np_params):
        np.testing.assert_array_equal(a, b)
    for i in c_state:
        for k in c_state[i]:
            np.testing.assert_array_equal(c_state[i][k], np_state[i][k])


def test_compiled_step_calls_the_kernel_once_per_group(monkeypatch):
    if not kernels.available() or ember.get_default_device().type != "cpu":
        pytest.skip("the C kernels cannot be built here, or the model would be on the GPU")
    calls = []
    real = kernels.adam_step

    def spy(params, *args, **kw):
        ok = real(params, *args, **kw)
        calls.append((len(params), ok))
        return ok

    monkeypatch.setattr(kernels, "adam_step", spy)
    _, _, _, fn = _train(_gpt(), lambda m: ember.optim.Adam(m.parameters()), True, data="gpt")
    assert calls == [(30, True)] * 4  # the trace, then three replays


def test_mixed_dtypes_and_non_contiguous_parameters_fall_back():
    """The kernel declines (two dtypes; a Fortran-ordered parameter): each parameter runs its
    own update inside the grouped node, as the eager step's per-parameter path."""
    rng = np.random.default_rng(1)
    arrays = [
        rng.standard_normal((4, 3)).astype(np.float32),
        rng.standard_normal(3).astype(np.float64),
        np.asfortranarray(rng.standard_normal((3, 5)).astype(np.float32)),
    ]
    x = ember.from_numpy(rng.standard_normal((6, 4)).astype(np.float32))  # on the CPU, as ps

    def run(compiled, name):
        ps = [ember.from_numpy(a.copy(order="K")).requires_grad_() for a in arrays]
        assert not ps[2].detach().numpy().flags.c_contiguous
        kw = {"momentum": 0.9} if name != "Adam" else {"weight_decay": 0.1}
        opt = getattr(ember.optim, name)(ps, lr=0.01, **kw)

        def step(x):
            opt.zero_grad()
            h = (x @ ps[0]).to(ember.float64) + ps[1]
            loss = (h.to(ember.float32) @ ps[2]).pow(2).mean()
            loss.backward()
            opt.step()
            return loss

        fn = ember.compile(step) if compiled else step
        for _ in range(4):
            fn(x)
        return [p.detach().numpy().copy() for p in ps], fn

    for name in ("Adam", "SGD", "RMSprop"):
        (a, _), (b, fn) = run(False, name), run(True, name)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
        assert _update_ops(fn) == {GROUPED[name]: 1}


# -- the traced node ---------------------------------------------------------------------------
def test_trace_records_one_node_per_group_with_the_right_writes():
    model = _mlp()
    ps = list(model.parameters())
    opt = ember.optim.Adam(
        [{"params": ps[:2]}, {"params": ps[2:], "amsgrad": True, "lr": 0.1}], lr=0.01
    )
    x, y = _data("mlp")
    tracer = Tracer("step")
    tracer.add_input(x, "x")
    with tracer:
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    g = tracer.finish(loss)
    g.validate()
    nodes = [n for n in g.nodes if n.op == "adam_group_update"]
    assert [n.attrs["n"] for n in nodes] == [2, 4] and not any(n.pure for n in nodes)
    assert nodes[0].mutates == (0, 1, 4, 5, 6, 7)  # params, exp_avg, exp_avg_sq
    assert nodes[1].mutates == tuple(range(4)) + tuple(range(8, 20))  # ... and max_exp_avg_sq
    assert [v.label for v in g.scalars] == ["lr"] + ["step"] * 2 + ["lr"] + ["step"] * 4
    captured = {id(v.ref) for v in g.captured}
    for p in ps:
        assert id(p) in captured
        for t in opt.state[p].values():
            assert t is opt.state[p]["step"] or id(t) in captured
    # a node that leaves out one of its writes is invalid
    nodes[0].mutates = nodes[0].mutates[:-1]
    with pytest.raises(IRError, match="writes inputs"):
        g.validate()


def test_single_parameter_groups_keep_the_per_parameter_op():
    w = ember.tensor([1.0, 2.0], requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.1, momentum=0.9)

    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        return loss

    fn = ember.compile(step)
    for _ in range(3):
        fn(ember.ones(2))
    assert _update_ops(fn) == {"sgd_update": 1}


def test_mutated_positions_rules():
    assert mutated_positions("adam_group_update", 3 * 5 + 1, {"n": 3}) == (
        0,
        1,
        2,
        6,
        7,
        8,
        9,
        10,
        11,
    )
    assert mutated_positions("adam_group_update", 2 * 6 + 1, {"n": 2}) == (0, 1, 4, 5, 6, 7, 8, 9)
    assert mutated_positions("sgd_group_update", 2 * 2 + 1, {"n": 2}) == (0, 1)
    assert mutated_positions("sgd_group_update", 2 * 3 + 1, {"n": 2}) == (0, 1, 4, 5)
    assert mutated_positions("rmsprop_group_update", 1 * 6 + 1, {"n": 1}) == (0, 2, 3, 4)
    assert mutated_positions("adam_update", 7, {}) == (0, 2, 3, 4)
    assert mutated_positions("matmul", 2, {}) == ()

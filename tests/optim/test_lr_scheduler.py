"""Every LR scheduler against PyTorch: the same optimizer (two parameter groups), 40 steps,
the same learning rates (and momenta / betas) at every step, exactly."""

from __future__ import annotations

import warnings

import pytest

import ember
from ember.optim import lr_scheduler as lrs

torch = pytest.importorskip("torch")

STEPS = 40


def _optimizer(m, kind="sgd"):
    params = [m.zeros(2, requires_grad=True), m.zeros(3, requires_grad=True)]
    groups = [{"params": [params[0]]}, {"params": [params[1]], "lr": 0.05}]
    if kind == "adam":
        return m.optim.Adam(groups, lr=0.1, betas=(0.9, 0.99))
    return m.optim.SGD(groups, lr=0.1, momentum=0.9)


def _build(m, spec, kind):
    opt = _optimizer(m, kind)
    mod = m.optim.lr_scheduler
    return opt, spec(mod, opt)


def _observe(opt, sched):
    out = [tuple(sched.get_last_lr())]
    for g in opt.param_groups:
        out.append(g["lr"])
        out.append(g.get("momentum"))
        out.append(g.get("betas"))
    return out


def _trajectory(m, spec, kind, steps=STEPS):
    opt, sched = _build(m, spec, kind)
    seen = [_observe(opt, sched)]
    for _ in range(steps):
        opt.step()
        sched.step()
        seen.append(_observe(opt, sched))
    return seen


SCHEDULERS = {
    "StepLR": lambda s, o: s.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5, 9, 30], gamma=0.3),
    "ExponentialLR": lambda s, o: s.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda s, o: s.CosineAnnealingLR(o, T_max=10, eta_min=0.01),
    "CosineAnnealingLR-long": lambda s, o: s.CosineAnnealingLR(o, T_max=7),
    "LambdaLR": lambda s, o: s.LambdaLR(o, lambda e: 0.95**e),
    "LambdaLR-per-group": lambda s, o: s.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: 0.9**e]),
    "MultiplicativeLR": lambda s, o: s.MultiplicativeLR(o, lambda e: 0.97),
    "LinearLR-up": lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=7),
    "LinearLR-down": lambda s, o: s.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=10),
    "ConstantLR": lambda s, o: s.ConstantLR(o, factor=0.5, total_iters=4),
    "PolynomialLR": lambda s, o: s.PolynomialLR(o, total_iters=12, power=2.0),
    "OneCycleLR-cos": lambda s, o: s.OneCycleLR(o, max_lr=1.0, total_steps=STEPS + 1),
    "OneCycleLR-linear-3phase": lambda s, o: s.OneCycleLR(
        o, max_lr=[1.0, 0.5], total_steps=STEPS, anneal_strategy="linear", three_phase=True
    ),
    "OneCycleLR-cos-3phase": lambda s, o: s.OneCycleLR(
        o, max_lr=0.3, epochs=4, steps_per_epoch=10, pct_start=0.4, three_phase=True
    ),
    "OneCycleLR-no-momentum": lambda s, o: s.OneCycleLR(
        o,
        max_lr=0.3,
        total_steps=STEPS,
        cycle_momentum=False,
        div_factor=10.0,
        final_div_factor=100.0,
    ),
    "OneCycleLR-momenta": lambda s, o: s.OneCycleLR(
        o, max_lr=0.3, total_steps=STEPS, base_momentum=[0.8, 0.7], max_momentum=0.99
    ),
    "CyclicLR-triangular": lambda s, o: s.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=4),
    "CyclicLR-triangular2": lambda s, o: s.CyclicLR(
        o, base_lr=[0.01, 0.02], max_lr=0.1, step_size_up=3, step_size_down=5, mode="triangular2"
    ),
    "CyclicLR-exp_range": lambda s, o: s.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.95
    ),
    "CyclicLR-scale_fn": lambda s, o: s.CyclicLR(
        o, base_lr=0.01, max_lr=0.1, step_size_up=5, scale_fn=lambda x: 0.5**x, scale_mode="cycle"
    ),
    "CosineAnnealingWarmRestarts": lambda s, o: s.CosineAnnealingWarmRestarts(
        o, T_0=5, T_mult=2, eta_min=0.001
    ),
    "CosineAnnealingWarmRestarts-mult1": lambda s, o: s.CosineAnnealingWarmRestarts(o, T_0=6),
    "SequentialLR": lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, 0.1, total_iters=5), s.ExponentialLR(o, 0.9)], milestones=[5]
    ),
    "SequentialLR-3": lambda s, o: s.SequentialLR(
        o,
        [s.ConstantLR(o, 0.5, 3), s.StepLR(o, 2, 0.5), s.CosineAnnealingLR(o, 10)],
        milestones=[4, 15],
    ),
    "ChainedScheduler": lambda s, o: s.ChainedScheduler(
        [s.ConstantLR(o, 0.5, 4), s.ExponentialLR(o, 0.9)]
    ),
}
ADAM_TOO = {"OneCycleLR-cos", "OneCycleLR-linear-3phase", "CyclicLR-triangular", "StepLR"}
CASES = [(n, "sgd") for n in SCHEDULERS] + [(n, "adam") for n in sorted(ADAM_TOO)]


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_matches_torch(name, kind):
    spec = SCHEDULERS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's own deprecation notes
        expected = _trajectory(torch, spec, kind)
    got = _trajectory(ember, spec, kind)
    for step, (e, t) in enumerate(zip(got, expected)):
        assert e == t, f"step {step}: ember {e} != torch {t}"
    lrs_seen = {row[1] for row in got}
    assert len(lrs_seen) > 1  # the schedule does change the rate


PLATEAU = [
    {},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"patience": 1, "threshold": 0.1, "threshold_mode": "abs", "cooldown": 2},
    {"patience": 0, "min_lr": [0.02, 0.001], "factor": 0.3},
    {"mode": "max", "threshold_mode": "abs", "patience": 1, "min_lr": 0.01, "eps": 1e-3},
]
METRICS = [1.0, 0.9, 0.95, 0.95, 0.96, 0.94, 0.7, 0.7, 0.71, 0.72, 0.73, 0.5, 0.5] * 3


@pytest.mark.parametrize("kwargs", PLATEAU, ids=[str(k) for k in PLATEAU])
def test_reduce_on_plateau_matches_torch(kwargs):
    runs = []
    for m in (torch, ember):
        opt = _optimizer(m)
        sched = m.optim.lr_scheduler.ReduceLROnPlateau(opt, **kwargs)
        seen = []
        for metric in METRICS:
            opt.step()
            sched.step(metric)
            seen.append((tuple(sched.get_last_lr()), sched.num_bad_epochs, sched.best))
        runs.append(seen)
    assert runs[1] == runs[0]
    assert len({s[0] for s in runs[1]}) > 1


@pytest.mark.parametrize(
    "name",
    [
        "StepLR",
        "MultiStepLR",
        "CosineAnnealingLR",
        "OneCycleLR-cos",
        "CyclicLR-triangular2",
        "CosineAnnealingWarmRestarts",
        "SequentialLR",
        "ChainedScheduler",
        "LambdaLR",
    ],
)
def test_state_dict_round_trip(name, tmp_path):
    """k steps, save optimizer + scheduler through ember.save, load into fresh ones, n more
    steps: the same rates as an uninterrupted run."""
    spec = SCHEDULERS[name]
    full = _trajectory(ember, spec, "sgd", steps=30)
    opt, sched = _build(ember, spec, "sgd")
    for _ in range(12):
        opt.step()
        sched.step()
    path = tmp_path / "sched.safetensors"
    ember.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, path)
    opt2, sched2 = _build(ember, spec, "sgd")
    state = ember.load(path)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    resumed = [_observe(opt2, sched2)]
    for _ in range(18):
        opt2.step()
        sched2.step()
        resumed.append(_observe(opt2, sched2))
    assert resumed == full[12:]


def test_plateau_state_dict_round_trip():
    opt = _optimizer(ember)
    sched = ember.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for metric in METRICS[:8]:
        sched.step(metric)
    sd = sched.state_dict()
    assert sd["best"] == 0.7
    opt2 = _optimizer(ember)
    opt2.load_state_dict(opt.state_dict())
    sched2 = ember.optim.lr_scheduler.ReduceLROnPlateau(opt2)
    sched2.load_state_dict(sd)
    for metric in METRICS[8:]:
        sched.step(metric)
        sched2.step(metric)
        assert sched.get_last_lr() == sched2.get_last_lr()


@pytest.mark.parametrize("name", ["StepLR", "OneCycleLR-cos", "CyclicLR-triangular", "LambdaLR"])
def test_state_dict_keys_match_torch(name):
    spec = SCHEDULERS[name]
    _, e = _build(ember, spec, "sgd")
    _, t = _build(torch, spec, "sgd")
    assert set(e.state_dict()) == set(t.state_dict())


@pytest.mark.parametrize(
    "name,epochs",
    [
        ("StepLR", [3, 7, 1]),
        ("MultiStepLR", [6, 2]),
        ("ExponentialLR", [4, 9]),
        ("CosineAnnealingLR", [3, 12]),
        ("LinearLR-up", [2, 9]),
        ("ConstantLR", [1, 5]),
        ("PolynomialLR", [5, 20]),
        ("CosineAnnealingWarmRestarts", [3, 13.5, 40]),
    ],
)
def test_step_with_epoch_uses_closed_form(name, epochs):
    spec = SCHEDULERS[name]
    results = []
    for m in (torch, ember):
        opt, sched = _build(m, spec, "sgd")
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for e in epochs:
                opt.step()
                sched.step(e)
                seen.append(tuple(sched.get_last_lr()))
        results.append(seen)
    assert results[1] == results[0]


def test_warns_when_stepped_before_optimizer():
    opt = _optimizer(ember)
    sched = ember.optim.lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step"):
        sched.step()
    opt = _optimizer(ember)
    sched = ember.optim.lr_scheduler.StepLR(opt, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.step()
        sched.step()


def test_get_lr_outside_step_warns():
    opt = _optimizer(ember)
    sched = ember.optim.lr_scheduler.StepLR(opt, 2)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


def test_errors():
    opt = _optimizer(ember)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lrs.StepLR(object(), 2)
    with pytest.raises(KeyError, match="initial_lr"):
        lrs.StepLR(opt, 2, last_epoch=3)
    with pytest.raises(ValueError, match="between 0 and 1"):
        lrs.ConstantLR(opt, factor=2.0)
    with pytest.raises(ValueError, match="total_steps OR"):
        lrs.OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="anneal_strategy"):
        lrs.OneCycleLR(opt, max_lr=1.0, total_steps=5, anneal_strategy="exp")
    with pytest.raises(ValueError, match="same length as optimizer.param_groups"):
        lrs.OneCycleLR(opt, max_lr=[1.0], total_steps=5)
    one = lrs.OneCycleLR(_optimizer(ember), max_lr=1.0, total_steps=2)
    one.optimizer.step()
    one.step()
    one.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        one.step()
    plain = ember.optim.Adagrad([ember.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="momentum or beta1"):
        lrs.OneCycleLR(plain, max_lr=1.0, total_steps=5)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        lrs.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="unknown"):
        lrs.ReduceLROnPlateau(opt, mode="best")
    with pytest.raises(ValueError, match="number of milestone"):
        lrs.SequentialLR(opt, [lrs.StepLR(opt, 2)], milestones=[3])
    other = _optimizer(ember)
    with pytest.raises(ValueError, match="same optimizer"):
        lrs.ChainedScheduler([lrs.StepLR(opt, 2), lrs.StepLR(other, 2)])
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        lrs.SequentialLR(opt, [lrs.StepLR(opt, 2), lrs.ReduceLROnPlateau(opt)], milestones=[3])

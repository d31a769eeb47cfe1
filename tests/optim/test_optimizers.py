"""Every optimizer and option combination against PyTorch: same problem, same start, 20 steps,
same losses and parameters (float32 to rtol 1e-4; float64 to rtol 1e-9)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

import ember
from tests.optim.helpers import const, leaf, loss_fn, problem, run

torch = pytest.importorskip("torch")

CONFIGS = [
    ("SGD", {"lr": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.05, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "maximize": True}),
    ("SGD", {"lr": 0.02, "momentum": 0.8, "weight_decay": 0.1, "nesterov": True, "maximize": True}),
    ("Adam", {"lr": 0.01}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "maximize": True}),
    ("Adam", {"lr": 0.01, "betas": (0.3, 0.9), "eps": 1e-6}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05, "maximize": True}),
    ("AdamW", {"lr": 0.01}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.2, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "maximize": True, "betas": (0.6, 0.95)}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.0}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "alpha": 0.3}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1, "maximize": True}),
    ("Adagrad", {"lr": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5}),
    ("Adagrad", {"lr": 0.1, "eps": 1e-3, "maximize": True}),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CONFIGS]
TOL = {np.float32: {"rtol": 1e-4, "atol": 1e-6}, np.float64: {"rtol": 1e-9, "atol": 1e-12}}


def _compare(name, kwargs, dtype, groups=None, steps=20):
    arrays = problem(dtype)
    e_losses, e_hist = run(ember, name, kwargs, arrays, steps, groups)
    t_losses, t_hist = run(torch, name, kwargs, arrays, steps, groups)
    tol = TOL[dtype]
    np.testing.assert_allclose(e_losses, t_losses, **tol)
    for step, (e_params, t_params) in enumerate(zip(e_hist, t_hist)):
        for e, t in zip(e_params, t_params):
            assert e.dtype == t.dtype
            np.testing.assert_allclose(e, t, **tol, err_msg=f"after step {step + 1}")
    # the problem actually moved the parameters
    assert not np.allclose(e_hist[-1][0], arrays[2])


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_matches_torch(name, kwargs, dtype):
    _compare(name, kwargs, dtype)


@pytest.mark.parametrize(
    "name,kwargs,groups",
    [
        ("SGD", {"lr": 0.05, "momentum": 0.9}, [{"lr": 0.01}, {"momentum": 0.0}]),
        ("Adam", {"lr": 0.01}, [{"betas": (0.5, 0.9)}, {"lr": 0.05, "amsgrad": True}]),
        ("AdamW", {"lr": 0.01}, [{"weight_decay": 0.5}, {"weight_decay": 0.0}]),
        ("RMSprop", {"lr": 0.01}, [{"centered": True}, {"momentum": 0.9}]),
        ("Adagrad", {"lr": 0.1}, [{"lr_decay": 0.1}, {"weight_decay": 0.2}]),
    ],
    ids=["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"],
)
def test_param_groups_match_torch(name, kwargs, groups):
    _compare(name, kwargs, np.float64, groups)


def test_param_groups_take_defaults():
    a, b = ember.zeros(2, requires_grad=True), ember.zeros(2, requires_grad=True)
    opt = ember.optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5}], lr=0.1, amsgrad=True)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["amsgrad"] is True
    assert len(opt.param_groups[1]["params"]) == 1 and opt.param_groups[1]["params"][0] is b
    t = torch.optim.Adam([{"params": [torch.zeros(2, requires_grad=True)]}], lr=0.1)
    assert set(opt.param_groups[0]) == set(t.param_groups[0])


def test_add_param_group_matches_torch():
    arrays = problem(np.float64)
    results = []
    for m in (ember, torch):
        x, y = const(m, arrays[0]), const(m, arrays[1])
        w, b = leaf(m, arrays[2]), leaf(m, arrays[3])
        opt = m.optim.Adam([w], lr=0.01)
        losses = []
        for i in range(10):
            if i == 4:
                opt.add_param_group({"params": [b], "lr": 0.05})
            opt.zero_grad()
            loss = loss_fn(x, y, w, b)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        results.append((losses, w.detach().numpy().copy(), b.detach().numpy().copy()))
    for e, t in zip(results[0], results[1]):
        np.testing.assert_allclose(e, t, rtol=1e-10)


def test_params_without_grad_are_skipped():
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, requires_grad=True)
    opt = ember.optim.Adam([a, b], lr=0.1)
    (a * 2).sum().backward()
    opt.step()
    assert b.detach().tolist() == [1.0, 1.0, 1.0]
    assert b not in opt.state and len(opt.state) == 1
    assert opt.state_dict()["state"].keys() == {0}


def test_step_updates_in_place_and_bumps_version():
    w = ember.randn(4, 3, requires_grad=True)
    arr = w._data
    for opt_cls in (ember.optim.SGD, ember.optim.Adam, ember.optim.RMSprop, ember.optim.Adagrad):
        opt = opt_cls([w], lr=0.1)
        before = arr.copy()
        (w * w).sum().backward()
        version = w._vc[0]
        opt.step()
        opt.zero_grad()
        assert w._data is arr
        assert not np.array_equal(before, arr)
        assert w._vc[0] == version + 1


def test_step_after_saving_for_backward_is_detected():
    w = ember.randn(3, requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.1)
    (w * w).sum().backward()
    y = (w * w).sum()  # saves w for backward
    opt.step()
    with pytest.raises(RuntimeError):
        y.backward()


def test_closure_returns_loss_and_runs_with_grad():
    arrays = problem(np.float64)
    x, y = const(ember, arrays[0]), const(ember, arrays[1])
    w, b = leaf(ember, arrays[2]), leaf(ember, arrays[3])
    opt = ember.optim.SGD([w, b], lr=0.05)

    def closure():
        opt.zero_grad()
        loss = loss_fn(x, y, w, b)
        loss.backward()
        return loss

    with ember.no_grad():
        first = opt.step(closure)
    assert first is not None and first.item() > opt.step(closure).item()


def test_zero_grad():
    w = ember.ones(2, requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.1)
    (w * 3).sum().backward()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and w.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert w.grad is None


def test_an_empty_first_group_is_allowed_like_torch():
    # (creating an optimizer warms its kernels from its first parameter, whichever group)
    w = ember.nn.Parameter(ember.ones(2))
    opt = ember.optim.SGD([{"params": []}, {"params": [w]}], lr=0.1)
    assert [len(g["params"]) for g in opt.param_groups] == [0, 1]
    w.grad = ember.ones(2)
    opt.step()
    np.testing.assert_allclose(w.numpy(force=True), [0.9, 0.9], rtol=1e-6)


def test_float16_parameters():
    arrays = problem(np.float32)
    ref_losses, ref_hist = run(ember, "Adam", {"lr": 0.01}, arrays, steps=10)
    half = [a.astype(np.float16) for a in arrays]
    losses, hist = run(ember, "Adam", {"lr": 0.01}, half, steps=10)
    assert hist[-1][0].dtype == np.float16
    np.testing.assert_allclose(hist[-1][0], ref_hist[-1][0], rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name,kwargs", CONFIGS[1::2], ids=IDS[1::2])
def test_state_dict_round_trip_continues_identically(name, kwargs, tmp_path):
    """k steps, save the optimizer state, load it into a fresh optimizer (over copies of the
    parameters), n more steps: identical, bit for bit, to 2k uninterrupted steps."""
    arrays = problem(np.float32)
    x, y = const(ember, arrays[0]), const(ember, arrays[1])

    def train(params, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            loss_fn(x, y, *params).backward()
            opt.step()

    params = [leaf(ember, arrays[2]), leaf(ember, arrays[3])]
    opt = getattr(ember.optim, name)(params, **kwargs)
    train(params, opt, 5)
    path = tmp_path / "opt.safetensors"
    ember.save(opt.state_dict(), path)
    resumed_params = [leaf(ember, p.detach().numpy()) for p in params]
    resumed = getattr(ember.optim, name)(resumed_params, lr=123.0)
    resumed.load_state_dict(ember.load(path))
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    train(params, opt, 5)
    train(resumed_params, resumed, 5)
    for a, b in zip(params, resumed_params):
        assert a.detach().numpy().tobytes() == b.detach().numpy().tobytes()


@pytest.mark.parametrize("name,kwargs", CONFIGS[::3], ids=IDS[::3])
def test_state_dict_structure_matches_torch(name, kwargs):
    arrays = problem(np.float32)
    dicts = []
    for m in (ember, torch):
        x, y = const(m, arrays[0]), const(m, arrays[1])
        params = [leaf(m, arrays[2]), leaf(m, arrays[3])]
        opt = getattr(m.optim, name)(params, **kwargs)
        for _ in range(3):
            opt.zero_grad()
            loss_fn(x, y, *params).backward()
            opt.step()
        dicts.append(opt.state_dict())
    e, t = dicts
    assert e["state"].keys() == t["state"].keys()
    for k in t["state"]:
        assert e["state"][k].keys() == t["state"][k].keys()
        for key, tv in t["state"][k].items():
            ev = e["state"][k][key]
            assert isinstance(ev, ember.Tensor)
            assert ev.shape == tuple(tv.shape)
            np.testing.assert_allclose(ev.numpy(), tv.numpy(), rtol=1e-4, atol=1e-7)
    assert len(e["param_groups"]) == len(t["param_groups"])
    for eg, tg in zip(e["param_groups"], t["param_groups"]):
        assert eg == tg


def test_load_state_dict_copies_and_casts():
    w = ember.randn(3, requires_grad=True)
    opt = ember.optim.Adam([w], lr=0.1)
    (w * w).sum().backward()
    opt.step()
    sd = opt.state_dict()
    w64 = ember.randn(3, dtype=ember.float64, requires_grad=True)
    other = ember.optim.Adam([w64], lr=0.1)
    other.load_state_dict(sd)
    state = other.state[w64]
    assert state["exp_avg"].dtype == ember.float64
    assert state["step"].dtype == ember.float32  # step is kept as saved
    assert state["exp_avg"]._data is not sd["state"][0]["exp_avg"]._data
    # the loaded dict is not aliased: stepping the new optimizer leaves it unchanged
    saved = copy.deepcopy(sd["state"][0]["exp_avg"].numpy())
    w64.grad = ember.ones(3, dtype=ember.float64)
    other.step()
    other.param_groups[0]["lr"] = 5.0
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"].numpy(), saved)
    assert sd["param_groups"][0]["lr"] == 0.1


def test_load_state_dict_errors():
    a, b = ember.zeros(2, requires_grad=True), ember.zeros(2, requires_grad=True)
    opt = ember.optim.SGD([a, b], lr=0.1)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": []})
    one = ember.optim.SGD([a], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        opt.load_state_dict(one)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"lr": 1})


def test_constructor_errors():
    w = ember.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        ember.optim.SGD([w], lr=-1)
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        ember.optim.SGD([w], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        ember.optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Invalid epsilon"):
        ember.optim.RMSprop([w], eps=-1.0)
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        ember.optim.Adagrad([w], initial_accumulator_value=-1.0)
    with pytest.raises(ValueError, match="empty parameter list"):
        ember.optim.Adam([])
    with pytest.raises(TypeError, match="got a Tensor"):
        ember.optim.Adam(w)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        ember.optim.Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="non-leaf"):
        ember.optim.Adam([w * 2])
    with pytest.raises(ValueError, match="duplicate parameters"):
        ember.optim.Adam([w, w])
    with pytest.raises(ValueError, match="more than one parameter group"):
        ember.optim.Adam([{"params": [w]}, {"params": [w]}])
    with pytest.raises(TypeError, match="ordered collections"):
        ember.optim.Adam({w})


def test_named_parameters():
    w = ember.zeros(2, requires_grad=True)
    opt = ember.optim.SGD([("weight", w)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight"]
    assert opt.param_groups[0]["params"][0] is w
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight"]


def test_repr_lists_groups():
    w = ember.zeros(2, requires_grad=True)
    text = repr(ember.optim.Adam([w], lr=0.5))
    assert text.startswith("Adam (") and "lr: 0.5" in text


def test_scratch_buffers_are_reused(monkeypatch):
    from ember import kernels

    monkeypatch.setattr(kernels, "adam_step", lambda *a, **k: False)  # the per-parameter path
    ws = [ember.randn(n, requires_grad=True) for n in (10, 1000, 10)]
    opt = ember.optim.Adam(ws, lr=0.1)
    for _ in range(2):
        sum((w * w).sum() for w in ws).backward()
        opt.step()
    assert len(opt._scratch) == 1  # one float32 buffer, sized for the largest parameter
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        opt.zero_grad()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_update_rule_with_identical_gradients(name, kwargs, dtype):
    """The same gradient sequence fed to both optimizers isolates the update rule: float64
    agrees to rounding (rtol 1e-12), float32 to a few ulps."""
    rng = np.random.default_rng(1)
    start = rng.standard_normal((4, 6)).astype(dtype)
    grads = [rng.standard_normal((4, 6)).astype(dtype) for _ in range(20)]
    grads[3][0, 0] = 0.0  # exact zeros take the same path too
    finals = []
    for m in (ember, torch):
        p = leaf(m, start)
        opt = getattr(m.optim, name)([p], **kwargs)
        for g in grads:
            p.grad = const(m, g)
            opt.step()
        finals.append(p.detach().numpy().copy())
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 2e-6, "atol": 1e-7}
    np.testing.assert_allclose(finals[0], finals[1], **tol)

"""Every op in the table, checked against NumPy, PyTorch and finite differences.

Rows live in ``cases_<family>.py`` beside this file (``CASES`` lists); see ``optable.py``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.autograd import gradcheck, gradgradcheck

try:
    import torch
except ImportError:  # the oracle is optional; the test extra installs it
    torch = None

# EMBER_TEST_DEVICE=cuda runs the ember side of every row on that device (GPU checks)
DEVICE = ember.device(os.environ.get("EMBER_TEST_DEVICE", "cpu"))
_HERE = Path(__file__).parent
ALL = []
for _m in pkgutil.iter_modules([str(_HERE)]):
    if _m.name.startswith("cases_"):
        ALL.extend(importlib.import_module(f"tests.ops.{_m.name}").CASES)

FWD = [c for c in ALL if c.ref is not None]
GRAD = [c for c in ALL if c.grad]
GRAD2 = [c for c in ALL if c.grad2]
TORCH = [c for c in ALL if c.torch]
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (test oracle) not installed")


def _flat(out):
    if isinstance(out, tuple | list):
        res = []
        for o in out:
            res.extend(_flat(o))
        return res
    return [out]


def _ember_inputs(case, arrays):
    ts = []
    for spec, a in zip(case.args, arrays):
        t = ember.Tensor(a).to(DEVICE)
        if spec.grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        ts.append(t)
    return ts


def _to_np(x):
    if isinstance(x, ember.Tensor):
        return x.detach().numpy()
    if torch is not None and isinstance(x, torch.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def test_table_is_not_empty():
    assert len(ALL) > 0 and len(GRAD) > 0


@pytest.mark.parametrize("case", FWD, ids=repr)
def test_forward_matches_numpy(case):
    arrays = case.inputs()
    got = _flat(case.fn(ember, *_ember_inputs(case, [a.copy() for a in arrays])))
    want = _flat(case.ref(*arrays))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = _to_np(g), np.asarray(w)
        assert g.shape == w.shape, f"{case.name}: shape {g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, atol=case.atol, rtol=case.rtol, err_msg=case.name)


def _torch_run(case, arrays, dtype=None):
    ts = []
    for spec, a in zip(case.args, arrays):
        t = torch.from_numpy(np.array(a))
        if spec.grad and a.dtype.kind == "f":
            t.requires_grad_(True)
        ts.append(t)
    fn = case.torch_fn or case.fn
    return ts, _flat(fn(torch, *ts))


@needs_torch
@pytest.mark.parametrize("case", TORCH, ids=repr)
def test_matches_torch(case):
    arrays = case.inputs("float64")
    e_in = _ember_inputs(case, [a.copy() for a in arrays])
    e_out = _flat(case.fn(ember, *e_in))
    t_in, t_out = _torch_run(case, arrays)
    assert len(e_out) == len(t_out)
    for e, t in zip(e_out, t_out):
        e_np, t_np = _to_np(e), _to_np(t)
        assert e_np.shape == t_np.shape, f"{case.name}: {e_np.shape} vs torch {t_np.shape}"
        assert e_np.dtype == t_np.dtype, f"{case.name}: dtype {e_np.dtype} vs {t_np.dtype}"
        np.testing.assert_allclose(e_np, t_np, atol=case.atol, rtol=case.rtol)
    if not case.grad:
        return
    rng = np.random.default_rng(7)
    pairs = [
        (e, t) for e, t in zip(e_out, t_out) if isinstance(e, ember.Tensor) and e.requires_grad
    ]
    if not pairs:
        return
    vs = [rng.standard_normal(tuple(e.shape)) for e, _ in pairs]
    e_loss = sum((e * ember.Tensor(v).to(DEVICE)).sum() for (e, _), v in zip(pairs, vs))
    t_loss = sum((t * torch.from_numpy(v)).sum() for (_, t), v in zip(pairs, vs))
    e_loss.backward()
    t_loss.backward()
    for spec, e, t in zip(case.args, e_in, t_in):
        if spec.grad and t.requires_grad:
            tg = np.zeros(t.shape) if t.grad is None else t.grad.numpy()
            eg = np.zeros(tuple(e.shape)) if e.grad is None else e.grad.numpy()
            np.testing.assert_allclose(
                eg, tg, atol=case.grad_atol, rtol=case.grad_rtol, err_msg=f"{case.name}: gradient"
            )


@pytest.mark.parametrize("case", GRAD, ids=repr)
def test_gradient_finite_differences(case):
    arrays = case.inputs("float64")
    ins = _ember_inputs(case, arrays)
    assert any(t.requires_grad for t in ins), f"{case.name}: no input requires grad"
    gradcheck(
        lambda *xs: case.fn(ember, *xs), ins, eps=case.eps, atol=case.grad_atol, rtol=case.grad_rtol
    )


@pytest.mark.parametrize("case", GRAD2, ids=repr)
def test_second_order_finite_differences(case):
    arrays = case.inputs("float64")
    ins = _ember_inputs(case, arrays)
    gradgradcheck(
        lambda *xs: case.fn(ember, *xs),
        ins,
        eps=case.eps,
        atol=max(case.grad_atol, 1e-4),
        rtol=max(case.grad_rtol, 1e-3),
    )

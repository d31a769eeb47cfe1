"""Gradient clipping (``ember.nn.utils.clip_grad``) against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember.nn.utils.clip_grad import (
    clip_grad_norm,
    clip_grad_norm_,
    clip_grad_value_,
    clip_grads_with_norm_,
    get_total_norm,
)

torch = pytest.importorskip("torch")


def _params(m, grads, with_none=True):
    params = []
    for g in grads:
        p = m.zeros(g.shape, dtype=getattr(m, str(g.dtype)), requires_grad=True)
        p.grad = m.from_numpy(g.copy()) if m is torch else ember.from_numpy(g.copy())
        params.append(p)
    if with_none:
        params.append(m.zeros(2, requires_grad=True))  # no grad: ignored
    return params


def _grads(dtype=np.float32, scale=1.0):
    rng = np.random.default_rng(0)
    return [
        np.asarray(rng.standard_normal(s) * scale).astype(dtype) for s in [(3, 4), (5,), (), (2, 0)]
    ]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, dtype):
    grads = _grads(dtype)
    if math.isinf(norm_type):
        grads = grads[:3]  # PyTorch rejects max/min over an empty gradient
    e_params, t_params = _params(ember, grads), _params(torch, grads)
    e_total = clip_grad_norm_(e_params, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type)
    assert isinstance(e_total, ember.Tensor) and e_total.shape == ()
    assert e_total.dtype == getattr(ember, str(np.dtype(dtype)))
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(e_total.item(), t_total.item(), rtol=tol)
    for e, t in zip(e_params, t_params):
        if t.grad is None:
            assert e.grad is None
        else:
            np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=tol, atol=1e-30)


def test_clips_in_place_and_leaves_small_norms():
    w = ember.ones(4, requires_grad=True)
    w.grad = ember.full((4,), 3.0)
    arr = w.grad._data
    assert clip_grad_norm_(w, 1.0).item() == pytest.approx(6.0)
    assert w.grad._data is arr
    assert w.grad.numpy() == pytest.approx([0.5] * 4, rel=1e-5)
    w.grad = ember.full((4,), 0.1)
    clip_grad_norm_([w], 1.0)
    assert w.grad.numpy() == pytest.approx([0.1] * 4, rel=1e-5)


def test_generator_and_empty():
    w = ember.ones(2, requires_grad=True)
    w.grad = ember.tensor([3.0, 4.0])
    assert clip_grad_norm_((p for p in [w]), 1.0).item() == pytest.approx(5.0)
    with pytest.warns(UserWarning, match="empty generator"):
        total = clip_grad_norm_((p for p in []), 1.0)
    assert total.item() == 0.0
    assert clip_grad_norm_([ember.ones(2, requires_grad=True)], 1.0).item() == 0.0


def test_nonfinite():
    w = ember.ones(2, requires_grad=True)
    w.grad = ember.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([w], 1.0, error_if_nonfinite=True)
    total = clip_grad_norm_([w], 1.0)
    t = torch.ones(2, requires_grad=True)
    t.grad = torch.tensor([float("inf"), 1.0])
    t_total = torch.nn.utils.clip_grad_norm_([t], 1.0)
    assert math.isinf(total.item()) and math.isinf(t_total.item())
    np.testing.assert_array_equal(w.grad.numpy(), t.grad.numpy())


def test_float16_grads():
    grads = _grads(np.float16, scale=10.0)
    e_params, t_params = _params(ember, grads), _params(torch, grads)
    e_total = clip_grad_norm_(e_params, 1.0)
    t_total = torch.nn.utils.clip_grad_norm_(t_params, 1.0)
    assert e_total.dtype == ember.float16
    np.testing.assert_allclose(e_total.item(), t_total.item(), rtol=1e-3)
    for e, t in zip(e_params[:-1], t_params[:-1]):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=2e-3, atol=1e-3)


def test_split_api_and_deprecated_alias():
    grads = _grads()
    e_params, t_params = _params(ember, grads), _params(torch, grads)
    total = get_total_norm([p.grad for p in e_params if p.grad is not None], 2.0)
    t_total = torch.nn.utils.get_total_norm([p.grad for p in t_params if p.grad is not None])
    np.testing.assert_allclose(total.item(), t_total.item(), rtol=1e-6)
    clip_grads_with_norm_(e_params, 0.3, total)
    torch.nn.utils.clip_grads_with_norm_(t_params, 0.3, t_total)
    for e, t in zip(e_params[:-1], t_params[:-1]):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-6)
    with pytest.warns(FutureWarning):
        clip_grad_norm(e_params, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_clip_grad_value_matches_torch(dtype):
    grads = _grads(dtype, scale=2.0)
    e_params, t_params = _params(ember, grads), _params(torch, grads)
    assert clip_grad_value_(e_params, 0.7) is None
    torch.nn.utils.clip_grad_value_(t_params, 0.7)
    for e, t in zip(e_params[:-1], t_params[:-1]):
        np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())
    assert max(abs(float(v)) for e in e_params[:-1] for v in e.grad.numpy().ravel()) <= 0.7 + 1e-3


def test_exported_from_nn_utils():
    assert ember.nn.utils.clip_grad_norm_ is clip_grad_norm_
    assert ember.nn.utils.clip_grad_value_ is clip_grad_value_

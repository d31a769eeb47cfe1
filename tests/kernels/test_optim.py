"""Fused optimizer kernels (SGD, Adam/AdamW/AMSGrad, RMSprop over all parameters in one
call) against ember's per-parameter NumPy updates: bit-identical over several steps, with
every option, odd sizes, empty parameters and inf/NaN in the gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import numpy_path

SIZES = [1, 7, 33, 0, 20000]  # 20000 spans three 8192-element chunks
DTYPES = [np.float32, np.float64]


def _params(dtype, seed, specials=False):
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    gs = [rng.standard_normal(n).astype(dtype) for n in SIZES]
    if specials:
        gs[1][[0, 3]] = [np.nan, np.inf]
        gs[2][5] = -np.inf
    return ps, gs


def _copy(arrays):
    return None if arrays is None else [a.copy() for a in arrays]


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)  # bit-identical (NaN where NaN)


def _numpy_update(op, *arrays, **attrs):
    with numpy_path():
        REGISTRY[op].forward(np, *arrays, **attrs)


SGD_OPTIONS = [
    dict(momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False),
    dict(momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=True, maximize=False),
    dict(momentum=0.9, dampening=0.1, weight_decay=0.0, nesterov=False, maximize=True),
    dict(momentum=0.5, dampening=0.0, weight_decay=0.1, nesterov=False, maximize=True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", SGD_OPTIONS, ids=lambda o: "-".join(f"{v}" for v in o.values()))
@pytest.mark.parametrize("specials", [False, True])
def test_sgd_matches_numpy_bit_for_bit(c_kernels, threaded, dtype, opts, specials):
    ps, gs = _params(dtype, 1, specials)
    kp = _copy(ps)
    mom = opts["momentum"] != 0
    bufs = [np.zeros_like(p) for p in ps] if mom else None
    kbufs = _copy(bufs)
    for step in range(3):
        first = step == 0
        for i, (p, g) in enumerate(zip(ps, gs)):
            _numpy_update("sgd_update", p, g, bufs[i] if mom else None, 0.1, first=first, **opts)
        ok = kernels.sgd_step(kp, gs, kbufs, [first] * len(ps), lr=0.1, **opts)
        assert ok
        _same(kp, ps)
        if mom:
            _same(kbufs, bufs)


ADAM_OPTIONS = list(itertools.product([False, True], [False, True], [0.0, 0.05], [False, True]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("amsgrad,decoupled,weight_decay,maximize", ADAM_OPTIONS)
def test_adam_matches_numpy_bit_for_bit(
    c_kernels, threaded, dtype, amsgrad, decoupled, weight_decay, maximize
):
    ps, gs = _params(dtype, 2, specials=amsgrad)
    kp = _copy(ps)
    state = {k: [np.zeros_like(p) for p in ps] for k in ("m", "v", "vmax")}
    kstate = {k: _copy(v) for k, v in state.items()}
    opts = dict(
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        weight_decay=weight_decay,
        decoupled=decoupled,
        maximize=maximize,
    )
    for step in range(1, 4):
        for i, (p, g) in enumerate(zip(ps, gs)):
            vmax = state["vmax"][i] if amsgrad else None
            _numpy_update(
                "adam_update", p, g, state["m"][i], state["v"][i], vmax, step, 1e-2, **opts
            )
        vm = kstate["vmax"] if amsgrad else None
        assert kernels.adam_step(kp, gs, kstate["m"], kstate["v"], vm, step, lr=1e-2, **opts)
        _same(kp, ps)
        _same(kstate["m"], state["m"])
        _same(kstate["v"], state["v"])
        if amsgrad:
            _same(kstate["vmax"], state["vmax"])


def test_adam_beta1_above_half_and_per_parameter_steps(c_kernels):
    """``lerp`` takes PyTorch's second formula when the weight ``1 - beta1`` is >= 0.5, and
    each parameter may be at its own step."""
    ps, gs = _params(np.float32, 3)
    kp = _copy(ps)
    m, v = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    km, kv = _copy(m), _copy(v)
    steps = [1, 2, 3, 4, 5]
    opts = dict(beta1=0.3, beta2=0.9, eps=1e-6, weight_decay=0.0, decoupled=False, maximize=False)
    for i in range(len(ps)):
        _numpy_update("adam_update", ps[i], gs[i], m[i], v[i], None, steps[i], 0.5, **opts)
    assert kernels.adam_step(kp, gs, km, kv, None, steps, lr=0.5, **opts)
    _same(kp, ps)
    _same(km, m)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "centered,momentum,weight_decay,maximize",
    list(itertools.product([False, True], [0.0, 0.9], [0.0, 0.1], [False, True])),
)
def test_rmsprop_matches_numpy_bit_for_bit(
    c_kernels, threaded, dtype, centered, momentum, weight_decay, maximize
):
    ps, gs = _params(dtype, 4)
    kp = _copy(ps)
    sq = [np.zeros_like(p) for p in ps]
    ga = [np.zeros_like(p) for p in ps] if centered else None
    bufs = [np.zeros_like(p) for p in ps] if momentum else None
    ksq, kga, kbufs = _copy(sq), _copy(ga), _copy(bufs)
    opts = dict(
        alpha=0.99, eps=1e-8, weight_decay=weight_decay, momentum=momentum, maximize=maximize
    )
    for step in range(1, 4):
        for i, (p, g) in enumerate(zip(ps, gs)):
            _numpy_update("rmsprop_update", p, g, sq[i], ga[i] if centered else None,
                          bufs[i] if momentum else None, step, 0.01, **opts)  # fmt: skip
        assert kernels.rmsprop_step(kp, gs, ksq, kga, kbufs, lr=0.01, **opts)
        _same(kp, ps)
        _same(ksq, sq)


def test_optimizer_steps_decline_unusable_groups(c_kernels):
    p32, g32 = np.ones(4, np.float32), np.ones(4, np.float32)
    z = np.zeros(4, np.float32)
    assert not kernels.sgd_step([p32], [np.ones(4, np.float64)], None, None, lr=0.1)  # mixed dtypes
    assert not kernels.sgd_step([p32], [np.ones(5, np.float32)], None, None, lr=0.1)  # sizes
    assert not kernels.sgd_step(
        [p32.astype(np.float16)], [g32.astype(np.float16)], None, None, lr=0.1
    )
    strided = np.ones(8, np.float32)[::2]
    assert not kernels.adam_step([strided], [g32], [z], [z.copy()], None, 1, lr=0.1)
    assert not kernels.sgd_step([], [], None, None, lr=0.1)
    assert (p32 == 1).all()  # nothing was written
    assert kernels.sgd_step(
        [np.zeros(0, np.float32)], [np.zeros(0, np.float32)], None, None, lr=0.1
    )

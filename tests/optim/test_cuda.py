"""Optimizers, clipping and saving with GPU tensors (skipped without a usable GPU): the fused
CUDA Adam kernel and the CuPy paths agree with the NumPy path."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from tests.optim.test_optimizers import CONFIGS

pytestmark = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


def _run(device, name, kwargs, dtype, steps=20):
    rng = np.random.default_rng(3)
    start = rng.standard_normal((33, 65)).astype(dtype)
    grads = [rng.standard_normal((33, 65)).astype(dtype) for _ in range(steps)]
    p = ember.from_numpy(start.copy()).to(device).requires_grad_()
    opt = getattr(ember.optim, name)([p], **kwargs)
    for g in grads:
        p.grad = ember.from_numpy(g).to(device)
        opt.step()
    return p, opt


# float16 with the default eps underflows to a zero denominator on the CPU (per-op
# rounding) while the fused kernel computes in float: compare with a representable eps
GPU_CASES = [(n, kw, d) for n, kw in CONFIGS for d in (np.float32, np.float64)] + [
    (n, {**kw, "eps": 1e-3}, np.float16) for n, kw in CONFIGS if n.startswith("Adam")
]
GPU_IDS = [f"{n}-{np.dtype(d).name}-{kw}" for n, kw, d in GPU_CASES]


@pytest.mark.parametrize("name,kwargs,dtype", GPU_CASES, ids=GPU_IDS)
def test_gpu_matches_cpu(name, kwargs, dtype):
    # float16: the fused kernel computes in float32 and rounds once per stored value, so
    # its reference is the float32 CPU run (the NumPy path rounds after every op)
    cpu, _ = _run("cpu", name, kwargs, np.float32 if dtype == np.float16 else dtype)
    gpu, opt = _run("cuda", name, kwargs, dtype)
    assert gpu.device.type == "cuda" and gpu.dtype == ember.from_numpy(np.zeros(1, dtype)).dtype
    tol = {np.float64: (1e-12, 1e-12), np.float32: (1e-5, 1e-5), np.float16: (1e-2, 3e-2)}[dtype]
    got = gpu.detach().cpu().numpy().astype(np.float64)
    np.testing.assert_allclose(got, cpu.detach().numpy(), rtol=tol[0], atol=tol[1])
    for key, value in opt.state[gpu].items():
        want = "cpu" if key == "step" else "cuda"
        assert value.device.type == want, key


def test_gpu_state_dict_round_trip(tmp_path):
    p, opt = _run("cuda", "Adam", {"lr": 0.01, "amsgrad": True}, np.float32, steps=3)
    path = tmp_path / "gpu.safetensors"
    ember.save({"opt": opt.state_dict(), "p": p}, path)
    on_gpu = ember.load(path)
    assert on_gpu["p"].device.type == "cuda" and on_gpu["p"].requires_grad
    on_cpu = ember.load(path, map_location="cpu")
    assert on_cpu["opt"]["state"][0]["exp_avg"].device.type == "cpu"
    q = ember.from_numpy(on_cpu["p"].detach().numpy().copy()).to("cuda").requires_grad_()
    opt2 = ember.optim.Adam([q], lr=0.5)
    opt2.load_state_dict(on_cpu["opt"])  # CPU state onto a GPU parameter
    assert opt2.state[q]["exp_avg"].device.type == "cuda"
    for o, t in ((opt, p), (opt2, q)):
        t.grad = ember.ones(33, 65, device="cuda")
        o.step()
    np.testing.assert_array_equal(p.detach().cpu().numpy(), q.detach().cpu().numpy())


def test_gpu_clipping():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(40, 3), (7,)]]
    results = []
    for device in ("cpu", "cuda"):
        ps = []
        for g in grads:
            p = ember.zeros(g.shape, device=device, requires_grad=True)
            p.grad = ember.from_numpy(g.copy()).to(device)
            ps.append(p)
        total = clip_grad_norm_(ps, 1.0)
        assert total.device.type == device
        clip_grad_value_(ps, 0.05)
        results.append((total.item(), [p.grad.cpu().numpy() for p in ps]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-6)

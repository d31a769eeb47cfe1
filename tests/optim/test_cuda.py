"""Optimizers, clipping and saving with GPU tensors (the GPU tests are skipped without a usable
GPU): the fused CUDA Adam kernel and the CuPy paths agree with the NumPy path; the multi-tensor
Adam kernel (one launch per group) is bit-identical to the per-parameter kernel."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.nn.utils.clip_grad import clip_grad_norm_, clip_grad_value_
from tests.graph.test_cuda import _train
from tests.optim.test_optimizers import CONFIGS

gpu = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


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


@gpu
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


@gpu
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


@gpu
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


# -- the multi-tensor Adam kernel (one launch per group) ---------------------------------------
SIZES = [(1,), (7,), (1000,), (65537,), (33, 65)]
BASE_STEPS = [1.0, 4.0, 2.0, 9.0, 3.0]  # each parameter at its own step count
ADAM_CASES = {
    "adam": dict(weight_decay=0.0, decoupled=False, maximize=False, amsgrad=False),
    "adam-l2": dict(weight_decay=0.1, decoupled=False, maximize=False, amsgrad=False),
    "adamw": dict(weight_decay=0.1, decoupled=True, maximize=False, amsgrad=False),
    "adamw-amsgrad": dict(weight_decay=0.2, decoupled=True, maximize=False, amsgrad=True),
    "amsgrad-maximize-l2": dict(weight_decay=0.05, decoupled=False, maximize=True, amsgrad=True),
    "low-beta1": dict(weight_decay=0.0, decoupled=False, maximize=True, amsgrad=False, beta1=0.3),
}
MULTI_TOL = {np.float64: (1e-12, 1e-12), np.float32: (1e-5, 1e-5), np.float16: (1e-2, 3e-2)}


def _adam_opts(case: str) -> tuple[dict, bool]:
    kw = dict(ADAM_CASES[case])
    amsgrad = kw.pop("amsgrad")
    opts = dict(beta1=kw.pop("beta1", 0.9), beta2=0.99, eps=1e-3, **kw)
    return opts, amsgrad


def _adam_problem(dtype, amsgrad: bool, iters: int = 3, seed: int = 0):
    """``(state, grads)``: NumPy lists p, m, v[, vmax] (states >= 0) and ``iters`` gradient
    lists, in ``dtype``."""
    rng = np.random.default_rng(seed)

    def make(nonneg=False):
        out = [rng.standard_normal(s) for s in SIZES]
        return [(np.abs(a) if nonneg else a).astype(dtype) for a in out]

    state = [make(), make(), make(True)] + ([make(True)] if amsgrad else [])
    return state, [make() for _ in range(iters)]


def _run_gpu(state, grads, opts, multi: bool):
    import cupy

    from ember.optim import cuda_kernels

    arrays = [[cupy.asarray(a) for a in lst] for lst in state]
    for it, gs in enumerate(grads):
        g = [cupy.asarray(a) for a in gs]
        steps = [s + it for s in BASE_STEPS]
        vmax = arrays[3] if len(arrays) > 3 else None
        if multi:
            p, m, v = arrays[:3]
            assert cuda_kernels.adam_multi(p, g, m, v, vmax, steps, lr=0.01, **opts)
            continue
        for i in range(len(SIZES)):
            p, m, v = (lst[i] for lst in arrays[:3])
            x = None if vmax is None else vmax[i]
            cuda_kernels.adam(p, g[i], m, v, x, lr=0.01, step=steps[i], **opts)
    return [[a.get() for a in lst] for lst in arrays]


@gpu
@pytest.mark.parametrize("case", list(ADAM_CASES))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_adam_multi_matches_per_parameter_bits(case, dtype):
    opts, amsgrad = _adam_opts(case)
    state, grads = _adam_problem(dtype, amsgrad)
    per = _run_gpu(state, grads, opts, multi=False)
    one = _run_gpu(state, grads, opts, multi=True)
    for a_list, b_list in zip(per, one):
        for a, b in zip(a_list, b_list):
            assert a.dtype == b.dtype == dtype
            np.testing.assert_array_equal(a, b)
    # and close to the NumPy path (float16: the kernel computes in float32, see above)
    from ember.ops.optim import _adam

    ref_dtype = np.float32 if dtype == np.float16 else dtype
    cpu = [[a.astype(ref_dtype) for a in lst] for lst in state]
    for it, gs in enumerate(grads):
        for i in range(len(SIZES)):
            x = cpu[3][i] if amsgrad else None
            g = gs[i].astype(ref_dtype)
            _adam.forward(np, cpu[0][i], g, cpu[1][i], cpu[2][i], x, BASE_STEPS[i] + it, 0.01, **opts)  # fmt: skip
    rtol, atol = MULTI_TOL[dtype]
    for a_list, b_list in zip(cpu, one):
        for a, b in zip(a_list, b_list):
            np.testing.assert_allclose(b.astype(np.float64), a, rtol=rtol, atol=atol)


@gpu
def test_adam_multi_declines_what_it_cannot_serve():
    import cupy

    from ember.optim import cuda_kernels

    opts, _ = _adam_opts("adamw")
    rng = np.random.default_rng(1)

    def lists(dtypes):
        return [
            [cupy.asarray(rng.standard_normal((5, 3)).astype(d)) for d in dtypes] for _ in "pgmv"
        ]

    p, g, m, v = lists([np.float32, np.float64])  # two dtypes
    assert not cuda_kernels.adam_multi(p, g, m, v, None, [1.0, 1.0], lr=0.1, **opts)
    p, g, m, v = lists([np.float32, np.float32])
    g[1] = cupy.asfortranarray(g[1])  # a strided gradient
    assert not cuda_kernels.adam_multi(p, g, m, v, None, [1.0, 1.0], lr=0.1, **opts)
    g[1] = cupy.ascontiguousarray(g[1])
    before = [a.get() for a in p]
    assert not cuda_kernels.adam_multi(p, g, m, [v[0], np.ones((5, 3), np.float32)], None,
                                       [1.0, 1.0], lr=0.1, **opts)  # fmt: skip
    for a, b in zip(before, p):
        np.testing.assert_array_equal(a, b.get())  # nothing changed
    e = [cupy.zeros((0, 4), np.float32) for _ in range(4)]  # empty tensors: nothing to do
    assert cuda_kernels.adam_multi(*([a] for a in e), None, [1.0], lr=0.1, **opts)


@gpu
@pytest.mark.parametrize("case", ["adamw", "amsgrad-maximize-l2"])
def test_adam_group_op_on_gpu_is_one_launch(case, monkeypatch):
    from ember.ops.optim import adam_update
    from ember.ops.optim_group import adam_group_update
    from ember.optim import cuda_kernels

    opts, amsgrad = _adam_opts(case)
    state, grads = _adam_problem(np.float32, amsgrad, iters=1)
    lists = state[:1] + grads + state[1:]  # params, grads, m, v[, vmax]
    ref = [[ember.from_numpy(a.copy()).to("cuda") for a in lst] for lst in lists]
    got = [[ember.from_numpy(a.copy()).to("cuda") for a in lst] for lst in lists]
    for i in range(len(SIZES)):
        x = ref[4][i] if amsgrad else None
        adam_update(*(r[i] for r in ref[:4]), x, BASE_STEPS[i], 0.01, **opts)
    if case == "adamw":  # a strided gradient is copied, and the group stays on one launch
        import cupy

        got[1][4]._data = cupy.asfortranarray(got[1][4]._data)
    calls, per_param = [], []
    real_multi, real_adam = cuda_kernels.adam_multi, cuda_kernels.adam

    def multi(*args, **kw):
        calls.append(real_multi(*args, **kw))
        return calls[-1]

    def adam(*args, **kw):
        per_param.append(1)
        real_adam(*args, **kw)

    monkeypatch.setattr(cuda_kernels, "adam_multi", multi)
    monkeypatch.setattr(cuda_kernels, "adam", adam)
    out = adam_group_update(
        *(t for lst in got for t in lst), *BASE_STEPS, 0.01,
        n=len(SIZES), amsgrad=amsgrad, **opts,
    )  # fmt: skip
    assert out._data is got[0][0]._data
    assert calls == [True] and per_param == []
    for la, lb in zip(ref, got):
        for a, b in zip(la, lb):
            np.testing.assert_array_equal(a.numpy(force=True), b.numpy(force=True))


@gpu
@pytest.mark.parametrize(
    "name,kwargs",
    [("AdamW", {"lr": 1e-2}), ("Adam", {"lr": 1e-2, "amsgrad": True, "weight_decay": 0.1})],
)
def test_eager_and_compiled_steps_on_gpu_run_the_multi_tensor_kernel(name, kwargs, monkeypatch):
    from ember.optim import cuda_kernels

    calls = []
    real = cuda_kernels.adam_multi

    def spy(params, *args, **kw):
        ok = real(params, *args, **kw)
        calls.append((len(params), ok))
        return ok

    monkeypatch.setattr(cuda_kernels, "adam_multi", spy)

    def train(compiled):
        def make_opt(ps):
            return getattr(ember.optim, name)(ps, **kwargs)

        return _train(compiled, [5] * 4, make_opt=make_opt, dropout=False)[:2]

    eager = train(False)
    assert calls == [(4, True)] * 4  # the eager step: one launch per step too
    compiled = train(True)
    assert calls == [(4, True)] * 8  # the trace, then three replays: one launch per step
    assert compiled[0] == eager[0]
    for a, b in zip(eager[1], compiled[1]):
        np.testing.assert_array_equal(a, b)


# -- without a GPU: what the host side decides -------------------------------------------------
def test_adam_multi_declines_numpy_arrays():
    from ember.optim import cuda_kernels

    opts, _ = _adam_opts("adamw")
    p = [np.ones(3, np.float32), np.ones(2, np.float32)]
    g = [np.ones(3, np.float32), np.ones(2, np.float32)]
    m, v = [np.zeros(3, np.float32)] * 2, [np.zeros(2, np.float32)] * 2
    assert not cuda_kernels.adam_multi(p, g, m, v, None, [1.0, 1.0], lr=0.1, **opts)
    assert p[0].tolist() == [1.0, 1.0, 1.0]
    assert not cuda_kernels.adam_multi([], [], [], [], None, [], lr=0.1, **opts)
    assert not cuda_kernels.adam_multi(p, g, m, v, None, [1.0], lr=0.1, **opts)  # bad lengths


@pytest.mark.parametrize("compute", [np.float32, np.float64])
def test_multi_table_covers_every_element_once(compute):
    """Replay the kernel's work-item walk (binary search over first items) on the host."""
    from ember.optim import cuda_kernels

    sizes = [1, 7, 1000, 65537, 2145, 2048, 2049, 4096]
    k, n = 4, len(sizes)
    pointers = list(range(1000, 1000 + k * n))
    neg, bc2 = [-0.5 * (i + 1) for i in range(n)], [0.25 * (i + 1) for i in range(n)]
    table, items = cuda_kernels.multi_table(pointers, sizes, neg, bc2, compute)
    chunk = cuda_kernels._MULTI_CHUNK
    assert items == sum(-(-s // chunk) for s in sizes)
    assert table[: k * n].tolist() == pointers
    sz, first = table[k * n : (k + 1) * n], table[(k + 1) * n : (k + 2) * n]
    assert sz.tolist() == sizes
    per = table[(k + 2) * n :].view(compute)
    assert per[0 : 2 * n : 2].tolist() == np.asarray(neg, compute).tolist()
    assert per[1 : 2 * n : 2].tolist() == np.asarray(bc2, compute).tolist()
    seen = [np.zeros(s, np.int64) for s in sizes]
    for c in range(items):
        lo, hi = 0, n - 1
        while lo < hi:
            mid = (lo + hi + 1) >> 1
            lo, hi = (mid, hi) if first[mid] <= c else (lo, mid - 1)
        start = (c - first[lo]) * chunk
        assert 0 <= start < sz[lo]
        seen[lo][start : min(start + chunk, sz[lo])] += 1
    for s in seen:
        assert (s == 1).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_multi_source_compiles_with_nvcc(dtype, tmp_path):
    """The kernel source (with the per-parameter body inside) compiles cleanly where nvcc is
    installed (CuPy compiles it with NVRTC at run time)."""
    import shutil
    import subprocess

    from ember.optim import cuda_kernels

    flags = dict(MAXIMIZE=True, DECOUPLED=True, COUPLED=False, LERP_LOW=False, AMSGRAD=True)
    src = cuda_kernels.multi_source(dtype, flags)
    assert cuda_kernels._ADAM_BODY.strip() in src
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    path = tmp_path / "adam_multi.cu"
    path.write_text(src)
    cmd = [nvcc, "-ptx", "-arch=sm_80", "-Werror", "all-warnings", "-o", str(tmp_path / "a.ptx")]
    subprocess.run([*cmd, str(path)], check=True, capture_output=True, timeout=120)

"""The CUDA softmax kernels (``ember.kernels.cuda_softmax``) against ember's NumPy path on the
CPU: softmax, safe softmax and log_softmax forward, the two backwards, over row lengths on
every side of the group sizes (1, 5, 32, 33, 64, 1000, 2000, 5000, 20000), several leading
shapes, float16/32/64, inf/-inf/NaN (fully masked rows included), every axis and strided
inputs; then the whole ops (``F.softmax``, ``F.log_softmax``, causal and masked
``F.scaled_dot_product_attention``, forward and backward) on cuda tensors against the CPU,
with a spy that the kernels served them. Skipped without a GPU, except the first tests."""

from __future__ import annotations

import doctest
import shutil
import subprocess
import sys

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember.kernels import cuda_softmax, runtime
from ember.kernels.cuda import PRELUDE, TYPES
from ember.ops.nn import softmax as softmax_ops

from .conftest import with_specials
from .test_cuda_loss import _close as _close_any
from .test_cuda_loss import _kernels_on, _tol  # noqa: F401  (an autouse fixture)
from .test_loss_embedding import _ref

gpu = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")
FORWARD = (("softmax", {}), ("safe_softmax", {"safe": True}), ("log_softmax", {"log": True}))
BACKWARD = (("softmax_backward", False), ("log_softmax_backward", True))


# -- without a GPU -------------------------------------------------------------------------
def test_numpy_arrays_are_not_served():
    x = np.zeros((2, 3), np.float32)
    assert not cuda_softmax.is_cupy(x)
    for _, kw in FORWARD:
        assert cuda_softmax.softmax_forward(x, -1, **kw) is None
    assert cuda_softmax.softmax_backward(x, x, 1) is None
    assert cuda_softmax.softmax_backward(x, x, 1, log=True) is None
    for name in cuda_softmax._NAMES:
        assert f'extern "C" __global__ void __launch_bounds__(1024) {name}(' in cuda_softmax._SOURCE
    assert doctest.testmod(cuda_softmax).failed == 0


def test_importing_does_not_import_cupy():
    code = (
        "import sys, ember.nn.functional, ember.kernels.cuda_softmax; print('cupy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ops_route_cupy_arrays_to_the_cuda_kernels(monkeypatch):
    """With the array taken for CuPy, the ops ask the CUDA seam (and not the C one); a None
    from it falls back to the NumPy path, a result is returned as is."""
    calls = []

    def spy(name, result):
        def f(*args, **kw):
            calls.append((name, kw))
            return result

        return f

    monkeypatch.setattr(cuda_softmax, "is_cupy", lambda a: True)
    monkeypatch.setattr(cuda_softmax, "softmax_forward", spy("forward", None))
    monkeypatch.setattr(cuda_softmax, "softmax_backward", spy("backward", None))
    x = np.array([[0.0, 1.0, -np.inf], [-np.inf] * 3], np.float32)
    want = np.array([[1 / (1 + np.e), np.e / (1 + np.e), 0.0], [0.0] * 3], np.float32)
    np.testing.assert_allclose(softmax_ops.softmax_xp(np, x, 1, safe=True), want, rtol=1e-6)
    lp = softmax_ops.log_softmax_xp(np, x[:1], 1)
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(lp, np.log(want[:1]), rtol=1e-6)
    g = np.ones((1, 3), np.float32)
    assert np.allclose(softmax_ops._softmax_backward.forward(np, g, want[:1], dim=1), 0)
    dl = softmax_ops._log_softmax_backward.forward(np, g, lp, dim=1)
    np.testing.assert_allclose(dl, 1 - 3 * want[:1], rtol=1e-6)
    assert [c[0] for c in calls] == ["forward", "forward", "backward", "backward"]
    assert calls[0][1] == {"safe": True} and calls[1][1] == {"log": True}
    sentinel = object()
    monkeypatch.setattr(cuda_softmax, "softmax_forward", spy("forward", sentinel))
    assert softmax_ops.softmax_xp(np, x, 1) is sentinel
    monkeypatch.setattr(cuda_softmax, "is_cupy", lambda a: False)  # NumPy: the C seam
    assert softmax_ops._kernels(x) is softmax_ops.kernels


@pytest.mark.parametrize(
    "rows,k,b,g",
    [(7, 1, 1, 1), (7, 2, 1, 2), (7, 5, 1, 8), (7, 32, 1, 32), (7, 33, 1, 32),
     (7, 1024, 1, 32), (7, 1025, 1, 256), (7, 5000, 1, 512), (7, 20000, 1, 1024),
     (10**6, 64, 1, 32), (70000, 5, 70000, 1), (15, 2000, 5, 256), (12, 3, 6, 4)],
)  # fmt: skip
def test_group_sizes(rows, k, b, g):
    assert cuda_softmax._group(rows, k, b) == g


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
@pytest.mark.parametrize("dtype", sorted(TYPES))
def test_source_compiles_without_warnings(tmp_path, dtype):
    t, c = TYPES[dtype]
    head = "#include <cuda_fp16.h>\n" if dtype == "float16" else ""
    src = tmp_path / "softmax.cu"
    src.write_text(head + f"typedef {t} T;\ntypedef {c} C;\n" + PRELUDE + cuda_softmax._SOURCE)
    cmd = ["nvcc", "-cubin", "-arch=sm_90", "-Werror", "all-warnings", "-o",
           str(tmp_path / "softmax.cubin"), str(src)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# -- the kernels against the NumPy path ----------------------------------------------------
def _close(got, want, dtype):
    """As the cross-entropy tests' check, and the result is C-contiguous."""
    _close_any(got, want, dtype)
    assert got.flags.c_contiguous


def _check(x, g, axis, dtype, device=None):
    """Every kernel entry along ``axis`` against the NumPy path for the CPU arrays x, g
    (float16 against float32 references from the same rounded inputs). ``device`` makes
    the CuPy copy of an input (default: ``cupy.asarray``), e.g. a strided view."""
    import cupy

    device = device or cupy.asarray
    ref = np.float32 if dtype == np.float16 else dtype
    x, g = x.astype(dtype), g.astype(dtype)
    rx, rg = x.astype(ref), g.astype(ref)
    dim = axis % x.ndim
    dx = device(x)
    for op, kw in FORWARD:
        _close(cuda_softmax.softmax_forward(dx, axis, **kw), _ref(op, rx, dim=dim), dtype)
    for op, log in BACKWARD:
        y = _ref("log_softmax" if log else "softmax", rx, dim=dim).astype(dtype)
        want = _ref(op, rg, y.astype(ref), dim=dim)
        got = cuda_softmax.softmax_backward(device(g), device(y), axis, log=log)
        _close(got, want, dtype)


LEADS = [(), (3,), (2, 5), (130,)]
LENGTHS = [1, 5, 32, 33, 64, 1000, 2000, 5000]


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("lead", LEADS, ids=str)
@pytest.mark.parametrize("k", LENGTHS)
def test_last_axis_matches_the_numpy_path(dtype, lead, k):
    rng = np.random.default_rng(k + len(lead))
    shape = (*lead, k)
    _check(rng.standard_normal(shape) * 3, rng.standard_normal(shape), -1, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_attention_scores_shape(dtype):
    """W3's attention: (32, 4, 64, 64) causal scores, rows of 64."""
    rng = np.random.default_rng(4)
    shape = (32, 4, 64, 64)
    x = rng.standard_normal(shape) + np.triu(np.full((64, 64), -np.inf), 1)
    _check(x, rng.standard_normal(shape), -1, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_block_rows_of_a_whole_block(dtype):
    rng = np.random.default_rng(5)
    shape = (3, 20000)  # 1024 threads a row
    _check(rng.standard_normal(shape) * 3, rng.standard_normal(shape), 1, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5, 33, 1000, 5000])
def test_inf_and_nan_entries(dtype, k):
    rng = np.random.default_rng(k)
    x = with_specials(rng.standard_normal((40, k)) * 3, rng, 0.1)
    x[1] = -np.inf  # fully masked: NaN, zeros for safe_softmax
    x[2, : (k + 1) // 2] = -np.inf  # half masked (k == 1: fully)
    x[3, k // 2] = np.inf  # NaN
    x[4, k - 1] = np.nan  # NaN
    x[5] = rng.standard_normal(k) * 1e30  # huge magnitudes
    g = with_specials(rng.standard_normal((40, k)), rng, 0.02)
    g[6:] = rng.standard_normal((34, k))  # rows 6.. with finite gradients
    _check(x, g, -1, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_masked_rows_give_what_numpy_gives(dtype):
    import cupy

    inf = np.inf
    x = np.array([[0.0, 1.0, -inf, -inf, 2.0], [-inf] * 5, [0.0, inf, 1.0, 2.0, 3.0],
                  [0.0, np.nan, 1.0, 2.0, 3.0]], dtype)  # fmt: skip
    dx = cupy.asarray(x)
    y = cupy.asnumpy(cuda_softmax.softmax_forward(dx, -1))
    assert y[0, 2] == 0 and y[0, 3] == 0 and np.isfinite(y[0]).all()
    assert np.isnan(y[1:]).all()
    safe = cupy.asnumpy(cuda_softmax.softmax_forward(dx, -1, safe=True))
    assert (safe[1] == 0).all() and np.isnan(safe[2:]).all()
    np.testing.assert_array_equal(safe[0], y[0])
    logp = cupy.asnumpy(cuda_softmax.softmax_forward(dx, -1, log=True))
    assert logp[0, 2] == -inf and np.isnan(logp[1:]).all()
    dl = cuda_softmax.softmax_backward(cupy.ones_like(dx), cupy.asarray(logp), -1, log=True)
    assert np.isfinite(cupy.asnumpy(dl)[0]).all()


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize(
    "shape",
    [(2, 70, 3), (4, 3, 6), (5, 40, 3), (3, 2000, 5), (1, 7), (7, 1), (2, 7, 40000)],
    ids=str,
)
def test_every_axis(dtype, shape):
    """(2, 7, 40000) along axis 1: 80000 strided rows, a thread each; (3, 2000, 5): a block
    per strided row."""
    rng = np.random.default_rng(len(shape) + shape[-1])
    x, g = rng.standard_normal(shape) * 3, rng.standard_normal(shape)
    axes = [1] if shape == (2, 7, 40000) else range(-len(shape), len(shape))
    for axis in axes:
        _check(x, g, axis, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strided_inputs(dtype):
    import cupy

    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((6, 10)) * 3, rng.standard_normal((6, 10))
    views = (
        lambda a: a.T,
        lambda a: a[:, ::3],
        lambda a: a[::2, 1:],
        lambda a: a[::-1],
    )
    for view in views:
        for axis in (0, 1, -1):
            _check(view(x), view(g), axis, dtype)  # CPU views: made contiguous on upload

            def strided(a, _view=view):  # the same values, as a strided CuPy view
                return _view(cupy.asarray(_inverse(_view, a)))

            _check(view(x), view(g), axis, dtype, device=strided)
    wide = cupy.broadcast_to(cupy.asarray(x[:1].astype(dtype)), (6, 10))  # stride 0
    want = _ref("softmax", np.broadcast_to(x[:1].astype(dtype), (6, 10)), dim=1)
    _close(cuda_softmax.softmax_forward(wide, 1), want, dtype)


def _inverse(view, a):
    """An array ``b`` with ``view(b) == a`` (``a`` a view's values)."""
    probe = np.arange(6 * 10).reshape(6, 10)
    out = np.zeros((6, 10), a.dtype)
    out.ravel()[view(probe).ravel()] = a.ravel()
    return out


@gpu
def test_what_is_not_served():
    import cupy

    x = cupy.zeros((2, 3), cupy.float32)
    assert cuda_softmax.softmax_forward(x.astype(cupy.int32), 1) is None
    assert cuda_softmax.softmax_forward(cupy.zeros((0, 3), cupy.float32), 1) is None
    assert cuda_softmax.softmax_forward(cupy.zeros((), cupy.float32), 0) is None
    assert cuda_softmax.softmax_backward(x, x.astype(cupy.float64), 1) is None
    assert cuda_softmax.softmax_backward(x, x[:1], 1) is None
    assert cuda_softmax.softmax_backward(np.zeros((2, 3), np.float32), x, 1) is None
    runtime.set_mode("numpy")
    assert cuda_softmax.softmax_forward(x, 1) is None
    assert cuda_softmax.softmax_backward(x, x, 1) is None
    runtime.set_mode("auto")
    assert cuda_softmax.softmax_forward(x, 1) is not None


# -- the whole ops on cuda tensors against the CPU -------------------------------------------
@pytest.fixture
def cuda_calls(monkeypatch):
    """The CUDA seam calls made, as ``(name, kwargs, served)``."""
    calls = []
    for name in ("softmax_forward", "softmax_backward"):
        f = getattr(cuda_softmax, name)

        def spy(*a, _f=f, _name=name, **kw):
            out = _f(*a, **kw)
            calls.append((_name, kw, out is not None))
            return out

        monkeypatch.setattr(cuda_softmax, name, spy)
    return calls


def _run(dev, fn, arrays, g, mode):
    """``fn(*tensors)`` on ``dev`` and the gradients of ``sum(out * g)``, as NumPy arrays."""
    before = runtime.mode()
    runtime.set_mode(mode)
    try:
        ts = [ember.tensor(a, requires_grad=True, device=dev) for a in arrays]
        out = fn(*ts)
        (out * ember.tensor(g, device=dev)).sum().backward()
        return out.detach().cpu().numpy(), [t.grad.cpu().numpy() for t in ts]
    finally:
        runtime.set_mode(before)


def _compare(fn, arrays, g, dtype):
    y0, d0 = _run("cpu", fn, arrays, g, "auto")
    y1, d1 = _run("cuda", fn, arrays, g, "auto")
    assert y1.dtype == y0.dtype == np.dtype(dtype)
    np.testing.assert_allclose(y1, y0, equal_nan=True, **_tol(dtype))
    for a, b in zip(d1, d0, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, equal_nan=True, **_tol(dtype))


@gpu
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("shape,dim", [((4, 7, 64), -1), ((4, 7, 5), 1), ((3, 1000), 1),
                                       ((2, 33), 0)], ids=str)  # fmt: skip
@pytest.mark.parametrize("log", [False, True])
def test_softmax_ops_on_cuda_match_the_cpu(cuda_calls, dtype, shape, dim, log):
    rng = np.random.default_rng(len(shape))
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x[(0,) * x.ndim] = -np.inf  # a masked entry
    g = rng.standard_normal(shape).astype(dtype)
    fn = (lambda t: F.log_softmax(t, dim=dim)) if log else (lambda t: F.softmax(t, dim=dim))
    _compare(fn, [x], g, dtype)
    fkw, bkw = ({"log": True}, {"log": True}) if log else ({"safe": False}, {})
    assert cuda_calls == [("softmax_forward", fkw, True), ("softmax_backward", bkw, True)]


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 4, 64, 16), (3, 33, 8), (1, 1, 5, 4)], ids=str)
def test_causal_attention_on_cuda_matches_the_cpu(cuda_calls, dtype, shape):
    rng = np.random.default_rng(shape[-2])
    q, k, v = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    g = rng.standard_normal(shape).astype(dtype)
    fn = lambda *t: F.scaled_dot_product_attention(*t, is_causal=True)  # noqa: E731
    _compare(fn, [q, k, v], g, dtype)
    forward = [c for c in cuda_calls if c[0] == "softmax_forward"]
    backward = [c for c in cuda_calls if c[0] == "softmax_backward"]
    assert forward and all(c[1] == {"safe": True} and c[2] for c in forward)
    assert backward and all(c[2] for c in backward)


@gpu
def test_fully_masked_attention_rows_give_zeros(cuda_calls):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 6, 8)).astype(np.float32) for _ in range(3))
    mask = np.ones((6, 6), bool)
    mask[2] = False  # query 2 sees nothing
    g = rng.standard_normal((2, 6, 8)).astype(np.float32)
    outs = []
    for dev in ("cpu", "cuda"):
        ts = [ember.tensor(a, requires_grad=True, device=dev) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, attn_mask=ember.tensor(mask, device=dev))
        (out * ember.tensor(g, device=dev)).sum().backward()
        outs.append([out.detach().cpu().numpy()] + [t.grad.cpu().numpy() for t in ts])
    assert (outs[1][0][:, 2] == 0).all() and (outs[1][1][:, 2] == 0).all()
    for a, b in zip(outs[1], outs[0], strict=True):
        np.testing.assert_allclose(a, b, **_tol(np.float32))
    assert any(c[0] == "softmax_forward" and c[1] == {"safe": True} and c[2] for c in cuda_calls)

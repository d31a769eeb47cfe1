"""The CUDA cross-entropy kernels (``ember.kernels.cuda_loss``) against ember's NumPy path on
the CPU: loss rows, weight rows, the three reductions and their gradients, with and without
class weights, ignored targets, label smoothing, inf/NaN logits, float16/32/64, strided
inputs and scales, the long-'mean' path; then the whole op (``F.cross_entropy`` forward and
backward on cuda tensors) against the same op on CPU tensors, and the error for a target out
of range. Skipped without a GPU, except the first test."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember.kernels import cuda_loss, runtime
from ember.ops.nn.loss import TargetOutOfBoundsError

from .test_loss_embedding import _problem as _cpu_problem
from .test_loss_embedding import _ref

gpu = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


@pytest.fixture(autouse=True)
def _kernels_on():
    """The CUDA kernels serve whatever ``EMBER_KERNELS`` says (they decline under 'numpy')."""
    before = runtime.mode()
    runtime.set_mode("auto")
    yield
    runtime.set_mode(before)


def test_numpy_arrays_are_not_served():
    x, t = np.zeros((2, 3), np.float32), np.array([0, 1])
    assert not cuda_loss.is_cupy(x)
    assert cuda_loss.cross_entropy_forward(x, t) is None
    assert cuda_loss.cross_entropy_backward(x, t, 1.0) is None
    assert cuda_loss.cross_entropy_loss(x, t, None, -100, 0.0, "mean") is None
    assert cuda_loss.cross_entropy_grad(x, t, 1.0, None, -100, 0.0, "sum") is None
    names = ("xent_forward", "xent_mean_inv", "xent_backward")
    assert all(f'extern "C" __global__ void {n}(' in cuda_loss._SOURCE for n in names)


def _problem(n, c, dtype, seed, weighted):
    """The CPU kernel tests' problem, plus a target at class 7 in the last row."""
    x, t, w = _cpu_problem(n, c, dtype, seed, weighted)
    if n > 2:
        t[-1] = 7 if c > 7 else -100
    return x, t, w


def _tol(dtype):
    if dtype == np.float64:
        return {"rtol": 1e-12, "atol": 1e-12}
    if dtype == np.float32:
        return {"rtol": 1e-5, "atol": 1e-5}
    return {"rtol": 5e-3, "atol": 5e-3}  # float16 against a float32 reference


def _close(got, want, dtype):
    import cupy

    assert got is not None, "the CUDA kernel declined the call"
    assert cuda_loss.is_cupy(got)
    got = cupy.asnumpy(got)
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, want, equal_nan=True, **_tol(dtype))


def _check(x, t, w, smoothing, dtype=None, ref_dtype=None):
    """Every kernel entry against the NumPy path for the problem (x, t, w) (CPU arrays)."""
    import cupy

    dtype = dtype or x.dtype
    rx, rw = x.astype(ref_dtype or dtype), None if w is None else w.astype(ref_dtype or dtype)
    dx, dt = cupy.asarray(x.astype(dtype)), cupy.asarray(t)
    dw = None if w is None else cupy.asarray(w.astype(dtype))
    attrs = {"ignore_index": -100, "label_smoothing": smoothing}
    out = cuda_loss.cross_entropy_forward(dx, dt, dw, with_grad=True, **attrs)
    assert out is not None
    _close(out[0], _ref("cross_entropy", rx, t, rw, reduction="none", **attrs), dtype)
    valid = t != -100
    _close(out[1], (1.0 if w is None else rw[np.where(valid, t, 0)]) * valid, dtype)
    g1 = np.asarray(1.0, rx.dtype)
    _close(out[2], _ref("cross_entropy_backward", rx, t, rw, g1, reduction="sum", **attrs), dtype)
    rng = np.random.default_rng(x.size)
    for reduction in ("none", "sum", "mean"):
        got = cuda_loss.cross_entropy_loss(dx, dt, dw, reduction=reduction, **attrs)
        _close(got, _ref("cross_entropy", rx, t, rw, reduction=reduction, **attrs), dtype)
        g = rng.uniform(-2, 2, x.shape[:1] if reduction == "none" else ()).astype(rx.dtype)
        grad = cuda_loss.cross_entropy_grad(
            dx, dt, cupy.asarray(g.astype(dtype)), dw, reduction=reduction, **attrs
        )
        want = _ref("cross_entropy_backward", rx, t, rw, g, reduction=reduction, **attrs)
        _close(grad, want, dtype)
        if reduction != "mean":  # the seam contract: scale = g
            got = cuda_loss.cross_entropy_backward(
                dx, dt, cupy.asarray(g.astype(dtype)), dw, **attrs
            )
            _close(got, want, dtype)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 5, 128])
@pytest.mark.parametrize("c", [1, 3, 10, 33, 96, 1000])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_kernels_match_the_numpy_path(dtype, n, c, weighted, smoothing):
    x, t, w = _problem(n, c, dtype, n * c, weighted)
    _check(x, t, w, smoothing)


@gpu
@pytest.mark.parametrize("c", [3, 96, 1000])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_float16_against_float32(c, weighted, smoothing):
    x, t, w = _problem(37, c, np.float16, c, weighted)
    _check(x, t, w, smoothing, dtype=np.float16, ref_dtype=np.float32)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_inf_and_nan_logits(dtype, weighted, smoothing):
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [1.0, -inf, 2.0, 0.5],  # a masked logit: finite
            [-inf, 3.0, -inf, -inf],
            [inf, 0.0, 1.0, 2.0],  # NaN
            [nan, 0.0, 1.0, 2.0],  # NaN
            [-inf, -inf, -inf, -inf],  # NaN, as NumPy
            [nan, 0.0, 1.0, 2.0],  # ignored, still NaN (NaN * 0)
            [0.0, 1.0, 2.0, 3.0],  # ignored
            [1.0, 2.0, -inf, 0.0],  # target on a -inf logit: inf loss
        ],
        dtype,
    )
    t = np.array([0, 1, 2, 3, 0, -100, -100, 2])
    w = np.array([0.5, 1.0, 1.5, 2.0], dtype) if weighted else None
    _check(x, t, w, smoothing)


@gpu
@pytest.mark.parametrize("weighted", [False, True])
def test_long_mean_and_all_ignored(weighted):
    """More rows than a block sums itself (one block of xent_mean_inv first); all ignored:
    'mean' is NaN (0 / 0) and its gradient 0."""
    x, t, w = _problem(cuda_loss._MEAN_INLINE + 1000, 5, np.float64, 3, weighted)
    t[::7] = -100
    _check(x, t, w, 0.1)
    _check(x[:6], np.full(6, -100), None if w is None else w, 0.0)
    _check(x, np.full(len(t), -100), w, 0.0)


@gpu
def test_strided_inputs_int32_targets_and_broadcast_scales():
    import cupy

    x, t, w = _problem(40, 21, np.float32, 9, True)
    big = cupy.asarray(np.repeat(x, 2, axis=1))[:, ::2]  # not contiguous
    t32 = cupy.asarray(t.astype(np.int32))
    attrs = {"ignore_index": -100, "label_smoothing": 0.1}
    want = _ref("cross_entropy", x, t, w, reduction="mean", **attrs)
    _close(cuda_loss.cross_entropy_loss(big, t32, cupy.asarray(w), reduction="mean", **attrs),
           want, np.float32)  # fmt: skip
    g = np.linspace(-1, 1, 40).astype(np.float32)
    for scale in (cupy.asarray(g[::-1].copy())[::-1], cupy.asarray(np.repeat(g, 3))[::3]):
        got = cuda_loss.cross_entropy_grad(big, t32, scale, cupy.asarray(w), reduction="none",
                                           **attrs)  # fmt: skip
        want = _ref("cross_entropy_backward", x, t, w, g, reduction="none", **attrs)
        _close(got, want, np.float32)
    ones = cupy.broadcast_to(cupy.asarray(np.float32(2.0)), (40,))  # stride 0
    got = cuda_loss.cross_entropy_grad(big, t32, ones, None, reduction="none", **attrs)
    want = _ref("cross_entropy_backward", x, t, None, np.full(40, 2, np.float32),
                reduction="none", **attrs)  # fmt: skip
    _close(got, want, np.float32)
    got = cuda_loss.cross_entropy_backward(big, t32, 0.5, None, **attrs)  # a number
    _close(got, want / 4, np.float32)


@gpu
def test_bad_targets_are_refused_and_never_read():
    import cupy

    x = cupy.asarray(np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32))
    w = cupy.ones(5, cupy.float32)
    for bad in (5, 1000, -1, -101):
        t = cupy.asarray(np.array([0, 1, bad, 3, -100, 2]))
        assert cuda_loss.cross_entropy_forward(x, t, w) is None
        for reduction in ("none", "sum", "mean"):
            assert cuda_loss.cross_entropy_loss(x, t, w, -100, 0.0, reduction) is None
        g = cupy.asarray(np.float32(1.0))
        dx = cupy.asnumpy(cuda_loss.cross_entropy_grad(x, t, g, w, -100, 0.1, "mean"))
        assert np.isnan(dx[2]).all() and np.isfinite(np.delete(dx, 2, axis=0)).all()
    t = cupy.asarray(np.array([0, 1, 2, 3, 4, 0]))
    assert cuda_loss.cross_entropy_forward(x, t, w) is not None  # the next call is served
    assert cuda_loss.cross_entropy_loss(x[:, :0], t, None, -100, 0.0, "sum") is None  # empty
    assert cuda_loss.cross_entropy_loss(x, t.astype(cupy.float32), None, -100, 0.0, "sum") is None
    assert cuda_loss.cross_entropy_loss(x, t, w[:4], -100, 0.0, "sum") is None


# -- the whole op on cuda tensors against the CPU ---------------------------------------------
def _op(dev, x, t, w, reduction, smoothing, g, mode):
    """Forward and input gradient of F.cross_entropy on ``dev``, as NumPy arrays."""
    before = runtime.mode()
    runtime.set_mode(mode)
    try:
        xt = ember.tensor(x, requires_grad=True, device=dev)
        wt = None if w is None else ember.tensor(w, device=dev)
        out = F.cross_entropy(xt, ember.tensor(t, device=dev), weight=wt, reduction=reduction,
                              label_smoothing=smoothing)  # fmt: skip
        (out * ember.tensor(g, device=dev)).sum().backward()
        return out.detach().cpu().numpy(), xt.grad.cpu().numpy()
    finally:
        runtime.set_mode(before)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 1), (5, 3), (128, 10), (128, 96), (5, 1000), (5, 33)])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_op_on_cuda_matches_the_cpu(monkeypatch, dtype, n, c, reduction, weighted, smoothing):
    served = []
    for name in ("cross_entropy_loss", "cross_entropy_grad"):
        f = getattr(cuda_loss, name)
        monkeypatch.setattr(cuda_loss, name,
                            lambda *a, _f=f, **k: served.append(_f(*a, **k)) or served[-1])  # fmt: skip
    x, t, w = _problem(n, c, dtype, n + c, weighted)
    g = np.asarray(np.linspace(0.5, 1.5, n) if reduction == "none" else 0.7, dtype)
    y0, dx0 = _op("cpu", x, t, w, reduction, smoothing, g, "numpy")
    y1, dx1 = _op("cuda", x, t, w, reduction, smoothing, g, "auto")
    assert len(served) == 2 and all(s is not None for s in served)
    assert y1.shape == y0.shape and y1.dtype == y0.dtype and dx1.dtype == dx0.dtype
    np.testing.assert_allclose(y1, y0, equal_nan=True, **_tol(dtype))
    np.testing.assert_allclose(dx1, dx0, equal_nan=True, **_tol(dtype))


@gpu
@pytest.mark.parametrize("bad", [7, -3])
def test_target_out_of_range_raises_as_on_the_cpu(bad):
    x = np.zeros((4, 5), np.float32)
    t = np.array([0, 1, bad, 2])
    messages = []
    for dev in ("cpu", "cuda"):
        with pytest.raises(TargetOutOfBoundsError) as e:
            F.cross_entropy(ember.tensor(x, device=dev), ember.tensor(t, device=dev))
        messages.append(str(e.value))
    assert messages[0] == messages[1] and f"target {bad} is out of bounds" in messages[0]

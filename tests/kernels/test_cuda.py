"""The CUDA layer-norm kernels (``ember.kernels.cuda``) against a float64 NumPy
reference and the CPU op: forward, dx and the affine gradients, over edge shapes (rows not a
multiple of the warp, one column, one row, more rows than a column block), without weight
or bias, in float16/32/64, with inf and NaN, and for strided inputs. Skipped without a GPU."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.kernels import cuda

gpu = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


def test_numpy_arrays_are_not_served():
    x = np.ones((2, 3), np.float32)
    assert not cuda.is_cupy(x)
    assert cuda.layer_norm_forward(x, 1) is None
    assert cuda.layer_norm_backward(x, x, None, 1, 1e-5, True, True) is None


def _reference(x, w, b, g, eps, k):
    """float64 forward and gradients over the last ``k`` axes."""
    axes = tuple(range(x.ndim - k, x.ndim))
    lead = tuple(range(x.ndim - k))
    x, g = x.astype(np.float64), g.astype(np.float64)
    m = x.mean(axis=axes, keepdims=True)
    r = 1 / np.sqrt(((x - m) ** 2).mean(axis=axes, keepdims=True) + eps)
    xh = (x - m) * r
    y = xh * (1 if w is None else w) + (0 if b is None else b)
    gw = g * (1 if w is None else w)
    dx = r * (
        gw - gw.mean(axis=axes, keepdims=True) - xh * (gw * xh).mean(axis=axes, keepdims=True)
    )
    return y, dx, (g * xh).sum(axis=lead), g.sum(axis=lead)


SHAPES = [((4, 37), 1), ((1, 1), 1), ((3, 1), 1), ((200, 130), 1), ((2, 3, 5, 7), 2),
          ((1, 2048), 1)]  # fmt: skip


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape,k", SHAPES)
@pytest.mark.parametrize("affine", [(True, True), (True, False), (False, False)])
def test_forward_and_backward_match_float64(dtype, shape, k, affine):
    import cupy

    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    ns = shape[len(shape) - k :]
    w = rng.standard_normal(ns).astype(dtype) if affine[0] else None
    b = rng.standard_normal(ns).astype(dtype) if affine[1] else None
    dev = [None if a is None else cupy.asarray(a) for a in (x, w, b, g)]
    y = cuda.layer_norm_forward(dev[0], k, dev[1], dev[2], 1e-5)
    flat = cuda.layer_norm_backward(dev[3], dev[0], dev[1], k, 1e-5, True, True)
    ry, rdx, rdw, rdb = _reference(x, w, b, g, 1e-5, k)
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(cupy.asnumpy(y), ry, rtol=tol, atol=tol)
    flat = cupy.asnumpy(flat)
    np.testing.assert_allclose(flat[: x.size].reshape(shape), rdx, rtol=tol, atol=tol * 10)
    d = rdw.size
    np.testing.assert_allclose(flat[x.size : x.size + d], rdw.ravel(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(flat[x.size + d :], rdb.ravel(), rtol=tol, atol=tol * 10)


@gpu
@pytest.mark.parametrize("wanted", [(True, False), (False, True), (False, False)])
def test_only_the_asked_affine_gradients_are_returned(wanted):
    import cupy

    rng = np.random.default_rng(1)
    x, g, w = (cupy.asarray(rng.standard_normal(s).astype(np.float32)) for s in
               ((70, 9), (70, 9), (9,)))  # fmt: skip
    flat = cupy.asnumpy(cuda.layer_norm_backward(g, x, w, 1, 1e-5, *wanted))
    _, rdx, rdw, rdb = _reference(cupy.asnumpy(x), cupy.asnumpy(w), None, cupy.asnumpy(g), 1e-5, 1)
    extra = [r for r, want in zip((rdw, rdb), wanted) if want]
    want = np.concatenate([rdx.ravel()] + [e.ravel() for e in extra])
    np.testing.assert_allclose(flat, want, rtol=1e-4, atol=1e-4)


@gpu
def test_float16_and_special_values_and_strided_inputs():
    import cupy

    x = np.array([[1.0, np.inf, 2.0], [np.nan, 1.0, 2.0], [1.0, 2.0, 4.0]], np.float32)
    y = cupy.asnumpy(cuda.layer_norm_forward(cupy.asarray(x), 1))
    assert np.isnan(y[0]).all() and np.isnan(y[1]).all() and np.isfinite(y[2]).all()
    h = np.random.default_rng(2).standard_normal((8, 40)).astype(np.float16)
    yh = cupy.asnumpy(cuda.layer_norm_forward(cupy.asarray(h), 1))
    assert yh.dtype == np.float16
    np.testing.assert_allclose(yh, _reference(h, None, None, h, 1e-5, 1)[0], atol=1e-2)
    big = np.random.default_rng(3).standard_normal((6, 20)).astype(np.float32)
    strided = cupy.asarray(big)[:, ::2]
    ys = cupy.asnumpy(cuda.layer_norm_forward(strided, 1))
    np.testing.assert_allclose(ys, _reference(big[:, ::2], None, None, big[:, ::2], 1e-5, 1)[0],
                               rtol=1e-5, atol=1e-5)  # fmt: skip


@gpu
def test_layer_norm_op_on_cuda_matches_the_cpu():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 6, 32)).astype(np.float32)
    grads = {}
    for dev in ("cpu", "cuda"):
        ln = ember.nn.LayerNorm(32).to(dev)
        with ember.no_grad():
            ln.weight.copy_(ember.tensor(np.linspace(0.5, 1.5, 32, dtype=np.float32)).to(dev))
        t = ember.tensor(x, requires_grad=True, device=dev)
        y = ln(t)
        (y * y).sum().backward()
        grads[dev] = [a.detach().cpu().numpy() for a in (y, t.grad, ln.weight.grad, ln.bias.grad)]
    for a, b in zip(grads["cpu"], grads["cuda"]):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gelu_tanh_matches_the_cpu_kernels(dtype):
    import cupy

    from ember.ops.activation_grad import _gelu_backward, gelu_xp

    x = np.concatenate([np.linspace(-12, 12, 1001), [0.0, -0.0, 50, -50, np.inf, -np.inf,
                                                      np.nan]]).astype(dtype)  # fmt: skip
    g = np.random.default_rng(5).standard_normal(x.shape).astype(dtype)
    y = cupy.asnumpy(cuda.gelu_tanh(cupy.asarray(x)))
    dx = cupy.asnumpy(cuda.gelu_tanh_backward(cupy.asarray(g), cupy.asarray(x)))
    tol = 2e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(y, gelu_xp(np, x, "tanh"), rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, _gelu_backward.forward(np, g, x, "tanh"), rtol=tol, atol=tol)
    assert y.dtype == x.dtype and dx.dtype == x.dtype


POOLS = [  # kernel, stride, padding, dilation
    ((2, 2), (2, 2), (0, 0), (1, 1)),
    ((3, 3), (1, 1), (1, 1), (1, 1)),  # overlapping windows: atomic adds
    ((3, 2), (2, 1), (1, 0), (2, 1)),
    ((2, 2), (2, 2), (1, 1), (1, 1)),  # windows partly in the padding
]


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kernel,stride,padding,dilation", POOLS)
def test_max_pool_matches_the_numpy_path(dtype, kernel, stride, padding, dilation):
    import cupy

    from ember.ops.nn.pool import _max_pool2d, _max_pool2d_backward

    rng = np.random.default_rng(6)
    x = rng.integers(-3, 3, (2, 3, 7, 6)).astype(dtype)  # many ties: the first max wins
    x[0, 0, 0, 0] = np.nan
    x[1, 2, 3:5, 2:4] = -np.inf
    out_hw = tuple(
        (n + 2 * p - d * (k - 1) - 1) // s + 1
        for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation)
    )
    geom = (kernel, stride, padding, dilation, out_hw)
    attrs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                 out_hw=out_hw)  # fmt: skip
    want = _max_pool2d.forward(np, x, **attrs)
    got = cuda.max_pool2d_forward(cupy.asarray(x), *geom)
    np.testing.assert_array_equal(cupy.asnumpy(got), want)
    g = rng.standard_normal(want.shape).astype(dtype)
    want_dx = _max_pool2d_backward.forward(np, g, x, want, **attrs)
    dx = cuda.max_pool2d_backward(cupy.asarray(g), cupy.asarray(x), *geom)
    np.testing.assert_allclose(cupy.asnumpy(dx), want_dx, rtol=1e-6, atol=1e-6)
    assert cuda.max_pool2d_forward(cupy.asarray(x.astype(np.float16)), *geom) is None

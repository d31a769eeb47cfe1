"""The direct convolution kernels (``conv_direct``, ``conv_weight_grad_direct``): against
PyTorch and a float64 reference, at every geometry (stride, padding, dilation, groups, odd
sizes, batch 1, blocks of output rows that do not divide the height), with 1 and 2 threads,
and with inf/NaN propagating as the im2col + GEMM path propagates them."""

from __future__ import annotations

import numpy as np
import pytest

from ember import kernels
from ember.kernels import conv as kc

torch = pytest.importorskip("torch")

# x shape, w shape, groups, stride, padding (top/left; the convolution pads symmetrically),
# dilation
GEOMETRIES = [
    ((2, 1, 7, 5), (3, 1, 3, 3), 1, (1, 1), (1, 1), (1, 1)),  # W2's first layer, small
    ((3, 4, 9, 11), (6, 2, 3, 3), 2, (2, 1), (1, 2), (1, 2)),
    ((2, 3, 8, 8), (6, 1, 3, 3), 3, (2, 2), (0, 0), (1, 1)),  # depthwise, strided
    ((1, 2, 5, 6), (4, 2, 2, 3), 1, (1, 3), (2, 0), (2, 1)),
    ((4, 1, 40, 3), (2, 1, 5, 1), 1, (1, 1), (2, 0), (1, 1)),  # several row blocks
    ((1, 1, 1, 1), (1, 1, 1, 1), 1, (1, 1), (0, 0), (1, 1)),
    ((2, 2, 13, 17), (6, 1, 3, 3), 2, (1, 1), (1, 1), (1, 1)),  # 3 outputs per group
    ((3, 1, 28, 28), (32, 1, 3, 3), 1, (1, 1), (1, 1), (1, 1)),  # W2's first layer
]


def _torch(x, w, b, g, groups, stride, padding, dilation):
    """PyTorch's output and its weight and bias gradients for output gradient ``g``."""
    xt = torch.from_numpy(x)
    wt, bt = torch.from_numpy(w).requires_grad_(), torch.from_numpy(b).requires_grad_()
    y = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    if g is None:
        return y.detach().numpy(), None, None
    y.backward(torch.from_numpy(g))
    return y.detach().numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES, ids=lambda g: "x".join(map(str, g[0])))
def test_direct_matches_torch(c_kernels, threaded, geom, dtype):
    xs, ws, groups, stride, padding, dilation = geom
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    want, _, _ = _torch(x, w, b, None, groups, stride, padding, dilation)
    out_hw = want.shape[2:]
    g = rng.standard_normal(want.shape).astype(dtype)
    # the float64 reference of the gradients: PyTorch on float64 copies
    _, gw64, gb64 = _torch(*(a.astype(np.float64) for a in (x, w, b, g)), groups, stride,
                           padding, dilation)  # fmt: skip
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)

    y = kc.conv_direct(x, w, b, stride, padding, dilation, out_hw, groups)
    np.testing.assert_allclose(y, want, **tol)
    assert y.dtype == dtype and y.flags.c_contiguous
    y0 = kc.conv_direct(x, w, None, stride, padding, dilation, out_hw, groups)
    np.testing.assert_allclose(y0, want - b.reshape(1, -1, 1, 1), **tol)

    for bias in (False, True):
        gw, gb = kc.conv_weight_grad_direct(x, g, ws[2:], stride, padding, dilation, groups, bias)
        scale = np.abs(g).sum() / g.shape[1]  # the size of one output channel's sums
        np.testing.assert_allclose(gw, gw64, rtol=tol["rtol"], atol=tol["atol"] * scale)
        assert gw.shape == ws and gw.dtype == dtype
        if bias:
            np.testing.assert_allclose(gb, gb64, rtol=tol["rtol"], atol=tol["atol"] * scale)
        else:
            assert gb is None


def test_direct_noncontiguous_inputs(c_kernels):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 6, 2, 3)).astype(np.float32).transpose(3, 2, 1, 0)
    w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32).transpose(3, 2, 0, 1)
    b = rng.standard_normal(8).astype(np.float32)[::2]
    want, _, _ = _torch(np.ascontiguousarray(x), np.ascontiguousarray(w), b.copy(), None, 1,
                        (1, 1), (1, 1), (1, 1))  # fmt: skip
    y = kc.conv_direct(x, w, b, (1, 1), (1, 1), (1, 1), want.shape[2:])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(want.shape[::-1]).astype(np.float32).T  # a transposed view
    gw, _ = kc.conv_weight_grad_direct(x, g, (3, 3), (1, 1), (1, 1), (1, 1))
    ref, _ = kc.conv_weight_grad_direct(x.copy(), g.copy(), (3, 3), (1, 1), (1, 1), (1, 1))
    np.testing.assert_array_equal(gw, ref)


def test_direct_same_bits_run_to_run_and_deterministic_sums(c_kernels, threaded):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 1, 28, 28)).astype(np.float32)
    g = rng.standard_normal((8, 4, 28, 28)).astype(np.float32)
    a = kc.conv_weight_grad_direct(x, g, (3, 3), (1, 1), (1, 1), (1, 1), bias=True)
    b = kc.conv_weight_grad_direct(x, g, (3, 3), (1, 1), (1, 1), (1, 1), bias=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_direct_inf_nan_like_the_gemm_path(c_kernels):
    """inf and NaN spread exactly as through im2col + GEMM: a NaN input reaches every output
    whose window holds it, and padding taps (zeros) times an inf weight give NaN."""
    x = np.ones((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 3, 3] = np.inf
    w = np.ones((2, 1, 3, 3), np.float32)
    w[1, 0, 0, 0] = np.inf
    y = kc.conv_direct(x, w, None, (1, 1), (1, 1), (1, 1), (4, 4))
    cols = kernels.im2col(x, (3, 3), (1, 1), (1, 1), (1, 1), (4, 4))
    with np.errstate(all="ignore"):
        want = (w.reshape(2, 9) @ cols).reshape(2, 1, 4, 4).transpose(1, 0, 2, 3)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(want))
    np.testing.assert_array_equal(y[np.isfinite(want)], want[np.isfinite(want)])
    assert np.isnan(y[0, 1, 0, 0])  # padding x inf weight


def test_direct_kernels_decline(c_kernels):
    x = np.ones((1, 2, 4, 4), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    geo = ((1, 1), (1, 1), (1, 1), (4, 4))
    assert kc.conv_direct(x.astype(np.float16), w.astype(np.float16), None, *geo) is None
    assert kc.conv_direct(x, w.astype(np.float64), None, *geo) is None  # mixed dtypes
    assert kc.conv_direct(x, w, np.ones(2, np.float32), *geo) is None  # bias of the wrong size
    assert kc.conv_direct(x, w, None, *geo, groups=2) is None  # channels do not match groups
    assert kc.conv_direct(x[0], w, None, *geo) is None
    assert kc.conv_weight_grad_direct(x, np.ones((1, 3, 4, 4), np.int64), (3, 3), *geo[:3]) is None
    assert (
        kc.conv_weight_grad_direct(x, np.ones((2, 3, 4, 4), np.float32), (3, 3), *geo[:3]) is None
    )
    assert not kc.direct_available(np.dtype(np.int32))
    assert kc.direct_available(np.dtype(np.float32))
    empty = kc.conv_direct(np.ones((0, 2, 4, 4), np.float32), w, None, *geo)
    assert empty is None  # empty arrays are left to the NumPy path


@pytest.mark.parametrize("block", [64, 1 << 12, 1 << 20])
def test_direct_row_blocks(c_kernels, threaded, monkeypatch, block):
    """Any split of the output rows into work items gives the same outputs."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 2, 19, 9)).astype(np.float64)
    w = rng.standard_normal((5, 2, 3, 2)).astype(np.float64)
    g = rng.standard_normal((2, 5, 9, 10)).astype(np.float64)
    geo = ((2, 1), (1, 1), (1, 2))
    want = kc.conv_direct(x, w, None, *geo, (9, 10))
    want_gw, _ = kc.conv_weight_grad_direct(x, g, (3, 2), *geo)
    monkeypatch.setattr(kc, "DIRECT_BLOCK_BYTES", block)
    np.testing.assert_allclose(kc.conv_direct(x, w, None, *geo, (9, 10)), want, rtol=1e-13)
    gw, _ = kc.conv_weight_grad_direct(x, g, (3, 2), *geo)
    np.testing.assert_allclose(gw, want_gw, rtol=1e-12, atol=1e-12)

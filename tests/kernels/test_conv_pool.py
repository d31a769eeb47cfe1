"""im2col/col2im and max_pool2d kernels: against a padded sliding-window reference, the
adjoint identity, ember's NumPy path, and PyTorch (convolution results, pooling indices)."""

from __future__ import annotations

import numpy as np
import pytest

import ember.nn.functional  # noqa: F401  (registers the nn ops)
from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path

torch = pytest.importorskip("torch")

# (N, C, H, W), kernel, stride, padding (top, bottom, left, right), dilation
GEOMETRIES = [
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    ((2, 3, 5, 7), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ((2, 2, 8, 9), (3, 2), (2, 3), (1, 0, 2, 1), (1, 1)),
    ((1, 3, 9, 9), (3, 3), (2, 2), (2, 2, 2, 2), (2, 2)),
    ((3, 1, 4, 17), (1, 5), (1, 2), (0, 0, 0, 0), (1, 3)),
]


def _out(size, k, s, p0, p1, d):
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def _reference_cols(x, kernel, stride, pads, dilation, out_hw):
    """``(C * kh * kw, N * OH * OW)`` columns from an explicitly padded copy."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out_hw
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    n, c = x.shape[:2]
    cols = np.empty((c, kh, kw, n, oh, ow), x.dtype)
    for i in range(kh):
        for j in range(kw):
            sl = xp[
                :,
                :,
                i * dh : i * dh + sh * (oh - 1) + 1 : sh,
                j * dw : j * dw + sw * (ow - 1) + 1 : sw,
            ]
            cols[:, i, j] = sl.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("geom", GEOMETRIES)
def test_im2col_col2im(c_kernels, threaded, geom, dtype):
    shape, kernel, stride, pads, dilation = geom
    n, c, h, w = shape
    out_hw = (_out(h, kernel[0], stride[0], pads[0], pads[1], dilation[0]),
              _out(w, kernel[1], stride[1], pads[2], pads[3], dilation[1]))  # fmt: skip
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    ref = _reference_cols(x, kernel, stride, pads, dilation, out_hw)
    cols = kernels.im2col(x, kernel, stride, padding, dilation, out_hw)
    assert_close(cols, ref)
    ncl = kernels.im2col(x, kernel, stride, padding, dilation, out_hw, layout="ncl")
    rows = c * kernel[0] * kernel[1]
    assert_close(ncl, ref.reshape(rows, n, -1).transpose(1, 0, 2))
    # col2im is the adjoint of im2col: <im2col(x), y> == <x, col2im(y)>
    y = rng.standard_normal(ref.shape).astype(dtype)
    back = kernels.col2im(y, shape, kernel, stride, padding, dilation, out_hw)
    np.testing.assert_allclose(
        np.vdot(ref, y), np.vdot(x, back), rtol=1e-4 if dtype == np.float32 else 1e-10
    )
    back_ncl = kernels.col2im(y.reshape(rows, n, -1).transpose(1, 0, 2).copy(), shape, kernel,
                              stride, padding, dilation, out_hw, layout="ncl")  # fmt: skip
    assert_close(back_ncl, back)


def test_im2col_feeds_a_gemm_that_matches_torch_conv2d(c_kernels):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 10, 9)).astype(np.float32)
    wt = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    stride, pad, dil = (2, 1), (1, 1), (1, 2)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(wt), stride=stride,
                                     padding=pad, dilation=dil).numpy()  # fmt: skip
    out_hw = ref.shape[2:]
    cols = kernels.im2col(x, (3, 3), stride, pad, dil, out_hw, layout="ncl")
    y = np.matmul(wt.reshape(4, -1), cols).reshape(ref.shape)  # already NCHW
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    # and the input gradient through col2im matches torch's
    xt = torch.from_numpy(x).requires_grad_()
    g = rng.standard_normal(ref.shape).astype(np.float32)
    torch.nn.functional.conv2d(xt, torch.from_numpy(wt), stride=stride, padding=pad,
                               dilation=dil).backward(torch.from_numpy(g))  # fmt: skip
    gcols = np.matmul(wt.reshape(4, -1).T, g.reshape(2, 4, -1))
    gx = kernels.col2im(gcols, x.shape, (3, 3), stride, pad, dil, out_hw, layout="ncl")
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)


POOLS = [
    ((1, 1, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 6, 10), (2, 2), (2, 2), (0, 0), (1, 1), False),  # the 2x2 path
    ((2, 3, 7, 11), (2, 2), (2, 2), (0, 0), (1, 1), False),  # 2x2, a last row and column unread
    ((2, 3, 7, 10), (2, 2), (2, 2), (0, 0), (1, 1), True),  # ceil mode: the generic path
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 2, 7, 9), (3, 2), (2, 1), (1, 0), (1, 1), True),
    ((1, 2, 9, 8), (2, 3), (1, 2), (0, 1), (2, 1), False),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,kernel,stride,padding,dilation,ceil", POOLS)
def test_max_pool2d(c_kernels, threaded, shape, kernel, stride, padding, dilation, ceil, dtype):
    rng = np.random.default_rng(shape[-1])
    x = rng.standard_normal(shape).astype(dtype)
    x.flat[::5] = x.flat[-1]  # ties: the first maximum wins
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = torch.nn.functional.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=ceil,
                                            return_indices=True)  # fmt: skip
    out_hw = tuple(yt.shape[2:])
    y, idx = kernels.max_pool2d_forward(x, kernel, stride, padding, dilation, out_hw, True)
    assert_close(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    attrs = dict(
        kernel_size=kernel, stride=stride, padding=padding, dilation=dilation, out_hw=out_hw
    )
    with numpy_path():
        assert_close(y, REGISTRY["max_pool2d"].forward(np, x, **attrs))
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    dx = kernels.max_pool2d_backward(g, x, kernel, stride, padding, dilation, out_hw)
    assert_close(dx, xt.grad.numpy())


@pytest.mark.parametrize(
    "shape,ceil", [((1, 2, 4, 6), False), ((1, 1, 4, 5), True)], ids=["2x2-path", "generic"]
)
def test_max_pool2d_one_nan_per_window_wins_like_torch(c_kernels, shape, ceil):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, 0, 1] = x[0, 0, 3, 2] = np.nan
    x[0, 0, 2, 0] = np.inf
    xt = torch.from_numpy(x)
    yt, it = torch.nn.functional.max_pool2d(xt, 2, 2, ceil_mode=ceil, return_indices=True)
    y, idx = kernels.max_pool2d_forward(
        x, (2, 2), (2, 2), (0, 0), (1, 1), tuple(yt.shape[2:]), True
    )
    assert_close(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())


def test_max_pool2d_special_values(c_kernels):
    x = np.array([[[[1.0, np.nan, 3.0, -np.inf], [np.inf, 0.0, -np.inf, -np.inf]]]], np.float32)
    y, idx = kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), (1, 2), True)
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1  # NaN wins, like torch
    assert y[0, 0, 0, 1] == 3.0
    x2 = np.full((1, 1, 2, 2), -np.inf, np.float32)
    y2, idx2 = kernels.max_pool2d_forward(x2, (2, 2), (2, 2), (0, 0), (1, 1), (1, 1), True)
    assert y2[0, 0, 0, 0] == -np.inf and idx2[0, 0, 0, 0] == 0
    dx = kernels.max_pool2d_backward(np.ones((1, 1, 1, 2), np.float32), x, (2, 2), (2, 2), (0, 0),
                                     (1, 1), (1, 2))  # fmt: skip
    assert dx[0, 0, 0, 1] == 1 and dx[0, 0, 0, 2] == 1 and dx.sum() == 2


def test_conv_kernels_decline(c_kernels):
    x = np.ones((1, 1, 4, 4), np.float16)
    assert kernels.im2col(x, (2, 2), (1, 1), (0, 0), (1, 1), (3, 3)) is None
    assert (
        kernels.max_pool2d_forward(
            np.ones((4, 4), np.float32), (2, 2), (2, 2), (0, 0), (1, 1), (2, 2)
        )
        is None
    )
    assert (
        kernels.max_pool2d_forward(
            np.ones((1, 1, 4, 4), np.int64), (2, 2), (2, 2), (0, 0), (1, 1), (2, 2)
        )
        is None
    )
    assert (
        kernels.col2im(
            np.ones((3, 3), np.float32), (1, 1, 4, 4), (2, 2), (1, 1), (0, 0), (1, 1), (3, 3)
        )
        is None
    )
    with pytest.raises(ValueError, match="layout"):
        kernels.im2col(
            np.ones((1, 1, 4, 4), np.float32), (2, 2), (1, 1), (0, 0), (1, 1), (3, 3), "nlc"
        )

"""The fast paths behind W2's convolutions and pools: 2x2 / stride-2 max pooling done in
fixed blocks of 8 or 4 outputs (the last block overlapping), and im2col/col2im over whole
runs of rows (stride 1, output as wide as the input). Each against ember's NumPy path bit
for bit where the order of operations is the same, and against PyTorch, with ties, signed
zeros, inf and NaN, odd sizes, every block shape, and 1 or 2 threads."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels
from ember.ops.nn import conv as conv_ops
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path
from .test_conv_pool import _out, _reference_cols

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]


def _same_bits(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to the bit: signed zeros and NaN payloads included."""
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


# -- 2x2 / stride-2 max pooling ----------------------------------------------------------------
# output widths 1-3 (a short loop), 4-7 (two blocks of 4), 8 and more (blocks of 8); odd
# heights and widths leave a last row or column that no window reads
POOL_SHAPES = [
    (1, 1, 2, 2),
    (2, 3, 4, 6),
    (1, 2, 8, 8),
    (2, 2, 6, 14),
    (2, 3, 5, 17),
    (3, 2, 14, 28),
    (1, 1, 7, 36),
    (2, 1, 3, 3),
]


def _pool_input(shape, dtype, seed):
    """Few distinct values (many ties, +0.0 and -0.0 side by side), inf and -inf, and at most
    one NaN per 2x2 window (PyTorch keeps the last NaN of a window, ember the first)."""
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array([-1.0, -0.0, 0.0, 0.5, 2.0, np.inf, -np.inf]), size=shape)
    x = x.astype(dtype)
    n, c, h, w = shape
    ni, ci, oh, ow = np.nonzero(rng.random((n, c, h // 2, w // 2)) < 0.2)
    a, b = rng.integers(0, 2, size=(2, len(ni)))
    x[ni, ci, 2 * oh + a, 2 * ow + b] = np.nan
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", POOL_SHAPES)
def test_max_pool2d_2x2_blocks(c_kernels, threaded, shape, dtype):
    x = _pool_input(shape, dtype, sum(shape))
    out_hw = (shape[2] // 2, shape[3] // 2)
    geom = ((2, 2), (2, 2), (0, 0), (1, 1), out_hw)
    attrs = dict(zip(("kernel_size", "stride", "padding", "dilation", "out_hw"), geom))
    y, idx = kernels.max_pool2d_forward(x, *geom, return_indices=True)
    assert kernels.max_pool2d_forward(x, *geom) is not None
    _same_bits(kernels.max_pool2d_forward(x, *geom), y)
    with numpy_path():
        want = REGISTRY["max_pool2d"].forward(np, x, **attrs)
        want_idx = REGISTRY["max_pool2d_indices"].forward(np, x, want, **attrs)
    assert_close(y, want)  # (NumPy's maximum keeps the last of +0.0 and -0.0)
    np.testing.assert_array_equal(idx, want_idx)
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = torch.nn.functional.max_pool2d(xt, 2, return_indices=True)
    _same_bits(y, yt.detach().numpy())  # the first max: +0.0 or -0.0, whichever comes first
    np.testing.assert_array_equal(idx, it.numpy())
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    dx = kernels.max_pool2d_backward(g, x, *geom)
    _same_bits(dx, xt.grad.numpy())
    with numpy_path():  # (-0.0 where the NumPy path multiplies a negative g by False)
        assert_close(dx, REGISTRY["max_pool2d_backward"].forward(np, g, x, want, **attrs))


@pytest.mark.parametrize("shape", [(2, 3, 4, 18), (1, 2, 6, 10)])
def test_max_pool2d_2x2_first_nan_wins(c_kernels, shape):
    """Windows full of NaN: the first NaN is the winner (NumPy's maximum, tap by tap), and its
    gradient goes there; a NaN gradient reaches only the winner."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32)
    x[rng.random(shape) < 0.4] = np.nan
    geom = ((2, 2), (2, 2), (0, 0), (1, 1), (shape[2] // 2, shape[3] // 2))
    attrs = dict(zip(("kernel_size", "stride", "padding", "dilation", "out_hw"), geom))
    y, idx = kernels.max_pool2d_forward(x, *geom, return_indices=True)
    with numpy_path():
        want = REGISTRY["max_pool2d"].forward(np, x, **attrs)
        np.testing.assert_array_equal(
            idx, REGISTRY["max_pool2d_indices"].forward(np, x, want, **attrs)
        )
    assert_close(y, want)
    g = np.full(y.shape, np.nan, np.float32)
    dx = kernels.max_pool2d_backward(g, x, *geom)
    plane = dx.reshape(shape[0] * shape[1], -1)
    hit = np.zeros(plane.shape, bool)
    np.put_along_axis(hit, idx.reshape(len(plane), -1), True, axis=1)
    assert np.isnan(plane[hit]).all() and not plane[~hit].any()


def test_max_pool2d_2x2_noncontiguous_input(c_kernels):
    x = np.random.default_rng(5).standard_normal((3, 2, 10, 12)).astype(np.float32)
    view = x.transpose(0, 1, 3, 2)  # (3, 2, 12, 10), not C-contiguous
    geom = ((2, 2), (2, 2), (0, 0), (1, 1), (6, 5))
    y = kernels.max_pool2d_forward(view, *geom)
    np.testing.assert_array_equal(y, view.reshape(3, 2, 6, 2, 5, 2).max(axis=(3, 5)))
    g = np.ones(y.shape, np.float32)
    xt = torch.from_numpy(np.ascontiguousarray(view)).requires_grad_()
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.from_numpy(g))
    np.testing.assert_array_equal(kernels.max_pool2d_backward(g, view, *geom), xt.grad.numpy())


# -- im2col / col2im over runs of rows -----------------------------------------------------------
# (N, C, H, W), kernel, padding (top, bottom, left, right), dilation: stride 1 and an output
# as wide as the input, the geometry whose rows are done as one run
RUNS = [
    ((2, 3, 5, 7), (3, 3), (1, 1, 1, 1), (1, 1)),
    ((2, 2, 6, 6), (5, 5), (2, 2, 2, 2), (1, 1)),
    ((1, 2, 4, 5), (3, 3), (2, 2, 2, 2), (2, 2)),
    ((2, 1, 3, 4), (3, 3), (0, 2, 2, 0), (1, 1)),
    ((1, 2, 2, 3), (5, 5), (2, 2, 2, 2), (1, 1)),  # taps with no row inside
    ((1, 1, 3, 1), (1, 3), (0, 0, 1, 1), (1, 1)),  # taps with no column inside
    ((3, 4, 14, 14), (3, 3), (1, 1, 1, 1), (1, 1)),  # W2's second convolution, smaller
]


def _specials(rng, shape, dtype):
    a = rng.standard_normal(shape).astype(dtype)
    r = rng.random(shape)
    a[r < 0.03] = np.nan
    a[(r >= 0.03) & (r < 0.05)] = np.inf
    a[(r >= 0.05) & (r < 0.07)] = -np.inf
    a[(r >= 0.07) & (r < 0.1)] = -0.0
    return a


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("geom", RUNS)
def test_im2col_col2im_runs(c_kernels, threaded, geom, dtype):
    shape, kernel, pads, dilation = geom
    n, c, h, w = shape
    out_hw = (_out(h, kernel[0], 1, pads[0], pads[1], dilation[0]),
              _out(w, kernel[1], 1, pads[2], pads[3], dilation[1]))  # fmt: skip
    assert out_hw[1] == w
    rng = np.random.default_rng(sum(shape) + kernel[0])
    x = _specials(rng, shape, dtype)
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    args = (kernel, (1, 1), padding, dilation, out_hw)
    ref = _reference_cols(x, kernel, (1, 1), pads, dilation, out_hw)
    _same_bits(kernels.im2col(x, *args), ref)
    rows = c * kernel[0] * kernel[1]
    ncl = kernels.im2col(x, *args, layout="ncl")
    _same_bits(ncl, np.ascontiguousarray(ref.reshape(rows, n, -1).transpose(1, 0, 2)))
    # col2im: the same sums in the same (i, j) order as the NumPy path, so the same values
    # (NaN's sign aside: which operand's NaN an addition keeps is the compiler's choice); the
    # padding taps (NaN and inf among them) are dropped
    y = _specials(rng, ref.shape, dtype)
    back = kernels.col2im(y, shape, *args)
    with numpy_path():
        want = conv_ops._col2im(np, y, shape, *args)
    np.testing.assert_array_equal(back, want)
    assert not np.signbit(back[back == 0]).any()  # sums that start at +0.0 are never -0.0
    y_ncl = np.ascontiguousarray(y.reshape(rows, n, -1).transpose(1, 0, 2))
    np.testing.assert_array_equal(kernels.col2im(y_ncl, shape, *args, layout="ncl"), back)


def test_col2im_runs_match_torch_input_gradient(c_kernels):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5, 9, 9)).astype(np.float32)
    wt = rng.standard_normal((6, 5, 3, 3)).astype(np.float32)
    g = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.conv2d(xt, torch.from_numpy(wt), padding=1).backward(torch.from_numpy(g))
    gcols = wt.reshape(6, -1).T @ g.transpose(1, 0, 2, 3).reshape(6, -1)
    gx = kernels.col2im(gcols, x.shape, (3, 3), (1, 1), (1, 1), (1, 1), (9, 9))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_col2im_into_out(c_kernels):
    rng = np.random.default_rng(8)
    cols = rng.standard_normal((18, 2 * 4 * 5))
    args = ((2, 2, 4, 5), (3, 3), (1, 1), (1, 1), (1, 1), (4, 5))
    want = kernels.col2im(cols, *args)
    out = np.full((2, 2, 4, 5), np.nan)  # overwritten, not added to
    assert kernels.col2im(cols, *args, out=out) is out
    np.testing.assert_array_equal(out, want)
    for bad in (np.zeros((2, 2, 4, 5), np.float32), np.zeros((2, 2, 5, 4)).transpose(0, 1, 3, 2)):
        got = kernels.col2im(cols, *args, out=bad)
        assert got is not bad and not bad.any()
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_in_pieces_matches_whole(c_kernels, no_implicit, served, monkeypatch, stride):
    """A batch done a few samples at a time (each piece's GEMM written into its columns of
    one result, col2im summing into its rows of the input gradient) gives the whole batch's
    results."""
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal(s) for s in ((5, 4, 9, 8), (6, 2, 3, 3), (6,))]
    u = rng.standard_normal((5, 6, 9 // stride + (stride == 2), 8 // stride))

    def run():
        ts = [ember.tensor(a, requires_grad=True) for a in arrays]
        y = F.conv2d(*ts, stride=stride, padding=1, groups=2)
        (y * ember.tensor(u)).sum().backward()
        return [y.detach().numpy()] + [t.grad.numpy() for t in ts]

    whole = run()
    per_sample = 4 * 9 * u.shape[2] * u.shape[3]  # columns of one sample
    monkeypatch.setattr(conv_ops, "_COLS_LIMIT", 2 * per_sample)  # two samples at a time
    pieces = run()
    assert served["col2im"] > 0 and served["im2col"] > 0
    for a, b in zip(whole, pieces, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)

"""The implicit-GEMM convolution kernels (``kernels.implicit_*``, source in
``ember/kernels/source/conv_gemm.py``) against PyTorch and the NumPy path: forward, weight
and bias gradients, and the unit-stride transposed convolution, grouped or not, on edge
shapes (one
position, output channels not a multiple of the register block's rows, positions not a
multiple of its columns, runs longer and shorter than a vector, more taps than one pass
over K holds), strides, dilations and asymmetric padding, with 1 and 2 threads, and with
inf and NaN. The Winograd kernel, which serves 3 x 3 unit-stride convolutions with many
channels first, is turned off here (its own tests are in ``test_conv_winograd.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from ember import kernels
from ember.kernels import winograd
from ember.ops.nn import conv as _conv_ops  # noqa: F401  (registers the conv ops)
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

torch = pytest.importorskip("torch")
tf = torch.nn.functional


@pytest.fixture(autouse=True)
def _implicit_only(monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNELS", 1 << 30)


# (N, C, H, W), (O, kh, kw), stride, padding (top, left) as PyTorch's symmetric one, dilation
CASES = [
    ((2, 3, 7, 5), (4, 3, 3), 1, 1, 1),
    ((1, 1, 1, 1), (1, 1, 1), 1, 0, 1),  # one position, one tap
    ((3, 5, 9, 11), (7, 3, 3), 2, 1, 1),  # strided
    ((2, 4, 10, 9), (13, 3, 3), 1, 2, 2),  # dilated, 13 outputs (two full blocks and 1)
    ((2, 3, 6, 6), (6, 2, 2), 1, 0, 1),  # even kernel
    ((4, 32, 14, 14), (64, 3, 3), 1, 1, 1),  # W2's second convolution, in small
    ((2, 17, 13, 19), (5, 5, 5), 1, 2, 1),
    ((1, 2, 30, 30), (3, 3, 3), 3, 0, 1),
    ((5, 3, 4, 4), (17, 1, 1), 1, 0, 1),  # 1x1
    ((2, 64, 5, 37), (3, 3, 3), 1, 1, 1),  # K = 576: two passes over K; rows of 37
]
IDS = ["basic", "one", "strided", "dilated", "even", "w2", "k5", "stride3", "1x1", "k576"]


def _arrays(shape, out, dtype, seed=0):
    rng = np.random.default_rng(seed)
    o, kh, kw = out
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((o, shape[1], kh, kw)) / np.sqrt(shape[1] * kh * kw)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    return x, w, b


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, out, s, p, d", CASES, ids=IDS)
def test_matches_torch(c_kernels, threaded, shape, out, s, p, d, dtype):
    x, w, b = _arrays(shape, out, dtype)
    ts = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = tf.conv2d(*ts, stride=s, padding=p, dilation=d)
    oh, ow = yt.shape[2:]
    y = kernels.implicit_conv2d(x, w, b, (s, s), (p, p), (d, d), (oh, ow))
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    assert y.flags.c_contiguous and y.dtype == dtype
    g = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    gw, gb = kernels.implicit_weight_grad(x, g, out[1:], (s, s), (p, p), (d, d), bias=True)
    np.testing.assert_allclose(gw, ts[1].grad.numpy(), **_tol(dtype))
    np.testing.assert_allclose(gb, ts[2].grad.numpy(), **_tol(dtype))
    gw_only, none = kernels.implicit_weight_grad(x, g, out[1:], (s, s), (p, p), (d, d))
    assert none is None
    np.testing.assert_array_equal(gw_only, gw)
    if s == 1:  # the input gradient: the transposed convolution, through the flipped weight
        gx = kernels.implicit_transpose2d(g, w, None, (p, p), (d, d), shape[2:])
        np.testing.assert_allclose(gx, ts[0].grad.numpy(), **_tol(dtype))


def test_asymmetric_padding_same_with_even_kernel(c_kernels):
    x, w, b = _arrays((2, 3, 6, 7), (4, 2, 4), np.float64)
    ts = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = tf.conv2d(*ts, padding="same")
    padding = ((0, 1), (1, 2))  # PyTorch's 'same': the extra row and column at the end
    y = kernels.implicit_conv2d(x, w, b, (1, 1), padding, (1, 1), (6, 7))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(2).standard_normal(y.shape)
    yt.backward(torch.from_numpy(g))
    gw, gb = kernels.implicit_weight_grad(x, g, (2, 4), (1, 1), padding, (1, 1), bias=True)
    np.testing.assert_allclose(gw, ts[1].grad.numpy(), rtol=1e-12, atol=1e-12)
    gx = kernels.implicit_transpose2d(g, w, None, padding, (1, 1), (6, 7))
    np.testing.assert_allclose(gx, ts[0].grad.numpy(), rtol=1e-12, atol=1e-12)


def test_transposed_convolution_with_bias_and_output_size(c_kernels):
    """conv_transpose2d itself (stride 1): a bias, and an output larger than the input's
    convolution span (PyTorch's output_padding is stride-bound, so the size comes from a
    smaller padding)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 6, 4))
    w, b = rng.standard_normal((5, 3, 3, 2)), rng.standard_normal(3)
    want = tf.conv_transpose2d(*(torch.from_numpy(a) for a in (x, w, b)), padding=(1, 0))
    got = kernels.implicit_transpose2d(x, w, b, (1, 0), (1, 1), tuple(want.shape[2:]))
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-12, atol=1e-12)


def test_threads_do_not_change_the_forward(c_kernels, monkeypatch):
    """Each output is summed by one thread in the same order: 1 and 2 threads agree exactly
    (the weight gradient adds per-thread sums, so only its rounding may differ)."""
    from ember import threads

    x, w, b = _arrays((3, 8, 9, 10), (11, 3, 3), np.float32)
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", 1)
    out = []
    for n in (1, 2):
        monkeypatch.setattr(threads, "_kernel_threads", n)
        out.append(kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (9, 10)))
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_and_nan_as_in_the_numpy_path(c_kernels, dtype):
    rng = np.random.default_rng(4)
    x, w, b = _arrays((2, 6, 8, 9), (5, 3, 3), dtype, seed=4)
    x = with_specials(x, rng, 0.02)
    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    y = kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (8, 9))
    with numpy_path():
        want = REGISTRY["conv2d"].forward(np, x, w, b, out_hw=(8, 9), **attrs)
    assert np.isnan(y).any() and np.isinf(y).any()
    assert_close(y, want)
    g = with_specials(rng.standard_normal(y.shape).astype(dtype), rng, 0.01)
    gw, gb = kernels.implicit_weight_grad(x, g, (3, 3), (1, 1), (1, 1), (1, 1), bias=True)
    with numpy_path():
        flat = REGISTRY["conv2d_weight_grad"].forward(
            np, x, g, kernel=(3, 3), with_bias=True, **attrs
        )
    assert_close(np.concatenate([gw.ravel(), gb]), flat)


def test_non_contiguous_inputs(c_kernels):
    x, w, b = _arrays((2, 3, 5, 6), (4, 3, 3), np.float64)
    xv = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    wv = np.ascontiguousarray(w[:, :, ::-1]).copy()[:, :, ::-1]
    assert not xv.flags.c_contiguous and not wv.flags.c_contiguous
    y = kernels.implicit_conv2d(xv, wv, b, (1, 1), (1, 1), (1, 1), (5, 6))
    np.testing.assert_array_equal(
        y, kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (5, 6))
    )


def test_declines(c_kernels):
    x, w, b = _arrays((1, 2, 4, 4), (3, 3, 3), np.float32)
    geo = ((1, 1), (1, 1), (1, 1), (4, 4))
    assert kernels.implicit_conv2d(x.astype(np.int64), w.astype(np.int64), None, *geo) is None
    assert kernels.implicit_conv2d(x, w.astype(np.float64), None, *geo) is None
    assert kernels.implicit_conv2d(x, w[:, :1], None, *geo) is None  # grouped weight
    assert kernels.implicit_conv2d(x, w, b[:2], *geo) is None  # one bias per output
    assert kernels.implicit_weight_grad(x, np.ones((2, 3, 4, 4), np.float32), (3, 3),
                                        *geo[:3]) is None  # fmt: skip
    # padding beyond the dilated kernel: no convolution with the flipped weight exists
    assert kernels.implicit_transpose2d(x, np.ones((2, 3, 3, 3), np.float32), None, (3, 3),
                                        (1, 1), (2, 2)) is None  # fmt: skip
    assert not kernels.implicit_available(x.astype(np.int32))
    assert kernels.implicit_available(x)
    with numpy_path():
        assert kernels.implicit_conv2d(x, w, b, *geo) is None
        assert not kernels.implicit_available(x)


def test_empty_batch_is_left_to_the_op(c_kernels):
    import ember
    import ember.nn.functional as F

    x, w, b = _arrays((0, 2, 4, 4), (3, 3, 3), np.float32)
    assert kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (4, 4)) is None
    y = F.conv2d(ember.tensor(x), ember.tensor(w), ember.tensor(b), padding=1)
    assert y.shape == (0, 3, 4, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_applied_on_store(c_kernels, threaded, dtype):
    """``relu=True`` (a convolution fused with its ReLU by the graph optimizer) gives the
    relu op's values: NaN kept, negatives and -0 to +0; the direct kernel likewise."""
    rng = np.random.default_rng(5)
    for shape, out in (((2, 6, 7, 9), (5, 3, 3)), ((3, 1, 8, 5), (7, 3, 3))):
        x, w, b = _arrays(shape, out, dtype, seed=5)
        x = with_specials(x, rng, 0.02)
        x[0, 0, 2, 2] = np.nan
        b[0] = -100.0  # a channel of zeros (and -0.0 where the sum is -0.0)
        geo = ((1, 1), (1, 1), (1, 1), shape[2:])
        plain = kernels.implicit_conv2d(x, w, b, *geo)
        fused = kernels.implicit_conv2d(x, w, b, *geo, relu=True)
        with numpy_path():
            want = REGISTRY["relu"].forward(np, plain)
        np.testing.assert_array_equal(fused, want)
        assert not np.signbit(fused[fused == 0]).any() and np.isnan(fused).any()
        direct = kernels.conv_direct(x, w, b, *geo, 1, True)
        if direct is not None:  # the direct kernel serves any tap count
            plain_direct = kernels.conv_direct(x, w, b, *geo)
            with numpy_path():
                np.testing.assert_array_equal(direct, REGISTRY["relu"].forward(np, plain_direct))


# (N, C, H, W), (O, kh, kw), stride, padding, groups
GROUPED = [
    ((2, 8, 9, 7), (12, 3, 3), 1, 1, 2),  # 6 outputs per group: one full block each
    ((3, 12, 6, 11), (9, 3, 3), 2, 1, 3),  # strided, 3 outputs per group (a partial block)
    ((2, 32, 7, 7), (64, 3, 3), 1, 1, 4),  # ResNeXt-like: 8 channels x 9 taps per group
    ((1, 6, 5, 5), (6, 1, 1), 1, 0, 2),  # 1x1 (3 taps: the direct path's size, served anyway)
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, out, s, p, groups", GROUPED, ids=["g2", "g3s2", "g4", "g2_1x1"])
def test_grouped_matches_torch(c_kernels, threaded, shape, out, s, p, groups, dtype):
    rng = np.random.default_rng(6)
    o, kh, kw = out
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((o, shape[1] // groups, kh, kw)) / 3).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    ts = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = tf.conv2d(*ts, stride=s, padding=p, groups=groups)
    oh, ow = yt.shape[2:]
    y = kernels.implicit_conv2d(x, w, b, (s, s), (p, p), (1, 1), (oh, ow), groups)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    g = np.random.default_rng(7).standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    gw, gb = kernels.implicit_weight_grad(x, g, (kh, kw), (s, s), (p, p), (1, 1), True, groups)
    np.testing.assert_allclose(gw, ts[1].grad.numpy(), **_tol(dtype))
    np.testing.assert_allclose(gb, ts[2].grad.numpy(), **_tol(dtype))
    if s == 1:
        gx = kernels.implicit_transpose2d(g, w, None, (p, p), (1, 1), shape[2:], groups)
        np.testing.assert_allclose(gx, ts[0].grad.numpy(), **_tol(dtype))
    # a grouping the shapes do not allow is declined
    assert kernels.implicit_conv2d(x, w, b, (s, s), (p, p), (1, 1), (oh, ow), groups + 1) is None


def test_grouped_transposed_convolution_op_matches_torch(c_kernels, served):
    """conv_transpose2d with groups and unit stride (the implicit kernels), and its
    gradients, through the op."""
    import ember
    import ember.nn.functional as F

    rng = np.random.default_rng(8)
    x, w, b = (
        rng.standard_normal((2, 6, 5, 4)),
        rng.standard_normal((6, 4, 3, 3)),
        rng.standard_normal(8),
    )
    ts = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = tf.conv_transpose2d(*ts, padding=1, groups=2)
    es = [ember.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.conv_transpose2d(*es, padding=1, groups=2)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    u = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.from_numpy(u))
    (y * ember.tensor(u)).sum().backward()
    for e, t in zip(es, ts):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-11, atol=1e-11)
    assert served["implicit_transpose2d"] and served["implicit_conv2d"]
    assert served["implicit_weight_grad"]

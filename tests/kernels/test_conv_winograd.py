"""The Winograd convolution kernels (``kernels.winograd``, source in
``ember/kernels/source/winograd.py``), forward and weight gradient, against a float64 NumPy
reference and PyTorch: odd output sizes (a last tile half outside), channels that are not
whole vectors or whole register blocks, top/left padding 0, 1 and 2, a cut output, bias and
ReLU, 1 and 2 threads; the calls they decline (and that inf and NaN then take the
implicit-GEMM path, as the direct sum spreads them); and the conv ops routing their forward,
input gradient and weight gradient through them."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels
from ember.kernels import conv_gemm, winograd
from ember.ops.nn import conv as _conv_ops  # noqa: F401  (registers the conv ops)
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

# (N, C, H, W), O, (top, left) padding, (OH, OW)
CASES = [
    ((2, 16, 5, 7), 16, (1, 1), (5, 7)),  # odd output: last tiles half outside
    ((3, 17, 6, 6), 33, (1, 1), (6, 6)),  # channels not whole vectors nor register blocks
    ((4, 32, 14, 14), 64, (1, 1), (14, 14)),  # W2's second convolution, in small
    ((2, 20, 9, 4), 18, (0, 0), (7, 2)),  # no padding, an image narrower than a vector
    ((1, 16, 3, 3), 16, (2, 2), (5, 5)),  # padding 2: a transposed convolution's
    ((2, 24, 8, 8), 20, (1, 0), (8, 6)),  # padding only at the top; the output cut
    ((1, 16, 1, 1), 16, (1, 1), (1, 1)),  # one position
    ((2, 40, 11, 21), 48, (1, 1), (11, 21)),  # more tiles than one block
    ((2, 8, 6, 5), 8, (1, 1), (6, 5)),  # the fewest channels served
    ((1, 64, 5, 6), 112, (1, 1), (5, 6)),  # many channels: blocks of one register block
]
IDS = ["odd", "ragged", "w2", "valid", "pad2", "asym", "one", "blocks", "few", "many"]


def _arrays(shape, o, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    w = (rng.standard_normal((o, shape[1], 3, 3)) / np.sqrt(9 * shape[1])).astype(dtype)
    return x, w, rng.standard_normal(o).astype(dtype)


def _padded(x, padding, out_hw):
    """``x`` zero-padded (and cut) to the rows and columns the 3 x 3 taps of ``out_hw`` read."""
    (pt, pl), (oh, ow) = padding, out_hw
    n, c, h, wd = x.shape
    xp = np.zeros((n, c, oh + 2, ow + 2))
    hh, ww = min(h, oh + 2 - pt), min(wd, ow + 2 - pl)
    xp[:, :, pt : pt + hh, pl : pl + ww] = x[:, :, :hh, :ww]
    return xp


def _reference(x, w, b, padding, out_hw):
    """The convolution summed directly in float64."""
    (oh, ow), xp = out_hw, _padded(x, padding, out_hw)
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for i in range(3):
        for j in range(3):
            y += np.einsum("nchw,oc->nohw", xp[:, :, i : i + oh, j : j + ow], w[:, :, i, j])
    return y if b is None else y + b[:, None, None]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, o, padding, out_hw", CASES, ids=IDS)
def test_matches_the_direct_sum(c_kernels, threaded, shape, o, padding, out_hw, dtype):
    x, w, b = _arrays(shape, o, dtype)
    want = _reference(x, w, b, padding, out_hw)
    assert_close(winograd.winograd_conv2d(x, w, b, padding, out_hw), want.astype(dtype))
    got = winograd.winograd_conv2d(x, w, None, padding, out_hw, relu=True)
    assert_close(got, np.maximum(want - b[:, None, None], 0).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, o, padding, out_hw", CASES, ids=IDS)
def test_weight_grad_matches_the_direct_sum(c_kernels, threaded, shape, o, padding, out_hw, dtype):
    x, _, _ = _arrays(shape, o, dtype)
    g = np.random.default_rng(1).standard_normal((shape[0], o, *out_hw)).astype(dtype)
    (oh, ow), xp = out_hw, _padded(x, padding, out_hw)
    want = np.zeros((o, shape[1], 3, 3))
    for i in range(3):
        for j in range(3):
            want[:, :, i, j] = np.einsum("nchw,nohw->oc", xp[:, :, i : i + oh, j : j + ow], g)
    gw, gb = winograd.winograd_weight_grad(x, g, padding, bias=True)
    scale = np.abs(want).max()  # sums over every tile: judged against the largest
    np.testing.assert_allclose(
        gw / scale, want / scale, atol=5e-6 if dtype == np.float32 else 1e-14
    )
    assert_close(gb, g.sum(axis=(0, 2, 3)).astype(dtype))
    assert winograd.winograd_weight_grad(x, g, padding)[1] is None


def test_non_contiguous_operands(c_kernels):
    x, w, b = _arrays((2, 24, 7, 9), 16, np.float64)
    xs = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # F-ordered planes
    ws, bs = np.asfortranarray(w), np.repeat(b, 2)[::2]  # a strided bias
    assert not (xs.flags.c_contiguous or ws.flags.c_contiguous or bs.flags.c_contiguous)
    want = _reference(x, w, b, (1, 1), (7, 9))
    assert_close(winograd.winograd_conv2d(xs, ws, bs, (1, 1), (7, 9)), want)
    g = np.random.default_rng(2).standard_normal((2, 16, 9, 7)).transpose(0, 1, 3, 2)
    gw, gb = winograd.winograd_weight_grad(xs, g, (1, 1), bias=True)
    want_w, want_b = winograd.winograd_weight_grad(x, np.ascontiguousarray(g), (1, 1), True)
    np.testing.assert_array_equal(gw, want_w)
    np.testing.assert_array_equal(gb, want_b)


def test_threads_do_not_change_the_result(c_kernels, monkeypatch):
    """A block of tiles is the same whichever thread computes it: 1 and 2 threads agree
    bit for bit."""
    from ember import threads

    x, w, b = _arrays((3, 24, 13, 10), 40, np.float32)
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", 1)
    out = []
    for n in (1, 2):
        monkeypatch.setattr(threads, "_kernel_threads", n)
        out.append(winograd.winograd_conv2d(x, w, b, (1, 1), (13, 10)))
    np.testing.assert_array_equal(out[0], out[1])


def test_declines(c_kernels):
    x, w, b = _arrays((2, 16, 6, 6), 16, np.float32)
    g = np.ones((2, 16, 6, 6), np.float32)
    conv, grad = winograd.winograd_conv2d, winograd.winograd_weight_grad
    assert conv(x, w, b, (1, 1), (6, 6)) is not None
    assert grad(x, g, (1, 1)) is not None
    assert conv(x[:, :4], w[:, :4], b, (1, 1), (6, 6)) is None  # too few input channels
    assert grad(x[:, :4], g, (1, 1)) is None
    assert conv(x, w[:4], b[:4], (1, 1), (6, 6)) is None  # too few output channels
    assert grad(x, g[:, :4], (1, 1)) is None
    assert conv(x.astype(np.float16), w.astype(np.float16), None, (1, 1), (6, 6)) is None
    assert conv(x, w[:, :, :2, :2], b, (1, 1), (6, 6)) is None  # not 3 x 3
    assert conv(x, w, b[:4], (1, 1), (6, 6)) is None  # a bias of the wrong size
    assert conv(x, w, b, (-1, 1), (6, 6)) is None
    assert grad(x, g[:1], (1, 1)) is None  # another batch
    # the weight gradient's accumulators past L2 (measured slower): only the forward serves
    big_x, big_w, _ = _arrays((1, 128, 4, 4), 256, np.float32)
    assert conv(big_x, big_w, None, (1, 1), (4, 4)) is not None
    assert grad(big_x, np.ones((1, 256, 4, 4), np.float32), (1, 1)) is None
    assert winograd.fits(128, 128, np.float32, weight_grad=True)
    assert not winograd.fits(128, 128, np.float64, weight_grad=True)
    assert not winograd.fits(1024, 512, np.float32)


@pytest.mark.parametrize("where", ["input", "filter", "gradient"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_inf_and_nan_take_the_implicit_path(c_kernels, where, dtype):
    """The transforms would spread an inf to the outputs beside it (inf - inf): the kernel
    declines, and the convolution gives the NumPy path's inf and NaN at the same places."""
    rng = np.random.default_rng(3)
    x, w, b = _arrays((2, 16, 8, 9), 16, dtype, seed=3)
    g = rng.standard_normal((2, 16, 8, 9)).astype(dtype)
    if where == "input":
        x = with_specials(x, rng, 0.01)
    elif where == "filter":
        w = with_specials(w, rng, 0.01)
    else:
        g = with_specials(g, rng, 0.01)
    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    if where != "gradient":
        assert winograd.winograd_conv2d(x, w, b, (1, 1), (8, 9)) is None
        y = kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (8, 9))
        with numpy_path():
            want = REGISTRY["conv2d"].forward(np, x, w, b, out_hw=(8, 9), **attrs)
        assert np.isnan(y).any()
        assert_close(y, want)
    if where != "filter":
        assert winograd.winograd_weight_grad(x, g, (1, 1), bias=True) is None
        gw, gb = kernels.implicit_weight_grad(x, g, (3, 3), (1, 1), (1, 1), (1, 1), bias=True)
        with numpy_path():
            flat = REGISTRY["conv2d_weight_grad"].forward(
                np, x, g, kernel=(3, 3), with_bias=True, **attrs
            )
        assert np.isnan(gw).any()
        assert_close(np.concatenate([gw.ravel(), gb]), flat)


@pytest.fixture
def counted(monkeypatch):
    """The calls the Winograd kernels served through the implicit-GEMM seam, by name."""
    calls = []
    for name in ("winograd_conv2d", "winograd_weight_grad"):
        real = getattr(conv_gemm, name)

        def wrapper(*args, _real=real, _name=name, **kwargs):
            out = _real(*args, **kwargs)
            calls.append((_name, out is not None))
            return out

        monkeypatch.setattr(conv_gemm, name, wrapper)
    return calls


def test_conv_op_forward_and_input_gradient_match_torch(c_kernels, counted):
    torch = pytest.importorskip("torch")
    x, w, b = _arrays((3, 24, 10, 9), 32, np.float32, seed=5)
    ex, ew, eb = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(ex, ew, eb, padding=1)
    u = np.random.default_rng(6).standard_normal(y.shape).astype(np.float32)
    (y * ember.tensor(u)).sum().backward()
    forward, grad = ("winograd_conv2d", True), ("winograd_weight_grad", True)
    assert sorted(counted) == sorted([forward, forward, grad])  # + the input gradient
    tx, tw, tb = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, padding=1)
    (ty * torch.from_numpy(u)).sum().backward()
    assert_close(y.detach().numpy(), ty.detach().numpy())
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ew.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_gradients_pass_gradcheck(c_kernels, counted):
    rng = np.random.default_rng(7)
    x = ember.tensor(rng.standard_normal((1, 16, 5, 4)), requires_grad=True)
    w = ember.tensor(rng.standard_normal((16, 16, 3, 3)) / 12, requires_grad=True)
    b = ember.tensor(rng.standard_normal(16), requires_grad=True)
    assert ember.autograd.gradcheck(lambda t, v: F.conv2d(t, v, padding=1), (x, w))
    assert ember.autograd.gradcheck(lambda v, c: F.conv2d(x, v, c, padding=1), (w, b))
    assert {name for name, ok in counted if ok} == {"winograd_conv2d", "winograd_weight_grad"}


def test_winograd_calls_never_build_the_implicit_gemm(c_kernels, monkeypatch):
    """A convolution the Winograd kernels serve looks up (so builds, on a first call) no
    implicit-GEMM kernel: not in the forward, the input or weight gradient, nor in the conv
    op's choice of path. Its weight gradient's library compiles beside its forward's."""
    from ember.kernels.source import UNITS, companions
    from ember.ops.nn.conv_gemm import uses_implicit

    asked = []
    real = conv_gemm.kernel
    monkeypatch.setattr(conv_gemm, "kernel", lambda *a: asked.append(a[0]) or real(*a))
    x, w, b = _arrays((2, 16, 6, 6), 24, np.float32)
    g = np.ones((2, 24, 6, 6), np.float32)
    assert uses_implicit(x, w.shape, (1, 1), (1, 1), 1)
    assert kernels.implicit_conv2d(x, w, b, (1, 1), (1, 1), (1, 1), (6, 6)) is not None
    assert kernels.implicit_transpose2d(g, w, None, (1, 1), (1, 1), (6, 6)) is not None
    assert kernels.implicit_weight_grad(x, g, (3, 3), (1, 1), (1, 1), (1, 1), True) is not None
    assert asked == []
    assert kernels.implicit_conv2d(x, w, b, (2, 2), (1, 1), (1, 1), (3, 3)) is not None
    assert asked == ["conv_gemm"]  # strided: the implicit GEMM
    assert companions(UNITS["winograd"], "winograd_forward") == ["winograd_weight_grad"]

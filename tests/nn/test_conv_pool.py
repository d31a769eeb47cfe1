"""Convolution and pooling beyond the op table: error messages, PyTorch's tie rule for max
pooling, second derivatives against PyTorch, and float32 comparisons at realistic sizes."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from tests.nn.helpers import assert_doctests_pass

torch = pytest.importorskip("torch")
TF = torch.nn.functional


def _pair(shape, seed, dtype=np.float32, relu=False):
    a = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    if relu:
        a = np.maximum(a, 0)
    return ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _close(e, t, atol=1e-4, rtol=1e-4):
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), atol=atol, rtol=rtol)


# -- error messages -------------------------------------------------------------------------
def test_conv2d_wrong_channels_names_both_shapes():
    with pytest.raises(ember.ShapeError) as info:
        F.conv2d(ember.zeros(64, 1, 28, 28), ember.zeros(32, 3, 3, 3))
    msg = str(info.value)
    assert msg.startswith("conv2d:")
    assert "(64, 1, 28, 28)" in msg and "(32, 3, 3, 3)" in msg
    assert "3 channels" in msg and "got 1" in msg
    assert "test_conv_pool.py" in msg  # the user's line


def test_conv_transpose2d_wrong_channels():
    with pytest.raises(ember.ShapeError, match=r"\(2, 3, 5, 5\).*4 channels.*\(4, 2, 3, 3\)"):
        F.conv_transpose2d(ember.zeros(2, 3, 5, 5), ember.zeros(4, 2, 3, 3))


@pytest.mark.parametrize(
    "call, pattern",
    [
        (lambda: F.conv2d(ember.zeros(1, 4, 5, 5), ember.zeros(3, 2, 3, 3), groups=2),
         r"out_channels 3 .*divisible by groups=2"),
        (lambda: F.conv2d(ember.zeros(1, 1, 2, 2), ember.zeros(1, 1, 3, 3)),
         r"padded input size 2 is smaller than the \(dilated\) kernel size 3"),
        (lambda: F.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(2, 1, 3, 3), ember.zeros(3)),
         r"bias of shape \(2,\).*got \(3,\)"),
        (lambda: F.conv2d(ember.zeros(5, 5), ember.zeros(2, 1, 3, 3)),
         r"3-D \(unbatched\) or 4-D \(batched\) input.*\(5, 5\)"),
        (lambda: F.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(2, 1, 3)),
         r"4-D weight.*\(2, 1, 3\)"),
        (lambda: F.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(1, 1, 3, 3), stride=2,
                          padding="same"),
         r"'same' is not supported for strided"),
        (lambda: F.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(1, 1, 3, 3), padding="full"),
         r"padding must be 'valid', 'same'"),
        (lambda: F.conv2d(ember.zeros(1, 1, 5, 5), ember.zeros(1, 1, 3, 3), stride=0),
         r"stride must be >= 1"),
        (lambda: F.conv1d(ember.zeros(1, 2, 5), ember.zeros(1, 2, 3), padding=(1, 1)),
         r"padding must be an int or a tuple of 1 ints"),
        (lambda: F.conv_transpose2d(ember.zeros(1, 2, 3, 3), ember.zeros(2, 1, 3, 3),
                                    output_padding=1),
         r"output_padding 1 must be smaller than either stride"),
        (lambda: F.max_pool2d(ember.zeros(1, 1, 5, 5), 2, padding=2),
         r"pad should be at most half"),
        (lambda: F.max_pool2d(ember.zeros(1, 1, 2, 2), 3),
         r"\(1, 1, 2, 2\) is too small for kernel_size \(3, 3\)"),
        (lambda: F.avg_pool1d(ember.zeros(1, 1, 2, 2, 2), 2),
         r"2-D \(unbatched\) or 3-D \(batched\) input"),
        (lambda: F.adaptive_avg_pool2d(ember.zeros(1, 1, 4, 4), (2, 0)),
         r"output_size must be positive"),
    ],
)  # fmt: skip
def test_argument_errors(call, pattern):
    with pytest.raises(ember.ShapeError, match=pattern):
        call()


def test_dtype_errors():
    with pytest.raises(ember.DTypeError, match=r"input dtype .*float32.* and weight dtype"):
        F.conv2d(ember.zeros(1, 1, 4, 4), ember.zeros(1, 1, 3, 3, dtype=ember.float64))
    with pytest.raises(ember.DTypeError, match="floating-point input"):
        F.conv2d(ember.zeros(1, 1, 4, 4, dtype=ember.int64), ember.zeros(1, 1, 3, 3))
    with pytest.raises(ember.DTypeError, match="floating-point input"):
        F.adaptive_avg_pool2d(ember.zeros(1, 1, 4, 4, dtype=ember.int64), 2)


# -- semantics that the table's random inputs cannot reach ----------------------------------
def test_max_pool_ties_pick_the_first_max_like_torch():
    x = np.zeros((2, 3, 6, 6), np.float32)
    x[0, 0, :2, :2] = 1.0  # a window of four equal maxima
    x[1, 2] = np.tile([[0.0, 2.0, 2.0], [2.0, 0.0, 2.0]], (3, 2))
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1),
               dict(kernel_size=3, stride=2, ceil_mode=True)):  # fmt: skip
        e, t = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ye, ie = F.max_pool2d(e, return_indices=True, **kw)
        yt, it = TF.max_pool2d(t, return_indices=True, **kw)
        np.testing.assert_array_equal(ie.numpy(), it.numpy())
        g = np.random.default_rng(0).standard_normal(tuple(ye.shape)).astype(np.float32)
        ye.backward(ember.tensor(g))
        yt.backward(torch.tensor(g))
        _close(e.grad, t.grad, atol=1e-6)


def test_adaptive_max_pool_ties_match_torch():
    x = np.round(np.random.default_rng(1).standard_normal((2, 2, 7, 5))).astype(np.float32)
    e, t = ember.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ye, ie = F.adaptive_max_pool2d(e, (3, 4), return_indices=True)
    yt, it = TF.adaptive_max_pool2d(t, (3, 4), return_indices=True)
    np.testing.assert_array_equal(ie.numpy(), it.numpy())
    ye.sum().backward()
    yt.sum().backward()
    _close(e.grad, t.grad, atol=1e-6)


def test_max_pool_grad_of_grad_is_the_selection():
    """d/d(grad_output) of max_pool2d's input gradient, checked against PyTorch."""
    e, t = _pair((2, 3, 6, 6), 2, np.float64)
    ge, gt = _pair((2, 3, 3, 3), 3, np.float64)
    (dxe,) = ember.autograd.grad(F.max_pool2d(e, 2), e, ge, create_graph=True)
    (dxt,) = torch.autograd.grad(TF.max_pool2d(t, 2), t, gt, create_graph=True)
    w = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    (dxe * ember.tensor(w)).sum().backward()
    (dxt * torch.tensor(w)).sum().backward()
    _close(ge.grad, gt.grad, atol=1e-10)


@pytest.mark.parametrize(
    "name, x_shape, w_shape, seed, kw, wrt",
    [
        ("conv2d", (2, 4, 7, 7), (6, 2, 3, 3), 5, dict(stride=2, padding=1, groups=2), 0),
        ("conv_transpose2d", (2, 3, 4, 4), (3, 2, 3, 3), 7,
         dict(stride=2, padding=1, output_padding=1), 1),
    ],
)  # fmt: skip
def test_double_backward_matches_torch(name, x_shape, w_shape, seed, kw, wrt):
    """A gradient penalty: d/d(x, w) of |d loss / d (x or w)|^2 (``wrt``: 0 for x, 1 for w)."""
    xe, xt = _pair(x_shape, seed, np.float64)
    we, wt = _pair(w_shape, seed + 1, np.float64)
    ye, yt = getattr(F, name)(xe, we, **kw), getattr(TF, name)(xt, wt, **kw)
    (ge,) = ember.autograd.grad((ye * ye).sum(), (xe, we)[wrt], create_graph=True)
    (gt,) = torch.autograd.grad((yt * yt).sum(), (xt, wt)[wrt], create_graph=True)
    (ge * ge).sum().backward()
    (gt * gt).sum().backward()
    _close(xe.grad, xt.grad, atol=1e-8, rtol=1e-8)
    _close(we.grad, wt.grad, atol=1e-8, rtol=1e-8)


def test_output_is_contiguous_and_dtype_kept():
    y = F.conv2d(ember.ones(2, 3, 5, 5), ember.ones(4, 3, 3, 3), padding=1)
    assert y.dtype == ember.float32 and y.is_contiguous()
    assert F.max_pool2d(y, 2).dtype == ember.float32
    assert F.avg_pool2d(y, 2).dtype == ember.float32


# -- larger float32 comparisons -------------------------------------------------------------
def test_w2_block_float32_matches_torch():
    """The W2 benchmark's feature extractor, forward and all gradients, in float32."""
    xe, xt = _pair((8, 1, 28, 28), 10)
    params = [_pair(s, 11 + i) for i, s in enumerate([(32, 1, 3, 3), (32,), (64, 32, 3, 3),
                                                      (64,)])]  # fmt: skip
    (w1e, w1t), (b1e, b1t), (w2e, w2t), (b2e, b2t) = params

    def run(f, relu, x, w1, b1, w2, b2):
        h = f.max_pool2d(relu(f.conv2d(x, w1, b1, padding=1)), 2)
        return f.max_pool2d(relu(f.conv2d(h, w2, b2, padding=1)), 2)

    ye = run(F, lambda a: a * (a > 0), xe, w1e, b1e, w2e, b2e)
    yt = run(TF, torch.relu, xt, w1t, b1t, w2t, b2t)
    assert ye.shape == (8, 64, 7, 7)
    _close(ye, yt)
    g = np.random.default_rng(12).standard_normal(ye.shape).astype(np.float32)
    ye.backward(ember.tensor(g))
    yt.backward(torch.tensor(g))
    for e, t in [(xe, xt)] + params:
        _close(e.grad, t.grad, atol=2e-4, rtol=2e-3)


@pytest.mark.parametrize(
    "kw",
    [dict(stride=2, padding=1), dict(padding="same", dilation=2), dict(groups=4, stride=(1, 2))],
)
def test_conv2d_float32_larger(kw):
    xe, xt = _pair((4, 16, 21, 19), 20)
    we, wt = _pair((24, 16 // kw.get("groups", 1), 3, 5), 21)
    be, bt = _pair((24,), 22)
    ye, yt = F.conv2d(xe, we, be, **kw), TF.conv2d(xt, wt, bt, **kw)
    _close(ye, yt, atol=1e-3)
    g = np.random.default_rng(23).standard_normal(ye.shape).astype(np.float32)
    ye.backward(ember.tensor(g))
    yt.backward(torch.tensor(g))
    for e, t in ((xe, xt), (we, wt), (be, bt)):
        _close(e.grad, t.grad, atol=2e-3, rtol=1e-3)


def test_conv_transpose2d_float32_larger():
    xe, xt = _pair((4, 16, 9, 8), 30)
    we, wt = _pair((16, 6, 4, 4), 31)
    kw = dict(stride=2, padding=1, output_padding=1, groups=2)
    ye, yt = F.conv_transpose2d(xe, we, **kw), TF.conv_transpose2d(xt, wt, **kw)
    _close(ye, yt, atol=1e-3)
    ye.sum().backward()
    yt.sum().backward()
    _close(xe.grad, xt.grad, atol=1e-3)
    _close(we.grad, wt.grad, atol=1e-2, rtol=1e-3)


@pytest.mark.parametrize(
    "name, kw",
    [
        ("max_pool2d", dict(kernel_size=3, stride=2, padding=1)),
        ("max_pool2d", dict(kernel_size=2)),
        (
            "avg_pool2d",
            dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        ),  # fmt: skip
        ("adaptive_avg_pool2d", dict(output_size=(5, 3))),
        ("adaptive_max_pool2d", dict(output_size=(5, 3))),
    ],
)
def test_pools_float32_larger(name, kw):
    xe, xt = _pair((8, 16, 31, 29), 40, relu=True)  # relu'd: many ties at zero
    ye, yt = getattr(F, name)(xe, **kw), getattr(TF, name)(xt, **kw)
    _close(ye, yt, atol=1e-6)
    g = np.random.default_rng(41).standard_normal(ye.shape).astype(np.float32)
    ye.backward(ember.tensor(g))
    yt.backward(torch.tensor(g))
    _close(xe.grad, xt.grad, atol=1e-5)


def test_large_batches_are_processed_in_chunks(monkeypatch):
    """Column matrices over the size limit are built a few samples at a time: same results."""
    import ember.ops.nn.conv as conv

    def grads(kw):
        xe, _ = _pair((5, 4, 7, 6), 50, np.float64)
        we, _ = _pair((6, 2, 3, 2), 51, np.float64)
        wt, _ = _pair((4, 3, 2, 3), 52, np.float64)
        y = F.conv2d(xe, we, groups=2, **kw).sum() + F.conv_transpose2d(xe, wt, **kw).sum()
        y.backward()
        return [y.detach().numpy(), xe.grad.numpy(), we.grad.numpy(), wt.grad.numpy()]

    for kw in (dict(padding=1), dict(stride=2)):
        whole = grads(kw)
        monkeypatch.setattr(conv, "_COLS_LIMIT", 200)  # about one sample per chunk
        chunked = grads(kw)
        monkeypatch.undo()
        for a, b in zip(whole, chunked):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["adaptive_avg_pool2d", "adaptive_max_pool2d"])
@pytest.mark.parametrize("size", [(8, 3), (5, 9), (1, None)])
def test_adaptive_pools_upsampling_and_none(name, size):
    xe, xt = _pair((2, 3, 5, 7), 60, np.float64)
    ye, yt = getattr(F, name)(xe, size), getattr(TF, name)(xt, size)
    _close(ye, yt, atol=1e-12)
    ye.sum().backward()
    yt.sum().backward()
    _close(xe.grad, xt.grad, atol=1e-12)


@pytest.mark.parametrize(
    "modname", ["ember.ops.nn.conv", "ember.ops.nn.pool", "ember.ops.nn.adaptive_pool"]
)
def test_docstring_examples(modname):
    assert_doctests_pass(modname, at_least=3, F=F, np=np)

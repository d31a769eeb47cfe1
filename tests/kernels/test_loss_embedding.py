"""cross_entropy (fused loss + gradient) and embedding backward kernels against ember's NumPy
path: class weights, ignore_index, label smoothing, masked (-inf) logits, every reduction's
gradient scale, repeated and padding indices."""

from __future__ import annotations

import numpy as np
import pytest

import ember.nn.functional  # noqa: F401  (registers the nn ops)
from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path

DTYPES = [np.float32, np.float64]


def _ref(op, *arrays, **attrs):
    with numpy_path():
        return REGISTRY[op].forward(np, *arrays, **attrs)


def _problem(n, c, dtype, seed, weighted):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, c)) * 3).astype(dtype)
    t = rng.integers(0, c, n)
    if n > 2:
        t[1] = -100  # ignored
    w = rng.uniform(0.5, 2.0, c).astype(dtype) if weighted else None
    return x, t, w


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,c", [(1, 1), (1, 5), (7, 3), (16, 33), (5, 96)])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_loss_and_grad(c_kernels, threaded, n, c, dtype, weighted, smoothing):
    x, t, w = _problem(n, c, dtype, n * c, weighted)
    attrs = {"ignore_index": -100, "label_smoothing": smoothing}
    loss, wt, dx = kernels.cross_entropy_forward(x, t, w, with_grad=True, **attrs)
    assert_close(loss, _ref("cross_entropy", x, t, w, reduction="none", **attrs))
    valid = t != -100
    assert_close(wt, (w[np.where(valid, t, 0)] if w is not None else 1.0) * valid)
    # the fused gradient is the gradient of loss.sum()
    g1 = np.asarray(1.0, dtype)
    assert_close(dx, _ref("cross_entropy_backward", x, t, w, g1, reduction="sum", **attrs))
    for reduction, g in (("sum", 0.5), ("mean", 2.0), ("none", np.linspace(-1, 1, n))):
        g = np.asarray(g, dtype)
        scale = g
        if reduction == "mean":
            denom = wt.sum()
            scale = g / denom if denom != 0 else 0.0
        got = kernels.cross_entropy_backward(x, t, scale, w, **attrs)
        assert_close(got, _ref("cross_entropy_backward", x, t, w, g, reduction=reduction, **attrs))


def test_cross_entropy_masked_logits_and_special_values(c_kernels):
    inf = np.inf
    x = np.array(
        [[0.0, -inf, 1.0], [-inf, 2.0, -inf], [0.0, 1.0, -inf], [np.nan, 0.0, 1.0]], np.float32
    )
    t = np.array([0, 1, 2, 1])
    loss, _, dx = kernels.cross_entropy_forward(x, t, with_grad=True)
    ref = _ref(
        "cross_entropy", x, t, None, ignore_index=-100, label_smoothing=0.0, reduction="none"
    )
    assert_close(loss, ref)
    assert np.isfinite(loss[:2]).all() and loss[1] == 0  # the only unmasked class is right
    assert loss[2] == inf  # the target itself is masked
    assert np.isnan(loss[3])
    g = np.asarray(1.0, np.float32)
    dref = _ref("cross_entropy_backward", x, t, None, g, ignore_index=-100, label_smoothing=0.0,
                reduction="sum")  # fmt: skip
    assert_close(dx, dref)


def test_cross_entropy_1d_input_and_declines(c_kernels):
    x = np.array([0.5, -1.0, 2.0], np.float32)
    loss, wt, _ = kernels.cross_entropy_forward(x, np.array(2))
    ref = _ref("cross_entropy", x[None], np.array([2]), None, ignore_index=-100,
               label_smoothing=0.0, reduction="none")  # fmt: skip
    assert loss.shape == () and wt.shape == ()
    assert_close(loss.reshape(1), ref)
    x2, t2, _ = _problem(4, 3, np.float32, 0, False)
    assert kernels.cross_entropy_forward(x2, np.array([0, 1, 5, 0])) is None  # out of range
    assert kernels.cross_entropy_forward(x2, np.array([0, 1, -1, 0])) is None  # negative
    assert kernels.cross_entropy_forward(x2, np.ones((4, 3), np.float32)) is None  # probabilities
    assert kernels.cross_entropy_forward(x2.reshape(4, 3, 1), t2.reshape(4, 1)) is None  # spatial
    assert kernels.cross_entropy_forward(x2.astype(np.float16), t2) is None
    assert kernels.cross_entropy_backward(x2, t2, np.ones(3)) is None  # wrong scale size
    # int32 targets and a non-contiguous input are fine
    xt = np.asfortranarray(x2)
    loss, _, _ = kernels.cross_entropy_forward(xt, t2.astype(np.int32))
    ref = _ref("cross_entropy", x2, t2, None, ignore_index=-100, label_smoothing=0.0,
               reduction="none")  # fmt: skip
    assert_close(loss, ref)


def test_cross_entropy_all_ignored(c_kernels):
    x, _, w = _problem(3, 4, np.float32, 1, True)
    t = np.full(3, 7)
    loss, wt, dx = kernels.cross_entropy_forward(x, t, w, ignore_index=7, with_grad=True)
    assert (loss == 0).all() and (wt == 0).all() and (dx == 0).all()


# -- embedding backward --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,v,d", [((1,), 1, 1), ((5,), 3, 7), ((4, 9), 6, 33), ((2, 3, 4), 50, 16)]
)
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_backward(c_kernels, threaded, shape, v, d, dtype, padding_idx):
    rng = np.random.default_rng(v * d)
    idx = rng.integers(0, v, shape)
    g = rng.standard_normal(shape + (d,)).astype(dtype)
    pad = None if padding_idx is None or padding_idx >= v else padding_idx % v
    got = kernels.embedding_backward(g, idx, v, pad)
    ref = _ref(
        "embedding_backward", g, idx, num_weights=v, padding_idx=pad, scale_grad_by_freq=False
    )
    assert_close(got, ref)


def test_embedding_backward_noncontiguous_specials_and_declines(c_kernels):
    rng = np.random.default_rng(0)
    idx = np.array([[0, 1, 0], [2, 2, 2]]).T  # non-contiguous indices, repeats
    g = rng.standard_normal((6, 2, 2)).astype(np.float32)[::2]
    g[0, 0, 0] = np.nan
    g[1, 1, 1] = np.inf
    got = kernels.embedding_backward(g, idx, 4)
    assert_close(got, _ref("embedding_backward", g, idx, num_weights=4, padding_idx=None,
                           scale_grad_by_freq=False))  # fmt: skip
    assert kernels.embedding_backward(g, idx + 2, 4) is None  # index 4 out of range
    assert kernels.embedding_backward(g, idx.astype(np.float32), 4) is None
    assert kernels.embedding_backward(g.astype(np.float16), idx, 4) is None

"""The normalization primitives' kernels (``norm_moments``, ``norm_standardize``,
``norm_standardize_backward``) and dropout's mask kernel against ember's NumPy path, and the
wiring of layer/group/instance/batch norm and dropout through them.

Kernel cases run in float32 and float64, on 1 and 2 threads, over edge shapes (size 1, odd
lengths not divisible by the vector width), the layouts the ops use (trailing axes; batch
norm's dims 0, 2, 3, ...), non-contiguous inputs and inputs holding inf, -inf and NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels
from ember.kernels.norm import split_axes
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

DTYPES = [np.float32, np.float64]
# (shape, reduced axes): layer/group/instance norm (trailing) and batch norm (0, 2, ...)
LAYOUTS = [
    ((1,), (0,)),
    ((1, 1), (1,)),
    ((7,), (0,)),
    ((3, 17), (1,)),
    ((5, 65), (1,)),
    ((2, 3, 5), (1, 2)),
    ((4, 1, 33), (2,)),
    ((5, 3), (0,)),
    ((1, 4), (0,)),
    ((2, 3, 7, 5), (0, 2, 3)),
    ((9, 2, 1, 1), (0, 2, 3)),
    ((3, 4, 35), (0, 2)),
    ((2, 3, 4, 5), (0, 3)),  # kept dims (1, 2) form one run
]


def _ref(op: str, *arrays, **attrs):
    with numpy_path():
        return REGISTRY[op].forward(np, *arrays, **attrs)


def _input(shape, dtype, seed, special=False):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    return with_specials(x, rng, 0.1) if special else x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axes", LAYOUTS, ids=[f"{s}-{a}" for s, a in LAYOUTS])
@pytest.mark.parametrize("special", [False, True], ids=["finite", "specials"])
def test_norm_primitives_match_numpy(c_kernels, threaded, shape, axes, dtype, special):
    x = _input(shape, dtype, len(shape) + sum(axes), special)
    eps = 1e-5
    m = kernels.norm_moments(x, axes)
    m_ref = _ref("norm_moments", x, axes=axes)
    assert m is not None and m.dtype == m_ref.dtype
    assert_close(m, m_ref)
    # from the same statistics, standardize gives NumPy's bits
    y = kernels.norm_standardize(x, m_ref, axes, eps)
    y_ref = _ref("standardize", x, m_ref, axes=axes, eps=eps)
    np.testing.assert_array_equal(y, y_ref)
    g = _input(shape, dtype, 99, special)
    dx = kernels.norm_standardize_backward(g, y_ref, m_ref, axes, eps)
    assert_close(dx, _ref("standardize_backward", x, y_ref, m_ref, g, axes=axes, eps=eps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_primitives_noncontiguous(c_kernels, dtype):
    base = _input((6, 4, 10), dtype, 3)
    for x in (base.transpose(2, 1, 0), base[:, ::2, ::3], base[::-1]):
        for axes in ((0, 2), (2,), (1, 2)):
            m_ref = _ref("norm_moments", x, axes=axes)
            assert_close(kernels.norm_moments(x, axes), m_ref)
            y = _ref("standardize", x, m_ref, axes=axes, eps=1e-3)
            np.testing.assert_array_equal(kernels.norm_standardize(x, m_ref, axes, 1e-3), y)
            g = _input(x.shape, dtype, 4)[..., ::-1]
            want = _ref("standardize_backward", x, y, m_ref, g, axes=axes, eps=1e-3)
            assert_close(kernels.norm_standardize_backward(g, y, m_ref, axes, 1e-3), want)


def test_norm_constant_and_long_channels(c_kernels):
    x = np.full((4, 3, 5), 2.5, np.float32)
    m = kernels.norm_moments(x, (0, 2))
    assert (m[0] == 2.5).all() and (m[1] == 0).all()
    assert (kernels.norm_standardize(x, m, (0, 2), 1e-5) == 0).all()
    # batch norm's long channels: the double-precision total keeps float32 close to float64
    big = _input((64, 3, 4099), np.float32, 8) + 1000
    m = kernels.norm_moments(big, (0, 2))
    exact = big.astype(np.float64)
    np.testing.assert_allclose(m[0].ravel(), exact.mean((0, 2)), rtol=1e-7)
    np.testing.assert_allclose(m[1].ravel(), exact.var((0, 2)), rtol=1e-4)


def test_norm_primitives_decline(c_kernels):
    x = np.ones((2, 3, 4), np.float32)
    m = np.ones((2, 1, 3, 1), np.float32)
    assert split_axes(x.shape, (1,)) is None  # kept dims 0 and 2 are not one run
    assert kernels.norm_moments(x, (1,)) is None
    assert kernels.norm_moments(x.astype(np.float16), (2,)) is None
    assert kernels.norm_moments(np.ones((2, 3), np.int64), (1,)) is None
    assert kernels.norm_moments(np.ones((0, 3), np.float32), (1,)) is None
    assert kernels.norm_moments(np.float32(1.0), ()) is None
    assert kernels.norm_moments([[1.0, 2.0]], (1,)) is None
    assert kernels.norm_standardize(x, m.astype(np.float64), (0, 2), 1e-5) is None
    assert kernels.norm_standardize(x, np.ones((2, 1, 1, 1), np.float32), (0, 2), 1e-5) is None
    assert kernels.norm_standardize_backward(x.astype(np.float64), x, m, (0, 2), 1e-5) is None
    assert kernels.norm_standardize_backward(x[:1], x, m, (0, 2), 1e-5) is None


def test_norm_primitives_decline_in_numpy_mode():
    with numpy_path():
        x = np.ones((2, 3), np.float32)
        assert kernels.norm_moments(x, (1,)) is None
        assert kernels.norm_standardize(x, np.ones((2, 2, 1), np.float32), (1,), 0.0) is None
        assert kernels.dropout_mask(np.ones(3, np.float32), 0.5, 2.0, np.float32) is None


# -- dropout's mask ------------------------------------------------------------------------
def _mask_ref(u, p, scale, dtype):
    mask = (u >= np.float32(p)).astype(dtype)
    mask *= np.dtype(dtype).type(scale)
    return mask


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1 / 3, 0.999, 1.0])
@pytest.mark.parametrize("n", [1, 7, 33, 70001])
def test_dropout_mask_is_bit_identical(c_kernels, threaded, dtype, p, n):
    u = np.random.default_rng(n).random(n, dtype=np.float32)
    u[:3] = [0.0, np.float32(p), np.nextafter(np.float32(p), np.float32(0))][: min(n, 3)]
    scale = 0.0 if p == 1 else 1 / (1 - p)
    want = _mask_ref(u, p, scale, dtype)
    got = kernels.dropout_mask(u.copy(), p, scale, np.dtype(dtype))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)


def test_dropout_mask_buffers_and_declines(c_kernels):
    u = np.random.default_rng(0).random((4, 6), dtype=np.float32)
    keep = u.copy()
    m = kernels.dropout_mask(u, 0.5, 2.0, np.dtype(np.float32))
    assert m is u  # float32: written over the draws
    np.testing.assert_array_equal(m, _mask_ref(keep, 0.5, 2.0, np.float32))
    m64 = kernels.dropout_mask(keep[:, ::2], 0.5, 2.0, np.dtype(np.float64))
    np.testing.assert_array_equal(m64, _mask_ref(keep[:, ::2], 0.5, 2.0, np.float64))
    ro = keep.copy()
    ro.flags.writeable = False
    np.testing.assert_array_equal(
        kernels.dropout_mask(ro, 0.5, 2.0, np.dtype(np.float32)),
        _mask_ref(keep, 0.5, 2.0, np.float32),
    )
    assert kernels.dropout_mask(keep.astype(np.float64), 0.5, 2.0, np.dtype(np.float32)) is None
    assert kernels.dropout_mask(keep, 0.5, 2.0, np.dtype(np.float16)) is None
    assert kernels.dropout_mask(np.ones(0, np.float32), 0.5, 2.0, np.dtype(np.float32)) is None


# -- wiring: the ops use the kernels and give what their NumPy path gives -------------------


def _run(fn, arrays):
    ts = [ember.tensor(a, requires_grad=True) for a in arrays]
    ember.manual_seed(7)
    y = fn(*ts)
    u = np.random.default_rng(1).standard_normal(tuple(y.shape)).astype(y.detach().numpy().dtype)
    (y * ember.tensor(u)).sum().backward()
    return [y.detach().numpy()] + [t.grad.numpy() for t in ts]


def _randn(*shape, dtype=np.float32):
    return np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)


NORMS = {
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (33,), w, b), (6, 5, 33), 33),
    "group_norm": (lambda x, w, b: F.group_norm(x, 3, w, b), (4, 6, 5, 7), 6),
    "instance_norm": (lambda x, w, b: F.instance_norm(x, weight=w, bias=b), (4, 6, 9), 6),
    "batch_norm1d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, True), (16, 5), 5),
    "batch_norm2d": (lambda x, w, b: F.batch_norm(x, None, None, w, b, True), (8, 3, 5, 7), 3),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(NORMS))
def test_norm_ops_use_the_kernels(c_kernels, served, name, dtype):
    fn, shape, c = NORMS[name]
    arrays = [_randn(*shape, dtype=dtype), _randn(c, dtype=dtype), _randn(c, 1, dtype=dtype)[:, 0]]
    got = _run(fn, arrays)
    if name == "layer_norm":  # one fused op: a forward and a backward kernel
        assert served["layer_norm_forward"] > 0 and served["norm_moments"] == 0
    else:
        assert served["norm_moments"] > 0 and served["norm_standardize"] > 0
    back = "norm_standardize_backward" if name.startswith("batch") else "layer_norm_backward"
    assert served[back] > 0
    with numpy_path():
        want = _run(fn, arrays)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_is_one_op_forward_and_backward(c_kernels, served, affine):
    """layer_norm with any part of its affine: one fused op each way, the NumPy path's
    results (weight and bias gradients only for what is given)."""
    x, w, b = _randn(4, 3, 16), _randn(16), _randn(16, 1)[:, 0]
    use_w, use_b = affine in ("both", "weight"), affine in ("both", "bias")

    def run():
        xt, wt, bt = (ember.tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.layer_norm(xt, (16,), wt if use_w else None, bt if use_b else None)
        assert y.grad_fn.name == "layer_norm"
        y.backward(ember.tensor(np.cos(np.arange(y.numel(), dtype=np.float32)).reshape(4, 3, 16)))
        grads = [t.grad for t in (xt, wt, bt)]
        assert [g is not None for g in grads] == [True, use_w, use_b]
        return [y.detach().numpy()] + [g.numpy() for g in grads if g is not None]

    got = run()
    assert served["layer_norm_forward"] == 1 and served["layer_norm_backward"] == 1
    with numpy_path():
        want = run()
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


def test_layer_norm_second_order_uses_the_primitives(c_kernels):
    rng = np.random.default_rng(4)
    x, w, b = (ember.tensor(rng.standard_normal(s), requires_grad=True) for s in ((3, 5), 5, 5))
    assert ember.autograd.gradgradcheck(lambda x, w, b: F.layer_norm(x, (5,), w, b), (x, w, b))


def test_batch_norm_running_stats_and_eval(c_kernels, served):
    x = _randn(16, 4, 3, 3)

    def train_then_eval():
        rm, rv = ember.zeros(4), ember.ones(4)
        for _ in range(3):
            F.batch_norm(ember.tensor(x), rm, rv, training=True, momentum=0.2)
        y = F.batch_norm(ember.tensor(x), rm, rv, training=False)
        return rm.numpy(), rv.numpy(), y.numpy()

    got = train_then_eval()
    assert served["norm_moments"] == 3
    with numpy_path():
        want = train_then_eval()
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # PyTorch's rule: the running variance is the unbiased one
    n = x.size // 4
    var = x.astype(np.float64).var((0, 2, 3))
    expect = np.ones(4)
    for _ in range(3):
        expect = 0.8 * expect + 0.2 * var * n / (n - 1)
    np.testing.assert_allclose(got[1], expect, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "fn",
    [
        lambda t: F.dropout(t, 0.3),
        lambda t: F.dropout2d(t, 0.5),
        lambda t: F.alpha_dropout(t, 0.2, training=True),
        lambda t: F.dropout(t.clone(), 0.25, inplace=True),
    ],
    ids=["dropout", "dropout2d", "alpha_dropout", "dropout_inplace"],
)
def test_dropout_same_masks_in_both_modes(c_kernels, served, fn, dtype):
    x = _randn(16, 8, 5, 3, dtype=dtype)
    got = _run(fn, [x])
    assert served["dropout_mask"] > 0
    with numpy_path():
        want = _run(fn, [x])
    for a, b in zip(got, want):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    again = _run(fn, [x])  # ember.manual_seed makes the kernel path reproducible too
    np.testing.assert_array_equal(again[0], got[0])


def test_dropout_gradient_is_the_mask(c_kernels):
    ember.manual_seed(3)
    x = ember.tensor(_randn(64, 33), requires_grad=True)
    y = F.dropout(x, 0.4)
    y.sum().backward()
    mask = x.grad.numpy()
    assert set(np.unique(mask).tolist()) == {0.0, np.float32(1 / 0.6)}
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy() * mask)
    assert 0.3 < (mask == 0).mean() < 0.5

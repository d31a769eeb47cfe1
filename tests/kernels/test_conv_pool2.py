"""The kernels behind W2's eager step: ``relu_forward``/``relu_backward``, ``avg_pool2d`` forward/backward,
``swap01`` (a convolution's GEMM result made NCHW, plus bias), and the convolution input
gradient through ``col2im`` at any stride. Each against PyTorch and ember's NumPy path
(the reference), with special values, edge shapes, non-contiguous inputs and 1 or 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

torch = pytest.importorskip("torch")

DTYPES = [np.float32, np.float64]


# -- relu_backward ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 3), (4, 33, 17), (64, 32, 28, 28)])
def test_relu_backward_matches_torch_and_numpy(c_kernels, threaded, shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = with_specials(rng.standard_normal(shape).astype(dtype), rng)
    x.flat[::7] = 0.0  # the gradient at 0 is 0
    g = with_specials(rng.standard_normal(shape).astype(dtype), rng)
    xt = torch.from_numpy(x).requires_grad_()
    torch.relu(xt).backward(torch.from_numpy(g))
    y = np.maximum(x, 0)
    dx = kernels.relu_backward(g, y)
    assert_close(dx, xt.grad.numpy())
    with numpy_path():
        assert_close(dx, REGISTRY["relu_backward"].forward(np, g, y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (5, 7), (64, 32, 28, 28)])
def test_relu_forward_is_numpys_maximum_bit_for_bit(c_kernels, threaded, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = with_specials(rng.standard_normal(shape).astype(dtype), rng)
    x.flat[::11] = -0.0
    y = kernels.relu_forward(x)
    want = np.maximum(x, 0)
    assert y.dtype == want.dtype and y.shape == want.shape
    np.testing.assert_array_equal(y.view(f"u{x.itemsize}"), want.view(f"u{x.itemsize}"))
    xt = torch.relu(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(y, xt)  # NaN where torch has NaN; -0.0 == 0.0
    assert kernels.relu_forward(x[..., ::-1]) is not None  # non-contiguous: copied


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_forward_into_out_and_in_place(c_kernels, threaded, dtype):
    rng = np.random.default_rng(3)
    x = with_specials(rng.standard_normal((64, 32, 28, 28)).astype(dtype), rng)
    want = np.maximum(x, 0)
    out = np.empty_like(x)
    assert kernels.relu_forward(x, out) is out
    np.testing.assert_array_equal(out, want)
    assert kernels.relu_forward(x, x) is x  # in place
    np.testing.assert_array_equal(x, want)
    # an out the kernel cannot write: declined (the caller falls back to NumPy)
    assert kernels.relu_forward(x, np.empty(x.shape, np.float16)) is None
    assert kernels.relu_forward(x, np.empty((64, 32, 28, 27), dtype)) is None
    assert kernels.relu_forward(x, np.empty((64, 32, 28, 56), dtype)[..., ::2]) is None


def test_compiled_relu_writes_its_buffer_with_the_kernel(c_kernels, monkeypatch):
    """A compiled relu with a planned buffer runs the C kernel into it when the array is big
    enough for threads (NumPy's maximum below that), and matches eager."""
    from ember.graph import steps

    monkeypatch.setattr(steps, "ENABLED", False)  # the per-node path (not one C call)
    calls = []
    real = kernels.relu_forward
    monkeypatch.setattr(kernels, "relu_forward", lambda *a: calls.append(len(a)) or real(*a))
    rng = np.random.default_rng(4)
    for rows, want_kernel in ((2048, True), (8, False)):  # 2048 x 160: ~98 us of one core
        w = ember.tensor(rng.standard_normal((160, 160)).astype(np.float32))
        x = ember.tensor(rng.standard_normal((rows, 160)).astype(np.float32))

        def f(x, w=w):
            return ember.relu(ember.relu(x @ w) @ w).sum()

        fc = ember.compile(f)
        want = f(x).item()
        calls.clear()
        # (to rounding: at 8 rows the relu and the sum fuse into one C region, which sums
        # in its own vector order, not NumPy's pairwise one; equal bits with AVX2, not with
        # AVX-512's wider vectors)
        np.testing.assert_allclose([fc(x).item(), fc(x).item()], [want, want], rtol=1e-6)
        assert (2 in calls) == want_kernel  # (x, out): the lowering's buffer
        assert ("xp.maximum" in fc.code) != want_kernel


def test_relu_backward_nan_cases_like_torch(c_kernels):
    y = np.array([np.nan, 0.0, 0.0, 2.0, -0.0], np.float32)
    g = np.array([1.0, np.nan, np.inf, 3.0, 5.0], np.float32)
    dx = kernels.relu_backward(g, y)
    # a NaN output passes the gradient; a dead unit gives 0 even for a NaN or inf gradient
    assert dx.tolist() == [1.0, 0.0, 0.0, 3.0, 0.0]


def test_relu_backward_declines(c_kernels):
    one = np.ones(3, np.float32)
    assert kernels.relu_backward(one, np.ones(4, np.float32)) is None
    assert kernels.relu_backward(one, np.ones(3, np.float64)) is None
    assert kernels.relu_backward(np.ones(3, np.float16), np.ones(3, np.float16)) is None


def test_relu_double_backward_matches_torch(c_kernels):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 5))
    w = rng.standard_normal((6, 5))
    xe = ember.tensor(x, requires_grad=True)
    (ge,) = ember.autograd.grad((ember.relu(xe) * ember.tensor(w)).sum(), [xe], create_graph=True)
    (gge,) = ember.autograd.grad((ge * ge).sum(), [xe], allow_unused=True)
    xt = torch.from_numpy(x).requires_grad_()
    (gt,) = torch.autograd.grad((torch.relu(xt) * torch.from_numpy(w)).sum(), [xt],
                                create_graph=True)  # fmt: skip
    np.testing.assert_allclose(ge.detach().numpy(), gt.detach().numpy())
    # relu's second derivative is zero: the gradient of |g|^2 in x vanishes
    assert gge is None or not gge.numpy().any()


# -- avg_pool2d ------------------------------------------------------------------------------
# (N, C, H, W), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
AVG = [
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False, True, None),
    ((2, 3, 6, 8), (2, 2), (2, 2), (0, 0), False, True, None),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), False, True, None),
    ((2, 3, 7, 9), (3, 3), (2, 2), (1, 1), False, False, None),
    ((2, 2, 7, 9), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 2, 8, 9), (3, 2), (2, 3), (1, 1), True, False, None),
    ((1, 2, 5, 6), (2, 3), (1, 2), (0, 1), False, True, 5),
    ((1, 1, 3, 17), (1, 5), (1, 1), (0, 2), True, False, None),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kernel,stride,padding,ceil,include,div", AVG)
def test_avg_pool2d(c_kernels, threaded, shape, kernel, stride, padding, ceil, include, div, dtype):
    rng = np.random.default_rng(shape[-1] + kernel[0])
    x = rng.standard_normal(shape).astype(dtype)
    xt = torch.from_numpy(x).requires_grad_()
    kw = dict(ceil_mode=ceil, count_include_pad=include, divisor_override=div)
    yt = torch.nn.functional.avg_pool2d(xt, kernel, stride, padding, **kw)
    out_hw = tuple(yt.shape[2:])
    y = kernels.avg_pool2d_forward(x, kernel, stride, padding, out_hw, include, div)
    assert_close(y, yt.detach().numpy())
    attrs = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=(1, 1),
                 out_hw=out_hw, count_include_pad=include, divisor_override=div)  # fmt: skip
    with numpy_path():
        assert_close(y, REGISTRY["avg_pool2d"].forward(np, x, **attrs))
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    dx = kernels.avg_pool2d_backward(g, shape[2:], kernel, stride, padding, out_hw, include, div)
    assert_close(dx, xt.grad.numpy())
    with numpy_path():
        assert_close(dx, REGISTRY["avg_pool2d_backward"].forward(np, g, in_hw=shape[2:], **attrs))


def test_avg_pool2d_special_values_stay_in_their_windows(c_kernels):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0], x[0, 0, 3, 3] = np.nan, np.inf
    y = kernels.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (2, 2))
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 1, 1] == np.inf
    assert y[0, 0, 0, 1] == 0 and y[0, 0, 1, 0] == 0


def test_avg_pool2d_declines(c_kernels):
    ints = np.ones((1, 1, 4, 4), np.int64)
    assert kernels.avg_pool2d_forward(ints, (2, 2), (2, 2), (0, 0), (2, 2)) is None
    x = np.ones((1, 1, 4, 4), np.float32)
    assert kernels.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (2, 2), True, -2) is None
    g = np.ones((1, 1, 3, 3), np.float32)  # not the output size
    assert kernels.avg_pool2d_backward(g, (4, 4), (2, 2), (2, 2), (0, 0), (2, 2)) is None


# -- swap01 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (64, 64, 196), (4, 2, 3, 5)])
@pytest.mark.parametrize("bias", [False, True])
def test_swap01(c_kernels, threaded, shape, bias, dtype):
    rng = np.random.default_rng(shape[0])
    y = with_specials(rng.standard_normal(shape).astype(dtype), rng)
    b = rng.standard_normal(shape[0]).astype(dtype) if bias else None
    out = kernels.swap01(y, b)
    want = y.swapaxes(0, 1)
    if bias:
        want = want + b.reshape((1, -1) + (1,) * (y.ndim - 2))
    assert out.flags.c_contiguous
    assert_close(out, want)
    noncontig = kernels.swap01(y[:, :, ::-1], b)
    assert_close(noncontig, want[:, :, ::-1])


def test_swap01_keeps_negative_zero_without_bias(c_kernels):
    y = np.full((2, 3, 4), -0.0, np.float32)
    assert np.signbit(kernels.swap01(y)).all()


def test_swap01_declines(c_kernels):
    y = np.ones((2, 3, 4), np.float32)
    assert kernels.swap01(y, np.ones(3, np.float32)) is None  # one bias per first-axis entry
    assert kernels.swap01(y, np.ones(2, np.float64)) is None
    assert kernels.swap01(np.ones(3, np.float32)) is None
    assert kernels.swap01(np.ones((2, 3), np.int32)) is None


# -- the ops: served by the kernels, and what the NumPy path gives ---------------------------


def _run(fn, arrays, noncontig=False):
    ts = []
    for a in arrays:
        if noncontig:  # the same values, seen through a transposed view
            a = np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)
        ts.append(ember.tensor(a, requires_grad=True))
    y = fn(*ts)
    yd = y.detach().numpy()
    u = np.random.default_rng(1).standard_normal(yd.shape).astype(yd.dtype)
    (y * ember.tensor(u)).sum().backward()
    return [yd] + [t.grad.numpy() for t in ts]


def _check(served, fn, arrays, expect, noncontig=False, atol=2e-5):
    got = _run(fn, arrays, noncontig)
    for name in expect:
        assert served[name] > 0, f"{name} was not served by the C kernels"
    with numpy_path():
        want = _run(fn, arrays, noncontig)
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=atol)


def _randn(rng, *shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def test_w2_block_matches_numpy_path_and_torch(c_kernels, served):
    """conv + relu + 2x2 max pool at W2's second-layer size, forward and backward."""
    rng = np.random.default_rng(2)
    x, w, b = _randn(rng, 24, 32, 14, 14), _randn(rng, 64, 32, 3, 3) * 0.1, _randn(rng, 64)

    def block(m, x, w, b):
        return m.nn.functional.max_pool2d(m.relu(m.nn.functional.conv2d(x, w, b, padding=1)), 2)

    _check(served, lambda *t: block(ember, *t), [x, w, b],
           ["implicit_conv2d", "implicit_weight_grad", "implicit_transpose2d", "relu_forward", "relu_backward", "max_pool2d_forward",
            "max_pool2d_backward"], atol=1e-4)  # fmt: skip
    got = _run(lambda *t: block(ember, *t), [x, w, b])
    ts = [torch.from_numpy(a).requires_grad_() for a in (x, w, b)]
    yt = block(torch, *ts)
    yt.backward(torch.from_numpy(np.random.default_rng(1).standard_normal(yt.shape).astype("f4")))
    for a, t in zip(got, [yt, *(t.grad for t in ts)]):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "kw",
    [
        dict(padding=1),
        dict(padding=0),
        dict(stride=2, padding=1),
        dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
        dict(padding=1, groups=2),
    ],
    ids=["same", "valid", "strided", "mixed", "grouped"],
)
@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
def test_conv2d_input_gradient_through_col2im(served, c_kernels, no_implicit, kw, noncontig):
    rng = np.random.default_rng(3)
    x, w = _randn(rng, 3, 4, 9, 11), _randn(rng, 6, 4 // kw.get("groups", 1), 3, 3)
    fn = lambda a, b: F.conv2d(a, b, **kw)  # noqa: E731
    _check(served, fn, [x, w], ["im2col", "col2im", "swap01"], noncontig, atol=1e-4)


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(padding=1), dict(stride=2, output_padding=1), dict(dilation=2, groups=2)],
    ids=["plain", "padded", "strided", "dilated_grouped"],
)
def test_conv_transpose2d_through_col2im(served, c_kernels, no_implicit, kw):
    rng = np.random.default_rng(4)
    x, w, b = _randn(rng, 2, 4, 5, 6), _randn(rng, 4, 3, 3, 3), _randn(rng, 3 * kw.get("groups", 1))
    fn = lambda a, c, d: F.conv_transpose2d(a, c, d, **kw)  # noqa: E731
    _check(served, fn, [x, w, b], ["col2im", "im2col"], atol=1e-4)
    ts = [torch.from_numpy(a) for a in (x, w, b)]
    want = torch.nn.functional.conv_transpose2d(*ts, **kw).numpy()
    got = F.conv_transpose2d(*(ember.tensor(a) for a in (x, w, b)), **kw).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_size_one_image_and_batch(served, c_kernels, no_implicit):
    rng = np.random.default_rng(6)
    x, w, b = _randn(rng, 1, 1, 1, 1), _randn(rng, 2, 1, 1, 1), _randn(rng, 2)
    _check(served, lambda a, c, d: F.conv2d(a, c, d), [x, w, b], ["swap01", "col2im"])
    x3 = _randn(rng, 1, 2, 3, 3)
    _check(served, lambda a, c: F.conv2d(a, c, padding=2), [x3, _randn(rng, 1, 2, 3, 3)],
           ["col2im"])  # fmt: skip


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
        dict(kernel_size=(2, 3), stride=1, divisor_override=4),
    ],
    ids=["2x2", "exclude_pad", "ceil", "divisor"],
)
@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
def test_avg_pool2d_op(served, c_kernels, kw, noncontig):
    x = _randn(np.random.default_rng(7), 4, 3, 11, 10)
    _check(served, lambda t: F.avg_pool2d(t, **kw), [x],
           ["avg_pool2d_forward", "avg_pool2d_backward"], noncontig)  # fmt: skip


def test_avg_pool1d_and_integer_avg_pool(served, c_kernels):
    x = _randn(np.random.default_rng(8), 2, 3, 13)
    _check(served, lambda t: F.avg_pool1d(t, 3, 2, 1), [x], ["avg_pool2d_forward"])
    xi = ember.tensor(np.arange(16).reshape(1, 1, 4, 4))
    assert F.avg_pool2d(xi, 2).tolist() == [[[[2, 4], [10, 12]]]]


@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
def test_max_pool2d_2x2_odd_and_tiling(served, c_kernels, noncontig):
    rng = np.random.default_rng(9)
    for shape in [(2, 3, 6, 10), (2, 3, 7, 9), (1, 1, 2, 2)]:
        x = _randn(rng, *shape)
        x.flat[::4] = x.flat[-1]  # ties: the first maximum wins
        _check(served, lambda t: F.max_pool2d(t, 2), [x],
               ["max_pool2d_forward", "max_pool2d_backward"], noncontig)  # fmt: skip


def test_max_pool2d_backward_nan_and_inf_like_torch(c_kernels):
    x = np.random.default_rng(10).standard_normal((2, 2, 6, 8)).astype(np.float32)
    x[0, 0, 0, 1] = x[1, 1, 5, 7] = np.nan
    x[0, 1, 2, 2] = x[0, 1, 2, 3] = np.inf
    x[1, 0, :2, :2] = -np.inf
    xt = torch.from_numpy(x).requires_grad_()
    g = np.random.default_rng(11).standard_normal((2, 2, 3, 4)).astype(np.float32)
    torch.nn.functional.max_pool2d(xt, 2).backward(torch.from_numpy(g))
    dx = kernels.max_pool2d_backward(g, x, (2, 2), (2, 2), (0, 0), (1, 1), (3, 4))
    assert_close(dx, xt.grad.numpy())


def test_relu_op_served_and_numpy_mode(served, c_kernels):
    x = _randn(np.random.default_rng(12), 2560, 105)  # big enough for the kernel's threads
    _check(served, lambda t: ember.relu(t), [x], ["relu_forward", "relu_backward"])
    _check(served, lambda t: ember.relu(t.T), [x], ["relu_forward", "relu_backward"])
    small = _randn(np.random.default_rng(13), 64, 33)  # forward on NumPy: its call is cheaper
    before = served["relu_forward"]
    _check(served, lambda t: ember.relu(t), [small], ["relu_backward"])
    assert served["relu_forward"] == before
    assert ember.relu(ember.tensor(-2.0)).item() == 0.0  # 0-d
    assert ember.relu(ember.tensor([-2, 3])).tolist() == [0, 3]  # integers: NumPy

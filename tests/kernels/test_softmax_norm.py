"""softmax / log_softmax / safe softmax and layer norm kernels against ember's NumPy path.

Every case runs in float32 and float64, on 1 and 2 threads, over edge shapes (size 1, odd
lengths not divisible by the vector width), every axis, non-contiguous inputs and inputs
holding inf, -inf and NaN (which must land exactly where NumPy puts them).
"""

from __future__ import annotations

import numpy as np
import pytest

import ember.nn.functional  # noqa: F401  (registers the nn ops)
from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

SHAPES = [(1,), (7,), (1, 1), (3, 17), (2, 33), (5, 65), (2, 3, 5), (4, 1, 3), (2, 70, 3)]
DTYPES = [np.float32, np.float64]


def _ref(op: str, *arrays, **attrs):
    with numpy_path():
        return REGISTRY[op].forward(np, *arrays, **attrs)


def _inputs(shape, dtype, seed, special=False):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    return with_specials(x, rng, 0.1) if special else x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("special", [False, True], ids=["finite", "specials"])
def test_softmax_family_forward_and_backward(c_kernels, threaded, shape, dtype, special):
    rng = np.random.default_rng(1)
    for axis in range(-len(shape), len(shape)):
        x = _inputs(shape, dtype, axis + 7, special)
        g = rng.standard_normal(shape).astype(dtype)
        for op, kw in (
            ("softmax", {}),
            ("log_softmax", {"log": True}),
            ("safe_softmax", {"safe": True}),
        ):
            y = kernels.softmax_forward(x, axis, **kw)
            assert_close(y, _ref(op, x, dim=axis % len(shape)))
            if op == "safe_softmax":
                continue
            back = "log_softmax_backward" if kw else "softmax_backward"
            yr = _ref(op, x, dim=axis % len(shape))
            dx = kernels.softmax_backward(g, yr, axis, log=bool(kw))
            assert_close(dx, _ref(back, g, yr, dim=axis % len(shape)))


def test_softmax_masks_and_special_rows(c_kernels):
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [0.0, 1.0, -inf, -inf, 2.0],  # causal mask: finite result, zeros at -inf
            [-inf] * 5,  # fully masked: NaN (zeros with safe)
            [0.0, inf, 1.0, 2.0, 3.0],  # +inf: NaN row, as in NumPy
            [0.0, nan, 1.0, 2.0, 3.0],  # NaN propagates to the whole row
            [1e30, -1e30, 0.0, 88.0, -104.0],  # huge magnitudes stay finite
        ],
        np.float32,
    )
    y = kernels.softmax_forward(x, -1)
    assert_close(y, _ref("softmax", x, dim=1))
    assert y[0, 2] == 0 and y[0, 3] == 0 and np.isfinite(y[0]).all()
    assert np.isnan(y[1]).all() and np.isnan(y[2]).all() and np.isnan(y[3]).all()
    assert np.isfinite(y[4]).all()
    safe = kernels.softmax_forward(x, -1, safe=True)
    assert (safe[1] == 0).all()
    assert_close(safe, _ref("safe_softmax", x, dim=1))
    logp = kernels.softmax_forward(x, -1, log=True)
    assert logp[0, 2] == -inf
    assert_close(logp, _ref("log_softmax", x, dim=1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_noncontiguous_inputs(c_kernels, dtype):
    base = _inputs((6, 10), dtype, 3)
    for x in (base.T, base[:, ::3], base[::2, 1:]):
        for axis in (0, 1):
            assert_close(kernels.softmax_forward(x, axis), _ref("softmax", x, dim=axis))
            g = _inputs(x.shape, dtype, 4)[::-1]
            y = _ref("softmax", x, dim=axis)
            assert_close(
                kernels.softmax_backward(g, y, axis), _ref("softmax_backward", g, y, dim=axis)
            )


def test_softmax_declines_what_it_does_not_serve(c_kernels):
    assert kernels.softmax_forward(np.zeros((2, 3), np.float16), 1) is None
    assert kernels.softmax_forward(np.zeros((0, 3), np.float32), 1) is None
    assert kernels.softmax_forward(np.float32(1.0), 0) is None
    assert kernels.softmax_forward([[1.0, 2.0]], 1) is None
    assert kernels.softmax_backward(np.ones(3), np.ones(3, np.float32), 0) is None


# -- layer norm -------------------------------------------------------------------------------
def _layer_norm_ref(x, nd, w, b, eps):
    axes = tuple(range(x.ndim - nd, x.ndim))
    moments = _ref("norm_moments", x, axes=axes)
    xhat = _ref("standardize", x, moments, axes=axes, eps=eps)
    y = xhat if w is None else xhat * w
    return (y if b is None else y + b), xhat, moments


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "shape,nd", [((1, 1), 1), ((3, 7), 1), ((5, 33), 1), ((2, 3, 4), 2), ((4, 65), 1), ((9,), 1)]
)
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_forward_and_backward(c_kernels, threaded, shape, nd, dtype, affine):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    nshape = shape[len(shape) - nd :]
    w = rng.standard_normal(nshape).astype(dtype) if affine else None
    b = rng.standard_normal(nshape).astype(dtype) if affine else None
    eps = 1e-5
    out = kernels.layer_norm_forward(x, nd, w, b, eps)
    assert out is not None
    y, mean, rstd = out
    yr, xhat, moments = _layer_norm_ref(x, nd, w, b, eps)
    assert_close(y, yr)
    assert_close(mean, moments[0])
    assert_close(rstd, 1 / np.sqrt(moments[1] + eps))

    g = rng.standard_normal(shape).astype(dtype)
    axes = tuple(range(len(shape) - nd, len(shape)))
    gw = g if w is None else g * w
    dx_ref = _ref("standardize_backward", x, xhat, moments, gw, axes=axes, eps=eps)
    lead = tuple(range(len(shape) - nd))
    dx, dw, db = kernels.layer_norm_backward(g, x, mean, rstd, nd, w)
    assert_close(dx, dx_ref)
    assert_close(dw, (g * xhat).sum(axis=lead))
    assert_close(db, g.sum(axis=lead))
    # a forward that saved only x: the statistics are recomputed
    mean2, rstd2 = kernels.layer_norm_stats(x, nd, eps)
    np.testing.assert_array_equal(mean2, mean)
    np.testing.assert_array_equal(rstd2, rstd)
    dx3, dw3, db3 = kernels.layer_norm_backward(g, x, None, None, nd, w, eps=eps)
    np.testing.assert_array_equal(dx3, dx)
    np.testing.assert_array_equal(dw3, dw)
    # standardize's backward: from the saved output xhat, no mean, no affine
    dx2, dw2, db2 = kernels.layer_norm_backward(
        gw, xhat, None, rstd, nd, None, weight_grad=False, bias_grad=False, xhat_given=True
    )
    assert dw2 is None and db2 is None
    assert_close(dx2, dx_ref)


def test_layer_norm_special_values_follow_numpy(c_kernels):
    x = np.array(
        [[1.0, np.inf, 0.0], [np.nan, 1.0, 2.0], [5.0, 5.0, 5.0], [-np.inf, 0, 1]], np.float32
    )
    y, mean, rstd = kernels.layer_norm_forward(x, 1, eps=1e-5)
    yr, _, moments = _layer_norm_ref(x, 1, None, None, 1e-5)
    assert_close(y, yr)
    assert_close(mean, moments[0])
    assert (y[2] == 0).all()  # a constant row normalizes to zeros (rstd = 1/sqrt(eps))


def test_layer_norm_noncontiguous_and_declines(c_kernels):
    base = np.random.default_rng(2).standard_normal((8, 6))
    x = base.T
    y, _, _ = kernels.layer_norm_forward(x, 1)
    assert_close(y, _layer_norm_ref(x, 1, None, None, 1e-5)[0])
    assert kernels.layer_norm_forward(x, 1, weight=np.ones(5)) is None  # wrong weight size
    assert kernels.layer_norm_forward(x, 0) is None
    assert kernels.layer_norm_forward(x.astype(np.float16), 1) is None

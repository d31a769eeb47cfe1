"""GELU (exact and tanh), SiLU, sigmoid and tanh kernels, forward and backward, against
ember's NumPy path (run in float64) and float64 math, including inf, -inf, NaN, huge magnitudes, denormals
and signed zeros."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ember import kernels
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path, with_specials

DTYPES = [np.float32, np.float64]
SPECIAL = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, -1e-40, 1e-30, 20.0, -20.0, 88.8, -88.8]
SPECIAL += [100.0, -100.0, 1e4, -1e4, 3e38, -3e38]

# (name, kernel forward, kernel backward, registry forward, registry backward, backward reads)
CASES = {
    "gelu": (
        "gelu_forward",
        "gelu_backward",
        "gelu",
        "gelu_backward",
        "x",
        {"approximate": "none"},
    ),
    "gelu_tanh": (
        "gelu_forward",
        "gelu_backward",
        "gelu",
        "gelu_backward",
        "x",
        {"approximate": "tanh"},
    ),
    "silu": ("silu_forward", "silu_backward", "silu", "silu_backward", "x", {}),
    "sigmoid": ("sigmoid_forward", "sigmoid_backward", "sigmoid", "sigmoid_backward", "y", {}),
    "tanh": ("tanh_forward", "tanh_backward", "tanh", "tanh_backward", "y", {}),
}


def _ref(op, *arrays, **attrs):
    """The NumPy path computed in float64 (the float32 NumPy path itself loses digits where
    the kernels do not, e.g. ``1 + tanh(u)`` for GELU-tanh at x < -4), in the inputs' dtype."""
    dtype = arrays[0].dtype
    with numpy_path():
        out = REGISTRY[op].forward(np, *(a.astype(np.float64) for a in arrays), **attrs)
    return out.astype(dtype)


def _kernel_args(name, attrs):
    return (attrs["approximate"],) if name.startswith("gelu") else ()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 33), (1029,), (2, 3, 5)])
def test_activation_matches_numpy_path(c_kernels, threaded, name, shape, dtype):
    kf, kb, rf, rb, reads, attrs = CASES[name]
    rng = np.random.default_rng(len(shape) * 13 + shape[-1])
    x = with_specials((rng.standard_normal(shape) * 4).astype(dtype), rng, 0.05)
    g = rng.standard_normal(shape).astype(dtype)
    extra = _kernel_args(name, attrs)
    y = getattr(kernels, kf)(x, *extra)
    assert_close(y, _ref(rf, x, **attrs))
    a = x if reads == "x" else _ref(rf, x, **attrs)
    dx = getattr(kernels, kb)(g, a, *extra)
    assert_close(dx, _ref(rb, g, a, **attrs))


@pytest.mark.parametrize("name", list(CASES))
def test_activation_special_values(c_kernels, name):
    kf, kb, rf, rb, reads, attrs = CASES[name]
    for dtype in DTYPES:
        x = np.array(SPECIAL, dtype=dtype)
        extra = _kernel_args(name, attrs)
        y = getattr(kernels, kf)(x, *extra)
        ref = _ref(rf, x, **attrs)
        # the kernels are at least as accurate as the NumPy path: compare in absolute terms
        # where results underflow, exactly where they are inf or NaN
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
        np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
        fin = np.isfinite(ref)
        np.testing.assert_allclose(y[fin], ref[fin], rtol=2e-5, atol=1e-30)
        g = np.ones_like(x)
        a = x if reads == "x" else ref
        dx, dref = getattr(kernels, kb)(g, a, *extra), _ref(rb, g, a, **attrs)
        np.testing.assert_array_equal(np.isnan(dx), np.isnan(dref))
        fin = np.isfinite(dref)
        np.testing.assert_allclose(dx[fin], dref[fin], rtol=2e-5, atol=1e-30)


def test_float32_math_accuracy_against_float64(c_kernels):
    """ember's own expf/tanhf/erfcf stay within a few ulp of the float64 functions."""
    x = np.concatenate([np.linspace(-30, 30, 20001), np.geomspace(1e-6, 20, 2001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    xd = x.astype(np.float64)

    def ulps(y, ref):
        spacing = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
        return np.max(np.abs(y.astype(np.float64) - ref) / spacing)

    assert ulps(kernels.tanh_forward(x), np.tanh(xd)) < 4
    assert ulps(kernels.sigmoid_forward(x), 1 / (1 + np.exp(-xd))) < 4
    erfc = np.vectorize(math.erfc)
    gelu = kernels.gelu_forward(x).astype(np.float64)
    ref = 0.5 * xd * erfc(-xd * math.sqrt(0.5))
    big = np.abs(xd) < 5  # beyond, float32's rounding of x / sqrt(2) dominates
    assert np.max(np.abs(gelu - ref)[big] / np.abs(ref[big]).clip(1e-30)) < 2e-6


def test_gelu_tanh_tail_and_signed_zero(c_kernels):
    x = np.array([-0.0, 0.0, -12.0, 12.0], np.float32)
    y = kernels.gelu_forward(x, "tanh")
    assert np.signbit(y[0]) and not np.signbit(y[1])
    assert -1e-30 < y[2] <= 0 and y[3] == np.float32(12.0)
    assert kernels.tanh_forward(np.array([-0.0], np.float32))[0] == 0
    assert np.signbit(kernels.tanh_forward(np.array([-0.0], np.float32))[0])


def test_activation_noncontiguous_and_declines(c_kernels):
    base = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    for x in (base.T, base[:, ::2]):
        assert_close(kernels.silu_forward(x), _ref("silu", x))
        assert_close(kernels.tanh_backward(x, x[::-1]), _ref("tanh_backward", x, x[::-1]))
    assert kernels.silu_forward(np.ones(3, np.int32)) is None
    assert kernels.silu_forward(np.ones(3, np.float16)) is None
    assert kernels.silu_backward(np.ones(3, np.float32), np.ones(4, np.float32)) is None
    with pytest.raises(ValueError, match="approximate"):
        kernels.gelu_forward(np.ones(3, np.float32), "fast")

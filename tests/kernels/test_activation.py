"""GELU (exact and tanh), SiLU, sigmoid and tanh kernels, forward and backward, against
ember's NumPy path (run in float64) and float64 math, including inf, -inf, NaN, huge magnitudes, denormals
and signed zeros; the float32 kernels built for one float at a time against the vector build."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from ember import kernels
from ember.kernels import build
from ember.kernels.source import variant
from ember.kernels.source.activation import KINDS, UNIT
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


def _sigmoid64(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1 + e)


def test_float32_exp_paths_against_float64(c_kernels):
    """GELU-tanh and SiLU (forward and backward) across the ranges of their ``exp``: where
    ``1 + e`` rounds to 1, where ``e`` overflows, and where results are denormal."""
    x = np.concatenate([np.linspace(-12, 12, 24001), np.linspace(-104, -80, 4001)])
    x = x.astype(np.float32)
    xd = x.astype(np.float64)
    k, c = math.sqrt(2 / math.pi), 0.044715
    u = k * (xd + c * xd**3)
    s, sm, sx = _sigmoid64(2 * u), _sigmoid64(-2 * u), _sigmoid64(xd)
    dterm = 2 * xd * s * sm * k * (1 + 3 * c * xd * xd)
    ones = np.ones_like(x)
    cases = (  # kernel result, float64 value, the sum of its terms' magnitudes, |exp's argument|
        (kernels.gelu_forward(x, "tanh"), xd * s, np.abs(xd * s), 2 * np.abs(u)),
        (kernels.gelu_backward(ones, x, "tanh"), s + dterm, s + np.abs(dterm), 2 * np.abs(u)),
        (kernels.silu_forward(x), xd * sx, np.abs(xd * sx), np.abs(xd)),
        (kernels.silu_backward(ones, x), sx * (1 + xd * (1 - sx)), sx * (1 + np.abs(xd)), 0 * xd),
    )
    for y, ref, scale, t in cases:
        err = np.abs(y.astype(np.float64) - ref)
        # float32's rounding of u costs exp a relative |2u| 2^-24 or so; the derivatives
        # cancel near their zeros: compared with the size of their terms; a denormal exp
        # holds fewer digits: an absolute 2^-149 per term
        normal = scale >= 2**-126
        bound = (16 + 4 * np.minimum(t, 100)) * 2**-24 * scale + (2 + np.abs(xd)) * 2**-149
        flushed = (y == 0) & (xd < -10)  # GELU: 0 once exp(-2u) overflows, x below ~ -10.05
        assert np.all((err <= bound) | ~normal | flushed)
        assert np.all(np.abs(ref[flushed]) < 1e-36)
        assert np.all(err[~normal] <= 2**-126)  # denormal results
    g = kernels.gelu_forward(np.array([np.inf, -np.inf, np.nan, -20.0, 20.0], np.float32), "tanh")
    assert g[0] == np.inf and np.isnan(g[1]) and np.isnan(g[2])
    assert g[3] == 0 and np.signbit(g[3]) and g[4] == 20


@pytest.mark.parametrize("name", list(CASES))
def test_one_float_build_matches_vector_build(c_kernels, name):
    """The float32 kernels built without AVX2 (one float at a time, in a loop the compiler
    vectorizes) give the vector build's results, bit for bit, tails and chunk edges included."""
    vector = variant(UNIT, "f32")
    one = dataclasses.replace(vector, name="activation_test_scalar", flags=("-mno-avx2",))
    try:
        scalar = build.load_unit(one)
    except build.KernelBuildError:
        pytest.skip("this compiler has no -mno-avx2 (not an x86 target)")
    vector = build.load_unit(vector)
    kind = KINDS[name]
    rng = np.random.default_rng(kind)
    for n in (1, 7, 47, 48, 49, 16368 + 50):
        x = with_specials((rng.standard_normal(n) * 6).astype(np.float32), rng, 0.05)
        x[: min(n, 12)] = np.array(SPECIAL[:12], np.float32)[: min(n, 12)]
        g = rng.standard_normal(n).astype(np.float32)
        outs = []
        for lib in (scalar, vector):
            f, y, dx = lib.ffi.from_buffer, np.empty_like(x), np.empty_like(x)
            assert lib.lib.ember_activation_forward_f32(f(x), f(y), n, kind, 2) == 0
            assert lib.lib.ember_activation_backward_f32(f(g), f(x), f(dx), n, kind, 2) == 0
            outs.append((y, dx))
        for a, b in zip(outs[0], outs[1]):
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
            ok = ~np.isnan(a)
            np.testing.assert_array_equal(a[ok].view(np.int32), b[ok].view(np.int32))

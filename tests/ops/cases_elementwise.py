"""Table rows for the elementwise family: unary math (``unary.py``), rounding and clamping
(``rounding.py``), maximum/minimum (``compare.py``), logical/bitwise (``logical.py``) and the
edge cases of comparisons, ``where``, ``pow``, ``remainder`` and ``floor_divide``."""

import math

import numpy as np

from .optable import B, C, Case, F, I, V, cases

_erf = np.vectorize(math.erf, otypes=[np.float64])
_erfc = np.vectorize(math.erfc, otypes=[np.float64])
_NAN, _INF = float("nan"), float("inf")


def _erfinv_one(y: float) -> float:
    """erf^-1 by bisection on math.erf / math.erfc (an oracle independent of ember's method);
    above 0.5 it solves erfc(x) = 1 - y, which keeps full accuracy near 1."""
    if abs(y) >= 1.0:
        return math.copysign(math.inf, y) if abs(y) == 1.0 else math.nan
    if y < 0:
        return -_erfinv_one(-y)
    lo, hi = 0.0, 7.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if (math.erf(mid) < y) if y < 0.5 else (math.erfc(mid) > 1.0 - y):
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


_erfinv = np.vectorize(_erfinv_one, otypes=[np.float64])


def _f32(fn):
    return lambda *a: fn(*a).astype(np.float32)


def _iand(m, a, b):
    a &= b
    return a


def _ior(m, a, b):
    a |= b
    return a


def _ixor(m, a, b):
    a ^= b
    return a


def _np_clamp(a, lo, hi):
    return np.minimum(np.maximum(a, lo), hi)


def _scalar_max(m, a):
    return m.maximum(a, m.tensor(0.25, dtype=a.dtype, device=a.device))


# fixed values for float classification and NaN handling
_SPECIAL = [1.5, _NAN, _INF, -_INF, -0.0, -2.0]

CASES = cases(
    # -- abs, sign, powers ---------------------------------------------------------------------
    Case("abs", lambda m, a: m.abs(a), [F(3, 4)], ref=np.abs, grad2=True),
    Case("abs_method_noncontig", lambda m, a: abs(a), [F(3, 4, noncontig=True)], ref=np.abs),
    Case("abs_int", lambda m, a: a.abs(), [I(6, low=-5, high=5)], ref=np.abs, grad=False),
    Case("sign", lambda m, a: m.sign(a), [F(2, 3)], ref=np.sign),
    Case("sign_int", lambda m, a: m.sign(a), [I(7, low=-3, high=4)], ref=np.sign, grad=False),
    Case("sqrt", lambda m, a: m.sqrt(a), [F(3, 4, low=0.5, high=3)], ref=np.sqrt, grad2=True),
    Case(
        "sqrt_int",
        lambda m, a: m.sqrt(a),
        [I(5)],
        ref=_f32(lambda a: np.sqrt(a.astype(np.float64))),
        grad=False,
    ),
    Case(
        "rsqrt",
        lambda m, a: a.rsqrt(),
        [F(2, 3, low=0.5, high=3)],
        ref=lambda a: 1 / np.sqrt(a),
        grad2=True,
    ),
    Case(
        "reciprocal",
        lambda m, a: m.reciprocal(a),
        [F(2, 3, low=0.5, high=2)],
        ref=lambda a: 1 / a,
    ),
    Case("square", lambda m, a: m.square(a), [F(2, 3)], ref=np.square, grad2=True),
    Case("square_int", lambda m, a: a.square(), [I(4, low=-3, high=3)], ref=np.square, grad=False),
    Case("abs_size0", lambda m, a: m.abs(a), [F(0, 3)], ref=np.abs),
    # -- trigonometric and hyperbolic ----------------------------------------------------------
    Case("sin", lambda m, a: m.sin(a), [F(3, 4)], ref=np.sin, grad2=True),
    Case("cos", lambda m, a: a.cos(), [F(3, 4)], ref=np.cos, grad2=True),
    Case("tan", lambda m, a: m.tan(a), [F(5, low=-1, high=1)], ref=np.tan, grad2=True),
    Case("asin", lambda m, a: m.asin(a), [F(5, low=-0.9, high=0.9)], ref=np.arcsin),
    Case("acos", lambda m, a: m.acos(a), [F(5, low=-0.9, high=0.9)], ref=np.arccos),
    Case("atan", lambda m, a: m.atan(a), [F(5)], ref=np.arctan, grad2=True),
    Case("sinh", lambda m, a: m.sinh(a), [F(5)], ref=np.sinh),
    Case("cosh", lambda m, a: m.cosh(a), [F(5)], ref=np.cosh),
    Case("asinh", lambda m, a: m.asinh(a), [F(5)], ref=np.arcsinh),
    Case("acosh", lambda m, a: m.acosh(a), [F(5, low=1.2, high=3)], ref=np.arccosh),
    Case("atanh", lambda m, a: m.atanh(a), [F(5, low=-0.9, high=0.9)], ref=np.arctanh),
    Case(
        "atan2_broadcast",
        lambda m, a, b: m.atan2(a, b),
        [F(3, 4), F(4)],
        ref=np.arctan2,
        grad2=True,
    ),
    Case("sin_int", lambda m, a: m.sin(a), [I(4)], ref=_f32(np.sin), grad=False),
    # -- exp / log relatives -------------------------------------------------------------------
    Case("exp2", lambda m, a: m.exp2(a), [F(2, 3)], ref=np.exp2),
    Case("expm1", lambda m, a: a.expm1(), [F(2, 3)], ref=np.expm1, grad2=True),
    Case("log1p", lambda m, a: m.log1p(a), [F(2, 3, low=-0.5, high=2)], ref=np.log1p, grad2=True),
    Case("log2", lambda m, a: m.log2(a), [F(4, low=0.5, high=3)], ref=np.log2),
    Case("log10", lambda m, a: m.log10(a), [F(4, low=0.5, high=3)], ref=np.log10),
    # -- error function ------------------------------------------------------------------------
    Case("erf", lambda m, a: m.erf(a), [F(4, 5)], ref=_erf, grad2=True),
    Case(
        "erf_tails",
        lambda m, a: m.erf(a),
        [V([-30.0, -6.0, -3.5, -0.4, 0.0, 1e-12, 0.46875, 0.5, 2.0, 4.0, 4.5, 27.0])],
        ref=_erf,
        grad=False,
        atol=0,
        rtol=1e-14,
    ),
    Case("erfc", lambda m, a: m.erfc(a), [F(3, 4)], ref=_erfc, grad2=True),
    Case(
        "erfc_tails",
        lambda m, a: m.erfc(a),
        [V([-5.0, -0.3, 0.1, 0.47, 1.0, 3.9, 4.1, 10.0, 20.0, 26.0])],
        ref=_erfc,
        grad=False,
        atol=0,
        rtol=1e-13,
    ),
    Case("erfinv", lambda m, a: m.erfinv(a), [F(8, low=-0.95, high=0.95)], ref=_erfinv),
    Case(
        "erfinv_tails",
        lambda m, a: m.erfinv(a),
        [V([-0.999999, -0.5, 0.0, 1e-10, 0.9, 0.99999999, 1.0, -1.0])],
        ref=_erfinv,
        grad=False,
        atol=1e-12,
        rtol=1e-10,
    ),
    # -- lerp ----------------------------------------------------------------------------------
    Case(
        "lerp_scalar",
        lambda m, a, b: m.lerp(a, b, 0.3),
        [F(3, 4), F(3, 4)],
        ref=lambda a, b: a + 0.3 * (b - a),
    ),
    Case(
        "lerp_tensor_broadcast",
        lambda m, a, b, w: a.lerp(b, w),
        [F(3, 4), F(4), F(3, 1)],
        ref=lambda a, b, w: a + w * (b - a),
        grad2=True,
    ),
    # -- rounding ------------------------------------------------------------------------------
    Case("floor", lambda m, a: m.floor(a), [F(3, 4, low=-5, high=5)], ref=np.floor),
    Case("ceil", lambda m, a: a.ceil(), [F(3, 4, low=-5, high=5)], ref=np.ceil),
    Case("round", lambda m, a: m.round(a), [F(3, 4, low=-5, high=5)], ref=np.round),
    Case(
        "round_half_even",
        lambda m, a: m.round(a),
        [V([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])],
        ref=np.round,
        grad=False,
    ),
    Case(
        "round_decimals",
        lambda m, a: m.round(a, decimals=2),
        [F(6, low=-5, high=5)],
        ref=lambda a: np.round(a, 2),
    ),
    Case(
        "round_decimals_neg",
        lambda m, a: a.round(decimals=-1),
        [F(6, low=-500, high=500)],
        ref=lambda a: np.round(a, -1),
    ),
    Case("trunc", lambda m, a: m.trunc(a), [F(2, 3, low=-5, high=5)], ref=np.trunc),
    Case("fix", lambda m, a: m.fix(a), [F(4, low=-5, high=5)], ref=np.trunc),
    Case(
        "frac",
        lambda m, a: m.frac(a),
        [F(2, 3, low=-5, high=5)],
        ref=lambda a: a - np.trunc(a),
        grad2=True,
    ),
    Case("floor_int", lambda m, a: m.floor(a), [I(5, low=-3, high=3)], ref=np.floor, grad=False),
    # -- clamp ---------------------------------------------------------------------------------
    Case(
        "clamp_scalars",
        lambda m, a: m.clamp(a, -0.5, 0.5),
        [F(3, 4)],
        ref=lambda a: np.clip(a, -0.5, 0.5),
        grad2=True,
    ),
    Case(
        "clamp_min_only",
        lambda m, a: a.clamp(min=0.1),
        [F(3, 4)],
        ref=lambda a: np.maximum(a, 0.1),
    ),
    Case(
        "clamp_max_only",
        lambda m, a: m.clamp(a, max=-0.1),
        [F(3, 4)],
        ref=lambda a: np.minimum(a, -0.1),
    ),
    Case(
        "clamp_tensor_bounds",  # broadcasting bounds, some with min > max
        lambda m, a, lo, hi: m.clamp(a, lo, hi),
        [F(3, 4), F(4), F(3, 1)],
        ref=_np_clamp,
        grad2=True,
    ),
    Case(
        "clamp_tensor_min_noncontig",
        lambda m, a, lo: m.clamp(a, min=lo),
        [F(3, 4, noncontig=True), F(3, 4)],
        ref=np.maximum,
    ),
    Case(
        "clamp_tensor_max_only",
        lambda m, a, hi: m.clamp(a, max=hi),
        [F(2, 3), F(2, 1)],
        ref=np.minimum,
    ),
    Case(
        "clamp_min_gt_max",
        lambda m, a: m.clamp(a, 1.0, -1.0),
        [F(5)],
        ref=lambda a: np.full_like(a, -1.0),
    ),
    Case(
        "clamp_int",
        lambda m, a: m.clamp(a, -2, 2),
        [I(3, 4, low=-5, high=5)],
        ref=lambda a: np.clip(a, -2, 2),
        grad=False,
    ),
    Case(
        "clamp_int_float_bound",
        lambda m, a: m.clamp(a, min=0.5),
        [I(6, low=-3, high=3)],
        ref=lambda a: np.maximum(a, 0.5).astype(np.float32),
        grad=False,
    ),
    Case(
        "clip_alias",
        lambda m, a: m.clip(a, -1, 1),
        [F(5)],
        ref=lambda a: np.clip(a, -1, 1),
    ),
    Case(
        "clamp_min_max_fns",
        lambda m, a: (m.clamp_min(a, 0.0), m.clamp_max(a, 0.0)),
        [F(5)],
        ref=lambda a: (np.maximum(a, 0.0), np.minimum(a, 0.0)),
    ),
    # -- classification and NaN handling -------------------------------------------------------
    Case(
        "isnan_isinf_isfinite",
        lambda m, a: (m.isnan(a), m.isinf(a), m.isfinite(a), m.isposinf(a), m.isneginf(a)),
        [V(_SPECIAL)],
        ref=lambda a: (np.isnan(a), np.isinf(a), np.isfinite(a), np.isposinf(a), np.isneginf(a)),
        grad=False,
    ),
    Case("signbit", lambda m, a: m.signbit(a), [V(_SPECIAL)], ref=np.signbit, grad=False),
    Case("isnan_int", lambda m, a: m.isnan(a), [I(4)], ref=np.isnan, grad=False),
    Case(
        "nan_to_num",
        lambda m, a: m.nan_to_num(a),
        [V(_SPECIAL, dtype="float32")],
        ref=np.nan_to_num,
        grad=False,  # outputs near the float max drown finite differences; see the next row
    ),
    Case(
        "nan_to_num_values",
        lambda m, a: a.nan_to_num(nan=1.0, posinf=2.0, neginf=-3.0),
        [V(_SPECIAL, grad=True)],
        ref=lambda a: np.nan_to_num(a, nan=1.0, posinf=2.0, neginf=-3.0),
    ),
    # -- maximum / minimum ---------------------------------------------------------------------
    Case("maximum", lambda m, a, b: m.maximum(a, b), [F(3, 4), F(4)], ref=np.maximum, grad2=True),
    Case("minimum", lambda m, a, b: a.minimum(b), [F(3, 1), F(1, 4)], ref=np.minimum),
    Case(
        "maximum_ties",  # the gradient is split evenly where the inputs tie
        lambda m, a, b: m.maximum(a, b),
        [V([[1.0, 2.0, 3.0], [0.0, 5.0, -1.0]], grad=True), V([1.0, 4.0, 3.0], grad=True)],
        ref=np.maximum,
    ),
    Case(
        "minimum_ties",
        lambda m, a, b: m.minimum(a, b),
        [V([1.0, 2.0, -3.0], grad=True), V([1.0, 4.0, -3.0], grad=True)],
        ref=np.minimum,
    ),
    Case(
        "maximum_int_float",
        lambda m, a, b: m.maximum(a, b),
        [I(4, low=-2, high=3), C(4)],
        ref=np.maximum,
        grad=False,
    ),
    Case("maximum_0dim", _scalar_max, [F(5)], ref=lambda a: np.maximum(a, 0.25)),
    Case(
        "fmax_nan",
        lambda m, a, b: m.fmax(a, b),
        [V([_NAN, 1.0, 2.0, _NAN], grad=True), V([0.5, _NAN, 3.0, 1.0], grad=True)],
        ref=np.fmax,
    ),
    Case(
        "fmin_nan",
        lambda m, a, b: m.fmin(a, b),
        [V([_NAN, 1.0, 2.0, 2.5], grad=True), V([0.5, _NAN, 3.0, 2.0], grad=True)],
        ref=np.fmin,
    ),
    Case("fmax_random", lambda m, a, b: m.fmax(a, b), [F(3, 4), F(4)], ref=np.fmax),
    Case(
        "isclose",
        lambda m, a, b: m.isclose(a, b, rtol=1e-3, atol=1e-3),
        [V([1.0, 2.0, _INF, _NAN, 0.0]), V([1.0005, 2.1, _INF, _NAN, 1e-4])],
        ref=lambda a, b: np.isclose(a, b, rtol=1e-3, atol=1e-3),
        grad=False,
    ),
    # -- logical and bitwise -------------------------------------------------------------------
    Case(
        "logical_ops",
        lambda m, a, b: (
            m.logical_and(a, b),
            m.logical_or(a, b),
            m.logical_xor(a, b),
            m.logical_not(a),
        ),
        [B(3, 4), B(4)],
        ref=lambda a, b: (
            np.logical_and(a, b),
            np.logical_or(a, b),
            np.logical_xor(a, b),
            np.logical_not(a),
        ),
        grad=False,
    ),
    Case(
        "logical_mixed_dtypes",
        lambda m, a, b: (m.logical_and(a, b), a.logical_or(b), m.logical_not(b)),
        [C(2, 3), I(3, low=0, high=2)],
        ref=lambda a, b: (np.logical_and(a, b), np.logical_or(a, b), np.logical_not(b)),
        grad=False,
    ),
    Case(
        "bitwise_int",
        lambda m, a, b: (a & b, a | b, a ^ b, ~a, m.bitwise_and(a, 6)),
        [I(3, 4, low=-8, high=8), I(4, low=0, high=16)],
        ref=lambda a, b: (a & b, a | b, a ^ b, ~a, a & 6),
        grad=False,
    ),
    Case(
        "bitwise_bool",
        lambda m, a, b: (a & b, a | b, a ^ b, ~a, a & True, True ^ a),
        [B(2, 3), B(3)],
        ref=lambda a, b: (a & b, a | b, a ^ b, ~a, a & True, True ^ a),
        grad=False,
    ),
    Case(
        "bitwise_reflected_scalar",
        lambda m, a: (3 & a, 8 | a, 5 ^ a),
        [I(5, low=0, high=16)],
        ref=lambda a: (3 & a, 8 | a, 5 ^ a),
        grad=False,
    ),
    Case(
        "bitwise_promote_int32_int64",
        lambda m, a, b: a | b,
        [I(4, dtype="int32"), I(4)],
        ref=lambda a, b: a.astype(np.int64) | b,
        grad=False,
    ),
    Case(
        "bitwise_bool_int",
        lambda m, a: a & 1,
        [B(4)],
        ref=lambda a: a.astype(np.int64) & 1,
        grad=False,
    ),
    Case(
        "bitwise_shifts",
        lambda m, a, b: (a << b, a >> b, m.bitwise_left_shift(a, 1)),
        [I(5, low=-8, high=8), I(5, low=0, high=3)],
        ref=lambda a, b: (a << b, a >> b, a << 1),
        grad=False,
    ),
    Case(
        "bitwise_inplace",
        lambda m, a, b: (_iand(m, a.clone(), b), _ior(m, a.clone(), b), _ixor(m, a.clone(), b)),
        [I(3, 4, low=0, high=16), I(4, low=0, high=16)],
        ref=lambda a, b: (a & b, a | b, a ^ b),
        grad=False,
    ),
    # -- comparisons, where, pow, remainder, floor_divide edge cases ---------------------------
    Case(
        "compare_scalar_left",
        lambda m, a: (2 < a, 2 >= a, 1 == a, 3 != a),
        [I(6)],
        ref=lambda a: (2 < a, 2 >= a, a == 1, a != 3),
        grad=False,
    ),
    Case(
        "compare_int_float",
        lambda m, a, b: (a < b, a == b, m.ge(a, 2.5), m.greater(b, a)),
        [I(3, 4), C(4, low=0, high=5)],
        ref=lambda a, b: (a < b, a == b, a >= 2.5, b > a),
        grad=False,
    ),
    Case(
        "where_broadcast",
        lambda m, c, a, b: m.where(c, a, b),
        [B(3, 1), F(3, 4), F(4)],
        ref=np.where,
        grad2=True,
    ),
    Case(
        "where_scalars",
        lambda m, c: (m.where(c, 1, 2.5), m.where(c, 1, 2), m.where(c, True, False)),
        [B(5)],
        ref=lambda c: (
            np.where(c, 1, 2.5).astype(np.float32),
            np.where(c, 1, 2),
            np.where(c, True, False),
        ),
        grad=False,
    ),
    Case(
        "where_int_tensor_float_scalar",
        lambda m, c, a: m.where(c, a, 0.5),
        [B(4), I(4)],
        ref=lambda c, a: np.where(c, a, 0.5).astype(np.float32),
        grad=False,
    ),
    Case(
        "where_scalar_branch_grad",
        lambda m, c, a: m.where(c, 0.0, a),
        [B(2, 3), F(2, 3)],
        ref=lambda c, a: np.where(c, 0.0, a),
    ),
    Case("pow_int", lambda m, a: a**2, [I(5, low=-4, high=4)], ref=lambda a: a**2, grad=False),
    Case("rpow_int", lambda m, a: 2**a, [I(5)], ref=lambda a: 2**a, grad=False),
    Case(
        "rpow_float_int",
        lambda m, a: 1.5**a,
        [I(5)],
        ref=lambda a: (1.5**a).astype(np.float32),
        grad=False,
    ),
    Case(
        "pow_int_float_exponent",
        lambda m, a: a**0.5,
        [I(5)],
        ref=lambda a: (a**0.5).astype(np.float32),
        grad=False,
    ),
    Case("pow_exponent_zero", lambda m, a: a**0, [F(4)], ref=lambda a: a**0),
    Case(
        "pow_tensor_exponent_zero",
        lambda m, a, b: a**b,
        [V([0.0, 0.0, 2.0, 3.0], grad=True), V([0.0, 0.0, 0.0, 2.0])],
        ref=np.power,
    ),
    Case(
        "pow_zero_base_exponent_grad",
        lambda m, a, b: a**b,
        [V([0.0, 0.0, 2.0, 0.5]), F(4, low=0.5, high=2)],
        ref=np.power,
    ),
    Case(
        "pow_broadcast",
        lambda m, a, b: m.pow(a, b),
        [F(3, 1, low=0.5, high=2), F(4, low=-1, high=2)],
        ref=np.power,
    ),
    Case("rpow_scalar_grad", lambda m, a: 3.0**a, [F(4)], ref=lambda a: 3.0**a, grad2=True),
    Case(
        "remainder_int_signs",
        lambda m, a, b: (a % b, m.remainder(a, -3), 7 % b),
        [I(6, low=-9, high=9), I(6, low=1, high=4)],
        ref=lambda a, b: (a % b, a % -3, 7 % b),
        grad=False,
    ),
    Case(
        "remainder_float",
        lambda m, a, b: a % b,
        [F(3, 4, low=-5, high=5), F(4, low=0.5, high=2)],
        ref=np.remainder,
    ),
    Case(
        "remainder_scalar_left",
        lambda m, a: 5.0 % a,
        [F(4, low=0.5, high=2)],
        torch_fn=lambda m, a: m.remainder(m.full_like(a, 5.0), a),  # torch: no Scalar % grad
        ref=lambda a: 5.0 % a,
    ),
    Case(
        "fmod",
        lambda m, a, b: m.fmod(a, b),
        [F(3, 4, low=-5, high=5), F(4, low=0.5, high=2)],
        ref=np.fmod,
    ),
    Case(
        "fmod_int",
        lambda m, a: m.fmod(a, 3),
        [I(6, low=-9, high=9)],
        ref=lambda a: np.fmod(a, 3),
        grad=False,
    ),
    Case(
        "floor_divide_int",
        lambda m, a, b: (a // b, m.floor_divide(a, 2), 7 // b),
        [I(6, low=-9, high=9), I(6, low=1, high=4)],
        ref=lambda a, b: (a // b, a // 2, 7 // b),
        grad=False,
    ),
    Case(
        "floor_divide_float",
        lambda m, a, b: a // b,
        [C(3, 4, low=-5, high=5), C(4, low=0.5, high=2)],
        ref=np.floor_divide,
        grad=False,
    ),
)

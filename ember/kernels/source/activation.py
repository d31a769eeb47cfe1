"""C kernels of the smooth activations, forward and backward, elementwise over contiguous
arrays: ``kind`` 0 GELU (tanh approximation), 1 GELU (exact, erf), 2 SiLU, 3 sigmoid, 4 tanh.

Forward ``y = f(x)``. Backward ``dx = g * f'(a)``, where ``a`` is what the op saves: the
input ``x`` for GELU and SiLU, the output ``y`` for sigmoid and tanh. The formulas are the
NumPy path's (``ember/ops/activation_grad.py``), in the same order, except GELU-tanh, which
uses ``0.5 (1 + tanh(u)) = sigmoid(2u)`` and ``(1 - tanh(u)^2) / 4 = e / (1 + e)^2`` with
``e = exp(-2|u|)``: one ``exp``, and no cancellation in ``1 + tanh(u)`` for negative inputs
(the NumPy path loses all digits there below about -4; ``+-inf`` still give what NumPy
gives: ``gelu(-inf)`` and both derivatives at ``+-inf`` are NaN). Sigmoid is ``where(x >= 0, 1, e) / (1 + e)`` with
``e = exp(-|x|)``: no overflow at either end.

Example:
    >>> from ember.kernels.source.activation import UNIT, KINDS
    >>> KINDS["silu"]
    2
"""

from __future__ import annotations

from . import Unit

KINDS = {"gelu_tanh": 0, "gelu": 1, "silu": 2, "sigmoid": 3, "tanh": 4}

SHARED = r"""
#define GELU_K 0.7978845608028654
#define GELU_C 0.044715
#define SQRT1_2 0.7071067811865476
#define INV_SQRT_2PI 0.3989422804014327
"""

BODY = r"""
EMBER_API int FN(activation_forward)(const scalar *restrict x, scalar *restrict y, i64 n, int kind,
                                     int nt) {
    const scalar K = (scalar)GELU_K, C = (scalar)GELU_C, S = (scalar)SQRT1_2;
    switch (kind) {
    case 0:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar u = v * (v * v * C + 1) * K;
            y[i] = v / (1 + EXP(-2 * u));
        });
        return 0;
    case 1:
        ELEMENTWISE(n, nt, i, { y[i] = ERFC(x[i] * -S) * LIT(0.5) * x[i]; });
        return 0;
    case 2:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar e = EXP(-ABS(v));
            y[i] = (v >= 0 ? 1 : e) / (1 + e) * v;
        });
        return 0;
    case 3:
        ELEMENTWISE(n, nt, i, {
            scalar v = x[i];
            scalar e = EXP(-ABS(v));
            y[i] = (v >= 0 ? 1 : e) / (1 + e);
        });
        return 0;
    case 4:
        ELEMENTWISE(n, nt, i, { y[i] = TANH(x[i]); });
        return 0;
    }
    return -1;
}

EMBER_API int FN(activation_backward)(const scalar *restrict g, const scalar *restrict a,
                                      scalar *restrict dx, i64 n, int kind, int nt) {
    const scalar K = (scalar)GELU_K, C = (scalar)GELU_C, S = (scalar)SQRT1_2;
    const scalar P = (scalar)INV_SQRT_2PI;
    switch (kind) {
    case 0:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i], v2 = v * v;
            scalar u = (v2 * C + 1) * v * K;
            scalar du = (v2 * (3 * C) + 1) * K;
            scalar e = EXP(-2 * ABS(u)), r = 1 / (1 + e);
            scalar s = (u >= 0 ? 1 : e) * r; /* sigmoid(2u) = (1 + tanh(u)) / 2 */
            scalar w = e * r * r; /* 0 beyond |u| ~ 44: keep x^2 overflow out (inf * 0) */
            dx[i] = (s + (w == 0 ? 0 * v : 2 * v * du * w)) * g[i];
        });
        return 0;
    case 1:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i];
            scalar cdf = ERFC(v * -S) * LIT(0.5);
            scalar pdf = EXP(v * v * LIT(-0.5)) * P * v;
            dx[i] = (pdf + cdf) * g[i];
        });
        return 0;
    case 2:
        ELEMENTWISE(n, nt, i, {
            scalar v = a[i];
            scalar e = EXP(-ABS(v));
            scalar s = (v >= 0 ? 1 : e) / (1 + e);
            dx[i] = ((1 - s) * v + 1) * s * g[i];
        });
        return 0;
    case 3:
        ELEMENTWISE(n, nt, i, { dx[i] = (1 - a[i]) * a[i] * g[i]; });
        return 0;
    case 4:
        ELEMENTWISE(n, nt, i, { dx[i] = (1 - a[i] * a[i]) * g[i]; });
        return 0;
    }
    return -1;
}
"""

UNIT = Unit(
    name="activation",
    functions=(
        "int activation_forward(const scalar *x, scalar *y, i64 n, int kind, int nt)",
        "int activation_backward(const scalar *g, const scalar *a, scalar *dx, i64 n, int kind,"
        " int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

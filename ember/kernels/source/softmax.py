"""C kernels of ``softmax``, ``log_softmax`` and the attention ``safe_softmax``, forward and
backward, over any axis of a C-contiguous array seen as ``(A, K, B)`` (``K`` the axis).

``B == 1`` (the last axis) runs row by row: a max pass, an ``exp``-and-sum pass, a scaling
pass, each a vectorized loop over one row that stays in the L1 cache. ``B > 1`` vectorizes
across ``B`` instead (blocks of 64 columns, strided by ``B`` along ``K``), so no transposed
copy is ever made. ``mode``: 0 softmax, 1 log_softmax, 2 safe softmax (a row whose entries
are all ``-inf`` gives zeros). Special values follow NumPy's formulas exactly: a row with a
NaN or a ``+inf`` gives NaN, a fully masked row gives NaN (zeros in mode 2).

Example:
    >>> from ember.kernels.source.softmax import UNIT
    >>> UNIT.name
    'softmax'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
#define SOFTMAX_BLOCK 64
"""

BODY = r"""
static void FN(softmax_row)(const scalar *restrict x, scalar *restrict y, i64 K, int mode) {
    scalar m = -INFINITY;
    SIMD_MAX(m)
    for (i64 k = 0; k < K; k++) m = x[k] > m ? x[k] : m;
    if (mode == 2 && m == -INFINITY) m = 0;
    scalar s = 0;
    if (mode == 1) {
        SIMD_SUM(s)
        for (i64 k = 0; k < K; k++) s += EXP(x[k] - m);
        scalar lse = LOG(s) + m;
        SIMD
        for (i64 k = 0; k < K; k++) y[k] = x[k] - lse;
        return;
    }
    SIMD_SUM(s)
    for (i64 k = 0; k < K; k++) {
        scalar e = EXP(x[k] - m);
        y[k] = e;
        s += e;
    }
    if (mode == 2 && s == 0) s = 1;
    scalar r = LIT(1.0) / s;
    SIMD
    for (i64 k = 0; k < K; k++) y[k] *= r;
}

/* nb columns (nb <= SOFTMAX_BLOCK) of one (K, B) plane */
static void FN(softmax_block)(const scalar *restrict x, scalar *restrict y, i64 K, i64 B,
                              i64 nb, int mode) {
    scalar m[SOFTMAX_BLOCK], s[SOFTMAX_BLOCK];
    for (i64 j = 0; j < nb; j++) { m[j] = -INFINITY; s[j] = 0; }
    for (i64 k = 0; k < K; k++) {
        const scalar *xr = x + k * B;
        SIMD
        for (i64 j = 0; j < nb; j++) m[j] = xr[j] > m[j] ? xr[j] : m[j];
    }
    if (mode == 2)
        for (i64 j = 0; j < nb; j++) m[j] = m[j] == -INFINITY ? 0 : m[j];
    if (mode == 1) {
        for (i64 k = 0; k < K; k++) {
            const scalar *xr = x + k * B;
            SIMD
            for (i64 j = 0; j < nb; j++) s[j] += EXP(xr[j] - m[j]);
        }
        for (i64 j = 0; j < nb; j++) s[j] = LOG(s[j]) + m[j];
        for (i64 k = 0; k < K; k++) {
            const scalar *xr = x + k * B;
            scalar *yr = y + k * B;
            SIMD
            for (i64 j = 0; j < nb; j++) yr[j] = xr[j] - s[j];
        }
        return;
    }
    for (i64 k = 0; k < K; k++) {
        const scalar *xr = x + k * B;
        scalar *yr = y + k * B;
        SIMD
        for (i64 j = 0; j < nb; j++) {
            scalar e = EXP(xr[j] - m[j]);
            yr[j] = e;
            s[j] += e;
        }
    }
    for (i64 j = 0; j < nb; j++) s[j] = LIT(1.0) / ((mode == 2 && s[j] == 0) ? 1 : s[j]);
    for (i64 k = 0; k < K; k++) {
        scalar *yr = y + k * B;
        SIMD
        for (i64 j = 0; j < nb; j++) yr[j] *= s[j];
    }
}

EMBER_API void FN(softmax_forward)(const scalar *x, scalar *y, i64 A, i64 K, i64 B, int mode,
                                   int nt) {
    if (B == 1) {
        PARALLEL_FOR(nt)
        for (i64 a = 0; a < A; a++) FN(softmax_row)(x + a * K, y + a * K, K, mode);
        return;
    }
    i64 blocks = (B + SOFTMAX_BLOCK - 1) / SOFTMAX_BLOCK;
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < A * blocks; item++) {
        i64 a = item / blocks, b0 = (item % blocks) * SOFTMAX_BLOCK;
        i64 nb = B - b0 < SOFTMAX_BLOCK ? B - b0 : SOFTMAX_BLOCK;
        FN(softmax_block)(x + a * K * B + b0, y + a * K * B + b0, K, B, nb, mode);
    }
}

/* softmax: dx = (g - sum(g * y)) * y; log_softmax: dx = g - exp(y) * sum(g) */
static void FN(softmax_backward_row)(const scalar *restrict g, const scalar *restrict y,
                                     scalar *restrict dx, i64 K, int mode) {
    scalar s = 0;
    if (mode == 1) {
        SIMD_SUM(s)
        for (i64 k = 0; k < K; k++) s += g[k];
        SIMD
        for (i64 k = 0; k < K; k++) dx[k] = g[k] - EXP(y[k]) * s;
        return;
    }
    SIMD_SUM(s)
    for (i64 k = 0; k < K; k++) s += g[k] * y[k];
    SIMD
    for (i64 k = 0; k < K; k++) dx[k] = (g[k] - s) * y[k];
}

static void FN(softmax_backward_block)(const scalar *restrict g, const scalar *restrict y,
                                       scalar *restrict dx, i64 K, i64 B, i64 nb, int mode) {
    scalar s[SOFTMAX_BLOCK];
    for (i64 j = 0; j < nb; j++) s[j] = 0;
    for (i64 k = 0; k < K; k++) {
        const scalar *gr = g + k * B, *yr = y + k * B;
        if (mode == 1) {
            SIMD
            for (i64 j = 0; j < nb; j++) s[j] += gr[j];
        } else {
            SIMD
            for (i64 j = 0; j < nb; j++) s[j] += gr[j] * yr[j];
        }
    }
    for (i64 k = 0; k < K; k++) {
        const scalar *gr = g + k * B, *yr = y + k * B;
        scalar *dr = dx + k * B;
        if (mode == 1) {
            SIMD
            for (i64 j = 0; j < nb; j++) dr[j] = gr[j] - EXP(yr[j]) * s[j];
        } else {
            SIMD
            for (i64 j = 0; j < nb; j++) dr[j] = (gr[j] - s[j]) * yr[j];
        }
    }
}

EMBER_API void FN(softmax_backward)(const scalar *g, const scalar *y, scalar *dx, i64 A, i64 K,
                                    i64 B, int mode, int nt) {
    if (B == 1) {
        PARALLEL_FOR(nt)
        for (i64 a = 0; a < A; a++)
            FN(softmax_backward_row)(g + a * K, y + a * K, dx + a * K, K, mode);
        return;
    }
    i64 blocks = (B + SOFTMAX_BLOCK - 1) / SOFTMAX_BLOCK;
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < A * blocks; item++) {
        i64 a = item / blocks, b0 = (item % blocks) * SOFTMAX_BLOCK;
        i64 nb = B - b0 < SOFTMAX_BLOCK ? B - b0 : SOFTMAX_BLOCK;
        i64 off = a * K * B + b0;
        FN(softmax_backward_block)(g + off, y + off, dx + off, K, B, nb, mode);
    }
}
"""

UNIT = Unit(
    name="softmax",
    functions=(
        "void softmax_forward(const scalar *x, scalar *y, i64 A, i64 K, i64 B, int mode, int nt)",
        "void softmax_backward(const scalar *g, const scalar *y, scalar *dx, i64 A, i64 K, i64 B,"
        " int mode, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

"""C kernels of ``layer_norm``: forward (with the optional affine, returning each row's mean
and ``rstd = 1 / sqrt(var + eps)`` for backward) and backward (input, weight and bias
gradients in one pass over the rows).

The statistics are computed in two passes over a row that stays in the L1 cache (mean, then
the biased variance of ``x - mean``), as NumPy's path does; backward computes
``dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))`` with ``gw = g * weight`` and
accumulates ``dweight = sum(g * xhat)``, ``dbias = sum(g)`` in one partial sum per block of
32 rows, added up in block order at the end: the result is the same whatever the number of
threads.
``xhat_given`` says that ``x`` already holds ``xhat`` (the saved output of
``standardize``), so the mean is not needed. ``weight``, ``bias``, ``dweight`` and ``dbias``
may be NULL, and so may the forward's ``y`` (statistics only). The unit is compiled without fused multiply-add, so that the rounding
matches NumPy's (``g * w - mean(g * w)`` is exactly 0 when a row has one element). Backward returns 0, or -1 when its scratch memory cannot be allocated.

Example:
    >>> from ember.kernels.source.norm import UNIT
    >>> UNIT.name
    'norm'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
#define NORM_BLOCK 32 /* rows per block of the weight-gradient partial sums */
"""

BODY = r"""
EMBER_API void FN(layer_norm_forward)(const scalar *x, const scalar *w, const scalar *b,
                                      scalar *y, scalar *mean, scalar *rstd, i64 N, i64 D,
                                      double eps, int nt) {
    PARALLEL_FOR(nt)
    for (i64 n = 0; n < N; n++) {
        const scalar *restrict xr = x + n * D;
        scalar *restrict yr = y ? y + n * D : NULL;
        scalar s = 0;
        SIMD_SUM(s)
        for (i64 d = 0; d < D; d++) s += xr[d];
        scalar mu = s / (scalar)D;
        scalar v = 0;
        SIMD_SUM(v)
        for (i64 d = 0; d < D; d++) {
            scalar c = xr[d] - mu;
            v += c * c;
        }
        v = v / (scalar)D;
        scalar r = LIT(1.0) / SQRT(v + (scalar)eps);
        mean[n] = mu;
        rstd[n] = r;
        if (!y) continue; /* statistics only */
        if (w && b) {
            SIMD
            for (i64 d = 0; d < D; d++) yr[d] = (xr[d] - mu) * r * w[d] + b[d];
        } else if (w) {
            SIMD
            for (i64 d = 0; d < D; d++) yr[d] = (xr[d] - mu) * r * w[d];
        } else if (b) {
            SIMD
            for (i64 d = 0; d < D; d++) yr[d] = (xr[d] - mu) * r + b[d];
        } else {
            SIMD
            for (i64 d = 0; d < D; d++) yr[d] = (xr[d] - mu) * r;
        }
    }
}

EMBER_API int FN(layer_norm_backward)(const scalar *g, const scalar *x, const scalar *mean,
                                      const scalar *rstd, const scalar *w, scalar *dx,
                                      scalar *dw, scalar *db, i64 N, i64 D, int xhat_given,
                                      int nt) {
    i64 blocks = (N + NORM_BLOCK - 1) / NORM_BLOCK;
    scalar *acc = NULL;
    if (dw || db) {
        acc = (scalar *)calloc((size_t)blocks * 2 * (size_t)D, sizeof(scalar));
        if (!acc) return -1;
    }
    PARALLEL_FOR(nt)
    for (i64 blk = 0; blk < blocks; blk++) {
        i64 end = (blk + 1) * NORM_BLOCK < N ? (blk + 1) * NORM_BLOCK : N;
        for (i64 n = blk * NORM_BLOCK; n < end; n++) {
            const scalar *restrict gr = g + n * D;
            const scalar *restrict xr = x + n * D;
            scalar *restrict dr = dx + n * D;
            scalar mu = xhat_given ? 0 : mean[n];
            scalar r = rstd[n], rx = xhat_given ? 1 : r;
            scalar s1 = 0, s2 = 0;
            if (w) {
                SIMD_SUM(s1, s2)
                for (i64 d = 0; d < D; d++) {
                    scalar gw = gr[d] * w[d];
                    s1 += gw;
                    s2 += gw * ((xr[d] - mu) * rx);
                }
            } else {
                SIMD_SUM(s1, s2)
                for (i64 d = 0; d < D; d++) {
                    s1 += gr[d];
                    s2 += gr[d] * ((xr[d] - mu) * rx);
                }
            }
            scalar c1 = s1 / (scalar)D, c2 = s2 / (scalar)D;
            if (w) {
                SIMD
                for (i64 d = 0; d < D; d++)
                    dr[d] = (gr[d] * w[d] - c1 - ((xr[d] - mu) * rx) * c2) * r;
            } else {
                SIMD
                for (i64 d = 0; d < D; d++) dr[d] = (gr[d] - c1 - ((xr[d] - mu) * rx) * c2) * r;
            }
            if (acc) {
                scalar *restrict aw = acc + (size_t)blk * 2 * (size_t)D;
                scalar *restrict ab = aw + D;
                SIMD
                for (i64 d = 0; d < D; d++) {
                    aw[d] += gr[d] * ((xr[d] - mu) * rx);
                    ab[d] += gr[d];
                }
            }
        }
    }
    if (!acc) return 0;
    scalar *sw = dw ? dw : acc, *sb = db ? db : acc + D; /* block 0 is the running total */
    if (dw) memcpy(dw, acc, (size_t)D * sizeof(scalar));
    if (db) memcpy(db, acc + D, (size_t)D * sizeof(scalar));
    for (i64 blk = 1; blk < blocks; blk++) {
        const scalar *aw = acc + (size_t)blk * 2 * (size_t)D, *ab = aw + D;
        SIMD
        for (i64 d = 0; d < D; d++) {
            sw[d] += aw[d];
            sb[d] += ab[d];
        }
    }
    free(acc);
    return 0;
}
"""

UNIT = Unit(
    name="norm",
    functions=(
        "void layer_norm_forward(const scalar *x, const scalar *w, const scalar *b, scalar *y,"
        " scalar *mean, scalar *rstd, i64 N, i64 D, double eps, int nt)",
        "int layer_norm_backward(const scalar *g, const scalar *x, const scalar *mean,"
        " const scalar *rstd, const scalar *w, scalar *dx, scalar *dw, scalar *db, i64 N, i64 D,"
        " int xhat_given, int nt)",
    ),
    body=BODY,
    shared=SHARED,
    flags=("-ffp-contract=off",),  # no fused multiply-add: gw - mean(gw) is exactly 0 for D = 1
)

"""C kernels of the normalization ops. ``layer_norm`` forward (with the optional affine,
returning each row's mean and ``rstd = 1 / sqrt(var + eps)`` for backward) and backward
(input, weight and bias gradients in one pass over the rows).

The statistics are computed in two passes over a row that stays in the L1 cache (mean, then
the biased variance of ``x - mean``), as NumPy's path does, each pass with four vector
partial sums (GCC/Clang vector extensions: one running sum would wait on the latency of every
addition); when the backward gets no saved ``mean``/``rstd`` it recomputes them per row the
same way, inside its own pass (so they have the forward's bits). Backward computes
``dx = rstd * (gw - mean(gw) - xhat * mean(gw * xhat))`` with ``gw = g * weight`` and
accumulates ``dweight = sum(g * xhat)``, ``dbias = sum(g)`` in one partial sum per block of
32 rows, added up in block order at the end: the result is the same whatever the number of
threads. ``xhat_given`` says that ``x`` already holds ``xhat`` (the saved output of
``standardize``), so the mean is not needed. ``weight``, ``bias``, ``dweight`` and ``dbias``
may be NULL, and so may the forward's ``y`` (statistics only). The unit is compiled without
fused multiply-add, so that the rounding matches NumPy's (``g * w - mean(g * w)`` is exactly
0 when a row has one element). Backward returns 0, or -1 when its scratch memory cannot be
allocated.

The ops' own primitives (``norm_moments``, ``standardize``, ``standardize_backward`` in
:mod:`ember.ops.nn.norm`, shared by layer, group, instance and batch norm) have kernels over
``x`` seen as ``(A, C, B)`` with one set of statistics per ``c`` (over ``a`` and ``b``): rows
of layer/group/instance norm are ``A = 1``, batch norm is ``(N, C, H*W)``. Each ``(a, c)``
segment of ``B`` contiguous values is summed with SIMD lanes, the segment sums are added in
double (an accuracy close to NumPy's pairwise sums even for batch norm's long channels);
the variance is the biased one, from a second pass over ``x - mean``. ``rstd`` is computed
as NumPy's path does (``1 / sqrt(var + eps)`` in the element type), so ``standardize``'s
output has the same bits as NumPy's.

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
typedef scalar FN(nvec) __attribute__((vector_size(32))); /* GCC/Clang vector extension */
#define NVL ((i64)(32 / sizeof(scalar)))                      /* its lanes */

EMBER_INLINE FN(nvec) FN(nld)(const scalar *p) { FN(nvec) v; memcpy(&v, p, sizeof v); return v; }

/* the lanes of four partial sums, added up in a fixed order */
EMBER_INLINE scalar FN(nsum4)(FN(nvec) a0, FN(nvec) a1, FN(nvec) a2, FN(nvec) a3) {
    FN(nvec) v = (a0 + a1) + (a2 + a3);
    scalar s = 0;
    for (i64 l = 0; l < NVL; l++) s += v[l];
    return s;
}

/* one row's mean and rstd = 1 / sqrt(var + eps) (biased variance of x - mean): two passes
   over a row that stays in L1, each with four vector partial sums (one running sum would
   wait on the latency of every addition) */
EMBER_INLINE void FN(ln_row_stats)(const scalar *restrict xr, i64 D, double eps, scalar *mu,
                                   scalar *r) {
    FN(nvec) a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    i64 d = 0;
    for (; d + 4 * NVL <= D; d += 4 * NVL) {
        a0 += FN(nld)(xr + d);
        a1 += FN(nld)(xr + d + NVL);
        a2 += FN(nld)(xr + d + 2 * NVL);
        a3 += FN(nld)(xr + d + 3 * NVL);
    }
    for (; d + NVL <= D; d += NVL) a0 += FN(nld)(xr + d);
    scalar t = 0;
    for (i64 e = d; e < D; e++) t += xr[e];
    scalar m = (FN(nsum4)(a0, a1, a2, a3) + t) / (scalar)D;
    FN(nvec) c0, c1, c2, c3;
    a0 = a1 = a2 = a3 = (FN(nvec)){0};
    for (d = 0; d + 4 * NVL <= D; d += 4 * NVL) {
        c0 = FN(nld)(xr + d) - m;
        c1 = FN(nld)(xr + d + NVL) - m;
        c2 = FN(nld)(xr + d + 2 * NVL) - m;
        c3 = FN(nld)(xr + d + 3 * NVL) - m;
        a0 += c0 * c0;
        a1 += c1 * c1;
        a2 += c2 * c2;
        a3 += c3 * c3;
    }
    for (; d + NVL <= D; d += NVL) {
        c0 = FN(nld)(xr + d) - m;
        a0 += c0 * c0;
    }
    t = 0;
    for (i64 e = d; e < D; e++) t += (xr[e] - m) * (xr[e] - m);
    scalar v = (FN(nsum4)(a0, a1, a2, a3) + t) / (scalar)D;
    *mu = m;
    *r = LIT(1.0) / SQRT(v + (scalar)eps);
}

EMBER_API void FN(layer_norm_forward)(const scalar *x, const scalar *w, const scalar *b,
                                      scalar *y, scalar *mean, scalar *rstd, i64 N, i64 D,
                                      double eps, int nt) {
    PARALLEL_FOR(nt)
    for (i64 n = 0; n < N; n++) {
        const scalar *restrict xr = x + n * D;
        scalar *restrict yr = y ? y + n * D : NULL;
        scalar mu, r;
        FN(ln_row_stats)(xr, D, eps, &mu, &r);
        if (mean) mean[n] = mu;
        if (rstd) rstd[n] = r;
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
                                      double eps, int nt) {
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
            scalar mu = 0, r;
            if (xhat_given)
                r = rstd[n];
            else if (mean)
                mu = mean[n], r = rstd[n];
            else /* statistics not saved: recomputed as the forward computed them */
                FN(ln_row_stats)(xr, D, eps, &mu, &r);
            scalar rx = xhat_given ? 1 : r;
            /* s1 = sum(gw), s2 = sum(gw * xhat): two vector partial sums each */
            FN(nvec) p0 = {0}, p1 = {0}, q0 = {0}, q1 = {0}, z = {0};
            i64 d = 0;
            for (; d + 2 * NVL <= D; d += 2 * NVL) {
                FN(nvec) g0 = FN(nld)(gr + d), g1 = FN(nld)(gr + d + NVL);
                if (w) {
                    g0 = g0 * FN(nld)(w + d);
                    g1 = g1 * FN(nld)(w + d + NVL);
                }
                FN(nvec) h0 = (FN(nld)(xr + d) - mu) * rx, h1 = (FN(nld)(xr + d + NVL) - mu) * rx;
                p0 += g0;
                p1 += g1;
                q0 += g0 * h0;
                q1 += g1 * h1;
            }
            scalar t1 = 0, t2 = 0;
            for (; d < D; d++) {
                scalar gw = w ? gr[d] * w[d] : gr[d];
                t1 += gw;
                t2 += gw * ((xr[d] - mu) * rx);
            }
            scalar s1 = FN(nsum4)(p0, p1, z, z) + t1, s2 = FN(nsum4)(q0, q1, z, z) + t2;
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
#undef NVL
/* x as (A, C, B): mean and biased variance of each c over a and b */
EMBER_API void FN(norm_moments)(const scalar *x, scalar *mean, scalar *var, i64 A, i64 C, i64 B,
                                int nt) {
    double count = (double)A * (double)B;
    PARALLEL_FOR(nt)
    for (i64 c = 0; c < C; c++) {
        double tot = 0;
        for (i64 a = 0; a < A; a++) {
            const scalar *restrict xr = x + (a * C + c) * B;
            scalar s = 0;
            SIMD_SUM(s)
            for (i64 b = 0; b < B; b++) s += xr[b];
            tot += (double)s;
        }
        scalar mu = (scalar)(tot / count);
        double vt = 0;
        for (i64 a = 0; a < A; a++) {
            const scalar *restrict xr = x + (a * C + c) * B;
            scalar v = 0;
            SIMD_SUM(v)
            for (i64 b = 0; b < B; b++) {
                scalar d = xr[b] - mu;
                v += d * d;
            }
            vt += (double)v;
        }
        mean[c] = mu;
        var[c] = (scalar)(vt / count);
    }
}

/* y = (x - mean[c]) * rstd[c], rstd = 1 / sqrt(var + eps), x as (A, C, B) */
EMBER_API void FN(norm_standardize)(const scalar *x, const scalar *mean, const scalar *var,
                                    scalar *y, i64 A, i64 C, i64 B, double eps, int nt) {
    PARALLEL_FOR(nt)
    for (i64 ac = 0; ac < A * C; ac++) {
        i64 c = ac % C;
        scalar mu = mean[c], r = LIT(1.0) / SQRT(var[c] + (scalar)eps);
        const scalar *restrict xr = x + ac * B;
        scalar *restrict yr = y + ac * B;
        SIMD
        for (i64 b = 0; b < B; b++) yr[b] = (xr[b] - mu) * r;
    }
}

/* standardize's full derivative from its output xhat:
   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), means over a and b of each c */
EMBER_API void FN(norm_standardize_backward)(const scalar *g, const scalar *xh,
                                             const scalar *var, scalar *dx, i64 A, i64 C, i64 B,
                                             double eps, int nt) {
    double count = (double)A * (double)B;
    PARALLEL_FOR(nt)
    for (i64 c = 0; c < C; c++) {
        double t1 = 0, t2 = 0;
        for (i64 a = 0; a < A; a++) {
            const scalar *restrict gr = g + (a * C + c) * B;
            const scalar *restrict xr = xh + (a * C + c) * B;
            scalar s1 = 0, s2 = 0;
            SIMD_SUM(s1, s2)
            for (i64 b = 0; b < B; b++) {
                s1 += gr[b];
                s2 += gr[b] * xr[b];
            }
            t1 += (double)s1;
            t2 += (double)s2;
        }
        scalar c1 = (scalar)(t1 / count), c2 = (scalar)(t2 / count);
        scalar r = LIT(1.0) / SQRT(var[c] + (scalar)eps);
        for (i64 a = 0; a < A; a++) {
            const scalar *restrict gr = g + (a * C + c) * B;
            const scalar *restrict xr = xh + (a * C + c) * B;
            scalar *restrict dr = dx + (a * C + c) * B;
            SIMD
            for (i64 b = 0; b < B; b++) dr[b] = (gr[b] - c1 - xr[b] * c2) * r;
        }
    }
}
"""

UNIT = Unit(
    name="norm",
    functions=(
        "void layer_norm_forward(const scalar *x, const scalar *w, const scalar *b, scalar *y,"
        " scalar *mean, scalar *rstd, i64 N, i64 D, double eps, int nt)",
        "int layer_norm_backward(const scalar *g, const scalar *x, const scalar *mean,"
        " const scalar *rstd, const scalar *w, scalar *dx, scalar *dw, scalar *db, i64 N, i64 D,"
        " int xhat_given, double eps, int nt)",
        "void norm_moments(const scalar *x, scalar *mean, scalar *var, i64 A, i64 C, i64 B,"
        " int nt)",
        "void norm_standardize(const scalar *x, const scalar *mean, const scalar *var, scalar *y,"
        " i64 A, i64 C, i64 B, double eps, int nt)",
        "void norm_standardize_backward(const scalar *g, const scalar *xh, const scalar *var,"
        " scalar *dx, i64 A, i64 C, i64 B, double eps, int nt)",
    ),
    body=BODY,
    shared=SHARED,
    flags=("-ffp-contract=off",),  # no fused multiply-add: gw - mean(gw) is exactly 0 for D = 1
)

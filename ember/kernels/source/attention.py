"""C kernels of ``scaled_dot_product_attention``, forward and backward, fused per (batch,
head) pair.

The operands are seen as ``q (B, H, L, E)``, ``k (B, H, S, E)``, ``v (B, H, S, Ev)`` and an
optional mask ``(B, H, L, S)``, each read in place through its own element strides (``st``:
16 strides, four per operand in the order q, k, v, mask; a broadcast dim has stride 0), so
the strided views a model makes with ``transpose(1, 2)`` are never copied by the caller.
The results (and the backward's ``g``) have their own (batch, head, row) strides (``ost``),
so that they can be laid out as ``(B, L, H, E)`` in memory, which the model's
``transpose(1, 2)`` back then reads without a copy. One OpenMP item is one pair (each thread allocates its scratch once, and asks for the next
pair's rows while it works on this one): the scaled ``q``, ``K^T`` and ``V`` (for the backward
also ``K``, ``V^T`` and ``g``) are packed into contiguous, zero-padded, 64-byte aligned scratch,
then every product is a small matrix product done by one register-blocked kernel
(``sdpa_mm``: 4 rows by 2 vectors of columns accumulated in registers over the inner dim,
with GCC/Clang vector extensions, so no partial sum goes through memory). ``K^T`` and ``V^T``
are transposed from contiguous copies in L1, not gathered from the strided operands. The
forward works on 4 query rows at a time: their scores ``(scale q_i) . k_j``, the mask
(``mask_kind`` 1: added float mask, 2: bool mask, nonzero = attend; ``causal``: ``j > i``
masked, top-left aligned), the softmax of the 4 rows together (their chains of dependent
max, exp, sum and reciprocal interleave; over whole vectors: the padding is ``-inf``, whose
exp is an exact 0), and ``o = p V``. With a mask (``safe``) a fully masked row gives zeros, as ember's
``safe_softmax``.

The backward recomputes ``p`` (flash-attention style: ``T`` is small), 64 query rows at a
time, and gives ``dq = scale (ds K)``, ``dk = ds^T (scale q)``, ``dv = p^T g`` with
``ds = (dp - sum(dp p)) p``, ``dp = g V^T``: the composite's formulas (sums in another
order). ``dq``, ``dk`` and ``dv`` are summed in contiguous scratch and copied out at the end
of the pair (summing into strided rows thrashes the cache sets those rows share). The causal columns ``j > i`` are skipped only when every operand is finite (their
weight is an exact 0, so skipping changes nothing); otherwise they are computed so that NaN
and inf spread exactly as through the composite's matmuls.

Example:
    >>> from ember.kernels.source.attention import UNIT
    >>> UNIT.name
    'attention'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
/* a parallel region over nt threads (each allocates its scratch once) and its static loop */
#ifdef _OPENMP
#define SDPA_PARALLEL(nt) EMBER_PRAGMA(omp parallel num_threads(nt) if(nt > 1))
#define SDPA_FOR EMBER_PRAGMA(omp for schedule(static))
#else
#define SDPA_PARALLEL(nt)
#define SDPA_FOR
#endif
#define SDPA_VB 32 /* bytes of one vector: 8 floats or 4 doubles (GCC/Clang vector extension) */
#define SDPA_R 4   /* rows of a register block */
/* the (batch, head) item ``pair``: its b and h, where its q, k, v rows start, and its mask
   (float or bool; NULL for the other kind) */
#define SDPA_PAIR(pair)                                                                     \
    i64 b = (pair) / H, h = (pair) % H;                                                     \
    const scalar *qp = q + b * st[0] + h * st[1];                                           \
    const scalar *kp = k + b * st[4] + h * st[5];                                           \
    const scalar *vp = v + b * st[8] + h * st[9];                                           \
    i64 mo = b * st[12] + h * st[13];                                                       \
    const scalar *mf = mask_kind == 1 ? (const scalar *)mask + mo : NULL;                   \
    const unsigned char *mb = mask_kind == 2 ? (const unsigned char *)mask + mo : NULL
static i64 sdpa_up(i64 n, i64 m) { return (n + m - 1) / m * m; }
/* n scratch bytes on a 64-byte boundary: each part of the scratch is a whole number of
   register blocks (64 bytes), so every packed row starts aligned */
static void *sdpa_alloc(size_t n) { return aligned_alloc(64, (n + 63) / 64 * 64); }
/* keep a loaded vector in a register: GCC otherwise reloads it as the memory operand of
   every FMA, and the loads, not the FMAs, bound the register block */
#if defined(__GNUC__) && defined(__AVX__)
#define SDPA_IN_REG(v) __asm__("" : "+x"(v))
#else
#define SDPA_IN_REG(v) (void)0
#endif
"""

BODY = r"""
typedef scalar FN(vec) __attribute__((vector_size(SDPA_VB)));
#define VL ((i64)(SDPA_VB / sizeof(scalar))) /* lanes of a vector */
#define NC (2 * VL)                           /* columns of a register block */

EMBER_INLINE FN(vec) FN(vld)(const scalar *p) { FN(vec) v; memcpy(&v, p, sizeof v); return v; }
EMBER_INLINE void FN(vst)(scalar *p, FN(vec) v) { memcpy(p, &v, sizeof v); }

/* C[r, n0..n0+w) (+)= alpha (c0, c1) for one row of a register block */
EMBER_INLINE void FN(sdpa_put)(scalar *c, FN(vec) c0, FN(vec) c1, i64 w, scalar alpha, int acc) {
    if (w == NC) {
        c0 = alpha * c0;
        c1 = alpha * c1;
        if (acc) {
            c0 = FN(vld)(c) + c0;
            c1 = FN(vld)(c + VL) + c1;
        }
        FN(vst)(c, c0);
        FN(vst)(c + VL, c1);
        return;
    }
    scalar t[2 * SDPA_VB / sizeof(scalar)];
    FN(vst)(t, c0);
    FN(vst)(t + VL, c1);
    for (i64 x = 0; x < w; x++) c[x] = acc ? c[x] + alpha * t[x] : alpha * t[x];
}

/* dst[0..n) = alpha src[0..n), whole vectors inline (GCC would turn a plain loop into a call
   of memcpy, which costs more than copying one short row) */
EMBER_INLINE void FN(sdpa_copy)(scalar *restrict dst, const scalar *restrict src, i64 n,
                                scalar alpha) {
    i64 j = 0;
    for (; j + VL <= n; j += VL) {
        FN(vec) v = alpha * FN(vld)(src + j);
        SDPA_IN_REG(v);
        FN(vst)(dst + j, v);
    }
    for (; j < n; j++) dst[j] = alpha * src[j];
}

/* C[m, n] (+)= alpha sum_{k0 <= k < k1} A[m sam + k sak] B[k ldb + n] for m < rows <= SDPA_R,
   n < N: register blocks of SDPA_R rows by NC columns (accumulated in registers over k); B
   must be readable up to N rounded up to NC columns */
static void FN(sdpa_mm)(const scalar *restrict A, i64 sam, i64 sak, const scalar *restrict B,
                        i64 ldb, scalar *restrict C, i64 ldc, i64 rows, i64 N, i64 k0, i64 k1,
                        scalar alpha, int acc) {
    for (i64 n0 = 0; n0 < N; n0 += NC) {
        i64 w = N - n0 < NC ? N - n0 : NC;
        const scalar *b = B + n0;
        if (rows == SDPA_R) {
            FN(vec) c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0};
            FN(vec) c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            for (i64 k = k0; k < k1; k++) {
                FN(vec) b0 = FN(vld)(b + k * ldb), b1 = FN(vld)(b + k * ldb + VL);
                SDPA_IN_REG(b0);
                SDPA_IN_REG(b1);
                const scalar *a = A + k * sak;
                scalar a0 = a[0], a1 = a[sam], a2 = a[2 * sam], a3 = a[3 * sam];
                c00 += a0 * b0;
                c01 += a0 * b1;
                c10 += a1 * b0;
                c11 += a1 * b1;
                c20 += a2 * b0;
                c21 += a2 * b1;
                c30 += a3 * b0;
                c31 += a3 * b1;
            }
            FN(sdpa_put)(C + n0, c00, c01, w, alpha, acc);
            FN(sdpa_put)(C + ldc + n0, c10, c11, w, alpha, acc);
            FN(sdpa_put)(C + 2 * ldc + n0, c20, c21, w, alpha, acc);
            FN(sdpa_put)(C + 3 * ldc + n0, c30, c31, w, alpha, acc);
        } else {
            for (i64 r = 0; r < rows; r++) {
                FN(vec) c0 = {0}, c1 = {0}, d0 = {0}, d1 = {0};
                const scalar *a = A + r * sam;
                i64 k = k0;
                for (; k + 1 < k1; k += 2) { /* two chains per column half */
                    c0 += a[k * sak] * FN(vld)(b + k * ldb);
                    c1 += a[k * sak] * FN(vld)(b + k * ldb + VL);
                    d0 += a[(k + 1) * sak] * FN(vld)(b + (k + 1) * ldb);
                    d1 += a[(k + 1) * sak] * FN(vld)(b + (k + 1) * ldb + VL);
                }
                c0 += d0;
                c1 += d1;
                if (k < k1) {
                    c0 += a[k * sak] * FN(vld)(b + k * ldb);
                    c1 += a[k * sak] * FN(vld)(b + k * ldb + VL);
                }
                FN(sdpa_put)(C + r * ldc + n0, c0, c1, w, alpha, acc);
            }
        }
    }
}

/* sum of x - x over n strided entries: 0 when all are finite, NaN otherwise */
static scalar FN(sdpa_nonfinite)(const scalar *x, i64 n0, i64 n1, i64 s0, i64 s1) {
    scalar acc = 0;
    for (i64 a = 0; a < n0; a++) {
        const scalar *r = x + a * s0;
        SIMD_SUM(acc)
        for (i64 b = 0; b < n1; b++) acc += r[b * s1] - r[b * s1];
    }
    return acc;
}

/* softmax of one row p[0..nv) in place (nv whole vectors; masked entries and padding hold
   -inf, whose exp is an exact 0) */
static void FN(sdpa_softmax1)(scalar *restrict p, i64 nv, int safe) {
    p = __builtin_assume_aligned(p, SDPA_VB);
    scalar m = -INFINITY;
    SIMD_MAX(m)
    for (i64 j = 0; j < nv; j++) m = p[j] > m ? p[j] : m;
    if (safe && m == -INFINITY) m = 0;
    scalar s = 0;
    SIMD_SUM(s)
    for (i64 j = 0; j < nv; j++) {
        scalar e = EXP(p[j] - m);
        p[j] = e;
        s += e;
    }
    if (safe && s == 0) s = 1;
    scalar r = LIT(1.0) / s;
    SIMD
    for (i64 j = 0; j < nv; j++) p[j] *= r;
}

/* the same for SDPA_R rows (stride ld) at once: their chains of dependent operations (max, exp
   and sum, reciprocal) interleave, where one row alone waits on each step's latency */
static void FN(sdpa_softmax4)(scalar *restrict P, i64 ld, i64 nv, int safe) {
    scalar *restrict p0 = __builtin_assume_aligned(P, SDPA_VB);
    scalar *restrict p1 = __builtin_assume_aligned(P + ld, SDPA_VB);
    scalar *restrict p2 = __builtin_assume_aligned(P + 2 * ld, SDPA_VB);
    scalar *restrict p3 = __builtin_assume_aligned(P + 3 * ld, SDPA_VB);
    scalar m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY;
    EMBER_PRAGMA(omp simd reduction(max : m0, m1, m2, m3))
    for (i64 j = 0; j < nv; j++) {
        m0 = p0[j] > m0 ? p0[j] : m0;
        m1 = p1[j] > m1 ? p1[j] : m1;
        m2 = p2[j] > m2 ? p2[j] : m2;
        m3 = p3[j] > m3 ? p3[j] : m3;
    }
    if (safe) {
        m0 = m0 == -INFINITY ? 0 : m0;
        m1 = m1 == -INFINITY ? 0 : m1;
        m2 = m2 == -INFINITY ? 0 : m2;
        m3 = m3 == -INFINITY ? 0 : m3;
    }
    scalar s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    SIMD_SUM(s0, s1, s2, s3)
    for (i64 j = 0; j < nv; j++) {
        scalar e0 = EXP(p0[j] - m0), e1 = EXP(p1[j] - m1);
        scalar e2 = EXP(p2[j] - m2), e3 = EXP(p3[j] - m3);
        p0[j] = e0;
        p1[j] = e1;
        p2[j] = e2;
        p3[j] = e3;
        s0 += e0;
        s1 += e1;
        s2 += e2;
        s3 += e3;
    }
    if (safe) {
        s0 = s0 == 0 ? 1 : s0;
        s1 = s1 == 0 ? 1 : s1;
        s2 = s2 == 0 ? 1 : s2;
        s3 = s3 == 0 ? 1 : s3;
    }
    scalar r0 = LIT(1.0) / s0, r1 = LIT(1.0) / s1, r2 = LIT(1.0) / s2, r3 = LIT(1.0) / s3;
    SIMD
    for (i64 j = 0; j < nv; j++) {
        p0[j] *= r0;
        p1[j] *= r1;
        p2[j] *= r2;
        p3[j] *= r3;
    }
}

/* the scores of query rows i0 .. i0 + rows - 1 (P, stride ld; row i's first n entries count,
   n = S, or i + 1 when skipping the causal columns): masked, padded with -inf to one whole
   number of vectors for all rows (so the loops run over whole vectors only), softmaxed in
   place; afterwards each row is zero from there up to z */
static void FN(sdpa_softmax)(scalar *restrict P, i64 ld, i64 i0, i64 rows, i64 S, int skip,
                             i64 z, const scalar *mf, const unsigned char *mb, i64 ms0,
                             i64 ms1, int causal, int safe) {
    i64 last = i0 + rows - 1, nv = sdpa_up(skip && last + 1 < S ? last + 1 : S, VL);
    for (i64 r = 0; r < rows; r++) {
        i64 i = i0 + r, n = skip && i + 1 < S ? i + 1 : S;
        scalar *restrict p = P + r * ld;
        if (causal)
            for (i64 j = i + 1; j < n; j++) p[j] += -INFINITY;
        if (mf)
            for (i64 j = 0; j < n; j++) p[j] += mf[i * ms0 + j * ms1];
        if (mb)
            for (i64 j = 0; j < n; j++) p[j] += mb[i * ms0 + j * ms1] ? LIT(0.0) : -INFINITY;
        for (i64 j = n; j < nv; j++) p[j] = -INFINITY;
    }
    if (rows == SDPA_R)
        FN(sdpa_softmax4)(P, ld, nv, safe);
    else
        for (i64 r = 0; r < rows; r++) FN(sdpa_softmax1)(P + r * ld, nv, safe);
    for (i64 r = 0; r < rows; r++)
        for (i64 j = nv; j < z; j++) P[r * ld + j] = 0;
}

/* x (rows, cols) read through strides (s0, s1), times alpha, into y (rows, ld) (transposed:
   y (cols, ld) when t); the columns (rows when t) cols..ld of y are zeroed */
static void FN(sdpa_pack)(const scalar *x, i64 s0, i64 s1, i64 rows, i64 cols, scalar alpha,
                          int t, scalar *y, i64 ld) {
    if (t) {
        i64 r = 0;
        for (; r + VL <= rows; r += VL) /* a vector of y at a time */
            for (i64 c = 0; c < cols; c++) {
                SIMD
                for (i64 u = 0; u < VL; u++) y[c * ld + r + u] = x[(r + u) * s0 + c * s1] * alpha;
            }
        for (; r < rows; r++)
            for (i64 c = 0; c < cols; c++) y[c * ld + r] = x[r * s0 + c * s1] * alpha;
        for (i64 c = 0; c < cols; c++)
            for (i64 r = rows; r < ld; r++) y[c * ld + r] = 0;
        return;
    }
    for (i64 r = 0; r < rows; r++) {
        if (s1 == 1) /* contiguous rows: whole vectors */
            FN(sdpa_copy)(y + r * ld, x + r * s0, cols, alpha);
        else
            for (i64 c = 0; c < cols; c++) y[r * ld + c] = x[r * s0 + c * s1] * alpha;
        for (i64 c = cols; c < ld; c++) y[r * ld + c] = 0;
    }
}

/* ask for the rows (n of them, w entries each, stride s) of the next pair early: the strided
   reads of q, k, v would otherwise wait on memory at every pair's start */
static void FN(sdpa_prefetch)(const scalar *x, i64 n, i64 s0, i64 w) {
    i64 line = 64 / (i64)sizeof(scalar);
    for (i64 r = 0; r < n; r++) {
        for (i64 c = 0; c < w; c += line) __builtin_prefetch(x + r * s0 + c, 0, 2);
        __builtin_prefetch(x + r * s0 + w - 1, 0, 2); /* a row may end on one more line */
    }
}

EMBER_API void FN(sdpa_forward)(const scalar *q, const scalar *k, const scalar *v,
                                const void *mask, scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E,
                                i64 Ev, const i64 *st, const i64 *ost, int mask_kind, int causal,
                                scalar scale, int nt) {
    int safe = causal || mask_kind != 0;
    i64 Sp = sdpa_up(S, NC), Ep = sdpa_up(E, NC), Evp = sdpa_up(Ev, NC);
    /* prefetch the next pair's rows when they are short rows that fit in cache */
    int pf = st[3] == 1 && st[7] == 1 && st[11] == 1 && L * E + S * (E + Ev) <= 32768;
    SDPA_PARALLEL(nt) {
        i64 nw = E * Sp + S * Evp + L * Ep + SDPA_R * Sp + S * Ep;
        scalar *work = (scalar *)sdpa_alloc(sizeof(scalar) * nw);
        SDPA_FOR
        for (i64 pair = 0; pair < B * H; pair++) {
            if (!work) continue;
            SDPA_PAIR(pair);
            scalar *Kt = work, *V = Kt + E * Sp, *Q = V + S * Evp, *P = Q + L * Ep;
            scalar *K = P + SDPA_R * Sp; /* k's rows, contiguous: Kt is transposed from here */
            if (pair + 1 < B * H && pf) {
                i64 b1 = (pair + 1) / H, h1 = (pair + 1) % H;
                FN(sdpa_prefetch)(q + b1 * st[0] + h1 * st[1], L, st[2], E);
                FN(sdpa_prefetch)(k + b1 * st[4] + h1 * st[5], S, st[6], E);
                FN(sdpa_prefetch)(v + b1 * st[8] + h1 * st[9], S, st[10], Ev);
            }
            FN(sdpa_pack)(kp, st[6], st[7], S, E, 1, 0, K, Ep);
            FN(sdpa_pack)(K, Ep, 1, S, E, 1, 1, Kt, Sp); /* reads L1, not strided memory */
            FN(sdpa_pack)(vp, st[10], st[11], S, Ev, 1, 0, V, Evp);
            FN(sdpa_pack)(qp, st[2], st[3], L, E, scale, 0, Q, Ep);
            int skip = causal && FN(sdpa_nonfinite)(Q, L, E, Ep, 1) == 0 &&
                       FN(sdpa_nonfinite)(Kt, E, S, Sp, 1) == 0 &&
                       FN(sdpa_nonfinite)(V, S, Ev, Evp, 1) == 0;
            scalar *op = o + b * ost[0] + h * ost[1];
            for (i64 i0 = 0; i0 < L; i0 += SDPA_R) {
                i64 rows = L - i0 < SDPA_R ? L - i0 : SDPA_R;
                i64 nmax = skip && i0 + rows < S ? i0 + rows : S;
                FN(sdpa_mm)(Q + i0 * Ep, Ep, 1, Kt, Sp, P, Sp, rows, sdpa_up(nmax, NC), 0, E, 1,
                            0);
                FN(sdpa_softmax)(P, Sp, i0, rows, S, skip, nmax, mf, mb, st[14], st[15], causal,
                                 safe);
                FN(sdpa_mm)(P, Sp, 1, V, Evp, op + i0 * ost[2], ost[2], rows, Ev, 0, nmax, 1, 0);
            }
        }
        free(work);
    }
}

#define SDPA_LB 64 /* query rows whose probabilities the backward keeps at once */

/* g: the output gradient (B, H, L, Ev); dq, dk, dv: the outputs; ost: the (batch, head, row)
   element strides of g, dq, dk and dv (12; their columns are contiguous) */
EMBER_API void FN(sdpa_backward)(const scalar *g, const scalar *q, const scalar *k,
                                 const scalar *v, const void *mask, scalar *dq, scalar *dk,
                                 scalar *dv, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev,
                                 const i64 *st, const i64 *ost, int mask_kind, int causal,
                                 scalar scale, int nt) {
    int safe = causal || mask_kind != 0;
    i64 Sp = sdpa_up(S, NC), Ep = sdpa_up(E, NC), Evp = sdpa_up(Ev, NC);
    i64 LB = L < SDPA_LB ? L : SDPA_LB;
    /* prefetch the next pair's rows when they are short rows that fit in cache */
    int pf = st[3] == 1 && st[7] == 1 && st[11] == 1 && L * E + S * (E + Ev) <= 32768;
    SDPA_PARALLEL(nt) {
        scalar *work = (scalar *)sdpa_alloc(sizeof(scalar) * (E * Sp + Ev * Sp + S * Ep + L * Ep +
                                                          L * Evp + 2 * LB * Sp + S * Ep +
                                                          S * Evp + L * Ep));
        SDPA_FOR
        for (i64 pair = 0; pair < B * H; pair++) {
            if (!work) continue;
            SDPA_PAIR(pair);
            const scalar *gp = g + b * ost[0] + h * ost[1];
            scalar *Kt = work, *Vt = Kt + E * Sp, *K = Vt + Ev * Sp, *Q = K + S * Ep;
            scalar *G = Q + L * Ep, *P = G + L * Evp, *D = P + LB * Sp;
            scalar *DK = D + LB * Sp, *DV = DK + S * Ep, *DQ = DV + S * Evp;
            if (pair + 1 < B * H && pf) {
                i64 b1 = (pair + 1) / H, h1 = (pair + 1) % H;
                FN(sdpa_prefetch)(q + b1 * st[0] + h1 * st[1], L, st[2], E);
                FN(sdpa_prefetch)(k + b1 * st[4] + h1 * st[5], S, st[6], E);
                FN(sdpa_prefetch)(v + b1 * st[8] + h1 * st[9], S, st[10], Ev);
                FN(sdpa_prefetch)(g + b1 * ost[0] + h1 * ost[1], L, ost[2], Ev);
            }
            FN(sdpa_pack)(kp, st[6], st[7], S, E, 1, 0, K, Ep);
            FN(sdpa_pack)(K, Ep, 1, S, E, 1, 1, Kt, Sp); /* reads L1, not strided memory */
            FN(sdpa_pack)(vp, st[10], st[11], S, Ev, 1, 0, DV, Evp); /* DV: free until later */
            FN(sdpa_pack)(DV, Evp, 1, S, Ev, 1, 1, Vt, Sp);
            FN(sdpa_pack)(qp, st[2], st[3], L, E, scale, 0, Q, Ep);
            FN(sdpa_pack)(gp, ost[2], 1, L, Ev, 1, 0, G, Evp);
            int skip = causal && FN(sdpa_nonfinite)(Q, L, E, Ep, 1) == 0 &&
                       FN(sdpa_nonfinite)(K, S, E, Ep, 1) == 0 &&
                       FN(sdpa_nonfinite)(Vt, Ev, S, Sp, 1) == 0 &&
                       FN(sdpa_nonfinite)(G, L, Ev, Evp, 1) == 0;
            i64 qs = ost[5], ks = ost[8], vs = ost[11]; /* row strides of dq, dk, dv */
            scalar *dqp = dq + b * ost[3] + h * ost[4];
            scalar *dkp = dk + b * ost[6] + h * ost[7], *dvp = dv + b * ost[9] + h * ost[10];
            for (i64 c0 = 0; c0 < L; c0 += LB) {
                i64 cn = L - c0 < LB ? L - c0 : LB;
                /* p and ds = (dp - sum(dp p)) p of the chunk's rows, and their dq */
                for (i64 r0 = 0; r0 < cn; r0 += SDPA_R) {
                    i64 i0 = c0 + r0, rows = cn - r0 < SDPA_R ? cn - r0 : SDPA_R;
                    i64 nmax = skip && i0 + rows < S ? i0 + rows : S;
                    scalar *Pr = P + r0 * Sp, *Dr = D + r0 * Sp;
                    i64 nb = sdpa_up(nmax, NC);
                    FN(sdpa_mm)(Q + i0 * Ep, Ep, 1, Kt, Sp, Pr, Sp, rows, nb, 0, E, 1, 0);
                    FN(sdpa_mm)(G + i0 * Evp, Evp, 1, Vt, Sp, Dr, Sp, rows, nb, 0, Ev, 1, 0);
                    FN(sdpa_softmax)(Pr, Sp, i0, rows, S, skip, Sp, mf, mb, st[14], st[15],
                                     causal, safe);
                    for (i64 r = 0; r < rows; r++) {
                        i64 i = i0 + r, n = skip && i + 1 < S ? i + 1 : S;
                        scalar *p = __builtin_assume_aligned(Pr + r * Sp, SDPA_VB);
                        scalar *dp = __builtin_assume_aligned(Dr + r * Sp, SDPA_VB);
                        i64 nv = sdpa_up(n, VL);
                        for (i64 j = n; j < nv; j++) dp[j] = 0; /* p there is 0 */
                        scalar dv_[SDPA_VB / sizeof(scalar)] = {0}, d = 0;
                        for (i64 j = 0; j < nv; j += VL) {
                            SIMD
                            for (i64 x = 0; x < VL; x++) dv_[x] += dp[j + x] * p[j + x];
                        }
                        for (i64 x = 0; x < VL; x++) d += dv_[x];
                        for (i64 j = 0; j < nv; j += VL) {
                            SIMD
                            for (i64 x = 0; x < VL; x++) dp[j + x] = (dp[j + x] - d) * p[j + x];
                        }
                        for (i64 j = nv; j < Sp; j++) dp[j] = 0;
                    }
                    FN(sdpa_mm)(Dr, Sp, 1, K, Ep, DQ + i0 * Ep, Ep, rows, E, 0, nmax, scale, 0);
                }
                /* dv (+)= p^T g and dk (+)= ds^T (scale q) over the chunk's rows (those below
                   the diagonal only, when skipping): the first chunk writes, the others add;
                   rows that no query of the first chunk sees are zeroed */
                int acc = c0 > 0;
                for (i64 j0 = 0; j0 < S; j0 += SDPA_R) {
                    i64 rows = S - j0 < SDPA_R ? S - j0 : SDPA_R;
                    i64 k0 = skip && j0 > c0 ? j0 - c0 : 0;
                    if (k0 >= cn) {
                        if (acc) break;
                        memset(DK + j0 * Ep, 0, sizeof(scalar) * rows * Ep);
                        memset(DV + j0 * Evp, 0, sizeof(scalar) * rows * Evp);
                        continue;
                    }
                    FN(sdpa_mm)(P + j0, 1, Sp, G + c0 * Evp, Evp, DV + j0 * Evp, Evp, rows, Ev,
                                k0, cn, 1, acc);
                    FN(sdpa_mm)(D + j0, 1, Sp, Q + c0 * Ep, Ep, DK + j0 * Ep, Ep, rows, E, k0,
                                cn, 1, acc);
                }
            }
            /* the outputs may be strided (heads inside rows): summing there would thrash the
               cache sets their rows share */
            for (i64 i = 0; i < L; i++) FN(sdpa_copy)(dqp + i * qs, DQ + i * Ep, E, 1);
            for (i64 j = 0; j < S; j++) {
                FN(sdpa_copy)(dkp + j * ks, DK + j * Ep, E, 1);
                FN(sdpa_copy)(dvp + j * vs, DV + j * Evp, Ev, 1);
            }
        }
        free(work);
    }
}
#undef VL
#undef NC
"""

UNIT = Unit(
    name="attention",
    functions=(
        "void sdpa_forward(const scalar *q, const scalar *k, const scalar *v, const void *mask,"
        " scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev, const i64 *st, const i64 *ost,"
        " int mask_kind, int causal, scalar scale, int nt)",
        "void sdpa_backward(const scalar *g, const scalar *q, const scalar *k, const scalar *v,"
        " const void *mask, scalar *dq, scalar *dk, scalar *dv, i64 B, i64 H, i64 L, i64 S,"
        " i64 E, i64 Ev, const i64 *st, const i64 *ost, int mask_kind, int causal,"
        " scalar scale, int nt)",
    ),
    body=BODY,
    shared=SHARED,
    # built together: apart, each would specialize and inline the shared matrix product
    # differently (other sums, other bits)
    groups=(("sdpa_forward", "sdpa_backward"),),
)

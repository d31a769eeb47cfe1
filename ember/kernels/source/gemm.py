"""C kernel of the matrix product ``C (+)= A @ B (+ bias)`` on float32 and float64, for the
tall products of linear layers (thousands of rows, a few hundred columns): run on ember's
OpenMP threads, with the bias added as each block is stored, inside a training step it
beat the NumPy wheel's OpenBLAS (see :mod:`ember.kernels.gemm` for where it is used).

Every operand is read through its own element strides (``sam, sak`` for ``A (M, K)``,
``sbk, sbn`` for ``B (K, N)``), so the transposed views of a linear layer (``x @ W.T``,
``dY.T @ X``) are never copied by the caller; ``C`` has unit column stride and row stride
``ldc``. The structure is GotoBLAS/BLIS's: ``B`` is packed, one ``KC x NC`` block at a
time, into panels of ``NR`` columns (``KC`` rows each, contiguous, zero-padded at the right
edge), ``A`` one ``MC x KC`` block at a time into panels of ``MR`` rows, and a register
block of ``MR x NR`` (6 rows by two vectors: 6 x 32 floats in 12 zmm accumulators with
AVX-512, 6 x 16 in 12 ymm with AVX2) is accumulated over ``KC`` in registers with GCC/Clang
vector extensions (a broadcast of one ``A`` entry times two ``B`` vectors: two fused
multiply-adds). The output is split
between threads as a grid of rectangles of whole register blocks (rows or columns,
whichever keeps the threads busiest, counting the packing each one then repeats); each
thread packs its own operands, so there are no barriers.

No product is skipped: a zero times inf or NaN gives NaN as in NumPy. The padding of the
edge panels makes lanes that are never stored.

Example:
    >>> from ember.kernels.source.gemm import UNIT
    >>> UNIT.name
    'gemm'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
#if defined(__AVX512F__)
#define GEMM_VB 64 /* bytes of one vector: 16 floats or 8 doubles (AVX-512) */
#else
#define GEMM_VB 32 /* bytes of one vector: 8 floats or 4 doubles */
#endif
#define GEMM_TR(s) ((i64)(32 / (s))) /* side of the transposes' tiles: 8 floats, 4 doubles */
#define GEMM_MR 6  /* rows of a register block */
static i64 gemm_cdiv(i64 a, i64 b) { return (a + b - 1) / b; }
static i64 gemm_min(i64 a, i64 b) { return a < b ? a : b; }
#ifdef _OPENMP
#define GEMM_PARALLEL(nt) EMBER_PRAGMA(omp parallel num_threads(nt) if(nt > 1))
#else
#define GEMM_PARALLEL(nt)
#endif
#if defined(__GNUC__) && defined(__AVX__)
#define GEMM_IN_REG(v) __asm__("" : "+x"(v))
#else
#define GEMM_IN_REG(v) (void)0
#endif
/* 8 x 8 float and 4 x 4 double transposes with GCC/Clang vector shuffles (the unpack /
   shuffle / lane-permute sequence, which AVX does in one instruction each): no
   <immintrin.h>, whose parsing alone took 0.5 s of the unit's 1.3 s compile here */
#if defined(__clang__)
#define GEMM_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#define GEMM_HAS_SHUF 1
#elif defined(__GNUC__)
#define GEMM_SHUF(a, b, ...) __builtin_shuffle(a, b, (__typeof__(gemm_mask_of(a))){__VA_ARGS__})
#define GEMM_HAS_SHUF 1
#endif
typedef float gemm_v8f __attribute__((vector_size(32)));
typedef double gemm_v4d __attribute__((vector_size(32)));
typedef int32_t gemm_v8i __attribute__((vector_size(32)));
typedef int64_t gemm_v4i __attribute__((vector_size(32)));
#define gemm_mask_of(a) _Generic((a), gemm_v8f: (gemm_v8i){0}, gemm_v4d: (gemm_v4i){0})
#if defined(GEMM_HAS_SHUF)
/* o[k] lane j = r[j] lane k, for j, k < 8: the 8 x 8 transpose of eight float vectors */
static inline void gemm_tr8(const gemm_v8f *r, gemm_v8f *o) {
    gemm_v8f t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = GEMM_SHUF(r[j], r[j + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[j + 1] = GEMM_SHUF(r[j], r[j + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int j = 0; j < 8; j += 4)
        for (int h = 0; h < 2; h++) {
            u[j + 2 * h] = GEMM_SHUF(t[j + h], t[j + h + 2], 0, 1, 8, 9, 4, 5, 12, 13);
            u[j + 2 * h + 1] = GEMM_SHUF(t[j + h], t[j + h + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        }
    for (int k = 0; k < 4; k++) {
        o[k] = GEMM_SHUF(u[k], u[k + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        o[k + 4] = GEMM_SHUF(u[k], u[k + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}
#endif
/* d[k ld + j] = s[j ls + k] for j, k < 8 (floats) */
static inline void gemm_tr_f32(const float *s, i64 ls, float *d, i64 ld) {
#if defined(GEMM_HAS_SHUF)
    gemm_v8f r[8], o[8];
    for (int j = 0; j < 8; j++) memcpy(&r[j], s + j * ls, sizeof r[j]);
    gemm_tr8(r, o);
    for (int k = 0; k < 8; k++) memcpy(d + k * ld, &o[k], sizeof o[k]);
#else
    for (i64 j = 0; j < 8; j++)
        for (i64 k = 0; k < 8; k++) d[k * ld + j] = s[j * ls + k];
#endif
}
/* p[k 6 + j] = s[j ls + k] for j < 6, k < 8 (floats): six rows transposed into a panel of
   6-float steps. Each step is stored 8 floats wide, in order, so its last two land on the
   next step and are written over by it; the last store writes p[48], p[49] too (the caller
   writes them after) */
static inline void gemm_tr6_f32(const float *s, i64 ls, float *p) {
#if defined(GEMM_HAS_SHUF)
    gemm_v8f r[8], o[8];
    for (int j = 0; j < 6; j++) memcpy(&r[j], s + j * ls, sizeof r[j]);
    r[6] = r[7] = (gemm_v8f){0};
    gemm_tr8(r, o);
    for (int k = 0; k < 8; k++) memcpy(p + k * 6, &o[k], sizeof o[k]);
#else
    for (i64 j = 0; j < 6; j++)
        for (i64 k = 0; k < 8; k++) p[k * 6 + j] = s[j * ls + k];
#endif
}
/* d[k ld + j] = s[j ls + k] for j, k < 4 (doubles) */
static inline void gemm_tr_f64(const double *s, i64 ls, double *d, i64 ld) {
#if defined(GEMM_HAS_SHUF)
    gemm_v4d r[4], t[4];
    for (int j = 0; j < 4; j++) memcpy(&r[j], s + j * ls, sizeof r[j]);
    for (int j = 0; j < 4; j += 2) {
        t[j] = GEMM_SHUF(r[j], r[j + 1], 0, 4, 2, 6);
        t[j + 1] = GEMM_SHUF(r[j], r[j + 1], 1, 5, 3, 7);
    }
    for (int k = 0; k < 2; k++) {
        gemm_v4d lo = GEMM_SHUF(t[k], t[k + 2], 0, 1, 4, 5);
        gemm_v4d hi = GEMM_SHUF(t[k], t[k + 2], 2, 3, 6, 7);
        memcpy(d + k * ld, &lo, sizeof lo);
        memcpy(d + (k + 2) * ld, &hi, sizeof hi);
    }
#else
    for (i64 j = 0; j < 4; j++)
        for (i64 k = 0; k < 4; k++) d[k * ld + j] = s[j * ls + k];
#endif
}
/* a 64-byte aligned scratch of at least n bytes, kept by the calling thread for its next
   calls (grown when too small): allocating, and faulting in, fresh pages at every call
   cost as much as a small product */
static void *gemm_grow(void **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        free(*buf);
        *cap = 0;
        *buf = aligned_alloc(64, (n + 63) / 64 * 64);
        if (*buf) *cap = n;
    }
    return *buf;
}
/* a calling thread's scratch above 16 MB is not kept for its next call */
static __attribute__((unused)) void gemm_release(void **buf, size_t *cap) {
    if (*cap > ((size_t)16 << 20)) {
        free(*buf);
        *buf = NULL;
        *cap = 0;
    }
}
static __thread void *gemm_buf;
static __thread size_t gemm_cap;
static void *gemm_scratch(size_t n) { return gemm_grow(&gemm_buf, &gemm_cap, n); }
/* thread t of tm x tn: its part [lo, hi) of n items split into tm (or tn) nearly equal runs */
static void gemm_range(i64 n, i64 parts, i64 p, i64 *lo, i64 *hi) {
    *lo = n * p / parts;
    *hi = n * (p + 1) / parts;
}
"""

CORE = r"""
typedef scalar FN(gvec) __attribute__((vector_size(GEMM_VB)));
#define VL ((i64)(GEMM_VB / sizeof(scalar)))
#define NR (2 * VL)
#define MR GEMM_MR

EMBER_INLINE FN(gvec) FN(gld)(const scalar *p) { FN(gvec) v; memcpy(&v, p, sizeof v); return v; }
EMBER_INLINE void FN(gst)(scalar *p, FN(gvec) v) { memcpy(p, &v, sizeof v); }

/* rows x cols of C (row stride ldc) set from (first) or added to the MR x NR block t, plus
   bias[0..cols) when bias is not NULL */
static void FN(gemm_put_edge)(scalar *c, i64 ldc, const scalar *t, i64 rows, i64 cols,
                              int add, const scalar *bias) {
    for (i64 r = 0; r < rows; r++)
        for (i64 j = 0; j < cols; j++) {
            scalar v = t[r * NR + j];
            if (bias) v += bias[j];
            c[r * ldc + j] = add ? c[r * ldc + j] + v : v;
        }
}

/* the 12 accumulators of an MR x NR register block (acc[2 r + h]: row r, vector h of
   columns) summed over kc steps: A entry (r, k) at a[k sk + r sr], B's NR columns of step k
   at bp[k sb]. Inlined with constant strides, so that every caller keeps the accumulators
   in registers */
EMBER_INLINE void FN(gemm_acc)(i64 kc, const scalar *restrict a, i64 sk, i64 sr,
                               const scalar *restrict bp, i64 sb, FN(gvec) *acc) {
    FN(gvec) c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0};
    FN(gvec) c30 = {0}, c31 = {0}, c40 = {0}, c41 = {0}, c50 = {0}, c51 = {0};
    EMBER_PRAGMA(GCC unroll 4)
    for (i64 k = 0; k < kc; k++) {
        FN(gvec) b0 = FN(gld)(bp + k * sb), b1 = FN(gld)(bp + k * sb + VL);
        GEMM_IN_REG(b0);
        GEMM_IN_REG(b1);
        const scalar *ak = a + k * sk;
        scalar a0 = ak[0], a1 = ak[sr], a2 = ak[2 * sr], a3 = ak[3 * sr], a4 = ak[4 * sr];
        scalar a5 = ak[5 * sr];
        c00 += a0 * b0;
        c01 += a0 * b1;
        c10 += a1 * b0;
        c11 += a1 * b1;
        c20 += a2 * b0;
        c21 += a2 * b1;
        c30 += a3 * b0;
        c31 += a3 * b1;
        c40 += a4 * b0;
        c41 += a4 * b1;
        c50 += a5 * b0;
        c51 += a5 * b1;
    }
    acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
    acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;
}

/* the MR x NR register block: C[0..rows, 0..cols) (+)= A panel (kc x MR) times B panel
   (kc x NR), plus bias when not NULL */
static void FN(gemm_micro)(i64 kc, const scalar *restrict ap, const scalar *restrict bp,
                           scalar *restrict c, i64 ldc, i64 rows, i64 cols, int add,
                           const scalar *bias) {
    for (i64 r = 0; r < rows; r++) __builtin_prefetch(c + r * ldc, 1, 3);
    FN(gvec) acc[2 * MR];
    FN(gemm_acc)(kc, ap, MR, 1, bp, NR, acc);
    if (rows == MR && cols == NR) {
        FN(gvec) bb0 = {0}, bb1 = {0};
        if (bias) {
            bb0 = FN(gld)(bias);
            bb1 = FN(gld)(bias + VL);
        }
        for (i64 r = 0; r < MR; r++) {
            FN(gvec) v0 = acc[2 * r] + bb0, v1 = acc[2 * r + 1] + bb1;
            if (add) {
                v0 += FN(gld)(c + r * ldc);
                v1 += FN(gld)(c + r * ldc + VL);
            }
            FN(gst)(c + r * ldc, v0);
            FN(gst)(c + r * ldc + VL, v1);
        }
        return;
    }
    scalar t[MR * NR];
    for (i64 r = 0; r < MR; r++) {
        FN(gst)(t + r * NR, acc[2 * r]);
        FN(gst)(t + r * NR + VL, acc[2 * r + 1]);
    }
    FN(gemm_put_edge)(c, ldc, t, rows, cols, add, bias);
}

/* A[0..rows, 0..kc) (strides sam, sak) into panels of MR rows: p[(i / MR) kc MR + k MR + i % MR],
   the last panel zero-padded */
static void FN(gemm_pack_a)(const scalar *a, i64 sam, i64 sak, i64 rows, i64 kc, scalar *p) {
    i64 i0 = 0;
    if (sam == 1 && rows >= MR) { /* columns of A (a transposed view such as dY^T): step k of
        every whole panel from A's column k, read along it. Panel by panel, the reads went
        down A's columns a line per step, and at a stride of 2 KB all of those lines fall in
        two sets of L1 (a (512, 2048) operand packed at 9.6 GB/s) */
        i64 whole = rows / MR, v8 = 0;
        if (sizeof(scalar) == 4 && MR == 6) /* 8 floats a step, 6 kept (the next step of the */
            v8 = (rows - 2) / MR;           /* panel writes over 2; reads stay in the column) */
        v8 = v8 < whole ? v8 : whole;
        for (i64 k = 0; k < kc; k++) {
            const scalar *s = a + k * sak;
            scalar *q = p + k * MR;
            i64 j = 0;
            if (k + 1 < kc)
                for (; j < v8; j++) {
                    gemm_v8f v;
                    memcpy(&v, s + j * MR, sizeof v);
                    memcpy(q + j * kc * MR, &v, sizeof v);
                }
            for (; j < whole; j++)
                for (i64 r = 0; r < MR; r++) q[j * kc * MR + r] = s[j * MR + r];
        }
        i0 = whole * MR;
        p += whole * kc * MR;
    }
    for (; i0 < rows; i0 += MR, p += kc * MR) {
        i64 h = gemm_min(MR, rows - i0);
        const scalar *s = a + i0 * sam;
        if (h == MR && sak == 1 && sizeof(scalar) == 4 && MR == 6) { /* rows of A */
            i64 k = 0;
            for (; k + 8 < kc; k += 8) /* (the last two floats land on step k + 8, kept later) */
                gemm_tr6_f32((const float *)(s + k), sam, (float *)(p + k * MR));
            for (; k < kc; k++)
                for (i64 r = 0; r < MR; r++) p[k * MR + r] = s[r * sam + k];
        } else if (h == MR) {
            for (i64 r = 0; r < MR; r++)
                for (i64 k = 0; k < kc; k++) p[k * MR + r] = s[r * sam + k * sak];
        } else {
            for (i64 k = 0; k < kc; k++)
                for (i64 r = 0; r < MR; r++) p[k * MR + r] = r < h ? s[r * sam + k * sak] : 0;
        }
    }
}

/* B[0..kc, 0..cols) (strides sbk, sbn) into panels of NR columns: p[(j / NR) kc NR + k NR +
   j % NR], the last panel zero-padded */
static __attribute__((unused)) void FN(gemm_pack_b)(const scalar *b, i64 sbk, i64 sbn, i64 kc,
                                                    i64 cols, scalar *p) {
    for (i64 j0 = 0; j0 < cols; j0 += NR, p += kc * NR) {
        i64 w = gemm_min(NR, cols - j0);
        const scalar *s = b + j0 * sbn;
        if (w == NR && sbn == 1) {
            for (i64 k = 0; k < kc; k++) {
                FN(gst)(p + k * NR, FN(gld)(s + k * sbk));
                FN(gst)(p + k * NR + VL, FN(gld)(s + k * sbk + VL));
            }
        } else if (w == NR && sbk == 1) { /* rows of B^T: 8 x 8 (4 x 4) blocks transposed */
            i64 k = 0, tr = GEMM_TR(sizeof(scalar));
            for (; k + tr <= kc; k += tr)
                for (i64 h = 0; h < NR; h += tr) {
                    if (sizeof(scalar) == 4)
                        gemm_tr_f32((const float *)(s + h * sbn + k), sbn,
                                    (float *)(p + k * NR + h), NR);
                    else
                        gemm_tr_f64((const double *)(s + h * sbn + k), sbn,
                                    (double *)(p + k * NR + h), NR);
                }
            for (; k < kc; k++)
                for (i64 j = 0; j < NR; j++) p[k * NR + j] = s[j * sbn + k];
        } else if (w == NR) {
            for (i64 j = 0; j < NR; j++)
                for (i64 k = 0; k < kc; k++) p[k * NR + j] = s[j * sbn + k * sbk];
        } else {
            for (i64 k = 0; k < kc; k++)
                for (i64 j = 0; j < NR; j++) p[k * NR + j] = j < w ? s[j * sbn + k * sbk] : 0;
        }
    }
}

"""

API = r"""
/* the rectangle rows [m0, m1) x columns [n0, n1) of C, on one thread, with its own scratch */
static void FN(gemm_block)(const scalar *a, const scalar *b, scalar *c, const scalar *bias,
                           i64 K, i64 sam, i64 sak, i64 sbk, i64 sbn, i64 ldc, int acc,
                           i64 m0, i64 m1, i64 n0, i64 n1, i64 KC, i64 MC, i64 NC,
                           scalar *pa, scalar *pb) {
    for (i64 jc = n0; jc < n1; jc += NC) {
        i64 nc = gemm_min(NC, n1 - jc);
        for (i64 pc = 0; pc < K; pc += KC) {
            i64 kc = gemm_min(KC, K - pc);
            int add = acc || pc > 0;
            const scalar *bs = pc == 0 && bias ? bias + jc : NULL;
            FN(gemm_pack_b)(b + pc * sbk + jc * sbn, sbk, sbn, kc, nc, pb);
            for (i64 ic = m0; ic < m1; ic += MC) {
                i64 mc = gemm_min(MC, m1 - ic);
                FN(gemm_pack_a)(a + ic * sam + pc * sak, sam, sak, mc, kc, pa);
                for (i64 jr = 0; jr < nc; jr += NR) {
                    i64 cols = gemm_min(NR, nc - jr);
                    const scalar *bp = pb + (jr / NR) * kc * NR;
                    for (i64 ir = 0; ir < mc; ir += MR)
                        FN(gemm_micro)(kc, pa + (ir / MR) * kc * MR, bp,
                                       c + (ic + ir) * ldc + jc + jr, ldc,
                                       gemm_min(MR, mc - ir), cols, add, bs ? bs + jr : NULL);
                }
            }
        }
    }
}

/* thread t's rectangle of the tm x tn grid of C's register blocks */
static void FN(gemm_part)(const scalar *a, const scalar *b, scalar *c, const scalar *bias, i64 M,
                          i64 N, i64 K, i64 sam, i64 sak, i64 sbk, i64 sbn, i64 ldc, int acc,
                          i64 t, i64 tm, i64 tn, i64 KC, i64 MC, i64 NC) {
    i64 lo, hi, lo2, hi2;
    gemm_range(gemm_cdiv(M, MR), tm, t / tn, &lo, &hi);
    gemm_range(gemm_cdiv(N, NR), tn, t % tn, &lo2, &hi2);
    i64 m0 = lo * MR, m1 = gemm_min(hi * MR, M), n0 = lo2 * NR, n1 = gemm_min(hi2 * NR, N);
    if (m0 >= m1 || n0 >= n1) return;
    i64 mc = gemm_min(MC, gemm_cdiv(m1 - m0, MR) * MR);
    i64 nc = gemm_min(NC, gemm_cdiv(n1 - n0, NR) * NR);
    i64 na = (mc * KC + 15) / 16 * 16, nb = nc * KC;
    scalar *pa = gemm_scratch(sizeof(scalar) * (na + nb));
    if (pa)
        FN(gemm_block)(a, b, c, bias, K, sam, sak, sbk, sbn, ldc, acc, m0, m1, n0, n1, KC, MC, NC,
                       pa, pa + na);
}

/* the blocking (KC, MC, NC) and the thread grid tm x tn (at most nt threads) of an M x N x K
   product: the grid with the least work on its busiest thread */
static void FN(gemm_plan)(i64 M, i64 N, i64 K, int nt, i64 *KC, i64 *MC, i64 *NC, i64 *tm,
                          i64 *tn) {
    /* K up to 512 in one pass: a second pass reloads C, which cost (2048, 512) x (512, 128)
       a fifth of its speed (52 -> 72 GFLOP/s on one core) */
    i64 kc = K <= 512 ? K : gemm_cdiv(K, gemm_cdiv(K, 256));
    i64 mc = gemm_min(gemm_cdiv(M, MR) * MR, (32768 / (i64)sizeof(scalar) / kc) / MR * MR * 4);
    i64 nc = (262144 / (i64)sizeof(scalar) / kc) / NR * NR;
    *KC = kc, *MC = mc < MR ? MR : mc, *NC = nc < NR ? NR : nc, *tm = 1, *tn = 1;
    i64 mt = gemm_cdiv(M, MR), ntl = gemm_cdiv(N, NR);
    if (nt <= 1) return;
    double best = -1;
    for (i64 x = 1; x <= nt; x++) {
        if (nt % x) continue;
        i64 y = nt / x;
        if (x > mt || y > ntl) continue;
        double rows = (double)gemm_cdiv(mt, x) * MR, cols = (double)gemm_cdiv(ntl, y) * NR;
        double cost = rows * cols * K / 16 + (rows * gemm_cdiv((i64)cols, *NC) + cols) * K;
        if (best < 0 || cost < best) best = cost, *tm = x, *tn = y;
    }
    if (best < 0) *tm = 1, *tn = 1;
}

/* the lanes of the register block's vectors (16 floats with AVX-512, else 8) */
EMBER_API int FN(gemm_lanes)(void) { return (int)VL; }

/* C (M, N; row stride ldc, unit column stride) (+)= A (M, K) B (K, N) (+ bias (N,)) with
   A[m, k] = a[m sam + k sak], B[k, n] = b[k sbk + n sbn]; acc: add to C's values; bias: NULL
   or N contiguous values; M, N, K >= 1 */
EMBER_API void FN(gemm)(const scalar *a, const scalar *b, scalar *c, const scalar *bias, i64 M,
                        i64 N, i64 K, i64 sam, i64 sak, i64 sbk, i64 sbn, i64 ldc, int acc,
                        int nt) {
#ifndef _OPENMP
    nt = 1; /* no threads: the grid must be one rectangle */
#endif
    i64 KC, MC, NC, tm, tn;
    FN(gemm_plan)(M, N, K, nt, &KC, &MC, &NC, &tm, &tn);
    nt = (int)(tm * tn);
    if (nt == 1) { /* no parallel region: entering one costs microseconds, even if(0) */
        FN(gemm_part)(a, b, c, bias, M, N, K, sam, sak, sbk, sbn, ldc, acc, 0, 1, 1, KC, MC, NC);
        return;
    }
    int caller_cpu = EMBER_THREAD_CPU(); /* (nt > 1 here) */
    GEMM_PARALLEL(nt) {
        ember_team_place(caller_cpu);
#ifdef _OPENMP
        i64 t = omp_get_thread_num();
#else
        i64 t = 0;
#endif
        FN(gemm_part)(a, b, c, bias, M, N, K, sam, sak, sbk, sbn, ldc, acc, t, tm, tn, KC, MC, NC);
    }
}

"""

# the names CORE defines, undefined again after the last body that uses them
TAIL = r"""
#undef VL
#undef NR
#undef MR
"""

BODY = CORE + API + TAIL


UNIT = Unit(
    name="gemm",
    functions=(
        "void gemm(const scalar *a, const scalar *b, scalar *c, const scalar *bias, i64 M,"
        " i64 N, i64 K, i64 sam, i64 sak, i64 sbk, i64 sbn, i64 ldc, int acc, int nt)",
        "int gemm_lanes(void)",
    ),
    body=BODY,
    shared=SHARED,
    groups=(("gemm", "gemm_lanes"),),  # the policy asks the product's library its width
)

"""C kernel that runs a whole inference graph as one call: a list of steps (a layer norm, a
linear layer, an attention, ...) executed in order by one team of OpenMP threads, with a
barrier between steps.

Small inference graphs (W4's GPT at batch 1: about 60 kernels of 5-200 us each) spent as
much time between their kernels as in them: each kernel call crossed from Python (a few
microseconds of argument checks and pointer lookups) and woke the second core again (its
threads wait passively between calls, and a woken thread started 6-50 us late here). Run
as one C call, the steps share one parallel region: the threads are woken once per call,
wait for each other at a barrier that spins briefly before yielding the core (the one of
:mod:`.gemv`), and sleep again when the call returns.

Each step is ``STEP_WORDS`` 64-bit words (:data:`OPS` names the codes; ``ember/kernels/
steps.py`` writes them). Pointers are one word each: ``slot << 40 | byte offset`` into the
caller's table of base addresses (``slots``), so that a program is written once and only
the slots of the inputs and outputs change from call to call; ``-1`` is NULL.

The steps reuse the other units' C code, not copies of it: this unit's source includes
the layer norm of :mod:`.norm`, the activations of :mod:`.activation`, the attention of
:mod:`.attention` and the GEMM of :mod:`.gemm`. Their ``PARALLEL_FOR`` (and the attention's
loop) become *orphaned* work-sharing loops, ``omp for nowait``: every thread of the team
calls the same kernel and takes its static share of the loop, as it would in the kernel's
own parallel region. A linear layer on many rows runs the GEMM's rectangle of each thread
(``gemm_part``) on the thread grid ``gemm_plan`` picks for the team; on a few (at most
``IN_PLACE_ROWS`` of ``ember/graph/steps.py``) it reads the weight where it lies, with the
GEMM's register block (``step_linear_wt``): there each weight is used a few times per call
and arrives from L3, and packing it cost as much as the products (W4's GPT: 0.82-0.86x the
packed steps' time in 5 of 6 processes). No element's arithmetic depends on the number of
threads: results are bit-identical on any team.

Example:
    >>> from ember.kernels.source.steps import UNIT, OPS
    >>> UNIT.name, OPS["linear"]
    ('steps', 4)
"""

from __future__ import annotations

import re

from . import Unit, activation, attention, attention_mm, gemm, gemv, norm, softmax

STEP_WORDS = 36  # 64-bit words per step
OFFSET_BITS = 40  # a pointer word: slot << OFFSET_BITS | byte offset
# the step codes: what each step's words mean is written beside its C function below
OPS = {
    "gather": 1,
    "binary": 2,
    "layer_norm": 3,
    "linear": 4,
    "act": 5,
    "attention": 6,
    "copy": 7,
    "softmax": 8,
    "gemv": 9,
    "matmul": 10,
    "where": 11,
    "not": 12,
    "unary": 13,
    "reduce": 14,
}  # (a concatenation is copy steps, one per input)
# the binary step's kinds: y = a op b
BINARY = {"add": 0, "sub": 1, "mul": 2, "div": 3}
# the unary step's kinds, each the op's NumPy formula (rsqrt: 1 / sqrt(x))
UNARY = {"exp": 0, "log": 1, "sqrt": 2, "rsqrt": 3, "neg": 4, "abs": 5, "reciprocal": 6,
         "square": 7}  # fmt: skip
REDUCE = {"sum": 0, "mean": 1, "amax": 2}  # the reduce step's kinds
ACT_RELU = 100  # the activation step's kind for ReLU (the others: activation.KINDS)


def _internal(body: str) -> str:
    """Another unit's C code with its exported functions made internal (only ``run_steps``
    is this library's entry point)."""
    return re.sub(r"\bEMBER_API\b", "static __attribute__((unused))", body)


SHARED = (
    r"""
/* the other units' parallel loops, as work-sharing loops of this unit's one region */
#ifdef _OPENMP
#undef PARALLEL_FOR
#define PARALLEL_FOR(nt) EMBER_PRAGMA(omp for schedule(static) nowait)
#endif
"""
    + gemv.SHARED
    + gemm.SHARED
    + activation.SHARED
    + norm.SHARED
    + softmax.SHARED
    + attention_mm.SHARED
    + r"""
#ifdef _OPENMP
#undef SDPA_PARALLEL
#undef SDPA_FOR
#define SDPA_PARALLEL(nt)
#define SDPA_FOR EMBER_PRAGMA(omp for schedule(static) nowait)
#endif
"""
    + f"#define STEP_WORDS {STEP_WORDS}\n#define STEP_OFFSET_BITS {OFFSET_BITS}\n"
    + r"""
/* the address a pointer word names: slots[w >> STEP_OFFSET_BITS] plus its low bits; -1 is
   NULL */
static void *step_ptr(const i64 *slots, i64 w) {
    if (w < 0) return NULL;
    return (char *)(intptr_t)slots[w >> STEP_OFFSET_BITS] +
           (w & (((i64)1 << STEP_OFFSET_BITS) - 1));
}
static double step_double(i64 w) {
    double d;
    memcpy(&d, &w, sizeof d);
    return d;
}
/* not: 1 x, 2 y (bool bytes), 3 n */
static void step_not(const i64 *p, const i64 *slots) {
    const unsigned char *x = (const unsigned char *)step_ptr(slots, p[1]);
    unsigned char *y = (unsigned char *)step_ptr(slots, p[2]);
    i64 n = p[3];
    PARALLEL_FOR(0)
    for (i64 i = 0; i < n; i++) y[i] = !x[i];
}
static int step_thread(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}
"""
)

STEPS = r"""
/* gather: 1 weight (V, D), 2 int64 indices (n), 3 y (n, D), 4 n, 5 D, 6 V */
static void FN(step_gather)(const i64 *p, const i64 *slots) {
    const scalar *w = (const scalar *)step_ptr(slots, p[1]);
    const int64_t *idx = (const int64_t *)step_ptr(slots, p[2]);
    scalar *y = (scalar *)step_ptr(slots, p[3]);
    i64 n = p[4], D = p[5];
    PARALLEL_FOR(0)
    for (i64 r = 0; r < n; r++) memcpy(y + r * D, w + idx[r] * D, sizeof(scalar) * (size_t)D);
}

/* y[r d3 + j] = a[.] OP b[.] over rows r of the 4-D shape, in pieces of at most STEP_CHUNK
   (a long row is shared among the threads), the operands read at their own element strides
   (0 along a broadcast dim); the common inner strides get loops of their own, which the
   compiler vectorizes */
#define STEP_CHUNK 4096 /* elements of a row one thread takes at a time */
#define STEP_BINARY(OP)                                                                      \
    do {                                                                                     \
        i64 chunks = (d3 + STEP_CHUNK - 1) / STEP_CHUNK, sa = p[11], sb = p[15];             \
        PARALLEL_FOR(0)                                                                      \
        for (i64 it = 0; it < d0 * d1 * d2 * chunks; it++) {                                 \
            i64 r = it / chunks, j0 = it % chunks * STEP_CHUNK;                              \
            i64 j1 = j0 + STEP_CHUNK < d3 ? j0 + STEP_CHUNK : d3;                            \
            i64 i0 = r / (d1 * d2), i1 = r / d2 % d1, i2 = r % d2;                           \
            const scalar *A = a + i0 * p[8] + i1 * p[9] + i2 * p[10] + j0 * sa;              \
            const scalar *B = b + i0 * p[12] + i1 * p[13] + i2 * p[14] + j0 * sb;            \
            scalar *yr = y + r * d3 + j0;                                                    \
            i64 m = j1 - j0;                                                                 \
            if (sa == 1 && sb == 1) {                                                        \
                SIMD                                                                         \
                for (i64 j = 0; j < m; j++) { scalar u = A[j], v = B[j]; yr[j] = OP; }       \
            } else if (sa == 1 && sb == 0) {                                                 \
                scalar v = B[0];                                                             \
                SIMD                                                                         \
                for (i64 j = 0; j < m; j++) { scalar u = A[j]; yr[j] = OP; }                 \
            } else if (sa == 0 && sb == 1) {                                                 \
                scalar u = A[0];                                                             \
                SIMD                                                                         \
                for (i64 j = 0; j < m; j++) { scalar v = B[j]; yr[j] = OP; }                 \
            } else {                                                                         \
                for (i64 j = 0; j < m; j++) { scalar u = A[j * sa], v = B[j * sb]; yr[j] = OP; } \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* binary: 1 a, 2 b, 3 y (contiguous), 4-7 the shape (4 dims), 8-11 a's element strides,
   12-15 b's, 16 kind (BINARY: 0 add, 1 sub, 2 mul, 3 div) */
static void FN(step_binary)(const i64 *p, const i64 *slots) {
    const scalar *a = (const scalar *)step_ptr(slots, p[1]);
    const scalar *b = (const scalar *)step_ptr(slots, p[2]);
    scalar *y = (scalar *)step_ptr(slots, p[3]);
    i64 d0 = p[4], d1 = p[5], d2 = p[6], d3 = p[7];
    switch (p[16]) {
    case 0: STEP_BINARY(u + v); break;
    case 1: STEP_BINARY(u - v); break;
    case 2: STEP_BINARY(u * v); break;
    case 3: STEP_BINARY(u / v); break;
    }
}

/* y[r d3 + j] = OP(x[.]) over rows r of the 4-D shape, in pieces of at most STEP_CHUNK, x
   read at its own element strides */
#define STEP_UNARY(OP)                                                                       \
    do {                                                                                     \
        i64 chunks = (d3 + STEP_CHUNK - 1) / STEP_CHUNK, sx = p[10];                         \
        PARALLEL_FOR(0)                                                                      \
        for (i64 it = 0; it < d0 * d1 * d2 * chunks; it++) {                                 \
            i64 r = it / chunks, j0 = it % chunks * STEP_CHUNK;                              \
            i64 m = (j0 + STEP_CHUNK < d3 ? j0 + STEP_CHUNK : d3) - j0;                      \
            i64 i0 = r / (d1 * d2), i1 = r / d2 % d1, i2 = r % d2;                           \
            const scalar *X = x + i0 * p[7] + i1 * p[8] + i2 * p[9] + j0 * sx;               \
            scalar *yr = y + r * d3 + j0;                                                    \
            if (sx == 1) {                                                                   \
                SIMD                                                                         \
                for (i64 j = 0; j < m; j++) { scalar u = X[j]; yr[j] = OP; }                 \
            } else {                                                                         \
                for (i64 j = 0; j < m; j++) { scalar u = X[j * sx]; yr[j] = OP; }            \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* unary: 1 x, 2 y (contiguous), 3-6 the shape (4 dims), 7-10 x's element strides, 11 kind
   (UNARY) */
static void FN(step_unary)(const i64 *p, const i64 *slots) {
    const scalar *x = (const scalar *)step_ptr(slots, p[1]);
    scalar *y = (scalar *)step_ptr(slots, p[2]);
    i64 d0 = p[3], d1 = p[4], d2 = p[5], d3 = p[6];
    switch (p[11]) {
    case 0: STEP_UNARY(EXP(u)); break;
    case 1: STEP_UNARY(LOG(u)); break;
    case 2: STEP_UNARY(SQRT(u)); break;
    case 3: STEP_UNARY(LIT(1.0) / SQRT(u)); break;
    case 4: STEP_UNARY(-u); break;
    case 5: STEP_UNARY(ABS(u)); break;
    case 6: STEP_UNARY(LIT(1.0) / u); break;
    case 7: STEP_UNARY(u * u); break;
    }
}

/* reduce: 1 x (A, K, B, contiguous), 2 y (A, B), 3 A, 4 K, 5 B, 6 kind (REDUCE: 0 sum, 1 mean,
   2 max, NaN-propagating as NumPy's) */
static void FN(step_reduce)(const i64 *p, const i64 *slots) {
    const scalar *x = (const scalar *)step_ptr(slots, p[1]);
    scalar *y = (scalar *)step_ptr(slots, p[2]);
    i64 A = p[3], K = p[4], B = p[5], kind = p[6];
    PARALLEL_FOR(0)
    for (i64 o = 0; o < A * B; o++) {
        const scalar *xr = x + (o / B) * K * B + o % B;
        scalar acc = kind == 2 ? xr[0] : 0;
        if (kind == 2) {
            for (i64 k = 1; k < K; k++) {
                scalar v = xr[k * B];
                acc = (v > acc || v != v || acc != acc) ? (acc != acc ? acc : v) : acc;
            }
        } else if (B == 1) {
            SIMD_SUM(acc)
            for (i64 k = 0; k < K; k++) acc += xr[k];
        } else {
            for (i64 k = 0; k < K; k++) acc += xr[k * B];
        }
        y[o] = kind == 1 ? acc / (scalar)K : acc;
    }
}

/* layer norm: 1 x (N, D), 2 weight or NULL, 3 bias or NULL, 4 y, 5 N, 6 D, 7 eps (double bits) */
static void FN(step_layer_norm)(const i64 *p, const i64 *slots) {
    FN(layer_norm_forward)((const scalar *)step_ptr(slots, p[1]),
                           (const scalar *)step_ptr(slots, p[2]),
                           (const scalar *)step_ptr(slots, p[3]), (scalar *)step_ptr(slots, p[4]),
                           NULL, NULL, p[5], p[6], step_double(p[7]), 0);
}

/* linear: 1 x (M, K; row stride ldx), 2 weight (N, K) row-major, 3 bias or NULL, 4 y (M, N;
   row stride ldy), 5 M, 6 N, 7 K, 8 ldx, 9 ldy, 10 acc (1: y += x W^T + b), 11 in place (1:
   the weight read where it lies, see step_linear_wt) */
static void FN(step_linear)(const i64 *p, const i64 *slots, int t, int team) {
    i64 M = p[5], N = p[6], K = p[7], KC, MC, NC, tm, tn;
    FN(gemm_plan)(M, N, K, team, &KC, &MC, &NC, &tm, &tn);
    if (t >= tm * tn) return;
    FN(gemm_part)((const scalar *)step_ptr(slots, p[1]), (const scalar *)step_ptr(slots, p[2]),
                  (scalar *)step_ptr(slots, p[4]), (const scalar *)step_ptr(slots, p[3]), M, N,
                  K, p[8], 1, 1, K, p[9], (int)p[10], t, tm, tn, KC, MC, NC);
}

#define VL ((i64)(GEMM_VB / sizeof(scalar)))
#define NR (2 * VL)
#define MR GEMM_MR
/* a linear step on a few rows, reading the weight in place: y^T = W x^T with W (N, K) as the
   register block's A operand (its rows K apart) and x^T packed once into NR-column panels
   (px; each thread packs its share, then all meet), each thread computing a fixed run of
   MR-row blocks of W (the same in every call), so that no weight is packed or moved between
   the cores: at tens of rows each weight is used only a few times per call and arrives from
   L3, and its packing cost as much as the products */
static void FN(step_linear_wt)(const i64 *p, const i64 *slots, int t, int team,
                               gemv_barrier *bar, scalar *px) {
    const scalar *x = (const scalar *)step_ptr(slots, p[1]);
    const scalar *w = (const scalar *)step_ptr(slots, p[2]);
    const scalar *bias = (const scalar *)step_ptr(slots, p[3]);
    scalar *y = (scalar *)step_ptr(slots, p[4]);
    i64 M = p[5], N = p[6], K = p[7], ldx = p[8], ldy = p[9], acc = p[10];
    i64 mp = gemm_cdiv(M, NR), nb = gemm_cdiv(N, MR);
    for (i64 j = mp * t / team; j < mp * (t + 1) / team; j++)
        FN(gemm_pack_b)(x + j * NR * ldx, 1, ldx, K, gemm_min(NR, M - j * NR), px + j * K * NR);
    if (team > 1) gemv_wait(bar, team);
    scalar *edge = NULL;
    for (i64 ib = nb * t / team, hi = nb * (t + 1) / team; ib < hi; ib++) {
        i64 n0 = ib * MR, rows = gemm_min(MR, N - n0);
        const scalar *a = w + n0 * K;
        if (ib + 1 < hi) { /* the next block's rows, on their way while this one computes */
            const scalar *nx = w + (n0 + MR) * K;
            i64 last = gemm_min(MR, N - n0 - MR) * K;
            for (i64 o = 0; o < last; o += 64 / (i64)sizeof(scalar)) __builtin_prefetch(nx + o, 0, 3);
        }
        if (rows < MR) { /* the last block: its rows zero-padded */
            if (!edge) edge = (scalar *)calloc((size_t)(MR * K), sizeof(scalar));
            if (!edge) return;
            memcpy(edge, a, sizeof(scalar) * (size_t)(rows * K));
            a = edge;
        }
        for (i64 jp = 0; jp < mp; jp++) {
            FN(gvec) ac[2 * MR];
            FN(gemm_acc)(K, a, 1, K, px + jp * K * NR, NR, ac);
            scalar tb[MR * NR];
            for (i64 r = 0; r < MR; r++) {
                FN(gst)(tb + r * NR, ac[2 * r]);
                FN(gst)(tb + r * NR + VL, ac[2 * r + 1]);
            }
            i64 m0 = jp * NR, cols = gemm_min(NR, M - m0);
            for (i64 j = 0; j < cols; j++) {
                scalar *yr = y + (m0 + j) * ldy + n0;
                for (i64 r = 0; r < rows; r++) {
                    scalar v = tb[r * NR + j];
                    if (bias) v += bias[n0 + r];
                    yr[r] = acc ? yr[r] + v : v;
                }
            }
        }
    }
    free(edge);
}
#undef VL
#undef NR
#undef MR

/* activation: 1 x (n), 2 y (n), 3 n, 4 kind (activation.KINDS, or 100: ReLU) */
static void FN(step_act)(const i64 *p, const i64 *slots) {
    const scalar *x = (const scalar *)step_ptr(slots, p[1]);
    scalar *y = (scalar *)step_ptr(slots, p[2]);
    if (p[4] == 100) {
        ELEMENTWISE(p[3], 0, i, { y[i] = EMBER_RELU(x[i]); });
        return;
    }
    FN(activation_forward)(x, y, p[3], (int)p[4], 0);
}

/* attention: 1 q, 2 k, 3 v, 4 o, 5 B, 6 H, 7 L, 8 S, 9 E, 10 Ev, 11 causal, 12 scale (double
   bits), 13-28 the element strides of q, k, v and the mask (none: zeros), 29-31 o's (batch,
   head, row) strides, 32 the mask or NULL, 33 its kind (1 float, added; 2 bool) */
static void FN(step_attention)(const i64 *p, const i64 *slots) {
    FN(sdpa_forward)((const scalar *)step_ptr(slots, p[1]), (const scalar *)step_ptr(slots, p[2]),
                     (const scalar *)step_ptr(slots, p[3]), step_ptr(slots, p[32]),
                     (scalar *)step_ptr(slots, p[4]), p[5], p[6], p[7], p[8], p[9], p[10],
                     p + 13, p + 29, (int)p[33], (int)p[11], (scalar)step_double(p[12]), 0);
}

/* softmax: 1 x, 2 y, both (A, K, B) with the softmax along K, 3 A, 4 K, 5 B, 6 mode (0
   softmax, 1 log_softmax, 2 safe softmax) */
static void FN(step_softmax)(const i64 *p, const i64 *slots) {
    FN(softmax_forward)((const scalar *)step_ptr(slots, p[1]), (scalar *)step_ptr(slots, p[2]),
                        p[3], p[4], p[5], (int)p[6], 0);
}

/* copy: 1 x, 2 y, 3-6 the shape (4 dims), 7-10 x's element strides, 11-14 y's (a reshape's
   contiguous copy, or one input of a concatenation into its part of the result) */
static void FN(step_copy)(const i64 *p, const i64 *slots) {
    const scalar *x = (const scalar *)step_ptr(slots, p[1]);
    scalar *y = (scalar *)step_ptr(slots, p[2]);
    i64 d0 = p[3], d1 = p[4], d2 = p[5], d3 = p[6], sx = p[10], sy = p[14];
    PARALLEL_FOR(0)
    for (i64 r = 0; r < d0 * d1 * d2; r++) {
        i64 i0 = r / (d1 * d2), i1 = r / d2 % d1, i2 = r % d2;
        const scalar *xr = x + i0 * p[7] + i1 * p[8] + i2 * p[9];
        scalar *yr = y + i0 * p[11] + i1 * p[12] + i2 * p[13];
        if (sx == 1 && sy == 1) memcpy(yr, xr, sizeof(scalar) * (size_t)d3);
        else for (i64 j = 0; j < d3; j++) yr[j * sy] = xr[j * sx];
    }
}

/* one linear layer on a few rows, as gemv.py's chain computes it: 1 x (m rows, row stride
   ldx), 2 weight (n, k), 3 bias or NULL, 4 y (m rows, row stride ldy), 5 m, 6 ldx, 7 k, 8 n,
   9 the activation (gemv.ACTS), 10 ldy; each thread the same run of whole 4-row groups */
static void FN(step_gemv)(const i64 *p, const i64 *slots, int t, int team) {
    i64 n = p[8];
    i64 j0 = n * t / team / 4 * 4, j1 = t == team - 1 ? n : n * (t + 1) / team / 4 * 4;
    FN(gemv_rows)((const scalar *)step_ptr(slots, p[1]), p[5], p[6],
                  (const scalar *)step_ptr(slots, p[2]), (const scalar *)step_ptr(slots, p[3]),
                  p[9], (scalar *)step_ptr(slots, p[4]), p[10], p[7], j0, j1);
}

/* batched matmul: 1 a, 2 b, 3 c (contiguous: items of M x N), 4 M, 5 N, 6 K, 7-10 the element
   strides sam, sak, sbk, sbn, 11-12 the batch dims (b0, b1), 13-14 a's strides along them,
   15-16 b's (0: broadcast). Many items: each thread whole items; few: each item split on
   gemm_plan's grid. Either way each element is summed the same way. */
static void FN(step_matmul)(const i64 *p, const i64 *slots, int t, int team) {
    const scalar *a = (const scalar *)step_ptr(slots, p[1]);
    const scalar *b = (const scalar *)step_ptr(slots, p[2]);
    scalar *c = (scalar *)step_ptr(slots, p[3]);
    i64 M = p[4], N = p[5], K = p[6], b1 = p[12], items = p[11] * p[12];
    i64 KC, MC, NC, tm, tn;
    int whole = items >= team;
    FN(gemm_plan)(M, N, K, whole ? 1 : team, &KC, &MC, &NC, &tm, &tn);
    if (!whole && t >= tm * tn) return;
    for (i64 it = whole ? t : 0; it < items; it += whole ? team : 1) {
        i64 i0 = it / b1, i1 = it % b1;
        FN(gemm_part)(a + i0 * p[13] + i1 * p[14], b + i0 * p[15] + i1 * p[16], c + it * M * N,
                      NULL, M, N, K, p[7], p[8], p[9], p[10], N, 0, whole ? 0 : t, tm, tn, KC,
                      MC, NC);
    }
}

/* where: 1 cond (bool bytes), 2 a, 3 b, 4 y (n), 5 n, 6-8 the periods of cond, a and b (each
   repeated along y; a period of 1 is a number), 9 the row: the smallest period above 1 (all
   others are multiples of it, being products of trailing dims) */
static void FN(step_where)(const i64 *p, const i64 *slots) {
    const unsigned char *cond = (const unsigned char *)step_ptr(slots, p[1]);
    const scalar *a = (const scalar *)step_ptr(slots, p[2]);
    const scalar *b = (const scalar *)step_ptr(slots, p[3]);
    scalar *y = (scalar *)step_ptr(slots, p[4]);
    i64 n = p[5], pc = p[6], pa = p[7], pb = p[8], R = p[9];
    PARALLEL_FOR(0)
    for (i64 r = 0; r < n / R; r++) {
        i64 i = r * R;
        const unsigned char *cr = cond + (pc == 1 ? 0 : i % pc);
        const scalar *ar = a + (pa == 1 ? 0 : i % pa), *br = b + (pb == 1 ? 0 : i % pb);
        i64 sc = pc != 1, sa = pa != 1, sb = pb != 1;
        scalar *yr = y + i;
        for (i64 j = 0; j < R; j++) yr[j] = cr[j * sc] ? ar[j * sa] : br[j * sb];
    }
}

static void FN(step_run)(const i64 *p, const i64 *slots, int t, int team, gemv_barrier *bar,
                         scalar *px) {
    switch (p[0]) {
    case 1: FN(step_gather)(p, slots); break;
    case 2: FN(step_binary)(p, slots); break;
    case 3: FN(step_layer_norm)(p, slots); break;
    case 4:
        if (p[11]) FN(step_linear_wt)(p, slots, t, team, bar, px);
        else FN(step_linear)(p, slots, t, team);
        break;
    case 5: FN(step_act)(p, slots); break;
    case 6: FN(step_attention)(p, slots); break;
    case 7: FN(step_copy)(p, slots); break;
    case 8: FN(step_softmax)(p, slots); break;
    case 9: FN(step_gemv)(p, slots, t, team); break;
    case 10: FN(step_matmul)(p, slots, t, team); break;
    case 11: FN(step_where)(p, slots); break;
    case 12: step_not(p, slots); break;
    case 13: FN(step_unary)(p, slots); break;
    case 14: FN(step_reduce)(p, slots); break;
    }
}

/* Run nsteps steps of prog (STEP_WORDS words each) on nt threads; slots: the base addresses
   the pointer words name, of which slots[io_slots[j]] are set to io[j] first (this call's
   inputs and outputs). Returns 0, or -2 when a gathered index is out of range (checked
   before any step runs: the caller then takes the graph's own path, which reports it), -1
   when memory for the packed inputs of in-place linear steps cannot be had. */
EMBER_API int FN(run_steps)(const i64 *prog, i64 nsteps, i64 *slots, void *const *io,
                            const i64 *io_slots, i64 nio, int nt) {
    for (i64 j = 0; j < nio; j++) slots[io_slots[j]] = (i64)(intptr_t)io[j];
    for (i64 s = 0; s < nsteps; s++) {
        const i64 *p = prog + s * STEP_WORDS;
        if (p[0] != 1) continue;
        const int64_t *idx = (const int64_t *)step_ptr(slots, p[2]);
        for (i64 r = 0; r < p[4]; r++)
            if (idx[r] < 0 || idx[r] >= p[6]) return -2;
    }
    i64 npx = 0; /* the x^T panels of the in-place linear steps: one buffer, shared */
    for (i64 s = 0; s < nsteps; s++) {
        const i64 *p = prog + s * STEP_WORDS;
        i64 n = (p[5] + 2 * GEMM_VB / (i64)sizeof(scalar) - 1) / (2 * GEMM_VB / (i64)sizeof(scalar));
        if (p[0] == 4 && p[11] && n * (2 * GEMM_VB / (i64)sizeof(scalar)) * p[7] > npx)
            npx = n * (2 * GEMM_VB / (i64)sizeof(scalar)) * p[7];
    }
    scalar *px = npx ? (scalar *)aligned_alloc(64, (size_t)((npx * (i64)sizeof(scalar) + 63) / 64 * 64)) : NULL;
    if (npx && !px) return -1;
    gemv_barrier bar = {0, 0, 0};
    int caller_cpu = nt > 1 ? EMBER_THREAD_CPU() : -1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if(nt > 1)
#endif
    {
        ember_team_place(caller_cpu);
        int team = gemv_team(), t = step_thread();
        for (i64 s = 0; s < nsteps; s++) {
            FN(step_run)(prog + s * STEP_WORDS, slots, t, team, &bar, px);
            if (team > 1 && s + 1 < nsteps) gemv_wait(&bar, team);
        }
    }
    free(px);
    return 0;
}
"""

BODY = (
    _internal(gemv.BODY)
    + gemm.CORE
    + _internal(gemm.API)
    + gemm.TAIL
    + _internal(activation.BODY)
    + _internal(norm.BODY)
    + _internal(attention.BODY)
    + _internal(softmax.BODY)
    + STEPS
)

UNIT = Unit(
    name="steps",
    functions=(
        "int run_steps(const i64 *prog, i64 nsteps, i64 *slots, void *const *io,"
        " const i64 *io_slots, i64 nio, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

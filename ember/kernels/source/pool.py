"""C kernels of pooling and of ReLU's gradient, over ``(N * C, H, W)`` planes.

``max_pool2d``: forward (optionally with PyTorch's flat ``h * W + w`` argmax indices) and
backward, with any kernel, stride, symmetric padding, dilation and output size
(``ceil_mode`` is in the output size: window positions past the input are skipped, as
padding is). Each window's winner is its first maximum, or its first NaN (NaN propagates, as
in NumPy's ``maximum`` and PyTorch); a window with no element inside the input gives
``-inf`` and index -1. The common 2x2 / stride 2 pooling without padding has its own path:
each output row straight from its two input rows, in vectorized blocks of 8 (or 4)
outputs whose last block overlaps the one before it (no scalar remainder loop), and a
backward that writes every element of ``dx`` in the same single pass (the gradient at
each winner, 0 elsewhere: no zeroing pass, no scatter). Otherwise an output row is computed
tap by tap (each tap one vectorized pass over the columns whose windows lie inside the
input; border columns one by one). Backward recomputes the winners from ``x`` (so nothing
but the input is saved: reading the input costs about what reading saved int64 indices
would) and adds ``g`` at each winner; planes are independent, so threads never write the
same element. Plane indices are 32-bit inside the C code (planes up to 2^31 elements).
Both return 0, or -1 when scratch memory cannot be allocated.

``avg_pool2d``: forward and backward with PyTorch's divisor rules (``count_include_pad``,
``divisor_override``; a window with nothing inside the input gives 0).

``relu_forward``: ``maximum(x, 0)`` as NumPy computes it (NaN kept, ``-0.0`` becomes ``+0.0``),
threaded.
``relu_backward``: ``dx = y <= 0 ? 0 : g`` from ReLU's output ``y`` in one pass (PyTorch's
``threshold_backward``: a NaN output passes the gradient, a dead unit gives 0 even for a NaN
gradient).

Example:
    >>> from ember.kernels.source.pool import UNIT
    >>> UNIT.name
    'pool'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
typedef struct {
    i64 H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
} pool_geom;

"""

BODY = r"""
/* the first max (or first NaN) of window (oh, ow) of one plane: its flat index, or -1 */
static inline i64 FN(pool_winner)(const scalar *restrict plane, const pool_geom *q, i64 oh,
                                  i64 ow, scalar *value) {
    scalar best = -INFINITY;
    i64 at = -1;
    for (i64 i = 0; i < q->kh; i++) {
        i64 h = oh * q->sh - q->ph + i * q->dh;
        if (h < 0 || h >= q->H) continue;
        for (i64 j = 0; j < q->kw; j++) {
            i64 w = ow * q->sw - q->pw + j * q->dw;
            if (w < 0 || w >= q->W) continue;
            scalar v = plane[h * q->W + w];
            if (at < 0 || v > best || (v != v && best == best)) {
                best = v;
                at = h * q->W + w;
            }
        }
    }
    *value = best;
    return at;
}

/* one kernel tap over the interior columns; sw is a literal 1 or 2 at the common call sites
   (contiguous or shuffled loads instead of gathers) */
EMBER_INLINE void FN(pool_tap)(const scalar *restrict row, scalar *restrict yr,
                               int32_t *restrict ir, i64 c0, i64 c1, i64 off, int32_t base,
                               const i64 sw, int init) {
    if (init) {
        SIMD
        for (i64 ow = c0; ow < c1; ow++) {
            yr[ow] = row[ow * sw + off];
            ir[ow] = base + (int32_t)(ow * sw);
        }
        return;
    }
    SIMD
    for (i64 ow = c0; ow < c1; ow++) {
        scalar val = row[ow * sw + off], b = yr[ow];
        int take = (val > b) | ((val != val) & (b == b));
        yr[ow] = take ? val : b;
        ir[ow] = take ? base + (int32_t)(ow * sw) : ir[ow];
    }
}

/* Winners of output row oh of one plane into yr (values) and ir (flat indices). Columns
   whose windows lie inside the input are done tap by tap (row-major, so the first max
   wins), each tap a vectorized pass over the row; the few border columns go one by one.
   Never inlined: forward and backward call it, and either built alone would inline it
   (the same machine code however the unit is built: see ember/kernels/source/__init__.py). */
static __attribute__((noinline)) void FN(pool_row)(const scalar *restrict plane, const pool_geom *q, i64 oh,
                         scalar *restrict yr, int32_t *restrict ir) {
    i64 c0 = (q->pw + q->sw - 1) / q->sw;
    i64 last = q->W - 1 - (q->kw - 1) * q->dw + q->pw; /* ow * sw <= last */
    i64 c1 = last >= 0 ? last / q->sw + 1 : 0;
    if (c1 > q->OW) c1 = q->OW;
    if (c0 > c1) c0 = c1;
    i64 first = -1;
    for (i64 i = 0; i < q->kh && first < 0; i++) {
        i64 h = oh * q->sh - q->ph + i * q->dh;
        if (h >= 0 && h < q->H) first = i;
    }
    if (first < 0) c0 = c1 = 0; /* no row of the window is inside: all border code */
    for (i64 ow = 0; ow < q->OW; ow++) {
        if (ow == c0) ow = c1;
        if (ow >= q->OW) break;
        scalar v;
        ir[ow] = (int32_t)FN(pool_winner)(plane, q, oh, ow, &v);
        yr[ow] = v;
    }
    if (c0 >= c1) return;
    const i64 sw = q->sw, off0 = -q->pw;
    for (i64 i = first; i < q->kh; i++) {
        i64 h = oh * q->sh - q->ph + i * q->dh;
        if (h < 0 || h >= q->H) continue;
        const scalar *restrict row = plane + h * q->W;
        for (i64 j = 0; j < q->kw; j++) {
            i64 off = off0 + j * q->dw;
            int32_t base = (int32_t)(h * q->W + off);
            int init = i == first && j == 0;
            if (sw == 1) FN(pool_tap)(row, yr, ir, c0, c1, off, base, 1, init);
            else if (sw == 2) FN(pool_tap)(row, yr, ir, c0, c1, off, base, 2, init);
            else FN(pool_tap)(row, yr, ir, c0, c1, off, base, sw, init);
        }
    }
}

/* 2x2 windows at stride 2 without padding or dilation (H >= 2 OH, W >= 2 OW: a last odd
   row or column is never read): output row oh from input rows 2 oh and 2 oh + 1. The
   better of each row's pair, then of the two rows, is the row-major first maximum (the rule
   is associative). POOL_TAKE(v, best): v replaces best (written with && and ||: GCC 12
   vectorizes a select that feeds a comparison only in this form).

   A row is done in blocks of a fixed 8 (or 4) outputs, the last block overlapping the one
   before it rather than running short: with a loop over the row's own length (14 or 7 in
   a small CNN) GCC's scalar remainder branches on every comparison, and costs 4-8x more
   than recomputing a few outputs. */
#define POOL_TAKE(v, best) ((v) > (best) || ((v) != (v) && (best) == (best)))

static int FN(is_pool2x2)(const pool_geom *q) {
    return q->kh == 2 && q->kw == 2 && q->sh == 2 && q->sw == 2 && q->ph == 0 && q->pw == 0 &&
           q->dh == 1 && q->dw == 1 && q->H >= 2 * q->OH && q->W >= 2 * q->OW;
}

/* n outputs from top row t (bottom row t + W): values, and when ir is not NULL flat plane
   indices (at: the index of t[0]) */
EMBER_INLINE void FN(pool2x2_block)(const scalar *restrict t, scalar *restrict yr,
                                    i64 *restrict ir, i64 W, i64 at, const i64 n) {
    const scalar *restrict b = t + W;
    if (!ir) {
        SIMD
        for (i64 k = 0; k < n; k++) {
            scalar a0 = t[2 * k], a1 = t[2 * k + 1], c0 = b[2 * k], c1 = b[2 * k + 1];
            scalar tv = POOL_TAKE(a1, a0) ? a1 : a0, bv = POOL_TAKE(c1, c0) ? c1 : c0;
            yr[k] = POOL_TAKE(bv, tv) ? bv : tv;
        }
        return;
    }
    const int32_t w32 = (int32_t)W; /* planes are below 2^31 elements */
    SIMD
    for (i64 k = 0; k < n; k++) {
        scalar a0 = t[2 * k], a1 = t[2 * k + 1], c0 = b[2 * k], c1 = b[2 * k + 1];
        int32_t tk = POOL_TAKE(a1, a0), bk = POOL_TAKE(c1, c0);
        scalar tv = tk ? a1 : a0, bv = bk ? c1 : c0;
        int32_t vk = POOL_TAKE(bv, tv);
        yr[k] = vk ? bv : tv;
        ir[k] = at + (i64)((vk ? w32 : 0) + 2 * (int32_t)k + (vk ? bk : tk));
    }
}

/* the gradient of n outputs: g at each window's winner, 0 elsewhere, into dx rows d and
   d + W (t: the top row of x). Three loops (the winners' positions 0-3, then each row):
   GCC vectorizes each, not the one loop that stores both rows. */
EMBER_INLINE void FN(pool2x2_block_backward)(const scalar *restrict gr, const scalar *restrict t,
                                             scalar *restrict d, i64 W, const i64 n) {
    const scalar *restrict b = t + W;
    int32_t pos[8];
    SIMD
    for (i64 k = 0; k < n; k++) {
        scalar a0 = t[2 * k], a1 = t[2 * k + 1], c0 = b[2 * k], c1 = b[2 * k + 1];
        int32_t tk = POOL_TAKE(a1, a0), bk = POOL_TAKE(c1, c0);
        scalar tv = tk ? a1 : a0, bv = bk ? c1 : c0;
        int32_t vk = POOL_TAKE(bv, tv);
        pos[k] = (vk ? 2 : 0) + (vk ? bk : tk);
    }
    for (int32_t row = 0; row < 2; row++) {
        scalar *restrict dr = d + row * W;
        SIMD
        for (i64 k = 0; k < n; k++) {
            scalar gv = gr[k], z = 0;
            int32_t p = pos[k] - 2 * row;
            dr[2 * k] = p == 0 ? gv : z;
            dr[2 * k + 1] = p == 1 ? gv : z;
        }
    }
}

/* output row oh of one plane (t: input row 2 oh): blocks of 8, or 4, or (OW < 4) one short
   loop */
EMBER_INLINE void FN(pool2x2_row)(const scalar *restrict t, scalar *restrict yr,
                                  i64 *restrict ir, i64 OW, i64 W, i64 oh) {
    i64 at = 2 * oh * W;
    if (OW < 4) {
        for (i64 k = 0; k < OW; k++) FN(pool2x2_block)(t + 2 * k, yr + k, ir ? ir + k : NULL, W,
                                                      at + 2 * k, 1);
        return;
    }
    const i64 n = OW >= 8 ? 8 : 4;
    for (i64 o = 0; o < OW; o += n) {
        i64 s = o + n <= OW ? o : OW - n; /* the last block overlaps */
        i64 *is = ir ? ir + s : NULL;
        if (n == 8) FN(pool2x2_block)(t + 2 * s, yr + s, is, W, at + 2 * s, 8);
        else FN(pool2x2_block)(t + 2 * s, yr + s, is, W, at + 2 * s, 4);
    }
}

/* g of output row oh into dx rows 2 oh and 2 oh + 1 (t, d: where they start in x and dx);
   0 in a last odd column */
EMBER_INLINE void FN(pool2x2_row_backward)(const scalar *restrict gr, const scalar *restrict t,
                                           scalar *restrict d, i64 OW, i64 W) {
    if (OW < 4) {
        for (i64 k = 0; k < OW; k++) FN(pool2x2_block_backward)(gr + k, t + 2 * k, d + 2 * k, W, 1);
    } else {
        const i64 n = OW >= 8 ? 8 : 4;
        for (i64 o = 0; o < OW; o += n) {
            i64 s = o + n <= OW ? o : OW - n; /* the last block overlaps */
            if (n == 8) FN(pool2x2_block_backward)(gr + s, t + 2 * s, d + 2 * s, W, 8);
            else FN(pool2x2_block_backward)(gr + s, t + 2 * s, d + 2 * s, W, 4);
        }
    }
    for (i64 w = 2 * OW; w < W; w++) d[w] = d[W + w] = 0;
}

EMBER_API int FN(max_pool2d_forward)(const scalar *x, scalar *y, i64 *idx, i64 NC, i64 H,
                                     i64 W, i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw,
                                     i64 ph, i64 pw, i64 dh, i64 dw, int nt) {
    pool_geom q = {H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw};
    if (FN(is_pool2x2)(&q)) {
        PARALLEL_FOR(nt)
        for (i64 p = 0; p < NC; p++)
            for (i64 oh = 0; oh < OH; oh++) {
                i64 item = p * OH + oh;
                i64 *ir = idx ? idx + item * OW : NULL;
                FN(pool2x2_row)(x + p * H * W + 2 * oh * W, y + item * OW, ir, OW, W, oh);
            }
        return 0;
    }
    int parts = nt > 1 ? nt : 1;
    int32_t *scratch = (int32_t *)malloc((size_t)parts * (size_t)OW * sizeof(int32_t));
    if (!scratch) return -1;
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < NC * OH; item++) {
        i64 p = item / OH, oh = item % OH;
        int32_t *ir = scratch + (size_t)THREAD_ID() * (size_t)OW;
        FN(pool_row)(x + p * H * W, &q, oh, y + item * OW, ir);
        if (idx) {
            i64 *out = idx + item * OW;
            for (i64 ow = 0; ow < OW; ow++) out[ow] = ir[ow];
        }
    }
    free(scratch);
    return 0;
}

/* dx need not be zero on entry: every element is written */
EMBER_API int FN(max_pool2d_backward)(const scalar *g, const scalar *x, scalar *dx, i64 NC,
                                      i64 H, i64 W, i64 OH, i64 OW, i64 kh, i64 kw, i64 sh,
                                      i64 sw, i64 ph, i64 pw, i64 dh, i64 dw, int nt) {
    pool_geom q = {H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw};
    if (FN(is_pool2x2)(&q)) { /* every element of dx is written */
        PARALLEL_FOR(nt)
        for (i64 p = 0; p < NC; p++) {
            for (i64 oh = 0; oh < OH; oh++) {
                i64 at = p * H * W + 2 * oh * W;
                FN(pool2x2_row_backward)(g + (p * OH + oh) * OW, x + at, dx + at, OW, W);
            }
            if (H > 2 * OH) /* a last odd row gets no gradient */
                memset(dx + (p * H + 2 * OH) * W, 0, (size_t)((H - 2 * OH) * W) * sizeof(scalar));
        }
        return 0;
    }
    int parts = nt > 1 ? nt : 1;
    size_t per = (size_t)OW * (sizeof(int32_t) + sizeof(scalar));
    char *scratch = (char *)malloc((size_t)parts * per);
    if (!scratch) return -1;
    PARALLEL_FOR(nt)
    for (i64 p = 0; p < NC; p++) {
        char *mine = scratch + (size_t)THREAD_ID() * per;
        scalar *yr = (scalar *)mine;
        int32_t *ir = (int32_t *)(mine + (size_t)OW * sizeof(scalar));
        const scalar *gp = g + p * OH * OW;
        scalar *dp = dx + p * H * W;
        memset(dp, 0, (size_t)(H * W) * sizeof(scalar));
        for (i64 oh = 0; oh < OH; oh++) {
            FN(pool_row)(x + p * H * W, &q, oh, yr, ir);
            for (i64 ow = 0; ow < OW; ow++)
                if (ir[ow] >= 0) dp[ir[ow]] += gp[oh * OW + ow];
        }
    }
    free(scratch);
    return 0;
}

/* PyTorch's average-pooling window of output index o along one dimension: the elements
   [*a, *b) inside the input, and the divisor's share (the window clipped to the padded
   input when include_pad, else to the input) */
static inline i64 FN(avg_span)(i64 o, i64 s, i64 p, i64 k, i64 size, int include_pad, i64 *a,
                               i64 *b) {
    i64 start = o * s - p, end = start + k < size + p ? start + k : size + p;
    i64 span = end - start;
    *a = start > 0 ? start : 0;
    *b = end < size ? end : size;
    if (*b < *a) *b = *a;
    return include_pad ? span : *b - *a;
}

/* Mean over each window of (NC, H, W) planes; divisor > 0 overrides the window size. An
   output whose window has no element inside the input is 0. */
EMBER_API void FN(avg_pool2d_forward)(const scalar *x, scalar *y, i64 NC, i64 H, i64 W, i64 OH,
                                      i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw,
                                      int include_pad, i64 divisor, int nt) {
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < NC * OH; item++) {
        i64 p = item / OH, oh = item % OH, h0, h1;
        i64 nh = FN(avg_span)(oh, sh, ph, kh, H, include_pad, &h0, &h1);
        const scalar *plane = x + p * H * W;
        scalar *yr = y + item * OW;
        for (i64 ow = 0; ow < OW; ow++) {
            i64 w0, w1;
            i64 nw = FN(avg_span)(ow, sw, pw, kw, W, include_pad, &w0, &w1);
            scalar acc = 0;
            for (i64 h = h0; h < h1; h++)
                for (i64 w = w0; w < w1; w++) acc += plane[h * W + w];
            i64 div = divisor > 0 ? divisor : nh * nw;
            yr[ow] = (h0 >= h1 || w0 >= w1) ? 0 : acc / (scalar)(div > 0 ? div : 1);
        }
    }
}

/* The input gradient of avg_pool2d_forward: each window's g / divisor added over its
   elements inside the input; planes are independent (threads never share an element). */
EMBER_API void FN(avg_pool2d_backward)(const scalar *g, scalar *dx, i64 NC, i64 H, i64 W, i64 OH,
                                       i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw,
                                       int include_pad, i64 divisor, int nt) {
    PARALLEL_FOR(nt)
    for (i64 p = 0; p < NC; p++) {
        scalar *dp = dx + p * H * W;
        const scalar *gp = g + p * OH * OW;
        memset(dp, 0, (size_t)(H * W) * sizeof(scalar));
        for (i64 oh = 0; oh < OH; oh++) {
            i64 h0, h1;
            i64 nh = FN(avg_span)(oh, sh, ph, kh, H, include_pad, &h0, &h1);
            for (i64 ow = 0; ow < OW; ow++) {
                i64 w0, w1;
                i64 nw = FN(avg_span)(ow, sw, pw, kw, W, include_pad, &w0, &w1);
                i64 div = divisor > 0 ? divisor : nh * nw;
                scalar v = gp[oh * OW + ow] / (scalar)(div > 0 ? div : 1);
                for (i64 h = h0; h < h1; h++)
                    for (i64 w = w0; w < w1; w++) dp[h * W + w] += v;
            }
        }
    }
}

/* ReLU: x where x > 0 or x is NaN, else +0 (NumPy's maximum(x, 0): -0.0 gives +0.0) */
EMBER_API void FN(relu_forward)(const scalar *restrict x, scalar *restrict y, i64 n, int nt) {
    ELEMENTWISE(n, nt, i, { scalar v = x[i]; y[i] = EMBER_RELU(v); });
}

/* ReLU's gradient from its output y: g where y > 0 or y is NaN, else 0 (PyTorch's
   threshold_backward: a NaN gradient at a dead unit still gives 0) */
EMBER_API void FN(relu_backward)(const scalar *restrict g, const scalar *restrict y,
                                 scalar *restrict dx, i64 n, int nt) {
    ELEMENTWISE(n, nt, i, { dx[i] = y[i] <= 0 ? (scalar)0 : g[i]; });
}
"""

UNIT = Unit(
    name="pool",
    functions=(
        "int max_pool2d_forward(const scalar *x, scalar *y, i64 *idx, i64 NC, i64 H, i64 W,"
        " i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw, int nt)",
        "int max_pool2d_backward(const scalar *g, const scalar *x, scalar *dx, i64 NC, i64 H,"
        " i64 W, i64 OH, i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, i64 dh, i64 dw,"
        " int nt)",
        "void avg_pool2d_forward(const scalar *x, scalar *y, i64 NC, i64 H, i64 W, i64 OH,"
        " i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, int include_pad, i64 divisor,"
        " int nt)",
        "void avg_pool2d_backward(const scalar *g, scalar *dx, i64 NC, i64 H, i64 W, i64 OH,"
        " i64 OW, i64 kh, i64 kw, i64 sh, i64 sw, i64 ph, i64 pw, int include_pad, i64 divisor,"
        " int nt)",
        "void relu_forward(const scalar *x, scalar *y, i64 n, int nt)",
        "void relu_backward(const scalar *g, const scalar *y, scalar *dx, i64 n, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

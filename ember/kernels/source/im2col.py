"""C kernels of ``im2col`` and ``col2im``, the two data movements around the GEMM of a
convolution, reading the ``(N, C, H, W)`` input directly (zero padding done in the kernel:
no padded or transposed copy of the input is ever made).

Column row ``r = (c * kh + i) * kw + j`` holds input channel ``c`` seen through kernel tap
``(i, j)``; column ``(n, oh, ow)`` is output position ``(oh, ow)`` of sample ``n``. Where
they go is given by two strides (in elements), so that one kernel serves both layouts a
convolution wants: ``rs = N * OH * OW, ns = OH * OW`` gives ``(C * kh * kw, N * OH * OW)``
(one large GEMM per group, ember's ``conv2d`` layout), and ``rs = OH * OW, ns = C * kh * kw *
OH * OW`` gives ``(N, C * kh * kw, OH * OW)`` (a batched GEMM whose result is already
``(N, O, OH * OW)``, NCHW without a transpose). Padding is ``pt`` rows on top and ``pl``
columns on the left; the bottom and right are implied by ``OH``, ``OW``.

``im2col`` writes every column element (zeros where a tap falls in the padding) and is
parallel over column rows; ``col2im`` adds the columns back into a zeroed ``(N, C, H, W)``
array (overlapping taps accumulate) and is parallel over channels (the first layout: each
column row is read front to back, instead of 784-byte pieces 50 KB apart, which cost a TLB
miss each) or over ``(n, c)`` planes (the second), so threads never write the same element. With stride 1 and an output as wide as the
input (the usual "same" convolution) both work on whole runs of rows (one copy or one
masked add of up to ``OH * OW`` elements per sample and tap, instead of ``OH`` short rows).
``swap01`` turns the ``(O, N, OH * OW)`` result of the large GEMM into NCHW, adding the
bias in the same pass.

``conv_direct`` and ``conv_weight_grad_direct`` are a convolution without a GEMM, for few
taps per output (``K = C / G * kh * kw``, up to 16 or so): work items are (sample, group,
block of output rows), each building its K columns in a thread's buffer (im2col_tap, sized
to stay in cache) and using them at once: 4 output channels x 2 vectors of positions in
registers for the forward (written NCHW, bias added), 2 channels x 4 taps of vector sums
for the weight gradient (the bias gradient in the same pass over ``g``), added into each
thread's double sums after each item and over threads in thread order (the same bits for
the same thread count).

Example:
    >>> from ember.kernels.source.im2col import UNIT
    >>> UNIT.name
    'im2col'
"""

from __future__ import annotations

from . import Unit

SHARED = r"""
/* output columns ow with 0 <= ow * sw + off < W lie in [*lo, *hi) */
static inline void im2col_span(i64 off, i64 sw, i64 W, i64 OW, i64 *lo, i64 *hi) {
    i64 a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    i64 b = W - 1 - off >= 0 ? (W - 1 - off) / sw + 1 : 0;
    if (b > OW) b = OW;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}
"""

BODY = r"""
/* Rows as one run: with stride 1 and an output as wide as the input (OW == W, "same"
   padding across), the valid output rows of one tap read consecutive input rows at one
   offset, so a (n, tap) block is a single copy of up to OH * OW elements instead of OH
   copies of OW (short loops dominated by their remainders); the columns that fall in the
   padding are zeroed afterwards. */
static int FN(flat_rows)(i64 W, i64 sh, i64 sw, i64 OW) { return sh == 1 && sw == 1 && OW == W; }

/* the output rows oh in [*a, *b) whose input row oh + h0 lies inside [0, H) (stride 1) */
static inline void FN(row_span)(i64 h0, i64 H, i64 OH, i64 *a, i64 *b) {
    i64 lo = h0 < 0 ? -h0 : 0, hi = H - h0 < OH ? H - h0 : OH;
    if (hi < lo) hi = lo;
    *a = lo;
    *b = hi;
}

/* one column row of one sample: plane src (H, W) seen through kernel tap (i, j), written to
   dst[0 .. OH * OW) (zeros where the tap falls in the padding) */
EMBER_INLINE void FN(im2col_tap)(const scalar *restrict src, scalar *restrict dst, i64 H, i64 W,
                                 i64 i, i64 j, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw,
                                 i64 OH, i64 OW) {
    i64 off = j * dw - pl, lo, hi;
    im2col_span(off, sw, W, OW, &lo, &hi);
    if (FN(flat_rows)(W, sh, sw, OW)) {
        i64 h0 = i * dh - pt, a, b;
        FN(row_span)(h0, H, OH, &a, &b);
        const i64 shift = h0 * W + off; /* from dst to src within the run */
        for (i64 t = 0; t < a * OW; t++) dst[t] = 0;
        for (i64 t = b * OW; t < OH * OW; t++) dst[t] = 0;
        if (a >= b || lo >= hi) {
            for (i64 t = a * OW; t < b * OW; t++) dst[t] = 0;
            return;
        }
        i64 t1 = (b - 1) * OW + hi;
        SIMD
        for (i64 t = a * OW + lo; t < t1; t++) dst[t] = src[t + shift];
        for (i64 oh = a; oh < b; oh++) { /* the padding columns */
            for (i64 ow = 0; ow < lo; ow++) dst[oh * OW + ow] = 0;
            for (i64 ow = hi; ow < OW; ow++) dst[oh * OW + ow] = 0;
        }
        return;
    }
    for (i64 oh = 0; oh < OH; oh++, dst += OW) {
        i64 h = oh * sh - pt + i * dh;
        if (h < 0 || h >= H) {
            for (i64 ow = 0; ow < OW; ow++) dst[ow] = 0;
            continue;
        }
        const scalar *row = src + h * W;
        for (i64 ow = 0; ow < lo; ow++) dst[ow] = 0;
        if (sw == 1) {
            SIMD
            for (i64 ow = lo; ow < hi; ow++) dst[ow] = row[ow + off];
        } else {
            for (i64 ow = lo; ow < hi; ow++) dst[ow] = row[ow * sw + off];
        }
        for (i64 ow = hi; ow < OW; ow++) dst[ow] = 0;
    }
}

EMBER_API void FN(im2col)(const scalar *x, scalar *cols, i64 N, i64 C, i64 H, i64 W, i64 kh,
                          i64 kw, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH,
                          i64 OW, i64 rs, i64 ns, int nt) {
    PARALLEL_FOR(nt)
    for (i64 r = 0; r < C * kh * kw; r++) {
        i64 c = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
        for (i64 n = 0; n < N; n++)
            FN(im2col_tap)(x + (n * C + c) * H * W, cols + r * rs + n * ns, H, W, i, j, sh, sw,
                           pt, pl, dh, dw, OH, OW);
    }
}

/* the taps of kernel row i, column j of channel c, added into the N planes of channel c */
EMBER_INLINE void FN(col2im_tap)(const scalar *restrict src, scalar *restrict plane, i64 H,
                                 i64 W, i64 OH, i64 OW, i64 sh, i64 sw, i64 h0, i64 off, i64 lo,
                                 i64 hi) {
    for (i64 oh = 0; oh < OH; oh++, src += OW) {
        i64 h = oh * sh + h0;
        if (h < 0 || h >= H) continue;
        scalar *row = plane + h * W;
        if (sw == 1) {
            SIMD
            for (i64 ow = lo; ow < hi; ow++) row[ow + off] += src[ow];
        } else {
            for (i64 ow = lo; ow < hi; ow++) row[ow * sw + off] += src[ow];
        }
    }
}

/* Rows as one run (see im2col) for col2im: the run of a tap also covers its padding
   columns, whose columns would land in the neighbouring rows; a mask per kernel column
   (1 inside, 0 in the padding; kw * OH * OW values) turns those into adding +0, which
   changes nothing (a sum that starts at +0 is never -0). */
EMBER_INLINE void FN(col2im_run)(const scalar *restrict src, const scalar *restrict mask,
                                 scalar *restrict plane, i64 t0, i64 t1, i64 shift) {
    SIMD
    for (i64 t = t0; t < t1; t++) plane[t + shift] += mask[t] != 0 ? src[t] : (scalar)0;
}

/* the taps (i, j) of one column row r: its run [*t0, *t1) and the shift from it into a plane;
   0 when nothing of it is inside */
static inline int FN(col2im_tap_run)(i64 H, i64 W, i64 i, i64 j, i64 dh, i64 dw, i64 pt, i64 pl,
                                    i64 OH, i64 OW, i64 *t0, i64 *t1, i64 *shift) {
    i64 off = j * dw - pl, lo, hi, a, b, h0 = i * dh - pt;
    im2col_span(off, 1, W, OW, &lo, &hi);
    FN(row_span)(h0, H, OH, &a, &b);
    *t0 = a * OW + lo;
    *t1 = (b - 1) * OW + hi;
    *shift = h0 * W + off;
    return a < b && lo < hi;
}

/* col2im over runs (flat_rows geometry); mask: kw runs of OH * OW column flags */
static void FN(col2im_flat)(const scalar *cols, scalar *x, const scalar *mask, i64 N, i64 C,
                            i64 H, i64 W, i64 kh, i64 kw, i64 pt, i64 pl, i64 dh, i64 dw,
                            i64 OH, i64 OW, i64 rs, i64 ns, int nt) {
    if (ns < rs && C >= nt) {
        PARALLEL_FOR(nt)
        for (i64 c = 0; c < C; c++)
            for (i64 i = 0; i < kh; i++)
                for (i64 j = 0; j < kw; j++) {
                    i64 r = (c * kh + i) * kw + j, t0, t1, shift;
                    if (!FN(col2im_tap_run)(H, W, i, j, dh, dw, pt, pl, OH, OW, &t0, &t1, &shift))
                        continue;
                    for (i64 n = 0; n < N; n++)
                        FN(col2im_run)(cols + r * rs + n * ns, mask + j * OH * OW,
                                       x + (n * C + c) * H * W, t0, t1, shift);
                }
        return;
    }
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < N * C; item++) {
        i64 n = item / C, c = item % C;
        for (i64 i = 0; i < kh; i++)
            for (i64 j = 0; j < kw; j++) {
                i64 r = (c * kh + i) * kw + j, t0, t1, shift;
                if (FN(col2im_tap_run)(H, W, i, j, dh, dw, pt, pl, OH, OW, &t0, &t1, &shift))
                    FN(col2im_run)(cols + r * rs + n * ns, mask + j * OH * OW, x + item * H * W,
                                   t0, t1, shift);
            }
    }
}

/* x must be zero on entry. Each element sums its taps in (i, j) order whatever the loop
   order: in the (C * kh * kw, N * OH * OW) layout (ns < rs) threads take channels and read
   each column row front to back (few pages at a time); otherwise they take (n, c) planes. */
EMBER_API void FN(col2im)(const scalar *cols, scalar *x, i64 N, i64 C, i64 H, i64 W, i64 kh,
                          i64 kw, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH,
                          i64 OW, i64 rs, i64 ns, int nt) {
    scalar *mask = NULL;
    if (FN(flat_rows)(W, sh, sw, OW))
        mask = (scalar *)malloc((size_t)(kw * OH * OW) * sizeof(scalar)); /* NULL: row by row */
    if (mask) {
        for (i64 j = 0; j < kw; j++) {
            i64 lo, hi;
            im2col_span(j * dw - pl, 1, W, OW, &lo, &hi);
            for (i64 t = 0; t < OH * OW; t++)
                mask[j * OH * OW + t] = (t % OW >= lo && t % OW < hi) ? 1 : 0;
        }
        FN(col2im_flat)(cols, x, mask, N, C, H, W, kh, kw, pt, pl, dh, dw, OH, OW, rs, ns, nt);
        free(mask);
        return;
    }
    if (ns < rs && C >= nt) {
        PARALLEL_FOR(nt)
        for (i64 c = 0; c < C; c++)
            for (i64 i = 0; i < kh; i++)
                for (i64 j = 0; j < kw; j++) {
                    i64 r = (c * kh + i) * kw + j;
                    i64 off = j * dw - pl, lo, hi;
                    im2col_span(off, sw, W, OW, &lo, &hi);
                    for (i64 n = 0; n < N; n++)
                        FN(col2im_tap)(cols + r * rs + n * ns, x + (n * C + c) * H * W, H, W,
                                       OH, OW, sh, sw, i * dh - pt, off, lo, hi);
                }
        return;
    }
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < N * C; item++) {
        i64 n = item / C, c = item % C;
        for (i64 i = 0; i < kh; i++)
            for (i64 j = 0; j < kw; j++) {
                i64 r = (c * kh + i) * kw + j;
                i64 off = j * dw - pl, lo, hi;
                im2col_span(off, sw, W, OW, &lo, &hi);
                FN(col2im_tap)(cols + r * rs + n * ns, x + item * H * W, H, W, OH, OW, sh, sw,
                               i * dh - pt, off, lo, hi);
            }
    }
}

/* out (B, A, P) = src (A, B, P) with its first two axes swapped, plus bias[a] when bias is
   not NULL: a GEMM result in the (O, N, OH * OW) layout made NCHW (and biased) in one pass */
EMBER_API void FN(swap01)(const scalar *restrict src, const scalar *restrict bias,
                          scalar *restrict out, i64 A, i64 B, i64 P, int nt) {
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < A * B; item++) {
        i64 b = item / A, a = item % A;
        const scalar *restrict s = src + (a * B + b) * P;
        scalar *restrict d = out + item * P;
        if (bias) {
            const scalar v = bias[a];
            SIMD
            for (i64 p = 0; p < P; p++) d[p] = s[p] + v;
        } else {
            memcpy(d, s, (size_t)P * sizeof(scalar));
        }
    }
}

/* Direct convolution for a small K = C/G * kh * kw (few taps per output: a GEMM would be
   memory-bound and need a transpose pass after it). Work items are (sample, group, block of
   `rows` output rows); each builds the block's columns (K x L, L = rows * OW, in a buffer of
   its thread sized to stay in cache) with im2col_tap, then uses them at once: */

/* the columns of item (n, q, block starting at output row r0) into buf (K x L) */
static void FN(direct_cols)(const scalar *x, scalar *buf, i64 n, i64 q, i64 r0, i64 L, i64 C,
                            i64 G, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt, i64 pl,
                            i64 dh, i64 dw, i64 rows, i64 OW) {
    i64 cg = C / G;
    for (i64 r = 0; r < cg * kh * kw; r++) {
        i64 c = q * cg + r / (kh * kw), i = (r / kw) % kh, j = r % kw;
        FN(im2col_tap)(x + (n * C + c) * H * W, buf + r * L, H, W, i, j, sh, sw, pt - r0 * sh,
                       pl, dh, dw, rows, OW);
    }
}

typedef scalar FN(dvec) __attribute__((vector_size(32))); /* GCC/Clang vector extension */
#define DVL ((i64)(32 / sizeof(scalar)))                      /* its lanes */

EMBER_INLINE FN(dvec) FN(dld)(const scalar *p) { FN(dvec) v; memcpy(&v, p, sizeof v); return v; }
EMBER_INLINE void FN(dst)(scalar *p, FN(dvec) v) { memcpy(p, &v, sizeof v); }

/* nq <= 4 output channels of one item, from its columns cols (K x L): y[q][t] = sum_r
   w[q][r] * cols[r][t] + bias[q], r in order; 4 channels x 2 vectors of positions in
   registers (8 independent sums; the channels past nq repeat the last one, unstored) */
EMBER_INLINE void FN(direct_four)(const scalar *restrict cols, const scalar *restrict w,
                                  const scalar *bias, scalar *restrict y, i64 ys, i64 K, i64 L,
                                  int nq, int relu) {
    const scalar *w0 = w, *w1 = w + (nq > 1) * K, *w2 = w + (nq > 2) * 2 * K;
    const scalar *w3 = w + (nq > 3) * 3 * K;
    scalar b[4];
    for (int q = 0; q < 4; q++) b[q] = bias ? bias[q < nq ? q : 0] : 0;
    i64 t = 0;
    for (; t + 2 * DVL <= L; t += 2 * DVL) {
        FN(dvec) a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0};
        FN(dvec) a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
        for (i64 r = 0; r < K; r++) {
            FN(dvec) c0 = FN(dld)(cols + r * L + t), c1 = FN(dld)(cols + r * L + t + DVL);
            a00 += w0[r] * c0, a01 += w0[r] * c1;
            a10 += w1[r] * c0, a11 += w1[r] * c1;
            a20 += w2[r] * c0, a21 += w2[r] * c1;
            a30 += w3[r] * c0, a31 += w3[r] * c1;
        }
        FN(dvec) lo[4] = {a00, a10, a20, a30}, hi[4] = {a01, a11, a21, a31};
        for (int q = 0; q < nq; q++) {
            FN(dvec) u = lo[q] + b[q], v = hi[q] + b[q];
            if (relu) {
                u = EMBER_RELU_VEC(FN(dvec), u);
                v = EMBER_RELU_VEC(FN(dvec), v);
            }
            FN(dst)(y + q * ys + t, u);
            FN(dst)(y + q * ys + t + DVL, v);
        }
    }
    for (int q = 0; q < nq; q++)
        for (i64 u = t; u < L; u++) {
            scalar acc = 0;
            for (i64 r = 0; r < K; r++) acc += w[q * K + r] * cols[r * L + u];
            acc += b[q];
            y[q * ys + u] = relu ? EMBER_RELU(acc) : acc;
        }
}

/* y (N, O, OH, OW) = conv(x (N, C, H, W), w (O, C/G, kh, kw)) + bias (O) or NULL, then a
   ReLU when relu is not 0 */
EMBER_API int FN(conv_direct)(const scalar *x, const scalar *w, const scalar *bias, scalar *y,
                              i64 N, i64 C, i64 H, i64 W, i64 O, i64 G, i64 kh, i64 kw, i64 sh,
                              i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, i64 rows,
                              int relu, int nt) {
    i64 K = C / G * kh * kw, og = O / G, blocks = (OH + rows - 1) / rows, L0 = rows * OW;
    scalar *bufs = (scalar *)malloc((size_t)(nt * K * L0) * sizeof(scalar));
    if (!bufs) return -1;
    PARALLEL_FOR(nt)
    for (i64 item = 0; item < N * G * blocks; item++) {
        i64 n = item / (G * blocks), q = (item / blocks) % G, r0 = (item % blocks) * rows;
        i64 nr = OH - r0 < rows ? OH - r0 : rows, L = nr * OW;
        scalar *buf = bufs + THREAD_ID() * K * L0;
        FN(direct_cols)(x, buf, n, q, r0, L, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw, nr, OW);
        for (i64 o = q * og; o < (q + 1) * og; o += 4) {
            int nq = (int)((q + 1) * og - o < 4 ? (q + 1) * og - o : 4);
            FN(direct_four)(buf, w + o * K, bias ? bias + o : NULL,
                            y + ((n * O + o) * OH + r0) * OW, OH * OW, K, L, nq, relu);
        }
    }
    free(bufs);
    return 0;
}

/* the lanes of v added in order */
EMBER_INLINE scalar FN(dsum)(FN(dvec) v) {
    scalar s = 0;
    for (i64 l = 0; l < DVL; l++) s += v[l];
    return s;
}

#define WG_CHUNK 128 /* positions per pass over a block's columns (they stay in L1) */

/* v[a * K4 + r0 + e] += g_a[t] * cols[r0 + e][t] (lane-wise) over the whole vectors of
   t in [t0, t1), for the 2 gradient rows g_a (g1 may repeat g0) and the 4 column rows from
   r0; 8 vector sums in registers */
EMBER_INLINE void FN(wgrad_tile)(const scalar *restrict g0, const scalar *restrict g1,
                                 const scalar *restrict cols, i64 L, i64 r0, i64 t0, i64 t1,
                                 FN(dvec) *restrict v0, FN(dvec) *restrict v1) {
    FN(dvec) s00 = v0[r0], s01 = v0[r0 + 1], s02 = v0[r0 + 2], s03 = v0[r0 + 3];
    FN(dvec) s10 = v1[r0], s11 = v1[r0 + 1], s12 = v1[r0 + 2], s13 = v1[r0 + 3];
    const scalar *c0 = cols + r0 * L, *c1 = c0 + L, *c2 = c1 + L, *c3 = c2 + L;
    for (i64 t = t0; t < t1; t += DVL) {
        FN(dvec) u = FN(dld)(g0 + t), w = FN(dld)(g1 + t);
        FN(dvec) e0 = FN(dld)(c0 + t), e1 = FN(dld)(c1 + t), e2 = FN(dld)(c2 + t);
        FN(dvec) e3 = FN(dld)(c3 + t);
        s00 += u * e0, s01 += u * e1, s02 += u * e2, s03 += u * e3;
        s10 += w * e0, s11 += w * e1, s12 += w * e2, s13 += w * e3;
    }
    v0[r0] = s00, v0[r0 + 1] = s01, v0[r0 + 2] = s02, v0[r0 + 3] = s03;
    v1[r0] = s10, v1[r0 + 1] = s11, v1[r0 + 2] = s12, v1[r0 + 3] = s13;
}

/* gw (O, C/G * kh * kw) = sum over samples and positions of g (N, O, OH, OW) times the
   columns of x, and gb (O) = the sums of g (when not NULL). Per item, the products go to
   vector sums (K4 + 1 vectors per output channel: the taps, padded to whole tiles of 4,
   then the bias), WG_CHUNK positions at a time; after each item those are added, lanes in
   order, into the thread's double sums, which are added in thread order at the end (the
   same bits for the same nt). */
EMBER_API int FN(conv_weight_grad_direct)(const scalar *x, const scalar *g, scalar *gw,
                                          scalar *gb, i64 N, i64 C, i64 H, i64 W, i64 O, i64 G,
                                          i64 kh, i64 kw, i64 sh, i64 sw, i64 pt, i64 pl,
                                          i64 dh, i64 dw, i64 OH, i64 OW, i64 rows, int nt) {
    i64 K = C / G * kh * kw, og = O / G, blocks = (OH + rows - 1) / rows, L0 = rows * OW;
    i64 K4 = (K + 3) / 4 * 4, V = K4 + 1; /* vector sums per output channel */
    i64 items = N * G * blocks, S = O * K + O; /* one thread's double sums: gw, then gb */
    if (nt > items) nt = (int)items;
    if (nt < 1) nt = 1;
    scalar *bufs = (scalar *)calloc((size_t)(nt * K4 * L0), sizeof(scalar));
    /* vector sums, aligned for vector loads and stores (sizeof(FN(dvec)) is 32) */
    FN(dvec) *vecs = (FN(dvec) *)aligned_alloc(32, (size_t)(nt * (og + 1) * V) * 32);
    double *sums = (double *)calloc((size_t)(nt * S), sizeof(double));
    if (!bufs || !vecs || !sums) {
        free(bufs);
        free(vecs);
        free(sums);
        return -1;
    }
    PARALLEL_FOR(nt)
    for (int tid = 0; tid < nt; tid++) { /* contiguous item ranges: a fixed split */
        i64 a = items * tid / nt, b = items * (tid + 1) / nt;
        scalar *buf = bufs + tid * K4 * L0;
        FN(dvec) *vs = vecs + tid * (og + 1) * V; /* og channels, and one to throw away */
        double *acc = sums + tid * S;
        for (i64 item = a; item < b; item++) {
            i64 n = item / (G * blocks), q = (item / blocks) % G, r0 = (item % blocks) * rows;
            i64 nr = OH - r0 < rows ? OH - r0 : rows, L = nr * OW, Lv = L - L % DVL;
            FN(direct_cols)(x, buf, n, q, r0, L, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw,
                            nr, OW);
            /* column rows K..K4 hold leftovers: they are read, their sums dropped */
            memset(vs, 0, (size_t)((og + 1) * V) * sizeof(FN(dvec)));
            const scalar *gq = g + ((n * O + q * og) * OH + r0) * OW; /* channel q * og */
            for (i64 t0 = 0; t0 < Lv; t0 += WG_CHUNK) {
                i64 t1 = t0 + WG_CHUNK < Lv ? t0 + WG_CHUNK : Lv;
                for (i64 o = 0; o < og; o += 2) {
                    const scalar *g0 = gq + o * OH * OW;
                    const scalar *g1 = o + 1 < og ? g0 + OH * OW : g0;
                    FN(dvec) *v0 = vs + o * V, *v1 = o + 1 < og ? v0 + V : vs + og * V;
                    for (i64 r = 0; r < K4; r += 4)
                        FN(wgrad_tile)(g0, g1, buf, L, r, t0, t1, v0, v1);
                    FN(dvec) b0 = v0[K4], b1 = v1[K4];
                    for (i64 t = t0; t < t1; t += DVL) b0 += FN(dld)(g0 + t), b1 += FN(dld)(g1 + t);
                    v0[K4] = b0, v1[K4] = b1;
                }
            }
            for (i64 o = 0; o < og; o++) {
                const scalar *gr = gq + o * OH * OW;
                double *ac = acc + (q * og + o) * K;
                for (i64 r = 0; r < K; r++) {
                    scalar s = FN(dsum)(vs[o * V + r]);
                    for (i64 t = Lv; t < L; t++) s += gr[t] * buf[r * L + t];
                    ac[r] += s;
                }
                scalar s = FN(dsum)(vs[o * V + K4]);
                for (i64 t = Lv; t < L; t++) s += gr[t];
                acc[O * K + q * og + o] += s;
            }
        }
    }
    for (i64 e = 0; e < S; e++) {
        double s = 0;
        for (int tid = 0; tid < nt; tid++) s += sums[tid * S + e];
        if (e < O * K) gw[e] = (scalar)s;
        else if (gb) gb[e - O * K] = (scalar)s;
    }
    free(bufs);
    free(vecs);
    free(sums);
    return 0;
}
"""

UNIT = Unit(
    name="im2col",
    functions=(
        "void im2col(const scalar *x, scalar *cols, i64 N, i64 C, i64 H, i64 W, i64 kh, i64 kw,"
        " i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, i64 rs, i64 ns, int nt)",
        "void col2im(const scalar *cols, scalar *x, i64 N, i64 C, i64 H, i64 W, i64 kh, i64 kw,"
        " i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, i64 rs, i64 ns, int nt)",
        "void swap01(const scalar *src, const scalar *bias, scalar *out, i64 A, i64 B, i64 P,"
        " int nt)",
        "int conv_direct(const scalar *x, const scalar *w, const scalar *bias, scalar *y, i64 N,"
        " i64 C, i64 H, i64 W, i64 O, i64 G, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt, i64 pl,"
        " i64 dh, i64 dw, i64 OH, i64 OW, i64 rows, int relu, int nt)",
        "int conv_weight_grad_direct(const scalar *x, const scalar *g, scalar *gw, scalar *gb,"
        " i64 N, i64 C, i64 H, i64 W, i64 O, i64 G, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt,"
        " i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, i64 rows, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

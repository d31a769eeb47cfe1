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

EMBER_API void FN(im2col)(const scalar *x, scalar *cols, i64 N, i64 C, i64 H, i64 W, i64 kh,
                          i64 kw, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH,
                          i64 OW, i64 rs, i64 ns, int nt) {
    PARALLEL_FOR(nt)
    for (i64 r = 0; r < C * kh * kw; r++) {
        i64 c = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
        i64 off = j * dw - pl, lo, hi;
        im2col_span(off, sw, W, OW, &lo, &hi);
        if (FN(flat_rows)(W, sh, sw, OW)) {
            i64 h0 = i * dh - pt, a, b;
            FN(row_span)(h0, H, OH, &a, &b);
            for (i64 n = 0; n < N; n++) {
                scalar *restrict dst = cols + r * rs + n * ns;
                const scalar *restrict src = x + (n * C + c) * H * W;
                const i64 shift = h0 * W + off; /* from dst to src within the run */
                for (i64 t = 0; t < a * OW; t++) dst[t] = 0;
                for (i64 t = b * OW; t < OH * OW; t++) dst[t] = 0;
                if (a >= b || lo >= hi) {
                    for (i64 t = a * OW; t < b * OW; t++) dst[t] = 0;
                    continue;
                }
                i64 t1 = (b - 1) * OW + hi;
                SIMD
                for (i64 t = a * OW + lo; t < t1; t++) dst[t] = src[t + shift];
                for (i64 oh = a; oh < b; oh++) { /* the padding columns */
                    for (i64 ow = 0; ow < lo; ow++) dst[oh * OW + ow] = 0;
                    for (i64 ow = hi; ow < OW; ow++) dst[oh * OW + ow] = 0;
                }
            }
            continue;
        }
        for (i64 n = 0; n < N; n++) {
            scalar *dst = cols + r * rs + n * ns;
            const scalar *src = x + (n * C + c) * H * W;
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
    ),
    body=BODY,
    shared=SHARED,
)

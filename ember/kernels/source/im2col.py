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
miss each) or over ``(n, c)`` planes (the second), so threads never write the same element. ``swap01`` turns the ``(O, N, OH * OW)`` result of the large GEMM
into NCHW, adding the bias in the same pass.

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
EMBER_API void FN(im2col)(const scalar *x, scalar *cols, i64 N, i64 C, i64 H, i64 W, i64 kh,
                          i64 kw, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH,
                          i64 OW, i64 rs, i64 ns, int nt) {
    PARALLEL_FOR(nt)
    for (i64 r = 0; r < C * kh * kw; r++) {
        i64 c = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
        i64 off = j * dw - pl, lo, hi;
        im2col_span(off, sw, W, OW, &lo, &hi);
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

/* x must be zero on entry. Each element sums its taps in (i, j) order whatever the loop
   order: in the (C * kh * kw, N * OH * OW) layout (ns < rs) threads take channels and read
   each column row front to back (few pages at a time); otherwise they take (n, c) planes. */
EMBER_API void FN(col2im)(const scalar *cols, scalar *x, i64 N, i64 C, i64 H, i64 W, i64 kh,
                          i64 kw, i64 sh, i64 sw, i64 pt, i64 pl, i64 dh, i64 dw, i64 OH,
                          i64 OW, i64 rs, i64 ns, int nt) {
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

"""The building blocks of the attention kernels (:mod:`.attention`): vectors, the
register-blocked matrix product, packing with the finiteness check, the softmax of a block
of rows and its exponential, the softmax's backward.

* ``sdpa_mm``: ``C (+)= alpha A B`` for up to 4 rows of ``A`` at a time, by register
  blocks of 4 rows by 2 vectors of columns (or 1 vector, for a last narrow block)
  accumulated in registers over the inner dim (GCC and Clang vector extensions, so no
  partial sum goes through memory). A vector is 64 bytes where the compiler targets
  AVX-512, else 32 (``SDPA_VB``); the exponential runs on the same vectors. W3's attention
  (32 x 4 heads of 64 x 32, causal) took 316 us forward and 1.70 ms forward and backward
  (eager) with 64-byte vectors, 352-374 us and 1.89 ms with 32-byte ones.
* ``sdpa_pack`` / ``sdpa_pack_t``: a strided operand copied (times ``alpha``) or transposed
  into contiguous, zero-padded scratch. Both return the sum of ``x - x`` over what they
  copied (0 when every entry is finite, NaN otherwise), computed on the vectors as they pass,
  so that no separate scan decides whether the causal columns may be skipped. The transpose
  of float rows works on 8 x 8 tiles with vector shuffles.
* ``sdpa_exp_rows``: the masked exponentials of a block of score rows, ``exp(s - max)`` on
  whole vectors, with each row's ``1 / sum``. The exponential (``sdpa_expv``, float) is
  ``ember_expf``'s (Cephes' reduction and polynomial) for arguments ``t <= 0`` only, which is
  all a softmax sees: ``t < -104`` (``-inf`` included) gives an exact 0 without going
  through denormal arithmetic (which costs a microcode assist per vector on some CPUs), NaN
  stays NaN (bit for bit ``ember_expf`` there). float64 calls libm's ``exp``.
* ``sdpa_ds_rows``: the backward's ``p = e / sum`` and ``ds = (dp - sum(dp p)) p`` of a
  block of rows, in place.

Example:
    >>> "sdpa_mm" in HELPERS and "sdpa_expv" in SHARED
    True
"""

from __future__ import annotations

__all__ = ["SHARED", "HELPERS"]

SHARED = r"""
/* a parallel region over nt threads (each allocates its scratch once) and its static loop */
#ifdef _OPENMP
#define SDPA_PARALLEL(nt) EMBER_PRAGMA(omp parallel num_threads(nt) if(nt > 1))
#define SDPA_FOR EMBER_PRAGMA(omp for schedule(static))
#else
#define SDPA_PARALLEL(nt)
#define SDPA_FOR
#endif
#if defined(__AVX512F__)
#define SDPA_VB 64 /* bytes of one vector: 16 floats or 8 doubles (GCC/Clang vector extension) */
#else
#define SDPA_VB 32 /* 8 floats or 4 doubles */
#endif
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
/* the helpers both kernels call: compiled once, as they are, whichever kernels a library
   exports (no inlining, cloning or other interprocedural change), so that the forward and
   the backward may be built as two libraries with the same machine code as the whole unit */
#if defined(__GNUC__) && !defined(__clang__)
#define SDPA_HELPER static __attribute__((noipa))
#else
#define SDPA_HELPER static __attribute__((noinline))
#endif
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

typedef float sdpa_v8f __attribute__((vector_size(32)));
typedef int32_t sdpa_v8i __attribute__((vector_size(32)));
typedef uint32_t sdpa_v8u __attribute__((vector_size(32)));
typedef float sdpa_vf __attribute__((vector_size(SDPA_VB))); /* the kernels' float vector */
typedef int32_t sdpa_vi __attribute__((vector_size(SDPA_VB)));
typedef uint32_t sdpa_vu __attribute__((vector_size(SDPA_VB)));

/* exp(t) for t <= 0, -inf or NaN (a vector of floats, 8 or 16): ember_expf's reduction and polynomial; t < -104
   (where exp rounds to 0) gives an exact 0 without denormal arithmetic; NaN stays NaN */
EMBER_INLINE sdpa_vf sdpa_expv(sdpa_vf t) {
    sdpa_vi z = t < -104.0f;
    sdpa_vf x = (sdpa_vf)((sdpa_vi)t & ~z);
    sdpa_vf s = x * 1.44269504088896341f + 12582912.0f; /* 1.5 2^23: n in the low bits */
    sdpa_vf nf = s - 12582912.0f;
    sdpa_vf r = x - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    sdpa_vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    sdpa_vf y = (p * (r * r) + r + 1.0f) * 0x1p-64f; /* exact */
    /* times 2^(n + 64), normal for -150 <= n <= 0: a denormal result rounds once, here
       (NaN: any bits; y is NaN anyway) */
    sdpa_vu e = ((sdpa_vu)s + (64u + 127u - 0x4B400000u)) << 23;
    return (sdpa_vf)((sdpa_vi)(y * (sdpa_vf)e) & ~z);
}

/* 8 x 8 tiles of floats transposed by vector shuffles (unpack, shuffle, swap halves) */
#if defined(__clang__)
#define SDPA_SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SDPA_SHUF(a, b, ...) __builtin_shuffle(a, b, (sdpa_v8i){__VA_ARGS__})
#endif
EMBER_INLINE sdpa_v8f sdpa_ld8(const float *p) {
    sdpa_v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
EMBER_INLINE void sdpa_st8(float *p, sdpa_v8f v) { memcpy(p, &v, sizeof v); }
/* y[u ld .. u ld + 8) = x[0 .. 8 rows of stride s0) column u, for u < 8; bad += x - x */
EMBER_INLINE void sdpa_tile8(const float *x, i64 s0, float *y, i64 ld, sdpa_v8f *bad) {
    sdpa_v8f r0 = sdpa_ld8(x), r1 = sdpa_ld8(x + s0), r2 = sdpa_ld8(x + 2 * s0);
    sdpa_v8f r3 = sdpa_ld8(x + 3 * s0), r4 = sdpa_ld8(x + 4 * s0), r5 = sdpa_ld8(x + 5 * s0);
    sdpa_v8f r6 = sdpa_ld8(x + 6 * s0), r7 = sdpa_ld8(x + 7 * s0);
    *bad += ((r0 - r0) + (r1 - r1)) + ((r2 - r2) + (r3 - r3)) + ((r4 - r4) + (r5 - r5)) +
            ((r6 - r6) + (r7 - r7));
    sdpa_v8f t0 = SDPA_SHUF(r0, r1, 0, 8, 1, 9, 4, 12, 5, 13);
    sdpa_v8f t1 = SDPA_SHUF(r0, r1, 2, 10, 3, 11, 6, 14, 7, 15);
    sdpa_v8f t2 = SDPA_SHUF(r2, r3, 0, 8, 1, 9, 4, 12, 5, 13);
    sdpa_v8f t3 = SDPA_SHUF(r2, r3, 2, 10, 3, 11, 6, 14, 7, 15);
    sdpa_v8f t4 = SDPA_SHUF(r4, r5, 0, 8, 1, 9, 4, 12, 5, 13);
    sdpa_v8f t5 = SDPA_SHUF(r4, r5, 2, 10, 3, 11, 6, 14, 7, 15);
    sdpa_v8f t6 = SDPA_SHUF(r6, r7, 0, 8, 1, 9, 4, 12, 5, 13);
    sdpa_v8f t7 = SDPA_SHUF(r6, r7, 2, 10, 3, 11, 6, 14, 7, 15);
    sdpa_v8f u0 = SDPA_SHUF(t0, t2, 0, 1, 8, 9, 4, 5, 12, 13);
    sdpa_v8f u1 = SDPA_SHUF(t0, t2, 2, 3, 10, 11, 6, 7, 14, 15);
    sdpa_v8f u2 = SDPA_SHUF(t1, t3, 0, 1, 8, 9, 4, 5, 12, 13);
    sdpa_v8f u3 = SDPA_SHUF(t1, t3, 2, 3, 10, 11, 6, 7, 14, 15);
    sdpa_v8f u4 = SDPA_SHUF(t4, t6, 0, 1, 8, 9, 4, 5, 12, 13);
    sdpa_v8f u5 = SDPA_SHUF(t4, t6, 2, 3, 10, 11, 6, 7, 14, 15);
    sdpa_v8f u6 = SDPA_SHUF(t5, t7, 0, 1, 8, 9, 4, 5, 12, 13);
    sdpa_v8f u7 = SDPA_SHUF(t5, t7, 2, 3, 10, 11, 6, 7, 14, 15);
    sdpa_st8(y, SDPA_SHUF(u0, u4, 0, 1, 2, 3, 8, 9, 10, 11));
    sdpa_st8(y + ld, SDPA_SHUF(u1, u5, 0, 1, 2, 3, 8, 9, 10, 11));
    sdpa_st8(y + 2 * ld, SDPA_SHUF(u2, u6, 0, 1, 2, 3, 8, 9, 10, 11));
    sdpa_st8(y + 3 * ld, SDPA_SHUF(u3, u7, 0, 1, 2, 3, 8, 9, 10, 11));
    sdpa_st8(y + 4 * ld, SDPA_SHUF(u0, u4, 4, 5, 6, 7, 12, 13, 14, 15));
    sdpa_st8(y + 5 * ld, SDPA_SHUF(u1, u5, 4, 5, 6, 7, 12, 13, 14, 15));
    sdpa_st8(y + 6 * ld, SDPA_SHUF(u2, u6, 4, 5, 6, 7, 12, 13, 14, 15));
    sdpa_st8(y + 7 * ld, SDPA_SHUF(u3, u7, 4, 5, 6, 7, 12, 13, 14, 15));
}
"""

HELPERS = r"""
typedef scalar FN(vec) __attribute__((vector_size(SDPA_VB)));
typedef __typeof__((FN(vec)){0} < (FN(vec)){0}) FN(mvec); /* lanes of all ones or zeros */
#define VL ((i64)(SDPA_VB / sizeof(scalar))) /* lanes of a vector */
#define NC (2 * VL)                           /* columns of a register block */

EMBER_INLINE FN(vec) FN(vld)(const scalar *p) { FN(vec) v; memcpy(&v, p, sizeof v); return v; }
EMBER_INLINE void FN(vst)(scalar *p, FN(vec) v) { memcpy(p, &v, sizeof v); }
EMBER_INLINE FN(vec) FN(vset)(scalar x) { return (FN(vec)){0} + x; }
/* m ? a : b, lane by lane */
EMBER_INLINE FN(vec) FN(vsel)(FN(mvec) m, FN(vec) a, FN(vec) b) {
    return (FN(vec))(((FN(mvec))a & m) | ((FN(mvec))b & ~m));
}
/* the larger lane (NaN in x is passed over, as by the scalar ``x > m ? x : m``) */
EMBER_INLINE FN(vec) FN(vmax)(FN(vec) m, FN(vec) x) { return FN(vsel)(x > m, x, m); }
EMBER_INLINE FN(vec) FN(viota)(void) {
    scalar t[VL];
    for (i64 l = 0; l < VL; l++) t[l] = (scalar)l;
    return FN(vld)(t);
}
/* the sum and the largest of the lanes, as trees (latency log2 VL, not VL) */
EMBER_INLINE scalar FN(hsum)(FN(vec) v) {
    scalar t[VL];
    FN(vst)(t, v);
    for (i64 w = VL / 2; w > 0; w /= 2)
        for (i64 l = 0; l < w; l++) t[l] += t[l + w];
    return t[0];
}
EMBER_INLINE scalar FN(hmax)(FN(vec) v) {
    scalar t[VL];
    FN(vst)(t, v);
    for (i64 w = VL / 2; w > 0; w /= 2)
        for (i64 l = 0; l < w; l++) t[l] = t[l + w] > t[l] ? t[l + w] : t[l];
    return t[0];
}
/* exp of each lane of t <= 0 (or -inf, NaN) */
EMBER_INLINE FN(vec) FN(vexp)(FN(vec) t) {
    if (sizeof(scalar) == 4) {
        sdpa_vf x;
        memcpy(&x, &t, sizeof x);
        x = sdpa_expv(x);
        memcpy(&t, &x, sizeof x);
        return t;
    }
    scalar a[VL];
    FN(vst)(a, t);
    for (i64 l = 0; l < VL; l++) a[l] = EXP(a[l]);
    return FN(vld)(a);
}

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
    if (w == VL) {
        c0 = alpha * c0;
        FN(vst)(c, acc ? FN(vld)(c) + c0 : c0);
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
   n < N: register blocks of SDPA_R rows by NC columns (accumulated in registers over k; a
   last block of at most VL columns by SDPA_R rows by VL, in two chains over k); B must be
   readable up to N rounded up to NC columns (VL when the last block has at most VL) */
SDPA_HELPER void FN(sdpa_mm)(const scalar *restrict A, i64 sam, i64 sak, const scalar *restrict B,
                        i64 ldb, scalar *restrict C, i64 ldc, i64 rows, i64 N, i64 k0, i64 k1,
                        scalar alpha, int acc) {
    for (i64 n0 = 0; n0 < N; n0 += NC) {
        i64 w = N - n0 < NC ? N - n0 : NC;
        const scalar *b = B + n0;
        if (rows == SDPA_R && w <= VL) { /* one vector of columns: two chains over k */
            FN(vec) c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, d0 = {0}, d1 = {0}, d2 = {0}, d3 = {0};
            i64 k = k0;
            for (; k + 1 < k1; k += 2) {
                FN(vec) b0 = FN(vld)(b + k * ldb), b1 = FN(vld)(b + (k + 1) * ldb);
                SDPA_IN_REG(b0);
                SDPA_IN_REG(b1);
                const scalar *a = A + k * sak;
                c0 += a[0] * b0;
                c1 += a[sam] * b0;
                c2 += a[2 * sam] * b0;
                c3 += a[3 * sam] * b0;
                d0 += a[sak] * b1;
                d1 += a[sam + sak] * b1;
                d2 += a[2 * sam + sak] * b1;
                d3 += a[3 * sam + sak] * b1;
            }
            if (k < k1) {
                FN(vec) b0 = FN(vld)(b + k * ldb);
                const scalar *a = A + k * sak;
                c0 += a[0] * b0;
                c1 += a[sam] * b0;
                c2 += a[2 * sam] * b0;
                c3 += a[3 * sam] * b0;
            }
            FN(vec) z = {0};
            FN(sdpa_put)(C + n0, c0 + d0, z, w, alpha, acc);
            FN(sdpa_put)(C + ldc + n0, c1 + d1, z, w, alpha, acc);
            FN(sdpa_put)(C + 2 * ldc + n0, c2 + d2, z, w, alpha, acc);
            FN(sdpa_put)(C + 3 * ldc + n0, c3 + d3, z, w, alpha, acc);
        } else if (rows == SDPA_R) {
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

/* x (rows, cols) read through strides (s0, s1), times alpha, into y (rows, ld) with the
   columns cols..ld zeroed; returns the sum of y - y over the copied entries (0 when all are
   finite, NaN otherwise) */
SDPA_HELPER scalar FN(sdpa_pack)(const scalar *x, i64 s0, i64 s1, i64 rows, i64 cols, scalar alpha,
                            scalar *restrict y, i64 ld) {
    FN(vec) bad = {0};
    scalar sbad = 0;
    for (i64 r = 0; r < rows; r++) {
        const scalar *xr = x + r * s0;
        scalar *yr = y + r * ld;
        i64 c = 0;
        if (s1 == 1) /* contiguous rows: whole vectors */
            for (; c + VL <= cols; c += VL) {
                FN(vec) u = alpha * FN(vld)(xr + c);
                bad += u - u;
                FN(vst)(yr + c, u);
            }
        for (; c < cols; c++) {
            scalar u = alpha * xr[c * s1];
            sbad += u - u;
            yr[c] = u;
        }
        for (; c < ld; c++) yr[c] = 0;
    }
    return sbad + FN(hsum)(bad);
}

/* x (rows, cols) read through strides (s0, s1), transposed into y (cols, ld) with the
   columns rows..ld zeroed; returns the sum of x - x as sdpa_pack does. Float rows go by
   8 x 8 tiles (8 row vectors in, 8 column vectors out) */
SDPA_HELPER scalar FN(sdpa_pack_t)(const scalar *x, i64 s0, i64 s1, i64 rows, i64 cols,
                              scalar *restrict y, i64 ld) {
    scalar sbad = 0;
    i64 r0 = 0;
    if (sizeof(scalar) == 4 && s1 == 1 && cols >= 8) {
        sdpa_v8f bad = {0};
        for (; r0 + 8 <= rows; r0 += 8) {
            i64 c = 0;
            for (; c + 8 <= cols; c += 8)
                sdpa_tile8((const float *)x + r0 * s0 + c, s0, (float *)y + c * ld + r0, ld, &bad);
            for (; c < cols; c++)
                for (i64 u = 0; u < 8; u++) {
                    scalar e = x[(r0 + u) * s0 + c];
                    sbad += e - e;
                    y[c * ld + r0 + u] = e;
                }
        }
        for (int l = 0; l < 8; l++) sbad += bad[l];
    }
    for (i64 r = r0; r < rows; r++)
        for (i64 c = 0; c < cols; c++) {
            scalar e = x[r * s0 + c * s1];
            sbad += e - e;
            y[c * ld + r] = e;
        }
    for (i64 c = 0; c < cols; c++)
        for (i64 r = rows; r < ld; r++) y[c * ld + r] = 0;
    return sbad;
}

/* lanes at or after j0 of row i of a score block, masked: with cz the causal ones j > i get
   -inf added (NaN and inf spread as through the composite's mask), those j >= n become -inf */
EMBER_INLINE FN(vec) FN(sdpa_masked)(FN(vec) x, i64 j0, i64 i, i64 n, int cz) {
    FN(vec) jj = FN(viota)() + (scalar)j0, ninf = FN(vset)(-INFINITY);
    if (cz) x = x + FN(vsel)(jj > FN(vset)((scalar)i), ninf, FN(vset)(0));
    return FN(vsel)(jj >= FN(vset)((scalar)n), ninf, x);
}

/* sdpa_exp_rows for R rows at once (R a constant when inlined: the rows' chains of dependent
   operations interleave, and one loop runs over all of them) */
EMBER_INLINE void FN(sdpa_exp_block)(scalar *restrict P, i64 ld, i64 i0, i64 R, i64 S, i64 nv,
                                     int skip, int cz, int safe, scalar *inv) {
    FN(vec) mv[SDPA_R], sv[SDPA_R], mr[SDPA_R];
    i64 n[SDPA_R], jb = nv;
    for (i64 r = 0; r < R; r++) {
        i64 i = i0 + r;
        n[r] = skip && i + 1 < S ? i + 1 : S;
        i64 lo = cz && i + 1 < n[r] ? i + 1 : n[r]; /* the first lane that needs a mask */
        jb = lo / VL * VL < jb ? lo / VL * VL : jb;
        mv[r] = FN(vset)(-INFINITY);
        sv[r] = FN(vset)(0);
    }
    i64 j0 = 0;
    for (; j0 < jb; j0 += VL)
        for (i64 r = 0; r < R; r++) mv[r] = FN(vmax)(mv[r], FN(vld)(P + r * ld + j0));
    for (; j0 < nv; j0 += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vec) x = FN(sdpa_masked)(FN(vld)(P + r * ld + j0), j0, i0 + r, n[r], cz);
            mv[r] = FN(vmax)(mv[r], x);
        }
    for (i64 r = 0; r < R; r++) {
        scalar m = FN(hmax)(mv[r]);
        mr[r] = FN(vset)(safe && m == -INFINITY ? 0 : m);
    }
    for (j0 = 0; j0 < jb; j0 += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vec) e = FN(vexp)(FN(vld)(P + r * ld + j0) - mr[r]);
            sv[r] += e;
            FN(vst)(P + r * ld + j0, e);
        }
    for (; j0 < nv; j0 += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vec) x = FN(sdpa_masked)(FN(vld)(P + r * ld + j0), j0, i0 + r, n[r], cz);
            FN(vec) e = FN(vexp)(x - mr[r]);
            sv[r] += e;
            FN(vst)(P + r * ld + j0, e);
        }
    for (i64 r = 0; r < R; r++) {
        scalar s = FN(hsum)(sv[r]);
        inv[r] = LIT(1.0) / (safe && s == 0 ? 1 : s);
    }
}

/* the masks and exponentials of the score rows i0 .. i0 + rows - 1 (P, stride ld), in place
   over whole vectors j < nv (returned): row i's entries j >= n (n = S, or i + 1 when
   skipping the causal columns) become -inf, and with cz the causal ones j > i get -inf added
   first; then exp(p - max), with inv[r] = 1 / sum. With safe, a fully masked row gives zeros
   (max 0, sum 1) */
SDPA_HELPER i64 FN(sdpa_exp_rows)(scalar *restrict P, i64 ld, i64 i0, i64 rows, i64 S, int skip,
                             int cz, int safe, scalar *inv) {
    i64 last = i0 + rows - 1, nv = sdpa_up(skip && last + 1 < S ? last + 1 : S, VL);
    if (rows == SDPA_R)
        FN(sdpa_exp_block)(P, ld, i0, SDPA_R, S, nv, skip, cz, safe, inv);
    else
        for (i64 r = 0; r < rows; r++)
            FN(sdpa_exp_block)(P + r * ld, ld, i0 + r, 1, S, nv, skip, cz, safe, inv + r);
    return nv;
}

/* sdpa_ds_rows for R rows at once (R a constant when inlined) */
EMBER_INLINE void FN(sdpa_ds_block)(scalar *restrict P, scalar *restrict D, i64 ld, i64 i0,
                                    i64 R, i64 S, i64 nv, int skip, const scalar *inv) {
    FN(vec) ir[SDPA_R], dpp[SDPA_R], d[SDPA_R], zero = {0};
    i64 n[SDPA_R], jb = nv, j = 0;
    for (i64 r = 0; r < R; r++) {
        i64 i = i0 + r;
        n[r] = skip && i + 1 < S ? i + 1 : S;
        jb = n[r] / VL * VL < jb ? n[r] / VL * VL : jb;
        ir[r] = FN(vset)(inv[r]);
        dpp[r] = zero;
    }
    for (; j < jb; j += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vec) pj = FN(vld)(P + r * ld + j) * ir[r];
            FN(vst)(P + r * ld + j, pj);
            dpp[r] += FN(vld)(D + r * ld + j) * pj;
        }
    for (; j < nv; j += VL)
        for (i64 r = 0; r < R; r++) {
            FN(mvec) out = FN(viota)() + (scalar)j >= FN(vset)((scalar)n[r]);
            FN(vec) pj = FN(vld)(P + r * ld + j) * ir[r];
            FN(vst)(P + r * ld + j, pj);
            dpp[r] += FN(vsel)(out, zero, FN(vld)(D + r * ld + j)) * pj;
        }
    for (i64 r = 0; r < R; r++) d[r] = FN(vset)(FN(hsum)(dpp[r]));
    for (j = 0; j < jb; j += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vec) ds = (FN(vld)(D + r * ld + j) - d[r]) * FN(vld)(P + r * ld + j);
            FN(vst)(D + r * ld + j, ds);
        }
    for (; j < nv; j += VL)
        for (i64 r = 0; r < R; r++) {
            FN(mvec) out = FN(viota)() + (scalar)j >= FN(vset)((scalar)n[r]);
            FN(vec) ds = (FN(vld)(D + r * ld + j) - d[r]) * FN(vld)(P + r * ld + j);
            FN(vst)(D + r * ld + j, FN(vsel)(out, zero, ds));
        }
    for (; j < ld; j += VL)
        for (i64 r = 0; r < R; r++) {
            FN(vst)(P + r * ld + j, zero);
            FN(vst)(D + r * ld + j, zero);
        }
}

/* the backward's rows i0 .. i0 + rows - 1 of P (their exponentials, from sdpa_exp_rows, over
   the vectors j < nv) and D (dp = g V^T), stride ld (a whole number of vectors): p = e inv,
   and ds = (dp - sum(dp p)) p in place of dp, over each row's entries j < n (n = S, or
   i + 1 when skipping the causal columns); both are zero from there up to ld (the lanes
   j >= n hold p = 0, and dp there may not be finite: the padding) */
SDPA_HELPER void FN(sdpa_ds_rows)(scalar *restrict P, scalar *restrict D, i64 ld, i64 i0, i64 rows,
                             i64 S, i64 nv, int skip, const scalar *inv) {
    if (rows == SDPA_R)
        FN(sdpa_ds_block)(P, D, ld, i0, SDPA_R, S, nv, skip, inv);
    else
        for (i64 r = 0; r < rows; r++)
            FN(sdpa_ds_block)(P + r * ld, D + r * ld, ld, i0 + r, 1, S, nv, skip, inv + r);
}

/* the added masks of the score rows i0 .. i0 + rows - 1 (their first n entries: n = S, or
   i + 1 when skipping): the causal -inf (j > i), then the float mask or the bool mask
   (nonzero = attend) */
SDPA_HELPER void FN(sdpa_add_mask)(scalar *restrict P, i64 ld, i64 i0, i64 rows, i64 S, int skip,
                              const scalar *mf, const unsigned char *mb, i64 ms0, i64 ms1,
                              int causal) {
    for (i64 r = 0; r < rows; r++) {
        i64 i = i0 + r, n = skip && i + 1 < S ? i + 1 : S;
        scalar *restrict p = P + r * ld;
        if (causal)
            for (i64 j = i + 1; j < n; j++) p[j] += -INFINITY;
        if (mf)
            for (i64 j = 0; j < n; j++) p[j] += mf[i * ms0 + j * ms1];
        if (mb)
            for (i64 j = 0; j < n; j++) p[j] += mb[i * ms0 + j * ms1] ? LIT(0.0) : -INFINITY;
    }
}

/* ask for the rows (n of them, w entries each, stride s) of the next pair early: the strided
   reads of q, k, v would otherwise wait on memory at every pair's start */
SDPA_HELPER void FN(sdpa_prefetch)(const scalar *x, i64 n, i64 s0, i64 w) {
    i64 line = 64 / (i64)sizeof(scalar);
    for (i64 r = 0; r < n; r++) {
        for (i64 c = 0; c < w; c += line) __builtin_prefetch(x + r * s0 + c, 0, 2);
        __builtin_prefetch(x + r * s0 + w - 1, 0, 2); /* a row may end on one more line */
    }
}
"""

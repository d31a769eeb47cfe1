"""C kernels of the implicit-GEMM convolution: a 2-D convolution (``groups = 1``) and its
weight and bias gradients computed with the register blocks of :mod:`.gemm`, without ever
building the column matrix.

The column matrix of W2's second convolution is 14.4 MB: writing it (im2col), reading it
back in the GEMM and, for the input gradient, writing and reading it again (col2im) cost
about as much as the products themselves on this 2-core machine, where one core copies
about 6.5 GB/s. Here each thread packs only the panel of columns its register blocks use
next (``KC x NR`` values, in L1), straight from the image:

* **the image, zero-padded once** (``cg_pad``): into a scratch copy ``(N, C, Hp, Wp)``
  whose border is the convolution's padding, so that every tap of every output position
  reads a real value and the packing needs no bounds checks. Position ``(n, oh, ow)`` of
  tap ``k = (c, i, j)`` is the padded image's element ``pos(n, oh, ow) + koff[k]``: the
  sum of an offset of the position and one of the tap.
* **forward** (``conv_gemm_forward``): ``Y (O, N*OH*OW) = W (O, K) @ cols (K, N*OH*OW)``.
  ``W`` is packed once into panels of ``MR`` rows; each thread takes a run of panels of
  ``NR`` output positions. A panel's positions are a few runs of consecutive positions of
  one output row (``segments``); with unit width stride a run of a tap is a contiguous run
  of the padded image, copied a vector at a time. Each panel's ``(O, NR)`` results are
  summed over ``K`` in registers (``gemm_micro``, ``KC`` taps at a time into a small
  block), then stored into the NCHW output with the bias added (and a ReLU applied, for a
  convolution that a compiled graph fused with the ReLU after it).
* **weight gradient** (``conv_gemm_weight_grad``): ``dW (O, K) = g (O, P) @ cols^T (P,
  K)`` summed over the ``P = N*OH*OW`` positions. Each thread sums its share of the
  positions, ``KC`` at a time: ``g``'s rows packed into panels of ``MR``, each tap's row
  of positions copied, then transposed into panels of ``NR`` taps, into its own
  accumulator; the accumulators are then added in thread order (the result
  depends on the thread count, not on timing). The bias gradient is a separate pass over
  ``g``'s rows (vector sums per row of positions, added in double).

The input gradient of a unit-stride convolution is itself such a convolution (of the
output gradient with the flipped, transposed weight); ``ember.kernels.conv_gemm`` routes it
here. Products with zero are never skipped: inf and NaN propagate as in a GEMM.

Example:
    >>> from ember.kernels.source.conv_gemm import UNIT
    >>> UNIT.name
    'conv_gemm'
"""

from __future__ import annotations

from . import Unit
from .gemm import CORE, TAIL
from .gemm import SHARED as GEMM_SHARED

SHARED = (
    GEMM_SHARED
    + r"""
/* the geometry of a convolution: input (N, C, H, W) in G groups, kernel kh x kw, stride,
   top/left padding, dilation, output OH x OW, the padded image (Hp, Wp), the taps of one
   group K = C / G * kh * kw, positions per sample L and in all P, and the padded image's
   offset between groups (gstep) */
typedef struct {
    i64 N, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw, OH, OW, Hp, Wp, K, L, P, gstep;
} cg_geo;
static cg_geo cg_geometry(i64 N, i64 C, i64 G, i64 H, i64 W, i64 kh, i64 kw, i64 sh, i64 sw,
                          i64 pt, i64 pl, i64 dh, i64 dw, i64 OH, i64 OW) {
    cg_geo g = {N, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw, OH, OW, 0, 0, 0, 0, 0, 0};
    i64 hn = (OH - 1) * sh + (kh - 1) * dh + 1, wn = (OW - 1) * sw + (kw - 1) * dw + 1;
    g.Hp = hn > pt + H ? hn : pt + H;
    g.Wp = wn > pl + W ? wn : pl + W;
    g.K = C / G * kh * kw;
    g.L = OH * OW;
    g.P = N * g.L;
    g.gstep = C / G * g.Hp * g.Wp;
    return g;
}
/* the offset of tap k = (c, i, j) of a group in the padded image (from the group's first
   channel), for every k */
static void cg_tap_offsets(const cg_geo *g, i64 *koff) {
    i64 k = 0;
    for (i64 c = 0; c < g->C / g->G; c++)
        for (i64 i = 0; i < g->kh; i++)
            for (i64 j = 0; j < g->kw; j++) koff[k++] = (c * g->Hp + i * g->dh) * g->Wp + j * g->dw;
}
/* the offset of output position p = (n, oh, ow) in the padded image (tap 0) */
static i64 cg_position(const cg_geo *g, i64 p) {
    i64 n = p / g->L, r = p % g->L, oh = r / g->OW, ow = r % g->OW;
    return (n * g->C * g->Hp + oh * g->sh) * g->Wp + ow * g->sw;
}
/* runs of consecutive positions of one output row among positions [p0, p0 + n), at most n */
typedef struct {
    i64 dst, src, out, len; /* index in the run of n, image offset, output offset, length */
} cg_seg;
static i64 cg_segments(const cg_geo *g, i64 p0, i64 n, i64 O, cg_seg *seg) {
    i64 ns = 0, d = 0;
    while (d < n && p0 + d < g->P) {
        i64 p = p0 + d, nn = p / g->L, r = p % g->L, ow = r % g->OW;
        i64 len = g->OW - ow;
        if (len > n - d) len = n - d;
        if (len > g->P - p) len = g->P - p;
        seg[ns].dst = d;
        seg[ns].src = cg_position(g, p);
        seg[ns].out = nn * O * g->L + r;
        seg[ns].len = len;
        ns++;
        d += len;
    }
    return ns;
}
/* the calling thread's scratch (the padded image and tables, shared with its workers) */
static __thread void *cg_buf;
static __thread size_t cg_cap;
static void cg_release(void) { gemm_release(&cg_buf, &cg_cap); }
"""
)

BODY = (
    CORE
    + r"""
/* x (N, C, H, W) into the zero-bordered padded image xp (N, C, Hp, Wp), then `slack` zeros */
static void FN(cg_pad)(const scalar *x, scalar *xp, const cg_geo *g, i64 slack, int nt) {
    i64 planes = g->N * g->C, hw = g->Hp * g->Wp;
    PARALLEL_FOR(nt)
    for (i64 q = 0; q < planes; q++) {
        const scalar *s = x + q * g->H * g->W;
        scalar *d = xp + q * hw;
        memset(d, 0, sizeof(scalar) * g->pt * g->Wp);
        for (i64 r = 0; r < g->H; r++) {
            scalar *row = d + (g->pt + r) * g->Wp;
            memset(row, 0, sizeof(scalar) * g->pl);
            memcpy(row + g->pl, s + r * g->W, sizeof(scalar) * g->W);
            memset(row + g->pl + g->W, 0, sizeof(scalar) * (g->Wp - g->pl - g->W));
        }
        memset(d + (g->pt + g->H) * g->Wp, 0, sizeof(scalar) * (g->Hp - g->pt - g->H) * g->Wp);
    }
    memset(xp + planes * hw, 0, sizeof(scalar) * slack);
}

/* the panel (kc x NR) of columns: p[k NR + d] = tap koff[k] of the panel's position d, zero
   past `valid` positions. A run (at most NR = 2 VL positions) of VL/2 or more is two (half)
   vectors per tap, overlapping where the run is shorter than both: each value is written
   exactly once */
static void FN(cg_pack_cols)(const scalar *xp, const i64 *koff, i64 kc, const cg_seg *seg,
                             i64 ns, i64 sw, i64 valid, scalar *p) {
    typedef scalar FN(hvec) __attribute__((vector_size(GEMM_VB / 2)));
    const i64 H = VL / 2;
    for (i64 q = 0; q < ns; q++) {
        const scalar *s = xp + seg[q].src;
        scalar *d = p + seg[q].dst;
        i64 len = seg[q].len;
        if (sw == 1 && len >= VL) {
            i64 t = len - VL;
            for (i64 k = 0; k < kc; k++) {
                FN(gvec) a = FN(gld)(s + koff[k]), b = FN(gld)(s + koff[k] + t);
                FN(gst)(d + k * NR, a);
                FN(gst)(d + k * NR + t, b);
            }
        } else if (sw == 1 && len >= H) {
            i64 t = len - H;
            for (i64 k = 0; k < kc; k++) {
                FN(hvec) a, b;
                memcpy(&a, s + koff[k], sizeof a);
                memcpy(&b, s + koff[k] + t, sizeof b);
                memcpy(d + k * NR, &a, sizeof a);
                memcpy(d + k * NR + t, &b, sizeof b);
            }
        } else {
            for (i64 k = 0; k < kc; k++)
                for (i64 e = 0; e < len; e++) d[k * NR + e] = s[koff[k] + e * sw];
        }
    }
    if (valid < NR)
        for (i64 k = 0; k < kc; k++)
            for (i64 e = valid; e < NR; e++) p[k * NR + e] = 0;
}

/* the last R < MR rows of the output channels: t[r NR + j] (+)= sum over k of ap[k MR + r]
   bp[k NR + j] for r < R (R a constant where inlined: the sums stay in registers). A full
   MR x NR block there would spend MR - R of its MR rows on the panel's zero padding (11%
   of the input gradient's work with 32 input channels) */
EMBER_INLINE void FN(cg_few_rows)(i64 kc, const scalar *restrict ap, const scalar *restrict bp,
                                  scalar *restrict t, int add, const int R) {
    FN(gvec) c0[MR - 1], c1[MR - 1];
    for (int r = 0; r < R; r++) {
        c0[r] = add ? FN(gld)(t + r * NR) : (FN(gvec)){0};
        c1[r] = add ? FN(gld)(t + r * NR + VL) : (FN(gvec)){0};
    }
    for (i64 k = 0; k < kc; k++) {
        FN(gvec) b0 = FN(gld)(bp + k * NR), b1 = FN(gld)(bp + k * NR + VL);
        for (int r = 0; r < R; r++) {
            scalar a = ap[k * MR + r];
            c0[r] += a * b0;
            c1[r] += a * b1;
        }
    }
    for (int r = 0; r < R; r++) {
        FN(gst)(t + r * NR, c0[r]);
        FN(gst)(t + r * NR + VL, c1[r]);
    }
}

/* the register block of `rows` output channels (at most MR) of a panel into t (rows of NR) */
static void FN(cg_block)(i64 kc, const scalar *ap, const scalar *bp, scalar *t, i64 rows,
                         int add) {
    switch (rows) {
    case 1: FN(cg_few_rows)(kc, ap, bp, t, add, 1); break;
    case 2: FN(cg_few_rows)(kc, ap, bp, t, add, 2); break;
    case 3: FN(cg_few_rows)(kc, ap, bp, t, add, 3); break;
    case 4: FN(cg_few_rows)(kc, ap, bp, t, add, 4); break;
    default: FN(gemm_micro)(kc, ap, bp, t, NR, MR, NR, add, NULL);
    }
}

/* one thread's panels [p0, p1) of NR output positions, all groups: group q's O / G output
   channels read its C / G input channels (xp + q gstep) through w's rows of the group */
static int FN(cg_forward_part)(const scalar *xp, const i64 *koff, const scalar *w,
                               const scalar *bias, int relu, scalar *y, const cg_geo *g, i64 O,
                               i64 p0, i64 p1) {
    i64 K = g->K, Og = O / g->G, KP = gemm_cdiv(Og, MR);
    i64 KC = K <= 512 ? K : gemm_cdiv(K, gemm_cdiv(K, 256));
    i64 na = K * KP * MR, nb = KC * NR, nt = KP * MR * NR;
    scalar *pa = gemm_scratch(sizeof(scalar) * (g->G * na + nb + nt));
    if (!pa) return -1;
    scalar *pb = pa + g->G * na, *t = pb + nb;
    for (i64 q = 0; q < g->G; q++)
        for (i64 pc = 0; pc < K; pc += KC)
            FN(gemm_pack_a)(w + q * Og * K + pc, K, 1, Og, gemm_min(KC, K - pc),
                            pa + q * na + pc * KP * MR);
    cg_seg seg[NR];
    for (i64 p = p0; p < p1; p++) {
        i64 ns = cg_segments(g, p * NR, NR, O, seg);
        i64 valid = seg[ns - 1].dst + seg[ns - 1].len;
        for (i64 q = 0; q < g->G; q++) {
            const scalar *aq = pa + q * na;
            for (i64 pc = 0; pc < K; pc += KC) {
                i64 kc = gemm_min(KC, K - pc);
                FN(cg_pack_cols)(xp + q * g->gstep, koff + pc, kc, seg, ns, g->sw, valid, pb);
                for (i64 ir = 0; ir < KP; ir++)
                    FN(cg_block)(kc, aq + pc * KP * MR + ir * kc * MR, pb, t + ir * MR * NR,
                                 gemm_min(MR, Og - ir * MR), pc > 0);
            }
            for (i64 r0 = 0; r0 < Og; r0++) {
                i64 o = q * Og + r0;
                scalar *r = t + r0 * NR;
                scalar b = bias ? bias[o] : 0;
                FN(gvec) bv = (FN(gvec)){0} + b;
                for (i64 e = 0; e < NR; e += VL) {
                    FN(gvec) v = FN(gld)(r + e) + bv;
                    FN(gst)(r + e, relu ? EMBER_RELU_VEC(FN(gvec), v) : v);
                }
                for (i64 s = 0; s < ns; s++) {
                    scalar *d = y + seg[s].out + o * g->L;
                    const scalar *src = r + seg[s].dst;
                    i64 e = 0;
                    for (; e + VL <= seg[s].len; e += VL) FN(gst)(d + e, FN(gld)(src + e));
                    for (; e < seg[s].len; e++) d[e] = src[e];
                }
            }
        }
    }
    return 0;
}

/* y (N, O, OH, OW) = the convolution of x (N, C, H, W) with w (O, C / G, kh, kw) in G
   groups (+ bias (O,) when not NULL), then a ReLU when relu is not 0; top/left padding
   pt, pl (the bottom and right follow from OH, OW); returns 0, or -1 when memory ran out */
EMBER_API int FN(conv_gemm_forward)(const scalar *x, const scalar *w, const scalar *bias,
                                    int relu, scalar *y, i64 N, i64 C, i64 H, i64 W, i64 O,
                                    i64 G, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt, i64 pl,
                                    i64 dh, i64 dw, i64 OH, i64 OW, int nt) {
    cg_geo g = cg_geometry(N, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw, OH, OW);
    i64 npad = (N * C * g.Hp * g.Wp + 2 * NR + 15) / 16 * 16;
    scalar *xp = gemm_grow(&cg_buf, &cg_cap, sizeof(scalar) * npad + sizeof(i64) * g.K);
    if (!xp) return -1;
    i64 *koff = (i64 *)(xp + npad);
    FN(cg_pad)(x, xp, &g, npad - N * C * g.Hp * g.Wp, nt);
    cg_tap_offsets(&g, koff);
    i64 panels = gemm_cdiv(g.P, NR);
    if (nt > panels) nt = (int)panels;
    int failed = 0;
#ifndef _OPENMP
    nt = 1;
#endif
    int caller_cpu = nt > 1 ? EMBER_THREAD_CPU() : -1;
    GEMM_PARALLEL(nt) {
        ember_team_place(caller_cpu);
        i64 t = THREAD_ID(), lo, hi;
        gemm_range(panels, nt, t, &lo, &hi);
        if (lo < hi && FN(cg_forward_part)(xp, koff, w, bias, relu, y, &g, O, lo, hi)) failed = 1;
    }
    cg_release();
    return failed ? -1 : 0;
}

/* positions [q0, q0 + kc) of O of g's rows (from gr, at row stride L within a sample), in
   panels of MR rows (zero rows past O): p[(o / MR) kc MR + d MR + o % MR] */
static void FN(cg_pack_grad)(const scalar *gr, const cg_seg *seg, i64 ns, i64 O, i64 L, i64 kc,
                             scalar *p) {
    i64 KP = gemm_cdiv(O, MR);
    for (i64 ir = 0; ir < KP; ir++) {
        scalar *pp = p + ir * kc * MR;
        for (i64 r = 0; r < MR; r++) {
            i64 o = ir * MR + r;
            if (o >= O) {
                for (i64 d = 0; d < kc; d++) pp[d * MR + r] = 0;
                continue;
            }
            for (i64 q = 0; q < ns; q++) {
                const scalar *s = gr + seg[q].out + o * L;
                scalar *d = pp + seg[q].dst * MR + r;
                for (i64 e = 0; e < seg[q].len; e++) d[e * MR] = s[e];
            }
        }
    }
}

/* the panel (kc x NR) of the transposed columns: p[d NR + e] = tap koff[e] of position d,
   zero past `taps` taps. Each tap's row of positions is copied run by run into t (NR rows
   of kc rounded up to VL), then t is transposed 8 x 8 (4 x 4) block by block into p (whose
   rows past kc, up to the rounding, are written too) */
static void FN(cg_pack_taps)(const scalar *xp, const cg_seg *seg, i64 ns, i64 sw,
                             const i64 *koff, i64 kc, i64 taps, scalar *t, scalar *p) {
    i64 ld = gemm_cdiv(kc, VL) * VL;
    for (i64 e = 0; e < NR; e++) {
        scalar *row = t + e * ld;
        if (e >= taps) {
            memset(row, 0, sizeof(scalar) * ld);
            continue;
        }
        for (i64 q = 0; q < ns; q++) {
            const scalar *s = xp + koff[e] + seg[q].src;
            scalar *d = row + seg[q].dst;
            i64 len = seg[q].len, i = 0;
            if (sw == 1 && len >= VL) {
                for (; i + VL <= len; i += VL) FN(gst)(d + i, FN(gld)(s + i));
                if (i < len) FN(gst)(d + len - VL, FN(gld)(s + len - VL));
            } else {
                for (; i < len; i++) d[i] = s[i * sw];
            }
        }
        for (i64 i = kc; i < ld; i++) row[i] = 0;
    }
    i64 tr = GEMM_TR(sizeof(scalar));
    for (i64 d0 = 0; d0 < ld; d0 += tr)
        for (i64 e0 = 0; e0 < NR; e0 += tr) {
            if (sizeof(scalar) == 4)
                gemm_tr_f32((const float *)(t + e0 * ld + d0), ld, (float *)(p + d0 * NR + e0), NR);
            else
                gemm_tr_f64((const double *)(t + e0 * ld + d0), ld, (double *)(p + d0 * NR + e0),
                            NR);
        }
}

/* one thread's positions [q0, q1), summed into acc (O x K), group by group */
static int FN(cg_weight_part)(const scalar *xp, const i64 *koff, const scalar *gr, scalar *acc,
                              const cg_geo *g, i64 O, i64 q0, i64 q1) {
    i64 K = g->K, Og = O / g->G, KP = gemm_cdiv(Og, MR), KC = 256;
    i64 na = KP * MR * KC, nb = KC * NR;
    scalar *pa = gemm_scratch(sizeof(scalar) * (na + 2 * nb) + sizeof(cg_seg) * (KC + 1));
    if (!pa) return -1;
    scalar *pb = pa + na, *tb = pb + nb;
    cg_seg *seg = (cg_seg *)(tb + nb);
    for (i64 q = q0; q < q1; q += KC) {
        i64 kc = gemm_min(KC, q1 - q);
        i64 ns = cg_segments(g, q, kc, O, seg);
        for (i64 grp = 0; grp < g->G; grp++) {
            FN(cg_pack_grad)(gr + grp * Og * g->L, seg, ns, Og, g->L, kc, pa);
            for (i64 j = 0; j < K; j += NR) {
                i64 taps = gemm_min(NR, K - j);
                FN(cg_pack_taps)(xp + grp * g->gstep, seg, ns, g->sw, koff + j, kc, taps, tb, pb);
                for (i64 ir = 0; ir < KP; ir++)
                    FN(gemm_micro)(kc, pa + ir * kc * MR, pb, acc + (grp * Og + ir * MR) * K + j,
                                   K, gemm_min(MR, Og - ir * MR), taps, 1, NULL);
            }
        }
    }
    return 0;
}

/* gw (O, C / G, kh, kw) = the gradient of conv_gemm_forward in w for the output gradient
   gr (N, O, OH, OW), then (with_bias) the O sums of gr over N, OH, OW; returns 0, or -1
   when memory ran out */
EMBER_API int FN(conv_gemm_weight_grad)(const scalar *x, const scalar *gr, scalar *gw,
                                        int with_bias, i64 N, i64 C, i64 H, i64 W, i64 O,
                                        i64 G, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt, i64 pl,
                                        i64 dh, i64 dw, i64 OH, i64 OW, int nt) {
    cg_geo g = cg_geometry(N, C, G, H, W, kh, kw, sh, sw, pt, pl, dh, dw, OH, OW);
#ifndef _OPENMP
    nt = 1;
#endif
    if (nt > gemm_cdiv(g.P, 256)) nt = (int)gemm_cdiv(g.P, 256);
    i64 npad = (N * C * g.Hp * g.Wp + 2 * NR + 15) / 16 * 16, nacc = (O * g.K + 15) / 16 * 16;
    scalar *xp = gemm_grow(&cg_buf, &cg_cap,
                           sizeof(scalar) * (npad + nt * nacc) + sizeof(i64) * g.K);
    if (!xp) return -1;
    scalar *acc = xp + npad;
    i64 *koff = (i64 *)(acc + nt * nacc);
    FN(cg_pad)(x, xp, &g, npad - N * C * g.Hp * g.Wp, nt);
    cg_tap_offsets(&g, koff);
    memset(acc, 0, sizeof(scalar) * nt * nacc);
    int failed = 0;
    int caller_cpu = nt > 1 ? EMBER_THREAD_CPU() : -1;
    GEMM_PARALLEL(nt) {
        ember_team_place(caller_cpu);
        i64 t = THREAD_ID(), lo, hi;
        gemm_range(g.P, nt, t, &lo, &hi);
        if (lo < hi && FN(cg_weight_part)(xp, koff, gr, acc + t * nacc, &g, O, lo, hi))
            failed = 1;
    }
    for (i64 e = 0; e < O * g.K && !failed; e++) {
        scalar v = acc[e];
        for (i64 t = 1; t < nt; t++) v += acc[t * nacc + e];
        gw[e] = v;
    }
    if (with_bias && !failed) { /* gr summed over N and positions: rows, added in double */
        PARALLEL_FOR(nt)
        for (i64 o = 0; o < O; o++) {
            double total = 0;
            for (i64 n = 0; n < N; n++) {
                const scalar *row = gr + (n * O + o) * g.L;
                scalar sum = 0;
                SIMD_SUM(sum)
                for (i64 l = 0; l < g.L; l++) sum += row[l];
                total += sum;
            }
            gw[O * g.K + o] = (scalar)total;
        }
    }
    cg_release();
    return failed ? -1 : 0;
}
"""
    + TAIL
)

UNIT = Unit(
    name="conv_gemm",
    functions=(
        "int conv_gemm_forward(const scalar *x, const scalar *w, const scalar *bias, int relu,"
        " scalar *y, i64 N, i64 C, i64 H, i64 W, i64 O, i64 G, i64 kh, i64 kw, i64 sh, i64 sw,"
        " i64 pt, i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, int nt)",
        "int conv_gemm_weight_grad(const scalar *x, const scalar *gr, scalar *gw, int with_bias,"
        " i64 N, i64 C, i64 H, i64 W, i64 O, i64 G, i64 kh, i64 kw, i64 sh, i64 sw, i64 pt,"
        " i64 pl, i64 dh, i64 dw, i64 OH, i64 OW, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

"""C kernel of the 3 x 3, unit-stride convolution by Winograd's minimal filtering F(2 x 2,
3 x 3): each 2 x 2 block of outputs ("tile") costs 16 multiply-adds per input and output
channel instead of the 36 of the direct sum, so a convolution whose products are bound by
the core's multiply-add rate (W2's second convolution, forward and input gradient, ran at
the machine's GEMM peak as an implicit GEMM) takes 2.25 times fewer of them.

With the 4 x 4 input patch ``d`` of a tile (rows and columns ``2 ti - pt ..``, zero outside
the image) and a 3 x 3 filter ``g``, the tile's outputs are ``A^T [(G g G^T) * (B^T d B)]
A`` (elementwise product in the middle), summed over input channels, with

    B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    A^T = [1 1 1 0; 0 1 -1 -1]

All coefficients are 0, +-1 or 1/2, so the transforms round no more than the direct sum's
additions do. The sum over channels is 16 matrix products per block of tiles, one per
position ``xi`` of the 4 x 4 transformed patch: ``M[xi] (tiles x O) = V[xi] (tiles x C) @
U[xi] (C x O)``.

* **The image, zero-padded and channels-last, once** (``xp``, ``(N, Hp, Wp, Cp)`` with ``Cp``
  the channels rounded up to whole vectors): every patch then reads whole vectors of
  channels without a bounds check. The copy transposes 8 x 8 (float) blocks in registers
  (:mod:`.gemm`'s ``gemm_tr_f32``) and also sums ``x - x``, which is NaN when any input is
  inf or NaN.
* **The filter, once** (``U``): ``G g G^T`` of each (output, input) channel pair, written
  straight into the panels of ``NR`` output channels the register block reads.
* **A block of tiles** (as many as keep its ``V`` and ``M`` in a core's L2 cache; blocks
  are split between threads): the input transform ``B^T d B`` on vectors of channels into
  ``V``; the 16 products by a register block of ``MR`` tiles by ``NR`` output channels
  (:mod:`.gemm`'s shape, with ``A`` read in place from ``V``'s rows) into ``M``; the output
  transform on vectors of output channels, plus the bias, then the ReLU when asked, stored
  into the NCHW output.

The transforms mix the values of a patch, so an inf or NaN would spread to outputs that do
not see it (``inf - inf``): when the input or the filter is not all finite, the kernel
returns 1 without writing anything, and the caller takes the implicit-GEMM path, which
propagates them as the direct sum does. It returns -1 when memory runs out, else 0.

Example:
    >>> from ember.kernels.source.winograd import UNIT
    >>> UNIT.name
    'winograd'
"""

from __future__ import annotations

from . import Unit
from .gemm import CORE, TAIL
from .gemm import SHARED as GEMM_SHARED

SHARED = (
    GEMM_SHARED
    + r"""
/* the layout of one call: input (N, C, H, W), O outputs (OH, OW), top/left padding, the
   tiles (th x tw per sample, T in all), the padded channels-last image (Hp, Wp, Cp), the
   output channels rounded to whole panels (Op) and the tiles of one block (TB) */
typedef struct {
    i64 N, C, H, W, O, pt, pl, OH, OW, th, tw, T, Hp, Wp, Cp, Op, TB;
} wg_geo;
/* the calling thread's scratch (the padded image and the filter, shared with its workers),
   and each thread's block scratch */
static __thread void *wg_buf;
static __thread size_t wg_cap;
static __thread void *wg_blk;
static __thread size_t wg_blk_cap;
#define WG_BLOCK_BYTES 196608 /* V and M of one block: about a core's L2 cache, with room */
"""
)

BODY = (
    CORE
    + r"""
/* samples [n0, n1) of xp (N, Hp, Wp, Cp) from x; returns the sum of x - x over what it
   copied (NaN when an input is not finite). Each run of 8 (float) channels is read row by
   row, its 8 x 8 blocks of channels by columns transposed in registers, the last block of a
   row overlapping the one before it when the width is not a multiple of 8 */
static scalar FN(wg_pad)(const scalar *x, scalar *xp, const wg_geo *g, i64 n0, i64 n1) {
    i64 Cp = g->Cp, hw = g->H * g->W, size = g->Hp * g->Wp * Cp;
    i64 hl = gemm_min(g->H, g->Hp - g->pt), wl = gemm_min(g->W, g->Wp - g->pl);
    scalar bad = 0;
    for (i64 n = n0; n < n1; n++) {
        scalar *d = xp + n * size;
        const scalar *s = x + n * g->C * hw;
        memset(d, 0, sizeof(scalar) * size);
        for (i64 c0 = 0; c0 < g->C; c0 += VL) {
            i64 cn = gemm_min(VL, g->C - c0);
            for (i64 h = 0; h < hl; h++) {
                scalar *row = d + ((g->pt + h) * g->Wp + g->pl) * Cp + c0;
                const scalar *src = s + c0 * hw + h * g->W;
                if (cn < VL || wl < VL) {
                    for (i64 w0 = 0; w0 < wl; w0++)
                        for (i64 j = 0; j < cn; j++) row[w0 * Cp + j] = src[j * hw + w0];
                    continue;
                }
                for (i64 w0 = 0; w0 < wl; w0 += VL) {
                    i64 at = gemm_min(w0, wl - VL);
                    if (sizeof(scalar) == 4)
                        gemm_tr_f32((const float *)(src + at), hw, (float *)(row + at * Cp), Cp);
                    else
                        gemm_tr_f64((const double *)(src + at), hw, (double *)(row + at * Cp), Cp);
                }
            }
        }
        SIMD_SUM(bad)
        for (i64 e = 0; e < size; e++) bad += d[e] - d[e];
    }
    return bad;
}

/* output channels [o0, o1) of the transformed filter: U[xi] (C x Op) in panels of NR
   columns, u[((xi Op / NR + o / NR) C + c) NR + o % NR] = (G g G^T)[xi] of w[o, c] (zero for
   o >= O); returns the sum of w - w */
static scalar FN(wg_filter)(const scalar *w, scalar *u, const wg_geo *g, i64 o0, i64 o1) {
    i64 C = g->C, np = g->Op / NR;
    scalar bad = 0;
    for (i64 o = o0; o < o1; o++)
        for (i64 c = 0; c < C; c++) {
            scalar t[4][3], v[16];
            if (o < g->O) {
                const scalar *k = w + (o * C + c) * 9;
                for (int j = 0; j < 3; j++) {
                    scalar a = k[j], b = k[3 + j], e = k[6 + j];
                    bad += (a - a) + (b - b) + (e - e);
                    t[0][j] = a;
                    t[1][j] = (a + b + e) * LIT(0.5);
                    t[2][j] = (a - b + e) * LIT(0.5);
                    t[3][j] = e;
                }
                for (int i = 0; i < 4; i++) {
                    scalar a = t[i][0], b = t[i][1], e = t[i][2];
                    v[4 * i] = a;
                    v[4 * i + 1] = (a + b + e) * LIT(0.5);
                    v[4 * i + 2] = (a - b + e) * LIT(0.5);
                    v[4 * i + 3] = e;
                }
            } else {
                memset(v, 0, sizeof v);
            }
            for (int xi = 0; xi < 16; xi++) u[((xi * np + o / NR) * C + c) * NR + o % NR] = v[xi];
        }
    return bad;
}

/* the register block: MR tiles (rows of A, row stride lda, read in place) by NR output
   channels (a panel of B, kc x NR) into c (row stride ldc), over the kc input channels */
static void FN(wg_micro)(i64 kc, const scalar *restrict a, i64 lda, const scalar *restrict bp,
                         scalar *restrict c, i64 ldc) {
    FN(gvec) acc[2 * MR];
    FN(gemm_acc)(kc, a, 1, lda, bp, acc);
    for (i64 r = 0; r < MR; r++) {
        FN(gst)(c + r * ldc, acc[2 * r]);
        FN(gst)(c + r * ldc + VL, acc[2 * r + 1]);
    }
}

/* one block of tiles [t0, t0 + TB): input transform into v (TB x 16 x Cp: tile-major, so
   that each transform reads or writes one run of memory), the 16 products into m (TB x 16
   x Op), output transform into y */
static void FN(wg_block)(const scalar *xp, const scalar *u, const scalar *bias, int relu,
                         scalar *y, const wg_geo *g, i64 t0, scalar *v, scalar *m) {
    i64 TB = g->TB, Cp = g->Cp, Op = g->Op, C = g->C, per = g->th * g->tw;
    for (i64 i = 0; i < TB; i++) {
        i64 t = t0 + i;
        if (t >= g->T) { /* past the last tile: zero rows, whose products are never stored */
            memset(v + i * 16 * Cp, 0, sizeof(scalar) * 16 * Cp);
            continue;
        }
        i64 n = t / per, ti = t % per / g->tw, tj = t % g->tw;
        const scalar *base = xp + ((n * g->Hp + 2 * ti) * g->Wp + 2 * tj) * Cp;
        for (i64 c0 = 0; c0 < Cp; c0 += VL) {
            FN(gvec) s[4][4];
            for (int b = 0; b < 4; b++) {
                FN(gvec) d0 = FN(gld)(base + b * Cp + c0);
                FN(gvec) d1 = FN(gld)(base + (g->Wp + b) * Cp + c0);
                FN(gvec) d2 = FN(gld)(base + (2 * g->Wp + b) * Cp + c0);
                FN(gvec) d3 = FN(gld)(base + (3 * g->Wp + b) * Cp + c0);
                s[0][b] = d0 - d2;
                s[1][b] = d1 + d2;
                s[2][b] = d2 - d1;
                s[3][b] = d1 - d3;
            }
            for (int a = 0; a < 4; a++) {
                scalar *o = v + (i * 16 + 4 * a) * Cp + c0;
                FN(gst)(o, s[a][0] - s[a][2]);
                FN(gst)(o + Cp, s[a][1] + s[a][2]);
                FN(gst)(o + 2 * Cp, s[a][2] - s[a][1]);
                FN(gst)(o + 3 * Cp, s[a][1] - s[a][3]);
            }
        }
    }
    i64 np = Op / NR;
    for (int xi = 0; xi < 16; xi++)
        for (i64 jp = 0; jp < np; jp++) {
            const scalar *bp = u + (xi * np + jp) * C * NR;
            for (i64 i0 = 0; i0 < TB; i0 += MR)
                FN(wg_micro)(C, v + (i0 * 16 + xi) * Cp, 16 * Cp, bp,
                             m + (i0 * 16 + xi) * Op + jp * NR, 16 * Op);
        }
    i64 L = g->OH * g->OW;
    for (i64 i = 0; i < TB && t0 + i < g->T; i++) {
        i64 t = t0 + i, n = t / per, oh = 2 * (t % per / g->tw), ow = 2 * (t % g->tw);
        int down = oh + 1 < g->OH, right = ow + 1 < g->OW;
        scalar *yt = y + n * g->O * L + oh * g->OW + ow;
        for (i64 o0 = 0; o0 < g->O; o0 += VL) {
            const scalar *mt = m + i * 16 * Op + o0;
            FN(gvec) r0[4], r1[4];
            for (int b = 0; b < 4; b++) {
                FN(gvec) m0 = FN(gld)(mt + b * Op), m1 = FN(gld)(mt + (4 + b) * Op);
                FN(gvec) m2 = FN(gld)(mt + (8 + b) * Op), m3 = FN(gld)(mt + (12 + b) * Op);
                r0[b] = m0 + m1 + m2;
                r1[b] = m1 - m2 - m3;
            }
            FN(gvec) bb = FN(gld)(bias + o0);
            FN(gvec) q[4] = {r0[0] + r0[1] + r0[2] + bb, r0[1] - r0[2] - r0[3] + bb,
                             r1[0] + r1[1] + r1[2] + bb, r1[1] - r1[2] - r1[3] + bb};
            if (relu)
                for (int e = 0; e < 4; e++) q[e] = EMBER_RELU_VEC(FN(gvec), q[e]);
            i64 lanes = gemm_min(VL, g->O - o0);
            for (i64 e = 0; e < lanes; e++) {
                scalar *p = yt + (o0 + e) * L;
                p[0] = q[0][e];
                if (right) p[1] = q[1][e];
                if (down) {
                    p[g->OW] = q[2][e];
                    if (right) p[g->OW + 1] = q[3][e];
                }
            }
        }
    }
}

/* y (N, O, OH, OW) = the convolution of x (N, C, H, W) with the 3 x 3 filter w (O, C, 3, 3)
   at unit stride and dilation, zero padding pt / pl at the top / left (the bottom and right
   follow from OH, OW), plus bias (O,) when not NULL, then a ReLU when relu; returns 0, 1
   when x or w is not all finite (nothing written: see the module docstring) or -1 when
   memory ran out */
EMBER_API int FN(winograd_forward)(const scalar *x, const scalar *w, const scalar *bias,
                                   int relu, scalar *y, i64 N, i64 C, i64 H, i64 W, i64 O,
                                   i64 pt, i64 pl, i64 OH, i64 OW, int nt) {
#ifndef _OPENMP
    nt = 1;
#endif
    wg_geo g = {N, C, H, W, O, pt, pl, OH, OW, 0, 0, 0, 0, 0, 0, 0, 0};
    g.th = gemm_cdiv(OH, 2);
    g.tw = gemm_cdiv(OW, 2);
    g.T = N * g.th * g.tw;
    g.Hp = 2 * g.th + 2;
    g.Wp = 2 * g.tw + 2;
    g.Cp = gemm_cdiv(C, VL) * VL;
    g.Op = gemm_cdiv(O, NR) * NR;
    i64 per_tile = 16 * (g.Cp + g.Op) * (i64)sizeof(scalar);
    g.TB = gemm_min(16 * MR, gemm_min(WG_BLOCK_BYTES / per_tile / MR, gemm_cdiv(g.T, MR)) * MR);
    if (g.TB < MR) g.TB = MR;
    i64 nx = N * g.Hp * g.Wp * g.Cp, nu = 16 * C * g.Op;
    scalar *xp = gemm_grow(&wg_buf, &wg_cap, sizeof(scalar) * (nx + nu + g.Op));
    if (!xp) return -1;
    scalar *u = xp + nx, *bp = u + nu;
    for (i64 o = 0; o < g.Op; o++) bp[o] = bias && o < O ? bias[o] : 0;
    i64 blocks = gemm_cdiv(g.T, g.TB);
    if (nt > blocks) nt = (int)blocks;
    scalar bad = 0;
    int failed = 0;
    GEMM_PARALLEL(nt) {
        i64 t = THREAD_ID(), lo, hi;
        gemm_range(N, nt, t, &lo, &hi);
        scalar b1 = FN(wg_pad)(x, xp, &g, lo, hi);
        gemm_range(g.Op, nt, t, &lo, &hi);
        scalar b2 = FN(wg_filter)(w, u, &g, lo, hi);
        EMBER_PRAGMA(omp critical)
        bad += b1 + b2;
        EMBER_PRAGMA(omp barrier)
        if (bad == 0) {
            i64 nv = 16 * g.TB * g.Cp, nm = 16 * g.TB * g.Op;
            scalar *v = gemm_grow(&wg_blk, &wg_blk_cap, sizeof(scalar) * (nv + nm));
            if (!v) {
                failed = 1;
            } else {
                gemm_range(blocks, nt, t, &lo, &hi);
                for (i64 k = lo; k < hi; k++)
                    FN(wg_block)(xp, u, bp, relu, y, &g, k * g.TB, v, v + nv);
            }
        }
    }
    if (wg_cap > ((size_t)16 << 20)) { /* a scratch above 16 MB is not kept */
        free(wg_buf);
        wg_buf = NULL;
        wg_cap = 0;
    }
    if (failed) return -1;
    return bad == 0 ? 0 : 1;
}
"""
    + TAIL
)

UNIT = Unit(
    name="winograd",
    functions=(
        "int winograd_forward(const scalar *x, const scalar *w, const scalar *bias, int relu,"
        " scalar *y, i64 N, i64 C, i64 H, i64 W, i64 O, i64 pt, i64 pl, i64 OH, i64 OW,"
        " int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

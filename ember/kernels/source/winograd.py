"""C kernels of the 3 x 3, unit-stride convolution by Winograd's minimal filtering F(2 x 2,
3 x 3), and of its weight gradient: each 2 x 2 block of outputs ("tile") costs 16
multiply-adds per input and output channel instead of the 36 of the direct sum, so a
convolution whose products are bound by the core's multiply-add rate (W2's second
convolution ran at the machine's GEMM peak as an implicit GEMM) takes 2.25 times fewer.

With the 4 x 4 input patch ``d`` of a tile (rows and columns ``2 ti - pt ..``, zero outside
the image) and a 3 x 3 filter ``g``, the tile's outputs are ``A^T [(G g G^T) * (B^T d B)]
A`` (elementwise product in the middle), summed over input channels, with

    B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]
    G   = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
    A^T = [1 1 1 0; 0 1 -1 -1]

All coefficients are 0, +-1 or 1/2, so the transforms add only the rounding of a few
additions (in float32 about 2e-7 of the largest output, as a reordered sum). The sum over
channels is 16 matrix products per block of tiles, one per
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

**The weight gradient** (``winograd_weight_grad``) differentiates the same formula: ``dW =
G^T dU G`` with ``dU[xi] (C x O) = sum over tiles of V[xi]^T (A dY A^T)[xi]``, 16 products
over the tiles. The output gradient is copied channels-last too; a block's ``V`` and
transformed gradient are laid out position-major (``xi`` first), so that each product
streams through both (tile-major rows 2-4 KB apart shared L1 cache sets and ran at half
speed). Each thread sums its blocks into its own ``dU``; those are added in thread order
(the result depends on the thread count, not on timing), and the bias gradient is summed in
double.

The transforms mix the values of a patch, so an inf or NaN would spread to outputs that do
not see it (``inf - inf``): when the input, the filter or the output gradient is not all
finite, a kernel returns 1 without writing anything, and the caller takes the implicit-GEMM
path, which propagates them as the direct sum does. It returns -1 when memory runs out,
else 0.

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
static void wg_release(void) { gemm_release(&wg_buf, &wg_cap); }
"""
)

BODY = (
    CORE
    + r"""
/* the layout of a call (see wg_geo) */
static wg_geo FN(wg_geometry)(i64 N, i64 C, i64 H, i64 W, i64 O, i64 pt, i64 pl, i64 OH,
                              i64 OW) {
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
    return g;
}

/* samples [n0, n1) of x (N, C, H, W) into d (N, Hp, Wp, Cp): channels last, zero-padded by
   pt rows at the top and pl columns at the left, zeros past H, W and C, cut at Hp, Wp;
   returns the sum of x - x over what it copied (NaN when an input is not finite). Each run
   of 8 (float) channels is read row by row, its 8 x 8 blocks of channels by columns
   transposed in registers, the last block of a row overlapping the one before it when the
   width is not a multiple of 8 */
static scalar FN(wg_pad)(const scalar *x, scalar *xp, i64 C, i64 H, i64 W, i64 Hp, i64 Wp,
                         i64 pt, i64 pl, i64 Cp, i64 n0, i64 n1) {
    i64 hw = H * W, size = Hp * Wp * Cp;
    i64 hl = gemm_min(H, Hp - pt), wl = gemm_min(W, Wp - pl);
    scalar bad = 0;
    const i64 tr = GEMM_TR(sizeof(scalar)); /* the transposes' tile, whatever VL is */
    for (i64 n = n0; n < n1; n++) {
        scalar *d = xp + n * size;
        const scalar *s = x + n * C * hw;
        memset(d, 0, sizeof(scalar) * size);
        for (i64 c0 = 0; c0 < C; c0 += tr) {
            i64 cn = gemm_min(tr, C - c0);
            for (i64 h = 0; h < hl; h++) {
                scalar *row = d + ((pt + h) * Wp + pl) * Cp + c0;
                const scalar *src = s + c0 * hw + h * W;
                if (cn < tr || wl < tr) {
                    for (i64 w0 = 0; w0 < wl; w0++)
                        for (i64 j = 0; j < cn; j++) row[w0 * Cp + j] = src[j * hw + w0];
                    continue;
                }
                for (i64 w0 = 0; w0 < wl; w0 += tr) {
                    i64 at = gemm_min(w0, wl - tr);
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

/* the input transform B^T d B of the tiles [t0, t0 + TB) into v: the Cp channels of tile i
   and position xi at v[i si + xi sx] (the forward: tile-major, si = 16 Cp, sx = Cp, so that
   each tile's transform writes one run of memory; the weight gradient: xi-major, si = Cp,
   sx = TB Cp, so that each product streams through its operands); zero past the last tile */
static void FN(wg_input)(const scalar *xp, const wg_geo *g, i64 t0, scalar *v, i64 si, i64 sx) {
    i64 TB = g->TB, Cp = g->Cp, per = g->th * g->tw;
    for (i64 i = 0; i < TB; i++) {
        i64 t = t0 + i;
        if (t >= g->T) {
            for (int xi = 0; xi < 16; xi++) memset(v + i * si + xi * sx, 0, sizeof(scalar) * Cp);
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
                scalar *o = v + i * si + 4 * a * sx + c0;
                FN(gst)(o, s[a][0] - s[a][2]);
                FN(gst)(o + sx, s[a][1] + s[a][2]);
                FN(gst)(o + 2 * sx, s[a][2] - s[a][1]);
                FN(gst)(o + 3 * sx, s[a][1] - s[a][3]);
            }
        }
    }
}

/* the forward's 16 products of a block: m[i][xi] (Op) = v[i][xi] (C) @ U[xi], by register
   blocks of MR tiles (rows of v read in place) by NR output channels */
static void FN(wg_products)(const scalar *v, const scalar *u, const wg_geo *g, scalar *m) {
    i64 TB = g->TB, Cp = g->Cp, Op = g->Op, C = g->C, np = Op / NR;
    for (int xi = 0; xi < 16; xi++)
        for (i64 jp = 0; jp < np; jp++) {
            const scalar *bp = u + (xi * np + jp) * C * NR;
            for (i64 i0 = 0; i0 < TB; i0 += MR) {
                FN(gvec) acc[2 * MR];
                FN(gemm_acc)(C, v + (i0 * 16 + xi) * Cp, 1, 16 * Cp, bp, NR, acc);
                scalar *c = m + (i0 * 16 + xi) * Op + jp * NR;
                for (i64 r = 0; r < MR; r++) {
                    FN(gst)(c + r * 16 * Op, acc[2 * r]);
                    FN(gst)(c + r * 16 * Op + VL, acc[2 * r + 1]);
                }
            }
        }
}

/* the output transform A^T m A of the tiles [t0, t0 + TB) (on vectors of output channels),
   plus the bias, then the ReLU when asked, into the NCHW output y */
static void FN(wg_output)(const scalar *m, const scalar *bias, int relu, scalar *y,
                          const wg_geo *g, i64 t0) {
    i64 Op = g->Op, per = g->th * g->tw, L = g->OH * g->OW;
    for (i64 i = 0; i < g->TB && t0 + i < g->T; i++) {
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
    wg_geo g = FN(wg_geometry)(N, C, H, W, O, pt, pl, OH, OW);
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
        scalar b1 = FN(wg_pad)(x, xp, C, H, W, g.Hp, g.Wp, pt, pl, g.Cp, lo, hi);
        gemm_range(g.Op, nt, t, &lo, &hi);
        scalar b2 = FN(wg_filter)(w, u, &g, lo, hi);
        EMBER_PRAGMA(omp critical)
        bad += b1 + b2;
        EMBER_PRAGMA(omp barrier)
        i64 nv = 16 * g.TB * g.Cp, nm = 16 * g.TB * g.Op;
        scalar *v = bad == 0 ? gemm_grow(&wg_blk, &wg_blk_cap, sizeof(scalar) * (nv + nm)) : NULL;
        if (bad == 0 && !v) failed = 1;
        gemm_range(blocks, nt, t, &lo, &hi);
        for (i64 k = lo; v && k < hi; k++) {
            FN(wg_input)(xp, &g, k * g.TB, v, 16 * g.Cp, g.Cp);
            FN(wg_products)(v, u, &g, v + nv);
            FN(wg_output)(v + nv, bp, relu, y, &g, k * g.TB);
        }
    }
    wg_release();
    if (failed) return -1;
    return bad == 0 ? 0 : 1;
}

/* the transformed output gradient A dY A^T of the tiles [t0, t0 + TB) into q (16 x TB x Op:
   xi-major), from gp (N, 2 th, 2 tw, Op): the gradient channels last, zero past OH, OW
   and O */
static void FN(wg_grad)(const scalar *gp, const wg_geo *g, i64 t0, scalar *q) {
    i64 TB = g->TB, Op = g->Op, per = g->th * g->tw, row = 2 * g->tw * Op;
    for (i64 i = 0; i < TB; i++) {
        i64 t = t0 + i;
        if (t >= g->T) {
            for (int xi = 0; xi < 16; xi++) memset(q + (xi * TB + i) * Op, 0, sizeof(scalar) * Op);
            continue;
        }
        i64 n = t / per, ti = t % per / g->tw, tj = t % g->tw;
        const scalar *base = gp + ((n * 2 * g->th + 2 * ti) * 2 * g->tw + 2 * tj) * Op;
        for (i64 o0 = 0; o0 < Op; o0 += VL) {
            FN(gvec) y00 = FN(gld)(base + o0), y01 = FN(gld)(base + Op + o0);
            FN(gvec) y10 = FN(gld)(base + row + o0), y11 = FN(gld)(base + row + Op + o0);
            FN(gvec) tr[4][2] = {{y00, y01}, {y00 + y10, y01 + y11}, {y00 - y10, y01 - y11},
                                 {-y10, -y11}};
            for (int a = 0; a < 4; a++) {
                scalar *o = q + (4 * a * TB + i) * Op + o0;
                FN(gvec) p = tr[a][0], r = tr[a][1];
                FN(gst)(o, p);
                FN(gst)(o + TB * Op, p + r);
                FN(gst)(o + 2 * TB * Op, p - r);
                FN(gst)(o + 3 * TB * Op, -r);
            }
        }
    }
}

/* dU[xi] (Cr x Op, row c) += v[xi]^T q[xi] over the block's tiles (both xi-major): register
   blocks of MR input channels (v's columns, read in place; rows past C are never used) by
   NR output channels */
static void FN(wg_grad_products)(const scalar *v, const scalar *q, const wg_geo *g, i64 Cr,
                                 scalar *du) {
    i64 TB = g->TB, Cp = g->Cp, Op = g->Op;
    for (int xi = 0; xi < 16; xi++)
        for (i64 c0 = 0; c0 < Cr; c0 += MR)
            for (i64 j = 0; j < Op; j += NR) {
                FN(gvec) acc[2 * MR];
                FN(gemm_acc)(TB, v + xi * TB * Cp + c0, Cp, 1, q + xi * TB * Op + j, Op, acc);
                scalar *c = du + (xi * Cr + c0) * Op + j;
                for (i64 r = 0; r < MR; r++) {
                    FN(gst)(c + r * Op, FN(gld)(c + r * Op) + acc[2 * r]);
                    FN(gst)(c + r * Op + VL, FN(gld)(c + r * Op + VL) + acc[2 * r + 1]);
                }
            }
}

/* gw (O, C, 3, 3) = the gradient of winograd_forward in w for the output gradient gr (N, O,
   OH, OW): G^T dU G of the transformed products summed over all tiles; then (gb not NULL)
   gb (O,) = gr summed over N, OH, OW. Returns 0, 1 when x or gr is not all finite (nothing
   written; the implicit GEMM then runs) or -1 when memory ran out. The sums of the threads
   are added in thread order: the result depends on the thread count, not on timing */
EMBER_API int FN(winograd_weight_grad)(const scalar *x, const scalar *gr, scalar *gw,
                                       scalar *gb, i64 N, i64 C, i64 H, i64 W, i64 O, i64 pt,
                                       i64 pl, i64 OH, i64 OW, int nt) {
#ifndef _OPENMP
    nt = 1;
#endif
    wg_geo g = FN(wg_geometry)(N, C, H, W, O, pt, pl, OH, OW);
    i64 blocks = gemm_cdiv(g.T, g.TB);
    if (nt > blocks) nt = (int)blocks;
    i64 Cr = gemm_cdiv(C, MR) * MR, gh = 2 * g.th, gwd = 2 * g.tw;
    i64 nx = N * g.Hp * g.Wp * g.Cp, ng = N * gh * gwd * g.Op, nacc = 16 * Cr * g.Op;
    scalar *xp = gemm_grow(&wg_buf, &wg_cap, sizeof(scalar) * (nx + ng + nt * nacc) +
                                                 sizeof(double) * nt * g.Op);
    if (!xp) return -1;
    scalar *gp = xp + nx, *acc = gp + ng;
    double *bsum = (double *)(acc + nt * nacc);
    scalar bad = 0;
    int failed = 0;
    GEMM_PARALLEL(nt) {
        i64 t = THREAD_ID(), lo, hi;
        gemm_range(N, nt, t, &lo, &hi);
        scalar b1 = FN(wg_pad)(x, xp, C, H, W, g.Hp, g.Wp, pt, pl, g.Cp, lo, hi);
        scalar b2 = FN(wg_pad)(gr, gp, O, OH, OW, gh, gwd, 0, 0, g.Op, lo, hi);
        double *bs = bsum + t * g.Op;
        for (i64 o = 0; o < g.Op; o++) bs[o] = 0;
        for (i64 e = lo * gh * gwd; gb && e < hi * gh * gwd; e++) { /* the bias, in double */
            const scalar *p = gp + e * g.Op;
            SIMD
            for (i64 o = 0; o < g.Op; o++) bs[o] += p[o];
        }
        EMBER_PRAGMA(omp critical)
        bad += b1 + b2;
        EMBER_PRAGMA(omp barrier)
        scalar *du = acc + t * nacc;
        i64 nv = 16 * g.TB * g.Cp + MR, nq = 16 * g.TB * g.Op;
        scalar *v = bad == 0 ? gemm_grow(&wg_blk, &wg_blk_cap, sizeof(scalar) * (nv + nq)) : NULL;
        if (bad == 0 && !v) failed = 1;
        if (v) {
            memset(du, 0, sizeof(scalar) * nacc);
            memset(v + nv - MR, 0, sizeof(scalar) * MR); /* read by rows past C: never used */
        }
        gemm_range(blocks, nt, t, &lo, &hi);
        for (i64 k = lo; v && k < hi; k++) {
            FN(wg_input)(xp, &g, k * g.TB, v, g.Cp, g.TB * g.Cp);
            FN(wg_grad)(gp, &g, k * g.TB, v + nv);
            FN(wg_grad_products)(v, v + nv, &g, Cr, du);
        }
    }
    if (failed || bad != 0) {
        wg_release();
        return failed ? -1 : 1;
    }
    for (i64 e = 0; e < nacc; e++)
        for (i64 t = 1; t < nt; t++) acc[e] += acc[t * nacc + e];
    for (i64 o = 0; o < O; o++)
        for (i64 c = 0; c < C; c++) {
            scalar d[16], r[3][4];
            for (int xi = 0; xi < 16; xi++) d[xi] = acc[(xi * Cr + c) * g.Op + o];
            for (int j = 0; j < 4; j++) { /* G^T dU: rows 0..2 */
                scalar h = (d[4 + j] + d[8 + j]) * LIT(0.5);
                r[0][j] = d[j] + h;
                r[1][j] = (d[4 + j] - d[8 + j]) * LIT(0.5);
                r[2][j] = h + d[12 + j];
            }
            scalar *k = gw + (o * C + c) * 9;
            for (int i = 0; i < 3; i++) { /* (G^T dU) G */
                scalar h = (r[i][1] + r[i][2]) * LIT(0.5);
                k[3 * i] = r[i][0] + h;
                k[3 * i + 1] = (r[i][1] - r[i][2]) * LIT(0.5);
                k[3 * i + 2] = h + r[i][3];
            }
        }
    for (i64 o = 0; gb && o < O; o++) {
        double total = 0;
        for (i64 t = 0; t < nt; t++) total += bsum[t * g.Op + o];
        gb[o] = (scalar)total;
    }
    wg_release();
    return 0;
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
        "int winograd_weight_grad(const scalar *x, const scalar *gr, scalar *gw, scalar *gb,"
        " i64 N, i64 C, i64 H, i64 W, i64 O, i64 pt, i64 pl, i64 OH, i64 OW, int nt)",
    ),
    body=BODY,
    shared=SHARED,
    follows=(("winograd_forward", "winograd_weight_grad"),),  # a training step's backward
)

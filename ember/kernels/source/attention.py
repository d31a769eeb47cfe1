"""C kernels of ``scaled_dot_product_attention``, forward and backward, fused per (batch,
head) pair.

The operands are seen as ``q (B, H, L, E)``, ``k (B, H, S, E)``, ``v (B, H, S, Ev)`` and an
optional mask ``(B, H, L, S)``, each read in place through its own element strides (``st``:
16 strides, four per operand in the order q, k, v, mask; a broadcast dim has stride 0), so
the strided views a model makes with ``transpose(1, 2)`` are never copied by the caller.
The results (and the backward's ``g``) have their own (batch, head, row) strides (``ost``),
so that they can be laid out as ``(B, L, H, E)`` in memory, which the model's
``transpose(1, 2)`` back then reads without a copy.

One OpenMP item is one pair (each thread allocates its scratch once, and asks for the next
pair's rows a few at a time while it works on this one). The scaled ``q``, ``K^T`` and ``V``
(for the backward also ``K``, ``V^T`` and ``g``) are packed into contiguous, zero-padded,
64-byte aligned scratch; ``K^T`` and ``V^T`` of float rows by 8 x 8 tiles transposed in
registers. The packing also sums ``x - x`` over what it copies, which says whether every
operand is finite (no separate scan). Every product is a small matrix product done by one
register-blocked kernel (``sdpa_mm``, :mod:`.attention_mm`: 4 rows by 2 vectors of columns,
or by 1 vector for a last narrow block, accumulated in registers over the inner dim).

The forward works on 4 query rows at a time: their scores ``(scale q_i) . k_j`` (whole
vectors of columns up to the last one a row of the block sees), the mask (``mask_kind`` 1:
added float mask, 2: bool mask, nonzero = attend; ``causal``: ``j > i`` masked, top-left
aligned), ``e = exp(s - max)`` of the 4 rows together (``sdpa_exp_rows``: padding and
masked lanes are ``-inf``, whose exp is an exact 0; a float exponential specialized to
arguments ``<= 0``), ``p = e / sum(e)`` and ``o = p V``. With a mask (``safe``) a fully
masked row gives zeros, as ember's ``safe_softmax``.

The backward recomputes ``p`` (flash-attention style: ``T`` is small), 64 query rows at a
time, and gives ``dq = scale (ds K)``, ``dk = ds^T (scale q)``, ``dv = p^T g`` with
``ds = (dp - sum(dp p)) p``, ``dp = g V^T``: the composite's formulas (sums in another
order). ``dq`` rows are written once, straight to their place; so are ``dk`` and ``dv``
with one chunk of 64 query rows, else they are summed in contiguous scratch over the chunks
and copied out at the end of the pair (summing into strided rows thrashes the cache sets
those rows share). The causal columns ``j > i`` are skipped only when every operand is
finite (their weight is an exact 0, so skipping changes nothing); otherwise they are
computed so that NaN and inf spread exactly as through the composite's matmuls.

Example:
    >>> from ember.kernels.source.attention import UNIT
    >>> UNIT.name
    'attention'
"""

from __future__ import annotations

from . import Unit
from .attention_mm import HELPERS, SHARED

BODY = (
    HELPERS
    + r"""
EMBER_API void FN(sdpa_forward)(const scalar *q, const scalar *k, const scalar *v,
                                const void *mask, scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E,
                                i64 Ev, const i64 *st, const i64 *ost, int mask_kind, int causal,
                                scalar scale, int nt) {
    int safe = causal || mask_kind != 0;
    i64 Sp = sdpa_up(S, NC), Ep = sdpa_up(E, NC), Evp = sdpa_up(Ev, NC);
    /* prefetch the next pair's rows when they are short rows that fit in cache */
    int pf = st[3] == 1 && st[7] == 1 && st[11] == 1 && L * E + S * (E + Ev) <= 32768;
    SDPA_PARALLEL(nt) {
        i64 nw = E * Sp + S * Evp + L * Ep + SDPA_R * Sp;
        scalar *work = (scalar *)sdpa_alloc(sizeof(scalar) * nw);
        SDPA_FOR
        for (i64 pair = 0; pair < B * H; pair++) {
            if (!work) continue;
            SDPA_PAIR(pair);
            scalar *Kt = work, *V = Kt + E * Sp, *Q = V + S * Evp, *P = Q + L * Ep;
            /* the next pair's rows, asked for a few at a time while this pair computes */
            const scalar *nxq = NULL, *nxk = NULL, *nxv = NULL;
            if (pair + 1 < B * H && pf) {
                i64 b1 = (pair + 1) / H, h1 = (pair + 1) % H;
                nxq = q + b1 * st[0] + h1 * st[1];
                nxk = k + b1 * st[4] + h1 * st[5];
                nxv = v + b1 * st[8] + h1 * st[9];
            }
            scalar bad = FN(sdpa_pack_t)(kp, st[6], st[7], S, E, Kt, Sp);
            bad += FN(sdpa_pack)(vp, st[10], st[11], S, Ev, 1, V, Evp);
            bad += FN(sdpa_pack)(qp, st[2], st[3], L, E, scale, Q, Ep);
            int skip = causal && bad == 0;
            int cz = causal && !skip && !mask_kind; /* the causal mask added in vectors */
            scalar *op = o + b * ost[0] + h * ost[1], inv[SDPA_R];
            for (i64 i0 = 0; i0 < L; i0 += SDPA_R) {
                i64 rows = L - i0 < SDPA_R ? L - i0 : SDPA_R;
                i64 nmax = skip && i0 + rows < S ? i0 + rows : S;
                if (nxq) {
                    i64 s0 = i0 * S / L, s1 = (i0 + rows) * S / L;
                    FN(sdpa_prefetch)(nxq + i0 * st[2], rows, st[2], E);
                    FN(sdpa_prefetch)(nxk + s0 * st[6], s1 - s0, st[6], E);
                    FN(sdpa_prefetch)(nxv + s0 * st[10], s1 - s0, st[10], Ev);
                }
                FN(sdpa_mm)(Q + i0 * Ep, Ep, 1, Kt, Sp, P, Sp, rows, sdpa_up(nmax, VL), 0, E,
                            1, 0);
                if (mask_kind)
                    FN(sdpa_add_mask)(P, Sp, i0, rows, S, skip, mf, mb, st[14], st[15], causal);
                i64 nv = FN(sdpa_exp_rows)(P, Sp, i0, rows, S, skip, cz, safe, inv);
                for (i64 r = 0; r < rows; r++) { /* p = e / sum, then o = p V */
                    FN(vec) ir = FN(vset)(inv[r]);
                    for (i64 j = 0; j < nv; j += VL)
                        FN(vst)(P + r * Sp + j, FN(vld)(P + r * Sp + j) * ir);
                }
                FN(sdpa_mm)(P, Sp, 1, V, Evp, op + i0 * ost[2], ost[2], rows, Ev, 0, nmax, 1, 0);
            }
        }
        free(work);
    }
}

#define SDPA_LB 64 /* query rows whose probabilities the backward keeps at once */

/* g: the output gradient (B, H, L, Ev); dq, dk, dv: the outputs; ost: the (batch, head, row)
   element strides of g, dq, dk and dv (12; their columns are contiguous) */
EMBER_API void FN(sdpa_backward)(const scalar *g, const scalar *q, const scalar *k,
                                 const scalar *v, const void *mask, scalar *dq, scalar *dk,
                                 scalar *dv, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev,
                                 const i64 *st, const i64 *ost, int mask_kind, int causal,
                                 scalar scale, int nt) {
    int safe = causal || mask_kind != 0;
    i64 Sp = sdpa_up(S, NC), Ep = sdpa_up(E, NC), Evp = sdpa_up(Ev, NC);
    i64 LB = L < SDPA_LB ? L : SDPA_LB;
    /* prefetch the next pair's rows when they are short rows that fit in cache */
    int pf = st[3] == 1 && st[7] == 1 && st[11] == 1 && L * E + S * (E + Ev) <= 32768;
    SDPA_PARALLEL(nt) {
        scalar *work = (scalar *)sdpa_alloc(sizeof(scalar) * (E * Sp + Ev * Sp + S * Ep + L * Ep +
                                                          L * Evp + 2 * LB * Sp + S * Ep +
                                                          S * Evp));
        SDPA_FOR
        for (i64 pair = 0; pair < B * H; pair++) {
            if (!work) continue;
            SDPA_PAIR(pair);
            const scalar *gp = g + b * ost[0] + h * ost[1];
            scalar *Kt = work, *Vt = Kt + E * Sp, *K = Vt + Ev * Sp, *Q = K + S * Ep;
            scalar *G = Q + L * Ep, *P = G + L * Evp, *D = P + LB * Sp;
            scalar *DK = D + LB * Sp, *DV = DK + S * Ep;
            /* the next pair's rows, asked for a few at a time while this pair computes */
            const scalar *nxq = NULL, *nxk = NULL, *nxv = NULL, *nxg = NULL;
            if (pair + 1 < B * H && pf) {
                i64 b1 = (pair + 1) / H, h1 = (pair + 1) % H;
                nxq = q + b1 * st[0] + h1 * st[1];
                nxk = k + b1 * st[4] + h1 * st[5];
                nxv = v + b1 * st[8] + h1 * st[9];
                nxg = g + b1 * ost[0] + h1 * ost[1];
            }
            scalar bad = FN(sdpa_pack)(kp, st[6], st[7], S, E, 1, K, Ep);
            FN(sdpa_pack_t)(K, Ep, 1, S, E, Kt, Sp); /* reads L1, not strided memory */
            bad += FN(sdpa_pack_t)(vp, st[10], st[11], S, Ev, Vt, Sp);
            bad += FN(sdpa_pack)(qp, st[2], st[3], L, E, scale, Q, Ep);
            bad += FN(sdpa_pack)(gp, ost[2], 1, L, Ev, 1, G, Evp);
            int skip = causal && bad == 0;
            int cz = causal && !skip && !mask_kind; /* the causal mask added in vectors */
            scalar inv[SDPA_R];
            i64 qs = ost[5], ks = ost[8], vs = ost[11]; /* row strides of dq, dk, dv */
            scalar *dqp = dq + b * ost[3] + h * ost[4];
            scalar *dkp = dk + b * ost[6] + h * ost[7], *dvp = dv + b * ost[9] + h * ost[10];
            /* dk and dv: with one chunk of rows each of their rows is written once, straight
               to its place; with several they are summed in contiguous scratch and copied out
               at the end (summing into strided rows thrashes the cache sets they share) */
            int direct = L <= LB;
            scalar *dkw = direct ? dkp : DK, *dvw = direct ? dvp : DV;
            i64 kw = direct ? ks : Ep, vw = direct ? vs : Evp;
            for (i64 c0 = 0; c0 < L; c0 += LB) {
                i64 cn = L - c0 < LB ? L - c0 : LB;
                /* p and ds = (dp - sum(dp p)) p of the chunk's rows, and their dq */
                for (i64 r0 = 0; r0 < cn; r0 += SDPA_R) {
                    i64 i0 = c0 + r0, rows = cn - r0 < SDPA_R ? cn - r0 : SDPA_R;
                    i64 nmax = skip && i0 + rows < S ? i0 + rows : S;
                    scalar *Pr = P + r0 * Sp, *Dr = D + r0 * Sp;
                    i64 nb = sdpa_up(nmax, VL);
                    if (nxq) {
                        i64 s0 = i0 * S / L, s1 = (i0 + rows) * S / L;
                        FN(sdpa_prefetch)(nxq + i0 * st[2], rows, st[2], E);
                        FN(sdpa_prefetch)(nxg + i0 * ost[2], rows, ost[2], Ev);
                        FN(sdpa_prefetch)(nxk + s0 * st[6], s1 - s0, st[6], E);
                        FN(sdpa_prefetch)(nxv + s0 * st[10], s1 - s0, st[10], Ev);
                    }
                    FN(sdpa_mm)(Q + i0 * Ep, Ep, 1, Kt, Sp, Pr, Sp, rows, nb, 0, E, 1, 0);
                    FN(sdpa_mm)(G + i0 * Evp, Evp, 1, Vt, Sp, Dr, Sp, rows, nb, 0, Ev, 1, 0);
                    if (mask_kind)
                        FN(sdpa_add_mask)(Pr, Sp, i0, rows, S, skip, mf, mb, st[14], st[15],
                                          causal);
                    i64 nv = FN(sdpa_exp_rows)(Pr, Sp, i0, rows, S, skip, cz, safe, inv);
                    FN(sdpa_ds_rows)(Pr, Dr, Sp, i0, rows, S, nv, skip, inv);
                    /* dq: each row once, straight to its place */
                    FN(sdpa_mm)(Dr, Sp, 1, K, Ep, dqp + i0 * qs, qs, rows, E, 0, nmax, scale, 0);
                }
                /* dv (+)= p^T g and dk (+)= ds^T (scale q) over the chunk's rows (those below
                   the diagonal only, when skipping): the first chunk writes, the others add;
                   rows that no query of the first chunk sees are zeroed */
                int acc = c0 > 0;
                for (i64 j0 = 0; j0 < S; j0 += SDPA_R) {
                    i64 rows = S - j0 < SDPA_R ? S - j0 : SDPA_R;
                    i64 k0 = skip && j0 > c0 ? j0 - c0 : 0;
                    if (k0 >= cn) {
                        if (acc) break;
                        for (i64 u = j0; u < j0 + rows; u++) {
                            memset(dkw + u * kw, 0, sizeof(scalar) * E);
                            memset(dvw + u * vw, 0, sizeof(scalar) * Ev);
                        }
                        continue;
                    }
                    FN(sdpa_mm)(P + j0, 1, Sp, G + c0 * Evp, Evp, dvw + j0 * vw, vw, rows, Ev,
                                k0, cn, 1, acc);
                    FN(sdpa_mm)(D + j0, 1, Sp, Q + c0 * Ep, Ep, dkw + j0 * kw, kw, rows, E, k0,
                                cn, 1, acc);
                }
            }
            if (!direct) /* the sums of several chunks, copied out */
                for (i64 j = 0; j < S; j++) {
                    FN(sdpa_copy)(dkp + j * ks, DK + j * Ep, E, 1);
                    FN(sdpa_copy)(dvp + j * vs, DV + j * Evp, Ev, 1);
                }
        }
        free(work);
    }
}
#undef VL
#undef NC
"""
)

UNIT = Unit(
    name="attention",
    functions=(
        "void sdpa_forward(const scalar *q, const scalar *k, const scalar *v, const void *mask,"
        " scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev, const i64 *st, const i64 *ost,"
        " int mask_kind, int causal, scalar scale, int nt)",
        "void sdpa_backward(const scalar *g, const scalar *q, const scalar *k, const scalar *v,"
        " const void *mask, scalar *dq, scalar *dk, scalar *dv, i64 B, i64 H, i64 L, i64 S,"
        " i64 E, i64 Ev, const i64 *st, const i64 *ost, int mask_kind, int causal,"
        " scalar scale, int nt)",
    ),
    body=BODY,
    shared=SHARED,
)

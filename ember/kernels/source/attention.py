"""C kernels of ``scaled_dot_product_attention``, forward and backward, fused per (batch,
head) pair.

The operands are seen as ``q (B, H, L, E)``, ``k (B, H, S, E)``, ``v (B, H, S, Ev)`` and an
optional mask ``(B, H, L, S)``, each read in place through its own element strides (``st``:
16 strides, four per operand in the order q, k, v, mask; a broadcast dim has stride 0), so
the strided views a model makes with ``transpose(1, 2)`` are never copied by the caller.
One OpenMP item is one pair: its ``K^T``, ``V`` (and for the backward ``K`` and ``V^T``)
are packed into contiguous scratch, then every query row is done at once: the scores
``(scale q_i) . k_j``, the mask (``mask_kind`` 1: added float mask, 2: bool mask, nonzero =
attend; ``causal``: ``j > i`` masked, top-left aligned), a row softmax, and ``o_i = p V``.
With a mask (``safe``) a fully masked row gives zeros, as ember's ``safe_softmax``.

The backward recomputes ``p`` row by row (flash-attention style: ``T`` is small) and gives
``dq = scale (ds K)``, ``dk = ds^T (scale q)``, ``dv = p^T g`` with ``ds = (dp - sum(dp p))
p``, ``dp = g V^T``: the composite's formulas, in its order of operations. The causal
columns ``j > i`` are skipped only when every operand is finite (their weight is an exact 0,
so skipping changes nothing); otherwise they are computed so that NaN and inf spread exactly
as through the composite's matmuls.

Example:
    >>> from ember.kernels.source.attention import UNIT
    >>> UNIT.name
    'attention'
"""

from __future__ import annotations

from . import Unit

BODY = r"""
/* sum of x - x over n strided entries: 0 when all are finite, NaN otherwise */
static scalar FN(sdpa_nonfinite)(const scalar *x, i64 n0, i64 n1, i64 s0, i64 s1) {
    scalar acc = 0;
    for (i64 a = 0; a < n0; a++) {
        const scalar *r = x + a * s0;
        SIMD_SUM(acc)
        for (i64 b = 0; b < n1; b++) acc += r[b * s1] - r[b * s1];
    }
    return acc;
}

/* scores of row i into p[0..S) (n of them when skipping the causal columns), masked, then
   softmaxed in place; qi is the scaled query row, Kt the packed (E, S) keys */
static void FN(sdpa_probs)(const scalar *restrict qi, const scalar *restrict Kt, scalar *restrict p,
                           i64 i, i64 S, i64 E, i64 n, const scalar *mf, const unsigned char *mb,
                           i64 ms, int causal, int safe) {
    for (i64 j = 0; j < n; j++) p[j] = 0;
    for (i64 e = 0; e < E; e++) {
        scalar qe = qi[e];
        const scalar *kr = Kt + e * S;
        SIMD
        for (i64 j = 0; j < n; j++) p[j] += qe * kr[j];
    }
    if (causal)
        for (i64 j = i + 1; j < n; j++) p[j] += -INFINITY;
    if (mf)
        for (i64 j = 0; j < n; j++) p[j] += mf[j * ms];
    if (mb)
        for (i64 j = 0; j < n; j++) p[j] += mb[j * ms] ? LIT(0.0) : -INFINITY;
    scalar m = -INFINITY;
    SIMD_MAX(m)
    for (i64 j = 0; j < n; j++) m = p[j] > m ? p[j] : m;
    if (safe && m == -INFINITY) m = 0;
    scalar s = 0;
    SIMD_SUM(s)
    for (i64 j = 0; j < n; j++) {
        scalar e = EXP(p[j] - m);
        p[j] = e;
        s += e;
    }
    if (safe && s == 0) s = 1;
    scalar r = LIT(1.0) / s;
    SIMD
    for (i64 j = 0; j < n; j++) p[j] *= r;
}

/* pack the pair's keys as Kt (E, S) and, when wanted, K (S, E); values as V (S, Ev) or
   Vt (Ev, S) */
static void FN(sdpa_pack)(const scalar *k, const scalar *v, const i64 *st, i64 S, i64 E, i64 Ev,
                          scalar *Kt, scalar *K, scalar *V, scalar *Vt) {
    for (i64 j = 0; j < S; j++) {
        const scalar *kr = k + j * st[6];
        const scalar *vr = v + j * st[10];
        for (i64 e = 0; e < E; e++) Kt[e * S + j] = kr[e * st[7]];
        if (K)
            for (i64 e = 0; e < E; e++) K[j * E + e] = kr[e * st[7]];
        if (V)
            for (i64 e = 0; e < Ev; e++) V[j * Ev + e] = vr[e * st[11]];
        if (Vt)
            for (i64 e = 0; e < Ev; e++) Vt[e * S + j] = vr[e * st[11]];
    }
}

EMBER_API void FN(sdpa_forward)(const scalar *q, const scalar *k, const scalar *v,
                                const void *mask, scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E,
                                i64 Ev, const i64 *st, int mask_kind, int causal, scalar scale,
                                int nt) {
    int safe = causal || mask_kind != 0;
    PARALLEL_FOR(nt)
    for (i64 pair = 0; pair < B * H; pair++) {
        i64 b = pair / H, h = pair % H;
        const scalar *qp = q + b * st[0] + h * st[1];
        const scalar *kp = k + b * st[4] + h * st[5];
        const scalar *vp = v + b * st[8] + h * st[9];
        i64 mo = b * st[12] + h * st[13];
        const scalar *mf = mask_kind == 1 ? (const scalar *)mask + mo : NULL;
        const unsigned char *mb = mask_kind == 2 ? (const unsigned char *)mask + mo : NULL;
        scalar *work = (scalar *)malloc(sizeof(scalar) * (E * S + S * Ev + S + E));
        if (!work) continue;
        scalar *Kt = work, *Vt = Kt + E * S, *p = Vt + S * Ev, *qi = p + S;
        FN(sdpa_pack)(kp, vp, st, S, E, Ev, Kt, NULL, NULL, Vt);
        int skip = causal && FN(sdpa_nonfinite)(qp, L, E, st[2], st[3]) == 0 &&
                   FN(sdpa_nonfinite)(kp, S, E, st[6], st[7]) == 0 &&
                   FN(sdpa_nonfinite)(vp, S, Ev, st[10], st[11]) == 0;
        scalar *op = o + pair * L * Ev;
        for (i64 i = 0; i < L; i++) {
            const scalar *qr = qp + i * st[2];
            for (i64 e = 0; e < E; e++) qi[e] = qr[e * st[3]] * scale;
            i64 n = skip && i + 1 < S ? i + 1 : S;
            FN(sdpa_probs)(qi, Kt, p, i, S, E, n, mf ? mf + i * st[14] : NULL,
                           mb ? mb + i * st[14] : NULL, st[15], causal, safe);
            for (i64 e = 0; e < Ev; e++) { /* dot products: no store-to-load chain */
                const scalar *vr = Vt + e * S;
                scalar acc = 0;
                SIMD_SUM(acc)
                for (i64 j = 0; j < n; j++) acc += p[j] * vr[j];
                op[i * Ev + e] = acc;
            }
        }
        free(work);
    }
}

/* g: the output gradient, C-contiguous (B, H, L, Ev); dq, dk, dv: C-contiguous outputs */
EMBER_API void FN(sdpa_backward)(const scalar *g, const scalar *q, const scalar *k,
                                 const scalar *v, const void *mask, scalar *dq, scalar *dk,
                                 scalar *dv, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev,
                                 const i64 *st, int mask_kind, int causal, scalar scale, int nt) {
    int safe = causal || mask_kind != 0;
    PARALLEL_FOR(nt)
    for (i64 pair = 0; pair < B * H; pair++) {
        i64 b = pair / H, h = pair % H;
        const scalar *qp = q + b * st[0] + h * st[1];
        const scalar *kp = k + b * st[4] + h * st[5];
        const scalar *vp = v + b * st[8] + h * st[9];
        const scalar *gp = g + pair * L * Ev;
        i64 mo = b * st[12] + h * st[13];
        const scalar *mf = mask_kind == 1 ? (const scalar *)mask + mo : NULL;
        const unsigned char *mb = mask_kind == 2 ? (const unsigned char *)mask + mo : NULL;
        scalar *work = (scalar *)malloc(sizeof(scalar) * (E * S + Ev * S + 2 * S + E));
        if (!work) continue;
        scalar *Kt = work, *Vt = Kt + E * S, *p = Vt + Ev * S, *dp = p + S, *qi = dp + S;
        FN(sdpa_pack)(kp, vp, st, S, E, Ev, Kt, NULL, NULL, Vt);
        int skip = causal && FN(sdpa_nonfinite)(qp, L, E, st[2], st[3]) == 0 &&
                   FN(sdpa_nonfinite)(kp, S, E, st[6], st[7]) == 0 &&
                   FN(sdpa_nonfinite)(vp, S, Ev, st[10], st[11]) == 0 &&
                   FN(sdpa_nonfinite)(gp, L, Ev, Ev, 1) == 0;
        scalar *dqp = dq + pair * L * E, *dkp = dk + pair * S * E, *dvp = dv + pair * S * Ev;
        memset(dkp, 0, sizeof(scalar) * S * E);
        memset(dvp, 0, sizeof(scalar) * S * Ev);
        for (i64 i = 0; i < L; i++) {
            const scalar *qr = qp + i * st[2];
            const scalar *gi = gp + i * Ev;
            for (i64 e = 0; e < E; e++) qi[e] = qr[e * st[3]] * scale;
            i64 n = skip && i + 1 < S ? i + 1 : S;
            FN(sdpa_probs)(qi, Kt, p, i, S, E, n, mf ? mf + i * st[14] : NULL,
                           mb ? mb + i * st[14] : NULL, st[15], causal, safe);
            for (i64 j = 0; j < n; j++) dp[j] = 0;
            for (i64 e = 0; e < Ev; e++) {
                scalar ge = gi[e];
                const scalar *vr = Vt + e * S;
                SIMD
                for (i64 j = 0; j < n; j++) dp[j] += ge * vr[j];
            }
            scalar d = 0;
            SIMD_SUM(d)
            for (i64 j = 0; j < n; j++) d += dp[j] * p[j];
            SIMD
            for (i64 j = 0; j < n; j++) dp[j] = (dp[j] - d) * p[j];
            for (i64 j = 0; j < n; j++) {
                scalar sj = dp[j], pj = p[j];
                scalar *restrict dkr = dkp + j * E, *restrict dvr = dvp + j * Ev;
                SIMD
                for (i64 e = 0; e < E; e++) dkr[e] += sj * qi[e];
                SIMD
                for (i64 e = 0; e < Ev; e++) dvr[e] += pj * gi[e];
            }
            for (i64 e = 0; e < E; e++) {
                const scalar *kr = Kt + e * S;
                scalar acc = 0;
                SIMD_SUM(acc)
                for (i64 j = 0; j < n; j++) acc += dp[j] * kr[j];
                dqp[i * E + e] = acc * scale;
            }
        }
        free(work);
    }
}
"""

UNIT = Unit(
    name="attention",
    functions=(
        "void sdpa_forward(const scalar *q, const scalar *k, const scalar *v, const void *mask,"
        " scalar *o, i64 B, i64 H, i64 L, i64 S, i64 E, i64 Ev, const i64 *st, int mask_kind,"
        " int causal, scalar scale, int nt)",
        "void sdpa_backward(const scalar *g, const scalar *q, const scalar *k, const scalar *v,"
        " const void *mask, scalar *dq, scalar *dk, scalar *dv, i64 B, i64 H, i64 L, i64 S,"
        " i64 E, i64 Ev, const i64 *st, int mask_kind, int causal, scalar scale, int nt)",
    ),
    body=BODY,
)

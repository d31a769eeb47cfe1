"""C kernel of ``cross_entropy`` over ``(N, C)`` logits with class-index targets: the loss of
each row and, in the same pass, its gradient (the fused loss + gradient of PyTorch's fused
cross-entropy), with class weights, ``ignore_index`` and label smoothing.

For row ``n`` with target ``t`` (``valid = t != ignore_index``, ``wt = w[t] * valid``),
``lse = log(sum(exp(x)))``: ``loss = (lse - x[t]) * wt``, and with smoothing ``eps``
``loss = (1 - eps) * loss - eps / C * valid * (sum_c w_c x_c - lse * sum_c w_c)``. The gradient
row, times the row's scale ``s`` (``scale[n]``, or ``scale0`` when ``scale`` is NULL), is
``softmax(x) * s * Q - s * (1 - eps) * wt * onehot(t) - s * valid * eps / C * w`` with
``Q = (1 - eps) * wt + eps / C * valid * sum(w)`` (the NumPy path's formula, in its order).
``loss``/``wt`` may be NULL (gradient only), ``dx`` may be NULL (loss only), ``w`` may be
NULL (all ones). The kernel first checks every target and returns the index of the first
one outside ``[0, C)`` (not ignored) without computing anything, else -1.

Example:
    >>> from ember.kernels.source.loss import UNIT
    >>> UNIT.name
    'loss'
"""

from __future__ import annotations

from . import Unit

BODY = r"""
EMBER_API i64 FN(cross_entropy)(const scalar *x, const i64 *t, const scalar *w,
                                const scalar *scale, double scale0, scalar *loss, scalar *wt,
                                scalar *dx, i64 N, i64 C, i64 ignore_index, double eps, int nt) {
    for (i64 n = 0; n < N; n++)
        if (t[n] != ignore_index && (t[n] < 0 || t[n] >= C)) return n;
    scalar wsum = (scalar)C;
    if (w) {
        wsum = 0;
        for (i64 c = 0; c < C; c++) wsum += w[c];
    }
    const scalar e = (scalar)eps, ec = (scalar)(eps / (double)C);
    PARALLEL_FOR(nt)
    for (i64 n = 0; n < N; n++) {
        const scalar *restrict xr = x + n * C;
        scalar *restrict dr = dx ? dx + n * C : NULL;
        int valid = t[n] != ignore_index;
        i64 tc = valid ? t[n] : 0;
        scalar wn = w ? w[tc] * (scalar)valid : (scalar)valid;
        scalar m = -INFINITY;
        SIMD_MAX(m)
        for (i64 c = 0; c < C; c++) m = xr[c] > m ? xr[c] : m;
        scalar s = 0;
        if (dr) {
            SIMD_SUM(s)
            for (i64 c = 0; c < C; c++) {
                scalar ex = EXP(xr[c] - m);
                dr[c] = ex;
                s += ex;
            }
        } else {
            SIMD_SUM(s)
            for (i64 c = 0; c < C; c++) s += EXP(xr[c] - m);
        }
        scalar lse = LOG(s) + m;
        if (loss) {
            scalar l = (lse - xr[tc]) * wn;
            if (eps > 0) {
                scalar dot = 0;
                if (w) {
                    SIMD_SUM(dot)
                    for (i64 c = 0; c < C; c++) dot += w[c] * xr[c];
                } else {
                    SIMD_SUM(dot)
                    for (i64 c = 0; c < C; c++) dot += xr[c];
                }
                scalar smooth = (dot - lse * wsum) * (scalar)valid;
                l = (1 - e) * l - ec * smooth;
            }
            loss[n] = l;
        }
        if (wt) wt[n] = wn;
        if (!dr) continue;
        scalar sn = scale ? scale[n] : (scalar)scale0;
        scalar coef = (1 - e) * wn;
        scalar q = eps > 0 ? coef + ec * wsum * (scalar)valid : coef;
        scalar f = (LIT(1.0) / s) * (sn * q);
        if (eps > 0) {
            scalar sv = sn * (scalar)valid * ec;
            if (w) {
                SIMD
                for (i64 c = 0; c < C; c++) dr[c] = dr[c] * f - sv * w[c];
            } else {
                SIMD
                for (i64 c = 0; c < C; c++) dr[c] = dr[c] * f - sv;
            }
        } else {
            SIMD
            for (i64 c = 0; c < C; c++) dr[c] *= f;
        }
        dr[tc] -= sn * coef;
    }
    return -1;
}
"""

UNIT = Unit(
    name="loss",
    functions=(
        "i64 cross_entropy(const scalar *x, const i64 *t, const scalar *w, const scalar *scale,"
        " double scale0, scalar *loss, scalar *wt, scalar *dx, i64 N, i64 C, i64 ignore_index,"
        " double eps, int nt)",
    ),
    body=BODY,
)

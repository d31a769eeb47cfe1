"""C kernel of ``embedding``'s backward: the scatter-add ``out[idx[k]] += g[k]`` of ``n``
gradient rows of width ``D`` into a zeroed ``(V, D)`` table, skipping ``padding_idx`` (its row
stays zero, as in PyTorch; pass -1 for none).

Threads split the *table*, not the lookups: thread ``t`` owns rows ``[V t / T, V (t+1) / T)``
and scans all lookups, adding only those that land in its rows. No two threads write one
row, and each row receives its additions in lookup order, so the result is deterministic
and equal to the single-threaded one. The kernel first checks every index and returns the
position of the first one outside ``[0, V)`` without writing anything, else -1.

Example:
    >>> from ember.kernels.source.embedding import UNIT
    >>> UNIT.name
    'embedding'
"""

from __future__ import annotations

from . import Unit

BODY = r"""
EMBER_API i64 FN(embedding_backward)(const scalar *g, const i64 *idx, scalar *out, i64 n, i64 D,
                                     i64 V, i64 padding_idx, int nt) {
    for (i64 k = 0; k < n; k++)
        if (idx[k] < 0 || idx[k] >= V) return k;
    int parts = nt > 1 ? nt : 1;
    PARALLEL_FOR(nt)
    for (int part = 0; part < parts; part++) {
        i64 lo = V * part / parts, hi = V * (part + 1) / parts;
        for (i64 k = 0; k < n; k++) {
            i64 r = idx[k];
            if (r < lo || r >= hi || r == padding_idx) continue;
            scalar *restrict dst = out + r * D;
            const scalar *restrict src = g + k * D;
            SIMD
            for (i64 d = 0; d < D; d++) dst[d] += src[d];
        }
    }
    return -1;
}
"""

UNIT = Unit(
    name="embedding",
    functions=(
        "i64 embedding_backward(const scalar *g, const i64 *idx, scalar *out, i64 n, i64 D, i64 V,"
        " i64 padding_idx, int nt)",
    ),
    body=BODY,
)

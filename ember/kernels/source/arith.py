"""C kernels of the arithmetic of two arrays of one shape (``add``, ``sub``, ``mul``), and of
the sums down the columns of a matrix (a bias gradient), on several threads: NumPy runs
them on one. A training step's residual adds (W3: 2048 x 128 floats, and as many in the
backward, where two branches' gradients meet) read and write more than a core's L2, so one
thread streams them at its L3 bandwidth.

Each element is the one IEEE operation NumPy does: the results are bit-identical, inf and
NaN included.

Example:
    >>> from ember.kernels.source.arith import UNIT, OPS
    >>> UNIT.name, OPS["add"]
    ('arith', 0)
"""

from __future__ import annotations

from . import Unit

OPS = {"add": 0, "sub": 1, "mul": 2}  # the kernel's op codes
CS_BLOCK = 64  # rows column_sums sums into one partial

BODY = (
    f"#define CS_BLOCK {CS_BLOCK}\n"
    + r"""
/* y[i] = a[i] op b[i] for i < n (op: 0 add, 1 sub, 2 mul); returns 0, or -1 for another op */
EMBER_API int FN(arith)(const scalar *a, const scalar *b, scalar *y, i64 n, int op, int nt) {
    switch (op) {
    case 0: ELEMENTWISE(n, nt, i, y[i] = a[i] + b[i]); return 0;
    case 1: ELEMENTWISE(n, nt, i, y[i] = a[i] - b[i]); return 0;
    case 2: ELEMENTWISE(n, nt, i, y[i] = a[i] * b[i]); return 0;
    }
    return -1;
}

/* y[c] = the sum over rows r < R of x[r C + c] (x contiguous): each block of CS_BLOCK rows
   summed row after row into a partial, the partials then summed in block order, so the
   result is the same on any number of threads. part: scratch of R / CS_BLOCK (rounded up)
   times C values, or NULL when R <= CS_BLOCK */
EMBER_API void FN(column_sums)(const scalar *x, scalar *y, scalar *part, i64 R, i64 C, int nt) {
    i64 nb = (R + CS_BLOCK - 1) / CS_BLOCK;
    scalar *dst = nb == 1 ? y : part;
    PARALLEL_FOR(nt)
    for (i64 b = 0; b < nb; b++) {
        scalar *p = dst + b * C;
        const scalar *xb = x + b * CS_BLOCK * C;
        i64 rows = R - b * CS_BLOCK < CS_BLOCK ? R - b * CS_BLOCK : CS_BLOCK;
        SIMD
        for (i64 c = 0; c < C; c++) p[c] = xb[c];
        for (i64 r = 1; r < rows; r++) {
            const scalar *xr = xb + r * C;
            SIMD
            for (i64 c = 0; c < C; c++) p[c] += xr[c];
        }
    }
    if (nb == 1) return;
    i64 chunks = (C + 255) / 256;
    PARALLEL_FOR(chunks > 1 ? nt : 1)
    for (i64 q = 0; q < chunks; q++) {
        i64 c0 = q * 256, c1 = c0 + 256 < C ? c0 + 256 : C;
        for (i64 c = c0; c < c1; c++) y[c] = part[c];
        for (i64 b = 1; b < nb; b++) {
            const scalar *p = part + b * C;
            SIMD
            for (i64 c = c0; c < c1; c++) y[c] += p[c];
        }
    }
}
"""
)

UNIT = Unit(
    name="arith",
    functions=(
        "int arith(const scalar *a, const scalar *b, scalar *y, i64 n, int op, int nt)",
        "void column_sums(const scalar *x, scalar *y, scalar *part, i64 R, i64 C, int nt)",
    ),
    body=BODY,
)

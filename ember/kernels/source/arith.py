"""C kernel of the arithmetic of two arrays of one shape (``add``, ``sub``, ``mul``), on
several threads: NumPy runs them on one. A training step's residual adds (W3: 2048 x 128
floats, and as many in the backward, where two branches' gradients meet) read and write
more than a core's L2, so one thread streams them at its L3 bandwidth.

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

BODY = r"""
/* y[i] = a[i] op b[i] for i < n (op: 0 add, 1 sub, 2 mul); returns 0, or -1 for another op */
EMBER_API int FN(arith)(const scalar *a, const scalar *b, scalar *y, i64 n, int op, int nt) {
    switch (op) {
    case 0: ELEMENTWISE(n, nt, i, y[i] = a[i] + b[i]); return 0;
    case 1: ELEMENTWISE(n, nt, i, y[i] = a[i] - b[i]); return 0;
    case 2: ELEMENTWISE(n, nt, i, y[i] = a[i] * b[i]); return 0;
    }
    return -1;
}
"""

UNIT = Unit(
    name="arith",
    functions=("int arith(const scalar *a, const scalar *b, scalar *y, i64 n, int op, int nt)",),
    body=BODY,
)

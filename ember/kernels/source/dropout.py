"""C kernel of ``dropout``: the scaled keep-mask from uniform draws, in one pass.

The uniform draws come from ember's generator (NumPy, float32), so the C kernels and the NumPy
path see the same random stream and give the same mask, bit for bit:
``mask[i] = u[i] >= (float)p ? scale : 0`` in the mask's element type. ``u`` and ``mask`` may
be the same buffer (float32 masks are written over the draws).

Example:
    >>> from ember.kernels.source.dropout import UNIT
    >>> UNIT.name
    'dropout'
"""

from __future__ import annotations

from . import Unit

BODY = r"""
EMBER_API void FN(dropout_mask)(const float *u, scalar *mask, i64 n, double p, double scale,
                                int nt) {
    float pf = (float)p;
    scalar s = (scalar)scale, zero = 0;
    ELEMENTWISE(n, nt, i, mask[i] = u[i] >= pf ? s : zero);
}
"""

UNIT = Unit(
    name="dropout",
    functions=(
        "void dropout_mask(const float *u, scalar *mask, i64 n, double p, double scale, int nt)",
    ),
    body=BODY,
)

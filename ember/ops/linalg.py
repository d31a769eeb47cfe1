"""Linear algebra: matmul (batched, broadcasting, 1-D cases), mm, bmm, outer, einsum.

Example:
    >>> import ember
    >>> (ember.ones(2, 3) @ ember.ones(3, 4)).shape
    (2, 4)
"""

from __future__ import annotations

from ..tensor import Tensor
from .elementwise import prepare
from .registry import defop
from .shape import reshape

__all__ = ["matmul"]


@defop("matmul", onnx="MatMul")
def _matmul(xp, a, b):
    return xp.matmul(a, b)


@_matmul.defexplain
def _(shapes, attrs):
    a, b = shapes
    if len(a) == 0 or len(b) == 0:
        return f"both arguments must be at least 1-D, got shapes {a} and {b}"
    return f"shapes {a} and {b} do not align"


@_matmul.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    a_1d, b_1d = a.ndim == 1, b.ndim == 1
    if a_1d and b_1d:  # dot product: g is a scalar
        return (g * b if need_a else None), (g * a if need_b else None)
    # lift 1-D operands to matrices so both rules are plain batched matmuls
    a2 = reshape(a, (1, -1)) if a_1d else a
    b2 = reshape(b, (-1, 1)) if b_1d else b
    g2 = g
    if a_1d:
        g2 = g2.unsqueeze(-2)
    if b_1d:
        g2 = g2.unsqueeze(-1)
    ga = gb = None
    if need_a:
        ga = matmul(g2, b2.transpose(-1, -2))
        if a_1d:
            ga = ga.squeeze(-2)
    if need_b:
        gb = matmul(a2.transpose(-1, -2), g2)
        if b_1d:
            gb = gb.squeeze(-1)
    return ga, gb


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with NumPy's rules: batched and broadcasting, 1-D operands promoted.

    Example:
        >>> ember.matmul(ember.ones(5, 2, 3), ember.ones(3)).shape
        (5, 2)
    """
    a, b = prepare(input, other)
    return _matmul(a, b)


METHODS = {
    "matmul": matmul,
    "__matmul__": matmul,
    "__rmatmul__": lambda self, other: matmul(other, self),
}

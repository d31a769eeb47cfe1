"""Division's integer-style family: ``floor_divide`` (``//``), ``remainder`` (``%``, the
sign of the divisor, as Python's) and ``fmod`` (the sign of the dividend, as C's), with
their operators.

Example:
    >>> import ember
    >>> (ember.tensor([7, -7]) // 2).tolist(), (ember.tensor([-3, 3]) % 2).tolist()
    ([3, -4], [1, 1])
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .elementwise import _binary, _iop, _rev, div, mul, neg, prepare, trunc

__all__ = ["floor_divide", "remainder", "fmod"]


def _mod_grad(quotient: Any) -> Any:
    """The backward of ``a - q(a, b) b`` for the rounded quotient ``q``: ``g`` for ``a`` and
    ``-g q`` for ``b`` (``q`` is piecewise constant)."""

    def grad(ctx: Any, g: Tensor) -> tuple:
        a, b = ctx.inputs
        need_a, need_b = ctx.needs_input_grad
        gb = neg(mul(g, quotient(a, b))) if need_b else None
        return (g if need_a else None), gb

    return grad


@_binary("floor_divide", onnx=None)
def _floor_divide(xp, a, b):
    return xp.floor_divide(a, b)


@_floor_divide.defonnx
def _(g, a, b):
    a, b = g.lift(a, b, dtype=g.out.dtype)
    q = g.op("Div", a, b)
    if g.out.dtype.kind == "f":
        return g.op("Floor", q)
    # integer Div truncates toward zero: step down where it was inexact and the signs differ
    inexact = g.op("Not", g.cmp("Equal", g.op("Sub", a, g.op("Mul", q, b)), 0))
    signs = g.op("Xor", g.cmp("Less", a, 0), g.cmp("Less", b, 0))
    return g.op("Sub", q, g.cast(g.op("And", inexact, signs), g.out.dtype))


def floor_divide(input: Any, other: Any) -> Tensor:
    """Division rounded down (``//``); not differentiable.

    Example:
        >>> ember.floor_divide(ember.tensor([7, -7]), 2).tolist()
        [3, -4]
    """
    return _floor_divide(*prepare(input, other))


@_binary("remainder", onnx="Mod")
def _remainder(xp, a, b):
    return xp.remainder(a, b)


_remainder.defgrad(_mod_grad(floor_divide))  # a - floor(a / b) b


@_remainder.defonnx
def _(g, a, b):
    a, b = g.lift(a, b, dtype=g.out.dtype)
    if g.out.dtype.kind != "f":
        return g.op("Mod", a, b, fmod=0)  # integer Mod takes the divisor's sign, like Python
    return g.op("Sub", a, g.op("Mul", g.op("Floor", g.op("Div", a, b)), b))


def remainder(input: Any, other: Any) -> Tensor:
    """Python-style modulus (``%``): the result has the sign of ``other``.

    Example:
        >>> ember.remainder(ember.tensor([-3, 3]), 2).tolist()
        [1, 1]
    """
    return _remainder(*prepare(input, other))


@_binary("fmod", onnx="Mod")  # Mod with fmod=1
def _fmod(xp, a, b):
    return xp.fmod(a, b)


_fmod.defgrad(_mod_grad(lambda a, b: trunc(div(a, b))))  # a - trunc(a / b) b


@_fmod.defonnx
def _(g, a, b):
    a, b = g.lift(a, b, dtype=g.out.dtype)
    return g.op("Mod", a, b, fmod=1)


def fmod(input: Any, other: Any) -> Tensor:
    """C-style remainder: the result has the sign of ``input``.

    Example:
        >>> ember.fmod(ember.tensor([-3, 3]), 2).tolist()
        [-1, 1]
    """
    return _fmod(*prepare(input, other))


# tensor methods and operators of this family (ember.ops attaches them to Tensor)
METHODS = {
    "remainder": remainder,
    "fmod": fmod,
    "floor_divide": floor_divide,
    "__floordiv__": floor_divide,
    "__rfloordiv__": _rev(floor_divide),
    "__mod__": remainder,
    "__rmod__": _rev(remainder),
    "__ifloordiv__": _iop("floor_divide_", floor_divide),
    "__imod__": _iop("remainder_", remainder),
}

"""Trigonometric and hyperbolic functions (radians), their inverses, and ``atan2``.

Integer inputs compute in the default float dtype, like PyTorch. Each backward rule is
written in ember ops, so second derivatives work.

Example:
    >>> import ember
    >>> ember.cos(ember.tensor([0.0])).tolist()
    [1.0]
"""

from __future__ import annotations

import math

from ..tensor import Tensor
from .elementwise import _to_float, add, div, mul, neg, prepare, sub
from .registry import defop


def _rsqrt(x: Tensor) -> Tensor:
    from .unary import rsqrt  # unary re-exports this module, so import on use

    return rsqrt(x)


__all__ = [
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "sinh",
    "cosh",
    "asinh",
    "acosh",
    "atanh",
    "arcsin",
    "arccos",
    "arctan",
    "arcsinh",
    "arccosh",
    "arctanh",
    "atan2",
    "arctan2",
]


# -- trigonometric and hyperbolic ------------------------------------------------------------
@defop("sin", onnx="Sin")
def _sin(xp, x):
    return xp.sin(x)


@_sin.defgrad
def _(ctx, g):
    return (mul(g, cos(ctx.inputs[0])),)


@defop("cos", onnx="Cos")
def _cos(xp, x):
    return xp.cos(x)


@_cos.defgrad
def _(ctx, g):
    return (neg(mul(g, sin(ctx.inputs[0]))),)


@defop("tan", saves_inputs=False, saves_output=True, onnx="Tan")
def _tan(xp, x):
    return xp.tan(x)


@_tan.defgrad
def _(ctx, g):
    y = ctx.output
    return (mul(g, add(mul(y, y), 1.0)),)


@defop("asin", onnx="Asin")
def _asin(xp, x):
    return xp.arcsin(x)


@_asin.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, _rsqrt(sub(1.0, mul(x, x)))),)


@defop("acos", onnx="Acos")
def _acos(xp, x):
    return xp.arccos(x)


@_acos.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (neg(mul(g, _rsqrt(sub(1.0, mul(x, x))))),)


@defop("atan", onnx="Atan")
def _atan(xp, x):
    return xp.arctan(x)


@_atan.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (div(g, add(mul(x, x), 1.0)),)


@defop("sinh", onnx="Sinh")
def _sinh(xp, x):
    return xp.sinh(x)


@_sinh.defgrad
def _(ctx, g):
    return (mul(g, cosh(ctx.inputs[0])),)


@defop("cosh", onnx="Cosh")
def _cosh(xp, x):
    return xp.cosh(x)


@_cosh.defgrad
def _(ctx, g):
    return (mul(g, sinh(ctx.inputs[0])),)


@defop("asinh", onnx="Asinh")
def _asinh(xp, x):
    return xp.arcsinh(x)


@_asinh.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, _rsqrt(add(mul(x, x), 1.0))),)


@defop("acosh", onnx="Acosh")
def _acosh(xp, x):
    return xp.arccosh(x)


@_acosh.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, _rsqrt(sub(mul(x, x), 1.0))),)


@defop("atanh", onnx="Atanh")
def _atanh(xp, x):
    return xp.arctanh(x)


@_atanh.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (div(g, sub(1.0, mul(x, x))),)


def _float_unary(op, name: str, summary: str, x: float, y: float):
    """The public function of a float-valued unary op, with its docstring and example."""

    def fn(input: Tensor) -> Tensor:
        return op(_to_float(input))

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"""{summary}

    Example:
        >>> ember.{name}(ember.tensor([{x}])).tolist()
        [{y}]
    """
    return fn


sin = _float_unary(_sin, "sin", "Sine (radians).", 0.0, 0.0)
cos = _float_unary(_cos, "cos", "Cosine (radians).", 0.0, 1.0)
tan = _float_unary(_tan, "tan", "Tangent (radians).", 0.0, 0.0)
asin = _float_unary(_asin, "asin", "Inverse sine, in ``[-pi/2, pi/2]``.", 0.0, 0.0)
acos = _float_unary(_acos, "acos", "Inverse cosine, in ``[0, pi]``.", 1.0, 0.0)
atan = _float_unary(_atan, "atan", "Inverse tangent, in ``(-pi/2, pi/2)``.", 0.0, 0.0)
sinh = _float_unary(_sinh, "sinh", "Hyperbolic sine.", 0.0, 0.0)
cosh = _float_unary(_cosh, "cosh", "Hyperbolic cosine.", 0.0, 1.0)
asinh = _float_unary(_asinh, "asinh", "Inverse hyperbolic sine.", 0.0, 0.0)
acosh = _float_unary(_acosh, "acosh", "Inverse hyperbolic cosine (``input >= 1``).", 1.0, 0.0)
atanh = _float_unary(_atanh, "atanh", "Inverse hyperbolic tangent (``|input| < 1``).", 0.0, 0.0)
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


@defop("atan2", onnx=None)
def _atan2(xp, a, b):
    return xp.arctan2(a, b)


@_atan2.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    r2 = add(mul(a, a), mul(b, b))
    return (div(mul(g, b), r2) if need_a else None), (neg(div(mul(g, a), r2)) if need_b else None)


@_atan2.defonnx
def _(g, a, b):
    a, b = g.lift(a, b)
    q = g.op("Atan", g.op("Div", a, b))  # then move into the right quadrant
    turn = g.where(g.cmp("Less", a, 0.0), -math.pi, math.pi, like=q)
    q = g.where(g.cmp("Less", b, 0.0), g.op("Add", q, turn), q, like=q)
    zero = g.op("And", g.cmp("Equal", a, 0.0), g.cmp("Equal", b, 0.0))
    return g.where(zero, 0.0, q, like=q)


def atan2(input: Tensor, other: Tensor) -> Tensor:
    """The angle of the point ``(other, input)``: ``atan(input / other)`` in the right
    quadrant, in ``[-pi, pi]``; broadcasting.

    Example:
        >>> round(ember.atan2(ember.tensor([1.0]), ember.tensor([-1.0])).item(), 4)
        2.3562
    """
    a, b = prepare(_to_float(input), _to_float(other))
    return _atan2(a, b)


arctan2 = atan2


METHODS = {
    "sin": sin,
    "cos": cos,
    "tan": tan,
    "asin": asin,
    "acos": acos,
    "atan": atan,
    "sinh": sinh,
    "cosh": cosh,
    "asinh": asinh,
    "acosh": acosh,
    "atanh": atanh,
    "arcsin": arcsin,
    "arccos": arccos,
    "arctan": arctan,
    "arcsinh": arcsinh,
    "arccosh": arccosh,
    "arctanh": arctanh,
    "atan2": atan2,
    "arctan2": arctan2,
}

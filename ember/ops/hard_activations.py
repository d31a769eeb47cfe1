"""Piecewise-linear ("hard") sigmoid and swish: ``hardsigmoid`` and ``hardswish``
(``ember.ops.activation`` re-exports them, so they appear in ``ember.nn.functional``).

Example:
    >>> import ember
    >>> ember.nn.functional.hardsigmoid(ember.tensor([-4.0, 0.0, 4.0])).tolist()
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

from ..tensor import Tensor
from .activation_grad import kernel
from .elementwise import _to_float, add, gt, lt, mul, where
from .inplace import apply_inplace
from .registry import defop
from .unary import logical_and

__all__ = ["hardsigmoid", "hardswish"]


@defop("hardsigmoid", onnx="HardSigmoid")
@kernel
def _hardsigmoid(xp, x):
    out = x + 3.0
    xp.clip(out, 0.0, 6.0, out=out)
    out /= 6.0
    return out


@_hardsigmoid.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (where(logical_and(gt(x, -3.0), lt(x, 3.0)), mul(g, 1.0 / 6.0), 0.0),)


@_hardsigmoid.defonnx
def _(g, x):
    return g.op("HardSigmoid", x, alpha=1.0 / 6.0, beta=0.5)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(input + 3) / 6``.

    Example:
        >>> ember.nn.functional.hardsigmoid(ember.tensor([-4.0, 0.0, 4.0])).tolist()
        [0.0, 0.5, 1.0]
    """
    if inplace:
        return apply_inplace(input, "hardsigmoid_", _hardsigmoid_fn)
    return _hardsigmoid_fn(input)


def _hardsigmoid_fn(input: Tensor) -> Tensor:
    return _hardsigmoid(_to_float(input))


@defop("hardswish", onnx="HardSwish")
@kernel
def _hardswish(xp, x):
    out = x + 3.0
    xp.clip(out, 0.0, 6.0, out=out)
    out *= x
    out /= 6.0
    return out


@_hardswish.defgrad
def _(ctx, g):
    (x,) = ctx.inputs  # 0 for x <= -3, x/3 + 1/2 inside, 1 for x >= 3 (PyTorch's boundaries)
    inside = where(lt(x, 3.0), mul(g, add(mul(x, 1.0 / 3.0), 0.5)), g)
    return (where(gt(x, -3.0), inside, 0.0),)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * relu6(input + 3) / 6``.

    Example:
        >>> ember.nn.functional.hardswish(ember.tensor([-4.0, 0.0, 4.0])).tolist()
        [-0.0, 0.0, 4.0]
    """
    if inplace:
        return apply_inplace(input, "hardswish_", _hardswish_fn)
    return _hardswish_fn(input)


def _hardswish_fn(input: Tensor) -> Tensor:
    return _hardswish(_to_float(input))

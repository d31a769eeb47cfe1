"""Thresholding and gating activations: ``threshold``, ``hardshrink``, ``softshrink``,
``tanhshrink``, ``prelu`` and ``glu`` (composites of other ops; ``ember.ops.activation``
re-exports them, so they appear in ``ember.nn.functional``).

Example:
    >>> import ember
    >>> ember.nn.functional.hardshrink(ember.tensor([0.25, -0.75])).tolist()
    [0.0, -0.75]
"""

from __future__ import annotations

from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_dim
from .elementwise import add, gt, mul, sub, where
from .inplace import apply_inplace
from .shape import narrow, reshape
from .unary import abs

__all__ = ["threshold", "hardshrink", "softshrink", "tanhshrink", "prelu", "glu"]


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``input`` where ``input > threshold``, else ``value``.

    Example:
        >>> ember.nn.functional.threshold(ember.tensor([0.5, 2.0]), 1.0, -1.0).tolist()
        [-1.0, 2.0]
    """
    if inplace:
        return apply_inplace(input, "threshold_", _threshold_fn, threshold, value)
    return _threshold_fn(input, threshold, value)


def _threshold_fn(input: Tensor, threshold: float, value: float) -> Tensor:
    return where(gt(input, threshold), input, value)


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input`` where ``|input| > lambd``, else 0.

    Example:
        >>> ember.nn.functional.hardshrink(ember.tensor([0.25, -0.75])).tolist()
        [0.0, -0.75]
    """
    return where(gt(abs(input), lambd), input, 0.0)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``input - lambd`` above ``lambd``, ``input + lambd`` below ``-lambd``, else 0.

    Example:
        >>> ember.nn.functional.softshrink(ember.tensor([0.3, -2.0, 1.5])).tolist()
        [0.0, -1.5, 1.0]
    """
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be non-negative, got {lambd}")
    shrunk = where(gt(input, lambd), sub(input, lambd), add(input, lambd))
    return where(gt(abs(input), lambd), shrunk, 0.0)


def tanhshrink(input: Tensor) -> Tensor:
    """``input - tanh(input)``.

    Example:
        >>> ember.nn.functional.tanhshrink(ember.tensor([0.0])).tolist()
        [0.0]
    """
    from .activation import tanh

    return sub(input, tanh(input))


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``input`` where positive, ``weight * input`` elsewhere; ``weight`` has one entry or
    one per channel (dim 1).

    Example:
        >>> w = ember.tensor([0.25, 0.5])
        >>> ember.nn.functional.prelu(ember.tensor([[-1.0, -1.0]]), w).tolist()
        [[-0.25, -0.5]]
    """
    n = weight.numel()
    if n != 1:
        channels = input.shape[1] if input.ndim >= 2 else 1
        if weight.ndim != 1 or n != channels:
            raise ShapeError(
                "prelu",
                f"weight of shape {tuple(weight.shape)} does not match the {channels} "
                f"channels (dim 1) of input of shape {tuple(input.shape)}",
            )
        weight = reshape(weight, (n,) + (1,) * (input.ndim - 2))
    else:
        weight = reshape(weight, ())
    return where(gt(input, 0), input, mul(weight, input))


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """Gated linear unit: split ``input`` in halves ``a, b`` along ``dim``; ``a * sigmoid(b)``.

    Example:
        >>> ember.nn.functional.glu(ember.tensor([[1.0, 0.0]])).tolist()
        [[0.5]]
    """
    d = normalize_dim("glu", dim, input.ndim)
    size = input.shape[d] if input.ndim else 0
    if size % 2:
        raise ShapeError(
            "glu", f"halving dimension {dim} must be even, got {size} (shape {tuple(input.shape)})"
        )
    half = size // 2
    from .activation import sigmoid as _sigmoid

    return mul(narrow(input, d, 0, half), _sigmoid(narrow(input, d, half, half)))

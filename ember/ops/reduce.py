"""Reductions: sum, mean, var/std, max/min, prod, logsumexp, cumsum, norm, all/any ...

All take PyTorch's ``dim`` (int, tuple or None) and ``keepdim``; negative dims count from
the end.

Example:
    >>> import ember
    >>> ember.ones(2, 3).sum(dim=-1).tolist()
    [3.0, 3.0]
"""

from __future__ import annotations

from typing import Any

from .. import dtypes
from ..tensor import Tensor
from ._util import normalize_dims
from .registry import defop
from .shape import broadcast_to, reshape

__all__ = ["sum", "mean"]


def _kept_shape(in_shape: tuple, dims: tuple | None) -> tuple:
    """The input shape with reduced dims set to 1 (for re-broadcasting a gradient)."""
    if dims is None:
        return (1,) * len(in_shape)
    return tuple(1 if i in dims else s for i, s in enumerate(in_shape))


def unreduce(g: Tensor, in_shape: tuple, dims: tuple | None, keepdim: bool) -> Tensor:
    """Broadcast a reduction's gradient back to the input's shape."""
    if not keepdim:
        g = reshape(g, _kept_shape(in_shape, dims))
    return broadcast_to(g, in_shape)


@defop("sum", saves_inputs=False, onnx="ReduceSum")
def _sum(xp, x, dim, keepdim, dtype):
    return x.sum(axis=dim, keepdims=keepdim, dtype=dtype)


@_sum.defgrad
def _(ctx, g):
    a = ctx.attrs
    return (unreduce(g, ctx.input_shape(0), a["dim"], a["keepdim"]),)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (all dims when None). Integer and bool inputs sum to int64.

    Example:
        >>> ember.sum(ember.tensor([[1, 2], [3, 4]]), dim=0).tolist()
        [4, 6]
    """
    dims = normalize_dims("sum", dim, input.ndim)
    if dtype is not None:
        dt = dtypes.to_dtype(dtype).np
    elif input._data.dtype.kind in "biu":
        dt = dtypes.int64.np
    else:
        dt = None
    return _sum(input, dim=dims, keepdim=keepdim, dtype=dt)


@defop("mean", saves_inputs=False, onnx="ReduceMean")
def _mean(xp, x, dim, keepdim):
    return x.mean(axis=dim, keepdims=keepdim)


@_mean.defgrad
def _(ctx, g):
    a = ctx.attrs
    shape = ctx.input_shape(0)
    n = 1
    for i, s in enumerate(shape):
        if a["dim"] is None or i in a["dim"]:
            n *= s
    return (unreduce(g / max(n, 1), shape, a["dim"], a["keepdim"]),)


def mean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Mean over ``dim`` (all dims when None); floating inputs only, like PyTorch.

    Example:
        >>> ember.mean(ember.tensor([1.0, 2.0, 6.0])).item()
        3.0
    """
    if dtype is not None:
        input = input.to(dtypes.to_dtype(dtype))
    if input._data.dtype.kind != "f":
        raise TypeError(
            f"mean(): could not infer output dtype. Input dtype must be floating point, got "
            f"{input.dtype}"
        )
    return _mean(input, dim=normalize_dims("mean", dim, input.ndim), keepdim=keepdim)


METHODS = {"sum": sum, "mean": mean}

"""Helpers shared by the reduction families (reduce, selection, norms): dims and un-reducing.

Example:
    >>> from ember.ops._reduction import reduce_dims
    >>> reduce_dims("sum", (), 2) is None
    True
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from ..errors import DTypeError
from ..tensor import Tensor
from ._util import normalize_dim, normalize_dims
from .shape import broadcast_to, reshape

# PyTorch's torch.return_types: named (values, indices) pairs
values_indices = {
    name: namedtuple(name, ("values", "indices"))
    for name in ("max", "min", "sort", "topk", "median", "kthvalue", "mode", "cummax", "cummin")
}


def reduce_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...] | None:
    """PyTorch's reduction dims: None, ``()`` and ``[]`` mean every dim; else sorted, unique."""
    if dim is None or (isinstance(dim, tuple | list) and len(dim) == 0):
        return None
    dims = normalize_dims(op, dim, ndim)
    if dims is not None and len(dims) == ndim:
        return None
    return dims


def one_dim(op: str, dim: Any, ndim: int) -> int:
    """A single dimension (ints only), negative counting from the end."""
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    return normalize_dim(op, dim, ndim)


def kept_shape(in_shape: tuple, dims: tuple | None) -> tuple:
    """The input shape with reduced dims set to 1 (for re-broadcasting a gradient)."""
    if dims is None:
        return (1,) * len(in_shape)
    return tuple(1 if i in dims else s for i, s in enumerate(in_shape))


def reduced_shape(in_shape: tuple, dims: tuple | None, keepdim: bool) -> tuple:
    """The shape a reduction over ``dims`` produces."""
    if keepdim:
        return kept_shape(in_shape, dims)
    if dims is None:
        return ()
    return tuple(s for i, s in enumerate(in_shape) if i not in dims)


def reduced_count(in_shape: tuple, dims: tuple | None) -> int:
    """How many elements each output of a reduction over ``dims`` combines."""
    n = 1
    for i, s in enumerate(in_shape):
        if dims is None or i in dims:
            n *= s
    return n


def keep(t: Tensor, in_shape: tuple, dims: tuple | None, keepdim: bool) -> Tensor:
    """A reduction result reshaped to have the reduced dims as size 1 (no broadcasting)."""
    return t if keepdim else reshape(t, kept_shape(in_shape, dims))


def unreduce(g: Tensor, in_shape: tuple, dims: tuple | None, keepdim: bool) -> Tensor:
    """Broadcast a reduction's gradient back to the input's shape."""
    return broadcast_to(keep(g, in_shape, dims, keepdim), in_shape)


def require_float(op: str, input: Tensor) -> None:
    """Raise PyTorch's kind of error for ops defined on floating tensors only."""
    if input._data.dtype.kind != "f":
        raise DTypeError(op, f"expected a floating point tensor, got {input.dtype}")

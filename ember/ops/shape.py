"""Shape ops: reshape, broadcast, transpose, concatenate, split, pad ...

``sum_to`` is the one helper that undoes broadcasting: the engine calls it whenever a
gradient's shape differs from its input's.

Example:
    >>> import ember
    >>> ember.ones(2, 3).reshape(3, 2).shape
    (3, 2)
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_dim, normalize_shape
from .registry import defop

__all__ = [
    "sum_to",
    "broadcast_to",
    "reshape",
    "view",
    "expand",
    "permute",
    "transpose",
    "swapaxes",
    "swapdims",
    "t",
    "squeeze",
    "unsqueeze",
]


# -- sum_to / broadcast_to: the pair that undoes and does broadcasting ---------------------
def _sum_to_axes(in_shape: tuple, shape: tuple) -> tuple[tuple[int, ...], int]:
    lead = len(in_shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and in_shape[i + lead] != 1
    )
    return axes, lead


@defop("sum_to", saves_inputs=False, onnx="ReduceSum")
def _sum_to(xp, x, shape):
    axes, lead = _sum_to_axes(x.shape, shape)
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x.reshape(shape) if lead else x


@_sum_to.defgrad
def _(ctx, g):
    return (broadcast_to(g, ctx.input_shape(0)),)


def sum_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``x`` down to ``shape`` (the reverse of broadcasting ``shape`` up to x's shape).

    Example:
        >>> sum_to(ember.ones(4, 3), (1, 3))
        tensor([[4., 4., 4.]])
    """
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    return _sum_to(x, shape=shape)


@defop("broadcast_to", saves_inputs=False, onnx="Expand")
def _broadcast_to(xp, x, shape):
    return xp.broadcast_to(x, shape)


@_broadcast_to.defgrad
def _(ctx, g):
    return (sum_to(g, ctx.input_shape(0)),)


@_broadcast_to.defexplain
def _(shapes, attrs):
    return f"cannot broadcast shape {shapes[0]} to {attrs['shape']}"


def broadcast_to(input: Tensor, shape: Any) -> Tensor:
    """Broadcast ``input`` to ``shape`` (a read-only view; -1 keeps a dimension).

    Example:
        >>> ember.broadcast_to(ember.ones(3), (2, 3)).shape
        (2, 3)
    """
    shape = normalize_shape(shape)
    if -1 in shape:
        off = len(shape) - input.ndim
        shape = tuple(input.shape[i - off] if s == -1 else s for i, s in enumerate(shape))
    if tuple(input.shape) == shape:
        return input
    return _broadcast_to(input, shape=shape)


def expand(input: Tensor, *sizes: Any) -> Tensor:
    """PyTorch's ``expand``: broadcast to ``sizes``, where -1 keeps a dimension.

    Example:
        >>> ember.ones(3, 1).expand(3, 4).shape
        (3, 4)
    """
    return broadcast_to(input, normalize_shape(sizes))


# -- reshape -------------------------------------------------------------------------------
@defop("reshape", saves_inputs=False, onnx="Reshape")
def _reshape(xp, x, shape):
    return x.reshape(shape)


@_reshape.defgrad
def _(ctx, g):
    return (reshape(g, ctx.input_shape(0)),)


@_reshape.defexplain
def _(shapes, attrs):
    n = 1
    for s in shapes[0]:
        n *= s
    return f"shape {attrs['shape']} is invalid for input of shape {shapes[0]} ({n} elements)"


def reshape(input: Tensor, *shape: Any) -> Tensor:
    """Return a tensor with the same values in a new shape (one dimension may be -1).

    Example:
        >>> ember.arange(6).reshape(2, -1).shape
        (2, 3)
    """
    shape = normalize_shape(shape)
    if shape == tuple(input.shape):
        return input
    return _reshape(input, shape=shape)


view = reshape


# -- permute / transpose -------------------------------------------------------------------
@defop("permute", saves_inputs=False, onnx="Transpose")
def _permute(xp, x, dims):
    return xp.transpose(x, dims)


@_permute.defgrad
def _(ctx, g):
    inv = [0] * len(ctx.attrs["dims"])
    for i, d in enumerate(ctx.attrs["dims"]):
        inv[d] = i
    return (_permute(g, dims=tuple(inv)),)


def permute(input: Tensor, *dims: Any) -> Tensor:
    """Reorder dimensions: output dim ``i`` is input dim ``dims[i]``.

    Example:
        >>> ember.zeros(2, 3, 4).permute(2, 0, 1).shape
        (4, 2, 3)
    """
    dims = normalize_shape(dims)
    if len(dims) != input.ndim:
        raise ShapeError(
            "permute",
            f"number of dims {len(dims)} doesn't match the tensor's "
            f"{input.ndim} (shape {tuple(input.shape)})",
        )
    dims = tuple(normalize_dim("permute", d, input.ndim) for d in dims)
    if sorted(dims) != list(range(input.ndim)):
        raise ShapeError("permute", f"dims {dims} are not a permutation of 0..{input.ndim - 1}")
    if dims == tuple(range(input.ndim)):
        return input
    return _permute(input, dims=dims)


def transpose(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions.

    Example:
        >>> ember.zeros(2, 3).transpose(0, 1).shape
        (3, 2)
    """
    n = input.ndim
    d0, d1 = normalize_dim("transpose", dim0, n), normalize_dim("transpose", dim1, n)
    if n < 2 or d0 == d1:
        return input
    dims = list(range(n))
    dims[d0], dims[d1] = dims[d1], dims[d0]
    return _permute(input, dims=tuple(dims))


swapaxes = swapdims = transpose


def t(input: Tensor) -> Tensor:
    """Transpose a tensor of at most 2 dimensions.

    Example:
        >>> ember.zeros(2, 3).t().shape
        (3, 2)
    """
    if input.ndim > 2:
        raise ShapeError(
            "t", f"expects a tensor with <= 2 dimensions, got shape {tuple(input.shape)}"
        )
    return transpose(input, 0, 1) if input.ndim == 2 else input


def _T(self: Tensor) -> Tensor:
    return permute(self, *reversed(range(self.ndim)))


def _mT(self: Tensor) -> Tensor:
    return transpose(self, -2, -1)


# -- squeeze / unsqueeze (reshapes with a named rule) --------------------------------------
def squeeze(input: Tensor, dim: Any = None) -> Tensor:
    """Remove size-1 dimensions (all of them, or those in ``dim``).

    Example:
        >>> ember.zeros(1, 3, 1).squeeze().shape
        (3,)
    """
    shape = tuple(input.shape)
    if dim is None:
        dims = {i for i, s in enumerate(shape) if s == 1}
    else:
        dims = {
            normalize_dim("squeeze", d, input.ndim)
            for d in ((dim,) if isinstance(dim, int) else dim)
        }
        dims = {d for d in dims if input.ndim and shape[d] == 1}
    return reshape(input, tuple(s for i, s in enumerate(shape) if i not in dims))


def unsqueeze(input: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim``.

    Example:
        >>> ember.zeros(3).unsqueeze(0).shape
        (1, 3)
    """
    d = normalize_dim("unsqueeze", dim, input.ndim + 1)
    shape = list(input.shape)
    shape.insert(d, 1)
    return reshape(input, tuple(shape))


METHODS = {
    "permute": permute,
    "transpose": transpose,
    "swapaxes": transpose,
    "swapdims": transpose,
    "t": t,
    "T": property(_T),
    "mT": property(_mT),
    "squeeze": squeeze,
    "unsqueeze": unsqueeze,
    "reshape": reshape,
    "view": view,
    "expand": expand,
    "broadcast_to": broadcast_to,
    "sum_to": sum_to,
}

"""Shape ops: reshape, broadcast, transpose, flatten, slicing along one dimension ...

``sum_to`` is the one helper that undoes broadcasting: the engine calls it whenever a
gradient's shape differs from its input's. ``slice`` (one dimension, step 1) is the
primitive under ``narrow``, ``select``, ``split``, ``chunk``, ``unbind`` and ``cat``'s
backward. The family continues in ``join.py`` (cat, stack, split ...) and ``rearrange.py``
(pad, flip, roll, repeat, tril ...), whose names this module re-exports.

Example:
    >>> import ember
    >>> ember.ones(2, 3).reshape(3, 2).shape
    (3, 2)
"""

from __future__ import annotations

from typing import Any

from ..autograd.slices import SliceGrad
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
    "flatten",
    "unflatten",
    "ravel",
    "narrow",
    "select",
    "movedim",
    "moveaxis",
    "view_as",
    "reshape_as",
    "expand_as",
    "IndexingError",
]


class IndexingError(ShapeError, IndexError):
    """A bad index (out of range, wrong dtype, too many): names the op, the index and the size.

    It is both an :class:`ember.ShapeError` and a Python ``IndexError`` (as PyTorch raises).

    Example:
        >>> try:
        ...     ember.zeros(3)[5]
        ... except IndexError as e:
        ...     print(str(e).splitlines()[0])
        getitem: index 5 is out of bounds for dimension 0 with size 3 (tensor of shape (3,))
    """


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
    if axes and len(axes) == lead:  # the leading axes only: the column-sums kernel may serve
        from .reduce import leading_sums

        y = leading_sums(x, axes)
        if y is not None:
            return y
    if axes:
        x = x.sum(axis=axes, keepdims=True)
    return x.reshape(shape) if lead else x


@_sum_to.defgrad
def _(ctx, g):
    return (broadcast_to(g, ctx.input_shape(0)),)


@_sum_to.defonnx
def _(g, x, shape):
    axes, lead = _sum_to_axes(x.shape, shape)
    if axes:
        x = g.reduce("ReduceSum", x, axes, True)
    return g.reshape(x, shape) if lead else x


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


@_broadcast_to.defonnx
def _(g, x, shape):
    return g.op("Expand", x, g.dims(shape))


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


@_reshape.defonnx
def _(g, x, shape):  # allowzero: a 0 in the shape is a size, not "copy this dimension"
    return g.op("Reshape", x, g.dims(shape), allowzero=1 if 0 in shape else None)


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


@_permute.defonnx
def _(g, x, dims):
    return g.op("Transpose", x, perm=list(dims))


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


def flatten(input: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dimensions ``start_dim`` .. ``end_dim`` (inclusive) into one; 0-d gives shape (1,).

    Example:
        >>> ember.zeros(2, 3, 4).flatten(1).shape
        (2, 12)
    """
    shape = tuple(input.shape)
    if not shape:
        return reshape(input, (1,))
    s = normalize_dim("flatten", start_dim, len(shape))
    e = normalize_dim("flatten", end_dim, len(shape))
    if s > e:
        raise ShapeError(
            "flatten", f"start_dim {start_dim} cannot come after end_dim {end_dim} (shape {shape})"
        )
    n = 1
    for d in shape[s : e + 1]:
        n *= d
    return reshape(input, shape[:s] + (n,) + shape[e + 1 :])


def unflatten(input: Tensor, dim: int, sizes: Any) -> Tensor:
    """Split dimension ``dim`` into ``sizes`` (one entry may be -1).

    Example:
        >>> ember.zeros(2, 12).unflatten(1, (3, -1)).shape
        (2, 3, 4)
    """
    shape = tuple(input.shape)
    d = normalize_dim("unflatten", dim, len(shape))
    sizes = tuple(int(s) for s in sizes)
    if not sizes:
        raise ShapeError("unflatten", "sizes must be non-empty")
    known = 1
    for s in sizes:
        known *= 1 if s == -1 else s
    if sizes.count(-1) > 1 or (
        (-1 not in sizes and known != shape[d])
        or (-1 in sizes and (known == 0 or shape[d] % known))
    ):
        raise ShapeError(
            "unflatten",
            f"sizes {sizes} don't multiply up to the size of dimension {dim} ({shape[d]}) "
            f"of a tensor of shape {shape}",
        )
    if -1 in sizes:
        sizes = tuple(shape[d] // known if s == -1 else s for s in sizes)
    return reshape(input, shape[:d] + sizes + shape[d + 1 :])


def ravel(input: Tensor) -> Tensor:
    """The values as a 1-D tensor.

    Example:
        >>> ember.zeros(2, 3).ravel().shape
        (6,)
    """
    return reshape(input, (-1,))


# -- slice: one dimension, step 1 (the primitive under narrow, split, chunk, unbind) -------
@defop("slice", saves_inputs=False, onnx="Slice")
def _slice(xp, x, dim, start, stop):
    return x[(slice(None),) * dim + (slice(start, stop),)]


@_slice.defgrad
def _(ctx, g):  # the engine merges the pieces of one tensor (ember.autograd.slices)
    a = ctx.attrs
    return (SliceGrad(g, tuple(ctx.input_shape(0)), a["dim"], a["start"], a["stop"]),)


@defop("slice_backward", saves_inputs=False, onnx="Pad")
def _slice_backward(xp, g, shape, dim, start, stop):
    """Zeros of ``shape`` with ``g`` written into ``[start:stop]`` along ``dim``."""
    out = xp.zeros(shape, dtype=g.dtype)
    out[(slice(None),) * dim + (slice(start, stop),)] = g
    return out


@_slice_backward.defgrad
def _(ctx, g):
    a = ctx.attrs
    return (_slice(g, dim=a["dim"], start=a["start"], stop=a["stop"]),)


@_slice.defonnx
def _(g, x, dim, start, stop):
    return g.slice(x, [dim], [start], [stop])


@_slice_backward.defonnx
def _(g, dy, shape, dim, start, stop):
    pads = [0] * (2 * len(shape))
    pads[dim], pads[dim + len(shape)] = start, g.dim_sub(shape[dim], stop)
    return g.op("Pad", dy, g.ints(pads), g.scalar(0, dy))


def slice_dim(input: Tensor, dim: int, start: int, stop: int) -> Tensor:
    """``input[..., start:stop, ...]`` along ``dim`` (0 <= start <= stop <= size; no checks).

    Example:
        >>> slice_dim(ember.arange(5.0), 0, 1, 3).tolist()
        [1.0, 2.0]
    """
    if start == 0 and stop == input.shape[dim]:
        return input
    return _slice(input, dim=dim, start=start, stop=stop)


def narrow(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """``length`` entries of ``input`` along ``dim`` from ``start`` (negative counts from the end).

    Example:
        >>> ember.arange(6).narrow(0, 2, 3).tolist()
        [2, 3, 4]
    """
    if input.ndim == 0:
        raise ShapeError("narrow", "cannot be applied to a 0-dim tensor")
    d = normalize_dim("narrow", dim, input.ndim)
    size = input.shape[d]
    start, length = int(start), int(length)
    if not -size <= start <= size:
        raise IndexingError(
            "narrow",
            f"start {start} is out of range for dimension {d} with size {size} "
            f"(tensor of shape {tuple(input.shape)})",
        )
    if start < 0:
        start += size
    if length < 0 or start + length > size:
        raise IndexingError(
            "narrow",
            f"start ({start}) + length ({length}) exceeds dimension {d} with size {size} "
            f"(tensor of shape {tuple(input.shape)})",
        )
    return _slice(input, dim=d, start=start, stop=start + length)


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """The slice at ``index`` along ``dim``, with that dimension removed.

    Example:
        >>> ember.arange(6).reshape(2, 3).select(1, -1).tolist()
        [2, 5]
    """
    if input.ndim == 0:
        raise IndexingError("select", "cannot be applied to a 0-dim tensor")
    d = normalize_dim("select", dim, input.ndim)
    size = input.shape[d]
    i = int(index)
    if not -size <= i < size:
        raise IndexingError(
            "select",
            f"index {i} is out of range for dimension {d} with size {size} "
            f"(tensor of shape {tuple(input.shape)})",
        )
    i %= size
    shape = tuple(input.shape)
    return reshape(_slice(input, dim=d, start=i, stop=i + 1), shape[:d] + shape[d + 1 :])


# -- movedim and the *_as helpers ----------------------------------------------------------
def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    """Move dimension(s) ``source`` to position(s) ``destination``; the rest keep their order.

    Example:
        >>> ember.zeros(2, 3, 4).movedim(0, -1).shape
        (3, 4, 2)
    """
    n = input.ndim
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise ShapeError(
            "movedim",
            f"source {src} and destination {dst} must have the same number of dimensions",
        )
    src = tuple(normalize_dim("movedim", d, n) for d in src)
    dst = tuple(normalize_dim("movedim", d, n) for d in dst)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ShapeError("movedim", f"repeated dim in source {src} or destination {dst}")
    order = [d for d in range(n) if d not in src]
    for s, t in sorted(zip(dst, src)):
        order.insert(s, t)
    return permute(input, *order) if n else input


moveaxis = movedim


def view_as(input: Tensor, other: Tensor) -> Tensor:
    """``input`` reshaped to ``other``'s shape.

    Example:
        >>> ember.zeros(6).view_as(ember.zeros(2, 3)).shape
        (2, 3)
    """
    return reshape(input, tuple(other.shape))


reshape_as = view_as


def expand_as(input: Tensor, other: Tensor) -> Tensor:
    """``input`` broadcast to ``other``'s shape.

    Example:
        >>> ember.zeros(3).expand_as(ember.zeros(2, 3)).shape
        (2, 3)
    """
    return broadcast_to(input, tuple(other.shape))


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
    "flatten": flatten,
    "unflatten": unflatten,
    "ravel": ravel,
    "narrow": narrow,
    "select": select,
    "movedim": movedim,
    "moveaxis": movedim,
    "view_as": view_as,
    "reshape_as": view_as,
    "expand_as": expand_as,
}

# The family continues in sibling files (each under ~600 lines); they import the primitives
# above, so they are loaded last and their names and methods are gathered here.
from . import join, rearrange  # noqa: E402
from .join import *  # noqa: E402, F403
from .rearrange import *  # noqa: E402, F403

__all__ += join.__all__ + rearrange.__all__
METHODS.update(join.METHODS)
METHODS.update(rearrange.METHODS)

"""Joining and splitting tensors: cat, stack, hstack, vstack, dstack, split, chunk, unbind.

``cat`` is the one primitive (its backward slices the gradient); ``stack`` and the
``*stack`` helpers are built on it, and ``split``, ``chunk`` and ``unbind`` are made of
``slice`` (see ``shape.py``), so none of them needs a backward of its own.

Example:
    >>> import ember
    >>> ember.cat([ember.zeros(2, 3), ember.ones(1, 3)]).shape
    (3, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_dim
from .creation import as_tensor, cast
from .registry import defop
from .shape import _slice, reshape, select, slice_dim

__all__ = [
    "cat",
    "concat",
    "concatenate",
    "stack",
    "hstack",
    "vstack",
    "dstack",
    "split",
    "chunk",
    "unbind",
]


# -- cat -----------------------------------------------------------------------------------
@defop("cat", saves_inputs=False, onnx="Concat")
def _cat(xp, *arrays, dim):
    return xp.concatenate(arrays, axis=dim)


def _cat_grad(ctx: Any, g: Tensor) -> tuple:
    dim = ctx.attrs["dim"]
    grads, start = [], 0
    for i, need in enumerate(ctx.needs_input_grad):
        stop = start + ctx.input_shape(i)[dim]
        grads.append(_slice(g, dim=dim, start=start, stop=stop) if need else None)
        start = stop
    return tuple(grads)


def _cat_onnx(g: Any, *arrays: Any, dim: int) -> Any:
    return g.op("Concat", *arrays, axis=dim)


_cat.defgrad(_cat_grad)
_cat.defonnx(_cat_onnx)


# -- cat_or_view: the autograd engine's join of slice gradients ------------------------------
def adjacent_view(arrays: Sequence[Any], dim: int) -> Any:
    """The view of one buffer that ``arrays`` tile along ``dim`` when they lie next to each
    other in it (NumPy arrays of one dtype, shape but along ``dim``, and strides, each
    starting where the one before ends along ``dim``), else None. A few pointer and stride
    comparisons: what ``cat`` would give, without copying.

    Example:
        >>> import numpy as np
        >>> buf = np.zeros((2, 6))
        >>> adjacent_view([buf[:, :2], buf[:, 2:]], 1).base is buf
        True
        >>> adjacent_view([buf[:, 2:], buf[:, :2]], 1) is None
        True
    """
    first = arrays[0]
    if type(first) is not _NDARRAY or len(arrays) < 2:
        return None
    base = first.base
    if type(base) is not _NDARRAY:
        return None
    dtype, strides, shape, nd = first.dtype, first.strides, list(first.shape), first.ndim
    if not 0 <= dim < nd:
        return None
    rest = shape[:dim] + shape[dim + 1 :]
    for a in arrays:  # the cheap checks first: same buffer, dtype, strides, other sizes
        if type(a) is not _NDARRAY or a.base is not base or a.dtype != dtype:
            return None
        s = a.shape
        if a.strides != strides or len(s) != nd or list(s[:dim] + s[dim + 1 :]) != rest:
            return None
        if not a.flags.writeable or a.size == 0:
            return None
    step = strides[dim]
    start = at = first.__array_interface__["data"][0]
    total = 0
    for a in arrays:  # each piece starts where the one before ends along dim
        if a is not first and a.__array_interface__["data"][0] != at:
            return None
        at += a.shape[dim] * step
        total += a.shape[dim]
    shape[dim] = total
    try:  # (the buffer's own bounds checked once more)
        return _NDARRAY(
            tuple(shape),
            dtype,
            buffer=base,
            offset=start - base.__array_interface__["data"][0],
            strides=strides,
        )
    except (TypeError, ValueError, BufferError):
        return None


_NDARRAY = np.ndarray


@defop("cat_or_view", saves_inputs=False, onnx="Concat")
def _cat_or_view(xp, *arrays, dim):
    """``cat``, or a view (no copy) when the arrays are adjacent pieces of one buffer
    (:func:`adjacent_view`); graph passes treat its result as a possible view of every input
    (``VIEW_OPS``). For the autograd engine's slice gradients, never for ``ember.cat``."""
    out = adjacent_view(arrays, dim)
    return xp.concatenate(arrays, axis=dim) if out is None else out


_cat_or_view.defgrad(_cat_grad)
_cat_or_view.defonnx(_cat_onnx)


def cat_or_view(tensors: Sequence[Tensor], dim: int) -> Tensor:
    """Join same-dtype tensors along ``dim`` like :func:`cat`, but the result may be a view of
    their memory: when they are adjacent pieces of one buffer (a check at run time, which a
    compiled graph replays) no copy is made. For the autograd engine's slice gradients
    (:func:`ember.autograd.slices.merge`); ``ember.cat`` always returns a fresh tensor.

    Example:
        >>> buf = ember.arange(6.0).reshape(2, 3)
        >>> a, b = buf.split([1, 2], dim=1)
        >>> cat_or_view([a, b], 1).tolist()
        [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    return _cat_or_view(*tensors, dim=normalize_dim("cat", dim, tensors[0].ndim))


def _tensors(op: str, tensors: Any) -> list[Tensor]:
    if isinstance(tensors, Tensor) or not hasattr(tensors, "__iter__"):
        raise TypeError(f"{op}: expected a sequence of tensors, got {type(tensors).__name__}")
    ts = [t if type(t) is Tensor else as_tensor(t) for t in tensors]
    if not ts:
        raise ShapeError(op, "expected a non-empty list of tensors")
    return ts


def _promote(ts: list[Tensor]) -> list[Tensor]:
    """Cast every tensor to the common dtype (PyTorch's promotion across the list)."""
    r = ts[0]._data.dtype
    same = True
    for t in ts:
        if t._data.dtype != r:
            r = dtypes.result_type(r, True, t._data.dtype, True)
            same = False
    return ts if same else [cast(t, r) for t in ts]


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Concatenate tensors along an existing dimension ``dim``.

    All tensors must have the same shape except along ``dim`` (1-D empty tensors are
    skipped, as in PyTorch); dtypes are promoted to a common one.

    Example:
        >>> ember.cat([ember.zeros(2, 1), ember.ones(2, 2)], dim=-1).tolist()
        [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    """
    ts = _tensors("cat", tensors)
    empty = False
    for i, t in enumerate(ts):
        s = t.shape
        if not s:
            raise ShapeError(
                "cat", f"zero-dimensional tensor (at position {i}) cannot be concatenated"
            )
        empty = empty or s == (0,)
    if empty:  # PyTorch skips 1-D empty tensors (a legacy rule)
        ts = [t for t in ts if t.shape != (0,)] or ts[:1]
    ts = _promote(ts)
    shape = ts[0].shape
    d = normalize_dim("cat", dim, len(shape))
    rest = shape[:d] + shape[d + 1 :]
    for i, t in enumerate(ts):
        s = t.shape
        if len(s) != len(shape) or s[:d] + s[d + 1 :] != rest:
            raise ShapeError(
                "cat",
                f"sizes of tensors must match except in dimension {d}: shape "
                f"{tuple(shape)} (tensor 0) and {tuple(s)} (tensor {i})",
            )
    return _cat(*ts, dim=d)


concat = concatenate = cat


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join equal-shaped tensors along a new dimension ``dim``.

    Example:
        >>> ember.stack([ember.zeros(3), ember.ones(3)], dim=1).shape
        (3, 2)
    """
    ts = _tensors("stack", tensors)
    shape = tuple(ts[0].shape)
    for i, t in enumerate(ts[1:], 1):
        if tuple(t.shape) != shape:
            raise ShapeError(
                "stack",
                f"expects each tensor to be equal size, but got {shape} at entry 0 and "
                f"{tuple(t.shape)} at entry {i}",
            )
    d = normalize_dim("stack", dim, len(shape) + 1)
    new = shape[:d] + (1,) + shape[d:]
    return _cat(*_promote([reshape(t, new) for t in ts]), dim=d)


def _at_least(t: Tensor, n: int) -> Tensor:
    shape = tuple(t.shape)
    if len(shape) >= n:
        return t
    if n == 3 and len(shape) == 2:  # numpy's atleast_3d: (M, N) -> (M, N, 1)
        return reshape(t, shape + (1,))
    if n == 3 and len(shape) == 1:  # (N,) -> (1, N, 1)
        return reshape(t, (1,) + shape + (1,))
    return reshape(t, (1,) * (n - len(shape)) + shape)


def hstack(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate column-wise: along dim 0 for 1-D tensors, else dim 1.

    Example:
        >>> ember.hstack([ember.zeros(2), ember.ones(3)]).shape
        (5,)
    """
    ts = [_at_least(t, 1) for t in _tensors("hstack", tensors)]
    return cat(ts, dim=0 if all(t.ndim == 1 for t in ts) else 1)


def vstack(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate row-wise (1-D tensors become rows).

    Example:
        >>> ember.vstack([ember.zeros(3), ember.ones(3)]).shape
        (2, 3)
    """
    return cat([_at_least(t, 2) for t in _tensors("vstack", tensors)], dim=0)


def dstack(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate depth-wise, along dim 2 (inputs made at least 3-D first).

    Example:
        >>> ember.dstack([ember.zeros(2, 3), ember.ones(2, 3)]).shape
        (2, 3, 2)
    """
    return cat([_at_least(t, 3) for t in _tensors("dstack", tensors)], dim=2)


# -- split, chunk, unbind (slices) ---------------------------------------------------------
def split(tensor: Tensor, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into pieces along ``dim``: of ``split_size`` each (the last may be smaller) when
    given an int, or of the listed sizes (which must add up to the dimension's size).

    Example:
        >>> [t.shape for t in ember.zeros(5, 2).split(2)]
        [(2, 2), (2, 2), (1, 2)]
        >>> [t.shape for t in ember.zeros(5).split([1, 4])]
        [(1,), (4,)]
    """
    if tensor.ndim == 0:
        raise ShapeError("split", "cannot split a 0-dim tensor")
    d = normalize_dim("split", dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size < 0 or (size == 0 and n != 0):
            raise ShapeError("split", f"split_size must be a positive integer, got {size}")
        if n == 0:
            return (tensor,)
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ShapeError(
                "split",
                f"split sizes {sizes} don't add up to the size {n} of dimension {d} "
                f"(tensor of shape {tuple(tensor.shape)})",
            )
    out, start = [], 0
    for s in sizes:
        out.append(_slice(tensor, dim=d, start=start, stop=start + s))
        start += s
    return tuple(out)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Split into ``chunks`` pieces of equal size ``ceil(n / chunks)`` along ``dim`` (the last
    may be smaller, and there may be fewer pieces than asked for, as in PyTorch).

    Example:
        >>> [t.shape[0] for t in ember.zeros(5).chunk(3)]
        [2, 2, 1]
    """
    if chunks <= 0:
        raise ShapeError("chunk", f"chunks must be greater than 0, got {chunks}")
    if input.ndim == 0:
        raise ShapeError("chunk", "cannot chunk a 0-dim tensor")
    d = normalize_dim("chunk", dim, input.ndim)
    n = input.shape[d]
    if n == 0:
        return tuple(slice_dim(input, d, 0, 0) for _ in range(chunks))
    return split(input, -(-n // chunks), d)


def unbind(input: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """All slices along ``dim``, each with that dimension removed.

    Example:
        >>> [t.tolist() for t in ember.tensor([[1, 2], [3, 4]]).unbind(1)]
        [[1, 3], [2, 4]]
    """
    if input.ndim == 0:
        raise ShapeError("unbind", "cannot unbind a 0-dim tensor")
    d = normalize_dim("unbind", dim, input.ndim)
    return tuple(select(input, d, i) for i in range(input.shape[d]))


METHODS = {"split": split, "chunk": chunk, "unbind": unbind}

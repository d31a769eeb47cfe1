"""Ops that pick or place entries along one dimension: gather, scatter, scatter_add,
take_along_dim, index_select, index_add, index_copy, index_fill.

``index`` has the input's number of dimensions; along ``dim`` it holds positions, along the
others it may be smaller than the input (only its extent is used), as in PyTorch. Negative
positions count from the end (PyTorch rejects them in ``gather``/``scatter``).
``gather``'s backward adds the gradient into zeros (``gather_backward``, whose own backward
is ``gather``), so second derivatives work.

Example:
    >>> import ember
    >>> x = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> x.gather(1, ember.tensor([[1], [0]])).tolist()
    [[2.0], [3.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor
from ._util import SCALARS, normalize_dim
from .creation import cast
from .indexing import (
    _T,
    _fill_value,
    _getitem,
    _index,
    _index_array,
    _index_put,
    _inplace,
    _named,
    _reword,
    _saved_indices,
    _unversioned,
)
from .registry import defop
from .shape import IndexingError, broadcast_to, reshape

__all__ = [
    "gather",
    "scatter",
    "scatter_add",
    "take_along_dim",
    "index_select",
    "index_add",
    "index_copy",
    "index_fill",
]


def _grid(xp: Any, index: Any, dim: int) -> tuple:
    """The advanced index addressing ``[i_0, ..., index[i], ..., i_n]`` for every position
    ``i`` of ``index`` (aranges along the other dimensions)."""
    n = index.ndim
    key = []
    for d, s in enumerate(index.shape):
        if d == dim:
            key.append(index)
        else:
            shape = [1] * n
            shape[d] = s
            key.append(xp.arange(s).reshape(shape))
    return tuple(key)


def _at(op: str, xp: Any, out: Any, key: tuple, value: Any, reduce: str | None) -> None:
    try:
        if reduce is None:
            out[key] = value
        elif reduce == "add":
            xp.add.at(out, key, value)
        elif xp is np:
            np.multiply.at(out, key, value)
        else:  # CuPy has no multiply.at
            _multiply_at_in_rounds(xp, out, key, value)
    except IndexError as e:
        raise _reword(op, out.shape, e) from None


def _multiply_at_in_rounds(xp: Any, out: Any, key: tuple, value: Any) -> None:
    """``multiply.at(out, key, value)`` for array modules without it: each round multiplies
    the first remaining occurrence of every distinct position, so repeated positions are all
    applied, in order (``out`` is C-contiguous: ``scatter`` works on a fresh copy)."""
    keys = xp.broadcast_arrays(*key)
    lin = xp.zeros(keys[0].shape, dtype=np.int64)
    for k, size in zip(keys, out.shape):
        if keys[0].size and bool(((k < -size) | (k >= size)).any()):
            raise IndexError(f"index out of range for a dimension of size {size}")
        lin = lin * size + k % size
    lin = lin.reshape(-1)
    vals = xp.broadcast_to(value, keys[0].shape).reshape(-1)
    flat = out.reshape(-1)
    while lin.size:
        targets, first = xp.unique(lin, return_index=True)
        flat[targets] *= vals[first]
        rest = xp.ones(lin.size, dtype=bool)
        rest[first] = False
        lin, vals = lin[rest], vals[rest]


# -- gather --------------------------------------------------------------------------------
@defop("gather", onnx="GatherElements")
def _gather(xp, x, index, dim):
    try:
        return x[_grid(xp, index, dim)]
    except IndexError as e:
        raise _reword("gather", x.shape, e) from None


@_gather.defgrad
def _(ctx, g):
    (index,) = _saved_indices(ctx, 1)
    dim = ctx.attrs["dim"]
    return _gather_backward(g, index, shape=ctx.input_shape(0), dim=dim), None


@defop("gather_backward", onnx="ScatterElements")
def _gather_backward(xp, g, index, shape, dim):
    """Zeros of ``shape`` with ``g`` added at the gathered positions."""
    out = xp.zeros(shape, dtype=g.dtype)
    _at("gather", xp, out, _grid(xp, index, dim), g, "add")
    return out


@_gather_backward.defgrad
def _(ctx, g):
    (index,) = _saved_indices(ctx, 1)
    return _gather(g, index, dim=ctx.attrs["dim"]), None


@_gather.defonnx
def _(g, x, index, dim):
    return g.op("GatherElements", x, index, axis=dim)


@_gather_backward.defonnx
def _(g, dy, index, shape, dim):
    g.need_opset(16, "gather's gradient (ScatterElements with reduction)")
    zeros = g.zeros(shape, dy.dtype)
    return g.op("ScatterElements", zeros, index, dy, axis=dim, reduction="add")


def _check(op: str, input: Tensor, dim: int, index: Any, src: Any = None) -> tuple[int, Tensor]:
    idx = _index_array(input, index, op)
    if idx._data.dtype.kind not in "iu":
        raise IndexingError(op, f"index must be an integer tensor, got {idx.dtype}")
    d = normalize_dim(op, dim, input.ndim)
    if idx.ndim != max(input.ndim, 1) and not (idx.ndim == 0 and input.ndim <= 1):
        raise ShapeError(
            op,
            f"index of shape {tuple(idx.shape)} must have as many dimensions as the input of "
            f"shape {tuple(input.shape)}",
        )
    in_shape = tuple(input.shape) or (1,)
    for k, s in enumerate(idx.shape):
        if k != d and s > in_shape[k]:
            raise ShapeError(
                op,
                f"index of shape {tuple(idx.shape)} is larger than the input of shape "
                f"{tuple(input.shape)} in dimension {k} (only dimension {d} may differ)",
            )
        if isinstance(src, Tensor) and (src.ndim != idx.ndim or s > src.shape[k]):
            raise ShapeError(
                op,
                f"index of shape {tuple(idx.shape)} is larger than src of shape "
                f"{tuple(src.shape)} in dimension {k}",
            )
    return d, idx


def gather(input: Tensor, dim: int, index: Tensor, *, sparse_grad: bool = False) -> Tensor:
    """``out[i][j][k] = input[i][index[i][j][k]][k]`` for ``dim=1`` (and so on for other
    dims); the result has ``index``'s shape.

    Example:
        >>> ember.tensor([[1, 2], [3, 4]]).gather(0, ember.tensor([[1, 0]])).tolist()
        [[3, 2]]
    """
    d, idx = _check("gather", input, dim, index)
    if input.ndim == 0:
        out = _gather(reshape(input, (1,)), reshape(idx, (-1,)), dim=0)
        return reshape(out, tuple(idx.shape))
    return _gather(_unversioned(input), idx, dim=d)


# -- scatter -------------------------------------------------------------------------------
@defop("scatter", onnx="ScatterElements")
def _scatter(xp, x, src, index, dim, reduce):
    out = x.copy()
    _at("scatter", xp, out, _grid(xp, index, dim), src, reduce)
    return out


@_scatter.defgrad
def _(ctx, g):
    (index,) = _saved_indices(ctx, 2)
    a = ctx.attrs
    if a["reduce"] == "multiply":
        raise RuntimeError("scatter: the gradient of reduce='multiply' is not implemented")
    need_x, need_src = ctx.needs_input_grad[:2]
    gx = gsrc = None
    if need_x:
        gx = g if a["reduce"] == "add" else _scatter(g, 0, index, dim=a["dim"], reduce=None)
    if need_src:
        gsrc = _gather(g, index, dim=a["dim"])
    return gx, gsrc, None


@_scatter.defonnx
def _(g, x, src, index, dim, reduce):
    if not g.is_value(src):  # a number: one per index entry
        src = g.op("Expand", g.scalar(src, x), g.op("Shape", index))
    elif src.shape != index.shape:  # PyTorch reads only the part of src that index covers
        src = g.slice(src, list(range(src.ndim)), [0] * src.ndim, list(index.shape))
    mode = {None: None, "add": "add", "multiply": "mul"}[reduce]
    if mode is not None:
        g.need_opset(16, f"scatter with reduce={reduce!r}")
    return g.op("ScatterElements", x, index, src, axis=dim, reduction=mode)


def _scatter_public(
    op: str, input: Tensor, dim: int, index: Any, src: Any, reduce: str | None
) -> Tensor:
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"{op}: reduce must be 'add' or 'multiply', got {reduce!r}")
    d, idx = _check(op, input, dim, index, src)
    if isinstance(src, Tensor):
        if tuple(src.shape) != tuple(idx.shape):  # only the part facing the index is used
            src = _getitem(src, index=tuple(slice(0, s) for s in idx.shape))
        src = cast(src, input.dtype)
    elif not isinstance(src, (*SCALARS, np.generic)):
        raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")
    if input.ndim == 0:
        flat = _scatter(reshape(input, (1,)), src, reshape(idx, (-1,)), dim=0, reduce=reduce)
        return reshape(flat, ())
    return _scatter(_unversioned(input), _unversioned(src), idx, dim=d, reduce=reduce)


def scatter(
    input: Tensor,
    dim: int,
    index: Tensor,
    src: Any = None,
    value: Any = None,
    *,
    reduce: str | None = None,
) -> Tensor:
    """A copy of ``input`` with ``src`` (a tensor, or the number ``value``) written at the
    positions ``index`` along ``dim``: ``out[i][index[i][j]] = src[i][j]`` for ``dim=1``.
    ``reduce='add'`` or ``'multiply'`` combines with the existing entries instead.

    Example:
        >>> ember.zeros(2, 3).scatter(1, ember.tensor([[2], [0]]), 1.0).tolist()
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter: expected src (a tensor) or value (a number)")
    return _scatter_public("scatter", input, dim, index, src, reduce)


def scatter_add(input: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """A copy of ``input`` with ``src`` added at the positions ``index`` along ``dim``
    (repeated positions add up).

    Example:
        >>> ember.zeros(3).scatter_add(0, ember.tensor([0, 0, 2]), ember.ones(3)).tolist()
        [2.0, 0.0, 1.0]
    """
    return _scatter_public("scatter_add", input, dim, index, src, "add")


# -- index_select / index_add / index_copy / index_fill (whole slices along one dim) -------
def _dim_index(op: str, input: Tensor, dim: int, index: Any) -> tuple[tuple, Tensor]:
    idx = _index_array(input, index, op)
    if idx.ndim > 1:
        raise IndexingError(op, f"index must be 0-D or 1-D, got shape {tuple(idx.shape)}")
    if idx._data.dtype.kind not in "iu":
        raise IndexingError(op, f"index must be an integer tensor, got {idx.dtype}")
    d = normalize_dim(op, dim, input.ndim)
    return (slice(None),) * d + (_T,), reshape(idx, (-1,))


def index_select(input: Tensor, dim: int, index: Tensor) -> Tensor:
    """The entries of ``input`` at positions ``index`` (1-D) along ``dim``.

    Example:
        >>> ember.arange(6).reshape(2, 3).index_select(1, ember.tensor([2, 0])).tolist()
        [[2, 0], [5, 3]]
    """
    spec, idx = _dim_index("index_select", input, dim, index)
    return _named("index_select", _index, _unversioned(input), idx, index=spec)


def _source(op: str, input: Tensor, spec: tuple, idx: Tensor, source: Tensor) -> Tensor:
    d = len(spec) - 1
    want = tuple(input.shape[:d]) + (idx.shape[0],) + tuple(input.shape[d + 1 :])
    if tuple(source.shape) != want:
        raise ShapeError(
            op,
            f"source of shape {tuple(source.shape)} doesn't match: expected {want} for "
            f"{idx.shape[0]} indices along dimension {d} of a tensor of shape "
            f"{tuple(input.shape)}",
        )
    return cast(source, input.dtype)


def index_add(input: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """A copy of ``input`` with ``alpha * source`` added at positions ``index`` along ``dim``
    (repeated indices add up).

    Example:
        >>> ember.zeros(3).index_add(0, ember.tensor([0, 0, 2]), ember.ones(3)).tolist()
        [2.0, 0.0, 1.0]
    """
    spec, idx = _dim_index("index_add", input, dim, index)
    src = _source("index_add", input, spec, idx, source)
    if alpha != 1:
        src = src * alpha
    return _named(
        "index_add",
        _index_put,
        _unversioned(input),
        _unversioned(src),
        idx,
        index=spec,
        accumulate=True,
    )


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """A copy of ``input`` with the slices of ``source`` written at positions ``index`` along
    ``dim``.

    Example:
        >>> ember.zeros(3).index_copy(0, ember.tensor([2, 0]), ember.tensor([5.0, 7.0])).tolist()
        [7.0, 0.0, 5.0]
    """
    spec, idx = _dim_index("index_copy", input, dim, index)
    src = _source("index_copy", input, spec, idx, source)
    return _named(
        "index_copy",
        _index_put,
        _unversioned(input),
        _unversioned(src),
        idx,
        index=spec,
        accumulate=False,
    )


def index_fill(input: Tensor, dim: int, index: Tensor, value: Any) -> Tensor:
    """A copy of ``input`` with the slices at positions ``index`` along ``dim`` set to
    ``value`` (a number or a 0-d tensor).

    Example:
        >>> ember.ones(2, 3).index_fill(1, ember.tensor([1]), 0.0).tolist()
        [[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]]
    """
    spec, idx = _dim_index("index_fill", input, dim, index)
    v = _fill_value("index_fill", input, value)
    return _named(
        "index_fill",
        _index_put,
        _unversioned(input),
        _unversioned(v),
        idx,
        index=spec,
        accumulate=False,
    )


# -- take_along_dim ------------------------------------------------------------------------
def take_along_dim(input: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """Pick entries along ``dim`` at ``indices`` (NumPy's ``take_along_axis``): ``input`` and
    ``indices`` broadcast in the other dimensions; with ``dim=None`` both are flattened.

    Example:
        >>> x = ember.tensor([[10, 30, 20]])
        >>> x.take_along_dim(x.argsort(dim=1), dim=1).tolist()
        [[10, 20, 30]]
    """
    idx = _index_array(input, indices, "take_along_dim")
    if dim is None:
        return gather(reshape(input, (-1,)), 0, reshape(idx, (-1,)))
    if idx.ndim != input.ndim:
        raise ShapeError(
            "take_along_dim",
            f"input of shape {tuple(input.shape)} and indices of shape {tuple(idx.shape)} "
            "should have the same number of dimensions",
        )
    d = normalize_dim("take_along_dim", dim, input.ndim)
    xs, ys = list(input.shape), list(idx.shape)
    xs[d] = ys[d] = 1
    try:
        common = list(np.broadcast_shapes(tuple(xs), tuple(ys)))
    except ValueError:
        raise ShapeError(
            "take_along_dim",
            f"input of shape {tuple(input.shape)} and indices of shape {tuple(idx.shape)} "
            f"cannot be broadcast outside dimension {d}",
        ) from None
    xs, ys = list(common), list(common)
    xs[d], ys[d] = input.shape[d], idx.shape[d]
    x = broadcast_to(input, tuple(xs))
    return gather(x, d, broadcast_to(idx, tuple(ys)))


METHODS = {
    "gather": gather,
    "scatter": scatter,
    "scatter_add": scatter_add,
    "take_along_dim": take_along_dim,
    "index_select": index_select,
    "index_add": index_add,
    "index_copy": index_copy,
    "index_fill": index_fill,
    "index_add_": _inplace("index_add_", index_add),
    "index_copy_": _inplace("index_copy_", index_copy),
}

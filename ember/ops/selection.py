"""Selection reductions: max/min (values and indices), amax/amin, argmax/argmin, sort,
argsort, topk, median, kthvalue.

Ops that return ``(values, indices)`` give PyTorch's named tuples. Values are differentiable:
the gradient goes to the selected element (``max(dim)``, ``sort``, ``topk``), or is split
evenly among tied elements for the full reductions (``max()``, ``amax``, ``median()``), as
in PyTorch.

Example:
    >>> import ember
    >>> r = ember.tensor([[1.0, 5.0, 2.0]]).max(dim=1)
    >>> r.values.tolist(), r.indices.tolist()
    ([5.0], [1])
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor
from ._reduction import keep, one_dim, reduce_dims, values_indices
from .creation import cast, zeros_like
from .elementwise import add, div, eq, gt, lt, mul, prepare, where
from .registry import defop
from .shape import reshape

__all__ = [
    "max",
    "min",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "sort",
    "argsort",
    "topk",
    "median",
    "kthvalue",
]


def _slice(x: Any, dim: int, start: int, stop: int) -> Any:
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, stop)
    return x[tuple(index)]


# -- gathering values at indices along a dim, and its adjoint ------------------------------
# Private to this family: the indices are always distinct along ``dim`` (an arg-reduction,
# a sort or a top-k), so the adjoint is a plain placement into zeros, not a scatter-add.
@defop("select_along", onnx="GatherElements")
def _select_along(xp, x, index, dim):
    return xp.take_along_axis(x, index, axis=dim)


@_select_along.defgrad
def _(ctx, g):
    index = ctx.inputs[1]
    d = ctx.attrs["dim"]
    return _place_along(g, index, dim=d, size=ctx.input_shape(0)[d]), None


@defop("place_along", onnx="ScatterElements")
def _place_along(xp, src, index, dim, size):
    shape = list(src.shape)
    shape[dim] = size
    out = xp.zeros(shape, dtype=src.dtype)
    xp.put_along_axis(out, index, src, axis=dim)
    return out


@_place_along.defgrad
def _(ctx, g):
    return _select_along(g, ctx.inputs[1], dim=ctx.attrs["dim"]), None


# -- amax / amin: values only, gradient shared among ties ----------------------------------
@defop("amax", saves_output=True, onnx="ReduceMax")
def _amax(xp, x, dim, keepdim):
    return xp.max(x, axis=dim, keepdims=keepdim)


@defop("amin", saves_output=True, onnx="ReduceMin")
def _amin(xp, x, dim, keepdim):
    return xp.min(x, axis=dim, keepdims=keepdim)


@defop("median_all", saves_output=True, onnx=None)
def _median_all(xp, x):
    flat = x.reshape(-1)
    k = (flat.size - 1) // 2
    out = xp.partition(flat, k)[k]
    if x.dtype.kind == "f":  # NaN propagates, like PyTorch
        out = xp.where(xp.isnan(flat).any(), xp.nan, out).astype(x.dtype)
    return xp.asarray(out)


@_select_along.defonnx
def _(g, x, index, dim):
    return g.op("GatherElements", x, index, axis=dim)


@_place_along.defonnx
def _(g, src, index, dim, size):
    shape = list(src.shape)
    shape[dim] = size
    return g.op("ScatterElements", g.zeros(shape, src.dtype), index, src, axis=dim)


def _extreme_onnx(op_type: str):
    def lower(g, x, dim, keepdim):
        xs = g.cast(x, "int32") if x.dtype.kind == "b" else x
        return g.reduce(op_type, xs, dim, keepdim)

    return lower


_amax.defonnx(_extreme_onnx("ReduceMax"))
_amin.defonnx(_extreme_onnx("ReduceMin"))


@_median_all.defonnx
def _(g, x):  # the ((n - 1) // 2)-th smallest; NaN if any
    n = g.numel(x, dtype="int64")
    flat = g.op("Reshape", x, g.ints([-1]))
    k = g.op("Reshape", g.op("Add", g.op("Div", g.op("Sub", n, 1), 2), 1), g.ints([1]))
    values, _ = g.op("TopK", flat, k, axis=0, largest=0, sorted=1, outputs=2)
    out = g.op("Reshape", g.slice(values, [0], [-1], [g.INT64_MAX]), g.ints([]))
    if x.dtype.kind != "f":
        return out
    has_nan = g.reduce("ReduceMax", g.cast(g.op("IsNaN", flat), "int32"), None, False)
    return g.where(g.cmp("Greater", has_nan, 0), float("nan"), out, like=x)


def _tie_split(ctx, g):
    """Gradient of a reduction that picks a value: shared evenly by the elements equal to it."""
    from .reduce import sum

    (x,) = ctx.inputs
    dims, keepdim = ctx.attrs.get("dim"), ctx.attrs.get("keepdim", False)
    shape = ctx.input_shape(0)
    out = keep(ctx.output, shape, dims, keepdim)
    mask = cast(eq(x, out), g.dtype)
    share = div(mask, sum(mask, dims, keepdim=True))
    return (mul(keep(g, shape, dims, keepdim), share),)


_amax.defgrad(_tie_split)
_amin.defgrad(_tie_split)
_median_all.defgrad(_tie_split)


def _check_nonempty(op: str, input: Tensor, dims: tuple | None) -> None:
    shape = tuple(input.shape)
    sizes = shape if dims is None else tuple(shape[d] for d in dims)
    if 0 in sizes:
        where_ = "an empty tensor" if dims is None else f"dim {dims} of a tensor"
        raise ShapeError(
            op, f"cannot reduce over {where_} of shape {shape} (no identity); pick a nonempty dim"
        )


def amax(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """The maximum over ``dim`` (all dims by default); ties share the gradient evenly.

    Example:
        >>> ember.amax(ember.tensor([[1.0, 4.0], [3.0, 2.0]]), dim=0).tolist()
        [3.0, 4.0]
    """
    dims = reduce_dims("amax", dim, input.ndim)
    _check_nonempty("amax", input, dims)
    return _amax(input, dim=dims, keepdim=keepdim)


def amin(input: Tensor, dim: Any = (), keepdim: bool = False) -> Tensor:
    """The minimum over ``dim`` (all dims by default); ties share the gradient evenly.

    Example:
        >>> ember.amin(ember.tensor([[1.0, 4.0], [3.0, 2.0]]), dim=1).tolist()
        [1.0, 2.0]
    """
    dims = reduce_dims("amin", dim, input.ndim)
    _check_nonempty("amin", input, dims)
    return _amin(input, dim=dims, keepdim=keepdim)


# -- argmax / argmin -----------------------------------------------------------------------
def _arg(fn, xp, x, dim, keepdim):
    if dim is None:
        out = fn(x.reshape(-1))
        if keepdim:
            out = out.reshape((1,) * x.ndim)
    else:
        out = fn(x, axis=dim, keepdims=keepdim)
    return xp.asarray(out).astype(xp.int64, copy=False)


@defop("argmax", onnx="ArgMax")
def _argmax(xp, x, dim, keepdim):
    return _arg(xp.argmax, xp, x, dim, keepdim)


@defop("argmin", onnx="ArgMin")
def _argmin(xp, x, dim, keepdim):
    return _arg(xp.argmin, xp, x, dim, keepdim)


def _arg_onnx(op_type: str):
    def lower(g, x, dim, keepdim):
        xs = g.cast(x, "int32") if x.dtype.kind == "b" else x
        if dim is None:
            flat = g.op("Reshape", xs, g.ints([-1]))
            out = g.op(op_type, flat, axis=0, keepdims=0)
            return g.reshape(out, (1,) * x.ndim) if keepdim else out
        return g.op(op_type, xs, axis=dim, keepdims=int(bool(keepdim)))

    return lower


_argmax.defonnx(_arg_onnx("ArgMax"))
_argmin.defonnx(_arg_onnx("ArgMin"))


def _arg_reduce(op: Any, name: str, input: Tensor, dim: Any, keepdim: bool) -> Tensor:
    if dim is None:
        _check_nonempty(name, input, None)
        return op(input, dim=None, keepdim=keepdim)
    if input.ndim == 0:
        one_dim(name, dim, 0)
        return op(reshape(input, (1,)), dim=0, keepdim=False)
    d = one_dim(name, dim, input.ndim)
    _check_nonempty(name, input, (d,))
    return op(input, dim=d, keepdim=keepdim)


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the maximum along ``dim`` (of the flattened tensor when None), as int64.

    Example:
        >>> ember.argmax(ember.tensor([[1.0, 4.0], [3.0, 2.0]]), dim=1).tolist()
        [1, 0]
    """
    return _arg_reduce(_argmax, "argmax", input, dim, keepdim)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Index of the minimum along ``dim`` (of the flattened tensor when None), as int64.

    Example:
        >>> ember.argmin(ember.tensor([[1.0, 4.0], [3.0, 2.0]]), dim=1).tolist()
        [0, 1]
    """
    return _arg_reduce(_argmin, "argmin", input, dim, keepdim)


# -- max / min -----------------------------------------------------------------------------
def _values_at(name: str, input: Tensor, index: Tensor, d: int, keepdim: bool) -> tuple:
    """``(values, indices)`` of ``input`` at ``index`` (size 1 along ``d``) as a named tuple."""
    values = _select_along(input, index, dim=d)
    if not keepdim:
        shape = tuple(s for i, s in enumerate(index.shape) if i != d)
        values, index = reshape(values, shape), reshape(index, shape)
    return values_indices[name](values, index)


def _max_min(name: str, input: Tensor, dim: Any, keepdim: bool) -> Any:
    if dim is None:
        _check_nonempty(name, input, None)
        return (_amax if name == "max" else _amin)(input, dim=None, keepdim=False)
    if input.ndim == 0:
        one_dim(name, dim, 0)
        return values_indices[name](input, zeros_like(input, dtype="int64"))
    d = one_dim(name, dim, input.ndim)
    _check_nonempty(name, input, (d,))
    index = (_argmax if name == "max" else _argmin)(input, dim=d, keepdim=True)
    return _values_at(name, input, index, d, keepdim)


def _binary(name: str, input: Tensor, other: Tensor) -> Tensor:
    from . import elementwise

    fn = getattr(elementwise, "maximum" if name == "max" else "minimum", None)
    if fn is not None:
        return fn(input, other)
    # fallback until elementwise has maximum/minimum: ties share the gradient, like PyTorch
    a, b = prepare(input, other)
    first, second = (gt, lt) if name == "max" else (lt, gt)
    return where(first(a, b), a, where(second(a, b), b, mul(add(a, b), 0.5)))


def max(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """``max(input)``: the largest value. ``max(input, dim, keepdim=False)``: a named tuple
    ``(values, indices)`` along ``dim``. ``max(input, other)``: the elementwise maximum.

    Example:
        >>> x = ember.tensor([[1.0, 5.0], [7.0, 2.0]])
        >>> x.max().item(), x.max(dim=1).indices.tolist()
        (7.0, [1, 0])
    """
    if isinstance(dim, Tensor):
        return _binary("max", input, dim)
    return _max_min("max", input, dim, keepdim)


def min(input: Tensor, dim: Any = None, keepdim: bool = False) -> Any:
    """``min(input)``: the smallest value. ``min(input, dim, keepdim=False)``: a named tuple
    ``(values, indices)`` along ``dim``. ``min(input, other)``: the elementwise minimum.

    Example:
        >>> x = ember.tensor([[1.0, 5.0], [7.0, 2.0]])
        >>> x.min().item(), x.min(dim=0).values.tolist()
        (1.0, [1.0, 2.0])
    """
    if isinstance(dim, Tensor):
        return _binary("min", input, dim)
    return _max_min("min", input, dim, keepdim)


# -- sort / argsort / topk -----------------------------------------------------------------
@defop("argsort", onnx=None)
def _argsort(xp, x, dim, descending, stable):
    if not descending:
        idx = xp.argsort(x, axis=dim, kind="stable") if stable else xp.argsort(x, axis=dim)
        return idx.astype(xp.int64, copy=False)
    # descending and stable (equal values keep their order, NaN first, like PyTorch): sort the
    # reversed tensor ascending, then reverse the result and map indices back
    n = x.shape[dim]
    idx = xp.argsort(xp.flip(x, axis=dim), axis=dim, kind="stable")
    return xp.flip((n - 1) - idx, axis=dim).astype(xp.int64, copy=False)


@_argsort.defonnx
def _(g, x, dim, descending, stable):  # TopK of everything: equal values keep their order
    k = g.ints([x.shape[dim]])
    _, idx = g.op("TopK", x, k, axis=dim, largest=int(bool(descending)), sorted=1, outputs=2)
    return idx


def _sorted_pair(name: str, input: Tensor, index: Tensor, d: int) -> tuple:
    return values_indices[name](_select_along(input, index, dim=d), index)


def sort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """Sort along ``dim``: a named tuple ``(values, indices)``; ``values`` is differentiable.
    ``stable=True`` keeps the order of equal elements (descending sorts are always stable).

    Example:
        >>> r = ember.sort(ember.tensor([3.0, 1.0, 2.0]), descending=True)
        >>> r.values.tolist(), r.indices.tolist()
        ([3.0, 2.0, 1.0], [0, 2, 1])
    """
    if input.ndim == 0:
        one_dim("sort", dim, 0)
        return values_indices["sort"](input, zeros_like(input, dtype="int64"))
    d = one_dim("sort", dim, input.ndim)
    index = _argsort(input, dim=d, descending=descending, stable=stable)
    return _sorted_pair("sort", input, index, d)


def argsort(input: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``input`` along ``dim`` (int64).

    Example:
        >>> ember.argsort(ember.tensor([3.0, 1.0, 2.0])).tolist()
        [1, 2, 0]
    """
    if input.ndim == 0:
        one_dim("argsort", dim, 0)
        return zeros_like(input, dtype="int64")
    d = one_dim("argsort", dim, input.ndim)
    return _argsort(input, dim=d, descending=descending, stable=stable)


@defop("topk_indices", onnx="TopK")
def _topk_indices(xp, x, k, dim, largest):
    n = x.shape[dim]
    if k == 0:
        return xp.zeros(tuple(0 if i == dim else s for i, s in enumerate(x.shape)), xp.int64)
    if k == n:
        return _argsort.forward(xp, x, dim=dim, descending=largest, stable=True)
    # partial selection first (O(n)), then sort only the k candidates
    if largest:
        cand = _slice(xp.argpartition(x, n - k, axis=dim), dim, n - k, n)
    else:
        cand = _slice(xp.argpartition(x, k - 1, axis=dim), dim, 0, k)
    values = xp.take_along_axis(x, cand, axis=dim)
    order = _argsort.forward(xp, values, dim=dim, descending=largest, stable=True)
    return xp.take_along_axis(cand, order, axis=dim).astype(xp.int64, copy=False)


@_topk_indices.defonnx
def _(g, x, k, dim, largest):
    _, idx = g.op("TopK", x, g.ints([k]), axis=dim, largest=int(bool(largest)), outputs=2)
    return idx


def topk(input: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:
    """The ``k`` largest (or smallest) elements along ``dim``: a named tuple
    ``(values, indices)``, always in sorted order; ``values`` is differentiable.

    Example:
        >>> r = ember.topk(ember.tensor([1.0, 5.0, 3.0, 4.0]), 2)
        >>> r.values.tolist(), r.indices.tolist()
        ([5.0, 4.0], [1, 3])
    """
    if input.ndim == 0:
        one_dim("topk", dim, 0)
        input = reshape(input, (1,))
        res = topk(input, k, 0, largest, sorted)
        return values_indices["topk"](*(reshape(t, () if k == 1 else (k,)) for t in res))
    d = one_dim("topk", dim, input.ndim)
    n = input.shape[d]
    if not isinstance(k, int) or not 0 <= k <= n:
        raise ShapeError(
            "topk",
            f"k ({k}) is out of range for dimension {dim} of size {n} (shape {tuple(input.shape)})",
        )
    index = _topk_indices(input, k=k, dim=d, largest=largest)
    return _sorted_pair("topk", input, index, d)


# -- median / kthvalue ---------------------------------------------------------------------
@defop("kth_index", onnx=None)
def _kth_index(xp, x, k, dim, propagate_nan):
    """Index (keeping ``dim`` as size 1) of the ``k``-th smallest element along ``dim``."""
    idx = _slice(xp.argpartition(x, k, axis=dim), dim, k, k + 1)
    if propagate_nan and x.dtype.kind == "f":
        nan = xp.isnan(x)
        idx = xp.where(
            nan.any(axis=dim, keepdims=True), xp.argmax(nan, axis=dim, keepdims=True), idx
        )
    return idx.astype(xp.int64, copy=False)


@_kth_index.defonnx
def _(g, x, k, dim, propagate_nan):
    _, idx = g.op("TopK", x, g.ints([k + 1]), axis=dim, largest=0, sorted=1, outputs=2)
    idx = g.slice(idx, [dim], [k], [k + 1])
    if not (propagate_nan and x.dtype.kind == "f"):
        return idx
    nan = g.cast(g.op("IsNaN", x), "int32")
    first = g.op("ArgMax", nan, axis=dim, keepdims=1)
    return g.where(
        g.cmp("Greater", g.reduce("ReduceMax", nan, (dim,), True), 0), first, idx, like=idx
    )


def _kth(name: str, input: Tensor, k: int, dim: int, keepdim: bool) -> Any:
    if input.ndim == 0:
        one_dim(name, dim, 0)
        input = reshape(input, (1,))
        r = _kth(name, input, k, 0, False)
        return values_indices[name](*(reshape(t, ()) for t in r))
    d = one_dim(name, dim, input.ndim)
    n = input.shape[d]
    if not 0 <= k < n:
        raise ShapeError(
            name,
            f"k ({k + 1}) is out of range for dimension {dim} of size {n} "
            f"(shape {tuple(input.shape)})",
        )
    index = _kth_index(input, k=k, dim=d, propagate_nan=name == "median")
    return _values_at(name, input, index, d, keepdim)


def median(input: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The lower median (of all elements: a value; along ``dim``: a named tuple
    ``(values, indices)``). NaN propagates.

    Example:
        >>> x = ember.tensor([[4.0, 1.0, 3.0, 2.0]])
        >>> x.median().item(), x.median(dim=1).indices.tolist()
        (2.0, [3])
    """
    if dim is None:
        _check_nonempty("median", input, None)
        return _median_all(input)
    n = input.shape[one_dim("median", dim, input.ndim)] if input.ndim else 1
    return _kth("median", input, (n - 1) // 2, dim, keepdim)


def kthvalue(input: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """The ``k``-th smallest element (``k`` counts from 1) along ``dim``: a named tuple
    ``(values, indices)``.

    Example:
        >>> ember.kthvalue(ember.tensor([3.0, 1.0, 2.0]), 2).values.item()
        2.0
    """
    return _kth("kthvalue", input, k - 1, dim, keepdim)


METHODS = {
    "max": max,
    "min": min,
    "amax": amax,
    "amin": amin,
    "argmax": argmax,
    "argmin": argmin,
    "sort": sort,
    "argsort": argsort,
    "topk": topk,
    "median": median,
    "kthvalue": kthvalue,
}

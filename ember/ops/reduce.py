"""Reductions: sum, mean, var/std, prod, logsumexp, all/any, cumsum/cumprod, and (from
``selection`` and ``norms``) max/min, sort/topk, norm.

All take PyTorch's ``dim`` (int, tuple or None; an empty tuple means every dim) and
``keepdim``; negative dims count from the end.

Example:
    >>> import ember
    >>> ember.ones(2, 3).sum(dim=-1).tolist()
    [3.0, 3.0]
"""

from __future__ import annotations

import math
from typing import Any

from .. import dtypes, kernels
from ..tensor import Tensor
from . import norms, selection
from ._reduction import keep, one_dim, reduce_dims, reduced_count, require_float, unreduce
from .creation import cast
from .elementwise import div, eq, exp, mul, sub, where
from .norms import *  # noqa: F403  (re-exported: these families are reductions too)
from .registry import defop
from .selection import *  # noqa: F403

__all__ = [
    "sum",
    "mean",
    "var",
    "std",
    "var_mean",
    "std_mean",
    "prod",
    "logsumexp",
    "all",
    "any",
    "count_nonzero",
    "cumsum",
    "cumprod",
    *selection.__all__,
    *norms.__all__,
]


def _int_to_long(input: Tensor, dtype: Any) -> Any:
    """PyTorch's accumulation dtype: the requested one, int64 for integers/bools, else same."""
    if dtype is not None:
        return dtypes.to_dtype(dtype).np
    if input._data.dtype.kind in "biu":
        return dtypes.int64.np
    return None


# -- sum / mean ----------------------------------------------------------------------------
@defop("sum", saves_inputs=False, onnx="ReduceSum")
def _sum(xp, x, dim, keepdim, dtype):
    if dtype is None and dim is not None:
        y = leading_sums(x, dim, keepdim)
        if y is not None:
            return y
    return x.sum(axis=dim, keepdims=keepdim, dtype=dtype)


def leading_sums(x: Any, dims: Any, keepdim: bool = False) -> Any:
    """``x.sum(axis=dims, keepdims=keepdim)`` by the column-sums kernel
    (:func:`ember.kernels.arith.column_sums`) where ``dims`` are ``x``'s leading axes, all
    but the last at least, and ``x`` is a large C-contiguous float array; else None.

    Example:
        >>> import numpy as np
        >>> leading_sums(np.ones((2, 3), np.float32), (0,)) is None  # small: NumPy's
        True
    """
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    k = len(dims)
    if not 0 < k < x.ndim or dims != tuple(range(k)) or not x.flags.c_contiguous:
        return None  # (a strided x would be copied by the reshape: NumPy's sum reads in place)
    y = kernels.column_sums(x.reshape(math.prod(x.shape[:k]), math.prod(x.shape[k:])))
    if y is None:
        return None
    return y.reshape((1,) * k + x.shape[k:] if keepdim else x.shape[k:])


@_sum.defgrad
def _(ctx, g):
    a = ctx.attrs
    return (unreduce(g, ctx.input_shape(0), a["dim"], a["keepdim"]),)


@_sum.defonnx
def _(g, x, dim, keepdim, dtype):
    return g.reduce("ReduceSum", g.cast(x, dtype), dim, keepdim)


def sum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """Sum over ``dim`` (all dims when None). Integer and bool inputs sum to int64.

    Example:
        >>> ember.sum(ember.tensor([[1, 2], [3, 4]]), dim=0).tolist()
        [4, 6]
    """
    if dim is None and dtype is None and input._data.dtype.kind == "f":  # the common case
        return _sum(input, dim=None, keepdim=keepdim, dtype=None)
    dims = reduce_dims("sum", dim, input.ndim)
    return _sum(input, dim=dims, keepdim=keepdim, dtype=_int_to_long(input, dtype))


@defop("mean", saves_inputs=False, onnx="ReduceMean")
def _mean(xp, x, dim, keepdim):
    return x.mean(axis=dim, keepdims=keepdim)


@_mean.defgrad
def _(ctx, g):
    a = ctx.attrs
    shape = ctx.input_shape(0)
    n = reduced_count(shape, a["dim"])
    return (unreduce(g / (n if n > 1 else 1), shape, a["dim"], a["keepdim"]),)


@_mean.defonnx
def _(g, x, dim, keepdim):
    return g.reduce("ReduceMean", x, dim, keepdim)


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
    return _mean(input, dim=reduce_dims("mean", dim, input.ndim), keepdim=keepdim)


# -- var / std -----------------------------------------------------------------------------
@defop("var", onnx=None)
def _var(xp, x, dim, correction, keepdim):
    return xp.var(x, axis=dim, ddof=correction, keepdims=keepdim)


def _var_onnx(g, x, dim, correction, keepdim):
    d = g.op("Sub", x, g.reduce("ReduceMean", x, dim, True))
    ss = g.reduce("ReduceSum", g.op("Mul", d, d), dim, keepdim)
    n = g.numel(x, None if dim is None else ((dim,) if isinstance(dim, int) else dim))
    return g.op("Div", ss, g.op("Max", g.op("Sub", n, float(correction)), 0.0))


_var.defonnx(_var_onnx)


def _var_scale(n: int, correction: float) -> float:
    d = n - correction
    return 2.0 / d if d > 0 else math.inf


@_var.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    a = ctx.attrs
    dims, shape = a["dim"], ctx.input_shape(0)
    diff = sub(x, _mean(x, dim=dims, keepdim=True))
    scale = _var_scale(reduced_count(shape, dims), a["correction"])
    return (mul(unreduce(g, shape, dims, a["keepdim"]), diff * scale),)


@defop("std", saves_output=True, onnx=None)
def _std(xp, x, dim, correction, keepdim):
    return xp.std(x, axis=dim, ddof=correction, keepdims=keepdim)


@_std.defgrad
def _(ctx, g):
    # d std = d var / (2 std); zero where std is zero (a constant input), like PyTorch
    (x,) = ctx.inputs
    a = ctx.attrs
    dims, shape, keepdim = a["dim"], ctx.input_shape(0), a["keepdim"]
    out = ctx.output
    zero = eq(out, 0)
    g_var = where(zero, 0.0, div(g, mul(where(zero, 1.0, out), 2)))
    diff = sub(x, _mean(x, dim=dims, keepdim=True))
    scale = _var_scale(reduced_count(shape, dims), a["correction"])
    return (mul(unreduce(g_var, shape, dims, keepdim), diff * scale),)


@_std.defonnx
def _(g, x, dim, correction, keepdim):
    return g.op("Sqrt", _var_onnx(g, x, dim, correction, keepdim))


def _correction(op: str, dim: Any, unbiased: Any, correction: Any) -> tuple[Any, float]:
    if isinstance(dim, bool):  # var(x, False): the legacy positional `unbiased`
        dim, unbiased = None, dim
    if unbiased is not None and correction is not None:
        raise TypeError(f"{op}: pass either unbiased or correction, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return dim, correction


def _spread(
    op: str, fn: Any, input: Tensor, dim: Any, unbiased: Any, keepdim: bool, correction: Any
) -> Tensor:
    """``var``/``std`` (``fn``) after checking the arguments as PyTorch does."""
    dim, c = _correction(op, dim, unbiased, correction)
    require_float(op, input)
    return fn(input, dim=reduce_dims(op, dim, input.ndim), correction=c, keepdim=keepdim)


def var(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> Tensor:
    """Variance over ``dim``: ``sum((x - mean)**2) / (N - correction)``; ``correction=1``
    (Bessel's, the default) or ``unbiased=False`` for the population variance.

    Example:
        >>> ember.var(ember.tensor([1.0, 2.0, 3.0, 4.0])).item()
        1.6666666269302368
    """
    return _spread("var", _var, input, dim, unbiased, keepdim, correction)


def std(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> Tensor:
    """Standard deviation over ``dim`` (the square root of :func:`var`, same arguments).

    Example:
        >>> ember.std(ember.tensor([1.0, 3.0]), correction=0).item()
        1.0
    """
    return _spread("std", _std, input, dim, unbiased, keepdim, correction)


def var_mean(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[Tensor, Tensor]:
    """``(var(input, ...), mean(input, ...))`` in one call.

    Example:
        >>> v, m = ember.var_mean(ember.tensor([1.0, 3.0]))
        >>> v.item(), m.item()
        (2.0, 2.0)
    """
    v = var(input, dim, unbiased, keepdim, correction=correction)
    dim, _ = _correction("var_mean", dim, unbiased, correction)
    return v, mean(input, dim, keepdim)


def std_mean(
    input: Tensor,
    dim: Any = None,
    unbiased: bool | None = None,
    keepdim: bool = False,
    *,
    correction: float | None = None,
) -> tuple[Tensor, Tensor]:
    """``(std(input, ...), mean(input, ...))`` in one call.

    Example:
        >>> s, m = ember.std_mean(ember.tensor([1.0, 3.0]), correction=0)
        >>> s.item(), m.item()
        (1.0, 2.0)
    """
    s = std(input, dim, unbiased, keepdim, correction=correction)
    dim, _ = _correction("std_mean", dim, unbiased, correction)
    return s, mean(input, dim, keepdim)


# -- prod ----------------------------------------------------------------------------------
@defop("prod", saves_output=True, onnx="ReduceProd")
def _prod(xp, x, dim, keepdim, dtype):
    return xp.prod(x, axis=dim, keepdims=keepdim, dtype=dtype)


@_prod.defgrad
def _(ctx, g):
    # d prod / d x_i = product of the others. Without zeros that is out / x_i; with exactly one
    # zero, only the zero's gradient is nonzero (the product of the nonzero rest); with two or
    # more zeros every gradient is zero.
    (x,) = ctx.inputs
    a = ctx.attrs
    dims, shape, keepdim = a["dim"], ctx.input_shape(0), a["keepdim"]
    out = unreduce(ctx.output, shape, dims, keepdim)
    is_zero = eq(x, 0)
    x_safe = where(is_zero, 1.0, x)
    zeros = sum(is_zero, dims, keepdim=True)
    rest = _prod(x_safe, dim=dims, keepdim=True, dtype=None)
    at_zero = where(eq(zeros, 1), rest, 0.0)
    local = where(is_zero, at_zero, div(out, x_safe))
    return (mul(unreduce(g, shape, dims, keepdim), local),)


@_prod.defonnx
def _(g, x, dim, keepdim, dtype):
    return g.reduce("ReduceProd", g.cast(x, dtype), dim, keepdim)


def prod(
    input: Tensor, dim: int | None = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """Product of the elements over ``dim`` (all when None). Integers multiply to int64.

    Example:
        >>> ember.prod(ember.tensor([[1.0, 2.0], [3.0, 4.0]]), dim=1).tolist()
        [2.0, 12.0]
    """
    dims = reduce_dims("prod", dim, input.ndim)
    return _prod(input, dim=dims, keepdim=keepdim, dtype=_int_to_long(input, dtype))


# -- logsumexp -----------------------------------------------------------------------------
@defop("logsumexp", saves_output=True, onnx="ReduceLogSumExp")
def _logsumexp(xp, x, dim, keepdim):
    m = xp.max(x, axis=dim, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    out = xp.log(xp.sum(xp.exp(x - m), axis=dim, keepdims=True)) + m
    if keepdim:
        return out
    return out.reshape(()) if dim is None else xp.squeeze(out, axis=dim)


@_logsumexp.defgrad
def _(ctx, g):
    # the gradient is the softmax over dim
    (x,) = ctx.inputs
    a = ctx.attrs
    dims, shape, keepdim = a["dim"], ctx.input_shape(0), a["keepdim"]
    soft = exp(sub(x, keep(ctx.output, shape, dims, keepdim)))
    return (mul(keep(g, shape, dims, keepdim), soft),)


@_logsumexp.defonnx
def _(g, x, dim, keepdim):  # max-shifted; an all -inf (or inf) slice shifts by 0
    m = g.reduce("ReduceMax", x, dim, True)
    m = g.where(g.op("IsInf", m), 0.0, m, like=x)
    lse = g.reduce("ReduceSum", g.op("Exp", g.op("Sub", x, m)), dim, True)
    out = g.op("Add", g.op("Log", lse), m)
    if keepdim:
        return out
    return (
        g.reshape(out, ())
        if dim is None
        else g.squeeze(out, [dim] if isinstance(dim, int) else dim)
    )


def logsumexp(input: Tensor, dim: Any, keepdim: bool = False) -> Tensor:
    """``log(sum(exp(input), dim))``, computed stably (the max is subtracted first); its
    gradient is the softmax over ``dim``. Integer inputs give the default float dtype.

    Example:
        >>> ember.logsumexp(ember.tensor([1000.0, 1000.0]), dim=0).item()
        1000.6931762695312
    """
    if input._data.dtype.kind != "f":
        input = cast(input, dtypes.get_default_dtype())
    return _logsumexp(input, dim=reduce_dims("logsumexp", dim, input.ndim), keepdim=keepdim)


# -- all / any / count_nonzero -------------------------------------------------------------
@defop("all", onnx=None)
def _all(xp, x, dim, keepdim, dtype):
    return xp.all(x, axis=dim, keepdims=keepdim).astype(dtype, copy=False)


@defop("any", onnx=None)
def _any(xp, x, dim, keepdim, dtype):
    return xp.any(x, axis=dim, keepdims=keepdim).astype(dtype, copy=False)


def _any_onnx(g, x, dim, keepdim):
    count = g.reduce("ReduceSum", g.cast(g.cast(x, "bool"), "int64"), dim, keepdim)
    return g.cmp("Greater", count, 0)


@_all.defonnx
def _(g, x, dim, keepdim, dtype):  # all = not any(not x)
    none_false = g.op("Not", _any_onnx(g, g.op("Not", g.cast(x, "bool")), dim, keepdim))
    return g.cast(none_false, dtype)


@_any.defonnx
def _(g, x, dim, keepdim, dtype):
    return g.cast(_any_onnx(g, x, dim, keepdim), dtype)


def _logical_dtype(input: Tensor) -> Any:
    kind = input._data.dtype
    return dtypes.uint8.np if kind == dtypes.uint8.np else dtypes.bool_.np


def all(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True where every element over ``dim`` is nonzero (a bool tensor; uint8 stays uint8).

    Example:
        >>> ember.all(ember.tensor([[1, 0], [1, 1]]), dim=1).tolist()
        [False, True]
    """
    dims = reduce_dims("all", dim, input.ndim)
    return _all(input, dim=dims, keepdim=keepdim, dtype=_logical_dtype(input))


def any(input: Tensor, dim: Any = None, keepdim: bool = False) -> Tensor:
    """True where some element over ``dim`` is nonzero (a bool tensor; uint8 stays uint8).

    Example:
        >>> ember.any(ember.tensor([[1, 0], [0, 0]]), dim=1).tolist()
        [True, False]
    """
    dims = reduce_dims("any", dim, input.ndim)
    return _any(input, dim=dims, keepdim=keepdim, dtype=_logical_dtype(input))


@defop("count_nonzero", onnx=None)
def _count_nonzero(xp, x, dim):
    return (x != 0).sum(axis=dim, dtype=xp.int64)


@_count_nonzero.defonnx
def _(g, x, dim):
    nonzero = g.cast(g.op("Not", g.cmp("Equal", x, 0)), "int64")
    return g.reduce("ReduceSum", nonzero, dim, False)


def count_nonzero(input: Tensor, dim: Any = None) -> Tensor:
    """The number of nonzero elements over ``dim`` (all when None), as int64.

    Example:
        >>> ember.count_nonzero(ember.tensor([[0, 1], [2, 3]]), dim=0).tolist()
        [1, 2]
    """
    return _count_nonzero(input, dim=reduce_dims("count_nonzero", dim, input.ndim))


# -- cumulative sums and products ----------------------------------------------------------
@defop("cumsum", saves_inputs=False, onnx="CumSum")
def _cumsum(xp, x, dim, reverse, dtype):
    if x.ndim == 0:
        return x.astype(dtype or x.dtype, copy=True)
    if reverse:
        return xp.flip(xp.cumsum(xp.flip(x, axis=dim), axis=dim, dtype=dtype), axis=dim)
    return xp.cumsum(x, axis=dim, dtype=dtype)


@_cumsum.defgrad
def _(ctx, g):
    a = ctx.attrs
    return (_cumsum(g, dim=a["dim"], reverse=not a["reverse"], dtype=None),)


@_cumsum.defonnx
def _(g, x, dim, reverse, dtype):
    x = g.cast(x, dtype)
    if x.ndim == 0:
        return g.op("Identity", x)
    return g.op("CumSum", x, g.size(dim), reverse=int(bool(reverse)))


def cumsum(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running sum along ``dim``. Integers and bools accumulate in int64.

    Example:
        >>> ember.cumsum(ember.tensor([1, 2, 3]), dim=0).tolist()
        [1, 3, 6]
    """
    d = one_dim("cumsum", dim, input.ndim)
    return _cumsum(input, dim=d, reverse=False, dtype=_int_to_long(input, dtype))


@defop("cumprod", saves_output=True, onnx=None)
def _cumprod(xp, x, dim, dtype):
    if x.ndim == 0:
        return x.astype(dtype or x.dtype, copy=True)
    return xp.cumprod(x, axis=dim, dtype=dtype)


@_cumprod.defgrad
def _(ctx, g):
    # out_j = prod_{k<=j} x_k. Before the first zero along dim (index z), the gradient is
    # rev_cumsum(g * out)_i / x_i; at z it is rev_cumsum(g * out')_z where out' is the cumprod
    # with that zero replaced by one; after z it is zero.
    (x,) = ctx.inputs
    d = ctx.attrs["dim"]
    out = ctx.output
    if x.ndim == 0:
        return (g,)
    is_zero = eq(x, 0)
    zeros_so_far = _cumsum(is_zero, dim=d, reverse=False, dtype=dtypes.int64.np)
    before = eq(zeros_so_far, 0)
    first = eq(mul(zeros_so_far, cast(is_zero, dtypes.int64)), 1)
    rev = _cumsum(mul(g, out), dim=d, reverse=True, dtype=None)
    ga = div(rev, where(before, x, 1.0))
    x_one = where(first, 1.0, x)
    gz = _cumsum(mul(g, _cumprod(x_one, dim=d, dtype=None)), dim=d, reverse=True, dtype=None)
    return (where(before, ga, where(first, gz, 0.0)),)


@_cumprod.defonnx
def _(g, x, dim, dtype):  # out_i = prod_j where(j <= i, x_j, 1): a masked ReduceProd
    x = g.cast(x, dtype)
    if x.ndim == 0:
        return g.op("Identity", x)
    n = x.shape[dim]
    if not isinstance(n, int):
        raise ValueError(f"cumprod along a dynamic dimension of size {n} cannot be exported")
    import numpy as np

    mask = np.tril(np.ones((n, n), dtype=bool)).reshape((n, n) + (1,) * (x.ndim - dim - 1))
    table = g.where(g.const(mask), g.unsqueeze(x, [dim]), 1, like=x)
    return g.reduce("ReduceProd", table, (dim + 1,), False)


def cumprod(input: Tensor, dim: int, *, dtype: Any = None) -> Tensor:
    """Running product along ``dim`` (gradient exact also where the input has zeros).

    Example:
        >>> ember.cumprod(ember.tensor([1.0, 2.0, 3.0]), dim=0).tolist()
        [1.0, 2.0, 6.0]
    """
    d = one_dim("cumprod", dim, input.ndim)
    return _cumprod(input, dim=d, dtype=_int_to_long(input, dtype))


METHODS = {
    "sum": sum,
    "mean": mean,
    "var": var,
    "std": std,
    "prod": prod,
    "logsumexp": logsumexp,
    "all": all,
    "any": any,
    "count_nonzero": count_nonzero,
    "cumsum": cumsum,
    "cumprod": cumprod,
    **selection.METHODS,
    **norms.METHODS,
}

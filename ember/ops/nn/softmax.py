"""Softmax family: ``softmax``, ``log_softmax``, ``softmin``.

``softmax`` and ``log_softmax`` are primitives computed in one stable pass on the array
module (the row maximum is subtracted before ``exp``), each with a dedicated backward op
(``softmax_backward``, ``log_softmax_backward``) that is itself differentiable, so second
derivatives work. ``safe_softmax`` is the variant attention uses: rows that are entirely
``-inf`` (fully masked) give zeros instead of NaN, as PyTorch's attention does.

The array-level helpers (``softmax_xp``, ``log_softmax_xp``) are shared with the fused
losses in ``loss.py``.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.softmax(ember.tensor([0.0, 0.0]), dim=0).tolist()
    [0.5, 0.5]
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ... import dtypes, kernels
from ...device import device_of
from ...errors import DTypeError
from ...kernels import cuda_softmax
from ...random import default_generator
from ...tensor import Tensor
from .._util import normalize_dim
from ..creation import arange, cast
from ..elementwise import add, eq, exp, mul, neg, sub
from ..reduce import argmax
from ..reduce import sum as _sum
from ..registry import defop

__all__ = ["softmax", "log_softmax", "softmin", "gumbel_softmax"]


# -- array-level helpers (xp is numpy or cupy) ---------------------------------------------
def _kernels(a: Any) -> Any:
    """The seam serving ``a``: the CUDA kernels for a CuPy array (one launch instead of
    the NumPy path's chain), else the C kernels."""
    return cuda_softmax if cuda_softmax.is_cupy(a) else kernels


def _upcast(x: Any) -> tuple[Any, Any]:
    """float16 is computed in float32 (returns the array and the dtype to cast back to)."""
    if x.dtype == np.float16:
        return x.astype(np.float32), np.float16
    return x, None


def softmax_xp(xp: Any, x: Any, axis: int | None, safe: bool = False, scale: Any = None) -> Any:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (None for a 0-d array), times
    ``scale`` (broadcastable like the row sums) when given; one temporary array.

    With ``safe``, rows whose entries are all ``-inf`` give zeros instead of NaN.
    """
    if scale is None and axis is not None:
        y = _kernels(x).softmax_forward(x, axis, safe=safe)
        if y is not None:
            return y
    if x.size == 0:
        return x.copy()
    if x.ndim == 0:
        return softmax_xp(xp, x.reshape(1), 0, safe, scale).reshape(())
    x, back = _upcast(x)
    m = x.max(axis=axis, keepdims=True)
    if safe:
        m = xp.where(m == -np.inf, 0, m)
    e = x - m
    xp.exp(e, out=e)
    s = e.sum(axis=axis, keepdims=True)
    if safe:
        s = xp.where(s == 0, 1, s)
    r = 1 / s
    e *= r if scale is None else r * scale
    return e if back is None else e.astype(back)


def logsumexp_xp(xp: Any, x: Any, axis: int | None) -> Any:
    """``log(sum(exp(x)))`` along ``axis`` with kept dims, computed stably."""
    m = x.max(axis=axis, keepdims=True)
    e = x - m
    xp.exp(e, out=e)
    lse = xp.log(e.sum(axis=axis, keepdims=True))
    lse += m
    return lse


def log_softmax_xp(xp: Any, x: Any, axis: int | None) -> Any:
    """``x - logsumexp(x)`` along ``axis`` (stable for any magnitude); one temporary."""
    if axis is not None:
        y = _kernels(x).softmax_forward(x, axis, log=True)
        if y is not None:
            return y
    if x.size == 0:
        return x.copy()
    if x.ndim == 0:
        return log_softmax_xp(xp, x.reshape(1), 0).reshape(())
    x, back = _upcast(x)
    m = x.max(axis=axis, keepdims=True)
    z = x - m
    xp.exp(z, out=z)
    lse = xp.log(z.sum(axis=axis, keepdims=True))
    lse += m
    xp.subtract(x, lse, out=z)
    return z if back is None else z.astype(back)


def _axis(ndim: int, dim: int) -> int | None:
    return dim if ndim else None


# -- softmax -------------------------------------------------------------------------------
@defop("softmax", saves_inputs=False, saves_output=True, onnx="Softmax")
def _softmax(xp, x, dim):
    return softmax_xp(xp, x, _axis(x.ndim, dim))


@defop("safe_softmax", saves_inputs=False, saves_output=True, onnx="Softmax")
def _safe_softmax(xp, x, dim):
    return softmax_xp(xp, x, _axis(x.ndim, dim), safe=True)


def _scalar_safe(g, x, op_type, dim):
    """``op_type`` (Softmax / LogSoftmax) over ``dim``; a 0-d input goes through shape [1]."""
    if x.ndim:
        return g.op(op_type, x, axis=dim)
    return g.reshape(g.op(op_type, g.reshape(x, (1,)), axis=0), ())


@_softmax.defonnx
def _(g, x, dim):
    return _scalar_safe(g, x, "Softmax", dim)


@_safe_softmax.defonnx
def _(g, x, dim):  # a row that is all -inf gives zeros, not NaN
    y = _scalar_safe(g, x, "Softmax", dim)
    if not x.ndim:
        return y
    dead = g.cmp("Equal", g.reduce("ReduceMax", x, (dim,), True), -float("inf"))
    return g.where(dead, 0.0, y, like=x)


def _softmax_grad(ctx, g):
    return (_softmax_backward(g, ctx.output, dim=ctx.attrs["dim"]),)


_softmax.defgrad(_softmax_grad)
_safe_softmax.defgrad(_softmax_grad)


@defop("softmax_backward")
def _softmax_backward(xp, g, y, dim):
    if y.ndim == 0:  # softmax of a scalar is the constant 1
        return xp.zeros_like(g)
    out = _kernels(y).softmax_backward(g, y, dim)
    if out is not None:
        return out
    axis = _axis(y.ndim, dim)
    out = g * y
    s = out.sum(axis=axis, keepdims=True)
    xp.subtract(g, s, out=out)
    out *= y
    return out


@_softmax_backward.defgrad
def _(ctx, u):
    # out = y * (g - sum(g * y)); the map g -> out is symmetric, so d/dg is the op itself
    g, y = ctx.inputs
    dim = ctx.attrs["dim"]
    need_g, need_y = ctx.needs_input_grad
    gg = _softmax_backward(u, y, dim=dim) if need_g else None
    gy = None
    if need_y:
        d = _dims(y, dim)
        s = _sum(mul(g, y), d, keepdim=True)
        gy = sub(mul(u, sub(g, s)), mul(g, _sum(mul(u, y), d, keepdim=True)))
    return gg, gy


@_softmax_backward.defonnx
def _(g, dy, y, dim):
    if not y.ndim:
        return g.op("Mul", dy, 0.0)
    s = g.reduce("ReduceSum", g.op("Mul", dy, y), (dim,), True)
    return g.op("Mul", g.op("Sub", dy, s), y)


def _dims(t: Tensor, dim: int) -> Any:
    return dim if t.ndim else None


# -- log_softmax ---------------------------------------------------------------------------
@defop("log_softmax", saves_inputs=False, saves_output=True, onnx="LogSoftmax")
def _log_softmax(xp, x, dim):
    return log_softmax_xp(xp, x, _axis(x.ndim, dim))


@_log_softmax.defgrad
def _(ctx, g):
    return (_log_softmax_backward(g, ctx.output, dim=ctx.attrs["dim"]),)


@defop("log_softmax_backward")
def _log_softmax_backward(xp, g, y, dim):
    if y.ndim:
        out = _kernels(y).softmax_backward(g, y, dim, log=True)
        if out is not None:
            return out
    axis = _axis(y.ndim, dim)
    out = xp.exp(y)
    out *= -g.sum(axis=axis, keepdims=True)
    out += g
    return out


@_log_softmax_backward.defgrad
def _(ctx, u):
    # out = g - exp(y) * sum(g)
    g, y = ctx.inputs
    d = _dims(y, ctx.attrs["dim"])
    need_g, need_y = ctx.needs_input_grad
    p = exp(y)
    gg = sub(u, _sum(mul(u, p), d, keepdim=True)) if need_g else None
    gy = neg(mul(mul(u, p), _sum(g, d, keepdim=True))) if need_y else None
    return gg, gy


# -- public functions ----------------------------------------------------------------------
@_log_softmax.defonnx
def _(g, x, dim):
    return _scalar_safe(g, x, "LogSoftmax", dim)


@_log_softmax_backward.defonnx
def _(g, dy, y, dim):
    axes = (dim,) if y.ndim else None
    return g.op("Sub", dy, g.op("Mul", g.op("Exp", y), g.reduce("ReduceSum", dy, axes, True)))


def _legacy_dim(ndim: int) -> int:
    warnings.warn(
        "Implicit dimension choice for softmax has been deprecated. Change the call to "
        "include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _prepare(name: str, input: Tensor, dim: int | None, dtype: Any) -> tuple[Tensor, int]:
    if dtype is not None:
        input = cast(input, dtypes.to_dtype(dtype))
    if input._data.dtype.kind != "f":
        raise DTypeError(
            name,
            f"expected a floating point input, got {input.dtype} (pass dtype= to convert it)",
        )
    if dim is None:
        dim = _legacy_dim(input.ndim)
    return input, normalize_dim(name, dim, input.ndim)


def softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """Softmax along ``dim``: ``exp(x) / exp(x).sum(dim)``, computed stably.

    ``dtype`` casts the input first (e.g. float16 logits to float32).

    Example:
        >>> F.softmax(ember.tensor([[1.0, 1.0], [0.0, 1000.0]]), dim=-1).tolist()
        [[0.5, 0.5], [0.0, 1.0]]
    """
    x, d = _prepare("softmax", input, dim, dtype)
    return _softmax(x, dim=d)


def safe_softmax(input: Tensor, dim: int) -> Tensor:
    """Softmax along ``dim`` where rows that are entirely ``-inf`` give zeros (not NaN).

    Example:
        >>> safe_softmax(ember.tensor([[0.0, 0.0], [float('-inf')] * 2]), -1).tolist()
        [[0.5, 0.5], [0.0, 0.0]]
    """
    x, d = _prepare("softmax", input, dim, None)
    return _safe_softmax(x, dim=d)


def log_softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """``log(softmax(x))`` along ``dim``, computed without overflow or ``log(0)``.

    Example:
        >>> F.log_softmax(ember.tensor([0.0, 0.0]), dim=0).exp().tolist()
        [0.5, 0.5]
    """
    x, d = _prepare("log_softmax", input, dim, dtype)
    return _log_softmax(x, dim=d)


def softmin(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """``softmax(-x)`` along ``dim``.

    Example:
        >>> F.softmin(ember.tensor([0.0, 0.0]), dim=0).tolist()
        [0.5, 0.5]
    """
    x, d = _prepare("softmin", input, dim, dtype)
    return _softmax(neg(x), dim=d)


@defop("gumbel_noise", pure=False, onnx=None)
def _gumbel_noise(xp, x):
    """Standard Gumbel draws ``-log(Exponential(1))`` of ``x``'s shape and dtype."""
    rng = default_generator.for_device(device_of(x))
    dt = np.float64 if x.dtype == np.float64 else np.float32
    e = rng.standard_exponential(x.shape, dtype=dt)
    out = xp.log(e)
    out *= -1
    return out.astype(x.dtype, copy=False)


@_gumbel_noise.defonnx
def _(g, x):  # -log(-log(U)), U uniform in (0, 1)
    u = g.op("RandomUniformLike", x, low=1e-20, high=1.0)
    return g.op("Neg", g.op("Log", g.op("Neg", g.op("Log", u))))


def gumbel_softmax(
    logits: Tensor, tau: float = 1, hard: bool = False, eps: float = 1e-10, dim: int = -1
) -> Tensor:
    """A sample from the Gumbel-softmax (Concrete) distribution: ``softmax((logits + g) /
    tau)`` with Gumbel noise ``g`` from ember's generator; ``hard`` returns one-hot samples
    whose gradient is the soft sample's (straight-through).

    Example:
        >>> y = F.gumbel_softmax(ember.zeros(4, 3), hard=True)
        >>> y.sum(-1).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    x, d = _prepare("gumbel_softmax", logits, dim, None)
    y = _softmax(mul(add(x, _gumbel_noise(x)), 1.0 / tau), dim=d)
    if not hard:
        return y
    shape = [1] * y.ndim
    shape[d] = y.shape[d]
    iota = arange(y.shape[d], device=y.device).reshape(tuple(shape))
    y_hard = cast(eq(iota, argmax(y, d, keepdim=True)), y.dtype)
    return add(sub(y_hard, y.detach()), y)


METHODS = {"softmax": softmax, "log_softmax": log_softmax}

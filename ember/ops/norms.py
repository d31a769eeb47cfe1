"""Norms: ``norm`` (PyTorch's ``torch.norm``), and ``vector_norm`` / ``matrix_norm`` (of
``torch.linalg``, re-exported by ``ember.linalg``).

Gradients follow PyTorch: zero (not NaN) at a zero vector; for ``p=inf`` the gradient is
shared among the elements of largest magnitude.

Example:
    >>> import ember
    >>> ember.norm(ember.tensor([3.0, 4.0])).item()
    5.0
"""

from __future__ import annotations

import math
from typing import Any

from .. import dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from ._reduction import keep, reduce_dims, require_float
from ._util import normalize_dim
from .creation import cast
from .elementwise import div, eq, gt, lt, mul, pow, sub, where
from .registry import defop

__all__ = ["norm"]


@defop("vector_norm", saves_output=True, onnx=None)
def _vector_norm(xp, x, ord, dim, keepdim):
    if ord == 2:
        return xp.sqrt(xp.sum(x * x, axis=dim, keepdims=keepdim))
    a = xp.abs(x)
    if ord == math.inf:
        return xp.max(a, axis=dim, keepdims=keepdim)
    if ord == -math.inf:
        return xp.min(a, axis=dim, keepdims=keepdim)
    if ord == 0:
        return xp.sum(a != 0, axis=dim, keepdims=keepdim, dtype=x.dtype)
    if ord == 1:
        return xp.sum(a, axis=dim, keepdims=keepdim)
    return xp.sum(a**ord, axis=dim, keepdims=keepdim) ** (1.0 / ord)


@_vector_norm.defonnx
def _(g, x, ord, dim, keepdim):
    if ord == 2:
        return g.op("Sqrt", g.reduce("ReduceSumSquare", x, dim, keepdim))
    a = g.op("Abs", x)
    if ord == math.inf:
        return g.reduce("ReduceMax", a, dim, keepdim)
    if ord == -math.inf:
        return g.reduce("ReduceMin", a, dim, keepdim)
    if ord == 0:
        return g.reduce(
            "ReduceSum", g.cast(g.op("Not", g.cmp("Equal", a, 0.0)), x.dtype), dim, keepdim
        )
    if ord == 1:
        return g.reduce("ReduceSum", a, dim, keepdim)
    total = g.reduce("ReduceSum", g.op("Pow", a, float(ord)), dim, keepdim)
    return g.op("Pow", total, 1.0 / ord)


def _sign(x: Tensor) -> Tensor:
    """sign(x) as a constant (its derivative is zero almost everywhere)."""
    return sub(cast(gt(x, 0), x.dtype), cast(lt(x, 0), x.dtype))


@_vector_norm.defgrad
def _(ctx, g):
    from .reduce import sum

    (x,) = ctx.inputs
    a = ctx.attrs
    p, dims, keepdim, shape = a["ord"], a["dim"], a["keepdim"], ctx.input_shape(0)
    g = keep(g, shape, dims, keepdim)
    if p == 0:
        return (mul(x, 0.0),)
    sign = _sign(x)
    if p == 1:
        return (mul(g, sign),)
    out = keep(ctx.output, shape, dims, keepdim)
    zero = eq(out, 0)
    safe = where(zero, 1.0, out)  # the norm is zero only at a zero vector: gradient zero there
    if p == 2:
        return (mul(x, div(g, safe)),)
    absx = mul(x, sign)
    if math.isinf(p):
        mask = cast(eq(absx, out), x.dtype)
        share = div(mask, sum(mask, dims, keepdim=True))
        return (mul(mul(g, sign), share),)
    # general p: sign(x) |x|^(p-1) / norm^(p-1), zero where x is zero
    local = mul(sign, pow(where(eq(x, 0), 1.0, absx), p - 1))
    return (mul(local, div(g, pow(safe, p - 1))),)


def vector_norm(
    x: Tensor, ord: float = 2, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """``(sum |x|^ord)^(1/ord)`` over ``dim`` (all dims when None); ``ord`` may be ``inf``
    (the largest magnitude), ``-inf`` (the smallest) or 0 (the number of nonzeros).

    Example:
        >>> ember.linalg.vector_norm(ember.tensor([3.0, -4.0]), ord=1).item()
        7.0
    """
    if dtype is not None:
        x = cast(x, dtypes.to_dtype(dtype))
    require_float("vector_norm", x)
    if isinstance(ord, str) or not isinstance(ord, int | float):
        raise ValueError(f"vector_norm: ord must be a number, got {ord!r}")
    dims = reduce_dims("vector_norm", dim, x.ndim)
    if ord < 0 and x.numel() == 0 or math.isinf(ord) and x.numel() == 0:
        raise ShapeError(
            "vector_norm", f"cannot compute the {ord}-norm of an empty tensor {tuple(x.shape)}"
        )
    return _vector_norm(x, ord=float(ord), dim=dims, keepdim=keepdim)


def _two_dims(op: str, dim: Any, ndim: int) -> tuple[int, int]:
    if not isinstance(dim, tuple | list) or len(dim) != 2:
        raise ShapeError(op, f"dim must be a pair of dims, got {dim!r}")
    d0, d1 = normalize_dim(op, dim[0], ndim), normalize_dim(op, dim[1], ndim)
    if d0 == d1:
        raise ShapeError(op, f"dims {tuple(dim)} name the same dimension twice")
    return d0, d1


def matrix_norm(
    A: Tensor, ord: Any = "fro", dim: Any = (-2, -1), keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """A matrix norm over the two dims ``dim``: ``'fro'`` (Frobenius), ``1`` / ``-1`` (the
    largest / smallest column sum of magnitudes) or ``inf`` / ``-inf`` (row sums).

    Example:
        >>> ember.linalg.matrix_norm(ember.tensor([[1.0, -2.0], [3.0, 4.0]]), ord=1).item()
        6.0
    """
    from .reduce import sum
    from .selection import amax, amin

    if dtype is not None:
        A = cast(A, dtypes.to_dtype(dtype))
    if A.ndim < 2:
        raise ShapeError(
            "matrix_norm", f"expects a tensor with at least 2 dims, got shape {tuple(A.shape)}"
        )
    d0, d1 = _two_dims("matrix_norm", dim, A.ndim)
    if ord == "fro":
        return vector_norm(A, 2, (d0, d1), keepdim)
    if ord in (1, -1, math.inf, -math.inf):
        summed, kept = (d0, d1) if abs(ord) == 1 else (d1, d0)
        absA = mul(A, _sign(A))
        sums = sum(absA, summed, keepdim=True)
        out = (amax if ord > 0 else amin)(sums, kept, keepdim=True)
        if not keepdim:
            out = out.squeeze((d0, d1))
        return out
    raise ValueError(
        f"matrix_norm: ord {ord!r} is not supported (use 'fro', 1, -1, inf or -inf; 'nuc' and "
        "2 need a singular value decomposition)"
    )


def norm(
    input: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None
) -> Tensor:
    """PyTorch's ``torch.norm``: the vector ``p``-norm over ``dim`` (all elements when None).
    ``p='fro'`` is the 2-norm; numbers give the vector norm over the dims.

    Example:
        >>> ember.norm(ember.tensor([[1.0, 2.0], [2.0, 4.0]]), dim=1).tolist()
        [2.2360680103302, 4.4721360206604]
    """
    if p == "nuc":
        raise ValueError("norm: p='nuc' needs a singular value decomposition (not supported)")
    if isinstance(p, str) and p != "fro":
        raise ValueError(f"norm: p must be a number, 'fro' or 'nuc', got {p!r}")
    if p == "fro" and dim is not None and not isinstance(dim, int) and len(dim) > 2:
        raise ShapeError("norm", f"p='fro' takes at most 2 dims, got {tuple(dim)}")
    ord = 2 if p == "fro" or p is None else p
    return vector_norm(input, ord, dim, keepdim, dtype=dtype)


def linalg_norm(
    A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False, *, dtype: Any = None
) -> Tensor:
    """``torch.linalg.norm``: a vector norm, or a matrix norm when ``dim`` is a pair or when
    ``ord`` is given, ``dim`` is None and ``A`` is 2-D.

    Example:
        >>> ember.linalg.norm(ember.tensor([[3.0], [4.0]])).item()
        5.0
    """
    if ord is None:
        return vector_norm(A, 2, dim, keepdim, dtype=dtype)
    if isinstance(dim, tuple | list) and len(dim) == 2 or (dim is None and A.ndim == 2):
        return matrix_norm(A, ord, (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if isinstance(ord, str):
        raise ShapeError("linalg.norm", f"ord {ord!r} needs a matrix (2 dims), got dim={dim}")
    return vector_norm(A, ord, dim, keepdim, dtype=dtype)


METHODS = {"norm": norm}

"""Linear algebra: matmul (batched, broadcasting, 1-D cases), mm, bmm, outer, dot, inner,
tensordot, einsum; and, as ``ember.linalg.*`` like ``torch.linalg``, vector_norm,
matrix_norm and norm.

Example:
    >>> import ember
    >>> (ember.ones(2, 3) @ ember.ones(3, 4)).shape
    (2, 4)
"""

from __future__ import annotations

from typing import Any

from .. import kernels
from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_dim
from .contraction import einsum
from .elementwise import mul, prepare
from .norms import linalg_norm as norm
from .norms import matrix_norm, vector_norm
from .registry import defop
from .shape import reshape

__all__ = ["matmul", "mm", "bmm", "outer", "ger", "dot", "inner", "tensordot", "einsum"]

# torch.linalg names, reached as ember.linalg.<name> (not exported at the top level)
_LINALG = (norm, vector_norm, matrix_norm)


@defop("matmul", onnx="MatMul")
def _matmul(xp, a, b):
    if b.ndim == 2 and a.ndim >= 2:  # fold the batch into one GEMM: (..., K) @ (K, N)
        a2 = a.reshape(-1, a.shape[-1]) if a.ndim > 2 else a
        out = kernels.tall_matmul(a2, b)  # many rows: ember's GEMM
        if out is None:
            out = xp.matmul(a2, b)
        return out.reshape(a.shape[:-1] + (b.shape[-1],)) if a.ndim > 2 else out
    if a.ndim > 2 or b.ndim > 2:  # strided batched operands fall off BLAS's fast path
        if not a.flags.c_contiguous:
            a = xp.ascontiguousarray(a)
        if not b.flags.c_contiguous:
            b = xp.ascontiguousarray(b)
    return xp.matmul(a, b)


@_matmul.defexplain
def _(shapes, attrs):
    a, b = shapes
    if len(a) == 0 or len(b) == 0:
        return f"both arguments must be at least 1-D, got shapes {a} and {b}"
    return f"shapes {a} and {b} do not align"


@_matmul.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    a_1d, b_1d = a.ndim == 1, b.ndim == 1
    if a_1d and b_1d:  # dot product: g is a scalar
        return (g * b if need_a else None), (g * a if need_b else None)
    # lift 1-D operands to matrices so both rules are plain batched matmuls
    a2 = reshape(a, (1, -1)) if a_1d else a
    b2 = reshape(b, (-1, 1)) if b_1d else b
    g2 = g
    if a_1d:
        g2 = g2.unsqueeze(-2)
    if b_1d:
        g2 = g2.unsqueeze(-1)
    ga = gb = None
    if need_a:
        ga = matmul(g2, b2.transpose(-1, -2))
        if a_1d:
            ga = ga.squeeze(-2)
    if need_b and b2.ndim == 2 and a2.ndim > 2:  # one GEMM instead of a batch then a sum
        k, n = b2.shape
        gb = matmul(reshape(a2, (-1, k)).transpose(0, 1), reshape(g2, (-1, n)))
        if b_1d:
            gb = gb.squeeze(-1)
    elif need_b:
        gb = matmul(a2.transpose(-1, -2), g2)
        if b_1d:
            gb = gb.squeeze(-1)
    return ga, gb


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with NumPy's rules: batched and broadcasting, 1-D operands promoted.

    Example:
        >>> ember.matmul(ember.ones(5, 2, 3), ember.ones(3)).shape
        (5, 2)
    """
    if type(input) is Tensor and type(other) is Tensor and input._data.dtype == other._data.dtype:
        return _matmul(input, other)  # the common case, without promotion
    a, b = prepare(input, other)
    return _matmul(a, b)


def _check(op: str, a: Tensor, b: Tensor, ndim: int, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"{op}: expected tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim != ndim or b.ndim != ndim:
        raise ShapeError(
            op,
            f"expected {what} ({ndim}-D tensors), got shapes {tuple(a.shape)} and {tuple(b.shape)}",
        )
    return prepare(a, b)


def _misaligned(op: str, a: Tensor, b: Tensor) -> ShapeError:
    return ShapeError(op, f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not align")


def mm(input: Tensor, mat2: Tensor) -> Tensor:
    """The product of two matrices: ``(n, m) @ (m, p) -> (n, p)`` (no broadcasting).

    Example:
        >>> ember.mm(ember.ones(2, 3), ember.ones(3, 4)).shape
        (2, 4)
    """
    a, b = _check("mm", input, mat2, 2, "matrices")
    if a.shape[1] != b.shape[0]:
        raise _misaligned("mm", a, b)
    return _matmul(a, b)


def bmm(input: Tensor, mat2: Tensor) -> Tensor:
    """Batched matrix product: ``(b, n, m) @ (b, m, p) -> (b, n, p)`` (no broadcasting).

    Example:
        >>> ember.bmm(ember.ones(5, 2, 3), ember.ones(5, 3, 4)).shape
        (5, 2, 4)
    """
    a, b = _check("bmm", input, mat2, 3, "batches of matrices")
    if a.shape[0] != b.shape[0]:
        raise ShapeError(
            "bmm",
            f"batch sizes differ: shapes {tuple(a.shape)} and {tuple(b.shape)} "
            f"({a.shape[0]} != {b.shape[0]})",
        )
    if a.shape[2] != b.shape[1]:
        raise _misaligned("bmm", a, b)
    return _matmul(a, b)


def dot(input: Tensor, tensor: Tensor) -> Tensor:
    """The inner product of two 1-D tensors of the same size (a 0-d tensor).

    Example:
        >>> ember.dot(ember.tensor([1.0, 2.0]), ember.tensor([3.0, 4.0])).item()
        11.0
    """
    a, b = _check("dot", input, tensor, 1, "vectors")
    if a.shape[0] != b.shape[0]:
        raise _misaligned("dot", a, b)
    return _matmul(a, b)


def outer(input: Tensor, vec2: Tensor) -> Tensor:
    """The outer product of two 1-D tensors: ``out[i, j] = input[i] * vec2[j]``.

    Example:
        >>> ember.outer(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 10.0, 100.0])).shape
        (2, 3)
    """
    a, b = _check("outer", input, vec2, 1, "vectors")
    return mul(reshape(a, (-1, 1)), reshape(b, (1, -1)))


ger = outer


def inner(input: Tensor, other: Tensor) -> Tensor:
    """The inner product over the last dimension of each (a product when one is 0-d).

    Example:
        >>> ember.inner(ember.ones(2, 3), ember.ones(4, 3)).shape
        (2, 4)
    """
    if input.ndim == 0 or other.ndim == 0:
        return mul(input, other)
    if input.shape[-1] != other.shape[-1]:
        raise _misaligned("inner", input, other)
    return tensordot(input, other, ([-1], [-1]))


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def tensordot(a: Tensor, b: Tensor, dims: Any = 2) -> Tensor:
    """Sum the products over ``dims``: an int (the last ``dims`` of ``a`` with the first of
    ``b``) or a pair of lists of dims to contract.

    Example:
        >>> ember.tensordot(ember.ones(2, 3, 4), ember.ones(3, 4, 5)).shape
        (2, 5)
    """
    if isinstance(dims, int):
        if not 0 <= dims <= min(a.ndim, b.ndim):
            raise ShapeError(
                "tensordot",
                f"dims={dims} is out of range for shapes {tuple(a.shape)} and {tuple(b.shape)}",
            )
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([d] if isinstance(d, int) else list(d) for d in dims)
        if len(da) != len(db):
            raise ShapeError("tensordot", f"dims {dims} pair up unequal numbers of dims")
    da = [normalize_dim("tensordot", d, a.ndim) for d in da]
    db = [normalize_dim("tensordot", d, b.ndim) for d in db]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise ShapeError(
                "tensordot",
                f"shapes {tuple(a.shape)} and {tuple(b.shape)} do not align: dim {i} (size "
                f"{a.shape[i]}) against dim {j} (size {b.shape[j]})",
            )
    if a.ndim + b.ndim - len(da) > len(_LETTERS):
        raise ShapeError("tensordot", "too many dimensions")
    sa = list(_LETTERS[: a.ndim])
    sb = list(_LETTERS[a.ndim : a.ndim + b.ndim])
    for i, j in zip(da, db):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in da] + [
        c for j, c in enumerate(sb) if j not in db
    ]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


METHODS = {
    "matmul": matmul,
    "__matmul__": matmul,
    "__rmatmul__": lambda self, other: matmul(other, self),
    "mm": mm,
    "bmm": bmm,
    "dot": dot,
    "outer": outer,
    "ger": outer,
    "inner": inner,
}

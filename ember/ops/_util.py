"""Small argument helpers shared by the op families (dims, shapes, scalars)."""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor

SCALARS = (int, float, bool)


def normalize_shape(shape: Any) -> tuple[int, ...]:
    """``(2, 3)``, ``((2, 3),)``, ``([2, 3],)`` or a shape-like tensor -> ``(2, 3)``."""
    if len(shape) == 1 and not isinstance(shape[0], int):
        shape = shape[0]
    if isinstance(shape, Tensor):
        shape = shape.tolist()
    return tuple(int(s) for s in shape)


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    """A dimension index in ``[0, ndim)`` (negative counts from the end); named error else."""
    n = max(ndim, 1)
    if not -n <= dim < n:
        raise ShapeError(
            op,
            f"dimension {dim} is out of range for a tensor of {ndim} dimension(s) "
            f"(expected in [{-n}, {n - 1}])",
        )
    return dim % n


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...] | None:
    """None (all dims), an int or a sequence of ints -> a sorted tuple of dims, or None."""
    if dim is None:
        return None
    if isinstance(dim, int):
        dim = (dim,)
    dims = tuple(sorted(normalize_dim(op, d, ndim) for d in dim))
    if len(set(dims)) != len(dims):
        raise ShapeError(op, f"dim {tuple(dim)} appears multiple times in the list of dims")
    return dims if ndim else ()

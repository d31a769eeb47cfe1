"""Distances: ``cosine_similarity`` and ``pairwise_distance`` (composites).

Both follow PyTorch's definitions exactly, including where ``eps`` enters: the norms in
``cosine_similarity`` are clamped to ``>= eps`` as values only (the gradient flows as if
unclamped, as PyTorch's in-place clamp under ``no_grad`` does), and ``pairwise_distance``
is ``||x1 - x2 + eps||_p`` over the last dimension. They are re-exported through
``loss.py`` (the losses built on them live there).

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.cosine_similarity(ember.tensor([[1.0, 0.0]]), ember.tensor([[1.0, 1.0]])).tolist()
    [0.7071067690849304]
"""

from __future__ import annotations

from ...tensor import Tensor
from ..elementwise import add, div, mul, sub
from ..norms import vector_norm
from ..reduce import sum as _sum
from ..rounding import clamp_min

__all__ = ["cosine_similarity", "pairwise_distance"]


def _value_clamp_min(t: Tensor, floor: float) -> Tensor:
    """``max(t, floor)`` as a value, with the gradient of ``t`` (PyTorch's no-grad clamp_)."""
    return add(t, sub(clamp_min(t, floor), t).detach())


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``dim`` (broadcasting):
    ``sum(x1 / max(||x1||, eps) * x2 / max(||x2||, eps))``.

    Example:
        >>> F.cosine_similarity(ember.ones(2, 4), ember.ones(2, 4)).tolist()
        [1.0, 1.0]
    """
    n1 = _value_clamp_min(vector_norm(x1, 2, dim=dim, keepdim=True), eps)
    n2 = _value_clamp_min(vector_norm(x2, 2, dim=dim, keepdim=True), eps)
    return _sum(mul(div(x1, n1), div(x2, n2)), dim)


def pairwise_distance(
    x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    """The ``p``-norm distance ``||x1 - x2 + eps||_p`` over the last dimension.

    Example:
        >>> F.pairwise_distance(ember.tensor([[0.0, 0.0]]), ember.tensor([[3.0, 4.0]]), eps=0.0).tolist()
        [5.0]
    """
    d = add(sub(x1, x2), eps)
    if d.ndim == 0:
        return vector_norm(d, p)
    return vector_norm(d, p, dim=-1, keepdim=keepdim)

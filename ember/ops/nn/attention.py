"""``scaled_dot_product_attention`` with PyTorch's signature and masking rules.

A composite of ember primitives: ``softmax((q * scale) @ k.T + mask) @ v``. Boolean masks
mean "True takes part" and become an additive 0 / -inf mask; float masks are added (and
are differentiable); ``is_causal`` adds the upper-triangular -inf mask (top-left aligned,
as PyTorch). When any mask is present the softmax is ``safe_softmax``: a fully masked row
gives zeros (output and gradients), matching PyTorch, instead of NaN.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> q = k = v = ember.randn(2, 4, 5, 8)
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    (2, 4, 5, 8)
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import DTypeError, EmberError, ShapeError
from ...tensor import Tensor
from ..creation import zeros
from ..elementwise import add, mul, where
from ..linalg import matmul
from ..shape import broadcast_to, reshape, transpose, unsqueeze
from .dropout import dropout
from .softmax import _safe_softmax, _softmax

__all__ = ["scaled_dot_product_attention"]


def _causal_mask(q: Tensor, L: int, S: int) -> Tensor:
    """``(L, S)`` additive mask: -inf above the diagonal (row i sees columns <= i)."""
    xp = q.device.xp
    m = xp.triu(xp.full((L, S), -np.inf, dtype=q._data.dtype), 1)
    return Tensor._make(m, q.device)


def _additive(mask: Tensor, like: Tensor) -> Tensor:
    """A boolean mask (True = attend) as 0 / -inf; a float mask cast to ``like``'s dtype."""
    if mask._data.dtype.kind == "b":
        zero = zeros((), dtype=like.dtype, device=like.device)
        return where(mask, zero, -math.inf)
    if mask._data.dtype.kind != "f":
        raise DTypeError(
            "scaled_dot_product_attention",
            f"attn_mask must be bool or floating point, got {mask.dtype}",
        )
    return mask if mask._data.dtype == like._data.dtype else mask.to(like.dtype)


def _repeat_heads(t: Tensor, groups: int) -> Tensor:
    """``(..., H, S, E) -> (..., H * groups, S, E)``, each head repeated ``groups`` times."""
    shape = tuple(t.shape)
    big = broadcast_to(unsqueeze(t, -3), shape[:-2] + (groups,) + shape[-2:])
    return reshape(big, shape[:-3] + (shape[-3] * groups,) + shape[-2:])


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(query @ key.T * scale + mask) @ value`` over the last two dims.

    ``query`` is ``(..., L, E)``, ``key`` ``(..., S, E)``, ``value`` ``(..., S, Ev)``;
    ``attn_mask`` broadcasts to ``(..., L, S)`` (bool: True takes part; float: added);
    ``scale`` defaults to ``1 / sqrt(E)``; ``dropout_p`` drops attention weights;
    ``enable_gqa`` lets ``key``/``value`` have fewer heads (dim -3) than ``query``.

    Example:
        >>> q, k, v = ember.randn(1, 3, 4), ember.randn(1, 6, 4), ember.randn(1, 6, 2)
        >>> mask = ember.ones(3, 6, dtype=ember.bool)
        >>> F.scaled_dot_product_attention(q, k, v, attn_mask=mask).shape
        (1, 3, 2)
    """
    name = "scaled_dot_product_attention"
    qs, ks, vs = tuple(query.shape), tuple(key.shape), tuple(value.shape)
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ShapeError(name, f"expected at least 2-D query, key and value, got {qs}, {ks}, {vs}")
    if qs[-1] != ks[-1] or ks[-2] != vs[-2]:
        raise ShapeError(
            name,
            f"query {qs}, key {ks} and value {vs} do not fit: expected query (..., L, E), "
            "key (..., S, E) and value (..., S, Ev)",
        )
    if query._data.dtype.kind != "f":
        raise DTypeError(name, f"expected floating point query, key and value, got {query.dtype}")
    if is_causal and attn_mask is not None:
        raise EmberError(f"{name}: explicit attn_mask should not be set when is_causal=True")
    if enable_gqa and query.ndim >= 3 and key.ndim >= 3 and qs[-3] != ks[-3]:
        if qs[-3] % ks[-3] or ks[-3] != vs[-3]:
            raise ShapeError(
                name,
                f"with enable_gqa the query heads ({qs[-3]}) must be a multiple of the key and "
                f"value heads ({ks[-3]}, {vs[-3]})",
            )
        key = _repeat_heads(key, qs[-3] // ks[-3])
        value = _repeat_heads(value, qs[-3] // vs[-3])
    L, S = qs[-2], ks[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(qs[-1]) if qs[-1] else 1.0
    scores = matmul(mul(query, float(scale)), transpose(key, -2, -1))
    mask = None
    if is_causal:
        mask = _causal_mask(scores, L, S)
    elif attn_mask is not None:
        mask = _additive(attn_mask, scores)
    if mask is not None:
        weights = _safe_softmax(add(scores, mask), dim=scores.ndim - 1)
    else:
        weights = _softmax(scores, dim=scores.ndim - 1)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value)

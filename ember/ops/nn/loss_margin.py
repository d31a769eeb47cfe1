"""Margin, embedding and likelihood losses (composites of ember ops, PyTorch's formulas):
``margin_ranking_loss``, ``hinge_embedding_loss``, ``soft_margin_loss``,
``multilabel_soft_margin_loss``, ``cosine_embedding_loss``, ``triplet_margin_loss``,
``poisson_nll_loss`` and ``gaussian_nll_loss``. Re-exported through ``loss.py``.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.margin_ranking_loss(ember.tensor([2.0]), ember.tensor([1.0]), ember.tensor([1.0])).item()
    0.0
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import ShapeError
from ...tensor import Tensor
from ..activation import logsigmoid
from ..compare import minimum
from ..creation import as_tensor
from ..elementwise import add, div, eq, exp, gt, log, lt, mul, ne, neg, sub, where
from ..reduce import mean as _mean
from ..reduce import sum as _sum
from ..rounding import clamp_min
from ..shape import unsqueeze
from ..unary import log1p, sqrt
from .distance import _value_clamp_min, pairwise_distance
from .loss_elementwise import _reduction

__all__ = [
    "margin_ranking_loss",
    "hinge_embedding_loss",
    "soft_margin_loss",
    "multilabel_soft_margin_loss",
    "cosine_embedding_loss",
    "triplet_margin_loss",
    "poisson_nll_loss",
    "gaussian_nll_loss",
]


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    return _sum(loss) if reduction == "sum" else _mean(loss)


def margin_ranking_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``; ``target`` is 1 or -1.

    Example:
        >>> F.margin_ranking_loss(ember.tensor([0.0]), ember.tensor([1.0]), ember.tensor([1.0])).item()
        1.0
    """
    red = _reduction("margin_ranking_loss", size_average, reduce, reduction)
    loss = clamp_min(add(mul(neg(target), sub(input1, input2)), margin), 0)
    return _reduce(loss, red)


def hinge_embedding_loss(
    input: Tensor,
    target: Tensor,
    margin: float = 1.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``input`` where ``target == 1``, ``max(0, margin - input)`` where ``target == -1``.

    Example:
        >>> F.hinge_embedding_loss(ember.tensor([0.3, 0.3]), ember.tensor([1.0, -1.0]), reduction="none").tolist()
        [0.30000001192092896, 0.699999988079071]
    """
    red = _reduction("hinge_embedding_loss", size_average, reduce, reduction)
    zero = mul(input, 0.0)
    out_margin = where(ne(target, 1), clamp_min(sub(margin, input), 0), zero)
    out_self = where(ne(target, -1), input, zero)
    return _reduce(add(out_margin, out_self), red)


def soft_margin_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``log(1 + exp(-target * input))`` (two-class logistic loss, targets 1 / -1).

    Example:
        >>> round(F.soft_margin_loss(ember.zeros(2), ember.ones(2)).item(), 4)
        0.6931
    """
    red = _reduction("soft_margin_loss", size_average, reduce, reduction)
    return _reduce(log1p(exp(neg(mul(input, target)))), red)


def multilabel_soft_margin_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Per-class logistic loss averaged over the classes (last dim), one value per sample.

    Example:
        >>> round(F.multilabel_soft_margin_loss(ember.zeros(1, 3), ember.ones(1, 3)).item(), 4)
        0.6931
    """
    red = _reduction("multilabel_soft_margin_loss", size_average, reduce, reduction)
    loss = neg(add(mul(target, logsigmoid(input)), mul(sub(1.0, target), logsigmoid(neg(input)))))
    if weight is not None:
        loss = mul(loss, weight)
    n_classes = input.shape[-1] if input.ndim else 1
    loss = div(_sum(loss, input.ndim - 1 if input.ndim else None), n_classes)
    return _reduce(loss, red)


def cosine_embedding_loss(
    input1: Tensor,
    input2: Tensor,
    target: Tensor,
    margin: float = 0.0,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where
    ``target == -1`` (cosine over dim 1, or dim 0 for 1-D inputs).

    Example:
        >>> F.cosine_embedding_loss(ember.ones(1, 2), ember.ones(1, 2), ember.tensor([1.0])).item()
        0.0
    """
    red = _reduction("cosine_embedding_loss", size_average, reduce, reduction)
    if tuple(input1.shape) != tuple(input2.shape) or input1.ndim not in (1, 2):
        raise ShapeError(
            "cosine_embedding_loss",
            f"expected 1-D or 2-D inputs of the same shape, got {tuple(input1.shape)} and "
            f"{tuple(input2.shape)}",
        )
    d = input1.ndim - 1
    prod = _sum(mul(input1, input2), d)
    m1 = add(_sum(mul(input1, input1), d), 1e-12)
    m2 = add(_sum(mul(input2, input2), d), 1e-12)
    cos = div(prod, sqrt(mul(m1, m2)))
    zero = mul(cos, 0.0)
    pos = where(eq(target, 1), sub(1.0, cos), zero)
    neg_ = where(eq(target, -1), clamp_min(sub(cos, margin), 0), zero)
    return _reduce(add(pos, neg_), red)


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the :func:`pairwise_distance`;
    ``swap`` uses ``min(d(a, n), d(p, n))``.

    Example:
        >>> a = ember.zeros(1, 2)
        >>> F.triplet_margin_loss(a, a, ember.tensor([[3.0, 4.0]]), eps=0.0).item()
        0.0
    """
    red = _reduction("triplet_margin_loss", size_average, reduce, reduction)
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    return _reduce(clamp_min(add(sub(d_pos, d_neg), margin), 0), red)


def poisson_nll_loss(
    input: Tensor,
    target: Tensor,
    log_input: bool = True,
    full: bool = False,
    size_average: Any = None,
    eps: float = 1e-8,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log likelihood: ``exp(input) - target * input`` (``log_input``) or
    ``input - target * log(input + eps)``; ``full`` adds Stirling's term for targets > 1.

    Example:
        >>> F.poisson_nll_loss(ember.zeros(2), ember.zeros(2)).item()
        1.0
    """
    red = _reduction("poisson_nll_loss", size_average, reduce, reduction)
    if log_input:
        loss = sub(exp(input), mul(target, input))
    else:
        loss = sub(input, mul(target, log(add(input, eps))))
    if full:
        big = gt(target, 1)
        t = where(big, target, 2.0)  # keep log() finite where the term is masked out
        stirling = add(sub(mul(t, log(t)), t), mul(log(mul(t, 2 * math.pi)), 0.5))
        loss = add(loss, where(big, stirling, 0.0))
    return _reduce(loss, red)


def gaussian_nll_loss(
    input: Tensor,
    target: Tensor,
    var: Tensor | float,
    full: bool = False,
    eps: float = 1e-6,
    reduction: str = "mean",
) -> Tensor:
    """Gaussian negative log likelihood ``0.5 * (log(var) + (input - target)**2 / var)``
    (``+ 0.5 * log(2 pi)`` with ``full``); ``var`` is clamped to ``>= eps`` as a value.
    ``var`` may have the input's shape, or one dimension fewer / of size 1
    (homoscedastic).

    Example:
        >>> F.gaussian_nll_loss(ember.zeros(2), ember.zeros(2), ember.ones(2)).item()
        0.0
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"gaussian_nll_loss: {reduction!r} is not a valid value for reduction")
    if not isinstance(var, Tensor):
        if var < 0:
            raise ValueError("gaussian_nll_loss: var has negative entry/entries")
        var = as_tensor(float(var), dtype=input.dtype, device=input.device)
        var = add(mul(input.detach(), 0.0), var)
    else:
        if var.numel() and bool(lt(var, 0).any()):
            raise ValueError("gaussian_nll_loss: var has negative entry/entries")
        vs, xs = tuple(var.shape), tuple(input.shape)
        if vs != xs:
            if xs[:-1] == vs:
                var = unsqueeze(var, -1)
            elif not (len(vs) == len(xs) and sum(v for x, v in zip(xs, vs) if x != v) == 1):
                raise ShapeError(
                    "gaussian_nll_loss",
                    f"var of shape {vs} does not fit input of shape {xs}: expected the input's "
                    "shape, one dimension fewer, or one dimension of size 1",
                )
    var = _value_clamp_min(var, eps)
    d = sub(input, target)
    loss = mul(add(log(var), div(mul(d, d), var)), 0.5)
    if full:
        loss = add(loss, 0.5 * math.log(2 * math.pi))
    return _reduce(loss, reduction)

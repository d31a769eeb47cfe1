"""Elementwise losses: ``mse_loss``, ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``,
``binary_cross_entropy``, ``binary_cross_entropy_with_logits`` and ``kl_div``.

Each of the first six is one primitive: the forward computes the elementwise loss and its
reduction in one op on the array module; the backward is written in ember ops (or, for the
logits loss, a dedicated differentiable backward op), so second derivatives work.
``binary_cross_entropy`` clamps its logarithms at -100 like PyTorch, and the logits form uses
``softplus(-x) = log1p(exp(-|x|)) + max(-x, 0)``, finite for any logit.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.mse_loss(ember.tensor([1.0, 3.0]), ember.tensor([0.0, 0.0])).item()
    5.0
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ...errors import DTypeError, EmberError, ShapeError
from ...tensor import Tensor
from ..creation import as_tensor, cast
from ..elementwise import add, div, exp, ge, gt, le, log, lt, mul, neg, prepare, sub, where
from ..reduce import mean as _mean
from ..reduce import sum as _sum
from ..registry import defop

__all__ = [
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "kl_div",
]

_LOG_FLOOR = -100.0
_EXP_FLOOR = math.exp(_LOG_FLOOR)


def _reduction(name: str, size_average: Any, reduce: Any, reduction: str) -> str:
    if size_average is not None or reduce is not None:
        warnings.warn(
            "size_average and reduce args will be deprecated, please use reduction= instead.",
            stacklevel=3,
        )
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction")
    return reduction


def _reduce_xp(xp: Any, loss: Any, reduction: str) -> Any:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore", divide="ignore"):  # mean of nothing is NaN
        return xp.asarray(loss.sum() / loss.size) if loss.size == 0 else loss.mean()


def _scale(g: Tensor, reduction: str, numel: int) -> Tensor:
    """The upstream gradient of a reduced loss, per element (ember ops)."""
    return g * (1.0 / numel) if reduction == "mean" and numel else g


def _pair(name: str, input: Any, target: Any, same_shape: bool = False) -> tuple[Tensor, Tensor]:
    """Promote ``input`` and ``target`` to one floating dtype; check (or warn on) shapes."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a Tensor, got {type(input).__name__}")
    if not isinstance(target, Tensor):
        target = as_tensor(target, device=input.device)
    if tuple(input.shape) != tuple(target.shape):
        msg = (
            f"target of shape {tuple(target.shape)} differs from input of shape "
            f"{tuple(input.shape)}"
        )
        if same_shape:
            raise ShapeError(name, msg + "; they must be the same")
        warnings.warn(
            f"{name}: {msg}; this will likely lead to incorrect results due to broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )
    a, b = prepare(input, target)
    if a._data.dtype.kind != "f":
        raise DTypeError(name, f"expected floating point inputs, got {a.dtype}")
    return a, b


def _const(name: str, t: Any, like: Tensor) -> Any:
    """An optional weight-like tensor, detached and cast to ``like``'s dtype."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        t = as_tensor(t, device=like.device)
    t = t.detach()
    return t if t._data.dtype == like._data.dtype else cast(t, like.dtype)


def _sign(d: Tensor) -> Tensor:
    return sub(cast(gt(d, 0), d.dtype), cast(lt(d, 0), d.dtype))


def _abs(x: Tensor) -> Tensor:
    return where(ge(x, 0), x, neg(x))


# -- regression losses: one primitive each, backward in ember ops --------------------------
def _regression(name: str, onnx: str | None, value: Any, deriv: Any) -> Any:
    """Declare ``name(input, target)``: ``value(xp, d, attrs)`` on ``d = input - target``."""

    @defop(name, onnx=onnx)
    def op(xp, a, b, reduction, **attrs):
        return _reduce_xp(xp, value(xp, a - b, attrs), reduction)

    @op.defgrad
    def _(ctx, g):
        a, b = ctx.inputs
        attrs = dict(ctx.attrs)
        reduction = attrs.pop("reduction")
        d = sub(a, b)
        gd = mul(deriv(d, attrs), _scale(g, reduction, d.numel()))
        need_a, need_b = ctx.needs_input_grad
        return (gd if need_a else None), (neg(gd) if need_b else None)

    return op


def _mse_value(xp, d, attrs):
    d *= d
    return d


def _l1_value(xp, d, attrs):
    return xp.abs(d)


def _smooth_l1_value(xp, d, attrs):
    beta = attrs["beta"]
    ad = xp.abs(d)
    if beta == 0:
        return ad
    return xp.where(ad < beta, (0.5 / beta) * d * d, ad - 0.5 * beta)


def _huber_value(xp, d, attrs):
    delta = attrs["delta"]
    ad = xp.abs(d)
    return xp.where(ad < delta, 0.5 * d * d, delta * (ad - 0.5 * delta))


def _smooth_l1_deriv(d: Tensor, attrs: dict) -> Tensor:
    beta = attrs["beta"]
    if beta == 0:
        return _sign(d)
    return where(ge(d, beta), 1.0, where(le(d, -beta), -1.0, d * (1.0 / beta)))


def _huber_deriv(d: Tensor, attrs: dict) -> Tensor:
    delta = attrs["delta"]
    return where(ge(d, delta), delta, where(le(d, -delta), -delta, d))


_mse = _regression("mse_loss", "MSE", _mse_value, lambda d, a: d * 2.0)
_l1 = _regression("l1_loss", "L1", _l1_value, lambda d, a: _sign(d))
_smooth_l1 = _regression("smooth_l1_loss", None, _smooth_l1_value, _smooth_l1_deriv)
_huber = _regression("huber_loss", None, _huber_value, _huber_deriv)


def _regression_onnx(value: Any) -> Any:
    def lower(g, a, b, reduction, **attrs):
        a, b = g.lift(a, b)
        return g.loss_reduction(value(g, g.op("Sub", a, b), attrs), reduction)

    return lower


def _smooth_l1_onnx(g, d, attrs):
    beta, ad = attrs["beta"], g.op("Abs", d)
    if beta == 0:
        return ad
    quad = g.op("Mul", g.op("Mul", d, d), 0.5 / beta)
    return g.where(g.cmp("Less", ad, beta), quad, g.op("Sub", ad, 0.5 * beta), like=d)


def _huber_onnx(g, d, attrs):
    delta, ad = attrs["delta"], g.op("Abs", d)
    quad = g.op("Mul", g.op("Mul", d, d), 0.5)
    lin = g.op("Mul", g.op("Sub", ad, 0.5 * delta), delta)
    return g.where(g.cmp("Less", ad, delta), quad, lin, like=d)


_mse.defonnx(_regression_onnx(lambda g, d, attrs: g.op("Mul", d, d)))
_l1.defonnx(_regression_onnx(lambda g, d, attrs: g.op("Abs", d)))
_smooth_l1.defonnx(_regression_onnx(_smooth_l1_onnx))
_huber.defonnx(_regression_onnx(_huber_onnx))


def _pointwise_loss(
    name: str,
    op: Any,
    input: Tensor,
    target: Tensor,
    size_average: Any,
    reduce: Any,
    reduction: str,
    weight: Tensor | None,
) -> Tensor:
    """``mse_loss``/``l1_loss`` (the elementwise ``op``), optionally weighted, then reduced."""
    red = _reduction(name, size_average, reduce, reduction)
    a, b = _pair(name, input, target)
    if weight is not None:
        return _weighted(name, op(a, b, reduction="none"), weight, red, input)
    return op(a, b, reduction=red)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error ``(input - target) ** 2`` (reduced by ``reduction``).

    Example:
        >>> F.mse_loss(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 0.0]), reduction="sum").item()
        4.0
    """
    return _pointwise_loss("mse_loss", _mse, input, target, size_average, reduce, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error ``|input - target|``.

    Example:
        >>> F.l1_loss(ember.tensor([1.0, -2.0]), ember.tensor([0.0, 0.0])).item()
        1.5
    """
    return _pointwise_loss("l1_loss", _l1, input, target, size_average, reduce, reduction, weight)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta`` (``d = input -
    target``); ``beta=0`` is the L1 loss.

    Example:
        >>> F.smooth_l1_loss(ember.tensor([0.5, 3.0]), ember.zeros(2), reduction="none").tolist()
        [0.125, 2.5]
    """
    red = _reduction("smooth_l1_loss", size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    a, b = _pair("smooth_l1_loss", input, target)
    return _smooth_l1(a, b, reduction=red, beta=float(beta))


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)``.

    Example:
        >>> F.huber_loss(ember.tensor([0.5, 3.0]), ember.zeros(2), reduction="none").tolist()
        [0.125, 2.5]
    """
    red = _reduction("huber_loss", None, None, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    a, b = _pair("huber_loss", input, target)
    if weight is not None:
        loss = _huber(a, b, reduction="none", delta=float(delta))
        return _weighted("huber_loss", loss, weight, red, input)
    return _huber(a, b, reduction=red, delta=float(delta))


def _weighted(name: str, loss: Tensor, weight: Any, reduction: str, input: Tensor) -> Tensor:
    """``weight * loss``; 'mean' divides by the summed weights (PyTorch's weighted form)."""
    if not isinstance(weight, Tensor):
        weight = as_tensor(weight, device=loss.device)
    if tuple(weight.shape) != tuple(input.shape):
        raise ShapeError(
            name,
            f"weight of shape {tuple(weight.shape)} must have the input's shape "
            f"{tuple(input.shape)}",
        )
    loss = mul(loss, weight)
    if reduction == "none":
        return loss
    return _sum(loss) if reduction == "sum" else div(_sum(loss), _sum(weight))


# -- binary cross entropy on probabilities -------------------------------------------------
@defop("binary_cross_entropy", onnx=None)
def _bce(xp, x, t, w, reduction):
    if x.size and ((x < 0) | (x > 1)).any():
        raise EmberError("binary_cross_entropy: all elements of input should be between 0 and 1")
    with np.errstate(divide="ignore"):
        log_x = xp.maximum(xp.log(x), _LOG_FLOOR)
        log_1mx = xp.maximum(xp.log1p(-x), _LOG_FLOOR)
    loss = (t - 1) * log_1mx - t * log_x
    if w is not None:
        loss *= w
    return _reduce_xp(xp, loss, reduction)


@_bce.defonnx
def _(g, x, t, w, reduction):
    log_x = g.op("Max", g.op("Log", x), _LOG_FLOOR)
    log_1mx = g.op("Max", g.op("Log", g.op("Sub", 1.0, x)), _LOG_FLOOR)
    loss = g.op("Sub", g.op("Mul", g.op("Sub", t, 1.0), log_1mx), g.op("Mul", t, log_x))
    if w is not None:
        loss = g.op("Mul", loss, w)
    return g.loss_reduction(loss, reduction)


def _clamped_log(v: Tensor) -> Tensor:
    """``max(log(v), -100)`` in ember ops, without evaluating ``log(0)``."""
    ok = gt(v, _EXP_FLOOR)
    return where(ok, log(where(ok, v, 1.0)), _LOG_FLOOR)


@_bce.defgrad
def _(ctx, g):
    x, t, w = ctx.inputs
    need_x, need_t, _ = ctx.needs_input_grad
    s = _scale(g, ctx.attrs["reduction"], max(x.numel(), 1))
    if w is not None:
        s = mul(s, w)
    gx = gt_ = None
    if need_x:  # (x - t) / max(x (1 - x), 1e-12), like PyTorch
        den = mul(sub(1.0, x), x)
        den = where(lt(den, 1e-12), 1e-12, den)
        gx = mul(div(sub(x, t), den), s)
    if need_t:
        gt_ = mul(sub(_clamped_log(sub(1.0, x)), _clamped_log(x)), s)
    return gx, gt_, None


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """``-(t * log(x) + (1 - t) * log(1 - x))`` on probabilities ``x`` in ``[0, 1]``; the
    logarithms are clamped to ``>= -100`` so that ``x = 0`` or ``1`` gives a finite loss.

    Example:
        >>> F.binary_cross_entropy(ember.tensor([0.0, 1.0]), ember.tensor([1.0, 0.0])).item()
        100.0
    """
    red = _reduction("binary_cross_entropy", size_average, reduce, reduction)
    x, t = _pair("binary_cross_entropy", input, target, same_shape=True)
    return _bce(x, t, _const("binary_cross_entropy", weight, x), reduction=red)


# -- binary cross entropy on logits --------------------------------------------------------
def _sigmoid_neg_xp(xp: Any, x: Any) -> Any:
    """``sigmoid(-x)`` without overflow."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, e, 1) / (1 + e)


@defop("binary_cross_entropy_with_logits", onnx=None)
def _bce_logits(xp, x, t, w, pw, reduction):
    sp = xp.log1p(xp.exp(-xp.abs(x)))  # softplus(-x) = log1p(exp(-|x|)) + max(-x, 0)
    sp += xp.maximum(-x, 0)
    if pw is not None:
        sp *= (pw - 1) * t + 1
    loss = (1 - t) * x
    loss += sp
    if w is not None:
        loss *= w
    return _reduce_xp(xp, loss, reduction)


@_bce_logits.defgrad
def _(ctx, g):
    x, t, w, pw = ctx.inputs
    red = ctx.attrs["reduction"]
    need_x, need_t, _, _ = ctx.needs_input_grad
    gx = gt_ = None
    if need_x:
        gx = _bce_logits_backward(x, t, w, pw, g, reduction=red)
    if need_t:  # d/dt = -x + (pw - 1) * softplus(-x)
        s = _scale(g, red, max(x.numel(), 1))
        if w is not None:
            s = mul(s, w)
        d = neg(x)
        if pw is not None:
            sp = add(log(add(exp(neg(_abs(x))), 1.0)), where(lt(x, 0), neg(x), 0.0))
            d = add(d, mul(sub(pw, 1.0), sp))
        gt_ = mul(d, s)
    return gx, gt_, None, None


@defop("binary_cross_entropy_with_logits_backward")
def _bce_logits_backward(xp, x, t, w, pw, g, reduction):
    sn = _sigmoid_neg_xp(xp, x)
    if pw is not None:
        sn *= (pw - 1) * t + 1
    out = (1 - t) - sn
    if reduction == "mean" and x.size:
        g = g / x.size
    out *= g
    if w is not None:
        out *= w
    return out


def _pos_weight_onnx(g, value, t, pw):
    return (
        value
        if pw is None
        else g.op("Mul", value, g.op("Add", g.op("Mul", g.op("Sub", pw, 1.0), t), 1.0))
    )


@_bce_logits.defonnx
def _(g, x, t, w, pw, reduction):  # softplus(-x) = log1p(exp(-|x|)) + max(-x, 0)
    sp = g.op("Log", g.op("Add", g.op("Exp", g.op("Neg", g.op("Abs", x))), 1.0))
    sp = _pos_weight_onnx(g, g.op("Add", sp, g.op("Relu", g.op("Neg", x))), t, pw)
    loss = g.op("Add", g.op("Mul", g.op("Sub", 1.0, t), x), sp)
    if w is not None:
        loss = g.op("Mul", loss, w)
    return g.loss_reduction(loss, reduction)


@_bce_logits_backward.defonnx
def _(g, x, t, w, pw, dy, reduction):
    sn = _pos_weight_onnx(g, g.op("Sigmoid", g.op("Neg", x)), t, pw)
    out = g.op("Sub", g.op("Sub", 1.0, t), sn)
    if reduction == "mean":
        dy = g.op("Div", dy, g.numel(x))
    out = g.op("Mul", out, dy)
    return out if w is None else g.op("Mul", out, w)


def _sigmoid_neg(x: Tensor) -> Tensor:
    e = exp(neg(_abs(x)))
    return div(where(ge(x, 0), e, 1.0), add(e, 1.0))


@_bce_logits_backward.defgrad
def _(ctx, u):
    # out = s * w * ((1 - t) - lw * sigmoid(-x)),  lw = (pw - 1) * t + 1
    x, t, w, pw, g = ctx.inputs
    red = ctx.attrs["reduction"]
    need_x, need_t, _, _, need_g = ctx.needs_input_grad
    sn = _sigmoid_neg(x)
    lw = None if pw is None else add(mul(sub(pw, 1.0), t), 1.0)
    s = _scale(g, red, max(x.numel(), 1))
    if w is not None:
        s = mul(s, w)
    us = mul(u, s)
    gx = gt_ = gg = None
    if need_x:  # d sigmoid(-x) / dx = -sigmoid(x) sigmoid(-x)
        k = mul(sn, sub(1.0, sn))
        gx = mul(us, k if lw is None else mul(lw, k))
    if need_t:
        gt_ = neg(us) if pw is None else neg(mul(us, add(mul(sub(pw, 1.0), sn), 1.0)))
    if need_g:
        d = sub(sub(1.0, t), sn if lw is None else mul(lw, sn))
        if w is not None:
            d = mul(d, w)
        ud = mul(u, d)
        gg = ud if red == "none" else _scale(_sum(ud), red, max(x.numel(), 1))
    return gx, gt_, None, None, gg


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """``binary_cross_entropy(sigmoid(input), target)`` computed stably from logits;
    ``pos_weight`` weighs the positive term (broadcast along the last dimension).

    Example:
        >>> round(F.binary_cross_entropy_with_logits(ember.zeros(2), ember.ones(2)).item(), 4)
        0.6931
    """
    red = _reduction("binary_cross_entropy_with_logits", size_average, reduce, reduction)
    x, t = _pair("binary_cross_entropy_with_logits", input, target, same_shape=True)
    name = "binary_cross_entropy_with_logits"
    return _bce_logits(x, t, _const(name, weight, x), _const(name, pos_weight, x), reduction=red)


# -- KL divergence (composite) -------------------------------------------------------------
def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """KL divergence ``target * (log(target) - input)`` with ``input`` given as
    log-probabilities (``log_target``: the target too). ``reduction='batchmean'`` divides
    the sum by the batch size (the mathematically correct KL).

    Example:
        >>> x = F.log_softmax(ember.zeros(1, 2), dim=1)
        >>> F.kl_div(x, ember.tensor([[0.5, 0.5]]), reduction="batchmean").item()
        0.0
    """
    if reduction == "batchmean":
        red = "batchmean"
    else:
        red = _reduction("kl_div", size_average, reduce, reduction)
    x, t = _pair("kl_div", input, target)
    if log_target:
        loss = mul(exp(t), sub(t, x))
    else:
        pos = gt(t, 0)
        loss = sub(mul(t, log(where(pos, t, 1.0))), mul(t, x))
    if red == "none":
        return loss
    if red == "mean":
        return _mean(loss)
    total = _sum(loss)
    if red == "batchmean" and x.ndim:
        return div(total, x.shape[0])
    return total

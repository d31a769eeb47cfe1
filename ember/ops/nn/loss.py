"""Losses: ``cross_entropy`` and ``nll_loss`` here; the elementwise losses (``mse_loss``,
``l1_loss``, ``smooth_l1_loss``, ``huber_loss``, ``binary_cross_entropy`` ...) live in
``loss_elementwise.py``, the margin/embedding/likelihood losses in ``loss_margin.py`` and
the distances they use (``cosine_similarity``, ``pairwise_distance``) in ``distance.py``;
all are re-exported here (``ember.nn.functional`` star-imports this file).

``cross_entropy`` is one fused primitive: its forward takes ``log_softmax`` of the logits
and picks (or weighs) the target classes in one op; its backward op recomputes the softmax
and writes ``scale * (softmax * Q - q)`` (``q`` the weighted target distribution, ``Q`` its
sum) without building a one-hot matrix. Both ops have differentiable backward rules, so
second derivatives work. Inputs are ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``; targets are
class indices (``(N, d1, ...)``, with ``ignore_index``) or class probabilities (the input's
shape). Reductions follow PyTorch: ``'mean'`` divides by the summed weights of the
non-ignored targets.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> round(F.cross_entropy(ember.zeros(2, 4), ember.tensor([1, 3])).item(), 4)
    1.3863
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ... import kernels
from ...errors import DTypeError, ShapeError
from ...kernels import cuda_loss
from ...tensor import Tensor
from ..creation import cast
from ..elementwise import mul, sub
from ..reduce import sum as _sum
from ..registry import defop
from ..shape import reshape, unsqueeze
from .distance import *  # noqa: F403
from .distance import __all__ as _distance_all
from .loss_elementwise import *  # noqa: F403
from .loss_elementwise import __all__ as _elementwise_all
from .loss_margin import *  # noqa: F403
from .loss_margin import __all__ as _margin_all
from .softmax import (
    _softmax,
    _softmax_backward,
    _upcast,
    log_softmax,
    log_softmax_xp,
    logsumexp_xp,
    softmax_xp,
)

__all__ = ["cross_entropy", "nll_loss", *_elementwise_all, *_margin_all, *_distance_all]


class TargetOutOfBoundsError(ShapeError, IndexError):
    """A class-index target outside ``[0, C)`` (PyTorch raises ``IndexError``)."""


def _reduction(name: str, size_average: Any, reduce: Any, reduction: str) -> str:
    """PyTorch's reduction argument, honouring the deprecated size_average / reduce."""
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


# -- array-level helpers -------------------------------------------------------------------
def _class_index(xp: Any, t: Any) -> tuple:
    """The index tuple that picks element ``[n, t[n, s], s]`` of an ``(N, C, *S)`` array."""
    n = t.ndim
    idx = []
    for k, size in enumerate(t.shape):
        shape = [1] * n
        shape[k] = size
        idx.append(xp.arange(size).reshape(shape))
    idx.insert(1, t)
    return tuple(idx)


def _class_view(w: Any, ndim: int) -> Any:
    """A ``(C,)`` array shaped to broadcast against ``(N, C, *S)``."""
    return w.reshape((1, -1) + (1,) * (ndim - 2))


def _targets(name: str, xp: Any, t: Any, w: Any, ignore_index: int, n_classes: int, dtype: Any):
    """Clean class indices (ignored ones set to 0), the valid mask and per-target weights."""
    valid = t != ignore_index
    tc = xp.where(valid, t, 0)
    if tc.size:
        bad = (tc < 0) | (tc >= n_classes)
        if bad.any():
            value = int(tc[bad].ravel()[0])
            raise TargetOutOfBoundsError(
                name, f"target {value} is out of bounds for {n_classes} classes"
            )
    wt = valid.astype(dtype) if w is None else w[tc] * valid
    return tc, valid, wt


def _inv(xp: Any, denom: Any) -> Any:
    """``1 / denom``, and 0 where ``denom`` is 0 (PyTorch's gradient when all are ignored)."""
    safe = xp.where(denom == 0, 1, denom)
    return xp.where(denom == 0, 0, 1 / safe)


def _mean(xp: Any, total: Any, denom: Any) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 is NaN, like PyTorch
        return xp.asarray(total / denom)


def _kernel_forward(x: Any, t: Any, w: Any, ignore_index: int, eps: float, reduction: str):
    """The C kernel's cross-entropy of class-index targets (``(N, C)`` logits), or None; for
    CuPy arrays the CUDA kernel's (one launch, the reduction included, on the device)."""
    if cuda_loss.is_cupy(x):
        return cuda_loss.cross_entropy_loss(x, t, w, ignore_index, eps, reduction)
    out = kernels.cross_entropy_forward(x, t, w, ignore_index, eps)
    if out is None:
        return None
    loss, wt, _ = out
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else _mean(np, total, wt.sum())


def _kernel_backward(x: Any, t: Any, w: Any, g: Any, ignore_index: int, eps: float, red: str):
    """The C kernel's cross-entropy gradient for class-index targets, or None; for CuPy
    arrays the CUDA kernel's (one launch: 'mean''s ``g * _inv(sum(weights))`` is formed on
    the device, no host sync)."""
    if cuda_loss.is_cupy(x):
        return cuda_loss.cross_entropy_grad(x, t, g, w, ignore_index, eps, red)
    if type(x) is not np.ndarray or x.ndim != 2 or t.dtype.kind not in "iu":
        return None
    scale = g
    if red == "mean":
        valid = t != ignore_index
        if w is None:
            denom = x.dtype.type(np.count_nonzero(valid))
        else:  # clip: an out-of-range target makes the kernel decline (the NumPy path raises)
            denom = (np.take(w, np.where(valid, t, 0), mode="clip") * valid).sum()
        scale = g * _inv(np, denom)
    return kernels.cross_entropy_backward(x, t, scale, w, ignore_index, eps)


# -- cross_entropy: fused log_softmax + target pick ----------------------------------------
@defop("cross_entropy", onnx="SoftmaxCrossEntropyLoss")
def _cross_entropy(xp, x, t, w, ignore_index, label_smoothing, reduction):
    n_classes = x.shape[1]
    eps = label_smoothing
    if t.dtype.kind == "f":  # class probabilities
        logp = log_softmax_xp(xp, x, 1)
        q = t if eps == 0 else t * (1 - eps) + eps / n_classes
        if w is not None:
            q = q * _class_view(w, x.ndim)
        loss = (logp * q).sum(axis=1)
        loss = -loss
        if reduction == "none":
            return loss
        total = loss.sum()
        return total if reduction == "sum" else _mean(xp, total, x.size // max(n_classes, 1))
    if x.ndim == 2:
        out = _kernel_forward(x, t, w, ignore_index, eps, reduction)
        if out is not None:
            return out
    tc, valid, wt = _targets("cross_entropy", xp, t, w, ignore_index, n_classes, x.dtype)
    xw, back = _upcast(x)
    lse = logsumexp_xp(xp, xw, 1)[:, 0]  # -log_softmax(x)[target] = lse - x[target]
    loss = lse - xw[_class_index(xp, tc)]
    loss *= wt
    if eps > 0:  # sum_c w_c log_softmax(x)_c = sum_c w_c x_c - lse * sum_c w_c
        if w is None:
            smooth = xw.sum(axis=1) - lse * n_classes
        else:
            smooth = xp.tensordot(xw, w.astype(xw.dtype), axes=([1], [0])) - lse * w.sum()
        smooth *= valid
        loss = (1 - eps) * loss - (eps / n_classes) * smooth
    if back is not None:
        loss = loss.astype(back)
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else _mean(xp, total, wt.sum())


@_cross_entropy.defgrad
def _(ctx, g):
    x, t, w = ctx.inputs
    a = ctx.attrs
    need_x, need_t, _ = ctx.needs_input_grad
    gx = _cross_entropy_backward(x, t, w, g, **a) if need_x else None
    gt = None
    if need_t:  # probability targets: d loss / d t = -(1 - eps) * w * log_softmax(x) * scale
        coef = _prob_scale(x, w, g, a, -(1 - a["label_smoothing"]))
        gt = mul(log_softmax(x, 1), coef)
    return gx, gt, None


def _class_shape(ndim: int) -> tuple:
    return (1, -1) + (1,) * (ndim - 2)


def _onnx_targets(g, t, w, ignore_index, dtype):
    """Class-index targets (ignored ones set to 0), the valid mask as ``dtype`` and each
    target's weight (0 where ignored)."""
    valid = g.op("Not", g.cmp("Equal", t, ignore_index))
    tc = g.where(valid, t, 0, like=t)
    validf = g.cast(valid, dtype)
    wt = validf if w is None else g.op("Mul", g.op("Gather", w, tc, axis=0), validf)
    return tc, validf, wt


def _onehot_onnx(g, tc, n_classes, ndim, dtype):
    """``(N, C, *S)``: 1 at each target's class (broadcasting an iota against ``tc``)."""
    iota = np.arange(n_classes, dtype=np.int64).reshape((1, n_classes) + (1,) * (ndim - 2))
    return g.cast(g.cmp("Equal", g.unsqueeze(tc, [1]), g.const(iota)), dtype)


def _safe_inv(g, denom):
    """``1 / denom``, 0 where ``denom`` is 0."""
    zero = g.cmp("Equal", denom, 0.0)
    return g.where(zero, 0.0, g.op("Div", 1.0, g.where(zero, 1.0, denom, like=denom)), like=denom)


def _prob_targets_onnx(g, x, t, w, eps):
    q = t if eps == 0 else g.op("Add", g.op("Mul", t, 1.0 - eps), eps / x.shape[1])
    return q if w is None else g.op("Mul", q, g.reshape(w, _class_shape(x.ndim)))


@_cross_entropy.defonnx
def _(g, x, t, w, ignore_index, label_smoothing, reduction):
    n_classes, eps = x.shape[1], label_smoothing
    if t.dtype.kind == "f":  # class probabilities
        q = _prob_targets_onnx(g, x, t, w, eps)
        loss = g.op(
            "Neg", g.reduce("ReduceSum", g.op("Mul", g.op("LogSoftmax", x, axis=1), q), (1,), False)
        )
        if reduction == "none":
            return loss
        total = g.reduce("ReduceSum", loss, None, False)
        if reduction == "sum":
            return total
        return g.op("Div", total, g.op("Div", g.numel(x), float(max(n_classes, 1))))
    if eps == 0 and x.dtype == np.float32 and 0 not in x.shape:
        return g.op(
            "SoftmaxCrossEntropyLoss", x, t, w, reduction=reduction, ignore_index=int(ignore_index)
        )
    work = "float32" if x.dtype == np.float16 else x.dtype
    tc, validf, wt = _onnx_targets(g, t, w, ignore_index, work)
    logp = g.op("LogSoftmax", g.cast(x, work), axis=1)
    picked = g.squeeze(g.op("GatherElements", logp, g.unsqueeze(tc, [1]), axis=1), [1])
    loss = g.op("Mul", g.op("Neg", picked), wt)
    if eps > 0:  # minus (eps / C) * sum_c w_c log_softmax(x)_c on valid targets
        wl = (
            logp
            if w is None
            else g.op("Mul", logp, g.reshape(g.cast(w, work), _class_shape(x.ndim)))
        )
        smooth = g.op("Mul", g.reduce("ReduceSum", wl, (1,), False), validf)
        loss = g.op("Sub", g.op("Mul", loss, 1.0 - eps), g.op("Mul", smooth, eps / n_classes))
    loss = g.cast(loss, x.dtype)
    if reduction == "none":
        return loss
    total = g.reduce("ReduceSum", loss, None, False)
    if reduction == "sum":
        return total
    return g.op("Div", total, g.cast(g.reduce("ReduceSum", wt, None, False), x.dtype))


def _prob_scale(x: Tensor, w: Any, g: Tensor, attrs: dict, factor: float) -> Tensor:
    """``factor * w * scale(g)`` shaped to broadcast against ``x`` (probability targets)."""
    s = _scale_tensor(x, g, attrs["reduction"], None) * factor
    if w is not None:
        s = mul(s, reshape(w, _class_view(w._data, x.ndim).shape))
    return s


def _scale_tensor(x: Tensor, g: Tensor, reduction: str, inv_denom: Any) -> Tensor:
    """The upstream gradient as a per-row scale broadcastable against ``x`` (ember ops)."""
    if reduction == "none":
        return unsqueeze(g, 1)
    if reduction == "sum":
        return g
    if inv_denom is None:  # probability targets: mean over N * d1 * ...
        return g * (1.0 / max(x.numel() // max(x.shape[1], 1), 1))
    return mul(g, Tensor._make(inv_denom, x.device))


@defop("cross_entropy_backward")
def _cross_entropy_backward(xp, x, t, w, g, ignore_index, label_smoothing, reduction):
    n_classes = x.shape[1]
    eps = label_smoothing
    if t.dtype.kind == "f":
        q = t if eps == 0 else t * (1 - eps) + eps / n_classes
        if w is not None:
            q = q * _class_view(w, x.ndim)
        s = g if reduction != "mean" else g / max(x.size // max(n_classes, 1), 1)
        if reduction == "none":
            s = xp.expand_dims(s, 1)
        p = softmax_xp(xp, x, 1, scale=q.sum(axis=1, keepdims=True) * s)
        p -= q * s
        return p
    p = _kernel_backward(x, t, w, g, ignore_index, eps, reduction)
    if p is not None:
        return p
    tc, valid, wt = _targets("cross_entropy", xp, t, w, ignore_index, n_classes, x.dtype)
    s = g if reduction != "mean" else g * _inv(xp, wt.sum())
    s = xp.broadcast_to(s, tc.shape)
    wsum = n_classes if w is None else w.sum()
    coef = (1 - eps) * wt
    big_q = coef + (eps / n_classes) * wsum * valid if eps > 0 else coef
    p = softmax_xp(xp, x, 1, scale=xp.expand_dims(s * big_q, 1))  # s * Q * softmax(x)
    if eps > 0:
        sv = xp.expand_dims(s * valid * (eps / n_classes), 1)
        p -= sv if w is None else sv * _class_view(w, x.ndim)
    p[_class_index(xp, tc)] -= s * coef
    return p


@_cross_entropy_backward.defonnx
def _(g, x, t, w, dy, ignore_index, label_smoothing, reduction):
    n_classes, eps = x.shape[1], label_smoothing
    p = g.op("Softmax", x, axis=1)
    if t.dtype.kind == "f":
        q = _prob_targets_onnx(g, x, t, w, eps)
        s = dy
        if reduction == "mean":
            s = g.op("Div", dy, g.op("Div", g.numel(x), float(max(n_classes, 1))))
        elif reduction == "none":
            s = g.unsqueeze(dy, [1])
        big_q = g.reduce("ReduceSum", q, (1,), True)
        return g.op("Sub", g.op("Mul", p, g.op("Mul", big_q, s)), g.op("Mul", q, s))
    tc, validf, wt = _onnx_targets(g, t, w, ignore_index, x.dtype)
    s = dy
    if reduction == "mean":
        s = g.op("Mul", dy, _safe_inv(g, g.reduce("ReduceSum", wt, None, False)))
    coef = g.op("Mul", wt, 1.0 - eps)
    big_q = coef
    if eps > 0:
        wsum = g.scalar(n_classes, x) if w is None else g.reduce("ReduceSum", w, None, False)
        big_q = g.op("Add", coef, g.op("Mul", g.op("Mul", validf, wsum), eps / n_classes))
    out = g.op("Mul", p, g.unsqueeze(g.op("Mul", s, big_q), [1]))
    if eps > 0:
        sv = g.unsqueeze(g.op("Mul", g.op("Mul", s, validf), eps / n_classes), [1])
        out = g.op(
            "Sub", out, sv if w is None else g.op("Mul", sv, g.reshape(w, _class_shape(x.ndim)))
        )
    hot = _onehot_onnx(g, tc, n_classes, x.ndim, x.dtype)
    return g.op("Sub", out, g.op("Mul", hot, g.unsqueeze(g.op("Mul", s, coef), [1])))


def _dense_targets(x: Tensor, t: Tensor, w: Any, attrs: dict) -> tuple[Tensor, Tensor, Any]:
    """Class-index targets as a dense distribution ``q`` and its row sums ``Q`` (constants),
    with ``1 / denominator`` for 'mean' (used only by second derivatives)."""
    xp = x.device.xp
    n_classes, eps = x.shape[1], attrs["label_smoothing"]
    wa = None if w is None else w._data
    tc, valid, wt = _targets(
        "cross_entropy", xp, t._data, wa, attrs["ignore_index"], n_classes, x._data.dtype
    )
    q = xp.zeros(x.shape, dtype=x._data.dtype)
    q[_class_index(xp, tc)] = (1 - eps) * wt
    if eps > 0:
        sv = xp.expand_dims(valid * (eps / n_classes), 1).astype(q.dtype)
        q += sv if wa is None else sv * _class_view(wa, x.ndim)
    big_q = q.sum(axis=1, keepdims=True)
    inv = _inv(xp, wt.sum()).astype(q.dtype)
    return Tensor._make(q, x.device), Tensor._make(big_q, x.device), inv


@_cross_entropy_backward.defgrad
def _(ctx, u):
    # out = s * (p * Q - q) with p = softmax(x), s the (linear) scale from g
    x, t, w, g = ctx.inputs
    a = ctx.attrs
    eps, red = a["label_smoothing"], a["reduction"]
    need_x, need_t, _, need_g = ctx.needs_input_grad
    p = _softmax(x, dim=1)
    if t._data.dtype.kind == "f":
        q = t if eps == 0 else t * (1 - eps) + eps / x.shape[1]
        if w is not None:
            q = mul(q, reshape(w, _class_view(w._data, x.ndim).shape))
        big_q = _sum(q, 1, keepdim=True)
        inv = None
    else:
        q, big_q, inv = _dense_targets(x, t, w, a)
    s = _scale_tensor(x, g, red, inv)
    gx = _softmax_backward(mul(u, mul(s, big_q)), p, dim=1) if need_x else None
    gg = None
    if need_g:
        ud = mul(u, sub(mul(p, big_q), q))
        gg = _sum(ud, 1) if red == "none" else _scale_tensor(x, _sum(ud), red, inv)
    gt = None
    if need_t:
        coef = _prob_scale(x, w, g, a, 1 - eps)
        gt = mul(coef, sub(_sum(mul(u, p), 1, keepdim=True), u))
    return gx, gt, None, gg


# -- nll_loss ------------------------------------------------------------------------------
@defop("nll_loss", saves_inputs=(1, 2), onnx="NegativeLogLikelihoodLoss")
def _nll_loss(xp, x, t, w, ignore_index, reduction):
    tc, valid, wt = _targets("nll_loss", xp, t, w, ignore_index, x.shape[1], x.dtype)
    loss = x[_class_index(xp, tc)] * -wt
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else _mean(xp, total, wt.sum())


@_nll_loss.defgrad
def _(ctx, g):
    _, t, w = ctx.inputs
    gx = _nll_loss_backward(g, t, w, shape=tuple(ctx.input_shape(0)), **ctx.attrs)
    return gx, None, None


@defop("nll_loss_backward", saves_inputs=(1, 2))
def _nll_loss_backward(xp, g, t, w, shape, ignore_index, reduction):
    tc, valid, wt = _targets("nll_loss", xp, t, w, ignore_index, shape[1], g.dtype)
    s = g if reduction != "mean" else g * _inv(xp, wt.sum())
    out = xp.zeros(shape, dtype=g.dtype)
    out[_class_index(xp, tc)] = -(s * wt)
    return out


@_nll_loss_backward.defgrad
def _(ctx, u):
    # nll_loss is linear in its input, so the adjoint of its backward is the loss itself
    _, t, w = ctx.inputs
    a = ctx.attrs
    return _nll_loss(u, t, w, ignore_index=a["ignore_index"], reduction=a["reduction"]), None, None


@_nll_loss.defonnx
def _(g, x, t, w, ignore_index, reduction):
    if x.dtype == np.float32:
        return g.op(
            "NegativeLogLikelihoodLoss",
            x,
            t,
            w,
            reduction=reduction,
            ignore_index=int(ignore_index),
        )
    tc, validf, wt = _onnx_targets(g, t, w, ignore_index, x.dtype)
    picked = g.squeeze(g.op("GatherElements", x, g.unsqueeze(tc, [1]), axis=1), [1])
    loss = g.op("Mul", g.op("Neg", picked), wt)
    if reduction == "none":
        return loss
    total = g.reduce("ReduceSum", loss, None, False)
    if reduction == "sum":
        return total
    return g.op("Div", total, g.reduce("ReduceSum", wt, None, False))


@_nll_loss_backward.defonnx
def _(g, dy, t, w, shape, ignore_index, reduction):
    tc, validf, wt = _onnx_targets(g, t, w, ignore_index, dy.dtype)
    s = dy
    if reduction == "mean":
        s = g.op("Mul", dy, _safe_inv(g, g.reduce("ReduceSum", wt, None, False)))
    hot = _onehot_onnx(g, tc, shape[1], len(shape), dy.dtype)
    return g.op("Neg", g.op("Mul", hot, g.unsqueeze(g.op("Mul", s, wt), [1])))


# -- argument checks -----------------------------------------------------------------------
def _canonical(name: str, input: Tensor, target: Tensor, allow_probs: bool):
    """Bring ``(C,)`` inputs to ``(1, C)``; check the target's shape and dtype.

    Returns the input, the target and the output shape for reduction='none'."""
    if not isinstance(target, Tensor):
        raise TypeError(f"{name}: target must be a Tensor, got {type(target).__name__}")
    shape, tshape = tuple(input.shape), tuple(target.shape)
    kind = target._data.dtype.kind
    if input._data.dtype.kind != "f":
        raise DTypeError(name, f"expected a floating point input, got {input.dtype}")
    if input.ndim == 0:
        raise ShapeError(name, "expected an input of shape (N, C), (N, C, d1, ...) or (C,), got ()")
    index_shape = () if input.ndim == 1 else shape[:1] + shape[2:]
    probs = allow_probs and kind == "f" and tshape == shape
    if not probs and tshape != index_shape:
        want = f"{index_shape} (class indices)"
        if allow_probs:
            want += f" or {shape} (class probabilities)"
        raise ShapeError(
            name, f"input of shape {shape} needs a target of shape {want}, got {tshape}"
        )
    if not probs and kind not in "iu":
        raise DTypeError(
            name,
            f"class-index targets must be integers (int64), got {target.dtype} for target of "
            f"shape {tshape} and input of shape {shape}",
        )
    if probs and target._data.dtype != input._data.dtype:
        target = cast(target, input.dtype)
    out_shape = index_shape
    if input.ndim == 1:
        input = reshape(input, (1, shape[0]))
        target = reshape(target, (1, shape[0]) if probs else (1,))
    return input, target, out_shape


def _weight(name: str, weight: Any, input: Tensor) -> Any:
    if weight is None:
        return None
    n_classes = input.shape[1]
    if tuple(weight.shape) != (n_classes,):
        raise ShapeError(
            name,
            f"weight of shape {tuple(weight.shape)} does not match the {n_classes} classes of "
            f"input of shape {tuple(input.shape)}; expected ({n_classes},)",
        )
    w = weight.detach()
    return w if w._data.dtype == input._data.dtype else cast(w, input.dtype)


def _finish(out: Tensor, reduction: str, out_shape: tuple) -> Tensor:
    if reduction == "none" and tuple(out.shape) != out_shape:
        return reshape(out, out_shape)
    return out


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy between logits ``input`` and class-index or class-probability targets.

    ``input`` is ``(N, C)``, ``(N, C, d1, ...)`` or ``(C,)``. Class-index targets are
    integers of shape ``(N, d1, ...)`` (``ignore_index`` entries contribute nothing);
    probability targets have the input's shape. ``weight`` (shape ``(C,)``) weighs the
    classes, ``label_smoothing`` mixes the target with the uniform distribution.

    Example:
        >>> logits = ember.tensor([[2.0, 0.0], [0.0, 2.0]])
        >>> round(F.cross_entropy(logits, ember.tensor([0, 1])).item(), 4)
        0.1269
    """
    reduction = _reduction("cross_entropy", size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"cross_entropy: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}"
        )
    x, t, out_shape = _canonical("cross_entropy", input, target, allow_probs=True)
    w = _weight("cross_entropy", weight, x)
    out = _cross_entropy(
        x,
        t,
        w,
        ignore_index=int(ignore_index),
        label_smoothing=float(label_smoothing),
        reduction=reduction,
    )
    return _finish(out, reduction, out_shape)


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log likelihood of class-index targets, given log-probabilities ``input``.

    Shapes and options as :func:`cross_entropy` (class-index targets only); use it after
    ``log_softmax``.

    Example:
        >>> logp = F.log_softmax(ember.zeros(2, 4), dim=1)
        >>> round(F.nll_loss(logp, ember.tensor([0, 3])).item(), 4)
        1.3863
    """
    reduction = _reduction("nll_loss", size_average, reduce, reduction)
    x, t, out_shape = _canonical("nll_loss", input, target, allow_probs=False)
    w = _weight("nll_loss", weight, x)
    out = _nll_loss(x, t, w, ignore_index=int(ignore_index), reduction=reduction)
    return _finish(out, reduction, out_shape)

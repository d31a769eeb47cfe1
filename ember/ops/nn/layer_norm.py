"""``layer_norm``: one op (its affine included) whose forward is one pass of the fused kernel
and whose backward is one op too (``layer_norm_backward``: the input, weight and bias
gradients in one pass, the statistics recomputed per row from the saved input), so a
transformer's nine layer norms cost two passes each instead of nine. With ``create_graph``
its gradients are the differentiable rules of the normalization primitives
(:mod:`.norm`: ``norm_moments``, ``standardize``) instead. With weight or bias of another
dtype than the input it falls back to those primitives (``mul``/``add`` promote). From
opset 17 it exports as one ONNX ``LayerNormalization`` node.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.layer_norm(ember.tensor([[1.0, 3.0]]), (2,), eps=0.0).tolist()
    [[-1.0, 1.0]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import kernels
from ...autograd.mode import state
from ...errors import ShapeError
from ...kernels import cuda
from ...tensor import Tensor
from ..elementwise import add, mul
from ..registry import defop
from ..shape import narrow, reshape
from .norm import _moments, _normalize, _standardize, _standardize_backward

__all__ = ["layer_norm"]


@defop("layer_norm", saves_inputs=(0, 1))
def _layer_norm(xp, x, weight=None, bias=None, *, normalized_ndim, eps):
    """``standardize(x) * weight + bias`` over the last ``normalized_ndim`` dims: one pass
    (the fused kernel), else the primitives' NumPy math."""
    out = kernels.layer_norm_forward(x, normalized_ndim, weight, bias, eps)
    if out is not None:
        return out[0]
    if cuda.is_cupy(x):  # one CUDA kernel instead of a launch per NumPy-path op
        y = cuda.layer_norm_forward(x, normalized_ndim, weight, bias, eps)
        if y is not None:
            return y
    axes = tuple(range(x.ndim - normalized_ndim, x.ndim))
    y = _standardize.forward(xp, x, _moments.forward(xp, x, axes), axes, eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


@defop("layer_norm_backward")
def _layer_norm_backward(xp, g, x, weight=None, *, normalized_ndim, eps, weight_grad, bias_grad):
    """``[dx, dweight, dbias]`` of ``layer_norm`` (the last two when asked for), raveled into
    one flat array; the statistics are recomputed from ``x``. Not differentiable itself:
    ``layer_norm``'s backward calls it only when no graph is being built."""
    if cuda.is_cupy(x):
        flat = cuda.layer_norm_backward(g, x, weight, normalized_ndim, eps, weight_grad, bias_grad)
        if flat is not None:
            return flat
    d = math.prod(x.shape[x.ndim - normalized_ndim :])
    size = x.size + d * (int(weight_grad) + int(bias_grad))
    flat = xp.empty(size, x.dtype) if type(x) is np.ndarray else None
    got = kernels.layer_norm_backward(
        g, x, None, None, normalized_ndim, weight, weight_grad=weight_grad,
        bias_grad=bias_grad, eps=eps, out=flat,
    )  # fmt: skip
    if got is not None:
        return flat
    axes = tuple(range(x.ndim - normalized_ndim, x.ndim))
    lead = tuple(range(x.ndim - normalized_ndim))
    moments = _moments.forward(xp, x, axes)
    xhat = _standardize.forward(xp, x, moments, axes, eps)
    gw = g if weight is None else g * weight
    parts = [_standardize_backward.forward(xp, x, xhat, moments, gw, axes, eps).ravel()]
    if weight_grad:
        parts.append((g * xhat).sum(axis=lead).ravel())
    if bias_grad:
        parts.append(g.sum(axis=lead).ravel())
    return xp.concatenate(parts).astype(x.dtype, copy=False)


def _layer_norm_composite_grads(x, weight, g, k, eps, need):
    """``layer_norm``'s gradients in differentiable ember ops (for ``create_graph``): the
    primitives' rules (the engine sums the affine gradients over the leading dims)."""
    axes = tuple(range(x.ndim - k, x.ndim))
    moments = _moments(x, axes=axes)
    xhat = _standardize(x, moments, axes=axes, eps=eps)
    gx = gw = None
    if need[0]:
        gy = g if weight is None else mul(g, weight)
        gx = _standardize_backward(x, xhat, moments, gy, axes=axes, eps=eps)
    if need[1]:
        gw = mul(g, xhat)
    return gx, gw, (g if need[2] else None)


@_layer_norm.defgrad
def _(ctx, g):
    x, weight, _ = ctx.inputs
    k, eps = ctx.attrs["normalized_ndim"], ctx.attrs["eps"]
    need = ctx.needs_input_grad
    if state.grad_enabled:  # create_graph: gradients that are themselves differentiable
        return _layer_norm_composite_grads(x, weight, g, k, eps, need)
    flat = _layer_norm_backward(
        g, x, weight, normalized_ndim=k, eps=eps, weight_grad=need[1], bias_grad=need[2]
    )
    shape = tuple(x.shape)
    n, ns = math.prod(shape), shape[len(shape) - k :]
    d = math.prod(ns)
    gx = reshape(narrow(flat, 0, 0, n), shape) if need[0] else None
    gw = narrow(flat, 0, n, d) if need[1] else None
    gb = narrow(flat, 0, n + d * need[1], d) if need[2] else None
    if k > 1:  # a 1-D normalized shape needs no reshape
        gw = None if gw is None else reshape(gw, ns)
        gb = None if gb is None else reshape(gb, ns)
    return gx, gw, gb


def _layer_norm_onnx(g, x, weight, normalized_ndim, eps):
    """``(xhat, rstd, moments dtype)`` of layer norm as ONNX nodes (float16 in float32)."""
    nd = len(x.shape)
    axes = tuple(range(nd - normalized_ndim, nd))
    work = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    xw = g.cast(x, work)
    mean = g.reduce("ReduceMean", xw, axes, True)
    d = g.op("Sub", xw, mean)
    var = g.reduce("ReduceMean", g.op("Mul", d, d), axes, True)
    rstd = g.op("Reciprocal", g.op("Sqrt", g.op("Add", var, eps)))
    return g.op("Mul", d, rstd), rstd, work


@_layer_norm.defonnx
def _(g, x, weight=None, bias=None, *, normalized_ndim, eps):
    ns = tuple(x.shape[len(x.shape) - normalized_ndim :])
    if g.opset >= 17 and all(isinstance(d, int) for d in ns):
        # one LayerNormalization node (opset 17): runtimes run it as one fused kernel
        same = all(p is None or p.dtype == x.dtype for p in (weight, bias))
        if same and x.dtype in (np.float16, np.float32, np.float64):
            scale = weight if weight is not None else g.const(np.ones(ns, x.dtype))
            return g.op(
                "LayerNormalization", x, scale, bias, axis=-normalized_ndim, epsilon=float(eps)
            )
    xhat, _, _ = _layer_norm_onnx(g, x, weight, normalized_ndim, eps)
    y = g.cast(xhat, x.dtype)
    if weight is not None:
        y = g.op("Mul", y, weight)
    return y if bias is None else g.op("Add", y, bias)


@_layer_norm_backward.defonnx
def _(g, dy, x, weight=None, *, normalized_ndim, eps, weight_grad, bias_grad):
    nd = len(x.shape)
    axes = tuple(range(nd - normalized_ndim, nd))
    lead = tuple(range(nd - normalized_ndim))
    xhat, rstd, work = _layer_norm_onnx(g, x, weight, normalized_ndim, eps)
    gy = g.cast(dy, work)
    gw = gy if weight is None else g.op("Mul", gy, g.cast(weight, work))
    c1 = g.reduce("ReduceMean", gw, axes, True)
    c2 = g.reduce("ReduceMean", g.op("Mul", gw, xhat), axes, True)
    dx = g.op("Sub", g.op("Sub", gw, c1), g.op("Mul", xhat, c2))
    parts = [g.reshape(g.cast(g.op("Mul", dx, rstd), x.dtype), (-1,))]
    for want, t in ((weight_grad, g.op("Mul", gy, xhat)), (bias_grad, gy)):
        if want:
            total = g.reduce("ReduceSum", t, lead, False) if lead else t
            parts.append(g.reshape(g.cast(total, x.dtype), (-1,)))
    return g.op("Concat", *parts, axis=0) if len(parts) > 1 else parts[0]


def layer_norm(
    input: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dims, then scale by ``weight`` and
    shift by ``bias`` (both of shape ``normalized_shape``).

    Example:
        >>> x = ember.randn(4, 8)
        >>> y = F.layer_norm(x, (8,))
        >>> abs(y.mean(-1)).max().item() < 1e-5
        True
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    shape = tuple(input.shape)
    if k == 0 or k > len(shape) or shape[len(shape) - k :] != ns:
        raise ShapeError(
            "layer_norm",
            f"input of shape {shape} does not end with normalized_shape {ns}",
        )
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != ns:
            raise ShapeError(
                "layer_norm",
                f"{what} of shape {tuple(t.shape)} does not match normalized_shape {ns}",
            )
    dt = input._data.dtype
    if all(t is None or t._data.dtype == dt for t in (weight, bias)):
        return _layer_norm(input, weight, bias, normalized_ndim=k, eps=float(eps))
    axes = tuple(range(len(shape) - k, len(shape)))  # mixed dtypes: promoted by mul/add
    y, _ = _normalize(input, axes, eps)
    if weight is not None:
        y = mul(y, weight)
    if bias is not None:
        y = add(y, bias)
    return y

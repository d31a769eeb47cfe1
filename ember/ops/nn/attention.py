"""``scaled_dot_product_attention`` with PyTorch's signature and masking rules.

A composite of ember primitives: ``softmax((q * scale) @ k.T + mask) @ v``; float32/float64
CPU self-attention (equal batch dims, no dropout, no mask gradient) runs as the fused op
``sdpa`` instead (C kernels per (batch, head) pair, :mod:`ember.kernels.attention`), whose
NumPy path and ONNX lowering are that same composite math. Boolean masks
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
from typing import Any

import numpy as np

from ... import kernels
from ...autograd.mode import state
from ...errors import DTypeError, EmberError, ShapeError
from ...kernels.attention import heads_inner as _heads_inner
from ...kernels.attention import packed_qkv as _packed_qkv
from ...tensor import Tensor
from ..creation import zeros
from ..elementwise import add, mul, where
from ..linalg import matmul
from ..registry import defop
from ..shape import broadcast_to, narrow, reshape, transpose, unsqueeze
from .dropout import dropout
from .softmax import _safe_softmax, _softmax, _softmax_backward, softmax_xp

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


# -- the fused op ----------------------------------------------------------------------------
def _mask_xp(xp: Any, mask: Any, dtype: Any, L: int, S: int, causal: bool) -> Any:
    """The additive mask of the composite (None without one)."""
    if causal:
        return xp.triu(xp.full((L, S), -np.inf, dtype=dtype), 1)
    if mask is None:
        return None
    if mask.dtype == np.bool_:
        return xp.where(mask, dtype.type(0), dtype.type(-np.inf))
    return mask.astype(dtype, copy=False)


def _weights_xp(xp: Any, q: Any, k: Any, mask: Any, scale: float, causal: bool) -> Any:
    scores = xp.matmul(q * scale, xp.swapaxes(k, -1, -2))
    add_mask = _mask_xp(xp, mask, scores.dtype, q.shape[-2], k.shape[-2], causal)
    if add_mask is not None:
        scores = scores + add_mask
    return softmax_xp(xp, scores, scores.ndim - 1, safe=add_mask is not None)


@defop("sdpa")
def _sdpa(xp, q, k, v, mask=None, *, scale, causal):
    """``softmax(scale q k^T + mask) v``: the fused kernel, else the composite's math."""
    out = kernels.sdpa_forward(q, k, v, mask, scale, causal)
    if out is not None:
        return out
    return xp.matmul(_weights_xp(xp, q, k, mask, scale, causal), v)


@defop("sdpa_backward")
def _sdpa_backward(xp, g, q, k, v, mask=None, *, scale, causal, heads_inner=False, packed=False):
    """``[dq, dk, dv]`` of ``sdpa``, raveled into one flat array (with ``heads_inner``, 4-D
    gradients are raveled as their ``(B, L, H, E)`` transposes: the layout in which the
    ``transpose(1, 2)`` that made the heads gives them back without a copy; with ``packed``,
    4-D q, k, v of one shape, the three are interleaved as one ``(B, L, 3, H, E)`` array:
    the layout of the fused qkv projection they were split from, so that the slice
    gradients of that split tile one buffer and merge without a copy). Not differentiable
    itself: ``sdpa``'s backward calls it only when no graph is being built (``create_graph``
    takes the composite's differentiable ops instead)."""
    if packed and (q.ndim != 4 or not q.shape == k.shape == v.shape):
        raise ShapeError(
            "sdpa_backward",
            f"packed gradients need 4-D q, k and v of one shape, got {q.shape}, {k.shape}, "
            f"{v.shape}",
        )
    out = kernels.sdpa_backward(g, q, k, v, mask, scale, causal, heads_inner, packed)
    if out is not None:
        return out
    w = _weights_xp(xp, q, k, mask, scale, causal)
    dv = xp.matmul(xp.swapaxes(w, -1, -2), g)
    ds = _softmax_backward.forward(xp, xp.matmul(g, xp.swapaxes(v, -1, -2)), w, dim=w.ndim - 1)
    dq = xp.matmul(ds, k) * scale
    dk = xp.matmul(xp.swapaxes(ds, -1, -2), q * scale)
    grads = (dq, dk, dv)
    if packed:  # (B, L, H, E) each, joined along H: (B, L, 3 * H, E) = (B, L, 3, H, E)
        return xp.concatenate([xp.swapaxes(d, 1, 2) for d in grads], axis=2).ravel()
    if heads_inner and q.ndim == 4:
        grads = tuple(xp.swapaxes(d, 1, 2) for d in grads)
    return xp.concatenate([d.ravel() for d in grads])


def _composite_grads(q, k, v, mask, g, scale, causal):
    """``sdpa``'s gradients in differentiable ember ops (for ``create_graph``)."""
    scores = matmul(mul(q, scale), transpose(k, -2, -1))
    if causal:
        mask = _causal_mask(scores, q.shape[-2], k.shape[-2])
    elif mask is not None:
        mask = _additive(mask, scores)
    dim = scores.ndim - 1
    w = _safe_softmax(add(scores, mask), dim=dim) if mask is not None else _softmax(scores, dim=dim)
    ds = _softmax_backward(matmul(g, transpose(v, -2, -1)), w, dim=dim)
    dq = mul(matmul(ds, k), scale)
    dk = matmul(transpose(ds, -2, -1), mul(q, scale))
    return dq, dk, matmul(transpose(w, -2, -1), g)


def _grad_pieces(
    flat: Tensor, q: Tensor, k: Tensor, v: Tensor, inner: bool, packed: bool
) -> list[Tensor]:
    """``dq, dk, dv`` as views of ``sdpa_backward``'s flat result (laid out as its
    ``heads_inner`` and ``packed`` say), each of its operand's shape."""
    if packed:  # (B, L, 3 * H, E) in memory; each gradient is H heads of it
        B, H, L, E = tuple(q.shape)
        whole = reshape(flat, (B, L, 3 * H, E))
        return [transpose(narrow(whole, 2, i * H, H), 1, 2) for i in range(3)]
    grads, start = [], 0
    for t in (q, k, v):
        n, shape = math.prod(t.shape), tuple(t.shape)
        piece = narrow(flat, 0, start, n)
        if inner:  # (B, L, H, E) in memory
            piece = transpose(reshape(piece, (shape[0], shape[2], shape[1], shape[3])), 1, 2)
        else:
            piece = reshape(piece, shape)
        grads.append(piece)
        start += n
    return grads


@_sdpa.defgrad
def _(ctx, g):
    q, k, v, *rest = ctx.inputs
    mask = rest[0] if rest else None
    scale, causal = ctx.attrs["scale"], ctx.attrs["causal"]
    if state.grad_enabled:  # create_graph: gradients that are themselves differentiable
        grads = _composite_grads(q, k, v, mask, g, scale, causal)
    else:
        extra = () if mask is None else (mask,)
        inner = q.ndim == 4 and type(q._data) is np.ndarray and _heads_inner(q._data)
        packed = inner and _packed_qkv(q._data, k._data, v._data)
        flat = _sdpa_backward(
            g, q, k, v, *extra, scale=scale, causal=causal, heads_inner=inner, packed=packed
        )
        grads = _grad_pieces(flat, q, k, v, inner, packed)
    need = ctx.needs_input_grad
    return tuple(d if n else None for d, n in zip(grads, need)) + (None,) * len(rest)


def _weights_onnx(g, q, k, mask, scale, causal):
    """The attention weights ``softmax(scale q k^T + mask)`` as ONNX nodes (the composite's)."""
    nd = len(q.shape)
    L, S = q.shape[-2], k.shape[-2]
    kt = _transpose_onnx(g, k, tuple(k.shape))
    shape = tuple(q.shape[:-1]) + (S,)
    scores = g.op("MatMul", g.op("Mul", q, float(scale), shape=q.shape), kt, shape=shape)
    if causal:
        mask = g.const(np.triu(np.full((L, S), -np.inf, dtype=q.dtype), 1))
        # every row keeps its first column, so none is fully masked: the plain Softmax
        # serves (and runs faster in ONNX Runtime than the safe one's guard nodes)
        return _softmax.onnx(g, g.op("Add", scores, mask, shape=shape), nd - 1)
    elif mask is not None and mask.dtype == np.bool_:
        mask = g.where(mask, 0.0, -math.inf, like=q.dtype)
    elif mask is not None and mask.dtype != q.dtype:
        mask = g.cast(mask, q.dtype)
    if mask is None:
        return _softmax.onnx(g, scores, nd - 1)
    return _safe_softmax.onnx(g, g.op("Add", scores, mask, shape=shape), nd - 1)


def _transpose_onnx(g, x, shape):
    """``x`` (of ``shape``) with its last two dims swapped."""
    nd = len(shape)
    perm = list(range(nd - 2)) + [nd - 1, nd - 2]
    return g.op("Transpose", x, perm=perm, shape=tuple(shape[:-2]) + tuple(shape[:-3:-1]))


@_sdpa.defonnx
def _(g, q, k, v, mask=None, *, scale, causal):  # the composite's nodes
    w = _weights_onnx(g, q, k, mask, scale, causal)
    return g.op("MatMul", w, v, shape=tuple(q.shape[:-1]) + (v.shape[-1],))


@_sdpa_backward.defonnx
def _(g, dy, q, k, v, mask=None, *, scale, causal, heads_inner=False, packed=False):
    # the NumPy path's math, as ONNX nodes
    w = _weights_onnx(g, q, k, mask, scale, causal)
    ws = tuple(q.shape[:-1]) + (k.shape[-2],)
    dv = g.op("MatMul", _transpose_onnx(g, w, ws), dy, shape=tuple(v.shape))
    dp = g.op("MatMul", dy, _transpose_onnx(g, v, tuple(v.shape)), shape=ws)
    rows = g.reduce("ReduceSum", g.op("Mul", dp, w, shape=ws), (len(ws) - 1,), True)
    ds = g.op("Mul", g.op("Sub", dp, rows, shape=ws), w, shape=ws)  # softmax backward
    dq = g.op("MatMul", ds, k, shape=tuple(q.shape))
    dq = g.op("Mul", dq, float(scale), shape=tuple(q.shape))
    qs = g.op("Mul", q, float(scale), shape=tuple(q.shape))
    dk = g.op("MatMul", _transpose_onnx(g, ds, ws), qs, shape=tuple(k.shape))
    grads = (dq, dk, dv)
    if (heads_inner or packed) and len(q.shape) == 4:
        grads = tuple(g.op("Transpose", t, perm=[0, 2, 1, 3]) for t in grads)
    if packed:  # (B, L, H, E) each, joined along H: (B, L, 3, H, E)
        return g.reshape(g.op("Concat", *grads, axis=2), (-1,))
    flat = [g.reshape(t, (-1,)) for t in grads]
    return g.op("Concat", *flat, axis=0)


def _fused(query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> bool:
    """True when the fused op serves the call: float32/float64 NumPy arrays of one dtype,
    equal batch dims, and a mask (bool, or float without a gradient) that broadcasts to the
    scores without widening them."""
    dt = query._data.dtype
    if dt not in _FUSED_DTYPES or key._data.dtype != dt or value._data.dtype != dt:
        return False
    if not query.ndim == key.ndim == value.ndim:
        return False
    batch = tuple(query.shape[:-2])
    if tuple(key.shape[:-2]) != batch or tuple(value.shape[:-2]) != batch:
        return False
    for t in (query, key, value) if mask is None else (query, key, value, mask):
        if type(t._data) is not np.ndarray:
            return False
    if mask is not None:
        if mask.requires_grad or mask.ndim > query.ndim:
            return False
        if mask._data.dtype != np.bool_ and mask._data.dtype.kind != "f":
            return False
        scores = batch + (query.shape[-2], key.shape[-2])
        try:
            return np.broadcast_shapes(tuple(mask.shape), scores) == scores
        except ValueError:
            return False
    return True


_FUSED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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
    if dropout_p == 0.0 and _fused(query, key, value, attn_mask):
        if attn_mask is not None and not is_causal:
            m = attn_mask
            if m._data.dtype != np.bool_ and m._data.dtype != query._data.dtype:
                m = m.to(query.dtype)
            return _sdpa(query, key, value, m, scale=float(scale), causal=False)
        return _sdpa(query, key, value, scale=float(scale), causal=bool(is_causal))
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

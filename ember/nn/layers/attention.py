"""``MultiheadAttention`` and the function under it, ``multi_head_attention_forward``.

PyTorch's arguments, parameter names (``in_proj_weight``, ``in_proj_bias``,
``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ, ``out_proj``, ``bias_k``/``bias_v``),
initialisation and mask conventions: in ``attn_mask`` and ``key_padding_mask`` a boolean
``True`` means "may *not* attend" (the opposite of ``scaled_dot_product_attention``), a float
mask is added to the scores. Without ``need_weights`` the heads go through
``scaled_dot_product_attention``; with it the weights are computed explicitly and returned
(averaged over heads unless ``average_attn_weights=False``).

Example:
    >>> import ember
    >>> from ember.nn.layers.attention import MultiheadAttention
    >>> mha = MultiheadAttention(16, 4, batch_first=True)
    >>> x = ember.randn(2, 5, 16)
    >>> out, w = mha(x, x, x)
    >>> out.shape, w.shape
    ((2, 5, 16), (2, 5, 5))
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ...errors import DTypeError, ShapeError
from ...ops.creation import empty, zeros
from ...ops.elementwise import where
from ...ops.join import cat
from ...ops.linalg import matmul
from ...ops.rearrange import pad, triu
from ...ops.reduce import mean
from ...ops.shape import broadcast_to, permute, reshape, slice_dim, squeeze, transpose, unsqueeze
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .linear import Linear

__all__ = ["MultiheadAttention"]  # multi_head_attention_forward belongs in nn.functional


class NonDynamicallyQuantizableLinear(Linear):
    """``MultiheadAttention.out_proj``: a plain :class:`Linear` under PyTorch's class name
    (so reprs match PyTorch's).

    Example:
        >>> NonDynamicallyQuantizableLinear(4, 4)
        NonDynamicallyQuantizableLinear(in_features=4, out_features=4, bias=True)
    """


_NAME = "multi_head_attention_forward"


def canonical_mask(mask: Tensor | None, name: str, dtype: Any) -> Tensor | None:
    """A boolean mask (True = masked out) as an additive float mask (-inf / 0) of ``dtype``;
    a float mask is returned as is.

    Example:
        >>> canonical_mask(ember.tensor([True, False]), "mask", ember.float32).tolist()
        [-inf, 0.0]
    """
    if mask is None:
        return None
    kind = mask._data.dtype.kind
    if kind == "b":
        return where(mask, -math.inf, zeros((), dtype=dtype, device=mask.device))
    if kind != "f":
        raise DTypeError(_NAME, f"only bool and floating types of {name} are supported")
    return mask


def _causal(L: int, S: int, like: Tensor) -> Tensor:
    return triu(zeros(L, S, dtype=like.dtype, device=like.device) - math.inf, 1)


def _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads) -> bool:
    """PyTorch's checks on the ranks; returns whether the input is batched."""
    qd, kd, vd = query.ndim, key.ndim, value.ndim
    if qd not in (2, 3):
        raise ShapeError(_NAME, f"query should be unbatched 2-D or batched 3-D, got a {qd}-D query")
    batched = qd == 3
    kind = "batched (3-D)" if batched else "unbatched (2-D)"
    if kd != qd or vd != qd:
        raise ShapeError(
            _NAME,
            f"for {kind} query, expected key and value to be {qd}-D but found {kd}-D and "
            f"{vd}-D tensors (shapes {tuple(key.shape)} and {tuple(value.shape)})",
        )
    if key_padding_mask is not None and key_padding_mask.ndim != qd - 1:
        raise ShapeError(
            _NAME,
            f"for {kind} query, expected key_padding_mask to be None or {qd - 1}-D but found "
            f"{key_padding_mask.ndim}-D tensor instead",
        )
    if attn_mask is not None and attn_mask.ndim not in (2, 3):
        raise ShapeError(
            _NAME,
            f"expected attn_mask to be None, 2-D or 3-D but found {attn_mask.ndim}-D instead",
        )
    return batched


def _project(x: Tensor, w: Tensor, b: Tensor | None, start: int, stop: int) -> Tensor:
    """``x @ w[start:stop].T + b[start:stop]``."""
    w = slice_dim(w, 0, start, stop)
    b = None if b is None else slice_dim(b, 0, start, stop)
    return F.linear(x, w, b)


def _heads(x: Tensor, num_heads: int) -> Tensor:
    """``(S, N, E) -> (N, num_heads, S, E // num_heads)``."""
    S, N, E = x.shape
    return permute(reshape(x, (S, N, num_heads, E // num_heads)), (1, 2, 0, 3))


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Tensor | None,
    in_proj_bias: Tensor | None,
    bias_k: Tensor | None,
    bias_v: Tensor | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Tensor | None,
    training: bool = True,
    key_padding_mask: Tensor | None = None,
    need_weights: bool = True,
    attn_mask: Tensor | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Tensor | None = None,
    k_proj_weight: Tensor | None = None,
    v_proj_weight: Tensor | None = None,
    static_k: Tensor | None = None,
    static_v: Tensor | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Multi-head attention on sequence-first inputs (PyTorch's function of the same name).

    ``query`` ``(L, N, E)`` (or unbatched ``(L, E)``), ``key``/``value`` ``(S, N, E_k/E_v)``;
    ``attn_mask`` ``(L, S)`` or ``(N * num_heads, L, S)``, ``key_padding_mask`` ``(N, S)``
    (bool True = ignore, float = added). ``is_causal`` is a hint that ``attn_mask`` is the
    causal mask (when no mask is given, the causal mask is made here). Returns
    ``(output (L, N, E), weights or None)``.

    Example:
        >>> E = 4
        >>> x = ember.randn(3, 2, E)
        >>> w, b = ember.randn(3 * E, E), ember.zeros(3 * E)
        >>> out, attn = multi_head_attention_forward(
        ...     x, x, x, E, 2, w, b, None, None, False, 0.0, ember.randn(E, E), None)
        >>> out.shape, attn.shape
        ((3, 2, 4), (2, 3, 3))
    """
    batched = _check_shapes(query, key, value, key_padding_mask, attn_mask, num_heads)
    if not batched:
        same_kv = key is value
        same_qk = query is key
        query = unsqueeze(query, 1)
        key = query if same_qk else unsqueeze(key, 1)
        value = key if same_kv else unsqueeze(value, 1)
        if key_padding_mask is not None:
            key_padding_mask = unsqueeze(key_padding_mask, 0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if query._data.dtype.kind != "f":
        raise DTypeError(_NAME, f"expected a floating point query, got {query.dtype}")
    dtype = query.dtype
    if (
        key_padding_mask is not None
        and attn_mask is not None
        and key_padding_mask._data.dtype != attn_mask._data.dtype
    ):
        warnings.warn(
            "Support for mismatched key_padding_mask and attn_mask is deprecated. Use same "
            "type for both instead.",
            stacklevel=2,
        )
    key_padding_mask = canonical_mask(key_padding_mask, "key_padding_mask", dtype)
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # the hint: scaled_dot_product_attention makes the causal mask
    else:
        if is_causal and attn_mask is None:
            attn_mask = _causal(tgt_len, src_len, query)
        attn_mask = canonical_mask(attn_mask, "attn_mask", dtype)
        is_causal = False
    if embed_dim != embed_dim_to_check:
        raise ShapeError(
            _NAME,
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim} "
            f"(query of shape {tuple(query.shape)})",
        )
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise ShapeError(_NAME, f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if tuple(key.shape[:2]) != tuple(value.shape[:2]) or (
        not use_separate_proj_weight and tuple(key.shape) != tuple(value.shape)
    ):
        raise ShapeError(
            _NAME, f"key shape {tuple(key.shape)} does not match value shape {tuple(value.shape)}"
        )
    if key.shape[1] != bsz:
        raise ShapeError(
            _NAME,
            f"query {tuple(query.shape)} and key {tuple(key.shape)} have different batch sizes",
        )

    # -- input projections ---------------------------------------------------------------
    E = embed_dim
    if not use_separate_proj_weight:
        if in_proj_weight is None:
            raise ValueError("use_separate_proj_weight is False but in_proj_weight is None")
        w, b = in_proj_weight, in_proj_bias
        if query is key and key is value:  # self-attention: one product
            qkv = F.linear(query, w, b)
            q, k, v = (slice_dim(qkv, 2, i * E, (i + 1) * E) for i in range(3))
        elif key is value:
            q = _project(query, w, b, 0, E)
            kv = _project(key, w, b, E, 3 * E)
            k, v = slice_dim(kv, 2, 0, E), slice_dim(kv, 2, E, 2 * E)
        else:
            q = _project(query, w, b, 0, E)
            k = _project(key, w, b, E, 2 * E)
            v = _project(value, w, b, 2 * E, 3 * E)
    else:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise ValueError("use_separate_proj_weight is True but a q/k/v_proj_weight is None")
        bq = bk = bv = None
        if in_proj_bias is not None:
            bq, bk, bv = (slice_dim(in_proj_bias, 0, i * E, (i + 1) * E) for i in range(3))
        q = F.linear(query, q_proj_weight, bq)
        k = F.linear(key, k_proj_weight, bk)
        v = F.linear(value, v_proj_weight, bv)

    # -- masks ---------------------------------------------------------------------------
    if attn_mask is not None:
        want = (tgt_len, src_len) if attn_mask.ndim == 2 else (bsz * num_heads, tgt_len, src_len)
        if tuple(attn_mask.shape) != want:
            raise ShapeError(
                _NAME,
                f"the shape of the {attn_mask.ndim}-D attn_mask is {tuple(attn_mask.shape)}, "
                f"but should be {want}",
            )
    if (bias_k is None) != (bias_v is None):
        raise ValueError("bias_k and bias_v must be both set or both None")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise ValueError("bias cannot be added to static key or value")
        k = cat([k, broadcast_to(bias_k, (1, bsz, E))])
        v = cat([v, broadcast_to(bias_v, (1, bsz, E))])
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    q = _heads(q, num_heads)  # (N, H, L, hd)
    k = _heads(k, num_heads) if static_k is None else _static(static_k, bsz, num_heads, "k")
    v = _heads(v, num_heads) if static_v is None else _static(static_v, bsz, num_heads, "v")
    if add_zero_attn:
        k = cat([k, zeros(bsz, num_heads, 1, head_dim, dtype=k.dtype, device=k.device)], 2)
        v = cat([v, zeros(bsz, num_heads, 1, head_dim, dtype=v.dtype, device=v.device)], 2)
        attn_mask = None if attn_mask is None else pad(attn_mask, (0, 1))
        key_padding_mask = None if key_padding_mask is None else pad(key_padding_mask, (0, 1))
    src_len = k.shape[2]
    if attn_mask is not None and attn_mask.ndim == 3:
        attn_mask = reshape(attn_mask, (bsz, num_heads, tgt_len, src_len))
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise ShapeError(
                _NAME,
                f"expected key_padding_mask of shape {(bsz, src_len)}, got "
                f"{tuple(key_padding_mask.shape)}",
            )
        kpm = reshape(key_padding_mask, (bsz, 1, 1, src_len))
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0

    # -- attention -----------------------------------------------------------------------
    weights = None
    if need_weights:
        scores = matmul(q * math.sqrt(1.0 / head_dim), transpose(k, -2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = F.softmax(scores, dim=-1)
        if dropout_p > 0.0:
            weights = F.dropout(weights, p=dropout_p)
        out = matmul(weights, v)
        if average_attn_weights:
            weights = mean(weights, 1)
    else:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal)
    out = reshape(permute(out, (2, 0, 1, 3)), (tgt_len, bsz, embed_dim))
    out = F.linear(out, out_proj_weight, out_proj_bias)
    if not batched:
        out = squeeze(out, 1)
        weights = None if weights is None else squeeze(weights, 0)
    return out, weights


def _static(t: Tensor, bsz: int, num_heads: int, which: str) -> Tensor:
    """``static_k``/``static_v`` ``(N * H, S, hd)`` as ``(N, H, S, hd)``."""
    if t.ndim != 3 or t.shape[0] != bsz * num_heads:
        raise ShapeError(
            _NAME,
            f"expecting static_{which} of shape ({bsz * num_heads}, S, head_dim), got "
            f"{tuple(t.shape)}",
        )
    return reshape(t, (bsz, num_heads) + tuple(t.shape[1:]))


class MultiheadAttention(Module):
    """Attention with ``num_heads`` heads: project query, key and value, attend per head,
    concatenate the heads and project with ``out_proj``.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(attn_output, attn_weights)``
    (``None`` weights unless ``need_weights``). Inputs are ``(L, N, E)``, ``(N, L, E)`` with
    ``batch_first``, or unbatched ``(L, E)``. In masks a boolean True means "masked out".

    Example:
        >>> mha = MultiheadAttention(8, 2, kdim=3, vdim=5)
        >>> q, k, v = ember.randn(4, 1, 8), ember.randn(6, 1, 3), ember.randn(6, 1, 5)
        >>> out, w = mha(q, k, v, average_attn_weights=False)
        >>> out.shape, w.shape
        ((4, 1, 8), (1, 2, 4, 6))
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                f"and num_heads={num_heads} instead"
            )
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self.head_dim * num_heads != embed_dim:
            raise ValueError(
                f"embed_dim must be divisible by num_heads, got {embed_dim} and {num_heads}"
            )
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, **kw))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, **kw))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, **kw))
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, **kw))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, **kw))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(embed_dim, embed_dim, bias=bias, **kw)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, **kw))
            self.bias_v = Parameter(empty(1, 1, embed_dim, **kw))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero biases, Xavier-normal
        ``bias_k``/``bias_v`` (``out_proj.weight`` keeps ``Linear``'s)."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        batched = query.ndim == 3
        if self.batch_first and batched:
            if key is value:
                if query is key:
                    query = key = value = transpose(query, 1, 0)
                else:
                    query, key = transpose(query, 1, 0), transpose(key, 1, 0)
                    value = key
            else:
                query, key, value = (transpose(x, 1, 0) for x in (query, key, value))
        out, weights = multi_head_attention_forward(
            query, key, value, self.embed_dim, self.num_heads,
            self.in_proj_weight, self.in_proj_bias, self.bias_k, self.bias_v,
            self.add_zero_attn, self.dropout, self.out_proj.weight, self.out_proj.bias,
            training=self.training, key_padding_mask=key_padding_mask,
            need_weights=need_weights, attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight, k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight, average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )  # fmt: skip
        if self.batch_first and batched:
            out = transpose(out, 1, 0)
        return out, weights

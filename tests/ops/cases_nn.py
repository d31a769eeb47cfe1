"""Table rows for the neural-network functions (``ember.nn.functional`` minus conv/pool):
softmax family, normalization, linear/bilinear, embedding/one_hot and attention. The
losses and distances are in ``cases_nn_loss.py``.

Every ``ref`` is an independent NumPy definition (float64, loops where that is clearer);
nothing is shared with ember's implementation. Dropout is random and is tested in
``tests/nn/test_functional.py``.
"""

import numpy as np

from .optable import B, C, Case, F, I, V, cases


# -- references ----------------------------------------------------------------------------
def _softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(a, axis):
    z = a - a.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def ref_softmax(a, dim):
    if a.size == 0:
        return a.copy()
    if a.ndim == 0:
        return np.ones_like(a)
    return _softmax(a.astype(np.float64), dim).astype(a.dtype)


def ref_log_softmax(a, dim):
    if a.size == 0:
        return a.copy()
    if a.ndim == 0:
        return np.zeros_like(a)
    return _log_softmax(a.astype(np.float64), dim).astype(a.dtype)


def ref_layer_norm(x, k, w=None, b=None, eps=1e-5):
    xd = x.astype(np.float64)
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (xd - xd.mean(axes, keepdims=True)) / np.sqrt(xd.var(axes, keepdims=True) + eps)
    if w is not None:
        y = y * w
    if b is not None:
        y = y + b
    return y.astype(x.dtype)


def ref_batch_norm_train(x, w=None, b=None, eps=1e-5):
    xd = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    y = (xd - xd.mean(axes, keepdims=True)) / np.sqrt(xd.var(axes, keepdims=True) + eps)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    if w is not None:
        y = y * w.reshape(shape)
    if b is not None:
        y = y + b.reshape(shape)
    return y.astype(x.dtype)


def ref_batch_norm_eval(x, rm, rv, w, b, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    y = (x - rm.reshape(shape)) / np.sqrt(rv.reshape(shape) + eps)
    return (y * w.reshape(shape) + b.reshape(shape)).astype(x.dtype)


def ref_group_norm(x, groups, w, b, eps=1e-5):
    n, c = x.shape[:2]
    g = x.astype(np.float64).reshape(n, groups, -1)
    y = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    shape = (1, c) + (1,) * (x.ndim - 2)
    return (y.reshape(x.shape) * w.reshape(shape) + b.reshape(shape)).astype(x.dtype)


def ref_instance_norm(x, eps=1e-5):
    axes = tuple(range(2, x.ndim))
    xd = x.astype(np.float64)
    y = (xd - xd.mean(axes, keepdims=True)) / np.sqrt(xd.var(axes, keepdims=True) + eps)
    return y.astype(x.dtype)


def ref_rms_norm(x, k, w, eps):
    axes = tuple(range(x.ndim - k, x.ndim))
    xd = x.astype(np.float64)
    return (xd / np.sqrt((xd * xd).mean(axes, keepdims=True) + eps) * w).astype(x.dtype)


def ref_normalize(x, p, dim, eps=1e-12):
    n = (np.abs(x.astype(np.float64)) ** p).sum(dim, keepdims=True) ** (1 / p)
    return (x / np.maximum(n, eps)).astype(x.dtype)


def ref_linear(x, w, b=None):
    y = x.astype(np.float64) @ w.T
    return (y if b is None else y + b).astype(x.dtype)


def ref_bilinear(x1, x2, w, b):
    return (np.einsum("...i,oij,...j->...o", x1, w, x2) + b).astype(x1.dtype)


def ref_embedding(w, idx):
    return w[idx]


def ref_one_hot(t, n):
    return (t[..., None] == np.arange(n)).astype(np.int64)


def ref_attention(q, k, v, mask=None, causal=False, scale=None):
    """The definition, with PyTorch's rule that a fully masked row gives zeros."""
    qd, kd, vd = (a.astype(np.float64) for a in (q, k, v))
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = qd @ np.swapaxes(kd, -1, -2) * scale
    L, S = s.shape[-2:]
    allowed = np.ones((L, S), bool)
    if causal:
        allowed = np.tril(allowed)
    if mask is not None and mask.dtype == bool:
        allowed = allowed & mask
    elif mask is not None:
        s = s + mask
    s = np.where(allowed, s, -np.inf)
    m = s.max(-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.where(allowed, np.exp(s - m), 0)
    tot = e.sum(-1, keepdims=True)
    p = e / np.where(tot == 0, 1, tot)
    return (p @ vd).astype(q.dtype)


MASK = [[True, False, True, True], [False, False, False, False], [True, True, True, False]]
BIG = [[1e4, -1e4, 0.0], [0.0, 0.0, -1e4], [-1e4, -1e4, -1e4]]

CASES = cases(
    # -- softmax family -------------------------------------------------------------------
    Case(
        "softmax_lastdim",
        lambda m, a: m.nn.functional.softmax(a, dim=-1),
        [F(3, 4)],
        ref=lambda a: ref_softmax(a, -1),
        grad2=True,
    ),
    Case(
        "softmax_dim0_noncontig",
        lambda m, a: m.nn.functional.softmax(a, dim=0),
        [F(4, 3, noncontig=True)],
        ref=lambda a: ref_softmax(a, 0),
    ),
    Case(
        "softmax_middle_dim",
        lambda m, a: m.nn.functional.softmax(a, 1),
        [F(2, 3, 2)],
        ref=lambda a: ref_softmax(a, 1),
    ),
    Case(
        "softmax_size1_dim",
        lambda m, a: m.nn.functional.softmax(a, -1),
        [F(3, 1)],
        ref=lambda a: ref_softmax(a, -1),
    ),
    Case(
        "softmax_size0",
        lambda m, a: m.nn.functional.softmax(a, -1),
        [F(0, 3)],
        ref=lambda a: ref_softmax(a, -1),
    ),
    Case("softmax_0d", lambda m, a: m.nn.functional.softmax(a, 0), [F()], ref=np.ones_like),
    Case(
        "softmax_large_logits",
        lambda m, a: m.nn.functional.softmax(a, -1),
        [V(BIG, grad=True)],
        ref=lambda a: ref_softmax(a, -1),
    ),
    Case(
        "softmax_dtype_arg",
        lambda m, a: m.nn.functional.softmax(a, -1, dtype=m.float64),
        [F(2, 3)],
        ref=lambda a: _softmax(a.astype(np.float64), -1),
    ),
    Case(
        "log_softmax_lastdim",
        lambda m, a: m.nn.functional.log_softmax(a, dim=-1),
        [F(3, 4)],
        ref=lambda a: ref_log_softmax(a, -1),
        grad2=True,
    ),
    Case(
        "log_softmax_dim0_noncontig",
        lambda m, a: m.nn.functional.log_softmax(a, dim=-2),
        [F(4, 3, noncontig=True)],
        ref=lambda a: ref_log_softmax(a, 0),
        grad2=True,
    ),
    Case(
        "log_softmax_large_logits",
        lambda m, a: m.nn.functional.log_softmax(a, 1),
        [V(BIG, grad=True)],
        ref=lambda a: ref_log_softmax(a, 1),
    ),
    Case(
        "log_softmax_size0",
        lambda m, a: m.nn.functional.log_softmax(a, 0),
        [F(0, 2)],
        ref=lambda a: ref_log_softmax(a, 0),
    ),
    Case(
        "softmin",
        lambda m, a: m.nn.functional.softmin(a, 1),
        [F(2, 4)],
        ref=lambda a: ref_softmax(-a, 1),
    ),
    # -- normalization --------------------------------------------------------------------
    Case(
        "layer_norm_affine",
        lambda m, x, w, b: m.nn.functional.layer_norm(x, (4,), w, b),
        [F(3, 4), F(4), F(4)],
        ref=lambda x, w, b: ref_layer_norm(x, 1, w, b),
        grad2=True,
    ),
    Case(
        "layer_norm_2d_shape_noncontig",
        lambda m, x, w: m.nn.functional.layer_norm(x, (3, 4), w, eps=1e-3),
        [F(2, 3, 4, noncontig=True), F(3, 4)],
        ref=lambda x, w: ref_layer_norm(x, 2, w, eps=1e-3),
        grad2=True,
    ),
    Case(
        "layer_norm_plain",
        lambda m, x: m.nn.functional.layer_norm(x, [5]),
        [F(2, 2, 5)],
        ref=lambda x: ref_layer_norm(x, 1),
    ),
    Case(
        "layer_norm_batch0",
        lambda m, x: m.nn.functional.layer_norm(x, [3]),
        [F(0, 3)],
        ref=lambda x: ref_layer_norm(x, 1),
    ),
    Case(
        "batch_norm_train_2d",
        lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, training=True),
        [F(5, 3), F(3), F(3)],
        ref=ref_batch_norm_train,
        grad2=True,
    ),
    Case(
        "batch_norm_train_4d",
        lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=1e-3),
        [F(2, 3, 2, 2), F(3), F(3)],
        ref=lambda x, w, b: ref_batch_norm_train(x, w, b, eps=1e-3),
    ),
    Case(
        "batch_norm_train_3d_noncontig",
        lambda m, x, w, b: m.nn.functional.batch_norm(x, None, None, w, b, training=True),
        [F(4, 3, 5, noncontig=True), F(3), F(3)],
        ref=ref_batch_norm_train,
        grad2=True,
    ),
    Case(
        "group_norm_4d_odd",
        lambda m, x, w, b: m.nn.functional.group_norm(x, 3, w, b),
        [F(2, 6, 3, 1), F(6), F(6)],
        ref=lambda x, w, b: ref_group_norm(x, 3, w, b),
        grad2=True,
    ),
    Case(
        "batch_norm_eval",
        lambda m, x, rm, rv, w, b: m.nn.functional.batch_norm(x, rm, rv, w, b, training=False),
        [F(4, 3, 2), C(3), C(3, low=0.5, high=2.0), F(3), F(3)],
        ref=ref_batch_norm_eval,
        grad2=True,
    ),
    Case(
        "group_norm",
        lambda m, x, w, b: m.nn.functional.group_norm(x, 2, w, b),
        [F(2, 4, 3), F(4), F(4)],
        ref=lambda x, w, b: ref_group_norm(x, 2, w, b),
        grad2=True,
    ),
    Case(
        "group_norm_4d_one_group",
        lambda m, x, w, b: m.nn.functional.group_norm(x, 1, w, b, eps=1e-4),
        [F(2, 3, 2, 2), F(3), F(3)],
        ref=lambda x, w, b: ref_group_norm(x, 1, w, b, eps=1e-4),
    ),
    Case(
        "instance_norm",
        lambda m, x: m.nn.functional.instance_norm(x),
        [F(2, 3, 4)],
        ref=ref_instance_norm,
    ),
    Case(
        "rms_norm",
        lambda m, x, w: m.nn.functional.rms_norm(x, (4,), w, eps=1e-6),
        [F(3, 4), F(4)],
        ref=lambda x, w: ref_rms_norm(x, 1, w, 1e-6),
        grad2=True,
    ),
    Case(
        "normalize_p2",
        lambda m, x: m.nn.functional.normalize(x, dim=1),
        [F(3, 4)],
        ref=lambda x: ref_normalize(x, 2, 1),
    ),
    Case(
        "normalize_p1_lastdim",
        lambda m, x: m.nn.functional.normalize(x, p=1.0, dim=-1),
        [F(2, 3, 4)],
        ref=lambda x: ref_normalize(x, 1, -1),
    ),
    # -- linear / bilinear ----------------------------------------------------------------
    Case(
        "linear",
        lambda m, x, w, b: m.nn.functional.linear(x, w, b),
        [F(3, 4), F(5, 4), F(5)],
        ref=ref_linear,
        grad2=True,
    ),
    Case(  # >= kernels.gemm.MIN_ROWS rows: ember's GEMM, bias fused; the bias gradient
        "linear_tall_batch",  # is a matrix-vector product (>= BIAS_GEMV_ROWS rows)
        lambda m, x, w, b: m.nn.functional.linear(x, w, b),
        [F(2, 515, 3), F(2, 3), F(2)],
        ref=ref_linear,
        grad2=True,
    ),
    Case(
        "linear_batched_no_bias",
        lambda m, x, w: m.nn.functional.linear(x, w),
        [F(2, 3, 4), F(2, 4)],
        ref=ref_linear,
    ),
    Case(
        "linear_1d_input",
        lambda m, x, w, b: m.nn.functional.linear(x, w, b),
        [F(4), F(3, 4), F(3)],
        ref=ref_linear,
    ),
    Case(
        "linear_noncontig_weight",
        lambda m, x, w, b: m.nn.functional.linear(x, w, b),
        [F(2, 4), F(3, 4, noncontig=True), F(3)],
        ref=ref_linear,
    ),
    Case(
        "linear_empty_batch",
        lambda m, x, w, b: m.nn.functional.linear(x, w, b),
        [F(0, 4), F(3, 4), F(3)],
        ref=ref_linear,
    ),
    Case(
        "bilinear",
        lambda m, x1, x2, w, b: m.nn.functional.bilinear(x1, x2, w, b),
        [F(3, 2), F(3, 4), F(5, 2, 4), F(5)],
        ref=ref_bilinear,
    ),
    # -- embedding / one_hot --------------------------------------------------------------
    Case(
        "embedding",
        lambda m, w, i: m.nn.functional.embedding(i, w),
        [F(6, 3), V([[0, 2, 2], [5, 1, 2]])],
        ref=ref_embedding,
        grad2=True,
    ),
    Case(
        "embedding_padding_idx_forward",
        lambda m, w, i: m.nn.functional.embedding(i, w, padding_idx=2),
        [F(6, 3), V([0, 2, 2, 5])],
        ref=ref_embedding,
        grad=False,
    ),
    Case(
        "embedding_scalar_index",
        lambda m, w, i: m.nn.functional.embedding(i, w),
        [F(4, 2), V(3)],
        ref=ref_embedding,
    ),
    Case(
        "one_hot",
        lambda m, t: m.nn.functional.one_hot(t, 5),
        [I(2, 3, high=5)],
        ref=lambda t: ref_one_hot(t, 5),
        grad=False,
    ),
    Case(
        "one_hot_inferred",
        lambda m, t: m.nn.functional.one_hot(t),
        [V([0, 3, 1])],
        ref=lambda t: ref_one_hot(t, 4),
        grad=False,
    ),
    # -- attention ------------------------------------------------------------------------
    Case(
        "sdpa",
        lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v),
        [F(2, 3, 4), F(2, 5, 4), F(2, 5, 3)],
        ref=ref_attention,
        grad2=True,
    ),
    Case(
        "sdpa_causal_scale",
        lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(
            q, k, v, is_causal=True, scale=0.3
        ),
        [F(1, 2, 4, 3), F(1, 2, 4, 3), F(1, 2, 4, 3)],
        ref=lambda q, k, v: ref_attention(q, k, v, causal=True, scale=0.3),
    ),
    Case(
        "sdpa_bool_mask_fully_masked_row",
        lambda m, q, k, v, mask: m.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        ),
        [F(2, 3, 2), F(2, 4, 2), F(2, 4, 2), V(MASK)],
        ref=lambda q, k, v, mask: ref_attention(q, k, v, mask),
    ),
    Case(
        "sdpa_random_bool_mask",
        lambda m, q, k, v, mask: m.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        ),
        [F(2, 2, 3, 2), F(2, 2, 4, 2), F(2, 2, 4, 2), B(2, 1, 3, 4)],
        ref=lambda q, k, v, mask: ref_attention(q, k, v, mask),
    ),
    Case(
        "sdpa_float_mask",
        lambda m, q, k, v, mask: m.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        ),
        [F(2, 3, 2), F(2, 4, 2), F(2, 4, 2), F(3, 4)],
        ref=lambda q, k, v, mask: ref_attention(q, k, v, mask),
        grad2=True,
    ),
    Case(
        "sdpa_causal_noncontig_grad2",
        lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
        [F(3, 5, 2, noncontig=True), F(3, 5, 2, noncontig=True), F(3, 5, 2, noncontig=True)],
        ref=lambda q, k, v: ref_attention(q, k, v, causal=True),
        grad2=True,
    ),
    Case(
        "sdpa_constant_float_mask_grad2",
        lambda m, q, k, v, mask: m.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask
        ),
        [F(2, 3, 2), F(2, 4, 2), F(2, 4, 3), C(1, 3, 4)],
        ref=lambda q, k, v, mask: ref_attention(q, k, v, mask),
        grad2=True,
    ),
    Case(
        "sdpa_gqa",
        lambda m, q, k, v: m.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True),
        [F(1, 4, 2, 3), F(1, 2, 3, 3), F(1, 2, 3, 2)],
        ref=lambda q, k, v: ref_attention(q, np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)),
    ),
    Case(  # a GPT block's heads: strided views of one qkv array, merged back after attention
        "sdpa_gpt_heads",
        lambda m, x: (
            m.nn.functional.scaled_dot_product_attention(
                *(a.reshape(2, 5, 3, 2).transpose(1, 2) for a in x.split(6, dim=-1)), is_causal=True
            )
            .transpose(1, 2)
            .reshape(2, 5, 6)
        ),
        [F(2, 5, 18)],
        ref=lambda x: np.swapaxes(
            ref_attention(
                *(np.swapaxes(a.reshape(2, 5, 3, 2), 1, 2) for a in np.split(x, 3, -1)),
                causal=True,
            ),
            1,
            2,
        ).reshape(2, 5, 6),
    ),
)

"""Table rows for the losses and distances of ``ember.nn.functional``: cross_entropy,
nll_loss, the elementwise losses (mse, l1, smooth_l1, huber, binary cross entropy, kl_div),
the margin / likelihood losses and cosine_similarity / pairwise_distance.

Every ``ref`` is an independent NumPy definition (float64, loops where that is clearer).
"""

import numpy as np

from .cases_nn import BIG, _log_softmax
from .optable import C, Case, F, I, V, cases


def _reduce(per, reduction, denom):
    if reduction == "none":
        return per
    if reduction == "sum":
        return np.array(per.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.array(per.sum() / denom)


def ref_cross_entropy(x, t, w=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Per-sample definition: ``-sum_c q_c log p_c`` with PyTorch's weighting/smoothing."""
    dtype = x.dtype
    x = x.astype(np.float64)
    unbatched = x.ndim == 1
    if unbatched:
        x, t = x[None], t[None]
    n_classes = x.shape[1]
    lp = np.moveaxis(_log_softmax(x, 1), 1, -1).reshape(-1, n_classes)
    wv = np.ones(n_classes) if w is None else w.astype(np.float64)
    if t.dtype.kind == "f":
        q = np.moveaxis(t, 1, -1).reshape(-1, n_classes) * (1 - label_smoothing)
        q = q + label_smoothing / n_classes
        per = -(lp * q * wv).sum(-1)
        out_shape, denom = t.shape[:1] + t.shape[2:], per.size
    else:
        tf = t.reshape(-1)
        per, denom = np.zeros(tf.size), 0.0
        for i, c in enumerate(tf):
            if c == ignore_index:
                continue
            per[i] = -(1 - label_smoothing) * wv[c] * lp[i, c]
            per[i] -= label_smoothing / n_classes * (wv * lp[i]).sum()
            denom += wv[c]
        out_shape = t.shape
    out = _reduce(per.reshape(() if unbatched else out_shape), reduction, denom)
    return out.astype(dtype)


def ref_nll(x, t, w=None, ignore_index=-100, reduction="mean"):
    dtype, shape = x.dtype, t.shape
    if x.ndim == 1:
        x, t = x[None], t[None]
    n_classes = x.shape[1]
    lp = np.moveaxis(x.astype(np.float64), 1, -1).reshape(-1, n_classes)
    wv = np.ones(n_classes) if w is None else w
    tf = t.reshape(-1)
    per, denom = np.zeros(tf.size), 0.0
    for i, c in enumerate(tf):
        if c != ignore_index:
            per[i] = -wv[c] * lp[i, c]
            denom += wv[c]
    return _reduce(per.reshape(shape), reduction, denom).astype(dtype)


def _red(f, reduction="mean"):
    def ref(*arrays):
        per = f(*[a.astype(np.float64) for a in arrays])
        return _reduce(per, reduction, per.size).astype(arrays[0].dtype)

    return ref


def _smooth_l1(a, b, beta):
    d = np.abs(a - b)
    return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def _huber(a, b, delta):
    d = np.abs(a - b)
    return np.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))


def _bce(x, t, w=None):
    with np.errstate(divide="ignore"):
        per = -(t * np.maximum(np.log(x), -100) + (1 - t) * np.maximum(np.log(1 - x), -100))
    return per if w is None else per * w


def _bce_logits(x, t, w=None, pw=None):
    pw = 1 if pw is None else pw
    # the textbook form, in float64 (fine for the moderate logits used with a ref)
    per = -(pw * t * np.log(1 / (1 + np.exp(-x))) + (1 - t) * np.log(1 - 1 / (1 + np.exp(-x))))
    return per if w is None else per * w


def ref_cosine_similarity(a, b, dim=1, eps=1e-8):
    a, b = np.broadcast_arrays(a.astype(np.float64), b.astype(np.float64))
    na = np.maximum(np.sqrt((a * a).sum(dim, keepdims=True)), eps)
    nb = np.maximum(np.sqrt((b * b).sum(dim, keepdims=True)), eps)
    return ((a / na) * (b / nb)).sum(dim)


def ref_pairwise_distance(a, b, p=2.0, eps=1e-6):
    return (np.abs(a - b + eps) ** p).sum(-1) ** (1 / p)


def ref_gaussian_nll(x, t, v, eps=1e-6, full=False):
    v = np.maximum(v, eps)
    per = 0.5 * (np.log(v) + (x - t) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0)
    return np.array(per.mean())


def ref_poisson_nll_full(x, t):
    per = np.exp(x) - t * x
    with np.errstate(divide="ignore", invalid="ignore"):
        st = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
    return np.array((per + np.where(t > 1, st, 0)).mean())


CE_T = [1, -100, 4, 0]

CASES = cases(
    # -- cross entropy / nll --------------------------------------------------------------
    Case(
        "cross_entropy_index",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t),
        [F(4, 5), I(4, high=5)],
        ref=ref_cross_entropy,
        grad2=True,
    ),
    Case(
        "cross_entropy_ignore_index",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t),
        [F(4, 5), V(CE_T)],
        ref=ref_cross_entropy,
    ),
    Case(
        "cross_entropy_custom_ignore_sum",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, ignore_index=2, reduction="sum"),
        [F(5, 3), V([2, 0, 1, 2, 1])],
        ref=lambda x, t: ref_cross_entropy(x, t, ignore_index=2, reduction="sum"),
    ),
    Case(
        "cross_entropy_weight_sum",
        lambda m, x, t, w: m.nn.functional.cross_entropy(x, t, weight=w, reduction="sum"),
        [F(4, 5), V(CE_T), C(5, low=0.5, high=2.0)],
        ref=lambda x, t, w: ref_cross_entropy(x, t, w, reduction="sum"),
        grad2=True,
    ),
    Case(
        "cross_entropy_weight_smoothing_mean",
        lambda m, x, t, w: m.nn.functional.cross_entropy(x, t, weight=w, label_smoothing=0.2),
        [F(4, 5), V(CE_T), C(5, low=0.5, high=2.0)],
        ref=lambda x, t, w: ref_cross_entropy(x, t, w, label_smoothing=0.2),
        grad2=True,
    ),
    Case(
        "cross_entropy_smoothing_none",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none", label_smoothing=0.1),
        [F(4, 5), V(CE_T)],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="none", label_smoothing=0.1),
    ),
    Case(
        "cross_entropy_nd_none",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"),
        [F(2, 3, 4), I(2, 4, high=3)],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="none"),
    ),
    Case(
        "cross_entropy_nd_mean_smoothing",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, label_smoothing=0.3),
        [F(2, 3, 2, 2), I(2, 2, 2, high=3)],
        ref=lambda x, t: ref_cross_entropy(x, t, label_smoothing=0.3),
        grad2=True,
    ),
    Case(
        "cross_entropy_probs",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, label_smoothing=0.2),
        [F(3, 4), F(3, 4, low=0.0, high=1.0)],
        ref=lambda x, t: ref_cross_entropy(x, t, label_smoothing=0.2),
        grad2=True,
    ),
    Case(
        "cross_entropy_probs_weight_none",
        lambda m, x, t, w: m.nn.functional.cross_entropy(x, t, weight=w, reduction="none"),
        [F(3, 4), F(3, 4, low=0.0, high=1.0), C(4, low=0.5, high=2.0)],
        ref=lambda x, t, w: ref_cross_entropy(x, t, w, reduction="none"),
        grad2=True,
    ),
    Case(
        "cross_entropy_probs_nd_sum",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="sum"),
        [F(2, 3, 2), F(2, 3, 2, low=0.0, high=1.0)],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="sum"),
    ),
    Case(
        "cross_entropy_unbatched",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t),
        [F(5), V(3)],
        ref=ref_cross_entropy,
    ),
    Case(
        "cross_entropy_unbatched_none",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"),
        [F(5), V(1)],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="none"),
    ),
    Case(
        "cross_entropy_noncontig",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t),
        [F(4, 3, noncontig=True), I(4, high=3)],
        ref=ref_cross_entropy,
    ),
    Case(
        "cross_entropy_large_logits",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="none"),
        [V(BIG, grad=True), V([1, 2, 0])],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="none"),
    ),
    Case(
        "cross_entropy_empty_sum",
        lambda m, x, t: m.nn.functional.cross_entropy(x, t, reduction="sum"),
        [F(0, 3), I(0, high=3)],
        ref=lambda x, t: ref_cross_entropy(x, t, reduction="sum"),
    ),
    Case(
        "nll_loss_weight_ignore",
        lambda m, x, t, w: m.nn.functional.nll_loss(x, t, weight=w),
        [F(4, 5), V(CE_T), C(5, low=0.5, high=2.0)],
        ref=ref_nll,
        grad2=True,
    ),
    Case(
        "nll_loss_nd_none",
        lambda m, x, t: m.nn.functional.nll_loss(x, t, reduction="none"),
        [F(2, 3, 4), I(2, 4, high=3)],
        ref=lambda x, t: ref_nll(x, t, reduction="none"),
    ),
    Case(
        "nll_loss_unbatched_sum",
        lambda m, x, t: m.nn.functional.nll_loss(x, t, reduction="sum"),
        [F(4), V(2)],
        ref=lambda x, t: ref_nll(x, t, reduction="sum"),
    ),
    Case(
        "nll_after_log_softmax",
        lambda m, x, t: m.nn.functional.nll_loss(m.nn.functional.log_softmax(x, 1), t),
        [F(3, 4), I(3, high=4)],
        ref=lambda x, t: ref_cross_entropy(x, t),
        grad2=True,
    ),
    # -- elementwise losses ---------------------------------------------------------------
    Case(
        "mse_loss",
        lambda m, a, b: m.nn.functional.mse_loss(a, b),
        [F(3, 4), F(3, 4)],
        ref=_red(lambda a, b: (a - b) ** 2),
        grad2=True,
    ),
    Case(
        "mse_loss_none_noncontig",
        lambda m, a, b: m.nn.functional.mse_loss(a, b, reduction="none"),
        [F(3, 4, noncontig=True), F(3, 4)],
        ref=_red(lambda a, b: (a - b) ** 2, "none"),
    ),
    Case(
        "mse_loss_weight",
        lambda m, a, b, w: m.nn.functional.mse_loss(a, b, weight=w),
        [F(3, 4), F(3, 4), C(3, 4, low=0.1, high=1.0)],
        ref=lambda a, b, w: np.array(((a - b) ** 2 * w).sum() / w.sum()),
    ),
    Case(
        "mse_loss_size0",
        lambda m, a, b: m.nn.functional.mse_loss(a, b, reduction="sum"),
        [F(0, 2), F(0, 2)],
        ref=_red(lambda a, b: (a - b) ** 2, "sum"),
    ),
    Case(
        "l1_loss_sum",
        lambda m, a, b: m.nn.functional.l1_loss(a, b, reduction="sum"),
        [F(3, 4), F(3, 4)],
        ref=_red(lambda a, b: np.abs(a - b), "sum"),
    ),
    Case(
        "smooth_l1_loss_beta",
        lambda m, a, b: m.nn.functional.smooth_l1_loss(a, b, beta=0.5),
        [F(4, 5), F(4, 5)],
        ref=_red(lambda a, b: _smooth_l1(a, b, 0.5)),
        grad2=True,
    ),
    Case(
        "smooth_l1_loss_beta0_none",
        lambda m, a, b: m.nn.functional.smooth_l1_loss(a, b, reduction="none", beta=0.0),
        [F(3, 4), F(3, 4)],
        ref=_red(lambda a, b: np.abs(a - b), "none"),
    ),
    Case(
        "huber_loss_delta",
        lambda m, a, b: m.nn.functional.huber_loss(a, b, delta=0.7),
        [F(4, 5), F(4, 5)],
        ref=_red(lambda a, b: _huber(a, b, 0.7)),
        grad2=True,
    ),
    Case(
        "binary_cross_entropy",
        lambda m, x, t: m.nn.functional.binary_cross_entropy(x, t),
        [F(3, 4, low=0.05, high=0.95), F(3, 4, low=0.0, high=1.0)],
        ref=_red(_bce),
        grad2=True,
    ),
    Case(
        "binary_cross_entropy_weight_none",
        lambda m, x, t, w: m.nn.functional.binary_cross_entropy(x, t, w, reduction="none"),
        [F(3, 4, low=0.05, high=0.95), C(3, 4, low=0.0, high=1.0), C(4, low=0.5, high=2)],
        ref=lambda x, t, w: _bce(x, t, w),
    ),
    Case(
        "binary_cross_entropy_clamped_log",
        lambda m, x, t: m.nn.functional.binary_cross_entropy(x, t, reduction="none"),
        [V([0.0, 1.0, 0.5, 1.0]), V([1.0, 0.0, 1.0, 1.0])],
        ref=lambda x, t: _bce(x, t),
        grad=False,
    ),
    Case(
        "bce_with_logits",
        lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(x, t),
        [F(3, 4), F(3, 4, low=0.0, high=1.0)],
        ref=_red(_bce_logits),
        grad2=True,
    ),
    Case(
        "bce_with_logits_pos_weight_weight",
        lambda m, x, t, w, pw: m.nn.functional.binary_cross_entropy_with_logits(
            x, t, w, reduction="sum", pos_weight=pw
        ),
        [F(3, 4), F(3, 4, low=0.0, high=1.0), C(3, 1, low=0.5, high=2), C(4, low=0.5, high=3)],
        ref=_red(_bce_logits, "sum"),
        grad2=True,
    ),
    Case(
        "bce_with_logits_large_logits",
        lambda m, x, t: m.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none"),
        [V([1e4, -1e4, 1e4, -1e4, 3.0], grad=True), V([1.0, 0.0, 0.0, 1.0, 0.5])],
        ref=lambda x, t: np.array([0.0, 0.0, 1e4, 1e4, np.log1p(np.exp(-3.0)) + 1.5]),
    ),
    Case(
        "kl_div_batchmean",
        lambda m, x, t: m.nn.functional.kl_div(x, t, reduction="batchmean"),
        [F(3, 4), F(3, 4, low=0.05, high=1.0)],
        ref=lambda x, t: np.array((t * (np.log(t) - x)).sum() / 3),
        grad2=True,
    ),
    Case(
        "kl_div_log_target_none",
        lambda m, x, t: m.nn.functional.kl_div(x, t, reduction="none", log_target=True),
        [F(3, 4), F(3, 4)],
        ref=lambda x, t: np.exp(t) * (t - x),
    ),
    # -- distances and margin / likelihood losses -----------------------------------------
    Case(
        "cosine_similarity_broadcast",
        lambda m, a, b: m.nn.functional.cosine_similarity(a, b),
        [F(3, 4, 2), F(1, 4, 2)],
        ref=ref_cosine_similarity,
        grad2=True,
    ),
    Case(
        "pairwise_distance",
        lambda m, a, b: m.nn.functional.pairwise_distance(a, b),
        [F(3, 4), F(3, 4)],
        ref=ref_pairwise_distance,
        grad2=True,
    ),
    Case(
        "pairwise_distance_p1_keepdim",
        lambda m, a, b: m.nn.functional.pairwise_distance(a, b, p=1.0, keepdim=True),
        [F(3, 4), F(4)],
        ref=lambda a, b: ref_pairwise_distance(a, b, 1.0)[:, None],
    ),
    Case(
        "margin_ranking_loss",
        lambda m, a, b, t: m.nn.functional.margin_ranking_loss(a, b, t, margin=0.3),
        [F(5), F(5), V([1.0, -1.0, 1.0, -1.0, 1.0])],
        ref=lambda a, b, t: np.array(np.maximum(0, -t * (a - b) + 0.3).mean()),
    ),
    Case(
        "hinge_embedding_loss_none",
        lambda m, a, t: m.nn.functional.hinge_embedding_loss(a, t, margin=0.5, reduction="none"),
        [F(5), V([1.0, -1.0, 1.0, -1.0, -1.0])],
        ref=lambda a, t: np.where(t == 1, a, np.maximum(0, 0.5 - a)),
    ),
    Case(
        "soft_margin_loss",
        lambda m, a, t: m.nn.functional.soft_margin_loss(a, t),
        [F(2, 3), V([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0]])],
        ref=lambda a, t: np.array(np.log1p(np.exp(-a * t)).mean()),
    ),
    Case(
        "multilabel_soft_margin_loss_weight",
        lambda m, a, t, w: m.nn.functional.multilabel_soft_margin_loss(a, t, w),
        [F(3, 4), V([[1.0, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]]), C(4, low=0.5, high=2)],
        ref=lambda a, t, w: np.array(
            (w * -(t * np.log(1 / (1 + np.exp(-a))) + (1 - t) * np.log(1 / (1 + np.exp(a)))))
            .mean(-1)
            .mean()
        ),
    ),
    Case(
        "cosine_embedding_loss",
        lambda m, a, b, t: m.nn.functional.cosine_embedding_loss(a, b, t, margin=0.1),
        [F(4, 3), F(4, 3), V([1.0, -1.0, -1.0, 1.0])],
        ref=lambda a, b, t: np.array(
            np.where(
                t == 1,
                1 - ref_cosine_similarity(a, b),
                np.maximum(ref_cosine_similarity(a, b) - 0.1, 0),
            ).mean()
        ),
    ),
    Case(
        "triplet_margin_loss_swap",
        lambda m, a, p, n: m.nn.functional.triplet_margin_loss(a, p, n, margin=2.0, swap=True),
        [F(4, 3), F(4, 3), F(4, 3)],
        ref=lambda a, p, n: np.array(
            np.maximum(
                ref_pairwise_distance(a, p)
                - np.minimum(ref_pairwise_distance(a, n), ref_pairwise_distance(p, n))
                + 2.0,
                0,
            ).mean()
        ),
    ),
    Case(
        "poisson_nll_loss_full",
        lambda m, x, t: m.nn.functional.poisson_nll_loss(x, t, full=True),
        [F(2, 3), V([[0.0, 1.0, 2.0], [3.0, 0.5, 4.0]])],
        ref=ref_poisson_nll_full,
    ),
    Case(
        "poisson_nll_loss_rate_input",
        lambda m, x, t: m.nn.functional.poisson_nll_loss(x, t, log_input=False, reduction="sum"),
        [F(2, 3, low=0.5, high=2.0), C(2, 3, low=0.0, high=3.0)],
        ref=lambda x, t: np.array((x - t * np.log(x + 1e-8)).sum()),
    ),
    Case(
        "gaussian_nll_loss",
        lambda m, x, t, v: m.nn.functional.gaussian_nll_loss(x, t, v),
        [F(3, 2), F(3, 2), F(3, 2, low=0.2, high=2.0)],
        ref=ref_gaussian_nll,
        grad2=True,
    ),
    Case(
        "gaussian_nll_loss_homoscedastic_full",
        lambda m, x, t, v: m.nn.functional.gaussian_nll_loss(x, t, v, full=True),
        [F(3, 2), F(3, 2), F(3, low=0.2, high=2.0)],
        ref=lambda x, t, v: ref_gaussian_nll(x, t, v[:, None], full=True),
    ),
)

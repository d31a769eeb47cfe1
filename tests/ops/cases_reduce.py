"""Table rows for the reductions: var/std, max/min, amax/amin, argmax/argmin, prod,
logsumexp, cumsum/cumprod, norms, all/any, count_nonzero, sort/argsort/topk, median."""

import numpy as np

from .optable import B, Case, F, I, V, cases


def _lse(a, axis, keepdims=False):
    m = a.max(axis=axis, keepdims=True)
    out = np.log(np.exp(a - m).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _pair(values_fn, index_fn, axis, keepdims=False):
    def ref(a):
        idx = index_fn(a, axis=axis, keepdims=True)
        v = np.take_along_axis(a, idx, axis=axis)
        if not keepdims:
            v, idx = np.squeeze(v, axis), np.squeeze(idx, axis)
        return v, idx

    return ref


def _sorted(a, axis=-1, descending=False):
    idx = np.argsort(-a if descending else a, axis=axis, kind="stable")
    return np.take_along_axis(a, idx, axis=axis), idx


def _topk(a, k, axis=-1, largest=True):
    v, i = _sorted(a, axis, descending=largest)
    return np.take(v, range(k), axis=axis), np.take(i, range(k), axis=axis)


def _kth(a, k, axis):
    i = np.take(np.argsort(a, axis=axis, kind="stable"), [k], axis=axis)
    return np.squeeze(np.take_along_axis(a, i, axis), axis), np.squeeze(i, axis)


def _vnorm(a, p, axis=None, keepdims=False):
    if p == np.inf:
        return np.abs(a).max(axis=axis, keepdims=keepdims)
    if p == 0:
        return (a != 0).sum(axis=axis, keepdims=keepdims).astype(a.dtype)
    return (np.abs(a) ** p).sum(axis=axis, keepdims=keepdims) ** (1 / p)


TIES = [[1.0, 3.0, 3.0, 2.0], [5.0, 0.0, 5.0, 1.0]]  # two-way ties: central differences see 1/2

CASES = cases(
    # -- var / std ----------------------------------------------------------------------
    Case("var_all", lambda m, a: a.var(), [F(3, 4)], ref=lambda a: np.var(a, ddof=1), grad2=True),
    Case(
        "var_dim_keepdim_neg",
        lambda m, a: a.var(dim=-1, keepdim=True),
        [F(3, 4)],
        ref=lambda a: np.var(a, axis=-1, ddof=1, keepdims=True),
    ),
    Case(
        "var_dims_tuple",
        lambda m, a: m.var(a, dim=(0, 2)),
        [F(2, 3, 4)],
        ref=lambda a: np.var(a, axis=(0, 2), ddof=1),
        grad2=True,
    ),
    Case(
        "var_unbiased_false",
        lambda m, a: a.var(1, unbiased=False),
        [F(3, 4)],
        ref=lambda a: np.var(a, axis=1),
    ),
    Case(
        "var_correction",
        lambda m, a: m.var(a, dim=0, correction=2),
        [F(5, 3)],
        ref=lambda a: np.var(a, axis=0, ddof=2),
    ),
    Case(
        "var_noncontig",
        lambda m, a: a.var(0),
        [F(3, 4, noncontig=True)],
        ref=lambda a: np.var(a, axis=0, ddof=1),
    ),
    Case(
        "var_size1_dim",
        lambda m, a: a.var(dim=1, correction=0),
        [F(3, 1)],
        ref=lambda a: np.var(a, axis=1),
    ),
    Case("std_all", lambda m, a: a.std(), [F(3, 4)], ref=lambda a: np.std(a, ddof=1), grad2=True),
    Case(
        "std_dim_keepdim_neg",
        lambda m, a: a.std(-2, keepdim=True),
        [F(3, 4)],
        ref=lambda a: np.std(a, axis=-2, ddof=1, keepdims=True),
    ),
    Case(
        "std_correction0",
        lambda m, a: m.std(a, dim=(0, 1), correction=0),
        [F(2, 3, 2)],
        ref=lambda a: np.std(a, axis=(0, 1)),
    ),
    Case(
        "std_constant_grad_zero",
        lambda m, a: a.std(dim=1),
        [V([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]], grad=True)],
        ref=lambda a: np.std(a, axis=1, ddof=1),
    ),
    Case(
        "var_mean",
        lambda m, a: m.var_mean(a, 1),
        [F(3, 4)],
        ref=lambda a: (np.var(a, axis=1, ddof=1), a.mean(1)),
    ),
    Case(
        "std_mean_keepdim",
        lambda m, a: m.std_mean(a, dim=0, keepdim=True, correction=0),
        [F(3, 4)],
        ref=lambda a: (np.std(a, axis=0, keepdims=True), a.mean(0, keepdims=True)),
    ),
    # -- max / min / amax / amin / argmax / argmin --------------------------------------
    Case("max_all", lambda m, a: a.max(), [F(3, 4)], ref=np.max),
    Case("max_all_ties_share", lambda m, a: m.max(a), [V(TIES[0], grad=True)], ref=np.max),
    Case("min_all", lambda m, a: m.min(a), [F(2, 3, 2)], ref=np.min),
    Case("max_dim", lambda m, a: a.max(dim=1), [F(3, 4)], ref=_pair(np.max, np.argmax, 1)),
    Case(
        "max_dim_keepdim_neg",
        lambda m, a: m.max(a, -1, keepdim=True),
        [F(2, 3, 4)],
        ref=_pair(np.max, np.argmax, -1, keepdims=True),
        grad2=True,
    ),
    Case(
        "max_dim_noncontig",
        lambda m, a: a.max(0),
        [F(3, 4, noncontig=True)],
        ref=_pair(np.max, np.argmax, 0),
    ),
    Case("max_dim_size1", lambda m, a: a.max(1), [F(3, 1)], ref=_pair(np.max, np.argmax, 1)),
    Case("max_dim_0d", lambda m, a: a.max(0), [F()], ref=lambda a: (a, np.array(0))),
    Case(
        "min_dim",
        lambda m, a: m.min(a, dim=0),
        [F(3, 4)],
        ref=_pair(np.min, np.argmin, 0),
    ),
    Case(
        "max_dim_int",
        lambda m, a: a.max(dim=0),
        [I(3, 4, high=100)],
        ref=_pair(np.max, np.argmax, 0),
        grad=False,
    ),
    Case("max_binary", lambda m, a, b: m.max(a, b), [F(3, 4), F(4)], ref=np.maximum),
    Case("min_binary", lambda m, a, b: m.min(a, b), [F(3, 1), F(3, 4)], ref=np.minimum),
    Case("amax_all", lambda m, a: a.amax(), [F(3, 4)], ref=np.max),
    Case(
        "amax_dims_keepdim",
        lambda m, a: m.amax(a, dim=(0, -1), keepdim=True),
        [F(2, 3, 4)],
        ref=lambda a: a.max(axis=(0, 2), keepdims=True),
        grad2=True,
    ),
    Case(
        "amax_ties_share",
        lambda m, a: a.amax(dim=1),
        [V(TIES, grad=True)],
        ref=lambda a: a.max(axis=1),
    ),
    Case(
        "amin_dim_noncontig",
        lambda m, a: a.amin(-1),
        [F(3, 4, noncontig=True)],
        ref=lambda a: a.min(axis=-1),
    ),
    Case("amax_size0", lambda m, a: a.amax(1), [F(0, 3)], ref=lambda a: a.max(axis=1)),
    Case("argmax_all", lambda m, a: a.argmax(), [F(3, 4)], ref=np.argmax, grad=False),
    Case(
        "argmax_dim_keepdim",
        lambda m, a: m.argmax(a, dim=1, keepdim=True),
        [F(3, 4)],
        ref=lambda a: np.argmax(a, 1, keepdims=True),
        grad=False,
    ),
    Case(
        "argmin_neg_dim_int",
        lambda m, a: a.argmin(-1),
        [I(2, 3, 4, high=100)],
        ref=lambda a: np.argmin(a, -1),
        grad=False,
    ),
    # -- prod -----------------------------------------------------------------------------
    Case("prod_all", lambda m, a: a.prod(), [F(2, 3)], ref=np.prod, grad2=True),
    Case(
        "prod_dim_keepdim_neg",
        lambda m, a: m.prod(a, -1, keepdim=True),
        [F(2, 3, 4)],
        ref=lambda a: np.prod(a, -1, keepdims=True),
    ),
    Case(
        "prod_one_zero",
        lambda m, a: a.prod(1),
        [V([[1.5, 0.0, 3.0], [2.0, -4.0, 0.5]], grad=True)],
        ref=lambda a: np.prod(a, 1),
    ),
    Case(
        "prod_two_zeros",
        lambda m, a: a.prod(),
        [V([[1.5, 0.0, 3.0], [2.0, 0.0, 0.5]], grad=True)],
        ref=np.prod,
    ),
    Case(
        "prod_int",
        lambda m, a: a.prod(0),
        [I(3, 4, dtype="int32")],
        ref=lambda a: np.prod(a, 0, dtype=np.int64),
        grad=False,
    ),
    # -- logsumexp ------------------------------------------------------------------------
    Case(
        "logsumexp_dim",
        lambda m, a: m.logsumexp(a, 1),
        [F(3, 4)],
        ref=lambda a: _lse(a, 1),
        grad2=True,
    ),
    Case(
        "logsumexp_dims_keepdim",
        lambda m, a: a.logsumexp((0, -1), keepdim=True),
        [F(2, 3, 4)],
        ref=lambda a: _lse(a, (0, 2), keepdims=True),
    ),
    Case(
        "logsumexp_large",
        lambda m, a: m.logsumexp(a, dim=-1),
        [V([[1000.0, 1000.5, 999.0], [-1000.0, 3.0, -2000.0]], grad=True)],
        ref=lambda a: _lse(a, -1),
    ),
    Case(
        "logsumexp_int",
        lambda m, a: m.logsumexp(a, 0),
        [I(3, 2)],
        ref=lambda a: _lse(a.astype(np.float32), 0),
        grad=False,
    ),
    # -- cumulative -----------------------------------------------------------------------
    Case("cumsum", lambda m, a: a.cumsum(1), [F(3, 4)], ref=lambda a: np.cumsum(a, 1), grad2=True),
    Case(
        "cumsum_neg_noncontig",
        lambda m, a: m.cumsum(a, dim=-2),
        [F(3, 4, noncontig=True)],
        ref=lambda a: np.cumsum(a, -2),
    ),
    Case(
        "cumsum_int",
        lambda m, a: a.cumsum(0),
        [I(5, dtype="int32")],
        ref=lambda a: np.cumsum(a, dtype=np.int64),
        grad=False,
    ),
    Case(
        "cumprod", lambda m, a: a.cumprod(0), [F(4, 3)], ref=lambda a: np.cumprod(a, 0), grad2=True
    ),
    Case(
        "cumprod_zeros",
        lambda m, a: m.cumprod(a, -1),
        [
            V(
                [[2.0, 0.0, 3.0, 0.0, 1.5], [0.5, 2.0, 0.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0, 0.0]],
                grad=True,
            )
        ],
        ref=lambda a: np.cumprod(a, -1),
    ),
    # -- norms ----------------------------------------------------------------------------
    Case(
        "norm_default",
        lambda m, a: a.norm(),
        [F(3, 4)],
        ref=lambda a: np.sqrt((a * a).sum()),
        grad2=True,
    ),
    Case(
        "norm_p1_dim",
        lambda m, a: m.norm(a, p=1, dim=1),
        [F(3, 4)],
        ref=lambda a: _vnorm(a, 1, 1),
    ),
    Case(
        "norm_inf_keepdim",
        lambda m, a: a.norm(p=float("inf"), dim=-1, keepdim=True),
        [F(3, 4)],
        ref=lambda a: _vnorm(a, np.inf, -1, True),
    ),
    Case(
        "norm_inf_ties_share",
        lambda m, a: a.norm(p=float("inf")),
        [V([[1.0, -3.0], [3.0, 2.0]], grad=True)],
        ref=lambda a: _vnorm(a, np.inf),
    ),
    Case(
        "norm_p3_dims",
        lambda m, a: m.norm(a, p=3, dim=(0, 2)),
        [F(2, 3, 4)],
        ref=lambda a: _vnorm(a, 3, (0, 2)),
        grad2=True,
    ),
    Case(
        "norm_fro_dim_noncontig",
        lambda m, a: m.norm(a, "fro", dim=0),
        [F(3, 4, noncontig=True)],
        ref=lambda a: _vnorm(a, 2, 0),
    ),
    Case(
        "norm_zero_vector_grad",
        lambda m, a: a.norm(dim=1),
        [V([[0.0, 0.0, 0.0], [3.0, 0.0, -4.0]], grad=True)],
        ref=lambda a: _vnorm(a, 2, 1),
    ),
    Case(
        "norm_p0",
        lambda m, a: a.norm(p=0, dim=0),
        [V([[0.0, 1.0], [2.0, 0.0], [3.0, 0.0]], grad=True)],
        ref=lambda a: _vnorm(a, 0, 0),
    ),
    Case(
        "vector_norm_ord_neg_inf",
        lambda m, a: m.linalg.vector_norm(a, ord=-float("inf"), dim=1),
        [F(3, 4)],
        ref=lambda a: np.abs(a).min(1),
    ),
    Case(
        "vector_norm_ord_half",
        lambda m, a: m.linalg.vector_norm(a, ord=0.5, dim=-1),
        [F(2, 5, low=0.5, high=2.0)],
        ref=lambda a: _vnorm(a, 0.5, -1),
    ),
    Case(
        "matrix_norm_fro",
        lambda m, a: m.linalg.matrix_norm(a),
        [F(2, 3, 4)],
        ref=lambda a: np.linalg.norm(a, "fro", axis=(-2, -1)),
    ),
    Case(
        "matrix_norm_ord1",
        lambda m, a: m.linalg.matrix_norm(a, ord=1, dim=(0, 1)),
        [F(3, 4)],
        ref=lambda a: np.linalg.norm(a, 1),
    ),
    Case(
        "matrix_norm_inf_keepdim",
        lambda m, a: m.linalg.matrix_norm(a, ord=float("inf"), keepdim=True),
        [F(2, 3, 4)],
        ref=lambda a: np.abs(a).sum(-1).max(-1)[:, None, None],
    ),
    Case(
        "linalg_norm_vector_matrix",
        lambda m, a: (m.linalg.norm(a), m.linalg.norm(a, ord=-1)),
        [F(3, 4)],
        ref=lambda a: (np.linalg.norm(a), np.linalg.norm(a, -1)),
    ),
    # -- all / any / count_nonzero ----------------------------------------------------------
    Case("all_bool", lambda m, a: a.all(), [B(3, 4)], ref=np.all, grad=False),
    Case(
        "all_dim_float",
        lambda m, a: m.all(a, dim=-1),
        [V([[1.0, 2.0], [0.0, 3.0]])],
        ref=lambda a: np.all(a, -1),
        grad=False,
    ),
    Case(
        "any_dims_keepdim",
        lambda m, a: a.any(dim=(0, 2), keepdim=True),
        [B(2, 3, 4)],
        ref=lambda a: np.any(a, (0, 2), keepdims=True),
        grad=False,
    ),
    Case(
        "any_uint8",
        lambda m, a: m.any(a, 1),
        [I(3, 4, high=2, dtype="uint8")],
        ref=lambda a: np.any(a, 1).astype(np.uint8),
        grad=False,
    ),
    Case(
        "count_nonzero_dim",
        lambda m, a: m.count_nonzero(a, dim=0),
        [I(4, 3, high=2)],
        ref=lambda a: np.count_nonzero(a, axis=0),
        grad=False,
    ),
    Case(
        "count_nonzero_all",
        lambda m, a: m.count_nonzero(a),
        [I(4, 3, high=2)],
        ref=lambda a: np.count_nonzero(a),
        grad=False,
    ),
    # -- sort / argsort / topk / median / kthvalue -------------------------------------------
    Case("sort", lambda m, a: a.sort(), [F(3, 5)], ref=_sorted, grad2=True),
    Case(
        "sort_descending_dim0",
        lambda m, a: m.sort(a, dim=0, descending=True),
        [F(4, 3)],
        ref=lambda a: _sorted(a, 0, descending=True),
    ),
    Case(
        "sort_noncontig",
        lambda m, a: a.sort(-2),
        [F(3, 4, noncontig=True)],
        ref=lambda a: _sorted(a, -2),
    ),
    Case(
        "sort_stable_ties",
        lambda m, a: (m.sort(a, stable=True), m.sort(a, descending=True, stable=True)),
        [V([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])],
        ref=lambda a: (_sorted(a), _sorted(a, descending=True)),
        grad=False,
    ),
    Case(
        "sort_int_size0",
        lambda m, a, b: (a.sort(dim=0), b.sort()),
        [I(5, 2, high=100), F(2, 0)],
        ref=lambda a, b: (_sorted(a, 0), _sorted(b)),
        grad=False,
    ),
    Case(
        "argsort_descending",
        lambda m, a: m.argsort(a, dim=1, descending=True),
        [F(3, 5)],
        ref=lambda a: _sorted(a, 1, descending=True)[1],
        grad=False,
    ),
    Case("topk", lambda m, a: a.topk(3), [F(4, 6)], ref=lambda a: _topk(a, 3), grad2=True),
    Case(
        "topk_smallest_dim0",
        lambda m, a: m.topk(a, 2, dim=0, largest=False),
        [F(5, 3)],
        ref=lambda a: _topk(a, 2, 0, largest=False),
    ),
    Case(
        "topk_k_all_noncontig",
        lambda m, a: a.topk(4, dim=-1),
        [F(3, 4, noncontig=True)],
        ref=lambda a: _topk(a, 4),
    ),
    Case("median_all", lambda m, a: a.median(), [F(3, 4)], ref=lambda a: np.sort(a, None)[5]),
    Case(
        "median_all_ties_share",
        lambda m, a: m.median(a),
        [V([[2.0, 1.0], [2.0, 3.0]], grad=True)],
        ref=lambda a: np.array(2.0),
    ),
    Case(
        "median_dim",
        lambda m, a: a.median(dim=1),
        [F(3, 5)],
        ref=lambda a: _kth(a, 2, 1),
    ),
    Case(
        "median_dim_even_neg",
        lambda m, a: m.median(a, -2),
        [F(4, 3)],
        ref=lambda a: _kth(a, 1, 0),
    ),
    Case(
        "kthvalue",
        lambda m, a: m.kthvalue(a, 2, dim=0),
        [F(4, 3)],
        ref=lambda a: _kth(a, 1, 0),
    ),
)

"""Table rows for linear algebra: mm, bmm, dot, outer, inner, tensordot, einsum and more
matmul shapes (the basic matmul rows are in cases_core)."""

import numpy as np

from .optable import Case, F, I, cases

CASES = cases(
    Case("mm", lambda m, a, b: m.mm(a, b), [F(3, 4), F(4, 2)], ref=np.matmul, grad2=True),
    Case(
        "mm_noncontig_method",
        lambda m, a, b: a.mm(b),
        [F(3, 4, noncontig=True), F(4, 2, noncontig=True)],
        ref=np.matmul,
    ),
    Case("mm_size0", lambda m, a, b: m.mm(a, b), [F(0, 3), F(3, 2)], ref=np.matmul),
    Case(
        "mm_int",
        lambda m, a, b: m.mm(a, b),
        [I(2, 3), I(3, 2)],
        ref=np.matmul,
        grad=False,
    ),
    Case("bmm", lambda m, a, b: m.bmm(a, b), [F(2, 3, 4), F(2, 4, 5)], ref=np.matmul, grad2=True),
    Case(
        "bmm_size1_batch",
        lambda m, a, b: a.bmm(b),
        [F(1, 2, 3), F(1, 3, 1)],
        ref=np.matmul,
    ),
    Case("dot", lambda m, a, b: m.dot(a, b), [F(5), F(5)], ref=np.dot, grad2=True),
    Case("outer", lambda m, a, b: m.outer(a, b), [F(3), F(4)], ref=np.outer),
    Case("inner", lambda m, a, b: m.inner(a, b), [F(2, 3), F(4, 3)], ref=np.inner),
    Case(
        "tensordot_int_dims",
        lambda m, a, b: m.tensordot(a, b),
        [F(2, 3, 4), F(3, 4, 2)],
        ref=lambda a, b: np.tensordot(a, b),
    ),
    Case(
        "tensordot_dim_lists",
        lambda m, a, b: m.tensordot(a, b, dims=([1, 0], [0, 2])),
        [F(2, 3, 4), F(3, 5, 2)],
        ref=lambda a, b: np.tensordot(a, b, axes=([1, 0], [0, 2])),
    ),
    Case(
        "matmul_broadcast_both",
        lambda m, a, b: a @ b,
        [F(2, 1, 3, 4), F(5, 4, 2)],
        ref=np.matmul,
    ),
    Case("matmul_size0_batch", lambda m, a, b: a @ b, [F(0, 2, 3), F(3, 4)], ref=np.matmul),
    # >= kernels.gemm.MIN_ROWS rows: ember's GEMM (its backward too: g @ b.T)
    Case("matmul_tall", lambda m, a, b: a @ b, [F(1030, 3), F(3, 5)], ref=np.matmul),
    Case("matmul_tall_batch", lambda m, a, b: a @ b, [F(2, 520, 3), F(3, 5)], ref=np.matmul),
    Case(
        "matmul_promote_int_float",
        lambda m, a, b: m.matmul(a, b),
        [I(2, 3), F(3, 2)],
        ref=lambda a, b: np.matmul(a.astype(b.dtype), b),
        torch_fn=lambda m, a, b: m.matmul(a.to(b.dtype), b),
    ),
    # -- einsum ---------------------------------------------------------------------------
    Case(
        "einsum_matmul",
        lambda m, a, b: m.einsum("ij,jk->ik", a, b),
        [F(3, 4), F(4, 2)],
        ref=np.matmul,
        grad2=True,
    ),
    Case(
        "einsum_batched",
        lambda m, a, b: m.einsum("bij,bjk->bik", a, b),
        [F(2, 3, 4), F(2, 4, 5)],
        ref=np.matmul,
    ),
    Case(
        "einsum_implicit_upper",
        lambda m, a, b: m.einsum("jB,Aj", a, b),
        [F(3, 4), F(2, 3)],
        ref=lambda a, b: np.einsum("jB,Aj", a, b),
    ),
    Case("einsum_trace", lambda m, a: m.einsum("ii", a), [F(4, 4)], ref=np.trace, grad2=True),
    Case(
        "einsum_diagonal",
        lambda m, a: m.einsum("ii->i", a),
        [F(3, 3)],
        ref=lambda a: np.diagonal(a).copy(),
    ),
    Case(
        "einsum_repeated_with_batch",
        lambda m, a: m.einsum("bii->b", a),
        [F(2, 3, 3, noncontig=True)],
        ref=lambda a: np.einsum("bii->b", a),
        grad2=True,
    ),
    Case(
        "einsum_repeated_three",
        lambda m, a, b: m.einsum("iij,j->i", a, b),
        [F(3, 3, 2), F(2)],
        ref=lambda a, b: np.einsum("iij,j->i", a, b),
    ),
    Case(
        "einsum_sum_and_transpose",
        lambda m, a: (m.einsum("ijk->", a), m.einsum("ijk->kj", a)),
        [F(2, 3, 4)],
        ref=lambda a: (a.sum(), a.sum(0).T),
    ),
    Case(
        "einsum_outer",
        lambda m, a, b: m.einsum("i,j->ij", a, b),
        [F(3), F(4)],
        ref=np.outer,
    ),
    Case(
        "einsum_ellipsis_broadcast",
        lambda m, a, b: m.einsum("...ij,...jk->...ik", a, b),
        [F(2, 1, 3, 4), F(5, 4, 2)],
        ref=np.matmul,
    ),
    Case(
        "einsum_ellipsis_middle",
        lambda m, a: m.einsum("i...j->j...i", a),
        [F(2, 3, 4, 5)],
        ref=lambda a: np.einsum("i...j->j...i", a),
    ),
    Case(
        "einsum_ellipsis_summed",
        lambda m, a: m.einsum("...i->i", a),
        [F(2, 3, 4)],
        ref=lambda a: a.sum((0, 1)),
    ),
    Case(
        "einsum_size1_broadcast",
        lambda m, a, b: m.einsum("ij,ij->ij", a, b),
        [F(3, 1), F(1, 4)],
        ref=np.multiply,
    ),
    Case(
        "einsum_three_operands",
        lambda m, a, b, c: m.einsum("ij,jk,kl->il", a, b, c),
        [F(2, 3), F(3, 4), F(4, 2)],
        ref=lambda a, b, c: a @ b @ c,
        grad2=True,
    ),
    Case(
        "einsum_bilinear_list",
        lambda m, a, b, c: m.einsum("bn,anm,bm->ba", [a, b, c]),
        [F(2, 3), F(4, 3, 5), F(2, 5)],
        ref=lambda a, b, c: np.einsum("bn,anm,bm->ba", a, b, c),
    ),
    Case(
        "einsum_planned_path",
        lambda m, a, b: m.einsum("ij,jk->ik", a, b),
        [F(20, 30), F(30, 60)],
        ref=np.matmul,
    ),
    Case(
        "einsum_int",
        lambda m, a, b: m.einsum("ij,jk", a, b),
        [I(2, 3), I(3, 2)],
        ref=np.matmul,
        grad=False,
    ),
)

"""Table rows for the core arithmetic, shape, reduction and matmul ops."""

import numpy as np

from .optable import Case, F, I, cases

CASES = cases(
    Case("add", lambda m, a, b: a + b, [F(3, 4), F(3, 4)], ref=np.add, grad2=True),
    Case("add_broadcast", lambda m, a, b: a + b, [F(2, 3, 4), F(4)], ref=np.add),
    Case("add_size1", lambda m, a, b: a + b, [F(3, 1), F(1, 4)], ref=np.add),
    Case("add_scalar", lambda m, a: 2.5 + a, [F(3)], ref=lambda a: 2.5 + a),
    Case(
        "add_alpha", lambda m, a, b: m.add(a, b, alpha=2), [F(3), F(3)], ref=lambda a, b: a + 2 * b
    ),
    Case("sub", lambda m, a, b: a - b, [F(2, 3), F(3)], ref=np.subtract),
    Case("rsub_scalar", lambda m, a: 1 - a, [F(3)], ref=lambda a: 1 - a),
    Case("mul", lambda m, a, b: a * b, [F(2, 3), F(2, 1)], ref=np.multiply, grad2=True),
    Case(
        "mul_noncontig", lambda m, a, b: a * b, [F(3, 4, noncontig=True), F(3, 4)], ref=np.multiply
    ),
    Case(
        "div", lambda m, a, b: a / b, [F(3, 4), F(4, low=0.5, high=2.0)], ref=np.divide, grad2=True
    ),
    Case("rdiv_scalar", lambda m, a: 2 / a, [F(3, low=0.5, high=2)], ref=lambda a: 2 / a),
    Case(
        "int_true_div",
        lambda m, a, b: a / b,
        [I(4, low=1), I(4, low=1)],
        ref=lambda a, b: (a / b).astype(np.float32),
        grad=False,
        torch=True,
    ),
    Case("neg", lambda m, a: -a, [F(2, 3)], ref=np.negative),
    Case("pow_scalar", lambda m, a: a**3, [F(5)], ref=lambda a: a**3, grad2=True),
    Case(
        "pow_tensor", lambda m, a, b: a**b, [F(5, low=0.5, high=2), F(5)], ref=np.power, grad2=True
    ),
    Case("rpow", lambda m, a: 2**a, [F(4)], ref=lambda a: 2**a),
    Case("exp", lambda m, a: m.exp(a), [F(2, 3)], ref=np.exp, grad2=True),
    Case("log", lambda m, a: m.log(a), [F(2, 3, low=0.5, high=3)], ref=np.log, grad2=True),
    Case("matmul_2d", lambda m, a, b: a @ b, [F(3, 4), F(4, 5)], ref=np.matmul, grad2=True),
    Case("matmul_batched_broadcast", lambda m, a, b: a @ b, [F(2, 3, 4), F(4, 2)], ref=np.matmul),
    Case("matmul_vec_mat", lambda m, a, b: a @ b, [F(4), F(4, 3)], ref=np.matmul),
    Case("matmul_mat_vec", lambda m, a, b: m.matmul(a, b), [F(2, 3, 4), F(4)], ref=np.matmul),
    Case("matmul_vec_vec", lambda m, a, b: a @ b, [F(4), F(4)], ref=np.matmul),
    Case(
        "matmul_noncontig", lambda m, a, b: a @ b, [F(3, 4, noncontig=True), F(4, 2)], ref=np.matmul
    ),
    Case("sum_all", lambda m, a: a.sum(), [F(3, 4)], ref=lambda a: a.sum()),
    Case(
        "sum_dim_keepdim",
        lambda m, a: a.sum(dim=-1, keepdim=True),
        [F(3, 4)],
        ref=lambda a: a.sum(-1, keepdims=True),
    ),
    Case("sum_dims", lambda m, a: a.sum(dim=(0, 2)), [F(2, 3, 4)], ref=lambda a: a.sum((0, 2))),
    Case("sum_size0", lambda m, a: a.sum(dim=0), [F(0, 3)], ref=lambda a: a.sum(0)),
    Case("sum_int", lambda m, a: a.sum(), [I(3, 4)], ref=lambda a: a.sum(), grad=False),
    Case("mean_dim", lambda m, a: a.mean(1), [F(3, 4)], ref=lambda a: a.mean(1)),
    Case("reshape", lambda m, a: a.reshape(4, -1), [F(2, 6)], ref=lambda a: a.reshape(4, -1)),
    Case(
        "permute", lambda m, a: a.permute(2, 0, 1), [F(2, 3, 4)], ref=lambda a: a.transpose(2, 0, 1)
    ),
    Case(
        "transpose_neg",
        lambda m, a: a.transpose(-1, -3),
        [F(2, 3, 4)],
        ref=lambda a: np.swapaxes(a, -1, -3),
    ),
    Case(
        "squeeze_unsqueeze",
        lambda m, a: a.squeeze(1).unsqueeze(-1),
        [F(3, 1, 2)],
        ref=lambda a: a.squeeze(1)[..., None],
    ),
    Case(
        "expand",
        lambda m, a: a.expand(2, 3, 4),
        [F(3, 1)],
        ref=lambda a: np.broadcast_to(a, (2, 3, 4)),
    ),
)

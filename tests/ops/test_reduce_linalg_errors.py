"""Error messages and return conventions of the reduction and linear algebra ops."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember


def _raises(exc, match, fn, *args, **kwargs):
    with pytest.raises(exc, match=match) as info:
        fn(*args, **kwargs)
    return str(info.value)


# -- linear algebra ------------------------------------------------------------------------
def test_mm_misaligned_names_both_shapes_and_user_line():
    msg = _raises(ember.ShapeError, None, ember.mm, ember.ones(2, 3), ember.ones(4, 5))
    assert msg.splitlines()[0] == "mm: shapes (2, 3) and (4, 5) do not align"
    assert "test_reduce_linalg_errors.py" in msg


def test_mm_and_bmm_wrong_ndim():
    _raises(
        ember.ShapeError,
        r"mm: expected matrices \(2-D tensors\), got shapes \(2, 3, 4\) and \(4, 5\)",
        ember.mm,
        ember.ones(2, 3, 4),
        ember.ones(4, 5),
    )
    _raises(
        ember.ShapeError,
        r"bmm: expected batches of matrices \(3-D tensors\), got shapes \(2, 3\) and",
        ember.bmm,
        ember.ones(2, 3),
        ember.ones(2, 3, 4),
    )


def test_bmm_batch_and_inner_mismatch():
    _raises(
        ember.ShapeError,
        r"bmm: batch sizes differ: shapes \(2, 3, 4\) and \(3, 4, 5\)",
        ember.bmm,
        ember.ones(2, 3, 4),
        ember.ones(3, 4, 5),
    )
    _raises(
        ember.ShapeError,
        r"bmm: shapes \(2, 3, 4\) and \(2, 5, 5\) do not align",
        ember.bmm,
        ember.ones(2, 3, 4),
        ember.ones(2, 5, 5),
    )


def test_matmul_and_dot_mismatch():
    _raises(
        ember.ShapeError,
        r"matmul: shapes \(2, 3\) and \(4, 5\) do not align",
        lambda: ember.ones(2, 3) @ ember.ones(4, 5),
    )
    _raises(
        ember.ShapeError,
        r"dot: shapes \(3,\) and \(4,\) do not align",
        ember.dot,
        ember.ones(3),
        ember.ones(4),
    )
    _raises(ember.ShapeError, "dot: expected vectors", ember.dot, ember.ones(3, 1), ember.ones(3))


def test_tensordot_mismatch_names_dims():
    _raises(
        ember.ShapeError,
        r"tensordot: shapes \(2, 3\) and \(4, 2\) do not align: dim 1 \(size 3\)",
        ember.tensordot,
        ember.ones(2, 3),
        ember.ones(4, 2),
        dims=1,
    )


@pytest.mark.parametrize(
    "equation, shapes, match",
    [
        ("ij,jk->ik", [(2, 3), (4, 5)], r"subscript 'j' has size 4 for operand 1 .* size 3"),
        ("ij,jk->ik", [(2, 3)], "names 2 operand\\(s\\) but 1 tensor\\(s\\)"),
        ("ij->ik", [(2, 3)], "output subscript 'k' does not appear in the inputs"),
        ("ij->ii", [(2, 2)], "output subscript 'i' appears more than once"),
        ("ij", [(2, 3, 4)], r"subscripts 'ij' name 2 dimension\(s\) but operand 0 has shape"),
        ("i1", [(2, 3)], "invalid character"),
        ("ii->i", [(2, 3)], "repeated for operand 0 .* different sizes 2 and 3"),
    ],
)
def test_einsum_errors(equation, shapes, match):
    _raises(ember.ShapeError, match, ember.einsum, equation, *[ember.ones(*s) for s in shapes])


def test_einsum_mismatch_names_both_shapes():
    msg = _raises(ember.ShapeError, None, ember.einsum, "ij,jk", ember.ones(2, 3), ember.ones(4, 5))
    assert "(2, 3) and (4, 5)" in msg


# -- reductions ----------------------------------------------------------------------------
def test_var_std_norm_need_floats():
    x = ember.tensor([1, 2, 3])
    _raises(
        ember.DTypeError, "var: expected a floating point tensor, got ember.int64", ember.var, x
    )
    _raises(ember.DTypeError, "std: expected a floating point", x.std)
    _raises(ember.DTypeError, "vector_norm: expected a floating point", x.norm)


def test_var_unbiased_and_correction_conflict():
    _raises(TypeError, "either unbiased or correction", ember.ones(3).var, 0, True, correction=0)


def test_dim_out_of_range():
    x = ember.ones(2, 3)
    _raises(ember.ShapeError, r"max: dimension 2 is out of range", x.max, 2)
    _raises(ember.ShapeError, r"var: dimension -3 is out of range", x.var, -3)
    _raises(ember.ShapeError, r"sort: dimension 5 is out of range", x.sort, 5)
    _raises(ember.ShapeError, r"appears multiple times", x.sum, (0, -2))


def test_empty_reductions_explain():
    _raises(
        ember.ShapeError,
        r"max: cannot reduce over an empty tensor of shape \(0, 3\)",
        ember.ones(0, 3).max,
    )
    _raises(ember.ShapeError, r"argmax: cannot reduce over dim \(0,\)", ember.ones(0, 3).argmax, 0)
    _raises(ember.ShapeError, "amin: cannot reduce", ember.ones(2, 0).amin, -1)


def test_topk_and_kthvalue_k_out_of_range():
    x = ember.ones(2, 3)
    _raises(
        ember.ShapeError, r"topk: k \(4\) is out of range for dimension -1 of size 3", x.topk, 4
    )
    _raises(ember.ShapeError, r"kthvalue: k \(0\) is out of range", x.kthvalue, 0)


def test_cumsum_needs_one_int_dim():
    _raises(TypeError, "cumsum: dim must be an int", ember.ones(2, 3).cumsum, (0, 1))


def test_norm_unsupported():
    _raises(ValueError, "nuc", ember.ones(2, 2).norm, "nuc")
    _raises(ValueError, "ord 2 is not supported", ember.linalg.matrix_norm, ember.ones(2, 2), 2)


# -- return conventions --------------------------------------------------------------------
def test_named_tuples_like_torch():
    x = ember.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]])
    r = x.max(dim=1)
    assert type(r).__name__ == "max" and r._fields == ("values", "indices")
    values, indices = r
    assert values.tolist() == [5.0, 7.0] and indices.tolist() == [1, 0]
    assert indices.dtype == ember.int64
    assert type(x.sort()).__name__ == "sort" and type(x.topk(1)).__name__ == "topk"
    assert type(x.median(0)).__name__ == "median"


def test_max_values_gradient_goes_to_selected_index():
    x = ember.tensor([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]], requires_grad=True)
    x.max(dim=1).values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_max_binary_is_elementwise():
    a, b = ember.tensor([1.0, 5.0]), ember.tensor([3.0, 2.0])
    assert ember.max(a, b).tolist() == [3.0, 5.0]
    assert ember.min(a, b).tolist() == [1.0, 2.0]


def test_bool_results_and_integer_indices():
    x = ember.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert x.all().dtype == ember.bool and x.any(1).dtype == ember.bool
    assert x.argmax().dtype == ember.int64 and not x.argmax(0).requires_grad


def test_logsumexp_is_stable_and_norm_gradient_is_finite_at_zero():
    x = ember.tensor([1000.0, 1000.0, -math.inf], requires_grad=True)
    y = ember.logsumexp(x, 0)
    assert math.isclose(y.item(), 1000.0 + math.log(2.0), rel_tol=1e-6)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.5, 0.0], rtol=1e-4)  # float32 result
    z = ember.zeros(3, requires_grad=True)
    z.norm().backward()
    assert z.grad.tolist() == [0.0, 0.0, 0.0]


def test_prod_gradient_with_a_single_zero():
    x = ember.tensor([2.0, 0.0, 3.0], requires_grad=True)
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 6.0, 0.0]

"""Indexing and shape ops beyond the table: ``x[idx] = v`` semantics (memory, autograd,
in-place rules), error messages, and the in-place variants."""

import numpy as np
import pytest

import ember
from ember.ops.indexing import IndexingError, parse_index


def _leaf(*shape, seed=0):
    rng = np.random.default_rng(seed)
    return ember.tensor(rng.standard_normal(shape), requires_grad=True)


# -- setitem: memory and dtype ---------------------------------------------------------------
def test_setitem_without_grad_writes_into_memory():
    x = ember.zeros(3, 4)
    buf = x._data
    row = x[1]  # a basic-indexing view
    x[1, 2] = 5.0
    x[:, 0] = ember.tensor([1.0, 2.0, 3.0])
    x[x > 4] = -1.0
    assert x._data is buf
    assert row.tolist() == [2.0, 0.0, -1.0, 0.0]
    assert x.tolist() == [[1, 0, 0, 0], [2, 0, -1, 0], [3, 0, 0, 0]]


def test_setitem_casts_value_to_the_tensor_dtype():
    x = ember.zeros(3, dtype=ember.int64)
    x[0] = 2.7
    x[1:] = ember.tensor([1.9, -3.2])
    assert x.dtype == ember.int64
    assert x.tolist() == [2, 1, -3]


def test_setitem_accepts_lists_and_numpy_values():
    x = ember.zeros(2, 3)
    x[0] = [1.0, 2.0, 3.0]
    x[1, [0, 2]] = np.array([4.0, 5.0])
    assert x.tolist() == [[1, 2, 3], [4, 0, 5]]


def test_setitem_overlapping_source_and_target():
    x = ember.arange(5.0)
    x[1:] = x[:-1]
    assert x.tolist() == [0, 0, 1, 2, 3]


def test_setitem_bumps_the_version_so_saved_values_are_protected():
    w = _leaf(3)
    y = w * 1.0
    z = (y * y).sum()  # mul saves y
    with ember.no_grad():
        y[0] = 10.0
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.backward()


# -- setitem: autograd -----------------------------------------------------------------------
def test_setitem_on_a_leaf_that_requires_grad_raises():
    x = _leaf(3)
    with pytest.raises(RuntimeError, match="leaf tensor that requires grad"):
        x[0] = 1.0
    with ember.no_grad():
        x[0] = 1.0  # allowed, as in PyTorch
    assert x[0].item() == 1.0


def test_setitem_gradients_reach_base_and_value():
    x, v = _leaf(3, 4), _leaf(4, seed=1)
    y = x * 2.0
    y[1] = v * 3.0
    y.sum().backward()
    want_x = np.full((3, 4), 2.0)
    want_x[1] = 0.0
    np.testing.assert_allclose(x.grad.numpy(), want_x)
    np.testing.assert_allclose(v.grad.numpy(), np.full(4, 3.0))


def test_setitem_into_a_plain_buffer_from_a_loop():
    w = _leaf(3)
    h = ember.zeros(2, 3, dtype=ember.float64)
    for t in range(3):
        h[:, t] = w[t] * (t + 1)
    assert h.requires_grad
    h.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [2.0, 4.0, 6.0])


def test_setitem_advanced_gradient_with_broadcast_value():
    x, v = _leaf(4, 3), _leaf(1, 3, seed=2)
    y = x + 0.0
    y[[0, 2]] = v
    (y * ember.arange(12.0, dtype=ember.float64).reshape(4, 3)).sum().backward()
    g = np.arange(12.0).reshape(4, 3)
    want_x = g.copy()
    want_x[[0, 2]] = 0
    np.testing.assert_allclose(x.grad.numpy(), want_x)
    np.testing.assert_allclose(v.grad.numpy(), (g[0] + g[2])[None])


def test_reads_do_not_keep_the_indexed_tensor_version():
    # getitem's backward never reads the indexed tensor's values, so a later write is fine
    x = _leaf(3, 4)
    y = x * 1.0
    a, b = y[0], y[[1, 2]]
    y[0] = 0.0
    (a.sum() + b.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.ones((3, 4)))


def test_advanced_getitem_backward_twice_needs_retain_graph():
    x = _leaf(3)
    s = x[[0, 0, 1]].sum()
    s.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 1.0, 0.0])
    with pytest.raises(RuntimeError, match="second time"):
        s.backward()


def test_inplace_variants():
    x = ember.zeros(2, 3)
    mask = ember.tensor([[True, False, False], [False, False, True]])
    assert x.masked_fill_(mask, 1.0) is x
    x.index_fill_(1, ember.tensor([1]), 2.0)
    x.scatter_(0, ember.tensor([[1, 0, 0]]), 5.0)
    x.scatter_add_(1, ember.tensor([[0, 0]]), ember.ones(1, 2))
    assert x.tolist() == [[3.0, 5.0, 5.0], [5.0, 2.0, 1.0]]
    z = ember.zeros(3)
    z.index_put_((ember.tensor([0, 0]),), ember.tensor([1.0, 2.0]), accumulate=True)
    z.index_add_(0, ember.tensor([2]), ember.ones(1))
    z.index_copy_(0, ember.tensor([1]), ember.tensor([7.0]))
    assert z.tolist() == [3.0, 7.0, 1.0]
    y = ember.ones(3, 3)
    y.tril_(-1)
    assert y.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]


def test_iterating_a_tensor_yields_rows():
    assert [r.tolist() for r in ember.tensor([[1, 2], [3, 4]])] == [[1, 2], [3, 4]]


def test_parse_index_keeps_plain_values_and_collects_tensors():
    x = ember.zeros(2, 3, 4)
    spec, tensors = parse_index(x, (0, slice(None, None, 2), None, Ellipsis, [1, 2], True))
    assert spec == (0, slice(None, None, 2), None, Ellipsis, "tensor", True)
    assert len(tensors) == 1 and tensors[0].dtype == ember.int64


def test_gather_gradient_adds_repeated_positions():
    x = _leaf(2, 3)
    x.gather(1, ember.tensor([[0, 0, 2], [1, 1, 1]])).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[2, 0, 1], [0, 3, 0]])


def test_scatter_multiply_has_no_gradient():
    x = _leaf(3)
    y = (x * 1.0).scatter(
        0, ember.tensor([0]), ember.tensor([2.0], dtype=ember.float64), reduce="multiply"
    )
    with pytest.raises(RuntimeError, match="reduce='multiply'"):
        y.sum().backward()


# -- errors ----------------------------------------------------------------------------------
def test_multiply_in_rounds_matches_ufunc_at():
    """The CuPy path of scatter(reduce="multiply") (no multiply.at there), run on NumPy:
    repeated and negative positions, broadcast values, against np.multiply.at."""
    from ember.ops.gather import _multiply_at_in_rounds

    rng = np.random.default_rng(0)
    for shape, idx_shape in [((5, 4), (7, 4)), ((3,), (9,)), ((2, 3, 4), (5, 3, 2))]:
        out = rng.standard_normal(shape)
        idx = rng.integers(-shape[0], shape[0], idx_shape)
        key = (idx,) + tuple(
            np.arange(s).reshape([-1 if d == i else 1 for i in range(len(shape))])
            for d, s in enumerate(idx_shape[1:], start=1)
        )
        value = rng.standard_normal(idx_shape)
        want = out.copy()
        np.multiply.at(want, key, value)
        got = out.copy()
        _multiply_at_in_rounds(np, got, key, value)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match="out of range"):
        _multiply_at_in_rounds(np, np.ones(3), (np.array([3]),), np.ones(1))


def test_out_of_range_int_names_op_index_and_size():
    x = ember.zeros(3, 4)
    with pytest.raises(IndexError) as e:
        x[5]
    assert isinstance(e.value, ember.ShapeError) and isinstance(e.value, IndexingError)
    msg = str(e.value)
    assert msg.startswith("getitem: index 5 is out of bounds for dimension 0 with size 3")
    assert "(3, 4)" in msg and "test_indexing.py" in msg  # the user's line
    with pytest.raises(IndexError, match="index -5 is out of bounds for dimension 1 with size 4"):
        x[0, -5]


def test_out_of_range_array_index():
    x = ember.zeros(3)
    with pytest.raises(IndexingError, match="getitem: index 7 is out of bounds .* size 3"):
        x[[0, 7]]
    with pytest.raises(IndexingError, match="setitem: index 3 is out of bounds .* size 3"):
        x[ember.tensor([3])] = 1.0


def test_too_many_indices_and_bad_index_types():
    x = ember.zeros(2, 2)
    with pytest.raises(IndexingError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexingError, match="must be integer or bool tensors, got ember.float32"):
        x[ember.tensor([0.0])]
    with pytest.raises(IndexingError, match="valid indices"):
        x["a"]
    with pytest.raises(IndexingError, match="slice step cannot be zero"):
        x[::0]


def test_mask_shape_mismatch():
    with pytest.raises(IndexingError, match="boolean index did not match"):
        ember.zeros(3)[ember.tensor([True, False])]


def test_setitem_value_shape_mismatch_names_shapes():
    x = ember.zeros(3, 4)
    with pytest.raises(ember.ShapeError, match=r"value of shape \(3,\) .* region of shape \(4,\)"):
        x[0] = ember.ones(3)


def test_setitem_into_expanded_view():
    x = ember.zeros(3).expand(2, 3)
    with pytest.raises(ember.ShapeError, match="read-only view"):
        x[0, 0] = 1.0


def test_gather_family_errors():
    x = ember.zeros(2, 4)
    with pytest.raises(IndexingError, match="gather: index 9 is out of bounds for dimension 1"):
        x.gather(1, ember.tensor([[9], [0]]))
    with pytest.raises(ember.ShapeError, match="as many dimensions"):
        x.gather(1, ember.tensor([0]))
    with pytest.raises(ember.ShapeError, match="larger than the input"):
        x.gather(1, ember.tensor([[0], [0], [0]]))
    with pytest.raises(IndexingError, match="index_select: index 4 is out of bounds"):
        x.index_select(1, ember.tensor([4]))
    with pytest.raises(IndexingError, match="index must be an integer tensor"):
        x.index_select(0, ember.tensor([True]))
    with pytest.raises(ember.ShapeError, match=r"source of shape \(2, 2\) doesn't match"):
        x.index_add(1, ember.tensor([0, 1, 2]), ember.ones(2, 2))
    with pytest.raises(ember.DTypeError, match="bool tensor as mask"):
        x.masked_fill(ember.zeros(2, 4), 1.0)
    with pytest.raises(ember.ShapeError, match="0-dimensional value tensor"):
        x.masked_fill(x > 0, ember.ones(2))


def test_shape_family_errors():
    a, b = ember.zeros(2, 3), ember.zeros(2, 4)
    with pytest.raises(
        ember.ShapeError, match=r"cat: sizes of tensors must match.*\(2, 3\).*\(2, 4\)"
    ):
        ember.cat([a, b])
    with pytest.raises(ember.ShapeError, match="zero-dimensional"):
        ember.cat([ember.zeros(()), ember.zeros(())])
    with pytest.raises(ember.ShapeError, match=r"stack: expects each tensor to be equal size"):
        ember.stack([a, b])
    with pytest.raises(ember.ShapeError, match="don't add up"):
        a.split([1, 1], dim=1)
    with pytest.raises(IndexingError, match="narrow: start .* exceeds dimension 1 with size 3"):
        a.narrow(1, 2, 2)
    with pytest.raises(IndexingError, match="select: index 3 is out of range for dimension 1"):
        a.select(1, 3)
    with pytest.raises(ember.ShapeError, match="repeat dims"):
        a.repeat(2)
    with pytest.raises(ember.ShapeError, match="at least 2 dimensions"):
        ember.zeros(3).tril()
    with pytest.raises(ember.ShapeError, match="don't multiply up"):
        a.unflatten(1, (2, 2))


def test_pad_errors():
    x = ember.zeros(1, 2, 3)
    with pytest.raises(ember.ShapeError, match="reflect padding .* smaller than its size 3"):
        ember.pad(x, (3, 0), mode="reflect")
    with pytest.raises(ember.ShapeError, match="circular padding .* at most its size 3"):
        ember.pad(x, (0, 4), mode="circular")
    with pytest.raises(ember.ShapeError, match="divisible by 2"):
        ember.pad(x, (1,))
    with pytest.raises(ember.ShapeError, match="too large"):
        ember.pad(x, (1,) * 8)
    with pytest.raises(ember.ShapeError, match="is negative"):
        ember.pad(x, (-2, -2))
    with pytest.raises(ember.ShapeError, match="negative padding"):
        ember.pad(x, (-1, 0), mode="replicate")
    with pytest.raises(ember.ShapeError, match="needs a non-empty dimension"):
        ember.pad(ember.zeros(2, 0), (1, 1), mode="replicate")
    with pytest.raises(ValueError, match="mode must be one of"):
        ember.pad(x, (1, 1), mode="wrap")


def test_chunk_and_split_edge_cases():
    assert [t.shape for t in ember.zeros(0).chunk(3)] == [(0,), (0,), (0,)]
    assert [t.shape for t in ember.zeros(4).split(4)] == [(4,)]
    assert [t.shape for t in ember.zeros(2, 3).unbind(-1)] == [(2,), (2,), (2,)]

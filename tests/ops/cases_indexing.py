"""Table rows for indexing: ``x[...]`` of every kind, ``x[...] = v`` (through a non-leaf copy),
gather/scatter, index_*, masked_*, take, take_along_dim, nonzero."""

import numpy as np

from .optable import Case, F, I, V, cases


def _set(idx, value=None):
    """``b = a * 1; b[idx] = v``: setitem on a non-leaf, differentiable in ``a`` and ``v``."""

    def fn(m, a, *v):
        b = a * 1
        b[idx] = v[0] if v else value
        return b

    return fn


def _set_ref(idx, value=None):
    def ref(a, *v):
        b = a.copy()
        b[idx] = v[0] if v else value
        return b

    return ref


def _put(a, idx, v):
    b = a.copy()
    b[idx] = v
    return b


def _acc(a, idx, v):
    out = a.copy()
    np.add.at(out, idx, v)
    return out


def _set_int_array_ref(a, v):
    b = a.copy()
    b[1][:, [2, 0]] = v  # PyTorch's order: the int first, then the array
    return b


def _set_t(m, a, i, v):
    """Setitem with an index tensor."""
    b = a * 1
    b[i] = v
    return b


def _set_mask(m, a, mask):
    b = a * 1
    b[mask] = 0.5
    return b


def _gather_ref(a, dim, idx):
    crop = tuple(slice(None) if d == dim else slice(0, s) for d, s in enumerate(idx.shape))
    return np.take_along_axis(a[crop], idx, dim)


def _scatter_ref(a, dim, idx, src, add=False):
    out = a.copy()
    grid = list(np.indices(idx.shape, sparse=True))
    grid[dim] = idx
    src = src[tuple(slice(0, s) for s in idx.shape)] if np.ndim(src) else src
    if add:
        np.add.at(out, tuple(grid), src)
    else:
        out[tuple(grid)] = src
    return out


def _index_add_ref(a, dim, idx, src, alpha=1.0):
    out = a.copy()
    np.add.at(out, (slice(None),) * dim + (idx,), alpha * src)
    return out


MASK = [[True, False, True, False], [False, False, True, True], [True, True, False, False]]

CASES = cases(
    # -- getitem: basic
    Case("getitem_int", lambda m, a: a[1], [F(3, 4)], ref=lambda a: a[1], grad2=True),
    Case("getitem_neg_int", lambda m, a: a[-1, -2], [F(3, 4)], ref=lambda a: a[-1, -2]),
    Case("getitem_slice", lambda m, a: a[1:3], [F(4, 2)], ref=lambda a: a[1:3]),
    Case(
        "getitem_slice_step",
        lambda m, a: a[::2, 1::2],
        [F(5, 4)],
        ref=lambda a: a[::2, 1::2],
        grad2=True,
    ),
    Case("getitem_slice_neg_bounds", lambda m, a: a[-3:-1], [F(4, 2)], ref=lambda a: a[-3:-1]),
    Case(
        "getitem_slice_neg_step",
        lambda m, a: a[::-1, 3:0:-2],
        [F(3, 5)],
        ref=lambda a: a[::-1, 3:0:-2],
        torch=False,  # PyTorch has no negative steps
        grad2=True,
    ),
    Case("getitem_slice_out_of_range", lambda m, a: a[1:10], [F(3, 2)], ref=lambda a: a[1:10]),
    Case("getitem_none", lambda m, a: a[None, :, None], [F(3, 2)], ref=lambda a: a[None, :, None]),
    Case("getitem_ellipsis", lambda m, a: a[..., 1], [F(2, 3, 4)], ref=lambda a: a[..., 1]),
    Case(
        "getitem_ellipsis_none",
        lambda m, a: a[0, ..., None, 1:],
        [F(2, 3, 4)],
        ref=lambda a: a[0, ..., None, 1:],
    ),
    Case("getitem_bool_scalar", lambda m, a: a[True], [F(2, 3)], ref=lambda a: a[True]),
    Case("getitem_size0", lambda m, a: a[:, 1], [F(0, 3)], ref=lambda a: a[:, 1]),
    Case(
        "getitem_noncontig",
        lambda m, a: a[1:, ::2],
        [F(3, 4, noncontig=True)],
        ref=lambda a: a[1:, ::2],
    ),
    Case("getitem_int_dtype", lambda m, a: a[1, 1:], [I(3, 4)], ref=lambda a: a[1, 1:], grad=False),
    # -- getitem: advanced
    Case(
        "getitem_list_repeats",
        lambda m, a: a[[0, 2, 2, -1]],
        [F(3, 2)],
        ref=lambda a: a[[0, 2, 2, -1]],
        grad2=True,
    ),
    Case(
        "getitem_list_pairs",
        lambda m, a: a[[0, 1], [1, 2]],
        [F(3, 4)],
        ref=lambda a: a[[0, 1], [1, 2]],
    ),
    Case(
        "getitem_slice_then_list",
        lambda m, a: a[:, [2, 0, 2]],
        [F(3, 4)],
        ref=lambda a: a[:, [2, 0, 2]],
    ),
    Case(
        "getitem_broadcast_arrays",
        lambda m, a: a[[[0], [2]], [1, 3, 3]],
        [F(3, 4)],
        ref=lambda a: a[[[0], [2]], [1, 3, 3]],
    ),
    Case(
        "getitem_separated_arrays",
        lambda m, a: a[[0, 1], :, [2, 0]],
        [F(2, 3, 4)],
        ref=lambda a: a[[0, 1], :, [2, 0]],
    ),
    Case(
        "getitem_int_and_array_torch_order",
        lambda m, a: a[1, :, [2, 0]],
        [F(2, 3, 4)],
        ref=lambda a: a[1][:, [2, 0]],  # PyTorch applies the int first (NumPy would give (2, 3))
        grad2=True,
    ),
    Case(
        "getitem_int_array_ellipsis_none",
        lambda m, a: a[None, 0, ..., [1, 1]],
        [F(2, 3, 4)],
        ref=lambda a: a[0][None][..., [1, 1]],
    ),
    Case(
        "getitem_long_tensor",
        lambda m, a, i: a[i],
        [F(4, 3), I(2, 3, high=4)],
        ref=lambda a, i: a[i],
        grad2=True,
    ),
    Case(
        "getitem_neg_tensor",
        lambda m, a, i: a[:, i],
        [F(2, 4), V([-1, 0, -4])],
        ref=lambda a, i: a[:, i],
    ),
    Case(
        "getitem_0d_tensor",
        lambda m, a, i: a[i, 1:],
        [F(3, 4), V(2)],
        ref=lambda a, i: a[2, 1:],
    ),
    Case(
        "getitem_two_tensors",
        lambda m, a, i, j: a[i, :, j],
        [F(3, 2, 4), I(5, high=3), I(5, high=4)],
        ref=lambda a, i, j: a[i, :, j],
    ),
    Case("getitem_empty_list", lambda m, a: a[[]], [F(3, 4)], ref=lambda a: a[np.array([], int)]),
    Case(
        "getitem_bool_mask_full",
        lambda m, a, k: a[k],
        [F(3, 4), V(MASK)],
        ref=lambda a, k: a[k],
        grad2=True,
    ),
    Case(
        "getitem_bool_mask_rows",
        lambda m, a, k: a[k, 1:],
        [F(3, 4), V([True, False, True])],
        ref=lambda a, k: a[k, 1:],
    ),
    Case(
        "getitem_bool_mask_last_dims",
        lambda m, a, k: a[:, k],
        [F(2, 3, 4), V(MASK)],
        ref=lambda a, k: a[:, k],
    ),
    Case(
        "getitem_numpy_mask",
        lambda m, a: a[np.array([False, True, True])],
        [F(3, 2)],
        ref=lambda a: a[np.array([False, True, True])],
    ),
    Case(
        "getitem_mask_from_compare",
        lambda m, a: a[a > 0],
        [F(3, 4)],
        ref=lambda a: a[a > 0],
    ),
    Case(
        "getitem_advanced_noncontig",
        lambda m, a: a[[2, 0], 1:],
        [F(3, 4, noncontig=True)],
        ref=lambda a: a[[2, 0], 1:],
    ),
    Case(
        "getitem_advanced_int_dtype",
        lambda m, a: a[[0, 0, 1]],
        [I(2, 3)],
        ref=lambda a: a[[0, 0, 1]],
        grad=False,
    ),
    # -- setitem (x[idx] = v on a non-leaf copy)
    Case("setitem_int_scalar", _set(1, 2.5), [F(3, 2)], ref=_set_ref(1, 2.5), grad2=True),
    Case(
        "setitem_slice_tensor_broadcast",
        _set((slice(None), slice(1, 3))),
        [F(3, 4), F(2)],
        ref=_set_ref((slice(None), slice(1, 3))),
        grad2=True,
    ),
    Case(
        "setitem_extra_leading_ones",
        _set(0),
        [F(3, 4), F(1, 4)],
        ref=_set_ref(0),
    ),
    Case(
        "setitem_ellipsis_none",
        _set((Ellipsis, None, 0)),
        [F(2, 3), F(2, 1)],
        ref=_set_ref((Ellipsis, None, 0)),
    ),
    Case(
        "setitem_list",
        _set(([0, 2], slice(None))),
        [F(3, 4), F(2, 1)],
        ref=_set_ref(([0, 2], slice(None))),
        grad2=True,
    ),
    Case(
        "setitem_int_and_array",
        _set((1, slice(None), [2, 0])),
        [F(2, 3, 4), F(3, 2)],
        ref=_set_int_array_ref,
    ),
    Case("setitem_tensor_index", _set_t, [F(4, 3), V([3, 0]), F(3)], ref=_put),
    Case(
        "setitem_mask_scalar",
        _set_mask,
        [F(3, 4), V(MASK)],
        ref=lambda a, k: np.where(k, 0.5, a),
    ),
    Case(
        "setitem_mask_values",
        _set_t,
        [F(3, 4), V(MASK), F(6)],
        ref=_put,
    ),
    Case(
        "setitem_int_dtype",
        _set((0, slice(1, None)), 7),
        [I(2, 3)],
        ref=_set_ref((0, slice(1, None)), 7),
        grad=False,
    ),
    # -- gather / scatter
    Case(
        "gather_dim1",
        lambda m, a, i: a.gather(1, i),
        [F(3, 4), I(3, 2, high=4)],
        ref=lambda a, i: _gather_ref(a, 1, i),
        grad2=True,
    ),
    Case(
        "gather_dim0_smaller_index",
        lambda m, a, i: m.gather(a, 0, i),
        [F(3, 4), I(5, 2, high=3)],
        ref=lambda a, i: _gather_ref(a, 0, i),
        grad2=True,
    ),
    Case(
        "gather_neg_dim_3d",
        lambda m, a, i: a.gather(-1, i),
        [F(2, 3, 4, noncontig=True), I(2, 2, 3, high=4)],
        ref=lambda a, i: _gather_ref(a, 2, i),
    ),
    Case(
        "gather_int",
        lambda m, a, i: a.gather(0, i),
        [I(3, 2), I(2, 2, high=3)],
        ref=lambda a, i: _gather_ref(a, 0, i),
        grad=False,
    ),
    Case(
        "scatter_src",
        lambda m, a, i, s: a.scatter(1, i, s),
        [F(3, 5), V([[0, 2], [1, 3], [4, 0]]), F(3, 2)],
        ref=lambda a, i, s: _scatter_ref(a, 1, i, s),
        grad2=True,
    ),
    Case(
        "scatter_larger_src",
        lambda m, a, i, s: a.scatter(1, i, s),
        [F(3, 5), V([[0, 2], [1, 3]]), F(4, 3)],
        ref=lambda a, i, s: _scatter_ref(a, 1, i, s),
        torch=False,  # PyTorch's backward rejects src larger than index
    ),
    Case(
        "scatter_value",
        lambda m, a, i: m.scatter(a, 0, i, -1.5),
        [F(3, 2), V([[2, 0]])],
        ref=lambda a, i: _scatter_ref(a, 0, i, -1.5),
    ),
    Case(
        "scatter_reduce_add",
        lambda m, a, i, s: a.scatter(0, i, s, reduce="add"),
        [F(3, 2), I(4, 2, high=3), F(4, 2)],
        ref=lambda a, i, s: _scatter_ref(a, 0, i, s, add=True),
        torch_fn=lambda m, a, i, s: a.scatter_add(0, i, s),
    ),
    Case(
        "scatter_reduce_multiply",
        lambda m, a, i, s: a.scatter(1, i, s, reduce="multiply"),
        [F(2, 3), V([[0, 0], [2, 1]]), F(2, 2)],
        ref=lambda a, i, s: np.array(
            [
                [a[0, 0] * s[0, 0] * s[0, 1], a[0, 1], a[0, 2]],
                [a[1, 0], a[1, 1] * s[1, 1], a[1, 2] * s[1, 0]],
            ]
        ),
        grad=False,
        torch=False,  # deprecated in PyTorch (warns)
    ),
    Case(
        "scatter_add_repeats",
        lambda m, a, i, s: a.scatter_add(-1, i, s),
        [F(2, 3), I(2, 5, high=3), F(2, 5)],
        ref=lambda a, i, s: _scatter_ref(a, 1, i, s, add=True),
        grad2=True,
    ),
    Case(
        "scatter_add_int",
        lambda m, a, i, s: m.scatter_add(a, 0, i, s),
        [I(3), I(4, high=3), I(4)],
        ref=lambda a, i, s: _scatter_ref(a, 0, i, s, add=True),
        grad=False,
    ),
    # -- index_*
    Case(
        "index_select_dim1",
        lambda m, a, i: a.index_select(1, i),
        [F(2, 4), I(5, high=4)],
        ref=lambda a, i: a[:, i],
        grad2=True,
    ),
    Case(
        "index_select_neg_dim_0d_index",
        lambda m, a, i: m.index_select(a, -1, i),
        [F(2, 3), V(2)],
        ref=lambda a, i: a[:, [2]],
    ),
    Case(
        "index_add_repeats_alpha",
        lambda m, a, i, s: a.index_add(0, i, s, alpha=2.0),
        [F(3, 2), V([2, 0, 2, 2]), F(4, 2)],
        ref=lambda a, i, s: _index_add_ref(a, 0, i, s, 2.0),
    ),
    Case(
        "index_add_dim1",
        lambda m, a, i, s: m.index_add(a, 1, i, s),
        [F(2, 3), V([1, 1]), F(2, 2)],
        ref=lambda a, i, s: _index_add_ref(a, 1, i, s),
    ),
    Case(
        "index_copy",
        lambda m, a, i, s: a.index_copy(0, i, s),
        [F(4, 2), V([3, 1]), F(2, 2)],
        ref=_put,
    ),
    Case(
        "index_fill_scalar",
        lambda m, a, i: a.index_fill(1, i, -2.0),
        [F(2, 4), V([0, 3, 0])],
        ref=lambda a, i: _set_ref((slice(None), [0, 3]), -2.0)(a),
    ),
    Case(
        "index_fill_tensor_value",
        lambda m, a, i, v: a.index_fill(0, i, v),
        [F(3, 2), V([1]), F()],
        ref=lambda a, i, v: _put(a, [1], v),
    ),
    Case(
        "index_put_accumulate",
        lambda m, a, i, j, v: a.index_put((i, j), v, accumulate=True),
        [F(3, 4), V([0, 2, 0]), V([1, 3, 1]), F(3)],
        ref=lambda a, i, j, v: _acc(a, (i, j), v),
    ),
    Case(
        "index_put",
        lambda m, a, i, v: m.index_put(a, (i,), v),
        [F(3, 2), V([2, 0]), F(2)],
        ref=_put,
    ),
    # -- masks
    Case(
        "masked_fill_broadcast_mask",
        lambda m, a, k: a.masked_fill(k, 3.0),
        [F(3, 3), V([True, False, True])],
        ref=lambda a, k: np.where(k, 3.0, a),
        grad2=True,
    ),
    Case(
        "masked_fill_tensor_value",
        lambda m, a, k, v: m.masked_fill(a, k, v),
        [F(3, 4), V(MASK), F()],
        ref=lambda a, k, v: np.where(k, v, a),
    ),
    Case(
        "masked_fill_int",
        lambda m, a, k: a.masked_fill(k, 9),
        [I(3, 4), V(MASK)],
        ref=lambda a, k: np.where(k, 9, a),
        grad=False,
    ),
    Case(
        "masked_select_broadcast",
        lambda m, a, k: a.masked_select(k),
        [F(2, 3, 4), V(MASK)],
        ref=lambda a, k: a[np.broadcast_to(k, a.shape)],
    ),
    Case(
        "masked_select_input_broadcast",
        lambda m, a, k: m.masked_select(a, k),
        [F(4), V(MASK)],
        ref=lambda a, k: np.broadcast_to(a, k.shape)[k],
    ),
    # -- take / take_along_dim / nonzero
    Case(
        "take",
        lambda m, a, i: a.take(i),
        [F(3, 4, noncontig=True), I(2, 3, high=12)],
        ref=lambda a, i: a.reshape(-1)[i],
    ),
    Case(
        "take_along_dim",
        lambda m, a, i: a.take_along_dim(i, dim=1),
        [F(3, 4), I(3, 5, high=4)],
        ref=lambda a, i: np.take_along_axis(a, i, 1),
    ),
    Case(
        "take_along_dim_broadcast",
        lambda m, a, i: m.take_along_dim(a, i, -1),
        [F(2, 1, 4), I(1, 3, 2, high=4)],
        ref=lambda a, i: np.take_along_axis(
            np.broadcast_to(a, (2, 3, 4)), np.broadcast_to(i, (2, 3, 2)), -1
        ),
    ),
    Case(
        "take_along_dim_flat",
        lambda m, a, i: m.take_along_dim(a, i),
        [F(2, 3), V([5, 1, 0, 5])],
        ref=lambda a, i: a.reshape(-1)[i],
    ),
    Case(
        "nonzero",
        lambda m, a: m.nonzero(a),
        [I(3, 4, high=2)],
        ref=np.argwhere,
        grad=False,
    ),
    Case(
        "nonzero_as_tuple",
        lambda m, a: a.nonzero(as_tuple=True),
        [I(2, 3, high=2)],
        ref=np.nonzero,
        grad=False,
    ),
    Case("nonzero_0d", lambda m, a: a.nonzero(), [V(3.0)], ref=np.argwhere, grad=False),
    Case("argwhere", lambda m, a: m.argwhere(a), [I(2, 2, high=2)], ref=np.argwhere, grad=False),
)

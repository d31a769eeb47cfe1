"""Gradients through split / chunk / unbind / narrow: the engine merges the slice pieces of
one tensor (ember.autograd.slices) and must give what PyTorch gives, in every combination."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import ember
from ember.autograd import slices

torch = pytest.importorskip("torch")

X = np.random.default_rng(0).standard_normal((3, 8))


def _grads(m, fn, leaf_input=True):
    x = m.tensor(X.copy(), requires_grad=True)
    y = x if leaf_input else x * 1.5
    fn(m, y).sum().backward()
    return x.grad.numpy()


CASES = {
    "split_all_used": lambda m, y: sum((p * (i + 1)).sum() for i, p in enumerate(y.split(3, 1))),
    "split_some_used": lambda m, y: y.split([2, 6], dim=1)[1].exp().sum(),
    "chunk_reordered": lambda m, y: (y.chunk(4, dim=1)[3] * y.chunk(4, dim=1)[0]).sum(),
    "unbind": lambda m, y: sum(r * r for r in y.unbind(0)).sum(),
    "overlapping_narrows": lambda m, y: (y.narrow(1, 0, 5) ** 2).sum() + y.narrow(1, 3, 5).sum(),
    "pieces_and_dense": lambda m, y: y.split(4, dim=1)[0].sum() + (y * y).sum(),
    "two_dims": lambda m, y: y.split(1, dim=0)[2].sum() + y.split(2, dim=1)[1].sum(),
}


@pytest.mark.parametrize("leaf", [True, False], ids=["leaf", "inner"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_slice_gradients_match_torch(name, leaf):
    got = _grads(ember, CASES[name], leaf)
    want = _grads(torch, CASES[name], leaf)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tiling_pieces_become_one_cat():
    recorded = []
    g = ember.ones(2, 3)
    pieces = [slices.SliceGrad(g * k, (2, 9), 1, 3 * k, 3 * k + 3) for k in (2, 0, 1)]
    import ember.ops.join as join

    orig = join.cat_or_view

    def spy(*a, **kw):
        recorded.append(kw.get("dim"))
        return orig(*a, **kw)

    join.cat_or_view = spy
    try:
        out = slices.merge(pieces, None)
    finally:
        join.cat_or_view = orig
    assert recorded == [1]
    np.testing.assert_array_equal(out.numpy()[0], [0, 0, 0, 1, 1, 1, 2, 2, 2])
    assert not any(np.shares_memory(out.numpy(), p.grad.numpy()) for p in pieces)  # a copy


def _views(buf, cols):
    """SliceGrads of ``buf``'s column ranges ``cols`` (as (lo, hi) in buf), placed at the
    consecutive starts of a (rows, total) input, in the order given."""
    t = ember.tensor(buf)
    arr = t.numpy()
    total = sum(hi - lo for lo, hi in cols)
    out, start = [], 0
    for lo, hi in cols:
        piece = ember.Tensor._make(arr[:, lo:hi], t.device)
        out.append(slices.SliceGrad(piece, (arr.shape[0], total), 1, start, start + hi - lo))
        start += hi - lo
    return arr, out


def test_merge_is_a_view_only_when_the_pieces_tile_one_buffer():
    buf = np.arange(18.0).reshape(2, 9)
    arr, pieces = _views(buf, [(0, 3), (3, 5), (5, 9)])
    out = slices.merge(pieces[::-1], None).numpy()  # (listed in any order)
    np.testing.assert_array_equal(out, buf)
    assert out.base is arr  # a view of the one buffer
    cases = {
        "swapped": [(3, 6), (0, 3), (6, 9)],  # adjacent in memory, but not in the input's order
        "gap": [(0, 3), (4, 7)],
        "overlap": [(0, 4), (3, 6)],
    }
    for name, cols in cases.items():
        arr, pieces = _views(buf, cols)
        out = slices.merge(pieces, None).numpy()
        want = np.concatenate([buf[:, lo:hi] for lo, hi in cols], axis=1)
        np.testing.assert_array_equal(out, want, err_msg=name)
        assert not np.shares_memory(out, arr), name
    a, b = (ember.tensor(buf[:, :3].copy()), ember.tensor(buf[:, 3:].copy()))  # two buffers
    two = [slices.SliceGrad(a, (2, 9), 1, 0, 3), slices.SliceGrad(b, (2, 9), 1, 3, 9)]
    out = slices.merge(two, None).numpy()
    np.testing.assert_array_equal(out, buf)
    assert not np.shares_memory(out, a.numpy()) and not np.shares_memory(out, b.numpy())
    ro = np.broadcast_to(np.arange(3.0), (2, 3))  # read-only views: copied
    pieces = [slices.SliceGrad(ember.Tensor._make(ro, a.device), (2, 6), 1, i, i + 3)
              for i in (0, 3)]  # fmt: skip
    assert slices.merge(pieces, None).numpy().flags.writeable


def test_adjacent_pieces_flow_through_backward_like_torch():
    def f(m, y):  # cat's backward hands the split adjacent views of one gradient
        a, b, c = y.split([2, 5, 1], dim=1)
        return (m.cat([a, b, c], dim=1) ** 2 * 0.5).sum()

    for leaf in (True, False):
        np.testing.assert_allclose(_grads(ember, f, leaf), _grads(torch, f, leaf), rtol=1e-12)
    x = ember.tensor(X.copy(), requires_grad=True)
    seed = np.ones((3, 8))
    ember.cat(x.split(3, dim=1), dim=1).backward(ember.tensor(seed))
    seed[:] = 7.0  # the leaf's gradient owns its memory
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((3, 8)))


def test_second_order_through_adjacent_pieces():
    def grads(m):
        x = m.tensor(X.copy(), requires_grad=True)
        z = m.cat(x.split(3, dim=1), dim=1)
        (gx,) = m.autograd.grad((z**3).sum(), x, create_graph=True)
        (gg,) = m.autograd.grad((gx * gx).sum(), x)
        return gx.detach().numpy(), gg.numpy()

    for a, b in zip(grads(ember), grads(torch)):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_compiled_step_with_adjacent_pieces_matches_eager():
    w = ember.tensor(X.copy(), requires_grad=True)

    def step():
        w.grad = None
        z = ember.cat(w.split([3, 3, 2], dim=1), dim=1)
        loss = (z.tanh() * z).sum()
        loss.backward()
        return loss

    step()
    eager = w.grad.numpy().copy()
    f = ember.compile(step)
    for _ in range(3):
        f()
        np.testing.assert_allclose(w.grad.numpy(), eager, rtol=1e-12)
    assert "f_cat_or_view(" in f.code


def test_second_order_through_split():
    x = ember.tensor(X.copy(), requires_grad=True)
    a, b = x.split(4, dim=1)
    (gx,) = ember.autograd.grad((a**3).sum() + (b**2).sum(), x, create_graph=True)
    (gg,) = ember.autograd.grad(gx.sum(), x)
    want = np.concatenate([6 * X[:, :4], np.full((3, 4), 2.0)], axis=1)
    np.testing.assert_allclose(gg.numpy(), want, rtol=1e-12)


def test_hooks_and_retain_grad_see_the_merged_gradient():
    x = ember.tensor(X.copy(), requires_grad=True)
    y = x * 2
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g.numpy().copy()))
    a, b = y.split(4, dim=1)
    (a.sum() + 3 * b.sum()).backward()
    want = np.concatenate([np.ones((3, 4)), np.full((3, 4), 3.0)], axis=1)
    np.testing.assert_array_equal(y.grad.numpy(), want)
    np.testing.assert_array_equal(seen[0], want)


def test_compiled_step_matches_eager():
    w = ember.tensor(X.copy(), requires_grad=True)

    def step():
        w.grad = None
        a, b, c = w.split([3, 3, 2], dim=1)
        loss = (a.tanh() * 2).sum() + (b * c.sum()).sum() + c.exp().sum()
        loss.backward()
        return loss

    step()
    eager = w.grad.numpy().copy()
    f = ember.compile(step)
    f()
    f()
    np.testing.assert_allclose(w.grad.numpy(), eager, rtol=1e-12)


def test_doctests():
    assert doctest.testmod(slices).failed == 0

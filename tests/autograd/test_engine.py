"""The autograd engine: accumulation, retain_graph, create_graph, hooks, grad modes, in-place
rules and deep graphs."""

import sys

import numpy as np
import pytest

import ember


def test_backward_accumulates_into_grad():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]


def test_shared_subexpression_gets_summed_gradient():
    x = ember.tensor([2.0], requires_grad=True)
    y = x * x
    z = y + y * y  # dz/dx = 2x + 4x^3
    z.sum().backward()
    assert x.grad.item() == pytest.approx(2 * 2 + 4 * 8)


def test_backward_twice_without_retain_graph_fails_clearly():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_nonscalar_backward_needs_gradient():
    x = ember.ones(3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar outputs"):
        y.backward()
    y.backward(ember.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]


def test_backward_on_tensor_without_grad_fails():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ember.ones(2).sum().backward()


def test_grad_does_not_touch_dot_grad_and_second_order():
    x = ember.tensor([1.0, 2.0], dtype=ember.float64, requires_grad=True)
    y = (x**3).sum()
    (g,) = ember.autograd.grad(y, x, create_graph=True)
    assert x.grad is None
    np.testing.assert_allclose(g.detach().numpy(), 3 * np.array([1.0, 4.0]))
    (gg,) = ember.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * np.array([1.0, 2.0]))


def test_grad_unused_input():
    x = ember.ones(2, requires_grad=True)
    z = ember.ones(2, requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match="not have been used"):
        ember.autograd.grad(y, [x, z], retain_graph=True)
    gx, gz = ember.autograd.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx.tolist() == [2.0, 2.0]


def test_grad_wrt_intermediate():
    x = ember.tensor([3.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    (gh,) = ember.autograd.grad(y, h)
    assert gh.tolist() == [12.0]


def test_no_grad_context_and_decorator():
    x = ember.ones(2, requires_grad=True)
    with ember.no_grad():
        y = x * 2
        with ember.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.is_leaf
    assert z.requires_grad

    @ember.no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert ember.is_grad_enabled()


def test_set_grad_enabled():
    x = ember.ones(1, requires_grad=True)
    with ember.set_grad_enabled(False):
        assert not (x * 1).requires_grad
    assert (x * 1).requires_grad


def test_retain_grad_and_hooks():
    x = ember.ones(2, requires_grad=True)
    h = x * 2
    h.retain_grad()
    seen = []
    handle = h.register_hook(lambda g: seen.append(g.tolist()))
    x.register_hook(lambda g: g * 10)
    (h * 3).sum().backward()
    assert h.grad.tolist() == [3.0, 3.0]
    assert seen == [[3.0, 3.0]]
    assert x.grad.tolist() == [60.0, 60.0]
    handle.remove()
    h2 = x * 2
    h2.register_hook(lambda g: seen.append("h2"))
    (h2 * 3).sum().backward()
    assert seen == [[3.0, 3.0], "h2"]  # the removed hook on h did not fire again


def test_deep_chain_is_iterative():
    x = ember.ones(1, requires_grad=True)
    y = x
    n = max(10_000, sys.getrecursionlimit() * 3)
    for _ in range(n):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0]


def test_broadcast_gradients_are_summed_to_input_shape():
    a = ember.ones(3, 1, requires_grad=True)
    b = ember.ones(4, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (3, 1) and a.grad.tolist() == [[4.0]] * 3
    assert b.grad.tolist() == [3.0] * 4


def test_inplace_on_leaf_requiring_grad_is_an_error():
    x = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        x += 1
    with ember.no_grad():
        x += 1
    assert x.tolist() == [2.0, 2.0]


def test_inplace_on_nonleaf_records_history():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += x  # y = 3x
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_inplace_mul_on_nonleaf_uses_old_value():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x + 0
    y *= x  # y = x^2
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_modifying_a_saved_tensor_is_detected():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x + 0
    z = y * y  # saves y
    y += 1
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        z.sum().backward()


def test_inplace_without_grad_shares_memory():
    a = ember.zeros(3)
    b = a.detach()
    a += 1
    assert b.tolist() == [1.0, 1.0, 1.0]


def test_inplace_dtype_rules():
    a = ember.zeros(2, dtype=ember.int64)
    with pytest.raises(ember.DTypeError, match="can't be cast"):
        a += 1.5
    f = ember.zeros(2)
    f += ember.ones(2, dtype=ember.int64)
    assert f.dtype == ember.float32


def test_requires_grad_only_for_floats():
    with pytest.raises(RuntimeError, match="floating point"):
        ember.ones(2, dtype=ember.int64, requires_grad=True)


def test_integer_outputs_do_not_require_grad():
    x = ember.ones(3, requires_grad=True)
    assert not (x > 0).requires_grad


def test_leaf_grad_is_owned_memory():
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(2)
    assert b.grad.tolist() == [1.0, 1.0, 1.0]


def test_dtype_of_gradient_matches_leaf():
    a = ember.ones(2, dtype=ember.float64, requires_grad=True)
    b = ember.ones(2, dtype=ember.float32, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == ember.float64 and b.grad.dtype == ember.float32


def test_detach_cuts_the_graph():
    x = ember.ones(2, requires_grad=True)
    y = (x * 2).detach()
    assert not y.requires_grad and y.grad_fn is None


def test_backward_inputs_argument_limits_accumulation():
    a = ember.ones(2, requires_grad=True)
    b = ember.ones(2, requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert a.grad is not None and b.grad is None

"""Division's integer-style family (ember/ops/division.py): its operators and in-place forms
reach its ops (values and gradients are in the op table, cases_elementwise.py)."""

from __future__ import annotations

import doctest

import numpy as np

import ember
from ember.ops import division


def test_operators_and_methods_reach_the_family():
    a = ember.tensor([7.0, -7.0, 5.5])
    np.testing.assert_array_equal((a // 2).numpy(), np.floor_divide(a.numpy(), 2))
    np.testing.assert_array_equal((9 // a).numpy(), np.floor_divide(9, a.numpy()))
    np.testing.assert_array_equal((a % 3).numpy(), np.remainder(a.numpy(), 3))
    np.testing.assert_array_equal((10 % a).numpy(), np.remainder(10, a.numpy()))
    np.testing.assert_array_equal(a.fmod(3).numpy(), np.fmod(a.numpy(), 3))
    np.testing.assert_array_equal(ember.div(a, 2, rounding_mode="floor").numpy(), [3, -4, 2])
    b = a.clone()
    b //= 2
    np.testing.assert_array_equal(b.numpy(), [3, -4, 2])
    b %= 2
    np.testing.assert_array_equal(b.numpy(), [1, 0, 0])
    b.remainder_(-3)
    np.testing.assert_array_equal(b.numpy(), np.remainder([1, 0, 0], -3))


def test_doctests_of_the_module():
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for t in doctest.DocTestFinder().find(division, division.__name__, globs={"ember": ember}):
        runner.run(t)
    assert runner.failures == 0 and runner.tries >= 4

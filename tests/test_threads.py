"""The BLAS thread policy."""

import pytest

import ember


def test_set_and_get_num_threads():
    before = ember.get_num_threads()
    try:
        ember.set_num_threads(1)
        assert ember.get_num_threads() == 1
    finally:
        ember.set_num_threads(max(before, 1))
    assert ember.get_num_threads() == max(before, 1)


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match="n must be >= 1"):
        ember.set_num_threads(0)

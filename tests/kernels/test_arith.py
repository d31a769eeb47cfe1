"""The two-array arithmetic kernel (``kernels.binary``: add, sub, mul) against NumPy, bit for
bit, and its wiring: the eager ops and the compiled graph's lowering use it for large arrays
of one shape, NumPy for everything else."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels.arith import MIN_SIZE

from .conftest import with_specials

OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
DTYPES = [np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("size", [MIN_SIZE, MIN_SIZE + 16383 + 7])
def test_matches_numpy_bit_for_bit(c_kernels, threaded, dtype, op, size):
    rng = np.random.default_rng(size)
    a = with_specials(rng.standard_normal(size).astype(dtype), rng)
    b = with_specials(rng.standard_normal(size).astype(dtype), rng)
    a[:3], b[:3] = [np.inf, np.inf, 0.0], [-np.inf, 0.0, np.inf]  # nan, inf, 0 * inf = nan
    with np.errstate(all="ignore"):
        want = OPS[op](a, b)
    got = kernels.binary(op, a, b)
    assert got is not None and got.dtype == want.dtype
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_into_out_and_in_place(c_kernels):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((MIN_SIZE // 64 + 1, 64)).astype(np.float32)
    b = rng.standard_normal(a.shape).astype(np.float32)
    out = np.empty_like(a)
    assert kernels.binary("add", a, b, out) is out
    np.testing.assert_array_equal(out, a + b)
    want = a * b
    assert kernels.binary("mul", a, b, a) is a  # the result over an operand
    np.testing.assert_array_equal(a, want)


def test_declines_what_numpy_must_do(c_kernels):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(MIN_SIZE + 64).astype(np.float32)
    b = rng.standard_normal(MIN_SIZE + 64).astype(np.float32)
    assert kernels.binary("add", a[: MIN_SIZE - 1], b[: MIN_SIZE - 1]) is None  # small
    assert kernels.binary("add", a[::2], b[::2]) is None  # not contiguous (and small)
    wide = np.stack([a, b])
    assert kernels.binary("add", wide[:, ::2], wide[:, 1::2]) is None  # not contiguous
    assert kernels.binary("add", a, b.astype(np.float64)) is None  # two dtypes
    assert kernels.binary("add", a.astype(np.int32), b.astype(np.int32)) is None  # integers
    assert kernels.binary("add", a.reshape(1, -1), b.reshape(-1, 1)[:1]) is None  # broadcast
    assert kernels.binary("add", a, 1.0) is None  # a number
    buf = np.empty(a.size + 1, np.float32)
    assert kernels.binary("add", buf[1:], b, buf[:-1]) is None  # out a shifted view of a
    assert kernels.binary("add", a, b, np.empty(a.size, np.float64)) is None  # out's dtype


def test_numpy_mode_gives_none():
    from ember.kernels import runtime

    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        a = np.ones(MIN_SIZE, np.float32)
        assert kernels.binary("add", a, a) is None
    finally:
        runtime.set_mode(before)


@pytest.mark.parametrize("compiled", [False, True])
def test_the_ops_use_it_for_large_arrays_only(c_kernels, served, compiled, monkeypatch):
    from ember.graph import steps

    monkeypatch.setattr(steps, "ENABLED", False)  # the generated code, not one C call
    rng = np.random.default_rng(3)
    big = [ember.tensor(rng.standard_normal((MIN_SIZE // 32 + 1, 32)).astype(np.float32))
           for _ in range(2)]  # fmt: skip
    small = [ember.tensor(rng.standard_normal((4, 32)).astype(np.float32)) for _ in range(2)]

    def f(a, b):
        return (a + b).softmax(-1) - a  # no chain to fuse: two lone ops

    run = ember.compile(f) if compiled else f
    for args, used in ((big, 2), (small, 0)):
        if compiled:
            run(*args)  # (the trace runs the ops eagerly)
        served.clear()
        got = run(*args)
        assert served["binary"] == used, served
        if compiled:
            assert run.code.count("_arith(") == 2
        np.testing.assert_allclose(got.numpy(), f(*args).numpy(), rtol=1e-5, atol=1e-6)


def test_broadcasts_and_numbers_stay_on_numpy_when_compiled(c_kernels, served, monkeypatch):
    from ember.graph import steps

    monkeypatch.setattr(steps, "ENABLED", False)
    rng = np.random.default_rng(4)
    a = ember.tensor(rng.standard_normal((MIN_SIZE // 32 + 1, 32)).astype(np.float32))
    c = ember.tensor(rng.standard_normal(32).astype(np.float32))
    for fn in (lambda a, c: a + c, lambda a, c: a * 2.0):
        f = ember.compile(fn)
        f(a, c)
        served.clear()
        got = f(a, c)
        assert served["binary"] == 0 and "_arith(" not in f.code, served
        np.testing.assert_allclose(got.numpy(), fn(a, c).numpy(), rtol=1e-6)

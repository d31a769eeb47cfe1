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


# -- column sums ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,cols", [(1, 5), (63, 7), (64, 300), (65, 1), (130, 513), (2048, 96)])
def test_column_sums_match_a_float64_sum_and_any_thread_count(
    c_kernels, monkeypatch, dtype, rows, cols
):
    """Blocks of 64 rows summed in order, then the blocks in order: close to the exact sums,
    and the same bits on 1 and 2 threads (also where a block is cut short)."""
    monkeypatch.setattr(kernels.arith, "MIN_SIZE", 1)
    rng = np.random.default_rng(rows * 1000 + cols)
    x = rng.standard_normal((rows, cols)).astype(dtype)
    got = []
    for n in (1, 2):
        monkeypatch.setattr(ember.threads, "_kernel_threads", n)
        monkeypatch.setattr(ember.threads, "MIN_WORK_PER_THREAD", 1)
        got.append(kernels.column_sums(x))
    assert got[0] is not None and got[0].shape == (cols,) and got[0].dtype == dtype
    np.testing.assert_array_equal(got[0], got[1])
    tol = 1e-5 if dtype == np.float32 else 1e-12
    want = x.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(got[0], want, rtol=tol, atol=tol * np.sqrt(rows))
    if rows <= 64:  # one block: row after row, NumPy's own order
        np.testing.assert_array_equal(got[0], x.sum(axis=0))


def test_column_sums_carry_inf_and_nan(c_kernels, monkeypatch):
    monkeypatch.setattr(kernels.arith, "MIN_SIZE", 1)
    x = np.ones((200, 4), np.float32)
    x[3, 0], x[150, 1], x[70, 2], x[71, 2] = np.nan, np.inf, np.inf, -np.inf
    got = kernels.column_sums(x)
    assert np.isnan(got[0]) and got[1] == np.inf and np.isnan(got[2]) and got[3] == 200.0


def test_column_sums_decline_what_numpy_must_do(c_kernels):
    x = np.ones((MIN_SIZE // 8 + 1, 8), np.float32)
    assert kernels.column_sums(x) is not None
    assert kernels.column_sums(x[:8]) is None  # small
    assert kernels.column_sums(x.astype(np.int64)) is None  # integers
    assert kernels.column_sums(np.asfortranarray(x)) is None  # not C-contiguous
    assert kernels.column_sums(x.reshape(-1)) is None  # not a matrix


def test_sums_over_leading_axes_use_it(c_kernels, served):
    """``sum`` over the leading axes (and ``sum_to`` that drops them) of a large float array
    take the kernel; other axes, and small arrays, NumPy's sum."""
    rng = np.random.default_rng(4)
    x = ember.tensor(rng.standard_normal((16, 128, 96)).astype(np.float32))
    want = x.numpy().astype(np.float64).sum(axis=(0, 1))
    np.testing.assert_allclose(ember.sum(x, (0, 1)).numpy(), want, rtol=1e-5, atol=1e-4)
    assert served["column_sums"] == 1
    assert ember.sum(x, (0, 1), keepdim=True).shape == (1, 1, 96) and served["column_sums"] == 2
    ember.sum(x, 1), ember.sum(x, (1, 2)), ember.sum(x[:2, :2], 0)  # inner axes; small
    strided = x.transpose(0, 1)  # large but strided: NumPy sums it in place, no copy
    np.testing.assert_allclose(ember.sum(strided, (0, 1)).numpy(), want, rtol=1e-5, atol=1e-4)
    assert served["column_sums"] == 2
    from ember.ops.shape import _sum_to

    np.testing.assert_allclose(
        _sum_to.forward(np, x.numpy(), (128, 96)), x.numpy().sum(axis=0), rtol=1e-5, atol=1e-5
    )
    assert served["column_sums"] == 3


def test_a_linear_layers_bias_gradient_is_a_column_sum(c_kernels, served):
    """No ``ones @ dY`` through OpenBLAS (which woke its threads at every bias gradient of
    W3's step): ``sum(dY, 0)`` on ember's threads, eager and compiled."""
    rng = np.random.default_rng(5)
    lin = ember.nn.Linear(64, 512)
    x = ember.tensor(rng.standard_normal((2048, 64)).astype(np.float32))
    g = rng.standard_normal((2048, 512)).astype(np.float32)
    lin(x).backward(ember.tensor(g))
    want = g.astype(np.float64).sum(axis=0)
    np.testing.assert_allclose(lin.bias.grad.numpy(), want, rtol=1e-5, atol=1e-4)
    assert served["column_sums"] == 1

    def step(x):
        lin.zero_grad()
        loss = (lin(x) * 2).sum()
        loss.backward()
        return loss

    fc = ember.compile(step)
    for _ in range(2):
        fc(x)
    np.testing.assert_allclose(lin.bias.grad.numpy(), np.full(512, 4096.0), rtol=1e-6)
    ops = [n.op for n in fc._last.graph.nodes]
    assert "sum" in ops and not any(
        n.op == "matmul" and n.inputs[0].ndim == 1 for n in fc._last.graph.nodes
    )

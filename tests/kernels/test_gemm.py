"""The matrix product kernel (``gemm``) against ``np.matmul``, and where the ops use it.

Float32 and float64, 1 and 2 threads, edge sizes (1, odd, not multiples of the 6 x 16
register block), operands that are transposed views, slices (non-contiguous, negative
strides), ``out`` with a row stride, ``bias`` and ``accumulate``, inf and NaN landing where
NumPy puts them, and the calls the kernel declines (None).
"""

from __future__ import annotations

import numpy as np
import pytest

from ember.kernels import gemm, runtime
from ember.kernels._seam import kernel
from ember.kernels.gemm import MIN_ROWS, MIN_WIDE_SIDE, MIN_WIDE_WORK, matmul, serves, tall_matmul

from .conftest import with_specials

DTYPES = [np.float32, np.float64]
# (M, N, K)
SHAPES = [
    (1, 1, 1),
    (1, 7, 5),
    (2, 33, 17),
    (3, 16, 8),
    (6, 16, 1),
    (7, 17, 9),
    (13, 5, 300),
    (64, 96, 128),
    (65, 130, 257),
    (9, 20, 512),  # the deepest product done in one pass over K
    (5, 18, 513),  # the shallowest one split
    (20, 40, 800),
]


def _tol(dtype, K):
    if dtype == np.float32:
        return {"rtol": 1e-4, "atol": 2e-5 * np.sqrt(K)}
    return {"rtol": 1e-11, "atol": 1e-12 * np.sqrt(K)}


def _operand(rng, rows, cols, dtype, layout):
    if layout == "c":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "t":  # a transposed view (F-contiguous)
        return rng.standard_normal((cols, rows)).astype(dtype).T
    if layout == "slice":  # every other column of a wider array, rows reversed
        return rng.standard_normal((rows, 2 * cols + 1)).astype(dtype)[::-1, 1::2]
    raise ValueError(layout)


def _check(a, b, **kw):
    want = a @ b
    if kw.get("bias") is not None:
        want = want + kw["bias"]
    got = matmul(a, b, **kw)
    assert got is not None, "the kernel declined the call"
    np.testing.assert_allclose(got, want, equal_nan=True, **_tol(a.dtype, a.shape[1]))
    return got


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layouts", ["cc", "ct", "tc", "tt", "sc", "cs"])
def test_matches_numpy(c_kernels, threaded, dtype, shape, layouts):
    M, N, K = shape
    rng = np.random.default_rng(M * 1000 + N * 10 + K)
    kinds = {"c": "c", "t": "t", "s": "slice"}
    a = _operand(rng, M, K, dtype, kinds[layouts[0]])
    b = _operand(rng, K, N, dtype, kinds[layouts[1]])
    _check(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 9, 20), (2, 70, 9), (7, 17, 9), (40, 50, 300)], ids=str)
def test_bias_out_and_accumulate(c_kernels, threaded, dtype, shape):
    M, N, K = shape
    rng = np.random.default_rng(7)
    a = rng.standard_normal((M, K)).astype(dtype)
    w = rng.standard_normal((N, K)).astype(dtype)
    bias = rng.standard_normal(N).astype(dtype)
    _check(a, w.T, bias=bias)
    _check(a, np.ascontiguousarray(w.T), bias=bias[::-1])  # a strided bias
    big = np.full((M, N + 3), 5.0, dtype)  # out with a row stride
    out = big[:, 1 : N + 1]
    assert _check(a, w.T, out=out) is out
    assert (big[:, 0] == 5).all() and (big[:, N + 1 :] == 5).all()
    before = out.copy()
    got = matmul(a, w.T, out=out, bias=bias, accumulate=True)
    np.testing.assert_allclose(got, before + a @ w.T + bias, **_tol(dtype, K))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 20, 30), (2, 9, 7), (9, 33, 17), (30, 40, 70)], ids=str)
def test_inf_and_nan_spread_as_in_numpy(c_kernels, threaded, dtype, shape):
    M, N, K = shape
    rng = np.random.default_rng(3)
    a = with_specials(rng.standard_normal((M, K)).astype(dtype), rng, 0.02)
    b = with_specials(rng.standard_normal((N, K)).astype(dtype), rng, 0.02).T
    a[0, :] = 0  # zero times inf is NaN: no product may be skipped
    b[:, 0] = np.inf
    with np.errstate(all="ignore"):
        want = a @ b
        got = matmul(a, b)
    assert got is not None
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], **_tol(dtype, K))


def test_fresh_results_start_on_a_cache_line(c_kernels):
    a = np.ones((256, 64), np.float32)
    c = matmul(a, a.T)
    assert c is not None and c.flags.c_contiguous
    assert c.__array_interface__["data"][0] % 64 == 0


def test_declines(c_kernels):
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    assert matmul(a, b.astype(np.float64)) is None  # mixed dtypes
    assert matmul(a.astype(np.int64), b.astype(np.int64)) is None
    assert matmul(a, np.ones((5, 4), np.float32)) is None  # shapes do not match
    assert matmul(a[0], b) is None  # not 2-D
    assert matmul(a, b[:, :0]) is None  # empty
    assert matmul(a, b, out=np.empty((3, 5), np.float64)) is None
    assert matmul(a, b, out=np.empty((5, 3), np.float32).T) is None  # strided columns
    assert matmul(a, b, accumulate=True) is None  # nothing to add to
    c = np.ones((4, 4), np.float32)
    assert matmul(c, c, out=c) is None  # out overlaps an operand
    assert matmul(a, b, bias=np.ones(4, np.float32)) is None


def test_numpy_mode_gives_none():
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        assert matmul(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)) is None
    finally:
        runtime.set_mode(before)


def test_tall_matmul_serves_tall_or_deep_products_only(c_kernels):
    rng = np.random.default_rng(11)
    b = rng.standard_normal((40, 24)).astype(np.float32)
    assert tall_matmul(rng.standard_normal((MIN_ROWS - 1, 40)).astype(np.float32), b) is None
    a = rng.standard_normal((MIN_ROWS + 5, 40)).astype(np.float32)
    bias = rng.standard_normal(24).astype(np.float32)
    got = tall_matmul(a, b, bias=bias)
    np.testing.assert_allclose(got, a @ b + bias, **_tol(np.float32, 40))
    assert tall_matmul(a[0], b) is None  # not 2-D
    deep = rng.standard_normal((24, MIN_ROWS)).astype(np.float32)  # a weight gradient's shape
    got = tall_matmul(deep, a[:MIN_ROWS])
    np.testing.assert_allclose(got, deep @ a[:MIN_ROWS], **_tol(np.float32, MIN_ROWS))


def test_an_avx512_kernel_also_serves_large_short_products(c_kernels, monkeypatch):
    # W1's 128-row products: with 64-byte vectors the kernel beat OpenBLAS on them (it
    # does not with 32-byte ones); never on a product with fewer than MIN_WIDE_SIDE columns
    dt = np.dtype(np.float32)
    wide = kernel("gemm", "gemm_lanes", dt)() * dt.itemsize >= 64
    rng = np.random.default_rng(13)
    a = rng.standard_normal((128, 512)).astype(np.float32)
    b = rng.standard_normal((512, 256)).astype(np.float32)
    assert 128 * 512 * 256 >= MIN_WIDE_WORK
    assert serves(128, 512, 256, dt) == wide
    got = tall_matmul(a, b)
    assert (got is not None) == wide
    if wide:
        np.testing.assert_allclose(got, a @ b, **_tol(np.float32, 512))
    assert not serves(128, 512, MIN_WIDE_SIDE - 1, dt)  # a classifier's 10 columns
    assert not serves(MIN_WIDE_SIDE - 1, 512, 256, dt)
    assert not serves(64, 64, 64, dt)  # too little work
    assert serves(None, 512, 256, dt) and serves(MIN_ROWS, 8, 8, dt)  # unknown; tall
    # asked while the C kernels are off, the width is not remembered as zero
    monkeypatch.setattr(gemm, "_VECTOR_BYTES", {})
    runtime.set_mode("numpy")
    try:
        assert not serves(128, 512, 256, dt)
    finally:
        runtime.set_mode("auto")
    assert serves(128, 512, 256, dt) == wide


@pytest.mark.parametrize("compiled", [False, True])
def test_linear_and_matmul_use_the_kernel_for_tall_products_only(c_kernels, served, compiled):
    import ember

    rng = np.random.default_rng(12)
    w = ember.tensor(rng.standard_normal((24, 40)).astype(np.float32), requires_grad=True)
    b = ember.tensor(rng.standard_normal(24).astype(np.float32), requires_grad=True)

    def f(x):
        h = ember.nn.functional.linear(x, w, b)  # forward: x @ W.T + b, fused bias
        return (h @ w).sum()  # a matmul op; the backward's g @ W is one too

    run = ember.compile(f) if compiled else f
    for rows, tall in ((MIN_ROWS + 7, True), (64, False)):
        x = ember.tensor(rng.standard_normal((rows, 40)).astype(np.float32))
        served.clear()
        for _ in range(2):  # (compiled: the trace, then the generated code)
            w.grad = b.grad = None
            loss = run(x)
            if not compiled:
                loss.backward()
        assert (served["tall_matmul"] > 0) == tall, served
        want = f(x)
        np.testing.assert_allclose(loss.item(), want.item(), rtol=1e-4)


@pytest.mark.parametrize("layout", ["c", "t"])
@pytest.mark.parametrize("m", [6, 7, 12, 13])
def test_a_packing_at_every_inner_length_near_the_vector_steps(c_kernels, layout, m):
    # rows of A are packed 8 columns at a time (a transpose whose stores reach 2 floats into
    # the next step), columns of A 8 rows at a time (6 kept): every K around those steps,
    # with the B panel packed just before A in the same scratch
    rng = np.random.default_rng(m)
    for k in range(1, 27):
        a = _operand(rng, m, k, np.float32, layout)
        b = rng.standard_normal((k, 40)).astype(np.float32)
        _check(a, b)
        _check(a, b, bias=rng.standard_normal(40).astype(np.float32))

"""The linear-chain kernel (``gemv``) against a float64 NumPy reference.

Float32 and float64; 1 to 8 rows (also 1-D and 3-D inputs); widths that are not multiples
of the vector (16 floats, 8 doubles) or of the 4-row block; a missing bias; every activation
(against its op's NumPy path, in both tails) or none after each layer; 1 and 2 threads (bit-identical); a non-contiguous input; inf and NaN
where NumPy puts them; the prepared-chain cache (a replaced weight is seen, a deleted one is
not kept alive); and every call the kernel declines (None).
"""

from __future__ import annotations

import gc
import warnings
import weakref

import numpy as np
import pytest

from ember import memory as ember_memory
from ember import threads
from ember.kernels import gemv
from ember.kernels.gemv import ACTS, MAX_LAYERS, MAX_ROWS, linear_chain
from ember.ops.nn.linear import CHAIN_ACTIVATIONS
from ember.ops.registry import REGISTRY

from .conftest import numpy_path

DTYPES = [np.float32, np.float64]
# (rows of x, widths of the chain)
CHAINS = [
    (1, (784, 512, 512, 10)),  # W4's MLP
    (1, (1, 1)),
    (1, (7, 5, 3)),
    (2, (9, 17, 33, 4)),
    (3, (16, 8, 1)),
    (5, (33, 6, 13, 7, 2)),
    (8, (300, 129, 64)),
]


def _tol(dtype, k):
    if dtype == np.float32:
        return {"rtol": 1e-5, "atol": 2e-6 * np.sqrt(k)}
    return {"rtol": 1e-12, "atol": 1e-13 * np.sqrt(k)}


def _chain(rng, dims, dtype, bias=True):
    params = []
    for k, n in zip(dims, dims[1:]):
        params.append((rng.standard_normal((n, k)) / np.sqrt(k)).astype(dtype))
        params.append(rng.standard_normal(n).astype(dtype) if bias else None)
    return params


def _reference(x, params, acts):
    """The chain in float64, each activation by its op's NumPy path (the reference)."""
    y = x.astype(np.float64)
    with numpy_path():
        for w, b, act in zip(params[0::2], params[1::2], acts):
            y = y @ w.astype(np.float64).T
            if b is not None:
                y = y + b
            op, attrs = CHAIN_ACTIVATIONS[act]
            if op:
                y = REGISTRY[op].forward(np, y, **attrs)
    return y


def _check(y, want, dtype, k):
    assert y is not None, "the kernel declined the call"
    assert y.dtype == dtype and y.shape == want.shape
    np.testing.assert_allclose(y, want, equal_nan=True, **_tol(dtype, k))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("rows,dims", CHAINS)
def test_matches_numpy(c_kernels, threaded, rows, dims, dtype):
    rng = np.random.default_rng(len(dims) * 10 + rows)
    params = _chain(rng, dims, dtype)
    acts = ["relu"] * (len(dims) - 2) + ["none"]
    x = rng.standard_normal((rows, dims[0])).astype(dtype)
    _check(linear_chain(x, params, acts), _reference(x, params, acts), dtype, max(dims))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_no_bias_and_every_activation_pattern(c_kernels, threaded, dtype):
    rng = np.random.default_rng(3)
    dims = (13, 21, 9, 6)
    x = rng.standard_normal((2, 13)).astype(dtype)
    for bias in (True, False):
        params = _chain(rng, dims, dtype, bias)
        params[3] = None  # the middle layer never has one
        for acts in (["none"] * 3, ["relu"] * 3, ["relu", "none", "relu"]):
            _check(linear_chain(x, params, acts), _reference(x, params, acts), dtype, 21)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("act", sorted(ACTS))
def test_every_activation_matches_its_op(c_kernels, threaded, act, dtype):
    """Each activation as its op computes it, also far out in both tails (where GELU and
    SiLU of -inf are NaN, sigmoid saturates, and float32's exp over- and underflows)."""
    assert set(ACTS) == set(CHAIN_ACTIVATIONS)
    rng = np.random.default_rng(10)
    params = _chain(rng, (13, 9, 5), dtype)
    params[1][:3] = np.array([-200.0, 200.0, -20.0], dtype)  # biases into the tails
    params[1][3] = -np.inf
    x = rng.standard_normal((3, 13)).astype(dtype)
    x[2, 0] = np.nan
    acts = [act, act]
    y, want = linear_chain(x, params, acts), _reference(x, params, acts)
    _check(y, want, dtype, 13)
    h = linear_chain(x, params[:2], [act])
    _check(h, _reference(x, params[:2], [act]), dtype, 13)


def test_input_shapes(c_kernels):
    rng = np.random.default_rng(4)
    params = _chain(rng, (10, 12, 3), np.float32)
    acts = ["relu", "none"]
    x1 = rng.standard_normal(10).astype(np.float32)
    y1 = linear_chain(x1, params, acts)
    assert y1.shape == (3,)
    _check(y1, _reference(x1[None], params, acts)[0], np.float32, 12)
    x3 = rng.standard_normal((2, 3, 10)).astype(np.float32)
    y3 = linear_chain(x3, params, acts)
    assert y3.shape == (2, 3, 3)
    _check(y3, _reference(x3.reshape(6, 10), params, acts).reshape(2, 3, 3), np.float32, 12)
    strided = rng.standard_normal((4, 20)).astype(np.float32)[::2, ::2]  # not contiguous
    _check(linear_chain(strided, params, acts), _reference(strided, params, acts), np.float32, 12)


def test_threads_do_not_change_the_result(c_kernels, monkeypatch):
    """Each output is computed by one thread, in the same order, whichever it is: 1 and 2
    threads agree bit for bit (also where a thread's rows end inside a 4-row block)."""
    rng = np.random.default_rng(5)
    params = _chain(rng, (200, 70, 38, 3), np.float32)
    x = rng.standard_normal((3, 200)).astype(np.float32)
    monkeypatch.setattr(gemv, "MIN_WORK_PER_THREAD", 1)
    out = []
    for n in (1, 2):
        monkeypatch.setattr(threads, "_kernel_threads", n)
        out.append(linear_chain(x, params, ["relu", "relu", "none"]))
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("shift", [4, 8, 12, 16, 32, 48])  # bytes past a cache line
def test_where_a_weight_starts_does_not_change_the_result(c_kernels, shift):
    """The same lanes sum the same products wherever a weight starts (the vectors are loaded
    unaligned, not peeled to a boundary): bit for bit as from a cache line."""
    rng = np.random.default_rng(8)
    params = _chain(rng, (200, 70, 38), np.float32)
    x = rng.standard_normal((2, 200)).astype(np.float32)
    moved = []
    for p in params:
        raw = np.empty(p.nbytes + 64 + shift, np.uint8)
        start = -raw.ctypes.data % 64 + shift
        q = raw[start : start + p.nbytes].view(np.float32).reshape(p.shape)
        q[...] = p
        moved.append(q)
    assert moved[0].ctypes.data % 64 == shift % 64
    aligned = [ember_memory.aligned_copy(p) for p in params]
    assert aligned[0].ctypes.data % 64 == 0
    want = linear_chain(x, aligned, ["relu", "none"])
    np.testing.assert_array_equal(linear_chain(x, moved, ["relu", "none"]), want)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_inf_and_nan(c_kernels, threaded, dtype):
    """A zero weight times inf is NaN (no product is skipped), NaN survives ReLU, and a
    ReLU of -inf is 0, as in NumPy."""
    rng = np.random.default_rng(6)
    params = _chain(rng, (11, 6, 5), dtype)
    params[0][2, :] = 0  # row 2 of layer 1: all zero weights
    x = rng.standard_normal((3, 11)).astype(dtype)
    x[0, 4] = np.inf  # row 0: inf meets the zero row -> NaN there, +-inf elsewhere
    x[1, 7] = np.nan  # row 1: NaN everywhere
    params[1][5] = -np.inf  # output 5 of layer 1 is -inf before the ReLU, 0 after it
    acts = ["relu", "none"]
    y = linear_chain(x, params, acts)
    want = _reference(x, params, acts)
    assert np.isnan(want[1]).all() and not np.isfinite(want[0]).all()
    _check(y, want, dtype, 11)
    h = linear_chain(x, params[:2], ["relu"])
    assert np.isnan(h[0, 2]) and np.isnan(h[1]).all() and h[2, 5] == 0


def test_a_replaced_weight_is_used(c_kernels):
    """The prepared chain is keyed by the parameters' identities and checked on every call:
    a weight replaced by another array, or reshaped in place, is not served stale."""
    rng = np.random.default_rng(7)
    params = _chain(rng, (8, 8, 4), np.float64)
    x = rng.standard_normal((1, 8))
    acts = ["none", "none"]
    _check(linear_chain(x, params, acts), _reference(x, params, acts), np.float64, 8)
    params[2] = params[2] * 2  # a new array
    _check(linear_chain(x, params, acts), _reference(x, params, acts), np.float64, 8)
    params[0][:] = 0  # written in place: read at every call
    _check(linear_chain(x, params, acts), _reference(x, params, acts), np.float64, 8)
    with warnings.catch_warnings():  # (NumPy 2.5 deprecates assigning .shape)
        warnings.simplefilter("ignore", DeprecationWarning)
        params[2].shape = (2, 16)  # no longer chains: declined
    assert linear_chain(x, params, acts) is None


def test_the_cache_keeps_no_weight_alive(c_kernels):
    rng = np.random.default_rng(8)
    params = _chain(rng, (8, 8, 4), np.float32)
    x = rng.standard_normal((1, 8)).astype(np.float32)
    assert linear_chain(x, params, ["relu", "none"]) is not None
    ref = weakref.ref(params[0])
    del params
    gc.collect()
    assert ref() is None


def test_declines(c_kernels):
    rng = np.random.default_rng(9)
    params = _chain(rng, (6, 5, 4), np.float32)
    x = rng.standard_normal((2, 6)).astype(np.float32)
    acts = ["relu", "none"]
    assert linear_chain(x, params, acts) is not None
    big = rng.standard_normal((MAX_ROWS + 1, 6)).astype(np.float32)
    assert linear_chain(big, params, acts) is None  # too many rows
    assert linear_chain(x.astype(np.float64), params, acts) is None  # dtypes differ
    assert linear_chain(x.astype(np.int64), params, acts) is None
    assert linear_chain(np.float32(1.0), params, acts) is None  # 0-d
    assert linear_chain(x[:, :0], [np.ones((5, 0), np.float32), None], ["none"]) is None
    assert linear_chain(x, params, ["elu", "none"]) is None  # no such activation here
    assert linear_chain(x, params, ["relu"]) is None  # one act per layer
    assert linear_chain(x, params[:3], acts) is None  # (W, b) pairs
    t = [params[0].T.copy().T, *params[1:]]  # a weight that is not C-contiguous
    assert linear_chain(x, t, acts) is None
    assert linear_chain(x, [params[0], params[1][:4], *params[2:]], acts) is None  # bias
    assert linear_chain(x, [params[0], params[1], params[2][:, :3], params[3]], acts) is None
    deep = [np.eye(6, dtype=np.float32), None] * (MAX_LAYERS + 1)
    assert linear_chain(x, deep, ["none"] * (MAX_LAYERS + 1)) is None
    assert linear_chain(x, deep[:-2], ["none"] * MAX_LAYERS) is not None

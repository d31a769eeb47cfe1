"""Fixtures of the C kernel tests.

* ``c_kernels``: the C kernels in ``auto`` mode (whatever ``EMBER_KERNELS`` says for the
  rest of the suite); the test is skipped when no C compiler can build them here.
* ``threaded``: kernels split even tiny inputs over 2 threads, so the parallel paths run.
* ``served``: counts of the seam calls the C kernels served, by seam name.
* :func:`numpy_path`: a context in which the op registry's forwards run their NumPy path
  (they are the reference, even once the ops call the kernels).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ember import kernels, threads
from ember.kernels import build, gemv, runtime


@contextlib.contextmanager
def numpy_path():
    """Run the body with ``EMBER_KERNELS=numpy`` semantics (and NumPy's floating-point
    warnings off: the references see inf and NaN on purpose), then restore the mode."""
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        runtime.set_mode(before)


@pytest.fixture
def c_kernels():
    before = runtime.mode()
    runtime.set_mode("auto")
    try:
        if not kernels.available():
            pytest.skip("the C kernels cannot be built here (no working C compiler)")
        yield
    finally:
        runtime.set_mode(before)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threaded(request, monkeypatch):
    """Run with 1 thread, then with 2 threads splitting even the smallest inputs."""
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", 1)
    monkeypatch.setattr(gemv, "MIN_WORK_PER_THREAD", 1)  # (its own threshold)
    monkeypatch.setattr(threads, "_kernel_threads", request.param)
    return request.param


def with_specials(x: np.ndarray, rng: np.random.Generator, fraction: float = 0.05) -> np.ndarray:
    """A copy of ``x`` with about ``fraction`` of its entries set to inf, -inf or NaN."""
    out = x.copy()
    mask = rng.random(x.shape) < fraction
    out[mask] = rng.choice(np.array([np.inf, -np.inf, np.nan], dtype=x.dtype), size=mask.sum())
    return out


def tolerance(dtype: np.dtype) -> dict:
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def assert_close(actual, expected, dtype=None) -> None:
    """``actual`` equals ``expected`` within the dtype's tolerance; inf, -inf and NaN must sit
    at the same places."""
    assert actual is not None, "the kernel declined the call"
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    tol = tolerance(np.dtype(dtype or actual.dtype))
    np.testing.assert_allclose(actual, expected, equal_nan=True, **tol)


NOT_SEAMS = {"available", "prepare", "info", "describe", "mode", "set_mode", "col2im_available"}
SEAMS = [n for n in kernels.__all__ if n not in NOT_SEAMS and n[0].islower()]


@pytest.fixture
def served(monkeypatch):
    """Counts, by name, of the seam calls (every array-level function of ``ember.kernels``)
    that the C kernels served: those that returned neither None nor False."""
    calls: Counter = Counter()
    for name in SEAMS:
        f = getattr(kernels, name)

        def counted(*args, _f=f, _name=name, **kw):
            out = _f(*args, **kw)
            if out is not None and out is not False:
                calls[_name] += 1
            return out

        monkeypatch.setattr(kernels, name, counted)
    return calls


IMPLICIT = ("implicit_conv2d", "implicit_weight_grad", "implicit_transpose2d", "implicit_available")


@pytest.fixture
def no_implicit(monkeypatch):
    """The implicit-GEMM convolution kernels decline every call, so that the conv ops take
    their im2col + GEMM (+ col2im) path, which the tests using this fixture check."""
    for name in IMPLICIT:
        monkeypatch.setattr(kernels, name, lambda *a, **k: None)


REPO = Path(__file__).resolve().parents[2]


def toolchain_or_skip() -> build.Toolchain:
    """The C toolchain, or skip the test where there is none."""
    try:
        return build.toolchain()
    except build.KernelBuildError as e:
        pytest.skip(f"no C compiler here: {e}")

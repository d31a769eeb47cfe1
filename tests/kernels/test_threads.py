"""The thread policy shared by BLAS and the C kernels: set_num_threads, the size threshold,
per-thread caps (data loader threads), forked children, results independent of threads."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

import ember
from ember import kernels, threads


@pytest.fixture
def restore_threads():
    saved = threads._kernel_threads
    before = ember.get_num_threads()
    yield
    ember.set_num_threads(max(before, 1))
    threads._kernel_threads = saved


def test_set_num_threads_caps_the_kernels(restore_threads):
    ember.set_num_threads(3)
    assert threads.kernel_threads(10**9) == 3
    ember.set_num_threads(1)
    assert threads.kernel_threads(10**9) == 1


def test_small_work_stays_on_the_calling_thread(restore_threads):
    ember.set_num_threads(8)
    assert threads.kernel_threads(0) == 1
    assert threads.kernel_threads(2 * threads.MIN_WORK_PER_THREAD - 1) == 1
    assert threads.kernel_threads(2 * threads.MIN_WORK_PER_THREAD) == 2
    assert threads.kernel_threads(5 * threads.MIN_WORK_PER_THREAD) == 5
    assert threads.kernel_threads(100 * threads.MIN_WORK_PER_THREAD) == 8


def test_limit_this_thread_applies_to_one_thread_only(restore_threads):
    ember.set_num_threads(4)
    seen = {}

    def loader():
        threads.limit_this_thread(1)
        seen["loader"] = threads.kernel_threads(10**9)

    t = threading.Thread(target=loader)
    t.start()
    t.join()
    assert seen["loader"] == 1
    assert threads.kernel_threads(10**9) == 4
    with pytest.raises(ValueError, match="n must be >= 1"):
        threads.limit_this_thread(0)


def _child(queue):
    x = np.random.default_rng(0).standard_normal((256, 512)).astype(np.float32)
    y = kernels.softmax_forward(x, -1)
    queue.put((threads.kernel_threads(10**9), None if y is None else float(y.sum())))


@pytest.mark.skipif(not hasattr(multiprocessing, "get_context"), reason="no multiprocessing")
def test_forked_child_runs_kernels_single_threaded(c_kernels, restore_threads):
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    ember.set_num_threads(2)
    x = np.random.default_rng(1).standard_normal((256, 512)).astype(np.float32)
    kernels.softmax_forward(x, -1)  # the parent has used its OpenMP thread pool
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    nt, total = q.get(timeout=120)
    p.join(timeout=120)
    assert p.exitcode == 0
    assert nt == 1 and total == pytest.approx(256, rel=1e-4)


def test_results_do_not_depend_on_the_thread_count(c_kernels, restore_threads, monkeypatch):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, 300)).astype(np.float32)
    g = rng.standard_normal((64, 300)).astype(np.float32)
    monkeypatch.setattr(threads, "MIN_WORK_PER_THREAD", 1)
    outs = []
    for n in (1, 2, 3):
        ember.set_num_threads(n)
        y, mean, rstd = kernels.layer_norm_forward(x, 1, np.ones(300, np.float32), None)
        dx, dw, db = kernels.layer_norm_backward(g, x, mean, rstd, 1, np.ones(300, np.float32))
        outs.append((kernels.softmax_forward(x, 0), y, dx, dw, db))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            np.testing.assert_array_equal(a, b)  # bit-identical: fixed blocks, fixed order


_EXIT_CHILD = """
import numpy as np
import ember
ember.set_num_threads(2)
assert ember.kernels.gelu_forward(np.linspace(-3, 3, 1 << 20, dtype=np.float32)) is not None
print("done")
"""


def test_a_process_with_busy_waiting_openmp_threads_exits_cleanly(c_kernels):
    # cffi closes its libraries at exit; unmapping the OpenMP runtime while its threads
    # spin in it (OMP_WAIT_POLICY=ACTIVE) crashed the process on the way out (SIGSEGV)
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_WAIT_POLICY="ACTIVE")
    r = subprocess.run(
        [sys.executable, "-c", _EXIT_CHILD], env=env, capture_output=True, text=True, timeout=120
    )
    assert (r.returncode, r.stdout.strip()) == (0, "done"), r.stderr[-2000:]

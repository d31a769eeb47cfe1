"""The thread policy shared by BLAS and the C kernels: set_num_threads, the size threshold,
per-thread caps (data loader threads), forked children, results independent of threads."""

from __future__ import annotations

import multiprocessing
import os
import sys
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


_PLACE_PROBE = r"""
/* out: 0 the caller's CPU, 1 the worker's CPU once forced onto it, 2 the worker's CPU after
   ember_team_place, 3 whether the caller's CPU is still in the worker's mask, 4 the mask's
   size, 5 the size of the mask the worker started with */
EMBER_API int FN(place_probe)(int *out) {
    int caller = EMBER_THREAD_CPU();
    out[0] = caller;
    cpu_set_t all; /* the caller's CPUs (a caller is never narrowed) */
    sched_getaffinity(0, sizeof all, &all);
#pragma omp parallel num_threads(2)
    if (omp_get_thread_num() == 1) {
        cpu_set_t start, one, now;
        /* the pool's worker may have been placed by an earlier kernel of this process */
        sched_setaffinity(0, sizeof all, &all);
        sched_getaffinity(0, sizeof start, &start);
        ember_team_place(-1); /* (learns the starting mask only) */
        CPU_ZERO(&one);
        CPU_SET(caller, &one);
        sched_setaffinity(0, sizeof one, &one); /* what the scheduler did on the VM */
        out[1] = sched_getcpu();
        ember_team_place(caller);
        out[2] = sched_getcpu();
        sched_getaffinity(0, sizeof now, &now);
        out[3] = CPU_ISSET(caller, &now);
        out[4] = CPU_COUNT(&now);
        out[5] = CPU_COUNT(&start);
    }
    return 0;
}
"""


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two CPUs",
)
def test_a_worker_on_the_callers_cpu_moves_off_it():
    # the placement every multi-threaded region of the GEMM, the linear chain and the step
    # programs starts with: a worker woken onto the calling thread's CPU (which a KVM guest's
    # scheduler did for every region of some processes) moves to the others, for good
    from ember.kernels import build
    from ember.kernels.source import Unit

    from .conftest import toolchain_or_skip

    toolchain_or_skip()
    unit = Unit("place_probe", ("int place_probe(int *out)",), _PLACE_PROBE, dtypes=("f32",))
    lib = build.load_unit(unit)
    out = np.full(6, -9, np.int32)
    lib.lib.ember_place_probe_f32(lib.ffi.cast("int *", out.ctypes.data))
    caller, forced, after, still, size, started = out.tolist()
    assert forced == caller  # forced onto the caller's CPU
    assert after != caller and not still  # moved off, and kept off
    assert size == started - 1  # every other CPU it started with stays allowed


_BARRIER_PROBE = r"""
#include <time.h>
static double probe_secs(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
/* rounds of gemv_wait between 2 threads, thread 1 arriving `late_us` late each round. out:
   [0] rounds where thread 0 saw thread 1's value for the round after the barrier,
   [1] thread 0's wall seconds, [2] thread 0's CPU seconds (both over all rounds) */
EMBER_API int FN(barrier_probe)(int rounds, int late_us, double *out) {
    gemv_barrier bar = {0, 0, 0};
    volatile int seen = -1;
    int good = 0;
#pragma omp parallel num_threads(2)
    {
        int me = omp_get_thread_num();
        double w0 = probe_secs(CLOCK_MONOTONIC), c0 = probe_secs(CLOCK_THREAD_CPUTIME_ID);
        for (int r = 0; r < rounds; r++) {
            if (me == 1) {
                struct timespec d = {0, late_us * 1000L};
                nanosleep(&d, NULL);
                seen = r;
            }
            gemv_wait(&bar, 2);
            if (me == 0 && seen == r) good++;
            gemv_wait(&bar, 2);
        }
        if (me == 0) {
            out[0] = good;
            out[1] = probe_secs(CLOCK_MONOTONIC) - w0;
            out[2] = probe_secs(CLOCK_THREAD_CPUTIME_ID) - c0;
        }
    }
    return 0;
}
"""


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
    reason="needs Linux (the futex) and two CPUs",
)
def test_a_thread_waiting_long_at_a_barrier_sleeps():
    # the linear chain's and the step programs' barrier: a thread that waits longer than
    # the spin sleeps (a futex), so beside busy processes it does not take turns with them
    # (yielding, it kept its core: CPU time = wall time), and it still sees the late
    # thread's writes once it is woken
    from ember.kernels import build
    from ember.kernels.source import Unit
    from ember.kernels.source.gemv import SHARED

    from .conftest import toolchain_or_skip

    toolchain_or_skip()
    unit = Unit("barrier_probe", ("int barrier_probe(int rounds, int late_us, double *out)",),
                _BARRIER_PROBE, shared=SHARED, dtypes=("f32",))  # fmt: skip
    lib = build.load_unit(unit)
    out = np.zeros(3)
    rounds = 20
    lib.lib.ember_barrier_probe_f32(rounds, 3000, lib.ffi.cast("double *", out.ctypes.data))
    good, wall, cpu = out.tolist()
    assert good == rounds
    assert wall > rounds * 0.003
    assert cpu < wall / 4  # spun at most 100 us of each 3 ms wait

"""Thread policy: one setting for BLAS and for ember's own C kernels (OpenMP).

``ember.set_num_threads(n)`` caps the BLAS thread pool NumPy uses (through threadpoolctl)
and the threads ember's C kernels (``ember.kernels``) may use, like
``torch.set_num_threads``; ``ember.get_num_threads()`` reads it back. The kernels' default is
``OMP_NUM_THREADS`` when set, else the cores this process may run on.

The rest of the policy, applied by the kernels:

* each kernel call estimates its *work* as the nanoseconds it would take one core (its
  element count times a per-element cost measured for that kernel), and runs on the
  calling thread alone below ``2 * MIN_WORK_PER_THREAD`` (about 65 us), with at most one
  thread per :data:`MIN_WORK_PER_THREAD` above. Waking a passively waiting thread costs
  20-30 us on a 2-core VM, so a second thread only pays off on calls that take one core
  about 55 us or more (measured on ReLU, GELU, softmax and layer norm alike: ReLU on 64K
  floats took 14 us on one thread and 37 us on two);
* OpenMP threads wait *passively* (``OMP_WAIT_POLICY=PASSIVE``, set before the OpenMP
  runtime loads unless the user set it) after a bounded spin (``GOMP_SPINCOUNT=10000``
  pauses: about 0.1 ms where a pause takes 10 ns, 0.5 ms where it takes 50 ns; set with
  the policy, unless the user set either variable): threads that spin without bound steal
  the cores of the other threads and processes on the machine, which cost 20-200x under
  contention, while a sleeping thread takes 10-70 us to wake on a VM, and a training
  step or an inference call leaves its worker idle for tens of microseconds between
  kernels (docs/performance.md has the measurements);
* threads waiting at a barrier inside one kernel (the linear chain's, a step program's)
  spin for up to 100 us, then sleep in the kernel (a futex) until the last thread
  arrives. Yielding the core instead kept the waiting thread runnable: beside two busy
  processes each barrier then waited out a time slice, and W4's GPT call took 184 ms
  instead of 0.86 ms;
* a worker thread of the GEMM, the linear chain or a step program that wakes on the
  calling thread's CPU moves off it for good (``ember_team_place`` in the kernels' common
  C): on a KVM guest, Linux woke passive OpenMP threads on the waker's CPU rather than on
  the halted idle vCPU, and some processes then ran every region on one CPU;
* OpenBLAS's idle worker threads go to sleep almost at once (``OPENBLAS_THREAD_TIMEOUT=4``,
  set by ``import ember`` before NumPy loads OpenBLAS, unless the user set it). By default
  they spin for about 2^28 cycles (~0.1 s) after every BLAS call, and a training step calls
  BLAS every few hundred microseconds, so they spin all the time, on the cores the C
  kernels' OpenMP threads need: on this 2-core machine a GELU kernel right after a GEMM
  took 1.60 ms instead of 0.83 ms, and the W2/W3 training steps ran 8-17% slower. OpenBLAS
  reads the variable when it loads; when NumPy was imported before ember,
  :func:`restart_blas_threads` makes the loaded OpenBLAS read it again and restarts its
  threads. Where that is impossible (an OpenBLAS without those entry points,
  ``EMBER_BLAS_RESTART=0``), :func:`blas_spin_unfixed` says so, ``ember info`` shows it,
  and the first C kernel that would use several threads warns once
  (:class:`BlasSpinWarning`; setting ``OPENBLAS_THREAD_TIMEOUT`` yourself avoids it);
* :func:`limit_this_thread` caps the kernels called from one Python thread (a data loader
  thread calls ``limit_this_thread(1)`` so that it never competes with the training loop
  for cores), and a forked child process starts single-threaded (OpenMP thread pools do
  not survive ``fork``).

Example:
    >>> import ember
    >>> ember.set_num_threads(1); ember.get_num_threads()
    1
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

__all__ = [
    "set_num_threads",
    "get_num_threads",
    "kernel_threads",
    "limit_this_thread",
    "MIN_WORK_PER_THREAD",
    "OPENMP_SPINS",
    "configure_blas_env",
    "blas_spin_unfixed",
    "restart_blas_threads",
    "BlasSpinWarning",
]

OPENMP_SPINS = 10_000  # pauses an idle OpenMP thread spins before it sleeps (GOMP_SPINCOUNT)
MIN_WORK_PER_THREAD = 1 << 15  # ns of one core; below 2x this a kernel runs single-threaded

_limiter: Any = None
_requested: int | None = None
_kernel_threads: int | None = None  # None: not decided yet (see _default_threads)


class _Local(threading.local):
    limit: int | None = None  # a class default: reading an unset limit raises nothing


_local = _Local()
_blas_loaded_first = False  # OpenBLAS was loaded before ember could set its timeout, for good
_blas_restarted = False  # ... or it was, and restart_blas_threads applied the timeout


class BlasSpinWarning(RuntimeWarning):
    """NumPy was imported before ember, so OpenBLAS's idle threads spin (see the module
    docstring).

    Example:
        >>> issubclass(BlasSpinWarning, RuntimeWarning)
        True
    """


def _default_threads() -> int:
    n = _cores()
    if n > 1 and blas_spin_unfixed():
        import warnings

        warnings.warn(
            "numpy was imported before ember and its OpenBLAS could not be told to let idle "
            "threads sleep, so they spin for ~0.1 s after every matrix product on the cores "
            "ember's C kernels need (training steps ran 10-35% slower here). Import ember "
            "before numpy, or set OPENBLAS_THREAD_TIMEOUT=4 (any value silences this) in the "
            "environment.",
            BlasSpinWarning,
            stacklevel=2,
        )
    return n


def _cores() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads for BLAS calls and for ember's C kernels in this process.

    Example:
        >>> ember.set_num_threads(2)
    """
    global _limiter, _requested, _kernel_threads
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    _limiter = threadpool_limits(limits=int(n), user_api="blas")
    _requested = int(n)
    _kernel_threads = int(n)


def get_num_threads() -> int:
    """The number of threads BLAS uses now (the largest over loaded BLAS libraries).

    Example:
        >>> ember.get_num_threads() >= 1
        True
    """
    from threadpoolctl import threadpool_info

    counts = [i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"]
    if counts:
        return max(counts)
    return _requested or 1


def limit_this_thread(n: int | None) -> None:
    """Cap the C kernels called from the current Python thread at ``n`` threads (None
    removes the cap). A data loader thread calls ``limit_this_thread(1)``.

    Example:
        >>> limit_this_thread(1); kernel_threads(10**9)
        1
        >>> limit_this_thread(None)
    """
    if n is not None and n < 1:
        raise ValueError(f"limit_this_thread: n must be >= 1 or None, got {n}")
    _local.limit = n


def kernel_threads(work: float, per_thread: float | None = None) -> int:
    """How many threads a C kernel should use for a call estimated at ``work`` nanoseconds
    of one core: 1 below ``2 * per_thread``, else at most one thread per ``per_thread``
    (default ``MIN_WORK_PER_THREAD``; a kernel whose threads claim work dynamically, which
    hides a late wake-up, may pass less), capped by ``set_num_threads`` and
    :func:`limit_this_thread`.

    Example:
        >>> kernel_threads(100)
        1
    """
    global _kernel_threads
    if per_thread is None:
        per_thread = MIN_WORK_PER_THREAD
    if work < 2 * per_thread:
        return 1
    n = _kernel_threads
    if n is None:
        n = _kernel_threads = _default_threads()
    cap = _local.limit
    if cap is not None and cap < n:
        n = cap
    return max(1, min(n, int(work // per_thread)))


def configure_openmp_env() -> None:
    """Make OpenMP threads wait passively, unless the user chose a policy; called before the
    first OpenMP library loads (the runtime reads its environment once, when it loads).

    GNU OpenMP (libgomp) also spins ``GOMP_SPINCOUNT`` pauses before it sleeps (the
    module docstring says why); other runtimes sleep at once under the passive policy.

    Example:
        >>> configure_openmp_env(); os.environ["OMP_WAIT_POLICY"] != ""
        True
    """
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPINS)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_blas_env() -> None:
    """Make OpenBLAS's idle worker threads sleep instead of spinning, unless the user chose
    a timeout; ``import ember`` calls it before NumPy loads OpenBLAS (which reads its
    environment once, when it loads). When NumPy was imported first, the loaded OpenBLAS is
    told to read its environment again and its worker threads are restarted
    (:func:`restart_blas_threads`).

    Example:
        >>> configure_blas_env(); os.environ["OPENBLAS_THREAD_TIMEOUT"] != ""
        True
    """
    global _blas_loaded_first, _blas_restarted
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        if "numpy" in sys.modules:
            _blas_restarted = restart_blas_threads()
            _blas_loaded_first = not _blas_restarted


def restart_blas_threads() -> bool:
    """Make an OpenBLAS that is already loaded (NumPy imported before ember) take
    ``OPENBLAS_THREAD_TIMEOUT`` now: it re-reads its environment (``openblas_read_env``) and
    its worker threads are stopped (``blas_thread_shutdown_``, what OpenBLAS itself does
    before a ``fork``); the next BLAS call starts them again with the new timeout. Returns
    True when every OpenBLAS with worker threads took it (or there is none). Call it only
    while no other thread is inside a BLAS call; ``EMBER_BLAS_RESTART=0`` turns it off.

    Example:
        >>> restart_blas_threads() in (True, False)
        True
    """
    if os.environ.get("EMBER_BLAS_RESTART", "1") == "0":
        return False
    try:
        import ctypes

        from threadpoolctl import threadpool_info

        want = int(os.environ.get("OPENBLAS_THREAD_TIMEOUT", "4"))
        for info in threadpool_info():
            if info.get("internal_api") != "openblas" or info.get("num_threads", 1) <= 1:
                continue
            lib = ctypes.CDLL(info["filepath"])
            read_env = getattr(lib, "openblas_read_env", None)
            timeout = getattr(lib, "openblas_thread_timeout", None)
            shutdown = getattr(lib, "blas_thread_shutdown_", None)
            if read_env is None or timeout is None or shutdown is None:
                return False
            read_env()
            if timeout() != want:
                return False
            shutdown()
        return True
    except Exception:  # no threadpoolctl, an unloadable library: keep the warning
        return False


def blas_spin_unfixed() -> bool:
    """True when NumPy's BLAS is OpenBLAS, it was loaded before ember could set
    ``OPENBLAS_THREAD_TIMEOUT`` (NumPy imported first, the variable not set by the user) and
    :func:`restart_blas_threads` could not apply it: its idle threads (when it has more than
    one) then spin after every BLAS call, slowing ember's C kernels.

    Example:
        >>> blas_spin_unfixed() in (True, False)
        True
    """
    if not _blas_loaded_first:
        return False
    from threadpoolctl import threadpool_info

    return any(
        i.get("internal_api") == "openblas" and i.get("num_threads", 1) > 1
        for i in threadpool_info()
    )


configure_blas_env()  # at import: ember/__init__.py imports this module before NumPy


def _after_fork_in_child() -> None:
    global _kernel_threads
    _kernel_threads = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

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


_WATCH_NUMPY_IMPORT = """
import os, sys

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "numpy":
            print("at numpy import:", os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
            sys.meta_path.remove(self)
        return None

sys.meta_path.insert(0, Watch())
import ember
"""


@pytest.mark.parametrize("preset, want", [(None, "4"), ("12", "12")])
def test_blas_idle_threads_sleep_is_set_before_numpy_loads(preset, want):
    # OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when NumPy loads it: import ember must set
    # it (unless the user did) before anything imports NumPy
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run(
        [sys.executable, "-c", _WATCH_NUMPY_IMPORT], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"at numpy import: {want}"


_IMPORT_ORDER = """
import ctypes, sys, warnings
if sys.argv[1] == "numpy-first":
    import numpy
import ember
from ember import threads
from threadpoolctl import threadpool_info

blas = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
pool = [i for i in blas if i.get("num_threads", 1) > 1]
timeout = ctypes.CDLL(pool[0]["filepath"]).openblas_thread_timeout() if pool else -1
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    threads._kernel_threads = None  # decide the default again
    threads.kernel_threads(10**9)
warned = [w for w in caught if issubclass(w.category, threads.BlasSpinWarning)]
import numpy as np
a = np.arange(90000, dtype=np.float32).reshape(300, 300) / 9e4
ok = np.allclose(a @ a, np.einsum("ij,jk->ik", a, a), rtol=1e-4)  # BLAS works afterwards
print(bool(pool), timeout, threads._blas_restarted, threads.blas_spin_unfixed(), len(warned), ok)
"""


@pytest.mark.parametrize(
    "order, env, restarted, unfixed",
    [
        ("numpy-first", {}, True, False),  # ember restarts OpenBLAS's threads
        ("numpy-first", {"EMBER_BLAS_RESTART": "0"}, False, True),  # ... unless told not to
        ("ember-first", {}, False, False),
        ("numpy-first", {"OPENBLAS_THREAD_TIMEOUT": "4"}, False, False),  # the user's choice
    ],
)
def test_numpy_imported_first_gets_its_blas_threads_restarted_or_a_warning(
    order, env, restarted, unfixed
):
    # OpenBLAS read its environment when NumPy loaded it: imported before ember, its idle
    # threads would spin; ember makes it re-read the variable and restarts its threads, and
    # warns once where it cannot
    import os
    import subprocess
    import sys

    drop = ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS", "EMBER_BLAS_RESTART")
    child = {k: v for k, v in os.environ.items() if k not in drop}
    child["OMP_NUM_THREADS"] = "2"  # kernels that would use two threads
    child.update(env)
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ORDER, order], env=child, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    pool, timeout, got_restarted, got_unfixed, warned, ok = out.stdout.split()
    assert ok == "True"
    if pool != "True":  # no OpenBLAS worker threads here: nothing spins, nothing to do
        assert (got_unfixed, warned) == ("False", "0")
        return
    assert got_restarted == str(restarted)
    assert got_unfixed == str(unfixed)
    assert warned == ("1" if unfixed else "0")
    assert timeout == ("0" if unfixed else "4")  # what the loaded OpenBLAS now uses

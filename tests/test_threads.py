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
import sys, warnings
if sys.argv[1] == "numpy-first":
    import numpy
import ember
from ember import threads
from threadpoolctl import threadpool_info

spinning = any(
    i.get("internal_api") == "openblas" and i.get("num_threads", 1) > 1 for i in threadpool_info()
)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    threads._kernel_threads = None  # decide the default again
    threads.kernel_threads(10**9)
warned = [w for w in caught if issubclass(w.category, threads.BlasSpinWarning)]
print(spinning, threads.blas_spin_unfixed(), len(warned))
"""


@pytest.mark.parametrize(
    "order, preset, unfixed",
    [("numpy-first", None, True), ("ember-first", None, False), ("numpy-first", "4", False)],
)
def test_numpy_imported_first_is_detected_and_warned_once(order, preset, unfixed):
    # OpenBLAS read its environment when NumPy loaded it: imported before ember, its idle
    # threads spin, and ember says so (unless the user set the variable: their choice)
    import os
    import subprocess
    import sys

    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_NUM_THREADS")
    }
    env["OMP_NUM_THREADS"] = "2"  # kernels that would use two threads
    if preset is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = preset
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ORDER, order], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    spinning, got, warned = out.stdout.split()
    want = unfixed and spinning == "True"  # only an OpenBLAS with worker threads spins
    assert got == str(want)
    assert warned == ("1" if want else "0")

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

"""The host allocator policy applied at import (glibc only) and its opt-out."""

import os
import subprocess
import sys

import pytest

import ember.memory

CHECK = "import ember, ember.memory; print(ember.memory.tuned())"


def _tuned_in_child(**env: str) -> str:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CHECK], env=full, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_tuned_at_import_on_glibc():
    assert ember.memory.tuned() or "MALLOC_MMAP_THRESHOLD_" in os.environ
    assert _tuned_in_child() == "True"


def test_opt_out_and_user_settings_win():
    assert _tuned_in_child(EMBER_MALLOC_TUNING="0") == "False"
    assert _tuned_in_child(MALLOC_TRIM_THRESHOLD_="1000") == "False"

"""The host allocator policy applied at import (glibc only) and its opt-out."""

import os
import subprocess
import sys

import numpy as np
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


@pytest.mark.parametrize("shape", [(256, 64), (3, 1000), 5000, (2, 3), (0, 4)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_empty_aligned(shape, dtype):
    a = ember.memory.empty_aligned(shape, dtype)
    want = (shape,) if isinstance(shape, int) else shape
    assert a.shape == want and a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable
    if a.nbytes >= 4096:  # smaller arrays are plain np.empty
        assert a.__array_interface__["data"][0] % ember.memory.ALIGNMENT == 0
    a[...] = 1  # all of it is usable memory
    assert a.sum() == a.size


def test_owns_memory_only_for_the_array_empty_aligned_returned():
    # what .grad may hold without a copy: a view of a private aligned buffer, but not a
    # view of that view (another array would then share its memory)
    a = ember.memory.empty_aligned((128, 512), np.float32)
    assert a.base is not None and ember.memory.owns_memory(a)
    assert not ember.memory.owns_memory(a.reshape(-1))
    assert not ember.memory.owns_memory(a[1:])
    assert ember.memory.owns_memory(np.ones(4)) and not ember.memory.owns_memory(np.ones(4)[1:])
    fake = np.empty(128 * 512 * 4 + 64, np.uint8)[:-64].view(np.float32).reshape(128, 512)
    assert not ember.memory.owns_memory(fake)  # shaped alike, not made by empty_aligned


def _aligned(a: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] % ember.memory.ALIGNMENT == 0


@pytest.mark.parametrize("shift", [0, 4, 8, 12])  # bytes past the source's start
def test_aligned_copy_starts_on_a_line_and_keeps_the_values(shift):
    raw = np.arange(4096 + 16, dtype=np.uint8)
    src = raw[shift : shift + 4096].view(np.float32).reshape(32, 32)
    out = ember.memory.aligned_copy(src)
    assert _aligned(out) and out.flags.c_contiguous and out.dtype == np.float32
    np.testing.assert_array_equal(out, src)
    assert not np.shares_memory(out, src)


def test_aligned_copy_keeps_small_and_strided_arrays_as_numpy_copies_them():
    f = np.asfortranarray(np.ones((64, 64)))
    out = ember.memory.aligned_copy(f)
    assert out.flags.f_contiguous and not np.shares_memory(out, f)  # np.array keeps F order
    small = np.arange(3.0)
    out = ember.memory.aligned_copy(small)
    np.testing.assert_array_equal(out, small)
    assert not np.shares_memory(out, small)


def test_tensors_and_module_weights_are_created_on_a_cache_line():
    # the chain kernel streams weights at 84 GB/s a core when they start 16 bytes past a
    # line, against 114-125 on one (memory.aligned_copy)
    import ember

    for t in (
        ember.zeros(64, 64),
        ember.ones(64, 64),
        ember.empty(64, 64),
        ember.full((64, 64), 2.0),
        ember.tensor(np.ones((64, 64), np.float32)[1:]),  # a copy of a view 256 bytes in
        ember.tensor([[1.0] * 64] * 64),
        ember.nn.Linear(784, 512).weight,
        ember.nn.Conv2d(16, 32, 3).weight,
    ):
        assert _aligned(t._data), t.shape
    assert ember.full((64, 64), 2.0)._data.min() == 2.0 and ember.ones(3).tolist() == [1.0] * 3
    assert ember.zeros(64, 64)._data.max() == 0.0

"""Host memory policy: keep freed array memory in the process for reuse.

Training allocates and frees the same large temporaries every step. glibc's default returns
blocks above a (dynamic) threshold to the kernel with ``munmap`` and trims the heap eagerly,
so the next step pays page faults again for every fresh array: measured here, a W3 training
step took 307 ms with the defaults and 250 ms with the settings below. At import ember raises
glibc's mmap threshold to 64 MiB, its trim threshold to 128 MiB and its top pad to 16 MiB
(the same knobs as the ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` /
``MALLOC_TOP_PAD_`` environment variables). The cost is that up to ~128 MiB of freed memory
stays mapped to the process. Opt out with ``EMBER_MALLOC_TUNING=0``; nothing is changed on
other C libraries or when the user has set any of those variables.

:func:`empty_aligned` gives arrays whose data start on a 64-byte cache line. NumPy's large
arrays come from ``malloc``, 16 bytes past a line, so every 64-byte row segment a vector
kernel stores spans two lines: measured here, ember's GEMM stored into such an output ran
(2048, 512) x (512, 128) at 65 GFLOP/s on one core, and at 78 into an aligned one.

Example:
    >>> import ember.memory
    >>> isinstance(ember.memory.tuned(), bool)
    True
"""

from __future__ import annotations

import math
import os
import sys
import weakref
from typing import Any

import numpy as np

__all__ = ["tune_allocator", "tuned", "empty_aligned", "aligned_copy", "owns_memory", "ALIGNMENT"]

ALIGNMENT = 64  # bytes: one cache line
_SMALL = 4096  # bytes: below this an array is allocated as NumPy does

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = ((_M_MMAP_THRESHOLD, 64 << 20), (_M_TRIM_THRESHOLD, 128 << 20), (_M_TOP_PAD, 16 << 20))
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_tuned = False


def tuned() -> bool:
    """True when ember changed the allocator settings in this process."""
    return _tuned


def tune_allocator() -> bool:
    """Apply the settings above once (glibc on Linux only); returns whether they apply.

    Example:
        >>> tune_allocator() == tuned()
        True
    """
    global _tuned
    if _tuned:
        return True
    if (
        not sys.platform.startswith("linux")
        or os.environ.get("EMBER_MALLOC_TUNING", "1") == "0"
        or any(v in os.environ for v in _ENV)
    ):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, or no glibc: leave the allocator alone
        return False
    _tuned = all(mallopt(param, value) == 1 for param, value in _SETTINGS)
    return _tuned


def empty_aligned(shape: tuple[int, ...] | int, dtype: Any = np.float32) -> np.ndarray:
    """An uninitialized C-contiguous NumPy array whose data start on a
    :data:`ALIGNMENT`-byte boundary (arrays under 4 KiB: plain ``np.empty``).

    Example:
        >>> a = empty_aligned((256, 64), np.float32)
        >>> a.shape, a.__array_interface__["data"][0] % ALIGNMENT
        ((256, 64), 0)
    """
    dt = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes < _SMALL:
        return np.empty(shape, dt)
    raw = np.empty(nbytes + ALIGNMENT, np.uint8)
    skip = -raw.__array_interface__["data"][0] % ALIGNMENT
    a = raw[skip : skip + nbytes].view(dt).reshape(shape)
    _ALIGNED[id(a)] = a  # (see owns_memory; the entry goes with the array)
    return a


def aligned_copy(a: Any) -> np.ndarray:
    """A copy of the NumPy array ``a`` whose data start on a :data:`ALIGNMENT`-byte boundary
    when it is C-contiguous and at least 4 KiB (else ``np.array(a, copy=True)``, which keeps
    the layout).

    ember's tensor constructors (``ember.tensor``, ``zeros``, ``empty``...) allocate this way,
    as PyTorch's CPU allocator aligns to 64 bytes, so that modules' weights start on a cache
    line. A matrix-vector kernel streaming a weight 16 bytes past a line ran at 84 GB/s per
    core here, against 114 aligned (32-byte loads) and 125 (64-byte loads): every other load
    spans two lines.

    Example:
        >>> b = aligned_copy(np.ones((64, 64), np.float32))
        >>> b.__array_interface__["data"][0] % ALIGNMENT, float(b.sum())
        (0, 4096.0)
    """
    a = np.asarray(a)
    if a.nbytes < _SMALL or not a.flags.c_contiguous:
        return np.array(a, copy=True)
    out = empty_aligned(a.shape, a.dtype)
    np.copyto(out, a)
    return out


# the arrays empty_aligned returned that are alive, by id: the owners of their buffers
_ALIGNED: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def owns_memory(a: Any) -> bool:
    """True when the array ``a`` (NumPy or CuPy) owns its memory: it is no view, or it is
    an array :func:`empty_aligned` returned (a view of a private byte buffer that no other
    array reaches; a view of *it* does not count).

    Example:
        >>> a = empty_aligned((256, 64))
        >>> owns_memory(a), owns_memory(a.reshape(-1)), owns_memory(np.ones(8)[2:])
        (True, False, False)
    """
    return getattr(a, "base", None) is None or _ALIGNED.get(id(a)) is a

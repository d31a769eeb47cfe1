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

Example:
    >>> import ember.memory
    >>> isinstance(ember.memory.tuned(), bool)
    True
"""

from __future__ import annotations

import os
import sys

__all__ = ["tune_allocator", "tuned"]

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

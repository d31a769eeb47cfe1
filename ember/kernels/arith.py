"""The seam of the two-array arithmetic kernel (:mod:`.source.arith`): ``a + b``, ``a - b``
and ``a * b`` for NumPy arrays of one shape and float dtype, C-contiguous, on several
threads where the arrays are large enough for a second thread to pay off
(:func:`ember.threads.kernel_threads`). Anything else gives None and the caller runs NumPy.

Example:
    >>> import numpy as np
    >>> binary("add", np.ones(4, np.float32), np.ones(4, np.float32)) is None  # small: NumPy
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import MIN_WORK_PER_THREAD, kernel_threads
from . import _seam
from ._seam import kernel
from .source.arith import CS_BLOCK, OPS

__all__ = ["binary", "column_sums", "NS", "MIN_SIZE", "CS_BLOCK"]

Array = Any  # np.ndarray

NS = 0.45  # ns of one core per element: NumPy's float32 add on 2048 x 128 floats, 108-155 us
MIN_SIZE = int(2 * MIN_WORK_PER_THREAD / NS) + 1  # elements from which two threads are used
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def binary(op: str, a: Array, b: Array, out: Array | None = None) -> Array | None:
    """``a op b`` (``op``: ``"add"``, ``"sub"`` or ``"mul"``) for two C-contiguous float32 or
    float64 NumPy arrays of one shape and dtype and at least :data:`MIN_SIZE` elements, into
    ``out`` (C-contiguous, same shape and dtype; it may be ``a`` or ``b``) or a fresh array;
    else None (nothing written).

    Example:
        >>> a = np.ones(MIN_SIZE, np.float32)
        >>> y = binary("mul", a, a + 1)
        >>> y is None or float(y.sum()) == 2.0 * MIN_SIZE
        True
    """
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.size < MIN_SIZE:
        return None
    dt = a.dtype
    if a.shape != b.shape or b.dtype != dt or dt not in _FLOATS:
        return None
    if not (a.flags.c_contiguous and b.flags.c_contiguous):
        return None
    if out is not None and (
        type(out) is not np.ndarray
        or out.shape != a.shape
        or out.dtype != dt
        or not out.flags.c_contiguous
        or not out.flags.writeable
        or _overlaps(out, a)
        or _overlaps(out, b)
    ):
        return None
    f = kernel("arith", "arith", dt)
    if f is None:
        return None
    y = np.empty(a.shape, dt) if out is None else out
    f(_seam.ptr(a), _seam.ptr(b), _seam.ptr(y), a.size, OPS[op], kernel_threads(NS * a.size))
    return y


def column_sums(x: Array) -> Array | None:
    """The sums down the columns of the C-contiguous float32 or float64 NumPy matrix ``x``
    (``x.sum(axis=0)``), on several threads, for at least :data:`MIN_SIZE` elements; else
    None. Each block of 64 rows is summed row after row, then the blocks in order: the same
    result on any number of threads (NumPy adds all the rows one after the other, so the
    two differ in rounding). A bias gradient of W3 ((2048, 512), ``ones @ g`` through
    OpenBLAS before) took 0.16-0.18 ms inside the compiled step, waking OpenBLAS's threads
    each time.

    Example:
        >>> y = column_sums(np.ones((MIN_SIZE // 8 + 1, 8), np.float32))
        >>> y is None or y.tolist() == [float(MIN_SIZE // 8 + 1)] * 8
        True
    """
    if type(x) is not np.ndarray or x.ndim != 2 or x.size < MIN_SIZE:
        return None
    if x.dtype not in _FLOATS or not x.flags.c_contiguous:
        return None
    f = kernel("arith", "column_sums", x.dtype)
    if f is None:
        return None
    rows, cols = x.shape
    y = np.empty(cols, x.dtype)
    nb = -(-rows // CS_BLOCK)
    part = np.empty(nb * cols, x.dtype) if nb > 1 else None
    pp = _seam.ptr(part) if part is not None else _seam.NULL
    f(_seam.ptr(x), _seam.ptr(y), pp, rows, cols, kernel_threads(NS * x.size))
    return y


def _overlaps(out: Array, x: Array) -> bool:
    """True when ``out`` shares memory with ``x`` other than being it element for element (a
    shifted view would read values the kernel already wrote)."""
    if not np.may_share_memory(out, x):
        return False
    return out.__array_interface__["data"][0] != x.__array_interface__["data"][0]

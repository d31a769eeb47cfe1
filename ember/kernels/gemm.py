"""The seam of the matrix product kernel (``gemm``): ``a @ b`` (``+ bias``) for 2-D float32 or
float64 NumPy arrays, read in place through their strides (a transposed view such as
``W.T`` or ``dY.T`` is never copied).

:func:`matmul` returns the product (in ``out`` when given), or None when the kernel cannot
serve the call (``EMBER_KERNELS=numpy``, no compiler, another dtype or type, not 2-D, an
empty operand, shapes that do not match, an ``out`` that overlaps an operand or whose
columns are not contiguous); the caller then runs ``np.matmul``, the reference.

:func:`tall_matmul` is the policy the ops use (:func:`serves`): the kernel when ``a`` has
at least :data:`MIN_ROWS` rows or columns (a tall product, or a deep one such as a weight gradient
``dY.T @ X`` over many rows), OpenBLAS (None) otherwise. Measured inside W3's training step
(2048-row products; steps alternating between the two, medians of 40 pairs), the kernel
made the whole step 3-5% faster than OpenBLAS: it runs on the OpenMP threads the other
kernels use (OpenBLAS's own threads are woken for every product), adds the bias as it
stores each block, and skips the pass that zeroes the output. On smaller products (W1's
128 rows, batch-1 inference's 64) OpenBLAS was as fast or faster with 32-byte (AVX2)
vectors, so it keeps those there. Built with AVX-512 the kernel's register block is twice
as wide (6 x 32 floats), and it beat OpenBLAS on W1's 128-row products too (one process,
medians of 200 calls, GFLOP/s kernel vs OpenBLAS: 249/249 for ``(128, 784) @ (784, 512)``,
255/233, 343/229 for the ``(512, 128) @ (128, 512)`` weight gradient, 284/216, 348/299),
but not on those with 10 columns (29 vs 80): :func:`serves` adds the products of at least
:data:`MIN_WIDE_WORK` multiply-adds and :data:`MIN_WIDE_SIDE` rows and columns there.

Example:
    >>> import numpy as np
    >>> from ember.kernels.gemm import matmul
    >>> c = matmul(np.ones((2, 3), np.float32), np.ones((3, 4), np.float32))
    >>> c is None or c.tolist() == [[3.0] * 4] * 2
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..memory import empty_aligned
from ..threads import kernel_threads
from . import _seam
from ._seam import kernel

__all__ = ["matmul", "tall_matmul", "serves", "MIN_ROWS", "MIN_WIDE_WORK", "MIN_WIDE_SIDE"]

Array = Any  # np.ndarray

MIN_ROWS = 1024  # rows (or columns) of ``a`` from which tall_matmul uses the kernel
MIN_WIDE_WORK = 1 << 22  # multiply-adds from which an AVX-512 kernel serves shorter products
MIN_WIDE_SIDE = 64  # ... whose rows and columns are at least this many
_WORK_PER_ELEMENT = 25  # multiply-adds per ns of one core (~50 GFLOP/s): 2 threads from
# 1.6M (ember/threads.py: a second, passively waiting thread costs 20-30 us to wake)


def _operand(x: Array) -> tuple[Any, int, int] | None:
    """(C pointer, row stride, column stride) of the 2-D ``x`` in elements, or None when its
    address or strides are not whole elements."""
    size = x.itemsize
    s0, s1 = x.strides
    if x.flags.c_contiguous:
        p = _seam.ptr(x)
    elif x.T.flags.c_contiguous:
        p = _seam.ptr(x.T)
    else:
        at = x.__array_interface__["data"][0]
        if at % size:
            return None
        p = _seam.FFI.cast("void *", at)
    if s0 % size or s1 % size:
        return None
    return p, s0 // size, s1 // size


def matmul(
    a: Array,
    b: Array,
    out: Array | None = None,
    bias: Array | None = None,
    accumulate: bool = False,
) -> Array | None:
    """``a @ b`` (+ ``bias``, one value per column) for 2-D arrays ``a (M, K)``, ``b (K, N)``
    of one dtype (float32 or float64), into ``out`` (``(M, N)``, same dtype, contiguous
    columns) when given, else into a fresh C-contiguous array; with ``accumulate`` the
    product is added to ``out``'s values. Returns the result, or None when the kernel
    cannot serve the call (nothing is written then).

    Example:
        >>> a = np.arange(6, dtype=np.float64).reshape(2, 3)
        >>> c = matmul(a, a.T, bias=np.array([1.0, -1.0]))
        >>> c is None or c.tolist() == [[6.0, 13.0], [15.0, 49.0]]
        True
    """
    if type(a) is not np.ndarray or type(b) is not np.ndarray or a.ndim != 2 or b.ndim != 2:
        return None
    dt = a.dtype
    M, K = a.shape
    K2, N = b.shape
    if b.dtype != dt or K != K2 or M == 0 or N == 0 or K == 0:
        return None
    f = kernel("gemm", "gemm", dt)
    if f is None:
        return None
    if out is None:
        if accumulate:
            return None
        out = empty_aligned((M, N), dt)  # whole cache lines per stored row segment
    elif (
        type(out) is not np.ndarray
        or out.dtype != dt
        or out.shape != (M, N)
        or (out.strides[1] != dt.itemsize and N > 1)
        or out.strides[0] % dt.itemsize
        or np.may_share_memory(out, a)
        or np.may_share_memory(out, b)
    ):
        return None
    if bias is not None:
        if type(bias) is not np.ndarray or bias.dtype != dt or bias.shape != (N,):
            return None
        bias = np.ascontiguousarray(bias)
        bp = _seam.ptr(bias)
    else:
        bp = _seam.NULL
    op = out.__array_interface__["data"][0] if not out.flags.c_contiguous else None
    cp = _seam.ptr(out) if op is None else _seam.FFI.cast("void *", op)
    ldc = out.strides[0] // dt.itemsize if M > 1 else N
    nt = kernel_threads(M * N * K // _WORK_PER_ELEMENT)
    ga, gb = _operand(a), _operand(b)
    if ga is None or gb is None:
        return None
    f(ga[0], gb[0], cp, bp, M, N, K, ga[1], ga[2], gb[1], gb[2], ldc, int(accumulate), nt)
    return out


def serves(m: int | None, k: int | None, n: int | None, dtype: Any) -> bool:
    """Whether :func:`tall_matmul` gives an ``(m, k) @ (k, n)`` product of ``dtype`` to the
    kernel: ``m`` or ``k`` at least :data:`MIN_ROWS`; or, where the kernel's vectors are
    64 bytes wide (AVX-512), ``m`` and ``n`` at least :data:`MIN_WIDE_SIDE` and at least
    :data:`MIN_WIDE_WORK` multiply-adds. None (a size not known yet) counts as large.

    Example:
        >>> serves(4096, 128, 128, np.float32), serves(2, 3, 4, np.float32)
        (True, False)
    """
    if m is None or k is None or max(m, k) >= MIN_ROWS:
        return True
    if n is not None and (min(m, n) < MIN_WIDE_SIDE or m * n * k < MIN_WIDE_WORK):
        return False
    return dtype is not None and _vector_bytes(np.dtype(dtype)) >= 64


def _vector_bytes(dt: Any) -> int:
    """Bytes of the kernel's vectors for ``dt`` (0 when it has no kernel), asked once."""
    got = _VECTOR_BYTES.get(dt)
    if got is None:
        f = kernel("gemm", "gemm_lanes", dt)
        if f is None:  # (not remembered: the C kernels may be switched on later)
            return 0
        got = _VECTOR_BYTES[dt] = f() * dt.itemsize
    return got


_VECTOR_BYTES: dict[Any, int] = {}


def tall_matmul(
    a: Array, b: Array, out: Array | None = None, bias: Array | None = None
) -> Array | None:
    """:func:`matmul` where :func:`serves` says the kernel beats OpenBLAS (see the module
    docstring), else None: the caller's ``np.matmul`` then runs.

    Example:
        >>> tall_matmul(np.ones((2, 3)), np.ones((3, 4))) is None  # 2 rows: OpenBLAS's
        True
    """
    if getattr(a, "ndim", 0) != 2 or getattr(b, "ndim", 0) != 2:
        return None
    (m, k), n = a.shape, b.shape[1]
    if max(m, k) < MIN_ROWS and not serves(m, k, n, a.dtype):
        return None
    return matmul(a, b, out, bias)

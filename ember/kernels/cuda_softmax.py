"""CUDA kernels of ``softmax``, ``log_softmax`` and the attention ``safe_softmax`` over CuPy
arrays, forward and backward: one launch each, where the NumPy path on CuPy is a launch per
step (max, subtract, exp, sum, reciprocal, multiply, and two ``where`` for the safe
variant).

The formulas are those of the C kernels (:mod:`ember.kernels.source.softmax`), in the
NumPy path's order: ``m = max(x)`` (0 instead of ``-inf`` for ``safe``),
``s = sum(exp(x - m))`` (1 instead of 0 for ``safe``), ``y = exp(x - m) * (1 / s)``, or
``y = x - (log(s) + m)`` for ``log``; backward ``dx = (g - sum(g * y)) * y``, or
``dx = g - exp(y) * sum(g)`` for ``log``. Computed in ``float`` for float16/float32 and
``double`` for float64, without fast-math: NaN and inf spread as through NumPy (a row
holding NaN or ``+inf`` gives NaN; a row that is all ``-inf`` gives NaN, zeros with
``safe``).

Layout: the array, made C-contiguous (a copy only when it is not), is seen as
``(A, K, B)`` with ``K`` the softmax axis, i.e. ``A * B`` rows of ``K`` entries ``B``
apart. ``G`` threads share a row: a power of two up to 32 for rows up to 32 entries, a
warp up to 1024, a whole block (256 to 1024 threads) above; the row's max and sum are
shuffle reductions within the group (through shared memory across a block's warps). With
``B > 1`` and many rows each thread takes a row of its own, so neighbouring threads read
neighbouring columns (coalesced).

:func:`softmax_forward` and :func:`softmax_backward` keep the contracts of
:mod:`ember.kernels.nn` (which serve NumPy arrays) and return None when they cannot serve:
not CuPy arrays, a dtype other than float16/32/64, a 0-d or empty array, differing shapes
or dtypes, ``EMBER_KERNELS=numpy``.

Example:
    >>> import numpy as np
    >>> softmax_forward(np.zeros((2, 3), np.float32), -1) is None  # not a CuPy array
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cuda import TYPES, is_cupy, row_kernels
from .runtime import mode

__all__ = ["is_cupy", "softmax_forward", "softmax_backward"]

Array = Any  # cupy.ndarray

_SOURCE = r"""
#define FULL 0xffffffffu
#define NEG_INF ((C)-__int_as_float(0x7f800000)) /* -inf, no division at run time */

/* NumPy's max: NaN wins */
__device__ __forceinline__ C nan_max(C a, C b) { return (b > a || isnan(b)) ? b : a; }

/* the max (is_max) or sum of v over a row's G threads, in each of them: G <= 32 (a power of
   two) lanes of one warp, xor shuffles staying inside the group; G > 32: the whole block
   (G == blockDim.x), the warps' results through sh. Every thread of the warp (the block
   for G > 32) must call it. */
__device__ __forceinline__ C row_reduce(C v, int G, C *sh, int is_max) {
    for (int o = (G < 32 ? G : 32) >> 1; o > 0; o >>= 1) {
        C u = __shfl_xor_sync(FULL, v, o);
        v = is_max ? nan_max(v, u) : v + u;
    }
    if (G <= 32) return v;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads(); /* sh may still be read from the previous reduction */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = sh[0];
    for (int k = 1; k < (G >> 5); k++) v = is_max ? nan_max(v, sh[k]) : v + sh[k];
    return v;
}

/* this thread's row of the n = A * B rows (row r: entries r / B * K * B + r % B + j * B),
   its lane in the row's group, and the row's length: 0 for a group past the last row,
   which still joins the reductions */
#define ROW_SETUP                                                                          \
    __shared__ C sh[32];                                                                   \
    int tid = (int)threadIdx.x;                                                            \
    long long row = (long long)blockIdx.x * ((int)blockDim.x / G) + tid / G;              \
    int lane = tid % G;                                                                    \
    long long len = row < n ? K : 0;                                                       \
    long long base = row < n ? row / B * K * B + row % B : 0

/* mode 0: softmax, 1: log_softmax, 2: safe softmax (a row all -inf gives zeros); bounded
   to 1024 threads a block (at most 64 registers a thread): a whole-block row fits */
extern "C" __global__ void __launch_bounds__(1024) softmax_fwd(const T *x, T *y, long long n,
                                                               long long K, long long B, int G,
                                                               int mode) {
    ROW_SETUP;
    const T *xr = x + base;
    T *yr = y + base;
    C m = NEG_INF;
    for (long long j = lane; j < len; j += G) m = nan_max(m, (C)xr[j * B]);
    m = row_reduce(m, G, sh, 1);
    if (mode == 2 && m == NEG_INF) m = 0;
    C s = 0;
    for (long long j = lane; j < len; j += G) s += exp((C)xr[j * B] - m);
    s = row_reduce(s, G, sh, 0);
    if (mode == 1) {
        C lse = log(s) + m;
        for (long long j = lane; j < len; j += G) yr[j * B] = (T)((C)xr[j * B] - lse);
        return;
    }
    if (mode == 2 && s == 0) s = 1;
    C r = (C)1 / s;
    for (long long j = lane; j < len; j += G) yr[j * B] = (T)(exp((C)xr[j * B] - m) * r);
}

/* mode 0: dx = (g - sum(g * y)) * y; 1 (log_softmax): dx = g - exp(y) * sum(g) */
extern "C" __global__ void __launch_bounds__(1024) softmax_bwd(const T *g, const T *y, T *dx,
                                                               long long n, long long K,
                                                               long long B, int G, int mode) {
    ROW_SETUP;
    const T *gr = g + base, *yr = y + base;
    T *dr = dx + base;
    C s = 0;
    for (long long j = lane; j < len; j += G)
        s += mode == 1 ? (C)gr[j * B] : (C)gr[j * B] * (C)yr[j * B];
    s = row_reduce(s, G, sh, 0);
    for (long long j = lane; j < len; j += G) {
        C gv = (C)gr[j * B], yv = (C)yr[j * B];
        dr[j * B] = (T)(mode == 1 ? gv - exp(yv) * s : (gv - s) * yv);
    }
}
"""

_MODULES: dict[str, Any] = {}
_NAMES = ("softmax_fwd", "softmax_bwd")
_THREADS = 256  # threads per block while a row's group is a warp or less
_THREAD_ROWS = 65536  # with B > 1, at least this many rows get a thread each


def _functions(dtype: Any) -> dict[str, Any]:
    """The softmax kernels for ``dtype`` by name (built once per dtype)."""
    return row_kernels(_MODULES, _SOURCE, _NAMES, dtype)


def _served(*arrays: Array) -> bool:
    """Whether the kernels take these arrays: CuPy, one dtype (float16/32/64) and shape,
    not 0-d, not empty, and the kernels not switched off."""
    x = arrays[0]
    if mode() == "numpy" or not all(is_cupy(a) for a in arrays):
        return False
    if x.ndim == 0 or x.size == 0 or str(x.dtype) not in TYPES:
        return False
    return all(a.dtype == x.dtype and a.shape == x.shape for a in arrays[1:])


def _group(rows: int, k: int, b: int) -> int:
    """Threads per row (``G``): 1 for many strided rows, a power of two covering a short
    row, a warp up to 1024 entries, a block above."""
    if b > 1 and rows >= _THREAD_ROWS:
        return 1
    if k <= 32:
        return 1 << (k - 1).bit_length()
    if k <= 1024:
        return 32
    return 256 if k <= 4096 else (512 if k <= 16384 else 1024)


def _launch(name: str, arrays: tuple, shape: tuple, axis: int, kind: int) -> bool:
    """Launch kernel ``name`` over ``arrays`` (C-contiguous, of ``shape``) reducing along
    ``axis``; False (nothing launched) when the grid would be too large."""
    a, k, b = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])
    rows = a * b
    g = _group(rows, k, b)
    threads = g if g > 32 else _THREADS
    per_block = threads // g
    blocks = (rows + per_block - 1) // per_block
    if blocks >= 2**31:
        return False
    _functions(arrays[0].dtype)[name](
        (blocks,), (threads,),
        (*arrays, np.int64(rows), np.int64(k), np.int64(b), np.int32(g), np.int32(kind)),
    )  # fmt: skip
    return True


def softmax_forward(x: Array, axis: int, *, log: bool = False, safe: bool = False) -> Array | None:
    """``softmax(x)`` of the CuPy array ``x`` along ``axis`` in one launch
    (``log_softmax`` with ``log``; with ``safe``, a row that is all ``-inf`` gives zeros
    instead of NaN), as a fresh C-contiguous array; None when unserved.

    Example:
        >>> softmax_forward(np.zeros((2, 3)), 1, safe=True) is None  # NumPy arrays: unserved
        True
        >>> # y = softmax_forward(cupy.zeros((2, 4), cupy.float32), -1)  # all 0.25
    """
    if not _served(x):
        return None
    import cupy  # noqa: PLC0415  (only reached for CuPy arrays)

    x = cupy.ascontiguousarray(x)
    y = cupy.empty_like(x)
    kind = 1 if log else (2 if safe else 0)
    return y if _launch("softmax_fwd", (x, y), x.shape, axis % x.ndim, kind) else None


def softmax_backward(g: Array, y: Array, axis: int, *, log: bool = False) -> Array | None:
    """The input gradient of softmax from its output ``y`` and output gradient ``g`` (CuPy
    arrays of one shape and dtype) along ``axis`` in one launch: ``(g - sum(g * y)) * y``,
    or ``g - exp(y) * sum(g)`` for ``log_softmax``; a fresh C-contiguous array, or None
    when unserved.

    Example:
        >>> softmax_backward(np.ones((1, 2)), np.ones((1, 2)), 1) is None  # NumPy arrays
        True
        >>> # dx = softmax_backward(cupy.asarray([[1.0, 0.0]]), cupy.asarray([[0.5, 0.5]]), 1)
        >>> # dx: [[0.25, -0.25]]
    """
    if not _served(y, g):
        return None
    import cupy  # noqa: PLC0415

    g, y = cupy.ascontiguousarray(g), cupy.ascontiguousarray(y)
    dx = cupy.empty_like(y)
    return dx if _launch("softmax_bwd", (g, y, dx), y.shape, axis % y.ndim, int(log)) else None

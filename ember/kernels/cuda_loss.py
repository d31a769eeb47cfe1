"""CUDA kernels of ``cross_entropy`` over ``(N, C)`` CuPy logits with class-index targets:
the loss (its rows, or their sum / weighted mean) in one launch and the gradient in one
launch, where the NumPy path on CuPy is about fifteen launches and a host sync each way.

The formulas are those of the C kernel (:mod:`ember.kernels.source.loss`), in the NumPy
path's order: for row ``n`` with target ``t`` (``valid = t != ignore_index``,
``wt = w[t] * valid``), ``lse = log(sum(exp(x - m))) + m``,
``loss = (lse - x[t]) * wt`` and with smoothing ``eps``
``loss = (1 - eps) * loss - eps / C * valid * (sum_c w_c x_c - lse * sum_c w_c)``; the
gradient row times the row's scale ``s`` is
``softmax(x) * s * Q - s * valid * eps / C * w - s * (1 - eps) * wt * onehot(t)`` with
``Q = (1 - eps) * wt + eps / C * valid * sum(w)``. Computed in ``float`` for
float16/float32 and ``double`` for float64, without fast-math: NaN and inf spread as through
NumPy (a row holding NaN, +inf, or only -inf gives NaN; so does an ignored row there, as
``NaN * 0``).

Launches (one warp per row, 8 rows per 256-thread block, shuffle reductions):

* forward: a memset of two counters, ``xent_forward`` (with ``'sum'``/``'mean'`` the last
  block to finish adds the blocks' partial sums in a fixed order: deterministic), and one
  read of the bad-target counter (the only host sync). A target outside ``[0, C)`` that is
  not ``ignore_index`` is never read through; the call returns None, so that the caller's
  NumPy path raises its ``TargetOutOfBoundsError``.
* backward: ``xent_backward`` alone. For ``'mean'`` every block sums the target weights
  itself (up to 4096 rows; above, one block of ``xent_mean_inv`` first), so the
  denominator never leaves the device (``1 / 0`` reads as 0, as ``_inv``). The backward
  trusts its targets: a bad one (which the forward refuses) gets a NaN row, nothing is read
  or written out of bounds.

Example:
    >>> import numpy as np
    >>> cross_entropy_loss(np.zeros((2, 3)), np.array([0, 1]), None, -100, 0.0, "mean") is None
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cuda import TYPES, is_cupy, row_kernels
from .runtime import mode

__all__ = [
    "is_cupy",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "cross_entropy_loss",
    "cross_entropy_grad",
]

Array = Any  # cupy.ndarray

_SOURCE = r"""
#define FULL 0xffffffffu
#define NEG_INF ((C)(-1.0 / 0.0))
#define QNAN ((C)(0.0 / 0.0))

/* NumPy's max: NaN wins */
__device__ __forceinline__ C nan_max(C a, C b) { return (b > a || isnan(b)) ? b : a; }

__device__ __forceinline__ C warp_max(C m) {
    for (int o = 16; o > 0; o >>= 1) m = nan_max(m, __shfl_xor_sync(FULL, m, o));
    return m;
}

/* the sum of v over the block, the same value in every thread and in every block (a fixed
   order); sh holds one value per warp; every thread of the block must call it */
__device__ C block_sum(C v, C *sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read from an earlier call */
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    C s = 0;
    for (int k = 0; k < warps; k++) s += sh[k];
    return s;
}

/* this thread's share of 'mean''s denominator: sum of w[t] * valid (w[t] read with t
   clipped into [0, C), as the C path) or the count of valid targets */
__device__ C target_weights(const long long *t, const T *w, long long n, long long c,
                            long long ii, int has_w) {
    C d = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        long long ti = t[i];
        C v = (C)(ti != ii);
        if (has_w) {
            long long k = ti < 0 ? 0 : (ti >= c ? c - 1 : ti);
            d += (C)w[k] * v;
        } else {
            d += v;
        }
    }
    return d;
}

/* one warp per row: the row's loss and target weight, written when what & 1 / what & 2;
   reduce 1 / 2 writes out[0] = the sum of the losses / that over the sum of the weights.
   flags (zeroed): [0] n - (first bad row) at most, i.e. nonzero when a target is outside
   [0, c) and not ii; [1] the count of finished blocks. part: two partial sums per block.
   keep = 1 - eps, ec = eps / c (rounded to C once, as NumPy rounds Python floats). */
extern "C" __global__ void xent_forward(const T *x, const long long *t, const T *w, T *loss,
                                        T *wt, C *part, unsigned long long *flags, T *out,
                                        long long n, long long c, long long ii, C keep, C ec,
                                        int has_w, int smooth, int what, int reduce) {
    __shared__ C sh_l[32], sh_w[32];
    __shared__ int last;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    long long row = (long long)blockIdx.x * warps + warp;
    C l = 0, wn = 0;
    if (row < n) { /* the same for every lane of a warp */
        const T *xr = x + row * c;
        long long tr = t[row];
        int valid = tr != ii;
        int bad = valid && (tr < 0 || tr >= c);
        long long tc = valid && !bad ? tr : 0;
        if (bad && lane == 0) atomicMax(flags, (unsigned long long)(n - row));
        wn = (has_w ? (C)w[tc] : (C)1) * (C)valid;
        C m = NEG_INF;
        for (long long j = lane; j < c; j += 32) m = nan_max(m, (C)xr[j]);
        m = warp_max(m);
        C s = 0, dot = 0, ws = 0;
        for (long long j = lane; j < c; j += 32) {
            C v = (C)xr[j];
            s += exp(v - m);
            if (smooth) {
                C wj = has_w ? (C)w[j] : (C)1;
                dot += has_w ? wj * v : v;
                ws += wj;
            }
        }
        C lse = log(warp_sum(s)) + m;
        l = (lse - (C)xr[tc]) * wn;
        if (smooth) {
            dot = warp_sum(dot);
            ws = has_w ? warp_sum(ws) : (C)c;
            l = keep * l - ec * ((dot - lse * ws) * (C)valid);
        }
        if (lane == 0) {
            if (what & 1) loss[row] = (T)l;
            if (what & 2) wt[row] = (T)wn;
        }
    }
    if (!reduce) return; /* the same for the whole grid */
    if (lane == 0) {
        sh_l[warp] = l;
        sh_w[warp] = wn;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        C a = 0, b = 0;
        for (int k = 0; k < warps; k++) {
            a += sh_l[k];
            b += sh_w[k];
        }
        part[2 * (long long)blockIdx.x] = a;
        part[2 * (long long)blockIdx.x + 1] = b;
        __threadfence(); /* the partials are visible before the count says so */
        last = atomicAdd(flags + 1, 1ULL) == (unsigned long long)gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    const volatile C *p = part; /* written by other blocks: not through this SM's L1 */
    C a = 0, b = 0;
    for (long long k = threadIdx.x; k < gridDim.x; k += blockDim.x) {
        a += p[2 * k];
        b += p[2 * k + 1];
    }
    a = block_sum(a, sh_l);
    b = block_sum(b, sh_w);
    if (threadIdx.x == 0) out[0] = (T)(reduce == 1 ? a : a / b);
}

/* 1 / (the sum of the target weights), 0 when that is 0: 'mean''s scale, one block */
extern "C" __global__ void xent_mean_inv(const long long *t, const T *w, C *inv, long long n,
                                         long long c, long long ii, int has_w) {
    __shared__ C sh[32];
    C d = block_sum(target_weights(t, w, n, c, ii, has_w), sh);
    if (threadIdx.x == 0) inv[0] = d == 0 ? (C)0 : (C)1 / d;
}

/* one warp per row: dx = the gradient of sum_n s_n loss_n, s_n = scale[n * stride] (has_s)
   or scale0; mean 1: times 1 / (sum of the target weights), summed by every block itself;
   mean 2: times inv[0] (from xent_mean_inv) */
extern "C" __global__ void xent_backward(const T *x, const long long *t, const T *w,
                                         const T *scale, const C *inv, T *dx, long long n,
                                         long long c, long long ii, long long stride, C scale0,
                                         C keep, C ec, int has_w, int smooth, int has_s,
                                         int mean) {
    __shared__ C sh[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    C r = 1;
    if (mean == 1) { /* before any thread leaves: block_sum needs them all */
        C d = block_sum(target_weights(t, w, n, c, ii, has_w), sh);
        r = d == 0 ? (C)0 : (C)1 / d;
    } else if (mean == 2) {
        r = inv[0];
    }
    long long row = (long long)blockIdx.x * warps + warp;
    if (row >= n) return; /* the same for every lane of a warp */
    const T *xr = x + row * c;
    T *dr = dx + row * c;
    long long tr = t[row];
    int valid = tr != ii;
    if (valid && (tr < 0 || tr >= c)) { /* refused by the forward: poison the row */
        for (long long j = lane; j < c; j += 32) dr[j] = (T)QNAN;
        return;
    }
    long long tc = valid ? tr : 0;
    C wn = (has_w ? (C)w[tc] : (C)1) * (C)valid;
    C sn = has_s ? (C)scale[row * stride] : scale0;
    if (mean) sn = sn * r;
    C m = NEG_INF;
    for (long long j = lane; j < c; j += 32) m = nan_max(m, (C)xr[j]);
    m = warp_max(m);
    C s = 0, ws = 0;
    for (long long j = lane; j < c; j += 32) {
        s += exp((C)xr[j] - m);
        if (smooth && has_w) ws += (C)w[j];
    }
    s = warp_sum(s);
    if (smooth) ws = has_w ? warp_sum(ws) : (C)c;
    C coef = keep * wn;
    C q = smooth ? coef + ec * ws * (C)valid : coef;
    C f = ((C)1 / s) * (sn * q);
    C sv = sn * (C)valid * ec;
    C st = sn * coef;
    for (long long j = lane; j < c; j += 32) {
        C v = exp((C)xr[j] - m) * f;
        if (smooth) v -= has_w ? sv * (C)w[j] : sv;
        if (j == tc) v -= st;
        dr[j] = (T)v;
    }
}
"""

_MODULES: dict[str, Any] = {}
_WARPS = 8  # rows (warps) per block of the row kernels
_THREADS = 32 * _WARPS
_MEAN_INLINE = 4096  # up to this many rows every backward block sums 'mean''s denominator
_NAMES = ("xent_forward", "xent_mean_inv", "xent_backward")
_REDUCE = {"none": 0, "sum": 1, "mean": 2}


def _functions(dtype: Any) -> dict[str, Any]:
    """The cross-entropy kernels for ``dtype`` by name (built once per dtype)."""
    return row_kernels(_MODULES, _SOURCE, _NAMES, dtype)


def _compute(dtype: Any) -> Any:
    """The NumPy type of the kernels' ``C`` (compute) scalars for ``dtype``."""
    return np.float64 if str(dtype) == "float64" else np.float32


def _args(x: Array, target: Array, weight: Array | None, ignore_index: int) -> tuple | None:
    """``(x, t, w, n, c)``: contiguous (t as int64) CuPy arrays and the sizes, or None."""
    if mode() == "numpy" or not is_cupy(x) or not is_cupy(target):
        return None
    if x.ndim != 2 or x.size == 0 or str(x.dtype) not in TYPES:
        return None
    if target.dtype.kind not in "iu" or target.shape != x.shape[:1]:
        return None
    n, c = x.shape
    if weight is not None and (
        not is_cupy(weight) or weight.dtype != x.dtype or weight.shape != (c,)
    ):
        return None
    if not -(2**63) <= int(ignore_index) < 2**63:
        return None
    import cupy  # noqa: PLC0415

    w = None if weight is None else cupy.ascontiguousarray(weight)
    t = cupy.ascontiguousarray(target, dtype=cupy.int64)
    return cupy.ascontiguousarray(x), t, w, n, c


def _smoothing(x: Array, c: int, eps: float) -> tuple:
    """``(1 - eps, eps / c)`` as the kernels' compute scalars, and whether ``eps > 0``."""
    ct = _compute(x.dtype)
    return ct(1.0 - eps), ct(eps / c), np.int32(eps > 0)


def _forward(args: tuple, ignore_index: int, eps: float, what: int, reduce: int) -> tuple | None:
    """Launch ``xent_forward``: ``(loss rows, weight rows, reduced)`` (those asked for by
    ``what``/``reduce``, else unrelated placeholders), or None for a bad target."""
    import cupy  # noqa: PLC0415

    x, t, w, n, c = args
    blocks = (n + _WARPS - 1) // _WARPS
    loss = cupy.empty(n, x.dtype) if what & 1 else x  # placeholders: never written
    wt = cupy.empty(n, x.dtype) if what & 2 else x
    part = cupy.empty(2 * blocks, _compute(x.dtype)) if reduce else x
    out = cupy.empty((), x.dtype) if reduce else x
    flags = cupy.zeros(2, cupy.uint64)  # a memset, not a kernel
    keep, ec, smooth = _smoothing(x, c, eps)
    _functions(x.dtype)["xent_forward"](
        (blocks,), (_THREADS,),
        (x, t, x if w is None else w, loss, wt, part, flags, out, np.int64(n), np.int64(c),
         np.int64(ignore_index), keep, ec, np.int32(w is not None), smooth, np.int32(what),
         np.int32(reduce)),
    )  # fmt: skip
    if int(flags[0].get()):  # the one host sync: a target outside [0, C)
        return None
    return loss, wt, out


def _scale(scale: Any, n: int, dtype: Any) -> tuple | None:
    """``(array or None, stride, scale0)``: a CuPy scale read at ``row * stride`` (0-d,
    size 1 or ``(n,)``, any stride), or a number; None when unusable."""
    if isinstance(scale, np.ndarray) and scale.size != 1:
        if scale.size != n:
            return None
        import cupy  # noqa: PLC0415

        scale = cupy.asarray(scale.reshape(n), dtype)
    if not is_cupy(scale):
        v = scale.item() if isinstance(scale, np.ndarray) else scale
        return None, 0, float(v)
    if scale.dtype != dtype:
        scale = scale.astype(dtype)
    if scale.size == 1:
        return scale, 0, 0.0
    if scale.ndim != 1 or scale.size != n or scale.strides[0] % scale.itemsize:
        return None
    return scale, scale.strides[0] // scale.itemsize, 0.0


def _backward(args: tuple, ignore_index: int, eps: float, scale: tuple, mean: bool) -> Array:
    """Launch ``xent_backward`` (after ``xent_mean_inv`` for a long 'mean'): dx."""
    import cupy  # noqa: PLC0415

    x, t, w, n, c = args
    fns = _functions(x.dtype)
    s, stride, scale0 = scale
    wp = x if w is None else w
    i64, ct = np.int64, _compute(x.dtype)
    inv, kind = x, 0  # placeholder: read only for kind 2
    if mean:
        kind = 1
        if n > _MEAN_INLINE:
            inv, kind = cupy.empty(1, ct), 2
            fns["xent_mean_inv"](
                (1,),
                (1024,),
                (t, wp, inv, i64(n), i64(c), i64(ignore_index), np.int32(w is not None)),
            )
    dx = cupy.empty_like(x)
    keep, ec, smooth = _smoothing(x, c, eps)
    fns["xent_backward"](
        ((n + _WARPS - 1) // _WARPS,), (_THREADS,),
        (x, t, wp, x if s is None else s, inv, dx, i64(n), i64(c), i64(ignore_index),
         i64(stride), ct(scale0), keep, ec, np.int32(w is not None), smooth,
         np.int32(s is not None), np.int32(kind)),
    )  # fmt: skip
    return dx


def cross_entropy_forward(
    x: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    *,
    with_grad: bool = False,
) -> tuple[Array, Array, Array | None] | None:
    """``(loss, weights, grad)`` per row of ``(N, C)`` CuPy logits, as
    :func:`ember.kernels.cross_entropy_forward`: the loss (0 for ignored rows), the target's
    weight (0 for ignored rows) and, with ``with_grad``, the gradient of ``loss.sum()`` (a
    second launch). None when unserved, also for a target outside ``[0, C)``.

    Example:
        >>> cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1])) is None  # NumPy arrays
        True
    """
    args = _args(x, target, weight, ignore_index)
    if args is None:
        return None
    out = _forward(args, ignore_index, label_smoothing, 3, 0)
    if out is None:
        return None
    dx = (
        _backward(args, ignore_index, label_smoothing, (None, 0, 1.0), False) if with_grad else None
    )
    return out[0], out[1], dx


def cross_entropy_backward(
    x: Array,
    target: Array,
    scale: Any,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Array | None:
    """The gradient of ``sum(scale * loss_rows)`` with respect to the CuPy logits ``x``, as
    :func:`ember.kernels.cross_entropy_backward`; ``scale`` is a number, or a CuPy array
    with one value (read on the device: no sync) or one per row. None when unserved.

    Example:
        >>> cross_entropy_backward(np.zeros((1, 2)), np.array([0]), 1.0) is None  # NumPy
        True
    """
    args = _args(x, target, weight, ignore_index)
    if args is None:
        return None
    s = _scale(scale, args[3], args[0].dtype)
    return None if s is None else _backward(args, ignore_index, label_smoothing, s, False)


def cross_entropy_loss(
    x: Array,
    target: Array,
    weight: Array | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Array | None:
    """``cross_entropy`` of CuPy logits ``(N, C)`` and class indices reduced as the op does:
    the ``(N,)`` losses for ``'none'``, else a 0-d array on the device (``'mean'`` divides by
    the summed target weights: NaN when all are ignored). None when unserved or for a target
    outside ``[0, C)`` (the NumPy path then raises).

    Example:
        >>> cross_entropy_loss(np.zeros((2, 3)), np.array([0, 1]), None, -100, 0.0, "sum") is None
        True
    """
    args = _args(x, target, weight, ignore_index)
    if args is None or reduction not in _REDUCE:
        return None
    reduce = _REDUCE[reduction]
    out = _forward(args, ignore_index, label_smoothing, 0 if reduce else 1, reduce)
    if out is None:
        return None
    return out[2] if reduce else out[0]


def cross_entropy_grad(
    x: Array,
    target: Array,
    g: Any,
    weight: Array | None,
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> Array | None:
    """The gradient of :func:`cross_entropy_loss` with respect to ``x`` for the upstream
    gradient ``g`` (a 0-d CuPy array or number, or ``(N,)`` for ``'none'``), in one launch:
    ``'mean'``'s ``g / sum(weights)`` (0 when that sum is 0) is formed on the device. None
    when unserved.

    Example:
        >>> cross_entropy_grad(np.zeros((2, 3)), np.array([0, 1]), 1.0, None, -100, 0.0, "mean")
    """
    args = _args(x, target, weight, ignore_index)
    if args is None or reduction not in _REDUCE:
        return None
    s = _scale(g, args[3], args[0].dtype)
    if s is None or (reduction != "none" and s[1] != 0):
        return None
    return _backward(args, ignore_index, label_smoothing, s, reduction == "mean")

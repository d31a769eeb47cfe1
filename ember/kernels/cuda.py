"""CUDA kernels for CuPy arrays, where the NumPy path's chain of ufuncs and reductions would
be a kernel launch each (on a GPU a small model's step is bound by launches: layer norm was
a third of the W3 GPT step on an H200): layer norm (one launch forward, two plus a column
sum backward), the tanh-approximated GELU (one ``ElementwiseKernel`` each way, the C
kernels' formulas: ``gelu(x) = x sigmoid(2u)``, no cancellation for negative inputs) and
max pooling (one launch each way instead of a strided ``maximum`` per kernel position and
a chain of masks per position backward).

Layer norm:
One warp normalizes one row: each lane strides over the row, the warp sums with shuffles
(the mean first, then the squared deviations from it, as the NumPy path computes them), and
accumulates in ``float`` for float16/float32 and ``double`` for float64. The backward
recomputes each row's statistics, writes ``dx = rstd (gw - mean(gw) - xhat mean(gw xhat))``
with ``gw = g * weight``, and keeps ``(mean, rstd)`` per row for a second kernel that sums
``g * xhat`` and ``g`` down each column in blocks of 64 rows; CuPy then adds the blocks'
partial sums. NaN and inf spread as through the NumPy path (no fast-math).

:func:`layer_norm_forward` and :func:`layer_norm_backward` keep the contracts of
:mod:`ember.kernels.norm` (which calls them for CuPy arrays) and return None when they
cannot serve (a dtype other than float16/32/64, dtypes that differ, an empty array).

Example:
    >>> from ember.kernels import cuda
    >>> cuda.layer_norm_forward(None, 1) is None  # not a CuPy array
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "is_cupy",
    "layer_norm_forward",
    "layer_norm_backward",
    "gelu_tanh",
    "gelu_tanh_backward",
]

Array = Any  # cupy.ndarray

# the start of every row kernel's source, after the typedefs of T and C (row_kernels)
PRELUDE = r"""
__device__ __forceinline__ C warp_sum(C s) {
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}
"""

_SOURCE = r"""
/* one warp per row: its mean and rstd (two passes over the row, as the NumPy path) */
__device__ __forceinline__ void row_stats(const T *xr, long long d, int lane, C eps, C *mean,
                                          C *rstd) {
    C s = 0;
    for (long long j = lane; j < d; j += 32) s += (C)xr[j];
    C m = warp_sum(s) / (C)d;
    C v = 0;
    for (long long j = lane; j < d; j += 32) {
        C t = (C)xr[j] - m;
        v += t * t;
    }
    *mean = m;
    *rstd = (C)1 / sqrt(warp_sum(v) / (C)d + eps);
}

/* has_w / has_b / keep: whether w, b and stats are real (CuPy passes no NULL pointers) */
extern "C" __global__ void ln_forward(const T *x, const T *w, const T *b, T *y, long long n,
                                      long long d, C eps, int has_w, int has_b) {
    long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return; /* the same for every lane of a warp */
    const T *xr = x + row * d;
    T *yr = y + row * d;
    C m, r;
    row_stats(xr, d, lane, eps, &m, &r);
    for (long long j = lane; j < d; j += 32) {
        C t = ((C)xr[j] - m) * r;
        if (has_w) t = t * (C)w[j];
        if (has_b) t = t + (C)b[j];
        yr[j] = (T)t;
    }
}

extern "C" __global__ void ln_backward(const T *g, const T *x, const T *w, T *dx, C *stats,
                                       long long n, long long d, C eps, int has_w, int keep) {
    long long row = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= n) return;
    const T *xr = x + row * d, *gr = g + row * d;
    T *dr = dx + row * d;
    C m, r;
    row_stats(xr, d, lane, eps, &m, &r);
    C s1 = 0, s2 = 0;
    for (long long j = lane; j < d; j += 32) {
        C gw = has_w ? (C)gr[j] * (C)w[j] : (C)gr[j];
        s1 += gw;
        s2 += gw * (((C)xr[j] - m) * r);
    }
    C mg = warp_sum(s1) / (C)d, mgx = warp_sum(s2) / (C)d;
    for (long long j = lane; j < d; j += 32) {
        C gw = has_w ? (C)gr[j] * (C)w[j] : (C)gr[j];
        C xh = ((C)xr[j] - m) * r;
        dr[j] = (T)(r * (gw - mg - xh * mgx));
    }
    if (keep && lane == 0) {
        stats[2 * row] = m;
        stats[2 * row + 1] = r;
    }
}

/* partial column sums over a block of ROWS rows into part (k, blocks, d): sum g * xhat
   first when dw, then sum g when db; block (32, 8) covers 32 columns */
#define ROWS 64
extern "C" __global__ void ln_affine_grad(const T *g, const T *x, const C *stats, C *part,
                                          long long n, long long d, int dw, int db) {
    __shared__ C sw[8][33], sb[8][33];
    long long c = (long long)blockIdx.x * 32 + threadIdx.x;
    long long r0 = (long long)blockIdx.y * ROWS;
    C aw = 0, ab = 0;
    if (c < d) {
        for (long long i = r0 + threadIdx.y; i < r0 + ROWS && i < n; i += 8) {
            C gv = (C)g[i * d + c];
            if (dw) aw += gv * (((C)x[i * d + c] - stats[2 * i]) * stats[2 * i + 1]);
            ab += gv;
        }
    }
    sw[threadIdx.y][threadIdx.x] = aw;
    sb[threadIdx.y][threadIdx.x] = ab;
    __syncthreads();
    if (threadIdx.y == 0 && c < d) {
        for (int k = 1; k < 8; k++) {
            aw += sw[k][threadIdx.x];
            ab += sb[k][threadIdx.x];
        }
        long long plane = (long long)gridDim.y * d, at = (long long)blockIdx.y * d + c;
        if (dw) part[at] = aw;
        if (db) part[(dw ? plane : 0) + at] = ab;
    }
}

/* out[j] = the sum of part (k, blocks, d) over its blocks, for j < k * d */
extern "C" __global__ void ln_affine_sum(const C *part, T *out, long long blocks, long long d,
                                         long long kd) {
    long long j = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= kd) return;
    const C *p = part + (j / d) * blocks * d + j % d;
    C s = 0;
    for (long long b = 0; b < blocks; b++) s += p[b * d];
    out[j] = (T)s;
}
"""

_MODULES: dict[str, Any] = {}
TYPES = {"float16": ("__half", "float"), "float32": ("float", "float"),
          "float64": ("double", "double")}  # fmt: skip
_WARPS = 8  # rows (warps) per block of the row kernels
_ROWS = 64  # rows per block of the column-sum kernel (ROWS in the source)


def is_cupy(a: Any) -> bool:
    """True when ``a`` is a CuPy array.

    Example:
        >>> import numpy as np
        >>> is_cupy(np.ones(2))
        False
    """
    return type(a).__module__.startswith("cupy")


def row_kernels(cache: dict, source: str, names: tuple, dtype: Any) -> dict[str, Any]:
    """The kernels ``names`` of CUDA ``source`` (written over ``T``, the storage type, and
    ``C``, the compute type, after :data:`PRELUDE`) for ``dtype``, built once per dtype
    into ``cache``; shared by the row kernels here and in :mod:`.cuda_loss`.

    Example:
        >>> # fns = row_kernels({}, "extern \"C\" __global__ void k(T *x) {}", ("k",), "float32")
    """
    name = str(dtype)
    fns = cache.get(name)
    if fns is None:
        import cupy  # noqa: PLC0415  (only reached for CuPy arrays)

        t, c = TYPES[name]
        head = "#include <cuda_fp16.h>\n" if name == "float16" else ""
        code = head + f"typedef {t} T;\ntypedef {c} C;\n" + PRELUDE + source
        mod = cupy.RawModule(code=code)
        fns = cache[name] = {f: mod.get_function(f) for f in names}
    return fns


def _functions(dtype: Any) -> dict[str, Any]:
    """The layer-norm kernels for ``dtype`` by name (built once per dtype)."""
    names = ("ln_forward", "ln_backward", "ln_affine_grad", "ln_affine_sum")
    return row_kernels(_MODULES, _SOURCE, names, dtype)


def _usable(x: Array, *others: Array) -> bool:
    if not is_cupy(x) or x.size == 0 or str(x.dtype) not in TYPES:
        return False
    return all(o is None or (is_cupy(o) and o.dtype == x.dtype) for o in others)


def _affine(p: Array | None, d: int) -> Array | None | bool:
    """A weight/bias as a contiguous (d,) array; None when absent; False when unusable."""
    if p is None:
        return None
    if p.size != d:
        return False
    import cupy  # noqa: PLC0415

    return cupy.ascontiguousarray(p).reshape(d)


def _scalar(dtype: Any, v: float) -> Any:
    return np.float64(v) if str(dtype) == "float64" else np.float32(v)


def layer_norm_forward(
    x: Array,
    normalized_ndim: int,
    weight: Array | None = None,
    bias: Array | None = None,
    eps: float = 1e-5,
) -> Array | None:
    """``(x - mean) * rstd * weight + bias`` over the last ``normalized_ndim`` axes of the
    CuPy array ``x``, as a fresh array; None when unserved.

    Example:
        >>> # y = layer_norm_forward(cupy.ones((4, 8), cupy.float32), 1)
    """
    if not _usable(x, weight, bias) or not 0 < normalized_ndim <= x.ndim:
        return None
    import cupy  # noqa: PLC0415

    d = math.prod(x.shape[x.ndim - normalized_ndim :])
    w, b = _affine(weight, d), _affine(bias, d)
    if w is False or b is False:
        return None
    x = cupy.ascontiguousarray(x)
    n = x.size // d
    y = cupy.empty_like(x)
    f = _functions(x.dtype)["ln_forward"]
    f(((n + _WARPS - 1) // _WARPS,), (32 * _WARPS,),
      (x, x if w is None else w, x if b is None else b, y, np.int64(n), np.int64(d),
       _scalar(x.dtype, eps), np.int32(w is not None), np.int32(b is not None)))  # fmt: skip
    return y


def layer_norm_backward(
    g: Array,
    x: Array,
    weight: Array | None,
    normalized_ndim: int,
    eps: float,
    weight_grad: bool,
    bias_grad: bool,
) -> Array | None:
    """``[dx, dweight, dbias]`` of layer norm (the last two when asked for) raveled into one
    flat CuPy array, the statistics recomputed from ``x``; None when unserved.

    Example:
        >>> # flat = layer_norm_backward(g, x, w, 1, 1e-5, True, True)
    """
    if not _usable(x, g, weight) or g.shape != x.shape or not 0 < normalized_ndim <= x.ndim:
        return None
    import cupy  # noqa: PLC0415

    d = math.prod(x.shape[x.ndim - normalized_ndim :])
    w = _affine(weight, d)
    if w is False:
        return None
    n = x.size // d
    blocks = (n + _ROWS - 1) // _ROWS
    if blocks > 65535:  # the column-sum kernel's grid
        return None
    g, x = cupy.ascontiguousarray(g), cupy.ascontiguousarray(x)
    k = int(weight_grad) + int(bias_grad)
    flat = cupy.empty(x.size + k * d, x.dtype)
    fns = _functions(x.dtype)
    compute = cupy.float64 if x.dtype == cupy.float64 else cupy.float32
    scratch = cupy.empty(2 * n + k * blocks * d if k else 1, compute)  # stats, then partials
    n64, d64 = np.int64(n), np.int64(d)
    fns["ln_backward"](((n + _WARPS - 1) // _WARPS,), (32 * _WARPS,),
      (g, x, x if w is None else w, flat, scratch, n64, d64, _scalar(x.dtype, eps),
       np.int32(w is not None), np.int32(k > 0)))  # fmt: skip
    if k:
        part = scratch[2 * n :]
        fns["ln_affine_grad"](((d + 31) // 32, blocks), (32, 8),
          (g, x, scratch, part, n64, d64, np.int32(weight_grad), np.int32(bias_grad)))  # fmt: skip
        fns["ln_affine_sum"](((k * d + 255) // 256,), (256,),
          (part, flat[x.size :], np.int64(blocks), d64, np.int64(k * d)))  # fmt: skip
    return flat


# -- GELU, tanh approximation --------------------------------------------------------------
_GELU = {
    "forward": ("T x", "T y", """
        C v = (C)x;
        C u = v * (v * v * (C)0.044715 + 1) * (C)0.7978845608028654;
        y = (T)(v / (1 + exp(-2 * u)));
    """),
    "backward": ("T g, T x", "T dx", """
        C v = (C)x, v2 = v * v;
        C u = (v2 * (C)0.044715 + 1) * v * (C)0.7978845608028654;
        C du = (v2 * (C)(3 * 0.044715) + 1) * (C)0.7978845608028654;
        C e = exp(-2 * fabs(u)), r = 1 / (1 + e);
        C s = (u >= 0 ? (C)1 : e) * r;
        C w = e * r * r;
        dx = (T)((s + (w == 0 ? 0 * v : 2 * v * du * w)) * (C)g);
    """),
}  # fmt: skip
_ELEMENTWISE: dict[tuple, Any] = {}


def _gelu_kernel(which: str, dtype: Any) -> Any:
    compute = "double" if str(dtype) == "float64" else "float"
    key = (which, compute)
    k = _ELEMENTWISE.get(key)
    if k is None:
        import cupy  # noqa: PLC0415

        ins, outs, body = _GELU[which]
        k = _ELEMENTWISE[key] = cupy.ElementwiseKernel(
            ins, outs, f"typedef {compute} C;\n" + body, f"ember_gelu_tanh_{which}_{compute}"
        )
    return k


def gelu_tanh(x: Array) -> Array | None:
    """GELU with the tanh approximation of the CuPy array ``x``, in one kernel; None when
    unserved.

    Example:
        >>> gelu_tanh(np.zeros(2)) is None  # not a CuPy array
        True
    """
    if not _usable(x):
        return None
    return _gelu_kernel("forward", x.dtype)(x)


def gelu_tanh_backward(g: Array, x: Array) -> Array | None:
    """``g * gelu'(x)`` (tanh approximation) of CuPy arrays of one shape, in one kernel; None
    when unserved.

    Example:
        >>> gelu_tanh_backward(np.zeros(2), np.zeros(2)) is None  # not CuPy arrays
        True
    """
    if not _usable(x, g) or g.shape != x.shape:
        return None
    return _gelu_kernel("backward", x.dtype)(g, x)


# -- max pooling -----------------------------------------------------------------------------
_POOL_SOURCE = r"""
typedef TYPE T;
/* one thread per output element (plane, oh, ow): the window's first max, or its first NaN
   (PyTorch's choice, as the C kernels); positions in the padding are skipped; a window
   entirely in the padding gives -inf and no gradient */
__device__ __forceinline__ long long pool_winner(const T *xp, int H, int W, int oh, int ow,
                                                 const int *g, T *best) {
    long long at = -1;
    T b = (T)0;
    for (int i = 0; i < g[0]; i++) {
        int h = oh * g[2] - g[4] + i * g[6];
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < g[1]; j++) {
            int w = ow * g[3] - g[5] + j * g[7];
            if (w < 0 || w >= W) continue;
            T v = xp[h * W + w];
            if (at < 0 || v > b || (isnan(v) && !isnan(b))) {
                b = v;
                at = (long long)h * W + w;
            }
        }
    }
    *best = b;
    return at;
}

/* this thread's output element i (none past total): its plane, and its window's winner
   ``at`` (-1: none) and value ``b``; geometry g: kh, kw, sh, sw, ph, pw, dh, dw */
#define POOL_WINDOW                                                                         \
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;                         \
    if (i >= total) return;                                                                 \
    int g[8] = {kh, kw, sh, sw, ph, pw, dh, dw};                                            \
    int ow = (int)(i % OW), oh = (int)((i / OW) % OH);                                      \
    long long plane = i / ((long long)OW * OH);                                             \
    T b;                                                                                    \
    long long at = pool_winner(x + plane * H * W, H, W, oh, ow, g, &b)

extern "C" __global__ void pool_max_forward(const T *x, T *y, long long total, int H, int W,
                                            int OH, int OW, int kh, int kw, int sh, int sw,
                                            int ph, int pw, int dh, int dw) {
    POOL_WINDOW;
    y[i] = at < 0 ? (T)(-1.0 / 0.0) : b;
}

extern "C" __global__ void pool_max_backward(const T *gy, const T *x, T *dx, long long total,
                                             int H, int W, int OH, int OW, int kh, int kw,
                                             int sh, int sw, int ph, int pw, int dh, int dw) {
    POOL_WINDOW;
    if (at >= 0) atomicAdd(dx + plane * H * W + at, gy[i]);
}
"""
_POOL: dict[str, Any] = {}


def _pool_functions(dtype: Any) -> dict[str, Any]:
    name = str(dtype)
    fns = _POOL.get(name)
    if fns is None:
        import cupy  # noqa: PLC0415

        mod = cupy.RawModule(code=_POOL_SOURCE.replace("TYPE", TYPES[name][0], 1))
        fns = _POOL[name] = {f: mod.get_function(f) for f in ("pool_max_forward",
                                                                "pool_max_backward")}  # fmt: skip
    return fns


def _pool_args(x: Array, geom: tuple) -> tuple | None:
    """The int32 geometry arguments (H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw), or None
    for a geometry the kernels do not take (asymmetric padding pairs)."""
    kernel, stride, padding, dilation, out_hw = geom
    if any(isinstance(p, (tuple, list)) for p in padding):
        return None
    vals = (*x.shape[2:], *out_hw, *kernel, *stride, *padding, *dilation)
    return tuple(np.int32(v) for v in vals)


def _pooled(x: Array) -> bool:
    return _usable(x) and x.ndim == 4 and str(x.dtype) in ("float32", "float64")


def max_pool2d_forward(x: Array, *geom: Any) -> Array | None:
    """Max pooling of the CuPy array ``x`` (N, C, H, W) over the windows of ``geom``
    (``kernel_size, stride, padding, dilation, out_hw`` pairs) in one kernel; None when
    unserved (float16, integers, asymmetric padding).

    Example:
        >>> max_pool2d_forward(np.zeros((1, 1, 2, 2)), (2, 2), (2, 2), (0, 0), (1, 1), (1, 1))
    """
    if not _pooled(x):
        return None
    args = _pool_args(x, geom)
    if args is None:
        return None
    import cupy  # noqa: PLC0415

    x = cupy.ascontiguousarray(x)
    y = cupy.empty(x.shape[:2] + tuple(geom[4]), x.dtype)
    if y.size:
        _pool_functions(x.dtype)["pool_max_forward"](
            ((y.size + 255) // 256,), (256,), (x, y, np.int64(y.size), *args)
        )
    return y


def max_pool2d_backward(g: Array, x: Array, *geom: Any) -> Array | None:
    """The input gradient of :func:`max_pool2d_forward`: each window's ``g`` added at its
    winner in ``x`` (atomic adds: windows may overlap); None when unserved.

    Example:
        >>> max_pool2d_backward(np.zeros((1, 1, 1, 1)), np.zeros((1, 1, 2, 2)), (2, 2),
        ...                     (2, 2), (0, 0), (1, 1), (1, 1))
    """
    if not _pooled(x) or not _usable(g, x) or g.shape != x.shape[:2] + tuple(geom[4]):
        return None
    args = _pool_args(x, geom)
    if args is None:
        return None
    import cupy  # noqa: PLC0415

    g, x = cupy.ascontiguousarray(g), cupy.ascontiguousarray(x)
    dx = cupy.zeros_like(x)
    if g.size:
        _pool_functions(x.dtype)["pool_max_backward"](
            ((g.size + 255) // 256,), (256,), (g, x, dx, np.int64(g.size), *args)
        )
    return dx

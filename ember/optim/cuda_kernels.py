"""Fused CUDA kernels (CuPy ``ElementwiseKernel``) for optimizer updates on GPU parameters.

On the CPU each update is a handful of in-place NumPy ufuncs; on a GPU that would be a
kernel launch per ufunc, so the whole per-parameter update runs as one kernel instead. The
math is the same as the NumPy path (same formulas, same order), computed in ``float`` for
float16/float32 parameters and ``double`` for float64. CuPy is imported only when a GPU
parameter is stepped.

A whole group of Adam parameters can also run as ONE kernel launch (``adam_multi``): the
kernel reads a small table of per-tensor pointers, sizes and step-dependent scalars (one
host-to-device copy) and walks the group as ``(tensor, chunk)`` work items, with the same
element-wise body as ``adam``, so its results are bit-identical to one ``adam`` per parameter.

Example:
    >>> from ember.optim import cuda_kernels
    >>> callable(cuda_kernels.adam), callable(cuda_kernels.adam_multi)
    (True, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["adam", "adam_multi", "sgd"]

_KERNELS: dict[tuple, Any] = {}

_ADAM_BODY = """
C gr = (C)g;
#if MAXIMIZE
gr = -gr;
#endif
C pp = (C)p;
#if DECOUPLED
pp = pp * decay;
#endif
#if COUPLED
gr = gr + wd * pp;
#endif
C mm = (C)m;
#if LERP_LOW
mm = mm + w1 * (gr - mm);
#else
mm = gr - (gr - mm) * (1 - w1);
#endif
C vv = (C)v * beta2 + (w2 * gr) * gr;
m = (T)mm;
v = (T)vv;
#if AMSGRAD
C old = (C)vmax;
C vm = (isnan(old) || old >= vv) ? old : vv;
vmax = (T)vm;
C den = sqrt(vm) / bc2 + eps;
#else
C den = sqrt(vv) / bc2 + eps;
#endif
p = (T)(pp + neg_step * (mm / den));
"""


_SGD_BODY = """
C gr = (C)g;
#if MAXIMIZE
gr = -gr;
#endif
#if WEIGHT_DECAY
gr = wd * (C)p + gr;
#endif
#if MOMENTUM
#if FIRST
C b = gr;
#else
C b = (C)buf * momentum + damp1 * gr;
#endif
buf = (T)b;
#if NESTEROV
gr = momentum * b + gr;
#else
gr = b;
#endif
#endif
p = (T)((C)p + neg_lr * gr);
"""


def _kernel(
    kind: str, body: str, compute: str, flags: dict[str, bool], scalars: tuple, outs: str
) -> Any:
    """Build (once) and cache an ElementwiseKernel specialised for ``flags``."""
    key = (kind, compute, tuple(flags.items()))
    kernel = _KERNELS.get(key)
    if kernel is None:
        import cupy  # noqa: PLC0415  (only reached for GPU parameters)

        scalar = "float64" if compute == "double" else "float32"
        defines = "".join(f"#define {n} {int(v)}\n" for n, v in flags.items())
        kernel = cupy.ElementwiseKernel(
            "T g, " + ", ".join(f"{scalar} {n}" for n in scalars),
            outs,
            f"typedef {compute} C;\n" + body,
            f"ember_{kind}_{compute}_{''.join(str(int(v)) for v in flags.values())}",
            preamble=defines,
        )
        _KERNELS[key] = kernel
    return kernel


def _compute(param: Any) -> tuple[str, Any]:
    if param.dtype == np.float64:
        return "double", np.float64
    return "float", np.float32


def _adam_flags(
    beta1: float, weight_decay: float, decoupled: bool, maximize: bool, amsgrad: bool
) -> dict[str, bool]:
    """The compile-time switches of the Adam body (shared by ``adam`` and ``adam_multi``)."""
    return {
        "MAXIMIZE": maximize,
        "DECOUPLED": decoupled and weight_decay != 0,
        "COUPLED": not decoupled and weight_decay != 0,
        "LERP_LOW": 1 - beta1 < 0.5,
        "AMSGRAD": amsgrad,
    }


def _adam_step_scalars(lr: float, beta1: float, beta2: float, step: float) -> tuple[float, float]:
    """``(neg_step, bc2)``: the step-count dependent scalars, in double, before rounding."""
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    return -(lr / bias_correction1), bias_correction2_sqrt


def adam(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
    step: float,
) -> None:
    """One fused Adam/AdamW update of CuPy arrays, in place.

    Example:
        >>> # adam(p, g, m, v, None, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
        >>> #      weight_decay=0.0, decoupled=False, maximize=False, step=1.0)
    """
    compute, s = _compute(param)
    amsgrad = max_exp_avg_sq is not None
    flags = _adam_flags(beta1, weight_decay, decoupled, maximize, amsgrad)
    neg_step, bc2 = _adam_step_scalars(lr, beta1, beta2, step)
    values = [
        s(1 - beta1),
        s(beta2),
        s(1 - beta2),
        s(neg_step),
        s(bc2),
        s(eps),
        s(weight_decay),
        s(1 - lr * weight_decay),
    ]
    names = ("w1", "beta2", "w2", "neg_step", "bc2", "eps", "wd", "decay")
    outs = [param, exp_avg, exp_avg_sq] + ([max_exp_avg_sq] if amsgrad else [])
    out_spec = "T p, T m, T v" + (", T vmax" if amsgrad else "")
    _kernel("adam", _ADAM_BODY, compute, flags, names, out_spec)(grad, *values, *outs)


# -- one launch for a whole group ----------------------------------------------------------------
# The table the kernel reads (int64 slots, ``k`` arrays per tensor: p, g, m, v[, vmax]):
#   [0, k*n)            the arrays' device addresses, tensor by tensor
#   [k*n, (k+1)*n)      each tensor's element count
#   [(k+1)*n, (k+2)*n)  each tensor's first work item (prefix sum of its chunk counts)
#   then 2*n values of the compute type: each tensor's neg_step and bc2
# A work item is CHUNK consecutive elements of one tensor; block b takes items b, b + grid,
# ... and finds an item's tensor by binary search over the first-item column.
_MULTI_THREADS = 256
_MULTI_CHUNK = 8 * _MULTI_THREADS
_MULTI_MAX_BLOCKS = 1 << 16
# the element types (cuda_fp16.h's __half converts with the same round-to-nearest as CuPy's
# float16, which wraps it)
_MULTI_TYPES = {np.dtype(t): c for t, c in ((np.float16, "__half"), (np.float32, "float"))}
_MULTI_TYPES[np.dtype(np.float64)] = "double"

_MULTI_SOURCE = """
extern "C" __global__ void ember_adam_multi(
    const long long* meta, const int n, const long long items,
    const C w1, const C beta2, const C w2, const C eps, const C wd, const C decay)
{
  const long long* sizes = meta + NPTR * n;
  const long long* first = sizes + n;
  const C* per = (const C*)(first + n);
  for (long long c = blockIdx.x; c < items; c += gridDim.x) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
      const int mid = (lo + hi + 1) >> 1;
      if (first[mid] <= c) lo = mid; else hi = mid - 1;
    }
    const long long* ptr = meta + NPTR * lo;
    T* const P = (T*)ptr[0];
    const T* const G = (const T*)ptr[1];
    T* const M = (T*)ptr[2];
    T* const V = (T*)ptr[3];
#if AMSGRAD
    T* const X = (T*)ptr[4];
#endif
    const C neg_step = per[2 * lo];
    const C bc2 = per[2 * lo + 1];
    const long long start = (c - first[lo]) * CHUNK;
    const long long stop = min(start + (long long)CHUNK, sizes[lo]);
    for (long long j = start + threadIdx.x; j < stop; j += blockDim.x) {
      const T &g = G[j];
      T &p = P[j];
      T &m = M[j];
      T &v = V[j];
#if AMSGRAD
      T &vmax = X[j];
#endif
BODY
    }
  }
}
"""


def multi_source(dtype: Any, flags: dict[str, bool]) -> str:
    """The CUDA source of the multi-tensor Adam kernel for ``dtype`` and ``flags`` (the
    per-parameter kernel's body, unchanged, inside a loop over the group's work items).

    Example:
        >>> flags = dict(MAXIMIZE=False, DECOUPLED=False, COUPLED=False, LERP_LOW=True,
        ...              AMSGRAD=False)
        >>> "ember_adam_multi" in multi_source(np.float32, flags)
        True
    """
    dtype = np.dtype(dtype)
    head = "#include <cuda_fp16.h>\n" if dtype == np.float16 else ""
    head += f"typedef {_MULTI_TYPES[dtype]} T;\n"
    head += f"typedef {'double' if dtype == np.float64 else 'float'} C;\n"
    head += f"#define CHUNK {_MULTI_CHUNK}\n#define NPTR {5 if flags['AMSGRAD'] else 4}\n"
    head += "".join(f"#define {k} {int(v)}\n" for k, v in flags.items())
    return head + _MULTI_SOURCE.replace("BODY", _ADAM_BODY.strip("\n"))


def _multi_kernel(dtype: Any, flags: dict[str, bool]) -> Any:
    key = ("adam_multi", np.dtype(dtype).str, tuple(flags.items()))
    kernel = _KERNELS.get(key)
    if kernel is None:
        import cupy  # noqa: PLC0415  (only reached for GPU parameters)

        kernel = cupy.RawKernel(multi_source(dtype, flags), "ember_adam_multi")
        _KERNELS[key] = kernel
    return kernel


def multi_table(
    pointers: list[int], sizes: list[int], neg_steps: list[float], bc2s: list[float], compute: Any
) -> tuple[np.ndarray, int]:
    """``(table, items)``: the kernel's int64 table (layout above) for tensors of ``sizes``
    elements (all > 0; ``pointers`` holds ``k`` addresses per tensor), and the number of
    work items. Host-only (NumPy), so it is checked without a GPU.

    Example:
        >>> table, items = multi_table([1, 2, 3, 4], [3000], [-0.1], [0.5], np.float64)
        >>> table[4:6].tolist(), items, table[6:].view(np.float64).tolist()
        ([3000, 0], 2, [-0.1, 0.5])
    """
    n = len(sizes)
    k = len(pointers) // n
    compute = np.dtype(compute)
    slots = -(-2 * n * compute.itemsize // 8)
    table = np.empty((k + 2) * n + slots, dtype=np.int64)
    table[: k * n] = pointers
    size = table[k * n : (k + 1) * n]
    size[:] = sizes
    counts = -(-size // _MULTI_CHUNK)
    np.cumsum(counts[:-1], out=table[(k + 1) * n + 1 : (k + 2) * n])
    table[(k + 1) * n] = 0
    per = table[(k + 2) * n :].view(compute)
    per[0 : 2 * n : 2] = neg_steps
    per[1 : 2 * n : 2] = bc2s
    return table, int(counts.sum())


def _group_dtype(lists: list[list[Any]]) -> Any:
    """The group's dtype when every array is a C-contiguous CuPy array of one supported dtype
    and shape per tensor on the current device; else None. Never imports CuPy."""
    import sys  # noqa: PLC0415

    cupy = sys.modules.get("cupy")
    params = lists[0]
    if cupy is None or not params or type(params[0]) is not cupy.ndarray:
        return None
    dtype = params[0].dtype
    if dtype not in _MULTI_TYPES:
        return None
    device = cupy.cuda.runtime.getDevice()
    nd = cupy.ndarray
    for i, p in enumerate(params):
        for lst in lists:
            a = lst[i]
            if (
                type(a) is not nd
                or a.dtype != dtype
                or a.shape != p.shape
                or not a.flags.c_contiguous
                or a.data.device_id != device
            ):
                return None
    return dtype


def adam_multi(
    params: list[Any],
    grads: list[Any],
    exp_avgs: list[Any],
    exp_avg_sqs: list[Any],
    max_exp_avg_sqs: list[Any] | None,
    steps: list[float],
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled: bool,
    maximize: bool,
) -> bool:
    """Adam/AdamW (AMSGrad when ``max_exp_avg_sqs`` is given) over a whole group of CuPy
    arrays in ONE kernel launch, in place; ``steps[i]`` is parameter ``i``'s (incremented)
    step count. Bit-identical to ``adam`` on each parameter. Returns False, changing nothing,
    unless every array is a C-contiguous CuPy array of one dtype (float16/32/64) on the
    current device, each tensor's arrays of one shape (then use ``adam`` per parameter).

    Example:
        >>> import numpy as np
        >>> p = [np.zeros(3, np.float32)]
        >>> adam_multi(p, p, p, p, None, [1.0], lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8,
        ...            weight_decay=0.0, decoupled=False, maximize=False)  # NumPy: declined
        False
    """
    amsgrad = max_exp_avg_sqs is not None
    lists = [params, grads, exp_avgs, exp_avg_sqs] + ([max_exp_avg_sqs] if amsgrad else [])
    if any(len(lst) != len(params) for lst in lists) or len(steps) != len(params):
        return False
    dtype = _group_dtype(lists)
    if dtype is None:
        return False
    lr = float(lr)  # a host number (the per-parameter path converts it the same way)
    _, s = _compute(params[0])
    pointers: list[int] = []
    sizes: list[int] = []
    neg_steps: list[float] = []
    bc2s: list[float] = []
    scalars: dict[float, tuple[float, float]] = {}
    for i, p in enumerate(params):
        if p.size == 0:
            continue
        pointers.extend(lst[i].data.ptr for lst in lists)
        sizes.append(p.size)
        step = float(steps[i])
        pair = scalars.get(step)
        if pair is None:
            pair = scalars[step] = _adam_step_scalars(lr, beta1, beta2, step)
        neg_steps.append(pair[0])
        bc2s.append(pair[1])
    if not sizes:
        return True
    if len(set(pointers[:: len(lists)])) != len(sizes):  # a parameter twice: run in order
        return False
    import cupy  # noqa: PLC0415  (the arrays are CuPy arrays)

    table, items = multi_table(pointers, sizes, neg_steps, bc2s, s)
    values = (
        s(1 - beta1),
        s(beta2),
        s(1 - beta2),
        s(eps),
        s(weight_decay),
        s(1 - lr * weight_decay),
    )
    flags = _adam_flags(beta1, weight_decay, decoupled, maximize, amsgrad)
    grid = min(items, _MULTI_MAX_BLOCKS)
    # cupy.array copies through a pinned staging buffer, asynchronously on the current stream
    args = (cupy.array(table), np.int32(len(sizes)), np.int64(items), *values)
    _multi_kernel(dtype, flags)((grid,), (_MULTI_THREADS,), args)
    return True


def sgd(
    param: Any,
    grad: Any,
    buf: Any,
    *,
    lr: float,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool,
    first: bool,
) -> None:
    """One fused SGD update of CuPy arrays, in place (``buf`` is None without momentum).

    Example:
        >>> # sgd(p, g, buf, lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0,
        >>> #     nesterov=False, maximize=False, first=True)
    """
    compute, s = _compute(param)
    flags = {
        "MAXIMIZE": maximize,
        "WEIGHT_DECAY": weight_decay != 0,
        "MOMENTUM": buf is not None,
        "FIRST": first,
        "NESTEROV": nesterov,
    }
    values = [s(-lr), s(momentum), s(1 - dampening), s(weight_decay)]
    names = ("neg_lr", "momentum", "damp1", "wd")
    outs = [param] + ([buf] if buf is not None else [])
    out_spec = "T p" + (", T buf" if buf is not None else "")
    _kernel("sgd", _SGD_BODY, compute, flags, names, out_spec)(grad, *values, *outs)

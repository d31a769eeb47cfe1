"""Fused CUDA kernels (CuPy ``ElementwiseKernel``) for optimizer updates on GPU parameters.

On the CPU each update is a handful of in-place NumPy ufuncs; on a GPU that would be a
kernel launch per ufunc, so the whole per-parameter update runs as one kernel instead. The
math is the same as the NumPy path (same formulas, same order), computed in ``float`` for
float16/float32 parameters and ``double`` for float64. CuPy is imported only when a GPU
parameter is stepped.

Example:
    >>> from ember.optim import cuda_kernels
    >>> callable(cuda_kernels.adam)
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["adam", "sgd"]

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
    w1 = 1 - beta1
    flags = {
        "MAXIMIZE": maximize,
        "DECOUPLED": decoupled and weight_decay != 0,
        "COUPLED": not decoupled and weight_decay != 0,
        "LERP_LOW": w1 < 0.5,
        "AMSGRAD": amsgrad,
    }
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    values = [
        s(w1),
        s(beta2),
        s(1 - beta2),
        s(-(lr / bias_correction1)),
        s(bias_correction2_sqrt),
        s(eps),
        s(weight_decay),
        s(1 - lr * weight_decay),
    ]
    names = ("w1", "beta2", "w2", "neg_step", "bc2", "eps", "wd", "decay")
    outs = [param, exp_avg, exp_avg_sq] + ([max_exp_avg_sq] if amsgrad else [])
    out_spec = "T p, T m, T v" + (", T vmax" if amsgrad else "")
    _kernel("adam", _ADAM_BODY, compute, flags, names, out_spec)(grad, *values, *outs)


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

"""ember's C kernels: fused, vectorized, multithreaded versions of the hot eager ops, behind
one seam of array-level functions.

Every seam function takes NumPy arrays and returns the result, or **None** (False for the
optimizer steps) when the C kernels cannot serve the call; the caller then runs its NumPy
path, which remains the reference implementation::

    y = kernels.softmax_forward(x, axis)
    if y is None:
        y = softmax_xp(np, x, axis)  # the NumPy path

The kernels are C source generated in :mod:`ember.kernels.source`, compiled on first use
by the system C compiler and cached on disk (:mod:`ember.kernels.build`), loaded through
cffi: each kernel on its first call (with its backward beside a forward one), or all of
them at once, in parallel, ahead of use (:func:`prepare`).
``EMBER_KERNELS=auto|c|numpy`` chooses (:mod:`ember.kernels.runtime`); without a
compiler ember says so once and runs its NumPy path. Threads follow ``ember.threads``.

Seam functions: ``softmax_forward/backward`` (also log-softmax and the attention softmax),
``layer_norm_forward/stats/backward``, ``norm_moments``, ``norm_standardize`` and
``norm_standardize_backward`` (the primitives of layer, group, instance and batch norm),
``dropout_mask``, ``gelu_*``, ``silu_*``, ``sigmoid_*``, ``tanh_*``,
``cross_entropy_forward/backward`` (fused loss + gradient), ``embedding_backward``,
``im2col``/``col2im``/``swap01`` and the direct few-tap convolution
(``conv_direct``, ``conv_weight_grad_direct``, ``direct_available``), the implicit-GEMM
convolution (``implicit_conv2d``, ``implicit_weight_grad``, ``implicit_transpose2d``,
``implicit_available``: no column matrix; 3 x 3 unit-stride ones go to Winograd's
F(2x2, 3x3) in :mod:`.winograd`), ``max_pool2d_*``, ``avg_pool2d_*``,
``relu_forward/backward``, ``sdpa_forward/backward`` (fused attention), ``sgd_step``, ``adam_step``,
``rmsprop_step``, ``tall_matmul`` (matrix products of many rows, bias fused: :mod:`.gemm`),
``linear_chain`` (linear layers with ReLU on a few rows, one call: :mod:`.gemv`), ``binary``
(``add``/``sub``/``mul`` of two large arrays of one shape on several threads: :mod:`.arith`).

Example:
    >>> import numpy as np
    >>> from ember import kernels
    >>> y = kernels.softmax_forward(np.zeros(4, np.float32), 0)
    >>> y is None or y.tolist() == [0.25] * 4
    True
"""

from __future__ import annotations

from typing import Any

from .arith import binary, column_sums
from .attention import sdpa_backward, sdpa_forward
from .conv import (
    col2im,
    col2im_available,
    conv_direct,
    conv_weight_grad_direct,
    direct_available,
    im2col,
    swap01,
)
from .conv_gemm import (
    implicit_available,
    implicit_conv2d,
    implicit_transpose2d,
    implicit_weight_grad,
)
from .gemm import tall_matmul
from .gemv import linear_chain
from .nn import (
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_mask,
    embedding_backward,
    gelu_backward,
    gelu_forward,
    sigmoid_backward,
    sigmoid_forward,
    silu_backward,
    silu_forward,
    softmax_backward,
    softmax_forward,
    tanh_backward,
    tanh_forward,
)
from .norm import (
    layer_norm_backward,
    layer_norm_forward,
    layer_norm_stats,
    norm_moments,
    norm_standardize,
    norm_standardize_backward,
)
from .optim import adam_step, rmsprop_step, sgd_step
from .pool import (
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    relu_backward,
    relu_forward,
)
from .runtime import KernelFallbackWarning, KernelUnavailableError, mode, prepare, set_mode

__all__ = [
    "available",
    "prepare",
    "info",
    "describe",
    "mode",
    "set_mode",
    "KernelFallbackWarning",
    "KernelUnavailableError",
    "softmax_forward",
    "softmax_backward",
    "layer_norm_forward",
    "layer_norm_stats",
    "layer_norm_backward",
    "norm_moments",
    "norm_standardize",
    "norm_standardize_backward",
    "gelu_forward",
    "gelu_backward",
    "silu_forward",
    "silu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "embedding_backward",
    "dropout_mask",
    "im2col",
    "col2im",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "relu_forward",
    "relu_backward",
    "col2im_available",
    "swap01",
    "conv_direct",
    "conv_weight_grad_direct",
    "direct_available",
    "implicit_conv2d",
    "implicit_weight_grad",
    "linear_chain",
    "implicit_transpose2d",
    "implicit_available",
    "sgd_step",
    "adam_step",
    "rmsprop_step",
    "sdpa_forward",
    "sdpa_backward",
    "tall_matmul",
    "binary",
    "column_sums",
]


def available() -> bool:
    """True when the C kernels are in use: not ``EMBER_KERNELS=numpy`` and a probe unit
    builds (or loads from the cache). May compile on first call (under a second).

    Example:
        >>> available() in (True, False)
        True
    """
    return _probe()


def _probe() -> bool:
    """Whether the probe kernel builds or loads (alone: no companion for a probe)."""
    from ..autograd.mode import no_grad
    from . import runtime

    with no_grad():
        return runtime.function("softmax", "softmax_forward", "f32") is not None


def info(probe: bool = True) -> dict[str, Any]:
    """What the kernel layer is doing, as a dict: ``backend`` ('c' or 'numpy'), ``mode``,
    ``reason`` (why NumPy, when it is), ``compiler``, ``flags``, ``cache``, ``loaded`` units,
    ``threads``, ``wait_policy``, ``spin_count`` (libgomp's ``GOMP_SPINCOUNT``). With
    ``probe`` it builds or loads one small unit to be sure.

    Example:
        >>> sorted(info(probe=False))[:3]
        ['backend', 'cache', 'compiler']
    """
    import os

    from .. import threads
    from . import build, runtime

    m = runtime.mode()
    reason = None
    if m == "numpy":
        reason = "EMBER_KERNELS=numpy"
    elif probe:
        try:
            ok = _probe()
        except KernelUnavailableError as e:
            ok, reason = False, str(e)
        if not ok and reason is None:
            reason = "; ".join(runtime.failures().values()) or "unavailable"
    libs = runtime.loaded()
    try:
        compiler = build.toolchain().version
    except build.KernelBuildError as e:
        compiler = None
        reason = reason or e.reason
    backend = "c" if m != "numpy" and (libs or (not probe and compiler)) and not reason else "numpy"
    flags = next(iter(libs.values())).flags if libs else []
    return {
        "backend": backend,
        "mode": m,
        "reason": reason,
        "compiler": compiler,
        "flags": flags,
        "cache": str(build.cache_dir()),
        "loaded": sorted(libs),
        "threads": threads.kernel_threads(1 << 40),
        "wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "spin_count": os.environ.get("GOMP_SPINCOUNT", "default"),
    }


def describe(probe: bool = True) -> str:
    """One line for ``ember info``: which kernels are active and where the cache is.

    Example:
        >>> describe(probe=False).split()[0] in ("C", "NumPy")
        True
    """
    d = info(probe)
    if d["backend"] == "c":
        flags = " ".join(f for f in d["flags"] if f.startswith(("-march", "-mcpu", "-fopenmp")))
        extra = f", {flags}" if flags else ""
        return f"C ({d['compiler']}{extra}; {d['threads']} threads), cache {d['cache']}"
    return f"NumPy ({d['reason'] or 'C kernels unavailable'}), cache {d['cache']}"

"""ember: a deep learning framework in pure Python on NumPy (CuPy on NVIDIA GPUs).

Eager and define-by-run like PyTorch, with the same names; see the README for a tour.

Example:
    >>> import ember
    >>> x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x ** 2).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4., 6.])
"""

from __future__ import annotations

__version__ = "0.1.0"

# first, before anything imports NumPy (which loads OpenBLAS): importing ember.threads sets
# the BLAS threads' wait policy (ember.threads.configure_blas_env)
from . import threads as _threads  # noqa: F401

# isort: split

# Start-up stays fast (``import ember`` is ~ NumPy's own import): the names below are cheap
# to import; the op library (ember.ops: ``ember.tensor``, ``ember.matmul``, ``Tensor``'s
# operators...), ember.random and the subpackages load on first use through __getattr__.
# ``Tensor`` is lazy too, so no tensor exists before ember.ops has attached its methods.
from . import autograd
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .device import (
    Device,
    cuda_is_available,
    device,
    get_default_device,
    set_default_device,
)
from .dtypes import (
    DType,
    bool_,
    double,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    uint8,
)
from .errors import DTypeError, EmberError, ShapeError
from .memory import tune_allocator as _tune_allocator
from .threads import get_num_threads, set_num_threads

bool = bool_  # noqa: A001  (ember.bool, as torch.bool)
# importing ember.autograd bound the submodule ember.tensor here; ember.tensor is the factory
# function (published with the op library), so drop the module from the namespace
globals().pop("tensor", None)

_tune_allocator()  # keep freed array memory for reuse (see ember/memory.py)


_LAZY = {
    "nn",
    "optim",
    "data",
    "train",
    "io",
    "graph",
    "onnx",
    "board",
    "serve",
    "distributed",
    "config",
    "kernels",
    "random",
}
_IO = {"save", "load"}
_RANDOM = {"Generator", "get_rng_state", "initial_seed", "manual_seed", "seed", "set_rng_state"}


def _load_ops():
    """Import the op library and publish its functions (and ``Tensor``) as ``ember.*``;
    later lookups of those names are plain module globals."""
    import importlib

    ops = importlib.import_module("ember.ops")
    g = globals()
    for name in ops.__all__:
        g[name] = getattr(ops, name)
    g["linalg"] = ops.linalg
    g["Tensor"] = ops.Tensor
    return ops


def __getattr__(name: str):
    """Import the op library and heavier subpackages on first use (``import ember`` stays
    fast; see the note at the top of this file)."""
    import importlib

    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module 'ember' has no attribute {name!r}")
    ops = _load_ops()  # every subpackage needs it; loading it first keeps Tensor complete
    g = globals()
    if name in g:
        return g[name]
    if name == "__all__":
        public = (n for n in g if not n.startswith("_") and n not in _LAZY)
        return sorted({*public, *_RANDOM, "ops"})
    if name in _LAZY:
        return importlib.import_module(f"ember.{name}")
    if name in _RANDOM:
        return getattr(importlib.import_module("ember.random"), name)
    if name in _IO:
        return getattr(importlib.import_module("ember.io"), name)
    if name in ("export", "load_onnx"):  # ONNX export/import (the optional 'onnx' extra)
        return getattr(importlib.import_module("ember.onnx"), name)
    if name == "compile":  # ember.compile: graph mode, imported on first use
        return importlib.import_module("ember.graph").compile
    if name == "ops":
        return ops
    raise AttributeError(f"module 'ember' has no attribute {name!r}")


def __dir__() -> list[str]:
    _load_ops()
    return sorted({*globals(), *_LAZY, *_IO, *_RANDOM, "export", "load_onnx", "compile"})

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

from . import autograd, ops
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
from .ops import *  # noqa: F403
from .ops import linalg
from .random import Generator, get_rng_state, initial_seed, manual_seed, seed, set_rng_state
from .tensor import Tensor
from .threads import get_num_threads, set_num_threads

bool = bool_  # noqa: A001  (ember.bool, as torch.bool)

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
}
_IO = {"save", "load"}


def __getattr__(name: str):
    """Import heavier subpackages on first use so that ``import ember`` stays fast."""
    import importlib

    if name in _LAZY:
        return importlib.import_module(f"ember.{name}")
    if name in _IO:
        return getattr(importlib.import_module("ember.io"), name)
    if name in ("export", "load_onnx"):  # ONNX export/import (the optional 'onnx' extra)
        return getattr(importlib.import_module("ember.onnx"), name)
    if name == "compile":  # ember.compile: graph mode, imported on first use
        return importlib.import_module("ember.graph").compile
    raise AttributeError(f"module 'ember' has no attribute {name!r}")

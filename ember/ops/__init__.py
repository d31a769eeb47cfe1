"""ember's op library. Each family file declares its ops (forward, backward, shape rule,
purity, ONNX name) once; this package gathers the public functions and attaches the tensor
methods each family lists in its ``METHODS`` table.

Example:
    >>> import ember
    >>> ember.ops.REGISTRY["matmul"].onnx
    'MatMul'
"""

from __future__ import annotations

from types import ModuleType

from ..tensor import Tensor
from . import (
    activation,
    creation,
    division,
    elementwise,
    indexing,
    inplace,
    linalg,
    reduce,
    shape,
    unary,
)
from . import optim as optim_ops  # noqa: F401, E402  (registers the optimizer update ops)
from .activation import *  # noqa: F403
from .creation import *  # noqa: F403
from .division import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .indexing import *  # noqa: F403
from .inplace import apply_inplace
from .linalg import *  # noqa: F403
from .nn import softmax as nn_softmax  # noqa: E402  (Tensor.softmax, ember.softmax)
from .nn.softmax import log_softmax, softmax
from .reduce import *  # noqa: F403
from .registry import REGISTRY, Op, apply, defop
from .shape import *  # noqa: F403
from .unary import *  # noqa: F403

FAMILIES: tuple[ModuleType, ...] = (
    inplace,
    nn_softmax,
    creation,
    elementwise,
    division,
    unary,
    activation,
    shape,
    indexing,
    reduce,
    linalg,
)

# in-place variants generated from the out-of-place method of the same name
INPLACE = (
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "neg",
    "exp",
    "log",
    "remainder",
    "floor_divide",
    "sqrt",
    "rsqrt",
    "abs",
    "sign",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "floor",
    "ceil",
    "round",
    "trunc",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
    "reciprocal",
    "log1p",
    "expm1",
    "masked_fill",
    "fill_diagonal",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "logical_not",
    "scatter",
    "scatter_add",
    "index_fill",
    "tril",
    "triu",
    "lerp",
    "square",
)


def _make_inplace(name: str, fn):
    def method(self: Tensor, *args, **kwargs) -> Tensor:
        return apply_inplace(self, name + "_", fn, *args, **kwargs)

    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``; returns self."
    return method


def _install_methods() -> None:
    for family in FAMILIES:
        for name, fn in getattr(family, "METHODS", {}).items():
            setattr(Tensor, name, fn)
    for name in INPLACE:
        fn = getattr(Tensor, name, None)
        if fn is not None and not hasattr(Tensor, name + "_"):
            setattr(Tensor, name + "_", _make_inplace(name, fn))


_install_methods()

# what `from ember.ops import *` (and so `import ember`) exports: the ops, not the
# subpackages (ember.nn must stay the layers package, not ember.ops.nn) or internals
_INTERNAL = {
    "FAMILIES",
    "INPLACE",
    "REGISTRY",
    "Op",
    "apply",
    "defop",
    "apply_inplace",
    "ModuleType",
    "Tensor",
    "annotations",
}
__all__ = [
    n
    for n, v in list(globals().items())
    if not n.startswith("_") and not isinstance(v, ModuleType) and n not in _INTERNAL
]

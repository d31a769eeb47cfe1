"""What export and import share: the optional-dependency gate, errors, dtype tables.

``import ember`` never imports ``onnx`` or ``onnxruntime``; the functions here import them on
first use and turn a missing package into an error that names the ``pip install`` fixing it.

Example:
    >>> from ember.onnx._common import require_onnx
    >>> require_onnx().__name__
    'onnx'
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import EmberError

__all__ = [
    "OnnxExportError",
    "OnnxImportError",
    "MissingExtraError",
    "require_onnx",
    "require_onnxruntime",
    "onnx_dtype",
    "numpy_dtype",
    "ir_version_for",
    "MAX_OPSET",
    "MIN_OPSET",
]

INSTALL_HINT = "pip install 'ember[onnx]'"
MIN_OPSET = 13  # Softmax over one axis, ReduceSum axes as an input, Split sizes as an input
MAX_OPSET = 26  # ONNX Runtime for Node.js 1.30 accepts opset <= 26 (and IR <= 13)


class MissingExtraError(EmberError, ImportError):
    """An optional package (``onnx``, ``onnxruntime``) is not installed.

    Example:
        >>> issubclass(MissingExtraError, ImportError)
        True
    """


class OnnxExportError(EmberError):
    """``ember.export`` cannot write the model (an op without an ONNX lowering, a bad input).

    Example:
        >>> str(OnnxExportError("op 'foo' has no ONNX lowering"))
        "op 'foo' has no ONNX lowering"
    """


class OnnxImportError(EmberError):
    """``ember.load_onnx`` cannot read the model (corrupt file, unsupported ONNX ops).

    Example:
        >>> issubclass(OnnxImportError, ember.EmberError)
        True
    """


def _require(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the '{name}' package, which is not installed: {INSTALL_HINT} "
            f"(or pip install {name}) fixes it ({exc})"
        ) from None


def require_onnx(what: str = "ember.onnx") -> ModuleType:
    """The ``onnx`` module, or a :class:`MissingExtraError` saying how to install it.

    Example:
        >>> require_onnx().helper.make_opsetid("", 18).version
        18
    """
    return _require("onnx", what)


def require_onnxruntime(what: str = "ember.onnx") -> ModuleType:
    """The ``onnxruntime`` module, or a :class:`MissingExtraError` saying how to install it.

    Example:
        >>> hasattr(require_onnxruntime(), "InferenceSession")
        True
    """
    return _require("onnxruntime", what)


def onnx_dtype(dtype: Any) -> int:
    """The ``TensorProto`` element type of a NumPy dtype.

    Example:
        >>> onnx_dtype(np.float32)
        1
    """
    onnx = require_onnx()
    return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def numpy_dtype(elem_type: int) -> np.dtype:
    """The NumPy dtype of a ``TensorProto`` element type.

    Example:
        >>> numpy_dtype(7)
        dtype('int64')
    """
    onnx = require_onnx()
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))


def ir_version_for(opset: int) -> int:
    """The IR version of the first ONNX release that defined ``opset`` (what runtimes that
    know the opset accept), from ``onnx.helper.VERSION_TABLE``.

    Example:
        >>> ir_version_for(18)
        8
    """
    onnx = require_onnx()
    for row in onnx.helper.VERSION_TABLE:
        if row[2] >= opset:
            return int(row[1])
    raise OnnxExportError(f"opset {opset} is newer than this onnx package knows")

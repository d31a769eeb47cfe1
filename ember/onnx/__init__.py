"""ONNX export and import.

* :func:`export` traces a model or function and writes an ONNX model (parameters as
  initializers, symbolic batch size); :func:`to_onnx` returns the ``ModelProto`` instead.
* :func:`load` (also ``ember.load("model.onnx")``) reads an ONNX model into an ember
  ``nn.Module`` that runs eagerly and under ``ember.compile`` and whose float initializers are
  trainable parameters.
* :class:`Backend` implements ``onnx.backend.base.Backend`` on top of the importer.

The ``onnx`` and ``onnxruntime`` packages are an optional extra (``pip install 'ember[onnx]'``);
this package imports them only when one of these functions runs.

Example:
    >>> import ember, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> _ = ember.onnx.export(ember.nn.Linear(3, 2), ember.randn(4, 3), path)
    >>> m = ember.onnx.load(path)
    >>> m(ember.randn(5, 3)).shape
    (5, 2)
"""

from __future__ import annotations

from typing import Any

from ._common import MissingExtraError, OnnxExportError, OnnxImportError

__all__ = [
    "export",
    "to_onnx",
    "load",
    "load_onnx",
    "OnnxModule",
    "Backend",
    "OnnxExportError",
    "OnnxImportError",
    "MissingExtraError",
]

_LAZY = {
    "export": ("exporter", "export"),
    "to_onnx": ("exporter", "to_onnx"),
    "graph_to_onnx": ("exporter", "graph_to_onnx"),
    "load": ("importer", "load"),
    "load_onnx": ("importer", "load"),
    "from_proto": ("importer", "from_proto"),
    "OnnxModule": ("importer", "OnnxModule"),
    "Backend": ("backend", "EmberBackend"),
    "EmberBackend": ("backend", "EmberBackend"),
    "inspect_model": ("tools", "inspect_model"),
    "convert_to_ort": ("tools", "convert_to_ort"),
}


def __getattr__(name: str) -> Any:
    """Import the export/import modules on first use."""
    import importlib

    spec = _LAZY.get(name)
    if spec is None:
        raise AttributeError(f"module 'ember.onnx' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ember.onnx.{spec[0]}"), spec[1])

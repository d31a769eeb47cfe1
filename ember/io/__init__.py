"""``ember.io``: saving and loading without pickle (safetensors files), and training
checkpoints. ``ember.save`` and ``ember.load`` are these ``save`` and ``load``.

Example:
    >>> import ember, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.safetensors")
    >>> ember.save({"w": ember.arange(3)}, path)
    >>> ember.load(path)["w"].tolist()
    [0, 1, 2]
"""

from __future__ import annotations

from . import safetensors
from .checkpoint import load_checkpoint, save_checkpoint
from .safetensors import FileFormatError
from .serialization import SerializationError, load, register_loader, save

__all__ = [
    "save",
    "load",
    "save_checkpoint",
    "load_checkpoint",
    "register_loader",
    "FileFormatError",
    "SerializationError",
    "safetensors",
]

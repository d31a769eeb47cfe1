"""``ember.nn.utils``: gradient clipping (``clip_grad_norm_``, ``clip_grad_value_``) and
parameter helpers.

The clipping functions live in ``clip_grad.py`` and load on first use.

Example:
    >>> import ember
    >>> m = ember.nn.Linear(2, 1)
    >>> v = ember.nn.utils.parameters_to_vector(m.parameters())
    >>> v.shape
    (3,)
"""

from __future__ import annotations

import importlib
from typing import Any

from .convert_parameters import parameters_to_vector, vector_to_parameters

_CLIP = (
    "clip_grad_norm_",
    "clip_grad_norm",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
)


def __getattr__(name: str) -> Any:
    if name in _CLIP or name == "clip_grad":
        module = importlib.import_module(".clip_grad", __name__)
        return module if name == "clip_grad" else getattr(module, name)
    raise AttributeError(f"module 'ember.nn.utils' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_CLIP])

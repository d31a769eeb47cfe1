"""Training checkpoints: model, optimizer, scheduler, epoch and ember's RNG state in one
file, so that a resumed run continues the exact same loss trajectory.

Any object with ``state_dict()`` / ``load_state_dict()`` can be checkpointed: pass it by
name (``model=``, ``optimizer=``, ``scheduler=``, or any other keyword) to both
:func:`save_checkpoint` and :func:`load_checkpoint`. Other keyword values (numbers,
strings, tensors, nested dicts ...) are stored as they are.

Example:
    >>> import ember, os, tempfile
    >>> w = ember.zeros(2, requires_grad=True)
    >>> opt = ember.optim.SGD([w], lr=0.1)
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> save_checkpoint(path, optimizer=opt, epoch=3, best_loss=0.25)
    >>> ckpt = load_checkpoint(path, optimizer=opt)
    >>> ckpt["epoch"], ckpt["best_loss"]
    (3, 0.25)
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from ..random import get_rng_state, set_rng_state
from .safetensors import FileFormatError
from .serialization import load, save

__all__ = ["save_checkpoint", "load_checkpoint", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1
_FORMAT_KEY = "ember_checkpoint"
_RESERVED = (_FORMAT_KEY, "epoch", "rng_state")


def _has_state(obj: Any) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(
        getattr(obj, "load_state_dict", None)
    )


def save_checkpoint(
    path: str | os.PathLike | BinaryIO,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    epoch: int | None = None,
    **extra: Any,
) -> None:
    """Save a training checkpoint atomically (see :func:`ember.save`).

    Stores ``model.state_dict()``, ``optimizer.state_dict()``, ``scheduler.state_dict()``
    (those given), ``epoch``, ember's global RNG state, and each ``extra`` keyword: objects
    with ``state_dict()`` as their state, anything else as is.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "c.safetensors")
        >>> save_checkpoint(p, epoch=1, note="warm-up done")
        >>> load_checkpoint(p)["note"]
        'warm-up done'
    """
    ckpt: dict[str, Any] = {_FORMAT_KEY: CHECKPOINT_VERSION, "epoch": epoch}
    named = {"model": model, "optimizer": optimizer, "scheduler": scheduler}
    for key, value in extra.items():
        if key in _RESERVED:
            raise ValueError(f"save_checkpoint: {key!r} is a reserved checkpoint entry")
        named[key] = value
    for key, value in named.items():
        if value is None and key in ("model", "optimizer", "scheduler"):
            continue
        ckpt[key] = value.state_dict() if _has_state(value) else value
    ckpt["rng_state"] = get_rng_state()
    save(ckpt, path)


def load_checkpoint(
    path: str | os.PathLike | BinaryIO,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    *,
    map_location: Any = None,
    restore_rng: bool = True,
    **objects: Any,
) -> dict[str, Any]:
    """Load a checkpoint from :func:`save_checkpoint` into the objects given, restore
    ember's RNG state (unless ``restore_rng=False``), and return the checkpoint dict
    (``"epoch"``, the extras, and the raw states).

    Load the model before the optimizer is stepped again; any other keyword object with
    ``load_state_dict`` is restored from the entry of the same name.

    Example:
        >>> import os, tempfile
        >>> w = ember.ones(2, requires_grad=True); opt = ember.optim.Adam([w], lr=0.5)
        >>> p = os.path.join(tempfile.mkdtemp(), "c.safetensors")
        >>> save_checkpoint(p, optimizer=opt, epoch=7)
        >>> load_checkpoint(p, optimizer=ember.optim.Adam([w]))["epoch"]
        7
    """
    ckpt = load(path, map_location=map_location)
    source = os.fspath(path) if isinstance(path, str | os.PathLike) else "<stream>"
    if not isinstance(ckpt, dict) or _FORMAT_KEY not in ckpt:
        raise FileFormatError(
            f"{source}: not an ember checkpoint (it was not written by save_checkpoint); "
            "use ember.load to read it"
        )
    if ckpt[_FORMAT_KEY] != CHECKPOINT_VERSION:
        raise FileFormatError(
            f"{source}: checkpoint version {ckpt[_FORMAT_KEY]!r} is not supported "
            f"(this ember reads version {CHECKPOINT_VERSION})"
        )
    targets = {"model": model, "optimizer": optimizer, "scheduler": scheduler, **objects}
    for key, obj in targets.items():
        if obj is None:
            continue
        if key not in ckpt:
            raise KeyError(f"load_checkpoint: the checkpoint {source!r} has no {key!r} entry")
        if not _has_state(obj):
            raise TypeError(
                f"load_checkpoint: {key}= must have load_state_dict(), got {type(obj).__name__}"
            )
        obj.load_state_dict(ckpt[key])
    if restore_rng and ckpt.get("rng_state") is not None:
        set_rng_state(ckpt["rng_state"])
    return ckpt

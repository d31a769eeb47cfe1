"""Logging callbacks: a CSV file per run, a generic ``on_log(step, logs)`` hook (what a
TensorBoard writer builds on), and callbacks made from plain functions.

Example:
    >>> from ember.train import CSVLogger, LoggingCallback
    >>> seen = []
    >>> callbacks = [CSVLogger("train.csv"), LoggingCallback(lambda s, logs: seen.append(s))]
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from .callbacks import Callback

__all__ = ["CSVLogger", "LoggingCallback", "LambdaCallback"]


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` then the logs) to a CSV file.

    Example:
        >>> log = CSVLogger("training.csv")
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self._file: Any = None
        self._writer: Any = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        folder = os.path.dirname(self.filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._keys = None
        self._header_written = self.append and exists
        if self._header_written:
            with open(self.filename, newline="") as f:
                first = f.readline().strip()
            self._keys = first.split(self.separator)[1:] if first else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
        if not self._header_written:
            self._writer = csv.writer(self._file, delimiter=self.separator)
            self._writer.writerow(["epoch", *self._keys])
            self._header_written = True
        if self._writer is None:
            self._writer = csv.writer(self._file, delimiter=self.separator)
        self._writer.writerow([epoch + 1, *(_csv_value(logs.get(k, "")) for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = self._writer = None

    def on_exception(self, exception: BaseException) -> None:
        self.on_train_end()


def _csv_value(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return repr(float(v))
    return v


class LoggingCallback(Callback):
    """A generic logging hook: ``on_log(step, logs)`` is called every ``every_n_steps``
    training steps with ``{"step/loss": ..., "step/lr": ...}`` and at each epoch end with the
    epoch logs as ``{"epoch/loss": ..., "epoch/val_loss": ..., ...}``; ``step`` is the global
    step. Subclass it (a TensorBoard writer does) or pass ``fn(step, logs)``.

    Example:
        >>> seen = []
        >>> cb = LoggingCallback(lambda step, logs: seen.append((step, logs)), every_n_steps=10)
    """

    def __init__(
        self, fn: Callable[[int, dict], None] | None = None, every_n_steps: int = 50
    ) -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.fn = fn
        self.every_n_steps = every_n_steps

    def on_log(self, step: int, logs: dict) -> None:
        """Receive one set of values at ``step``; override it or pass ``fn``."""
        if self.fn is not None:
            self.fn(step, logs)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        step = int(logs.get("step", 0))
        if step % self.every_n_steps == 0:
            out = {"step/loss": logs.get("batch_loss")}
            if "lr" in logs:
                out["step/lr"] = logs["lr"]
            self.on_log(step, {k: v for k, v in out.items() if v is not None})

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = int(getattr(self.trainer, "global_step", 0)) if self.trainer else 0
        self.on_log(step, {f"epoch/{k}": v for k, v in (logs or {}).items()})


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda e, logs: ...)``.

    Example:
        >>> cb = LambdaCallback(on_train_end=lambda logs: print("done"))
        >>> cb.on_train_end({})
        done
    """

    _HOOKS = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_batch_begin",
        "on_batch_end",
    )

    def __init__(self, **hooks: Callable[..., None]) -> None:
        for name, fn in hooks.items():
            if name not in self._HOOKS:
                raise TypeError(f"LambdaCallback: unknown hook {name!r}; use {self._HOOKS}")
            setattr(self, name, fn)

"""Callbacks: code the Trainer runs at fixed points of training.

Hooks (all optional): ``on_train_begin/end(logs)``, ``on_epoch_begin/end(epoch, logs)``,
``on_batch_begin/end(batch, logs)``. ``epoch`` and ``batch`` count from 0. Epoch logs hold
``loss``, each metric, ``val_loss`` / ``val_<metric>`` when there is validation data, and
``lr``; batch logs hold the epoch's running ``loss`` and metrics, ``batch_loss``,
``batch_size`` and ``step`` (the global step). ``self.trainer`` and ``self.model`` are set
before training starts; setting ``self.trainer.stop_training = True`` ends training after
the current epoch.

Example:
    >>> from ember.train import Callback
    >>> class PrintLoss(Callback):
    ...     def on_epoch_end(self, epoch, logs):
    ...         print(f"epoch {epoch + 1}: loss {logs['loss']:.3f}")
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..tensor import Tensor

__all__ = [
    "Callback",
    "CallbackList",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "LRSchedulerCallback",
]


class Callback:
    """Base class: override the hooks you need (see the module docs).

    Example:
        >>> class CountBatches(Callback):
        ...     def on_train_begin(self, logs): self.n = 0
        ...     def on_batch_end(self, batch, logs): self.n += 1
    """

    trainer: Any = None

    @property
    def model(self) -> Any:
        return None if self.trainer is None else self.trainer.model

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: dict | None = None) -> None:
        pass

    def on_train_end(self, logs: dict | None = None) -> None:
        pass

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        pass

    def on_exception(self, exception: BaseException) -> None:
        """Training is ending with ``exception`` (including KeyboardInterrupt): release
        resources (files, progress bars); the exception propagates afterwards."""


class CallbackList:
    """Calls each hook on every callback in order.

    Example:
        >>> CallbackList([Callback()]).on_epoch_end(0, {})
    """

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def set_trainer(self, trainer: Any) -> None:
        for cb in self.callbacks:
            cb.set_trainer(trainer)

    def __iter__(self):
        return iter(self.callbacks)

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._call("on_train_begin", logs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._call("on_epoch_end", epoch, logs)

    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        self._call("on_batch_begin", batch, logs)

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._call("on_batch_end", batch, logs)

    def on_exception(self, exception: BaseException) -> None:
        for cb in self.callbacks:
            try:
                cb.on_exception(exception)
            except Exception:  # never hide the original error
                pass


class History(Callback):
    """The per-epoch logs of a ``fit`` (returned by it): ``history["val_loss"]`` is the list
    of values, ``history.epochs`` the list of epoch log dicts.

    Example:
        >>> h = History(); h.on_epoch_end(0, {"loss": 0.5}); h.on_epoch_end(1, {"loss": 0.25})
        >>> h["loss"], h.epoch
        ([0.5, 0.25], [0, 1])
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.epochs: list[dict] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        self.epoch.append(epoch)
        self.epochs.append(logs)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)

    def __getitem__(self, key: str) -> list[float]:
        try:
            return self.history[key]
        except KeyError:
            raise KeyError(
                f"History has no {key!r}; it has {sorted(self.history) or 'no epochs yet'}"
            ) from None

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epochs)

    def __repr__(self) -> str:
        last = self.epochs[-1] if self.epochs else {}
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float | int))
        return f"History(epochs={len(self)}{', last: ' + shown if shown else ''})"


def _resolve_mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        higher = ("acc", "auc", "precision", "recall", "f1", "score")
        return "max" if any(h in monitor for h in higher) else "min"
    return mode


class _Monitor:
    """Tracks the best value of a logged quantity."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.mode = _resolve_mode(mode, monitor)
        self.min_delta = abs(min_delta)
        self.best = math.inf if self.mode == "min" else -math.inf
        self._warned = False

    def value(self, logs: dict | None, who: str) -> float | None:
        v = (logs or {}).get(self.monitor)
        if v is None:
            if not self._warned:
                self._warned = True
                have = ", ".join(sorted(logs or {})) or "nothing"
                hint = " (pass val_data to fit)" if self.monitor.startswith("val_") else ""
                warnings.warn(
                    f"{who} monitors {self.monitor!r}, which is not in the logs{hint}; "
                    f"available: {have}",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return None
        return float(v)

    def improved(self, current: float, reference: float | None = None) -> bool:
        ref = self.best if reference is None else reference
        if math.isnan(current):
            return False
        if self.mode == "min":
            return current < ref - self.min_delta
        return current > ref + self.min_delta


def _snapshot(model: Any) -> Any:
    """A deep copy of the model's state (state_dict when it has one)."""
    if hasattr(model, "state_dict"):
        return {
            k: Tensor._make(v._data.copy(), v.device) if isinstance(v, Tensor) else v
            for k, v in model.state_dict().items()
        }
    return [p._data.copy() for p in model.parameters()]


def _restore(model: Any, snap: Any) -> None:
    if isinstance(snap, dict):
        model.load_state_dict(snap)
    else:
        for p, arr in zip(model.parameters(), snap):
            p._data[...] = arr


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs.

    ``mode`` is ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names). With
    ``restore_best_weights`` the model gets the best epoch's weights back at the end of
    training (whether it stopped early or not). ``baseline``: stop unless the quantity
    beats it within ``patience`` epochs.

    Example:
        >>> stop = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
    ) -> None:
        self.monitor = monitor
        self.min_delta = min_delta
        self.patience = patience
        self.verbose = verbose
        self.mode = mode
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self._tracker = _Monitor(monitor, mode, min_delta)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._tracker = _Monitor(self.monitor, self.mode, self.min_delta)
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_epoch: int | None = None
        self.best_weights: Any = None
        self._last_epoch: int | None = None

    @property
    def best(self) -> float:
        return self._tracker.best

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._last_epoch = epoch
        current = self._tracker.value(logs, "EarlyStopping")
        if current is None:
            return
        self.wait += 1
        if self._tracker.improved(current):
            self._tracker.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = _snapshot(self.model)
            if self.baseline is None or self._tracker.improved(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch is not None and self.verbose:
            print(
                f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}: {self.monitor} "
                f"did not improve for {self.wait} epochs (best {self.best:.4g} at epoch "
                f"{(self.best_epoch or 0) + 1})"
            )
        if (
            self.restore_best_weights
            and self.best_weights is not None
            and self.best_epoch != self._last_epoch
        ):
            _restore(self.model, self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")


class ModelCheckpoint(Callback):
    """Save the model (through ``ember.save``) at the end of epochs.

    ``filepath`` may hold ``{epoch}`` (1-based) and any log key, with format specs:
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.safetensors"``. With ``save_best_only`` a file
    is written only when ``monitor`` improves (``mode`` as in :class:`EarlyStopping`); with
    ``save_last`` the latest weights are also kept, in ``last<ext>`` beside ``filepath`` or
    at the path given. ``save_weights_only=False`` writes a full training checkpoint instead
    (``ember.io.save_checkpoint``: model, optimizer, the scheduler of an
    :class:`LRSchedulerCallback`, epoch and RNG state) that ``ember.io.load_checkpoint``
    resumes from.

    Attributes after training: ``best_model_path``, ``best_model_score``,
    ``last_model_path``.

    Example:
        >>> ckpt = ModelCheckpoint("ckpt/best.safetensors", monitor="val_loss",
        ...                        save_best_only=True, save_last=True)
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = True,
        mode: str = "auto",
        save_last: bool | str = False,
    ) -> None:
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.mode = mode
        self.save_last = save_last
        self.best_model_path: str | None = None
        self.best_model_score: float | None = None
        self.last_model_path: str | None = None
        self._tracker = _Monitor(monitor, mode)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._tracker = _Monitor(self.monitor, self.mode)
        if self.best_model_score is not None:  # resuming: keep the best so far
            self._tracker.best = self.best_model_score

    def _format(self, epoch: int, logs: dict) -> str:
        fields = {**logs, "epoch": epoch + 1}
        try:
            return self.filepath.format(**fields)
        except KeyError as e:
            raise KeyError(
                f"ModelCheckpoint: filepath {self.filepath!r} uses {{{e.args[0]}}}, which is "
                f"not in the logs (available: epoch, {', '.join(sorted(logs))})"
            ) from None

    def _write(self, path: str, epoch: int) -> None:
        import ember
        from ember.io import save_checkpoint

        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        if self.save_weights_only:
            ember.save(self.model.state_dict(), path)
            return
        scheduler = next(
            (
                c.scheduler
                for c in getattr(self.trainer, "callbacks", ())
                if isinstance(c, LRSchedulerCallback)
            ),
            None,
        )
        save_checkpoint(
            path,
            model=self.model,
            optimizer=getattr(self.trainer, "optimizer", None),
            scheduler=scheduler,
            epoch=epoch + 1,
        )

    def _last_path(self) -> str:
        if isinstance(self.save_last, str):
            return self.save_last
        folder = os.path.dirname(self.filepath)
        ext = Path(self.filepath).suffix
        return os.path.join(folder, "last" + ext)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = dict(logs or {})
        if self.save_best_only:
            current = self._tracker.value(logs, "ModelCheckpoint")
            if current is not None and self._tracker.improved(current):
                self._tracker.best = current
                path = self._format(epoch, logs)
                self._write(path, epoch)
                if self.verbose:
                    print(
                        f"ModelCheckpoint: {self.monitor} improved to {current:.4g}; saved {path}"
                    )
                self.best_model_path, self.best_model_score = path, current
        else:
            path = self._format(epoch, logs)
            self._write(path, epoch)
            current = logs.get(self.monitor)
            if current is not None and self._tracker.improved(float(current)):
                self._tracker.best = float(current)
                self.best_model_path, self.best_model_score = path, float(current)
            if self.verbose:
                print(f"ModelCheckpoint: saved {path}")
        if self.save_last:
            self.last_model_path = self._last_path()
            self._write(self.last_model_path, epoch)


def _is_plateau(scheduler: Any) -> bool:
    try:
        from ..optim.lr_scheduler import ReduceLROnPlateau

        if isinstance(scheduler, ReduceLROnPlateau):
            return True
    except (ImportError, AttributeError):
        pass
    return type(scheduler).__name__ == "ReduceLROnPlateau"


class LRSchedulerCallback(Callback):
    """Step an ``ember.optim.lr_scheduler`` scheduler once per epoch (``interval="epoch"``)
    or once per batch (``interval="step"``). ``ReduceLROnPlateau`` is stepped at epoch end
    with the value of ``monitor``.

    Example:
        >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=0.1)
        >>> sched = ember.optim.lr_scheduler.StepLR(opt, step_size=10)
        >>> cb = LRSchedulerCallback(sched, interval="epoch")
    """

    def __init__(self, scheduler: Any, interval: str = "epoch", monitor: str = "val_loss") -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval must be 'epoch' or 'step', got {interval!r}")
        self.scheduler = scheduler
        self.interval = interval
        self.monitor = monitor
        self._plateau = _is_plateau(scheduler)
        self._tracker = _Monitor(monitor, "min")

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.interval == "step" and not self._plateau:
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._plateau:
            value = self._tracker.value(logs, "LRSchedulerCallback(ReduceLROnPlateau)")
            if value is not None:
                self.scheduler.step(value)
        elif self.interval == "epoch":
            self.scheduler.step()

"""Trainer: the training loop, written once (fit / evaluate / predict), with metrics and
callbacks (progress bar, early stopping, checkpoints, LR schedules, logging).

Batches are sequences ``(input, ..., target)``: the model gets every element but the last
(``model(*inputs)``) and the loss gets ``(output, target)``; a dict batch uses its
``"input"``/``"x"`` and ``"target"``/``"y"`` keys. To change what one step does (gradient
clipping, several inputs, AMP ...) subclass and override :meth:`Trainer.train_step` or
:meth:`Trainer.eval_step`.

Example:
    >>> import ember
    >>> from ember import nn
    >>> from ember.train import Trainer
    >>> x, y = ember.randn(64, 4), ember.randint(0, 3, (64,))
    >>> model = nn.Linear(4, 3)
    >>> opt = ember.optim.SGD(model.parameters(), lr=0.1)
    >>> trainer = Trainer(model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"], verbose=0)
    >>> history = trainer.fit((x, y), epochs=2, batch_size=16)
    >>> sorted(history.history), trainer.predict(x).shape
    (['accuracy', 'loss', 'lr'], (64, 3))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..autograd import no_grad
from ..device import Device
from ..device import device as as_device
from ..tensor import Tensor
from .callbacks import Callback, CallbackList, History
from .metrics import Metric, get_metric
from .progress import ProgressBar

__all__ = ["Trainer", "fit"]

_INPUT_KEYS = ("input", "inputs", "x", "image", "images")
_TARGET_KEYS = ("target", "targets", "y", "label", "labels")


def _model_device(model: Any) -> Device | None:
    params = getattr(model, "parameters", None)
    if params is None:
        return None
    for p in params():
        return p.device
    return None


def _move(batch: Any, device: Device) -> Any:
    if isinstance(batch, Tensor):
        return batch if batch.device == device else batch.to(device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_move(b, device) for b in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(_move(b, device) for b in batch)
    if isinstance(batch, Mapping):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


def _batch_len(target: Any, inputs: tuple) -> int:
    for x in (target, *inputs):
        shape = getattr(x, "shape", None)
        if shape:
            return int(shape[0])
    return 1


def _resolve_loss(loss_fn: Any) -> Any:
    if isinstance(loss_fn, str):
        from ..nn import functional as F

        fn = getattr(F, loss_fn, None)
        if fn is None:
            raise ValueError(f"unknown loss {loss_fn!r}: not a function of ember.nn.functional")
        return fn
    return loss_fn


def _concat(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, Tensor):
        xp = first.device.xp
        return Tensor._make(xp.concatenate([o._data for o in outputs]), first.device)
    if isinstance(first, tuple | list):
        return type(first)(_concat(list(parts)) for parts in zip(*outputs))
    if isinstance(first, Mapping):
        return {k: _concat([o[k] for o in outputs]) for k in first}
    raise TypeError(f"predict: cannot concatenate model outputs of type {type(first).__name__}")


class Trainer:
    """Train, evaluate and run a model.

    Args:
        model: an ``ember.nn.Module`` (anything callable with ``parameters()``;
            ``train()``/``eval()`` are called when present).
        loss_fn: ``loss_fn(output, target) -> scalar tensor`` (a loss module, a function, or
            the name of one in ``ember.nn.functional``, e.g. ``"cross_entropy"``).
        optimizer: an ``ember.optim`` optimizer (``zero_grad()``, ``step()``).
        metrics: names (``"accuracy"``, ``"top5"``), :class:`~ember.train.Metric` objects or
            functions ``fn(output, target)``.
        callbacks: :class:`~ember.train.Callback` objects.
        device: move the model there and every batch to it (default: the model's device).
        verbose: 1 adds a :class:`~ember.train.ProgressBar` unless one is given; 0 none.

    Example:
        >>> model = ember.nn.Linear(4, 3)
        >>> opt = ember.optim.Adam(model.parameters(), lr=1e-2)
        >>> trainer = Trainer(model, "cross_entropy", opt, metrics=["accuracy"], verbose=0)
        >>> data = (ember.randn(32, 4), ember.randint(0, 3, (32,)))
        >>> _ = trainer.fit(data, data, epochs=1)
        >>> sorted(trainer.evaluate(data))
        ['accuracy', 'loss']
    """

    def __init__(
        self,
        model: Any,
        loss_fn: Callable[..., Any] | str | None = None,
        optimizer: Any = None,
        metrics: Iterable[str | Metric | Callable[..., Any]] | None = None,
        callbacks: Iterable[Callback] | None = None,
        device: str | Device | None = None,
        verbose: int = 1,
    ) -> None:
        self.model = model
        self.loss_fn = _resolve_loss(loss_fn)
        self.optimizer = optimizer
        self.metrics = [get_metric(m) for m in (metrics or [])]
        names = [m.name for m in self.metrics]
        if len(set(names)) != len(names):
            raise ValueError(f"Trainer: metric names must be unique, got {names}")
        self.callbacks = list(callbacks or [])
        self.verbose = verbose
        if device is not None:
            self.device: Device | None = as_device(device)
            if hasattr(model, "to"):
                model.to(self.device)
        else:
            self.device = _model_device(model)
        self.stop_training = False
        self.epoch = 0
        self.epochs = 0
        self.global_step = 0
        self.steps_per_epoch: int | None = None
        self.samples_per_epoch: int | None = None
        self.history: History | None = None

    # -- data ------------------------------------------------------------------------------
    def _loader(self, data: Any, batch_size: int, shuffle: bool) -> Iterable[Any]:
        from ..data import DataLoader, IterableDataset, TensorDataset

        if isinstance(data, DataLoader):
            return data
        if isinstance(data, Tensor | np.ndarray):
            return DataLoader(TensorDataset(data), batch_size=batch_size)
        if (
            isinstance(data, tuple)
            and data
            and all(isinstance(d, Tensor | np.ndarray) for d in data)
        ):
            return DataLoader(TensorDataset(*data), batch_size=batch_size, shuffle=shuffle)
        if isinstance(data, IterableDataset):
            return DataLoader(data, batch_size=batch_size)
        if (
            hasattr(data, "__getitem__")
            and hasattr(data, "__len__")
            and not isinstance(data, list | tuple)
        ):
            return DataLoader(data, batch_size=batch_size, shuffle=shuffle)
        if isinstance(data, Iterable):
            return data  # any iterable of batches
        raise TypeError(
            "data must be a DataLoader, a Dataset, a tuple of tensors/arrays (x, y) or an "
            f"iterable of batches, got {type(data).__name__}"
        )

    def _split(self, batch: Any) -> tuple[tuple, Any]:
        """(model inputs, target) of one batch."""
        if isinstance(batch, Tensor):
            return (batch,), None
        if isinstance(batch, Mapping):
            x = next((batch[k] for k in _INPUT_KEYS if k in batch), None)
            y = next((batch[k] for k in _TARGET_KEYS if k in batch), None)
            if x is None:
                raise TypeError(
                    f"a dict batch needs one of the keys {_INPUT_KEYS} (it has {list(batch)}); "
                    "or override Trainer.train_step"
                )
            return (x,), y
        if isinstance(batch, list | tuple):
            if len(batch) == 1:
                return (batch[0],), None
            return tuple(batch[:-1]), batch[-1]
        return (batch,), None

    def _to_device(self, batch: Any) -> Any:
        return batch if self.device is None else _move(batch, self.device)

    # -- steps -----------------------------------------------------------------------------
    def compute_loss(self, output: Any, target: Any) -> Any:
        """``loss_fn(output, target)`` (``loss_fn(output)`` for batches without a target)."""
        if self.loss_fn is None:
            raise RuntimeError(
                "Trainer: no loss_fn was given, so it cannot train or evaluate a loss"
            )
        return self.loss_fn(output) if target is None else self.loss_fn(output, target)

    def train_step(self, batch: Any) -> tuple[Any, Any, Any]:
        """One optimization step on ``batch``; returns ``(output, target, loss)``."""
        inputs, target = self._split(batch)
        output = self.model(*inputs)
        loss = self.compute_loss(output, target)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return output, target, loss

    def eval_step(self, batch: Any) -> tuple[Any, Any, Any]:
        """Forward pass (already under ``no_grad``); returns ``(output, target, loss | None)``."""
        inputs, target = self._split(batch)
        output = self.model(*inputs)
        loss = None if self.loss_fn is None else self.compute_loss(output, target)
        return output, target, loss

    def _set_mode(self, training: bool) -> None:
        fn = getattr(self.model, "train" if training else "eval", None)
        if callable(fn):
            fn()

    def _lr(self) -> float | None:
        groups = getattr(self.optimizer, "param_groups", None)
        if groups:
            try:
                return float(groups[0]["lr"])
            except (KeyError, TypeError, ValueError):
                return None
        return None

    # -- fit -------------------------------------------------------------------------------
    def fit(
        self,
        train_data: Any,
        val_data: Any = None,
        epochs: int = 1,
        *,
        batch_size: int = 32,
        shuffle: bool = True,
        steps_per_epoch: int | None = None,
        initial_epoch: int = 0,
    ) -> History:
        """Train for ``epochs`` epochs, validating on ``val_data`` after each; returns the
        :class:`~ember.train.History` of epoch logs.

        ``train_data``/``val_data``: a DataLoader, a Dataset or a tuple ``(x, y)`` of
        tensors/arrays (batched with ``batch_size``, the training data shuffled), or any
        iterable of batches. ``steps_per_epoch`` caps the batches per epoch.

        Example:
            >>> history = Trainer(model, "cross_entropy", opt).fit((x, y), epochs=2)  # doctest: +SKIP
        """
        if self.optimizer is None or self.loss_fn is None:
            raise RuntimeError("Trainer.fit needs both loss_fn and optimizer")
        loader = self._loader(train_data, batch_size, shuffle)
        val_loader = None if val_data is None else self._loader(val_data, batch_size, False)
        self.epochs = epochs
        self.stop_training = False
        self.steps_per_epoch = _length(loader)
        if steps_per_epoch is not None:
            self.steps_per_epoch = min(steps_per_epoch, self.steps_per_epoch or steps_per_epoch)
        self.samples_per_epoch = _num_samples(loader, steps_per_epoch)
        history = History()
        self.history = history
        cbs = list(self.callbacks)
        if self.verbose and not any(isinstance(c, ProgressBar) for c in cbs):
            cbs.insert(0, ProgressBar(verbose=self.verbose))
        callbacks = CallbackList([*cbs, history])
        callbacks.set_trainer(self)
        val_metrics = [copy.deepcopy(m) for m in self.metrics]
        logs: dict = {}
        try:
            callbacks.on_train_begin({})
            for epoch in range(initial_epoch, epochs):
                self.epoch = epoch
                logs = self._train_epoch(loader, steps_per_epoch, callbacks)
                if val_loader is not None:
                    val = self._evaluate(val_loader, val_metrics)
                    logs.update({f"val_{k}": v for k, v in val.items()})
                    self._set_mode(True)
                callbacks.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            callbacks.on_train_end(logs)
        except BaseException as exc:
            callbacks.on_exception(exc)
            raise
        return history

    def _train_epoch(
        self, loader: Iterable[Any], steps: int | None, callbacks: CallbackList
    ) -> dict:
        for m in self.metrics:
            m.reset()
        self._set_mode(True)
        lr = epoch_lr = self._lr()
        callbacks.on_epoch_begin(self.epoch, {"lr": lr} if lr is not None else {})
        loss_sum, seen, batches = 0.0, 0, 0
        for i, batch in enumerate(loader):
            if steps is not None and i >= steps:
                break
            callbacks.on_batch_begin(i, {"step": self.global_step})
            lr = self._lr()  # a per-step schedule may change it between batches
            batch = self._to_device(batch)
            output, target, loss = self.train_step(batch)
            n = _batch_len(target, self._split(batch)[0])
            loss_value = float(loss.item())
            loss_sum += loss_value * n
            seen += n
            batches += 1
            self.global_step += 1
            if self.metrics:
                out = output.detach() if isinstance(output, Tensor) else output
                for m in self.metrics:
                    m.update(out, target)
            blogs = {"loss": loss_sum / seen}
            blogs.update((m.name, m.compute()) for m in self.metrics)
            blogs.update(batch_loss=loss_value, batch_size=n, step=self.global_step)
            if lr is not None:
                blogs["lr"] = lr
            callbacks.on_batch_end(i, blogs)
            if self.stop_training:
                break
        if batches == 0:
            raise ValueError("Trainer.fit: the training data yielded no batches")
        logs = {"loss": loss_sum / seen}
        logs.update((m.name, m.compute()) for m in self.metrics)
        if epoch_lr is not None:
            logs["lr"] = epoch_lr
        return logs

    # -- evaluate / predict ----------------------------------------------------------------
    def _evaluate(self, loader: Iterable[Any], metrics: list[Metric]) -> dict:
        for m in metrics:
            m.reset()
        self._set_mode(False)
        loss_sum, seen = 0.0, 0
        with no_grad():
            for batch in loader:
                batch = self._to_device(batch)
                output, target, loss = self.eval_step(batch)
                n = _batch_len(target, self._split(batch)[0])
                seen += n
                if loss is not None:
                    loss_sum += float(loss.item()) * n
                for m in metrics:
                    m.update(output, target)
        if seen == 0:
            raise ValueError("Trainer.evaluate: the data yielded no batches")
        out = {"loss": loss_sum / seen} if self.loss_fn is not None else {}
        out.update((m.name, m.compute()) for m in metrics)
        return out

    def evaluate(self, data: Any, *, batch_size: int = 32) -> dict:
        """The loss and metrics over ``data`` (model in eval mode, no gradients).

        Example:
            >>> trainer.evaluate((x_test, y_test))  # doctest: +SKIP
            {'loss': 0.12, 'accuracy': 0.96}
        """
        was_training = getattr(self.model, "training", None)
        try:
            return self._evaluate(self._loader(data, batch_size, False), self.metrics)
        finally:
            if was_training:
                self._set_mode(True)

    def predict(self, data: Any, *, batch_size: int = 32) -> Any:
        """The model's outputs for every batch of ``data``, concatenated along dim 0. Batches
        are read as in ``fit`` (a trailing target is ignored); a lone tensor or array is
        split into batches of ``batch_size``.

        Example:
            >>> logits = trainer.predict(x_test)  # doctest: +SKIP
        """
        if isinstance(data, Tensor | np.ndarray):
            batches: Iterable[Any] = ([b] for b in _slices(data, batch_size))
        else:
            batches = self._loader(data, batch_size, False)
        was_training = getattr(self.model, "training", None)
        self._set_mode(False)
        outputs = []
        try:
            with no_grad():
                for batch in batches:
                    inputs, _ = self._split(self._to_device(batch))
                    outputs.append(self.model(*inputs))
        finally:
            if was_training:
                self._set_mode(True)
        if not outputs:
            raise ValueError("Trainer.predict: the data yielded no batches")
        return _concat(outputs)


def _slices(data: Any, batch_size: int) -> Iterable[Tensor]:
    t = data if isinstance(data, Tensor) else Tensor(np.asarray(data))
    for start in range(0, t.shape[0], batch_size):
        yield Tensor._make(t._data[start : start + batch_size], t.device)


def _length(loader: Any) -> int | None:
    try:
        return len(loader)
    except TypeError:
        return None


def _num_samples(loader: Any, steps: int | None) -> int | None:
    """Samples per epoch, when the loader can tell."""
    from ..data import DataLoader

    if not isinstance(loader, DataLoader):
        return None
    n_batches = _length(loader)
    if n_batches is None:
        return None
    bs = loader.batch_size or getattr(loader.batch_sampler, "batch_size", None) or 1
    if steps is not None and steps < n_batches:
        return steps * bs
    try:
        n = len(loader.sampler) if loader.sampler is not None else len(loader.dataset)
    except TypeError:
        return n_batches * bs
    return (n // bs) * bs if loader.drop_last else n


def fit(
    model: Any,
    train_data: Any,
    val_data: Any = None,
    *,
    loss_fn: Callable[..., Any] | str,
    optimizer: Any,
    epochs: int = 1,
    metrics: Iterable[Any] | None = None,
    callbacks: Iterable[Callback] | None = None,
    device: str | Device | None = None,
    verbose: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    steps_per_epoch: int | None = None,
) -> History:
    """Train ``model`` in one call: ``Trainer(...).fit(...)``; returns the History.

    Example:
        >>> model = ember.nn.Linear(4, 2)
        >>> data = (ember.randn(16, 4), ember.randint(0, 2, (16,)))
        >>> h = ember.train.fit(model, data, loss_fn="cross_entropy", epochs=2, verbose=0,
        ...                     optimizer=ember.optim.SGD(model.parameters(), lr=0.1))
        >>> len(h)
        2
    """
    trainer = Trainer(model, loss_fn, optimizer, metrics, callbacks, device, verbose)
    return trainer.fit(
        train_data,
        val_data,
        epochs,
        batch_size=batch_size,
        shuffle=shuffle,
        steps_per_epoch=steps_per_epoch,
    )

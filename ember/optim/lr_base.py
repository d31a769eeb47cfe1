"""The learning-rate scheduler base class (``ember.optim.lr_scheduler.LRScheduler``).

A scheduler owns ``last_epoch`` (how many times it was stepped) and writes each parameter
group's ``"lr"``. Like PyTorch's, most schedulers are *chainable*: ``get_lr`` computes the
next rate from the group's current one, so several schedulers can act on one optimizer.
``step(epoch)`` (deprecated in PyTorch, kept for compatibility) uses the closed form where a
scheduler has one.

Example:
    >>> import ember
    >>> from ember.optim.lr_scheduler import StepLR
    >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = StepLR(opt, step_size=2, gamma=0.5)
    >>> for _ in range(4):
    ...     opt.step(); sched.step()
    >>> sched.get_last_lr()
    [0.25]
"""

from __future__ import annotations

import warnings
from typing import Any

from .optimizer import Optimizer

__all__ = ["LRScheduler", "format_param", "group_values"]

EPOCH_DEPRECATION_WARNING = (
    "The epoch parameter in `scheduler.step()` is deprecated: call `scheduler.step()` "
    "without it. With an epoch, the closed form is used instead of the chainable form, "
    "where available."
)


def format_param(name: str, optimizer: Optimizer, value: Any) -> list[Any]:
    """``value`` as one entry per parameter group (a list/tuple must have one per group)."""
    if isinstance(value, list | tuple):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name} must have the same length as optimizer.param_groups. {name} has "
                f"{len(value)} values, param_groups has {len(optimizer.param_groups)}."
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


def group_values(optimizer: Optimizer, key: str) -> list[Any]:
    """The ``key`` option of every parameter group, in order."""
    return [group[key] for group in optimizer.param_groups]


class LRScheduler:
    """Base class: subclasses implement ``get_lr()`` (the rates for ``self.last_epoch``)
    and optionally ``_get_closed_form_lr()``.

    Construction records each group's ``initial_lr`` (when ``last_epoch == -1``) and takes
    the first step, so the rates for epoch 0 are in place.

    Example:
        >>> class Halve(ember.optim.lr_scheduler.LRScheduler):
        ...     def get_lr(self):
        ...         return [b * 0.5 ** self.last_epoch for b in self.base_lrs]
        >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
        >>> s = Halve(opt); opt.step(); s.step(); s.get_last_lr()
        [0.5]
    """

    _get_lr_called_within_step: bool = False
    _is_initial: bool = False

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param 'initial_lr' is not specified in param_groups[{i}] when "
                        "resuming a scheduler with last_epoch >= 0: load the optimizer's "
                        "state dict first, or use last_epoch=-1 for a fresh run"
                    )
        self.base_lrs: list[Any] = group_values(optimizer, "initial_lr")
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's state: every attribute except the optimizer.

        Example:
            >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
            >>> ember.optim.lr_scheduler.StepLR(opt, 3).state_dict()["last_epoch"]
            0
        """
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`.

        Example:
            >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
            >>> s = ember.optim.lr_scheduler.StepLR(opt, 3)
            >>> s.load_state_dict({**s.state_dict(), "last_epoch": 7}); s.last_epoch
            7
        """
        self.__dict__.update(state_dict)

    def get_last_lr(self) -> list[float]:
        """The learning rates the last ``step`` set, one per parameter group.

        Example:
            >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=0.3)
            >>> ember.optim.lr_scheduler.ExponentialLR(opt, 0.5).get_last_lr()
            [0.3]
        """
        return self._last_lr

    def get_lr(self) -> list[float]:
        """The learning rates for ``self.last_epoch`` (subclasses implement this)."""
        raise NotImplementedError

    def step(self, epoch: int | None = None) -> None:
        """Advance one epoch (or, deprecated, jump to ``epoch``) and set the groups' rates.

        Example:
            >>> opt = ember.optim.SGD([ember.zeros(1, requires_grad=True)], lr=1.0)
            >>> s = ember.optim.lr_scheduler.ExponentialLR(opt, 0.5)
            >>> opt.step(); s.step(); opt.param_groups[0]["lr"]
            0.5
        """
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", True):
            warnings.warn(
                "Detected call of `lr_scheduler.step()` before `optimizer.step()`: call "
                "`optimizer.step()` first, or the first value of the learning rate schedule "
                "is skipped.",
                UserWarning,
                stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(EPOCH_DEPRECATION_WARNING, UserWarning, stacklevel=2)
        self._update_lr(epoch)

    def _update_lr(self, epoch: int | None = None) -> None:
        self._get_lr_called_within_step = True
        try:
            if epoch is None:
                self.last_epoch += 1
                values = self.get_lr()
            else:
                self.last_epoch = epoch
                closed = getattr(self, "_get_closed_form_lr", None)
                values = closed() if closed is not None else self.get_lr()
        finally:
            self._get_lr_called_within_step = False
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            group["lr"] = lr
        self._last_lr: list[float] = group_values(self.optimizer, "lr")

    def _warn_get_lr(self) -> None:
        if not self._get_lr_called_within_step:
            warnings.warn(
                "To get the last learning rate computed by the scheduler, please use "
                "`get_last_lr()`.",
                UserWarning,
                stacklevel=3,
            )

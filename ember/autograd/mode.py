"""Grad mode: ``no_grad`` / ``enable_grad`` / ``set_grad_enabled`` (per thread).

Example:
    >>> import ember
    >>> x = ember.ones(2, requires_grad=True)
    >>> with ember.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled", "state"]

F = TypeVar("F", bound=Callable[..., Any])


class _State(threading.local):
    """Per-thread switches the dispatcher reads on every op."""

    def __init__(self) -> None:
        self.grad_enabled = True
        self.tracer = None  # set by ember.graph while a function is being traced


state = _State()


def is_grad_enabled() -> bool:
    """True when ops record the autograd graph (the default).

    Example:
        >>> ember.is_grad_enabled()
        True
    """
    return state.grad_enabled


class _GradMode:
    """Base of the grad-mode switches: a context manager that also decorates functions.
    Slotted (no per-instance dict): ``with ember.no_grad():`` sits on hot inference paths."""

    __slots__ = ("_prev", "_enable")
    _enable: bool

    def __enter__(self) -> None:
        self._prev = state.grad_enabled
        state.grad_enabled = self._enable

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        state.grad_enabled = self._prev

    def __call__(self, fn: F) -> F:
        mode = type(self)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with mode():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradMode):
    """Turn off graph recording: a context manager and a decorator.

    Example:
        >>> @ember.no_grad()
        ... def evaluate(x):
        ...     return x * 2
        >>> evaluate(ember.ones(1, requires_grad=True)).requires_grad
        False
    """

    __slots__ = ()
    _enable = False


class enable_grad(_GradMode):
    """Turn graph recording back on inside a ``no_grad`` region.

    Example:
        >>> with ember.no_grad(), ember.enable_grad():
        ...     ember.is_grad_enabled()
        True
    """

    __slots__ = ()
    _enable = True


class set_grad_enabled(_GradMode):
    """Set grad mode to ``mode`` for a block (or, called bare, from now on).

    Example:
        >>> with ember.set_grad_enabled(False):
        ...     ember.is_grad_enabled()
        False
    """

    __slots__ = ()

    def __init__(self, mode: bool) -> None:
        self._enable = bool(mode)
        self._prev = state.grad_enabled
        state.grad_enabled = self._enable

    def __enter__(self) -> None:
        pass

"""The tables a :class:`~ember.nn.Module` keeps its parameters, buffers and submodules in,
and the count of changes to any module that lets a compiled call skip re-checking them.

A compiled function's graph holds on to the parameters and the training flags it was traced
with, so every call checks that each reachable module's slots still hold the same objects
and its flag is unchanged (the guards of :mod:`ember.graph.reachable`). For W4's MLP those
checks were 2 us of a 24 us call. Every write to a module, through an attribute or one of
these tables, adds one to :func:`changes`; a guard that passed when the count stood at N
passes again, unchecked, while it still stands at N.

Example:
    >>> import ember
    >>> before = changes()
    >>> ember.nn.Linear(2, 2).train(False).training, changes() > before
    (False, True)
"""

from __future__ import annotations

from typing import Any

__all__ = ["Table", "changes", "changed"]

_count = [0]  # changes to any module so far (a list: written from other modules' code)


def changes() -> int:
    """How many times any module's attributes or tables were written so far (it only grows).

    Example:
        >>> isinstance(changes(), int)
        True
    """
    return _count[0]


def changed() -> None:
    """Count one change (every write to a module calls it).

    Example:
        >>> n = changes(); changed(); changes() == n + 1
        True
    """
    _count[0] += 1


class Table(dict):
    """A dict of a module's parameters, buffers or submodules whose every write counts as a
    change (:func:`changed`); reads are a plain dict's.

    Example:
        >>> t = Table(); n = changes(); t["w"] = None; changes() > n
        True
    """

    __slots__ = ()

    def __setitem__(self, key: Any, value: Any) -> None:
        _count[0] += 1
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        _count[0] += 1
        dict.__delitem__(self, key)

    def __ior__(self, other: Any) -> Table:
        _count[0] += 1
        dict.update(self, other)
        return self

    def pop(self, *args: Any) -> Any:
        _count[0] += 1
        return dict.pop(self, *args)

    def popitem(self) -> tuple:
        _count[0] += 1
        return dict.popitem(self)

    def clear(self) -> None:
        _count[0] += 1
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:
        _count[0] += 1
        dict.update(self, *args, **kwargs)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        _count[0] += 1
        return dict.setdefault(self, key, default)

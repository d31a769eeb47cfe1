"""ember's errors, and the helper that finds the user's line of code.

Every error ember raises about the user's input names the op, the shapes involved and the
line of the user's program that called it, never a bare NumPy traceback.

Example:
    >>> import ember
    >>> try:
    ...     ember.ones(2, 3) @ ember.ones(4, 5)
    ... except ember.ShapeError as e:
    ...     print(str(e).splitlines()[0])
    matmul: shapes (2, 3) and (4, 5) do not align
"""

from __future__ import annotations

import linecache
import os
import sys

__all__ = ["EmberError", "ShapeError", "DTypeError", "user_frame", "user_line"]

_PKG_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


class EmberError(RuntimeError):
    """Base class of the errors ember raises on bad use.

    Example:
        >>> issubclass(ember.ShapeError, ember.EmberError)
        True
    """


class ShapeError(EmberError, ValueError):
    """A shape or dtype mismatch: the message names the op, the shapes and the user's line.

    Example:
        >>> str(ShapeError("add", "shapes (2,) and (3,) cannot be broadcast")).startswith("add:")
        True
    """

    def __init__(self, op: str, detail: str, where: str | None = None):
        self.op = op
        self.detail = detail
        self.where = where if where is not None else user_line()
        msg = f"{op}: {detail}"
        if self.where:
            msg += f"\n  at {self.where}"
        super().__init__(msg)


class DTypeError(ShapeError, TypeError):
    """An op got a dtype it does not accept; the message names the op and the dtypes.

    Example:
        >>> issubclass(ember.DTypeError, TypeError)
        True
    """


_INTERNAL: dict[str, bool] = {}  # file name -> inside the package (asked once per file)


def _is_internal(filename: str) -> bool:
    internal = _INTERNAL.get(filename)
    if internal is None:
        internal = filename.startswith(_PKG_DIR) and os.sep + "tests" + os.sep not in filename
        _INTERNAL[filename] = internal
    return internal


def user_frame(skip: int = 1):
    """The innermost stack frame that is not inside the ember package (or None)."""
    f = sys._getframe(skip)
    known = _INTERNAL
    while f is not None:
        filename = f.f_code.co_filename
        internal = known.get(filename)
        if internal is None:
            internal = _is_internal(filename)
        if not internal:
            break
        f = f.f_back
    return f


def user_line(skip: int = 2) -> str:
    """``"file.py:12: the code"`` for the user's line that led here, or ``""``."""
    f = user_frame(skip)
    if f is None:
        return ""
    filename, lineno = f.f_code.co_filename, f.f_lineno
    code = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno}" + (f": {code}" if code else "")

"""The small types the graph IR (:mod:`ember.graph.ir`) is written in: :class:`Sym`, a size
known only at run time; :class:`SourceLoc`, the line of the user's code that created a
node; :class:`IRError`, a graph that breaks an IR rule; and the short spellings of dtypes and
shapes that graph printouts use (``f32[B,3]``).

Example:
    >>> import numpy as np
    >>> from ember.graph.ir_types import Sym, dtype_name, format_shape
    >>> dtype_name(np.float32) + format_shape((Sym("B", 2), 3))
    'f32[2*B,3]'
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["IRError", "SourceLoc", "Sym", "has_sym", "resolve_syms", "dtype_name", "format_shape"]


class IRError(Exception):
    """A graph that breaks an IR rule (raised by :meth:`Graph.validate`)."""


class SourceLoc(NamedTuple):
    """Where in the user's code a node was created.

    Example:
        >>> str(SourceLoc("train.py", 12, "y = x @ w", "step"))
        'train.py:12'
    """

    filename: str
    lineno: int
    line: str = ""
    function: str = ""

    def __str__(self) -> str:
        return f"{self.filename}:{self.lineno}"

    def describe(self) -> str:
        """``file:line in function: code`` for error messages."""
        where = f"{self.filename}:{self.lineno}"
        if self.function:
            where += f" in {self.function}"
        return where + (f": {self.line.strip()}" if self.line else "")


class Sym:
    """A size known only at run time: ``coeff * <symbol> + offset`` (the batch size ``B``).

    Appears in ``Value.shape`` and inside attrs of dynamic graphs; :meth:`resolve` gives the
    int for a concrete symbol value. Passes should treat it as an opaque int.

    Example:
        >>> s = Sym("B", 4, 0)
        >>> str(s), s.resolve(8)
        ('4*B', 32)
    """

    __slots__ = ("name", "coeff", "offset")

    def __init__(self, name: str = "B", coeff: int = 1, offset: int = 0) -> None:
        self.name, self.coeff, self.offset = name, int(coeff), int(offset)

    def resolve(self, value: int) -> int:
        """The concrete size for ``symbol == value``."""
        return self.coeff * value + self.offset

    def code(self, var: str) -> str:
        """A Python expression computing this size from variable ``var``."""
        base = var if self.coeff == 1 else f"{self.coeff}*{var}"
        if self.offset:
            return f"({base}{self.offset:+d})"
        return base

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sym) and (self.name, self.coeff, self.offset) == (
            other.name,
            other.coeff,
            other.offset,
        )

    def __hash__(self) -> int:
        return hash((self.name, self.coeff, self.offset))

    def __str__(self) -> str:
        return self.code(self.name)

    __repr__ = __str__


def has_sym(x: Any) -> bool:
    """True when ``x`` (an attribute: a size, a tuple, list, dict or slice of them) holds a
    :class:`Sym` anywhere.

    Example:
        >>> has_sym({"shape": (Sym(), 3)}), has_sym(slice(None, 4))
        (True, False)
    """
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, Sym):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, tuple | list):
            stack.extend(v)
        elif isinstance(v, slice):
            stack.extend((v.start, v.stop, v.step))
    return False


def resolve_syms(x: Any, value: int) -> Any:
    """``x`` (as for :func:`has_sym`) with every :class:`Sym` resolved for ``symbol ==
    value``.

    Example:
        >>> resolve_syms({"shape": (Sym("B", 2), 3)}, 4)
        {'shape': (8, 3)}
    """
    if isinstance(x, Sym):
        return x.resolve(value)
    if isinstance(x, tuple | list):
        return type(x)(resolve_syms(e, value) for e in x)
    if isinstance(x, slice):
        return slice(*(resolve_syms(e, value) for e in (x.start, x.stop, x.step)))
    if isinstance(x, dict):
        return {k: resolve_syms(e, value) for k, e in x.items()}
    return x


_DTYPE_SHORT = {
    "float16": "f16",
    "float32": "f32",
    "float64": "f64",
    "int8": "i8",
    "int16": "i16",
    "int32": "i32",
    "int64": "i64",
    "uint8": "u8",
    "bool": "bool",
    "complex64": "c64",
    "complex128": "c128",
}


def dtype_name(dtype: Any) -> str:
    """Short dtype spelling used in printouts (``f32``, ``i64`` ...).

    Example:
        >>> import numpy as np
        >>> dtype_name(np.float32)
        'f32'
    """
    if dtype is None:
        return "?"
    name = np.dtype(dtype).name
    return _DTYPE_SHORT.get(name, name)


def format_shape(shape: tuple | None) -> str:
    """``[2,3]`` style shape spelling (dynamic dims by their symbol).

    Example:
        >>> format_shape((Sym("B"), 3))
        '[B,3]'
    """
    if shape is None:
        return "[?]"
    return "[" + ",".join(str(d) for d in shape) + "]"

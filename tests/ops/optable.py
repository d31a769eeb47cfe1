"""The op test table: one row per op case, checked four ways by ``test_ops.py``.

A row runs the same lambda in ember and (when installed) PyTorch, tinygrad-style:
``fn(m, *tensors)`` where ``m`` is the module (``ember`` or ``torch``). Each row is checked

1. forward against a NumPy reference ``ref(*arrays)`` (when given),
2. forward and gradients against PyTorch on identical inputs (when ``torch`` is importable),
3. gradients against central finite differences in float64 (``grad=True``),
4. second derivatives by finite differences (``grad2=True``).

Inputs are ``Arg`` specs, made reproducibly from the row's name.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Arg:
    """How to make one input: random of ``shape`` in ``[low, high)`` (or normal), or a fixed
    ``value``; ``grad`` marks inputs to differentiate; ``noncontig`` makes a transposed view."""

    shape: tuple = ()
    low: float | None = None
    high: float | None = None
    dtype: str = "float32"
    grad: bool = True
    value: Any = None
    noncontig: bool = False
    int_range: tuple = (0, 5)

    def make(self, rng: np.random.Generator, float_dtype: str | None = None) -> np.ndarray:
        dtype = self.dtype
        if float_dtype is not None and np.dtype(dtype).kind == "f":
            dtype = float_dtype
        if self.value is not None:
            arr = np.array(self.value)
            return arr.astype(dtype) if arr.dtype.kind == "f" or self.dtype != "float32" else arr
        shape = tuple(reversed(self.shape)) if self.noncontig else tuple(self.shape)
        kind = np.dtype(dtype).kind
        if kind == "b":
            arr = rng.random(shape) < 0.5
        elif kind in "iu":
            arr = rng.integers(*self.int_range, size=shape).astype(dtype)
        elif self.low is not None:
            arr = rng.uniform(self.low, self.high, size=shape).astype(dtype)
        else:
            arr = rng.standard_normal(shape).astype(dtype)
        if self.noncontig:
            arr = arr.T
        return arr


def F(*shape: int, **kw: Any) -> Arg:
    """A float input of ``shape`` that is differentiated."""
    return Arg(shape=shape, **kw)


def C(*shape: int, **kw: Any) -> Arg:
    """A float input of ``shape`` that is *not* differentiated (a constant)."""
    return Arg(shape=shape, grad=False, **kw)


def I(*shape: int, low: int = 0, high: int = 5, dtype: str = "int64") -> Arg:  # noqa: E743
    """An integer input."""
    return Arg(shape=shape, dtype=dtype, grad=False, int_range=(low, high))


def B(*shape: int) -> Arg:
    """A boolean input."""
    return Arg(shape=shape, dtype="bool", grad=False)


def V(value: Any, dtype: str | None = None, grad: bool = False) -> Arg:
    """A fixed value."""
    arr = np.array(value)
    return Arg(value=value, dtype=dtype or str(arr.dtype), grad=grad)


@dataclass
class Case:
    """One row of the table (see the module docstring)."""

    name: str
    fn: Callable[..., Any]
    args: list[Arg]
    ref: Callable[..., Any] | None = None
    grad: bool = True
    grad2: bool = False
    torch: bool = True
    torch_fn: Callable[..., Any] | None = None
    atol: float = 1e-5
    rtol: float = 1e-4
    grad_atol: float = 1e-5
    grad_rtol: float = 1e-3
    eps: float = 1e-6
    tags: set = field(default_factory=set)

    def inputs(self, float_dtype: str | None = None) -> list[np.ndarray]:
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        return [a.make(rng, float_dtype) for a in self.args]

    def __repr__(self) -> str:
        return self.name


def cases(*rows: Case) -> list[Case]:
    """Collect rows, checking names are unique."""
    names = [r.name for r in rows]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate case names: {dup}"
    return list(rows)

"""Data types and PyTorch's type-promotion rules.

ember's dtypes are thin names over NumPy dtypes (``ember.float32.np is numpy.float32``).
Promotion follows PyTorch, not NumPy: ``int tensor * 2.5`` is float32, and a 0-dim
tensor does not widen a dimensioned one of the same category.

Example:
    >>> import ember
    >>> (ember.ones(2, dtype=ember.int64) * 2.5).dtype
    ember.float32
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "DType",
    "float16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool_",
    "to_dtype",
    "result_type",
    "get_default_dtype",
    "set_default_dtype",
]


class DType:
    """An ember data type; ``.np`` is the NumPy dtype that stores it.

    Example:
        >>> ember.float32.is_floating_point
        True
    """

    __slots__ = ("name", "np", "is_floating_point", "is_integer", "itemsize", "_kind")

    def __init__(self, name: str, np_dtype: type):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.is_floating_point = self.np.kind == "f"
        self.is_integer = self.np.kind in "iu"
        self.itemsize = self.np.itemsize
        # promotion category: 0 bool, 1 integer, 2 floating point
        self._kind = 2 if self.is_floating_point else (1 if self.is_integer else 0)

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):  # dtypes are singletons
        return (to_dtype, (self.name,))


float16 = DType("float16", np.float16)
float32 = DType("float32", np.float32)
float64 = DType("float64", np.float64)
int8 = DType("int8", np.int8)
uint8 = DType("uint8", np.uint8)
int16 = DType("int16", np.int16)
int32 = DType("int32", np.int32)
int64 = DType("int64", np.int64)
bool_ = DType("bool", np.bool_)

half, double, long, int_ = float16, float64, int64, int32

_ALL = (float16, float32, float64, int8, uint8, int16, int32, int64, bool_)
_BY_NP: dict[np.dtype, DType] = {d.np: d for d in _ALL}
_BY_NAME: dict[str, DType] = {d.name: d for d in _ALL}
_BY_NAME.update({"half": float16, "float": float32, "double": float64, "long": int64, "int": int32})

_default_float = float32


def get_default_dtype() -> DType:
    """The floating dtype for new tensors from Python floats (float32 unless changed).

    Example:
        >>> ember.get_default_dtype()
        ember.float32
    """
    return _default_float


def set_default_dtype(dtype: DType | str) -> None:
    """Set the default floating dtype (float32 or float64).

    Example:
        >>> ember.set_default_dtype(ember.float32)
    """
    global _default_float
    d = to_dtype(dtype)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating dtypes are allowed, got {d}")
    _default_float = d


def to_dtype(spec: object) -> DType:
    """Turn an ember dtype, NumPy dtype, name or Python type into a :class:`DType`.

    Example:
        >>> to_dtype("float64")
        ember.float64
    """
    if isinstance(spec, DType):
        return spec
    if spec is float:
        return _default_float
    if spec is int:
        return int64
    if spec is bool:
        return bool_
    if isinstance(spec, str) and spec in _BY_NAME:
        return _BY_NAME[spec]
    try:
        return _BY_NP[np.dtype(spec)]
    except (TypeError, KeyError):
        raise TypeError(f"unsupported dtype {spec!r}") from None


def from_np(np_dtype: np.dtype) -> DType:
    """The :class:`DType` for a NumPy dtype (float64 arrays stay float64)."""
    d = _BY_NP.get(np_dtype)
    if d is None:
        raise TypeError(f"unsupported array dtype {np_dtype}")
    return d


_promo_cache: dict[tuple, np.dtype] = {}


def result_type(a: np.dtype, a_dim: bool, b: np.dtype, b_dim: bool) -> np.dtype:
    """PyTorch's promotion of two tensor dtypes (``*_dim``: the operand has ndim > 0).

    Higher category (bool < int < float) wins; within one category a dimensioned operand
    wins over a 0-dim one; otherwise the wider type wins.

    Example:
        >>> result_type(np.dtype("int64"), True, np.dtype("float32"), True)
        dtype('float32')
    """
    key = (a, a_dim, b, b_dim)
    r = _promo_cache.get(key)
    if r is None:
        da, db = from_np(a), from_np(b)
        if da._kind != db._kind:
            r = (da if da._kind > db._kind else db).np
        elif a_dim != b_dim:
            r = a if a_dim else b
        else:
            r = np.promote_types(a, b)
        _promo_cache[key] = r
    return r


def scalar_result_type(t: np.dtype, scalar: object) -> np.dtype | None:
    """The dtype a tensor must be cast to before meeting a Python scalar, or None.

    ``int tensor (op) float`` becomes the default float; ``bool tensor (op) int`` becomes
    int64; everything else keeps the tensor's dtype (NumPy 2 treats scalars as weak).
    """
    kind = t.kind
    if isinstance(scalar, bool):
        return None
    if isinstance(scalar, float) and kind in "biu":
        return _default_float.np
    if isinstance(scalar, int) and kind == "b":
        return int64.np
    return None

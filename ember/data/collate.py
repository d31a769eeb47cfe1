"""Turning a list of samples into one batch (``default_collate``) and single samples into
tensors (``default_convert``), with PyTorch's rules.

Example:
    >>> import ember
    >>> from ember.data import default_collate
    >>> x, y = default_collate([(ember.zeros(2), 0), (ember.ones(2), 1)])
    >>> x.shape, y.tolist()
    ((2, 2), [0, 1])
"""

from __future__ import annotations

import collections.abc as abc
from typing import Any

import numpy as np

from ..tensor import Tensor

__all__ = ["default_collate", "default_convert"]

_ERR = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)


def _check_numeric(arr: np.ndarray, where: str) -> None:
    if arr.dtype.kind not in "biufc":
        raise TypeError(_ERR.format(f"{where} of dtype {arr.dtype}"))


def _stack_tensors(batch: list[Tensor]) -> Tensor:
    dev = batch[0].device
    shape = batch[0].shape
    for t in batch:
        if t.device != dev:
            raise RuntimeError(
                f"default_collate: samples live on different devices ({dev} and {t.device})"
            )
        if t.shape != shape:
            raise RuntimeError(
                f"default_collate: stack expects each tensor to be equal size, but got {shape} "
                f"and {t.shape} (use a collate_fn that pads, or equal-size samples)"
            )
    return Tensor._make(dev.xp.stack([t._data for t in batch]), dev)


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_collate(batch: list[Any]) -> Any:
    """Stack a list of samples into a batch, recursing into containers.

    Tensors and NumPy arrays are stacked along a new first dimension (dtype kept); Python
    floats become a float64 tensor, ints int64, bools bool; strings stay a list; dicts,
    tuples/lists and namedtuples are collated field by field (tuples and lists give a list,
    as in PyTorch). The result carries no autograd history.

    Example:
        >>> b = default_collate([{"x": np.zeros(3), "n": 1}, {"x": np.ones(3), "n": 2}])
        >>> b["x"].shape, b["n"].tolist()
        ((2, 3), [1, 2])
    """
    if not isinstance(batch, abc.Sequence) or isinstance(batch, str | bytes):
        raise TypeError(f"default_collate expects a list of samples, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("default_collate: cannot collate an empty batch")
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        arr = np.stack(batch)
        _check_numeric(arr, "numpy arrays")
        return Tensor(arr)
    if isinstance(elem, np.generic):
        arr = np.array(batch)
        _check_numeric(arr, "numpy scalars")
        return Tensor(arr)
    if isinstance(elem, bool):
        return Tensor(np.array(batch, dtype=np.bool_))
    if isinstance(elem, int):
        return Tensor(np.array(batch, dtype=np.int64))
    if isinstance(elem, float):
        return Tensor(np.array(batch, dtype=np.float64))
    if isinstance(elem, str | bytes):
        return list(batch)
    if isinstance(elem, abc.Mapping):
        out = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return type(elem)(out)
        except TypeError:
            return out
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, abc.Sequence):
        size = len(elem)
        if any(len(s) != size for s in batch):
            raise RuntimeError(
                "default_collate: each element in list of batch should be of equal size"
            )
        return [default_collate(list(samples)) for samples in zip(*batch)]
    raise TypeError(_ERR.format(type(elem).__name__))


def default_convert(data: Any) -> Any:
    """Turn NumPy arrays inside one sample into tensors (used when ``batch_size=None``).

    Example:
        >>> default_convert((np.arange(2), "a"))
        (tensor([0, 1]), 'a')
    """
    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return Tensor(data) if data.dtype.kind in "biufc" else data
    if isinstance(data, np.generic) and np.asarray(data).dtype.kind in "biufc":
        return Tensor(np.asarray(data))
    if isinstance(data, str | bytes):
        return data
    if isinstance(data, abc.Mapping):
        out = {k: default_convert(v) for k, v in data.items()}
        try:
            return type(data)(out)
        except TypeError:
            return out
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return tuple(default_convert(d) for d in data)
    if isinstance(data, list):
        return [default_convert(d) for d in data]
    return data

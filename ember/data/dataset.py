"""Datasets: map-style (``__getitem__`` + ``__len__``) and iterable, plus the wrappers that
slice and join them (PyTorch's ``torch.utils.data`` names and semantics).

A map-style dataset may also define ``get_batch(indices)`` returning the batch that
``default_collate`` would have built from ``[self[i] for i in indices]``; the
:class:`~ember.data.DataLoader` then fetches a whole batch with one fancy-index instead of a
Python loop (``TensorDataset``, ``Subset`` and the bundled datasets do). It may return
``NotImplemented`` to fall back to per-sample loading.

Example:
    >>> import ember
    >>> from ember.data import TensorDataset, random_split
    >>> ds = TensorDataset(ember.arange(10.0), ember.arange(10))
    >>> train, val = random_split(ds, [0.8, 0.2], generator=ember.Generator(0))
    >>> len(train), len(val)
    (8, 2)
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..random import Generator, default_generator
from ..tensor import Tensor

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "random_split",
]


class Dataset:
    """A map-style dataset: ``ds[i]`` returns one sample, ``len(ds)`` the number of samples.

    Subclass it and define ``__getitem__`` and ``__len__``; ``a + b`` concatenates.

    Example:
        >>> class Squares(Dataset):
        ...     def __len__(self): return 4
        ...     def __getitem__(self, i): return i * i
        >>> [Squares()[i] for i in range(4)]
        [0, 1, 4, 9]
    """

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read as a stream: define ``__iter__`` (and optionally ``__len__``).

    The DataLoader reads it in order from one thread; ``shuffle`` and samplers do not apply.

    Example:
        >>> class Count(IterableDataset):
        ...     def __iter__(self): return iter(range(3))
        >>> list(Count())
        [0, 1, 2]
    """

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate it, not index it")

    def __add__(self, other: Dataset) -> Dataset:
        raise TypeError("IterableDataset does not support + (ConcatDataset is map-style only)")


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return Tensor(np.asarray(x))


def batch_fetcher(dataset: Any) -> Any:
    """``dataset.get_batch`` when it is safe to use instead of ``__getitem__``: the class
    that defines ``get_batch`` must also be the one whose ``__getitem__`` is in effect (so a
    subclass that overrides ``__getitem__``, e.g. to add augmentation, is loaded per sample).
    """
    cls = type(dataset)
    get_owner = next((c for c in cls.__mro__ if "get_batch" in c.__dict__), None)
    item_owner = next((c for c in cls.__mro__ if "__getitem__" in c.__dict__), None)
    if get_owner is None or get_owner is not item_owner:
        return None
    return dataset.get_batch


def _take(t: Tensor, indices: Any) -> Tensor:
    """Rows ``indices`` of ``t`` as a new tensor (no autograd: datasets hold data)."""
    data = t._data
    if t.device.xp is not np and isinstance(indices, np.ndarray):
        indices = t.device.xp.asarray(indices)
    out = data[indices]
    if type(out) is not np.ndarray and t.device.xp is np:  # numpy returns scalars for 1-d
        out = np.asarray(out)
    return Tensor._make(out, t.device)


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension: ``ds[i]`` is
    ``(t0[i], t1[i], ...)``. NumPy arrays are accepted and wrapped without copying.

    Example:
        >>> ds = TensorDataset(ember.zeros(5, 2), ember.arange(5))
        >>> x, y = ds[3]; x.shape, y.item()
        ((2,), 3)
    """

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        ts = tuple(_as_tensor(t) for t in tensors)
        for t in ts:
            if t.ndim == 0:
                raise ValueError("TensorDataset: 0-d tensors have no rows to index")
        sizes = [t.shape[0] for t in ts]
        if len(set(sizes)) != 1:
            shapes = ", ".join(str(t.shape) for t in ts)
            raise ValueError(
                f"TensorDataset: size mismatch between tensors: first dimensions {sizes} "
                f"(shapes {shapes}) must all be equal"
            )
        self.tensors = ts

    def __len__(self) -> int:
        return self.tensors[0].shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(_take(t, index) for t in self.tensors)

    def get_batch(self, indices: np.ndarray) -> list[Tensor]:
        """The collated batch for ``indices`` (one fancy-index per tensor)."""
        return [_take(t, indices) for t in self.tensors]


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order.

    Example:
        >>> ds = TensorDataset(ember.arange(10))
        >>> s = Subset(ds, [9, 0]); len(s), s[0][0].item()
        (2, 9)
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices
        self._index_array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, list):
            return self.dataset[[self.indices[i] for i in index]]
        return self.dataset[int(self.indices[index])]

    def get_batch(self, indices: np.ndarray) -> Any:
        """Batched fetch through the parent's ``get_batch`` when it has one."""
        fetch = batch_fetcher(self.dataset)
        if fetch is None:
            return NotImplemented
        if self._index_array is None:
            self._index_array = np.asarray(self.indices, dtype=np.int64)
        return fetch(self._index_array[indices])


class ConcatDataset(Dataset):
    """Several map-style datasets, one after another.

    Example:
        >>> a = TensorDataset(ember.zeros(2)); b = TensorDataset(ember.ones(3))
        >>> c = ConcatDataset([a, b]); len(c), c[4][0].item()
        (5, 1.0)
    """

    def __init__(self, datasets: Sequence[Dataset]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for d in self.datasets:
            if isinstance(d, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes: list[int] = []
        total = 0
        for d in self.datasets:
            total += len(d)
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            if -index > n:
                raise IndexError(f"index {index} is out of range for a dataset of length {n}")
            index += n
        if index >= n:
            raise IndexError(f"index {index} is out of range for a dataset of length {n}")
        k = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[k - 1] if k else 0
        return self.datasets[k][index - start]


def _split_lengths(n: int, lengths: Sequence[float]) -> list[int]:
    total = sum(lengths)
    if all(0 <= x <= 1 for x in lengths) and math.isclose(total, 1) and total <= 1 + 1e-9:
        if any(isinstance(x, float) for x in lengths) or n != total:
            sizes = [int(math.floor(n * f)) for f in lengths]
            for i in range(n - sum(sizes)):  # hand out the remainder round-robin
                sizes[i % len(sizes)] += 1
            return sizes
    sizes = [int(x) for x in lengths]
    if any(s != x or s < 0 for s, x in zip(sizes, lengths)):
        raise ValueError(
            f"random_split: lengths must be non-negative integers or fractions summing to 1, "
            f"got {list(lengths)}"
        )
    if sum(sizes) != n:
        raise ValueError(
            f"random_split: sum of input lengths ({sum(sizes)}) does not equal the length of "
            f"the dataset ({n})"
        )
    return sizes


def random_split(
    dataset: Dataset, lengths: Sequence[float], generator: Generator | None = None
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths, or of the
    given fractions (``[0.8, 0.2]``; leftover samples go to the first splits in turn).

    ``generator`` defaults to ember's global generator, so ``ember.manual_seed`` fixes it.

    Example:
        >>> ds = TensorDataset(ember.arange(10))
        >>> [len(s) for s in random_split(ds, [3, 7])]
        [3, 7]
    """
    n = len(dataset)
    sizes = _split_lengths(n, list(lengths))
    perm = (generator or default_generator).numpy().permutation(n).tolist()
    out, start = [], 0
    for size in sizes:
        out.append(Subset(dataset, perm[start : start + size]))
        start += size
    return out

"""The 8x8 handwritten digits (UCI "Optical Recognition of Handwritten Digits", the 1,797
images that scikit-learn bundles), shipped inside ember: no download needed.

Licence and attribution: ``ember/data/bundled/LICENSE.md`` (CC BY 4.0, E. Alpaydin and
C. Kaynak, UCI Machine Learning Repository).

Example:
    >>> import ember
    >>> images, labels = ember.data.load_digits()
    >>> images.shape, images.dtype, labels.dtype
    ((1797, 1, 8, 8), ember.float32, ember.int64)
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset

__all__ = ["load_digits", "Digits"]

BUNDLED = Path(__file__).resolve().parent / "bundled"
NUM_TEST = 360  # the fixed test split: 20% of the 1,797 images


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = BUNDLED / "digits.csv.gz"
    if not path.exists():
        raise FileNotFoundError(
            f"the bundled digits data is missing ({path}); reinstall ember (the wheel must "
            "include ember/data/bundled/)"
        )
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    images = (table[:, :64] / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    labels = table[:, 64].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(*, return_numpy: bool = False) -> tuple[Any, Any]:
    """All 1,797 digit images and their labels: images float32 ``(1797, 1, 8, 8)`` scaled
    to ``[0, 1]``, labels int64 ``(1797,)`` in ``0..9``. CPU tensors (NumPy arrays with
    ``return_numpy=True``); each call returns fresh copies.

    Example:
        >>> x, y = load_digits()
        >>> float(x.max()), sorted(set(y.tolist())) == list(range(10))
        (1.0, True)
    """
    images, labels = _digits_arrays()
    if return_numpy:
        return images.copy(), labels.copy()
    return Tensor(images.copy()), Tensor(labels.copy())


def _split_indices(train: bool | None) -> np.ndarray:
    n = len(_digits_arrays()[1])
    # RandomState's stream is frozen by NumPy's compatibility policy: the split never moves
    perm = np.random.RandomState(0).permutation(n)
    if train is None:
        return np.arange(n)
    return np.sort(perm[NUM_TEST:] if train else perm[:NUM_TEST])


class Digits(Dataset):
    """The bundled 8x8 digits as a dataset of ``(image (1, 8, 8) float32, label int64)``.

    ``train=True`` gives a fixed 1,437-image training split, ``train=False`` the other 360
    images (the same split on every machine), ``train=None`` all 1,797.

    Example:
        >>> train, test = Digits(train=True), Digits(train=False)
        >>> len(train), len(test), train[0][0].shape
        (1437, 360, (1, 8, 8))
    """

    def __init__(
        self,
        train: bool | None = True,
        transform: Callable[[Tensor], Any] | None = None,
        target_transform: Callable[[Tensor], Any] | None = None,
    ) -> None:
        images, labels = _digits_arrays()
        idx = _split_indices(train)
        self.train = train
        self.data = Tensor(images[idx])
        self.targets = Tensor(labels[idx])
        self.transform = transform
        self.target_transform = target_transform
        self.classes = [str(i) for i in range(10)]

    def __len__(self) -> int:
        return self.targets.shape[0]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        x = Tensor(self.data._data[index])
        y = Tensor(np.asarray(self.targets._data[index]))
        if self.transform is not None:
            x = self.transform(x)
        if self.target_transform is not None:
            y = self.target_transform(y)
        return x, y

    def get_batch(self, indices: np.ndarray) -> Any:
        """The collated batch for ``indices`` (falls back per sample under transforms)."""
        if self.transform is not None or self.target_transform is not None:
            return NotImplemented
        return [Tensor(self.data._data[indices]), Tensor(self.targets._data[indices])]

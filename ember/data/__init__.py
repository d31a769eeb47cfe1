"""``ember.data``: datasets, samplers, the DataLoader, and data shipped with ember
(the 8x8 digits and a Shakespeare text, no download needed) plus MNIST/Fashion-MNIST readers.

Example:
    >>> import ember
    >>> from ember.data import DataLoader, Digits
    >>> x, y = next(iter(DataLoader(Digits(train=True), batch_size=32, shuffle=True)))
    >>> x.shape, y.shape
    ((32, 1, 8, 8), (32,))
"""

from .collate import default_collate, default_convert
from .dataset import ConcatDataset, Dataset, IterableDataset, Subset, TensorDataset, random_split
from .digits import Digits, load_digits
from .loader import DataLoader, WorkerInfo, get_worker_info
from .mnist import MNIST, FashionMNIST, read_idx
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .text import CharDataset, load_shakespeare

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "Subset",
    "ConcatDataset",
    "random_split",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "DataLoader",
    "WorkerInfo",
    "get_worker_info",
    "default_collate",
    "default_convert",
    "load_digits",
    "Digits",
    "load_shakespeare",
    "CharDataset",
    "read_idx",
    "MNIST",
    "FashionMNIST",
]

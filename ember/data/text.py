"""Character-level text data: the bundled Shakespeare (about 1 MB, public domain) and
:class:`CharDataset`, which cuts a text into ``(input, next-character target)`` windows for
language models.

Source and public-domain status: ``ember/data/bundled/LICENSE.md``.

Example:
    >>> import ember
    >>> ds = ember.data.CharDataset("hello world", block_size=4)
    >>> x, y = ds[0]
    >>> ds.decode(x), ds.decode(y)
    ('hell', 'ello')
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterable, Sequence

import numpy as np

from ..tensor import Tensor
from .dataset import Dataset
from .digits import BUNDLED

__all__ = ["load_shakespeare", "CharDataset"]


@functools.lru_cache(maxsize=1)
def load_shakespeare() -> str:
    """Eight plays of Shakespeare (Hamlet, Macbeth, King Lear, Othello, Romeo and Juliet,
    Julius Caesar, The Tempest, A Midsummer Night's Dream) as one ASCII string of about
    1.04 million characters, from Project Gutenberg's public-domain texts.

    Example:
        >>> text = load_shakespeare()
        >>> len(text) > 1_000_000, text.startswith("HAMLET")
        (True, True)
    """
    path = BUNDLED / "shakespeare.txt.gz"
    if not path.exists():
        raise FileNotFoundError(
            f"the bundled Shakespeare text is missing ({path}); reinstall ember (the wheel "
            "must include ember/data/bundled/)"
        )
    with gzip.open(path, "rt", encoding="ascii") as f:
        return f.read()


class CharDataset(Dataset):
    """Windows of ``block_size`` characters of ``text`` encoded as int64 ids, each paired
    with the same window shifted one character on: ``ds[i] == (ids[i:i+B], ids[i+1:i+B+1])``.

    The vocabulary is the sorted set of characters in ``text`` unless ``vocab`` is given
    (pass the training set's to encode a validation text the same way).

    Attributes: ``vocab`` (list of characters), ``vocab_size``, ``stoi`` (char -> id),
    ``itos`` (id -> char), ``data`` (the encoded text, an int64 tensor).

    Example:
        >>> ds = CharDataset("abcabc", block_size=2)
        >>> ds.vocab, len(ds), ds.encode("cab")
        (['a', 'b', 'c'], 4, [2, 0, 1])
    """

    def __init__(self, text: str, block_size: int, vocab: Sequence[str] | None = None) -> None:
        if not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"CharDataset: block_size must be a positive int, got {block_size!r}")
        if vocab is None:
            vocab = sorted(set(text))
        self.vocab = list(vocab)
        if len(set(self.vocab)) != len(self.vocab):
            raise ValueError("CharDataset: vocab has repeated characters")
        self.stoi = {ch: i for i, ch in enumerate(self.vocab)}
        self.itos = dict(enumerate(self.vocab))
        self.block_size = block_size
        ids = np.asarray(self.encode(text), dtype=np.int64)
        if len(ids) < block_size + 1:
            raise ValueError(
                f"CharDataset: the text has {len(ids)} characters; it needs at least "
                f"block_size + 1 = {block_size + 1}"
            )
        self.data = Tensor(ids)
        self._offsets = np.arange(block_size + 1)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """Character ids of ``text``.

        Example:
            >>> CharDataset("ab", 1).encode("ba")
            [1, 0]
        """
        stoi = self.stoi
        try:
            return [stoi[ch] for ch in text]
        except KeyError as e:
            raise KeyError(
                f"CharDataset.encode: character {e.args[0]!r} is not in the vocabulary"
            ) from None

    def decode(self, ids: Iterable[int] | Tensor | np.ndarray) -> str:
        """The text for a sequence of ids (a list, a 1-d tensor or an array).

        Example:
            >>> CharDataset("ab", 1).decode([1, 0, 1])
            'bab'
        """
        if isinstance(ids, Tensor):
            ids = ids.detach().cpu().numpy()
        if isinstance(ids, np.ndarray):
            ids = ids.reshape(-1).tolist()
        itos = self.itos
        try:
            return "".join(itos[int(i)] for i in ids)
        except KeyError as e:
            raise KeyError(
                f"CharDataset.decode: id {e.args[0]} is outside the vocabulary "
                f"(0..{self.vocab_size - 1})"
            ) from None

    def __len__(self) -> int:
        return self.data.shape[0] - self.block_size

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of length {n}")
        index %= n
        chunk = self.data._data[index : index + self.block_size + 1]
        return Tensor(chunk[:-1].copy()), Tensor(chunk[1:].copy())

    def get_batch(self, indices: np.ndarray) -> list[Tensor]:
        """Both ``(batch, block_size)`` tensors for ``indices``, in one gather."""
        n = len(self)
        if indices.size and (indices.min() < -n or indices.max() >= n):
            raise IndexError(f"an index is out of range for a dataset of length {n}")
        windows = self.data._data[(indices % n)[:, None] + self._offsets]
        return [
            Tensor(np.ascontiguousarray(windows[:, :-1])),
            Tensor(np.ascontiguousarray(windows[:, 1:])),
        ]

    def __repr__(self) -> str:
        return (
            f"CharDataset(characters={self.data.shape[0]}, block_size={self.block_size}, "
            f"vocab_size={self.vocab_size})"
        )

"""The data shipped inside ember: 8x8 digits, Shakespeare, CharDataset."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.data import CharDataset, DataLoader, Digits, load_digits, load_shakespeare
from ember.data.digits import BUNDLED


def test_load_digits_shapes_and_values():
    x, y = load_digits()
    assert isinstance(x, ember.Tensor) and isinstance(y, ember.Tensor)
    assert x.shape == (1797, 1, 8, 8) and x.dtype == ember.float32
    assert y.shape == (1797,) and y.dtype == ember.int64
    a = x.numpy()
    assert a.min() == 0.0 and a.max() == 1.0
    np.testing.assert_array_equal(np.unique(a * 16), np.arange(17))  # 0..16 counts, scaled
    counts = np.bincount(y.numpy())
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert y[:10].tolist() == list(range(10))
    # the first image is a zero: a ring of ink with an empty middle
    assert a[0, 0, 3, 3] < 0.2 and a[0, 0, 3, 2] > 0.5 and a[0, 0, 3, 5] > 0.4


def test_load_digits_returns_fresh_copies():
    x, _ = load_digits()
    x.numpy()[0, 0, 0, 0] = 99.0
    assert load_digits()[0].numpy()[0, 0, 0, 0] == 0.0
    xn, yn = load_digits(return_numpy=True)
    assert isinstance(xn, np.ndarray) and xn.flags.writeable and yn.dtype == np.int64


def test_digits_fixed_split():
    train, test, full = Digits(train=True), Digits(train=False), Digits(train=None)
    assert (len(train), len(test), len(full)) == (1437, 360, 1797)
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == ember.float32 and y.dtype == ember.int64
    # disjoint, together all images; and the same split every time
    all_x, _ = load_digits(return_numpy=True)
    tr = train.data.numpy().reshape(len(train), -1)
    te = test.data.numpy().reshape(len(test), -1)
    assert tr.shape[0] + te.shape[0] == all_x.shape[0]
    assert Digits(train=False).targets.tolist() == test.targets.tolist()
    # every class is in the test split
    assert set(test.targets.tolist()) == set(range(10))


def test_digits_loader_and_transforms():
    xb, yb = next(iter(DataLoader(Digits(train=False), batch_size=50)))
    assert xb.shape == (50, 1, 8, 8) and yb.shape == (50,)
    flipped = Digits(train=False, transform=lambda t: t * 0 + 1, target_transform=lambda t: t * 0)
    xf, yf = next(iter(DataLoader(flipped, batch_size=5)))
    assert xf.tolist() == np.ones((5, 1, 8, 8)).tolist() and yf.tolist() == [0] * 5


def test_bundled_licence_file_names_sources():
    text = (BUNDLED / "LICENSE.md").read_text()
    for needle in ("CC BY 4.0", "Alpaydin", "Kaynak", "Project Gutenberg", "public domain"):
        assert needle in text


def test_shakespeare_text():
    text = load_shakespeare()
    assert isinstance(text, str)
    assert 1_000_000 <= len(text) <= 1_200_000
    assert text.startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be" in text
    assert "Gutenberg" not in text  # no licence boilerplate inside the training text
    assert text.isascii()


def test_char_dataset_shift_and_vocab():
    text = "hello world"
    ds = CharDataset(text, block_size=4)
    assert ds.vocab == sorted(set(text)) and ds.vocab_size == 8
    assert ds.stoi["h"] == ds.vocab.index("h") and ds.itos[0] == ds.vocab[0]
    assert len(ds) == len(text) - 4
    for i in (0, 3, len(ds) - 1, -1):
        x, y = ds[i]
        assert x.dtype == ember.int64 and x.shape == (4,)
        j = i % len(ds)
        assert ds.decode(x) == text[j : j + 4]
        assert ds.decode(y) == text[j + 1 : j + 5]
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert ds.decode(ds.encode("low")) == "low"
    with pytest.raises(KeyError, match="'z' is not in the vocabulary"):
        ds.encode("z")


def test_char_dataset_batches_match_samples():
    ds = CharDataset(load_shakespeare()[:5000], block_size=16)
    ember.manual_seed(0)
    xb, yb = next(iter(DataLoader(ds, batch_size=8, shuffle=True)))
    assert xb.shape == (8, 16) and yb.shape == (8, 16) and xb.dtype == ember.int64
    np.testing.assert_array_equal(xb.numpy()[:, 1:], yb.numpy()[:, :-1])
    ember.manual_seed(0)
    order = list(ember.data.RandomSampler(ds))[:8]
    for row, i in enumerate(order):
        x, y = ds[i]
        np.testing.assert_array_equal(xb.numpy()[row], x.numpy())
        np.testing.assert_array_equal(yb.numpy()[row], y.numpy())


def test_char_dataset_shared_vocab_and_errors():
    train = CharDataset("abcabc", block_size=2)
    val = CharDataset("cab", block_size=2, vocab=train.vocab)
    assert val.encode("cab") == train.encode("cab")
    with pytest.raises(ValueError, match="at least block_size \\+ 1"):
        CharDataset("ab", block_size=2)
    with pytest.raises(ValueError, match="block_size"):
        CharDataset("abc", block_size=0)

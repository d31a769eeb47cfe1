"""DataLoader, samplers, collation, datasets wrappers and random_split."""

from __future__ import annotations

import collections
import gc
import threading

import numpy as np
import pytest

import ember
from ember.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)


def loader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ember-data")]


@pytest.fixture(autouse=True)
def no_leaked_threads():
    yield
    gc.collect()
    assert loader_threads() == []


class Squares(Dataset):
    """Per-sample dataset (no get_batch): (x float32 (2,), y int)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        self.calls += 1
        return np.array([i, i * i], dtype=np.float32), i


def ys(loader) -> list[list[int]]:
    return [b[1].tolist() for b in loader]


# -- batching ---------------------------------------------------------------------------------
@pytest.mark.parametrize("prefetch", [0, 2])
@pytest.mark.parametrize("workers", [0, 3])
def test_batches_in_order(prefetch, workers):
    dl = DataLoader(Squares(7), batch_size=3, num_workers=workers, prefetch_factor=prefetch)
    batches = list(dl)
    assert len(dl) == 3 == len(batches)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    x, y = batches[0]
    assert isinstance(batches[0], list)  # PyTorch collates tuples to lists
    assert x.shape == (3, 2) and x.dtype == ember.float32
    assert y.dtype == ember.int64
    np.testing.assert_array_equal(x.numpy(), [[0, 0], [1, 1], [2, 4]])


def test_drop_last_and_len():
    dl = DataLoader(Squares(7), batch_size=3, drop_last=True)
    assert len(dl) == 2
    assert ys(dl) == [[0, 1, 2], [3, 4, 5]]
    assert len(DataLoader(Squares(6), batch_size=3)) == 2
    assert len(DataLoader(Squares(0), batch_size=3)) == 0
    assert list(DataLoader(Squares(0), batch_size=3)) == []


def test_tensor_dataset_fast_path_matches_per_sample():
    x = ember.arange(20.0).reshape(10, 2)
    y = ember.arange(10)
    ds = TensorDataset(x, y)

    class PerSample(TensorDataset):  # overriding __getitem__ turns the batched fetch off
        def __getitem__(self, i):
            return super().__getitem__(i)

    fast = list(DataLoader(ds, batch_size=4))
    slow = list(DataLoader(PerSample(x, y), batch_size=4))
    for (a, b), (c, d) in zip(fast, slow):
        np.testing.assert_array_equal(a.numpy(), c.numpy())
        np.testing.assert_array_equal(b.numpy(), d.numpy())
        assert a.dtype == c.dtype and b.dtype == d.dtype


def test_subclass_overriding_getitem_is_used():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            (x,) = super().__getitem__(i)
            return (x * 2,)

    (b,) = next(iter(DataLoader(Doubled(ember.arange(4.0)), batch_size=4)))
    assert b.tolist() == [0.0, 2.0, 4.0, 6.0]


def test_batch_size_none_yields_samples():
    out = list(DataLoader(Squares(3), batch_size=None))
    assert len(out) == 3
    x, y = out[2]
    assert isinstance(x, ember.Tensor) and x.tolist() == [2.0, 4.0] and y == 2


def test_custom_collate_and_batch_sampler():
    dl = DataLoader(Squares(5), batch_sampler=[[4, 0], [2]], collate_fn=lambda s: [t[1] for t in s])
    assert list(dl) == [[4, 0], [2]]
    assert len(dl) == 2


def test_argument_errors():
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(Squares(3), sampler=SequentialSampler(range(3)), shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(Squares(3), batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(Squares(3), batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        DataLoader(Squares(3), batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(Squares(3), num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(Squares(3), prefetch_factor=-2)


# -- shuffling --------------------------------------------------------------------------------
def test_shuffle_reproducible_with_manual_seed():
    ds = TensorDataset(ember.arange(50))

    def epoch_orders():
        dl = DataLoader(ds, batch_size=50, shuffle=True)
        return [next(iter(dl))[0].tolist() for _ in range(2)]

    ember.manual_seed(123)
    a = epoch_orders()
    ember.manual_seed(123)
    b = epoch_orders()
    assert a == b
    assert a[0] != a[1]  # a new order every epoch
    assert sorted(a[0]) == list(range(50))
    ember.manual_seed(124)
    assert epoch_orders() != a


def test_shuffle_with_generator_ignores_global_state():
    ds = TensorDataset(ember.arange(30))
    first = next(iter(DataLoader(ds, batch_size=30, shuffle=True, generator=ember.Generator(7))))
    ember.manual_seed(999)
    second = next(iter(DataLoader(ds, batch_size=30, shuffle=True, generator=ember.Generator(7))))
    assert first[0].tolist() == second[0].tolist()
    assert first[0].tolist() != list(range(30))


def test_order_drawn_when_iteration_starts():
    ds = TensorDataset(ember.arange(20))
    dl = DataLoader(ds, batch_size=20, shuffle=True, num_workers=2)
    ember.manual_seed(5)
    it = iter(dl)
    ember.rand(100)  # draws after iter() must not change this epoch's order
    got = next(it)[0].tolist()
    ember.manual_seed(5)
    assert next(iter(dl))[0].tolist() == got


# -- collation --------------------------------------------------------------------------------
def test_collate_nested_structures():
    Point = collections.namedtuple("Point", "x y")
    samples = [
        {
            "img": np.full((2, 2), i, dtype=np.float32),
            "meta": (i, float(i), f"s{i}"),
            "p": Point(i, True),
        }
        for i in range(3)
    ]
    b = default_collate(samples)
    assert b["img"].shape == (3, 2, 2) and b["img"].dtype == ember.float32
    ints, floats, strs = b["meta"]
    assert ints.dtype == ember.int64 and ints.tolist() == [0, 1, 2]
    assert floats.dtype == ember.float64
    assert strs == ["s0", "s1", "s2"]
    assert isinstance(b["p"], Point) and b["p"].y.dtype == ember.bool


def test_collate_tensors_and_numpy_scalars():
    b = default_collate([ember.ones(2, dtype=ember.float64), ember.zeros(2, dtype=ember.float64)])
    assert b.shape == (2, 2) and b.dtype == ember.float64
    s = default_collate([np.int32(1), np.int32(2)])
    assert s.dtype == ember.int32 and s.tolist() == [1, 2]


def test_collate_errors():
    with pytest.raises(RuntimeError, match=r"equal size.*\(2,\).*\(3,\)"):
        default_collate([ember.zeros(2), ember.zeros(3)])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="dtype"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([(1, 2), (1,)])


def test_default_convert():
    out = default_convert({"a": np.arange(3), "b": [np.float32(2.5), "x"]})
    assert isinstance(out["a"], ember.Tensor) and out["a"].tolist() == [0, 1, 2]
    assert out["b"][0].item() == 2.5 and out["b"][1] == "x"


# -- loading threads --------------------------------------------------------------------------
class Failing(Dataset):
    def __len__(self):
        return 10

    def __getitem__(self, i):
        if i == 5:
            raise KeyError(f"bad sample {i}")
        return np.float32(i)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_thread_exception_reraises_in_caller(workers):
    dl = DataLoader(Failing(), batch_size=2, num_workers=workers)
    seen = []
    with pytest.raises(KeyError, match="bad sample 5") as info:
        for b in dl:
            seen.append(b.tolist())
    assert seen == [[0.0, 1.0], [2.0, 3.0]]
    # the traceback reaches into the dataset's __getitem__ in the loading thread
    assert any(e.name == "__getitem__" for e in info.traceback)
    notes = getattr(info.value, "__notes__", ["DataLoader thread"])
    assert any("DataLoader thread" in n for n in notes)


def test_break_shuts_threads_down():
    class Slowish(Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, i):
            return np.full(64, i, dtype=np.float32)

    dl = DataLoader(Slowish(), batch_size=4, num_workers=3, prefetch_factor=4)
    for i, _ in enumerate(dl):
        assert loader_threads()  # loading runs in background threads
        if i == 2:
            break
    gc.collect()
    assert loader_threads() == []


def test_explicit_close_and_exhaustion_join_threads():
    it = iter(DataLoader(Squares(10), batch_size=2))
    next(it)
    it.close()
    assert loader_threads() == []
    with pytest.raises(StopIteration):
        next(it)
    for _ in DataLoader(Squares(10), batch_size=2, num_workers=2):
        pass
    assert loader_threads() == []


def test_prefetch_is_bounded():
    ds = Squares(100)
    it = iter(DataLoader(ds, batch_size=1, prefetch_factor=3))
    next(it)
    import time

    time.sleep(0.05)  # let the loader run ahead as far as it may
    assert ds.calls <= 1 + 3 + 1
    it.close()


def test_worker_init_fn_and_worker_info():
    ids, infos = [], []

    class Probe(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            infos.append(get_worker_info())
            return i

    list(DataLoader(Probe(), batch_size=2, num_workers=2, worker_init_fn=ids.append))
    assert sorted(ids) in ([0], [0, 1])
    assert all(info is not None and info.num_workers == 2 for info in infos)
    assert get_worker_info() is None


def test_timeout():
    import time

    class Stuck(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(0.5)
            return i

    with pytest.raises(RuntimeError, match="timed out after 0.05 seconds"):
        next(iter(DataLoader(Stuck(), batch_size=1, timeout=0.05)))


# -- iterable datasets ------------------------------------------------------------------------
class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))


class SizedStream(Stream):
    def __len__(self):
        return self.n


@pytest.mark.parametrize("prefetch", [0, 2])
def test_iterable_dataset(prefetch):
    assert [b.tolist() for b in DataLoader(Stream(5), batch_size=2, prefetch_factor=prefetch)] == [
        [0, 1],
        [2, 3],
        [4],
    ]
    dl = DataLoader(Stream(5), batch_size=2, drop_last=True, num_workers=4)
    assert [b.tolist() for b in dl] == [[0, 1], [2, 3]]
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    with pytest.raises(TypeError, match="does not define __len__"):
        len(DataLoader(Stream(5), batch_size=2))
    assert len(DataLoader(SizedStream(5), batch_size=2)) == 3
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(Stream(5), shuffle=True)


# -- samplers ---------------------------------------------------------------------------------
def test_samplers():
    assert list(SequentialSampler(range(3))) == [0, 1, 2]
    g = ember.Generator(0)
    assert sorted(RandomSampler(range(10), generator=g)) == list(range(10))
    with_repl = list(RandomSampler(range(3), replacement=True, num_samples=20, generator=g))
    assert len(with_repl) == 20 and set(with_repl) <= {0, 1, 2}
    chained = list(RandomSampler(range(3), num_samples=7, generator=g))
    assert len(chained) == 7 and sorted(chained[:3]) == [0, 1, 2]
    assert sorted(SubsetRandomSampler([4, 8, 9], generator=g)) == [4, 8, 9]
    w = list(WeightedRandomSampler([0.0, 0.0, 1.0], 5, generator=g))
    assert w == [2] * 5
    with pytest.raises(ValueError, match="non-negative"):
        WeightedRandomSampler([-1.0, 2.0], 2)
    bs = BatchSampler(SequentialSampler(range(5)), 2, drop_last=False)
    assert list(bs) == [[0, 1], [2, 3], [4]] and len(bs) == 3
    assert len(BatchSampler(range(5), 2, drop_last=True)) == 2
    with pytest.raises(ValueError, match="batch_size"):
        BatchSampler(range(5), 0, False)


# -- wrappers ---------------------------------------------------------------------------------
def test_tensor_dataset_checks():
    with pytest.raises(ValueError, match=r"size mismatch.*\[3, 4\]"):
        TensorDataset(ember.zeros(3, 2), ember.zeros(4))
    ds = TensorDataset(np.arange(6).reshape(3, 2), ember.arange(3))
    x, y = ds[-1]
    assert x.tolist() == [4, 5] and y.item() == 2 and y.shape == ()
    assert len(ds) == 3
    with pytest.raises(IndexError):
        ds[3]


def test_subset_and_concat():
    ds = TensorDataset(ember.arange(10))
    sub = Subset(ds, [7, 3, 5])
    assert len(sub) == 3 and sub[1][0].item() == 3
    assert [b[0].tolist() for b in DataLoader(sub, batch_size=2)] == [[7, 3], [5]]
    cat = ConcatDataset([sub, TensorDataset(ember.arange(100, 102))])
    assert len(cat) == 5 and cat[3][0].item() == 100 and cat[-1][0].item() == 101
    assert len(sub + sub) == 6
    with pytest.raises(IndexError):
        cat[5]
    assert [b[0].tolist() for b in DataLoader(cat, batch_size=5)] == [[7, 3, 5, 100, 101]]


def test_random_split_lengths_and_fractions():
    ds = TensorDataset(ember.arange(10))
    a, b = random_split(ds, [3, 7], generator=ember.Generator(1))
    ia, ib = list(a.indices), list(b.indices)
    assert len(ia) == 3 and len(ib) == 7 and sorted(ia + ib) == list(range(10))
    parts = random_split(ds, [0.5, 0.3, 0.2], generator=ember.Generator(1))
    assert [len(p) for p in parts] == [5, 3, 2]
    odd = random_split(TensorDataset(ember.arange(11)), [0.5, 0.5], generator=ember.Generator(0))
    assert [len(p) for p in odd] == [6, 5]
    with pytest.raises(ValueError, match=r"sum of input lengths \(9\)"):
        random_split(ds, [4, 5])
    ember.manual_seed(3)
    x = [list(s.indices) for s in random_split(ds, [5, 5])]
    ember.manual_seed(3)
    assert [list(s.indices) for s in random_split(ds, [5, 5])] == x

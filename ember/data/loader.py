"""DataLoader: batches from a dataset, loaded ahead of use by background threads.

Threads, not processes: ember never pickles datasets. While your training step runs (NumPy
and BLAS release the GIL), a loading thread prepares the next ``prefetch_factor`` batches.

* ``num_workers=0`` (default): one background thread loads batches in order, up to
  ``prefetch_factor`` ahead. ``prefetch_factor=0`` loads synchronously in the calling thread
  (easiest to debug, and fully deterministic when ``__getitem__`` draws random numbers).
* ``num_workers=N``: ``N`` threads load batches in parallel, delivered in order. This helps
  when ``__getitem__`` waits on files or spends its time in NumPy; pure-Python work is
  serialized by the GIL. An ``IterableDataset`` is always read by one thread.

The sampling order (``shuffle``) is drawn in the calling thread when iteration starts, from
``generator`` or ember's global generator, so ``ember.manual_seed`` makes epochs
reproducible. An exception raised while loading re-raises in your thread with the loading
thread's traceback; leaving a loop early (``break``) stops and joins the threads.

Example:
    >>> import ember
    >>> from ember.data import DataLoader, TensorDataset
    >>> ds = TensorDataset(ember.arange(10.0).reshape(5, 2), ember.arange(5))
    >>> [y.tolist() for x, y in DataLoader(ds, batch_size=2)]
    [[0, 1], [2, 3], [4]]
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any, NamedTuple

import numpy as np

from .. import threads
from ..random import Generator
from .collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset, batch_fetcher
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler

__all__ = ["DataLoader", "get_worker_info", "WorkerInfo"]

_END = object()  # a loading task found the data exhausted
_local = threading.local()


class WorkerInfo(NamedTuple):
    """What a loading thread knows about itself (see :func:`get_worker_info`)."""

    id: int
    num_workers: int
    dataset: Any


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader loading thread: its ``id``, ``num_workers`` and ``dataset``;
    elsewhere ``None``.

    Example:
        >>> get_worker_info() is None
        True
    """
    return getattr(_local, "info", None)


def _is_iterable_dataset(dataset: Any) -> bool:
    if isinstance(dataset, IterableDataset):
        return True
    return not hasattr(dataset, "__getitem__") and hasattr(dataset, "__iter__")


class DataLoader:
    """Iterate a dataset in batches (PyTorch's arguments and defaults).

    Args:
        dataset: a map-style :class:`Dataset` (``__getitem__``/``__len__``) or an
            :class:`IterableDataset`.
        batch_size: samples per batch; ``None`` yields single samples (no collation).
        shuffle: draw a new random order every epoch (map-style datasets only).
        sampler / batch_sampler: custom index order / custom index batches.
        num_workers: loading threads (0: one background thread; see the module docs).
        collate_fn: list of samples -> batch (default :func:`default_collate`).
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for a batch before raising (0: wait forever).
        worker_init_fn: called as ``fn(worker_id)`` in each loading thread when it starts.
        generator: the :class:`ember.Generator` for ``shuffle`` (default: the global one).
        prefetch_factor: batches loaded ahead per thread (0: load synchronously).
        pin_memory, multiprocessing_context, persistent_workers: accepted for PyTorch
            compatibility; they have no effect (threads share memory).

    Example:
        >>> ds = TensorDataset(ember.arange(6))
        >>> _ = ember.manual_seed(0); a = [b[0].tolist() for b in DataLoader(ds, 3, shuffle=True)]
        >>> _ = ember.manual_seed(0); b = [b[0].tolist() for b in DataLoader(ds, 3, shuffle=True)]
        >>> a == b
        True
    """

    def __init__(
        self,
        dataset: Dataset | Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Sampler | Any = None,
        batch_sampler: Sampler | Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Generator | None = None,
        *,
        prefetch_factor: int | None = 2,
        persistent_workers: bool = False,
    ) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(
                f"num_workers option should be a non-negative integer, got {num_workers!r}"
            )
        if prefetch_factor is None:
            prefetch_factor = 2
        if not isinstance(prefetch_factor, int) or prefetch_factor < 0:
            raise ValueError(
                f"prefetch_factor option should be a non-negative integer, got {prefetch_factor!r}"
            )
        if timeout < 0:
            raise ValueError(f"timeout option should be non-negative, got {timeout!r}")
        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._iterable = _is_iterable_dataset(dataset)

        if self._iterable:
            if shuffle:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified shuffle option, "
                    f"but got shuffle={shuffle}"
                )
            if sampler is not None or batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified sampler and "
                    "batch_sampler options"
                )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    "sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive "
                "with drop_last"
            )
        elif batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0
        ):
            raise ValueError(f"batch_size should be a positive integer value, got {batch_size!r}")

        if not self._iterable:
            if sampler is None:
                if shuffle:
                    sampler = RandomSampler(dataset, generator=generator)
                else:
                    sampler = SequentialSampler(dataset)
            elif shuffle:
                raise ValueError("sampler option is mutually exclusive with shuffle")
            if batch_size is not None and batch_sampler is None:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self._auto_collation = batch_sampler is not None or (
            self._iterable and batch_size is not None
        )
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    def __len__(self) -> int:
        if self._iterable:
            try:
                n = len(self.dataset)
            except TypeError:
                raise TypeError(
                    f"len() of a DataLoader over {type(self.dataset).__name__}: the "
                    "IterableDataset does not define __len__"
                ) from None
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        return _LoaderIter(self)

    # -- what one loading task does --------------------------------------------------------
    def _map_fetcher(self) -> Callable[[Any], Any]:
        dataset, collate = self.dataset, self.collate_fn
        if not self._auto_collation:
            return lambda index: collate(dataset[index])
        fast = batch_fetcher(dataset) if collate is default_collate else None
        getitems = getattr(dataset, "__getitems__", None)

        def fetch(indices: list[int]) -> Any:
            if fast is not None:
                out = fast(np.asarray(indices, dtype=np.int64))
                if out is not NotImplemented:
                    return out
            samples = getitems(indices) if getitems else [dataset[i] for i in indices]
            return collate(samples)

        return fetch

    def _iterable_fetcher(self, source: Iterator[Any]) -> Callable[[Any], Any]:
        collate, bs, drop_last = self.collate_fn, self.batch_size, self.drop_last

        def fetch(_: Any) -> Any:
            if bs is None:
                try:
                    return collate(next(source))
                except StopIteration:
                    return _END
            batch = list(itertools.islice(source, bs))
            if not batch or (drop_last and len(batch) < bs):
                return _END
            return collate(batch)

        return fetch


def _annotate(exc: BaseException) -> None:
    note = "(raised while loading a batch in a DataLoader thread; its traceback is above)"
    if hasattr(exc, "add_note") and note not in getattr(exc, "__notes__", ()):
        exc.add_note(note)


class _LoaderIter:
    """One pass over a DataLoader. Holds no reference that the loading threads need, so
    dropping it (``break``) runs ``close()``, which cancels pending loads and joins the
    threads."""

    def __init__(self, loader: DataLoader) -> None:
        self._closed = False
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._timeout = loader.timeout or None
        if loader._iterable:
            self._tasks: Iterator[Any] = itertools.repeat(None)
            self._fetch = loader._iterable_fetcher(iter(loader.dataset))
            workers = 1
        else:
            # the index order is drawn here, in the caller's thread
            order = loader.batch_sampler if loader._auto_collation else loader.sampler
            self._tasks = iter(order)
            self._fetch = loader._map_fetcher()
            workers = max(1, loader.num_workers)
        self._window = loader.prefetch_factor * workers
        self._exhausted = False
        if self._window:
            idents: set[int] = set()
            self._worker_idents = idents
            counter = itertools.count()
            n, init_fn, dataset = workers, loader.worker_init_fn, loader.dataset

            def init() -> None:
                threads.limit_this_thread(1)  # C kernels here never compete with training
                wid = next(counter)
                idents.add(threading.get_ident())
                _local.info = WorkerInfo(wid, n, dataset)
                if init_fn is not None:
                    init_fn(wid)

            self._pool = ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="ember-data", initializer=init
            )
            self._fill()

    def __iter__(self) -> _LoaderIter:
        return self

    def _fill(self) -> None:
        while not self._exhausted and len(self._pending) < self._window:
            try:
                task = next(self._tasks)
            except StopIteration:
                self._exhausted = True
                return
            except BaseException:
                self.close()
                raise
            self._pending.append(self._pool.submit(self._fetch, task))

    def __next__(self) -> Any:
        if self._closed:
            raise StopIteration
        if self._pool is None:  # synchronous loading
            try:
                batch = self._fetch(next(self._tasks))
            except StopIteration:
                self._closed = True
                raise
            if batch is _END:
                self._closed = True
                raise StopIteration
            return batch
        if not self._pending:
            self.close()
            raise StopIteration
        fut = self._pending.popleft()
        self._fill()
        if self._timeout is not None:
            done, _ = wait_futures([fut], timeout=self._timeout)
            if not done:
                self.close()
                raise RuntimeError(
                    f"DataLoader timed out after {self._timeout} seconds waiting for a batch"
                )
        try:
            batch = fut.result()
        except BaseException as exc:
            self.close()
            _annotate(exc)
            raise
        if batch is _END:
            self.close()
            raise StopIteration
        return batch

    def close(self) -> None:
        """Stop loading: cancel batches not started and wait for the threads to finish."""
        if self._closed:
            return
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        for fut in self._pending:
            fut.cancel()
        self._pending.clear()
        # never join from inside a loading thread (it would wait for itself)
        pool.shutdown(wait=threading.get_ident() not in self._worker_idents, cancel_futures=True)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

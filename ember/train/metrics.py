"""Metrics: plain functions (``accuracy``, ``top_k_accuracy``) and stateful classes with
``update(output, target)`` / ``compute()`` / ``reset()`` that the Trainer accumulates over an
epoch (counts stay on the tensors' device until ``compute``).

Example:
    >>> import ember
    >>> from ember.train import Accuracy, accuracy
    >>> logits = ember.tensor([[2.0, 0.1], [0.2, 1.0], [3.0, 0.0]])
    >>> accuracy(logits, ember.tensor([0, 1, 1]))
    0.6666666666666666
    >>> m = Accuracy(); m.update(logits, ember.tensor([0, 1, 1])); m.compute()
    0.6666666666666666
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ShapeError
from ..tensor import Tensor

__all__ = [
    "accuracy",
    "top_k_accuracy",
    "Metric",
    "Accuracy",
    "TopKAccuracy",
    "Mean",
    "get_metric",
]


def _arrays(output: Any, target: Any) -> tuple[Any, Any, Any]:
    """Raw arrays (no autograd) and their array module."""
    if isinstance(output, Tensor):
        xp = output.device.xp
        o = output._data
    else:
        xp, o = np, np.asarray(output)
    if isinstance(target, Tensor):
        t = target._data
        if target.device.xp is not xp:
            raise RuntimeError(
                f"metric: output and target are on different devices ({getattr(output, 'device', 'cpu')} "
                f"and {target.device})"
            )
    else:
        t = xp.asarray(target)
    return xp, o, t


def _accuracy_counts(output: Any, target: Any, threshold: float) -> tuple[Any, int]:
    """(number correct as a device scalar, number of predictions)."""
    xp, o, t = _arrays(output, target)
    if o.ndim == t.ndim + 1 and o.ndim >= 2 and o.shape[1] == 1:
        o = o[:, 0]  # (N, 1) binary scores
    if o.ndim == t.ndim + 1:  # (N, C, ...) class scores, (N, ...) class indices
        if o.shape[:1] + o.shape[2:] != t.shape:
            raise ShapeError(
                "accuracy",
                f"output shape {tuple(o.shape)} and target shape {tuple(t.shape)} do not match: "
                "expected scores (N, C, ...) with class indices (N, ...)",
            )
        pred = o.argmax(axis=1)
        return (pred == t).sum(), int(t.size)
    if o.shape != t.shape:
        raise ShapeError(
            "accuracy",
            f"output shape {tuple(o.shape)} and target shape {tuple(t.shape)} do not match: "
            "expected scores (N, C, ...) with class indices (N, ...), or equal shapes",
        )
    if o.dtype.kind == "f":  # binary: probabilities, or logits when outside [0, 1]
        cut = threshold if (o.size == 0 or (o.min() >= 0 and o.max() <= 1)) else 0.0
        pred = o > cut
        truth = t > 0.5 if t.dtype.kind == "f" else t.astype(bool)
        return (pred == truth).sum(), int(t.size)
    return (o == t).sum(), int(t.size)  # predicted labels


def accuracy(output: Any, target: Any, threshold: float = 0.5) -> float:
    """Fraction of correct predictions.

    ``output`` is either class scores (logits or probabilities) of shape ``(N, C, ...)``
    with ``target`` class indices ``(N, ...)`` (the prediction is the arg-max over dim 1),
    or has ``target``'s shape: binary probabilities cut at ``threshold`` (logits, i.e.
    values outside ``[0, 1]``, are cut at 0), or predicted labels compared as they are.

    Example:
        >>> accuracy(ember.tensor([0.9, 0.2, 0.6]), ember.tensor([1, 0, 0]))
        0.6666666666666666
    """
    correct, n = _accuracy_counts(output, target, threshold)
    return float(correct) / n if n else 0.0


def _topk_counts(output: Any, target: Any, k: int) -> tuple[Any, int]:
    xp, o, t = _arrays(output, target)
    if o.ndim != 2 or t.shape != o.shape[:1]:
        raise ShapeError(
            "top_k_accuracy",
            f"expected scores (N, C) and targets (N,), got {tuple(o.shape)} and {tuple(t.shape)}",
        )
    c = o.shape[1]
    if not 1 <= k <= c:
        raise ValueError(f"top_k_accuracy: k={k} must be between 1 and the {c} classes")
    if k == c:
        return xp.asarray(t.shape[0]), int(t.shape[0])
    top = xp.argpartition(-o, k - 1, axis=1)[:, :k]
    return (top == t[:, None]).any(axis=1).sum(), int(t.shape[0])


def top_k_accuracy(output: Any, target: Any, k: int = 5) -> float:
    """Fraction of samples whose target class is among the ``k`` highest scores.

    Example:
        >>> s = ember.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1]])
        >>> top_k_accuracy(s, ember.tensor([2, 2]), k=2)
        0.5
    """
    correct, n = _topk_counts(output, target, k)
    return float(correct) / n if n else 0.0


class Metric:
    """A metric accumulated over batches: ``update(output, target)`` per batch, then
    ``compute()`` for the epoch's value, ``reset()`` to start again. ``name`` is its key in
    the Trainer's logs.

    Example:
        >>> class MaxScore(Metric):
        ...     name = "max_score"
        ...     def reset(self): self.best = float("-inf")
        ...     def update(self, output, target): self.best = max(self.best, float(output.max()))
        ...     def compute(self): return self.best
        >>> m = MaxScore(); m.update(ember.tensor([1.0, 3.0]), None); m.compute()
        3.0
    """

    name: str = "metric"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        raise NotImplementedError

    def update(self, output: Any, target: Any) -> None:
        raise NotImplementedError

    def compute(self) -> float:
        raise NotImplementedError

    def __call__(self, output: Any, target: Any) -> float:
        """This batch's value alone (the accumulated state is left untouched)."""
        fresh = self.__class__.__new__(self.__class__)
        fresh.__dict__.update(self.__dict__)
        fresh.reset()
        fresh.update(output, target)
        return fresh.compute()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _CountMetric(Metric):
    """A ratio of counts summed over batches; subclasses give ``_counts(output, target)``,
    one batch's ``(correct, total)``."""

    def reset(self) -> None:
        self._correct: Any = 0
        self._count = 0

    def _counts(self, output: Any, target: Any) -> tuple[Any, int]:
        raise NotImplementedError

    def update(self, output: Any, target: Any) -> None:
        correct, n = self._counts(output, target)
        self._correct = self._correct + correct
        self._count += n

    def compute(self) -> float:
        return float(self._correct) / self._count if self._count else 0.0


class Accuracy(_CountMetric):
    """Accumulated :func:`accuracy` (logged as ``"accuracy"``).

    Example:
        >>> m = Accuracy()
        >>> m.update(ember.tensor([[1.0, 0.0]]), ember.tensor([0]))
        >>> m.update(ember.tensor([[1.0, 0.0]]), ember.tensor([1]))
        >>> m.compute()
        0.5
    """

    def __init__(self, threshold: float = 0.5, name: str = "accuracy") -> None:
        self.threshold = threshold
        self.name = name
        super().__init__()

    def _counts(self, output: Any, target: Any) -> tuple[Any, int]:
        return _accuracy_counts(output, target, self.threshold)


class TopKAccuracy(_CountMetric):
    """Accumulated :func:`top_k_accuracy` (logged as ``"top{k}_accuracy"``).

    Example:
        >>> m = TopKAccuracy(k=2); m.update(ember.tensor([[0.1, 0.5, 0.4]]), ember.tensor([2]))
        >>> m.name, m.compute()
        ('top2_accuracy', 1.0)
    """

    def __init__(self, k: int = 5, name: str | None = None) -> None:
        self.k = k
        self.name = name or f"top{k}_accuracy"
        super().__init__()

    def _counts(self, output: Any, target: Any) -> tuple[Any, int]:
        return _topk_counts(output, target, self.k)


class Mean(Metric):
    """The sample-weighted mean of ``fn(output, target)`` over batches (a per-batch mean,
    e.g. a loss, weighted by the batch size).

    Example:
        >>> m = Mean(lambda o, t: float((o - t).abs().mean()), name="mae")
        >>> m.update(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 1.0])); m.compute()
        0.5
    """

    def __init__(self, fn: Callable[[Any, Any], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "mean")
        super().__init__()

    def reset(self) -> None:
        self._total: Any = 0.0
        self._count = 0

    def update(self, output: Any, target: Any) -> None:
        value = self.fn(output, target)
        n = int(output.shape[0]) if getattr(output, "ndim", 0) else 1
        if isinstance(value, Tensor):
            value = value.detach()._data
        self._total = self._total + value * n
        self._count += n

    def compute(self) -> float:
        return float(self._total) / self._count if self._count else 0.0


_TOPK = re.compile(r"^top_?(\d+)(_accuracy)?$")


def get_metric(spec: str | Metric | Callable[[Any, Any], Any]) -> Metric:
    """A :class:`Metric` from a name (``"accuracy"``/``"acc"``, ``"top5"``/``"top5_accuracy"``,
    ``"top_k_accuracy"`` meaning top 5), a Metric (returned as is) or a function
    ``fn(output, target)`` (averaged with :class:`Mean`).

    Example:
        >>> get_metric("top3").name
        'top3_accuracy'
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        key = spec.lower()
        if key in ("accuracy", "acc"):
            return Accuracy()
        if key == "top_k_accuracy":
            return TopKAccuracy(5)
        m = _TOPK.match(key)
        if m:
            return TopKAccuracy(int(m.group(1)))
        raise ValueError(
            f"unknown metric {spec!r}: use 'accuracy', 'topK' (e.g. 'top5'), a Metric or a "
            "function (output, target) -> value"
        )
    if callable(spec):
        return Mean(spec)
    raise TypeError(f"a metric must be a name, a Metric or a function, got {type(spec).__name__}")

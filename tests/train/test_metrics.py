"""Metrics: functions and accumulating classes."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.train import Accuracy, Mean, TopKAccuracy, accuracy, get_metric, top_k_accuracy


def test_accuracy_multiclass_matches_argmax():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((50, 7)).astype(np.float32)
    target = rng.integers(0, 7, 50)
    expected = float((scores.argmax(1) == target).mean())
    assert accuracy(ember.tensor(scores), ember.tensor(target)) == pytest.approx(expected)
    # (N, C, L) scores with (N, L) targets: argmax over dim 1
    s3 = rng.standard_normal((4, 3, 5))
    t3 = rng.integers(0, 3, (4, 5))
    assert accuracy(ember.tensor(s3), ember.tensor(t3)) == pytest.approx(
        float((s3.argmax(1) == t3).mean())
    )


def test_accuracy_binary_and_labels():
    probs = ember.tensor([0.9, 0.4, 0.6, 0.1])
    assert accuracy(probs, ember.tensor([1, 0, 0, 0])) == 0.75
    assert accuracy(probs, ember.tensor([1.0, 0.0, 1.0, 0.0])) == 1.0
    assert accuracy(probs, ember.tensor([1, 1, 1, 1]), threshold=0.05) == 1.0
    logits = ember.tensor([2.0, -1.0, 0.5, -3.0])  # outside [0, 1]: cut at 0
    assert accuracy(logits, ember.tensor([1, 0, 0, 0])) == 0.75
    assert accuracy(ember.tensor([[0.8], [0.3]]), ember.tensor([1, 1])) == 0.5
    assert accuracy(ember.tensor([3, 1, 2]), ember.tensor([3, 0, 2])) == pytest.approx(2 / 3)
    assert accuracy(np.array([[0.1, 0.9]]), np.array([1])) == 1.0


def test_accuracy_shape_errors():
    with pytest.raises(
        ember.ShapeError, match=r"accuracy: output shape \(4, 3\) and target shape \(5,\)"
    ):
        accuracy(ember.zeros(4, 3), ember.zeros(5, dtype=ember.int64))
    with pytest.raises(ember.ShapeError, match=r"\(4,\) and target shape \(2, 2\)"):
        accuracy(ember.zeros(4), ember.zeros(2, 2))


def test_top_k_accuracy():
    scores = ember.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    target = ember.tensor([2, 2, 0])
    assert top_k_accuracy(scores, target, k=1) == pytest.approx(0.0)
    assert top_k_accuracy(scores, target, k=2) == pytest.approx(2 / 3)
    assert top_k_accuracy(scores, target, k=3) == 1.0
    rng = np.random.default_rng(1)
    s = rng.standard_normal((40, 10))
    t = rng.integers(0, 10, 40)
    top5 = np.argsort(-s, axis=1)[:, :5]
    expected = float((top5 == t[:, None]).any(1).mean())
    assert top_k_accuracy(ember.tensor(s), ember.tensor(t), k=5) == pytest.approx(expected)
    with pytest.raises(ValueError, match="k=4 must be between 1 and the 3 classes"):
        top_k_accuracy(scores, target, k=4)
    with pytest.raises(ember.ShapeError, match="top_k_accuracy"):
        top_k_accuracy(ember.zeros(3), target)


def test_metric_classes_accumulate_and_reset():
    m = Accuracy()
    assert m.name == "accuracy" and m.compute() == 0.0
    m.update(ember.tensor([[1.0, 0.0], [0.0, 1.0]]), ember.tensor([0, 0]))
    m.update(ember.tensor([[1.0, 0.0]]), ember.tensor([0]))
    assert m.compute() == pytest.approx(2 / 3)
    # __call__ scores one batch without touching the state
    assert m(ember.tensor([[0.0, 1.0]]), ember.tensor([0])) == 0.0
    assert m.compute() == pytest.approx(2 / 3)
    m.reset()
    assert m.compute() == 0.0
    k = TopKAccuracy(k=2)
    assert k.name == "top2_accuracy"
    k.update(ember.tensor([[0.1, 0.5, 0.4]]), ember.tensor([2]))
    k.update(ember.tensor([[0.1, 0.5, 0.4]]), ember.tensor([0]))
    assert k.compute() == 0.5


def test_mean_metric_weights_by_batch_size():
    def mae(o, t):
        return (o - t).abs().mean()

    m = Mean(mae)
    assert m.name == "mae"
    m.update(ember.tensor([1.0, 1.0, 1.0]), ember.tensor([0.0, 0.0, 0.0]))  # mean 1 over 3
    m.update(ember.tensor([4.0]), ember.tensor([0.0]))  # mean 4 over 1
    assert m.compute() == pytest.approx((3 * 1 + 4) / 4)


def test_get_metric():
    assert isinstance(get_metric("acc"), Accuracy)
    assert get_metric("top5").k == 5 and get_metric("top_3_accuracy").k == 3
    assert get_metric("top_k_accuracy").name == "top5_accuracy"
    a = Accuracy()
    assert get_metric(a) is a
    assert isinstance(get_metric(lambda o, t: 0.0), Mean)
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        get_metric("f1")

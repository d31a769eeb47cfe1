"""The models the export tests prove on: W1 (MLP), W2 (CNN), W3 (char GPT) from the
benchmarks, an LSTM classifier and a ResNet-style block. Each factory returns
``(model, make_input)`` where ``make_input(batch)`` gives a deterministic input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import ember

_BENCH = str(Path(__file__).resolve().parents[2] / "benchmarks")
if _BENCH not in sys.path:
    sys.path.insert(0, _BENCH)

from workloads import w1_mlp, w2_cnn, w3_gpt  # noqa: E402


def _normal(*shape: int, seed: int) -> ember.Tensor:
    return ember.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def w1():
    return w1_mlp.make_model(ember), lambda b: _normal(b, 784, seed=b)


def w2():
    return w2_cnn.make_model(ember), lambda b: _normal(b, 1, 28, 28, seed=b)


def w3():
    def tokens(b: int) -> ember.Tensor:
        return ember.tensor(np.random.default_rng(b).integers(0, w3_gpt.V, (b, w3_gpt.T)))

    return w3_gpt.make_gpt(ember), tokens


class LSTMClassifier(ember.nn.Module):
    """A one-layer LSTM over a sequence, then a linear head on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = ember.nn.LSTM(8, 16, batch_first=True)
        self.head = ember.nn.Linear(16, 4)

    def forward(self, x: ember.Tensor) -> ember.Tensor:
        y, _ = self.lstm(x)
        return self.head(y[:, -1])


class ResBlock(ember.nn.Module):
    """conv-bn-relu-conv-bn plus the identity, then relu (ResNet's basic block)."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        nn = ember.nn
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: ember.Tensor) -> ember.Tensor:
        y = ember.relu(self.bn1(self.conv1(x)))
        return ember.relu(x + self.bn2(self.conv2(y)))


def lstm():
    ember.manual_seed(1)
    return LSTMClassifier(), lambda b: _normal(b, 5, 8, seed=b)


def resblock():
    ember.manual_seed(2)
    model = ResBlock()
    with ember.no_grad():  # non-trivial running statistics, so eval-mode BN does something
        for bn in (model.bn1, model.bn2):
            bn.running_mean.copy_(_normal(8, seed=3) * 0.1)
            bn.running_var.copy_(ember.abs(_normal(8, seed=4)) + 0.5)
    return model, lambda b: _normal(b, 8, 6, 6, seed=b)


MODELS = {"w1": w1, "w2": w2, "w3": w3, "lstm": lstm, "resblock": resblock}

"""An LSTM sequence classifier on a generated task: is the sum of a sequence of random
numbers positive?

Each sample is ``--seq-len`` numbers drawn from a standard normal distribution (fed as
``(batch, time, 1)`` features); its label is 1 when they sum to more than zero. The model
has to carry a running total through time, which an ``nn.LSTM`` does well: after a few
epochs it classifies almost every test sequence correctly (only sums very close to zero
stay hard). Measured: 98.6%, 98.2% and 98.3% test accuracy with seeds 0, 1 and 2, in
9-28 s on 2 shared CPU cores.

What it shows: ``nn.LSTM(batch_first=True)`` returning ``(output, (h_n, c_n))``, a linear
head on the last layer's final hidden state ``h_n[-1]``, ``TensorDataset``/``DataLoader``
over generated tensors, ``BCEWithLogitsLoss``, ``Adam`` with a per-step
``CosineAnnealingLR``, and gradient clipping.

Run it:

    python examples/lstm_classifier.py            # about 98% test accuracy in 10-30 s
    python examples/lstm_classifier.py --seq-len 40 --hidden 64
    python examples/lstm_classifier.py --quick    # a few seconds: the smoke test
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np

import ember
import ember.nn.functional as F
from ember import nn
from ember.data import DataLoader, TensorDataset
from ember.optim.lr_scheduler import CosineAnnealingLR


def make_data(n: int, seq_len: int, seed: int) -> tuple[ember.Tensor, ember.Tensor]:
    """``n`` sequences ``(n, seq_len, 1)`` of standard normal numbers and their float labels
    ``(n,)``: 1.0 where the sequence sums to more than zero, else 0.0.

    Example:
        >>> x, y = make_data(4, 5, seed=0)
        >>> x.shape, y.shape, bool(((x.sum(dim=(1, 2)) > 0).float() == y).all())
        ((4, 5, 1), (4,), True)
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, seq_len, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.float32)
    return ember.tensor(x), ember.tensor(y)


class SequenceClassifier(nn.Module):
    """``nn.LSTM`` over ``(batch, time, features)`` and a linear head on the last hidden
    state: one logit per sequence.

    Example:
        >>> SequenceClassifier(1, 16)(ember.randn(3, 7, 1)).shape
        (3,)
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: ember.Tensor) -> ember.Tensor:
        _, (h_n, _) = self.lstm(x)  # h_n: (num_layers, batch, hidden)
        return self.head(h_n[-1]).squeeze(-1)


@ember.no_grad()
def evaluate(model: nn.Module, x: ember.Tensor, y: ember.Tensor) -> tuple[float, float]:
    """``(mean BCE loss, accuracy)`` of ``model`` on ``(x, y)``.

    Example:
        >>> evaluate(SequenceClassifier(1, 8), *make_data(16, 5, seed=1))  # doctest: +SKIP
        (0.69, 0.5)
    """
    model.eval()
    logits = model(x)
    loss = float(F.binary_cross_entropy_with_logits(logits, y))
    accuracy = float(((logits > 0).float() == y).float().mean())
    model.train()
    return loss, accuracy


def build_parser() -> argparse.ArgumentParser:
    """The command-line options.

    Example:
        >>> build_parser().parse_args(["--quick"]).quick
        True
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seq-len", type=int, default=20, help="time steps (default 20)")
    p.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    p.add_argument("--layers", type=int, default=1, help="stacked LSTM layers (default 1)")
    p.add_argument("--train-size", type=int, default=4096, help="training sequences")
    p.add_argument("--test-size", type=int, default=1024, help="test sequences")
    p.add_argument("--epochs", type=int, default=8, help="default 8")
    p.add_argument("--batch-size", type=int, default=64, help="default 64")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    p.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.add_argument("--quick", action="store_true", help="a small run (the smoke test)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Generate the data, train and test; returns ``{"test_accuracy", "test_loss",
    "first_loss", "train_losses" (one mean per epoch), "steps", "seconds"}``.

    Example:
        >>> main(["--quick", "--quiet"])["test_accuracy"] > 0.6  # doctest: +SKIP
        True
    """
    args = build_parser().parse_args(argv)
    if args.quick:
        args.seq_len, args.train_size, args.test_size, args.epochs = 10, 1024, 256, 2
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    ember.manual_seed(args.seed)
    x_train, y_train = make_data(args.train_size, args.seq_len, seed=args.seed)
    x_test, y_test = make_data(args.test_size, args.seq_len, seed=args.seed + 1)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)

    model = SequenceClassifier(1, args.hidden, args.layers)
    loss_fn = nn.BCEWithLogitsLoss()
    optimizer = ember.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = CosineAnnealingLR(optimizer, T_max=args.epochs * len(loader))

    train_losses: list[float] = []
    first_loss = math.nan
    steps = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        loss_sum, seen = 0.0, 0
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
            optimizer.step()
            scheduler.step()
            steps += 1
            first_loss = float(loss) if steps == 1 else first_loss
            loss_sum += float(loss) * y.shape[0]
            seen += y.shape[0]
        train_losses.append(loss_sum / seen)
        test_loss, test_acc = evaluate(model, x_test, y_test)
        log(f"epoch {epoch + 1}/{args.epochs}  train loss {train_losses[-1]:.4f}  "
            f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
            f"({time.perf_counter() - start:.1f}s)")  # fmt: skip
    seconds = time.perf_counter() - start
    test_loss, test_acc = evaluate(model, x_test, y_test)
    log(f"test accuracy {test_acc:.2%} after {steps} steps in {seconds:.1f}s")
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "first_loss": first_loss,
        "train_losses": train_losses,
        "steps": steps,
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()

"""A small CNN on the 8x8 handwritten digits bundled with ember, trained with the plain
PyTorch-style loop: ``DataLoader`` -> ``model(x)`` -> ``loss.backward()`` ->
``optimizer.step()``.

What it shows: ``nn.Sequential`` with ``Conv2d``/``BatchNorm2d``/``MaxPool2d``/``Dropout``,
``Adam`` with a per-step ``OneCycleLR`` schedule, ``model.train()``/``model.eval()``,
evaluation under ``ember.no_grad()``, and saving the weights with ``ember.save``.

Run it:

    python examples/digits_cnn.py                  # 15 epochs: about 99% test accuracy
    python examples/digits_cnn.py --epochs 5 --out digits.safetensors
    python examples/digits_cnn.py --quick          # one short epoch: the smoke test

The data is the UCI digits set (1,437 training and 360 test images, a fixed split).
Measured: 99.7%, 99.7% and 99.4% test accuracy with seeds 0, 1 and 2, about 11 s each
on 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import ember
import ember.nn.functional as F
from ember import nn
from ember.data import DataLoader, Digits, Subset
from ember.optim.lr_scheduler import OneCycleLR


def make_model(dropout: float = 0.25) -> nn.Module:
    """A two-block CNN for ``(N, 1, 8, 8)`` images: 10 logits per image.

    Example:
        >>> make_model()(ember.zeros(2, 1, 8, 8)).shape
        (2, 10)
    """
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=3, padding=1),  # 32 x 8 x 8
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 32 x 4 x 4
        nn.Conv2d(32, 64, kernel_size=3, padding=1),  # 64 x 4 x 4
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 64 x 2 x 2
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(64 * 2 * 2, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


@ember.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    """``(mean cross-entropy, accuracy)`` of ``model`` over ``loader``.

    Example:
        >>> evaluate(make_model(), DataLoader(Digits(train=False), batch_size=128))  # doctest: +SKIP
        (2.31, 0.09)
    """
    model.eval()
    loss_sum, correct, seen = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(dim=1) == y).sum())
        seen += y.shape[0]
    return loss_sum / seen, correct / seen


def build_parser() -> argparse.ArgumentParser:
    """The command-line options.

    Example:
        >>> build_parser().parse_args(["--epochs", "3"]).epochs
        3
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    p.add_argument("--batch-size", type=int, default=32, help="default 32")
    p.add_argument("--lr", type=float, default=1e-2, help="peak learning rate (default 1e-2)")
    p.add_argument("--train-size", type=int, default=0, help="use N training images (0: all)")
    p.add_argument("--out", default="", help="save the trained weights here (safetensors)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    p.add_argument("--quick", action="store_true", help="1 epoch on 320 images (smoke test)")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train and test the CNN; returns ``{"test_accuracy", "test_loss", "train_losses"
    (one mean per epoch), "first_loss", "steps", "seconds", "path"}``.

    Example:
        >>> main(["--quick", "--quiet"])["test_accuracy"] > 0.2  # doctest: +SKIP
        True
    """
    args = build_parser().parse_args(argv)
    if args.quick:
        args.epochs, args.train_size = 1, 320
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    ember.manual_seed(args.seed)

    train_set, test_set = Digits(train=True), Digits(train=False)
    if args.train_size:
        train_set = Subset(train_set, range(min(args.train_size, len(train_set))))
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=128)

    model = make_model()
    optimizer = ember.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = OneCycleLR(optimizer, max_lr=args.lr, total_steps=args.epochs * len(train_loader))

    train_losses: list[float] = []
    first_loss = math.nan
    steps = 0
    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        loss_sum, seen = 0.0, 0
        for x, y in train_loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            steps += 1
            first_loss = float(loss) if steps == 1 else first_loss
            loss_sum += float(loss) * y.shape[0]
            seen += y.shape[0]
        train_losses.append(loss_sum / seen)
        test_loss, test_acc = evaluate(model, test_loader)
        log(f"epoch {epoch + 1:2d}/{args.epochs}  train loss {train_losses[-1]:.4f}  "
            f"test loss {test_loss:.4f}  test accuracy {test_acc:.2%}  "
            f"({time.perf_counter() - start:.1f}s)")  # fmt: skip
    seconds = time.perf_counter() - start

    test_loss, test_acc = evaluate(model, test_loader)
    correct = round(test_acc * len(test_set))
    log(f"test accuracy {test_acc:.2%} ({correct}/{len(test_set)}) in {seconds:.1f}s")
    if args.out:
        ember.save(model.state_dict(), args.out)
        log(f"saved {args.out}")
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "train_losses": train_losses,
        "first_loss": first_loss,
        "steps": steps,
        "seconds": seconds,
        "path": args.out or None,
    }


if __name__ == "__main__":
    main()

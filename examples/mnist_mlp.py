"""An MLP on MNIST (or Fashion-MNIST) read from the standard IDX files, trained with the
Keras-level ``ember.train.Trainer``: one ``fit`` call with a progress bar, an accuracy
metric, early stopping and best-model checkpoints.

What it shows: ``ember.data.MNIST`` (gzipped or raw IDX files in a folder, or
torchvision's ``MNIST/raw`` layout; ``--download`` fetches them), ``random_split`` for a
validation set, ``Trainer(model, loss, optimizer, metrics=["accuracy"], callbacks=[...])``
with ``EarlyStopping(restore_best_weights=True)``, ``ModelCheckpoint(save_best_only=True)``
and a per-step ``CosineAnnealingLR`` through ``LRSchedulerCallback``, then
``trainer.evaluate`` on the test set and ``ember.load`` of the best checkpoint.

Run it:

    python examples/mnist_mlp.py --data-dir ~/data/mnist --download   # needs the network once
    python examples/mnist_mlp.py --data-dir ~/data/fashion --fashion --download
    python examples/mnist_mlp.py --data-dir DIR --epochs 1 --max-train 2000   # a quick look

The folder must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``).
An MLP of this size usually reaches about 98% test accuracy on MNIST; the accuracy of
this script on the real data has not been measured yet (it was written on a machine
without network access; its smoke test uses small synthetic IDX files).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import ember
from ember import nn
from ember.data import MNIST, DataLoader, FashionMNIST, Subset, random_split
from ember.optim.lr_scheduler import CosineAnnealingLR
from ember.train import EarlyStopping, LRSchedulerCallback, ModelCheckpoint, Trainer


def make_model(in_features: int = 784, hidden: int = 256, dropout: float = 0.2) -> nn.Module:
    """A three-layer perceptron for ``(N, 1, H, W)`` images: 10 logits per image.

    Example:
        >>> make_model()(ember.zeros(2, 1, 28, 28)).shape
        (2, 10)
    """
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden // 2),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden // 2, 10),
    )


def build_parser() -> argparse.ArgumentParser:
    """The command-line options.

    Example:
        >>> build_parser().parse_args(["--data-dir", "d"]).epochs
        20
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with the IDX files")
    p.add_argument("--download", action="store_true", help="fetch missing files (network)")
    p.add_argument("--fashion", action="store_true", help="Fashion-MNIST instead of MNIST")
    p.add_argument("--epochs", type=int, default=20, help="at most this many (default 20)")
    p.add_argument("--batch-size", type=int, default=128, help="default 128")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    p.add_argument("--hidden", type=int, default=256, help="first hidden width (default 256)")
    p.add_argument("--val-fraction", type=float, default=1 / 12, help="held out of train")
    p.add_argument("--patience", type=int, default=3, help="EarlyStopping patience (default 3)")
    p.add_argument("--max-train", type=int, default=0, help="use N training images (0: all)")
    p.add_argument("--checkpoint-dir", default="checkpoints/mnist_mlp", help="best weights go here")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--verbose", type=int, default=1, help="0 silent, 1 bar, 2 a line per epoch")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Train, early-stop and test the MLP; returns ``{"history" (per-epoch lists: loss,
    accuracy, val_loss, val_accuracy, lr), "epochs_run", "test_loss", "test_accuracy",
    "best_val_loss", "checkpoint", "seconds"}``.

    Example:
        >>> main(["--data-dir", "data/mnist", "--epochs", "1", "--verbose", "0"])  # doctest: +SKIP
    """
    args = build_parser().parse_args(argv)
    ember.manual_seed(args.seed)
    dataset = FashionMNIST if args.fashion else MNIST
    train_full = dataset(args.data_dir, train=True, download=args.download)
    test_set = dataset(args.data_dir, train=False, download=args.download)
    if args.max_train:
        train_full = Subset(train_full, range(min(args.max_train, len(train_full))))
    n_val = max(1, round(len(train_full) * args.val_fraction))
    train_set, val_set = random_split(train_full, [len(train_full) - n_val, n_val])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=512)
    test_loader = DataLoader(test_set, batch_size=512)

    image, _ = train_set[0]
    model = make_model(image.numel(), args.hidden)
    optimizer = ember.optim.Adam(model.parameters(), lr=args.lr)
    schedule = CosineAnnealingLR(optimizer, T_max=args.epochs * len(train_loader))
    best_path = os.path.join(args.checkpoint_dir, "best.safetensors")
    checkpoint = ModelCheckpoint(best_path, monitor="val_loss", save_best_only=True)
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        optimizer,
        metrics=["accuracy"],
        callbacks=[
            LRSchedulerCallback(schedule, interval="step"),
            EarlyStopping(monitor="val_loss", patience=args.patience, restore_best_weights=True),
            checkpoint,
        ],
        verbose=args.verbose,
    )
    start = time.perf_counter()
    history = trainer.fit(train_loader, val_loader, epochs=args.epochs)
    seconds = time.perf_counter() - start

    # the best checkpoint loads into a fresh model and scores as the restored one does
    best = make_model(image.numel(), args.hidden)
    best.load_state_dict(ember.load(best_path))
    test = Trainer(best, nn.CrossEntropyLoss(), metrics=["accuracy"], verbose=0).evaluate(
        test_loader
    )
    if args.verbose:
        print(
            f"{len(history)} epochs in {seconds:.1f}s; best val loss "
            f"{checkpoint.best_model_score:.4f}; test loss {test['loss']:.4f}, "
            f"test accuracy {test['accuracy']:.2%} ({best_path})"
        )
    return {
        "history": dict(history.history),
        "epochs_run": len(history),
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "best_val_loss": checkpoint.best_model_score,
        "checkpoint": best_path,
        "seconds": seconds,
    }


if __name__ == "__main__":
    main()

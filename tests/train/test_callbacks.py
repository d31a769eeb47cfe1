"""Callbacks: early stopping, checkpoints, LR schedules, CSV and generic logging, the
progress bar."""

from __future__ import annotations

import csv
import io
import sys

import numpy as np
import pytest

import ember
from ember import nn
from ember.train import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LoggingCallback,
    LRSchedulerCallback,
    ModelCheckpoint,
    ProgressBar,
    Trainer,
)


def blobs(n: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 2)) * 0.5 + (y[:, None] * 2 - 1) * 1.5).astype(np.float32)
    return ember.tensor(x), ember.tensor(y)


def make(callbacks=(), lr: float = 0.1, verbose: int = 0):
    ember.manual_seed(0)
    model = nn.Linear(2, 2)
    opt = ember.optim.SGD(model.parameters(), lr=lr)
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        opt,
        metrics=["accuracy"],
        callbacks=list(callbacks),
        verbose=verbose,
    )
    return trainer


def fake(key: str, values: list[float]) -> LambdaCallback:
    """Sets logs[key] at each epoch end (runs before the callbacks listed after it)."""

    def set_value(epoch, logs):
        logs[key] = values[epoch]

    return LambdaCallback(on_epoch_end=set_value)


def weights(model) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in model.parameters()]


# -- EarlyStopping ----------------------------------------------------------------------------
def test_early_stopping_stops_after_patience():
    stop = EarlyStopping(monitor="val_loss", patience=2)
    trainer = make([fake("val_loss", [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]), stop])
    x, y = blobs()
    h = trainer.fit((x, y), epochs=8, batch_size=16)
    assert len(h) == 4  # best at epoch 1, then two epochs without improvement
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1 and stop.best == 0.5


def test_early_stopping_min_delta_mode_and_baseline():
    stop = EarlyStopping(monitor="val_acc", patience=1, min_delta=0.05)
    assert make([fake("val_acc", [0.5, 0.52, 0.53, 0.9]), stop]).fit(blobs(), epochs=4) is not None
    assert stop.stopped_epoch == 1  # +0.02 is not an improvement of more than 0.05
    base = EarlyStopping(monitor="loss", patience=2, baseline=0.1)
    h = make([fake("loss", [1.0, 0.9, 0.8, 0.7, 0.6]), base]).fit(blobs(), epochs=5)
    assert len(h) == 2  # never beats the baseline: stops after patience epochs
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_early_stopping_restores_best_weights():
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(weights(trainer.model)))
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    trainer = make([fake("val_loss", [1.0, 0.5, 0.6, 0.7]), record, stop], lr=0.5)
    trainer.fit(blobs(), epochs=4, batch_size=8)
    final = weights(trainer.model)
    for a, b in zip(final, snapshots[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(final[0], snapshots[-1][0])


def test_early_stopping_warns_when_monitor_missing():
    trainer = make([EarlyStopping(monitor="val_loss")])
    with pytest.warns(RuntimeWarning, match="'val_loss', which is not in the logs.*val_data"):
        trainer.fit(blobs(), epochs=2)


# -- ModelCheckpoint --------------------------------------------------------------------------
def test_model_checkpoint_best_only_and_last(tmp_path):
    pattern = str(tmp_path / "ckpt" / "m-{epoch:02d}-{val_loss:.2f}.safetensors")
    ckpt = ModelCheckpoint(pattern, monitor="val_loss", save_best_only=True, save_last=True)
    snapshots = []
    record = LambdaCallback(on_epoch_end=lambda e, logs: snapshots.append(weights(trainer.model)))
    trainer = make([fake("val_loss", [0.9, 0.5, 0.7, 0.4]), record, ckpt], lr=0.5)
    trainer.fit(blobs(), epochs=4, batch_size=8)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == [
        "last.safetensors",
        "m-01-0.90.safetensors",
        "m-02-0.50.safetensors",
        "m-04-0.40.safetensors",
    ]
    assert ckpt.best_model_path.endswith("m-04-0.40.safetensors") and ckpt.best_model_score == 0.4
    # the files hold the weights of their epochs, loadable into a fresh model
    model = nn.Linear(2, 2)
    model.load_state_dict(ember.load(tmp_path / "ckpt" / "m-02-0.50.safetensors"))
    for a, b in zip(weights(model), snapshots[1]):
        np.testing.assert_array_equal(a, b)
    last = ember.load(tmp_path / "ckpt" / "last.safetensors")
    np.testing.assert_array_equal(last["weight"].numpy(), snapshots[-1][0])


def test_model_checkpoint_every_epoch_and_full_checkpoint(tmp_path):
    ckpt = ModelCheckpoint(
        tmp_path / "e{epoch}.safetensors", monitor="loss", save_weights_only=False
    )
    trainer = make([ckpt])
    trainer.fit(blobs(), epochs=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e1.safetensors", "e2.safetensors"]
    model = nn.Linear(2, 2)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    state = ember.io.load_checkpoint(tmp_path / "e2.safetensors", model=model, optimizer=opt)
    assert state["epoch"] == 2
    for a, b in zip(weights(model), weights(trainer.model)):
        np.testing.assert_array_equal(a, b)
    assert ckpt.best_model_path.endswith("e2.safetensors")  # loss went down


def test_model_checkpoint_unknown_key(tmp_path):
    trainer = make([ModelCheckpoint(tmp_path / "{val_loss}.safetensors")])
    with pytest.raises(KeyError, match=r"uses \{val_loss\}, which is not in the logs"):
        trainer.fit(blobs(), epochs=1)


# -- LR schedules -----------------------------------------------------------------------------
def test_lr_scheduler_per_epoch_and_per_step():
    trainer = make()
    sched = ember.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    trainer.callbacks = [LRSchedulerCallback(sched)]
    h = trainer.fit(blobs(), epochs=3, batch_size=16)
    assert h["lr"] == pytest.approx([0.1, 0.05, 0.025])
    trainer = make()
    sched = ember.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=1, gamma=0.5)
    lrs = []
    trainer.callbacks = [
        LRSchedulerCallback(sched, interval="step"),
        LambdaCallback(on_batch_end=lambda b, logs: lrs.append(logs["lr"])),
    ]
    trainer.fit(blobs(), epochs=2, batch_size=16)  # 2 steps per epoch
    assert lrs == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerCallback(sched, interval="batch")


def test_reduce_lr_on_plateau_gets_the_monitored_value():
    trainer = make()
    plateau = ember.optim.lr_scheduler.ReduceLROnPlateau(trainer.optimizer, factor=0.1, patience=1)
    trainer.callbacks = [fake("val_loss", [1.0, 1.0, 1.0, 1.0]), LRSchedulerCallback(plateau)]
    h = trainer.fit(blobs(), epochs=4)
    assert h["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.01])


# -- logging ----------------------------------------------------------------------------------
def test_csv_logger(tmp_path):
    path = tmp_path / "logs" / "train.csv"
    make([CSVLogger(path)]).fit(blobs(), epochs=2)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "accuracy", "loss", "lr"]
    assert [r[0] for r in rows[1:]] == ["1", "2"]
    assert float(rows[1][3]) == 0.1
    make([CSVLogger(path, append=True)]).fit(blobs(), epochs=1)
    rows = list(csv.reader(path.open()))
    assert len(rows) == 4 and rows[3][0] == "1"


def test_logging_callback_hook():
    seen = []
    cb = LoggingCallback(lambda step, logs: seen.append((step, logs)), every_n_steps=2)
    make([cb]).fit(blobs(32), epochs=2, batch_size=8)  # 4 steps per epoch
    step_logs = [(s, d) for s, d in seen if "step/loss" in d]
    epoch_logs = [(s, d) for s, d in seen if "epoch/loss" in d]
    assert [s for s, _ in step_logs] == [2, 4, 6, 8]
    assert all(d["step/lr"] == 0.1 for _, d in step_logs)
    assert [s for s, _ in epoch_logs] == [4, 8]
    assert set(epoch_logs[0][1]) == {"epoch/loss", "epoch/accuracy", "epoch/lr"}


# -- progress bar -----------------------------------------------------------------------------
class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_not_a_tty_prints_epoch_lines(capsys):
    make(verbose=1).fit(blobs(), (blobs(8, seed=1)), epochs=2, batch_size=8)
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("Epoch")]
    assert len(lines) == 2
    assert lines[0].startswith("Epoch 1/2 - 32 samples - ")
    assert "samples/s" in lines[0] and "loss " in lines[0] and "val_accuracy " in lines[0]
    assert "\r" not in out.err  # no live bar when not a terminal


def test_progress_bar_verbose_zero_is_silent(capsys):
    make([ProgressBar(verbose=0)], verbose=1).fit(blobs(), epochs=2)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def test_progress_bar_live_with_tqdm():
    pytest.importorskip("tqdm")
    stream = FakeTTY()
    make([ProgressBar(file=stream)]).fit(blobs(), blobs(8, seed=1), epochs=2, batch_size=8)
    text = stream.getvalue()
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert "32/32" in text and "samples/s" in text and "loss=" in text and "val_loss=" in text


def test_progress_bar_falls_back_without_tqdm(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    stream = FakeTTY()
    make([ProgressBar(file=stream)]).fit(blobs(), epochs=1, batch_size=8)
    text = stream.getvalue()
    assert "Epoch 1/1" in text and "32/32" in text and "samples/s" in text
    assert "accuracy=" in text and text.endswith("\n")


def test_exception_closes_bar_and_files(tmp_path):
    stream = FakeTTY()
    csv_cb = CSVLogger(tmp_path / "t.csv")
    bar = ProgressBar(file=stream)

    def boom(batch, logs):
        if logs["step"] == 2:
            raise RuntimeError("boom")

    trainer = make([bar, csv_cb, LambdaCallback(on_batch_end=boom)])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(blobs(), epochs=1, batch_size=8)
    assert bar._bar is None and csv_cb._file is None

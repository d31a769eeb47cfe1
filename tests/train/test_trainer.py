"""Trainer: fit / evaluate / predict with the real ember.nn and ember.optim."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from ember.data import DataLoader, TensorDataset
from ember.train import Callback, LambdaCallback, Trainer, fit


def blobs(n: int = 96, seed: int = 0):
    """Two well separated 2-d classes."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.standard_normal((n, 2)) * 0.5 + (y[:, None] * 2 - 1) * 1.5).astype(np.float32)
    return ember.tensor(x), ember.tensor(y)


def make(lr: float = 0.5, **kw):
    ember.manual_seed(0)
    model = nn.Linear(2, 2)
    opt = ember.optim.SGD(model.parameters(), lr=lr)
    return Trainer(model, nn.CrossEntropyLoss(), opt, metrics=["accuracy"], verbose=0, **kw)


def test_fit_learns_and_records_history():
    x, y = blobs()
    trainer = make()
    history = trainer.fit(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True), epochs=5)
    assert len(history) == 5 and history.epoch == [0, 1, 2, 3, 4]
    assert set(history.history) == {"loss", "accuracy", "lr"}
    assert history["loss"][-1] < history["loss"][0]
    assert history["accuracy"][-1] >= 0.95
    assert history["lr"] == [0.5] * 5
    assert trainer.global_step == 5 * 6
    assert trainer.history is history


def test_fit_loss_is_the_sample_weighted_mean():
    x, y = blobs(10)
    trainer = make(lr=0.0)  # no learning: the epoch loss equals the full-batch loss
    h = trainer.fit((x, y), epochs=1, batch_size=4, shuffle=False)  # batches of 4, 4, 2
    full = float(nn.CrossEntropyLoss()(trainer.model(x), y).item())
    assert h["loss"][0] == pytest.approx(full, rel=1e-5)


def test_validation_evaluate_predict():
    x, y = blobs()
    xv, yv = blobs(40, seed=1)
    trainer = make()
    h = trainer.fit((x, y), (xv, yv), epochs=3, batch_size=32)
    assert {"val_loss", "val_accuracy"} <= set(h.history)
    result = trainer.evaluate((xv, yv))
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(h["val_loss"][-1], rel=1e-6)
    assert result["accuracy"] == h["val_accuracy"][-1] >= 0.9
    out = trainer.predict(xv, batch_size=16)
    assert isinstance(out, ember.Tensor) and out.shape == (40, 2) and not out.requires_grad
    np.testing.assert_allclose(out.numpy(), trainer.model(xv).detach().numpy(), rtol=1e-6)
    # (x, y) batches: the target is ignored
    out2 = trainer.predict(DataLoader(TensorDataset(xv, yv), batch_size=7))
    np.testing.assert_allclose(out2.numpy(), out.numpy(), rtol=1e-6)


def test_fit_accepts_datasets_and_iterables():
    x, y = blobs(32)
    trainer = make()
    h = trainer.fit(TensorDataset(x, y), epochs=1, batch_size=8)
    assert trainer.global_step == 4 and len(h) == 1
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    trainer.fit(batches, epochs=2)
    assert trainer.global_step == 8
    trainer.fit((x, y), epochs=1, batch_size=4, steps_per_epoch=3)
    assert trainer.global_step == 11
    assert trainer.samples_per_epoch == 12


def test_dict_batches_and_extra_inputs():
    class Add(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, a, b):
            return self.lin(a + b)

    x, y = blobs(16)
    model = Add()
    trainer = Trainer(
        model, "cross_entropy", ember.optim.SGD(model.parameters(), lr=0.1), verbose=0
    )
    trainer.fit([(x, x * 0, y)], epochs=1)  # model(*inputs) with two inputs
    m2 = nn.Linear(2, 2)
    t2 = Trainer(m2, nn.CrossEntropyLoss(), ember.optim.SGD(m2.parameters(), lr=0.1), verbose=0)
    t2.fit([{"x": x, "y": y}], epochs=1)
    assert t2.evaluate([{"input": x, "target": y}])["loss"] > 0


def test_train_and_eval_modes_and_no_grad():
    modes = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            modes.append((self.training, ember.is_grad_enabled()))
            return self.lin(x)

    x, y = blobs(8)
    model = Probe()
    trainer = Trainer(
        model, nn.CrossEntropyLoss(), ember.optim.SGD(model.parameters(), lr=0.1), verbose=0
    )
    trainer.fit((x, y), (x, y), epochs=1, batch_size=8)
    assert modes == [(True, True), (False, False)]
    assert model.training  # back in training mode after validation


def test_reproducible_with_manual_seed():
    x, y = blobs()

    def run():
        trainer = make()
        return trainer.fit((x, y), epochs=2, batch_size=10)["loss"]

    assert run() == run()


def test_stop_training_from_a_batch_callback():
    x, y = blobs(40)
    trainer = make()

    def stop(batch, logs):
        if logs["step"] == 3:
            trainer.stop_training = True

    trainer.callbacks = [LambdaCallback(on_batch_end=stop)]
    h = trainer.fit((x, y), epochs=5, batch_size=4)
    assert trainer.global_step == 3 and len(h) == 1


def test_callback_hook_order_and_logs():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, logs=None):
            calls.append("train_begin")

        def on_epoch_begin(self, epoch, logs=None):
            calls.append(f"epoch_begin {epoch}")

        def on_batch_begin(self, batch, logs=None):
            calls.append(f"batch_begin {batch}")

        def on_batch_end(self, batch, logs=None):
            assert {"loss", "accuracy", "batch_loss", "batch_size", "step", "lr"} <= set(logs)
            calls.append(f"batch_end {batch}")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(f"epoch_end {epoch}")

        def on_train_end(self, logs=None):
            calls.append("train_end")

    x, y = blobs(8)
    trainer = make(callbacks=[Recorder()])
    trainer.fit((x, y), epochs=2, batch_size=4)
    assert calls == [
        "train_begin",
        "epoch_begin 0",
        "batch_begin 0",
        "batch_end 0",
        "batch_begin 1",
        "batch_end 1",
        "epoch_end 0",
        "epoch_begin 1",
        "batch_begin 0",
        "batch_end 0",
        "batch_begin 1",
        "batch_end 1",
        "epoch_end 1",
        "train_end",
    ]


def test_errors():
    x, y = blobs(8)
    model = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="needs both loss_fn and optimizer"):
        Trainer(model, nn.CrossEntropyLoss(), verbose=0).fit((x, y))
    with pytest.raises(ValueError, match="no batches"):
        make().fit([], epochs=1)
    with pytest.raises(ValueError, match="unknown loss 'nope'"):
        Trainer(model, "nope")
    with pytest.raises(ValueError, match="metric names must be unique"):
        Trainer(model, metrics=["accuracy", "acc"])
    with pytest.raises(TypeError, match="data must be a DataLoader"):
        make().fit(42)


def test_fit_function_and_device():
    x, y = blobs(32)
    ember.manual_seed(0)
    model = nn.Linear(2, 2)
    h = fit(
        model,
        (x, y),
        loss_fn=nn.CrossEntropyLoss(),
        optimizer=ember.optim.SGD(model.parameters(), lr=0.5),
        epochs=2,
        metrics=["accuracy"],
        device="cpu",
        verbose=0,
    )
    assert len(h) == 2 and h["accuracy"][-1] > 0.8

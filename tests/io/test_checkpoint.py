"""Checkpoints: resuming from one continues the exact loss trajectory, bit for bit."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ember
from ember.io import FileFormatError, load_checkpoint, save_checkpoint


class TinyModel:
    """A stand-in for nn.Module: two parameters, state_dict / load_state_dict."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.w = ember.from_numpy(rng.standard_normal((6, 2)).astype(np.float32))
        self.b = ember.zeros(2)
        self.w.requires_grad_()
        self.b.requires_grad_()

    def parameters(self) -> list:
        return [self.w, self.b]

    def __call__(self, x):
        return x @ self.w + self.b

    def state_dict(self) -> dict:
        return {"w": self.w.detach(), "b": self.b.detach()}

    def load_state_dict(self, state: dict) -> None:
        for name in ("w", "b"):
            np.copyto(getattr(self, name)._data, state[name]._data)


X = ember.from_numpy(np.random.default_rng(1).standard_normal((64, 6)).astype(np.float32))
Y = ember.from_numpy(np.random.default_rng(2).standard_normal((64, 2)).astype(np.float32))


def train(model, opt, sched, steps):
    """Random mini-batches and a random dropout mask: the RNG state matters."""
    losses = []
    for _ in range(steps):
        idx = ember.randint(0, 64, (16,))
        keep = (ember.rand(16, 6) > 0.2).to(ember.float32)
        opt.zero_grad()
        r = model(X[idx] * keep) - Y[idx]
        loss = (r * r).mean()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _setup(name="Adam"):
    model = TinyModel()
    if name == "Adam":
        opt = ember.optim.Adam(model.parameters(), lr=0.05, amsgrad=True)
        sched = ember.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
    else:
        opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
        sched = ember.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=30)
    return model, opt, sched


@pytest.mark.parametrize("name", ["Adam", "SGD"])
def test_resume_continues_exact_trajectory(name, tmp_path):
    ember.manual_seed(123)
    model, opt, sched = _setup(name)
    train(model, opt, sched, 8)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model=model, optimizer=opt, scheduler=sched, epoch=8, best=0.5)
    expected = train(model, opt, sched, 12)

    ember.manual_seed(999)  # a fresh process would start from another RNG state
    model2, opt2, sched2 = _setup(name)
    model2.w._data[...] = 0.0
    ckpt = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2)
    assert ckpt["epoch"] == 8 and ckpt["best"] == 0.5
    got = train(model2, opt2, sched2, 12)
    assert got == expected  # bit for bit
    assert model2.w.detach().numpy().tobytes() == model.w.detach().numpy().tobytes()


def test_restore_rng_can_be_disabled(tmp_path):
    ember.manual_seed(5)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, epoch=0)
    a = ember.rand(3).tolist()
    load_checkpoint(path)
    assert ember.rand(3).tolist() == a
    load_checkpoint(path, restore_rng=False)
    assert ember.rand(3).tolist() != a


def test_extra_objects_with_state(tmp_path):
    model, opt, sched = _setup()
    ema = TinyModel(seed=7)
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, model=model, ema=ema, history=[1.0, 0.5], note="x")
    fresh = TinyModel(seed=3)
    ckpt = load_checkpoint(path, ema=fresh)
    assert fresh.w.detach().numpy().tobytes() == ema.w.detach().numpy().tobytes()
    assert ckpt["history"] == [1.0, 0.5] and ckpt["note"] == "x"
    assert set(ckpt["model"]) == {"w", "b"}


def test_errors(tmp_path):
    path = tmp_path / "plain.safetensors"
    ember.save({"w": ember.ones(1)}, path)
    with pytest.raises(FileFormatError, match="not an ember checkpoint"):
        load_checkpoint(path)
    ckpt_path = tmp_path / "c.safetensors"
    save_checkpoint(ckpt_path, epoch=1)
    with pytest.raises(KeyError, match="no 'model' entry"):
        load_checkpoint(ckpt_path, model=TinyModel())
    with pytest.raises(TypeError, match="load_state_dict"):
        save_checkpoint(ckpt_path, model=TinyModel())
        load_checkpoint(ckpt_path, model=object())
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(ckpt_path, rng_state=1)


def test_failed_checkpoint_keeps_previous(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, epoch=1)
    before = path.read_bytes()
    with pytest.raises(ember.io.SerializationError):
        save_checkpoint(path, epoch=2, bad=object())
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.safetensors"]

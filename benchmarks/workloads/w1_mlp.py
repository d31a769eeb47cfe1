"""W1: MLP 784-512-512-10, ReLU, softmax cross-entropy, Adam(1e-3), batch 128.
W4 (MLP part): the same network's forward at batch 1."""

from __future__ import annotations

import numpy as np

from .common import (
    DATA_SEEDS,
    WEIGHT_SEED,
    NumpyAdam,
    classifier_step,
    inference_call,
    softmax_xent,
    uniform_fan_in,
)

SIZES = [(784, 512), (512, 512), (512, 10)]
BATCH = 128


def make_weights() -> list[tuple[np.ndarray, np.ndarray]]:
    """Canonical (in, out) weights and biases, layer by layer: W then b."""
    rng = np.random.default_rng(WEIGHT_SEED)
    return [(uniform_fan_in(rng, (i, o), i), uniform_fan_in(rng, (o,), i)) for i, o in SIZES]


def make_batch(batch: int = BATCH) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEEDS["W1"])
    x = rng.standard_normal((batch, 784), dtype=np.float32)
    y = rng.integers(0, 10, batch)
    return x, y


# -- NumPy floor ---------------------------------------------------------------------------
def numpy_step():
    weights = [(w.copy(), b.copy()) for w, b in make_weights()]
    x, y = make_batch()
    opt = NumpyAdam([a for wb in weights for a in wb])

    def step() -> float:
        acts = [x]
        h = x
        for i, (w, b) in enumerate(weights):
            h = h @ w + b
            if i < 2:
                h = np.maximum(h, 0)
            acts.append(h)
        loss, g = softmax_xent(h, y)
        grads = []
        for i in reversed(range(3)):
            w, _ = weights[i]
            if i < 2:
                g = g * (acts[i + 1] > 0)
            grads.append((acts[i].T @ g, g.sum(0)))
            if i > 0:
                g = g @ w.T
        grads.reverse()
        opt.step([a for wb in grads for a in wb])
        return loss

    return step


def numpy_infer():
    weights = make_weights()
    x = make_batch(1)[0]

    def call():
        h = x
        for i, (w, b) in enumerate(weights):
            h = h @ w + b
            if i < 2:
                h = np.maximum(h, 0)
        return h

    return call


# -- PyTorch and ember: one definition for both frameworks ----------------------------------
def make_model(m):
    """The W1 network in framework ``m`` (torch or ember), weights loaded from the canonical
    (in, out) layout."""
    nn = m.nn
    layers = []
    for i, (w, b) in enumerate(make_weights()):
        lin = nn.Linear(*w.shape)
        with m.no_grad():
            lin.weight.copy_(m.tensor(w.T.copy()))
            lin.bias.copy_(m.tensor(b))
        layers.append(lin)
        if i < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def framework_step(m, compiled: bool = False, device: str = "cpu"):
    model = make_model(m).to(device)
    x, y = (m.tensor(a).to(device) for a in make_batch())
    opt = m.optim.Adam(model.parameters(), lr=1e-3)
    return classifier_step(m, model, x, y, opt, compiled=compiled)


def framework_infer(m, compiled: bool = False):
    return inference_call(m, make_model(m), m.tensor(make_batch(1)[0]), compiled)

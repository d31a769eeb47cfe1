"""W1: MLP 784-512-512-10, ReLU, softmax cross-entropy, Adam(1e-3), batch 128.
W4 (MLP part): the same network's forward at batch 1."""

from __future__ import annotations

import numpy as np

from .common import DATA_SEEDS, WEIGHT_SEED, NumpyAdam, softmax_xent, uniform_fan_in

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


# -- PyTorch -------------------------------------------------------------------------------
def _torch_model(torch):
    layers = []
    for i, (w, b) in enumerate(make_weights()):
        lin = torch.nn.Linear(*w.shape)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w.T.copy()))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < 2:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def torch_step(torch):
    model = _torch_model(torch)
    x, y = (torch.from_numpy(a) for a in make_batch())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def torch_infer(torch):
    model = _torch_model(torch).eval()
    x = torch.from_numpy(make_batch(1)[0])

    def call():
        with torch.inference_mode():
            return model(x).numpy()

    return call


# -- ember ---------------------------------------------------------------------------------
def ember_model(ember):
    nn = ember.nn
    layers = []
    for i, (w, b) in enumerate(make_weights()):
        lin = nn.Linear(*w.shape)
        with ember.no_grad():
            lin.weight.copy_(ember.tensor(w.T.copy()))
            lin.bias.copy_(ember.tensor(b))
        layers.append(lin)
        if i < 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def ember_step(ember):
    model = ember_model(ember)
    x, y = (ember.tensor(a) for a in make_batch())
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = ember.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def ember_infer(ember):
    model = ember_model(ember).eval()
    x = ember.tensor(make_batch(1)[0])

    def call():
        with ember.no_grad():
            return model(x).numpy()

    return call

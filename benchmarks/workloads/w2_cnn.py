"""W2: CNN on (64, 1, 28, 28): conv(1->32) relu pool, conv(32->64) relu pool, fc 3136->128
relu, fc 128->10, cross-entropy, Adam(1e-3)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .common import (
    DATA_SEEDS,
    WEIGHT_SEED,
    NumpyAdam,
    classifier_step,
    softmax_xent,
    uniform_fan_in,
)

BATCH = 64


def make_weights() -> dict[str, np.ndarray]:
    """conv weights (out, in, kh, kw), linear weights (in, out); W then b, layer by layer."""
    rng = np.random.default_rng(WEIGHT_SEED)
    w = {}
    w["c1w"] = uniform_fan_in(rng, (32, 1, 3, 3), 9)
    w["c1b"] = uniform_fan_in(rng, (32,), 9)
    w["c2w"] = uniform_fan_in(rng, (64, 32, 3, 3), 288)
    w["c2b"] = uniform_fan_in(rng, (64,), 288)
    w["f1w"] = uniform_fan_in(rng, (3136, 128), 3136)
    w["f1b"] = uniform_fan_in(rng, (128,), 3136)
    w["f2w"] = uniform_fan_in(rng, (128, 10), 128)
    w["f2b"] = uniform_fan_in(rng, (10,), 128)
    return w


def make_batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEEDS["W2"])
    x = rng.standard_normal((BATCH, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, BATCH)
    return x, y


# -- NumPy floor (NHWC inside, im2col + GEMM) ----------------------------------------------
def _conv_fwd(x, wmat, b):
    """x (N,H,W,C) -> (N,H,W,O) for a 3x3 pad-1 conv; returns output and the columns."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = sliding_window_view(xp, (3, 3), axis=(1, 2))  # N,H,W,C,3,3
    cols = cols.reshape(n * h * w, c * 9)
    out = cols @ wmat + b
    return out.reshape(n, h, w, -1), cols


def _conv_bwd(g, cols, wmat, x_shape, need_dx=True):
    n, h, w, c = x_shape
    g2 = g.reshape(n * h * w, -1)
    dw = cols.T @ g2
    db = g2.sum(0)
    dx = None
    if need_dx:
        dcols = (g2 @ wmat.T).reshape(n, h, w, c, 3, 3)
        dxp = np.zeros((n, h + 2, w + 2, c), dtype=g.dtype)
        for i in range(3):
            for j in range(3):
                dxp[:, i : i + h, j : j + w, :] += dcols[..., i, j]
        dx = dxp[:, 1:-1, 1:-1, :]
    return dw, db, dx


def _pool_fwd(x):
    n, h, w, c = x.shape
    r = x.reshape(n, h // 2, 2, w // 2, 2, c)
    out = r.max(axis=(2, 4))
    return out


def _pool_bwd(g, x, out):
    n, h, w, c = x.shape
    r = x.reshape(n, h // 2, 2, w // 2, 2, c)
    mask = r == out[:, :, None, :, None, :]
    return (mask * g[:, :, None, :, None, :]).reshape(x.shape)


def numpy_step():
    wts = make_weights()
    x_nchw, y = make_batch()
    x = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))  # untimed NHWC transpose
    # columns are ordered (C, kh, kw): weight matrix (C*9, O)
    w1 = np.ascontiguousarray(wts["c1w"].reshape(32, 9).T)
    w2 = np.ascontiguousarray(wts["c2w"].reshape(64, 288).T)
    params = [
        w1,
        wts["c1b"].copy(),
        w2,
        wts["c2b"].copy(),
        wts["f1w"].copy(),
        wts["f1b"].copy(),
        wts["f2w"].copy(),
        wts["f2b"].copy(),
    ]
    opt = NumpyAdam(params)

    def step() -> float:
        w1, b1, w2, b2, f1w, f1b, f2w, f2b = params
        a1, cols1 = _conv_fwd(x, w1, b1)
        r1 = np.maximum(a1, 0)
        p1 = _pool_fwd(r1)
        a2, cols2 = _conv_fwd(p1, w2, b2)
        r2 = np.maximum(a2, 0)
        p2 = _pool_fwd(r2)
        flat = p2.transpose(0, 3, 1, 2).reshape(BATCH, -1)  # C*H*W order
        h = flat @ f1w + f1b
        hr = np.maximum(h, 0)
        logits = hr @ f2w + f2b
        loss, g = softmax_xent(logits, y)
        gf2w, gf2b = hr.T @ g, g.sum(0)
        g = (g @ f2w.T) * (h > 0)
        gf1w, gf1b = flat.T @ g, g.sum(0)
        g = (g @ f1w.T).reshape(BATCH, 64, 7, 7).transpose(0, 2, 3, 1)
        g = _pool_bwd(g, r2, p2) * (a2 > 0)
        gw2, gb2, g = _conv_bwd(g, cols2, w2, p1.shape)
        g = _pool_bwd(g, r1, p1) * (a1 > 0)
        gw1, gb1, _ = _conv_bwd(g, cols1, w1, x.shape, need_dx=False)
        opt.step([gw1, gb1, gw2, gb2, gf1w, gf1b, gf2w, gf2b])
        return loss

    return step


# -- PyTorch and ember: one definition for both frameworks ----------------------------------
def make_model(m):
    """The W2 network in framework ``m`` (torch or ember) with the canonical weights."""
    nn = m.nn
    w = make_weights()
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10),
    )  # fmt: skip
    loads = {0: ("c1w", "c1b"), 3: ("c2w", "c2b"), 7: ("f1w", "f1b"), 9: ("f2w", "f2b")}
    with m.no_grad():
        for i, (wk, bk) in loads.items():
            weight = w[wk] if w[wk].ndim == 4 else w[wk].T.copy()  # linear: (in,out) -> (out,in)
            model[i].weight.copy_(m.tensor(weight))
            model[i].bias.copy_(m.tensor(w[bk]))
    return model


def framework_step(m, compiled: bool = False, device: str = "cpu"):
    model = make_model(m).to(device)
    x, y = (m.tensor(a).to(device) for a in make_batch())
    opt = m.optim.Adam(model.parameters(), lr=1e-3)
    return classifier_step(m, model, x, y, opt, compiled=compiled)


# -- TensorFlow under tf.function (NHWC) ------------------------------------------------------
def tf_step() -> Callable[[], float]:
    """One W2 training step of TensorFlow under ``tf.function``; returns a callable that runs
    a step and gives back the loss as a Python float.

    Protocol (WORKLOADS.md): the canonical weights of :func:`make_weights` (conv
    ``(out, in, kh, kw)`` -> TF's ``(kh, kw, in, out)``, linear ``(in, out)`` as is) and the
    batch of :func:`make_batch`, transposed once to NHWC outside the timed step; inside it
    ``conv2d(SAME) + bias``, ReLU, ``max_pool2d(2)`` twice, the pooled activations transposed
    back to C·H·W order before flattening, two dense layers and the mean sparse softmax
    cross-entropy; gradients by ``GradientTape`` and Adam(lr 1e-3) with PyTorch semantics
    (ε after bias correction) through TF's fused ``ResourceApplyAdam`` kernel: its
    ``lr·sqrt(bc2)/bc1 · m / (sqrt(v) + ε')`` equals PyTorch's
    ``lr/bc1 · m / (sqrt(v)/sqrt(bc2) + ε)`` with ``ε' = ε·sqrt(bc2)``, passed each step. No
    ``jit_compile`` (TF's graph runtime with oneDNN turned on), default thread pools.
    TensorFlow is imported here, so only in the process that times it
    (``TF_CPP_MIN_LOG_LEVEL=2`` silences its start-up banner). The first loss is 2.3171.

    Example:
        >>> step = tf_step()  # doctest: +SKIP
        >>> round(step(), 4)  # doctest: +SKIP
        2.3171
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # oneDNN's convolutions, the yardstick the issue names: TensorFlow leaves them off by
    # default on this AMD host (W2 took 41-42 ms without them, 25-29 ms with them; XLA's
    # jit_compile was slower still, 52-76 ms)
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf

    w = make_weights()
    x_nchw, y_np = make_batch()
    x = tf.constant(np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1)))  # untimed NHWC
    y = tf.constant(y_np.astype(np.int64))
    loads = {k: w[k].transpose(2, 3, 1, 0) if w[k].ndim == 4 else w[k] for k in w}
    names = ["c1w", "c1b", "c2w", "c2b", "f1w", "f1b", "f2w", "f2b"]
    params = [tf.Variable(np.ascontiguousarray(loads[k]), name=k) for k in names]
    moments = [(tf.Variable(tf.zeros_like(p)), tf.Variable(tf.zeros_like(p))) for p in params]
    t = tf.Variable(0.0, dtype=tf.float64)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8

    def forward(x):
        c1w, c1b, c2w, c2b, f1w, f1b, f2w, f2b = params
        h = tf.nn.relu(tf.nn.conv2d(x, c1w, 1, "SAME") + c1b)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.relu(tf.nn.conv2d(h, c2w, 1, "SAME") + c2b)
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(tf.transpose(h, (0, 3, 1, 2)), (BATCH, -1))  # C·H·W order
        h = tf.nn.relu(h @ f1w + f1b)
        return h @ f2w + f2b

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = forward(x)
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            )
        grads = tape.gradient(loss, params)
        t.assign_add(1.0)
        b1_power = tf.pow(tf.constant(b1, tf.float64), t)
        b2_power = tf.pow(tf.constant(b2, tf.float64), t)
        scalars = [b1_power, b2_power, lr, b1, b2, eps * tf.sqrt(1.0 - b2_power)]
        scalars = [tf.cast(s, tf.float32) for s in scalars]
        for p, (m, v), g in zip(params, moments, grads):
            tf.raw_ops.ResourceApplyAdam(
                var=p.handle, m=m.handle, v=v.handle, beta1_power=scalars[0],
                beta2_power=scalars[1], lr=scalars[2], beta1=scalars[3], beta2=scalars[4],
                epsilon=scalars[5], grad=g,
            )  # fmt: skip
        return loss

    def run() -> float:
        return float(step(x, y))

    onednn = "on" if os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1" else "off"
    run.note = f"TensorFlow {tf.__version__}, oneDNN {onednn}"  # type: ignore[attr-defined]
    return run

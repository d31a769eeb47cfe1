"""Shared pieces of the workloads: seeds, initial weights, timing protocol, diagnostics."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

WEIGHT_SEED = 1234
DATA_SEEDS = {"W1": 1235, "W2": 1236, "W3": 1237}


def uniform_fan_in(rng: np.random.Generator, shape: tuple, fan_in: int) -> np.ndarray:
    """PyTorch-style U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in float64, stored float32."""
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(np.float32)


def _cpu_times() -> tuple[float, float, float]:
    """(busy, total, steal) jiffies of the whole machine from /proc/stat (zeros elsewhere)."""
    try:
        with open("/proc/stat") as f:
            parts = [float(v) for v in f.readline().split()[1:]]
    except OSError:
        return 0.0, 0.0, 0.0
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)
    steal = parts[7] if len(parts) > 7 else 0.0
    total = sum(parts)
    return total - idle, total, steal


def time_training(step: Callable[[], float], timed: int = 50) -> dict:
    """The WORKLOADS.md protocol: step 1 alone (first_call_s), steps 1-20 for the
    loss-decrease check, 10 warm-up steps, then ``timed`` steps."""
    t0 = time.perf_counter()
    losses = [step()]
    first_call = time.perf_counter() - t0
    for _ in range(19):
        losses.append(step())
    for _ in range(10):
        step()
    rec = _timed_loop(step, timed)
    rec.update(
        first_call_s=first_call,
        loss_first=losses[0],
        loss_20=losses[-1],
        loss_decreased=bool(losses[-1] < losses[0] and np.all(np.isfinite(losses))),
    )
    return rec


def time_inference(call: Callable[[], object], timed: int = 300, warmup: int = 50) -> dict:
    """1 first call, ``warmup`` warm-up calls, ``timed`` timed calls (microseconds)."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        call()
    rec = _timed_loop(call, timed, scale=1e6, unit="us")
    rec["first_call_s"] = first
    return rec


def _timed_loop(fn: Callable[[], object], n: int, scale: float = 1e3, unit: str = "ms") -> dict:
    busy0, total0, steal0 = _cpu_times()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * scale)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    busy1, total1, steal1 = _cpu_times()
    dt = max(total1 - total0, 1e-9)
    return {
        f"median_{unit}": statistics.median(times),
        f"min_{unit}": min(times),
        f"max_{unit}": max(times),
        "proc_cpu_util": cpu / max(wall, 1e-9),
        "machine_busy": (busy1 - busy0) / dt,
        "steal": (steal1 - steal0) / dt,
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


def softmax_xent(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient w.r.t. the logits (NumPy floor)."""
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    idx = np.arange(n)
    loss = float((np.log(s[:, 0]) + m[:, 0] - logits[idx, labels]).mean())
    grad = e / s
    grad[idx, labels] -= 1.0
    grad /= n
    return loss, grad


class NumpyAdam:
    """Adam / AdamW with PyTorch semantics on a list of float32 arrays, in place."""

    def __init__(
        self,
        params: list[np.ndarray],
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled: bool = False,
    ):
        self.params = params
        self.lr, (self.b1, self.b2), self.eps = lr, betas, eps
        self.wd, self.decoupled = weight_decay, decoupled
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        bc1 = 1 - self.b1**self.t
        bc2 = 1 - self.b2**self.t
        step_size = self.lr / bc1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            if self.wd and self.decoupled:
                p *= 1 - self.lr * self.wd
            elif self.wd:
                g = g + self.wd * p
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * (g * g)
            denom = np.sqrt(v) / np.sqrt(bc2)
            denom += self.eps
            p -= step_size * (m / denom)


def classifier_step(
    m, model, x, y, optimizer, flatten_logits: bool = False, compiled: bool = False
) -> Callable[[], float]:
    """One training step (forward, cross-entropy, backward, update) in framework ``m``
    (``torch`` or ``ember``: the same source runs in both). With ``compiled`` the step runs
    under ``m.compile`` (ember's graph mode): it returns the loss tensor and ``.item()`` is
    read outside the compiled function (reading it inside would be a graph break)."""
    f = m.nn.functional

    def step(x, y):
        optimizer.zero_grad()
        logits = model(x)
        if flatten_logits:
            loss = f.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        else:
            loss = f.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss

    fn = m.compile(step) if compiled else step

    def run() -> float:
        return fn(x, y).item()

    return run


def inference_call(m, model, x, compiled: bool = False) -> Callable[[], object]:
    """A no-grad forward returning a host NumPy array (the W4 protocol); with ``compiled``
    the model runs under ``m.compile``."""
    model.eval()
    fn = m.compile(model) if compiled else model

    def call():
        with m.no_grad():
            return fn(x).numpy()

    return call


def print_goals(rows: list[dict]) -> None:
    """Print goal rows ``{"goal", "ratio", "limit"[, "unit": "s"][, "spread"]}``: the measured
    value and met / MISSED (a value at or under its limit is met), then the spread if any."""
    for g in rows:
        got = f"{g['ratio']:.3f} s" if g.get("unit") else f"{g['ratio']:.2f}x"
        verdict = "met" if g["ratio"] <= g["limit"] else "MISSED"
        print(f"  {g['goal']:50s} measured {got:>9s}  {verdict}{g.get('spread', '')}")


def save_json(path: str | None, obj: object) -> None:
    """Write ``obj`` as indented JSON to ``path`` (nothing when ``path`` is None)."""
    if path:
        with open(path, "w") as f:
            json.dump(obj, f, indent=1)

"""Shared helpers for the optimizer tests: one problem, run in ember and in PyTorch."""

from __future__ import annotations

from typing import Any

import numpy as np

import ember


def problem(dtype: Any, seed: int = 0) -> list[np.ndarray]:
    """X, Y, W, b of a small regression problem (W, b are the parameters)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 5))
    y = rng.standard_normal((8, 3))
    w = rng.standard_normal((5, 3)) * 0.5
    b = rng.standard_normal(3) * 0.1
    return [a.astype(dtype) for a in (x, y, w, b)]


def loss_fn(x: Any, y: Any, w: Any, b: Any) -> Any:
    """Least squares plus a quartic term (so gradients are not linear in the params)."""
    r = x @ w + b - y
    return (r * r).mean() + 0.05 * (w**4).sum()


def leaf(m: Any, a: np.ndarray) -> Any:
    if m is ember:
        return ember.from_numpy(a.copy()).requires_grad_()
    return m.from_numpy(a.copy()).requires_grad_()


def const(m: Any, a: np.ndarray) -> Any:
    return ember.from_numpy(a.copy()) if m is ember else m.from_numpy(a.copy())


def make_optimizer(m: Any, name: str, params: list, kwargs: dict, groups: list | None) -> Any:
    """``m.optim.<name>`` over [W, b], or over groups built from ``groups`` (a list of
    per-group option dicts, W in the first group and b in the second)."""
    cls = getattr(m.optim, name)
    if groups is None:
        return cls(params, **kwargs)
    return cls([{"params": [p], **g} for p, g in zip(params, groups)], **kwargs)


def run(
    m: Any,
    name: str,
    kwargs: dict,
    arrays: list[np.ndarray],
    steps: int = 20,
    groups: list | None = None,
) -> tuple[list[float], list[list[np.ndarray]]]:
    """Train ``steps`` steps; return the losses and the parameters after each step."""
    x, y = const(m, arrays[0]), const(m, arrays[1])
    params = [leaf(m, arrays[2]), leaf(m, arrays[3])]
    opt = make_optimizer(m, name, params, kwargs, groups)
    losses, history = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(x, y, *params)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        history.append([p.detach().numpy().copy() for p in params])
    return losses, history

"""Autograd in a few lines: tensors that record what made them, ``backward()``,
``ember.autograd.grad`` (with ``create_graph=True`` for higher-order derivatives),
``no_grad``, ``detach`` and gradient accumulation, each checked against the answer worked out
by hand. Mirrors the README's "Autograd in ten lines".

Run it:

    python examples/autograd_basics.py
    python examples/autograd_basics.py --quiet    # only check (the smoke test)

Every check is an ``assert``, so the script exits with an error if one fails.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import ember


def _close(a: Any, b: Any) -> bool:
    return bool(np.allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6))


def build_parser() -> argparse.ArgumentParser:
    """The command-line options.

    Example:
        >>> build_parser().parse_args(["--quiet"]).quiet
        True
    """
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="print nothing")
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the tour; returns the computed values (NumPy arrays and floats) by name:
    ``x_grad``, ``w_grad``, ``dy_dx``, ``d2y_dx2``, ``d3y_dx3``, ``accumulated``,
    ``line_fit_loss`` (first, last) and ``checks`` (how many asserts passed).

    Example:
        >>> main(["--quiet"])["checks"]  # doctest: +SKIP
        8
    """
    args = build_parser().parse_args(argv)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    ember.manual_seed(args.seed)
    checks = 0

    # 1. The README's example: gradients of a scalar land in .grad of every leaf
    x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = ember.randn(2, 3, requires_grad=True)
    y = (x @ w).relu().sum()
    y.backward()
    log("1. y = relu(x @ w).sum():", "x.grad", x.grad.shape, "w.grad", w.grad.shape)
    # by hand: dy/dw = x.T @ mask, dy/dx = mask @ w.T, mask = (x @ w > 0)
    mask = (x.detach().numpy() @ w.detach().numpy() > 0).astype(np.float32)
    assert _close(w.grad.numpy(), x.detach().numpy().T @ mask)
    assert _close(x.grad.numpy(), mask @ w.detach().numpy().T)
    checks += 2

    # 2. Higher-order derivatives: grad(..., create_graph=True) returns differentiable grads
    t = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = ember.autograd.grad((t**3).sum(), t, create_graph=True)  # 3 t^2
    (gg,) = ember.autograd.grad(g.sum(), t, create_graph=True)  # 6 t
    (ggg,) = ember.autograd.grad(gg.sum(), t)  # 6
    log("2. d/dt t^3 =", g.tolist(), " d2 =", gg.tolist(), " d3 =", ggg.tolist())
    assert _close(g.detach().numpy(), [3.0, 12.0, 27.0])
    assert _close(gg.detach().numpy(), [6.0, 12.0, 18.0])
    assert _close(ggg.numpy(), [6.0, 6.0, 6.0])
    checks += 3

    # 3. Gradients accumulate across backward calls until zeroed; no_grad records nothing
    a = ember.tensor(2.0, requires_grad=True)
    (a * a).backward()
    (a * a).backward()  # adds another 2a
    accumulated = float(a.grad)
    with ember.no_grad():
        b = a * 3
    log(f"3. two backward passes: a.grad = {accumulated}; under no_grad: b.requires_grad =",
        b.requires_grad)  # fmt: skip
    assert accumulated == 8.0 and not b.requires_grad
    checks += 1

    # 4. detach cuts the graph: the gradient flows only through the attached path
    c = ember.tensor(3.0, requires_grad=True)
    z = c * c.detach()  # d/dc = c.detach() = 3, not 2c = 6
    z.backward()
    log("4. d/dc [c * c.detach()] =", float(c.grad))
    assert float(c.grad) == 3.0
    checks += 1

    # 5. Gradient descent by hand: fit y = 2x + 1 with a weight and a bias
    xs = ember.linspace(-1.0, 1.0, 32)
    ys = 2.0 * xs + 1.0
    wt = ember.zeros(1, requires_grad=True)
    bt = ember.zeros(1, requires_grad=True)
    losses = []
    for _ in range(100):
        loss = ((wt * xs + bt - ys) ** 2).mean()
        loss.backward()
        with ember.no_grad():  # update the leaves in place, outside the graph
            wt -= 0.3 * wt.grad
            bt -= 0.3 * bt.grad
        wt.grad = None
        bt.grad = None
        losses.append(float(loss))
    log(f"5. fit y = 2x + 1: w = {float(wt):.4f}, b = {float(bt):.4f}, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.2e}")  # fmt: skip
    assert abs(float(wt) - 2.0) < 1e-2 and abs(float(bt) - 1.0) < 1e-2
    checks += 1

    log(f"all {checks} checks passed")
    return {
        "x_grad": x.grad.numpy(),
        "w_grad": w.grad.numpy(),
        "dy_dx": g.detach().numpy(),
        "d2y_dx2": gg.detach().numpy(),
        "d3y_dx3": ggg.numpy(),
        "accumulated": accumulated,
        "line_fit_loss": (losses[0], losses[-1]),
        "checks": checks,
    }


if __name__ == "__main__":
    main()

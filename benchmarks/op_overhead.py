"""Eager per-op overhead: ember vs PyTorch (CPU) on small tensors, in one run.

Times forward alone and forward+backward for add, mul, matmul 8x8, relu and sum on 8x8
float32 tensors, and prints microseconds per call and the ratio ember / PyTorch (lower is
better; 1.0 means parity). Run: ``python benchmarks/op_overhead.py [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ember before NumPy: it sets OpenBLAS's thread timeout, read when NumPy loads OpenBLAS
import ember  # noqa: E402

# isort: split
import numpy as np  # noqa: E402

try:
    import torch
except ImportError:  # the comparison needs PyTorch; ember's own column still prints
    torch = None


def _cases(m, a, b):
    relu = (lambda x: x.relu()) if hasattr(a, "relu") else None
    return {
        "add": lambda: a + b,
        "mul": lambda: a * b,
        "matmul 8x8": lambda: a @ b,
        "relu": (lambda: relu(a)) if relu else None,
        "sum": lambda: a.sum(),
    }


def _time_pair(efn, tfn, number: int, repeat: int) -> tuple[float, float | None]:
    """Best-of-``repeat`` microseconds per call for ember and PyTorch, interleaved so that
    both see the same machine load (the minimum is the least noisy estimate of cost)."""
    e_best = t_best = float("inf")
    for _ in range(repeat):
        e_best = min(e_best, timeit.timeit(efn, number=number) / number * 1e6)
        if tfn is not None:
            t_best = min(t_best, timeit.timeit(tfn, number=number) / number * 1e6)
    return e_best, (t_best if tfn is not None else None)


def measure(repeat: int = 5, number: int = 2000) -> list[tuple[str, float, float | None]]:
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((2, 8, 8)).astype(np.float32)
    rows = []
    for mode in ("forward", "forward+backward"):
        grad = mode != "forward"
        ea = ember.tensor(xa, requires_grad=grad)
        eb = ember.tensor(xb, requires_grad=grad)
        ecases = _cases(ember, ea, eb)
        tcases = {}
        if torch is not None:
            ta = torch.tensor(xa, requires_grad=grad)
            tb = torch.tensor(xb, requires_grad=grad)
            tcases = _cases(torch, ta, tb)
        for name, efn in ecases.items():
            if efn is None:
                continue
            tfn = tcases.get(name)
            if grad:
                efn = (lambda f: lambda: f().sum().backward())(efn)
                tfn = (lambda f: lambda: f().sum().backward())(tfn) if tfn else None
            e, t = _time_pair(efn, tfn, number, repeat)
            rows.append((f"{name} ({mode})", e, t))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--number", type=int, default=2000)
    args = p.parse_args()
    if torch is not None:
        torch.set_num_threads(2)
    rows = measure(args.repeat, args.number)
    print(f"{'op':32s} {'ember us':>9s} {'torch us':>9s} {'ratio':>6s}")
    for name, e, t in rows:
        ratio = f"{e / t:6.2f}" if t else "   n/a"
        tt = f"{t:9.2f}" if t else "      n/a"
        print(f"{name:32s} {e:9.2f} {tt} {ratio}")
    ratios = [e / t for _, e, t in rows if t]
    if ratios:
        print(f"geometric mean ratio: {float(np.exp(np.mean(np.log(ratios)))):.2f}")


if __name__ == "__main__":
    main()

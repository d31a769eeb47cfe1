"""GPU check for the elementwise and activation families (run by hand on a CUDA machine:
``python tests/ops/_device_check_elementwise.py``).

Runs the rows of ``cases_elementwise.py`` and ``cases_activation.py`` with the ember side on
the GPU (``EMBER_TEST_DEVICE=cuda``), checks ``erf``/``erfc``/``erfinv`` on CuPy against
``math.erf``, and the activations at extreme inputs on the GPU. Exits 1 when a check fails.
"""

import math
import os
import sys

os.environ.setdefault("EMBER_TEST_DEVICE", "cuda")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ember  # noqa: E402
import ember.nn.functional as F  # noqa: E402
from tests.ops import cases_activation, cases_elementwise  # noqa: E402


def table_ids(finite_differences: bool = True) -> list[str]:
    ids = []
    for mod in (cases_elementwise, cases_activation):
        for c in mod.CASES:
            tests = ["test_matches_torch"] if c.torch else []
            if c.ref is not None:
                tests.append("test_forward_matches_numpy")
            if c.grad and finite_differences:
                tests.append("test_gradient_finite_differences")
            if c.grad2 and finite_differences:
                tests.append("test_second_order_finite_differences")
            ids += [f"tests/ops/test_ops.py::{t}[{c.name}]" for t in tests]
    return ids


def check_special() -> list[str]:
    import cupy

    from ember.ops import _special

    failures = []
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-6, 6, 20000), np.linspace(-27, 27, 2001), [0.0, -0.0]])
    for name, fn, ref in (
        ("erf", _special.erf, math.erf),
        ("erfc", _special.erfc, math.erfc),
    ):
        got = cupy.asnumpy(fn(cupy, cupy.asarray(x)))
        want = np.array([ref(v) for v in x])
        ok = want > 1e-300
        rel = (np.abs(got - want)[ok] / np.abs(want[ok]).clip(1e-300)).max()
        print(f"{name} on cupy: max relative error {rel:.2e}")
        if rel > 1e-14:
            failures.append(name)
    p = np.linspace(-0.999, 0.999, 2001)
    back = np.array([math.erf(v) for v in cupy.asnumpy(_special.erfinv(cupy, cupy.asarray(p)))])
    err = np.abs(back - p).max()
    print(f"erfinv on cupy: max |erf(erfinv(p)) - p| {err:.2e}")
    if err > 1e-15:
        failures.append("erfinv")
    y = cupy.asnumpy(_special.erf(cupy, cupy.asarray(np.float32([0.5, np.inf, np.nan]))))
    if not (abs(y[0] - math.erf(0.5)) < 1e-7 and y[1] == 1.0 and np.isnan(y[2])):
        failures.append("erf float32/inf/nan on cupy")
    return failures


def check_stability() -> list[str]:
    failures = []
    fns = {
        "sigmoid": ember.sigmoid,
        "logsigmoid": F.logsigmoid,
        "softplus": F.softplus,
        "silu": F.silu,
        "mish": F.mish,
        "gelu": F.gelu,
        "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"),
        "elu": F.elu,
        "tanh": ember.tanh,
        "hardswish": F.hardswish,
    }
    for dtype in (ember.float32, ember.float64):
        for name, fn in fns.items():
            x = ember.tensor([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=dtype).to("cuda")
            x.requires_grad_(True)
            y = fn(x)
            (g,) = ember.autograd.grad(y.sum(), x)
            ok = np.isfinite(y.detach().cpu().numpy()).all() and np.isfinite(g.cpu().numpy()).all()
            if not ok or y.device.type != "cuda":
                failures.append(f"{name} {dtype}")
    print(f"stability on cuda: {len(failures)} failure(s)")
    return failures


def main() -> int:
    failures = check_special() + check_stability()
    # EMBER_CHECK_FD=0 skips the finite-difference rows (forward and PyTorch gradients stay)
    fd = os.environ.get("EMBER_CHECK_FD", "1") != "0"
    rc = pytest.main(["-q", "-p", "no:cacheprovider", "--no-header", *table_ids(fd)])
    if rc != 0:
        failures.append(f"op table on cuda (pytest exit {rc})")
    print("FAILED: " + ", ".join(failures) if failures else "all device checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

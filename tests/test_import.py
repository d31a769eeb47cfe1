"""``import ember`` stays light: the op library, the compiler, the C kernels and the optional
packages load on first use, never at import (checked in a fresh process, by the modules it
holds, not by a time)."""

import json
import os
import subprocess
import sys

import ember

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOT_AT_IMPORT = [
    "cffi",
    "threadpoolctl",
    "tqdm",
    "onnx",
    "onnxruntime",
    "torch",
    "ember.graph",
    "ember.kernels",
    "ember.kernels.build",
    "ember.ops",
    "ember.nn",
    "ember.optim",
    "ember.data",
    "ember.onnx",
    "ember.io",
]


def fresh_modules(code: str) -> list[str]:
    """The names in sys.modules after ``code`` runs in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=ROOT, EMBER_KERNELS="numpy")
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_ember_loads_no_heavy_module():
    mods = fresh_modules("import ember")
    assert "ember" in mods and "numpy" in mods
    assert [m for m in NOT_AT_IMPORT if m in mods] == []


def test_first_use_loads_the_op_library_but_not_the_compiler():
    mods = fresh_modules("import ember\nx = ember.tensor([1.0, 2.0])\nassert (x * x).sum() == 5")
    assert "ember.ops" in mods
    assert [m for m in ("torch", "onnx", "ember.graph", "tqdm") if m in mods] == []


def test_lazy_names_are_the_eager_ones():
    assert callable(ember.tensor) and not isinstance(ember.tensor, type(ember))
    assert ember.Tensor is ember.ops.Tensor
    assert isinstance(ember.ones(2), ember.Tensor)
    assert ember.linalg is ember.ops.linalg
    assert ember.manual_seed is ember.random.manual_seed
    assert {"matmul", "tensor", "nn", "compile"} <= set(dir(ember))
    names: dict = {}
    exec("from ember import *", names)
    assert {"tensor", "Tensor", "matmul", "manual_seed", "no_grad", "float32"} <= set(names)
    try:
        ember.no_such_name  # noqa: B018
    except AttributeError as e:
        assert "no_such_name" in str(e)
    else:
        raise AssertionError("ember.no_such_name did not raise")

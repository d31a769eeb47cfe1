"""EMBER_KERNELS and the fallback: no compiler, a broken compiler, forced modes, lazy
compilation, ``info``/``describe``. Each case runs in a fresh Python process with its own
environment and an empty kernel cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ember import kernels, threads
from ember.kernels import build, runtime

REPO = Path(__file__).resolve().parents[2]

# calls every family of the seam; prints the results and the warnings as JSON
PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import ember
        from ember import kernels
        x = np.array([[0.0, 0.0]], np.float32)
        results = {
            "softmax": kernels.softmax_forward(x, -1),
            "softmax_again": kernels.softmax_forward(x, -1),
            "layer_norm": kernels.layer_norm_forward(x, 1),
            "gelu": kernels.gelu_forward(x),
            "adam": kernels.adam_step([x.copy()], [x], [x.copy()], [x.copy()], None, 1, lr=0.1),
        }
        info = kernels.info()
    out = {
        "results": {k: (None if v is None else (v if isinstance(v, bool) else "array"))
                    for k, v in results.items()},
        "warnings": [(w.category.__name__, str(w.message)) for w in caught
                     if "Kernel" in w.category.__name__],
        "info": info,
        "cffi_imported": "cffi" in sys.modules,
    }
    print(json.dumps(out))
    """
)


def _run(code: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    # (the wait policy and spin count this process's ember set are the child's to choose)
    mine = ("CC", "EMBER_KERNELS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    full = {k: v for k, v in os.environ.items() if k not in mine}
    full.update(EMBER_CACHE_DIR=str(tmp_path / "cache"), **env)
    return subprocess.run([sys.executable, "-c", code], env=full, cwd=REPO, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _probe(tmp_path: Path, **env: str) -> dict:
    r = _run(PROBE, tmp_path, **env)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _no_compiler_path(tmp_path: Path) -> str:
    """A PATH without any C compiler (only an empty directory)."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    return str(empty)


def test_no_compiler_falls_back_with_one_clear_message(tmp_path):
    out = _probe(tmp_path, PATH=_no_compiler_path(tmp_path))
    assert out["results"] == {"softmax": None, "softmax_again": None, "layer_norm": None,
                              "gelu": None, "adam": False}  # fmt: skip
    assert len(out["warnings"]) == 1
    category, message = out["warnings"][0]
    assert category == "KernelFallbackWarning"
    assert "no C compiler found" in message and "NumPy kernels" in message
    assert "Install a C compiler" in message and "EMBER_KERNELS=numpy" in message
    assert out["info"]["backend"] == "numpy" and "no C compiler" in out["info"]["reason"]


def test_broken_compiler_falls_back_and_keeps_its_log(tmp_path):
    fake = tmp_path / "fakecc"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = "--version" ]; then echo "fakecc 1.0"; exit 0; fi\n'
        'echo "fakecc: fatal error: cannot compile today" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    out = _probe(tmp_path, CC=str(fake))
    assert out["results"]["softmax"] is None and out["results"]["adam"] is False
    assert len(out["warnings"]) == 1
    message = out["warnings"][0][1]
    assert "compiling the 'softmax' kernels with fakecc 1.0 failed" in message
    assert "cannot compile today" in message
    log = message.split("The compiler's output is in ")[1].split(". Set")[0]
    assert Path(log).exists() and "fakecc: fatal error" in Path(log).read_text()


def test_numpy_mode_never_compiles_and_says_nothing(tmp_path):
    out = _probe(tmp_path, EMBER_KERNELS="numpy")
    assert out["results"]["softmax"] is None and out["results"]["adam"] is False
    assert out["warnings"] == []
    assert out["info"]["backend"] == "numpy" and out["info"]["reason"] == "EMBER_KERNELS=numpy"
    assert not out["cffi_imported"]
    assert not (tmp_path / "cache" / "kernels").exists()


def test_c_mode_without_compiler_is_an_error(tmp_path):
    code = "import numpy as np\nfrom ember import kernels\nkernels.softmax_forward(np.ones(2), 0)"
    r = _run(code, tmp_path, EMBER_KERNELS="c", PATH=_no_compiler_path(tmp_path))
    assert r.returncode != 0
    assert "KernelUnavailableError" in r.stderr
    assert "EMBER_KERNELS=c but the C kernels are unavailable: no C compiler found" in r.stderr


def test_auto_mode_with_a_compiler_uses_c(tmp_path):
    try:
        build.toolchain()
    except build.KernelBuildError:
        pytest.skip("no C compiler here")
    out = _probe(tmp_path)
    assert out["warnings"] == []
    assert out["results"]["softmax"] == "array" and out["results"]["adam"] is True
    assert out["info"]["backend"] == "c" and out["info"]["reason"] is None
    # one library per unit and element type, built on first use: float32 code only here
    assert set(out["info"]["loaded"]) == {"softmax.f32", "norm.f32", "activation.f32", "optim.f32"}
    assert out["info"]["wait_policy"] == "PASSIVE"
    assert out["info"]["spin_count"] == str(threads.OPENMP_SPINS)


def test_import_ember_compiles_nothing(tmp_path):
    code = (
        "import sys, ember, ember.nn, ember.optim, ember.kernels\n"
        "print('cffi' in sys.modules, 'ember.kernels.build' in sys.modules)"
    )
    r = _run(code, tmp_path)
    assert r.returncode == 0, r.stderr
    # cffi, the compiler driver and the C sources load with the first kernel call
    assert r.stdout.split() == ["False", "False"]
    assert not (tmp_path / "cache" / "kernels").exists()


def test_user_wait_policy_is_kept(tmp_path):
    code = (
        "import os, numpy as np\nfrom ember import kernels\n"
        "kernels.softmax_forward(np.ones(2, np.float32), 0)\nprint(os.environ['OMP_WAIT_POLICY'])"
    )
    r = _run(code, tmp_path, OMP_WAIT_POLICY="ACTIVE")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ACTIVE"


@pytest.mark.parametrize("env", [{"OMP_WAIT_POLICY": "PASSIVE"}, {"GOMP_SPINCOUNT": "7"}])
def test_user_spin_choice_is_kept(tmp_path, env):
    # a user who chose a wait policy or a spin count gets no spin count from ember
    code = (
        "import os, numpy as np\nfrom ember import kernels\n"
        "kernels.softmax_forward(np.ones(2, np.float32), 0)\n"
        "print(os.environ.get('GOMP_SPINCOUNT', 'unset'))"
    )
    r = _run(code, tmp_path, **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == env.get("GOMP_SPINCOUNT", "unset")


def test_invalid_mode_warns_and_means_auto(monkeypatch):
    before = runtime.mode()
    monkeypatch.setenv("EMBER_KERNELS", "fast")
    try:
        runtime.set_mode(None)
        with pytest.warns(kernels.KernelFallbackWarning, match="EMBER_KERNELS='fast'"):
            assert runtime.mode() == "auto"
    finally:
        runtime.set_mode(before)
    with pytest.raises(ValueError, match="mode must be one of"):
        runtime.set_mode("fast")


def test_describe_names_backend_and_cache(c_kernels):
    line = kernels.describe()
    assert line.startswith("C (") and str(build.cache_dir()) in line
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        assert kernels.describe().startswith("NumPy (EMBER_KERNELS=numpy), cache ")
        assert kernels.softmax_forward(__import__("numpy").ones(2), 0) is None
    finally:
        runtime.set_mode(before)


def test_prepare_builds_every_unit(c_kernels):
    from ember.kernels.source import UNITS

    assert kernels.prepare() == {name: "ok" for name in UNITS}
    before = runtime.mode()
    runtime.set_mode("numpy")
    try:
        assert set(kernels.prepare().values()) == {"EMBER_KERNELS=numpy"}
    finally:
        runtime.set_mode(before)

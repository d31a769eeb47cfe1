"""The ``ember`` command: ``demo`` and ``info``, through main() and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.cli import build_parser, collect_info, digits_cnn, main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "EMBER_PROGRESS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "ember.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ember {ember.__version__}\n")
    assert f"NumPy    {np.__version__}" in out
    assert "BLAS" in out and "CUDA" in out and "Default device:" in out
    for extra in ("cupy", "onnx", "onnxruntime", "tqdm"):
        assert f"  {extra} " in out


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ember"] == ember.__version__ and info["numpy"] == np.__version__
    assert info["devices"]["cuda_available"] == ember.cuda_is_available()
    assert info["devices"]["default_device"] == str(ember.get_default_device())
    assert set(info["extras"]) >= {"cupy", "onnx", "onnxruntime", "tqdm"}
    assert info["blas"].get("name")
    assert collect_info()["ember"] == ember.__version__


def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "w" / "digits.safetensors"
    assert main(["demo", "--quick", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test accuracy: " in text and "/360)" in text
    assert f"saved weights to {out}" in text
    model = digits_cnn()
    model.load_state_dict(ember.load(out))
    x, y = ember.data.Digits(train=False)[0]
    device = next(model.parameters()).device
    assert model(x.reshape(1, 1, 8, 8).to(device)).shape == (1, 10)


def test_demo_quick_subprocess_shows_progress(tmp_path):
    out = tmp_path / "d.safetensors"
    proc = run_cli("demo", "--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Epoch 1/2 - 384 samples" in proc.stdout and "Epoch 2/2" in proc.stdout
    assert "samples/s" in proc.stdout and "test accuracy:" in proc.stdout
    assert out.exists()


def test_help_and_usage_errors(capsys):
    proc = run_cli("--help")
    assert proc.returncode == 0 and "demo" in proc.stdout and "info" in proc.stdout
    proc = run_cli("demo", "--help")
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--epochs" in proc.stdout
    assert run_cli("--version").stdout.strip() == f"ember {ember.__version__}"
    proc = run_cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    with pytest.raises(SystemExit) as e:
        main(["demo", "--epochs", "0"])
    assert e.value.code == 2
    assert "--epochs must be positive" in capsys.readouterr().err
    assert main([]) == 2


def test_runtime_error_is_one_line_exit_1(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    # the output folder cannot be created under a file
    code = main(["demo", "--quick", "--quiet", "--out", str(blocker / "sub" / "w.safetensors")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("ember demo: error: ") and err.count("\n") == 1


def test_parser():
    args = build_parser().parse_args(["demo", "--epochs", "3", "--lr", "0.01"])
    assert (args.command, args.epochs, args.lr, args.quick) == ("demo", 3, 0.01, False)

"""``ember export``, ``ember inspect`` and ``ember convert``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ember.cli import main

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

FACTORY = """
import ember


def make_model():
    ember.manual_seed(0)
    return ember.nn.Sequential(ember.nn.Linear(16, 32), ember.nn.ReLU(), ember.nn.Linear(32, 4))


def make_pair():
    return lambda a, b: (a * b).sum(dim=1)
"""


@pytest.fixture
def factory(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(textwrap.dedent(FACTORY))
    return path


def test_export_inspect_convert(tmp_path, factory, capsys):
    out = tmp_path / "mlp.onnx"
    assert main(["export", f"{factory}:make_model", "--input-shape", "2,16", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "676 parameters" in text and "input input: float[batch, 16]" in text

    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Gemm  2" in text and "Relu  1" in text and "parameters: 676" in text
    assert "opset ai.onnx 18" in text and "float[batch, 4]" in text

    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["ops"] == {"Gemm": 2, "Relu": 1} and info["parameters"] == 676
    assert info["inputs"] == [{"name": "input", "dtype": "float", "shape": ["batch", 16]}]
    assert info["opset"] == {"ai.onnx": 18} and info["ir_version"] == 8

    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    want = ort.InferenceSession(str(out)).run(None, {"input": x})[0]
    for extra, name in (([], "plain.ort"), (["--quantize", "int8"], "q.ort")):
        target = tmp_path / name
        assert main(["convert", str(out), "--to", "ort", "-o", str(target), *extra]) == 0
        text = capsys.readouterr().out
        assert f"wrote {target}" in text and "size:" in text and "of the original" in text
        got = ort.InferenceSession(str(target)).run(None, {"input": x})[0]
        if extra:  # int8 weights and dynamically quantized activations: close, not equal
            assert got.shape == want.shape and np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert "(int8 .onnx)" in text


def test_export_of_a_function_with_two_inputs(tmp_path, factory, capsys):
    out = tmp_path / "pair.onnx"
    args = ["export", f"{factory}:make_pair", "--input-shape", "2,3", "--input-shape", "2,3"]
    assert main(args + ["--input-names", "a,b", "--fixed-batch", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "input a: float[2, 3]" in text and "input b: float[2, 3]" in text


def test_command_errors_are_one_line(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ember inspect: error:") and err.count("\n") == 1
    assert main(["export", "no_such_module_xyz:make", "--input-shape", "1,2"]) == 1
    assert "ember export: error: ModuleNotFoundError" in capsys.readouterr().err


def test_ember_command_entry_point(tmp_path, factory):
    out = tmp_path / "m.onnx"
    cmd = [sys.executable, "-m", "ember", "export", f"{factory}:make_model"]
    res = subprocess.run(
        cmd + ["--input-shape", "1,16", "-o", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    res = subprocess.run(
        [sys.executable, "-m", "ember", "inspect", str(out)], capture_output=True, text=True
    )
    assert res.returncode == 0 and "Gemm" in res.stdout

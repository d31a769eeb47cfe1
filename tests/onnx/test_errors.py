"""Error paths of export and import (clear messages, nothing written on failure), the
old-model case (the defining source deleted, loaded in a fresh process) and the optional
dependency gate."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.onnx import MissingExtraError, OnnxExportError, OnnxImportError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

from tests.onnx.models import MODELS  # noqa: E402


@pytest.fixture
def op_without_lowering():
    from ember.ops.registry import REGISTRY, defop

    @defop("test_op_without_onnx")
    def op(xp, x):
        return x * 2

    yield op
    del REGISTRY["test_op_without_onnx"]


def test_export_names_the_op_without_lowering_and_the_line(tmp_path, op_without_lowering):
    def f(x):
        return op_without_lowering(x) + 1  # the line the message must name

    path = tmp_path / "m.onnx"
    with pytest.raises(OnnxExportError) as info:
        ember.onnx.export(f, ember.ones(2, 3), path)
    msg = str(info.value)
    assert "test_op_without_onnx" in msg and "has no ONNX lowering" in msg
    assert "test_errors.py" in msg and "op_without_lowering(x) + 1" in msg
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind


def test_export_with_a_wrong_input_shape_writes_nothing(tmp_path):
    model, _ = MODELS["w1"]()
    path = tmp_path / "w1.onnx"
    with pytest.raises(ember.ShapeError) as info:
        ember.onnx.export(model, ember.ones(2, 100), path)
    assert "(2, 100)" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_bad_arguments(tmp_path):
    with pytest.raises(OnnxExportError, match="opset 40 is not supported"):
        ember.onnx.export(lambda x: x, ember.ones(2), tmp_path / "a.onnx", opset=40)
    with pytest.raises(OnnxExportError, match="example_inputs must be a tensor"):
        ember.onnx.export(lambda x: x, "not a tensor", tmp_path / "a.onnx")
    with pytest.raises(OnnxExportError, match="batch size"):  # a batch-sized arange
        ember.onnx.export(
            lambda x: x + ember.arange(x.shape[0]), ember.ones(3), tmp_path / "a.onnx"
        )
    assert list(tmp_path.iterdir()) == []


def _model_with(*op_types: str):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    nodes, prev = [], "x"
    for i, op in enumerate(op_types):
        nodes.append(helper.make_node(op, [prev], [f"t{i}"]))
        prev = f"t{i}"
    y = helper.make_tensor_value_info(prev, TensorProto.FLOAT, [2])
    graph = helper.make_graph(nodes, "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_import_lists_every_unsupported_op_at_once(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model_with("Relu", "FancyOpA", "FancyOpB", "FancyOpA"), str(path))
    with pytest.raises(OnnxImportError) as info:
        ember.onnx.load(path)
    msg = str(info.value)
    assert "FancyOpA (2 nodes)" in msg and "FancyOpB (1 node)" in msg and "Relu" not in msg


def test_import_of_a_corrupt_file(tmp_path):
    good = tmp_path / "good.onnx"
    ember.onnx.export(lambda x: x * 2, ember.ones(2, 2), good)
    data = good.read_bytes()
    for name, content in {
        "cut.onnx": data[: len(data) // 2],
        "junk.onnx": b"\xff\xfe" * 40,
    }.items():
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(OnnxImportError, match="not a readable ONNX model|holds no ONNX model"):
            ember.load(str(bad))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(OnnxImportError, match="holds no ONNX model"):
        ember.onnx.load(empty)
    with pytest.raises(FileNotFoundError):
        ember.onnx.load(tmp_path / "missing.onnx")


def test_imported_model_checks_input_shape_and_dtype(tmp_path):
    model, make = MODELS["w1"]()
    path = ember.onnx.export(model, make(2), tmp_path / "w1.onnx")
    imported = ember.onnx.load(path)
    with pytest.raises(ember.ShapeError) as info:
        imported(ember.ones(2, 100))
    assert "expects shape (batch, 784), got (2, 100)" in str(info.value)
    with pytest.raises(ember.DTypeError, match="expects dtype float32, got int64"):
        imported(ember.ones(2, 784, dtype=ember.int64))
    with pytest.raises(TypeError, match="missing input"):
        imported()


OLD_MODEL = """
import ember


class Scorer(ember.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = ember.nn.Linear(6, 4)
        self.norm = ember.nn.LayerNorm(4)

    def forward(self, x):
        return ember.tanh(self.norm(self.proj(x))).sum(dim=1)
"""


def test_old_model_loads_without_its_source_in_a_fresh_process(tmp_path):
    src = tmp_path / "old_model_src"
    src.mkdir()
    (src / "scorer_model.py").write_text(OLD_MODEL)
    sys.path.insert(0, str(src))
    try:
        import scorer_model

        model = scorer_model.Scorer()
    finally:
        sys.path.remove(str(src))
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    with ember.no_grad():
        want = model(ember.tensor(x)).numpy()
    path = ember.onnx.export(model, ember.tensor(x), tmp_path / "scorer.onnx")
    (src / "scorer_model.py").unlink()  # the defining source is gone
    del sys.modules["scorer_model"]
    np.save(tmp_path / "x.npy", x)
    code = textwrap.dedent(
        f"""
        import numpy as np, ember
        m = ember.load({str(path)!r})
        y = m(ember.tensor(np.load({str(tmp_path / "x.npy")!r})))
        y.sum().backward()  # still trainable
        assert all(p.grad is not None for p in m.parameters())
        np.save({str(tmp_path / "y.npy")!r}, y.detach().numpy())
        """
    )
    root = str(Path(__file__).resolve().parents[2])  # this checkout, installed or not
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(tmp_path), env=env)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)


def test_import_ember_does_not_import_onnx():
    code = (
        "import sys, ember, ember.onnx; ember.ones(2) * 2; "
        "assert 'onnx' not in sys.modules and 'onnxruntime' not in sys.modules, "
        "[m for m in sys.modules if m.startswith('onnx')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_extra_says_which_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if it were not installed
    with pytest.raises(MissingExtraError) as info:
        ember.onnx.to_onnx(lambda x: x, ember.ones(2))
    assert "pip install 'ember[onnx]'" in str(info.value)
    assert isinstance(info.value, ImportError)

"""W1 and W3 exported by ember run in Node.js with ONNX Runtime (the ``onnxruntime-node``
package) and match ember's own outputs.

The package is installed next to the script with
``npm install --prefix tests/onnx/js onnxruntime-node@1.30.0 --onnxruntime-node-install=skip``
(the flag skips the CUDA download; CI runs it, see .ci/run). The test is skipped, saying
why, only when ``node`` or the package is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import ember

pytest.importorskip("onnx")

from tests.onnx.models import MODELS  # noqa: E402

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")
INSTALL = (
    "npm install --prefix tests/onnx/js onnxruntime-node@1.30.0 --onnxruntime-node-install=skip"
)

pytestmark = [
    pytest.mark.skipif(NODE is None, reason="Node.js (node) is not installed"),
    pytest.mark.skipif(
        not (JS / "node_modules" / "onnxruntime-node").is_dir(),
        reason=f"onnxruntime-node is not installed; run: {INSTALL}",
    ),
]


def _run_in_node(tmp_path: Path, model_path: str, inputs: dict[str, np.ndarray]) -> dict:
    spec = []
    for name, arr in inputs.items():
        file = tmp_path / f"{name}.in.bin"
        file.write_bytes(np.ascontiguousarray(arr).tobytes())
        spec.append(
            {"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape), "file": str(file)}
        )
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    res = subprocess.run(
        [NODE, str(JS / "run_model.js"), model_path, str(tmp_path / "spec.json"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    out = {}
    for name, info in report.items():
        dtype = {"float32": np.float32, "int64": np.int64}[info["type"]]
        out[name] = np.fromfile(tmp_path / f"{name}.bin", dtype=dtype).reshape(info["dims"])
    return out


@pytest.mark.parametrize("which, batch", [("w1", 3), ("w3", 2)])
def test_nodejs_matches_ember(tmp_path, which, batch):
    model, make = MODELS[which]()
    model.eval()
    path = ember.onnx.export(model, make(4), tmp_path / f"{which}.onnx")  # batch 4 traced
    x = make(batch)  # ... and a different batch size runs in Node
    with ember.no_grad():
        want = model(x).numpy()
    got = _run_in_node(tmp_path, path, {"input" if which == "w1" else "idx": x.numpy()})
    assert list(got) == ["output"]
    np.testing.assert_allclose(got["output"], want, rtol=1e-5, atol=1e-6)

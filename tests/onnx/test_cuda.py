"""ONNX models loaded on a GPU (skipped without a usable one): an imported model's
parameters follow the default device, run there and train there."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn

pytestmark = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


def _model() -> nn.Module:
    ember.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 16),
        nn.LayerNorm(16),
        nn.GELU(),
        nn.Linear(16, 3),
        nn.Softmax(-1),
    )


def test_imported_model_follows_the_default_device_and_trains(tmp_path):
    model = _model()
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    with ember.no_grad():
        want = model(ember.tensor(x)).numpy()
    path = ember.onnx.export(model, ember.tensor(x), tmp_path / "m.onnx")
    ember.set_default_device("cuda")
    m = ember.load(path)
    assert {p.device.type for p in m.parameters()} == {"cuda"}
    y = m(ember.tensor(x))
    assert y.device.type == "cuda"
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-4, atol=1e-5)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.device.type == "cuda" for p in m.parameters())


def test_map_location_cpu_keeps_an_imported_model_on_the_host(tmp_path):
    model = _model()
    x = ember.randn(1, 1, 8, 8)
    path = ember.onnx.export(model, x, tmp_path / "m.onnx")
    ember.set_default_device("cuda")
    m = ember.load(path, map_location="cpu")
    assert {p.device.type for p in m.parameters()} == {"cpu"}
    assert m(x).device.type == "cpu"


@pytest.mark.parametrize("name", ["lstm", "w3"])
def test_a_gpu_model_with_traced_constants_exports(tmp_path, name):
    """Constants made during the trace (LSTM's zero state, the causal mask) live on the GPU
    and are copied to the host for the file."""
    ort = pytest.importorskip("onnxruntime")
    from tests.onnx.models import MODELS

    ember.set_default_device("cuda")
    model, make = MODELS[name]()
    model.eval()
    x = make(2)
    with ember.no_grad():
        want = model(x).numpy()
    path = ember.onnx.export(model, x, tmp_path / f"{name}.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[:1]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

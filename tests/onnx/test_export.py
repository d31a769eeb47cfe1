"""Export proven on W1, W2, W3, an LSTM and a ResNet block: the file passes
``onnx.checker.check_model(full_check=True)``, ONNX Runtime matches ember eager at two batch
sizes, importing the file back gives the same outputs and, after 10 fine-tuning steps, the
same losses as the original model."""

from __future__ import annotations

import numpy as np
import pytest

import ember

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from tests.onnx.models import MODELS  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    model, make = MODELS[request.param]()
    model.eval()
    path = tmp_path_factory.mktemp("onnx") / f"{request.param}.onnx"
    assert ember.onnx.export(model, make(3), path) == str(path)
    return request.param, model, make, path


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_checker_full(exported):
    _, _, _, path = exported
    onnx.checker.check_model(str(path), full_check=True)
    m = onnx.load(str(path))
    assert m.ir_version == 8 and m.opset_import[0].version == 18
    assert ember.__version__ in m.doc_string and m.producer_name == "ember"
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch"  # symbolic batch by default


def test_onnxruntime_matches_eager_at_two_batch_sizes(exported):
    _, model, make, path = exported
    sess = _session(path)
    name = sess.get_inputs()[0].name
    for batch in (2, 5):
        x = make(batch)
        with ember.no_grad():
            want = model(x).numpy()
        got = sess.run(None, {name: x.numpy()})[0]
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_parameters_are_named_initializers(exported):
    _, model, _, path = exported
    m = onnx.load(str(path))
    names = {t.name for t in m.graph.initializer}
    params = {n for n, _ in model.named_parameters()}
    assert params <= names


def test_import_matches_and_fine_tunes_alike(exported):
    _, model, make, path = exported
    imported = ember.load(str(path))  # ember.load recognises .onnx
    assert isinstance(imported, ember.onnx.OnnxModule)
    x = make(4)
    with ember.no_grad():
        np.testing.assert_allclose(imported(x).numpy(), model(x).numpy(), rtol=RTOL, atol=ATOL)
    assert sorted(n for n, _ in imported.named_parameters()) == sorted(
        n for n, _ in model.named_parameters()
    )

    def losses(net):
        ember.manual_seed(0)
        opt = ember.optim.Adam(net.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        out = []
        for step in range(10):
            y = net(make(2 + step % 2))
            target = ember.tensor(rng.standard_normal(y.shape).astype(np.float32))
            loss = ((y - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            out.append(loss.item())
        return np.array(out)

    original = losses(model)
    np.testing.assert_allclose(losses(imported), original, rtol=1e-5, atol=1e-6)
    assert original[-1] != original[0]  # the steps did train


def test_fixed_batch_export(tmp_path):
    model, make = MODELS["w1"]()
    path = ember.onnx.export(model, make(3), tmp_path / "fixed.onnx", dynamic_batch=False)
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 784]


@pytest.mark.parametrize("opset, ir", [(13, 7), (18, 8), (20, 9), (26, 13)])
def test_ir_version_follows_opset(tmp_path, opset, ir):
    f = lambda x: ember.nn.functional.gelu(x) * 2  # noqa: E731  (Gelu is an op from opset 20)
    path = ember.onnx.export(f, ember.randn(2, 3), tmp_path / "g.onnx", opset=opset)
    m = onnx.load(path)
    assert m.ir_version == ir and m.opset_import[0].version == opset
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    got = _session(path).run(None, {"x": x})[0]
    want = f(ember.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_names_and_multiple_outputs(tmp_path):
    def f(a, b):
        return a + b, (a * b).sum(dim=1)

    path = ember.onnx.export(
        f,
        (ember.randn(2, 3), ember.randn(2, 3)),
        tmp_path / "two.onnx",
        input_names=["left", "right"],
        output_names=["total", "dot"],
    )
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["left", "right"]
    assert [o.name for o in sess.get_outputs()] == ["total", "dot"]
    a, b = (np.ones((5, 3), np.float32) * k for k in (2, 3))
    total, dot = sess.run(None, {"left": a, "right": b})
    assert total.tolist() == (a + b).tolist() and dot.tolist() == [18.0] * 5


def test_external_data_for_large_models(tmp_path, monkeypatch):
    from ember.onnx import exporter as export_mod

    monkeypatch.setattr(export_mod, "EXTERNAL_DATA_THRESHOLD", 1024)  # pretend 1 kB is 2 GB
    model, make = MODELS["w1"]()
    path = ember.onnx.export(model, make(2), tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").exists()
    assert (tmp_path / "big.onnx").stat().st_size < 100_000  # weights live in the data file
    x = make(3)
    with ember.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(_session(path).run(None, {"input": x.numpy()})[0], want, rtol=RTOL)
    np.testing.assert_allclose(ember.load(path)(x).detach().numpy(), want, rtol=RTOL)


def test_imported_model_compiles(exported):
    _, model, make, path = exported
    imported = ember.onnx.load(path)
    compiled = ember.compile(imported, fullgraph=True)
    x = make(3)
    with ember.no_grad():
        np.testing.assert_allclose(compiled(x).numpy(), imported(x).numpy(), rtol=RTOL, atol=ATOL)

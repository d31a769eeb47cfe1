"""``ember.save`` / ``ember.load``: bit-exact round trips of tensors and nested structures,
atomic writes, file objects, devices, and interoperability with the safetensors format."""

from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest

import ember
from ember.io import FileFormatError, SerializationError, register_loader
from ember.io import serialization as ser

DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"]


def _special(dtype: str) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.random((3, 5)) > 0.5
    if dtype.startswith("float"):
        info = np.finfo(dtype)
        vals = [0.0, -0.0, np.inf, -np.inf, np.nan, info.tiny, info.tiny / 4, info.max, -info.max]
        a = rng.standard_normal(15).astype(dtype)
        a[: len(vals)] = vals
        return a.reshape(3, 5)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, size=15, dtype=dtype, endpoint=True)
    a[:2] = [info.min, info.max]
    return a.reshape(3, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_bit_exact(dtype, tmp_path):
    arr = _special(dtype)
    payload = np.array([0x7E01], dtype=np.uint16).view(np.float16)[0]  # a nan with a payload
    if dtype == "float16":
        arr.reshape(-1)[-1] = payload
    t = ember.from_numpy(arr)
    path = tmp_path / "t.safetensors"
    ember.save({"x": t, "scalar": ember.from_numpy(arr.reshape(-1)[:1].reshape(()))}, path)
    back = ember.load(path)
    assert back["x"].dtype == t.dtype and back["x"].shape == (3, 5)
    assert back["x"].numpy().tobytes() == arr.tobytes()
    assert back["scalar"].shape == ()
    assert back["scalar"].numpy().tobytes() == arr.reshape(-1)[:1].tobytes()


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (1,), (1, 1, 1)])
def test_zero_dim_and_empty(shape, tmp_path):
    t = ember.from_numpy(np.arange(math.prod(shape), dtype=np.float32).reshape(shape))
    path = tmp_path / "e.safetensors"
    ember.save([t, t.to(ember.int64)], path)
    a, b = ember.load(path)
    assert a.shape == shape and b.shape == shape and b.dtype == ember.int64
    np.testing.assert_array_equal(a.numpy(), t.numpy())


def test_non_contiguous(tmp_path):
    base = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    views = {
        "transposed": ember.from_numpy(base.transpose(2, 0, 1)),
        "strided": ember.from_numpy(base[:, ::2, 1::2]),
        "reversed": ember.from_numpy(base[::-1]),
        "column": ember.from_numpy(base[:, 1, :].T),
    }
    assert not views["transposed"].is_contiguous()
    path = tmp_path / "nc.safetensors"
    ember.save(views, path)
    back = ember.load(path)
    for name, t in views.items():
        assert back[name].is_contiguous()
        np.testing.assert_array_equal(back[name].numpy(), t.numpy())


def test_nested_structure(tmp_path):
    w = ember.randn(2, 3)
    obj = {
        "state": {0: {"step": ember.tensor(3.0), "exp_avg": w}, 7: {}},
        "param_groups": [
            {"lr": 0.001, "betas": (0.9, 0.999), "amsgrad": False, "foreach": None, "params": [0]}
        ],
        "floats": [1.0, -0.0, math.inf, -math.inf, 1e-300, 0.1 + 0.2],
        "ints": [0, -1, 2**70, True, False],
        "text": 'héllo \u2603 "quoted"',
        "__dunder__": 1,
        "nested": ((1, (2, [3])), {"a": {"b": None}}),
        (1, "x"): "tuple key",
        2.5: "float key",
        None: "none key",
        "dtype": ember.float16,
        "device": ember.device("cpu"),
        "np_scalar": np.float32(0.5),
    }
    path = tmp_path / "nested.safetensors"
    ember.save(obj, path)
    back = ember.load(path)
    assert list(back) == list(obj)  # key order and key types preserved
    assert back["state"][0]["exp_avg"].numpy().tobytes() == w.numpy().tobytes()
    assert back["state"][0]["step"].item() == 3.0 and back["state"][7] == {}
    assert back["param_groups"] == obj["param_groups"]
    assert isinstance(back["param_groups"][0]["betas"], tuple)
    assert back["floats"][:5] == obj["floats"][:5] and back["floats"][5] == 0.1 + 0.2
    assert math.copysign(1.0, back["floats"][1]) == -1.0
    assert back["ints"] == [0, -1, 2**70, True, False]
    assert [type(v) for v in back["ints"]] == [int, int, int, bool, bool]
    assert back["text"] == obj["text"] and back["__dunder__"] == 1
    assert back["nested"] == obj["nested"]
    assert back[(1, "x")] == "tuple key" and back[2.5] == "float key" and back[None] == "none key"
    assert back["dtype"] is ember.float16 and back["device"] == ember.device("cpu")
    assert back["np_scalar"] == 0.5


def test_nan_round_trips(tmp_path):
    path = tmp_path / "nan.safetensors"
    ember.save({"x": float("nan")}, path)
    assert math.isnan(ember.load(path)["x"])


def test_shared_tensors_and_requires_grad(tmp_path):
    w = ember.randn(3, requires_grad=True)
    path = tmp_path / "shared.safetensors"
    ember.save({"encoder": w, "decoder": w, "other": w.detach() * 1}, path)
    back = ember.load(path)
    assert back["encoder"] is back["decoder"]
    assert back["encoder"].requires_grad and not back["other"].requires_grad
    assert back["encoder"].is_leaf


def test_flat_dict_is_standard_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"layer.weight": ember.randn(4, 3), "layer.bias": ember.zeros(4, dtype=ember.int32)}
    path = tmp_path / "flat.safetensors"
    ember.save(tensors, path)
    loaded = st.load_file(str(path))
    assert set(loaded) == set(tensors)
    for k, t in tensors.items():
        np.testing.assert_array_equal(loaded[k], t.numpy())
    # and a file written by the safetensors library loads as a flat dict
    other = tmp_path / "theirs.safetensors"
    ref = {"a": np.arange(6, dtype=np.int16).reshape(2, 3), "b": np.ones(0, dtype=np.float64)}
    st.save_file(ref, str(other), metadata={"format": "np"})
    back = ember.load(other)
    assert set(back) == {"a", "b"}
    np.testing.assert_array_equal(back["a"].numpy(), ref["a"])
    assert back["b"].shape == (0,)


def test_tensor_names_in_file(tmp_path):
    path = tmp_path / "names.safetensors"
    ember.save({"model": {"fc.weight": ember.ones(1)}, "opt": [ember.ones(1)]}, path)
    with open(path, "rb") as f:
        entries, meta = ember.io.safetensors.read_header(f, os.path.getsize(path))
    assert set(entries) == {"model.fc.weight", "opt.0"}
    assert meta["ember.format"] == "1"


def test_file_objects():
    buf = io.BytesIO()
    ember.save({"x": ember.arange(5), "y": [1, 2]}, buf)
    buf.seek(0)
    back = ember.load(buf)
    assert back["x"].tolist() == [0, 1, 2, 3, 4] and back["y"] == [1, 2]

    class Stream(io.RawIOBase):  # not seekable
        def __init__(self, data):
            self.data = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self.data.readinto(b)

    assert ember.load(Stream(buf.getvalue()))["y"] == [1, 2]
    with pytest.raises(TypeError, match="a path or a binary file"):
        ember.save({}, 42)


def test_pathlike_and_str(tmp_path):
    ember.save({"a": 1}, str(tmp_path / "s.safetensors"))
    assert ember.load(tmp_path / "s.safetensors") == {"a": 1}


def test_map_location(tmp_path):
    path = tmp_path / "m.safetensors"
    ember.save({"x": ember.ones(2)}, path)
    for loc in ["cpu", ember.device("cpu"), {"cpu": "cpu"}, lambda saved: "cpu"]:
        assert ember.load(path, map_location=loc)["x"].device == ember.device("cpu")


def test_saved_gpu_device_needs_map_location(tmp_path, monkeypatch):
    """A file that records a CUDA tensor loads on a CPU-only machine with map_location."""
    path = tmp_path / "g.safetensors"
    ember.save({"x": ember.ones(2)}, path)
    data = path.read_bytes()
    old = b'{\\"name\\":\\"x\\"}'
    new = b'{\\"name\\":\\"x\\",\\"device\\":\\"cuda:0\\"}'
    assert old in data
    n = int.from_bytes(data[:8], "little")
    header = data[8 : 8 + n].rstrip(b" ").replace(old, new)
    header += b" " * (-len(header) % 8)
    patched = len(header).to_bytes(8, "little") + header + data[8 + n :]
    path.write_bytes(patched)
    if not ember.cuda_is_available():
        with pytest.raises(RuntimeError, match="map_location='cpu'"):
            ember.load(path)
    assert ember.load(path, map_location="cpu")["x"].tolist() == [1.0, 1.0]
    assert ember.load(path, map_location={"cuda:0": "cpu"})["x"].device.type == "cpu"


def test_lazy_top_level_names():
    assert ember.save is ember.io.save and ember.load is ember.io.load


# -- failed saves leave nothing behind ------------------------------------------------------
class Opaque:
    pass


@pytest.mark.parametrize(
    "bad,where",
    [
        ({"a": {"b": [1, Opaque()]}}, "'a.b.1'"),
        ({"f": lambda: 0}, "'f'"),
        ({"s": {1, 2}}, "'s'"),
        ({"arr": np.zeros(2)}, "'arr'"),
        ({frozenset(): 1}, "dict key"),
        ({"c": 1j}, "'c'"),
    ],
)
def test_unserialisable_object_leaves_no_file(bad, where, tmp_path):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(SerializationError, match=where):
        ember.save(bad, path)
    assert os.listdir(tmp_path) == []
    # an existing file is left untouched
    ember.save({"ok": ember.ones(1)}, path)
    before = path.read_bytes()
    with pytest.raises(SerializationError):
        ember.save(bad, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["bad.safetensors"]


def test_failure_while_writing_leaves_no_file(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    ember.save({"old": 1}, path)
    before = path.read_bytes()
    calls = []

    def exploding(t):
        calls.append(t)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return t._data

    monkeypatch.setattr(ser, "_host_array", exploding)
    with pytest.raises(OSError, match="No space left"):
        ember.save({"a": ember.ones(1000), "b": ember.ones(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_unwritable_destination(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot create a file"):
        ember.save({"a": 1}, tmp_path / "missing-dir" / "x.safetensors")
    assert os.listdir(tmp_path) == []
    with pytest.raises(IsADirectoryError):
        ember.save({"a": 1}, tmp_path)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError):
            ember.save({"a": 1}, locked / "x.safetensors")
        assert os.listdir(locked) == []


def test_deeply_nested_is_a_clear_error(tmp_path):
    obj: list = []
    for _ in range(100000):
        obj = [obj]
    with pytest.raises(SerializationError, match="nested too deeply"):
        ember.save(obj, tmp_path / "deep.safetensors")
    assert os.listdir(tmp_path) == []


# -- loader dispatch --------------------------------------------------------------------------
def test_onnx_suffix_dispatch(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x08\x07")
    onnx = getattr(ember, "onnx", None) if _has_onnx_package() else None
    if onnx is None or not hasattr(onnx, "load"):
        with pytest.raises(NotImplementedError, match="ONNX"):
            ember.load(path)


def _has_onnx_package() -> bool:
    import importlib.util

    return importlib.util.find_spec("ember.onnx") is not None


def test_register_loader(tmp_path):
    path = tmp_path / "x.custom"
    path.write_text("hello")
    register_loader(".custom", lambda p, **kw: (open(p).read(), kw))
    try:
        assert ember.load(path, map_location="cpu") == ("hello", {"map_location": "cpu"})
    finally:
        ser._LOADERS.pop(".custom")
    with pytest.raises(ValueError, match="must start with"):
        register_loader("onnx", print)


def test_foreign_formats_are_recognised(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, path)
    with pytest.raises(FileFormatError, match="torch.save"):
        ember.load(path)
    pickled = tmp_path / "obj.pkl"
    import pickle

    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(FileFormatError, match="pickle"):
        ember.load(pickled)
    onnx_like = tmp_path / "model.bin"
    onnx_like.write_bytes(b"\x08\x07\x12\x04test" + bytes(20))
    with pytest.raises(FileFormatError, match="ONNX"):
        ember.load(onnx_like)

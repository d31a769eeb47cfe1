"""Truncated and tampered files give clear ``FileFormatError``s (never a crash, a bare
NumPy/JSON error, or silently wrong data)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import ember
from ember.io import FileFormatError
from ember.io.safetensors import read_header, write


def _good_file(tmp_path):
    path = tmp_path / "good.safetensors"
    ember.save({"a": ember.arange(6, dtype=ember.float32), "b": [ember.ones(2, 2), 3]}, path)
    return path, path.read_bytes()


def _split(data: bytes) -> tuple[dict, bytes]:
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def _join(header: dict | str | bytes, body: bytes, pad: bool = True) -> bytes:
    if isinstance(header, dict):
        header = json.dumps(header)
    if isinstance(header, str):
        header = header.encode()
    if pad:
        header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + body


def _load_bytes(tmp_path, data: bytes, name="t.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return ember.load(path)


def test_good_file_loads(tmp_path):
    path, data = _good_file(tmp_path)
    back = _load_bytes(tmp_path, data)
    assert back["a"].tolist() == [0, 1, 2, 3, 4, 5] and back["b"][1] == 3


@pytest.mark.parametrize("cut", [0, 3, 7, 8, 20, -40, -1])
def test_truncated(cut, tmp_path):
    _, data = _good_file(tmp_path)
    with pytest.raises(FileFormatError, match="truncated"):
        _load_bytes(tmp_path, data[:cut])


def test_every_truncation_is_caught(tmp_path):
    _, data = _good_file(tmp_path)
    for cut in range(0, len(data), 7):
        with pytest.raises(FileFormatError):
            _load_bytes(tmp_path, data[:cut])


def test_trailing_bytes(tmp_path):
    _, data = _good_file(tmp_path)
    with pytest.raises(FileFormatError, match="unexpected bytes after"):
        _load_bytes(tmp_path, data + b"\x00" * 4)


def _tamper(tmp_path, edit):
    _, data = _good_file(tmp_path)
    header, body = _split(data)
    edit(header)
    return _load_bytes(tmp_path, _join(header, body))


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda h: h["a"].update(dtype="BF16"), "BF16 is not supported"),
        (lambda h: h["a"].update(dtype="F33"), "unknown dtype 'F33'"),
        (lambda h: h["a"].update(shape=[7]), "needs 28 bytes but its data_offsets span 24"),
        (lambda h: h["a"].update(shape=[-6]), "invalid shape"),
        (lambda h: h["a"].update(shape="6"), "invalid shape"),
        (lambda h: h["a"].update(shape=[True] * 6), "invalid shape"),
        (lambda h: h["a"].update(data_offsets=[0]), "invalid data_offsets"),
        (lambda h: h["a"].update(data_offsets=[8, 4]), "invalid data_offsets"),
        (lambda h: h["a"].update(data_offsets=[1.5, 25.5]), "invalid data_offsets"),
        (lambda h: h["a"].update(extra=1), "exactly 'dtype', 'shape' and 'data_offsets'"),
        (lambda h: h.update(c=[1, 2]), "exactly 'dtype', 'shape' and 'data_offsets'"),
        (lambda h: h["__metadata__"].update(x=1), "__metadata__ must be an object"),
        (lambda h: h.update(__metadata__=[1]), "__metadata__ must be an object"),
        (
            lambda h: h["b.0"].update(data_offsets=[h["a"]["data_offsets"][0], 16]),
            "overlaps",
        ),
    ],
)
def test_tampered_header(edit, message, tmp_path):
    with pytest.raises(FileFormatError, match=message):
        _tamper(tmp_path, edit)


def test_offsets_past_the_end(tmp_path):
    def edit(h):
        last = max(h[k]["data_offsets"][1] for k in h if k != "__metadata__")
        for k in h:
            if k != "__metadata__" and h[k]["data_offsets"][1] == last:
                h[k]["data_offsets"] = [h[k]["data_offsets"][0] + 4, last + 4]

    with pytest.raises(FileFormatError, match="gap|truncated"):
        _tamper(tmp_path, edit)


def test_header_length_lies(tmp_path):
    _, data = _good_file(tmp_path)
    with pytest.raises(FileFormatError, match="only .* bytes follow"):
        _load_bytes(tmp_path, struct.pack("<Q", len(data)) + data[8:])
    with pytest.raises(FileFormatError, match="limit"):
        _load_bytes(tmp_path, struct.pack("<Q", 2**62) + data[8:])


@pytest.mark.parametrize(
    "header,message",
    [
        (b'{"a": {"dtype": "F32"', "not well-formed JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key"),
        (b'{"__metadata__": {"x": NaN}}', "not well-formed JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"   ", "not a JSON object"),
    ],
)
def test_bad_json(header, message, tmp_path):
    with pytest.raises(FileFormatError, match=message):
        _load_bytes(tmp_path, _join(header, b""))


def _tamper_structure(tmp_path, new_structure: str):
    _, data = _good_file(tmp_path)
    header, body = _split(data)
    header["__metadata__"]["ember.structure"] = new_structure
    return _load_bytes(tmp_path, _join(header, body))


@pytest.mark.parametrize(
    "structure,message",
    [
        ('{"a": {"__tensor__": {"name": "a"}', "not well-formed JSON"),
        (
            '{"a": {"__tensor__": {"name": "zz"}}, "b": {"__tensor__": {"name": "b.0"}}}',
            "does not contain",
        ),
        ('{"a": {"__tensor__": {"name": "a"}}}', "does not use"),
        ('{"a": {"__pickle__": "cos\\nsystem"}}', "unknown or malformed tag"),
        ('{"a": {"__tensor__": {"name": "a"}, "x": 1}}', "unknown or malformed tag"),
        ('{"a": {"__tensor__": {"name": "a", "code": "rm"}}}', "bad __tensor__"),
        ('{"a": {"__float__": "1e999"}}', "bad __float__"),
        ('{"a": {"__dict__": [[1]]}}', "key, value"),
        ('{"a": {"__dict__": [[[1], 2]]}}', "unhashable"),
        ('{"a": {"__dtype__": "complex64"}}', "unknown dtype"),
        ('{"a": {"__device__": "tpu"}}', "unknown device"),
        ('{"a": {"__tuple__": 5}}', "__tuple__ must hold a list"),
    ],
)
def test_tampered_structure(structure, message, tmp_path):
    with pytest.raises(FileFormatError, match=message):
        _tamper_structure(tmp_path, structure)


def test_bad_bool_bytes(tmp_path):
    path = tmp_path / "bool.safetensors"
    ember.save({"m": ember.from_numpy(np.array([True, False, True]))}, path)
    data = bytearray(path.read_bytes())
    data[-2] = 7
    with pytest.raises(FileFormatError, match="BOOL data"):
        _load_bytes(tmp_path, bytes(data))


def test_future_format_version(tmp_path):
    _, data = _good_file(tmp_path)
    header, body = _split(data)
    header["__metadata__"]["ember.format"] = "99"
    with pytest.raises(FileFormatError, match="format version '99'"):
        _load_bytes(tmp_path, _join(header, body))


def test_error_names_the_file(tmp_path):
    with pytest.raises(FileFormatError) as info:
        _load_bytes(tmp_path, b"short", name="named.safetensors")
    assert "named.safetensors" in str(info.value)
    assert isinstance(info.value, ember.EmberError) and isinstance(info.value, ValueError)


def test_writer_layout():
    import io

    buf = io.BytesIO()
    write(buf, {"x": np.arange(3, dtype=np.int64), "y": np.ones((2, 2), np.float16)}, {"k": "v"})
    data = buf.getvalue()
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0  # the data section starts 8-byte aligned
    header = json.loads(data[8 : 8 + n])
    assert header["x"] == {"dtype": "I64", "shape": [3], "data_offsets": [0, 24]}
    assert header["y"] == {"dtype": "F16", "shape": [2, 2], "data_offsets": [24, 32]}
    assert header["__metadata__"] == {"k": "v"}
    assert data[8 + n :][:24] == np.arange(3, dtype="<i8").tobytes()
    entries, meta = read_header(io.BytesIO(data), len(data))
    assert list(entries) == ["x", "y"] and meta == {"k": "v"}
    with pytest.raises(TypeError, match="cannot be stored"):
        write(io.BytesIO(), {"c": np.zeros(2, np.complex64)})
    with pytest.raises(ValueError, match="reserved"):
        write(io.BytesIO(), {"__metadata__": np.zeros(2)})

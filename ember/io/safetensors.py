"""The safetensors file format, read and written without any third-party code.

Layout: an 8-byte little-endian header length ``N``; ``N`` bytes of UTF-8 JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
data section) plus an optional ``"__metadata__"`` object of string to string; then the raw
little-endian bytes of every tensor, C-contiguous, back to back with no holes.

Reading validates everything before touching the data (header length against the file
size, well-formed JSON without duplicate keys, known dtype names, shapes, offsets in range,
non-overlapping and covering the data exactly, ``shape * itemsize == end - begin``) and
raises :class:`FileFormatError` naming the file and the problem. Nothing is ever executed.

Example:
    >>> import io, numpy as np
    >>> buf = io.BytesIO()
    >>> write(buf, {"w": np.arange(3, dtype=np.float32)}, {"note": "hi"})
    >>> header, metadata = read_header(io.BytesIO(buf.getvalue()), len(buf.getvalue()))
    >>> header["w"].shape, metadata
    ((3,), {'note': 'hi'})
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from ..errors import EmberError

__all__ = [
    "FileFormatError",
    "TensorEntry",
    "DTYPES",
    "write",
    "read_header",
    "read_tensors",
    "MAX_HEADER_BYTES",
]

DTYPES: dict[str, np.dtype] = {
    "F16": np.dtype("<f2"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "I16": np.dtype("<i2"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
    "BOOL": np.dtype("?"),
}
_NAMES: dict[np.dtype, str] = {d.newbyteorder("="): k for k, d in DTYPES.items()}
_KNOWN_ELSEWHERE = ("BF16", "F8_E4M3", "F8_E5M2", "U16", "U32", "U64", "C64")

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the limit the reference implementation uses
_MAX_DIMS = 64


class FileFormatError(EmberError, ValueError):
    """A file that is not a valid ember/safetensors file: truncated, tampered with, or of
    another format. The message names the file and what is wrong.

    Example:
        >>> issubclass(FileFormatError, ember.EmberError)
        True
    """


@dataclass(frozen=True)
class TensorEntry:
    """One tensor's header entry: its name, NumPy dtype, shape and byte range."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def dtype_name(dtype: np.dtype) -> str:
    """The safetensors name of a NumPy dtype (``float32`` -> ``"F32"``).

    Example:
        >>> dtype_name(np.dtype("int64"))
        'I64'
    """
    name = _NAMES.get(np.dtype(dtype).newbyteorder("="))
    if name is None:
        raise TypeError(f"dtype {dtype} cannot be stored in a safetensors file")
    return name


def write(
    f: BinaryIO,
    tensors: dict[str, Any],
    metadata: dict[str, str] | None = None,
    to_numpy: Callable[[Any], np.ndarray] = np.asarray,
) -> None:
    """Write ``tensors`` (name -> array-like) and ``metadata`` to the binary file ``f``.

    ``to_numpy`` turns each value into a NumPy array; it is called once per tensor while
    writing, so GPU tensors are copied to the host one at a time.

    Example:
        >>> import io
        >>> buf = io.BytesIO(); write(buf, {"x": np.zeros((2, 2))})
        >>> len(buf.getvalue()) > 32
        True
    """
    header: dict[str, Any] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("safetensors metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, value in tensors.items():
        if name == "__metadata__":
            raise ValueError("'__metadata__' is reserved and cannot name a tensor")
        shape = tuple(int(s) for s in value.shape)
        dt = np.dtype(getattr(value.dtype, "np", value.dtype))  # ember DTypes carry .np
        nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        header[name] = {
            "dtype": dtype_name(dt),
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so that the data section starts 8-byte aligned
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for value in tensors.values():
        arr = np.ascontiguousarray(to_numpy(value))
        if arr.size == 0:
            continue
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        f.write(arr.reshape(-1).view(np.uint8).data)


def _fail(source: str, detail: str) -> FileFormatError:
    return FileFormatError(f"{source}: {detail}")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_json(text: str | bytes, source: str, what: str) -> Any:
    """Strict JSON parsing (no NaN/Infinity, no duplicate keys) with a clear error."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise _fail(source, f"{what} is not well-formed JSON ({e})") from None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def read_header(
    f: BinaryIO, size: int, source: str = "<stream>"
) -> tuple[dict[str, TensorEntry], dict[str, str] | None]:
    """Read and validate the header of a safetensors file of ``size`` bytes whose start is
    ``f``'s current position. Returns the entries (in data order) and the metadata.

    Example:
        >>> import io
        >>> read_header(io.BytesIO(b"\\x02"), 1)
        Traceback (most recent call last):
        ...
        ember.io.safetensors.FileFormatError: <stream>: truncated file: 1 bytes, too short for the 8-byte header length
    """
    raw = f.read(8)
    if len(raw) < 8 or size < 8:
        raise _fail(source, f"truncated file: {size} bytes, too short for the 8-byte header length")
    (n,) = struct.unpack("<Q", raw)
    if n > MAX_HEADER_BYTES:
        raise _fail(
            source,
            f"header length {n} is larger than the {MAX_HEADER_BYTES}-byte limit: not a "
            "safetensors file, or a corrupted one",
        )
    if 8 + n > size:
        raise _fail(
            source,
            f"truncated file: the header says it is {n} bytes long but only {size - 8} bytes "
            "follow the length field",
        )
    text = f.read(n)
    if len(text) < n:
        raise _fail(source, f"truncated file: expected {n} header bytes, read {len(text)}")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(source, f"the header is not valid UTF-8 ({e})") from None
    if not decoded.lstrip().startswith("{"):
        raise _fail(source, "the header is not a JSON object: not a safetensors file")
    header = parse_json(decoded, source, "the header")
    if not isinstance(header, dict):
        raise _fail(source, "the header is not a JSON object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise _fail(source, "__metadata__ must be an object mapping strings to strings")
    data_len = size - 8 - n
    entries = [_entry(source, name, info) for name, info in header.items()]
    entries.sort(key=lambda e: (e.begin, e.end))
    pos = 0
    for e in entries:
        if e.begin != pos:
            what = "overlaps the previous tensor" if e.begin < pos else "leaves a gap before it"
            raise _fail(
                source,
                f"tensor {e.name!r} starts at byte {e.begin}, which {what} (expected {pos}): "
                "the file was tampered with or is corrupted",
            )
        pos = e.end
    if pos > data_len:
        raise _fail(
            source,
            f"truncated file: the tensors need {pos} data bytes but only {data_len} are present",
        )
    if pos < data_len:
        raise _fail(
            source,
            f"{data_len - pos} unexpected bytes after the last tensor's data: the file was "
            "tampered with or is corrupted",
        )
    return {e.name: e for e in entries}, metadata


def _entry(source: str, name: str, info: Any) -> TensorEntry:
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise _fail(
            source,
            f"tensor {name!r}: its header entry must have exactly 'dtype', 'shape' and "
            "'data_offsets'",
        )
    dname = info["dtype"]
    if dname not in DTYPES:
        if dname in _KNOWN_ELSEWHERE:
            detail = f"dtype {dname} is not supported by ember"
        else:
            detail = f"unknown dtype {dname!r}"
        raise _fail(source, f"tensor {name!r}: {detail} (supported: {' '.join(DTYPES)})")
    shape = info["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(_is_int(s) and s >= 0 for s in shape)
    ):
        raise _fail(source, f"tensor {name!r}: invalid shape {shape!r}")
    offsets = info["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise _fail(source, f"tensor {name!r}: invalid data_offsets {offsets!r}")
    dtype = DTYPES[dname]
    count = 1
    for s in shape:
        count *= s
    if count * dtype.itemsize != offsets[1] - offsets[0]:
        raise _fail(
            source,
            f"tensor {name!r}: shape {tuple(shape)} of {dname} needs {count * dtype.itemsize} "
            f"bytes but its data_offsets span {offsets[1] - offsets[0]}",
        )
    return TensorEntry(name, dtype, tuple(shape), offsets[0], offsets[1])


def read_tensors(
    f: BinaryIO,
    entries: Iterable[TensorEntry],
    data_start: int,
    source: str = "<stream>",
) -> dict[str, np.ndarray]:
    """Read the validated ``entries`` (from :func:`read_header`) into fresh NumPy arrays.

    Example:
        >>> import io
        >>> buf = io.BytesIO(); write(buf, {"x": np.arange(4, dtype=np.int16)})
        >>> f = io.BytesIO(buf.getvalue()); entries, _ = read_header(f, len(buf.getvalue()))
        >>> read_tensors(f, entries.values(), f.tell())["x"].tolist()
        [0, 1, 2, 3]
    """
    out: dict[str, np.ndarray] = {}
    for e in entries:
        arr = np.empty(e.shape, dtype=e.dtype.newbyteorder("="))
        if arr.size:
            f.seek(data_start + e.begin)
            view = memoryview(arr.reshape(-1).view(np.uint8))
            got = 0
            while got < len(view):
                n = f.readinto(view[got:])
                if not n:
                    raise _fail(
                        source,
                        f"truncated file: tensor {e.name!r} ended after {got} of {len(view)} bytes",
                    )
                got += n
            if sys.byteorder == "big" and e.dtype.itemsize > 1:
                arr = arr.byteswap()
            if arr.dtype == np.bool_ and int(arr.view(np.uint8).max()) > 1:
                raise _fail(source, f"tensor {e.name!r}: BOOL data holds bytes other than 0 and 1")
        out[e.name] = arr
    return out

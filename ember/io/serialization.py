"""``ember.save`` / ``ember.load``: state dicts and other nested data in one safetensors file,
with no pickle.

Tensors go into the safetensors body (named by their path in the object, e.g.
``"layer.weight"`` or ``"state.0.exp_avg"``, so a flat ``{name: tensor}`` dict is a standard
safetensors file that other tools read). Everything else (dicts with their key types and
order, lists, tuples, numbers including inf/nan, strings, bools, None, dtypes, devices) is
JSON stored in the header's ``__metadata__`` under ``"ember.structure"``. Loading therefore
never runs code; a file without that entry (written by another tool) loads as a flat
``{name: tensor}`` dict.

Saving to a path is atomic: the file is written under a temporary name in the same folder,
flushed and fsync'ed, then renamed over the target, so a failed save (an unsupported object,
a full disk, an interrupted process) leaves any previous file intact and no partial file.

``load`` dispatches on the file's suffix (see :func:`register_loader`; ``.onnx`` goes to
``ember.onnx.load``) and recognises foreign formats (PyTorch zip/pickle, ONNX) by their
first bytes, with a clear error.

Example:
    >>> import ember, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "state.safetensors")
    >>> ember.save({"w": ember.ones(2), "step": 3, "betas": (0.9, 0.999)}, path)
    >>> ember.load(path)
    {'w': tensor([1., 1.]), 'step': 3, 'betas': (0.9, 0.999)}
"""

from __future__ import annotations

import importlib
import io
import json
import math
import os
import secrets
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from .. import dtypes
from ..device import CPU, Device, device, transfer
from ..errors import EmberError
from ..tensor import Tensor
from .safetensors import FileFormatError, parse_json, read_header, read_tensors, write

__all__ = ["save", "load", "register_loader", "SerializationError", "FORMAT_VERSION"]

FORMAT_VERSION = "1"
_STRUCTURE_KEY = "ember.structure"
_VERSION_KEY = "ember.format"
_TAGS = ("__tensor__", "__tuple__", "__dict__", "__float__", "__dtype__", "__device__")


class SerializationError(EmberError, TypeError):
    """``ember.save`` was given something it cannot store; the message says what and where.

    Example:
        >>> issubclass(SerializationError, TypeError)
        True
    """


# -- encoding ---------------------------------------------------------------------------------
class _Encoder:
    """Turns an object into JSON-able data plus a ``{name: Tensor}`` table."""

    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}
        self._names: dict[int, str] = {}

    def _name_for(self, t: Tensor, path: str) -> str:
        name = self._names.get(id(t))
        if name is not None:  # the same tensor object twice (tied weights): stored once
            return name
        base = path or "tensor"
        name, i = base, 1
        while name in self.tensors or name == "__metadata__":
            i += 1
            name = f"{base}#{i}"
        self._names[id(t)] = name
        self.tensors[name] = t
        return name

    def encode(self, obj: Any, path: str) -> Any:
        if obj is None or isinstance(obj, bool | str):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"__float__": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, Tensor):
            info: dict[str, Any] = {"name": self._name_for(obj, path)}
            if obj.device is not CPU:
                info["device"] = str(obj.device)
            if obj.requires_grad:
                info["requires_grad"] = True
            return {"__tensor__": info}
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.encode(v, _join(path, k)) for k, v in obj.items()}
            return {
                "__dict__": [
                    [self.encode_key(k, path), self.encode(v, _join(path, str(k)))]
                    for k, v in obj.items()
                ]
            }
        if isinstance(obj, list):
            return [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return self.encode(obj.item(), path)
        if isinstance(obj, dtypes.DType):
            return {"__dtype__": obj.name}
        if isinstance(obj, Device):
            return {"__device__": str(obj)}
        where = f" at {path!r}" if path else ""
        raise SerializationError(
            f"ember.save: cannot store an object of type {type(obj).__module__}."
            f"{type(obj).__qualname__}{where}: supported are tensors, dicts, lists, tuples, "
            "str, int, float, bool, None, dtypes and devices (no pickling)"
        )

    def encode_key(self, key: Any, path: str) -> Any:
        if key is None or isinstance(key, bool | int | float | str):
            return self.encode(key, path)
        if isinstance(key, tuple):
            return {"__tuple__": [self.encode_key(k, path) for k in key]}
        raise SerializationError(
            f"ember.save: cannot store a dict key of type {type(key).__qualname__}"
            f"{f' at {path!r}' if path else ''}: keys must be str, int, float, bool, None "
            "or tuples of those"
        )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# -- decoding ---------------------------------------------------------------------------------
class _Decoder:
    """Rebuilds an object from the stored structure, checking every tag."""

    def __init__(self, tensors: dict[str, Any], source: str, place: Callable[..., Tensor]):
        self.arrays = tensors
        self.source = source
        self.place = place
        self.used: set[str] = set()
        self.made: dict[str, Tensor] = {}

    def fail(self, detail: str) -> FileFormatError:
        return FileFormatError(f"{self.source}: invalid ember structure: {detail}")

    def decode(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, bool | str | int | float):
            return obj
        if isinstance(obj, list):
            return [self.decode(v) for v in obj]
        if not isinstance(obj, dict):
            raise self.fail(f"unexpected value of type {type(obj).__name__}")
        tags = [k for k in obj if k.startswith("__")]
        if not tags:
            return {k: self.decode(v) for k, v in obj.items()}
        if len(obj) != 1 or tags[0] not in _TAGS:
            raise self.fail(f"unknown or malformed tag {sorted(obj)!r}")
        tag, body = tags[0], obj[tags[0]]
        if tag == "__tuple__":
            if not isinstance(body, list):
                raise self.fail("__tuple__ must hold a list")
            return tuple(self.decode(v) for v in body)
        if tag == "__dict__":
            if not isinstance(body, list) or not all(
                isinstance(p, list) and len(p) == 2 for p in body
            ):
                raise self.fail("__dict__ must hold a list of [key, value] pairs")
            out = {}
            for k, v in body:
                key = self.decode(k)
                try:
                    out[key] = self.decode(v)
                except TypeError:
                    raise self.fail(f"unhashable dict key {key!r}") from None
            return out
        if tag == "__float__":
            if body not in ("nan", "inf", "-inf"):
                raise self.fail(f"bad __float__ value {body!r}")
            return float(body)
        if tag == "__dtype__":
            try:
                return dtypes.to_dtype(body)
            except TypeError:
                raise self.fail(f"unknown dtype {body!r}") from None
        if tag == "__device__":
            if not isinstance(body, str):
                raise self.fail("__device__ must hold a string")
            try:
                return device(body)
            except RuntimeError:  # a GPU device on a machine without one: keep its name
                return body
            except ValueError:
                raise self.fail(f"unknown device {body!r}") from None
        return self.tensor(body)

    def tensor(self, info: Any) -> Tensor:
        if (
            not isinstance(info, dict)
            or not isinstance(info.get("name"), str)
            or not set(info) <= {"name", "device", "requires_grad"}
        ):
            raise self.fail(f"bad __tensor__ entry {info!r}")
        name = info["name"]
        if name in self.made:
            return self.made[name]
        if name not in self.arrays:
            raise self.fail(f"it refers to tensor {name!r}, which the file does not contain")
        self.used.add(name)
        t = self.place(self.arrays[name], info.get("device", "cpu"))
        if info.get("requires_grad"):
            if t._data.dtype.kind != "f":
                raise self.fail(f"tensor {name!r} of dtype {t.dtype} cannot require grad")
            t.requires_grad = True
        self.made[name] = t
        return t


# -- placing on devices -----------------------------------------------------------------------
def _placer(map_location: Any) -> Callable[[np.ndarray, str], Tensor]:
    def target(saved: str) -> Device:
        if map_location is None:
            want: Any = saved
        elif isinstance(map_location, dict):
            want = map_location.get(saved, saved)
        elif callable(map_location):
            want = map_location(saved)
        else:
            want = map_location
        try:
            return device(want)
        except RuntimeError as e:
            raise RuntimeError(
                f"ember.load: a tensor was saved on {saved!r} but {e}; pass "
                "map_location='cpu' to load it onto the CPU"
            ) from None

    cache: dict[str, Device] = {}

    def place(arr: np.ndarray, saved: str) -> Tensor:
        dev = cache.get(saved)
        if dev is None:
            dev = cache[saved] = target(saved)
        return Tensor._make(transfer(arr, dev) if dev is not CPU else arr, dev)

    return place


# -- files ------------------------------------------------------------------------------------
def _atomic_write(path: str, write_fn: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` via a temporary file in the same folder, fsync, then rename."""
    path = os.path.abspath(path)
    folder, base = os.path.split(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"ember.save: {path!r} is a directory")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise type(e)(
                e.errno, f"ember.save: cannot create a file in {folder!r} ({e.strerror})"
            ) from None
    else:  # pragma: no cover  (100 random name collisions)
        raise FileExistsError(f"ember.save: cannot create a temporary file in {folder!r}")
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); best effort elsewhere
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _host_array(t: Tensor) -> np.ndarray:
    return t._data if t.device is CPU else transfer(t._data, CPU)


def save(obj: Any, f: str | os.PathLike | BinaryIO) -> None:
    """Save ``obj`` (a state dict, or any nesting of dicts, lists and tuples of tensors,
    numbers, strings, bools and None) to a file path or a writable binary file object.

    The file is safetensors: tensors in the body, the rest as JSON in its metadata. Writes
    to a path are atomic. Unsupported objects raise :class:`SerializationError` before
    anything is written.

    Example:
        >>> import os, tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "w.safetensors")
        >>> ember.save({"weight": ember.zeros(2, 3)}, p); ember.load(p)["weight"].shape
        (2, 3)
    """
    enc = _Encoder()
    try:
        structure = enc.encode(obj, "")
    except RecursionError:
        raise SerializationError("ember.save: the object is nested too deeply") from None
    try:
        text = json.dumps(structure, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, OverflowError) as e:  # pragma: no cover  (encoder guards)
        raise SerializationError(f"ember.save: cannot encode the object ({e})") from None
    metadata = {_VERSION_KEY: FORMAT_VERSION, _STRUCTURE_KEY: text}

    def write_fn(out: BinaryIO) -> None:
        write(out, enc.tensors, metadata, to_numpy=_host_array)

    if isinstance(f, str | os.PathLike):
        _atomic_write(os.fspath(f), write_fn)
    elif hasattr(f, "write"):
        write_fn(f)
    else:
        raise TypeError(f"ember.save: expected a path or a binary file, got {type(f).__name__}")


# -- loading ----------------------------------------------------------------------------------
_LOADERS: dict[str, Callable[..., Any]] = {}


def register_loader(suffix: str, loader: Callable[..., Any]) -> None:
    """Make ``ember.load(path, **kwargs)`` call ``loader(path, **kwargs)`` for files whose
    name ends in ``suffix`` (e.g. ``".onnx"``).

    Example:
        >>> register_loader(".txt", lambda path, **kw: open(path).read())
        >>> _ = _LOADERS.pop(".txt")
    """
    if not suffix.startswith("."):
        raise ValueError(f"suffix must start with '.', got {suffix!r}")
    _LOADERS[suffix.lower()] = loader


def _load_onnx(path: Any, **kwargs: Any) -> Any:
    try:
        mod = importlib.import_module("ember.onnx")
    except ImportError:
        mod = None
    fn = getattr(mod, "load", None)
    if fn is None:
        raise NotImplementedError(
            f"ember.load: {os.fspath(path)!r} is an ONNX model, and loading ONNX models is not "
            "available in this version of ember yet (ember.onnx.load is missing)"
        )
    return fn(path, **kwargs)


register_loader(".onnx", _load_onnx)


_ONNX_TAGS = frozenset((0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72))


def _sniff(head: bytes, source: str) -> None:
    """Raise a clear error for well-known formats that are not safetensors."""
    if head[8:9] == b"{":  # a safetensors header follows the length field
        return
    if head.startswith(b"PK\x03\x04"):
        raise FileFormatError(
            f"{source}: this is a zip archive, most likely a PyTorch checkpoint written by "
            "torch.save: ember never unpickles files (unpickling can run arbitrary code); "
            "convert it with safetensors (safetensors.torch.save_file) and load that"
        )
    if head[:1] == b"\x80" and len(head) > 1 and head[1] <= 5:
        raise FileFormatError(
            f"{source}: this is a Python pickle: ember never unpickles files (unpickling can "
            "run arbitrary code); save tensors as safetensors instead"
        )
    # ONNX ModelProto: ir_version (tag 0x08, a small varint), then another field's tag
    if len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 64 and head[2] in _ONNX_TAGS:
        raise FileFormatError(
            f"{source}: this looks like an ONNX model, not a safetensors file: give it a "
            "'.onnx' suffix to load it as a model"
        )


def load(
    f: str | os.PathLike | BinaryIO,
    map_location: Any = None,
    *,
    weights_only: bool = True,
    **kwargs: Any,
) -> Any:
    """Load what :func:`save` stored (or any safetensors file, as ``{name: tensor}``).

    ``map_location`` moves tensors: a device (``"cpu"``, ``"cuda:0"``), a dict mapping
    saved device names to devices, or a function of the saved device name; by default
    tensors return to the device they were saved from. ``weights_only`` is accepted for
    PyTorch compatibility: loading never runs code. Files ending in a registered suffix
    (``.onnx``) go to their loader with ``map_location`` and ``kwargs``.

    Example:
        >>> import io
        >>> buf = io.BytesIO(); ember.save([1, ember.arange(3)], buf); _ = buf.seek(0)
        >>> ember.load(buf)
        [1, tensor([0, 1, 2])]
    """
    if isinstance(f, str | os.PathLike):
        path = os.fspath(f)
        suffix = os.path.splitext(path)[1].lower()
        loader = _LOADERS.get(suffix)
        if loader is not None:
            if map_location is not None:
                kwargs["map_location"] = map_location
            return loader(path, **kwargs)
        if kwargs:
            raise TypeError(f"ember.load: unexpected arguments {sorted(kwargs)}")
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return _load_stream(fh, size, path, map_location)
    if kwargs:
        raise TypeError(f"ember.load: unexpected arguments {sorted(kwargs)}")
    if not hasattr(f, "read"):
        raise TypeError(f"ember.load: expected a path or a binary file, got {type(f).__name__}")
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())
    start = f.tell()
    size = f.seek(0, io.SEEK_END) - start
    f.seek(start)
    source = getattr(f, "name", None) or "<stream>"
    return _load_stream(f, size, str(source), map_location, start)


def _load_stream(f: BinaryIO, size: int, source: str, map_location: Any, start: int = 0) -> Any:
    head = f.read(16)
    f.seek(start)
    _sniff(head, source)
    entries, metadata = read_header(f, size, source)
    data_start = f.tell()
    text = (metadata or {}).get(_STRUCTURE_KEY)
    version = (metadata or {}).get(_VERSION_KEY)
    if version is not None and version != FORMAT_VERSION:
        raise FileFormatError(
            f"{source}: written with ember format version {version!r}; this ember reads "
            f"version {FORMAT_VERSION!r} (upgrade ember)"
        )
    structure = parse_json(text, source, "the ember structure") if text is not None else None
    place = _placer(map_location)
    arrays = read_tensors(f, entries.values(), data_start, source)
    if structure is None:  # a plain safetensors file from another tool
        return {name: place(arr, "cpu") for name, arr in arrays.items()}
    dec = _Decoder(arrays, source, place)
    try:
        obj = dec.decode(structure)
    except RecursionError:
        raise dec.fail("nested too deeply") from None
    unused = set(arrays) - dec.used
    if unused:
        raise dec.fail(f"the file holds tensors its structure does not use: {sorted(unused)[:5]!r}")
    return obj

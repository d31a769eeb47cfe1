"""The array-module seam: which array library (NumPy or CuPy) backs each device.

Every op receives ``xp`` (the array module of its inputs' device) and never asks which
backend it is running on. This file is the only place that knows about CuPy.

Example:
    >>> import ember
    >>> ember.device("cpu").xp.__name__
    'numpy'
"""

from __future__ import annotations

import os
from types import ModuleType

import numpy as np

__all__ = [
    "Device",
    "device",
    "cuda_is_available",
    "get_default_device",
    "set_default_device",
    "array_module",
]

_cupy: ModuleType | None = None
_cupy_checked = False


def _load_cupy() -> ModuleType | None:
    """Import CuPy once; return it only when it imports and sees at least one GPU."""
    global _cupy, _cupy_checked
    if not _cupy_checked:
        _cupy_checked = True
        try:
            import cupy  # noqa: PLC0415

            if cupy.cuda.runtime.getDeviceCount() > 0:
                _cupy = cupy
        except Exception:  # ImportError, or a CUDA driver error without a GPU
            _cupy = None
    return _cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees a GPU.

    Example:
        >>> isinstance(ember.cuda_is_available(), bool)
        True
    """
    return _load_cupy() is not None


class Device:
    """A place where tensors live: ``cpu`` or ``cuda[:index]``.

    Devices are interned: ``ember.device("cpu") is ember.device("cpu")``.

    Example:
        >>> ember.device("cpu")
        device(type='cpu')
    """

    __slots__ = ("type", "index", "xp")

    def __init__(self, type: str, index: int | None, xp: ModuleType):
        self.type = type
        self.index = index
        self.xp = xp

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, Device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __reduce__(self) -> tuple:  # copy/pickle by name, never the array module
        return (device, (str(self),))


CPU = Device("cpu", None, np)
_devices: dict[str, Device] = {"cpu": CPU}


def device(spec: str | Device) -> Device:
    """Return the :class:`Device` for ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises a clear error when CUDA is asked for but no usable GPU (or CuPy) is present.

    Example:
        >>> ember.device("cpu").type
        'cpu'
    """
    if isinstance(spec, Device):
        return spec
    dev = _devices.get(spec)
    if dev is not None:
        return dev
    kind, _, idx = str(spec).partition(":")
    if kind != "cuda":
        raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
    canonical = f"cuda:{int(idx) if idx else 0}"
    dev = _devices.get(canonical)
    if dev is not None:  # "cuda" and "cuda:0" are one object: ops compare devices by identity
        _devices[spec] = dev
        return dev
    cupy = _load_cupy()
    if cupy is None:
        raise RuntimeError(
            f"device {spec!r} requested but no usable GPU was found: CuPy is not installed "
            "or sees no CUDA device (pip install 'ember[gpu]' on a machine with an NVIDIA GPU)"
        )
    index = int(idx) if idx else 0
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= index < count:
        raise RuntimeError(f"device {spec!r} requested but only {count} CUDA device(s) exist")
    dev = Device("cuda", index, cupy)
    _devices[spec] = _devices[canonical] = dev
    return dev


def _initial_default() -> Device:
    env = os.environ.get("EMBER_DEVICE")
    if env:
        return device(env)
    return device("cuda") if cuda_is_available() else CPU


_default: Device | None = None


def get_default_device() -> Device:
    """The device new tensors are created on: ``EMBER_DEVICE`` if set, else a GPU when
    usable, else the CPU.

    Example:
        >>> ember.get_default_device().type in ("cpu", "cuda")
        True
    """
    global _default
    if _default is None:
        _default = _initial_default()
    return _default


def set_default_device(spec: str | Device) -> None:
    """Change the device that factories such as ``ember.zeros`` use.

    Example:
        >>> ember.set_default_device("cpu")
    """
    global _default
    _default = device(spec)


def array_module(array: object) -> ModuleType:
    """The array module (numpy or cupy) that owns ``array``.

    Example:
        >>> import numpy as np
        >>> array_module(np.zeros(2)).__name__
        'numpy'
    """
    if isinstance(array, np.ndarray | np.generic) or _cupy is None:
        return np
    return _cupy.get_array_module(array)


def device_of(array: object) -> Device:
    """The :class:`Device` that holds ``array``."""
    if isinstance(array, np.ndarray | np.generic) or _cupy is None:
        return CPU
    return device(f"cuda:{array.device.id}")


def transfer(array: object, dst: Device) -> object:
    """Copy ``array`` to device ``dst`` (host <-> GPU); returns it unchanged when already there.

    Example:
        >>> transfer(np.ones(2), CPU).tolist()
        [1.0, 1.0]
    """
    src = device_of(array)
    if src == dst:
        return array
    if dst is CPU:
        return _cupy.asnumpy(array)
    with _cupy.cuda.Device(dst.index or 0):
        return _cupy.asarray(array)

"""Tensor factories (PyTorch's names and arguments) and the cast / move / copy ops.

Example:
    >>> import ember
    >>> ember.zeros(2, 3).shape, ember.arange(5).dtype
    ((2, 3), ember.int64)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import dtypes
from ..device import Device, get_default_device, transfer
from ..device import device as as_device
from ..memory import aligned_copy, empty_aligned
from ..random import Generator, default_generator
from ..tensor import Tensor
from ._util import normalize_shape
from .registry import defop

__all__ = [
    "tensor",
    "as_tensor",
    "from_numpy",
    "zeros",
    "ones",
    "full",
    "empty",
    "arange",
    "linspace",
    "eye",
    "zeros_like",
    "ones_like",
    "full_like",
    "empty_like",
    "rand",
    "randn",
    "randint",
    "normal",
    "rand_like",
    "randn_like",
    "clone",
    "to",
    "cast",
]

DeviceLike = Device | str | None


def _dev(device: DeviceLike) -> Device:
    return get_default_device() if device is None else as_device(device)


def _np_dtype(dtype: Any, default: dtypes.DType | None = None) -> np.dtype | None:
    if dtype is None:
        return None if default is None else default.np
    return dtypes.to_dtype(dtype).np


def _finish(arr: Any, device: Device, requires_grad: bool) -> Tensor:
    t = Tensor._make(arr, device)
    if requires_grad:
        t.requires_grad_(True)
    return t


# -- from data -----------------------------------------------------------------------------
def _infer_array(data: Any, dtype: Any) -> np.ndarray:
    """Python data -> array with PyTorch's dtype inference (floats -> default float)."""
    if isinstance(data, Tensor):
        return data.detach().numpy()
    if isinstance(data, list | tuple) and any(isinstance(x, Tensor) for x in _flat(data)):
        data = _tensors_to_values(data)
    if isinstance(data, np.ndarray | np.generic):
        arr = np.asarray(data)
    else:
        arr = np.asarray(data)
        if dtype is None and arr.dtype.kind == "f":
            arr = arr.astype(dtypes.get_default_dtype().np)
        elif dtype is None and arr.dtype.kind == "i":
            arr = arr.astype(np.int64)
    if dtype is not None:
        arr = arr.astype(_np_dtype(dtype), copy=False)
    if arr.dtype not in dtypes._BY_NP:
        raise TypeError(f"tensor(): unsupported data type {arr.dtype}")
    return arr


def _flat(data: Any):
    stack = [data]
    while stack:
        x = stack.pop()
        if isinstance(x, list | tuple):
            stack.extend(x)
        else:
            yield x


def _tensors_to_values(data: Any) -> Any:
    if isinstance(data, Tensor):
        return data.detach().numpy()
    if isinstance(data, list | tuple):
        return [_tensors_to_values(x) for x in data]
    return data


def tensor(
    data: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """A new tensor holding a copy of ``data`` (nested lists, scalars, arrays).

    Python floats become float32 (the default dtype), ints int64, bools bool.

    Example:
        >>> ember.tensor([[1, 2], [3, 4]], dtype=ember.float32)
        tensor([[1., 2.],
                [3., 4.]])
    """
    dev = _dev(device) if device is not None or not isinstance(data, Tensor) else data.device
    arr = aligned_copy(_infer_array(data, dtype))
    return _finish(transfer(arr, dev), dev, requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: DeviceLike = None) -> Tensor:
    """Like :func:`tensor` but shares memory with ``data`` when it can.

    Example:
        >>> a = np.zeros(2, dtype=np.float32); t = ember.as_tensor(a); a[0] = 5
        >>> t[0].item()
        5.0
    """
    if isinstance(data, Tensor):
        out = data
        if dtype is not None or device is not None:
            out = data.to(device=device, dtype=dtype)
        return out
    dev = _dev(device)
    return Tensor._make(transfer(_infer_array(data, dtype), dev), dev)


def from_numpy(array: np.ndarray) -> Tensor:
    """A CPU tensor sharing memory with a NumPy array (its dtype kept).

    Example:
        >>> ember.from_numpy(np.arange(3.0)).dtype
        ember.float64
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


# -- filled --------------------------------------------------------------------------------
def _filled(
    kind: str, size: tuple, fill: Any, dtype: Any, device: DeviceLike, requires_grad: bool
) -> Tensor:
    dev = _dev(device)
    shape = normalize_shape(size)
    if dtype is None and kind == "full":
        dt = _scalar_dtype(fill)
    else:
        dt = _np_dtype(dtype, dtypes.get_default_dtype())
    xp = dev.xp
    if xp is np:  # on a cache line, as PyTorch's CPU allocator does (see memory.aligned_copy)
        arr = empty_aligned(shape, dt)
        if kind != "empty":
            arr.fill(0 if kind == "zeros" else 1 if kind == "ones" else fill)
    elif kind == "zeros":
        arr = xp.zeros(shape, dtype=dt)
    elif kind == "ones":
        arr = xp.ones(shape, dtype=dt)
    elif kind == "empty":
        arr = xp.empty(shape, dtype=dt)
    else:
        arr = xp.full(shape, fill, dtype=dt)
    return _finish(arr, dev, requires_grad)


def _scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, bool):
        return np.dtype(np.bool_)
    if isinstance(value, int):
        return np.dtype(np.int64)
    return dtypes.get_default_dtype().np


def zeros(
    *size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of zeros: ``ember.zeros(2, 3)`` or ``ember.zeros((2, 3))``.

    Example:
        >>> ember.zeros(2)
        tensor([0., 0.])
    """
    return _filled("zeros", size, 0, dtype, device, requires_grad)


def ones(
    *size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """A tensor of ones.

    Example:
        >>> ember.ones(2, dtype=ember.int64)
        tensor([1, 1])
    """
    return _filled("ones", size, 1, dtype, device, requires_grad)


def empty(
    *size: Any, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """An uninitialised tensor.

    Example:
        >>> ember.empty(3).shape
        (3,)
    """
    return _filled("empty", size, 0, dtype, device, requires_grad)


def full(
    size: Any,
    fill_value: Any,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """A tensor filled with ``fill_value`` (dtype inferred from it, like PyTorch).

    Example:
        >>> ember.full((2,), 7)
        tensor([7, 7])
    """
    if isinstance(size, int):
        size = (size,)
    return _filled("full", (tuple(size),), fill_value, dtype, device, requires_grad)


def _like(
    kind: str, input: Tensor, fill: Any, dtype: Any, device: DeviceLike, requires_grad: bool
) -> Tensor:
    return _filled(
        kind,
        (tuple(input.shape),),
        fill,
        input.dtype if dtype is None else dtype,
        input.device if device is None else device,
        requires_grad,
    )


def zeros_like(
    input: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """Zeros with ``input``'s shape, dtype and device.

    Example:
        >>> ember.zeros_like(ember.ones(2, 2)).sum().item()
        0.0
    """
    return _like("zeros", input, 0, dtype, device, requires_grad)


def ones_like(
    input: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """Ones with ``input``'s shape, dtype and device.

    Example:
        >>> ember.ones_like(ember.zeros(3)).tolist()
        [1.0, 1.0, 1.0]
    """
    return _like("ones", input, 1, dtype, device, requires_grad)


def empty_like(
    input: Tensor, dtype: Any = None, device: DeviceLike = None, requires_grad: bool = False
) -> Tensor:
    """An uninitialised tensor with ``input``'s shape, dtype and device."""
    return _like("empty", input, 0, dtype, device, requires_grad)


def full_like(
    input: Tensor,
    fill_value: Any,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """``fill_value`` with ``input``'s shape, dtype and device.

    Example:
        >>> ember.full_like(ember.zeros(2), 3.5).tolist()
        [3.5, 3.5]
    """
    return _like("full", input, fill_value, dtype, device, requires_grad)


# -- ranges --------------------------------------------------------------------------------
def arange(
    start: Any,
    end: Any = None,
    step: Any = 1,
    *,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """Values from ``start`` (default 0) up to, not including, ``end``; int64 when all
    arguments are ints, else the default float.

    Example:
        >>> ember.arange(1, 4)
        tensor([1, 2, 3])
    """
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_int = all(isinstance(v, int) for v in (start, end, step))
        dt = np.dtype(np.int64) if is_int else dtypes.get_default_dtype().np
    else:
        dt = _np_dtype(dtype)
    dev = _dev(device)
    return _finish(dev.xp.arange(start, end, step, dtype=dt), dev, requires_grad)


def linspace(
    start: float,
    end: float,
    steps: int,
    *,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive.

    Example:
        >>> ember.linspace(0, 1, 3)
        tensor([0. , 0.5, 1. ])
    """
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.get_default_dtype())
    return _finish(dev.xp.linspace(start, end, steps, dtype=dt), dev, requires_grad)


def eye(
    n: int,
    m: int | None = None,
    *,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """The ``n x m`` identity matrix.

    Example:
        >>> ember.eye(2)
        tensor([[1., 0.],
                [0., 1.]])
    """
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.get_default_dtype())
    return _finish(dev.xp.eye(n, m, dtype=dt), dev, requires_grad)


# -- random --------------------------------------------------------------------------------
def _rng(generator: Generator | None, dev: Device) -> Any:
    return (generator or default_generator).for_device(dev)


def rand(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform random values in ``[0, 1)``.

    Example:
        >>> bool(((ember.rand(100) >= 0) & (ember.rand(100) < 1)).all())
        True
    """
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.get_default_dtype())
    arr = _rng(generator, dev).random(normalize_shape(size), dtype=np.float64).astype(dt)
    return _finish(arr, dev, requires_grad)


def randn(
    *size: Any,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """Standard normal random values.

    Example:
        >>> ember.randn(2, 3).shape
        (2, 3)
    """
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.get_default_dtype())
    arr = _rng(generator, dev).standard_normal(normalize_shape(size)).astype(dt)
    return _finish(arr, dev, requires_grad)


def randint(
    low: int,
    high: int | None = None,
    size: Any = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike = None,
) -> Tensor:
    """Random integers in ``[low, high)`` (``randint(high, size)`` also accepted).

    Example:
        >>> int(ember.randint(0, 5, (10,)).max()) < 5
        True
    """
    if size is None:
        low, high, size = 0, low, high
    elif high is None:
        raise TypeError("randint() needs high and size")
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.int64)
    shape = (size,) if isinstance(size, int) else tuple(size)
    arr = _rng(generator, dev).integers(low, high, size=shape).astype(dt)
    return _finish(arr, dev, False)


def normal(
    mean: float = 0.0,
    std: float = 1.0,
    size: Any = None,
    *,
    generator: Generator | None = None,
    dtype: Any = None,
    device: DeviceLike = None,
    requires_grad: bool = False,
) -> Tensor:
    """Normal random values with the given mean and standard deviation.

    Example:
        >>> ember.normal(0.0, 2.0, size=(3,)).shape
        (3,)
    """
    if size is None:
        size = ()
    dev = _dev(device)
    dt = _np_dtype(dtype, dtypes.get_default_dtype())
    shape = (size,) if isinstance(size, int) else tuple(size)
    # mean + std * z, as NumPy's normal computes it (same draws); CuPy's Generator has no
    # normal()
    arr = (mean + std * _rng(generator, dev).standard_normal(shape)).astype(dt)
    return _finish(arr, dev, requires_grad)


def rand_like(input: Tensor, **kw: Any) -> Tensor:
    """Uniform random values with ``input``'s shape, dtype and device."""
    kw.setdefault("dtype", input.dtype)
    kw.setdefault("device", input.device)
    return rand(*input.shape, **kw)


def randn_like(input: Tensor, **kw: Any) -> Tensor:
    """Standard normal values with ``input``'s shape, dtype and device."""
    kw.setdefault("dtype", input.dtype)
    kw.setdefault("device", input.device)
    return randn(*input.shape, **kw)


# -- cast, move, copy (differentiable) -----------------------------------------------------
@defop("cast", saves_inputs=False, onnx="Cast")
def _cast(xp, x, dtype):
    return x.astype(dtype)


@_cast.defgrad
def _(ctx, g):
    return (cast(g, dtypes.from_np(ctx.input_dtype(0))),)


@_cast.defonnx
def _(g, x, dtype):
    return g.cast(x, dtype)


def cast(input: Tensor, dtype: Any) -> Tensor:
    """``input`` converted to ``dtype`` (differentiable between floating types).

    Example:
        >>> ember.cast(ember.ones(1), ember.int32).dtype
        ember.int32
    """
    dt = dtypes.to_dtype(dtype).np
    if input._data.dtype == dt:
        return input
    return _cast(input, dtype=dt)


@defop("to_device", saves_inputs=False)
def _to_device(xp, x, device):
    return transfer(x, device)


@_to_device.defgrad
def _(ctx, g):
    return (to(g, ctx.device, None),)


@_to_device.defonnx
def _(g, x, device):  # an ONNX graph runs on one device: moving is a copy
    return g.op("Identity", x)


def to(input: Tensor, device: Device | None, dtype: dtypes.DType | None) -> Tensor:
    """Move ``input`` to ``device`` and/or cast it to ``dtype`` (see ``Tensor.to``)."""
    out = input
    if device is not None and device != input.device:
        out = _to_device(out, device=device)
        out.device = device
    if dtype is not None:
        out = cast(out, dtype)
    return out


@defop("clone", saves_inputs=False, onnx="Identity")
def _clone(xp, x):
    return x.copy()


@_clone.defgrad
def _(ctx, g):
    return (g,)


def clone(input: Tensor) -> Tensor:
    """A copy of ``input`` with its own memory (differentiable).

    Example:
        >>> a = ember.ones(2); b = a.clone(); b += 1; a.tolist()
        [1.0, 1.0]
    """
    return _clone(input)


METHODS = {"clone": clone}

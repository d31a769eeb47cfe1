"""Tensor: an array (NumPy or CuPy) plus its device, autograd flag, gradient and the node
that made it.

The math lives in ``ember.ops``; this file holds the object and its plain properties.
``ember.ops`` attaches the operator methods (``+``, ``@``, ``.sum()`` ...) at import.

Example:
    >>> import ember
    >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad
    tensor([2., 4.])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import dtypes
from .autograd.mode import state
from .device import CPU, Device, device_of, get_default_device
from .device import device as as_device

__all__ = ["Tensor"]

_new = object.__new__  # bound once: Tensor._make is on every op's hot path


class Tensor:
    """A multi-dimensional array that can record the operations applied to it.

    Create tensors with factories (``ember.tensor``, ``ember.zeros``, ``ember.randn``);
    ``Tensor(array)`` wraps an existing NumPy/CuPy array without copying.

    Example:
        >>> t = ember.Tensor(np.arange(3.0))
        >>> t.shape, t.dtype
        ((3,), ember.float64)
    """

    __slots__ = (
        "_data",
        "device",
        "requires_grad",
        "grad",
        "_node",
        "_vc",
        "_retain",
        "_hooks",
        "__weakref__",
    )
    __array_priority__ = 1000  # numpy scalars defer to Tensor's reflected operators
    __array_ufunc__ = None

    def __init__(self, data: Any, requires_grad: bool = False, device: Device | None = None):
        if isinstance(data, Tensor):
            data = data._data
        dev = device_of(data) if device is None else device
        if dev is CPU and not isinstance(data, np.ndarray):
            data = np.asarray(data)
        self._data = data
        self.device = dev
        self.grad: Tensor | None = None
        self._node = None
        self._vc = [0]
        self._retain = False
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- construction used by the dispatcher (no checks: hot path) --------------------------
    @staticmethod
    def _make(data: Any, device: Device, node: Any = None) -> Tensor:
        t = _new(Tensor)
        t._data = data
        t.device = device
        t.grad = None
        t._node = node
        t.requires_grad = node is not None
        t._vc = [0]
        t._retain = False
        t._hooks = None
        return t

    # -- plain properties ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The size of each dimension, as a tuple (PyTorch's ``torch.Size``)."""
        return self._data.shape

    def size(self, dim: int | None = None) -> Any:
        """``shape``, or the size of one dimension.

        Example:
            >>> ember.zeros(2, 3).size(-1)
            3
        """
        return self._data.shape if dim is None else self._data.shape[dim]

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    def dim(self) -> int:
        """Number of dimensions (PyTorch spelling)."""
        return self._data.ndim

    def numel(self) -> int:
        """Number of elements."""
        return int(self._data.size)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    @property
    def dtype(self) -> dtypes.DType:
        """The element type (``ember.float32`` ...)."""
        return dtypes.from_np(self._data.dtype)

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded op (user-created, or made under
        ``no_grad``)."""
        return self._node is None

    @property
    def grad_fn(self) -> Any:
        """The autograd node that produced this tensor, or None for leaves."""
        return self._node

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def data(self) -> Tensor:
        """This tensor's values as a new tensor that shares memory and records nothing."""
        return Tensor._make(self._data, self.device)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data if isinstance(value, Tensor) else value
        self.device = device_of(self._data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set whether autograd records operations on this (leaf) tensor; returns self.

        Example:
            >>> ember.zeros(2).requires_grad_().requires_grad
            True
        """
        if self._node is not None:
            if not requires_grad:
                raise RuntimeError(
                    "you can only change requires_grad flags of leaf tensors; use "
                    ".detach() to get a tensor that does not require grad"
                )
            return self
        if requires_grad and self._data.dtype.kind not in "fc":
            raise RuntimeError(
                f"only tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward.

        Example:
            >>> x = ember.ones(2, requires_grad=True); y = x * 3; y.retain_grad()
            >>> y.sum().backward(); y.grad
            tensor([1., 1.])
        """
        if self._node is None:
            return
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that has requires_grad=False")
        self._retain = True
        self._node.retain = self

    def register_hook(self, hook: Any) -> Any:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None return
        replaces the gradient. Returns a handle with ``.remove()``.

        Example:
            >>> x = ember.ones(2, requires_grad=True)
            >>> h = x.register_hook(lambda g: g * 2)
            >>> x.sum().backward(); x.grad
            tensor([2., 2.])
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require grad")
        if self._node is not None:
            hooks = self._node.hooks
            if hooks is None:
                hooks = self._node.hooks = []
        else:
            hooks = self._hooks
            if hooks is None:
                hooks = self._hooks = []
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
        inputs: Any = None,
    ) -> None:
        """Compute the gradient of this tensor with respect to the graph's leaves and add it to
        their ``.grad``.

        Example:
            >>> w = ember.tensor([3.0], requires_grad=True)
            >>> (w ** 2).sum().backward(); w.grad
            tensor([6.])
        """
        from .autograd.engine import backward

        backward(
            [self], None if gradient is None else [gradient], retain_graph, create_graph, inputs
        )

    # -- leaving the graph -----------------------------------------------------------------
    def detach(self) -> Tensor:
        """A tensor sharing this one's memory, cut from the graph.

        Example:
            >>> ember.ones(1, requires_grad=True).detach().requires_grad
            False
        """
        t = Tensor._make(self._data, self.device)
        t._vc = self._vc
        return t

    def detach_(self) -> Tensor:
        """Cut this tensor from the graph, in place."""
        self._node = None
        self.requires_grad = False
        return self

    def _read(self, what: str) -> None:
        tracer = state.tracer
        if tracer is not None:
            tracer.on_value_read(self, what)

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The values as a NumPy array (shares memory on the CPU).

        Example:
            >>> ember.arange(3).numpy()
            array([0, 1, 2])
        """
        tracer = state.tracer  # _read, inlined: numpy() sits on hot inference paths
        if tracer is not None:
            tracer.on_value_read(self, "numpy()")
        if self.requires_grad and not force:
            raise RuntimeError(
                "can't call numpy() on a tensor that requires grad; use tensor.detach().numpy()"
            )
        device = self.device
        if device is CPU:
            return self._data
        return device.xp.asnumpy(self._data)

    def item(self) -> Any:
        """The single value of a one-element tensor as a Python number.

        Example:
            >>> ember.tensor([2.5]).item()
            2.5
        """
        self._read("item()")
        if self._data.size != 1:
            raise ValueError(
                f"item(): a tensor with {self._data.size} elements cannot be converted to a "
                "Python scalar"
            )
        return self._data.reshape(()).item() if self.device is CPU else self._data.item()

    def tolist(self) -> Any:
        """The values as (nested) Python lists.

        Example:
            >>> ember.tensor([[1, 2]]).tolist()
            [[1, 2]]
        """
        self._read("tolist()")
        return self._data.tolist()

    def __bool__(self) -> bool:
        self._read("bool()")
        if self._data.size != 1:
            raise RuntimeError(
                f"Boolean value of a tensor with {self._data.size} elements is ambiguous"
            )
        return bool(self._data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iub" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        arr = self.detach().numpy()
        return arr if dtype is None else arr.astype(dtype)

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    __hash__ = object.__hash__

    # -- moving -----------------------------------------------------------------------------
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Move to a device and/or cast to a dtype: ``t.to("cuda")``, ``t.to(ember.float64)``,
        ``t.to("cpu", ember.float16)``. Differentiable; returns self when nothing changes.

        Example:
            >>> ember.ones(2).to(ember.float64).dtype
            ember.float64
        """
        from .ops.creation import to

        dev, dt = kwargs.get("device"), kwargs.get("dtype")
        for a in args:
            if isinstance(a, Tensor):
                dev, dt = a.device, a.dtype
            elif isinstance(a, Device) or (
                isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda")
            ):
                dev = a
            else:
                dt = a
        return to(
            self,
            None if dev is None else as_device(dev),
            None if dt is None else dtypes.to_dtype(dt),
        )

    def cpu(self) -> Tensor:
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self, index: int | None = None) -> Tensor:
        """This tensor on the GPU."""
        return self.to("cuda" if index is None else f"cuda:{index}")

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool_)

    def type(self, dtype: Any) -> Tensor:
        return self.to(dtypes.to_dtype(dtype))

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def contiguous(self) -> Tensor:
        """A C-contiguous tensor with the same values (self when already contiguous)."""
        if self._data.flags.c_contiguous:
            return self
        from .ops.creation import clone

        return clone(self)

    # -- printing --------------------------------------------------------------------------
    def __repr__(self) -> str:
        arr = self._data if self.device is CPU else self.device.xp.asnumpy(self._data)
        body = np.array2string(
            arr, separator=", ", prefix="tensor(", threshold=1000, edgeitems=3, precision=4
        )
        extras = []
        if self.device is not CPU:
            extras.append(f"device='{self.device}'")
        if arr.dtype not in (np.float32, np.int64, np.bool_) or arr.size == 0:
            extras.append(f"dtype={self.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn=<{self._node.op.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        if self._data.ndim == 0 or self._data.size == 1:
            return format(self.item(), spec)
        return repr(self)


class _HookHandle:
    """Returned by ``register_hook``; ``.remove()`` unregisters the hook."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def default_device() -> Device:
    """Shortcut used by the factories."""
    return get_default_device()

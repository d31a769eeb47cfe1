"""The moving, casting, saving and loading half of :class:`~ember.nn.Module`:
``to()``/``float()``/``cuda()``, ``state_dict()`` and ``load_state_dict()``.

``Module`` inherits these methods from :class:`ModuleState`; they walk the module tree with
``modules()``/``named_modules()`` and read the ``_parameters``/``_buffers`` tables.

Example:
    >>> import ember
    >>> a, b = ember.nn.Linear(2, 2), ember.nn.Linear(2, 2)
    >>> b.load_state_dict(a.state_dict())
    <All keys matched successfully>
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from .. import dtypes
from ..autograd.mode import no_grad
from ..device import Device, device_of
from ..device import device as as_device
from ..tensor import Tensor
from .parameter import Parameter

__all__ = ["ModuleState", "IncompatibleKeys"]


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns: the keys it did not find and did not expect."""

    missing_keys: list[str]
    unexpected_keys: list[str]

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return (
            f"IncompatibleKeys(missing_keys={self.missing_keys}, "
            f"unexpected_keys={self.unexpected_keys})"
        )

    __str__ = __repr__


def _parse_to(*args: Any, **kwargs: Any) -> tuple[Device | None, dtypes.DType | None]:
    """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(tensor)`` -> (device, dtype)."""
    dev, dt = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected keyword argument(s) {sorted(kwargs)}")
    for a in args:
        if isinstance(a, Tensor):
            dev, dt = a.device, a.dtype
        elif isinstance(a, Device) or (isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda")):
            dev = a
        elif isinstance(a, bool):  # non_blocking passed positionally
            continue
        else:
            dt = a
    dev = None if dev is None else as_device(dev)
    dt = None if dt is None else dtypes.to_dtype(dt)
    if dt is not None and not dt.is_floating_point:
        raise TypeError(
            f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dt}"
        )
    return dev, dt


def _write(dst: Tensor, src: Any) -> None:
    """Copy ``src`` (tensor or array) into ``dst``'s memory, converting dtype and device."""
    arr = src._data if isinstance(src, Tensor) else src
    xp = dst.device.xp
    if device_of(arr) != dst.device:
        arr = _to_host(arr) if xp is np else xp.asarray(arr)
    xp.copyto(dst._data, arr, casting="unsafe")
    dst._vc[0] += 1


def _to_host(arr: Any) -> np.ndarray:
    return arr if isinstance(arr, np.ndarray) else arr.get()


class ModuleState:
    """Mixin of :class:`~ember.nn.Module`: moving/casting and the state dict (see the module
    docstring). Not used on its own.

    Example:
        >>> list(ember.nn.Linear(2, 1).double().state_dict())
        ['weight', 'bias']
    """

    # -- moving and casting ----------------------------------------------------------------
    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Any:
        """Convert every parameter (in place, keeping its identity), gradient and buffer."""
        with no_grad():
            for m in self.modules():
                for p in m._parameters.values():
                    if p is None:
                        continue
                    new = fn(p)
                    if new._data is not p._data:
                        p._data, p.device = new._data, new.device
                        p._vc[0] += 1
                    if p.grad is not None:
                        g = fn(p.grad)
                        p.grad = g if g._node is None else g.detach()
                for key, b in m._buffers.items():
                    if b is not None:
                        m._buffers[key] = fn(b)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Any:
        """Move and/or cast parameters and buffers in place: ``to("cuda")``,
        ``to(ember.float64)`` (floating tensors only), ``to(device, dtype)``,
        ``to(tensor)``. Parameters keep their identity, so optimizers still hold them.

        Example:
            >>> m = ember.nn.Linear(2, 2); w = m.weight
            >>> m.to(ember.float64).weight is w, w.dtype
            (True, ember.float64)
        """
        dev, dt = _parse_to(*args, **kwargs)

        def convert(t: Tensor) -> Tensor:
            return t.to(device=dev, dtype=dt if t.is_floating_point() else None)

        return self._apply(convert)

    def cpu(self) -> Any:
        """Move to the CPU; returns self."""
        return self.to("cpu")

    def cuda(self, device: int | str | Device | None = None) -> Any:
        """Move to a GPU; returns self."""
        if device is None:
            device = "cuda"
        elif isinstance(device, int):
            device = f"cuda:{device}"
        return self.to(device)

    def type(self, dst_type: Any) -> Any:
        """Cast every parameter and buffer to ``dst_type``; returns self."""
        dt = dtypes.to_dtype(dst_type)
        return self._apply(lambda t: t.to(dtype=dt))

    def float(self) -> Any:
        """Cast floating parameters and buffers to float32; returns self."""
        return self.to(dtypes.float32)

    def double(self) -> Any:
        """Cast floating parameters and buffers to float64; returns self."""
        return self.to(dtypes.float64)

    def half(self) -> Any:
        """Cast floating parameters and buffers to float16; returns self."""
        return self.to(dtypes.float16)

    # -- state dict ------------------------------------------------------------------------
    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(
        self, *, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> dict[str, Tensor]:
        """An ordered dict of every parameter and persistent buffer, keyed by dotted name.
        Values share memory with the module (detached unless ``keep_vars``).

        Example:
            >>> list(ember.nn.Sequential(ember.nn.Linear(2, 1)).state_dict())
            ['0.weight', '0.bias']
        """
        if destination is None:
            destination = OrderedDict()
        for name, m in self.named_modules(remove_duplicate=False):
            m._save_to_state_dict(destination, prefix + (name + "." if name else ""), keep_vars)
        return destination

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        strict: bool,
        missing_keys: list[str],
        error_msgs: list[str],
        assign: bool,
    ) -> None:
        """Load this module's own entries (not its children's) from ``state_dict``.
        Subclasses override this to accept older layouts."""
        local = [(n, p) for n, p in self._parameters.items() if p is not None]
        local += [
            (n, b)
            for n, b in self._buffers.items()
            if b is not None and n not in self._non_persistent_buffers_set
        ]
        for name, current in local:
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                if not hasattr(value, "shape") or not hasattr(value, "dtype"):
                    error_msgs.append(
                        f'While copying the parameter named "{key}", expected a tensor or an '
                        f"array from checkpoint but received {type(value).__name__}"
                    )
                    continue
            if tuple(value.shape) != tuple(current.shape):
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(value.shape)} "
                    "from checkpoint, the shape in current model is "
                    f"{tuple(current.shape)}."
                )
                continue
            if assign:
                self._assign(name, current, value)
            else:
                _write(current, value)

    def _assign(self, name: str, current: Tensor, value: Any) -> None:
        t = value if isinstance(value, Tensor) else Tensor(value)
        if name in self._parameters:
            self._parameters[name] = (
                t if isinstance(t, Parameter) else Parameter(t, current.requires_grad)
            )
        else:
            self._buffers[name] = t

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> IncompatibleKeys:
        """Copy parameters and buffers from ``state_dict`` into this module (in place, so
        the parameter objects keep their identity; ``assign=True`` takes the tensors instead).

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is.
        The error lists every problem. Returns ``(missing_keys, unexpected_keys)``.

        Example:
            >>> a, b = ember.nn.Linear(2, 1), ember.nn.Linear(2, 1)
            >>> b.load_state_dict(a.state_dict())
            <All keys matched successfully>
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"Expected state_dict to be dict-like, got {type(state_dict).__name__}."
            )
        missing: list[str] = []
        errors: list[str] = []
        expected = set()
        for name, m in self.named_modules(remove_duplicate=False):
            prefix = name + "." if name else ""
            m._load_from_state_dict(state_dict, prefix, strict, missing, errors, assign)
            sub: dict = {}
            m._save_to_state_dict(sub, prefix, True)
            expected.update(sub)
        unexpected = [k for k in state_dict if k not in expected]
        if strict:
            if unexpected:
                keys = ", ".join(f'"{k}"' for k in unexpected)
                errors.insert(0, f"Unexpected key(s) in state_dict: {keys}. ")
            if missing:
                keys = ", ".join(f'"{k}"' for k in missing)
                errors.insert(0, f"Missing key(s) in state_dict: {keys}. ")
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors)
            )
        return IncompatibleKeys(missing, unexpected)

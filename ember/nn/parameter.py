"""``Parameter``: a tensor that a :class:`~ember.nn.Module` registers as one of its weights.

Assigning a ``Parameter`` to a module attribute adds it to ``module.parameters()``; ops on a
parameter return plain tensors.

Example:
    >>> import ember
    >>> p = ember.nn.Parameter(ember.zeros(2))
    >>> p
    Parameter containing:
    tensor([0., 0.], requires_grad=True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..device import CPU
from ..device import device as as_device
from ..tensor import Tensor

__all__ = ["Parameter"]


class Parameter(Tensor):
    """A tensor that is a module's learnable weight (``requires_grad=True`` by default).

    ``Parameter(t)`` shares ``t``'s memory and is a leaf, cut from any graph ``t`` was in.

    Example:
        >>> w = ember.nn.Parameter(ember.ones(2, 3))
        >>> isinstance(w, ember.Tensor), w.requires_grad, w.shape
        (True, True, (2, 3))
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty((0,), dtype=np.float32)
        if isinstance(data, Tensor):
            Tensor.__init__(self, data._data, device=data.device)
        else:
            Tensor.__init__(self, data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    __str__ = __repr__

    def __deepcopy__(self, memo: dict) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(Tensor._make(self._data.copy(), self.device), self.requires_grad)
        if self.grad is not None:
            out.grad = Tensor._make(self.grad._data.copy(), self.grad.device)
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol: Any) -> tuple:
        arr = self._data if self.device is CPU else self.device.xp.asnumpy(self._data)
        return (_rebuild_parameter, (np.asarray(arr), self.requires_grad, str(self.device)))


def _rebuild_parameter(array: np.ndarray, requires_grad: bool, device: str) -> Parameter:
    """Unpickle a :class:`Parameter` (onto its device when that device exists here)."""
    dev = as_device(device)
    data = array if dev is CPU else dev.xp.asarray(array)
    return Parameter(Tensor._make(data, dev), requires_grad)

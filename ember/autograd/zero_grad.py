"""Resetting gradients: the one implementation behind ``Module.zero_grad`` and
``Optimizer.zero_grad`` (it also tells an active tracer, so compiled steps replay it).

Example:
    >>> import ember
    >>> w = ember.ones(2, requires_grad=True); (w * 2).sum().backward()
    >>> zero_grad([w]); w.grad is None
    True
"""

from __future__ import annotations

from collections.abc import Iterable

from ..memory import owns_memory
from ..tensor import Tensor
from .mode import state

__all__ = ["zero_grad"]


def zero_grad(params: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Set each tensor's ``.grad`` to None, or (``set_to_none=False``) fill it with zeros in
    place (a read-only or graph-attached gradient is replaced by fresh zeros)."""
    tracer = state.tracer
    for p in params:
        g = p.grad
        if g is not None:
            if set_to_none:
                p.grad = None
            else:
                if g._node is not None:
                    g.detach_()
                g.requires_grad = False
                if getattr(g._data.flags, "writeable", True) and owns_memory(g._data):
                    g._data.fill(0)
                    g._vc[0] += 1
                else:
                    p.grad = Tensor._make(g.device.xp.zeros_like(g._data), g.device)
        if tracer is not None:
            tracer.set_grad(p, zeros=not set_to_none)

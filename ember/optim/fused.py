"""The fused (C kernel) path of the optimizers' ``step``: one ``ember.kernels`` call updates
every parameter of a group in place, instead of one registered update op per parameter.

It runs only eagerly (no ``ember.compile`` trace is recording: a trace must see registered
ops, the grouped ``*_group_update`` ops of ``ember.ops.optim_group``, which call the same
kernels, or the per-parameter ``*_update`` ops of ``ember.ops.optim``) and only when the
kernel accepts the arrays (NumPy, one float dtype, C-contiguous); otherwise the step runs
its per-parameter path. The kernels follow the NumPy path's op order, so both give the same
bits. :func:`gather` collects a group's parameters with gradients, :func:`done` bumps
their version counters after the update (as the per-parameter path does).

Example:
    >>> import ember
    >>> w = ember.ones(2, requires_grad=True)
    >>> gather({"params": [w]}) is None  # no gradient yet
    True
"""

from __future__ import annotations

from typing import Any

from ..autograd.mode import state
from ..tensor import Tensor

__all__ = ["gather", "done", "arrays"]


def gather(group: dict[str, Any]) -> list[tuple[Tensor, Any]] | None:
    """``[(p, grad_array), ...]`` for the group's parameters that have a gradient; None while
    a trace is recording or when no parameter has a gradient.

    Example:
        >>> w = ember.ones(2, requires_grad=True); (w * 2).sum().backward()
        >>> [g.tolist() for _, g in gather({"params": [w]})]
        [[2.0, 2.0]]
    """
    if state.tracer is not None:
        return None
    items = [(p, p.grad._data) for p in group["params"] if p.grad is not None]
    return items or None


def arrays(tensors: list[Tensor] | None) -> list[Any] | None:
    """The arrays of ``tensors`` (None stays None).

    Example:
        >>> arrays([ember.ones(1)])[0].tolist(), arrays(None)
        ([1.0], None)
    """
    return None if tensors is None else [t._data for t in tensors]


def done(items: list[tuple[Tensor, Any]]) -> None:
    """Bump each updated parameter's version counter (its data changed in place).

    Example:
        >>> w = ember.ones(1); before = w._vc[0]; done([(w, None)]); w._vc[0] - before
        1
    """
    for p, _ in items:
        p._vc[0] += 1

"""Gradients of slices, kept apart until the engine sums them.

``split``, ``chunk``, ``unbind`` and ``narrow`` are built from the ``slice`` op. Its gradient
is the incoming gradient written into a full-size tensor of zeros, so a tensor split in
three used to get three full-size gradients and two full-size additions. Instead the
backward of ``slice`` returns a :class:`SliceGrad` (the piece and where it goes), the engine
collects them per tensor, and :func:`merge` combines them once every gradient has arrived:
pieces that tile their dimension exactly become one ``cat_or_view`` (no copy at all when the
pieces already lie side by side in one buffer, as the fused attention backward writes the
gradients of a split qkv projection); any others one ``slice_backward`` each, added up. All
are ember ops, so gradients stay differentiable and traceable.

Example:
    >>> import ember
    >>> x = ember.arange(6.0, requires_grad=True)
    >>> a, b = x.split(3)
    >>> (a * 2 + 0).sum().backward(retain_graph=True)
    >>> x.grad.tolist()
    [2.0, 2.0, 2.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import NamedTuple

from ..tensor import Tensor

__all__ = ["SliceGrad", "merge"]


class SliceGrad(NamedTuple):
    """The gradient ``grad`` of ``input[start:stop]`` along ``dim`` of an input of ``shape``.

    Example:
        >>> SliceGrad(None, (4,), 0, 1, 3).stop
        3
    """

    grad: Tensor
    shape: tuple
    dim: int
    start: int
    stop: int


def _tiles(pieces: list[SliceGrad]) -> list[SliceGrad] | None:
    """``pieces`` in order when they cover their dimension exactly once, else None."""
    first = pieces[0]
    if any(p.dim != first.dim or p.shape != first.shape for p in pieces):
        return None
    ordered = sorted(pieces, key=lambda p: p.start)
    if ordered[0].start != 0 or ordered[-1].stop != first.shape[first.dim]:
        return None
    if any(a.stop != b.start for a, b in zip(ordered, ordered[1:])):
        return None
    return ordered


def merge(pieces: list[SliceGrad], dense: Tensor | None) -> Tensor:
    """The sum of the slice gradients ``pieces`` and the ordinary gradient ``dense`` (or None).

    Example:
        >>> import ember
        >>> g = merge([SliceGrad(ember.ones(2), (4,), 0, 2, 4),
        ...            SliceGrad(ember.zeros(2), (4,), 0, 0, 2)], None)
        >>> g.tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    from ..ops.join import cat_or_view
    from ..ops.shape import _slice_backward

    ordered = _tiles(pieces) if len(pieces) > 1 else None
    if ordered is not None:  # a view when the pieces are adjacent in one buffer, else a copy
        total = cat_or_view([p.grad for p in ordered], dim=ordered[0].dim)
    else:
        total = None
        for p in pieces:
            full = _slice_backward(p.grad, shape=p.shape, dim=p.dim, start=p.start, stop=p.stop)
            total = full if total is None else total + full
    return total if dense is None else dense + total

"""``Dropout`` (and ``Dropout1d``/``Dropout2d``, which zero whole channels).

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.Dropout(0.5).eval()(ember.ones(3)).tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

from ...tensor import Tensor
from .. import functional as F
from ..module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """While training, zero each element with probability ``p`` and scale the rest by
    ``1 / (1 - p)``; in eval mode, return the input unchanged.

    Example:
        >>> y = nn.Dropout(p=0.5)(ember.ones(1000))
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)


class Dropout1d(_DropoutNd):
    """Like :class:`Dropout` but zeroes whole channels of ``(N, C, L)`` inputs.

    Example:
        >>> nn.Dropout1d(0.2)(ember.ones(2, 3, 4)).shape
        (2, 3, 4)
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(_DropoutNd):
    """Like :class:`Dropout` but zeroes whole channels of ``(N, C, H, W)`` inputs.

    Example:
        >>> nn.Dropout2d(0.2)(ember.ones(2, 3, 4, 4)).shape
        (2, 3, 4, 4)
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)

"""``Flatten`` and ``Unflatten``.

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.Flatten()(ember.ones(2, 3, 4)).shape
    (2, 12)
"""

from __future__ import annotations

from typing import Any

from ...tensor import Tensor
from ..module import Module

__all__ = ["Flatten", "Unflatten"]


class Flatten(Module):
    """Merge dims ``start_dim`` .. ``end_dim`` into one (by default all but the batch dim).

    Example:
        >>> nn.Flatten(0, 1)(ember.ones(2, 3, 4)).shape
        (6, 4)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (which may hold one -1).

    Example:
        >>> nn.Unflatten(1, (2, 5))(ember.ones(3, 10)).shape
        (3, 2, 5)
    """

    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"invalid argument type for dim parameter: {type(dim).__name__}")
        if not isinstance(unflattened_size, tuple | list) or not all(
            isinstance(s, int) for s in unflattened_size
        ):
            raise TypeError("unflattened_size must be a tuple or list of ints")
        self.dim = dim
        self.unflattened_size = tuple(unflattened_size)

    def forward(self, input: Tensor) -> Tensor:
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"

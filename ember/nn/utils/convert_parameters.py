"""``parameters_to_vector`` and ``vector_to_parameters`` (PyTorch's ``nn.utils``).

Example:
    >>> import ember
    >>> m = ember.nn.Linear(2, 2)
    >>> ember.nn.utils.vector_to_parameters(ember.zeros(6), m.parameters())
    >>> m.weight.abs().sum().item()
    0.0
"""

from __future__ import annotations

from collections.abc import Iterable

from ...tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable).

    Example:
        >>> ember.nn.utils.parameters_to_vector([ember.ones(2, 2), ember.zeros(1)]).tolist()
        [1.0, 1.0, 1.0, 1.0, 0.0]
    """
    from ...ops import cat

    params = list(parameters)
    device = params[0].device if params else None
    for p in params:
        if p.device != device:
            raise TypeError(
                f"Found two parameters on different devices, these are {device} and {p.device}"
            )
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into ``parameters`` (in place).

    Example:
        >>> w = ember.zeros(2, 2)
        >>> ember.nn.utils.vector_to_parameters(ember.arange(4.0), [w]); w.tolist()
        [[0.0, 1.0], [2.0, 3.0]]
    """
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got: {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: expected a 1-D vector, got shape {vec.shape}")
    params = list(parameters)
    total = sum(p.numel() for p in params)
    if total != vec.numel():
        raise ValueError(
            f"vector_to_parameters: the vector has {vec.numel()} elements but the parameters "
            f"need {total}"
        )
    src = vec._data
    offset = 0
    for p in params:
        n = p.numel()
        chunk = src[offset : offset + n].reshape(p.shape)
        if p.device != vec.device:
            chunk = p.device.xp.asarray(chunk) if p.device.type == "cuda" else chunk.get()
        p.device.xp.copyto(p._data, chunk, casting="unsafe")
        p._vc[0] += 1
        offset += n

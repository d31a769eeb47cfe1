"""Weight initialisation (``ember.nn.init``): PyTorch's functions, formulas and defaults.

Every function fills its tensor in place (without recording autograd), draws from ember's
global generator (or the ``generator`` given) and returns the tensor.

Example:
    >>> import ember
    >>> from ember import nn
    >>> w = nn.init.kaiming_uniform_(ember.empty(64, 32), nonlinearity="relu")
    >>> bound = (6 / 32) ** 0.5
    >>> bool((w.abs() <= bound).all())
    True
"""

from __future__ import annotations

import math
from typing import Any

from ..random import Generator, default_generator
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "ones_",
    "zeros_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]

_LINEAR = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation (PyTorch's table): 1 for linear, conv and
    sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
    (slope 0.01 by default), 3/4 for selu.

    Example:
        >>> round(nn.init.calculate_gain("leaky_relu", 0.2), 4)
        1.3868
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, int | float) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: dims 1 and 0 times the receptive field size."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions, "
            f"got shape {shape}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _rng(tensor: Tensor, generator: Generator | None) -> Any:
    return (generator or default_generator).for_device(tensor.device)


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write ``values`` (array or scalar) into ``tensor``'s memory; bump its version."""
    tensor._data[...] = values
    tensor._vc[0] += 1
    return tensor


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Generator | None = None
) -> Tensor:
    """Fill with values drawn uniformly from ``[a, b)``.

    Example:
        >>> w = nn.init.uniform_(ember.empty(100), -2.0, 2.0)
        >>> bool((w >= -2).all() and (w < 2).all())
        True
    """
    u = _rng(tensor, generator).random(tuple(tensor.shape))
    return _fill(tensor, u * (b - a) + a)


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Generator | None = None
) -> Tensor:
    """Fill with values drawn from N(mean, std^2).

    Example:
        >>> nn.init.normal_(ember.empty(2, 3), std=0.02).shape
        (2, 3)
    """
    z = _rng(tensor, generator).standard_normal(tuple(tensor.shape))
    return _fill(tensor, z * std + mean)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Generator | None = None,
) -> Tensor:
    """Fill with values from N(mean, std^2) restricted to ``[a, b]`` (redrawn until inside).

    Example:
        >>> w = nn.init.trunc_normal_(ember.empty(1000), std=1.0, a=-1.0, b=1.0)
        >>> bool((w.abs() <= 1).all())
        True
    """
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    rng = _rng(tensor, generator)
    xp = tensor.device.xp
    shape = tuple(tensor.shape)
    out = rng.standard_normal(shape) * std + mean
    bad = (out < a) | (out > b)
    for _ in range(100):  # each round keeps a share of at least the in-range mass
        n = int(bad.sum())
        if n == 0:
            break
        out[bad] = rng.standard_normal((n,)) * std + mean
        bad = (out < a) | (out > b)
    else:  # an interval far out in a tail: the rest lie on its nearest edge
        out = xp.clip(out, a, b)
    return _fill(tensor, out)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill with the value ``val``.

    Example:
        >>> nn.init.constant_(ember.empty(2), 0.5).tolist()
        [0.5, 0.5]
    """
    return _fill(tensor, val)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones.

    Example:
        >>> nn.init.ones_(ember.empty(2)).tolist()
        [1.0, 1.0]
    """
    return _fill(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros.

    Example:
        >>> nn.init.zeros_(ember.empty(2)).tolist()
        [0.0, 0.0]
    """
    return _fill(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the diagonal).

    Example:
        >>> nn.init.eye_(ember.empty(2, 3)).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.ndim != 2:
        raise ValueError(f"Only tensors with 2 dimensions are supported, got {tensor.ndim}")
    xp = tensor.device.xp
    return _fill(tensor, xp.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight with the Dirac delta, so the convolution
    passes its input channels through (per group).

    Example:
        >>> w = nn.init.dirac_(ember.empty(2, 2, 3))
        >>> w[:, :, 1].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    dims = tensor.ndim
    if dims not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    shape = tuple(tensor.shape)
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = shape[0] // groups
    n = min(out_per_group, shape[1])
    xp = tensor.device.xp
    w = xp.zeros(shape)
    centre = tuple(k // 2 for k in shape[2:])
    for g in range(groups):
        for d in range(n):
            w[(g * out_per_group + d, d, *centre)] = 1
    return _fill(tensor, w)


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: Generator | None = None
) -> Tensor:
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Example:
        >>> w = nn.init.xavier_uniform_(ember.empty(30, 20))
        >>> bool((w.abs() <= (6 / 50) ** 0.5).all())
        True
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Glorot normal: ``N(0, std^2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Example:
        >>> nn.init.xavier_normal_(ember.empty(30, 20)).shape
        (30, 20)
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if 0 in tuple(tensor.shape):
        return 0.0
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:
    """He uniform: ``U(-bound, bound)`` with ``bound = gain * sqrt(3 / fan)``; ``a`` is the
    negative slope of a leaky_relu, ``mode`` picks ``fan_in`` or ``fan_out``.

    Example:
        >>> w = nn.init.kaiming_uniform_(ember.empty(8, 50), a=5 ** 0.5)  # nn.Linear's
        >>> bool((w.abs() <= 1 / 50 ** 0.5).all())
        True
    """
    if 0 in tuple(tensor.shape):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator | None = None,
) -> Tensor:
    """He normal: ``N(0, std^2)`` with ``std = gain / sqrt(fan)``.

    Example:
        >>> nn.init.kaiming_normal_(ember.empty(8, 50), mode="fan_out").shape
        (8, 50)
    """
    if 0 in tuple(tensor.shape):
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Generator | None = None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix (the tensor is viewed as ``(rows, -1)``), scaled
    by ``gain``: the Q factor of a Gaussian matrix with the signs of R's diagonal.

    Example:
        >>> q = nn.init.orthogonal_(ember.empty(3, 3))
        >>> bool(((q @ q.T - ember.eye(3)).abs() < 1e-5).all())
        True
    """
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    xp = tensor.device.xp
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _rng(tensor, generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = xp.linalg.qr(flat)
    d = xp.diagonal(r)
    q = q * xp.where(d < 0, -1.0, 1.0)
    if rows < cols:
        q = q.T
    return _fill(tensor, (gain * q).reshape(tuple(tensor.shape)))

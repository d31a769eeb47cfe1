"""Dropout: ``dropout``, ``dropout1d/2d/3d``, ``alpha_dropout``, ``feature_alpha_dropout``.

The random part is one impure op, ``dropout_mask``, that draws from ember's global generator
(``ember.manual_seed`` makes it reproducible) on the input's device and returns the scaled
keep-mask (``1 / (1 - p)`` where kept, 0 where dropped). Being marked ``pure=False``, the
compiler keeps it and draws anew on every call. The output is ``input * mask``, an ordinary
``mul``, whose backward is ``grad * mask``. The uniform draws always come from ember's
generator (float32, NumPy's on the CPU); the C kernel (:func:`ember.kernels.dropout_mask`) only turns them into
the mask in one pass, so ``EMBER_KERNELS=c`` and ``=numpy`` give the same masks.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> _ = ember.manual_seed(0)
    >>> y = F.dropout(ember.ones(1000), p=0.5)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ... import kernels
from ...device import device_of
from ...errors import ShapeError
from ...random import default_generator
from ...tensor import Tensor
from ..elementwise import add, mul
from ..inplace import apply_inplace
from ..registry import defop

__all__ = [
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "alpha_dropout",
    "feature_alpha_dropout",
]

_SELU_ALPHA = 1.7580993408473766  # SELU's scale * alpha: the value dropped units take


@defop("dropout_mask", pure=False, onnx=None)
def _dropout_mask(xp, x, p, shape, scale):
    """``scale`` where a uniform draw is ``>= p`` (kept), else 0; dtype of ``x``."""
    rng = default_generator.for_device(device_of(x))
    u = rng.random(shape, dtype=np.float32)
    mask = kernels.dropout_mask(u, p, scale, x.dtype)  # the same bits, one pass
    if mask is not None:
        return mask
    mask = (u >= np.float32(p)).astype(x.dtype)
    mask *= x.dtype.type(scale)
    return mask


@_dropout_mask.defonnx
def _(g, x, p, shape, scale):
    u = g.op("RandomUniformLike", g.zeros(shape, "float32"), shape=tuple(shape))
    keep = g.cast(g.cmp("GreaterOrEqual", u, float(p)), x.dtype)
    return g.op("Mul", keep, float(scale))


def _check_p(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _apply(input: Tensor, factor: Tensor, inplace: bool) -> Tensor:
    if inplace:
        return apply_inplace(input, "dropout_", mul, factor)
    return mul(input, factor)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)``
    (identity when not ``training``).

    Example:
        >>> F.dropout(ember.ones(3), p=0.5, training=False).tolist()
        [1.0, 1.0, 1.0]
    """
    _check_p(p)
    if not training or p == 0:
        return input
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = _dropout_mask(input, p=float(p), shape=tuple(input.shape), scale=scale)
    return _apply(input, mask, inplace)


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool) -> Tensor:
    """Dropout of whole channels: one draw per ``(N, C)`` pair."""
    if not training or p == 0:
        return input
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = _dropout_mask(input, p=float(p), shape=shape, scale=scale)
    return _apply(input, mask, inplace)


def _unbatched(
    name: str, input: Tensor, dims: tuple[int, int], p: float, training: bool, inplace: bool
) -> Tensor:
    """Channel dropout for inputs with ``dims[1]`` (batched) or ``dims[0]`` (no batch) dims."""
    _check_p(p)
    if input.ndim not in dims:
        raise ShapeError(
            name,
            f"expected a {dims[0]}-D or {dims[1]}-D input, got shape {tuple(input.shape)}",
        )
    if input.ndim == dims[1]:
        return _feature_dropout(input, p, training, inplace)
    if not training or p == 0:
        return input
    shape = (1,) + tuple(input.shape[:1]) + (1,) * (input.ndim - 1)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    mask = _dropout_mask(input, p=float(p), shape=shape, scale=scale)
    return _apply(input, mask.reshape(tuple(mask.shape[1:])), inplace)


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of ``(N, C, L)`` or ``(C, L)`` inputs with probability ``p``.

    Example:
        >>> y = F.dropout1d(ember.ones(2, 3, 4), p=0.5)
        >>> sorted(set(y.tolist()[0][0]))[0] in (0.0, 2.0)
        True
    """
    return _unbatched("dropout1d", input, (2, 3), p, training, inplace)


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of ``(N, C, H, W)`` inputs with probability ``p`` (a 3-D input is
    taken as ``(N, C, L)``, as PyTorch does today).

    Example:
        >>> F.dropout2d(ember.ones(2, 3, 4, 4), p=0.5).shape
        (2, 3, 4, 4)
    """
    _check_p(p)
    if input.ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: received a {input.ndim}-D input; dropout2d expects 3-D or 4-D inputs",
            stacklevel=2,
        )
    return _feature_dropout(input, p, training, inplace)


def dropout3d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:
    """Zero whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs.

    Example:
        >>> F.dropout3d(ember.ones(2, 3, 2, 2, 2), p=0.5).shape
        (2, 3, 2, 2, 2)
    """
    return _unbatched("dropout3d", input, (4, 5), p, training, inplace)


def _alpha(input: Tensor, p: float, training: bool, inplace: bool, shape: tuple) -> Tensor:
    """``x * k * a + b`` with keep-mask ``k``; keeps SELU's zero mean and unit variance."""
    _check_p(p)
    if not training or p == 0:
        return input
    if p == 1:
        return _apply(input, input.detach() * 0, inplace)
    a = 1.0 / math.sqrt((_SELU_ALPHA * _SELU_ALPHA * p + 1) * (1 - p))
    keep_a = _dropout_mask(input, p=float(p), shape=shape, scale=a)  # k * a
    shift = add(mul(keep_a, _SELU_ALPHA), _SELU_ALPHA * a * (p - 1))  # b
    if inplace:
        return apply_inplace(input, "alpha_dropout_", lambda x: add(mul(x, keep_a), shift))
    return add(mul(input, keep_a), shift)


def alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and an
    affine correction keeps the mean and variance.

    Example:
        >>> F.alpha_dropout(ember.ones(3), 0.5).tolist()
        [1.0, 1.0, 1.0]
    """
    return _alpha(input, p, training, inplace, tuple(input.shape))


def feature_alpha_dropout(
    input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False
) -> Tensor:
    """:func:`alpha_dropout` of whole channels (one draw per ``(N, C)`` pair).

    Example:
        >>> F.feature_alpha_dropout(ember.ones(2, 3, 4), 0.2, training=True).shape
        (2, 3, 4)
    """
    shape = tuple(input.shape[:2]) + (1,) * (input.ndim - 2)
    return _alpha(input, p, training, inplace, shape)

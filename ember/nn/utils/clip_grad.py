"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm`` and
``clip_grads_with_norm_`` (PyTorch's names, arguments and results).

The gradients are scaled in place (their arrays keep their identity); the total norm is
returned as a 0-d tensor without a host round trip, so on a GPU clipping does not
synchronize unless ``error_if_nonfinite=True``.

Example:
    >>> import ember
    >>> w = ember.ones(4, requires_grad=True)
    >>> (w * 3).sum().backward()          # grad = [3, 3, 3, 3], norm 6
    >>> ember.nn.utils.clip_grad_norm_([w], max_norm=1.0)
    tensor(6.)
    >>> [round(v, 4) for v in w.grad.tolist()]
    [0.5, 0.5, 0.5, 0.5]
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from ...device import CPU
from ...tensor import Tensor

__all__ = [
    "clip_grad_norm_",
    "clip_grad_norm",
    "clip_grad_value_",
    "get_total_norm",
    "clip_grads_with_norm_",
]


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    is_generator = isinstance(parameters, types.GeneratorType)
    params = list(parameters)
    if is_generator and not params:
        warnings.warn(
            "`parameters` is an empty generator, no gradient clipping will occur.", stacklevel=3
        )
    return params


def _vector_norm(xp: Any, a: Any, p: float) -> Any:
    """``torch.linalg.vector_norm(a, p)`` as a 0-d array of ``a``'s dtype (float16 data is
    accumulated in float32, as PyTorch does)."""
    acc = np.float32 if a.dtype == np.float16 else a.dtype
    if a.size == 0:
        return xp.zeros((), dtype=a.dtype)
    if p == 2.0:
        flat = a.reshape(-1).astype(acc, copy=False)
        out = xp.sqrt(xp.dot(flat, flat))
    elif p == math.inf:
        out = xp.abs(a).max()
    elif p == -math.inf:
        out = xp.abs(a).min()
    elif p == 0.0:
        out = xp.asarray(xp.count_nonzero(a), dtype=acc)
    elif p == 1.0:
        out = xp.abs(a).sum(dtype=acc)
    else:
        out = (xp.abs(a).astype(acc) ** p).sum() ** (1.0 / p)
    return xp.asarray(out).astype(a.dtype, copy=False)


def get_total_norm(
    tensors: Tensor | Iterable[Tensor],
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """The ``norm_type`` norm of the norms of ``tensors`` (as if they were concatenated).

    Example:
        >>> get_total_norm([ember.tensor([3.0]), ember.tensor([4.0])])
        tensor(5.)
    """
    ts = _as_list(tensors)
    norm_type = float(norm_type)
    if not ts:
        return Tensor._make(np.zeros((), dtype=np.float32), CPU)
    dev = ts[0].device
    xp = dev.xp
    arrays = [t._data if t.device is dev else xp.asarray(t._data) for t in ts]
    norms = [_vector_norm(xp, a, norm_type) for a in arrays]
    dtype = np.result_type(*[n.dtype for n in norms])
    total = _vector_norm(xp, xp.stack([n.astype(dtype, copy=False) for n in norms]), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is "
            "non-finite, so it cannot be clipped. To disable this error and scale the "
            "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return Tensor._make(total, dev)


def clip_grads_with_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    total_norm: Tensor,
    foreach: bool | None = None,
) -> None:
    """Scale the gradients of ``parameters`` by ``min(1, max_norm / (total_norm + 1e-6))``.

    Example:
        >>> w = ember.ones(2, requires_grad=True); w.grad = ember.tensor([3.0, 4.0])
        >>> clip_grads_with_norm_([w], 1.0, get_total_norm([w.grad]))
        >>> [round(v, 4) for v in w.grad.tolist()]
        [0.6, 0.8]
    """
    grads = [p.grad for p in _as_list(parameters) if p.grad is not None]
    max_norm = float(max_norm)
    if not grads:
        return
    total = total_norm._data
    dt = total.dtype.type
    coef = dt(max_norm) / (total + dt(1e-6))
    coef = coef if coef.dtype == total.dtype else coef.astype(total.dtype)
    xp = total_norm.device.xp
    coef = xp.minimum(coef, dt(1.0))
    with np.errstate(invalid="ignore", over="ignore"):  # a nan/inf norm scales as PyTorch's
        for g in grads:
            g._data *= coef if g.device is total_norm.device else g.device.xp.asarray(coef)


def clip_grad_norm_(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Scale the gradients of ``parameters`` in place so that their total ``norm_type``
    norm is at most ``max_norm``; returns the total norm before clipping (a 0-d tensor).

    ``norm_type`` may be ``inf`` (largest absolute value). With ``error_if_nonfinite`` a
    nan/inf total norm raises instead of scaling by it.

    Example:
        >>> w = ember.ones(2, requires_grad=True); w.grad = ember.tensor([3.0, 4.0])
        >>> clip_grad_norm_(w, max_norm=10.0), w.grad.tolist()
        (tensor(5.), [3.0, 4.0])
    """
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_norm(
    parameters: Tensor | Iterable[Tensor],
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (as in PyTorch).

    Example:
        >>> w = ember.ones(1, requires_grad=True); w.grad = ember.tensor([2.0])
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     clip_grad_norm([w], 1.0)
        tensor(2.)
    """
    warnings.warn(
        "`clip_grad_norm` is now deprecated in favor of `clip_grad_norm_`.",
        FutureWarning,
        stacklevel=2,
    )
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(
    parameters: Tensor | Iterable[Tensor],
    clip_value: float,
    foreach: bool | None = None,
) -> None:
    """Clamp the gradients of ``parameters`` to ``[-clip_value, clip_value]`` in place.

    Example:
        >>> w = ember.ones(3, requires_grad=True); w.grad = ember.tensor([-5.0, 0.5, 5.0])
        >>> clip_grad_value_([w], 1.0); w.grad.tolist()
        [-1.0, 0.5, 1.0]
    """
    clip_value = float(clip_value)
    for p in _as_list(parameters):
        g = p.grad
        if g is not None:
            g.device.xp.clip(g._data, -clip_value, clip_value, out=g._data)

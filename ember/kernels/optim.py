"""The seam for the fused optimizer updates: one C call updates every parameter of a group
in place (SGD, Adam/AdamW, RMSprop), with PyTorch's formulas and the NumPy path's exact op
order (``ember/ops/optim.py``), so the two paths agree to the last bit.

Each function takes lists of arrays (parameters, gradients, state buffers; a list of
None-free arrays or None for state a configuration does not use) and returns True when it
updated everything, False when the C kernels cannot serve the call: kernels unavailable,
arrays that are not all C-contiguous NumPy arrays of one dtype (float32 or float64), sizes
that differ between a parameter and its gradient or state. On False nothing was written and
the caller runs its per-parameter NumPy path.

Example:
    >>> import numpy as np
    >>> p, g = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
    >>> sgd_step([p], [g], None, None, lr=0.5) in (True, False)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import kernel

# Nanoseconds per parameter of one update on one core (float32, with its state): the work
# estimates handed to ``kernel_threads`` (see ember/threads.py)
NS_SGD, NS_ADAM, NS_RMSPROP = 0.4, 0.9, 0.7

__all__ = ["sgd_step", "adam_step", "rmsprop_step"]


def _usable(groups: list, sizes: list[int], dtype: Any) -> bool:
    """Every array of every list: a C-contiguous NumPy array of ``dtype`` and its
    parameter's size."""
    for arrays in groups:
        if arrays is None:
            continue
        if len(arrays) != len(sizes):
            return False
        for a, n in zip(arrays, sizes):
            if type(a) is not np.ndarray or a.dtype != dtype or a.size != n:
                return False
            if not a.flags.c_contiguous:
                return False
    return True


def _prepare(unit_fn: str, params: Sequence, others: list) -> tuple | None:
    """The kernel, the kept positions (non-empty parameters), sizes and dtype; or None."""
    if not params or type(params[0]) is not np.ndarray:
        return None
    dtype = params[0].dtype
    f = kernel("optim", unit_fn, dtype)
    if f is None:
        return None
    sizes = [getattr(p, "size", -1) for p in params]
    if not _usable([params, *others], sizes, dtype):
        return None
    keep = [i for i, n in enumerate(sizes) if n > 0]
    return f, keep, sizes, dtype


def _table(arrays: Sequence | None, keep: list[int]) -> tuple[Any, list]:
    """A C array of pointers to ``arrays[i]`` for ``i`` in ``keep`` (NULL for None), and the
    buffer objects that must stay alive during the call."""
    if arrays is None:
        return _seam.NULL, []
    bufs = [_seam.ptr(arrays[i]) for i in keep]
    return _seam.FFI.new("void *[]", bufs), bufs


def _common(keep: list[int], sizes: list[int]) -> tuple[Any, int]:
    s = np.array([sizes[i] for i in keep], dtype=np.int64)
    return s, int(s.sum())


def sgd_step(
    params: Sequence,
    grads: Sequence,
    momentum_buffers: Sequence | None,
    first: Sequence[bool] | None,
    *,
    lr: float,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> bool:
    """SGD on every parameter in place: ``g = grad (negated when maximize) + weight_decay *
    p``; with momentum ``buf = momentum * buf + (1 - dampening) * g`` (``buf = g`` where
    ``first[i]``), ``g = g + momentum * buf`` (Nesterov) or ``buf``; ``p -= lr * g``.
    ``momentum_buffers`` is None without momentum. False when unserved.

    Example:
        >>> p = np.ones(2, np.float32)
        >>> ok = sgd_step([p], [np.ones(2, np.float32)], None, None, lr=0.25)
        >>> not ok or p.tolist() == [0.75, 0.75]
        True
    """
    prep = _prepare("sgd_multi", params, [grads, momentum_buffers])
    if prep is None:
        return False
    f, keep, sizes, _ = prep
    if not keep:
        return True
    (pt, pk), (gt, gk), (bt, bk) = (_table(a, keep) for a in (params, grads, momentum_buffers))
    flags = _seam.NULL
    fa = None
    if momentum_buffers is not None and first is not None:
        fa = np.array([bool(first[i]) for i in keep], dtype=np.int8)
        flags = _seam.ptr(fa)
    s, total = _common(keep, sizes)
    rc = f(pt, gt, bt, flags, _seam.ptr(s), len(keep), float(lr), float(momentum),
           float(dampening), float(weight_decay), int(nesterov), int(maximize),
           kernel_threads(NS_SGD * total))  # fmt: skip
    if rc != 0:
        raise MemoryError("sgd_step: out of memory for the chunk table")
    return True


def adam_step(
    params: Sequence,
    grads: Sequence,
    exp_avgs: Sequence,
    exp_avg_sqs: Sequence,
    max_exp_avg_sqs: Sequence | None,
    steps: Sequence[float] | float,
    *,
    lr: float,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    maximize: bool = False,
) -> bool:
    """Adam (AdamW with ``decoupled``; AMSGrad when ``max_exp_avg_sqs`` is given) on every
    parameter in place; ``steps`` is each parameter's step count after incrementing (or one
    number for all). False when unserved.

    Example:
        >>> p = np.ones(2, np.float32); z = [np.zeros(2, np.float32) for _ in range(2)]
        >>> ok = adam_step([p], [np.ones(2, np.float32)], [z[0]], [z[1]], None, 1, lr=0.1)
        >>> not ok or [round(v, 6) for v in p.tolist()] == [0.9, 0.9]
        True
    """
    prep = _prepare("adam_multi", params, [grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs])
    if prep is None:
        return False
    f, keep, sizes, _ = prep
    if not keep:
        return True
    tables = [_table(a, keep) for a in (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs)]
    if isinstance(steps, (int, float)):
        st = np.full(len(keep), float(steps))
    else:
        st = np.array([float(steps[i]) for i in keep], dtype=np.float64)
    s, total = _common(keep, sizes)
    rc = f(*(t for t, _ in tables), _seam.ptr(s), _seam.ptr(st), len(keep), float(lr),
           float(beta1), float(beta2), float(eps), float(weight_decay), int(decoupled),
           int(maximize), kernel_threads(NS_ADAM * total))  # fmt: skip
    if rc != 0:
        raise MemoryError("adam_step: out of memory for the chunk table")
    return True


def rmsprop_step(
    params: Sequence,
    grads: Sequence,
    square_avgs: Sequence,
    grad_avgs: Sequence | None,
    momentum_buffers: Sequence | None,
    *,
    lr: float,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    momentum: float = 0.0,
    maximize: bool = False,
) -> bool:
    """RMSprop on every parameter in place (centered when ``grad_avgs`` is given, with
    momentum when ``momentum_buffers`` is). False when unserved.

    Example:
        >>> p = np.ones(2, np.float32)
        >>> ok = rmsprop_step([p], [np.ones(2, np.float32)], [np.zeros(2, np.float32)], None,
        ...                   None, lr=0.01, alpha=0.0, eps=0.0)
        >>> not ok or [round(v, 6) for v in p.tolist()] == [0.99, 0.99]
        True
    """
    others = [grads, square_avgs, grad_avgs, momentum_buffers]
    prep = _prepare("rmsprop_multi", params, others)
    if prep is None:
        return False
    f, keep, sizes, _ = prep
    if not keep:
        return True
    tables = [_table(a, keep) for a in (params, *others)]
    s, total = _common(keep, sizes)
    rc = f(*(t for t, _ in tables), _seam.ptr(s), len(keep), float(lr), float(alpha),
           float(eps), float(weight_decay), float(momentum), int(maximize),
           kernel_threads(NS_RMSPROP * total))  # fmt: skip
    if rc != 0:
        raise MemoryError("rmsprop_step: out of memory for the chunk table")
    return True

"""The seam for the neural-network ops: one function per hot op, on arrays.

Each function takes NumPy arrays and returns the result arrays, or **None** when the C
kernels cannot serve the call (``EMBER_KERNELS=numpy``, no compiler, a dtype other than
float32/float64, an empty or non-NumPy array, a layout the kernel does not cover, an
out-of-range index); the caller then runs its NumPy path, which stays the reference. Inputs
may have any strides (they are made contiguous); outputs are fresh C-contiguous arrays.

Example:
    >>> import numpy as np
    >>> from ember import kernels
    >>> y = kernels.softmax_forward(np.zeros((2, 4), np.float32), -1)
    >>> y is None or y.tolist() == [[0.25] * 4] * 2
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import contiguous, is_array, kernel, split_axis

__all__ = [
    "softmax_forward",
    "softmax_backward",
    "gelu_forward",
    "gelu_backward",
    "silu_forward",
    "silu_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "tanh_forward",
    "tanh_backward",
    "cross_entropy_forward",
    "cross_entropy_backward",
    "embedding_backward",
    "dropout_mask",
]

Array = Any  # np.ndarray

# the activation kernel's ``kind`` argument (ember/kernels/source/activation.py: KINDS)
KINDS = {"gelu_tanh": 0, "gelu": 1, "silu": 2, "sigmoid": 3, "tanh": 4}

# Nanoseconds per element on one core (float32, 256K elements, a 2.45 GHz Zen 3 VM): the
# work estimate each call hands to ``kernel_threads`` (see ember/threads.py).
NS = {
    "gelu_tanh": (0.7, 1.2),  # (forward, backward)
    "gelu": (1.3, 2.0),
    "silu": (0.65, 0.85),
    "sigmoid": (0.65, 0.3),
    "tanh": (0.9, 0.32),
    "softmax": (1.5, 0.45),
    "cross_entropy": (1.5, 1.5),
    "embedding_backward": 0.3,
    "dropout_mask": 0.16,
}


# -- softmax family ----------------------------------------------------------------------------
def _softmax_mode(log: bool, safe: bool) -> int:
    return 1 if log else (2 if safe else 0)


def softmax_forward(x: Array, axis: int, *, log: bool = False, safe: bool = False) -> Array:
    """``softmax(x)`` along ``axis`` (``log_softmax`` with ``log``; with ``safe``, a row
    that is all ``-inf`` gives zeros instead of NaN), or None.

    Example:
        >>> y = softmax_forward(np.array([[0.0, 0.0]], np.float32), 1)
        >>> y is None or y.tolist() == [[0.5, 0.5]]
        True
    """
    if not is_array(x) or x.ndim == 0:
        return None
    f = kernel("softmax", "softmax_forward", x.dtype)
    if f is None:
        return None
    x = contiguous(x)
    a, k, b = split_axis(x.shape, axis % x.ndim)
    y = np.empty_like(x)
    f(
        _seam.ptr(x),
        _seam.ptr(y),
        a,
        k,
        b,
        _softmax_mode(log, safe),
        kernel_threads(NS["softmax"][0] * x.size),
    )
    return y


def softmax_backward(g: Array, y: Array, axis: int, *, log: bool = False) -> Array:
    """The input gradient of softmax from its output ``y`` and output gradient ``g``:
    ``(g - sum(g * y)) * y`` (``g - exp(y) * sum(g)`` for ``log_softmax``), or None.

    Example:
        >>> y = np.array([[0.5, 0.5]], np.float32)
        >>> dx = softmax_backward(np.array([[1.0, 0.0]], np.float32), y, 1)
        >>> dx is None or dx.tolist() == [[0.25, -0.25]]
        True
    """
    if not is_array(g, y) or y.ndim == 0 or g.shape != y.shape or g.dtype != y.dtype:
        return None
    f = kernel("softmax", "softmax_backward", y.dtype)
    if f is None:
        return None
    g, y = contiguous(g), contiguous(y)
    a, k, b = split_axis(y.shape, axis % y.ndim)
    dx = np.empty_like(y)
    f(_seam.ptr(g), _seam.ptr(y), _seam.ptr(dx), a, k, b, _softmax_mode(log, False),
      kernel_threads(NS["softmax"][1] * y.size))  # fmt: skip
    return dx


# -- activations ---------------------------------------------------------------------------------
def _act_forward(kind: str, x: Array) -> Array:
    if not is_array(x):
        return None
    f = kernel("activation", "activation_forward", x.dtype)
    if f is None:
        return None
    x = contiguous(x)
    y = np.empty_like(x)
    f(_seam.ptr(x), _seam.ptr(y), x.size, KINDS[kind], kernel_threads(NS[kind][0] * x.size))
    return y


def _act_backward(kind: str, g: Array, a: Array) -> Array:
    if not is_array(g, a) or g.shape != a.shape or g.dtype != a.dtype:
        return None
    f = kernel("activation", "activation_backward", a.dtype)
    if f is None:
        return None
    g, a = contiguous(g), contiguous(a)
    dx = np.empty_like(a)
    f(
        _seam.ptr(g),
        _seam.ptr(a),
        _seam.ptr(dx),
        a.size,
        KINDS[kind],
        kernel_threads(NS[kind][1] * a.size),
    )
    return dx


def _gelu_kind(approximate: str) -> str:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return "gelu_tanh" if approximate == "tanh" else "gelu"


def gelu_forward(x: Array, approximate: str = "none") -> Array:
    """``x * Phi(x)`` (``approximate='tanh'``: ``0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715
    x^3)))``), or None.

    Example:
        >>> y = gelu_forward(np.zeros(3, np.float32))
        >>> y is None or y.tolist() == [0.0, 0.0, 0.0]
        True
    """
    return _act_forward(_gelu_kind(approximate), x)


def gelu_backward(g: Array, x: Array, approximate: str = "none") -> Array:
    """``g * gelu'(x)`` (from the input ``x``), or None.

    Example:
        >>> dx = gelu_backward(np.ones(1, np.float32), np.zeros(1, np.float32))
        >>> dx is None or dx.tolist() == [0.5]
        True
    """
    return _act_backward(_gelu_kind(approximate), g, x)


def silu_forward(x: Array) -> Array:
    """``x * sigmoid(x)``, or None.

    Example:
        >>> y = silu_forward(np.zeros(2))
        >>> y is None or y.tolist() == [0.0, 0.0]
        True
    """
    return _act_forward("silu", x)


def silu_backward(g: Array, x: Array) -> Array:
    """``g * silu'(x)`` (from the input ``x``), or None.

    Example:
        >>> dx = silu_backward(np.ones(1), np.zeros(1))
        >>> dx is None or dx.tolist() == [0.5]
        True
    """
    return _act_backward("silu", g, x)


def sigmoid_forward(x: Array) -> Array:
    """``1 / (1 + exp(-x))`` without overflow, or None.

    Example:
        >>> y = sigmoid_forward(np.zeros(1))
        >>> y is None or y.tolist() == [0.5]
        True
    """
    return _act_forward("sigmoid", x)


def sigmoid_backward(g: Array, y: Array) -> Array:
    """``g * y * (1 - y)`` from sigmoid's output ``y``, or None.

    Example:
        >>> dx = sigmoid_backward(np.ones(1), np.full(1, 0.5))
        >>> dx is None or dx.tolist() == [0.25]
        True
    """
    return _act_backward("sigmoid", g, y)


def tanh_forward(x: Array) -> Array:
    """``tanh(x)``, or None.

    Example:
        >>> y = tanh_forward(np.zeros(1))
        >>> y is None or y.tolist() == [0.0]
        True
    """
    return _act_forward("tanh", x)


def tanh_backward(g: Array, y: Array) -> Array:
    """``g * (1 - y^2)`` from tanh's output ``y``, or None.

    Example:
        >>> dx = tanh_backward(np.ones(1), np.full(1, 0.5))
        >>> dx is None or dx.tolist() == [0.75]
        True
    """
    return _act_backward("tanh", g, y)


# -- cross entropy ---------------------------------------------------------------------------------
def _xent_args(x: Array, target: Array, weight: Array | None) -> tuple | None:
    if not is_array(x, target) or x.ndim not in (1, 2) or target.dtype.kind not in "iu":
        return None
    if target.shape != x.shape[:-1]:
        return None
    if weight is not None and (
        type(weight) is not np.ndarray or weight.shape != x.shape[-1:] or weight.dtype != x.dtype
    ):
        return None
    c = x.shape[-1]
    n = x.size // c
    return (
        contiguous(x),
        contiguous(target, np.int64),
        None if weight is None else contiguous(weight),
        n,
        c,
    )


def cross_entropy_forward(
    x: Array,
    target: Array,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    *,
    with_grad: bool = False,
) -> tuple[Array, Array, Array | None] | None:
    """Cross-entropy of logits ``x`` (``(N, C)`` or ``(C,)``) and class-index targets:
    ``(loss, weights, grad)``, per row: the loss (weighted and smoothed, 0 for ignored rows),
    the target's weight (``weight[t]``, 0 for ignored rows; their sum is ``'mean'``'s
    denominator) and, with ``with_grad``, the gradient of ``loss.sum()`` with respect to
    ``x`` (same pass: the fused loss + gradient). None when unserved (also for a target
    outside ``[0, C)``, so that the caller's path raises its error).

    Example:
        >>> out = cross_entropy_forward(np.zeros((2, 4), np.float32), np.array([1, 3]))
        >>> out is None or [round(v, 4) for v in out[0].tolist()] == [1.3863, 1.3863]
        True
    """
    args = _xent_args(x, target, weight)
    if args is None:
        return None
    f = kernel("loss", "cross_entropy", x.dtype)
    if f is None:
        return None
    x, t, w, n, c = args
    p, null = _seam.ptr, _seam.NULL
    loss, wt = np.empty(x.shape[:-1], x.dtype), np.empty(x.shape[:-1], x.dtype)
    dx = np.empty_like(x) if with_grad else None
    bad = f(p(x), p(t), null if w is None else p(w), null, 1.0, p(loss), p(wt),
            null if dx is None else p(dx), n, c, int(ignore_index), float(label_smoothing),
            kernel_threads(NS["cross_entropy"][0] * x.size))  # fmt: skip
    return None if bad >= 0 else (loss, wt, dx)


def cross_entropy_backward(
    x: Array,
    target: Array,
    scale: Any,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
) -> Array | None:
    """The gradient of ``sum(scale * loss_rows)`` with respect to the logits ``x``, where
    ``scale`` is a number or one value per row (``'mean'``: ``g / sum(weights)``; ``'sum'``:
    ``g``; ``'none'``: the per-row ``g``). None when unserved.

    Example:
        >>> dx = cross_entropy_backward(np.zeros((1, 2), np.float32), np.array([0]), 1.0)
        >>> dx is None or dx.tolist() == [[-0.5, 0.5]]
        True
    """
    args = _xent_args(x, target, weight)
    if args is None:
        return None
    f = kernel("loss", "cross_entropy", x.dtype)
    if f is None:
        return None
    x, t, w, n, c = args
    p, null = _seam.ptr, _seam.NULL
    rows, scale0 = null, 0.0
    if isinstance(scale, np.ndarray) and scale.size != 1:
        if scale.size != n:
            return None
        s = contiguous(scale, x.dtype)
        rows = p(s)
    else:
        scale0 = float(scale.item() if isinstance(scale, np.ndarray) else scale)
    dx = np.empty_like(x)
    bad = f(p(x), p(t), null if w is None else p(w), rows, scale0, null, null, p(dx), n, c,
            int(ignore_index), float(label_smoothing), kernel_threads(NS["cross_entropy"][1] * x.size))  # fmt: skip
    return None if bad >= 0 else dx


# -- embedding -----------------------------------------------------------------------------------
def embedding_backward(
    g: Array, indices: Array, num_weights: int, padding_idx: int | None = None
) -> Array | None:
    """The weight gradient of an embedding lookup: ``out[indices[k]] += g[k]`` into a zero
    ``(num_weights, D)`` table (``g`` is ``indices.shape + (D,)``); the ``padding_idx`` row
    stays zero. None when unserved (also for an index outside ``[0, num_weights)``).

    Example:
        >>> gw = embedding_backward(np.ones((3, 2), np.float32), np.array([0, 2, 0]), 3)
        >>> gw is None or gw.tolist() == [[2.0, 2.0], [0.0, 0.0], [1.0, 1.0]]
        True
    """
    if not is_array(g, indices) or indices.dtype.kind not in "iu" or g.ndim != indices.ndim + 1:
        return None
    if g.shape[:-1] != indices.shape or num_weights <= 0:
        return None
    f = kernel("embedding", "embedding_backward", g.dtype)
    if f is None:
        return None
    d = g.shape[-1]
    g, idx = contiguous(g), contiguous(indices, np.int64)
    pad = -1 if padding_idx is None else int(padding_idx) % num_weights
    out = np.zeros((num_weights, d), g.dtype)
    nt = min(kernel_threads(NS["embedding_backward"] * g.size), num_weights)
    bad = f(_seam.ptr(g), _seam.ptr(idx), _seam.ptr(out), idx.size, d, num_weights, pad, nt)
    return None if bad >= 0 else out


# -- dropout ---------------------------------------------------------------------------------------
def dropout_mask(u: Array, p: float, scale: float, dtype: Any) -> Array | None:
    """The scaled keep-mask of dropout from float32 uniform draws ``u``: ``scale`` where
    ``u >= p`` (kept), else 0, of ``dtype`` (float32 masks are written over ``u``, which must
    then be writable). The same bits as NumPy's ``(u >= float32(p)).astype(dtype) * scale``.
    None when unserved.

    Example:
        >>> m = dropout_mask(np.array([0.1, 0.7], np.float32), 0.5, 2.0, np.dtype(np.float32))
        >>> m is None or m.tolist() == [0.0, 2.0]
        True
    """
    if not is_array(u) or u.dtype != np.float32:
        return None
    f = kernel("dropout", "dropout_mask", np.dtype(dtype))
    if f is None:
        return None
    u = contiguous(u)
    inplace = u.dtype == dtype and u.flags.writeable
    mask = u if inplace else np.empty(u.shape, dtype)
    f(
        _seam.ptr(u),
        _seam.ptr(mask),
        u.size,
        float(p),
        float(scale),
        kernel_threads(NS["dropout_mask"] * u.size),
    )
    return mask

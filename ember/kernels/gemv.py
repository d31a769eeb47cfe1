"""The seam of the ``gemv`` kernel: a chain of linear layers (each ``x @ W.T + b``, then
an activation of :data:`ACTS` or none) on a few rows, in one C call (see
:mod:`ember.kernels.source.gemv`).

:func:`linear_chain` returns the chain's output, or None when the kernel cannot serve the
call (``EMBER_KERNELS=numpy``, no compiler, not float32/float64 NumPy arrays of one dtype,
more than :data:`MAX_ROWS` rows, a weight or bias that is not C-contiguous, shapes that do
not chain, an empty dimension, another activation); the caller then runs the layers with
NumPy. ``ember.compile`` puts chains of linear layers on a few rows into one
``linear_chain`` node (:mod:`ember.graph.passes.chain`), whose forward calls it.

Threads: a batch-1 layer streams its weights from cache or memory, and two cores stream
twice as fast. Measured on W4's MLP (784-512-512-10, 2.6 MB of float32 weights, 2-core
AMD EPYC), one call of the whole chain took 45 us on one thread and 35 us on two, against
55 us for NumPy's three OpenBLAS products with their bias and ReLU passes. The threads are
woken once per call, not once per layer, so a second thread pays off from about twice
:data:`MIN_WORK_PER_THREAD` ns of one core's work, less than ember's other kernels need.

Example:
    >>> import numpy as np
    >>> from ember.kernels.gemv import linear_chain
    >>> w = np.ones((2, 3), np.float32)
    >>> y = linear_chain(np.ones((1, 3), np.float32), [w, None], ["relu"])
    >>> y is None or y.tolist() == [[3.0, 3.0]]
    True
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import kernel
from .source.gemv import ACTS, MAX_LAYERS

__all__ = ["linear_chain", "MAX_ROWS", "MAX_LAYERS", "ACTS"]

Array = Any  # np.ndarray

MAX_ROWS = 8  # rows of x up to which the chain runs as matrix-vector products
NS_PER_WEIGHT = 0.07  # ns of one core per weight and row block, weights in L3 (W4's MLP)
MIN_WORK_PER_THREAD = 12_000  # ns: a second thread from twice this (see the docstring)
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_CACHE_SIZE = 64


class _Chain(NamedTuple):
    """What a call of one chain needs besides ``x``, prepared once per set of parameters:
    the parameters themselves are held by weak references, so that the cache never keeps
    a deleted model's weights alive, and checked by identity (and each weight's shape) on
    every call."""

    refs: tuple  # per parameter: (its weak reference, its shape), or (None, None) for no bias
    f: Any  # the cffi function
    dtype: Any
    n_layers: int
    k: int  # input features
    n_out: int  # output features
    weights: int  # weights in all layers
    dims: Any  # int64_t[] of the layer widths
    acts: Any  # int64_t[] of the activation codes
    w: Any  # void *[] of the weights
    b: Any  # void *[] of the biases (NULL for none)


_chains: dict[tuple, _Chain] = {}  # (ids of the parameters, acts) -> the prepared chain


def _address(a: Array) -> Any:
    return _seam.FFI.cast("void *", a.__array_interface__["data"][0])


def _prepare(dt: Any, k: int, params: Sequence[Array | None], acts: tuple) -> _Chain | None:
    """The prepared chain of ``params`` (``W_1, b_1, W_2, b_2, ...``), or None when the kernel
    cannot serve it."""
    n_layers = len(params) // 2
    if not 0 < n_layers <= MAX_LAYERS or len(params) != 2 * n_layers or len(acts) != n_layers:
        return None
    if any(a not in ACTS for a in acts):
        return None
    f = kernel("gemv", "gemv_chain", dt)
    if f is None:
        return None
    dims, refs, ws, bs = [k], [], [], []
    for w, b in zip(params[0::2], params[1::2]):
        if type(w) is not np.ndarray or w.dtype != dt or w.ndim != 2 or not w.flags.c_contiguous:
            return None
        n, kw = w.shape
        if kw != dims[-1] or n == 0:
            return None
        if b is not None and (
            type(b) is not np.ndarray
            or b.dtype != dt
            or b.shape != (n,)
            or not b.flags.c_contiguous
        ):
            return None
        refs += [
            (weakref.ref(w), w.shape),
            (None, None) if b is None else (weakref.ref(b), b.shape),
        ]
        ws.append(_address(w))
        bs.append(_seam.NULL if b is None else _address(b))
        dims.append(n)
    ffi = _seam.FFI
    return _Chain(
        tuple(refs), f, dt, n_layers, k, dims[-1],
        sum(a * b for a, b in zip(dims, dims[1:])),
        ffi.new("int64_t[]", dims), ffi.new("int64_t[]", [ACTS[a] for a in acts]),
        ffi.new("void *[]", ws), ffi.new("void *[]", bs),
    )  # fmt: skip


def _valid(chain: _Chain, params: Sequence[Array | None]) -> bool:
    """True when ``params`` are the very arrays ``chain`` was prepared for, each weight of
    the same shape (an in-place ``.shape`` assignment would change what it chains to)."""
    for (ref, shape), p in zip(chain.refs, params):
        if ref is None:
            if p is not None:
                return False
        elif ref() is not p or (shape is not None and p.shape != shape):
            return False
    return True


def linear_chain(x: Array, params: Sequence[Array | None], acts: Sequence[str]) -> Array | None:
    """``act_L(... act_1(x @ W_1.T + b_1) ... @ W_L.T + b_L)`` for ``params`` =
    ``(W_1, b_1, ..., W_L, b_L)`` (``W`` ``(N, K)``, ``b`` ``(N,)`` or None) and ``acts``
    naming one activation of :data:`ACTS` per layer (``"none"``, ``"relu"``, ``"tanh"``,
    ``"sigmoid"``, ``"silu"``, ``"gelu"``, ``"gelu_tanh"``); ``x`` is ``(*, K_1)`` with at most
    :data:`MAX_ROWS` rows in its leading dims. Returns an array of shape
    ``x.shape[:-1] + (N_L,)``, or None when unserved (see the module docstring).

    Example:
        >>> w = np.eye(2, dtype=np.float64)
        >>> y = linear_chain(np.array([-1.0, 2.0]), [w, None, w, np.ones(2)], ["relu", "none"])
        >>> y is None or y.tolist() == [1.0, 3.0]
        True
    """
    if type(x) is not np.ndarray or x.ndim == 0:
        return None
    k = x.shape[-1]
    m = x.size // k if k else 0
    if not 0 < m <= MAX_ROWS:
        return None
    key = (*map(id, params), *acts)
    chain = _chains.get(key)
    if chain is None or chain.dtype != x.dtype or chain.k != k or not _valid(chain, params):
        chain = _prepare(x.dtype, k, params, tuple(acts))
        if chain is None:
            return None
        if len(_chains) >= _CACHE_SIZE:
            _chains.clear()
        _chains[key] = chain
    x2 = x if x.ndim == 2 else x.reshape(m, k)
    if not x2.flags.c_contiguous:
        x2 = np.ascontiguousarray(x2)
    y = np.empty((m, chain.n_out), x.dtype)
    work = chain.weights * NS_PER_WEIGHT * (1 + (m - 1) / 4)
    nt = kernel_threads(work, MIN_WORK_PER_THREAD)
    ptr = _seam.ptr
    if chain.f(ptr(x2), m, k, chain.n_layers, chain.dims, chain.acts, chain.w, chain.b, ptr(y), nt):
        raise MemoryError("linear_chain: out of memory for the intermediate layers")
    return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (chain.n_out,))

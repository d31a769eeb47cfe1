"""The seam of the fused attention kernels (``scaled_dot_product_attention``).

:func:`sdpa_forward` and :func:`sdpa_backward` take NumPy arrays ``q (..., L, E)``,
``k (..., S, E)``, ``v (..., S, Ev)`` with equal batch dims (none, one or two of them), an
optional mask broadcastable to ``(..., L, S)`` (bool: True attends; float, of q's dtype:
added), and read them in place through their strides (no copies of the strided views a
model makes with ``transpose(1, 2)``). They return None when the kernels cannot serve the
call (``EMBER_KERNELS=numpy``, no compiler, another dtype, an empty array, batch dims that
differ or more than two of them); the caller then runs its NumPy path, the reference.

Example:
    >>> import numpy as np
    >>> from ember import kernels
    >>> q = np.zeros((1, 2, 3), np.float32)
    >>> o = kernels.sdpa_forward(q, q, np.ones((1, 2, 3), np.float32), None, 1.0, False)
    >>> o is None or o.tolist() == [[[1.0] * 3] * 2]
    True
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from ..threads import kernel_threads
from . import _seam
from ._seam import is_array, kernel

__all__ = ["sdpa_forward", "sdpa_backward", "heads_inner", "packed_qkv", "forward_layout"]

Array = Any  # np.ndarray


def _aligned(a: Array) -> Array:
    """``a`` itself when its address and strides are whole elements, else a contiguous copy."""
    return a if a.flags.aligned else np.ascontiguousarray(a)


def _addr(a: Array) -> Any:
    return _seam.FFI.cast("void *", a.ctypes.data)  # (a third cheaper than __array_interface__)


def _strides4(a: Array) -> list[int]:
    """Element strides of ``a`` seen as 4-D (missing leading dims have stride 0)."""
    st = [s // a.itemsize for s in a.strides]
    return [0] * (4 - len(st)) + st


# what _prepare derives from the operands' dtypes, shapes and strides alone (a model calls
# with the same few layouts every step): key -> (mask kind, dims, strides array), or None
_PLANS: dict[tuple, tuple | None] = {}


def _plan(q: Array, k: Array, v: Array, mask: Array) -> tuple | None:
    """(mask kind, dims, the 16 element strides as an int64 array) for aligned operands, or
    None when their shapes do not fit the kernels."""
    batch, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    if k.shape != batch + (S, E) or v.shape[:-2] != batch:
        return None
    kind = 0
    st = _strides4(q) + _strides4(k) + _strides4(v)
    if mask is None:
        st += [0, 0, 0, 0]
    else:
        if mask.ndim > q.ndim:
            return None
        if mask.dtype == np.bool_:
            kind = 2
        elif mask.dtype == q.dtype:
            kind = 1
        else:
            return None
        try:
            st += _strides4(np.broadcast_to(mask, batch + (L, S)))
        except ValueError:
            return None
    B, H = ((1, 1) + batch)[-2:]
    return kind, (B, H, L, S, E, Ev), np.array(st, dtype=np.int64)


def _prepare(q: Array, k: Array, v: Array, mask: Array, name: str) -> Any:
    """(kernel, arrays, mask, mask kind, dims, strides) or None when the kernel cannot serve."""
    if not is_array(q, k, v) or not q.ndim == k.ndim == v.ndim or not 2 <= q.ndim <= 4:
        return None
    dt = q.dtype
    if k.dtype != dt or v.dtype != dt:
        return None
    if mask is not None and type(mask) is not np.ndarray:
        return None
    f = kernel("attention", name, dt)
    if f is None:
        return None
    q, k, v = _aligned(q), _aligned(k), _aligned(v)
    key = (dt, q.shape, q.strides, k.shape, k.strides, v.shape, v.strides)
    if mask is not None:
        mask = _aligned(mask)
        key += (mask.dtype, mask.shape, mask.strides)
    plan = _PLANS.get(key, _PLANS)
    if plan is _PLANS:
        if len(_PLANS) >= 256:
            _PLANS.clear()
        plan = _PLANS[key] = _plan(q, k, v, mask)
    if plan is None:
        return None
    kind, dims, st = plan
    return f, q, k, v, mask, kind, dims, st


def _threads(dims: tuple, causal: bool, backward: bool) -> int:
    """Threads for a call: its work in units of about a nanosecond of one core (a causal
    pair does half the products; the backward about 2.4 times the forward's work), so that
    a second thread is woken (20-40 us on a busy 2-core machine) only for calls of some
    80 us or more: 6 pairs of (64, 64, 32) forward, 3 backward, both causal."""
    B, H, L, S, E, Ev = dims
    per = (20 if backward else 48) * (2 if causal else 1)
    return kernel_threads(-(-B * H * L * S * (E + Ev) // per))


def heads_inner(a: Array) -> bool:
    """True when the 4-D ``a`` (B, H, L, E) is laid out with its heads inside its rows, as
    the ``transpose(1, 2)`` of a ``(B, L, H, E)`` array is: the layout the kernels then give
    their results too, so that transposing back is free.

    Example:
        >>> a = np.zeros((2, 5, 3, 4))
        >>> heads_inner(a.transpose(0, 2, 1, 3)), heads_inner(a)
        (True, False)
    """
    return a.ndim == 4 and a.shape[1] > 1 and a.shape[2] > 1 and a.strides[1] < a.strides[2]


def packed_qkv(q: Array, k: Array, v: Array) -> bool:
    """True when the 4-D ``q``, ``k``, ``v`` (B, H, L, E) are the three interleaved views of
    one ``(B, L, 3, H, E)`` buffer, as splitting a fused qkv projection in three along its
    last dim and moving the heads out (``transpose(1, 2)``) makes them: one shape, one set of
    strides with rows ``3 * H * E`` and heads ``E`` elements apart, and ``k``, ``v`` starting
    ``H * E`` and ``2 * H * E`` elements after ``q``. Their gradients are then worth writing
    the same way (``sdpa_backward(..., packed=True)``), so that they tile one buffer again.

    Example:
        >>> qkv = np.zeros((2, 5, 3 * 4 * 8), np.float32)
        >>> q, k, v = (a.reshape(2, 5, 4, 8).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1))
        >>> packed_qkv(q, k, v), packed_qkv(q, v, k)
        (True, False)
    """
    if not (type(q) is type(k) is type(v) is np.ndarray) or q.ndim != 4:
        return False
    if not q.shape == k.shape == v.shape or not q.strides == k.strides == v.strides:
        return False
    if not q.dtype == k.dtype == v.dtype:
        return False
    _, H, _, E = q.shape
    size = q.itemsize
    if q.strides[1:] != (E * size, 3 * H * E * size, size):
        return False
    at = q.__array_interface__["data"][0]
    step = H * E * size
    return (
        k.__array_interface__["data"][0] == at + step
        and v.__array_interface__["data"][0] == at + 2 * step
    )


def _out_strides(shape: tuple, inner: bool) -> list[int]:
    """The (batch, head, row) element strides of a fresh result of ``shape`` (``(B, H, L,
    E)``, or fewer batch dims), laid out as ``(B, L, H, E)`` when ``inner``."""
    *batch, L, E = shape
    H = ([1] + batch)[-1]
    return [L * H * E, E, H * E] if inner else [H * L * E, L * E, E]


@functools.lru_cache(maxsize=64)
def _out_array(shape: tuple, inner: bool) -> Array:
    """:func:`_out_strides` as the int64 array the forward kernel reads."""
    return np.array(_out_strides(shape, inner), dtype=np.int64)


def forward_layout(q: Array, k: Array, v: Array, mask: Array = None) -> tuple | None:
    """What the forward kernel is told about its operands: ``(dims, strides, mask_kind,
    inner)``, the dims ``(B, H, L, S, E, Ev)``, the 16 element strides of q, k, v and the
    mask, the mask's kind (0 none, 1 float, 2 bool) and whether the result is laid out with
    the heads inside its rows (:func:`heads_inner`); None when the kernel cannot take them.
    For callers that run the kernel's C code themselves (``ember/graph/steps.py``).

    Example:
        >>> q = np.zeros((1, 2, 3, 4), np.float32)
        >>> forward_layout(q, q, q)[0]
        (1, 2, 3, 3, 4, 4)
    """
    if not is_array(q, k, v) or not q.ndim == k.ndim == v.ndim or not 2 <= q.ndim <= 4:
        return None
    if mask is not None and (type(mask) is not np.ndarray or not mask.flags.aligned):
        return None
    if not (q.flags.aligned and k.flags.aligned and v.flags.aligned):
        return None
    plan = _plan(q, k, v, mask)
    if plan is None:
        return None
    kind, dims, st = plan
    return dims, st.tolist(), kind, heads_inner(q)


def sdpa_forward(
    q: Array, k: Array, v: Array, mask: Array, scale: float, causal: bool
) -> Array | None:
    """``softmax(scale q k^T + mask) v`` (a fully masked row gives zeros when a mask or
    ``causal`` is given), as a fresh array, or None. For a 4-D ``q`` whose heads lie inside
    its rows (:func:`heads_inner`) the result is laid out the same way (the transpose of a
    C-contiguous ``(B, L, H, Ev)`` array), else it is C-contiguous.

    Example:
        >>> q = np.zeros((2, 1), np.float64)
        >>> o = sdpa_forward(q, q, np.array([[1.0], [3.0]]), None, 1.0, True)
        >>> o is None or o.tolist() == [[1.0], [2.0]]
        True
    """
    got = _prepare(q, k, v, mask, "sdpa_forward")
    if got is None:
        return None
    f, q, k, v, mask, kind, dims, st = got
    B, H, L, S, E, Ev = dims
    shape, inner = q.shape[:-1] + (Ev,), heads_inner(q)
    if inner:  # (B, L, H, Ev) in memory
        mem = np.empty((B, L, H, Ev), q.dtype)
        out = mem.transpose(0, 2, 1, 3)
    else:
        out = mem = np.empty(shape, q.dtype)
    ost = _out_array(shape, inner)
    f(_addr(q), _addr(k), _addr(v), _addr(mask) if mask is not None else _seam.NULL,
      _seam.ptr(mem), B, H, L, S, E, Ev, _seam.ptr(st), _seam.ptr(ost), kind, int(causal),
      float(scale), _threads(dims, causal, False))  # fmt: skip
    return out


def sdpa_backward(
    g: Array,
    q: Array,
    k: Array,
    v: Array,
    mask: Array,
    scale: float,
    causal: bool,
    inner: bool = False,
    packed: bool = False,
) -> Array | None:
    """The gradients of :func:`sdpa_forward` with respect to ``q``, ``k`` and ``v`` for the
    output gradient ``g`` (any strides), as one flat array ``[dq, dk, dv]`` (each raveled in
    C order of its shape, or, with ``inner`` and 4-D operands, of its ``(B, L, H, E)``
    transpose), or None. With ``packed`` (4-D ``q``, ``k``, ``v`` of one shape) the three
    are interleaved instead, as one ``(B, L, 3, H, E)`` array raveled: the layout of a fused
    qkv projection's output (:func:`packed_qkv`). The mask gets no gradient.

    Example:
        >>> q = np.zeros((2, 1), np.float64)
        >>> d = sdpa_backward(np.ones((2, 1)), q, q, q, None, 1.0, False)
        >>> d is None or d.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
        True
    """
    got = _prepare(q, k, v, mask, "sdpa_backward")
    if got is None or type(g) is not np.ndarray or g.dtype != q.dtype:
        return None
    f, q, k, v, mask, kind, dims, st = got
    B, H, L, S, E, Ev = dims
    if g.shape != q.shape[:-1] + (Ev,):
        return None
    g = _aligned(g)
    if g.strides[-1] != g.itemsize and Ev > 1:
        g = np.ascontiguousarray(g)
    inner = bool(inner) and q.ndim == 4
    nq, nk = q.size, k.size
    out = np.empty(nq + nk + v.size, dtype=q.dtype)
    ost = _strides4(g)[:3]
    if packed:
        if q.ndim != 4 or not q.shape == k.shape == v.shape:
            return None
        row = 3 * H * E  # (B, L, 3, H, E): each gradient's rows 3 H E elements apart
        ost += [L * row, E, row] * 3
        dq, dk, dv = out, out[H * E :], out[2 * H * E :]
    else:
        for t in (q, k, v):
            ost += _out_strides(t.shape, inner)
        dq, dk, dv = out[:nq], out[nq : nq + nk], out[nq + nk :]
    ost = np.array(ost, dtype=np.int64)
    f(_addr(g), _addr(q), _addr(k), _addr(v),
      _addr(mask) if mask is not None else _seam.NULL, _seam.ptr(dq), _seam.ptr(dk),
      _seam.ptr(dv), B, H, L, S, E, Ev, _seam.ptr(st), _seam.ptr(ost), kind, int(causal),
      float(scale), _threads(dims, causal, True))  # fmt: skip
    return out

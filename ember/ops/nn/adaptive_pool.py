"""Adaptive pooling: adaptive_avg_pool1d/2d and adaptive_max_pool1d/2d.

Window ``i`` of ``out`` over ``size`` inputs covers ``floor(i * size / out)`` to
``ceil((i + 1) * size / out)``. When the windows tile the input evenly these are plain
``avg_pool2d`` / ``max_pool2d`` calls; otherwise the average is the separable product
``A_h @ x @ A_w^T`` with constant averaging matrices (two matmuls, whose own gradients
apply), and the max reads ``x`` at indices computed once (``pool_gather``; its gradient
``pool_scatter`` adds into those positions, and each is the other's derivative).

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.adaptive_avg_pool2d(ember.ones(2, 3, 7, 5), 1).shape
    (2, 3, 1, 1)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from ..creation import as_tensor
from ..linalg import matmul
from ..reduce import mean
from ..registry import defop

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
]


# -- gather / scatter by flat spatial index (adaptive max pooling) --------------------------
@defop("pool_gather")
def _pool_gather(xp, x, idx):
    """``x`` (N, C, H, W) read at flat spatial indices ``idx`` (N, C, ...)."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    return xp.take_along_axis(flat, idx.reshape(n, c, -1), axis=2).reshape(idx.shape)


@_pool_gather.defgrad
def _(ctx, g):
    x, idx = ctx.inputs
    return _pool_scatter(g, idx, in_shape=tuple(x.shape)), None


@defop("pool_scatter")
def _pool_scatter(xp, g, idx, *, in_shape):
    """Zeros of ``in_shape`` with ``g`` added at flat spatial indices ``idx``."""
    n, c = in_shape[:2]
    size = int(np.prod(in_shape[2:]))
    offs = (xp.arange(n * c, dtype=xp.int64) * size).reshape(n, c, 1)
    flat = (idx.reshape(n, c, -1) + offs).reshape(-1)
    out = xp.bincount(flat, weights=g.reshape(-1), minlength=n * c * size)
    return out.astype(g.dtype).reshape(in_shape)


@_pool_scatter.defgrad
def _(ctx, u):
    _, idx = ctx.inputs
    return _pool_gather(u, idx), None


@_pool_gather.defonnx
def _(g, x, idx):
    n, c = x.shape[:2]
    flat = g.op("Reshape", x, g.dims((n, c, -1)))
    picked = g.op("GatherElements", flat, g.op("Reshape", idx, g.dims((n, c, -1))), axis=2)
    return g.op("Reshape", picked, g.op("Shape", idx))


@_pool_scatter.defonnx
def _(g, dy, idx, *, in_shape):
    g.need_opset(16, "adaptive max pooling's gradient (ScatterElements with reduction)")
    n, c = in_shape[:2]
    size = int(np.prod(in_shape[2:]))
    rows = g.op("Reshape", dy, g.dims((n, c, -1)))
    where = g.op("Reshape", idx, g.dims((n, c, -1)))
    out = g.op(
        "ScatterElements", g.zeros((n, c, size), dy.dtype), where, rows, axis=2, reduction="add"
    )
    return g.reshape(out, in_shape)


def _adaptive_bounds(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    o = np.arange(out)
    return (o * size) // out, -((-(o + 1) * size) // out)


def _adaptive_rows(size: int, out: int) -> np.ndarray:
    """(out, longest window) input positions of each window, the last repeated to pad."""
    start, end = _adaptive_bounds(size, out)
    k = int((end - start).max())
    return np.minimum(start[:, None] + np.arange(k)[None, :], (end - 1)[:, None])


@defop("adaptive_max_pool2d_indices")
def _adaptive_max_pool2d_indices(xp, x, *, out_hw):
    """Flat ``h * W + w`` index of each adaptive window's max (int64)."""
    h, w = x.shape[2:]
    rows, cols = _adaptive_rows(h, out_hw[0]), _adaptive_rows(w, out_hw[1])
    xr = x[:, :, xp.asarray(rows)]  # (N, C, OH, KH, W)
    best = idx = None
    for j in range(rows.shape[1]):
        for i in range(cols.shape[1]):
            v = xr[:, :, :, j][..., xp.asarray(cols[:, i])]
            flat = xp.asarray(rows[:, j][:, None] * w + cols[:, i][None, :])
            if best is None:
                best, idx = v, xp.broadcast_to(flat, v.shape)
                continue
            upd = v > best
            if v.dtype.kind == "f":
                upd |= xp.isnan(v)
            best, idx = xp.where(upd, v, best), xp.where(upd, flat, idx)
    return xp.ascontiguousarray(idx).astype(xp.int64)


@_adaptive_max_pool2d_indices.defonnx
def _(g, x, *, out_hw):  # gather each window's taps, then the first max among them
    (n, c, h, w), (oh, ow) = x.shape, out_hw
    rows, cols = _adaptive_rows(h, oh), _adaptive_rows(w, ow)
    kh, kw = rows.shape[1], cols.shape[1]
    taps = g.op("Gather", g.op("Gather", x, g.const(rows), axis=2), g.const(cols), axis=4)
    taps = g.op("Transpose", taps, perm=[0, 1, 2, 4, 3, 5])  # (N, C, OH, OW, KH, KW)
    taps = g.op("Reshape", taps, g.dims((n, c, oh, ow, kh * kw)))
    best = g.op("ArgMax", taps, axis=4, keepdims=1)
    table = (rows[:, None, :, None] * w + cols[None, :, None, :]).reshape(oh, ow, kh * kw)
    table = g.op("Expand", g.const(table.astype(np.int64)), g.op("Shape", taps))
    return g.squeeze(g.op("GatherElements", table, best, axis=4), [4])


def _adaptive_size(name: str, output_size: Any, in_hw: tuple, nd: int) -> tuple[int, ...]:
    sizes = (output_size,) * nd if isinstance(output_size, int | None) else tuple(output_size)
    if len(sizes) != nd:
        raise ShapeError(name, f"output_size must be an int or {nd} ints, got {output_size!r}")
    out = tuple(i if s is None else s for s, i in zip(sizes, in_hw))
    if any(not isinstance(s, int) or s < 1 for s in out):
        raise ShapeError(name, f"output_size must be positive ints, got {output_size!r}")
    return out


def _adaptive_avg(name: str, nd: int, input: Tensor, output_size: Any) -> Tensor:
    from .pool import _avg_pool2d, _batched, _unbatch  # pool.py re-exports this module

    x, batched = _batched(name, input, nd)
    if input._data.dtype.kind != "f":
        raise DTypeError(name, f"expected a floating-point input, got dtype {input.dtype}")
    in_hw = tuple(x.shape[2:])
    out = _adaptive_size(name, output_size, in_hw[2 - nd :], nd)
    oh, ow = out if nd == 2 else (1,) + out
    h, w = in_hw
    if (oh, ow) == (1, 1):
        y = mean(x, dim=(2, 3), keepdim=True)
    elif h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        attrs = {"kernel_size": k, "stride": k, "padding": (0, 0), "dilation": (1, 1)}
        y = _avg_pool2d(x, out_hw=(oh, ow), count_include_pad=True, divisor_override=None, **attrs)
    else:  # separable: out = A_h @ x @ A_w^T with averaging matrices
        mats = []
        for size, o in ((h, oh), (w, ow)):
            start, end = _adaptive_bounds(size, o)
            pos = np.arange(size)[None, :]
            a = ((pos >= start[:, None]) & (pos < end[:, None])) / (end - start)[:, None]
            mats.append(as_tensor(a.astype(x._data.dtype), device=x.device))
        y = matmul(matmul(mats[0], x), mats[1].transpose(0, 1))
    return _unbatch(y, nd, batched)


def _adaptive_max(name: str, nd: int, input: Tensor, output_size: Any, return_indices: bool):
    from .pool import _batched, _max_pool2d, _max_pool2d_indices, _unbatch

    x, batched = _batched(name, input, nd)
    if input._data.dtype.kind not in "fiu":
        raise DTypeError(name, f"expected a numeric input, got dtype {input.dtype}")
    in_hw = tuple(x.shape[2:])
    out = _adaptive_size(name, output_size, in_hw[2 - nd :], nd)
    oh, ow = out if nd == 2 else (1,) + out
    h, w = in_hw
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        attrs = {"kernel_size": k, "stride": k, "padding": (0, 0), "dilation": (1, 1)}
        y = _max_pool2d(x, out_hw=(oh, ow), **attrs)
        idx = (
            _max_pool2d_indices(x, y.detach(), out_hw=(oh, ow), **attrs) if return_indices else None
        )
    else:
        idx = _adaptive_max_pool2d_indices(x, out_hw=(oh, ow))
        y = _pool_gather(x, idx)
    if not return_indices:
        return _unbatch(y, nd, batched)
    return _unbatch(y, nd, batched), _unbatch(idx, nd, batched)


# -- public functions -----------------------------------------------------------------------
def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a fixed ``output_size`` (int, or pair whose ``None`` keeps the
    input's size), as ``torch.nn.functional.adaptive_avg_pool2d``: window ``i`` covers
    ``floor(i * H / OH)`` to ``ceil((i + 1) * H / OH)``.

    Example:
        >>> F.adaptive_avg_pool2d(ember.ones(2, 3, 7, 5), (2, None)).shape
        (2, 3, 2, 5)
    """
    return _adaptive_avg("adaptive_avg_pool2d", 2, input, output_size)


def adaptive_avg_pool1d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling of ``input`` (N, C, L) or (C, L) to ``output_size`` positions, as
    ``torch.nn.functional.adaptive_avg_pool1d``.

    Example:
        >>> F.adaptive_avg_pool1d(ember.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist()
        [[[2.0, 4.0]]]
    """
    return _adaptive_avg("adaptive_avg_pool1d", 1, input, output_size)


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling to a fixed ``output_size`` (windows as in ``adaptive_avg_pool2d``), as
    ``torch.nn.functional.adaptive_max_pool2d``.

    Example:
        >>> F.adaptive_max_pool2d(ember.arange(25.0).reshape(1, 1, 5, 5), 2).tolist()
        [[[[12.0, 14.0], [22.0, 24.0]]]]
    """
    return _adaptive_max("adaptive_max_pool2d", 2, input, output_size, return_indices)


def adaptive_max_pool1d(input: Tensor, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling of ``input`` (N, C, L) or (C, L) to ``output_size`` positions, as
    ``torch.nn.functional.adaptive_max_pool1d``.

    Example:
        >>> F.adaptive_max_pool1d(ember.tensor([[[1.0, 5.0, 2.0, 4.0, 3.0]]]), 2).tolist()
        [[[5.0, 4.0]]]
    """
    return _adaptive_max("adaptive_max_pool1d", 1, input, output_size, return_indices)

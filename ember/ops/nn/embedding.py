"""Lookup tables: ``embedding`` and ``one_hot``.

``embedding`` is a primitive gather of weight rows; its backward op scatters the gradient
back with ``add.at`` (so repeated indices accumulate), zeroes the ``padding_idx`` row and,
with ``scale_grad_by_freq``, divides by each index's count in the batch. The backward op is
linear in the gradient; its own derivative is the gather again, so second derivatives work.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> w = ember.tensor([[0.0, 0.0], [1.0, 2.0]])
    >>> F.embedding(ember.tensor([1, 0, 1]), w).tolist()
    [[1.0, 2.0], [0.0, 0.0], [1.0, 2.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import kernels
from ...autograd.mode import no_grad
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from ..elementwise import mul
from ..registry import defop

__all__ = ["embedding", "one_hot"]


class IndexOutOfRangeError(ShapeError, IndexError):
    """An index outside the table (PyTorch raises ``IndexError``)."""


def _check_range(name: str, idx: Any, n: int, what: str) -> None:
    if idx.size:
        bad = (idx < 0) | (idx >= n)
        if bad.any():
            value = int(idx[bad].ravel()[0])
            raise IndexOutOfRangeError(name, f"index {value} is out of range for {what}")


@defop("embedding", saves_inputs=(1,), onnx="Gather")
def _embedding(xp, weight, idx, padding_idx, scale_grad_by_freq):
    _check_range("embedding", idx, weight.shape[0], f"a weight of shape {tuple(weight.shape)}")
    return xp.take(weight, idx, axis=0)


@_embedding.defgrad
def _(ctx, g):
    _, idx = ctx.inputs  # only the indices are kept: the weight may change in place
    gw = _embedding_backward(g, idx, num_weights=ctx.input_shape(0)[0], **ctx.attrs)
    return gw, None


@_embedding.defonnx
def _(g, weight, idx, padding_idx, scale_grad_by_freq):
    return g.op("Gather", weight, idx, axis=0)


def _row_scale(xp: Any, flat: Any, num_weights: int, padding_idx: Any, freq: bool, dtype: Any):
    """Per-lookup factor: 1/count with ``scale_grad_by_freq``, 0 at ``padding_idx``; or None."""
    scale = None
    if freq:
        counts = xp.bincount(flat, minlength=num_weights)
        scale = (1.0 / counts[flat]).astype(dtype)
    if padding_idx is not None:
        keep = (flat != padding_idx).astype(dtype)
        scale = keep if scale is None else scale * keep
    return scale


_CHUNK = 1 << 20  # elements per scatter step (bounds the flat index array to 8 MB)


def _scatter_rows_add(xp: Any, out: Any, rows: Any, values: Any) -> None:
    """``out[rows[i]] += values[i]`` with repeats accumulating.

    Done as a 1-D ``add.at`` on flat element indices (several times faster than the 2-D
    form in NumPy), a bounded number of rows at a time.
    """
    n, dim = values.shape
    if n == 0 or dim == 0:
        return
    flat_out = out.reshape(-1)
    cols = xp.arange(dim)
    step = max(1, _CHUNK // dim)
    for start in range(0, n, step):
        r = rows[start : start + step]
        idx = (r[:, None] * dim + cols).reshape(-1)
        xp.add.at(flat_out, idx, values[start : start + step].reshape(-1))


@defop("embedding_backward", saves_inputs=(1,))
def _embedding_backward(xp, g, idx, num_weights, padding_idx, scale_grad_by_freq):
    dim = g.shape[-1]
    flat = idx.reshape(-1)
    g2 = g.reshape(-1, dim)
    if scale_grad_by_freq:
        g2 = g2 * _row_scale(xp, flat, num_weights, None, True, g.dtype)[:, None]
    out = kernels.embedding_backward(g2.reshape(idx.shape + (dim,)), idx, num_weights, padding_idx)
    if out is not None:
        return out
    out = xp.zeros((num_weights, dim), dtype=g.dtype)
    _scatter_rows_add(xp, out, flat.astype(np.int64, copy=False), g2)
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


@_embedding_backward.defgrad
def _(ctx, u):
    # linear in g: the adjoint of the scatter-add is the gather (with the same row scaling)
    _, idx = ctx.inputs
    a = ctx.attrs
    out = _embedding(u, idx, padding_idx=a["padding_idx"], scale_grad_by_freq=False)
    xp = u.device.xp
    scale = _row_scale(
        xp,
        idx._data.reshape(-1),
        a["num_weights"],
        a["padding_idx"],
        a["scale_grad_by_freq"],
        u._data.dtype,
    )
    if scale is not None:
        out = mul(out, Tensor._make(scale.reshape(tuple(idx.shape) + (1,)), u.device))
    return out, None


@_embedding_backward.defonnx
def _(g, dy, idx, num_weights, padding_idx, scale_grad_by_freq):
    g.need_opset(16, "embedding's gradient (ScatterND with reduction)")
    dim = dy.shape[-1]
    flat = g.op("Reshape", idx, g.ints([-1]))
    rows = g.op("Reshape", dy, g.ints([-1, dim]))
    if scale_grad_by_freq:  # divide each lookup by how often its row was looked up
        ones = g.op("Expand", g.scalar(1, "int64"), g.op("Shape", flat))
        counts = g.op(
            "ScatterElements", g.zeros((num_weights,), "int64"), flat, ones, axis=0, reduction="add"
        )
        per = g.cast(g.op("Gather", counts, flat, axis=0), dy.dtype)
        rows = g.op("Div", rows, g.unsqueeze(per, [1]))
    zeros = g.zeros((num_weights, dim), dy.dtype)
    out = g.op("ScatterND", zeros, g.unsqueeze(flat, [1]), rows, reduction="add")
    if padding_idx is None:
        return out
    keep = np.ones((num_weights, 1), dtype=dy.dtype)
    keep[padding_idx] = 0
    return g.op("Mul", out, g.const(keep))


def _renorm(weight: Tensor, idx: Tensor, max_norm: float, norm_type: float) -> None:
    """Rescale, in place, the looked-up rows whose ``norm_type`` norm exceeds ``max_norm``."""
    xp = weight.device.xp
    with no_grad():
        rows = xp.unique(idx._data.reshape(-1))
        sel = weight._data[rows]
        norms = (xp.abs(sel) ** norm_type).sum(axis=1) ** (1.0 / norm_type)
        scale = xp.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight._data[rows] = sel * scale[:, None].astype(sel.dtype)
        weight._vc[0] += 1


def embedding(
    input: Tensor,
    weight: Tensor,
    padding_idx: int | None = None,
    max_norm: float | None = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Rows of ``weight`` (``(num_embeddings, embedding_dim)``) picked by integer ``input``;
    the output has shape ``input.shape + (embedding_dim,)``.

    ``padding_idx``'s row receives no gradient; ``max_norm`` renormalizes the looked-up
    rows in place first; ``scale_grad_by_freq`` divides gradients by index counts.
    ``sparse`` is accepted for compatibility; the gradient is always dense.

    Example:
        >>> w = ember.randn(10, 3, requires_grad=True)
        >>> F.embedding(ember.tensor([[1, 2], [4, 9]]), w).shape
        (2, 2, 3)
    """
    if input._data.dtype.kind not in "iu":
        raise DTypeError(
            "embedding",
            f"expected integer indices (int64 or int32), got {input.dtype} for input of shape "
            f"{tuple(input.shape)}",
        )
    if weight.ndim != 2:
        raise ShapeError(
            "embedding",
            f"weight must be 2-D (num_embeddings, embedding_dim), got shape {tuple(weight.shape)}",
        )
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ShapeError(
                "embedding",
                f"padding_idx {padding_idx} must be within num_embeddings ({n})",
            )
        padding_idx = int(padding_idx) % n
    if max_norm is not None:
        _renorm(weight, input, float(max_norm), float(norm_type))
    return _embedding(
        weight, input, padding_idx=padding_idx, scale_grad_by_freq=bool(scale_grad_by_freq)
    )


@defop("one_hot", onnx="OneHot")
def _one_hot(xp, t, num_classes):
    if t.size:
        if bool((t < 0).any()):
            raise ShapeError("one_hot", f"class values must be non-negative, got {int(t.min())}")
        if bool((t >= num_classes).any()):
            raise ShapeError(
                "one_hot",
                f"class values must be smaller than num_classes ({num_classes}), got "
                f"{int(t.max())}",
            )
    out = xp.zeros((t.size, num_classes), dtype=np.int64)
    out[xp.arange(t.size), t.reshape(-1)] = 1
    return out.reshape(tuple(t.shape) + (num_classes,))


@_one_hot.defonnx
def _(g, t, num_classes):
    values = g.const(np.array([0, 1], dtype=np.int64))
    return g.op("OneHot", t, g.size(num_classes), values, axis=-1, dtype=np.int64)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding: shape ``tensor.shape + (num_classes,)``; ``num_classes=-1``
    takes the largest value plus one.

    Example:
        >>> F.one_hot(ember.tensor([0, 2]), 3).tolist()
        [[1, 0, 0], [0, 0, 1]]
    """
    if tensor._data.dtype.kind not in "iu":
        raise DTypeError(
            "one_hot", f"one_hot is only applicable to integer tensors, got {tensor.dtype}"
        )
    if num_classes == -1:
        if tensor.numel() == 0:
            raise ValueError("one_hot: can not infer the number of classes from an empty tensor")
        tensor._read("one_hot(num_classes=-1)")  # the output's shape depends on the values
        num_classes = int(tensor._data.max()) + 1
    return _one_hot(tensor, num_classes=int(num_classes))

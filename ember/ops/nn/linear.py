"""Affine maps: ``linear`` (one primitive) and ``bilinear`` (a composite), and
``linear_chain``, the op ``ember.compile`` puts in place of linear layers on a few rows.

``linear(x, W, b) = x @ W.T + b`` with ``W`` of shape ``(out_features, in_features)`` like
PyTorch. As a primitive it adds the bias in place into the fresh product, and its backward
flattens the batch dims so that the weight gradient is one 2-D matrix product
(``g.T @ x``) instead of a batched product followed by a sum.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.linear(ember.ones(2, 3), ember.ones(4, 3), ember.zeros(4)).shape
    (2, 4)
"""

from __future__ import annotations

from ... import kernels
from ...errors import DTypeError, ShapeError
from ...tensor import Tensor
from .. import activation  # noqa: F401  (registers the activations a chain applies)
from ..creation import ones
from ..linalg import matmul
from ..reduce import sum as _sum
from ..registry import REGISTRY, defop
from ..shape import permute, reshape, transpose, unsqueeze

__all__ = ["linear", "bilinear"]


@defop("linear", saves_inputs=(0, 1), onnx="Gemm")
def _linear(xp, x, w, b):
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x  # the batch dims fold into one GEMM
    y = kernels.tall_matmul(x2, w.T, bias=b)  # many rows: ember's GEMM, bias fused
    if y is None:
        y = xp.matmul(x2, w.T)
        if b is not None:
            y += b
    return y.reshape(x.shape[:-1] + (w.shape[0],)) if x.ndim > 2 else y


@_linear.defgrad
def _(ctx, g):
    x, w, _ = ctx.inputs
    need_x, need_w, need_b = ctx.needs_input_grad
    out_f, in_f = w.shape
    gx = matmul(g, w) if need_x else None
    gw = gb = None
    if need_w or need_b:
        g2 = reshape(g, (-1, out_f))
        if need_w:
            gw = matmul(transpose(g2, 0, 1), reshape(x, (-1, in_f)))
        if need_b:
            gb = _bias_grad(g2)
    return gx, gw, gb


BIAS_GEMV_ROWS = 256  # from this many rows the bias gradient is a matrix-vector product


def _bias_grad(g2: Tensor) -> Tensor:
    """The column sums of the 2-D gradient ``g2``: ``sum(g2, 0)``, whose forward runs the
    column-sums kernel on ember's threads for large float matrices on the CPU
    (:func:`ember.kernels.column_sums`). Without the C kernels, tall float matrices take
    ``ones @ g2``, a BLAS matrix-vector product on all BLAS threads, ~2-3x faster than
    NumPy's one-thread ``sum(axis=0)`` on W3's (2048, 128..512) gradients (the sums come in
    another order). Inside W3's compiled step that product took 0.14-0.18 ms for 384 and
    512 columns and woke OpenBLAS's threads each time."""
    rows = g2.shape[0]
    if (
        rows < BIAS_GEMV_ROWS
        or not g2.is_floating_point()
        or (g2.device.type == "cpu" and kernels.available())
    ):
        return _sum(g2, 0)
    return matmul(ones(rows, dtype=g2.dtype, device=g2.device), g2)


# The activations a linear_chain applies after a layer: its name -> (op, attributes)
CHAIN_ACTIVATIONS: dict[str, tuple[str, dict]] = {
    "none": ("", {}),
    "relu": ("relu", {}),
    "tanh": ("tanh", {}),
    "sigmoid": ("sigmoid", {}),
    "silu": ("silu", {}),
    "gelu": ("gelu", {"approximate": "none"}),
    "gelu_tanh": ("gelu", {"approximate": "tanh"}),
}


@defop("linear_chain", saves_inputs=False)
def _linear_chain(xp, x, *params, acts):
    """Linear layers applied in turn, ``params`` = ``(W_1, b_1, ..., W_L, b_L)`` (a bias may
    be None), each followed by its activation in ``acts`` (a name of
    :data:`CHAIN_ACTIVATIONS`): what a compiled graph runs for a chain of linear layers on a
    few rows, in one C call (:mod:`ember.graph.passes.chain`, :mod:`ember.kernels.gemv`).
    It has no backward: the pass builds it only from values nothing else reads, which a
    graph that computes gradients never has."""
    y = kernels.linear_chain(x, params, acts)
    if y is not None:
        return y
    for w, b, act in zip(params[0::2], params[1::2], acts):
        x = _linear.forward(xp, x, w, b)
        op, attrs = CHAIN_ACTIVATIONS[act]
        if op:
            x = REGISTRY[op].forward(xp, x, **attrs)
    return x


@_linear.defonnx
def _(g, x, w, b):
    if x.ndim == 2 and x.dtype.kind == "f":
        return g.op("Gemm", x, w, b, transB=1)
    y = g.op("MatMul", x, g.op("Transpose", w, perm=[1, 0]))
    return y if b is None else g.op("Add", y, b)


@_linear_chain.defonnx
def _(g, x, *params, acts):
    lead = tuple(x.shape[:-1])
    for w, b, act in zip(params[0::2], params[1::2], acts):
        x = _linear.onnx(g, x, w, b)
        op, attrs = CHAIN_ACTIVATIONS[act]
        if op:
            lower = REGISTRY[op].onnx
            x = g.op(lower, x) if isinstance(lower, str) else lower(g, x, **attrs)
        x.shape = lead + (w.shape[0],)  # (the next layer's lowering reads the rank)
    return x


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias``: ``input`` ``(*, in_features)``, ``weight``
    ``(out_features, in_features)``, ``bias`` ``(out_features,)``.

    Example:
        >>> F.linear(ember.tensor([[1.0, 2.0]]), ember.tensor([[1.0, 1.0]])).tolist()
        [[3.0]]
    """
    if weight.ndim != 2:
        raise ShapeError(
            "linear",
            f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}",
        )
    out_f, in_f = weight.shape
    if input.ndim == 0 or input.shape[-1] != in_f:
        raise ShapeError(
            "linear",
            f"input of shape {tuple(input.shape)} does not match weight of shape "
            f"{tuple(weight.shape)}: expected in_features={in_f} as the input's last dimension",
        )
    if bias is not None and tuple(bias.shape) not in ((out_f,), (), (1,)):
        raise ShapeError(
            "linear",
            f"bias of shape {tuple(bias.shape)} does not match weight of shape "
            f"{tuple(weight.shape)}; expected ({out_f},)",
        )
    dts = {t._data.dtype for t in (input, weight, bias) if t is not None}
    if len(dts) > 1:
        raise DTypeError(
            "linear",
            "input, weight and bias must have the same dtype, got "
            + ", ".join(str(t.dtype) for t in (input, weight, bias) if t is not None),
        )
    return _linear(input, weight, bias)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y[..., o] = sum_ij input1[..., i] * weight[o, i, j] * input2[..., j] + bias[o]``.

    Example:
        >>> F.bilinear(ember.ones(2, 3), ember.ones(2, 4), ember.ones(5, 3, 4)).shape
        (2, 5)
    """
    if weight.ndim != 3:
        raise ShapeError(
            "bilinear",
            f"weight must be 3-D (out_features, in1_features, in2_features), got shape "
            f"{tuple(weight.shape)}",
        )
    out_f, in1, in2 = weight.shape
    s1, s2 = tuple(input1.shape), tuple(input2.shape)
    if not s1 or not s2 or s1[-1] != in1 or s2[-1] != in2 or s1[:-1] != s2[:-1]:
        raise ShapeError(
            "bilinear",
            f"inputs of shapes {s1} and {s2} do not match weight of shape "
            f"{tuple(weight.shape)}: expected (*, {in1}) and (*, {in2}) with the same batch dims",
        )
    x1 = reshape(input1, (-1, in1))
    x2 = reshape(input2, (-1, in2))
    w = reshape(permute(weight, 1, 0, 2), (in1, out_f * in2))
    t = reshape(matmul(x1, w), (-1, out_f, in2))  # (n, out, in2)
    y = reshape(matmul(t, unsqueeze(x2, -1)), (-1, out_f))
    if bias is not None:
        y = y + bias
    return reshape(y, s1[:-1] + (out_f,))

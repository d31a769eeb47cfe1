"""The table of ONNX ops the importer runs: ONNX op type -> an implementation in ember ops.

An implementation is ``fn(ctx, *inputs) -> output or tuple of outputs``: ``ctx`` is the
node's :class:`NodeContext` (attributes, opset, output count) and the inputs are ember
tensors, except at the positions the op declares ``static`` (shapes, axes, sizes), which get
NumPy arrays; an omitted optional input is None. Because implementations are written in
ember ops they are differentiable and traceable. This module holds the registry and the
elementwise, logical and reduction ops; :mod:`ember.onnx.import_ops_shape`,
:mod:`ember.onnx.import_ops_nn` and :mod:`ember.onnx.import_ops_more` hold the rest.

Example:
    >>> from ember.onnx.import_ops import OPS
    >>> OPS["", "Relu"].static
    ()
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import ember as E

from ..tensor import Tensor

__all__ = ["OPS", "OpSpec", "NodeContext", "onnx_op", "supported"]


class OpSpec:
    """One table entry: the implementation, its static input positions, whether it may run
    on static values at load/shape time (False for random ops), and the first opset."""

    __slots__ = ("fn", "static", "foldable", "since")

    def __init__(self, fn: Callable[..., Any], static: tuple, foldable: bool, since: int) -> None:
        self.fn, self.static, self.foldable, self.since = fn, static, foldable, since


OPS: dict[tuple[str, str], OpSpec] = {}


def onnx_op(
    *names: str, static: tuple = (), foldable: bool = True, domain: str = "", since: int = 1
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``fn(ctx, *inputs)`` as the implementation of the ONNX ops ``names``.

    Example:
        >>> @onnx_op("MyIdentity", domain="example")
        ... def _(ctx, x):
        ...     return x
        >>> ("example", "MyIdentity") in OPS
        True
    """

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            OPS[(domain, name)] = OpSpec(fn, tuple(static), foldable, since)
        return fn

    return wrap


def supported(op_type: str, domain: str, opset: int) -> bool:
    """True when the table runs ``op_type`` of ``domain`` at ``opset``.

    Example:
        >>> supported("Add", "", 18), supported("NoSuchOp", "", 18)
        (True, False)
    """
    _load_tables()
    spec = OPS.get(("" if domain == "ai.onnx" else domain, op_type))
    return spec is not None and opset >= spec.since


def _load_tables() -> None:
    from . import import_ops_control, import_ops_more, import_ops_nn, import_ops_shape  # noqa: F401


class NodeContext:
    """What an implementation knows about its node: ``op_type``, ``name``, ``attrs`` (Python
    values; tensors as NumPy arrays; subgraphs as GraphProto), ``opset`` (of its domain),
    ``n_outputs`` and the ``module`` that runs it.

    Example:
        >>> NodeContext("Softmax", "", {"axis": 1}, 13, 1).attr("axis", -1)
        1
    """

    __slots__ = ("op_type", "name", "attrs", "opset", "n_outputs", "module")

    def __init__(
        self, op_type: str, name: str, attrs: dict, opset: int, n_outputs: int, module: Any = None
    ) -> None:
        self.op_type, self.name, self.attrs = op_type, name, attrs
        self.opset, self.n_outputs, self.module = opset, n_outputs, module

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)


# -- helpers shared by the op files --------------------------------------------------------
def like(t: Tensor, ref: Any) -> Tensor:
    """``t`` cast to ``ref``'s dtype (a tensor or a NumPy dtype)."""
    dt = ref._data.dtype if isinstance(ref, Tensor) else np.dtype(ref)
    return t if t._data.dtype == dt else E.cast(t, dt)


def const(value: Any, dtype: Any, device: Any = None) -> Tensor:
    """A constant tensor (from Python/NumPy data)."""
    return E.as_tensor(np.asarray(value, dtype=dtype), device=device)


def ints(a: Any) -> list[int]:
    """A static 1-D (or 0-d) array as a list of Python ints."""
    return [int(v) for v in np.asarray(a).reshape(-1)]


def norm_axes(axes: Any, ndim: int) -> tuple[int, ...]:
    return tuple(sorted(int(a) % max(ndim, 1) if ndim else 0 for a in axes))


# -- elementwise arithmetic -----------------------------------------------------------------
def _binary(fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(ctx: NodeContext, a: Tensor, b: Tensor) -> Tensor:
        return like(fn(a, b), a)

    return impl


onnx_op("Add")(_binary(E.add))
onnx_op("Sub")(_binary(E.sub))
onnx_op("Mul")(_binary(E.mul))


@onnx_op("Div")
def _(ctx, a, b):
    if a._data.dtype.kind in "iu":  # C-style: truncated toward zero
        return like(E.div(a, b, rounding_mode="trunc"), a)
    return E.div(a, b)


@onnx_op("Mod")
def _(ctx, a, b):
    return like(E.fmod(a, b) if ctx.attr("fmod", 0) else E.remainder(a, b), a)


@onnx_op("Pow")
def _(ctx, a, b):
    if a._data.dtype.kind in "iu" and b._data.dtype.kind == "f":
        return like(E.pow(E.cast(a, b._data.dtype), b), a)
    return like(E.pow(a, b), a)


def _variadic(fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(ctx: NodeContext, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return like(out, xs[0])

    return impl


onnx_op("Sum")(_variadic(E.add))
onnx_op("Max")(_variadic(E.maximum))
onnx_op("Min")(_variadic(E.minimum))


@onnx_op("Mean")
def _(ctx, *xs):
    return like(E.div(_variadic(E.add)(ctx, *xs), float(len(xs))), xs[0])


def _unary(fn: Callable[..., Any]) -> Callable[..., Any]:
    def impl(ctx: NodeContext, x: Tensor) -> Tensor:
        return like(fn(x), x)

    return impl


for _name, _fn in {
    "Neg": E.neg, "Abs": E.abs, "Sign": E.sign, "Sqrt": E.sqrt, "Exp": E.exp, "Log": E.log,
    "Reciprocal": E.reciprocal, "Sin": E.sin, "Cos": E.cos, "Tan": E.tan, "Asin": E.asin,
    "Acos": E.acos, "Atan": E.atan, "Sinh": E.sinh, "Cosh": E.cosh, "Asinh": E.asinh,
    "Acosh": E.acosh, "Atanh": E.atanh, "Erf": E.erf, "Floor": E.floor, "Ceil": E.ceil,
    "Round": E.round, "Relu": E.relu, "Sigmoid": E.sigmoid, "Tanh": E.tanh,
    "Softsign": E.nn.functional.softsign, "Mish": E.nn.functional.mish,
    "HardSwish": E.nn.functional.hardswish, "Identity": lambda x: x,
}.items():  # fmt: skip
    onnx_op(_name)(_unary(_fn))


@onnx_op("Softplus")
def _(ctx, x):
    return E.nn.functional.softplus(x, threshold=math.inf)


@onnx_op("BitwiseNot")
def _(ctx, x):
    return E.bitwise_not(x)


for _name, _fn in {
    "BitwiseAnd": E.bitwise_and,
    "BitwiseOr": E.bitwise_or,
    "BitwiseXor": E.bitwise_xor,
}.items():
    onnx_op(_name)(_binary(_fn))


@onnx_op("BitShift")
def _(ctx, a, b):
    left = ctx.attr("direction") == "LEFT"
    return like(E.bitwise_left_shift(a, b) if left else E.bitwise_right_shift(a, b), a)


@onnx_op("Clip")
def _(ctx, x, lo=None, hi=None):
    if ctx.opset < 11:
        lo, hi = ctx.attr("min"), ctx.attr("max")
    if lo is not None and hi is not None and isinstance(lo, Tensor) and isinstance(hi, Tensor):
        return like(E.minimum(E.maximum(x, like(lo, x)), like(hi, x)), x)
    out = x
    if lo is not None:
        out = E.maximum(out, like(lo, x) if isinstance(lo, Tensor) else lo)
    if hi is not None:
        out = E.minimum(out, like(hi, x) if isinstance(hi, Tensor) else hi)
    return like(out, x)


# -- activations with attributes ------------------------------------------------------------
F = E.nn.functional


@onnx_op("LeakyRelu")
def _(ctx, x):
    return F.leaky_relu(x, ctx.attr("alpha", 0.01))


@onnx_op("Elu")
def _(ctx, x):
    return F.elu(x, ctx.attr("alpha", 1.0))


@onnx_op("Celu")
def _(ctx, x):
    return F.celu(x, ctx.attr("alpha", 1.0))


@onnx_op("Selu")
def _(ctx, x):
    alpha = ctx.attr("alpha", 1.67326319217681884765625)
    gamma = ctx.attr("gamma", 1.05070102214813232421875)
    neg = E.mul(E.sub(E.exp(E.minimum(x, 0.0)), 1.0), alpha * gamma)
    return like(E.where(E.gt(x, 0), E.mul(x, gamma), neg), x)


@onnx_op("ThresholdedRelu")
def _(ctx, x):
    return E.where(E.gt(x, ctx.attr("alpha", 1.0)), x, 0.0)


@onnx_op("HardSigmoid")
def _(ctx, x):
    alpha, beta = ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5)
    return like(E.clamp(E.add(E.mul(x, alpha), beta), 0.0, 1.0), x)


@onnx_op("Gelu", since=20)
def _(ctx, x):
    return F.gelu(x, approximate=ctx.attr("approximate", "none"))


@onnx_op("PRelu")
def _(ctx, x, slope):
    return E.where(E.lt(x, 0), E.mul(x, slope), x)


@onnx_op("Shrink")
def _(ctx, x):
    bias, lambd = ctx.attr("bias", 0.0), ctx.attr("lambd", 0.5)
    out = E.where(E.lt(x, -lambd), E.add(x, bias), E.where(E.gt(x, lambd), E.sub(x, bias), 0))
    return like(out, x)


@onnx_op("Swish", since=24)
def _(ctx, x):
    return E.mul(x, E.sigmoid(E.mul(x, ctx.attr("alpha", 1.0))))


# -- comparisons and logic ------------------------------------------------------------------
for _name, _fn in {
    "Equal": E.eq, "Less": E.lt, "LessOrEqual": E.le, "Greater": E.gt, "GreaterOrEqual": E.ge,
    "And": E.logical_and, "Or": E.logical_or, "Xor": E.logical_xor,
}.items():  # fmt: skip
    onnx_op(_name)(lambda ctx, a, b, _fn=_fn: _fn(a, b))


@onnx_op("Not")
def _(ctx, x):
    return E.logical_not(x)


@onnx_op("IsNaN")
def _(ctx, x):
    return E.isnan(x)


@onnx_op("IsInf")
def _(ctx, x):
    pos, neg = ctx.attr("detect_positive", 1), ctx.attr("detect_negative", 1)
    if pos and neg:
        return E.isinf(x)
    if pos:
        return E.isposinf(x)
    if neg:
        return E.isneginf(x)
    return E.zeros_like(x, dtype=E.bool)


@onnx_op("Where")
def _(ctx, cond, a, b):
    return like(E.where(cond, a, b), a)


# -- casts and constants --------------------------------------------------------------------
def to_numpy_dtype(elem_type: int) -> np.dtype:
    from ._common import numpy_dtype

    return numpy_dtype(int(elem_type))


@onnx_op("Cast")
def _(ctx, x):
    return like(x, to_numpy_dtype(ctx.attr("to")))


@onnx_op("CastLike")
def _(ctx, x, target):
    return like(x, target)


@onnx_op("Constant")
def _(ctx):
    a = ctx.attrs
    if "value" in a:
        return np.asarray(a["value"])
    if "value_float" in a:
        return np.asarray(a["value_float"], np.float32)
    if "value_floats" in a:
        return np.asarray(a["value_floats"], np.float32)
    if "value_int" in a:
        return np.asarray(a["value_int"], np.int64)
    if "value_ints" in a:
        return np.asarray(a["value_ints"], np.int64)
    raise ValueError(f"Constant: unsupported attribute(s) {sorted(a)}")


# -- reductions -----------------------------------------------------------------------------
def reduce_axes(ctx: NodeContext, x: Tensor, axes_in: Any, input_since: int) -> Any:
    """The axes of a Reduce op: a tuple, None (all), or () (no reduction)."""
    axes = axes_in if ctx.opset >= input_since else ctx.attr("axes")
    if axes is None or np.asarray(axes).size == 0:
        return () if ctx.attr("noop_with_empty_axes", 0) else None
    return norm_axes(ints(axes), x.ndim)


def _empty_fill(x: Tensor, axes: Any, keepdims: bool, value: float) -> Tensor | None:
    axes_t = tuple(range(x.ndim)) if axes is None else axes
    if all(x.shape[a] != 0 for a in axes_t) or not axes_t:
        return None
    shape = tuple((1 if keepdims else None) if i in axes_t else s for i, s in enumerate(x.shape))
    shape = tuple(s for s in shape if s is not None)
    return E.full(shape, value, dtype=x.dtype)


def _reduction(kind: str, input_since: int, empty: float | None = None):
    def impl(ctx: NodeContext, x: Tensor, axes_in: Any = None) -> Tensor:
        axes = reduce_axes(ctx, x, axes_in, input_since)
        keep = bool(ctx.attr("keepdims", 1))
        if axes == ():
            return x
        if empty is not None:
            filled = _empty_fill(x, axes, keep, _extreme(x, empty))
            if filled is not None:
                return filled
        dim = tuple(range(x.ndim)) if axes is None else axes
        out = _REDUCERS[kind](x, dim, keep)
        return like(out, x)

    return impl


def _extreme(x: Tensor, sign: float) -> float:
    dt = x._data.dtype
    if dt.kind == "f":
        return sign * math.inf
    info = np.iinfo(dt) if dt.kind in "iu" else None
    return (info.max if sign > 0 else info.min) if info is not None else (sign > 0)


def _float(x: Tensor) -> Tensor:
    return x if x._data.dtype.kind == "f" else E.cast(x, np.float64)


_REDUCERS: dict[str, Callable[..., Tensor]] = {
    "sum": lambda x, d, k: E.sum(x, d, keepdim=k),
    "mean": lambda x, d, k: E.mean(_float(x), d, keepdim=k),
    "max": lambda x, d, k: E.amax(x, d, keepdim=k),
    "min": lambda x, d, k: E.amin(x, d, keepdim=k),
    "prod": lambda x, d, k: E.prod(x, d, keepdim=k),
    "l1": lambda x, d, k: E.sum(E.abs(x), d, keepdim=k),
    "l2": lambda x, d, k: E.sqrt(E.sum(E.mul(_float(x), _float(x)), d, keepdim=k)),
    "sumsquare": lambda x, d, k: E.sum(E.mul(x, x), d, keepdim=k),
    "logsum": lambda x, d, k: E.log(E.sum(_float(x), d, keepdim=k)),
    "logsumexp": lambda x, d, k: E.logsumexp(_float(x), d, keepdim=k),
}

onnx_op("ReduceSum", static=(1,))(_reduction("sum", 13))
onnx_op("ReduceMean", static=(1,))(_reduction("mean", 18))
onnx_op("ReduceMax", static=(1,))(_reduction("max", 18, empty=-1.0))
onnx_op("ReduceMin", static=(1,))(_reduction("min", 18, empty=1.0))
onnx_op("ReduceProd", static=(1,))(_reduction("prod", 18))
onnx_op("ReduceL1", static=(1,))(_reduction("l1", 18))
onnx_op("ReduceL2", static=(1,))(_reduction("l2", 18))
onnx_op("ReduceSumSquare", static=(1,))(_reduction("sumsquare", 18))
onnx_op("ReduceLogSum", static=(1,))(_reduction("logsum", 18))
onnx_op("ReduceLogSumExp", static=(1,))(_reduction("logsumexp", 18, empty=-1.0))


def _arg(fn: Callable[..., Tensor], flip: Callable[..., Tensor]):
    def impl(ctx: NodeContext, x: Tensor) -> Tensor:
        axis = int(ctx.attr("axis", 0)) % max(x.ndim, 1)
        keep = bool(ctx.attr("keepdims", 1))
        if ctx.attr("select_last_index", 0):  # the last extreme: search the reversed axis
            n = x.shape[axis]
            idx = fn(E.flip(x, axis), axis, keepdim=keep)
            return E.sub(n - 1, idx)
        return fn(x, axis, keepdim=keep)

    return impl


onnx_op("ArgMax")(_arg(E.argmax, E.flip))
onnx_op("ArgMin")(_arg(E.argmin, E.flip))


@onnx_op("CumSum", static=(1,))
def _(ctx, x, axis):
    d = int(np.asarray(axis).reshape(-1)[0]) % max(x.ndim, 1)
    rev = bool(ctx.attr("reverse", 0))
    y = E.flip(x, d) if rev else x
    out = E.cumsum(y, d)
    if ctx.attr("exclusive", 0):
        out = E.sub(out, y)
    out = E.flip(out, d) if rev else out
    return like(out, x)


@onnx_op("CumProd", static=(1,), since=26)
def _(ctx, x, axis):
    d = int(np.asarray(axis).reshape(-1)[0]) % max(x.ndim, 1)
    rev = bool(ctx.attr("reverse", 0))
    y = E.flip(x, d) if rev else x
    if ctx.attr("exclusive", 0):  # shift by one: [1, y0, y0*y1, ...]
        pads = [0, 0] * (x.ndim - 1 - d) + [1, -1]
        y = F.pad(y, pads, value=1.0)
    out = E.cumprod(y, d)
    out = E.flip(out, d) if rev else out
    return like(out, x)


@onnx_op("Det")
def _(ctx, x):
    return E.linalg.det(x)


@onnx_op("MatMul")
def _(ctx, a, b):
    return like(E.matmul(a, b), a)


@onnx_op("Gemm")
def _(ctx, a, b, c=None):
    if ctx.attr("transA", 0):
        a = E.transpose(a, 0, 1)
    if ctx.attr("transB", 0):
        b = E.transpose(b, 0, 1)
    y = E.matmul(a, b)
    alpha, beta = ctx.attr("alpha", 1.0), ctx.attr("beta", 1.0)
    if alpha != 1.0:
        y = E.mul(y, alpha)
    if c is not None:
        y = E.add(y, c if beta == 1.0 else E.mul(c, beta))
    return like(y, a)


@onnx_op("Einsum")
def _(ctx, *xs):
    eq = ctx.attr("equation").replace(" ", "")
    return like(E.einsum(eq, *xs), xs[0])

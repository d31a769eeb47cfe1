"""Elementwise ops: arithmetic, comparisons, logic and the unary math functions.

Binary ops broadcast like NumPy and promote dtypes like PyTorch (see ``ember.dtypes``);
Python scalars stay scalars (an ONNX constant when exported), so ``x * 2`` records one node.

Example:
    >>> import ember
    >>> (ember.tensor([1.0, 2.0]) * 3 + 1).tolist()
    [4.0, 7.0]
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .. import dtypes, kernels
from ..tensor import Tensor
from ._util import SCALARS
from .creation import as_tensor, cast, zeros_like
from .registry import REGISTRY, defop

__all__ = [
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "exp",
    "log",
    "pow",
    "true_divide",
    "divide",
    "multiply",
    "subtract",
    "negative",
    "trunc",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "not_equal",
    "where",
]


# -- promotion -----------------------------------------------------------------------------
def _scalar(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def prepare(a: Any, b: Any) -> tuple[Any, Any]:
    """Bring two operands to a common dtype with PyTorch's rules (scalars stay scalars)."""
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if ta and tb:
        da, db = a._data.dtype, b._data.dtype
        if da != db:
            r = dtypes.result_type(da, a._data.ndim > 0, db, b._data.ndim > 0)
            a, b = cast(a, r), cast(b, r)
        return a, b
    if ta:
        b = _scalar(b)
        if not isinstance(b, SCALARS):
            return prepare(a, as_tensor(b, device=a.device))
        r = dtypes.scalar_result_type(a._data.dtype, b)
        return (a if r is None else cast(a, r)), b
    if tb:
        a = _scalar(a)
        if not isinstance(a, SCALARS):
            return prepare(as_tensor(a, device=b.device), b)
        r = dtypes.scalar_result_type(b._data.dtype, a)
        return a, (b if r is None else cast(b, r))
    return as_tensor(a), b


def _broadcast_explain(shapes: list, attrs: dict) -> str:
    ts = [s for s in shapes if isinstance(s, tuple)]
    return f"shapes {' and '.join(str(s) for s in ts)} cannot be broadcast together"


def _binary(name: str, onnx: str | None = None, **options: Any):
    """Declare a broadcasting binary op whose errors name both shapes."""

    def wrap(fn):
        op = defop(name, onnx=onnx, **options)(fn)
        op.explain = _broadcast_explain
        return op

    return wrap


# -- arithmetic ----------------------------------------------------------------------------
def _arith(op: str, a: Any, b: Any) -> Any:  # two large arrays of one shape: on several threads
    y = kernels.binary(op, a, b)
    return _OPERATORS[op](a, b) if y is None else y


_OPERATORS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul}


@_binary("add", onnx="Add", saves_inputs=False)
def _add(xp, a, b):
    return _arith("add", a, b)


@_add.defgrad
def _(ctx, g):
    return g, g


@_binary("sub", onnx="Sub", saves_inputs=False)
def _sub(xp, a, b):
    return _arith("sub", a, b)


@_sub.defgrad
def _(ctx, g):
    return g, (neg(g) if ctx.needs_input_grad[1] else None)


@_binary("mul", onnx="Mul")
def _mul(xp, a, b):
    return _arith("mul", a, b)


@_mul.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    return (mul(g, b) if need_a else None), (mul(g, a) if need_b else None)


@_binary("div", onnx="Div")
def _div(xp, a, b):
    return a / b


@_div.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    ga = div(g, b) if need_a else None
    gb = neg(div(mul(g, a), mul(b, b))) if need_b else None
    return ga, gb


def add(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input + alpha * other``, broadcasting.

    Example:
        >>> ember.add(ember.ones(2), ember.ones(2), alpha=3).tolist()
        [4.0, 4.0]
    """
    if alpha != 1:
        other = mul(other, alpha)
    return _add(*prepare(input, other))


def sub(input: Any, other: Any, *, alpha: Any = 1) -> Tensor:
    """``input - alpha * other``, broadcasting.

    Example:
        >>> ember.sub(ember.ones(2), 1).tolist()
        [0.0, 0.0]
    """
    if alpha != 1:
        other = mul(other, alpha)
    return _sub(*prepare(input, other))


def mul(input: Any, other: Any) -> Tensor:
    """Elementwise product, broadcasting.

    Example:
        >>> ember.mul(ember.tensor([1, 2]), 3).tolist()
        [3, 6]
    """
    return _mul(*prepare(input, other))


def _to_float(x: Any) -> Any:
    if isinstance(x, Tensor) and x._data.dtype.kind in "biu":
        return cast(x, dtypes.get_default_dtype())
    return x


def div(input: Any, other: Any, *, rounding_mode: str | None = None) -> Tensor:
    """True division (integers give floats); ``rounding_mode`` 'floor' or 'trunc'.

    Example:
        >>> ember.div(ember.tensor([3, 4]), 2).tolist()
        [1.5, 2.0]
    """
    if rounding_mode == "floor":
        from .division import floor_divide  # (the family built on this module)

        return floor_divide(input, other)
    a, b = prepare(input, other)
    if not (_is_float(a) or _is_float(b)):  # true division of integers gives floats
        a, b = _to_float(a), _to_float(b)
    if rounding_mode == "trunc":
        return cast(trunc(_div(a, b)), _dtype_of(input, other))
    if rounding_mode is not None:
        raise ValueError(
            f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}"
        )
    return _div(a, b)


def _is_float(x: Any) -> bool:
    return x._data.dtype.kind == "f" if isinstance(x, Tensor) else isinstance(x, float)


def _dtype_of(a: Any, b: Any) -> Any:
    a, b = prepare(a, b)
    return (a if isinstance(a, Tensor) else b).dtype


true_divide = divide = div
multiply = mul
subtract = sub


@defop("neg", saves_inputs=False, onnx="Neg")
def _neg(xp, x):
    return -x


@_neg.defgrad
def _(ctx, g):
    return (neg(g),)


def neg(input: Tensor) -> Tensor:
    """``-input``.

    Example:
        >>> ember.neg(ember.tensor([1.0, -2.0])).tolist()
        [-1.0, 2.0]
    """
    return _neg(input)


negative = neg


# -- powers, exp, log ----------------------------------------------------------------------
@_binary("pow", onnx="Pow", saves_output=True)
def _pow(xp, a, b):
    return a**b


@_pow.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    ga = gb = None
    if need_a:  # b * a**(b-1), taken as 0 where b == 0 (PyTorch), even at a == 0
        if isinstance(b, Tensor):  # a**(b-1) is replaced by a where b == 0 (no 0**-1)
            ga = mul(g, mul(b, pow(a, where(eq(b, 0), 1.0, sub(b, 1)))))
        elif b == 0:
            ga = zeros_like(g)
        else:
            ga = mul(g, mul(pow(a, b - 1), b))
    if need_b:  # a**b * log(a), taken as 0 where a == 0
        out = ctx.output
        if isinstance(a, Tensor):
            log_a = log(where(eq(a, 0), 1.0, a))
        else:
            log_a = math.log(a) if a > 0 else (0.0 if a == 0 else math.nan)
        gb = mul(g, mul(out, log_a))
    return ga, gb


def pow(input: Any, exponent: Any) -> Tensor:
    """``input ** exponent``, broadcasting.

    Example:
        >>> ember.pow(ember.tensor([2.0, 3.0]), 2).tolist()
        [4.0, 9.0]
    """
    a, b = prepare(input, exponent)
    if isinstance(a, Tensor) and a._data.dtype.kind in "iu" and isinstance(b, int) and b < 0:
        raise ValueError("pow: integers to negative integer powers are not allowed")
    return _pow(a, b)


@defop("exp", saves_inputs=False, saves_output=True, onnx="Exp")
def _exp(xp, x):
    return xp.exp(x)


@_exp.defgrad
def _(ctx, g):
    return (mul(g, ctx.output),)


def exp(input: Tensor) -> Tensor:
    """``e ** input``.

    Example:
        >>> round(ember.exp(ember.tensor([1.0])).item(), 4)
        2.7183
    """
    return _exp(_to_float(input))


@defop("log", onnx="Log")
def _log(xp, x):
    return xp.log(x)


@_log.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (div(g, x),)


def log(input: Tensor) -> Tensor:
    """Natural logarithm.

    Example:
        >>> ember.log(ember.tensor([1.0])).tolist()
        [0.0]
    """
    return _log(_to_float(input))


# -- comparisons and selection (used by several backward rules) ----------------------------
def _compare(name: str, onnx: str, fn):
    op = _binary(name, onnx=onnx)(fn)

    def compare(input: Any, other: Any) -> Tensor:
        return op(*prepare(input, other))

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``{name}`` comparison; a bool tensor (not differentiable)."
    return compare


eq = _compare("eq", "Equal", lambda xp, a, b: a == b)
ne = _compare("ne", "Not(Equal)", lambda xp, a, b: a != b)
lt = _compare("lt", "Less", lambda xp, a, b: a < b)
le = _compare("le", "LessOrEqual", lambda xp, a, b: a <= b)
gt = _compare("gt", "Greater", lambda xp, a, b: a > b)
ge = _compare("ge", "GreaterOrEqual", lambda xp, a, b: a >= b)


@REGISTRY["ne"].defonnx
def _(g, a, b):
    return g.op("Not", g.op("Equal", *g.lift(a, b)), dtype=np.bool_)


greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne


@defop("where", onnx="Where")
def _where(xp, cond, a, b):
    return xp.where(cond, a, b)


@_where.defgrad
def _(ctx, g):
    cond = ctx.inputs[0]
    _, need_a, need_b = ctx.needs_input_grad
    return (
        None,
        (where(cond, g, 0.0) if need_a else None),
        (where(cond, 0.0, g) if need_b else None),
    )


@_where.defonnx
def _(g, cond, a, b):
    return g.where(cond, a, b, like=g.out.dtype)


def _scalars_dtype(a: Any, b: Any) -> dtypes.DType:
    """PyTorch's dtype for an op between two Python scalars."""
    if isinstance(a, float) or isinstance(b, float):
        return dtypes.get_default_dtype()
    if isinstance(a, bool) and isinstance(b, bool):
        return dtypes.bool_
    return dtypes.int64


def where(condition: Tensor, input: Any, other: Any) -> Tensor:
    """``input`` where ``condition`` is true, else ``other`` (broadcasting); numbers are
    allowed for either branch and promote like arithmetic.

    Example:
        >>> ember.where(ember.tensor([True, False]), 1.0, 0.0).tolist()
        [1.0, 0.0]
        >>> ember.where(ember.tensor([True, False]), ember.tensor([1, 2]), 0).tolist()
        [1, 0]
    """
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input, other = _scalar(input), _scalar(other)
        if isinstance(input, SCALARS) and isinstance(other, SCALARS):
            dt = _scalars_dtype(input, other)
        else:
            dt = None
        input = as_tensor(input, dtype=dt, device=condition.device)
    a, b = prepare(input, other)
    return _where(condition, a, b)


@defop("trunc", saves_inputs=False, onnx=None)
def _trunc(xp, x):
    return xp.trunc(x)


@_trunc.defgrad
def _(ctx, g):
    return (zeros_like(g),)


@_trunc.defonnx
def _(g, x):
    if x.dtype.kind != "f":
        return g.op("Identity", x)
    return g.op("Where", g.cmp("Less", x, 0), g.op("Ceil", x), g.op("Floor", x))


def trunc(input: Tensor) -> Tensor:
    """Round toward zero (gradient zero).

    Example:
        >>> ember.trunc(ember.tensor([-1.5, 1.5])).tolist()
        [-1.0, 1.0]
    """
    return _trunc(input)


def _rev(fn):
    def reflected(self: Tensor, other: Any) -> Tensor:
        return fn(other, self)

    return reflected


def _iop(name: str, fn):
    def method(self: Tensor, other: Any) -> Tensor:
        from .inplace import apply_inplace

        return apply_inplace(self, name, fn, other)

    return method


# tensor methods and operators of this family (ember.ops attaches them to Tensor)
METHODS = {
    "add": add,
    "sub": sub,
    "mul": mul,
    "div": div,
    "neg": neg,
    "exp": exp,
    "log": log,
    "pow": pow,
    "trunc": trunc,
    "eq": eq,
    "ne": ne,
    "lt": lt,
    "le": le,
    "gt": gt,
    "ge": ge,
    "greater": gt,
    "greater_equal": ge,
    "less": lt,
    "less_equal": le,
    "not_equal": ne,
    "where": where,
    "true_divide": div,
    "divide": div,
    "multiply": mul,
    "subtract": sub,
    "__add__": add,
    "__radd__": _rev(add),
    "__sub__": sub,
    "__rsub__": _rev(sub),
    "__mul__": mul,
    "__rmul__": _rev(mul),
    "__truediv__": div,
    "__rtruediv__": _rev(div),
    "__pow__": pow,
    "__rpow__": _rev(pow),
    "__neg__": neg,
    "__pos__": lambda self: self,
    "__eq__": lambda self, other: False if other is None else eq(self, other),
    "__ne__": lambda self, other: True if other is None else ne(self, other),
    "__lt__": lt,
    "__le__": le,
    "__gt__": gt,
    "__ge__": ge,
    "__iadd__": _iop("add_", add),
    "__isub__": _iop("sub_", sub),
    "__imul__": _iop("mul_", mul),
    "__itruediv__": _iop("div_", div),
    "__ipow__": _iop("pow_", pow),
}

"""Comparison-based ops: ``maximum``, ``minimum``, ``fmax``, ``fmin``, ``isclose``,
``allclose`` and ``equal``.

``maximum``/``minimum`` propagate NaN and, like PyTorch, split the gradient evenly between
the two inputs where they tie; ``fmax``/``fmin`` ignore a NaN operand and send the whole
gradient to the chosen one.

Example:
    >>> import ember
    >>> ember.maximum(ember.tensor([1.0, 5.0]), ember.tensor([3.0, 2.0])).tolist()
    [3.0, 5.0]
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .creation import as_tensor
from .elementwise import _binary, eq, ge, gt, le, lt, mul, ne, prepare, where
from .logical import logical_or

__all__ = ["maximum", "minimum", "fmax", "fmin", "isclose", "allclose", "equal"]


def _operands(input: Any, other: Any) -> tuple[Tensor, Tensor]:
    """Promote like arithmetic; a Python scalar becomes a 0-d tensor of the result dtype."""
    a, b = prepare(input, other)
    if not isinstance(a, Tensor):
        a = as_tensor(a, dtype=b.dtype, device=b.device)
    if not isinstance(b, Tensor):
        b = as_tensor(b, dtype=a.dtype, device=a.device)
    return a, b


def _split(g: Tensor, loses: Tensor, tie: Tensor) -> Tensor:
    """``g`` where this input won, ``g / 2`` on ties, 0 where it lost (PyTorch's rule)."""
    return where(loses, 0.0, where(tie, mul(g, 0.5), g))


@_binary("maximum", onnx="Max")
def _maximum(xp, a, b):
    return xp.maximum(a, b)


@_maximum.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    tie = eq(a, b)
    return (_split(g, lt(a, b), tie) if need_a else None), (
        _split(g, gt(a, b), tie) if need_b else None
    )


@_binary("minimum", onnx="Min")
def _minimum(xp, a, b):
    return xp.minimum(a, b)


@_minimum.defgrad
def _(ctx, g):
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    tie = eq(a, b)
    return (_split(g, gt(a, b), tie) if need_a else None), (
        _split(g, lt(a, b), tie) if need_b else None
    )


def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise maximum, broadcasting; NaN wins. Ties share the gradient equally.

    Example:
        >>> ember.maximum(ember.tensor([1, 4]), ember.tensor([3, 2])).tolist()
        [3, 4]
    """
    return _maximum(*_operands(input, other))


def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise minimum, broadcasting; NaN wins. Ties share the gradient equally.

    Example:
        >>> ember.minimum(ember.tensor([1.0, 4.0]), 2.0).tolist()
        [1.0, 2.0]
    """
    return _minimum(*_operands(input, other))


@_binary("fmax", onnx=None)
def _fmax(xp, a, b):
    return xp.fmax(a, b)


@_binary("fmin", onnx=None)
def _fmin(xp, a, b):
    return xp.fmin(a, b)


def _f_grads(ctx, g, first_wins):
    """PyTorch's fmax/fmin rule: ``input`` takes the gradient where it was chosen
    (``first_wins`` or ``other`` is NaN), ``other`` takes it everywhere else."""
    a, b = ctx.inputs
    need_a, need_b = ctx.needs_input_grad
    chosen = logical_or(first_wins(a, b), ne(b, b))
    return (where(chosen, g, 0.0) if need_a else None), (where(chosen, 0.0, g) if need_b else None)


@_fmax.defgrad
def _(ctx, g):
    return _f_grads(ctx, g, ge)


@_fmin.defgrad
def _(ctx, g):
    return _f_grads(ctx, g, le)


def _f_onnx(op_type: str):
    def lower(g, a, b):  # NaN loses unless both are NaN
        a, b = g.lift(a, b)
        if a.dtype.kind != "f":
            return g.op(op_type, a, b)
        both = g.op(op_type, a, b)
        return g.op("Where", g.op("IsNaN", a), b, g.op("Where", g.op("IsNaN", b), a, both))

    return lower


_fmax.defonnx(_f_onnx("Max"))
_fmin.defonnx(_f_onnx("Min"))


def fmax(input: Any, other: Any) -> Tensor:
    """Elementwise maximum that ignores NaN (NaN only where both are NaN).

    Example:
        >>> ember.fmax(ember.tensor([float("nan"), 1.0]), ember.tensor([2.0, 0.0])).tolist()
        [2.0, 1.0]
    """
    return _fmax(*_operands(input, other))


def fmin(input: Any, other: Any) -> Tensor:
    """Elementwise minimum that ignores NaN (NaN only where both are NaN).

    Example:
        >>> ember.fmin(ember.tensor([float("nan"), 1.0]), ember.tensor([2.0, 0.0])).tolist()
        [2.0, 0.0]
    """
    return _fmin(*_operands(input, other))


# -- closeness -------------------------------------------------------------------------------
@_binary("isclose", onnx=None, saves_inputs=False)
def _isclose(xp, a, b, rtol, atol, equal_nan):
    return xp.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


@_isclose.defonnx
def _(g, a, b, rtol, atol, equal_nan):
    a, b = g.lift(a, b)
    if a.dtype.kind != "f":  # NumPy compares integers in float64
        a, b = g.cast(a, "float64"), g.cast(b, "float64")
    tol = g.op("Add", g.op("Mul", g.op("Abs", b), rtol), atol)
    close = g.cmp("LessOrEqual", g.op("Abs", g.op("Sub", a, b)), tol)
    inf = g.op("Or", g.op("IsInf", a), g.op("IsInf", b))  # infinities: close only when equal
    close = g.where(inf, g.cmp("Equal", a, b), close, like="bool")
    if equal_nan:
        close = g.op("Or", close, g.op("And", g.op("IsNaN", a), g.op("IsNaN", b)))
    return close


def isclose(
    input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> Tensor:
    """Elementwise ``|input - other| <= atol + rtol * |other|`` (equal infinities are close).

    Example:
        >>> ember.isclose(ember.tensor([1.0, 1.1]), ember.tensor([1.0 + 1e-9, 1.0])).tolist()
        [True, False]
    """
    a, b = _operands(input, other)
    return _isclose(a, b, rtol=float(rtol), atol=float(atol), equal_nan=bool(equal_nan))


def allclose(
    input: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False
) -> bool:
    """True when every element pair is close (see :func:`isclose`); a Python bool.

    Example:
        >>> ember.allclose(ember.tensor([1.0, 2.0]), ember.tensor([1.0, 2.0 + 1e-9]))
        True
    """
    close = isclose(input, other, rtol, atol, equal_nan)
    close._read("allclose()")
    return bool(close._data.all())


def equal(input: Tensor, other: Tensor) -> bool:
    """True when both tensors have the same shape and the same elements; a Python bool.

    Example:
        >>> ember.equal(ember.tensor([1, 2]), ember.tensor([1, 2])), ember.equal(
        ...     ember.tensor([1]), ember.tensor([1, 1]))
        (True, False)
    """
    if tuple(input.shape) != tuple(other.shape):
        return False
    same = eq(input, other)
    same._read("equal()")
    return bool(same._data.all())


METHODS = {
    "maximum": maximum,
    "minimum": minimum,
    "fmax": fmax,
    "fmin": fmin,
    "isclose": isclose,
    "allclose": allclose,
    "equal": equal,
}

"""Logical and bitwise ops: ``logical_and/or/xor/not``, ``bitwise_and/or/xor/not``, shifts,
and the operators ``& | ^ ~ << >>`` (reflected and in-place forms too).

Logical ops read any dtype as truth values (nonzero is true) and return bool tensors.
Bitwise ops take bool and integer tensors only, promote like arithmetic (``int32 & int64``
is int64, ``bool & 1`` is int64) and keep bool for bool operands. None of them is
differentiable.

Example:
    >>> import ember
    >>> a = ember.tensor([True, False]); b = ember.tensor([True, True])
    >>> (a & b).tolist(), (~a).tolist(), ember.logical_xor(a, b).tolist()
    ([True, False], [False, True], [False, True])
"""

from __future__ import annotations

from typing import Any

from ..errors import DTypeError
from ..tensor import Tensor
from .creation import as_tensor
from .elementwise import _binary, _iop, _rev, prepare
from .registry import REGISTRY, defop

__all__ = [
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "bitwise_left_shift",
    "bitwise_right_shift",
]


def _tensor_first(input: Any, other: Any) -> tuple[Any, Any]:
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = as_tensor(input)
    return input, other


# -- logical ---------------------------------------------------------------------------------
@_binary("logical_and", onnx="And", saves_inputs=False)
def _logical_and(xp, a, b):
    return xp.logical_and(a, b)


@_binary("logical_or", onnx="Or", saves_inputs=False)
def _logical_or(xp, a, b):
    return xp.logical_or(a, b)


@_binary("logical_xor", onnx="Xor", saves_inputs=False)
def _logical_xor(xp, a, b):
    return xp.logical_xor(a, b)


@defop("logical_not", onnx="Not", saves_inputs=False)
def _logical_not(xp, x):
    return xp.logical_not(x)


def _logical_onnx(op_type: str):
    def lower(g, a, b):  # truth values: nonzero is true
        a, b = g.lift(a, b, dtype="bool")
        return g.op(op_type, g.cast(a, "bool"), g.cast(b, "bool"))

    return lower


_logical_and.defonnx(_logical_onnx("And"))
_logical_or.defonnx(_logical_onnx("Or"))
_logical_xor.defonnx(_logical_onnx("Xor"))


@_logical_not.defonnx
def _(g, x):
    return g.op("Not", g.cast(x, "bool"))


def logical_and(input: Any, other: Any) -> Tensor:
    """Elementwise logical AND of truth values (nonzero is true); a bool tensor.

    Example:
        >>> ember.logical_and(ember.tensor([1.0, 0.0]), ember.tensor([2, 3])).tolist()
        [True, False]
    """
    return _logical_and(*_tensor_first(input, other))


def logical_or(input: Any, other: Any) -> Tensor:
    """Elementwise logical OR of truth values; a bool tensor.

    Example:
        >>> ember.logical_or(ember.tensor([0, 0, 2]), ember.tensor([0, 1, 0])).tolist()
        [False, True, True]
    """
    return _logical_or(*_tensor_first(input, other))


def logical_xor(input: Any, other: Any) -> Tensor:
    """Elementwise logical XOR of truth values; a bool tensor.

    Example:
        >>> ember.logical_xor(ember.tensor([0, 1, 2]), ember.tensor([1, 1, 0])).tolist()
        [True, False, True]
    """
    return _logical_xor(*_tensor_first(input, other))


def logical_not(input: Tensor) -> Tensor:
    """Elementwise logical NOT (zero is false); a bool tensor.

    Example:
        >>> ember.logical_not(ember.tensor([0.0, 1.5])).tolist()
        [True, False]
    """
    return _logical_not(input)


# -- bitwise ---------------------------------------------------------------------------------
def _check_bitwise(name: str, a: Any, b: Any = None) -> None:
    for x in (a, b):
        bad = x._data.dtype.kind not in "biu" if isinstance(x, Tensor) else isinstance(x, float)
        if bad:
            what = x.dtype if isinstance(x, Tensor) else "float"
            raise DTypeError(
                name, f"is only defined for bool and integer tensors, got {what} operands"
            )


def _bitwise(name: str, onnx: str, fn):
    op = _binary(name, onnx=onnx, saves_inputs=False)(fn)

    def bitwise(input: Any, other: Any) -> Tensor:
        a, b = prepare(*_tensor_first(input, other))
        _check_bitwise(name, a, b)
        return op(a, b)

    bitwise.__name__ = name
    return bitwise


bitwise_and = _bitwise("bitwise_and", "BitwiseAnd", lambda xp, a, b: xp.bitwise_and(a, b))
bitwise_or = _bitwise("bitwise_or", "BitwiseOr", lambda xp, a, b: xp.bitwise_or(a, b))
bitwise_xor = _bitwise("bitwise_xor", "BitwiseXor", lambda xp, a, b: xp.bitwise_xor(a, b))
bitwise_left_shift = _bitwise(
    "bitwise_left_shift", "BitShift", lambda xp, a, b: xp.left_shift(a, b)
)
bitwise_right_shift = _bitwise(
    "bitwise_right_shift", "BitShift", lambda xp, a, b: xp.right_shift(a, b)
)


def _bitwise_onnx(kind: str):
    def lower(g, a, b):  # bool operands use the logical op
        a, b = g.lift(a, b, dtype=g.out.dtype)
        if g.out.dtype.kind == "b":
            return g.op(kind, a, b)
        g.need_opset(18, f"Bitwise{kind}")
        return g.op("Bitwise" + kind, a, b)

    return lower


def _shift_onnx(left: bool):
    def lower(g, a, b):
        a, b = g.lift(a, b, dtype=g.out.dtype)
        if g.out.dtype.kind == "u":
            return g.op("BitShift", a, b, direction="LEFT" if left else "RIGHT")
        p = g.op("Pow", g.scalar(2, a), b)  # signed: multiply, or divide rounding down
        if left:
            return g.op("Mul", a, p)
        q = g.op("Div", a, p)
        inexact = g.op("Not", g.cmp("Equal", g.op("Sub", a, g.op("Mul", q, p)), 0))
        down = g.op("And", inexact, g.cmp("Less", a, 0))
        return g.op("Sub", q, g.cast(down, g.out.dtype))

    return lower


REGISTRY["bitwise_and"].defonnx(_bitwise_onnx("And"))
REGISTRY["bitwise_or"].defonnx(_bitwise_onnx("Or"))
REGISTRY["bitwise_xor"].defonnx(_bitwise_onnx("Xor"))
REGISTRY["bitwise_left_shift"].defonnx(_shift_onnx(True))
REGISTRY["bitwise_right_shift"].defonnx(_shift_onnx(False))
bitwise_and.__doc__ = """Elementwise bitwise AND (``&``) of bool or integer tensors.

    Example:
        >>> ember.bitwise_and(ember.tensor([12, 10]), 6).tolist()
        [4, 2]
    """
bitwise_or.__doc__ = """Elementwise bitwise OR (``|``) of bool or integer tensors.

    Example:
        >>> (ember.tensor([12, 10]) | 1).tolist()
        [13, 11]
    """
bitwise_xor.__doc__ = """Elementwise bitwise XOR (``^``) of bool or integer tensors.

    Example:
        >>> (ember.tensor([True, False]) ^ True).tolist()
        [False, True]
    """
bitwise_left_shift.__doc__ = """``input << other`` for integer tensors.

    Example:
        >>> (ember.tensor([1, 3]) << 2).tolist()
        [4, 12]
    """
bitwise_right_shift.__doc__ = """``input >> other`` (arithmetic shift) for integer tensors.

    Example:
        >>> (ember.tensor([-8, 12]) >> 2).tolist()
        [-2, 3]
    """


@defop("bitwise_not", onnx="BitwiseNot", saves_inputs=False)
def _bitwise_not(xp, x):
    return xp.invert(x)


@_bitwise_not.defonnx
def _(g, x):
    if x.dtype.kind == "b":
        return g.op("Not", x)
    if g.opset >= 18:
        return g.op("BitwiseNot", x)
    if x.dtype.kind == "u":
        return g.op("Sub", g.scalar(g.max_value(x.dtype), x), x)
    return g.op("Sub", g.op("Neg", x), 1)


def bitwise_not(input: Tensor) -> Tensor:
    """Elementwise bitwise NOT (``~``): logical NOT for bool tensors, ``-x - 1`` for integers.

    Example:
        >>> (~ember.tensor([0, 5])).tolist(), (~ember.tensor([True])).tolist()
        ([-1, -6], [False])
    """
    _check_bitwise("bitwise_not", input)
    return _bitwise_not(input)


METHODS = {
    "logical_and": logical_and,
    "logical_or": logical_or,
    "logical_xor": logical_xor,
    "logical_not": logical_not,
    "bitwise_and": bitwise_and,
    "bitwise_or": bitwise_or,
    "bitwise_xor": bitwise_xor,
    "bitwise_not": bitwise_not,
    "bitwise_left_shift": bitwise_left_shift,
    "bitwise_right_shift": bitwise_right_shift,
    "__and__": bitwise_and,
    "__rand__": _rev(bitwise_and),
    "__or__": bitwise_or,
    "__ror__": _rev(bitwise_or),
    "__xor__": bitwise_xor,
    "__rxor__": _rev(bitwise_xor),
    "__invert__": bitwise_not,
    "__lshift__": bitwise_left_shift,
    "__rlshift__": _rev(bitwise_left_shift),
    "__rshift__": bitwise_right_shift,
    "__rrshift__": _rev(bitwise_right_shift),
    "__iand__": _iop("bitwise_and_", bitwise_and),
    "__ior__": _iop("bitwise_or_", bitwise_or),
    "__ixor__": _iop("bitwise_xor_", bitwise_xor),
    "__ilshift__": _iop("bitwise_left_shift_", bitwise_left_shift),
    "__irshift__": _iop("bitwise_right_shift_", bitwise_right_shift),
}

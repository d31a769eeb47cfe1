"""Rounding, clamping and floating-point classification: ``floor ceil round trunc frac``,
``clamp``/``clip`` (``clamp_min``, ``clamp_max``), ``isnan isinf isfinite isposinf isneginf
signbit`` and ``nan_to_num``.

Rounding has a zero gradient (as in PyTorch); ``clamp`` passes the gradient where the input
lies inside ``[min, max]`` (bounds included) and, for tensor bounds, to the bound that was
chosen.

Example:
    >>> import ember
    >>> ember.clamp(ember.tensor([-2.0, 0.5, 3.0]), min=-1, max=1).tolist()
    [-1.0, 0.5, 1.0]
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor
from .creation import cast, clone, zeros_like
from .elementwise import ge, gt, le, lt, prepare, sub, trunc, where
from .logical import logical_and, logical_or
from .registry import REGISTRY, defop

__all__ = [
    "floor",
    "ceil",
    "round",
    "fix",
    "frac",
    "clamp",
    "clip",
    "clamp_min",
    "clamp_max",
    "isnan",
    "isinf",
    "isfinite",
    "isposinf",
    "isneginf",
    "signbit",
    "nan_to_num",
]


def _zero_grad(ctx, g):
    return (zeros_like(g),)


def _is_int(x: Tensor) -> bool:
    return x._data.dtype.kind in "biu"


# -- rounding --------------------------------------------------------------------------------
@defop("floor", saves_inputs=False, onnx="Floor")
def _floor(xp, x):
    return xp.floor(x)


@defop("ceil", saves_inputs=False, onnx="Ceil")
def _ceil(xp, x):
    return xp.ceil(x)


@defop("round", saves_inputs=False, onnx="Round")
def _round(xp, x, decimals):
    return xp.round(x, decimals)


_floor.defgrad(_zero_grad)
_ceil.defgrad(_zero_grad)
_round.defgrad(_zero_grad)


@_round.defonnx
def _(g, x, decimals):  # NumPy's rule: scale, round half to even, scale back
    if decimals == 0:
        return g.op("Round", x)
    if decimals > 0:
        return g.op("Div", g.op("Round", g.op("Mul", x, 10.0**decimals)), 10.0**decimals)
    return g.op("Mul", g.op("Round", g.op("Div", x, 10.0**-decimals)), 10.0**-decimals)


def floor(input: Tensor) -> Tensor:
    """The largest integer not greater than each element (integers pass through).

    Example:
        >>> ember.floor(ember.tensor([-1.5, 1.5])).tolist()
        [-2.0, 1.0]
    """
    return clone(input) if _is_int(input) else _floor(input)


def ceil(input: Tensor) -> Tensor:
    """The smallest integer not less than each element (integers pass through).

    Example:
        >>> ember.ceil(ember.tensor([-1.5, 1.5])).tolist()
        [-1.0, 2.0]
    """
    return clone(input) if _is_int(input) else _ceil(input)


def round(input: Tensor, *, decimals: int = 0) -> Tensor:
    """Round half to even, to ``decimals`` decimal places (negative: to tens, hundreds ...).

    Example:
        >>> ember.round(ember.tensor([0.5, 1.5, 2.567])).tolist()
        [0.0, 2.0, 3.0]
        >>> ember.round(ember.tensor([2.567, 1234.0]), decimals=-2).tolist()
        [0.0, 1200.0]
    """
    if _is_int(input) and decimals == 0:
        return clone(input)
    return _round(input, decimals=int(decimals))


def fix(input: Tensor) -> Tensor:
    """Round toward zero (an alias of ``trunc``).

    Example:
        >>> ember.fix(ember.tensor([-1.7, 1.7])).tolist()
        [-1.0, 1.0]
    """
    return trunc(input)


def frac(input: Tensor) -> Tensor:
    """The fractional part ``input - trunc(input)`` (keeps the sign; gradient one).

    Example:
        >>> ember.frac(ember.tensor([-1.5, 2.25])).tolist()
        [-0.5, 0.25]
    """
    return sub(input, trunc(input))


# -- clamp -----------------------------------------------------------------------------------
@defop("clamp", onnx="Clip")
def _clamp(xp, x, lo, hi):
    return xp.clip(x, lo, hi)


@_clamp.defgrad
def _(ctx, g):
    # PyTorch's clamp_backward_min_max: the input keeps the gradient inside [min, max];
    # a tensor bound takes it where it was the answer (max also wins when min > max)
    x, lo, hi = ctx.inputs
    need_x, need_lo, need_hi = ctx.needs_input_grad
    gx = glo = ghi = None
    if lo is not None and hi is not None:
        if need_x:
            gx = where(logical_and(ge(x, lo), le(x, hi)), g, 0.0)
        if need_lo:
            glo = where(logical_and(gt(lo, x), lt(lo, hi)), g, 0.0)
        if need_hi:
            ghi = where(logical_or(lt(hi, x), lt(hi, lo)), g, 0.0)
    elif lo is not None:
        gx = where(ge(x, lo), g, 0.0) if need_x else None
        glo = where(lt(x, lo), g, 0.0) if need_lo else None
    else:
        gx = where(le(x, hi), g, 0.0) if need_x else None
        ghi = where(gt(x, hi), g, 0.0) if need_hi else None
    return gx, glo, ghi


@_clamp.defonnx
def _(g, x, lo, hi):
    if g.is_value(lo) or g.is_value(hi):  # tensor bounds broadcast: max, then min (as NumPy)
        out = x if lo is None else g.op("Max", x, lo)
        return out if hi is None else g.op("Min", out, hi)
    return g.op("Clip", x, *g.lift(lo, hi, dtype=x.dtype))


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Limit every element to ``[min, max]``; bounds are numbers or broadcasting tensors,
    either may be None. Where ``min > max`` the result is ``max``.

    Example:
        >>> ember.clamp(ember.tensor([1, 5, 9]), min=3, max=6).tolist()
        [3, 5, 6]
        >>> ember.clamp(ember.tensor([1.0, 5.0]), max=ember.tensor([0.0, 9.0])).tolist()
        [0.0, 5.0]
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
    x = input
    for bound in (min, max):
        if bound is not None:
            x, _ = prepare(x, bound)
    lo = cast(min, x.dtype) if isinstance(min, Tensor) else min
    hi = cast(max, x.dtype) if isinstance(max, Tensor) else max
    return _clamp(x, lo, hi)


def clip(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """An alias of :func:`clamp`.

    Example:
        >>> ember.clip(ember.tensor([-3.0, 3.0]), -1, 1).tolist()
        [-1.0, 1.0]
    """
    return clamp(input, min, max)


def clamp_min(input: Tensor, min: Any) -> Tensor:
    """``clamp(input, min=min)``.

    Example:
        >>> ember.clamp_min(ember.tensor([-1.0, 2.0]), 0).tolist()
        [0.0, 2.0]
    """
    return clamp(input, min=min)


def clamp_max(input: Tensor, max: Any) -> Tensor:
    """``clamp(input, max=max)``.

    Example:
        >>> ember.clamp_max(ember.tensor([-1.0, 2.0]), 0).tolist()
        [-1.0, 0.0]
    """
    return clamp(input, max=max)


# -- classification --------------------------------------------------------------------------
def _classify(name: str, onnx: str | None, fn, doc: str):
    op = defop(name, onnx=onnx, saves_inputs=False)(fn)

    def classify(input: Tensor) -> Tensor:
        return op(input)

    classify.__name__ = name
    classify.__doc__ = doc
    return classify


isnan = _classify(
    "isnan",
    "IsNaN",
    lambda xp, x: xp.isnan(x),
    """True where an element is NaN.

    Example:
        >>> ember.isnan(ember.tensor([1.0, float("nan")])).tolist()
        [False, True]
    """,
)
isinf = _classify(
    "isinf",
    "IsInf",
    lambda xp, x: xp.isinf(x),
    """True where an element is +inf or -inf.

    Example:
        >>> ember.isinf(ember.tensor([1.0, float("-inf")])).tolist()
        [False, True]
    """,
)
isfinite = _classify(
    "isfinite",
    None,
    lambda xp, x: xp.isfinite(x),
    """True where an element is neither infinite nor NaN.

    Example:
        >>> ember.isfinite(ember.tensor([1.0, float("inf"), float("nan")])).tolist()
        [True, False, False]
    """,
)
isposinf = _classify(
    "isposinf",
    None,
    lambda xp, x: xp.logical_and(xp.isinf(x), x > 0),
    """True where an element is +inf.

    Example:
        >>> ember.isposinf(ember.tensor([float("inf"), float("-inf")])).tolist()
        [True, False]
    """,
)
isneginf = _classify(
    "isneginf",
    None,
    lambda xp, x: xp.logical_and(xp.isinf(x), x < 0),
    """True where an element is -inf.

    Example:
        >>> ember.isneginf(ember.tensor([float("inf"), float("-inf")])).tolist()
        [False, True]
    """,
)
signbit = _classify(
    "signbit",
    None,
    lambda xp, x: xp.signbit(x),
    """True where the sign bit is set (negative numbers and -0.0).

    Example:
        >>> ember.signbit(ember.tensor([-0.0, 0.0, -2.0])).tolist()
        [True, False, True]
    """,
)


@REGISTRY["isnan"].defonnx
def _(g, x):
    return g.op("IsNaN", x) if x.dtype.kind == "f" else g.op("Not", g.cmp("Equal", x, x))


@REGISTRY["isinf"].defonnx
def _(g, x):
    return g.op("IsInf", x) if x.dtype.kind == "f" else g.op("Not", g.cmp("Equal", x, x))


@REGISTRY["isfinite"].defonnx
def _(g, x):
    if x.dtype.kind != "f":
        return g.cmp("Equal", x, x)
    return g.op("Not", g.op("Or", g.op("IsNaN", x), g.op("IsInf", x)))


@REGISTRY["isposinf"].defonnx
def _(g, x):
    if x.dtype.kind != "f":
        return g.op("Not", g.cmp("Equal", x, x))
    return g.op("IsInf", x, detect_negative=0)


@REGISTRY["isneginf"].defonnx
def _(g, x):
    if x.dtype.kind != "f":
        return g.op("Not", g.cmp("Equal", x, x))
    return g.op("IsInf", x, detect_positive=0)


@REGISTRY["signbit"].defonnx
def _(g, x):
    if x.dtype.kind != "f":
        return g.cmp("Less", x, 0) if x.dtype.kind == "i" else g.op("Not", g.cmp("Equal", x, x))
    negative_zero = g.op("And", g.cmp("Equal", x, 0.0), g.cmp("Less", g.op("Div", 1.0, x), 0.0))
    return g.op("Or", g.cmp("Less", x, 0.0), negative_zero)


@defop("nan_to_num", onnx=None)
def _nan_to_num(xp, x, nan, posinf, neginf):
    return xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)


@_nan_to_num.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (where(isfinite(x), g, 0.0),)


@_nan_to_num.defonnx
def _(g, x, nan, posinf, neginf):
    if x.dtype.kind != "f":
        return g.op("Identity", x)
    posinf = g.max_value(x.dtype) if posinf is None else posinf
    neginf = g.min_value(x.dtype) if neginf is None else neginf
    out = g.where(g.op("IsNaN", x), nan, x, like=x)
    out = g.where(g.op("IsInf", x, detect_negative=0), posinf, out, like=x)
    return g.where(g.op("IsInf", x, detect_positive=0), neginf, out, like=x)


def nan_to_num(
    input: Tensor,
    nan: float = 0.0,
    posinf: float | None = None,
    neginf: float | None = None,
) -> Tensor:
    """Replace NaN by ``nan`` and infinities by ``posinf``/``neginf`` (default: the dtype's
    largest / smallest finite value). The gradient is zero at replaced elements.

    Example:
        >>> ember.nan_to_num(ember.tensor([float("nan"), 1.0, float("-inf")]), neginf=-9.0)
        tensor([ 0.,  1., -9.])
    """
    if _is_int(input):
        return clone(input)
    return _nan_to_num(
        input,
        nan=float(nan),
        posinf=None if posinf is None else float(posinf),
        neginf=None if neginf is None else float(neginf),
    )


METHODS = {
    "floor": floor,
    "ceil": ceil,
    "round": round,
    "fix": fix,
    "frac": frac,
    "clamp": clamp,
    "clip": clip,
    "clamp_min": clamp_min,
    "clamp_max": clamp_max,
    "isnan": isnan,
    "isinf": isinf,
    "isfinite": isfinite,
    "isposinf": isposinf,
    "isneginf": isneginf,
    "signbit": signbit,
    "nan_to_num": nan_to_num,
    "__round__": lambda self, ndigits=None: round(self, decimals=ndigits or 0),
}

"""``einsum``: Einstein summation over any number of operands, with PyTorch's rules
(implicit output, ``...`` broadcasting, size-1 broadcasting, repeated subscripts for
diagonals and traces).

The equation is first rewritten with explicit subscripts only (``...`` and broadcast size-1
dims get letters of their own), so the forward is one ``xp.einsum`` call and the gradient
of each operand is another einsum: the output gradient contracted with the other operands,
with identity matrices placing repeated subscripts on their diagonal and broadcasting for
subscripts that only that operand has.

Example:
    >>> import ember
    >>> ember.einsum("bij,bjk->bik", ember.ones(2, 3, 4), ember.ones(2, 4, 5)).shape
    (2, 3, 5)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from .. import dtypes
from ..errors import ShapeError
from ..tensor import Tensor
from .creation import cast, eye
from .registry import defop
from .shape import broadcast_to, reshape

__all__ = ["einsum"]

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OPTIMIZE_FROM = 1 << 15  # multiply-adds from which planning the contraction pays off


def _fresh(used: set) -> Iterator[str]:
    for c in _LETTERS:
        if c not in used:
            yield c
    raise ShapeError("einsum", "the equation needs more than 52 distinct subscripts")


def _parse(equation: str, shapes: list[tuple]) -> tuple[list[str], str]:
    """Rewrite ``equation`` with explicit, broadcast-free subscripts for operands of
    ``shapes``; returns the operands' subscripts and the output's."""
    eq = equation.replace(" ", "")
    if eq.count("->") > 1:
        raise ShapeError("einsum", f"equation {equation!r} has more than one '->'")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(
            "einsum",
            f"equation {equation!r} names {len(terms)} operand(s) but {len(shapes)} tensor(s) "
            "were given",
        )
    for t in terms + ([rhs] if arrow else []):
        bad = set(t.replace("...", "")) - set(_LETTERS)
        if bad or t.count("...") > 1:
            what = f"invalid character(s) {sorted(bad)}" if bad else "more than one '...'"
            raise ShapeError("einsum", f"subscripts {t!r} in {equation!r} have {what}")
    fresh = _fresh({c for c in eq if c in _LETTERS})

    # '...' becomes explicit letters, right-aligned across operands
    ell_dims = []
    for k, (t, shape) in enumerate(zip(terms, shapes)):
        named = len(t.replace("...", ""))
        extra = len(shape) - named
        if extra < 0 or (extra > 0 and "..." not in t):
            raise ShapeError(
                "einsum",
                f"subscripts {t!r} name {named} dimension(s) but operand {k} has shape {shape}",
            )
        ell_dims.append(extra if "..." in t else 0)
    ell = "".join(next(fresh) for _ in range(max(ell_dims, default=0)))
    explicit = [t.replace("...", ell[len(ell) - e :]) for t, e in zip(terms, ell_dims)]
    if arrow:
        out = rhs.replace("...", ell)
        inputs = set("".join(explicit))
        for c in out:
            if c not in inputs:
                raise ShapeError("einsum", f"output subscript {c!r} does not appear in the inputs")
            if out.count(c) > 1:
                raise ShapeError("einsum", f"output subscript {c!r} appears more than once")
    else:
        counts = Counter("".join(t.replace("...", "") for t in terms))
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))

    # sizes must agree or be 1 (broadcast); repeated subscripts in one operand must agree
    sizes: dict[str, int] = {}
    for k, (t, shape) in enumerate(zip(explicit, shapes)):
        own: dict[str, int] = {}
        for c, n in zip(t, shape):
            if own.setdefault(c, n) != n:
                raise ShapeError(
                    "einsum",
                    f"subscript {c!r} is repeated for operand {k} (shape {shape}) with "
                    f"different sizes {own[c]} and {n}",
                )
            seen = sizes.setdefault(c, n)
            if seen != n and 1 not in (seen, n):
                raise ShapeError(
                    "einsum",
                    f"subscript {c!r} has size {n} for operand {k} (shape {shape}) but size "
                    f"{seen} elsewhere; shapes {' and '.join(str(s) for s in shapes)} do not align",
                )
            if n != 1:
                sizes[c] = n
    # a size-1 dim broadcast against a larger one gets a letter of its own (summed away)
    final = [
        "".join(next(fresh) if n == 1 and sizes[c] != 1 else c for c, n in zip(t, shape))
        for t, shape in zip(explicit, shapes)
    ]
    return final, out


@defop("einsum", onnx="Einsum")
def _einsum(xp, *operands, equation, optimize):
    return xp.einsum(equation, *operands, optimize=optimize)


@_einsum.defonnx
def _(g, *operands, equation, optimize):
    return g.op("Einsum", *operands, equation=equation)


def _contract(equation: str, tensors: list[Tensor]) -> Tensor:
    """Run the einsum op on an explicit, broadcast-free ``equation``."""
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    if len(tensors) == 1 and terms[0] == out:
        return tensors[0]
    sizes = {}
    for t, x in zip(terms, tensors):
        sizes.update(zip(t, x.shape))
    cost = 1
    for n in sizes.values():
        cost *= n
    optimize = "greedy" if len(tensors) > 1 and cost >= _OPTIMIZE_FROM else False
    return _einsum(*tensors, equation=equation, optimize=optimize)


@_einsum.defgrad
def _(ctx, g):
    equation = ctx.attrs["equation"]
    lhs, out = equation.split("->")
    terms = lhs.split(",")
    operands = ctx.inputs
    used = set(equation)
    grads: list[Any] = []
    for k, need in enumerate(ctx.needs_input_grad):
        if not need:
            grads.append(None)
            continue
        shape = ctx.input_shape(k)
        subs = [out] + [t for j, t in enumerate(terms) if j != k]
        tensors = [g] + [x for j, x in enumerate(operands) if j != k]
        fresh = _fresh(used)
        target, seen = [], set()
        for c, n in zip(terms[k], shape):
            if c in seen:  # a repeated subscript: place the gradient on the diagonal
                f = next(fresh)
                subs.append(c + f)
                tensors.append(eye(n, dtype=g.dtype, device=g.device))
                target.append(f)
            else:
                seen.add(c)
                target.append(c)
        present = set("".join(subs))
        kept = "".join(c for c in target if c in present)
        gk = _contract(",".join(subs) + "->" + kept, tensors)
        if len(kept) != len(target):  # subscripts only this operand had: broadcast back
            gk = reshape(gk, tuple(n if c in present else 1 for c, n in zip(target, shape)))
            gk = broadcast_to(gk, shape)
        grads.append(gk)
    return tuple(grads)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation: ``einsum("ij,jk->ik", a, b)`` is ``a @ b``. Supports the implicit
    output (subscripts seen once, sorted), ``...`` for broadcast dims, size-1 broadcasting,
    repeated subscripts (``"ii->i"`` is the diagonal, ``"ii"`` the trace); operands may
    also be passed as one list. Differentiable to any order.

    Example:
        >>> a = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> ember.einsum("ii", a).item(), ember.einsum("ij->j", a).tolist()
        (5.0, [4.0, 6.0])
    """
    if len(operands) == 1 and isinstance(operands[0], list | tuple):
        operands = tuple(operands[0])
    for k, x in enumerate(operands):
        if not isinstance(x, Tensor):
            raise TypeError(f"einsum: operand {k} must be a tensor, got {type(x).__name__}")
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the equation must be a string, got {type(equation).__name__}")
    terms, out = _parse(equation, [tuple(x.shape) for x in operands])
    dt = operands[0]._data.dtype if operands else None
    for x in operands[1:]:
        dt = dtypes.result_type(dt, True, x._data.dtype, True)
    tensors = [cast(x, dt) for x in operands]
    return _contract(",".join(terms) + "->" + out, tensors)

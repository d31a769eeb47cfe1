"""The executor's kernel choice, in one place: how one IR node becomes Python source.

:func:`emit` returns a Python expression for a node, given the source text of its inputs
and attributes. A lowering registered with :func:`lowering` may return a direct array-module
call (``xp.matmul(a, b, out=buf3)``) or None to decline; every other op falls back to calling
the registry op's own forward (``f_softmax(xp, x, dim=-1)``), so any op the tracer recorded
runs, with exactly the numerics of eager mode. Fused C kernels can replace NumPy calls later
by registering lowerings here (or by a pass rewriting nodes to a fused op), without touching
the passes or the executor.

A lowering's ``out`` argument is the source of a preallocated buffer when the memory planner
gave the node an ``out_slot`` (None otherwise); a lowering that cannot write into ``out`` must
return None when ``out`` is given, and :func:`supports_out` tells a planner which nodes can
use one.

Example:
    >>> import ember
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph(); a = g.add_input((2, 3), np.float32); b = g.add_input((3, 4), np.float32)
    >>> y = g.add_node("matmul", [a, b], {}, (2, 4), np.float32)
    >>> emit(y.producer, ["a", "b"], {}, "buf0")
    'xp.matmul(a, b, out=buf0)'
    >>> emit(y.producer, ["a", "b"], {}, None)
    'xp.matmul(a, b)'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import kernels
from ..kernels.gemm import serves
from ..kernels.pool import NS_RELU
from ..threads import MIN_WORK_PER_THREAD
from .ir import Node, Value

__all__ = ["emit", "lowering", "supports_out", "LOWERINGS", "HELPERS", "forward_name"]

Lowering = Callable[[Node, list[str], dict[str, str], "str | None"], "str | None"]
LOWERINGS: dict[str, Lowering] = {}
HELPERS: dict[str, Callable] = {}  # functions generated code may call, by name
_OUT_CAPABLE: set[str] = set()


def lowering(*names: str, out: bool = False) -> Callable[[Lowering], Lowering]:
    """Register ``fn(node, args, attrs, out) -> source | None`` for ops ``names``;
    ``out=True`` declares that it honours an ``out`` buffer.

    Example:
        >>> @lowering("my_identity_op")
        ... def _(node, args, attrs, out):
        ...     return args[0]
        >>> del LOWERINGS["my_identity_op"]
    """

    def wrap(fn: Lowering) -> Lowering:
        for n in names:
            LOWERINGS[n] = fn
            if out:
                _OUT_CAPABLE.add(n)
        return fn

    return wrap


def forward_name(op: str) -> str:
    """The executor namespace's name for ``REGISTRY[op].forward``."""
    return "f_" + "".join(c if c.isalnum() else "_" for c in op)


def supports_out(node: Node) -> bool:
    """True when this node's lowering can write into a planned ``out=`` buffer.

    Example:
        >>> supports_out(Node("softmax", [], {}))
        False
    """
    if node.op not in _OUT_CAPABLE:
        return False
    if node.op == "matmul":
        return _matmul_2d(node)
    if node.op == "linear":
        return _linear_out_ok(node)
    return True


def emit(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str:
    """Python source computing ``node`` (see the module docstring)."""
    fn = LOWERINGS.get(node.op)
    if fn is not None:
        text = fn(node, args, attrs, out)
        if text is not None:
            return text
    parts = ["xp", *args] + [f"{k}={v}" for k, v in attrs.items()]
    return f"{forward_name(node.op)}({', '.join(parts)})"


def _call(fn: str, args: list[str], out: str | None) -> str:
    tail = f", out={out}" if out is not None else ""
    return f"{fn}({', '.join(args)}{tail})"


def _ufunc(name: str) -> Lowering:
    def lower(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str:
        return _call(f"xp.{name}", args, out)

    return lower


def _arith(xp: Any, op: str, a: Any, b: Any, out: Any = None) -> Any:
    """``add``/``sub``/``mul`` of two arrays of the result's shape: the threaded C kernel
    where it serves (``kernels.binary``: large float arrays), else the NumPy ufunc."""
    y = kernels.binary(op, a, b, out)
    if y is not None:
        return y
    fn = getattr(xp, _UFUNCS[op])
    return fn(a, b) if out is None else fn(a, b, out=out)


HELPERS["_arith"] = _arith


def _arith_lowering(op: str) -> Lowering:
    def lower(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str:
        o, ins = node.output, node.inputs
        n = o.numel if o is not None else 0
        big = n is None or n >= kernels.arith.MIN_SIZE  # (a dynamic size: decided per call)
        if big and len(ins) == 2 and all(_alike(x, o) for x in ins):
            tail = f", {out}" if out is not None else ""
            return f"_arith(xp, {op!r}, {args[0]}, {args[1]}{tail})"
        return _call(f"xp.{_UFUNCS[op]}", args, out)

    return lower


def _alike(x: Any, o: Value) -> bool:
    return isinstance(x, Value) and x.shape == o.shape and x.dtype == o.dtype


_UFUNCS = {"add": "add", "sub": "subtract", "mul": "multiply"}
for _op in _UFUNCS:
    lowering(_op, out=True)(_arith_lowering(_op))

for _op, _fn in {
    "div": "true_divide",
    "neg": "negative",
    "exp": "exp",
    "log": "log",
    "tanh": "tanh",
    "sqrt": "sqrt",
    "where": "where",
}.items():
    lowering(_op, out=_op != "where")(_ufunc(_fn))


def _relu_into(xp: Any, x: Any, out: Any) -> Any:
    """``relu`` into ``out``: the threaded C kernel when it serves and the array is big
    enough for a second thread to pay, else ``xp.maximum`` (a few microseconds cheaper)."""
    if NS_RELU * x.size >= 2 * MIN_WORK_PER_THREAD:
        y = kernels.relu_forward(x, out)
        if y is not None:
            return y
    return xp.maximum(x, 0, out=out)


HELPERS["_relu_into"] = _relu_into


@lowering("relu", out=True)
def _relu(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str | None:
    if out is None:
        return None  # a fresh result: the op's own forward
    n = node.output.numel if node.output is not None else None
    if n is not None and NS_RELU * n < 2 * MIN_WORK_PER_THREAD:  # one thread either way: NumPy's
        return _call("xp.maximum", [args[0], "0"], out)
    return f"_relu_into(xp, {args[0]}, {out})"


def _matmul_2d(node: Node) -> bool:
    a, b = node.inputs[:2]
    return (
        isinstance(a, Value)
        and isinstance(b, Value)
        and 1 <= a.ndim <= 2
        and 1 <= b.ndim <= 2
        and not (a.ndim == 1 and b.ndim == 1)
    )


def _rows(v: Value) -> int | None:
    """The rows of ``v`` as a matrix (the product of all but its last dim; None when one
    is dynamic)."""
    n = 1
    for d in v.shape[:-1]:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def _tall(v: Value, n: Any) -> bool:
    """True when ember's GEMM may serve the left operand ``v`` times ``n`` columns, as
    ``kernels.tall_matmul`` decides (``kernels.gemm.serves``; a dynamic size may)."""
    rows, inner = _rows(v), v.shape[-1]
    inner = inner if isinstance(inner, int) else None
    return serves(rows, inner, n if isinstance(n, int) else None, v.dtype)


def _matmul_into(xp: Any, a: Any, b: Any, out: Any) -> Any:
    """A 2-D ``matmul`` into ``out``: ember's GEMM for tall products, else ``xp.matmul``."""
    if kernels.tall_matmul(a, b, out=out) is None:
        xp.matmul(a, b, out=out)
    return out


HELPERS["_matmul_into"] = _matmul_into


@lowering("matmul", out=True)
def _matmul(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str | None:
    if not _matmul_2d(node):
        return None  # batched: the forward folds/contiguates operands for BLAS
    a = node.inputs[0]
    n = node.inputs[1].shape[-1]
    if a.ndim == 2 and _tall(a, n):  # ember's GEMM may serve it (a fresh result: the forward)
        return None if out is None else f"_matmul_into(xp, {args[0]}, {args[1]}, {out})"
    return _call("xp.matmul", args, out)


@lowering("reshape")
def _reshape(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str | None:
    return None if out is not None else f"{args[0]}.reshape({attrs['shape']})"


@lowering("permute")
def _permute(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str | None:
    return None if out is not None else f"xp.transpose({args[0]}, {attrs['dims']})"


def _linear_out_ok(node: Node) -> bool:
    """``linear`` writes into a buffer when x (1-d or more), W (2-d) and the bias (1-d or
    None) all have the output's dtype (then ``matmul(x, W.T, out=)`` + ``add(out=)`` is
    exactly the forward's fresh product with the bias added in place)."""
    if len(node.inputs) != 3 or node.output is None:
        return False
    x, w, b = node.inputs
    dt = node.output.dtype
    if not (isinstance(x, Value) and isinstance(w, Value) and x.ndim >= 1 and w.ndim == 2):
        return False
    if x.dtype != dt or w.dtype != dt or dt.kind != "f":
        return False
    if b is None:
        return True
    return isinstance(b, Value) and b.ndim == 1 and b.dtype == dt


def _linear_into(xp: Any, x: Any, w: Any, b: Any, out: Any) -> Any:
    """``linear``'s forward computed into ``out``: ember's GEMM with the bias fused for tall
    products (the forward's choice), else the BLAS product with the bias added in place."""
    x2 = x.reshape(-1, x.shape[-1]) if x.ndim > 2 else x
    o2 = out.reshape(-1, w.shape[0]) if x.ndim > 2 else out
    if kernels.tall_matmul(x2, w.T, out=o2, bias=b) is not None:
        return out
    xp.matmul(x2, w.T, out=o2)
    if b is not None:
        xp.add(out, b, out=out)
    return out


HELPERS["_linear_into"] = _linear_into


@lowering("linear", out=True)
def _linear(node: Node, args: list[str], attrs: dict[str, str], out: str | None) -> str | None:
    if out is None or not _linear_out_ok(node):
        return None  # a fresh result: the op's own forward
    x, w, b = args
    if node.inputs[0].ndim > 2 or _tall(node.inputs[0], node.inputs[1].shape[0]):  # as forward
        return f"_linear_into(xp, {x}, {w}, {b}, {out})"
    product = f"xp.matmul({x}, {w}.T, out={out})"
    return product if node.inputs[2] is None else f"xp.add({product}, {b}, out={out})"

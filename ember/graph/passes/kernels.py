"""Which registry ops are elementwise, and how to run them into a given buffer (``out=``).

The registry's forwards return fresh arrays; the executor needs a second spelling of some of
them that writes into an existing array. :data:`KERNELS` maps an op name to an
:class:`OutKernel`: the ``xp`` function to call and where its arguments come from (an int is
a node input position, a string an attribute, :class:`Lit` a literal). Every kernel computes
bit-for-bit what the op's forward computes, when ``out`` has the node's output shape and
dtype (``tests/graph/test_passes.py`` checks each against its forward). Ops without an entry
have no ``out=`` form: the memory planner never gives them a buffer.

:data:`ELEMENTWISE` lists the ops whose output element ``i`` depends only on the inputs'
elements at ``i`` (after broadcasting) and whose forward always returns a fresh array of its
own: the ops a fused chain may contain (in place only for those with a kernel).

Example:
    >>> import numpy as np
    >>> out = np.empty(2)
    >>> call_out(np, "add", [np.ones(2), 2.0], {}, out) is out, out.tolist()
    (True, [3.0, 3.0])
    >>> out_code("relu", ["v3"], {}, "buf0")
    'xp.maximum(v3, 0, out=buf0)'
"""

from __future__ import annotations

from typing import Any, NamedTuple

__all__ = ["Lit", "OutKernel", "KERNELS", "ELEMENTWISE", "out_kernel", "call_out", "out_code"]


class Lit(NamedTuple):
    """A literal argument of a kernel (``relu`` is ``maximum(x, 0)``)."""

    value: Any


class OutKernel(NamedTuple):
    """``xp.<func>(*args, out=out)``; with ``copy=True`` it is
    ``xp.copyto(out, args[0], casting="unsafe")`` (``cast``, ``clone``).

    Example:
        >>> KERNELS["sub"]
        OutKernel(func='subtract', args=(0, 1), copy=False)
    """

    func: str
    args: tuple
    copy: bool = False


def _k(func: str, *args: Any) -> OutKernel:
    return OutKernel(func, args)


_UNARY = {
    "neg": "negative",
    "abs": "absolute",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "asinh": "arcsinh",
    "acosh": "arccosh",
    "atanh": "arctanh",
    "bitwise_not": "invert",
    "logical_not": "logical_not",
    **{
        name: name
        for name in (
            "exp exp2 expm1 log log1p log2 log10 sqrt sin cos tan sinh cosh tanh sign floor "
            "ceil trunc isnan isinf isfinite signbit"
        ).split()
    },
}
_BINARY = {
    "add": "add",
    "sub": "subtract",
    "mul": "multiply",
    "div": "true_divide",
    "pow": "power",
    "atan2": "arctan2",
    "eq": "equal",
    "ne": "not_equal",
    "lt": "less",
    "le": "less_equal",
    "gt": "greater",
    "ge": "greater_equal",
    "bitwise_left_shift": "left_shift",
    "bitwise_right_shift": "right_shift",
    **{
        name: name
        for name in (
            "maximum minimum fmax fmin remainder fmod floor_divide logical_and logical_or "
            "logical_xor bitwise_and bitwise_or bitwise_xor"
        ).split()
    },
}

KERNELS: dict[str, OutKernel] = {
    **{op: _k(fn, 0) for op, fn in _UNARY.items()},
    **{op: _k(fn, 0, 1) for op, fn in _BINARY.items()},
    "square": _k("multiply", 0, 0),
    "reciprocal": _k("true_divide", Lit(1.0), 0),
    "relu": _k("maximum", 0, Lit(0)),
    "clamp": _k("clip", 0, 1, 2),
    "hardtanh": _k("clip", 0, "min_val", "max_val"),
    "cast": OutKernel("copyto", (0,), copy=True),
    "clone": OutKernel("copyto", (0,), copy=True),
}

# elementwise ops with no out= form: fine in a fused chain (as a step that allocates)
_FRESH_ONLY = (
    "where sigmoid gelu silu mish softplus logsigmoid hardsigmoid hardswish leaky_relu elu "
    "selu celu erf erfc erfinv rsqrt round nan_to_num isclose isposinf isneginf "
    "relu_backward sigmoid_backward tanh_backward silu_backward gelu_backward"
).split()

ELEMENTWISE = frozenset(KERNELS) | frozenset(_FRESH_ONLY)


def out_kernel(op: str) -> OutKernel | None:
    """The ``out=`` kernel of registry op ``op``, or None.

    Example:
        >>> out_kernel("mul").func, out_kernel("matmul")
        ('multiply', None)
    """
    return KERNELS.get(op)


def _args(kernel: OutKernel, inputs: list, attrs: dict) -> list:
    out = []
    for a in kernel.args:
        if isinstance(a, Lit):
            out.append(a.value)
        elif isinstance(a, str):
            out.append(attrs[a])
        else:
            out.append(inputs[a])
    return out


def call_out(xp: Any, op: str, inputs: list, attrs: dict, out: Any) -> Any:
    """Run ``op`` on ``inputs`` (arrays/scalars, as its forward receives them) and ``attrs``,
    writing the result into ``out``; returns ``out``.

    Example:
        >>> import numpy as np
        >>> out = np.empty(3, np.float32)
        >>> call_out(np, "cast", [np.arange(3)], {"dtype": np.float32}, out).tolist()
        [0.0, 1.0, 2.0]
    """
    kernel = KERNELS[op]
    args = _args(kernel, inputs, attrs)
    if kernel.copy:
        xp.copyto(out, args[0], casting="unsafe")
    else:
        getattr(xp, kernel.func)(*args, out=out)
    return out


def out_code(op: str, inputs: list[str], attrs: dict, out: str, xp: str = "xp") -> str:
    """Python source of one statement that writes ``op``'s result into ``out``.

    ``inputs`` holds the source text of each node input (variable names, or ``repr`` of
    Python scalars); attributes are spelled with ``repr`` (numpy dtypes as ``xp.dtype(...)``).

    Example:
        >>> out_code("clamp", ["x", "None", "6.0"], {}, "t")
        'xp.clip(x, None, 6.0, out=t)'
        >>> out_code("cast", ["x"], {}, "buf1")
        "xp.copyto(buf1, x, casting='unsafe')"
    """
    kernel = KERNELS[op]
    args = []
    for a in kernel.args:
        if isinstance(a, Lit):
            args.append(repr(a.value))
        elif isinstance(a, str):
            args.append(_spell(attrs[a], xp))
        else:
            args.append(inputs[a])
    if kernel.copy:
        return f"{xp}.copyto({out}, {args[0]}, casting='unsafe')"
    return f"{xp}.{kernel.func}({', '.join(args)}, out={out})"


def _spell(value: Any, xp: str) -> str:
    import numpy as np

    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return f"{xp}.dtype({np.dtype(value).str!r})"
    return repr(value)

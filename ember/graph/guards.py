"""Guards: when may a traced graph be reused for a new call?

A call's *signature* (:func:`signature`) is a hashable key built from its arguments: tensor
shapes, dtypes, devices and ``requires_grad``; Python scalars and strings by value; the
nesting of tuples, lists and dicts; any other object (a module, an optimizer) by identity;
and which tensor arguments are the same tensor. Each top-level argument contributes one part,
so a retrace can name the argument that changed (:func:`describe_change`).

Beyond the key, each cached graph carries *guards*: zero-argument checks recorded during the
trace (module ``training`` flags, the identity of captured parameters and optimizer state,
optimizer hyper-parameters, whether a gradient existed). A call reuses a graph only when its
key matches and every guard passes.

Dynamic batch size: :func:`merge_dynamic` combines two traces that differ only in the
leading dimension of some inputs into one graph whose sizes are affine in a symbol ``B``.

Example:
    >>> import ember
    >>> k1, t1 = signature((ember.ones(2, 3), 0.5), {})
    >>> k2, t2 = signature((ember.ones(2, 3), 0.5), {})
    >>> k1 == k2, len(t1)
    (True, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..device import array_module
from ..tensor import Tensor
from .ir import Graph, Sym, Value

__all__ = ["signature", "describe_change", "merge_dynamic", "batch_positions", "Guard"]

Guard = tuple[Callable[[], bool], str]
_SCALARS = (int, float, bool, str, type(None), complex)


def _part(x: Any, tensors: list, seen: dict, objects: list) -> Any:
    t = type(x)
    if isinstance(x, Tensor):
        arr = x._data
        first = seen.setdefault(id(arr), len(tensors))
        tensors.append(x)
        alias = first if first != len(tensors) - 1 else None
        return (arr.shape, arr.dtype, x.device, x.requires_grad, alias)
    if t in _SCALARS:
        return (t, x)
    if t is tuple or t is list:
        return (t, tuple(_part(e, tensors, seen, objects) for e in x))
    if t is dict:
        return (dict, tuple((k, _part(v, tensors, seen, objects)) for k, v in x.items()))
    objects.append(x)  # kept alive by the cache entry, so its id cannot be reused
    return (t, id(x))


def signature(args: tuple, kwargs: dict) -> tuple[tuple, list[Tensor]]:
    """``(key, tensors)`` for a call: the hashable key (one part per argument) and the tensor
    arguments in traversal order.

    Example:
        >>> import ember
        >>> signature((ember.zeros(2),), {"scale": 2.0})[0][1]
        ('scale', (<class 'float'>, 2.0))
    """
    tensors: list[Tensor] = []
    seen: dict[int, int] = {}
    objects: list[Any] = []
    parts = [_part(a, tensors, seen, objects) for a in args]
    for k, v in kwargs.items():
        parts.append((k, _part(v, tensors, seen, objects)))
    return tuple(parts), tensors


def _objects(args: tuple, kwargs: dict) -> list[Any]:
    objects: list[Any] = []
    for a in list(args) + list(kwargs.values()):
        _part(a, [], {}, objects)
    return objects


def describe_change(old: tuple, new: tuple, names: list[str]) -> str | None:
    """Name the first argument whose part differs between two keys, with what changed.

    Example:
        >>> import ember
        >>> a = signature((ember.zeros(2),), {})[0]; b = signature((ember.zeros(3),), {})[0]
        >>> describe_change(a, b, ["x"])
        "argument 'x' (shape (2,) -> (3,))"
    """
    if len(old) != len(new):
        return f"the number of arguments ({len(old)} -> {len(new)})"
    for i, (p, q) in enumerate(zip(old, new)):
        if p == q:
            continue
        name = names[i] if i < len(names) else f"#{i}"
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str):  # keyword
            name, p, q = p[0], p[1], q[1]
        return f"argument {name!r} ({_what(p, q)})"
    return None


def _what(p: Any, q: Any) -> str:
    if _is_tensor_part(p) and _is_tensor_part(q):
        for label, i in (("shape", 0), ("dtype", 1), ("device", 2), ("requires_grad", 3)):
            if p[i] != q[i]:
                return f"{label} {p[i]} -> {q[i]}"
        return "aliasing with another argument"
    if isinstance(p, tuple) and isinstance(q, tuple) and len(p) == 2 and len(q) == 2:
        if p[0] is q[0] and p[0] in _SCALARS:
            return f"value {p[1]!r} -> {q[1]!r}"
        if p[0] is q[0] and isinstance(p[1], tuple) and isinstance(q[1], tuple):
            for a, b in zip(p[1], q[1]):
                if a != b:
                    return _what(a, b)
            return f"length {len(p[1])} -> {len(q[1])}"
        if p[0] is q[0]:
            return f"a different {p[0].__name__} object"
    return "type or structure"


def _is_tensor_part(p: Any) -> bool:
    return isinstance(p, tuple) and len(p) == 5 and isinstance(p[0], tuple)


# -- dynamic batch size ---------------------------------------------------------------------------
def batch_positions(old: list[Tensor] | list[tuple], new: list[Tensor]) -> tuple[int, ...] | None:
    """Positions of the tensor arguments whose leading dimension changed (all from the same
    old size to the same new size) while everything else stayed; None if not so.

    Example:
        >>> import ember
        >>> batch_positions([(4, 3)], [ember.zeros(8, 3)])
        (0,)
    """
    if len(old) != len(new):
        return None
    pos, sizes = [], set()
    for i, (a, b) in enumerate(zip(old, new)):
        sa = tuple(a.shape) if isinstance(a, Tensor) else tuple(a)
        sb = tuple(b.shape)
        if sa == sb:
            continue
        if len(sa) != len(sb) or not sa or sa[1:] != sb[1:]:
            return None
        pos.append(i)
        sizes.add((sa[0], sb[0]))
    if not pos or len(sizes) != 1:
        return None
    return tuple(pos)


def dynamic_key(key: tuple, positions: tuple[int, ...]) -> tuple:
    """``key`` with the leading dimension of the tensors at ``positions`` erased."""
    counter = [0]
    wanted = set(positions)

    def walk(p: Any) -> Any:
        if _is_tensor_part(p):
            i = counter[0]
            counter[0] += 1
            if i in wanted:
                return ((None,) + tuple(p[0][1:]),) + tuple(p[1:])
            return p
        if isinstance(p, tuple) and len(p) == 2 and isinstance(p[1], tuple):
            if p[0] is tuple or p[0] is list or p[0] is dict:
                if p[0] is dict:
                    return (p[0], tuple((k, walk(v)) for k, v in p[1]))
                return (p[0], tuple(walk(e) for e in p[1]))
            if isinstance(p[0], str):  # keyword argument
                return (p[0], walk(p[1]))
        return p

    return tuple(walk(p) for p in key)


class _Mismatch(Exception):
    pass


def merge_dynamic(g1: Graph, g2: Graph, b1: int, b2: int, source: tuple[int, int]) -> Graph:
    """One graph for both traces: every size that differs becomes ``Sym("B", a, c)`` with
    ``a * b1 + c`` and ``a * b2 + c`` the two sizes. Raises ValueError when the traces differ
    in anything else (ops, structure, constants, captured tensors, non-integer attributes).

    Example:
        >>> import numpy as np
        >>> def build(b):
        ...     g = Graph("f"); x = g.add_input((b, 3), np.float32)
        ...     g.outputs = [g.add_node("reshape", [x], {"shape": (b * 3,)}, (b * 3,), np.float32)]
        ...     return g
        >>> m = merge_dynamic(build(2), build(5), 2, 5, (0, 0))
        >>> m.nodes[0].attrs["shape"], m.nodes[0].output.shape
        ((3*B,), (3*B,))
    """
    try:
        return _merge(g1, g2, b1, b2, source)
    except _Mismatch as e:
        raise ValueError(f"traces differ beyond the batch size: {e}") from None


def _merge(g1: Graph, g2: Graph, b1: int, b2: int, source: tuple[int, int]) -> Graph:
    if b1 == b2:
        raise _Mismatch("same batch size")

    def size(x: int, y: int) -> int | Sym:
        if x == y:
            return x
        a, r = divmod(y - x, b2 - b1)
        if r or a == 0:
            raise _Mismatch(f"size {x} -> {y} is not affine in the batch size")
        c = x - a * b1
        return Sym("B", a, c) if (a, c) != (1, 0) else Sym("B")

    def attr(x: Any, y: Any) -> Any:
        if type(x) is not type(y):
            raise _Mismatch(f"attribute {x!r} vs {y!r}")
        if isinstance(x, bool) or x is None or isinstance(x, str | float):
            if x != y:
                raise _Mismatch(f"attribute {x!r} vs {y!r}")
            return x
        if isinstance(x, int):
            return size(x, y)
        if isinstance(x, tuple | list):
            if len(x) != len(y):
                raise _Mismatch(f"attribute {x!r} vs {y!r}")
            return type(x)(attr(a, b) for a, b in zip(x, y))
        if isinstance(x, slice):
            return slice(attr(x.start, y.start), attr(x.stop, y.stop), attr(x.step, y.step))
        if isinstance(x, dict):
            if x.keys() != y.keys():
                raise _Mismatch("attribute keys")
            return {k: attr(x[k], y[k]) for k in x}
        try:
            same = bool(x == y)
        except Exception:
            same = False
        if not same:
            raise _Mismatch(f"attribute {x!r} vs {y!r}")
        return x

    def shape(s1: tuple, s2: tuple) -> tuple:
        if len(s1) != len(s2):
            raise _Mismatch(f"ranks {s1} vs {s2}")
        return tuple(size(a, b) for a, b in zip(s1, s2))

    for kind in ("inputs", "captured", "scalars", "constants"):
        if len(getattr(g1, kind)) != len(getattr(g2, kind)):
            raise _Mismatch(f"number of {kind}")
    if len(g1.nodes) != len(g2.nodes) or len(g1.outputs) != len(g2.outputs):
        raise _Mismatch("number of nodes or outputs")
    try:
        same_tree = bool(g1.output_tree == g2.output_tree)
    except Exception:
        same_tree = False
    if not same_tree:
        raise _Mismatch("the returned Python values")
    g = g1.copy()
    vmap: dict[Value, Value] = {}  # g2 value -> merged value
    for a, b, m in zip(g1.inputs, g2.inputs, g.inputs):
        if a.dtype != b.dtype:
            raise _Mismatch(f"dtype of input %{a.name}")
        m.shape = shape(a.shape, b.shape)
        vmap[b] = m
    for a, b, m in zip(g1.captured, g2.captured, g.captured):
        ra, rb = a.ref, b.ref
        same = ra is rb or (
            getattr(ra, "leaf", None) is not None
            and getattr(ra, "leaf", 0) is getattr(rb, "leaf", 1)
        )
        if not same or a.shape != b.shape:
            raise _Mismatch(f"captured %{a.name}")
        vmap[b] = m
    for b, m in zip(g2.scalars, g.scalars):
        vmap[b] = m
    for a, b, m in zip(g1.constants, g2.constants, g.constants):
        if a.shape != b.shape or a.dtype != b.dtype or not _equal(a.data, b.data):
            raise _Mismatch(f"constant %{a.name}")
        vmap[b] = m
    for n1, n2, n in zip(g1.nodes, g2.nodes, g.nodes):
        if n1.op != n2.op or len(n1.inputs) != len(n2.inputs) or n1.mutates != n2.mutates:
            raise _Mismatch(f"node {n1.op} vs {n2.op}")
        for x, y, z in zip(n1.inputs, n2.inputs, n.inputs):
            if isinstance(y, Value):
                if vmap.get(y) is not z:
                    raise _Mismatch(f"inputs of {n1.op}")
            elif isinstance(x, Value) or attr(x, y) != x:
                raise _Mismatch(f"scalar inputs of {n1.op}")
        if n1.attrs.keys() != n2.attrs.keys():
            raise _Mismatch(f"attributes of {n1.op}")
        n.attrs = {k: attr(n1.attrs[k], n2.attrs[k]) for k in n1.attrs}
        if n1.output.dtype != n2.output.dtype:
            raise _Mismatch(f"dtype of {n1.op}")
        n.output.shape = shape(n1.output.shape, n2.output.shape)
        vmap[n2.output] = n.output
    for a, b in zip(g.outputs, g2.outputs):
        if vmap.get(b) is not a:
            raise _Mismatch("outputs")
    if [(vmap.get(u.target), vmap.get(u.value), u.kind) for u in g2.updates] != [
        (u.target, u.value, u.kind) for u in g.updates
    ]:
        raise _Mismatch("updates")
    g.meta["batch_source"] = source
    g.meta["dynamic"] = True
    return g


def _equal(a: Any, b: Any) -> bool:
    """Constants compare by value on their own device (a GPU constant, such as a backward
    seed made on the device, is a CuPy array that NumPy refuses to convert)."""
    try:
        xp = array_module(a)
        if array_module(b) is not xp or (xp is not np and a.device != b.device):
            return False
        return bool(xp.array_equal(a, b))
    except Exception:
        return a is b

"""The op registry and the dispatcher: the single source of truth about every op.

An op is declared once, in its family's file, with everything every part of ember needs:

* ``forward(xp, *arrays, **attrs)`` computes on NumPy/CuPy arrays (``xp`` is the module);
* ``backward(ctx, grad)`` returns one gradient per input, written in ember ops, so it is
  itself differentiable (``create_graph``) and traceable; broadcasting is undone by the
  engine (``sum_to``), not by each rule;
* ``infer(*specs, **attrs)`` optionally gives the output ``(shape, dtype)`` without running;
* ``saves_inputs`` is True, False, or a tuple of the input positions that backward reads
  (only those are kept alive and version-checked);
* ``pure`` is False for ops with effects (random draws, in-place writes), which the
  compiler must keep;
* ``onnx`` is the ONNX lowering: an op type string for a 1:1 op, or a function registered
  with :meth:`Op.defonnx` (see :mod:`ember.onnx.builder`);
* ``explain(shapes, attrs)`` optionally words a shape error.

``apply`` runs an op eagerly, records an autograd node when needed, and reports the call to
an active tracer, so eager mode, autograd and tracing share one definition.

Example:
    >>> import ember
    >>> from ember.ops.registry import REGISTRY
    >>> REGISTRY["mul"].name
    'mul'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..autograd.mode import state
from ..autograd.node import Node
from ..device import get_default_device
from ..errors import DTypeError, EmberError, ShapeError
from ..tensor import Tensor

__all__ = ["Op", "defop", "apply", "REGISTRY"]

REGISTRY: dict[str, Op] = {}


class Op:
    """One primitive operation (see the module docstring for its parts)."""

    __slots__ = (
        "name",
        "forward",
        "backward",
        "infer",
        "explain",
        "pure",
        "saves_inputs",
        "saves_output",
        "onnx",
        "doc",
    )

    def __init__(
        self,
        name: str,
        forward: Callable[..., Any],
        *,
        pure: bool = True,
        saves_inputs: bool = True,
        saves_output: bool = False,
        onnx: Any = None,
    ) -> None:
        self.name = name
        self.forward = forward
        self.backward: Callable[..., Any] | None = None
        self.infer: Callable[..., Any] | None = None
        self.explain: Callable[..., str] | None = None
        self.pure = pure
        self.saves_inputs = saves_inputs
        self.saves_output = saves_output
        self.onnx = onnx
        self.doc = forward.__doc__

    def __repr__(self) -> str:
        return f"Op({self.name!r})"

    # decorators used next to the forward definition
    def defgrad(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn(ctx, grad) -> tuple of input grads`` as this op's backward."""
        self.backward = fn
        return fn

    def defshape(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn(*specs, **attrs) -> (shape, dtype)`` as this op's shape rule."""
        self.infer = fn
        return fn

    def defexplain(self, fn: Callable[..., str]) -> Callable[..., str]:
        """Register ``fn(shapes, attrs) -> message`` that words this op's shape errors."""
        self.explain = fn
        return fn

    def defonnx(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register ``fn(g, *inputs, **attrs) -> value`` as this op's ONNX lowering: it gets
        the export's graph builder ``g`` (see :mod:`ember.onnx.builder`) and the op's inputs
        and attributes exactly as ``forward`` does, and emits ONNX nodes with ``g.op(...)``
        (a string ``onnx="Relu"`` is the 1:1 lowering of an op without attributes)."""
        self.onnx = fn
        return fn

    def error(self, inputs: tuple, attrs: dict, exc: Exception) -> EmberError:
        """Turn an exception from ``forward`` into an ember error naming op and shapes."""
        shapes = [tuple(x.shape) if isinstance(x, Tensor) else x for x in inputs]
        detail = None
        if self.explain is not None:
            try:
                detail = self.explain(shapes, attrs)
            except Exception:  # an explain rule must never hide the real error
                detail = None
        if detail is None:
            tshapes = [s for s, x in zip(shapes, inputs) if isinstance(x, Tensor)]
            what = " and ".join(str(s) for s in tshapes) or "()"
            detail = f"invalid input{'s' if len(tshapes) != 1 else ''} of shape{'s' if len(tshapes) != 1 else ''} {what}: {exc}"
        if isinstance(exc, TypeError):
            return DTypeError(self.name, detail)
        return ShapeError(self.name, detail)


def defop(name: str, **options: Any) -> Callable[[Callable[..., Any]], Op]:
    """Declare an op: decorate its forward function; returns the :class:`Op`.

    Example:
        >>> @defop("my_double", saves_inputs=False)
        ... def my_double(xp, x):
        ...     return x * 2
        >>> @my_double.defgrad
        ... def _(ctx, g):
        ...     return (g * 2,)
        >>> my_double(ember.ones(2)).tolist()
        [2.0, 2.0]
    """

    def wrap(forward: Callable[..., Any]) -> Op:
        if name in REGISTRY:
            raise ValueError(f"op {name!r} is already registered")
        op = Op(name, forward, **options)
        REGISTRY[name] = op
        return op

    return wrap


def apply(op: Op, *inputs: Any, **attrs: Any) -> Tensor:
    """Run ``op`` eagerly on tensors (and Python scalars); record autograd and tracing."""
    dev = None
    track = False
    arrays = []
    push = arrays.append
    for x in inputs:
        if isinstance(x, Tensor):
            d = x.device
            if dev is None:
                dev = d
            elif d is not dev:
                raise EmberError(
                    f"{op.name}: expected all tensors on one device, got {dev} and {d}"
                )
            if x.requires_grad:
                track = True
            push(x._data)
        else:
            push(x)
    if dev is None:
        dev = get_default_device()
    try:
        out = op.forward(dev.xp, *arrays, **attrs)
    except EmberError:
        raise
    except Exception as exc:  # a NumPy/CuPy error: reword it in the user's terms
        raise op.error(inputs, attrs, exc) from None
    if out.__class__ is not _NDARRAY and isinstance(out, np.generic):
        out = np.asarray(out)
    st = state
    node = None
    if track and st.grad_enabled and op.backward is not None and out.dtype.kind == "f":
        node = Node(op, inputs, arrays, attrs, out, dev)
    t = _make(out, dev, node)
    tracer = st.tracer
    if tracer is not None:
        tracer.record(op, inputs, attrs, t)
    return t


_NDARRAY = np.ndarray
_make = Tensor._make

Op.__call__ = apply  # calling an op is applying it (no extra frame on the hot path)

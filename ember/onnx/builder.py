"""The ONNX graph builder that op lowerings write into.

Every registry op declares its ONNX lowering next to its forward (see
:meth:`ember.ops.registry.Op.defonnx`)::

    @_sum.defonnx
    def _(g, x, dim, keepdim, dtype):
        return g.reduce("ReduceSum", g.cast(x, dtype), dim, keepdim)

A lowering receives the builder ``g`` and the op's inputs and attributes exactly as the op's
forward does, except that tensors are :class:`OnnxValue` handles (a name, a shape whose
dynamic sizes are :class:`ember.graph.ir.Sym`, a NumPy dtype). It emits nodes with
:meth:`GraphBuilder.op` and returns the value that holds the op's result. ``g.out`` describes
that result (its shape and dtype, as the traced graph recorded them) and ``g.opset`` is the
target opset. A string ``onnx="Relu"`` is the lowering of an op whose forward takes only
tensors: one node of that type over the same inputs.

Python scalars passed to :meth:`GraphBuilder.op` become constants of the first tensor
input's dtype; :meth:`GraphBuilder.const`, :meth:`GraphBuilder.ints` and
:meth:`GraphBuilder.dims` make other constants (``dims`` computes dynamic sizes at run time
from the graph inputs' shapes).

Example:
    >>> import numpy as np
    >>> g = GraphBuilder(18)
    >>> x = g.add_input("x", (2, 3), np.float32)
    >>> y = g.op("Mul", x, 2.0)
    >>> [n.op_type for n in g.nodes], y.dtype
    (['Constant', 'Mul'], dtype('float32'))
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..graph.ir import Sym
from ._common import OnnxExportError, onnx_dtype, require_onnx

__all__ = ["GraphBuilder", "OnnxValue", "INT64_MAX", "INT64_MIN"]

INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min
_SCALARS = (bool, int, float, np.generic)


class OnnxValue:
    """A value of the ONNX graph being built: its ``name``, ``shape`` (ints and
    :class:`~ember.graph.ir.Sym`; None when unknown) and NumPy ``dtype``.

    Example:
        >>> OnnxValue("x", (2, 3), np.float32).ndim
        2
    """

    __slots__ = ("name", "shape", "dtype")

    def __init__(self, name: str | None, shape: tuple | None, dtype: Any) -> None:
        self.name = name
        self.shape = None if shape is None else tuple(shape)
        self.dtype = np.dtype(dtype) if dtype is not None else None

    @property
    def ndim(self) -> int:
        if self.shape is None:
            raise OnnxExportError(f"the rank of ONNX value {self.name!r} is unknown")
        return len(self.shape)

    def static_shape(self) -> bool:
        """True when every dimension is a plain int."""
        return self.shape is not None and all(isinstance(d, int) for d in self.shape)

    def __repr__(self) -> str:
        return f"OnnxValue({self.name!r}, {self.shape}, {self.dtype})"


def _is_float(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f"


class GraphBuilder:
    """Collects ONNX nodes, constants and inputs (see the module docstring).

    Example:
        >>> g = GraphBuilder(18)
        >>> x = g.add_input("x", (Sym("B"), 4), np.float32)
        >>> d = g.dims((Sym("B"), 2, 2))
        >>> y = g.op("Reshape", x, d, shape=(Sym("B"), 2, 2))
        >>> sorted({n.op_type for n in g.nodes})
        ['Concat', 'Constant', 'Reshape', 'Shape']
    """

    INT64_MAX = INT64_MAX
    INT64_MIN = INT64_MIN

    def __init__(self, opset: int) -> None:
        self.onnx = require_onnx("ember.export")
        self.opset = int(opset)
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.initializers: list[Any] = []
        self.out: OnnxValue | None = None  # the result the current lowering must produce
        self.node: Any = None  # the IR node being lowered (for messages)
        self._taken: set[str] = set()
        self._counter = 0
        self._consts: dict[tuple, OnnxValue] = {}
        self._sym_source: dict[str, tuple[OnnxValue, int, int, int]] = {}
        self._sym_cache: dict[Sym, OnnxValue] = {}
        self._doc = ""

    # -- names ---------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        """A name not used yet in this graph."""
        hint = "".join(c if c.isalnum() or c in "_." else "_" for c in hint) or "t"
        while True:
            self._counter += 1
            name = f"{hint}_{self._counter}"
            if name not in self._taken:
                self._taken.add(name)
                return name

    def reserve(self, name: str) -> str:
        """Claim ``name`` exactly (graph inputs, parameters); raises when already taken."""
        if name in self._taken:
            raise OnnxExportError(f"the name {name!r} is used twice in the exported graph")
        self._taken.add(name)
        return name

    # -- graph inputs and initializers ---------------------------------------------------------
    def add_input(self, name: str, shape: tuple, dtype: Any) -> OnnxValue:
        """A graph input; a :class:`Sym` dimension becomes a named symbolic dimension."""
        helper = self.onnx.helper
        self.reserve(name)
        dims = [_dim_param(d) for d in shape]
        self.inputs.append(helper.make_tensor_value_info(name, onnx_dtype(dtype), dims))
        v = OnnxValue(name, shape, dtype)
        for axis, d in enumerate(shape):
            if isinstance(d, Sym) and d.name not in self._sym_source:
                self._sym_source[d.name] = (v, axis, d.coeff, d.offset)
        return v

    def add_initializer(self, name: str, array: np.ndarray) -> OnnxValue:
        """A named initializer (a parameter or buffer) holding ``array``."""
        self.reserve(name)
        arr = np.array(array, order="C", copy=None)
        self.initializers.append(self.onnx.numpy_helper.from_array(arr, name))
        return OnnxValue(name, arr.shape, arr.dtype)

    # -- nodes ---------------------------------------------------------------------------------
    def op(
        self,
        op_type: str,
        *inputs: Any,
        outputs: int = 1,
        domain: str = "",
        shape: tuple | None = None,
        dtype: Any = None,
        dtypes: Sequence[Any] | None = None,
        **attrs: Any,
    ) -> Any:
        """Emit one node; returns its output value (a tuple of them when ``outputs > 1``).

        ``inputs`` are values, None (an omitted optional input) or Python scalars / arrays
        (constants in the dtype of the first value input). Attributes whose value is None
        are left out. ``shape``/``dtype`` describe the output (default: dtype of the first
        value input, shape unknown).
        """
        like = next((x for x in inputs if isinstance(x, OnnxValue)), None)
        names = []
        for x in inputs:
            if x is None:
                names.append("")
            elif isinstance(x, OnnxValue):
                names.append(x.name)
            else:
                names.append(self.const(x, like.dtype if like is not None else None).name)
        while names and names[-1] == "":
            names.pop()
        if dtype is None:
            dtype = _RESULT_DTYPES.get(op_type)
            if op_type == "Cast":
                from ._common import numpy_dtype

                dtype = numpy_dtype(attrs["to"])
        if dtype is None and like is not None:
            dtype = like.dtype
        outs = [self.fresh(op_type) for _ in range(outputs)]
        clean = {k: _attr(v) for k, v in attrs.items() if v is not None}
        node = self.onnx.helper.make_node(
            op_type, names, outs, name=outs[0].replace(op_type, op_type.lower(), 1), domain=domain
        )
        node.attribute.extend(self.onnx.helper.make_attribute(k, v) for k, v in clean.items())
        if self._doc:
            node.doc_string = self._doc
        self.nodes.append(node)
        if outputs == 1:
            return OnnxValue(outs[0], shape, dtype)
        types = list(dtypes) if dtypes is not None else [dtype] * outputs
        return tuple(OnnxValue(n, None, t) for n, t in zip(outs, types))

    def const(self, value: Any, dtype: Any = None) -> OnnxValue:
        """A constant (a ``Constant`` node, shared by equal small constants)."""
        if isinstance(value, OnnxValue):
            return value if dtype is None else self.cast(value, dtype)
        if isinstance(value, Sym) or (
            isinstance(value, list | tuple) and any(isinstance(v, Sym) for v in value)
        ):
            raise OnnxExportError("a dynamic size cannot be a plain constant; use g.dims")
        arr = np.asarray(value)
        if dtype is not None:
            arr = arr.astype(dtype)
        elif arr.dtype == np.float64 and isinstance(value, float):
            arr = arr.astype(np.float32)
        arr = np.array(arr, order="C", copy=None)
        key = None
        if arr.size <= 64:
            key = (arr.dtype.str, arr.shape, arr.tobytes())
            hit = self._consts.get(key)
            if hit is not None:
                return hit
        name = self.fresh("const")
        tensor = self.onnx.numpy_helper.from_array(arr, name + "_value")
        node = self.onnx.helper.make_node("Constant", [], [name], name=name + "_node", value=tensor)
        self.nodes.append(node)
        v = OnnxValue(name, arr.shape, arr.dtype)
        if key is not None:
            self._consts[key] = v
        return v

    def ints(self, values: Iterable[Any]) -> OnnxValue:
        """A 1-D int64 value from ints and :class:`Sym` sizes (those computed at run time)."""
        return self.dims(tuple(values))

    def lift(self, *xs: Any, dtype: Any = None) -> tuple[OnnxValue, ...]:
        """``xs`` as values: Python scalars become constants of ``dtype`` (default: the
        dtype of the first value among ``xs``); None stays None."""
        if dtype is None:
            dtype = next((x.dtype for x in xs if isinstance(x, OnnxValue)), None)
        return tuple(
            x if x is None or isinstance(x, OnnxValue) else self.const(np.asarray(x, dtype))
            for x in xs
        )

    def scalar(self, value: Any, like: OnnxValue | Any) -> OnnxValue:
        """A 0-d constant in ``like``'s dtype (``like`` a value or a dtype)."""
        dt = like.dtype if isinstance(like, OnnxValue) else like
        return self.const(np.asarray(value, dtype=dt))

    def sym(self, s: Sym) -> OnnxValue:
        """A ``[1]`` int64 value computing the dynamic size ``s`` from a graph input's shape."""
        hit = self._sym_cache.get(s)
        if hit is not None:
            return hit
        src = self._sym_source.get(s.name)
        if src is None:
            raise OnnxExportError(f"the dynamic size {s} does not come from any graph input")
        x, axis, coeff, offset = src
        if self.opset >= 15:
            base = self.op("Shape", x, start=axis, end=axis + 1, shape=(1,), dtype=np.int64)
        else:
            shp = self.op("Shape", x, shape=(x.ndim,), dtype=np.int64)
            base = self.op("Gather", shp, self.const(np.array([axis], np.int64)), axis=0)
        # the input dimension is coeff * S + offset: S = (dim - offset) / coeff
        if offset:
            base = self.op("Sub", base, self.const(np.array([offset], np.int64)))
        if coeff != 1:
            base = self.op("Div", base, self.const(np.array([coeff], np.int64)))
        out = base
        if s.coeff != 1:
            out = self.op("Mul", out, self.const(np.array([s.coeff], np.int64)))
        if s.offset:
            out = self.op("Add", out, self.const(np.array([s.offset], np.int64)))
        out = OnnxValue(out.name, (1,), np.int64)
        self._sym_cache[s] = out
        return out

    def dims(self, shape: Sequence[Any]) -> OnnxValue:
        """A 1-D int64 value holding ``shape`` (ints and dynamic :class:`Sym` sizes)."""
        shape = tuple(shape)
        if all(not isinstance(d, Sym) for d in shape):
            return self.const(np.array([int(d) for d in shape], dtype=np.int64))
        parts: list[OnnxValue] = []
        run: list[int] = []
        for d in shape:
            if isinstance(d, Sym):
                if run:
                    parts.append(self.const(np.array(run, dtype=np.int64)))
                    run = []
                parts.append(self.sym(d))
            else:
                run.append(int(d))
        if run:
            parts.append(self.const(np.array(run, dtype=np.int64)))
        if len(parts) == 1:
            return parts[0]
        return self.op("Concat", *parts, axis=0, shape=(len(shape),), dtype=np.int64)

    def size(self, d: Any, dtype: Any = np.int64) -> OnnxValue:
        """A 0-d value holding one size ``d`` (an int or a :class:`Sym`) as ``dtype``."""
        if not isinstance(d, Sym):
            return self.const(np.asarray(d, dtype=dtype))
        v = self.op("Reshape", self.sym(d), self.const(np.zeros(0, np.int64)), shape=())
        return self.cast(v, dtype)

    @staticmethod
    def dim_sub(a: Any, b: Any) -> Any:
        """``a - b`` for sizes that may be :class:`Sym` (of one symbol): an int or a Sym."""
        if not isinstance(a, Sym) and not isinstance(b, Sym):
            return int(a) - int(b)
        name = (a if isinstance(a, Sym) else b).name
        ca, oa = (a.coeff, a.offset) if isinstance(a, Sym) else (0, int(a))
        cb, ob = (b.coeff, b.offset) if isinstance(b, Sym) else (0, int(b))
        if isinstance(a, Sym) and isinstance(b, Sym) and a.name != b.name:
            raise OnnxExportError(f"cannot subtract sizes {a} and {b} of different symbols")
        return oa - ob if ca == cb else Sym(name, ca - cb, oa - ob)

    def numel(
        self, x: OnnxValue, axes: Sequence[int] | None = None, dtype: Any = None
    ) -> OnnxValue:
        """A 0-d value: the number of elements of ``x`` (over ``axes`` only, when given),
        as ``dtype`` (default ``x``'s); computed at run time when a size is dynamic."""
        dtype = x.dtype if dtype is None else np.dtype(dtype)
        dims = list(x.shape) if axes is None else [x.shape[a] for a in axes]
        if all(isinstance(d, int) for d in dims):
            n = 1
            for d in dims:
                n *= d
            return self.const(np.asarray(n, dtype=dtype))
        shape = self.op("Shape", x)
        if axes is not None:
            shape = self.op("Gather", shape, self.const(np.array(list(axes), np.int64)), axis=0)
        return self.cast(self.op("ReduceProd", shape, keepdims=0, shape=()), dtype)

    def index(self, x: OnnxValue, key: tuple, arrays: Sequence[OnnxValue] = ()) -> OnnxValue:
        """``x[key]`` (NumPy/PyTorch indexing; ``"tensor"`` marks in ``key`` take ``arrays``
        in order), see :mod:`ember.onnx.indexing`."""
        from .indexing import read, with_arrays

        return read(self, x, with_arrays(tuple(key), tuple(arrays)))

    def index_put(
        self,
        base: OnnxValue,
        key: tuple,
        value: Any,
        arrays: Sequence[OnnxValue] = (),
        accumulate: bool = False,
    ) -> OnnxValue:
        """A copy of ``base`` with ``value`` written (or added) at ``base[key]``."""
        from .indexing import with_arrays, write

        return write(self, base, with_arrays(tuple(key), tuple(arrays)), value, accumulate)

    def loss_reduction(self, loss: OnnxValue, reduction: str) -> OnnxValue:
        """A loss reduced the PyTorch way: ``'none'``, ``'sum'`` or ``'mean'`` over all."""
        if reduction == "none":
            return loss
        op_type = "ReduceSum" if reduction == "sum" else "ReduceMean"
        return self.reduce(op_type, loss, None, False, shape=())

    # -- common patterns -----------------------------------------------------------------------
    def cast(self, x: OnnxValue, dtype: Any) -> OnnxValue:
        """``x`` converted to ``dtype`` (``x`` itself when it already has it or dtype is None)."""
        if dtype is None or x.dtype == np.dtype(dtype):
            return x
        return self.op("Cast", x, to=onnx_dtype(dtype), shape=x.shape, dtype=dtype)

    def reduce(
        self,
        op_type: str,
        x: OnnxValue,
        axes: Any,
        keepdims: bool,
        *,
        shape: tuple | None = None,
        dtype: Any = None,
    ) -> OnnxValue:
        """``Reduce*`` over ``axes`` (None: all; an int or a tuple), opset-aware (axes are
        an input from opset 13 for ReduceSum and from 18 for the others)."""
        if axes is None:
            axes_list = None
        else:
            axes_list = [int(axes)] if isinstance(axes, int | np.integer) else list(axes)
            if not axes_list:  # NumPy's axis=() reduces nothing
                return x if dtype is None else self.cast(x, dtype)
        as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        kw: dict[str, Any] = {"keepdims": int(bool(keepdims)), "shape": shape, "dtype": dtype}
        if axes_list is None:
            return self.op(op_type, x, **kw)
        if as_input:
            return self.op(op_type, x, self.const(np.array(axes_list, np.int64)), **kw)
        return self.op(op_type, x, axes=axes_list, **kw)

    def unsqueeze(self, x: OnnxValue, axes: Sequence[int], shape: tuple | None = None) -> OnnxValue:
        """``Unsqueeze`` (axes are an input from opset 13)."""
        return self.op("Unsqueeze", x, self.const(np.array(list(axes), np.int64)), shape=shape)

    def squeeze(self, x: OnnxValue, axes: Sequence[int], shape: tuple | None = None) -> OnnxValue:
        """``Squeeze`` of the given axes."""
        return self.op("Squeeze", x, self.const(np.array(list(axes), np.int64)), shape=shape)

    def reshape(self, x: OnnxValue, shape: Sequence[Any]) -> OnnxValue:
        """``Reshape`` to ``shape`` (ints, -1 and :class:`Sym` sizes)."""
        return self.op("Reshape", x, self.dims(shape), shape=tuple(shape))

    def slice(
        self,
        x: OnnxValue,
        axes: Sequence[int],
        starts: Sequence[Any],
        ends: Sequence[Any],
        steps: Sequence[int] | None = None,
    ) -> OnnxValue:
        """``Slice`` of ``x`` (starts and ends may be :class:`Sym` sizes)."""
        args = [x, self.ints(starts), self.ints(ends), self.ints(axes)]
        if steps is not None:
            args.append(self.ints(steps))
        return self.op("Slice", *args)

    def zeros(self, shape: Sequence[Any], dtype: Any) -> OnnxValue:
        """A tensor of zeros of ``shape`` (``ConstantOfShape``; dynamic sizes allowed)."""
        value = self.onnx.numpy_helper.from_array(np.zeros(1, dtype=dtype))
        return self.op(
            "ConstantOfShape", self.dims(shape), value=value, shape=tuple(shape), dtype=dtype
        )

    def where(self, cond: OnnxValue, a: Any, b: Any, like: Any) -> OnnxValue:
        """``Where(cond, a, b)`` in the dtype of ``like`` (a value or a dtype; scalar branches
        become constants of it), also for dtypes ONNX Runtime's Where lacks (bool, int16)."""
        dt = like.dtype if isinstance(like, OnnxValue) else np.dtype(like)
        shape = like.shape if isinstance(like, OnnxValue) else None
        a, b = self.lift(a, b, dtype=dt)
        if dt == np.bool_:  # ONNX Runtime has no bool Where: (c and a) or (not c and b)
            keep = self.op("And", cond, a)
            return self.op("Or", keep, self.op("And", self.op("Not", cond), b), shape=shape)
        if dt in (np.int16, np.uint16, np.uint32, np.uint64):  # nor these: go through int64
            wide = self.op("Where", cond, self.cast(a, np.int64), self.cast(b, np.int64))
            return self.cast(wide, dt)
        return self.op("Where", cond, a, b, dtype=dt, shape=shape)

    @staticmethod
    def is_value(x: Any) -> bool:
        """True for a tensor value of the graph (False for Python scalars and None)."""
        return isinstance(x, OnnxValue)

    @staticmethod
    def max_value(dtype: Any) -> Any:
        """The largest finite number of ``dtype``."""
        dt = np.dtype(dtype)
        return (np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)).max.item()

    @staticmethod
    def min_value(dtype: Any) -> Any:
        """The most negative finite number of ``dtype``."""
        dt = np.dtype(dtype)
        return (np.finfo(dt) if dt.kind == "f" else np.iinfo(dt)).min.item()

    def need_opset(self, version: int, what: str) -> None:
        """Fail unless the target opset is at least ``version`` (``what`` needs it)."""
        if self.opset < version:
            raise OnnxExportError(f"{what} needs opset {version} or newer (exporting {self.opset})")

    def erf(self, x: OnnxValue) -> OnnxValue:
        """``Erf(x)``; float64 goes through float32 (ONNX Runtime has no double Erf)."""
        if x.dtype == np.float64:
            return self.cast(self.op("Erf", self.cast(x, np.float32)), np.float64)
        return self.op("Erf", x)

    def cmp(self, op_type: str, a: OnnxValue, b: Any) -> OnnxValue:
        """A comparison (a scalar ``b`` in ``a``'s dtype); the result is bool."""
        return self.op(op_type, a, b, dtype=np.bool_, shape=a.shape)


_BOOL_RESULTS = ("Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "IsNaN", "IsInf")
_RESULT_DTYPES: dict[str, Any] = {
    k: np.dtype(np.bool_) for k in _BOOL_RESULTS + ("Not", "And", "Or", "Xor")
}
_RESULT_DTYPES.update(
    {k: np.dtype(np.int64) for k in ("Shape", "Size", "NonZero", "ArgMax", "ArgMin")}
)


def _dim_param(d: Any) -> Any:
    if isinstance(d, Sym):
        return "batch" if (d.name == "B" and d.coeff == 1 and d.offset == 0) else str(d)
    return int(d)


def _attr(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, tuple | list):
        return [_attr(e) for e in v]
    if isinstance(v, bool):
        return int(v)
    return v


def is_scalar(x: Any) -> bool:
    """True for Python / NumPy scalars (what ops take besides tensors)."""
    return isinstance(x, _SCALARS)

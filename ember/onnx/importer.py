"""``ember.load_onnx``: an ONNX model as an ember ``nn.Module``, no Python source needed.

The module interprets the ONNX graph with ember ops, so it runs eagerly, differentiates
(float initializers are trainable :class:`~ember.nn.Parameter` objects, so fine-tuning works)
and traces under ``ember.compile``. Values are of two kinds while it runs:

* *static*: NumPy arrays known without the data (constants, integer initializers, shapes and
  what is computed from them only). Ops on static values run eagerly with tracing suspended,
  so shape arithmetic never enters a compiled graph; ops that need a host value (a Reshape's
  shape, a Slice's starts) read it from here;
* *dynamic*: ember tensors (graph inputs, parameters and everything computed from them).

Parameters keep their ONNX names, nested like the exporting model's ``state_dict``
(``blocks.0.ln1.weight``), so ``state_dict()`` of an imported model matches the original.
Every ONNX op the model uses must be in the table (:mod:`ember.onnx.import_ops`); the ones
that are not are listed together in one :class:`~ember.onnx.OnnxImportError`.

Example:
    >>> import ember, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.onnx")
    >>> net = ember.nn.Sequential(ember.nn.Linear(4, 3), ember.nn.ReLU())
    >>> _ = ember.onnx.export(net, ember.randn(2, 4), path)
    >>> m = ember.onnx.load(path)
    >>> sorted(k for k, _ in m.named_parameters())
    ['0.bias', '0.weight']
"""

from __future__ import annotations

import json
import os
import re
from collections import ChainMap
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..autograd.mode import no_grad, state
from ..device import CPU, get_default_device
from ..errors import DTypeError, ShapeError
from ..memory import aligned_copy
from ..nn.module import Module
from ..nn.parameter import Parameter
from ..tensor import Tensor
from . import (  # noqa: F401  (fill OPS)
    import_ops_control,
    import_ops_more,
    import_ops_nn,
    import_ops_shape,
)
from ._common import OnnxImportError, numpy_dtype, require_onnx
from .import_ops import OPS, NodeContext, supported

__all__ = ["OnnxModule", "load", "from_proto"]

_SUPPORTED_DTYPES = {
    np.dtype(t)
    for t in (
        np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64,
        np.bool_,
    )
}  # fmt: skip


def load(path: str | os.PathLike, *, map_location: Any = None, device: Any = None) -> OnnxModule:
    """Read an ONNX file (external data next to it is found) into an :class:`OnnxModule`.

    ``map_location``/``device`` move the parameters (as ``Module.to``); without them the
    parameters go to the default device, like a model built in Python (an ONNX file records no
    device). Also reached through ``ember.load("model.onnx")``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "t.onnx")
        >>> _ = ember.onnx.export(lambda x: x * 2, ember.ones(2, 2), p)
        >>> ember.onnx.load(p)(ember.ones(3, 2)).tolist()
        [[2.0, 2.0], [2.0, 2.0], [2.0, 2.0]]
    """
    onnx = require_onnx("ember.load_onnx")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"ember.load_onnx: no such file: {path!r}")
    try:
        model = onnx.load(path)
    except Exception as exc:
        raise OnnxImportError(
            f"ember.load_onnx: {path!r} is not a readable ONNX model (the protobuf does not "
            f"parse: {type(exc).__name__}: {exc})"
        ) from None
    module = from_proto(model, source=path)
    target = device if device is not None else map_location
    if target is not None:
        module.to(target)
    return module


def from_proto(model: Any, *, source: str = "<model>") -> OnnxModule:
    """An :class:`OnnxModule` for an ``onnx.ModelProto`` already in memory, its parameters
    on the default device.

    Example:
        >>> proto = ember.onnx.to_onnx(lambda x: x + 1, ember.ones(2))
        >>> ember.onnx.from_proto(proto)(ember.zeros(3)).tolist()
        [1.0, 1.0, 1.0]
    """
    module = OnnxModule(model, source=source)
    default = get_default_device()
    if default.type != "cpu":  # initializers are read into host arrays
        module.to(default)
    return module


class _Node:
    __slots__ = ("spec", "ctx", "inputs", "outputs", "free")

    def __init__(self, spec: Any, ctx: NodeContext, inputs: list, outputs: list) -> None:
        self.spec, self.ctx, self.inputs, self.outputs = spec, ctx, inputs, outputs
        self.free: list[str] = []  # values whose last reader is this node


class OnnxModule(Module):
    """An ONNX graph run with ember ops (see the module docstring).

    ``forward`` takes the graph inputs positionally (in order) or by name and returns one
    tensor, or a tuple when the graph has several outputs.

    Example:
        >>> proto = ember.onnx.to_onnx(ember.nn.Linear(2, 2), ember.ones(1, 2))
        >>> m = ember.onnx.from_proto(proto)
        >>> m.input_names, m.output_names
        (['input'], ['output'])
    """

    def __init__(self, model: Any, *, source: str = "<model>") -> None:
        super().__init__()
        onnx = require_onnx("ember.load_onnx")
        graph = model.graph
        if model.ir_version == 0 and not graph.node and not graph.output:
            raise OnnxImportError(f"ember.load_onnx: {source!r} holds no ONNX model (empty graph)")
        object.__setattr__(self, "_onnx", onnx)
        self.source = source
        self.opset = {imp.domain or "": imp.version for imp in model.opset_import}
        self.doc_string = model.doc_string
        meta = {p.key: p.value for p in model.metadata_props}
        buffers = set(json.loads(meta.get("ember.buffers", "[]")))
        self._check_supported(graph, source)
        inits = {t.name: t for t in graph.initializer}
        self.input_names = [v.name for v in graph.input if v.name not in inits]
        self.output_names = [v.name for v in graph.output]
        self._input_info = {v.name: _value_info(v) for v in graph.input if v.name not in inits}
        self._static: dict[str, np.ndarray] = {}
        self._refs: dict[str, tuple[Module, str, str]] = {}
        statics = _static_uses(graph)
        for name, tensor in inits.items():
            arr = onnx.numpy_helper.to_array(tensor)
            self._add_initializer(name, np.array(arr), name in buffers, name in statics)
        self._nodes = self._fold([self._compile(n) for n in graph.node])
        _plan_frees(self._nodes, self.output_names)
        self._subgraphs: dict[int, tuple] = {}
        self._envs: list[Any] = []

    # -- construction ----------------------------------------------------------------------
    def _check_supported(self, graph: Any, source: str) -> None:
        missing: dict[str, int] = {}
        bad_types: set[str] = set()
        for node, opset in _walk(graph, self.opset):
            key = (
                node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            )
            if not supported(node.op_type, node.domain, opset):
                missing[key] = missing.get(key, 0) + 1
        for v in list(graph.input) + list(graph.output):
            kind = v.type.WhichOneof("value")
            if kind is None:  # untyped (allowed for outputs)
                continue
            if kind != "tensor_type":
                bad_types.add(f"{v.name} ({kind})")
            else:
                dt = _np_dtype(v.type.tensor_type.elem_type)
                if dt is None or dt not in _SUPPORTED_DTYPES:
                    bad_types.add(f"{v.name} ({_type_name(v.type.tensor_type.elem_type)})")
        for t in graph.initializer:
            dt = _np_dtype(t.data_type)
            if dt is None or dt not in _SUPPORTED_DTYPES:
                bad_types.add(f"{t.name} ({_type_name(t.data_type)})")
        if missing or bad_types:
            parts = []
            if missing:
                ops = ", ".join(
                    f"{k} ({n} node{'s' if n > 1 else ''})" for k, n in sorted(missing.items())
                )
                parts.append(f"ONNX ops ember cannot run: {ops}")
            if bad_types:
                parts.append(
                    f"values of types ember has no dtype for: {', '.join(sorted(bad_types))}"
                )
            raise OnnxImportError(f"ember.load_onnx: {source!r} uses " + "; and ".join(parts))

    def _owner(self, name: str) -> tuple[Module, str]:
        parts = [_identifier(p) for p in name.split(".")] or ["param"]
        owner: Module = self
        for p in parts[:-1]:
            child = owner._modules.get(p)
            if child is None:
                child = Module()
                if hasattr(owner, p):
                    p = p + "_"
                owner.add_module(p, child)
            owner = child
        leaf = parts[-1]
        while hasattr(owner, leaf) and leaf not in owner._parameters and leaf not in owner._buffers:
            leaf += "_"
        return owner, leaf

    def _add_initializer(self, name: str, arr: np.ndarray, buffer: bool, static: bool) -> None:
        owner, leaf = self._owner(name)
        if arr.dtype.kind == "f" and not buffer and not static:
            owner.register_parameter(leaf, Parameter(Tensor(aligned_copy(arr))))
            self._refs[name] = (owner, leaf, "_parameters")
            return
        owner.register_buffer(leaf, Tensor(arr))
        if arr.dtype.kind == "f" and not static:
            self._refs[name] = (owner, leaf, "_buffers")
        else:  # integers (shapes, indices) and data only read as host values: constants
            self._static[name] = arr

    def _compile(self, node: Any) -> _Node:
        domain = node.domain if node.domain not in ("ai.onnx",) else ""
        opset = self.opset.get(domain, self.opset.get("", 1))
        spec = OPS[(domain, node.op_type)]
        attrs = {a.name: _attr_value(self._onnx, a) for a in node.attribute}
        ctx = NodeContext(node.op_type, node.name, attrs, opset, len(node.output), self)
        return _Node(spec, ctx, list(node.input), list(node.output))

    def _fold(self, nodes: list[_Node]) -> list[_Node]:
        """Run the nodes that read only constants once, now (their results become static)."""
        keep = []
        for node in nodes:
            static_inputs = all(not n or n in self._static for n in node.inputs)
            plain = not _subgraph_names(node.ctx.attrs) and node.spec.foldable
            if static_inputs and plain and not any(n in self.output_names for n in node.outputs):
                vals = [self._static[n] if n else None for n in node.inputs]
                outs = run_node(node.spec, node.ctx, vals)
                if all(isinstance(o, np.ndarray) for o in outs):
                    self._static.update((n, o) for n, o in zip(node.outputs, outs) if n)
                    continue
            keep.append(node)
        return keep

    # -- running ---------------------------------------------------------------------------
    def _bind_inputs(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        if len(args) > len(self.input_names):
            raise TypeError(
                f"{self.source}: takes {len(self.input_names)} inputs {self.input_names}, "
                f"got {len(args)}"
            )
        values = dict(zip(self.input_names, args))
        for k, v in kwargs.items():
            if k not in self._input_info:
                raise TypeError(f"{self.source}: no input named {k!r} (inputs: {self.input_names})")
            values[k] = v
        missing = [n for n in self.input_names if n not in values]
        if missing:
            raise TypeError(f"{self.source}: missing input(s) {missing}")
        env: dict[str, Any] = {}
        for name, v in values.items():
            dtype, dims = self._input_info[name]
            if not isinstance(v, Tensor):
                from ..ops.creation import as_tensor

                v = as_tensor(np.asarray(v, dtype=dtype))
            elif dtype is not None and v._data.dtype != dtype:
                raise DTypeError(
                    "onnx model",
                    f"input {name!r} expects dtype {dtype.name}, got {v._data.dtype.name}",
                )
            if dims is not None:
                _check_shape(name, dims, tuple(v.shape), self.source)
            env[name] = v
        return env

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        env = self._bind_inputs(args, kwargs)
        env.update(self._static)
        for name, (owner, leaf, table) in self._refs.items():
            env[name] = getattr(owner, table)[leaf]
        self._envs.append(env)
        try:
            _execute(self._nodes, env)
        finally:
            self._envs.pop()
        results = [_as_tensor(env[n]) for n in self.output_names]
        return results[0] if len(results) == 1 else tuple(results)

    def run_subgraph(self, graph: Any, inputs: list) -> list:
        """Run a control-flow body (``If``/``Loop``/``Scan``) on ``inputs``; names it does
        not define are read from the enclosing graph's values."""
        compiled = self._subgraphs.get(id(graph))
        if compiled is None:
            onnx = self._onnx
            statics = {t.name: np.array(onnx.numpy_helper.to_array(t)) for t in graph.initializer}
            nodes = [self._compile(n) for n in graph.node]
            names = ([v.name for v in graph.input], [v.name for v in graph.output])
            compiled = (statics, nodes, names, graph)
            self._subgraphs[id(graph)] = compiled
        statics, nodes, (in_names, out_names), _ = compiled
        env = ChainMap(dict(statics), self._envs[-1])
        env.maps[0].update(zip(in_names, inputs))
        self._envs.append(env)
        try:
            _execute(nodes, env)
        finally:
            self._envs.pop()
        return [env[n] for n in out_names]

    def extra_repr(self) -> str:
        return f"source={self.source!r}, inputs={self.input_names}, outputs={self.output_names}"


def _execute(nodes: list[_Node], env: Any) -> None:
    for node in nodes:
        outs = run_node(node.spec, node.ctx, [env.get(n) if n else None for n in node.inputs])
        for name, v in zip(node.outputs, outs):
            if name:
                env[name] = v
        for name in node.free:
            env.pop(name, None)


def run_node(spec: Any, ctx: NodeContext, vals: list) -> list:
    """Run one node: on static values with tracing suspended (their results stay static),
    else with ember tensors (host values for the inputs the op reads as data; constants join
    the node's tensors on their device)."""
    if spec.foldable and all(v is None or isinstance(v, np.ndarray) for v in vals):
        prev = state.tracer
        state.tracer = None
        try:
            with no_grad():
                args = [
                    v if (v is None or i in spec.static) else _tensor(v, CPU)
                    for i, v in enumerate(vals)
                ]
                outs = _outputs(spec.fn(ctx, *args))
                return [_host(o) if isinstance(o, Tensor) else o for o in outs]
        finally:
            state.tracer = prev
    args = []
    device = next((v.device for v in vals if isinstance(v, Tensor)), None)
    for i, v in enumerate(vals):
        if v is None or isinstance(v, list):
            args.append(v)
        elif i in spec.static:
            args.append(v if isinstance(v, np.ndarray) else _host(v))
        else:
            args.append(_tensor(v, device))
    return _outputs(spec.fn(ctx, *args))


def _outputs(res: Any) -> list:
    return list(res) if isinstance(res, tuple) else [res]


def _tensor(v: Any, device: Any = None) -> Any:
    if isinstance(v, Tensor) or v is None or isinstance(v, list):
        return v
    from ..ops.creation import as_tensor

    return as_tensor(np.asarray(v), device=device)


def _as_tensor(v: Any) -> Any:
    return _tensor(v) if isinstance(v, np.ndarray | np.generic) else v


def _host(t: Any) -> np.ndarray:
    if isinstance(t, np.ndarray):
        return t
    return np.asarray(t.numpy())


# -- graph helpers ----------------------------------------------------------------------------
def _walk(graph: Any, opset: dict) -> Iterator[tuple[Any, int]]:
    stack = [graph]
    while stack:
        g = stack.pop()
        for node in g.node:
            domain = "" if node.domain in ("", "ai.onnx") else node.domain
            yield node, opset.get(domain, opset.get("", 1))
            for a in node.attribute:
                if a.type == 5:  # GRAPH
                    stack.append(a.g)
                elif a.type == 10:  # GRAPHS
                    stack.extend(a.graphs)


def _static_uses(graph: Any) -> set[str]:
    """Names read only at inputs that ops take as host data (shapes, axes, sizes)."""
    data_uses: set[str] = set()
    static_uses: set[str] = set()
    for node in graph.node:
        domain = "" if node.domain in ("", "ai.onnx") else node.domain
        spec = OPS.get((domain, node.op_type))
        for i, name in enumerate(node.input):
            if spec is not None and i in spec.static:
                static_uses.add(name)
            else:
                data_uses.add(name)
    return static_uses - data_uses


def _subgraph_names(attrs: dict) -> set[str]:
    """Every value name read inside a node's subgraphs (outer-scope reads included)."""
    names: set[str] = set()
    stack = [v for v in attrs.values() if hasattr(v, "node")]
    for v in attrs.values():
        if isinstance(v, list):
            stack.extend(g for g in v if hasattr(g, "node"))
    while stack:
        g = stack.pop()
        for n in g.node:
            names.update(n.input)
            for a in n.attribute:
                if a.type == 5:
                    stack.append(a.g)
                elif a.type == 10:
                    stack.extend(a.graphs)
    return names


def _plan_frees(nodes: list[_Node], outputs: list[str]) -> None:
    last: dict[str, _Node] = {}
    for node in nodes:
        for name in list(node.inputs) + sorted(_subgraph_names(node.ctx.attrs)):
            if name:
                last[name] = node
    keep = set(outputs)
    for name, node in last.items():
        if name not in keep:
            node.free.append(name)


def _attr_value(onnx: Any, a: Any) -> Any:
    if a.type == 4:  # TENSOR
        return onnx.numpy_helper.to_array(a.t)
    if a.type == 9:  # TENSORS
        return [onnx.numpy_helper.to_array(t) for t in a.tensors]
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [s.decode("utf-8", errors="replace") for s in v]
    return v


def _np_dtype(elem_type: int) -> np.dtype | None:
    try:
        return numpy_dtype(elem_type)
    except Exception:
        return None


def _type_name(elem_type: int) -> str:
    onnx = require_onnx()
    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


def _value_info(v: Any) -> tuple[Any, Any]:
    if v.type.WhichOneof("value") != "tensor_type":
        return None, None
    tt = v.type.tensor_type
    dtype = _np_dtype(tt.elem_type)
    if not tt.HasField("shape"):
        return dtype, None
    dims = tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim
    )
    return dtype, dims


def _check_shape(name: str, dims: tuple, got: tuple, source: str) -> None:
    ok = len(dims) == len(got) and all(not isinstance(d, int) or d == g for d, g in zip(dims, got))
    if not ok:
        want = "(" + ", ".join(str(d) if d is not None else "?" for d in dims) + ")"
        raise ShapeError(
            "onnx model",
            f"input {name!r} of {os.path.basename(source)} expects shape {want}, got {got}",
        )


def _identifier(part: str) -> str:
    clean = re.sub(r"\W", "_", part)
    return clean or "_"

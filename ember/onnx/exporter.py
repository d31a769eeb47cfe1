"""``ember.export``: trace a model or function to the IR and write it as an ONNX model.

The trace (:mod:`ember.graph.trace`) records registry ops; each op's ONNX lowering, declared
next to its forward (:meth:`ember.ops.registry.Op.defonnx`), turns its node into ONNX nodes
(:mod:`ember.onnx.builder`). Parameters become named initializers (models over 2 GB keep
them in an external-data file), constants become ``Constant`` nodes, and the batch size is
symbolic by default: the function is traced at two batch sizes and every size that changes
with the batch becomes a run-time computation from the input's shape. The IR version is the
one that first shipped the requested opset, so current runtimes accept the file.

Example:
    >>> import ember, tempfile, os
    >>> model = ember.nn.Linear(3, 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "linear.onnx")
    >>> ember.onnx.export(model, ember.randn(4, 3), path) == path
    True
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..autograd.mode import no_grad
from ..errors import EmberError
from ..graph.ir import Graph, Sym, Value
from ..graph.trace import GraphBreak, Tracer, _tensor_leaves
from ..ops.registry import REGISTRY
from ..tensor import Tensor
from ._common import MAX_OPSET, MIN_OPSET, OnnxExportError, ir_version_for, require_onnx
from .builder import GraphBuilder, OnnxValue

__all__ = ["export", "to_onnx", "graph_to_onnx", "EXTERNAL_DATA_THRESHOLD"]

EXTERNAL_DATA_THRESHOLD = 2 * 1024**3 - 64 * 1024**2  # protobuf's 2 GB limit, with headroom


def export(
    model_or_fn: Any,
    example_inputs: Any,
    path: str | os.PathLike,
    *,
    opset: int = 18,
    dynamic_batch: bool = True,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    check: bool = True,
) -> str:
    """Trace ``model_or_fn(*example_inputs)`` and write it to ``path`` as an ONNX model.

    ``model_or_fn`` is an ``nn.Module`` (exported in eval mode, parameters as initializers
    named like its ``state_dict``) or a function of tensors. ``example_inputs`` is a tensor or
    a tuple of them. With ``dynamic_batch`` (default) the first dimension of every input is
    the symbolic ``batch``. An op without an ONNX lowering fails with a message naming it and
    your line; nothing is written when export fails. Returns ``path``.

    Example:
        >>> import ember, tempfile, os
        >>> f = lambda x: ember.relu(x) * 2
        >>> p = ember.onnx.export(f, ember.randn(2, 3), os.path.join(tempfile.mkdtemp(), "f.onnx"))
        >>> os.path.exists(p)
        True
    """
    onnx = require_onnx("ember.export")
    model = to_onnx(
        model_or_fn,
        example_inputs,
        opset=opset,
        dynamic_batch=dynamic_batch,
        input_names=input_names,
        output_names=output_names,
        check=False,
    )
    path = os.fspath(path)
    big = sum(t.ByteSize() for t in model.graph.initializer) > EXTERNAL_DATA_THRESHOLD
    if check:
        _check(onnx, model, big)
    _write(onnx, model, path, big)
    return path


def to_onnx(
    model_or_fn: Any,
    example_inputs: Any,
    *,
    opset: int = 18,
    dynamic_batch: bool = True,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
    check: bool = True,
) -> Any:
    """Like :func:`export` but return the ``onnx.ModelProto`` instead of writing a file.

    Example:
        >>> m = ember.onnx.to_onnx(lambda x: x.exp(), ember.ones(2, 2))
        >>> [n.op_type for n in m.graph.node]
        ['Exp']
    """
    onnx = require_onnx("ember.export")
    if not (MIN_OPSET <= int(opset) <= MAX_OPSET):
        raise OnnxExportError(
            f"ember.export: opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET}"
        )
    args = _as_args(example_inputs)
    with _inference_mode(model_or_fn):
        graph = _trace(model_or_fn, args)
        if dynamic_batch:
            graph = _symbolize(graph, _trace(model_or_fn, _grow_batch(args)), args)
    names = input_names or _default_input_names(model_or_fn, len(graph.inputs))
    model = graph_to_onnx(graph, opset=opset, input_names=names, output_names=output_names)
    if check:
        _check(onnx, model, False)
    return model


# -- tracing ----------------------------------------------------------------------------------
def _as_args(example_inputs: Any) -> tuple:
    if isinstance(example_inputs, Tensor | np.ndarray):
        example_inputs = (example_inputs,)
    elif isinstance(example_inputs, list):
        example_inputs = tuple(example_inputs)
    elif not isinstance(example_inputs, tuple):
        raise OnnxExportError(
            "ember.export: example_inputs must be a tensor or a tuple of tensors, got "
            f"{type(example_inputs).__name__}"
        )
    from ..ops.creation import as_tensor

    return tuple(as_tensor(a) if isinstance(a, np.ndarray) else a for a in example_inputs)


@contextlib.contextmanager
def _inference_mode(model: Any) -> Iterator[None]:
    from ..nn.module import Module

    modes: list[tuple[Any, bool]] = []
    if isinstance(model, Module):
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
    try:
        with no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _labels(model: Any) -> dict[int, str]:
    from ..nn.module import Module

    labels: dict[int, str] = {}
    if isinstance(model, Module):
        for name, p in model.named_parameters():
            labels.setdefault(id(p), name)
        for name, b in model.named_buffers():
            labels.setdefault(id(b), name)
    return labels


def _trace(fn: Callable[..., Any], args: tuple) -> Graph:
    name = type(fn).__name__ if not inspect.isfunction(fn) else fn.__name__
    tracer = Tracer(name if name.isidentifier() else "model", fullgraph=True, labels=_labels(fn))
    for path, t in _tensor_leaves(args, "input"):
        tracer.add_input(t, path)
    try:
        with tracer:
            result = fn(*args)
    except GraphBreak as exc:
        raise OnnxExportError(
            f"ember.export: {exc}. An exported graph cannot depend on tensor values read in Python."
        ) from None
    graph = tracer.finish(result)
    bad = [u for u in graph.updates if u.kind == "copy"]
    if bad:
        raise OnnxExportError(
            f"ember.export: the function writes {len(bad)} tensor(s) in place (e.g. "
            f"{bad[0].target.label or bad[0].target.name}); ONNX graphs have no effects, "
            "so export an inference function (modules are exported in eval mode)"
        )
    return graph


def _grow_batch(args: tuple) -> tuple:
    """The same inputs with one more row in the batch dimension (for the second trace)."""
    from ..ops.creation import as_tensor

    out = []
    for a in args:
        if isinstance(a, Tensor):
            arr = a.numpy()
            if arr.ndim == 0 or arr.shape[0] == 0:
                raise OnnxExportError(
                    "ember.export: dynamic_batch needs every input to have a non-empty first "
                    f"(batch) dimension, got shape {tuple(arr.shape)}; pass dynamic_batch=False"
                )
            arr = np.concatenate([arr, arr[:1]], axis=0)
            out.append(as_tensor(arr))
        else:
            out.append(a)
    return tuple(out)


# -- symbolic batch ---------------------------------------------------------------------------
def _symbolize(g1: Graph, g2: Graph, args: tuple) -> Graph:
    """Merge two traces made at batch sizes b and b + 1 into one graph whose batch-dependent
    sizes are :class:`Sym` values ``coeff * B + offset``."""
    b1 = next((a.shape[0] for a in args if isinstance(a, Tensor)), None)

    def fail(detail: str, node: Any = None) -> OnnxExportError:
        where = ""
        if node is not None and node.source is not None:
            where = f" (at {node.source.describe()})"
        return OnnxExportError(
            f"ember.export: the traced graph depends on the batch size in a way ONNX cannot "
            f"express: {detail}{where}. Export with dynamic_batch=False (a fixed batch size), "
            "or make the model's shapes follow x.shape[0]"
        )

    def unify(a: Any, b: Any, node: Any) -> Any:
        if type(a) is not type(b) and not (_is_int(a) and _is_int(b)):
            raise fail(f"{a!r} becomes {b!r}", node)
        if _is_int(a):
            if a == b:
                return a
            c = int(b) - int(a)
            return Sym("B", c, int(a) - c * b1)
        if isinstance(a, tuple | list):
            if len(a) != len(b):
                raise fail(f"{a!r} becomes {b!r}", node)
            return type(a)(unify(x, y, node) for x, y in zip(a, b))
        if isinstance(a, dict):
            if a.keys() != b.keys():
                raise fail(f"{a!r} becomes {b!r}", node)
            return {k: unify(a[k], b[k], node) for k in a}
        if isinstance(a, slice):
            return slice(
                unify(a.start, b.start, node),
                unify(a.stop, b.stop, node),
                unify(a.step, b.step, node),
            )
        if isinstance(a, np.ndarray):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise fail("an array argument changes with the batch size", node)
            return a
        if a != b:
            raise fail(f"{a!r} becomes {b!r}", node)
        return a

    if len(g1.nodes) != len(g2.nodes) or len(g1.inputs) != len(g2.inputs):
        raise fail("the number of ops changes with the batch size")
    for v1, v2 in zip(g1.inputs, g2.inputs):
        if len(v1.shape) != len(v2.shape):
            raise fail(f"input {v1.label} changes rank")
        v1.shape = tuple(unify(x, y, None) for x, y in zip(v1.shape, v2.shape))
    for c1, c2 in zip(g1.constants, g2.constants):
        a1, a2 = _host(c1.data), _host(c2.data)
        if c1.shape == c2.shape and np.array_equal(a1, a2):
            continue
        fill = _uniform(a1)
        if fill is not None and a1.ndim == a2.ndim and fill == _uniform(a2):
            # zeros/ones/full of a batch-dependent shape (an RNN's initial state): a fill
            c1.shape = tuple(unify(x, y, None) for x, y in zip(c1.shape, c2.shape))
            c1.meta["fill"] = a1.reshape(-1)[:1]
            continue
        user = next((n for n in g1.nodes if c1 in n.inputs), None)
        raise fail("a tensor created inside the function changes with the batch size", user)
    for n1, n2 in zip(g1.nodes, g2.nodes):
        if n1.op != n2.op or len(n1.inputs) != len(n2.inputs):
            raise fail(f"op {n1.op!r} becomes {n2.op!r}", n1)
        for x, y in zip(n1.inputs, n2.inputs):
            if isinstance(x, Value) != isinstance(y, Value):
                raise fail("an argument changes kind", n1)
            if not isinstance(x, Value):
                unify(x, y, n1)
        n1.attrs = unify(n1.attrs, n2.attrs, n1)
        o1, o2 = n1.output, n2.output
        o1.shape = tuple(unify(x, y, n1) for x, y in zip(o1.shape, o2.shape))
    return g1


def _uniform(a: np.ndarray) -> Any:
    """The single value every element of ``a`` holds (None when they differ or it is empty)."""
    if a.size == 0:
        return None
    first = a.reshape(-1)[0]
    return first.item() if bool((a == first).all()) else None


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


# -- IR -> ONNX ---------------------------------------------------------------------------------
def _default_input_names(fn: Any, n: int) -> list[str]:
    target = getattr(fn, "forward", fn)
    try:
        params = [
            p.name
            for p in inspect.signature(target).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    if len(params) >= n and n > 0:
        return params[:n]
    return ["input"] if n == 1 else [f"input_{i}" for i in range(n)]


def _live_nodes(graph: Graph) -> list[Any]:
    needed = set(graph.outputs)
    keep = []
    for n in reversed(graph.nodes):
        if n.output in needed:
            keep.append(n)
            needed.update(x for x in n.inputs if isinstance(x, Value))
    keep.reverse()
    return keep


def _param_name(label: str | None, used: set[str], fallback: str) -> str:
    name = label or fallback
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base}_{k}"
    used.add(name)
    return name


def graph_to_onnx(
    graph: Graph,
    *,
    opset: int = 18,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> Any:
    """Lower a traced :class:`~ember.graph.ir.Graph` to an ``onnx.ModelProto``.

    Example:
        >>> from ember.graph.trace import trace
        >>> g, _ = trace(lambda x: x * 2, ember.ones(3))
        >>> graph_to_onnx(g).graph.node[-1].op_type
        'Mul'
    """
    from .. import __version__

    onnx = require_onnx("ember.export")
    helper = onnx.helper
    b = GraphBuilder(opset)
    env: dict[Value, OnnxValue] = {}
    names = list(input_names or [])
    if names and len(names) != len(graph.inputs):
        raise OnnxExportError(
            f"ember.export: {len(names)} input_names for {len(graph.inputs)} inputs"
        )
    for i, v in enumerate(graph.inputs):
        name = names[i] if names else f"input_{i}"
        env[v] = b.add_input(name, v.shape, v.dtype)
    live = _live_nodes(graph)
    used_values = {x for n in live for x in n.inputs if isinstance(x, Value)} | set(graph.outputs)
    taken: set[str] = set(b._taken)
    buffers = []
    for k, v in enumerate(graph.captured):
        if v not in used_values:
            continue
        t = v.ref
        arr = np.asarray(t.detach().numpy() if isinstance(t, Tensor) else t)
        name = _param_name(v.label, taken, f"param_{k}")
        env[v] = b.add_initializer(name, arr)
        if not (isinstance(t, Tensor) and t.requires_grad):
            buffers.append(name)
    for v in graph.constants:
        if v not in used_values:
            continue
        if "fill" in v.meta:  # a batch-sized fill: ConstantOfShape of the run-time shape
            value = b.onnx.numpy_helper.from_array(np.asarray(v.meta["fill"], dtype=v.dtype))
            env[v] = b.op(
                "ConstantOfShape", b.dims(v.shape), value=value, shape=v.shape, dtype=v.dtype
            )
        else:
            env[v] = OnnxValue(b.const(_host(v.data)).name, v.shape, v.dtype)
    for v in graph.scalars:
        if v in used_values:
            env[v] = b.const(np.asarray(v.ref(), dtype=v.dtype))
    dynamic: set[Value] = set()  # values whose shape depends on data (NonZero downstream)
    for node in live:
        start = len(b.nodes)
        env[node.output] = _lower(b, node, env)
        if any(n.op_type in _DATA_DEPENDENT for n in b.nodes[start:]) or any(
            isinstance(x, Value) and x in dynamic for x in node.inputs
        ):
            dynamic.add(node.output)
    outs = _outputs(b, graph, env, output_names, dynamic)
    g = helper.make_graph(
        b.nodes,
        graph.name,
        b.inputs,
        outs,
        initializer=b.initializers,
        doc_string=f"exported by ember {__version__}",
    )
    model = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", int(opset))],
        producer_name="ember",
        producer_version=__version__,
        doc_string=f"ember {__version__} model (opset {opset})",
    )
    model.ir_version = ir_version_for(int(opset))
    if buffers:
        import json

        helper.set_model_props(model, {"ember.buffers": json.dumps(buffers)})
    return model


def _lower(b: GraphBuilder, node: Any, env: dict[Value, OnnxValue]) -> OnnxValue:
    op = REGISTRY.get(node.op)
    where = f" at {node.source.describe()}" if node.source is not None else ""
    lowering = None if op is None else op.onnx
    if lowering is None:
        raise OnnxExportError(
            f"ember.export: op {node.op!r}{where} has no ONNX lowering (declare one next to "
            "the op with @op.defonnx)"
        )
    ins = [env[x] if isinstance(x, Value) else x for x in node.inputs]
    out = node.output
    b.out, b.node = OnnxValue(None, out.shape, out.dtype), node
    b._doc = f"ember op {node.op}{where}"
    try:
        if isinstance(lowering, str):
            res = _lower_direct(b, lowering, node, ins)
        else:
            res = lowering(b, *ins, **node.attrs)
    except EmberError as exc:
        if isinstance(exc, OnnxExportError) and str(exc).startswith("ember.export"):
            raise
        raise OnnxExportError(f"ember.export: op {node.op!r}{where}: {exc}") from None
    finally:
        b._doc = ""
    if isinstance(res, tuple):
        res = res[0]
    if not isinstance(res, OnnxValue):
        raise OnnxExportError(
            f"ember.export: the ONNX lowering of {node.op!r} returned {type(res).__name__}"
        )
    if res.dtype is not None and res.dtype != out.dtype:
        res = b.cast(res, out.dtype)
    return OnnxValue(res.name, out.shape, out.dtype)


def _lower_direct(b: GraphBuilder, op_type: str, node: Any, ins: list) -> OnnxValue:
    if node.attrs:
        raise OnnxExportError(
            f"op {node.op!r} has attributes {sorted(node.attrs)}, so its lowering must be a "
            "function (@op.defonnx), not the op type string " + repr(op_type)
        )
    out_dt = np.dtype(node.output.dtype)
    tensors = [x for x in ins if isinstance(x, OnnxValue)]
    like = out_dt if out_dt != np.bool_ or not tensors else tensors[0].dtype
    args = [x if isinstance(x, OnnxValue) or x is None else b.scalar(x, like) for x in ins]
    return b.op(op_type, *args, dtype=out_dt)


_DATA_DEPENDENT = frozenset({"NonZero", "Unique", "Compress", "NonMaxSuppression"})


def _outputs(
    b: GraphBuilder,
    graph: Graph,
    env: dict[Value, OnnxValue],
    output_names: list[str] | None,
    dynamic: set[Value],
) -> list[Any]:
    helper = b.onnx.helper
    n = len(graph.outputs)
    names = list(output_names or ([] if n != 1 else ["output"]))
    if not names:
        names = [f"output_{i}" for i in range(n)]
    if len(names) != n:
        raise OnnxExportError(f"ember.export: {len(names)} output_names for {n} outputs")
    produced = {o: node for node in b.nodes for o in node.output}
    renamed: dict[str, str] = {}
    infos = []
    for v, name in zip(graph.outputs, names):
        src = env[v]
        b.reserve(name)
        node = produced.get(src.name)
        if node is not None and src.name not in renamed and node.op_type != "Constant":
            renamed[src.name] = name
        else:  # an input, an initializer or a repeated output: copy it
            b.nodes.append(helper.make_node("Identity", [renamed.get(src.name, src.name)], [name]))
        from ._common import onnx_dtype

        dims = [None if v in dynamic else _out_dim(d) for d in v.shape]
        infos.append(helper.make_tensor_value_info(name, onnx_dtype(v.dtype), dims))
    if renamed:
        for node in b.nodes:
            for i, x in enumerate(node.input):
                if x in renamed:
                    node.input[i] = renamed[x]
            for i, x in enumerate(node.output):
                if x in renamed:
                    node.output[i] = renamed[x]
    return infos


def _out_dim(d: Any) -> Any:
    from .builder import _dim_param

    return _dim_param(d)


# -- checking and writing ------------------------------------------------------------------
def _check(onnx: Any, model: Any, big: bool) -> None:
    if big:  # the checker cannot hold a > 2 GB proto in memory; check the structure only
        return
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise OnnxExportError(
            f"ember.export: the exported model fails onnx.checker ({exc}); nothing was written"
        ) from None


def _write(onnx: Any, model: Any, path: str, big: bool) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    if not big:
        data = model.SerializeToString()
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            raise
        return
    location = base + ".data"
    tmpdir = tempfile.mkdtemp(prefix=f".{base}.", dir=folder)
    try:
        tmp_model = os.path.join(tmpdir, base)
        onnx.save_model(
            model,
            tmp_model,
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=1024,
        )
        os.replace(os.path.join(tmpdir, location), os.path.join(folder, location))
        os.replace(tmp_model, path)
    finally:
        import shutil

        shutil.rmtree(tmpdir, ignore_errors=True)


def _host(a: Any) -> np.ndarray:
    """A NumPy array of a traced constant, copied from the GPU when it lives there (CuPy
    arrays refuse ``np.asarray``)."""
    return a.get() if hasattr(a, "__cuda_array_interface__") else np.asarray(a)

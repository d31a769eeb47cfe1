"""ONNX tools behind the ``ember`` command: ``export``, ``inspect`` and ``convert``.

* ``ember export pkg.models:make_model --input-shape 1,784 -o model.onnx`` builds the model
  with a Python factory (a module or a ``file.py``, then ``:`` and a callable) and exports it;
* ``ember inspect model.onnx`` prints inputs, outputs, an op histogram, the parameter count,
  the opset and IR version (``--json`` for a machine-readable report);
* ``ember convert model.onnx --to ort [--quantize int8]`` writes the ONNX Runtime Mobile
  ``.ort`` format with onnxruntime's own converter, optionally after dynamic int8
  quantization (``onnxruntime.quantization``), and reports the size before and after.

Example:
    >>> import ember, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "m.onnx")
    >>> _ = ember.onnx.export(ember.nn.Linear(3, 2), ember.ones(1, 3), p)
    >>> inspect_model(p)["parameters"]
    8
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ._common import require_onnx, require_onnxruntime

__all__ = [
    "inspect_model",
    "convert_to_ort",
    "export_factory",
    "load_factory",
    "add_commands",
    "run_command",
    "COMMANDS",
]

COMMANDS = ("export", "inspect", "convert")


# -- inspect ----------------------------------------------------------------------------------
def _type_str(onnx: Any, vi: Any) -> tuple[str, list]:
    tt = vi.type.tensor_type
    dtype = onnx.TensorProto.DataType.Name(tt.elem_type).lower()
    dims = [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in tt.shape.dim]
    return dtype, dims


def inspect_model(path: str | os.PathLike) -> dict[str, Any]:
    """A report of an ONNX file: inputs, outputs, op histogram, parameter count, opset.

    Example:
        >>> import ember, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "m.onnx")
        >>> _ = ember.onnx.export(lambda x: x.relu(), ember.ones(2, 2), p)
        >>> inspect_model(p)["ops"]
        {'Relu': 1}
    """
    onnx = require_onnx("ember inspect")
    path = os.fspath(path)
    model = onnx.load(path, load_external_data=False)
    g = model.graph
    inits = {t.name for t in g.initializer}
    ops: Counter[str] = Counter()
    stack = [g]
    while stack:
        sub = stack.pop()
        for n in sub.node:
            ops[n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    stack.append(a.g)
    params = sum(int(np.prod(t.dims, dtype=np.int64)) for t in g.initializer)
    size = os.path.getsize(path)
    data = sum(
        os.path.getsize(os.path.join(os.path.dirname(path), e.value))
        for t in g.initializer
        for e in t.external_data
        if e.key == "location" and os.path.exists(os.path.join(os.path.dirname(path), e.value))
    )
    return {
        "path": os.path.abspath(path),
        "inputs": [
            dict(zip(("name", "dtype", "shape"), (v.name, *_type_str(onnx, v))))
            for v in g.input
            if v.name not in inits
        ],  # fmt: skip
        "outputs": [
            dict(zip(("name", "dtype", "shape"), (v.name, *_type_str(onnx, v)))) for v in g.output
        ],  # fmt: skip
        "ops": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "nodes": sum(ops.values()),
        "parameters": params,
        "initializers": len(g.initializer),
        "opset": {imp.domain or "ai.onnx": imp.version for imp in model.opset_import},
        "ir_version": model.ir_version,
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "doc_string": model.doc_string,
        "bytes": size + (data if data else 0),
    }


def _print_inspect(info: dict[str, Any]) -> None:
    print(f"model:      {info['path']}")
    print(f"producer:   {info['producer'] or '?'}  (IR {info['ir_version']}, opset "
          + ", ".join(f"{k} {v}" for k, v in info["opset"].items()) + ")")  # fmt: skip
    for kind in ("inputs", "outputs"):
        print(f"{kind}:")
        for v in info[kind]:
            print(f"  {v['name']}: {v['dtype']}[{', '.join(str(d) for d in v['shape'])}]")
    print(f"parameters: {info['parameters']:,} in {info['initializers']} initializers "
          f"({_size(info['bytes'])} on disk)")  # fmt: skip
    print(f"ops ({info['nodes']} nodes):")
    width = max((len(k) for k in info["ops"]), default=0)
    for op, n in info["ops"].items():
        print(f"  {op:<{width}}  {n}")


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


# -- convert ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_logging() -> Any:
    """Silence the converters' INFO/WARNING log lines (their advice is not for our users)."""
    import logging

    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def convert_to_ort(
    path: str | os.PathLike, out: str | os.PathLike | None = None, *, quantize: str | None = None
) -> dict[str, Any]:
    """Convert an ONNX file to ONNX Runtime Mobile's ``.ort`` format (optionally dynamic-int8
    quantized first); returns the paths and sizes.

    Example:
        >>> import ember, tempfile, os
        >>> d = tempfile.mkdtemp(); p = os.path.join(d, "m.onnx")
        >>> _ = ember.onnx.export(ember.nn.Linear(8, 8), ember.ones(1, 8), p)
        >>> convert_to_ort(p)["output"].endswith("m.ort")
        True
    """
    require_onnxruntime("ember convert")
    from onnxruntime.tools import convert_onnx_models_to_ort as converter

    src = Path(os.fspath(path)).resolve()
    if not src.exists():
        raise FileNotFoundError(f"ember convert: no such file: {str(src)!r}")
    dest = Path(os.fspath(out)).resolve() if out is not None else src.with_suffix(".ort")
    before = src.stat().st_size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / (dest.stem + ".onnx")
        if quantize is not None:
            if quantize != "int8":
                raise ValueError(f"ember convert: --quantize must be 'int8', got {quantize!r}")
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with contextlib.redirect_stdout(io.StringIO()), _quiet_logging():
                quantize_dynamic(str(src), str(work), weight_type=QuantType.QInt8)
        else:
            shutil.copyfile(src, work)
        quantized = work.stat().st_size
        outdir = Path(tmp) / "out"
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), _quiet_logging():
            converter.convert_onnx_models_to_ort(
                work, output_dir=outdir, optimization_styles=[converter.OptimizationStyle.Fixed]
            )
        made = outdir / (work.stem + ".ort")
        if not made.exists():
            raise RuntimeError(f"ember convert: onnxruntime's converter failed:\n{log.getvalue()}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(made), str(dest))
    return {
        "input": str(src),
        "output": str(dest),
        "bytes_before": before,
        "bytes_quantized": quantized if quantize else None,
        "bytes_after": dest.stat().st_size,
        "quantize": quantize,
    }


# -- export ------------------------------------------------------------------------------------
def load_factory(spec: str) -> Any:
    """The callable named by ``module:attr`` (or ``path/to/file.py:attr``).

    Example:
        >>> load_factory("ember.nn:Linear").__name__
        'Linear'
    """
    if ":" not in spec:
        raise ValueError(f"expected MODULE:FACTORY (e.g. mypkg.models:make_model), got {spec!r}")
    mod_name, attr = spec.rsplit(":", 1)
    if mod_name.endswith(".py") or os.sep in mod_name:
        file = Path(mod_name).resolve()
        loader = importlib.util.spec_from_file_location(file.stem, file)
        if loader is None or loader.loader is None:
            raise FileNotFoundError(f"cannot import {str(file)!r}")
        module = importlib.util.module_from_spec(loader)
        sys.modules[file.stem] = module
        loader.loader.exec_module(module)
    else:
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        module = importlib.import_module(mod_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated ints, got {text!r}") from None


def export_factory(
    spec: str,
    shapes: list[tuple[int, ...]],
    out: str | os.PathLike,
    *,
    dtypes: list[str] | None = None,
    opset: int = 18,
    dynamic_batch: bool = True,
    input_names: list[str] | None = None,
    output_names: list[str] | None = None,
) -> dict[str, Any]:
    """Build the model with the factory ``spec`` and export it on example inputs of
    ``shapes`` (random normal floats; zeros for integer dtypes).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "lin.onnx")
        >>> export_factory("ember.nn:Identity", [(2, 3)], p)["inputs"][0]["shape"]
        ['batch', 3]
    """
    import ember

    factory = load_factory(spec)
    model = factory()
    if not (isinstance(model, ember.nn.Module) or callable(model)):
        raise TypeError(f"{spec} returned {type(model).__name__}, not a model or function")
    dtypes = dtypes or ["float32"] * len(shapes)
    if len(dtypes) == 1 and len(shapes) > 1:
        dtypes = dtypes * len(shapes)
    rng = np.random.default_rng(0)
    args = []
    for shape, dt in zip(shapes, dtypes):
        arr = rng.standard_normal(shape) if np.dtype(dt).kind == "f" else np.zeros(shape)
        args.append(ember.tensor(arr.astype(dt)))
    path = ember.onnx.export(
        model,
        tuple(args),
        out,
        opset=opset,
        dynamic_batch=dynamic_batch,
        input_names=input_names,
        output_names=output_names,
    )
    return inspect_model(path)


# -- the ember command's subcommands -------------------------------------------------------------
def add_commands(sub: Any) -> None:
    """Add ``export``, ``inspect`` and ``convert`` to the ``ember`` command's subparsers."""
    exp = sub.add_parser(
        "export",
        help="export a model built by a Python factory to ONNX",
        description="Build a model with MODULE:FACTORY (a module or file.py, then a callable "
        "taking no arguments) and export it to ONNX, traced on random inputs of the given shapes.",
    )
    exp.add_argument("factory", metavar="MODULE:FACTORY", help="e.g. mypkg.models:make_model")
    exp.add_argument("--input-shape", action="append", required=True, metavar="D0,D1,...",
                     help="an example input's shape (repeat for several inputs)")  # fmt: skip
    exp.add_argument("--dtype", action="append", metavar="DTYPE",
                     help="input dtype (default float32; repeat per input)")  # fmt: skip
    exp.add_argument("-o", "--out", default="model.onnx", metavar="PATH", help="default model.onnx")
    exp.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    exp.add_argument("--fixed-batch", action="store_true", help="no symbolic batch dimension")
    exp.add_argument("--input-names", metavar="A,B", help="comma-separated input names")
    exp.add_argument("--output-names", metavar="A,B", help="comma-separated output names")

    ins = sub.add_parser(
        "inspect",
        help="show an ONNX model's inputs, outputs, ops and parameter count",
        description="Show an ONNX model's inputs, outputs, op histogram, parameter count, "
        "opset and IR version.",
    )
    ins.add_argument("model", metavar="MODEL.onnx")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")

    conv = sub.add_parser(
        "convert",
        help="convert an ONNX model to ONNX Runtime Mobile's .ort format",
        description="Convert an ONNX model to the .ort format of ONNX Runtime Mobile (with "
        "onnxruntime's converter), optionally with dynamic int8 quantization first.",
    )
    conv.add_argument("model", metavar="MODEL.onnx")
    conv.add_argument("--to", choices=["ort"], default="ort", help="target format (ort)")
    conv.add_argument("--quantize", choices=["int8"], help="dynamic int8 weight quantization")
    conv.add_argument("-o", "--out", metavar="PATH", help="default: MODEL.ort next to MODEL")


def run_command(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS` parsed by :func:`add_commands`; returns the exit code."""
    if args.command == "inspect":
        info = inspect_model(args.model)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            _print_inspect(info)
        return 0
    if args.command == "convert":
        res = convert_to_ort(args.model, args.out, quantize=args.quantize)
        print(f"wrote {res['output']}")
        line = f"size: {_size(res['bytes_before'])} (.onnx) -> "
        if res["quantize"]:
            line += f"{_size(res['bytes_quantized'])} (int8 .onnx) -> "
        print(line + f"{_size(res['bytes_after'])} (.ort), "
              f"{res['bytes_after'] / max(res['bytes_before'], 1):.0%} of the original")  # fmt: skip
        return 0
    if args.command == "export":
        shapes = [_parse_shape(s) for s in args.input_shape]
        names = args.input_names.split(",") if args.input_names else None
        outs = args.output_names.split(",") if args.output_names else None
        info = export_factory(
            args.factory, shapes, args.out, dtypes=args.dtype, opset=args.opset,
            dynamic_batch=not args.fixed_batch, input_names=names, output_names=outs,
        )  # fmt: skip
        print(f"wrote {info['path']} ({_size(info['bytes'])}, {info['parameters']:,} parameters, "
              f"{info['nodes']} nodes, opset {info['opset'].get('ai.onnx')})")  # fmt: skip
        for kind in ("inputs", "outputs"):
            for v in info[kind]:
                print(f"  {kind[:-1]} {v['name']}: {v['dtype']}[{', '.join(map(str, v['shape']))}]")
        return 0
    raise ValueError(f"unknown command {args.command!r}")  # pragma: no cover

"""``onnx.backend.base.Backend`` on top of the importer, so that ONNX's own conformance tests
(``onnx.backend.test.BackendTest``) run against ember.

Example:
    >>> import numpy as np, onnx
    >>> from onnx import helper, TensorProto
    >>> node = helper.make_node("Relu", ["x"], ["y"])
    >>> EmberBackend.run_node(node, [np.array([-1.0, 2.0], np.float32)])[0].tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from ._common import require_onnx

__all__ = ["EmberBackend", "EmberBackendRep", "prepare", "run_model", "run_node"]

require_onnx("ember.onnx.backend")

from onnx import helper  # noqa: E402
from onnx.backend.base import Backend, BackendRep, Device, DeviceType  # noqa: E402


class EmberBackendRep(BackendRep):
    """A prepared model: ``run(inputs)`` returns a tuple of NumPy arrays.

    Example:
        >>> proto = ember.onnx.to_onnx(lambda x: x * 3, ember.ones(2))
        >>> EmberBackend.prepare(proto).run([np.ones(4, np.float32)])[0].tolist()
        [3.0, 3.0, 3.0, 3.0]
    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        if isinstance(inputs, dict):
            out = self.module(**inputs)
        elif isinstance(inputs, list | tuple):
            out = self.module(*inputs)
        else:
            out = self.module(inputs)
        outs = out if isinstance(out, tuple) else (out,)
        return tuple(_numpy(o) for o in outs)


def _numpy(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach().numpy()
    return np.asarray(x)


class EmberBackend(Backend):
    """Runs ONNX models and nodes with ember (``prepare``, ``run_model``, ``run_node``).

    Example:
        >>> EmberBackend.supports_device("CPU")
        True
    """

    @classmethod
    def is_compatible(cls, model: Any, device: str = "CPU", **kwargs: Any) -> bool:
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: Any, device: str = "CPU", **kwargs: Any) -> EmberBackendRep:
        from .importer import from_proto

        module = from_proto(model, source=model.graph.name or "<model>")
        if Device(device).type == DeviceType.CUDA:
            module.to("cuda")
        return EmberBackendRep(module)

    @classmethod
    def run_model(
        cls, model: Any, inputs: Any, device: str = "CPU", **kwargs: Any
    ) -> tuple[Any, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(
        cls,
        node: Any,
        inputs: Any,
        device: str = "CPU",
        outputs_info: Any = None,
        **kwargs: Any,
    ) -> tuple[Any, ...]:
        arrays = [np.asarray(a) for a in inputs]
        names = [n for n in node.input if n]
        ins = [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in zip(names, arrays)
        ]
        outs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
        graph = helper.make_graph([node], "node", ins, outs)
        opset = kwargs.get("opset_version", 18)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        return cls.run_model(model, arrays, device)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        d = Device(device)
        if d.type == DeviceType.CPU:
            return True
        from ..device import cuda_is_available

        return d.type == DeviceType.CUDA and cuda_is_available()


prepare = EmberBackend.prepare
run_model = EmberBackend.run_model
run_node = EmberBackend.run_node

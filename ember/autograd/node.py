"""Node: the record one op application leaves in the autograd graph.

A node keeps what backward needs and nothing more: an edge per input (the producing node,
the leaf tensor, or None), the input arrays only when the op's backward reads them, and the
output array only when it reads that. It doubles as the ``ctx`` handed to the op's
backward rule, which rebuilds ``ctx.inputs`` / ``ctx.output`` as tensors attached to the
graph so that backward written in ember ops is itself differentiable.

Example:
    >>> import ember
    >>> y = ember.ones(2, requires_grad=True) * 3
    >>> y.grad_fn
    <mul>
"""

from __future__ import annotations

from typing import Any

from ..tensor import Tensor

__all__ = ["Node"]


class Node:
    """One recorded op application; also the backward rule's ``ctx``."""

    __slots__ = (
        "op",
        "attrs",
        "device",
        "edges",
        "needs_input_grad",
        "saved",
        "versions",
        "out",
        "in_meta",
        "hooks",
        "retain",
        "__weakref__",
    )

    def __init__(
        self, op: Any, inputs: tuple, arrays: list, attrs: dict, out: Any, device: Any
    ) -> None:
        self.op = op
        self.attrs = attrs
        self.device = device
        edges, needs, meta, versions = [], [], [], []
        saves = op.saves_inputs  # True, False, or the positions backward reads
        some = type(saves) is tuple
        for i, x in enumerate(inputs):
            if isinstance(x, Tensor):
                meta.append((x._data.shape, x._data.dtype))
                if saves and (not some or i in saves):
                    versions.append((x._vc, x._vc[0]))
                if x.requires_grad:
                    edges.append(x if x._node is None else x._node)
                    needs.append(True)
                    continue
            else:
                meta.append(None)
            edges.append(None)
            needs.append(False)
        self.edges = edges
        self.needs_input_grad = tuple(needs)
        self.in_meta = meta
        if some:
            arrays = [a if i in saves else None for i, a in enumerate(arrays)]
        self.saved = arrays if saves else None
        self.versions = versions
        self.out = out if op.saves_output else None
        self.hooks = None
        self.retain = None

    def __repr__(self) -> str:
        return f"<{self.op.name}>"

    name = property(lambda self: self.op.name)

    # -- what backward rules read ----------------------------------------------------------
    def _check_saved(self) -> None:
        if self.saved is None and self.op.saves_inputs:
            raise RuntimeError(
                f"trying to backward through the graph a second time (op {self.op.name}): its "
                "saved values were freed by the first backward; pass retain_graph=True to the "
                "first backward() if you need to go through it again"
            )
        for vc, v in self.versions:
            if vc[0] != v:
                raise RuntimeError(
                    f"one of the tensors needed for the gradient of {self.op.name} has been "
                    f"modified by an in-place operation (version {vc[0]}, expected {v}); make "
                    "that operation out-of-place (x = x + y instead of x += y)"
                )

    @property
    def inputs(self) -> tuple:
        """The op's inputs as tensors that are still attached to the graph (scalars as is;
        None for inputs the op does not save)."""
        self._check_saved()
        out = []
        for i, a in enumerate(self.saved):
            edge = self.edges[i]
            if self.in_meta[i] is None or a is None:
                out.append(a)
            elif isinstance(edge, Tensor):
                out.append(edge)
            else:
                out.append(Tensor._make(a, self.device, edge))
        return tuple(out)

    @property
    def output(self) -> Tensor:
        """The op's output as a tensor attached to the graph (ops with ``saves_output``)."""
        if self.out is None:
            raise RuntimeError(
                f"trying to backward through the graph a second time (op {self.op.name}); pass "
                "retain_graph=True to the first backward()"
            )
        return Tensor._make(self.out, self.device, self)

    def input_shape(self, i: int) -> tuple[int, ...]:
        """The shape input ``i`` had (available even when inputs were not saved)."""
        return self.in_meta[i][0]

    def input_dtype(self, i: int) -> Any:
        return self.in_meta[i][1]

    def free(self) -> None:
        """Drop saved values after a backward without retain_graph."""
        if self.op.saves_inputs:
            self.saved = None
        self.out = None

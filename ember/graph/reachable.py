"""What a compiled function can reach, for :mod:`.compile`: the modules and optimizers among
its arguments, its closure and the globals it names; their parameters' labels (for error
messages and ONNX names), gradient states, and the guards a cached graph keeps: every
reachable module's training flag and which parameter, buffer and submodule each of their
slots holds.

Example:
    >>> import ember
    >>> net = ember.nn.Sequential(ember.nn.Linear(2, 1))
    >>> [desc for _, desc in Reachable(net, (), {}).guards(ember.graph.ir.Graph("f"))]
    ['module training flags', 'module parameters and submodules']
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter, getitem, is_
from typing import Any

from ..nn.tables import Table, changes
from ..tensor import Tensor
from .ir import Graph

__all__ = ["Reachable"]

_TRAINING = attrgetter("training")


class Reachable:
    """Modules and optimizers a function can reach (arguments, closure, globals it names):
    parameter labels, training flags and parameter identity for guards, gradient states.

    Example:
        >>> import ember
        >>> net = ember.nn.Sequential(ember.nn.Linear(2, 2))
        >>> reach = Reachable(net, (), {})
        >>> sorted(reach.labels.values())
        ['0.bias', '0.weight']
    """

    def __init__(self, fn: Any, args: tuple, kwargs: dict) -> None:
        from ..nn.module import Module
        from ..optim.optimizer import Optimizer

        self.labels: dict[int, str] = {}
        self.grad_none: dict[int, bool] = {}
        self.grads: dict[int, Tensor] = {}
        self.flags: list[tuple[Any, bool]] = []
        # (module, table, key, value): what ``module.<table>[key]`` held when traced; the
        # table is looked up through the module on every check (containers replace theirs)
        self.slots: dict[int, tuple[Any, str, str, Tensor]] = {}
        self.children: list[tuple[Any, str, str, Any]] = []
        self.optimizers: list[tuple[str, Any]] = []
        found: list[tuple[str, Any]] = []
        for i, a in enumerate(args):
            found.extend(_shallow(f"arg{i}", a))
        for k, a in kwargs.items():
            found.extend(_shallow(k, a))
        if isinstance(fn, Module):
            found.append(("", fn))
        target = getattr(fn, "__func__", fn)
        owner = getattr(fn, "__self__", None)
        if owner is not None:
            found.extend(_shallow("self", owner))
        code = getattr(target, "__code__", None)
        if code is not None:
            for name, cell in zip(code.co_freevars, target.__closure__ or ()):
                try:
                    found.extend(_shallow(name, cell.cell_contents))
                except ValueError:
                    continue
            glb = getattr(target, "__globals__", {})
            for name in code.co_names:
                if name in glb:
                    found.extend(_shallow(name, glb[name]))
        seen: set[int] = set()
        for label, obj in found:
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if isinstance(obj, Module):
                self._module(label, obj)
            elif isinstance(obj, Optimizer):
                self.optimizers.append((label, obj))
                for group in obj.param_groups:
                    for p in group["params"]:
                        self._param(p)

    def _module(self, label: str, module: Any) -> None:
        prefix = f"{label}." if label else ""
        for name, sub in module.named_modules():
            self.flags.append((sub, sub.training))
            for cname, child in sub._modules.items():
                if child is not None:  # which module each submodule slot holds
                    self.children.append((sub, "_modules", cname, child))
            sp = f"{prefix}{name}." if name else prefix
            for pname, p in sub._parameters.items():
                if p is not None:
                    self.labels.setdefault(id(p), sp + pname)
                    self.slots.setdefault(id(p), (sub, "_parameters", pname, p))
                    self._param(p)
            for bname, b in sub._buffers.items():
                if b is not None:
                    self.labels.setdefault(id(b), sp + bname)
                    self.slots.setdefault(id(b), (sub, "_buffers", bname, b))

    def _param(self, p: Tensor) -> None:
        self.grad_none[id(p)] = p.grad is None
        if p.grad is not None:
            self.grads[id(p.grad)] = p

    def relabel(self, graph: Graph) -> None:
        """Name captured optimizer state (``opt.state[fc.weight].exp_avg``)."""
        names: dict[int, str] = {}
        for label, opt in self.optimizers:
            for p, st in opt.state.items():
                plabel = self.labels.get(id(p), f"param{tuple(p.shape)}")
                for k, t in st.items() if isinstance(st, dict) else ():
                    if isinstance(t, Tensor):
                        names[id(t)] = f"{label}.state[{plabel}].{k}"
        for v in graph.captured:
            if v.label is None and id(v.ref) in names:
                v.label = names[id(v.ref)]

    def guards(self, graph: Graph) -> list:
        """Training flags of every reachable module; identity of the captured parameters
        and of every reachable submodule (what each slot holds). Each passes unchecked while
        no module has changed since it last passed (:func:`ember.nn.tables.changes`)."""
        out = []
        # each guard one expression of C-level iterators (no Python loop): a compiled call's
        # fast path runs them on every call
        modules = tuple(m for m, _ in self.flags)
        counted = all(
            type(m.__dict__.get(t)) is Table
            for m in modules
            for t in ("_parameters", "_buffers", "_modules")
        )
        if self.flags:
            flags = tuple(f for _, f in self.flags)

            def training_flags() -> bool:
                return all(map(is_, map(_TRAINING, modules), flags))

            out.append((_unless_unchanged(training_flags, counted), "module training flags"))
        # the captured parameters' slots, and every submodule's (``model[0] = nn.Linear(...)``
        # leaves the old layer's parameters where they were: only its slot changes)
        slots = [self.slots[id(v.ref)] for v in graph.captured if id(v.ref) in self.slots]
        slots += self.children
        if slots:
            owners, tables, keys, values = (tuple(col) for col in zip(*slots))

            def parameters() -> bool:  # a deleted entry raises, which fails the guard
                return all(map(is_, map(getitem, map(getattr, owners, tables), keys), values))

            out.append((_unless_unchanged(parameters, counted), "module parameters and submodules"))
        return out


def _unless_unchanged(check: Callable[[], bool], counted: bool) -> Callable[[], bool]:
    """``check``, skipped while no module changed since it last passed (``counted``: every
    module it reads keeps its tables in :class:`~ember.nn.tables.Table`, whose writes count;
    else ``check`` itself, run every time)."""
    if not counted:
        return check
    seen = [-1]

    def guard() -> bool:
        n = changes()  # (read first: a change while checking is seen by the next call)
        if n == seen[0]:
            return True
        ok = check()
        if ok:
            seen[0] = n
        return ok

    guard.__name__ = check.__name__
    return guard


def _shallow(label: str, obj: Any) -> list[tuple[str, Any]]:
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer

    if isinstance(obj, Module | Optimizer):
        return [(label, obj)]
    if isinstance(obj, list | tuple):
        return [
            (f"{label}[{i}]", o) for i, o in enumerate(obj) if isinstance(o, Module | Optimizer)
        ]
    if isinstance(obj, dict):
        return [(f"{label}[{k!r}]", o) for k, o in obj.items() if isinstance(o, Module | Optimizer)]
    return []

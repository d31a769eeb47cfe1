"""The optimizer base class: parameter groups, per-parameter state, ``zero_grad`` and
``state_dict`` / ``load_state_dict`` with PyTorch's structure.

Subclasses implement ``step``: eagerly a group's update is one fused kernel call
(``ember.optim.fused``) or, where that cannot serve, one impure registered op per parameter
(``ember.ops.optim``: ``adam_update`` ...) that writes ``p._data`` in place (the same array
object, so views and aliases of a parameter see the new values); per-parameter state
(``exp_avg``, ``momentum_buffer`` ...) lives as ember tensors in ``self.state[p]``. Going
through the dispatcher lets ``ember.compile`` trace a whole training step, where a group of
several parameters becomes one grouped update op (``ember.ops.optim_group``,
:meth:`Optimizer._group_batch`): the helpers below read gradients, the learning rate and the
step count through the tracer when one is active (live graph inputs, never baked constants)
and guard the other hyper-parameters.

Example:
    >>> import ember
    >>> w = ember.randn(3, requires_grad=True)
    >>> opt = ember.optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> opt.zero_grad()
    >>> w.grad is None
    True
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from copy import deepcopy
from typing import Any

import numpy as np

from ..autograd.mode import enable_grad, state
from ..autograd.zero_grad import zero_grad
from ..device import CPU, transfer
from ..ops.optim import scratch_scope
from ..tensor import Tensor

__all__ = ["Optimizer", "required"]


class _Required:
    """Marks a hyper-parameter that every parameter group must give (no default)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of all optimizers.

    ``params`` is an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts (parameter
    groups) each holding ``"params"`` and any per-group options; options a group leaves out
    take the optimizer's ``defaults``.

    Example:
        >>> a = ember.zeros(2, requires_grad=True); b = ember.zeros(2, requires_grad=True)
        >>> opt = ember.optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.5]
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        self.state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._opt_called = False
        self._scratch: dict[tuple, Any] = {}
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                "dicts, but got a Tensor: wrap it in a list, e.g. SGD([w], lr=0.1)"
            )
        if isinstance(params, set | frozenset):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs: use a list instead"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)
        self._warm_kernels()

    # the fused C step of this optimizer (ember.kernels.optim), warmed at creation
    _kernel: str | None = None

    def _warm_kernels(self) -> None:
        """Start compiling, in the background, the C kernels every training step of these
        parameters will call: this optimizer's fused step and the GEMM of the linear layers
        (``ember.kernels.runtime.warm``), while the rest of the set-up runs."""
        p = next((p for g in self.param_groups for p in g["params"]), None)
        if p is None or p.device.type != "cpu":
            return
        sfx = {"float32": "f32", "float64": "f64"}.get(str(p.dtype.np))
        if sfx is None:
            return
        from ..kernels import runtime

        if self._kernel is not None:
            runtime.warm("optim", self._kernel, sfx)
        runtime.warm("gemm", "gemm", sfx)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Record that step() ran, so an LR scheduler can warn when it is stepped first.
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None and not getattr(step, "_records_call", False):

            @functools.wraps(step)
            def recorded_step(self: Optimizer, *args: Any, **kw: Any) -> Any:
                self._opt_called = True
                with scratch_scope(self._scratch):
                    return step(self, *args, **kw)

            recorded_step._records_call = True  # type: ignore[attr-defined]
            cls.step = recorded_step  # type: ignore[method-assign]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key not in ("params", "param_names"):
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- groups ------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters (with its own options) to optimize.

        Useful to unfreeze layers while training: the new group's options default to the
        optimizer's ``defaults``.

        Example:
            >>> a = ember.zeros(2, requires_grad=True); b = ember.zeros(3, requires_grad=True)
            >>> opt = ember.optim.SGD([a], lr=0.1)
            >>> opt.add_param_group({"params": [b], "lr": 0.01})
            >>> len(opt.param_groups)
            2
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set | frozenset):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs: use a list instead"
            )
        elif params is None:
            raise ValueError("a parameter group needs a 'params' entry")
        else:
            params = list(params)
        tensors, names = [], []
        for p in params:
            if isinstance(p, tuple) and len(p) == 2:
                names.append(p[0])
                p = p[1]
            tensors.append(p)
        if names and len(names) != len(tensors):
            raise ValueError(
                "all optimizer params should be with/without names. Some param names are missing"
            )
        for p in tensors:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__module__}.{type(p).__name__}"
                )
            if not p.is_leaf and not p._retain:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = tensors
        if names:
            group["param_names"] = names
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    f"parameter group didn't specify a value of required optimization "
                    f"parameter {name}"
                )
            group.setdefault(name, default)
        ids = [id(p) for p in tensors]
        if len(ids) != len(set(ids)):
            raise ValueError("optimizer contains a parameter group with duplicate parameters")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if seen.intersection(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        if self.param_groups and ("param_names" in group) != (
            "param_names" in self.param_groups[0]
        ):
            raise ValueError(
                "all optimizer param groups should be with/without names: cannot mix "
                "named and unnamed parameter groups"
            )
        self.param_groups.append(group)

    # -- gradients ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors: to ``None`` (the default, cheapest)
        or, with ``set_to_none=False``, to zeros in place.

        Example:
            >>> w = ember.ones(2, requires_grad=True); (w * 2).sum().backward()
            >>> opt = ember.optim.SGD([w], lr=0.1); opt.zero_grad(set_to_none=False)
            >>> w.grad.tolist()
            [0.0, 0.0]
        """
        zero_grad((p for group in self.param_groups for p in group["params"]), set_to_none)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update the parameters once from their ``.grad``; subclasses implement this.

        ``closure``, if given, re-evaluates the model and returns the loss (it runs with
        gradients enabled); ``step`` returns that loss.
        """
        raise NotImplementedError

    def _run_closure(self, closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- helpers for subclasses ---------------------------------------------------------------
    def _params_with_grad(
        self, group: dict[str, Any], options: tuple
    ) -> Iterator[tuple[Tensor, Tensor, Any, list]]:
        """The loop of a ``step`` over one group: yields ``(p, grad, lr, checks)`` for each
        parameter that has a gradient (``lr`` read by ``_live`` at the first). After each
        update it bumps ``p``'s version counter; at the end it guards the group's ``options``
        and the ``(state, key, tensor)`` entries the update appended to ``checks``."""
        lr = None
        checks: list = []
        for p in group["params"]:
            grad = self._grad(p)
            if grad is None:
                continue
            if lr is None:
                lr = self._live(group, "lr", p.device)
            yield p, grad, lr, checks
            p._vc[0] += 1
        self._guard(group, options, checks)

    def _group_batch(
        self, group: dict[str, Any]
    ) -> tuple[list[tuple[Tensor, Tensor]], Any, list] | None:
        """While ``ember.compile`` traces: ``(items, lr, checks)`` for one grouped update op
        (``ember.ops.optim_group``) over the group: its ``(p, grad)`` pairs (parameters
        without a gradient are skipped, as eagerly), the live learning rate (None when no
        parameter has a gradient) and an empty ``checks`` list for :meth:`_group_done`.
        None eagerly, and for a group the per-parameter ops record (one parameter, or
        parameters on several devices)."""
        params = group["params"]
        if state.tracer is None or len(params) < 2:
            return None
        dev = params[0].device
        if any(p.device is not dev for p in params):
            return None
        items = []
        for p in params:
            grad = self._grad(p)
            if grad is not None:
                items.append((p, grad))
        lr = self._live(group, "lr", dev) if items else None
        return items, lr, []

    def _group_done(
        self, group: dict[str, Any], items: list[tuple[Tensor, Tensor]], options: tuple,
        checks: list,
    ) -> None:  # fmt: skip
        """After a grouped update: bump each updated parameter's version counter, then guard
        the group's ``options`` and the state ``checks`` (as :meth:`_params_with_grad`)."""
        for p, _ in items:
            p._vc[0] += 1
        self._guard(group, options, checks)

    def _grad(self, p: Tensor) -> Tensor | None:
        """``p.grad`` (read through the tracer while ``ember.compile`` traces)."""
        tracer = state.tracer
        return p.grad if tracer is None else tracer.grad_of(p)

    def _live(self, group: dict[str, Any], key: str, device: Any) -> Any:
        """``group[key]`` (the learning rate): a number eagerly; in a trace, a graph scalar
        read from the group on every call, so schedulers work on compiled steps."""
        value = group[key]
        tracer = state.tracer
        if tracer is None:
            return value
        return tracer.scalar_input(lambda: group[key], value, label=key, device=device)

    def _next_step(self, step: Tensor, device: Any) -> Any:
        """Increment the step-count tensor; its new value (a compiled step increments it on
        every call through the graph scalar's getter)."""
        arr = step._data
        arr += 1
        value = float(arr)
        tracer = state.tracer
        if tracer is None:
            return value

        def bump() -> float:
            a = step._data
            a += 1
            return float(a)

        return tracer.scalar_input(bump, value, label="step", device=device)

    def _guard(self, group: dict[str, Any], keys: tuple, checks: list) -> None:
        """While tracing: the compiled step is valid only while ``group``'s ``keys`` keep
        their values and each ``(dict, key, object)`` in ``checks`` still holds ``object``."""
        tracer = state.tracer
        if tracer is None:
            return
        expect = {k: group.get(k) for k in keys}
        tracer.add_guard(
            lambda: all(group.get(k) == v for k, v in expect.items()),
            f"{type(self).__name__} options {expect}",
        )
        # load_state_dict replaces ``state`` and the groups, add_param_group adds a group: the
        # traced step would go on updating the old state tensors (and skip new parameters)
        st, groups, n = self.state, self.param_groups, len(self.param_groups)
        i = next((k for k, g in enumerate(groups) if g is group), None)
        params, count = group["params"], len(group["params"])
        tracer.add_guard(
            lambda: (
                self.state is st
                and self.param_groups is groups
                and len(groups) == n
                and (i is None or groups[i] is group)
                and group["params"] is params
                and len(params) == count
            ),
            f"{type(self).__name__} state and parameter groups are the traced ones",
        )
        if checks:
            tracer.add_guard(
                lambda: all(d.get(k) is o for d, k, o in checks),
                f"{type(self).__name__} state tensors",
            )

    @staticmethod
    def _zeros_like(p: Tensor, fill: float = 0.0) -> Tensor:
        xp = p.device.xp
        arr = xp.zeros_like(p._data) if fill == 0 else xp.full_like(p._data, fill)
        return Tensor._make(arr, p.device)

    @staticmethod
    def _new_step() -> Tensor:
        # PyTorch keeps ``step`` as a float32 CPU scalar tensor (no GPU sync to read it).
        return Tensor._make(np.zeros((), dtype=np.float32), CPU)

    # -- state dicts -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The optimizer's state: ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are replaced by their index (counting across groups in order), exactly
        as PyTorch does; the state tensors are returned by reference (save them, or
        ``copy.deepcopy`` the dict, to keep a snapshot).

        Example:
            >>> w = ember.zeros(2, requires_grad=True)
            >>> ember.optim.SGD([w], lr=0.1).state_dict()["param_groups"][0]["params"]
            [0]
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {
            (index[id(k)] if isinstance(k, Tensor) else k): v
            for k, v in self.state.items()
            if not isinstance(k, Tensor) or id(k) in index
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (of an optimizer with the same groups).

        Floating state tensors are copied and cast to their parameter's dtype and device
        (``step`` stays as saved); the loaded dict is never aliased, so it can be loaded
        into several optimizers.

        Example:
            >>> w = ember.zeros(2, requires_grad=True)
            >>> a = ember.optim.Adam([w], lr=0.1); b = ember.optim.Adam([w], lr=0.5)
            >>> b.load_state_dict(a.state_dict()); b.param_groups[0]["lr"]
            0.1
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(
                "optimizer state dict must be a dict with 'state' and 'param_groups' entries"
            )
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError(
                f"loaded state dict has a different number of parameter groups: "
                f"{len(saved_groups)} saved, {len(groups)} in this optimizer"
            )
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    f"loaded state dict contains a parameter group that doesn't match the size "
                    f"of optimizer's group: group {i} has {len(s['params'])} saved parameters "
                    f"and {len(g['params'])} here"
                )
        id_map = {}
        for g, s in zip(groups, saved_groups):
            for saved_id, p in zip(s["params"], g["params"]):
                id_map[saved_id] = p
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            p = id_map.get(k)
            if p is None:
                state[k] = deepcopy(v)
            else:
                state[p] = _cast_state(p, v, key=None)
        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
            for key, value in g.items():  # options this class knows but the save lacks
                s.setdefault(key, value)
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups


def _cast_state(p: Tensor, value: Any, key: Any) -> Any:
    """A copy of ``value`` with its tensors moved to ``p``'s device (floats cast to its dtype;
    ``step`` is left as saved, as PyTorch does)."""
    if isinstance(value, Tensor):
        arr = value._data
        if key != "step":
            arr = transfer(arr, p.device)
            if arr.dtype.kind == "f" and p._data.dtype.kind == "f":
                arr = arr.astype(p._data.dtype, copy=True)
            else:
                arr = arr.copy()
            return Tensor._make(arr, p.device)
        return Tensor._make(arr.copy(), value.device)
    if isinstance(value, dict):
        return {k: _cast_state(p, v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cast_state(p, v, None) for v in value)
    return deepcopy(value)

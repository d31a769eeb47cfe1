"""``Module``: the base class of every layer and model (PyTorch's ``nn.Module``).

Assigning a :class:`Parameter`, a ``Module`` or (through ``register_buffer``) a tensor to an
attribute registers it; ``parameters()``, ``state_dict()``, ``to()``, ``train()``/``eval()``
then walk the tree of modules.

Example:
    >>> import ember
    >>> from ember import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(2, 1)
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> [name for name, _ in Net().named_parameters()]
    ['fc.weight', 'fc.bias']
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..autograd.zero_grad import zero_grad
from ..tensor import Tensor
from .module_state import IncompatibleKeys, ModuleState
from .parameter import Parameter
from .tables import Table, changed

__all__ = ["Module", "RemovableHandle", "IncompatibleKeys"]


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``.remove()`` unregisters the hook.

    Example:
        >>> m = ember.nn.Identity()
        >>> h = m.register_forward_hook(lambda mod, args, out: out * 2)
        >>> h.remove(); m(ember.ones(1)).tolist()
        [1.0]
    """

    _next_id = 0

    def __init__(self, hooks: dict) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


class _ReprState(threading.local):
    depth = 0


_repr_state = _ReprState()


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _forward_unimplemented(self: Module, *input: Any) -> None:
    raise NotImplementedError(
        f'Module [{type(self).__name__}] is missing the required "forward" function'
    )


def _copy_tensor(t: Tensor) -> Tensor:
    out = Tensor._make(t._data.copy(), t.device)
    out.requires_grad = t.requires_grad and t._node is None
    return out


class Module(ModuleState):
    """Base class for all layers and models: subclass it, create parameters and submodules
    in ``__init__``, and compute the output in ``forward``.

    Example:
        >>> class Scale(ember.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.s = ember.nn.Parameter(ember.tensor(2.0))
        ...     def forward(self, x):
        ...         return x * self.s
        >>> Scale()(ember.ones(2)).tolist()
        [2.0, 2.0]
    """

    training: bool
    forward: Callable[..., Any] = _forward_unimplemented

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments: "
                f"{args!r} {kwargs!r} (Module.__init__ takes none)"
            )
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = Table()  # (each write counts as a change: see tables.py)
        d["_buffers"] = Table()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = Table()
        d["_forward_hooks"] = {}
        d["_forward_hooks_with_kwargs"] = set()
        d["_forward_pre_hooks"] = {}
        d["_forward_pre_hooks_with_kwargs"] = set()

    # -- registration ----------------------------------------------------------------------
    def _check_name(self, kind: str, name: Any, table: dict) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {kind} before Module.__init__() call")
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
        if hasattr(self, name) and name not in table:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a ``None`` placeholder) under ``name``.

        Example:
            >>> m = ember.nn.Module(); m.register_parameter("w", ember.nn.Parameter(ember.ones(1)))
            >>> [n for n, _ in m.named_parameters()]
            ['w']
        """
        self._check_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(nn.Parameter or None required)"
            )
        if param is not None and param._node is not None:
            raise ValueError(
                f"cannot assign non-leaf tensor to parameter '{name}'; parameters must be "
                "created explicitly (wrap a detached tensor in nn.Parameter)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is state but not a parameter (e.g. BatchNorm's running mean).
        Non-persistent buffers are left out of ``state_dict``.

        Example:
            >>> m = ember.nn.Module(); m.register_buffer("step", ember.zeros(1))
            >>> list(m.state_dict())
            ['step']
        """
        self._check_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(ember Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a child module under ``name`` (same as assigning the attribute).

        Example:
            >>> m = ember.nn.Module(); m.add_module("act", ember.nn.ReLU())
            >>> m.act
            ReLU()
        """
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name("module", name, self._modules)
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        changed()  # (a compiled call re-checks its guards after any change: see tables.py)
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            if params is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._forget(name, keep="_modules")
            self._modules[name] = value
        elif params is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(nn.Module or None expected)"
                )
            d["_modules"][name] = None
        elif params is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(ember Tensor or None expected)"
                )
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: str) -> None:
        """Drop ``name`` from every table but ``keep`` (so re-assigning keeps its place)."""
        d = self.__dict__
        d.pop(name, None)
        for table in ("_parameters", "_buffers", "_modules"):
            if table != keep:
                d[table].pop(name, None)
        d["_non_persistent_buffers_set"].discard(name)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            entries = d.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        changed()
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if name in d.get(table, ()):
                del d[table][name]
                d["_non_persistent_buffers_set"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = set(super().__dir__())
        for table in (self._parameters, self._buffers, self._modules):
            keys.update(k for k in table if not k[:1].isdigit())
        return sorted(keys)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __deepcopy__(self, memo: dict) -> Module:
        # buffers are plain tensors: copy them here so a deep copy never depends on how the
        # tensor class pickles (parameters copy themselves, keeping their class)
        for m in self.modules():
            for b in m._buffers.values():
                if b is not None and id(b) not in memo:
                    memo[id(b)] = _copy_tensor(b)
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        return new

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hid, hook in list(self._forward_pre_hooks.items()):
            if hid in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hid, hook in list(self._forward_hooks.items()):
            if hid in self._forward_hooks_with_kwargs:
                result = hook(self, args, kwargs, out)
            else:
                result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def _add_hook(self, table: dict, kw_set: set, hook: Callable, prepend: bool, kw: bool):
        handle = RemovableHandle(table)
        table[handle.id] = hook
        if kw:
            kw_set.add(handle.id)
        if prepend:
            items = list(table.items())
            table.clear()
            table[handle.id] = hook
            table.update((k, v) for k, v in items if k != handle.id)
        return handle

    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args)`` before each forward; a non-None return replaces the
        positional arguments (``hook(module, args, kwargs) -> (args, kwargs)`` with
        ``with_kwargs=True``).

        Example:
            >>> m = ember.nn.Identity()
            >>> _ = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
            >>> m(ember.zeros(1)).tolist()
            [1.0]
        """
        return self._add_hook(
            self._forward_pre_hooks, self._forward_pre_hooks_with_kwargs, hook, prepend,
            with_kwargs,
        )  # fmt: skip

    def register_forward_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each forward; a non-None return replaces
        the output (``hook(module, args, kwargs, output)`` with ``with_kwargs=True``).

        Example:
            >>> m = ember.nn.Identity(); seen = []
            >>> _ = m.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
            >>> _ = m(ember.zeros(3)); seen
            [(3,)]
        """
        return self._add_hook(
            self._forward_hooks, self._forward_hooks_with_kwargs, hook, prepend, with_kwargs
        )

    # -- walking the tree ------------------------------------------------------------------
    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for this module and every module below it, pre-order.

        Example:
            >>> net = ember.nn.Sequential(ember.nn.Linear(2, 2), ember.nn.ReLU())
            >>> [name for name, _ in net.named_modules()]
            ['', '0', '1']
        """
        seen = set() if memo is None else memo
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in seen:
                    continue
                seen.add(id(module))
            yield name, module
            children = [
                (name + ("." if name else "") + key, child)
                for key, child in module._modules.items()
                if child is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        """This module and every module below it (each once)."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """``(name, module)`` for the direct children (each once).

        Example:
            >>> [n for n, _ in ember.nn.Sequential(ember.nn.ReLU()).named_children()]
            ['0']
        """
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct child modules."""
        for _, m in self.named_children():
            yield m

    def _named_members(
        self, table: str, prefix: str, recurse: bool, remove_duplicate: bool
    ) -> Iterator[tuple[str, Any]]:
        seen = set()
        walk = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for mod_prefix, module in walk:
            for key, value in getattr(module, table).items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield (mod_prefix + ("." if mod_prefix else "") + key), value

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` pairs, names dotted by module path (shared ones once).

        Example:
            >>> [n for n, _ in ember.nn.Linear(2, 3).named_parameters()]
            ['weight', 'bias']
        """
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters of this module (and, with ``recurse``, of its submodules).

        Example:
            >>> sum(p.numel() for p in ember.nn.Linear(2, 3).parameters())
            9
        """
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """``(name, buffer)`` pairs, names dotted by module path.

        Example:
            >>> [n for n, _ in ember.nn.BatchNorm1d(2).named_buffers()]
            ['running_mean', 'running_var', 'num_batches_tracked']
        """
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers of this module (and, with ``recurse``, of its submodules)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` (``""`` is self).

        Example:
            >>> net = ember.nn.Sequential(ember.nn.Sequential(ember.nn.ReLU()))
            >>> net.get_submodule("0.0")
            ReLU()
        """
        mod = self
        if target == "":
            return mod
        for item in target.split("."):
            sub = mod._modules.get(item)
            if not isinstance(sub, Module):
                raise AttributeError(f"{mod._get_name()} has no submodule `{item}` ({target})")
            mod = sub
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"0.weight"``)."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in mod._parameters or mod._parameters[name] is None:
            raise AttributeError(f"{mod._get_name()} has no parameter `{name}`")
        return mod._parameters[name]

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path ``target`` (``"bn.running_mean"``)."""
        path, _, name = target.rpartition(".")
        mod = self.get_submodule(path)
        if name not in mod._buffers or mod._buffers[name] is None:
            raise AttributeError(f"{mod._get_name()} has no buffer `{name}`")
        return mod._buffers[name]

    # -- modes and gradients ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (affects Dropout, BatchNorm ...) here and below; returns self.

        Example:
            >>> ember.nn.Dropout().train(False).training
            False
        """
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode (``train(False)``); returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Set ``requires_grad`` on every parameter (freeze with False); returns self.

        Example:
            >>> any(p.requires_grad for p in ember.nn.Linear(2, 2).requires_grad_(False).parameters())
            False
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None, or to zeros in place).

        Example:
            >>> m = ember.nn.Linear(2, 1); m(ember.ones(1, 2)).sum().backward()
            >>> m.zero_grad(); m.weight.grad is None
            True
        """
        zero_grad(self.parameters(), set_to_none)

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on self; returns self.

        Example:
            >>> def init(m):
            ...     if isinstance(m, ember.nn.Linear):
            ...         ember.nn.init.zeros_(m.weight)
            >>> net = ember.nn.Sequential(ember.nn.Linear(2, 2)).apply(init)
            >>> net[0].weight.abs().sum().item()
            0.0
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # -- printing --------------------------------------------------------------------------
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The layer's settings shown inside its repr's parentheses (override in layers)."""
        return ""

    def _repr_text(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        for key, module in self._modules.items():
            lines.append("(" + key + "): " + _addindent(repr(module), 2))
        text = self._get_name() + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                text += lines[0]
            else:
                text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"

    def __repr__(self) -> str:
        _repr_state.depth += 1
        try:
            text = self._repr_text()
        finally:
            _repr_state.depth -= 1
        if _repr_state.depth == 0 and self._modules:
            text += "\n" + self._count_line()
        return text

    def _count_line(self) -> str:
        total = trainable = 0
        for p in self.parameters():
            n = p.numel()
            total += n
            trainable += n if p.requires_grad else 0
        return f"Total parameters: {total:,} (trainable {trainable:,})"

    def summary(self) -> str:
        """The module's repr followed by its parameter count (shared parameters once).

        Example:
            >>> print(ember.nn.Linear(2, 3).summary())
            Linear(in_features=2, out_features=3, bias=True)
            Total parameters: 9 (trainable 9)
        """
        _repr_state.depth += 1
        try:
            text = self._repr_text()
        finally:
            _repr_state.depth -= 1
        return text + "\n" + self._count_line()

"""``ember.compile``: trace a function (a whole training step if you like) into a graph,
optimize it, and run it as generated NumPy code on later calls.

How a call goes:

1. ``config.run_eagerly`` (or ``EMBER_EAGER=1``), an active outer trace, or an earlier graph
   break: run the Python function as is.
2. Otherwise the call's signature (:mod:`ember.graph.guards`) selects a cached graph whose
   guards pass, and the executor runs it: parameters, optimizer state and gradients are
   updated in place exactly as eager mode would, and outputs come back as tensors with the
   function's nesting (tensors, tuples, lists, dicts). Among the guards: the training flag
   of every module the function can reach, and which parameter, buffer and submodule each
   of their slots holds (``model.fc = nn.Linear(...)``, ``model.layers.insert(...)`` or a
   new ``nn.Parameter`` each make the next call trace again).
3. No graph fits: the function runs once eagerly under the tracer (so this call's results
   are real) and the graph is cached for the next call. A retrace on a new batch size merges
   the two traces into one graph for every batch size (``dynamic=None`` or ``True``).

Graph breaks: reading a tensor's value inside the function (``bool(t)``, ``t.item()``,
``t.numpy()``, ``if t > 0:``) cannot be compiled without baking the value in; the function
then runs eagerly from then on, with one warning naming your file and line (an error under
``fullgraph=True``). Return tensors and read them outside (``loss = step(x, y); loss.item()``).

Compiled functions return tensors that are not attached to an autograd graph: compile the
whole training step (forward, ``loss.backward()``, ``optimizer.step()``), or inference under
``no_grad``. A function whose outputs require grad runs eagerly (with a warning).

Example:
    >>> import ember
    >>> from ember.graph import compile
    >>> w = ember.ones(3, requires_grad=True)
    >>> opt = ember.optim.SGD([w], lr=0.1)
    >>> @compile
    ... def step(x):
    ...     opt.zero_grad()
    ...     loss = (w * x).sum()
    ...     loss.backward()
    ...     opt.step()
    ...     return loss
    >>> [round(step(ember.ones(3)).item(), 2) for _ in range(3)]
    [3.0, 2.7, 2.4]
    >>> step.cache_info().traces
    1
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import config
from ..autograd.mode import state
from ..tensor import Tensor
from .cache import Entry, FastPath, rebuilder, requires_grad
from .executor import Program
from .guards import batch_positions, describe_change, dynamic_key, merge_dynamic, signature
from .ir import Graph
from .reachable import Reachable
from .trace import GraphBreak, Tracer, _tensor_leaves

__all__ = ["compile", "CompiledFunction", "CacheInfo", "GraphBreakWarning", "RetraceWarning"]

_make = Tensor._make  # bound once for the fast path of CompiledFunction.__call__


class GraphBreakWarning(UserWarning):
    """Warned once when a compiled function falls back to eager mode."""


class RetraceWarning(UserWarning):
    """Warned once when a compiled function keeps being retraced."""


class CacheInfo(NamedTuple):
    """Counters of a compiled function: ``hits`` (graph runs), ``misses`` (calls that traced
    or ran eagerly), ``traces``, ``size`` (cached graphs), ``eager_calls``, ``graph_breaks``.

    Example:
        >>> CacheInfo(0, 0, 0, 0, 0, 0).traces
        0
    """

    hits: int
    misses: int
    traces: int
    size: int
    eager_calls: int
    graph_breaks: int


class CompiledFunction:
    """The callable ``ember.compile`` returns (see the module docstring).

    Attributes and methods: ``code`` (the generated source of the last graph run),
    ``graph`` (its IR), ``graphs`` (all cached), ``cache_info()``, ``reset()``; a compiled
    module forwards other attributes to the module.

    Example:
        >>> import ember
        >>> f = compile(lambda x: x * 2)
        >>> f(ember.ones(2)).tolist(), f(ember.ones(2)).tolist(), f.cache_info().hits
        ([2.0, 2.0], [2.0, 2.0], 1)
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        fullgraph: bool = False,
        dynamic: bool | None = None,
        name: str | None = None,
    ) -> None:
        from ..nn.module import Module

        self.fn = fn
        self.module = fn if isinstance(fn, Module) else None
        self.fullgraph = fullgraph
        self.dynamic = dynamic
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        target = fn.forward if self.module is not None else fn
        try:
            self._argnames = list(inspect.signature(target).parameters)
        except (TypeError, ValueError):
            self._argnames = []
        self.reset()
        if self.module is None:
            functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Forget every cached graph and counter (the next call traces again)."""
        self._cache: dict[tuple, list[Entry]] = {}
        self._dynamic: list[Entry] = []
        self._last: Entry | None = None
        self._broken: GraphBreak | None = None
        self._warned_retrace = False
        self._history: list[tuple] = []
        self._failed_guard: str | None = None
        self._hits = self._misses = self._traces = self._eager = self._breaks = 0
        self._fast: FastPath | None = None

    # -- calling --------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        fast = self._fast
        # the fast path (set only while nothing is broken: a break clears it before tracing)
        if fast is not None and not kwargs and state.tracer is None and not config.eager_forced():
            direct = fast.direct
            if direct is not None:  # a step program's whole call (StepProgram.direct)
                out = direct(args)
                if out is not None:
                    self._failed_guard = None
                    self._hits += 1
                    self._last = fast.entry
                    return out
                fast.direct = None  # (made again after a call that runs the steps)
            arrays = fast.arrays(args)
            if arrays is not None:
                entry = fast.entry
                self._failed_guard = None
                self._hits += 1
                self._last = entry
                program = entry.program
                outs = program.run(arrays, args)
                i = fast.output
                if i is not None:
                    steps = program.steps_run
                    if steps is not None and fast.n == 1:
                        fast.direct = steps.direct(
                            fast.specs[0], fast.grad, fast.guards, fast.device, program
                        )
                    return _make(outs[i], fast.device)
                return entry.rebuild(outs, args)
        if self._broken is not None or state.tracer is not None or config.eager_forced():
            self._eager += 1
            return self.fn(*args, **kwargs)
        key, tensors = signature(args, kwargs)
        key += (("grad mode", (bool, state.grad_enabled)),)
        entry = self._lookup(key, tensors)
        if entry is None:
            self._misses += 1
            self._fast = None
            return self._trace(args, kwargs, key, tensors)
        if entry.eager:
            self._eager += 1
            return self.fn(*args, **kwargs)
        self._hits += 1
        self._last = entry
        self._fast = FastPath.build(entry, key, args, kwargs, tensors, self._cache, self._dynamic)
        return self._run(entry, tensors)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        if obj is None:
            return self
        return functools.partial(self.__call__, obj)

    def __getattr__(self, name: str) -> Any:
        module = self.__dict__.get("module")
        if module is not None:
            return getattr(module, name)
        raise AttributeError(f"{type(self).__name__!s} object has no attribute {name!r}")

    def _lookup(self, key: tuple, tensors: list) -> Entry | None:
        self._failed_guard = None
        for entry in self._cache.get(key, ()):
            failed = entry.check()
            if failed is None:
                return entry
            self._failed_guard = failed
        for entry in self._dynamic:
            if dynamic_key(key, entry.dyn) == entry.key:
                failed = entry.check()
                if failed is None:
                    return entry
                self._failed_guard = failed
        return None

    def _run(self, entry: Entry, tensors: list) -> Any:
        if entry.picks is not None:  # arguments sharing an array are one graph input
            tensors = [tensors[i] for i in entry.picks]
        outs = entry.program.run([t._data for t in tensors], tensors)
        return entry.rebuild(outs, tensors)

    # -- tracing --------------------------------------------------------------------------------
    def _trace(self, args: tuple, kwargs: dict, key: tuple, tensors: list) -> Any:
        from .guards import _objects

        reach = Reachable(self.fn, args, kwargs)
        tracer = Tracer(self.name, fullgraph=self.fullgraph, labels=reach.labels)
        tracer.entry_grad_none = reach.grad_none
        tracer.entry_grads = reach.grads
        names = self._argnames
        leaves = _tensor_leaves(args, "args") + _tensor_leaves(kwargs, "kwargs")
        for (path, t), _ in zip(leaves, tensors):
            tracer.add_input(t, _pretty(path, names))
        self._traces += 1
        with tracer:
            result = self.fn(*args, **kwargs)
        if tracer.broken is not None:
            self._breaks += 1
            self._broken = tracer.broken
            self._fast = None  # (already None: __call__ relies on no fast path once broken)
            loc = tracer.broken.loc
            if loc is not None:
                warnings.warn_explicit(
                    str(tracer.broken), GraphBreakWarning, loc.filename, loc.lineno
                )
            else:
                warnings.warn(str(tracer.broken), GraphBreakWarning, stacklevel=2)
            return result
        graph = tracer.finish(result)
        reach.relabel(graph)
        guards = list(tracer.guards) + reach.guards(graph)
        entry = Entry(key, graph, guards, _objects(args, kwargs), tensors)
        if requires_grad(graph.output_tree) and not tracer.did_backward:
            entry.eager = True
            warnings.warn(
                f"ember.compile({self.name}): the outputs require grad, but compiled graphs "
                "do not record autograd; compile the whole training step (forward, backward "
                "and optimizer step) or call it under ember.no_grad(). This signature runs "
                "eagerly.",
                GraphBreakWarning,
                stacklevel=2,
            )
        else:
            if config.validate_graphs:
                graph.validate()
            self._install(entry, tensors)
        if entry.dyn is None:
            self._cache.setdefault(key, []).append(entry)
        self._note_retrace(key)
        return result

    def _install(self, entry: Entry, tensors: list) -> None:
        """Make ``entry`` runnable; merge it with an earlier trace into a dynamic graph when
        only the batch size changed."""
        if self.dynamic is not False:
            for old in [e for lst in self._cache.values() for e in lst]:
                if old.eager or old.dyn is not None:
                    continue
                pos = batch_positions(old.tensors, tensors)
                if pos is None or dynamic_key(old.key, pos) != dynamic_key(entry.key, pos):
                    continue
                b1, b2 = old.tensors[pos[0]][0], tuple(tensors[pos[0]].shape)[0]
                src = pos[0]  # as a graph input (arguments sharing an array are one input)
                if entry.picks is not None:
                    src = next(k for k, i in enumerate(entry.picks) if i in pos)
                try:
                    merged = merge_dynamic(old.raw, entry.raw, b1, b2, (src, 0))
                except ValueError:
                    continue
                entry.raw = merged
                entry.dyn = pos
                entry.key = dynamic_key(entry.key, pos)
                self._dynamic.append(entry)
                self._cache[old.key].remove(old)
                if not self._cache[old.key]:
                    del self._cache[old.key]
                break
        entry.graph = optimize(entry.raw.copy(), c_regions=None)
        entry.program = Program(entry.graph)
        if entry.program.c_failed:  # no C kernels after all: the NumPy pipeline (fuse, plan)
            entry.graph = optimize(entry.raw.copy(), c_regions=False)
            entry.program = Program(entry.graph)
        entry.rebuild = rebuilder(entry.program)
        self._last = entry

    def _note_retrace(self, key: tuple) -> None:
        self._history.append(key)
        limit = config.retrace_warning
        if self._warned_retrace or limit is None or self._traces < max(limit, 2):
            return
        if self.dynamic is True:
            return
        why = None
        if len(self._history) >= 2:
            why = describe_change(self._history[-2], self._history[-1], self._argnames)
        if why is None:
            why = f"guard '{self._failed_guard}'" if self._failed_guard else "its guards"
        self._warned_retrace = True
        warnings.warn(
            f"ember.compile({self.name}) has been traced {self._traces} times; {why} keeps "
            "changing. Each trace runs the function eagerly; keep that argument fixed, pass "
            "it as a tensor, or use dynamic=True for a changing batch size.",
            RetraceWarning,
            stacklevel=3,
        )

    # -- inspection -----------------------------------------------------------------------------
    def cache_info(self) -> CacheInfo:
        """Counters of this compiled function (see :class:`CacheInfo`).

        Example:
            >>> compile(lambda x: x + 1).cache_info().size
            0
        """
        size = sum(len(v) for v in self._cache.values()) + len(self._dynamic)
        return CacheInfo(self._hits, self._misses, self._traces, size, self._eager, self._breaks)

    @property
    def graphs(self) -> list[Graph]:
        """Every cached (optimized) graph."""
        out = [e.graph for lst in self._cache.values() for e in lst if e.graph is not None]
        return out + [e.graph for e in self._dynamic if e.graph is not None]

    @property
    def graph(self) -> Graph | None:
        """The optimized graph of the last traced or run call (None before any)."""
        return None if self._last is None else self._last.graph

    @property
    def code(self) -> str | None:
        """The generated Python source of the last traced or run graph."""
        if self._last is None or self._last.program is None:
            return None
        return self._last.program.code

    @property
    def c_code(self) -> str | None:
        """The generated C source (one function per fused region) of the last traced or run
        graph; None when it has no C regions (NumPy mode, no compiler, GPU, nothing to fuse).

        Example:
            >>> import ember
            >>> f = compile(lambda x: (x * 2).exp())
            >>> _ = f(ember.ones(3)); f.c_code is None or "region 0" in f.c_code
            True
        """
        if self._last is None or self._last.program is None:
            return None
        return self._last.program.c_code

    def profile(
        self,
        *args: Any,
        runs: int = 10,
        warmup: int = 2,
        synchronize: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Time every node of the graph these arguments run: :func:`ember.graph.profile.profile`
        (the calls really run: a training step trains ``warmup + runs`` steps; on a GPU
        ``synchronize`` waits for the device at every clock read).

        Example:
            >>> import ember
            >>> f = compile(lambda x: (x * 2).sum())
            >>> print(f.profile(ember.ones(4), runs=2).table(top=3))  # doctest: +ELLIPSIS
            2 calls: ...
        """
        from .profile import profile

        return profile(self, *args, runs=runs, warmup=warmup, synchronize=synchronize, **kwargs)

    def __repr__(self) -> str:
        return f"<compiled {self.name}: {self.cache_info()}>"


def optimize(graph: Graph, c_regions: bool | None = False) -> Graph:
    """Run the configured passes (``config.passes``, else ``ember.graph.passes``'s default
    pipeline when it provides one), validating after each when ``config.validate_graphs``.
    ``c_regions`` is handed to the default pipeline (None: C regions where available).

    Example:
        >>> optimize(Graph("empty")).nodes
        []
    """
    passes = config.passes
    if passes is None:
        passes = _default_passes(c_regions)
    for p in passes:
        result = p(graph)
        graph = result[0] if isinstance(result, tuple) else result
        if config.validate_graphs:
            graph.validate()
    return graph


def _default_passes(c_regions: bool | None = False) -> list:
    try:
        from . import passes as P
    except ImportError:  # pragma: no cover
        return []
    found = getattr(P, "DEFAULT_PASSES", None)
    if found is not None:
        return list(found)
    opt = getattr(P, "optimize", None)
    return [functools.partial(opt, c_regions=c_regions)] if callable(opt) else []


def _pretty(path: str, names: list[str]) -> str:
    """``args[0]`` -> the parameter's name (``x``), ``kwargs['y']`` -> ``y``."""
    if path.startswith("args["):
        i = int(path[5 : path.index("]")])
        rest = path[path.index("]") + 1 :]
        if i < len(names) and names[i] not in ("self",):
            return names[i] + rest
        return f"arg{i}{rest}"
    if path.startswith("kwargs["):
        close = path.index("]")
        key = path[7:close].strip("'\"")
        return key + path[close + 1 :]
    return path


def compile(
    fn: Callable[..., Any] | None = None,
    *,
    fullgraph: bool = False,
    dynamic: bool | None = None,
) -> Any:
    """Compile ``fn`` (a function or an ``nn.Module``); usable as ``@compile`` or
    ``@compile(fullgraph=True)``. See the module docstring for what is supported.

    ``fullgraph=True`` raises :class:`~ember.graph.trace.GraphBreak` instead of falling back
    to eager. ``dynamic=True`` keeps one graph for every batch size after the first change
    (``None``, the default, does so automatically; ``False`` traces each batch size).

    Example:
        >>> import ember
        >>> lin = ember.nn.Linear(3, 2)
        >>> fast = compile(lin)
        >>> with ember.no_grad():
        ...     fast(ember.ones(4, 3)).shape
        (4, 2)
    """
    if fn is None:
        return functools.partial(compile, fullgraph=fullgraph, dynamic=dynamic)
    if isinstance(fn, CompiledFunction):
        return fn
    return CompiledFunction(fn, fullgraph=fullgraph, dynamic=dynamic)

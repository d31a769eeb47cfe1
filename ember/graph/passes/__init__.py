"""Optimization passes over the graph IR, and the pipeline :func:`optimize` that runs them.

Every pass is a function ``pass_(graph) -> (graph, changed)`` that edits ``graph`` in place
(call :meth:`~ember.graph.ir.Graph.copy` first to keep the original) and leaves it valid
(:meth:`~ember.graph.ir.Graph.validate`):

* rewrites: :func:`simplify` (algebraic identities, permute/reshape chains), :func:`fold`
  (constant folding), :func:`cse` (common subexpressions), :func:`dce` (dead code);
* where C kernels serve the graph, :func:`chain` (linear layers on a few rows in one
  ``linear_chain`` node, run by one C call) before the annotations;
* annotations: :func:`regions` (elementwise/row-reduction regions run as generated C
  kernels, :mod:`ember.graph.codegen_c`), :func:`fuse` (elementwise chains computed in place)
  and :func:`plan_memory` (reused ``out=`` buffers). A rewrite that changes the graph drops
  these annotations; the pipeline adds them last. Where C kernels are available (see
  :func:`ember.graph.codegen_c.available`) regions come first and win: fuse and plan leave
  region members alone; in NumPy mode (``EMBER_KERNELS=numpy``, no compiler, a GPU graph)
  there are no regions and fuse/plan is the whole story.

:func:`optimize` repeats the rewrites until a whole round changes nothing (a fixed point),
then marks C regions, fuses and plans. With ``validate=True``, or the environment variable
``EMBER_GRAPH_DEBUG`` set (to anything but ``0``), or ``ember.config.validate_graphs``, the
graph is validated after every pass and an invalid graph raises
:class:`~ember.graph.ir.IRError` naming the pass.

What the executor does with the annotations
-------------------------------------------
For each node, in ``graph.nodes`` order, with ``args`` the node's inputs as its forward
receives them (arrays, Python scalars, None):

1. ``node.out_slot == k`` (an int): compute into buffer ``k``, which is allocated once per call
   signature as ``xp.empty(shape, dtype)`` from ``graph.meta["buffers"][k] == (shape,
   dtype)`` (resolve :class:`~ember.graph.ir.Sym` sizes first) and kept across calls. Run
   ``call_out(xp, node.op, args, node.attrs, buf[k])`` or emit the statement
   ``out_code(node.op, arg_texts, node.attrs, "buf%d" % k)`` (ops in :data:`KERNELS`), or
   the executor's own out-capable lowering (:func:`ember.graph.kernels.supports_out`); the
   node's value is ``buf[k]``. An executor that cannot honour a slot may ignore it (the node
   then makes a fresh array; nothing else reads the buffer). Only :func:`has_out` ops are
   planned, never a value that escapes the call (output, update value or target, mutated
   input, or memory one of these may share), never a 0-d value.
2. else ``node.meta.get("inplace") == p`` (an int): the node is a fused follower; it
   computes into the array of its input ``p`` (its *accumulator*): ``call_out(xp, node.op,
   args, node.attrs, args[p])`` / ``out_code(..., out=<name of input p>)``. The node's value
   is that same array. Guaranteed: the accumulator is a fresh temporary made by the previous
   member of the group (not an input, parameter, constant or buffer), no other node, output
   or update reads it, and it has exactly the node's output shape and dtype. Only ops in
   :data:`KERNELS` are marked. Ignoring the mark (computing a fresh array) is also correct.
3. else: the op's forward, ``REGISTRY[node.op].forward(xp, *args, **node.attrs)``.

Region members (``node.meta["region"]``, see :mod:`.regions`) carry no ``out_slot`` or
``inplace`` mark; an executor with C kernels runs each region as one call where its last
member stands (the members are adjacent), one without runs them by rule 3.

Fused groups (``node.meta["fused"]`` = group id, ``node.meta["fused_index"]`` = position;
:func:`fusion_groups` and :func:`fused_steps` read them back) add nothing to these rules:
they say which nodes form one in-place chain, normally adjacent in ``graph.nodes``, so the
executor may emit them as one block::

    t = xp.multiply(a, b)    # head: rule 3 (or rule 1: xp.multiply(a, b, out=buf0))
    xp.add(t, c, out=t)      # rule 2
    xp.tanh(t, out=t)        # rule 2

``fused_steps(group)`` gives ``[("mul", False), ("add", True), ("tanh", True)]`` for it.
:func:`check_plan` verifies a memory plan.

Example:
    >>> import numpy as np
    >>> from ember.graph.ir import Graph
    >>> g = Graph("f"); x = g.add_input((3,), np.float32, label="x")
    >>> a = g.add_node("mul", [x, 1], {}, (3,), np.float32)     # x * 1: an identity
    >>> b = g.add_node("exp", [a], {}, (3,), np.float32)
    >>> c = g.add_node("exp", [x], {}, (3,), np.float32)        # the same as b after that
    >>> g.outputs = [g.add_node("add", [b, c], {}, (3,), np.float32)]
    >>> print(optimize(g))  # doctest: +NORMALIZE_WHITESPACE
    graph f(%x: f32[3]):
      %v3: f32[3] = exp(%x)
      %v5: f32[3] = add(%v3, %v3)
      return (%v5)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..ir import Graph, IRError
from .analysis import Storage, freeze
from .chain import chain
from .cse import cse
from .dce import dce
from .fold import FOLD_LIMIT, fold
from .fuse import FusedGroup, fuse, fused_steps, fusion_groups
from .kernels import ELEMENTWISE, KERNELS, OutKernel, call_out, out_code, out_kernel
from .memory import check_plan, has_out, plan_memory
from .regions import Region, region_groups, regions
from .simplify import simplify

__all__ = [
    "optimize",
    "run_pass",
    "chain",
    "REWRITES",
    "dce",
    "cse",
    "fold",
    "simplify",
    "fuse",
    "regions",
    "region_groups",
    "Region",
    "plan_memory",
    "check_plan",
    "has_out",
    "FusedGroup",
    "fusion_groups",
    "fused_steps",
    "KERNELS",
    "ELEMENTWISE",
    "OutKernel",
    "out_kernel",
    "call_out",
    "out_code",
    "Storage",
    "freeze",
    "FOLD_LIMIT",
    "debug_enabled",
]

Pass = Callable[[Graph], tuple[Graph, bool]]

REWRITES: tuple[Pass, ...] = (simplify, fold, cse, dce)


def debug_enabled() -> bool:
    """True when ``ember.config.validate_graphs`` or the environment variable
    ``EMBER_GRAPH_DEBUG`` asks for validation after every pass.

    Example:
        >>> isinstance(debug_enabled(), bool)
        True
    """
    if os.environ.get("EMBER_GRAPH_DEBUG", "") not in ("", "0"):
        return True
    try:
        from ... import config
    except ImportError:  # pragma: no cover
        return False
    return bool(getattr(config, "validate_graphs", False))


def run_pass(pass_: Pass, graph: Graph, *, validate: bool = False) -> tuple[Graph, bool]:
    """Run one pass; with ``validate`` check the result, naming the pass on failure.

    Example:
        >>> g = Graph(); g.outputs = []
        >>> run_pass(dce, g, validate=True)[1]
        False
    """
    graph, changed = pass_(graph)
    if validate:
        try:
            graph.validate()
        except IRError as e:
            name = getattr(pass_, "__name__", repr(pass_))
            raise IRError(f"after pass {name}: {e}") from e
    return graph, changed


def optimize(
    graph: Graph,
    *,
    rewrites: Sequence[Pass] = REWRITES,
    fuse_chains: bool = True,
    plan: bool = True,
    c_regions: bool | None = False,
    validate: bool | None = None,
    max_rounds: int = 20,
) -> Graph:
    """Run ``rewrites`` to a fixed point, then :func:`regions` (when ``c_regions``; None: when
    C kernels are available for this graph, what ``ember.compile`` asks for), :func:`fuse` and :func:`plan_memory` (in place);
    returns the graph. ``validate`` defaults to :func:`debug_enabled`.

    Example:
        >>> import numpy as np
        >>> g = Graph(); x = g.add_input((2,), np.float32)
        >>> y = g.add_node("neg", [x], {}, (2,), np.float32)
        >>> z = g.add_node("neg", [y], {}, (2,), np.float32)
        >>> g.outputs = [g.add_node("exp", [z], {}, (2,), np.float32)]
        >>> [n.op for n in optimize(g).nodes], g.nodes[0].inputs[0] is x
        (['exp'], True)
    """
    check = debug_enabled() if validate is None else validate
    if check:
        graph.validate()
    # Rounds of ``rewrites`` until a fixed point: stop as soon as every rewrite has run once
    # since the last change without changing anything (the rest of that round would see the
    # same graph again and, passes being deterministic, change nothing either).
    quiet, limit = 0, len(rewrites)
    for _ in range(max_rounds):
        for pass_ in rewrites:
            graph, changed = run_pass(pass_, graph, validate=check)
            quiet = 0 if changed else quiet + 1
            if quiet >= limit:
                break
        if quiet >= limit:
            break
    if c_regions is None:
        from ..codegen_c import available

        c_regions = available(graph)
    if c_regions:
        graph, _ = run_pass(chain, graph, validate=check)
        graph, _ = run_pass(regions, graph, validate=check)
    if fuse_chains:
        graph, _ = run_pass(fuse, graph, validate=check)
    if plan:
        graph, _ = run_pass(plan_memory, graph, validate=check)
        if check:
            check_plan(graph)
    return graph

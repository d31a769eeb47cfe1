"""Importer ops with subgraphs: ``If``, ``Loop`` and ``Scan`` (see
:mod:`ember.onnx.import_ops`). Bodies run through the module's subgraph interpreter, so their
ops are ember ops too; conditions and trip counts are read as host values (under
``ember.compile`` a data-dependent branch is a graph break, as in eager Python).

Example:
    >>> from ember.onnx.import_ops import OPS
    >>> OPS["", "If"].static
    (0,)
"""

from __future__ import annotations

import numpy as np

import ember as E

from .import_ops import NodeContext, onnx_op

__all__: list[str] = []


def _as_bool(v) -> bool:
    return bool(np.asarray(v).reshape(-1)[0])


def _tensor(v):
    return v if isinstance(v, E.Tensor) else E.as_tensor(np.asarray(v))


@onnx_op("If", static=(0,))
def _(ctx: NodeContext, cond):
    branch = ctx.attr("then_branch") if _as_bool(cond) else ctx.attr("else_branch")
    return tuple(ctx.module.run_subgraph(branch, []))


@onnx_op("Loop", static=(0, 1))
def _(ctx: NodeContext, trip=None, cond=None, *state):
    body = ctx.attr("body")
    n_state = len(state)
    limit = None if trip is None else int(np.asarray(trip).reshape(-1)[0])
    go = True if cond is None else _as_bool(cond)
    values = list(state)
    scans: list[list] = []
    i = 0
    while go and (limit is None or i < limit):
        outs = ctx.module.run_subgraph(
            body, [np.asarray(i, dtype=np.int64), np.asarray(go, dtype=np.bool_), *values]
        )
        go = _as_bool(outs[0])
        values = list(outs[1 : 1 + n_state])
        extra = outs[1 + n_state :]
        if not scans:
            scans = [[] for _ in extra]
        for acc, v in zip(scans, extra):
            acc.append(v)
        i += 1
    n_scan = ctx.n_outputs - n_state
    stacked = [E.stack([_tensor(v) for v in acc], 0) for acc in scans]
    stacked += [np.zeros((0,), dtype=np.float32)] * (n_scan - len(stacked))
    return tuple(values + stacked)


@onnx_op("Scan", since=9)
def _(ctx: NodeContext, *args):
    body = ctx.attr("body")
    m = ctx.attr("num_scan_inputs")
    n = len(args) - m
    state, seqs = list(args[:n]), list(args[n:])
    in_axes = ctx.attr("scan_input_axes") or [0] * m
    in_dirs = ctx.attr("scan_input_directions") or [0] * m
    n_out = ctx.n_outputs - n
    out_axes = ctx.attr("scan_output_axes") or [0] * n_out
    out_dirs = ctx.attr("scan_output_directions") or [0] * n_out
    steps = seqs[0].shape[in_axes[0] % seqs[0].ndim] if seqs else 0
    outs: list[list] = [[] for _ in range(n_out)]
    for t in range(steps):
        sl = []
        for s, ax, d in zip(seqs, in_axes, in_dirs):
            ax %= s.ndim
            k = steps - 1 - t if d else t
            sl.append(s[(slice(None),) * ax + (k,)])
        res = ctx.module.run_subgraph(body, state + sl)
        state = list(res[:n])
        for acc, v in zip(outs, res[n:]):
            acc.append(_tensor(v))
    final = []
    for acc, ax, d in zip(outs, out_axes, out_dirs):
        if d:
            acc = acc[::-1]
        y = E.stack(acc, 0)
        ax %= y.ndim
        if ax:
            perm = list(range(1, ax + 1)) + [0] + list(range(ax + 1, y.ndim))
            y = E.permute(y, tuple(perm))
        final.append(y)
    return tuple(state + final)

"""Grouped optimizer updates: one registered, impure op updates every parameter of a group in
place (``adam_group_update``, ``sgd_group_update``, ``rmsprop_group_update``).

An optimizer's ``step`` calls these only while ``ember.compile`` traces it, so a compiled
training step holds one update node per parameter group instead of one per parameter (the
eager step calls the fused kernels of ``ember.kernels.optim`` directly). The inputs are
variadic: ``n`` parameters, their ``n`` gradients, ``n`` arrays per state buffer the
configuration uses, then (Adam, RMSprop) the ``n`` incremented step counts, and last the
learning rate; step counts and learning rate are graph scalars, never attributes, so
schedulers and counters stay live in a compiled step. ``MUTATES`` holds a rule computing the
written positions (parameters and state buffers) from the input count and ``n``.

On the CPU a call is one fused C kernel over the whole group, as the eager step, so compiled
and eager training give the same bits; where the kernel cannot serve (``EMBER_KERNELS=numpy``,
CuPy arrays, mixed dtypes, non-contiguous parameters or state) each parameter runs its
per-parameter op (``ember.ops.optim``), which is what the eager step then does too. On the
GPU, Adam/AdamW runs the whole group as one CUDA launch (``ember.optim.cuda_kernels.
adam_multi``, bit-identical to the per-parameter kernel) where every array is a C-contiguous
CuPy array of one dtype on the current device; SGD and RMSprop, and Adam otherwise, run per
parameter. The op returns the first parameter's array (the per-parameter ops return their
parameter).

Example:
    >>> import ember
    >>> from ember.ops.optim_group import sgd_group_update
    >>> a, b = ember.ones(2), ember.ones(3)
    >>> _ = sgd_group_update(a, b, ember.ones(2), ember.ones(3), 0.5, n=2, first=None,
    ...                      momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
    ...                      maximize=False)
    >>> a.tolist(), b.tolist()
    ([0.5, 0.5], [0.5, 0.5, 0.5])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .optim import MUTATES, _adam, _rmsprop, _sgd
from .registry import defop

__all__ = [
    "adam_group_update",
    "sgd_group_update",
    "rmsprop_group_update",
    "group_positions",
    "split_group",
]


def group_positions(tail: int) -> Callable[[int, dict[str, Any]], tuple[int, ...]]:
    """The ``MUTATES`` rule of a grouped update whose inputs are lists of ``n`` entries
    (parameters, gradients, state buffers, then ``tail`` lists of step counts) and the
    learning rate: it writes the parameters and every state buffer.

    Example:
        >>> group_positions(1)(2 * 5 + 1, {"n": 2})  # params, grads, m, v, steps; lr
        (0, 1, 4, 5, 6, 7)
    """

    def rule(count: int, attrs: dict[str, Any]) -> tuple[int, ...]:
        n = int(attrs["n"])
        if n <= 0:
            return ()
        lists = (count - 1) // n
        return tuple(range(n)) + tuple(range(2 * n, (lists - tail) * n))

    return rule


def split_group(arrays: tuple, n: int) -> tuple[list[list[Any]], Any]:
    """``(lists, lr)``: ``arrays`` cut into lists of ``n`` (the last input is ``lr``).

    Example:
        >>> split_group((1, 2, 3, 4, 0.1), 2)
        ([[1, 2], [3, 4]], 0.1)
    """
    body = arrays[:-1]
    if n <= 0 or len(body) % n:
        raise ValueError(f"a grouped update of {n} parameters got {len(arrays)} inputs")
    return [list(body[i : i + n]) for i in range(0, len(body), n)], arrays[-1]


def _contiguous(grads: list[Any]) -> list[Any]:
    """The gradients as C-contiguous NumPy arrays where they are NumPy arrays (the kernel
    reads them only; copying a strided one keeps the whole group on the kernel)."""
    return [
        np.ascontiguousarray(g) if type(g) is np.ndarray and not g.flags.c_contiguous else g
        for g in grads
    ]


def _contiguous_gpu(grads: list[Any]) -> list[Any]:
    """The gradients as C-contiguous arrays where they are strided GPU arrays (one copy each
    keeps the group on the multi-tensor kernel instead of one launch per parameter)."""
    from ..device import array_module

    return [
        g if type(g) is np.ndarray or g.flags.c_contiguous else array_module(g).ascontiguousarray(g)
        for g in grads
    ]


def _on_cpu(params: list[Any]) -> bool:
    return all(type(p) is np.ndarray for p in params)


# -- Adam / AdamW ------------------------------------------------------------------------------
@defop("adam_group_update", pure=False)
def _adam_group(
    xp, *arrays, n, amsgrad, beta1, beta2, eps, weight_decay, decoupled, maximize
):  # fmt: skip
    """Adam/AdamW over a group in place: inputs ``params, grads, exp_avgs, exp_avg_sqs,
    [max_exp_avg_sqs if amsgrad], steps`` (lists of ``n``) and ``lr``."""
    lists, lr = split_group(arrays, n)
    params, grads, exp_avgs, exp_avg_sqs = lists[:4]
    vmax = lists[4] if amsgrad else None
    steps = [float(s) for s in lists[-1]]
    opts = dict(
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        decoupled=decoupled,
        maximize=maximize,
    )
    if _on_cpu(params):
        from .. import kernels

        grads = _contiguous(grads)
        if kernels.adam_step(
            params, grads, exp_avgs, exp_avg_sqs, vmax, steps, lr=float(lr), **opts
        ):
            return params[0]
    else:
        from ..optim import cuda_kernels  # one launch for the group (CuPy arrays)

        grads = _contiguous_gpu(grads)
        if cuda_kernels.adam_multi(
            params, grads, exp_avgs, exp_avg_sqs, vmax, steps, lr=float(lr), **opts
        ):
            return params[0]
    forward = _adam.forward
    for i in range(n):
        v = None if vmax is None else vmax[i]
        forward(xp, params[i], grads[i], exp_avgs[i], exp_avg_sqs[i], v, steps[i], lr, **opts)
    return params[0]


# -- SGD ---------------------------------------------------------------------------------------
@defop("sgd_group_update", pure=False)
def _sgd_group(
    xp, *arrays, n, first, momentum, dampening, weight_decay, nesterov, maximize
):  # fmt: skip
    """SGD over a group in place: inputs ``params, grads, [momentum_buffers if momentum]``
    (lists of ``n``) and ``lr``; ``first[i]``: buffer ``i`` starts as the gradient."""
    lists, lr = split_group(arrays, n)
    params, grads = lists[:2]
    bufs = lists[2] if len(lists) > 2 else None
    opts = dict(
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
    )
    if _on_cpu(params):
        from .. import kernels

        grads = _contiguous(grads)
        if kernels.sgd_step(params, grads, bufs, first, lr=float(lr), **opts):
            return params[0]
    forward = _sgd.forward
    for i in range(n):
        buf = None if bufs is None else bufs[i]
        forward(xp, params[i], grads[i], buf, lr, first=bool(first and first[i]), **opts)
    return params[0]


# -- RMSprop -----------------------------------------------------------------------------------
@defop("rmsprop_group_update", pure=False)
def _rmsprop_group(
    xp, *arrays, n, centered, alpha, eps, weight_decay, momentum, maximize
):  # fmt: skip
    """RMSprop over a group in place: inputs ``params, grads, square_avgs, [grad_avgs if
    centered], [momentum_buffers if momentum > 0], steps`` (lists of ``n``) and ``lr``."""
    lists, lr = split_group(arrays, n)
    params, grads, square_avgs = lists[:3]
    rest = lists[3:-1]
    grad_avgs = rest.pop(0) if centered else None
    bufs = rest.pop(0) if momentum > 0 else None
    steps = lists[-1]
    opts = dict(alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
    if _on_cpu(params):
        from .. import kernels

        grads = _contiguous(grads)
        if kernels.rmsprop_step(
            params, grads, square_avgs, grad_avgs, bufs, lr=float(lr), maximize=maximize, **opts
        ):
            return params[0]
    forward = _rmsprop.forward
    for i in range(n):
        ga = None if grad_avgs is None else grad_avgs[i]
        buf = None if bufs is None else bufs[i]
        forward(xp, params[i], grads[i], square_avgs[i], ga, buf, steps[i], lr,
                maximize=maximize, **opts)  # fmt: skip
    return params[0]


MUTATES["adam_group_update"] = group_positions(1)
MUTATES["sgd_group_update"] = group_positions(0)
MUTATES["rmsprop_group_update"] = group_positions(1)


# -- ONNX lowerings: the op's result, the first parameter's new value -------------------------
# (as for the per-parameter updates, the state written in place is not an exported output)
def _first(lists: list[list[Any]]) -> list[Any]:
    return [lst[0] for lst in lists]


@_adam_group.defonnx
def _(g, *inputs, n, amsgrad, **attrs):
    lists, lr = split_group(inputs, n)
    p, grad, m, v = _first(lists[:4])
    vmax = lists[4][0] if amsgrad else None
    return _adam.onnx(g, p, grad, m, v, vmax, lists[-1][0], lr, **attrs)


@_sgd_group.defonnx
def _(g, *inputs, n, first, **attrs):
    lists, lr = split_group(inputs, n)
    buf = lists[2][0] if len(lists) > 2 else None
    return _sgd.onnx(g, lists[0][0], lists[1][0], buf, lr, first=bool(first and first[0]), **attrs)


@_rmsprop_group.defonnx
def _(g, *inputs, n, centered, **attrs):
    lists, lr = split_group(inputs, n)
    rest = _first(lists[3:-1])
    ga = rest.pop(0) if centered else None
    buf = rest.pop(0) if attrs["momentum"] > 0 else None
    p, grad, sq = _first(lists[:3])
    return _rmsprop.onnx(g, p, grad, sq, ga, buf, lists[-1][0], lr, **attrs)


adam_group_update = _adam_group
sgd_group_update = _sgd_group
rmsprop_group_update = _rmsprop_group

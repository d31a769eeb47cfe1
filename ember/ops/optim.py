"""Optimizer updates as registered, impure ops: ``sgd_update``, ``adam_update``,
``rmsprop_update``, ``adagrad_update``.

Each forward updates the arrays it is given *in place* (the parameter, and its state such
as ``exp_avg``) with PyTorch's formulas and op order, and returns the parameter's array.
Declared once here, they serve both modes: an optimizer's ``step`` calls them through the
dispatcher eagerly, and ``ember.compile`` records them as in-place update nodes
(``MUTATES`` lists the input positions each op writes). The learning rate and the step count
are *inputs* (a Python number eagerly; a live graph scalar in a trace), never attributes, so
a compiled training step does not bake them in. On the CPU an update is a handful of NumPy
ufuncs run over cache-sized chunks into reused scratch buffers; on a GPU it is one fused
CuPy kernel (``ember.optim.cuda_kernels``).

Example:
    >>> import ember
    >>> from ember.ops.optim import sgd_update
    >>> p, g = ember.ones(3), ember.full((3,), 2.0)
    >>> _ = sgd_update(p, g, None, 0.5, momentum=0.0, dampening=0.0, weight_decay=0.0,
    ...                nesterov=False, maximize=False, first=False)
    >>> p.tolist()
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .registry import defop

__all__ = [
    "sgd_update",
    "adam_update",
    "rmsprop_update",
    "adagrad_update",
    "MUTATES",
    "mutated_positions",
    "scratch_scope",
]

# input positions each update writes in place (None inputs are skipped by the tracer): a
# tuple, or for a variadic op (``ember.ops.optim_group``) a rule ``(n_inputs, attrs) ->
# positions``; read it through :func:`mutated_positions`
MUTATES: dict[str, tuple[int, ...] | Callable[[int, dict[str, Any]], tuple[int, ...]]] = {
    "sgd_update": (0, 2),
    "adam_update": (0, 2, 3, 4),
    "rmsprop_update": (0, 2, 3, 4),
    "adagrad_update": (0, 2),
}


def mutated_positions(op: str, n_inputs: int, attrs: dict[str, Any]) -> tuple[int, ...]:
    """The input positions a call of ``op`` with ``n_inputs`` inputs and ``attrs`` writes in
    place (``()`` for an op that writes nothing).

    Example:
        >>> mutated_positions("adam_update", 7, {}), mutated_positions("mul", 2, {})
        ((0, 2, 3, 4), ())
        >>> mutated_positions("sgd_group_update", 7, {"n": 2})  # params, grads, bufs; lr
        (0, 1, 4, 5)
    """
    spec = MUTATES.get(op, ())
    if callable(spec):
        spec = spec(n_inputs, attrs)
    return tuple(k for k in spec if k < n_inputs)


_CHUNK_BYTES = 256 * 1024  # per array: a chunk of the update's arrays stays in the L2 cache
_SHARED_SCRATCH: dict[tuple, Any] = {}
_scratch_stack: list[dict[tuple, Any]] = []


class scratch_scope:
    """Make the updates inside use ``store`` for their scratch buffers (an optimizer passes
    its own dict; compiled graphs use a shared one).

    Example:
        >>> store = {}
        >>> with scratch_scope(store):
        ...     _ = _buffer(np.zeros(3, np.float32))
        >>> len(store)
        1
    """

    def __init__(self, store: dict[tuple, Any]) -> None:
        self.store = store

    def __enter__(self) -> None:
        _scratch_stack.append(self.store)

    def __exit__(self, *exc: object) -> None:
        _scratch_stack.pop()


def _buffer(like: Any, slot: int = 0) -> Any:
    """A scratch array shaped like ``like`` (reused across parameters and steps).

    Updates write temporaries into these instead of allocating fresh arrays, which would
    cost a page fault per 4 KiB of every large parameter on every step.
    """
    store = _scratch_stack[-1] if _scratch_stack else _SHARED_SCRATCH
    key = (slot, like.dtype, type(like))
    buf = store.get(key)
    n = like.size
    if buf is None or buf.size < n:
        xp = np if isinstance(like, np.ndarray) else _module_of(like)
        buf = xp.empty(max(n, 1), dtype=like.dtype)
        store[key] = buf
    return buf[:n].reshape(like.shape)


def _module_of(arr: Any) -> Any:
    from ..device import array_module

    return array_module(arr)


def _chunked(update: Callable[..., None], arrays: list[Any], **scalars: Any) -> None:
    """Run ``update(*arrays, **scalars)`` over cache-sized chunks of large C-contiguous NumPy
    arrays (bit-identical: every step is elementwise); ``None`` entries pass through."""
    first = arrays[0]
    chunk = _CHUNK_BYTES // first.itemsize
    n = first.size
    if (
        n <= chunk
        or not isinstance(first, np.ndarray)
        or not all(a is None or a.flags.c_contiguous for a in arrays)
    ):
        update(*arrays, **scalars)
        return
    flat = [None if a is None else a.reshape(-1) for a in arrays]
    for start in range(0, n, chunk):
        stop = start + chunk
        update(*[None if a is None else a[start:stop] for a in flat], **scalars)


def _decayed(xp: Any, param: Any, grad: Any, weight_decay: float, maximize: bool) -> Any:
    """``grad`` negated when maximizing, plus ``weight_decay * param`` (into scratch slot 1)."""
    if not maximize and weight_decay == 0:
        return grad
    d = _buffer(param, 1)
    if weight_decay != 0:
        xp.multiply(param, weight_decay, out=d)
        (xp.subtract if maximize else xp.add)(d, grad, out=d)
    else:
        xp.negative(grad, out=d)
    return d


def _lerp_(xp: Any, avg: Any, grad: Any, weight: float, tmp: Any, dtype: Any) -> None:
    """``avg.lerp_(grad, weight)`` with PyTorch's two formulas."""
    xp.subtract(grad, avg, out=tmp)
    if weight < 0.5:
        tmp *= weight
        avg += tmp
    else:
        tmp *= 1 - float(dtype.type(weight))
        xp.subtract(grad, tmp, out=avg)


# -- SGD -------------------------------------------------------------------------------------
def _sgd_numpy(
    param, grad, buf, *, xp, lr, momentum, dampening, weight_decay, nesterov, maximize, first
):
    tmp = _buffer(param, 0)
    grad = _decayed(xp, param, grad, weight_decay, maximize)
    if buf is not None:
        if first:
            xp.copyto(buf, grad)
        else:  # buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            buf *= momentum
            if dampening == 0:
                buf += grad
            else:
                xp.multiply(grad, 1 - dampening, out=tmp)
                buf += tmp
        if nesterov:  # grad = grad.add(buf, alpha=momentum)
            xp.multiply(buf, momentum, out=tmp)
            tmp += grad
            grad = tmp
        else:
            grad = buf
    xp.multiply(grad, -lr, out=tmp)
    param += tmp


@defop("sgd_update", pure=False)
def _sgd(xp, param, grad, buf, lr, *, momentum, dampening, weight_decay, nesterov, maximize, first):
    """SGD with momentum/Nesterov/weight decay, in place; ``buf`` None without momentum."""
    kw = dict(
        lr=float(lr),
        momentum=momentum,
        dampening=dampening,
        weight_decay=weight_decay,
        nesterov=nesterov,
        maximize=maximize,
        first=first,
    )
    if isinstance(param, np.ndarray):
        _chunked(_sgd_numpy, [param, grad, buf], xp=xp, **kw)
    else:
        from ..optim import cuda_kernels

        cuda_kernels.sgd(param, grad, buf, **kw)
    return param


# -- Adam / AdamW ------------------------------------------------------------------------------
def _adam_numpy(
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    vmax,
    *,
    xp,
    lr,
    beta1,
    beta2,
    eps,
    weight_decay,
    decoupled,
    maximize,
    step,
):
    tmp = _buffer(param, 0)
    if weight_decay != 0 and decoupled:
        param *= 1 - lr * weight_decay
    grad = _decayed(xp, param, grad, 0 if decoupled else weight_decay, maximize)
    _lerp_(xp, exp_avg, grad, 1 - beta1, tmp, param.dtype)
    # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    exp_avg_sq *= beta2
    xp.multiply(grad, 1 - beta2, out=tmp)
    tmp *= grad
    exp_avg_sq += tmp
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = (1 - beta2**step) ** 0.5
    step_size = lr / bias_correction1
    if vmax is not None:
        xp.maximum(vmax, exp_avg_sq, out=vmax)
        xp.sqrt(vmax, out=tmp)
    else:
        xp.sqrt(exp_avg_sq, out=tmp)
    tmp /= bias_correction2_sqrt
    tmp += eps
    # param.addcdiv_(exp_avg, denom, value=-step_size)
    xp.divide(exp_avg, tmp, out=tmp)
    tmp *= -step_size
    param += tmp


@defop("adam_update", pure=False)
def _adam(
    xp,
    param,
    grad,
    exp_avg,
    exp_avg_sq,
    max_exp_avg_sq,
    step,
    lr,
    *,
    beta1,
    beta2,
    eps,
    weight_decay,
    decoupled,
    maximize,
):
    """Adam/AdamW (``decoupled``), AMSGrad when ``max_exp_avg_sq`` is given, in place;
    ``step`` is the (already incremented) step count."""
    kw = dict(
        lr=float(lr),
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=weight_decay,
        decoupled=decoupled,
        maximize=maximize,
        step=float(step),
    )
    arrays = [param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq]
    if isinstance(param, np.ndarray):
        from .. import kernels  # the C kernel is bit-identical to the NumPy update below

        vmax = None if max_exp_avg_sq is None else [max_exp_avg_sq]
        step_kw = {k: v for k, v in kw.items() if k != "step"}
        if not kernels.adam_step(
            [param], [grad], [exp_avg], [exp_avg_sq], vmax, kw["step"], **step_kw
        ):
            _chunked(_adam_numpy, arrays, xp=xp, **kw)
    else:
        from ..optim import cuda_kernels

        cuda_kernels.adam(*arrays, **kw)
    return param


# -- RMSprop -------------------------------------------------------------------------------------
def _rmsprop_numpy(
    param, grad, square_avg, grad_avg, buf, *, xp, lr, alpha, eps, weight_decay, momentum, maximize
):
    tmp = _buffer(param, 0)
    grad = _decayed(xp, param, grad, weight_decay, maximize)
    # square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    square_avg *= alpha
    xp.multiply(grad, 1 - alpha, out=tmp)
    tmp *= grad
    square_avg += tmp
    if grad_avg is not None:  # grad_avg.lerp_(grad, 1 - alpha)
        _lerp_(xp, grad_avg, grad, 1 - alpha, tmp, param.dtype)
        # avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        xp.multiply(grad_avg, grad_avg, out=tmp)
        xp.subtract(square_avg, tmp, out=tmp)
        xp.sqrt(tmp, out=tmp)
    else:
        xp.sqrt(square_avg, out=tmp)
    tmp += eps
    xp.divide(grad, tmp, out=tmp)
    if buf is not None:  # buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
        buf *= momentum
        buf += tmp
        xp.multiply(buf, -lr, out=tmp)
    else:  # param.addcdiv_(grad, avg, value=-lr)
        tmp *= -lr
    param += tmp


@defop("rmsprop_update", pure=False)
def _rmsprop(
    xp,
    param,
    grad,
    square_avg,
    grad_avg,
    buf,
    step,
    lr,
    *,
    alpha,
    eps,
    weight_decay,
    momentum,
    maximize,
):
    """RMSprop (centered when ``grad_avg`` is given, momentum when ``buf`` is), in place;
    ``step`` (the incremented count) is an input so a trace keeps the counter live."""
    _chunked(
        _rmsprop_numpy,
        [param, grad, square_avg, grad_avg, buf],
        xp=xp,
        lr=float(lr),
        alpha=alpha,
        eps=eps,
        weight_decay=weight_decay,
        momentum=momentum,
        maximize=maximize,
    )
    return param


# -- Adagrad -------------------------------------------------------------------------------------
def _adagrad_numpy(param, grad, state_sum, *, xp, clr, eps, weight_decay, maximize):
    tmp = _buffer(param, 0)
    grad = _decayed(xp, param, grad, weight_decay, maximize)
    # state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps)
    xp.multiply(grad, grad, out=tmp)
    state_sum += tmp
    xp.sqrt(state_sum, out=tmp)
    tmp += eps
    # param.addcdiv_(grad, std, value=-clr)
    xp.divide(grad, tmp, out=tmp)
    tmp *= -clr
    param += tmp


@defop("adagrad_update", pure=False)
def _adagrad(xp, param, grad, state_sum, step, lr, *, lr_decay, eps, weight_decay, maximize):
    """Adagrad with learning-rate decay, in place; ``step`` is the incremented count."""
    lr, step = float(lr), float(step)
    _chunked(
        _adagrad_numpy,
        [param, grad, state_sum],
        xp=xp,
        clr=lr / (1 + (step - 1) * lr_decay),
        eps=eps,
        weight_decay=weight_decay,
        maximize=maximize,
    )
    return param


# -- ONNX lowerings: the updated parameter (the op's result) as a pure function -------------
# An ONNX graph has no in-place writes, so these compute the value the update returns; the
# state an update also writes (momentum, moments) is not an output of the exported graph.
def _num(g, v, like):
    return g.cast(v, like.dtype) if g.is_value(v) else g.scalar(float(v), like)


def _decayed_onnx(g, param, grad, weight_decay, maximize):
    if weight_decay != 0:
        d = g.op("Mul", param, weight_decay)
        return g.op("Sub" if maximize else "Add", d, grad)
    return g.op("Neg", grad) if maximize else grad


@_sgd.defonnx
def _(g, param, grad, buf, lr, *, momentum, dampening, weight_decay, nesterov, maximize, first):
    d = _decayed_onnx(g, param, grad, weight_decay, maximize)
    if buf is not None:
        new_buf = (
            d if first else g.op("Add", g.op("Mul", buf, momentum), g.op("Mul", d, 1 - dampening))
        )
        d = g.op("Add", d, g.op("Mul", new_buf, momentum)) if nesterov else new_buf
    return g.op("Sub", param, g.op("Mul", d, _num(g, lr, param)))


@_adam.defonnx
def _(g, param, grad, exp_avg, exp_avg_sq, vmax, step, lr, *, beta1, beta2, eps, weight_decay,
      decoupled, maximize):  # fmt: skip
    lr, step = _num(g, lr, param), _num(g, step, param)
    if weight_decay != 0 and decoupled:
        param = g.op("Mul", param, g.op("Sub", 1.0, g.op("Mul", lr, weight_decay)))
    d = _decayed_onnx(g, param, grad, 0 if decoupled else weight_decay, maximize)
    m = g.op("Add", exp_avg, g.op("Mul", g.op("Sub", d, exp_avg), 1 - beta1))
    v = g.op("Add", g.op("Mul", exp_avg_sq, beta2), g.op("Mul", g.op("Mul", d, d), 1 - beta2))
    if vmax is not None:
        v = g.op("Max", vmax, v)
    bc1 = g.op("Sub", 1.0, g.op("Pow", g.scalar(beta1, param), step))
    bc2 = g.op("Sqrt", g.op("Sub", 1.0, g.op("Pow", g.scalar(beta2, param), step)))
    denom = g.op("Add", g.op("Div", g.op("Sqrt", v), bc2), eps)
    return g.op("Sub", param, g.op("Mul", g.op("Div", lr, bc1), g.op("Div", m, denom)))


@_rmsprop.defonnx
def _(g, param, grad, square_avg, grad_avg, buf, step, lr, *, alpha, eps, weight_decay,
      momentum, maximize):  # fmt: skip
    d = _decayed_onnx(g, param, grad, weight_decay, maximize)
    sq = g.op("Add", g.op("Mul", square_avg, alpha), g.op("Mul", g.op("Mul", d, d), 1 - alpha))
    if grad_avg is not None:
        ga = g.op("Add", grad_avg, g.op("Mul", g.op("Sub", d, grad_avg), 1 - alpha))
        sq = g.op("Sub", sq, g.op("Mul", ga, ga))
    ratio = g.op("Div", d, g.op("Add", g.op("Sqrt", sq), eps))
    if buf is not None:
        ratio = g.op("Add", g.op("Mul", buf, momentum), ratio)
    return g.op("Sub", param, g.op("Mul", ratio, _num(g, lr, param)))


@_adagrad.defonnx
def _(g, param, grad, state_sum, step, lr, *, lr_decay, eps, weight_decay, maximize):
    d = _decayed_onnx(g, param, grad, weight_decay, maximize)
    ss = g.op("Add", state_sum, g.op("Mul", d, d))
    decay = g.op("Add", g.op("Mul", g.op("Sub", _num(g, step, param), 1.0), lr_decay), 1.0)
    clr = g.op("Div", _num(g, lr, param), decay)
    return g.op("Sub", param, g.op("Mul", clr, g.op("Div", d, g.op("Add", g.op("Sqrt", ss), eps))))


sgd_update = _sgd
adam_update = _adam
rmsprop_update = _rmsprop
adagrad_update = _adagrad

# the grouped updates (one op per parameter group) register themselves and their MUTATES rules
from . import optim_group as _optim_group  # noqa: E402,F401

"""Activation functions (PyTorch's ``torch.nn.functional`` names and arguments): ``relu relu6
leaky_relu elu selu celu gelu silu mish softplus softsign sigmoid logsigmoid tanh hardtanh
hardsigmoid hardswish``; the threshold/shrink family, ``prelu`` and ``glu`` live in
``thresholds.py``, ``hardsigmoid`` and ``hardswish`` in ``hard_activations.py``; both are
re-exported here.

Forwards are numerically stable: ``sigmoid``, ``softplus`` and ``logsigmoid`` never form
``exp`` of a large positive number, so +-100 (or +-1e4) give no inf/nan. Backward rules are
written in ember ops (second derivatives work); ``sigmoid``, ``tanh``, ``silu`` and ``gelu``
call fused backward ops (``activation_grad.py``, themselves differentiable). Where the
derivative is a function of the output (``relu``, ``hardtanh``, ``elu``, ``sigmoid``,
``tanh``) only the output is kept.
Functions with ``inplace=True`` write the result into ``input`` (PyTorch's rules for
in-place ops apply).

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.relu(ember.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

from typing import Any

from .. import kernels
from ..kernels.pool import NS_RELU
from ..tensor import Tensor
from ..threads import MIN_WORK_PER_THREAD
from . import hard_activations, thresholds
from .activation_grad import (
    gelu_backward,
    gelu_xp,
    kernel,
    relu_backward,
    sigmoid_backward,
    sigmoid_xp,
    silu_backward,
    softplus_xp,
    tanh_backward,
)
from .elementwise import _to_float, add, gt, lt, mul, neg, sub, where
from .hard_activations import *  # noqa: F403
from .inplace import apply_inplace
from .registry import defop
from .thresholds import *  # noqa: F403
from .unary import abs, logical_and

__all__ = (
    thresholds.__all__
    + hard_activations.__all__
    + [
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "silu",
        "mish",
        "softplus",
        "softsign",
        "sigmoid",
        "logsigmoid",
        "tanh",
        "hardtanh",
    ]
)

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _run(input: Tensor, inplace: bool, fn, *args: Any) -> Tensor:
    """``fn(input, *args)``, written into ``input`` when ``inplace``."""
    if inplace:
        return apply_inplace(input, fn.__name__ + "_", fn, *args)
    return fn(input, *args)


# -- relu, hardtanh --------------------------------------------------------------------------
@defop("relu", saves_inputs=False, saves_output=True, onnx="Relu")
@kernel
def _relu(xp, x):
    if NS_RELU * x.size >= 2 * MIN_WORK_PER_THREAD:  # threads pay; below, NumPy's is cheaper
        y = kernels.relu_forward(x)
        if y is not None:
            return y
    return xp.maximum(x, 0)


@_relu.defgrad
def _(ctx, g):
    return (relu_backward(g, ctx.output),)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)`` (integer tensors allowed; the gradient at 0 is 0).

    Example:
        >>> ember.relu(ember.tensor([-1.0, 0.5])).tolist()
        [0.0, 0.5]
    """
    if not inplace:
        return _relu(input)
    return _run(input, inplace, _relu_fn)


def _relu_fn(input: Tensor) -> Tensor:
    return _relu(input)


_relu_fn.__name__ = "relu"


@defop("hardtanh", saves_inputs=False, saves_output=True, onnx="Clip")
def _hardtanh(xp, x, min_val, max_val):
    return xp.clip(x, min_val, max_val)


@_hardtanh.defgrad
def _(ctx, g):
    y, a = ctx.output, ctx.attrs  # y is strictly inside exactly where the input was
    return (where(logical_and(gt(y, a["min_val"]), lt(y, a["max_val"])), g, 0.0),)


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:
    """``input`` clipped to ``[min_val, max_val]``; the gradient is 1 strictly inside.

    Example:
        >>> ember.nn.functional.hardtanh(ember.tensor([-2.0, 0.5, 3.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    if min_val > max_val:
        raise ValueError(
            f"hardtanh: min_val ({min_val}) cannot be greater than max_val ({max_val})"
        )
    return _run(input, inplace, _hardtanh_fn, min_val, max_val)


def _hardtanh_fn(input: Tensor, min_val: float, max_val: float) -> Tensor:
    return _hardtanh(input, min_val=min_val, max_val=max_val)


_hardtanh_fn.__name__ = "hardtanh"


@_hardtanh.defonnx
def _(g, x, min_val, max_val):
    return g.op("Clip", x, g.scalar(min_val, x), g.scalar(max_val, x))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(input, 0), 6)`` (``hardtanh(input, 0, 6)``).

    Example:
        >>> ember.nn.functional.relu6(ember.tensor([-1.0, 3.0, 8.0])).tolist()
        [0.0, 3.0, 6.0]
    """
    return hardtanh(input, 0.0, 6.0, inplace)


@defop("leaky_relu", onnx="LeakyRelu")
def _leaky_relu(xp, x, negative_slope):
    return xp.where(x > 0, x, x * negative_slope)


@_leaky_relu.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (where(gt(x, 0), g, mul(g, ctx.attrs["negative_slope"])),)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``input`` where positive, ``negative_slope * input`` elsewhere.

    Example:
        >>> ember.nn.functional.leaky_relu(ember.tensor([-2.0, 3.0]), 0.25).tolist()
        [-0.5, 3.0]
    """
    return _run(input, inplace, _leaky_relu_fn, negative_slope)


@_leaky_relu.defonnx
def _(g, x, negative_slope):
    return g.op("LeakyRelu", x, alpha=float(negative_slope))


def _leaky_relu_fn(input: Tensor, negative_slope: float) -> Tensor:
    return _leaky_relu(_to_float(input), negative_slope=float(negative_slope))


_leaky_relu_fn.__name__ = "leaky_relu"


# -- the ELU family --------------------------------------------------------------------------
@kernel
def _elu_forward(xp, x, alpha, scale, input_scale):
    out = xp.minimum(x, 0)
    if input_scale != 1.0:
        out *= input_scale
    xp.expm1(out, out=out)
    out *= alpha * scale
    xp.copyto(out, x * scale if scale != 1.0 else x, where=x > 0)
    return out


def _elu_backward(ctx, g):
    # with alpha > 0 the output is positive exactly where the input is, and on the negative
    # side scale * alpha * exp(x * input_scale) = y + scale * alpha (PyTorch's is_result rule)
    y, a = ctx.output, ctx.attrs
    sa = a["alpha"] * a["scale"]
    negative = mul(g, mul(add(y, sa), a["input_scale"]))
    return (where(gt(y, 0), mul(g, a["scale"]), negative),)


_elu = defop("elu", saves_inputs=False, saves_output=True, onnx="Elu")(_elu_forward)
_selu = defop("selu", saves_inputs=False, saves_output=True, onnx="Selu")(_elu_forward)
_celu = defop("celu", saves_inputs=False, saves_output=True, onnx="Celu")(_elu_forward)
for _op in (_elu, _selu, _celu):
    _op.defgrad(_elu_backward)


def _elu_onnx(g, x, alpha, scale, input_scale):
    if x.dtype == "float32" and input_scale == 1.0:
        if scale == 1.0:
            return g.op("Elu", x, alpha=alpha)
        return g.op("Selu", x, alpha=alpha, gamma=scale)
    if x.dtype == "float32" and scale == 1.0 and input_scale == 1.0 / alpha:
        return g.op("Celu", x, alpha=alpha)
    small = g.op("Exp", g.op("Mul", g.op("Min", x, 0.0), input_scale))
    negative = g.op("Mul", g.op("Sub", small, 1.0), alpha * scale)
    return g.op("Where", g.cmp("Greater", x, 0.0), g.op("Mul", x, scale), negative)


for _op in (_elu, _selu, _celu):
    _op.defonnx(_elu_onnx)


def _elu_any(op, x: Tensor, alpha: float, scale: float, input_scale: float) -> Tensor:
    x = _to_float(x)
    if alpha > 0:
        return op(x, alpha=alpha, scale=scale, input_scale=input_scale)
    from .unary import expm1  # alpha <= 0 (rare): the output no longer tells the sign

    negative = mul(expm1(mul(where(gt(x, 0), 0.0, x), input_scale)), alpha * scale)
    return where(gt(x, 0), mul(x, scale), negative)


def _elu_fn(input: Tensor, alpha: float) -> Tensor:
    return _elu_any(_elu, input, float(alpha), 1.0, 1.0)


def _selu_fn(input: Tensor) -> Tensor:
    return _elu_any(_selu, input, _SELU_ALPHA, _SELU_SCALE, 1.0)


def _celu_fn(input: Tensor, alpha: float) -> Tensor:
    alpha = float(alpha)
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return _elu_any(_celu, input, alpha, 1.0, 1.0 / alpha)


_elu_fn.__name__, _selu_fn.__name__, _celu_fn.__name__ = "elu", "selu", "celu"


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``input`` where positive, ``alpha * (exp(input) - 1)`` elsewhere.

    Example:
        >>> round(ember.nn.functional.elu(ember.tensor([-1.0])).item(), 4)
        -0.6321
    """
    return _run(input, inplace, _elu_fn, alpha)


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * elu(input, alpha)`` with the self-normalising constants
    (alpha = 1.6733, scale = 1.0507).

    Example:
        >>> round(ember.nn.functional.selu(ember.tensor([1.0])).item(), 4)
        1.0507
    """
    return _run(input, inplace, _selu_fn)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``.

    Example:
        >>> round(ember.nn.functional.celu(ember.tensor([-1.0]), alpha=2.0).item(), 4)
        -0.7869
    """
    return _run(input, inplace, _celu_fn, alpha)


# -- gelu, silu, mish ------------------------------------------------------------------------
@defop("gelu", onnx="Gelu")
@kernel
def _gelu(xp, x, approximate):
    return gelu_xp(xp, x, approximate)


@_gelu.defgrad
def _(ctx, g):
    return (gelu_backward(g, ctx.inputs[0], ctx.attrs["approximate"]),)


@_gelu.defonnx
def _(g, x, approximate):
    if g.opset >= 20:
        return g.op("Gelu", x, approximate=approximate)
    half_x = g.op("Mul", x, 0.5)
    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        cube = g.op("Mul", g.op("Mul", g.op("Mul", x, x), x), 0.044715)
        inner = g.op("Mul", g.op("Add", x, cube), 0.7978845608028654)
        return g.op("Mul", half_x, g.op("Add", g.op("Tanh", inner), 1.0))
    return g.op("Mul", half_x, g.op("Add", g.erf(g.op("Mul", x, 0.7071067811865476)), 1.0))


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` (Phi: the standard normal CDF); ``approximate='tanh'`` uses
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.

    Example:
        >>> round(ember.nn.functional.gelu(ember.tensor([1.0])).item(), 4)
        0.8413
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _gelu(_to_float(input), approximate=approximate)


@defop("silu", onnx=None)  # exported as x * Sigmoid(x)
@kernel
def _silu(xp, x):
    out = kernels.silu_forward(x)
    if out is not None:
        return out
    out = sigmoid_xp(xp, x)
    out *= x
    return out


@_silu.defgrad
def _(ctx, g):
    return (silu_backward(g, ctx.inputs[0]),)


@_silu.defonnx
def _(g, x):
    return g.op("Mul", x, g.op("Sigmoid", x))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * sigmoid(input)`` (also called swish).

    Example:
        >>> round(ember.nn.functional.silu(ember.tensor([1.0])).item(), 4)
        0.7311
    """
    return _run(input, inplace, _silu_fn)


def _silu_fn(input: Tensor) -> Tensor:
    return _silu(_to_float(input))


_silu_fn.__name__ = "silu"


@defop("mish", onnx="Mish")
@kernel
def _mish(xp, x):
    out = softplus_xp(xp, x)
    xp.tanh(out, out=out)
    out *= x
    return out


@_mish.defgrad
def _(ctx, g):
    (x,) = ctx.inputs  # tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2)
    t = tanh(softplus(x))
    return (mul(g, add(t, mul(mul(x, sigmoid(x)), sub(1.0, mul(t, t))))),)


@_mish.defonnx
def _(g, x):
    if g.opset >= 18 and x.dtype == "float32":
        return g.op("Mish", x)
    return g.op("Mul", x, g.op("Tanh", g.op("Softplus", x)))


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``input * tanh(softplus(input))``.

    Example:
        >>> round(ember.nn.functional.mish(ember.tensor([1.0])).item(), 4)
        0.8651
    """
    return _run(input, inplace, _mish_fn)


def _mish_fn(input: Tensor) -> Tensor:
    return _mish(_to_float(input))


_mish_fn.__name__ = "mish"


# -- sigmoid, tanh and the softplus family ---------------------------------------------------
@defop("sigmoid", saves_inputs=False, saves_output=True, onnx="Sigmoid")
@kernel
def _sigmoid(xp, x):
    return sigmoid_xp(xp, x)


@_sigmoid.defgrad
def _(ctx, g):
    return (sigmoid_backward(g, ctx.output),)


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-input))``, stable for large magnitudes.

    Example:
        >>> ember.sigmoid(ember.tensor([0.0, -100.0, 100.0])).tolist()[0]
        0.5
    """
    return _sigmoid(_to_float(input))


@defop("tanh", saves_inputs=False, saves_output=True, onnx="Tanh")
def _tanh(xp, x):
    # stays NumPy: the graph executor's out= kernel for tanh is np.tanh and must match it
    # bit for bit (ember/graph/passes/kernels.py); the C kernel is no faster here
    return xp.tanh(x)


@_tanh.defgrad
def _(ctx, g):
    return (tanh_backward(g, ctx.output),)


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent.

    Example:
        >>> ember.tanh(ember.tensor([0.0])).tolist()
        [0.0]
    """
    return _tanh(_to_float(input))


@defop("logsigmoid", onnx=None)
@kernel
def _logsigmoid(xp, x):
    e = xp.abs(x)  # min(x, 0) - log1p(exp(-|x|))
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    xp.log1p(e, out=e)
    out = xp.minimum(x, 0)
    out -= e
    return out


@_logsigmoid.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    return (mul(g, sigmoid(neg(x))),)


@_logsigmoid.defonnx
def _(g, x):  # -softplus(-x) = min(x, 0) - log1p(exp(-|x|))
    t = g.op("Log", g.op("Add", g.op("Exp", g.op("Neg", g.op("Abs", x))), 1.0))
    return g.op("Sub", g.op("Min", x, 0.0), t)


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(input))``, stable (no ``-inf`` for large negative inputs).

    Example:
        >>> ember.nn.functional.logsigmoid(ember.tensor([-100.0])).tolist()
        [-100.0]
    """
    return _logsigmoid(_to_float(input))


@defop("softplus", onnx="Softplus")
@kernel
def _softplus(xp, x, beta, threshold):
    z = x * beta if beta != 1.0 else x
    out = xp.minimum(z, threshold)
    xp.exp(out, out=out)
    xp.log1p(out, out=out)
    if beta != 1.0:
        out /= beta
    xp.copyto(out, x, where=z > threshold)
    return out


@_softplus.defgrad
def _(ctx, g):
    (x,) = ctx.inputs
    beta, threshold = ctx.attrs["beta"], ctx.attrs["threshold"]
    z = mul(x, beta) if beta != 1.0 else x
    return (where(gt(z, threshold), g, mul(g, sigmoid(z))),)


@_softplus.defonnx
def _(g, x, beta, threshold):
    z = x if beta == 1.0 else g.op("Mul", x, beta)
    # log1p(exp(z)) = max(z, 0) + log1p(exp(-|z|)), stable in every dtype
    t = g.op("Log", g.op("Add", g.op("Exp", g.op("Neg", g.op("Abs", z))), 1.0))
    sp = g.op("Add", g.op("Relu", z), t)
    if beta != 1.0:
        sp = g.op("Div", sp, beta)
    return g.op("Where", g.cmp("Greater", z, threshold), x, sp)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * input)) / beta``; linear where ``beta * input > threshold``.

    Example:
        >>> round(ember.nn.functional.softplus(ember.tensor([0.0])).item(), 4)
        0.6931
    """
    return _softplus(_to_float(input), beta=float(beta), threshold=float(threshold))


def softsign(input: Tensor) -> Tensor:
    """``input / (1 + |input|)``.

    Example:
        >>> ember.nn.functional.softsign(ember.tensor([1.0, -3.0])).tolist()
        [0.5, -0.75]
    """
    input = _to_float(input)
    return input / add(abs(input), 1.0)


METHODS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}

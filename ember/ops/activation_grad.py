"""Array kernels of the activation functions and their fused backward ops.

The kernels work in place wherever they can: on NumPy a fresh temporary costs page faults
that outweigh the arithmetic, so one op that fills one buffer beats a chain of ember ops.
Each backward op (``sigmoid_backward``, ``tanh_backward``, ``silu_backward``,
``gelu_backward``) computes ``grad * f'(x)`` in one pass and is itself differentiable (its
rule, written in ember ops, gives second derivatives).

Example:
    >>> import ember
    >>> from ember.ops.activation_grad import sigmoid_backward
    >>> sigmoid_backward(ember.ones(1), ember.tensor([0.5])).tolist()
    [0.25]
"""

from __future__ import annotations

import functools
import math

from .. import kernels
from ..kernels import cuda
from ..tensor import Tensor
from . import _special
from .elementwise import add, exp, mul, neg, sub
from .registry import defop

__all__ = ["relu_backward", "sigmoid_backward", "tanh_backward", "silu_backward", "gelu_backward"]

SQRT1_2 = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_K = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715


def kernel(fn):
    """Run an array kernel on 1-d views of 0-d inputs (in-place steps need real arrays, and
    NumPy turns 0-d results into scalars); the result gets the 0-d shape back."""

    @functools.wraps(fn)
    def run(xp, *arrays, **attrs):
        first = arrays[0]
        if getattr(first, "ndim", 1) != 0:
            return fn(xp, *arrays, **attrs)
        flat = [a.reshape(1) if getattr(a, "ndim", 1) == 0 else a for a in arrays]
        return fn(xp, *flat, **attrs).reshape(())

    return run


def sigmoid_xp(xp, x):
    """``1 / (1 + exp(-x))`` from ``e = exp(-|x|)``: no overflow at either end."""
    if x.ndim:
        y = kernels.sigmoid_forward(x)
        if y is not None:
            return y
    e = xp.abs(x)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    out = xp.where(x >= 0, 1.0, e).astype(x.dtype, copy=False)
    e += 1.0
    out /= e
    return out


def softplus_xp(xp, x):
    """``log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))``."""
    e = xp.abs(x)
    xp.negative(e, out=e)
    xp.exp(e, out=e)
    xp.log1p(e, out=e)
    e += xp.maximum(x, 0)
    return e


def gelu_xp(xp, x, approximate):
    if x.ndim:
        y = kernels.gelu_forward(x, approximate)
        if y is not None:
            return y
    if approximate == "tanh" and cuda.is_cupy(x):
        y = cuda.gelu_tanh(x)
        if y is not None:
            return y
    if approximate == "tanh":
        t = x * x
        t *= GELU_C
        t += 1.0
        t *= x
        t *= GELU_K
        xp.tanh(t, out=t)
        t += 1.0
        t *= x
        t *= 0.5
        return t
    out = _special.erfc(xp, x * -SQRT1_2)  # x * Phi(x), accurate in the left tail
    out *= x
    out *= 0.5
    return out


# -- relu: the gradient passes where the output is positive -------------------------------------
@defop("relu_backward", saves_inputs=(1,))
@kernel
def _relu_backward(xp, g, y):
    dx = kernels.relu_backward(g, y)
    if dx is not None:
        return dx
    return xp.where(y <= 0, xp.zeros((), dtype=g.dtype), g)


@_relu_backward.defgrad
def _(ctx, gg):  # linear in g; the mask is piecewise constant in y
    _, y = ctx.inputs
    return (relu_backward(gg, y) if ctx.needs_input_grad[0] else None), None


@_relu_backward.defonnx
def _(g, dy, y):
    return g.op("Where", g.op("LessOrEqual", y, g.scalar(0.0, y)), g.scalar(0.0, dy), dy)


def relu_backward(grad_output: Tensor, output: Tensor) -> Tensor:
    """``grad_output`` where ``output > 0`` (or NaN), else 0: the gradient of ``relu`` from
    its output, in one pass (PyTorch's ``threshold_backward(grad, output, 0)``).

    Example:
        >>> relu_backward(ember.ones(2), ember.tensor([0.0, 3.0])).tolist()
        [0.0, 1.0]
    """
    return _relu_backward(grad_output, output)


# -- sigmoid and tanh: the derivative is a function of the output ----------------------------
@defop("sigmoid_backward", onnx=None)
@kernel
def _sigmoid_backward(xp, g, y):
    dx = kernels.sigmoid_backward(g, y)
    if dx is not None:
        return dx
    t = 1.0 - y
    t *= y
    t *= g
    return t


@_sigmoid_backward.defgrad
def _(ctx, gg):
    g, y = ctx.inputs
    need_g, need_y = ctx.needs_input_grad
    dg = sigmoid_backward(gg, y) if need_g else None
    dy = mul(mul(gg, g), sub(1.0, mul(y, 2.0))) if need_y else None
    return dg, dy


@_sigmoid_backward.defonnx
def _(g, dy, y):
    return g.op("Mul", g.op("Mul", dy, y), g.op("Sub", g.scalar(1.0, y), y))


def sigmoid_backward(grad_output: Tensor, output: Tensor) -> Tensor:
    """``grad_output * output * (1 - output)``: the gradient of ``sigmoid`` from its output.

    Example:
        >>> sigmoid_backward(ember.ones(1), ember.tensor([0.5])).tolist()
        [0.25]
    """
    return _sigmoid_backward(grad_output, output)


@defop("tanh_backward", onnx=None)
@kernel
def _tanh_backward(xp, g, y):
    dx = kernels.tanh_backward(g, y)
    if dx is not None:
        return dx
    t = y * y
    xp.subtract(1.0, t, out=t)
    t *= g
    return t


@_tanh_backward.defgrad
def _(ctx, gg):
    g, y = ctx.inputs
    need_g, need_y = ctx.needs_input_grad
    dg = tanh_backward(gg, y) if need_g else None
    dy = mul(mul(gg, g), mul(y, -2.0)) if need_y else None
    return dg, dy


@_tanh_backward.defonnx
def _(g, dy, y):
    return g.op("Mul", dy, g.op("Sub", g.scalar(1.0, y), g.op("Mul", y, y)))


def tanh_backward(grad_output: Tensor, output: Tensor) -> Tensor:
    """``grad_output * (1 - output^2)``: the gradient of ``tanh`` from its output.

    Example:
        >>> tanh_backward(ember.ones(1), ember.tensor([0.5])).tolist()
        [0.75]
    """
    return _tanh_backward(grad_output, output)


# -- silu ------------------------------------------------------------------------------------
@defop("silu_backward", onnx=None)
@kernel
def _silu_backward(xp, g, x):
    dx = kernels.silu_backward(g, x)
    if dx is not None:
        return dx
    s = sigmoid_xp(xp, x)  # s * (1 + x * (1 - s))
    t = 1.0 - s
    t *= x
    t += 1.0
    t *= s
    t *= g
    return t


@_silu_backward.defgrad
def _(ctx, gg):
    from .activation import sigmoid

    g, x = ctx.inputs
    need_g, need_x = ctx.needs_input_grad
    dg = silu_backward(gg, x) if need_g else None
    dx = None
    if need_x:  # silu'' = s (1 - s) (2 + x (1 - 2 s))
        s = sigmoid(x)
        second = mul(mul(s, sub(1.0, s)), add(mul(x, sub(1.0, mul(s, 2.0))), 2.0))
        dx = mul(mul(gg, g), second)
    return dg, dx


@_silu_backward.defonnx
def _(g, dy, x):
    s = g.op("Sigmoid", x)
    t = g.op("Add", g.op("Mul", g.op("Sub", g.scalar(1.0, x), s), x), 1.0)
    return g.op("Mul", dy, g.op("Mul", s, t))


def silu_backward(grad_output: Tensor, input: Tensor) -> Tensor:
    """``grad_output * silu'(input)`` with ``silu'(x) = s (1 + x (1 - s))``, ``s = sigmoid(x)``.

    Example:
        >>> silu_backward(ember.ones(1), ember.zeros(1)).tolist()
        [0.5]
    """
    return _silu_backward(grad_output, input)


# -- gelu ------------------------------------------------------------------------------------
@defop("gelu_backward", onnx=None)
@kernel
def _gelu_backward(xp, g, x, approximate):
    dx = kernels.gelu_backward(g, x, approximate)
    if dx is not None:
        return dx
    if approximate == "tanh" and cuda.is_cupy(x):
        dx = cuda.gelu_tanh_backward(g, x)
        if dx is not None:
            return dx
    if approximate == "tanh":
        x2 = x * x
        t = x2 * GELU_C
        t += 1.0
        t *= x
        t *= GELU_K
        xp.tanh(t, out=t)  # t = tanh(K (x + C x^3))
        x2 *= 3.0 * GELU_C
        x2 += 1.0
        x2 *= GELU_K  # u' = K (1 + 3 C x^2)
        right = t * t
        xp.subtract(1.0, right, out=right)
        right *= x
        right *= x2
        t += 1.0
        t += right
        t *= 0.5
        t *= g
        return t
    cdf = _special.erfc(xp, x * -SQRT1_2)  # Phi(x) + x phi(x)
    cdf *= 0.5
    pdf = x * x
    pdf *= -0.5
    xp.exp(pdf, out=pdf)
    pdf *= INV_SQRT_2PI
    pdf *= x
    pdf += cdf
    pdf *= g
    return pdf


@_gelu_backward.defgrad
def _(ctx, gg):
    g, x = ctx.inputs
    need_g, need_x = ctx.needs_input_grad
    approximate = ctx.attrs["approximate"]
    dg = gelu_backward(gg, x, approximate) if need_g else None
    dx = None
    if need_x:
        x2 = mul(x, x)
        if approximate == "tanh":  # (1 - t^2) (u' - x t u'^2 + x u'' / 2), u'' = 6 K C x
            from .activation import tanh

            t = tanh(mul(add(x, mul(mul(x2, x), GELU_C)), GELU_K))
            du = mul(add(mul(x2, 3.0 * GELU_C), 1.0), GELU_K)
            inner = sub(add(du, mul(x2, 3.0 * GELU_K * GELU_C)), mul(mul(x, t), mul(du, du)))
            second = mul(sub(1.0, mul(t, t)), inner)
        else:  # phi(x) (2 - x^2)
            second = mul(mul(exp(neg(mul(x2, 0.5))), INV_SQRT_2PI), sub(2.0, x2))
        dx = mul(mul(gg, g), second)
    return dg, dx


@_gelu_backward.defonnx
def _(g, dy, x, approximate):
    x2 = g.op("Mul", x, x)
    if approximate == "tanh":  # 0.5 (1 + t) + 0.5 x (1 - t^2) K (1 + 3 C x^2)
        u = g.op("Mul", g.op("Add", x, g.op("Mul", g.op("Mul", x2, x), GELU_C)), GELU_K)
        t = g.op("Tanh", u)
        du = g.op("Mul", g.op("Add", g.op("Mul", x2, 3.0 * GELU_C), 1.0), GELU_K)
        right = g.op(
            "Mul", g.op("Mul", g.op("Sub", 1.0, g.op("Mul", t, t)), du), g.op("Mul", x, 0.5)
        )
        d = g.op("Add", g.op("Mul", g.op("Add", t, 1.0), 0.5), right)
    else:  # Phi(x) + x phi(x)
        cdf = g.op("Mul", g.op("Add", g.erf(g.op("Mul", x, math.sqrt(0.5))), 1.0), 0.5)
        pdf = g.op("Mul", g.op("Exp", g.op("Mul", x2, -0.5)), 1.0 / math.sqrt(2.0 * math.pi))
        d = g.op("Add", cdf, g.op("Mul", x, pdf))
    return g.op("Mul", dy, d)


def gelu_backward(grad_output: Tensor, input: Tensor, approximate: str = "none") -> Tensor:
    """``grad_output * gelu'(input)``; ``gelu'(x) = Phi(x) + x phi(x)`` (or the derivative of
    the tanh approximation).

    Example:
        >>> gelu_backward(ember.ones(1), ember.zeros(1)).tolist()
        [0.5]
    """
    return _gelu_backward(grad_output, input, approximate=approximate)

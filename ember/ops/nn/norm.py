"""Normalization: ``batch_norm``, ``group_norm``, ``instance_norm``, ``rms_norm`` and
``normalize``, and the primitives they share with ``layer_norm`` (:mod:`.layer_norm`).

The first four share two primitives:

* ``norm_moments(x, axes)`` gives the mean and the biased variance over ``axes`` (stacked,
  kept dims; not differentiable: it feeds ``standardize`` and the running statistics);
* ``standardize(x, moments, axes, eps)`` gives ``(x - mean) / sqrt(var + eps)``. Its backward
  is the full derivative (through the mean and variance too), one op
  (``standardize_backward``) that reads the saved statistics and output, so nothing is
  recomputed; that op is itself differentiable, so second derivatives work.

The three primitives' forwards run the C kernels (:mod:`ember.kernels.norm`) when they can
serve the call, else their NumPy path (the reference): layer, group and instance norm reduce
trailing dims (``standardize_backward`` then uses layer norm's backward kernel), batch norm
dims 0 and 2, 3, ... (the per-channel kernels).

``layer_norm`` itself is one fused op of its own (:mod:`.layer_norm`).

For batch, group and instance norm the per-channel scale and shift are ordinary
``mul``/``add``. ``batch_norm`` updates the
running statistics in place (``running_average``, through ``apply_inplace`` so the compiler
sees the write), with the unbiased variance, exactly as PyTorch.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.layer_norm(ember.tensor([[1.0, 3.0]]), (2,), eps=0.0).tolist()
    [[-1.0, 1.0]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ... import kernels
from ...errors import ShapeError
from ...tensor import Tensor
from ..elementwise import add, div, gt, mul, neg, pow, sub, where
from ..inplace import apply_inplace
from ..reduce import mean as _mean
from ..reduce import sum as _sum
from ..registry import defop
from ..shape import reshape

__all__ = [
    "batch_norm",
    "group_norm",
    "instance_norm",
    "rms_norm",
    "normalize",
]


# -- primitives ----------------------------------------------------------------------------
def _work(x: Any) -> Any:
    return x.astype(np.float32) if x.dtype == np.float16 else x


@defop("norm_moments", onnx=None)
def _moments(xp, x, axes):
    out = kernels.norm_moments(x, axes)
    if out is not None:
        return out
    xw = _work(x)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty groups give NaN
        mean = xw.mean(axis=axes, keepdims=True)
        d = xw - mean
        d *= d
        var = d.mean(axis=axes, keepdims=True)
    return xp.stack([mean, var])


@defop("standardize", saves_output=True, onnx=None)
def _standardize(xp, x, moments, axes, eps):
    out = kernels.norm_standardize(x, moments, axes, eps)
    if out is not None:
        return out
    rstd = 1 / xp.sqrt(moments[1] + eps)
    out = _work(x) - moments[0]
    out *= rstd
    return out.astype(x.dtype, copy=False)


@_standardize.defgrad
def _(ctx, g):
    x, moments = ctx.inputs
    a = ctx.attrs
    return _standardize_backward(x, ctx.output, moments, g, **a), None


@defop("standardize_backward", saves_output=True)
def _standardize_backward(xp, x, xhat, moments, g, axes, eps):
    rstd = 1 / xp.sqrt(moments[1] + eps)
    k = len(axes)
    if k and tuple(axes) == tuple(range(xhat.ndim - k, xhat.ndim)):  # layer/instance/group
        out = kernels.layer_norm_backward(
            g, xhat, None, rstd, k, None, weight_grad=False, bias_grad=False, xhat_given=True
        )
        if out is not None:
            return out[0]
    else:  # batch norm: statistics per channel, over the batch and spatial dims
        out = kernels.norm_standardize_backward(g, xhat, moments, axes, eps)
        if out is not None:
            return out
    gw, xw = _work(g), _work(xhat)
    tmp = gw * xw
    c = tmp.mean(axis=axes, keepdims=True)
    xp.multiply(xw, c, out=tmp)  # xhat * mean(g * xhat), in the same buffer
    out = gw - gw.mean(axis=axes, keepdims=True)
    out -= tmp
    out *= rstd
    return out.astype(g.dtype, copy=False)


@_moments.defonnx
def _(g, x, axes):
    xw = g.cast(x, g.out.dtype)
    mean = g.reduce("ReduceMean", xw, axes, True)
    d = g.op("Sub", xw, mean)
    var = g.reduce("ReduceMean", g.op("Mul", d, d), axes, True)
    return g.op("Concat", g.unsqueeze(mean, [0]), g.unsqueeze(var, [0]), axis=0)


def _moment(g, moments, row):
    return g.op("Gather", moments, g.scalar(row, np.int64), axis=0)


def _rstd_onnx(g, moments, eps):
    return g.op("Reciprocal", g.op("Sqrt", g.op("Add", _moment(g, moments, 1), eps)))


@_standardize.defonnx
def _(g, x, moments, axes, eps):
    out = g.op("Sub", g.cast(x, moments.dtype), _moment(g, moments, 0))
    return g.cast(g.op("Mul", out, _rstd_onnx(g, moments, eps)), x.dtype)


@_standardize_backward.defonnx
def _(g, x, xhat, moments, dy, axes, eps):
    gw, xw = g.cast(dy, moments.dtype), g.cast(xhat, moments.dtype)
    c = g.reduce("ReduceMean", g.op("Mul", gw, xw), axes, True)
    out = g.op("Sub", gw, g.reduce("ReduceMean", gw, axes, True))
    out = g.op("Sub", out, g.op("Mul", xw, c))
    return g.cast(g.op("Mul", out, _rstd_onnx(g, moments, eps)), dy.dtype)


def _rstd(x: Tensor, axes: tuple, eps: float) -> Tensor:
    """``1 / sqrt(var(x) + eps)`` in ember ops (differentiable)."""
    d = sub(x, _mean(x, axes, keepdim=True))
    return pow(add(_mean(mul(d, d), axes, keepdim=True), eps), -0.5)


def _count(shape: tuple, axes: tuple) -> int:
    return math.prod(shape[a] for a in axes)


@_standardize_backward.defgrad
def _(ctx, u):
    # out = rstd * (g - mean(g) - xhat * mean(g * xhat)), with rstd = rstd(x); the map
    # g -> out is symmetric, so d/dg is the op itself
    x, xhat, moments, g = ctx.inputs
    axes, eps = ctx.attrs["axes"], ctx.attrs["eps"]
    need_x, need_xhat, _, need_g = ctx.needs_input_grad
    gx = gxhat = gg = None
    if need_g:
        gg = _standardize_backward(x, xhat, moments, u, axes=axes, eps=eps)
    if need_x or need_xhat:
        rstd = _rstd(x, axes, eps)
    if need_xhat:
        m_gx = _mean(mul(g, xhat), axes, keepdim=True)
        m_ux = _mean(mul(u, xhat), axes, keepdim=True)
        gxhat = neg(mul(rstd, add(mul(u, m_gx), mul(g, m_ux))))
    if need_x:  # through rstd: d rstd / dx = -rstd^2 * xhat / n
        n = _count(tuple(x.shape), axes)
        s = _sum(mul(u, ctx.output), axes, keepdim=True)
        gx = mul(xhat, mul(rstd, s) * (-1.0 / max(n, 1)))
    return gx, gxhat, None, gg


# -- layer norm as one op ------------------------------------------------------------------
@defop("running_average", onnx=None)
def _running_average(xp, running, moments, row, momentum, unbias):
    new = moments[row]
    if new.ndim > 1:  # instance norm: average the per-sample statistics over the batch
        new = new.mean(axis=0)
    new = new.reshape(running.shape)
    out = (1 - momentum) * running + (momentum * unbias) * new
    return out.astype(running.dtype, copy=False)


@_running_average.defonnx
def _(g, running, moments, row, momentum, unbias):
    new = _moment(g, moments, row)
    if len(moments.shape) > 2:  # instance norm: average the per-sample statistics
        new = g.reduce("ReduceMean", new, (0,), False)
    new = g.cast(g.op("Reshape", new, g.dims(running.shape)), running.dtype)
    old = g.op("Mul", running, 1.0 - momentum)
    return g.op("Add", old, g.op("Mul", new, momentum * unbias))


def _normalize(x: Tensor, axes: tuple, eps: float) -> tuple[Tensor, Tensor]:
    moments = _moments(x, axes=axes)
    return _standardize(x, moments, axes=axes, eps=float(eps)), moments


def _update(running: Any, moments: Tensor, row: int, momentum: float, unbias: float) -> None:
    if running is None:
        return
    apply_inplace(
        running,
        "batch_norm",
        lambda r, m: _running_average(r, m, row=row, momentum=momentum, unbias=unbias),
        moments.detach(),
    )


def _channel_affine(
    name: str, y: Tensor, weight: Any, bias: Any, n_channels: int, ndim: int
) -> Tensor:
    shape = (1, n_channels) + (1,) * (ndim - 2)
    for what, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (n_channels,):
            raise ShapeError(
                name,
                f"{what} of shape {tuple(t.shape)} does not match the {n_channels} channels; "
                f"expected ({n_channels},)",
            )
    if weight is not None:
        y = mul(y, reshape(weight, shape))
    if bias is not None:
        y = add(y, reshape(bias, shape))
    return y


def _check_channels(name: str, input: Tensor) -> int:
    if input.ndim < 2:
        raise ShapeError(name, f"expected an input of shape (N, C, ...), got {tuple(input.shape)}")
    return input.shape[1]


# -- public functions ----------------------------------------------------------------------
def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel (dim 1) over the batch and spatial dims.

    In training, batch statistics are used and the running ones (when given) are updated in
    place: ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased
    variance. In evaluation, the running statistics are used.

    Example:
        >>> rm, rv = ember.zeros(3), ember.ones(3)
        >>> y = F.batch_norm(ember.randn(8, 3), rm, rv, training=True)
        >>> bool((rm != 0).all())
        True
    """
    n_channels = _check_channels("batch_norm", input)
    ndim = input.ndim
    if training:
        count = input.numel() // max(n_channels, 1)
        if count <= 1:
            raise ValueError(
                "batch_norm: expected more than 1 value per channel when training, got input "
                f"of shape {tuple(input.shape)}"
            )
        axes = (0,) + tuple(range(2, ndim))
        y, moments = _normalize(input, axes, eps)
        _update(running_mean, moments, 0, momentum, 1.0)
        _update(running_var, moments, 1, momentum, count / (count - 1))
        return _channel_affine("batch_norm", y, weight, bias, n_channels, ndim)
    return _eval_norm("batch_norm", input, running_mean, running_var, weight, bias, eps)


def _eval_norm(
    name: str, input: Tensor, rm: Any, rv: Any, weight: Any, bias: Any, eps: float
) -> Tensor:
    """``x * scale + shift`` with per-channel constants from the running statistics."""
    if rm is None or rv is None:
        raise RuntimeError(
            f"{name}: running_mean and running_var must be defined in evaluation mode"
        )
    n_channels = input.shape[1]
    for what, t in (("running_mean", rm), ("running_var", rv)):
        if tuple(t.shape) != (n_channels,):
            raise ShapeError(
                name,
                f"{what} of shape {tuple(t.shape)} does not match the {n_channels} channels of "
                f"input of shape {tuple(input.shape)}",
            )
    scale = pow(add(rv, eps), -0.5)
    if weight is not None:
        scale = mul(scale, weight)
    shift = neg(mul(rm, scale))
    if bias is not None:
        shift = add(shift, bias)
    return _channel_affine(name, input, scale, shift, n_channels, input.ndim)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel of each sample over its spatial dims (``(N, C, ...)``);
    running statistics (when given) are updated with the batch average of the per-sample
    ones.

    Example:
        >>> F.instance_norm(ember.randn(2, 3, 5)).shape
        (2, 3, 5)
    """
    n_channels = _check_channels("instance_norm", input)
    if not use_input_stats:
        return _eval_norm("instance_norm", input, running_mean, running_var, weight, bias, eps)
    count = _count(tuple(input.shape), tuple(range(2, input.ndim)))
    if count <= 1:
        raise ValueError(
            "instance_norm: expected more than 1 spatial element when training, got input of "
            f"shape {tuple(input.shape)}"
        )
    y, moments = _normalize(input, tuple(range(2, input.ndim)), eps)
    _update(running_mean, moments, 0, momentum, 1.0)
    _update(running_var, moments, 1, momentum, count / (count - 1))
    return _channel_affine("instance_norm", y, weight, bias, n_channels, input.ndim)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Split the channels (dim 1) into ``num_groups`` groups and normalize each group of each
    sample; then a per-channel scale and shift.

    Example:
        >>> F.group_norm(ember.randn(2, 4, 3), 2).shape
        (2, 4, 3)
    """
    n_channels = _check_channels("group_norm", input)
    if num_groups <= 0 or n_channels % num_groups:
        raise ShapeError(
            "group_norm",
            f"expected the number of channels of input of shape {tuple(input.shape)} to be "
            f"divisible by num_groups={num_groups}",
        )
    shape = tuple(input.shape)
    per_group = (n_channels // num_groups) * _count(shape, tuple(range(2, len(shape))))
    x = reshape(input, (shape[0], num_groups, per_group))
    y, _ = _normalize(x, (2,), eps)
    y = reshape(y, shape)
    return _channel_affine("group_norm", y, weight, bias, n_channels, len(shape))


def rms_norm(
    input: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    eps: float | None = None,
) -> Tensor:
    """``x / sqrt(mean(x**2) + eps)`` over the trailing ``normalized_shape`` dims, times
    ``weight``; ``eps`` defaults to the dtype's machine epsilon.

    Example:
        >>> F.rms_norm(ember.tensor([[3.0, 4.0]]), (2,), eps=0.0).tolist()
        [[0.8485281467437744, 1.1313709020614624]]
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    shape = tuple(input.shape)
    k = len(ns)
    if k == 0 or k > len(shape) or shape[len(shape) - k :] != ns:
        raise ShapeError(
            "rms_norm", f"input of shape {shape} does not end with normalized_shape {ns}"
        )
    if eps is None:
        eps = float(np.finfo(input._data.dtype).eps)
    axes = tuple(range(len(shape) - k, len(shape)))
    y = mul(input, pow(add(_mean(mul(input, input), axes, keepdim=True), eps), -0.5))
    return y if weight is None else mul(y, weight)


def normalize(
    input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None
) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``.

    Example:
        >>> F.normalize(ember.tensor([[3.0, 4.0]]), dim=1).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    if out is not None:
        raise TypeError("normalize: out= is not supported")
    dims = (dim % max(input.ndim, 1),) if input.ndim else None
    if p == 2:
        sq = _sum(mul(input, input), dims, keepdim=True)
        floor = eps * eps
        return div(input, pow(where(gt(sq, floor), sq, floor), 0.5))
    a = where(gt(input, 0), input, neg(input))
    s = _sum(pow(a, float(p)), dims, keepdim=True)
    floor = eps**p
    return div(input, pow(where(gt(s, floor), s, floor), 1.0 / p))

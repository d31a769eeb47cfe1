"""Stochastic gradient descent with momentum, dampening, weight decay and Nesterov momentum.

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, -2.0], requires_grad=True)
    >>> opt = ember.optim.SGD([w], lr=0.1, momentum=0.9)
    >>> (w * w).sum().backward(); opt.step()
    >>> w.detach().tolist()
    [0.800000011920929, -1.600000023841858]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import cuda_kernels
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's update rule and arguments).

    With ``g`` the gradient (negated when ``maximize``) plus ``weight_decay * p``:
    ``buf = momentum * buf + (1 - dampening) * g`` (``buf = g`` on the first step), then
    ``p -= lr * (g + momentum * buf)`` with ``nesterov`` or ``p -= lr * buf`` without;
    with ``momentum=0``, ``p -= lr * g``.

    Example:
        >>> w = ember.zeros(3, requires_grad=True)
        >>> opt = ember.optim.SGD([w], lr=0.01, momentum=0.9, nesterov=True)
        >>> opt.defaults["nesterov"]
        True
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        Example:
            >>> w = ember.ones(1, requires_grad=True); opt = ember.optim.SGD([w], lr=0.5)
            >>> (w * 3).sum().backward(); opt.step(); w.detach().tolist()
            [-0.5]
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            scalars = {
                "lr": group["lr"],
                "momentum": momentum,
                "dampening": group["dampening"],
                "weight_decay": group["weight_decay"],
                "nesterov": group["nesterov"],
                "maximize": group["maximize"],
                "first": False,
            }
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = None
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    scalars["first"] = buf is None
                    if buf is None:  # becomes a copy of the first (decayed) gradient
                        buf = state["momentum_buffer"] = self._zeros_like(p)
                    buf = buf._data
                xp = p.device.xp
                if xp is np:
                    self._apply(self._update, [p._data, p.grad._data, buf], xp=xp, **scalars)
                else:
                    cuda_kernels.sgd(p._data, p.grad._data, buf, **scalars)
                p._vc[0] += 1
        return loss

    def _update(
        self,
        param: Any,
        grad: Any,
        buf: Any,
        *,
        xp: Any,
        lr: float,
        momentum: float,
        dampening: float,
        weight_decay: float,
        nesterov: bool,
        maximize: bool,
        first: bool,
    ) -> None:
        """One SGD update of one parameter's arrays, in place (same op order as PyTorch)."""
        tmp = self._buffer(param, 0)
        if maximize or weight_decay != 0:
            d = self._buffer(param, 1)
            if weight_decay != 0:  # grad.add(param, alpha=weight_decay), negated grad first
                xp.multiply(param, weight_decay, out=d)
                (xp.subtract if maximize else xp.add)(d, grad, out=d)
            else:
                xp.negative(grad, out=d)
            grad = d
        if buf is not None:
            if first:
                xp.copyto(buf, grad)
            else:  # buf.mul_(momentum).add_(grad, alpha=1 - dampening)
                buf *= momentum
                if dampening == 0:  # alpha == 1: adding grad itself is the same, exactly
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

"""Adam and AdamW (decoupled weight decay), with AMSGrad and ``maximize``.

The update runs in place on each parameter's array with ``out=`` ufuncs into one reused
scratch buffer (no per-step allocations); on CUDA it is a single fused kernel per parameter.

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = ember.optim.Adam([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> [round(v, 4) for v in w.detach().tolist()]
    [0.9, -0.9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import cuda_kernels
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam (Kingma & Ba), PyTorch's update rule and arguments.

    With ``g`` the gradient (negated when ``maximize``; plus ``weight_decay * p`` unless
    ``decoupled_weight_decay``, which instead scales ``p`` by ``1 - lr * weight_decay``):
    ``m = lerp(m, g, 1 - beta1)``, ``v = beta2 * v + (1 - beta2) * g * g``,
    ``p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``; AMSGrad uses the
    running maximum of ``v``.

    Example:
        >>> w = ember.zeros(3, requires_grad=True)
        >>> opt = ember.optim.Adam([w], lr=1e-3, betas=(0.9, 0.99), amsgrad=True)
        >>> opt.param_groups[0]["betas"]
        (0.9, 0.99)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        defaults = {
            "lr": lr,
            "betas": (float(betas[0]), float(betas[1])),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        Example:
            >>> w = ember.ones(2, requires_grad=True); opt = ember.optim.Adam([w], lr=0.5)
            >>> (w * 3).sum().backward(); opt.step(); w.detach().tolist()
            [0.5, 0.5]
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            wd = group["weight_decay"]
            amsgrad = group["amsgrad"]
            maximize = group["maximize"]
            decoupled = group.get("decoupled_weight_decay", False)
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = self._new_step()
                    state["exp_avg"] = self._zeros_like(p)
                    state["exp_avg_sq"] = self._zeros_like(p)
                    if amsgrad:
                        state["max_exp_avg_sq"] = self._zeros_like(p)
                step_t = state["step"]._data
                step_t += 1
                step = float(step_t)
                vmax = state["max_exp_avg_sq"]._data if amsgrad else None
                arrays = [
                    p._data,
                    p.grad._data,
                    state["exp_avg"]._data,
                    state["exp_avg_sq"]._data,
                    vmax,
                ]
                kw = {
                    "lr": lr,
                    "beta1": beta1,
                    "beta2": beta2,
                    "eps": eps,
                    "weight_decay": wd,
                    "decoupled": decoupled,
                    "maximize": maximize,
                    "step": step,
                }
                xp = p.device.xp
                if xp is np:
                    self._apply(self._update, arrays, xp=xp, **kw)
                else:
                    cuda_kernels.adam(*arrays, **kw)
                p._vc[0] += 1
        return loss

    def _update(
        self,
        param: Any,
        grad: Any,
        exp_avg: Any,
        exp_avg_sq: Any,
        max_exp_avg_sq: Any,
        *,
        xp: Any,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        weight_decay: float,
        decoupled: bool,
        maximize: bool,
        step: float,
    ) -> None:
        """One Adam update of one parameter's arrays, in place (same op order as PyTorch)."""
        tmp = self._buffer(param, 0)
        if weight_decay != 0 and decoupled:
            param *= 1 - lr * weight_decay
        if maximize or (weight_decay != 0 and not decoupled):
            d = self._buffer(param, 1)
            if weight_decay != 0 and not decoupled:
                xp.multiply(param, weight_decay, out=d)
                (xp.subtract if maximize else xp.add)(d, grad, out=d)
            else:
                xp.negative(grad, out=d)
            grad = d
        # exp_avg.lerp_(grad, 1 - beta1), with lerp's two formulas as in PyTorch
        weight = 1 - beta1
        xp.subtract(grad, exp_avg, out=tmp)
        if weight < 0.5:
            tmp *= weight
            exp_avg += tmp
        else:
            tmp *= 1 - float(param.dtype.type(weight))
            xp.subtract(grad, tmp, out=exp_avg)
        # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        exp_avg_sq *= beta2
        xp.multiply(grad, 1 - beta2, out=tmp)
        tmp *= grad
        exp_avg_sq += tmp
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        step_size = lr / bias_correction1
        if max_exp_avg_sq is not None:
            xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            xp.sqrt(max_exp_avg_sq, out=tmp)
        else:
            xp.sqrt(exp_avg_sq, out=tmp)
        tmp /= bias_correction2_sqrt
        tmp += eps
        # param.addcdiv_(exp_avg, denom, value=-step_size)
        xp.divide(exp_avg, tmp, out=tmp)
        tmp *= -step_size
        param += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay``
    before the Adam step; ``weight_decay`` defaults to ``1e-2``.

    Example:
        >>> w = ember.ones(2, requires_grad=True); opt = ember.optim.AdamW([w], lr=0.1)
        >>> opt.defaults["weight_decay"], opt.defaults["decoupled_weight_decay"]
        (0.01, True)
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=True,
        )

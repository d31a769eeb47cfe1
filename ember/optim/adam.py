"""Adam and AdamW (decoupled weight decay), with AMSGrad and ``maximize``.

Eagerly a group's update is one fused C kernel call (``ember.kernels.adam_step``); in an
``ember.compile`` trace it is one ``adam_group_update`` node (``ember.ops.optim_group``),
which runs the same kernel. Otherwise each parameter's update is one ``adam_update`` op
(``ember.ops.optim``): in place, with ``out=`` ufuncs into reused scratch buffers on the
CPU, one fused kernel on CUDA.

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

from .. import kernels
from ..ops.optim import adam_update
from ..ops.optim_group import adam_group_update
from . import cuda_kernels, fused
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]

_OPTIONS = ("betas", "eps", "weight_decay", "amsgrad", "maximize", "decoupled_weight_decay")


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

    _kernel = "adam_multi"  # its fused C step (ember.kernels.optim)

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
            beta1, beta2 = group["betas"]
            amsgrad = group["amsgrad"]
            opts = {
                "beta1": beta1,
                "beta2": beta2,
                "eps": group["eps"],
                "weight_decay": group["weight_decay"],
                "decoupled": group.get("decoupled_weight_decay", False),
                "maximize": group["maximize"],
            }
            if self._fused_step(group, amsgrad, opts) or self._grouped_step(group, amsgrad, opts):
                continue
            names = _state_names(amsgrad)
            for p, grad, lr, checks in self._params_with_grad(group, _OPTIONS):
                state = self._init_state(p, amsgrad)
                checks.extend((state, k, state[k]) for k in names)
                step = self._next_step(state["step"], p.device)
                vmax = state["max_exp_avg_sq"] if amsgrad else None
                adam_update(p, grad, state["exp_avg"], state["exp_avg_sq"], vmax, step, lr, **opts)
        return loss

    def _init_state(self, p: Any, amsgrad: bool) -> dict[str, Any]:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = self._new_step()
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
            if amsgrad:
                state["max_exp_avg_sq"] = self._zeros_like(p)
        return state

    def _fused_step(self, group: dict[str, Any], amsgrad: bool, opts: dict[str, Any]) -> bool:
        """The whole group in one C kernel call, or one CUDA launch on a GPU (eager only);
        False: use the per-parameter ops (nothing was changed but the state's zero
        initialization)."""
        items = fused.gather(group)
        if items is None:
            return False
        states = [self._init_state(p, amsgrad) for p, _ in items]
        args = (
            [p._data for p, _ in items],
            [g for _, g in items],
            [s["exp_avg"]._data for s in states],
            [s["exp_avg_sq"]._data for s in states],
            [s["max_exp_avg_sq"]._data for s in states] if amsgrad else None,
            [float(s["step"]._data + 1) for s in states],  # float32 count, as _next_step
        )
        lr = float(group["lr"])
        # the C kernel for NumPy arrays, one CUDA launch for CuPy arrays (as a compiled step)
        ok = kernels.adam_step(*args, lr=lr, **opts) or cuda_kernels.adam_multi(
            *args, lr=lr, **opts
        )
        if not ok:
            return False
        for s in states:
            s["step"]._data += 1
        fused.done(items)
        return True

    def _grouped_step(self, group: dict[str, Any], amsgrad: bool, opts: dict[str, Any]) -> bool:
        """While tracing: the whole group as one ``adam_group_update`` node; False: use the
        per-parameter ops (eagerly, or a group of one parameter)."""
        batch = self._group_batch(group)
        if batch is None:
            return False
        items, lr, checks = batch
        names = _state_names(amsgrad)
        states = [self._init_state(p, amsgrad) for p, _ in items]
        for s in states:
            checks.extend((s, k, s[k]) for k in names)
        steps = [self._next_step(s["step"], p.device) for (p, _), s in zip(items, states)]
        if items:
            adam_group_update(
                *(p for p, _ in items),
                *(g for _, g in items),
                *(s[k] for k in names[1:] for s in states),
                *steps,
                lr,
                n=len(items),
                amsgrad=amsgrad,
                **opts,
            )
        self._group_done(group, items, _OPTIONS, checks)
        return True


def _state_names(amsgrad: bool) -> tuple[str, ...]:
    return ("step", "exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())


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

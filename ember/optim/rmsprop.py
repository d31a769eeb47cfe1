"""RMSprop, with momentum and the centered variant.

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = ember.optim.RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward(); opt.step()
    >>> [round(v, 3) for v in w.detach().tolist()]
    [0.9, -0.9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .. import kernels
from ..ops.optim import rmsprop_update
from ..ops.optim_group import rmsprop_group_update
from . import fused
from .optimizer import Optimizer

__all__ = ["RMSprop"]

_OPTIONS = ("alpha", "eps", "centered", "weight_decay", "momentum", "maximize")


class RMSprop(Optimizer):
    """RMSprop (Hinton), PyTorch's update rule and arguments.

    With ``g`` the gradient (negated when ``maximize``) plus ``weight_decay * p``:
    ``sq = alpha * sq + (1 - alpha) * g * g``; ``avg = sqrt(sq) + eps`` (``centered``:
    ``sqrt(sq - ga * ga) + eps`` with ``ga = lerp(ga, g, 1 - alpha)``); then
    ``buf = momentum * buf + g / avg; p -= lr * buf`` with momentum, else
    ``p -= lr * g / avg``.

    Example:
        >>> w = ember.zeros(3, requires_grad=True)
        >>> ember.optim.RMSprop([w], lr=0.01, momentum=0.9, centered=True).defaults["alpha"]
        0.99
    """

    _kernel = "rmsprop_multi"  # its fused C step (ember.kernels.optim)

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= momentum:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= alpha:
            raise ValueError(f"Invalid alpha value: {alpha}")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        super().__init__(params, defaults)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        Example:
            >>> w = ember.ones(1, requires_grad=True); opt = ember.optim.RMSprop([w])
            >>> (w * 2).sum().backward(); opt.step(); round(w.item(), 4)
            0.9
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            centered = group["centered"]
            opts = {k: group[k] for k in ("alpha", "eps", "weight_decay", "momentum", "maximize")}
            if self._fused_step(group, opts) or self._grouped_step(group, opts):
                continue
            for p, grad, lr, checks in self._params_with_grad(group, _OPTIONS):
                state = self._init_state(p, group)
                checks.extend((state, k, v) for k, v in state.items())
                step = self._next_step(state["step"], p.device)
                buf = state["momentum_buffer"] if momentum > 0 else None
                grad_avg = state["grad_avg"] if centered else None
                rmsprop_update(p, grad, state["square_avg"], grad_avg, buf, step, lr, **opts)
        return loss

    def _init_state(self, p: Any, group: dict[str, Any]) -> dict[str, Any]:
        state = self.state[p]
        if len(state) == 0:
            state["step"] = self._new_step()
            state["square_avg"] = self._zeros_like(p)
            if group["momentum"] > 0:
                state["momentum_buffer"] = self._zeros_like(p)
            if group["centered"]:
                state["grad_avg"] = self._zeros_like(p)
        return state

    def _fused_step(self, group: dict[str, Any], opts: dict[str, Any]) -> bool:
        """The whole group in one C kernel call (eager only); False: use the per-parameter
        ops (nothing was changed but the state's zero initialization)."""
        items = fused.gather(group)
        if items is None:
            return False
        states = [self._init_state(p, group) for p, _ in items]
        ok = kernels.rmsprop_step(
            [p._data for p, _ in items],
            [g for _, g in items],
            [s["square_avg"]._data for s in states],
            [s["grad_avg"]._data for s in states] if group["centered"] else None,
            [s["momentum_buffer"]._data for s in states] if group["momentum"] > 0 else None,
            lr=float(group["lr"]),
            **opts,
        )
        if not ok:
            return False
        for s in states:
            s["step"]._data += 1
        fused.done(items)
        return True

    def _grouped_step(self, group: dict[str, Any], opts: dict[str, Any]) -> bool:
        """While tracing: the whole group as one ``rmsprop_group_update`` node; False: use
        the per-parameter ops (eagerly, or a group of one parameter)."""
        batch = self._group_batch(group)
        if batch is None:
            return False
        items, lr, checks = batch
        states = [self._init_state(p, group) for p, _ in items]
        for s in states:
            checks.extend((s, k, v) for k, v in s.items())
        steps = [self._next_step(s["step"], p.device) for (p, _), s in zip(items, states)]
        names = ["square_avg"]
        if group["centered"]:
            names.append("grad_avg")
        if group["momentum"] > 0:
            names.append("momentum_buffer")
        if items:
            rmsprop_group_update(
                *(p for p, _ in items),
                *(g for _, g in items),
                *(s[k] for k in names for s in states),
                *steps,
                lr,
                n=len(items),
                centered=group["centered"],
                **opts,
            )
        self._group_done(group, items, _OPTIONS, checks)
        return True

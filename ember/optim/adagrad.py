"""Adagrad, with learning-rate decay and an initial accumulator value.

Example:
    >>> import ember
    >>> w = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> opt = ember.optim.Adagrad([w], lr=0.1)
    >>> (w * w).sum().backward(); opt.step()
    >>> [round(v, 4) for v in w.detach().tolist()]
    [0.9, -0.9]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..ops.optim import adagrad_update
from .optimizer import Optimizer

__all__ = ["Adagrad"]

_OPTIONS = ("lr_decay", "eps", "weight_decay", "maximize")


class Adagrad(Optimizer):
    """Adagrad (Duchi et al.), PyTorch's update rule and arguments.

    With ``g`` the gradient (negated when ``maximize``) plus ``weight_decay * p``:
    ``sum += g * g``; ``p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(sum) + eps)``. The
    accumulators start at ``initial_accumulator_value`` and, as in PyTorch, exist from
    construction (so they are in ``state_dict()`` before the first step).

    Example:
        >>> w = ember.zeros(3, requires_grad=True)
        >>> opt = ember.optim.Adagrad([w], initial_accumulator_value=0.1)
        >>> opt.state[w]["sum"].tolist()
        [0.10000000149011612, 0.10000000149011612, 0.10000000149011612]
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= lr_decay:
            raise ValueError(f"Invalid lr_decay value: {lr_decay}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if not 0.0 <= initial_accumulator_value:
            raise ValueError(
                f"Invalid initial_accumulator_value value: {initial_accumulator_value}"
            )
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p: Any, group: dict[str, Any]) -> None:
        state = self.state[p]
        state["step"] = self._new_step()
        state["sum"] = self._zeros_like(p, group["initial_accumulator_value"])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; returns ``closure()``'s loss if given.

        Example:
            >>> w = ember.ones(1, requires_grad=True); opt = ember.optim.Adagrad([w], lr=0.5)
            >>> (w * 2).sum().backward(); opt.step(); round(w.item(), 4)
            0.5
        """
        loss = self._run_closure(closure)
        for group in self.param_groups:
            opts = {k: group[k] for k in _OPTIONS}
            for p, grad, lr, checks in self._params_with_grad(group, _OPTIONS):
                state = self.state[p]
                if len(state) == 0:  # a parameter added with add_param_group
                    self._init_state(p, group)
                checks.extend((state, k, state[k]) for k in ("step", "sum"))
                step = self._next_step(state["step"], p.device)
                adagrad_update(p, grad, state["sum"], step, lr, **opts)
        return loss

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

from .. import kernels
from ..ops.optim import sgd_update
from ..ops.optim_group import sgd_group_update
from . import fused
from .optimizer import Optimizer

__all__ = ["SGD"]

_OPTIONS = ("momentum", "dampening", "weight_decay", "nesterov", "maximize")


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

    _kernel = "sgd_multi"  # its fused C step (ember.kernels.optim)

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
            opts = {k: group[k] for k in _OPTIONS}
            if self._fused_step(group, opts) or self._grouped_step(group, opts):
                continue
            for p, grad, lr, checks in self._params_with_grad(group, _OPTIONS):
                buf, first = None, False
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    first = buf is None
                    checks.append((state, "momentum_buffer", buf))
                    if buf is None:  # becomes a copy of the first (decayed) gradient
                        buf = state["momentum_buffer"] = self._zeros_like(p)
                sgd_update(p, grad, buf, lr, first=first, **opts)
        return loss

    def _fused_step(self, group: dict[str, Any], opts: dict[str, Any]) -> bool:
        """The whole group in one C kernel call (eager only); False (nothing changed): use
        the per-parameter ops."""
        items = fused.gather(group)
        if items is None:
            return False
        bufs = first = None
        if opts["momentum"] != 0:
            bufs = [self.state[p].get("momentum_buffer") for p, _ in items]
            first = [b is None for b in bufs]
            bufs = [self._zeros_like(p) if b is None else b for (p, _), b in zip(items, bufs)]
        ok = kernels.sgd_step(
            [p._data for p, _ in items],
            [g for _, g in items],
            fused.arrays(bufs),
            first,
            lr=float(group["lr"]),
            **opts,
        )
        if not ok:
            return False
        if bufs is not None:  # new buffers are kept only once the update used them
            for (p, _), b in zip(items, bufs):
                self.state[p]["momentum_buffer"] = b
        fused.done(items)
        return True

    def _grouped_step(self, group: dict[str, Any], opts: dict[str, Any]) -> bool:
        """While tracing: the whole group as one ``sgd_group_update`` node; False: use the
        per-parameter ops (eagerly, or a group of one parameter)."""
        batch = self._group_batch(group)
        if batch is None:
            return False
        items, lr, checks = batch
        bufs: list[Any] = []
        first: tuple[bool, ...] | None = None
        if opts["momentum"] != 0:
            flags = []
            for p, _ in items:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                flags.append(buf is None)
                checks.append((state, "momentum_buffer", buf))
                if buf is None:  # becomes a copy of the first (decayed) gradient
                    buf = state["momentum_buffer"] = self._zeros_like(p)
                bufs.append(buf)
            first = tuple(flags)
        if items:
            sgd_group_update(
                *(p for p, _ in items),
                *(g for _, g in items),
                *bufs,
                lr,
                n=len(items),
                first=first,
                **opts,
            )
        self._group_done(group, items, _OPTIONS, checks)
        return True

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

from .optimizer import Optimizer

__all__ = ["RMSprop"]


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
            scalars = {
                "lr": group["lr"],
                "alpha": group["alpha"],
                "eps": group["eps"],
                "weight_decay": group["weight_decay"],
                "momentum": momentum,
                "maximize": group["maximize"],
            }
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = self._new_step()
                    state["square_avg"] = self._zeros_like(p)
                    if momentum > 0:
                        state["momentum_buffer"] = self._zeros_like(p)
                    if centered:
                        state["grad_avg"] = self._zeros_like(p)
                state["step"]._data += 1
                buf = state["momentum_buffer"]._data if momentum > 0 else None
                grad_avg = state["grad_avg"]._data if centered else None
                arrays = [p._data, p.grad._data, state["square_avg"]._data, grad_avg, buf]
                self._apply(self._update, arrays, xp=p.device.xp, **scalars)
                p._vc[0] += 1
        return loss

    def _update(
        self,
        param: Any,
        grad: Any,
        square_avg: Any,
        grad_avg: Any,
        buf: Any,
        *,
        xp: Any,
        lr: float,
        alpha: float,
        eps: float,
        weight_decay: float,
        momentum: float,
        maximize: bool,
    ) -> None:
        """One RMSprop update of one parameter's arrays, in place (PyTorch's op order)."""
        tmp = self._buffer(param, 0)
        if maximize or weight_decay != 0:
            d = self._buffer(param, 1)
            if weight_decay != 0:
                xp.multiply(param, weight_decay, out=d)
                (xp.subtract if maximize else xp.add)(d, grad, out=d)
            else:
                xp.negative(grad, out=d)
            grad = d
        # square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        square_avg *= alpha
        xp.multiply(grad, 1 - alpha, out=tmp)
        tmp *= grad
        square_avg += tmp
        if grad_avg is not None:  # grad_avg.lerp_(grad, 1 - alpha)
            weight = 1 - alpha
            xp.subtract(grad, grad_avg, out=tmp)
            if weight < 0.5:
                tmp *= weight
                grad_avg += tmp
            else:
                tmp *= 1 - float(param.dtype.type(weight))
                xp.subtract(grad, tmp, out=grad_avg)
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

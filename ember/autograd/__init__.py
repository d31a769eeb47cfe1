"""Reverse-mode automatic differentiation: the engine, ``grad``, grad modes and gradcheck.

Example:
    >>> import ember
    >>> x = ember.tensor(2.0, requires_grad=True)
    >>> ember.autograd.grad(x * x, x)
    (tensor(4.),)
"""

from .engine import backward, grad
from .gradcheck import gradcheck, gradgradcheck
from .mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = [
    "backward",
    "grad",
    "gradcheck",
    "gradgradcheck",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
]

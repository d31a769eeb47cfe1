"""``ember.optim``: optimizers (PyTorch's update rules and arguments), learning-rate
schedulers (``ember.optim.lr_scheduler``) and the optimizer base class.

Example:
    >>> import ember
    >>> w = ember.randn(4, requires_grad=True)
    >>> opt = ember.optim.AdamW([w], lr=1e-2)
    >>> sched = ember.optim.lr_scheduler.StepLR(opt, step_size=10)
    >>> (w * w).sum().backward(); opt.step(); sched.step(); opt.zero_grad()
"""

from __future__ import annotations

from . import lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]

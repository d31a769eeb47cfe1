"""``ember.nn``: modules, layers, losses, init and functional (PyTorch's names)."""

from . import functional

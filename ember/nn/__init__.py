"""``ember.nn``: modules, layers, losses, init and functional (PyTorch's names).

Example:
    >>> import ember
    >>> from ember import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    >>> net(ember.randn(2, 4)).shape
    (2, 1)
"""

from . import functional, init, tables, utils
from .containers import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .layers import *
from .module import Module, RemovableHandle
from .module_state import IncompatibleKeys
from .parameter import Parameter

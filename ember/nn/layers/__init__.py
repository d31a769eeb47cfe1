"""The layers of ``ember.nn``, one family per file (all re-exported by ``ember.nn``).

Example:
    >>> from ember.nn.layers import Linear
    >>> Linear(2, 3)
    Linear(in_features=2, out_features=3, bias=True)
"""

from .activation import *
from .attention import *
from .conv import *
from .dropout import *
from .embedding import *
from .flatten import *
from .linear import *
from .loss import *
from .norm import *
from .pool import *
from .rnn import *
from .rnn_cell import *
from .transformer import *

"""``ember.nn.functional``: the neural-network functions (PyTorch's names and arguments).

Each function is defined in its op family under ``ember/ops/nn/``; this module is their
public face.

Example:
    >>> import ember
    >>> import ember.nn.functional as F
    >>> F.softmax(ember.zeros(2), dim=0).tolist()
    [0.5, 0.5]
"""

from ..ops.activation import *  # noqa: F403
from ..ops.nn.attention import *  # noqa: F403
from ..ops.nn.conv import *  # noqa: F403
from ..ops.nn.dropout import *  # noqa: F403
from ..ops.nn.embedding import *  # noqa: F403
from ..ops.nn.layer_norm import *  # noqa: F403
from ..ops.nn.linear import *  # noqa: F403
from ..ops.nn.loss import *  # noqa: F403
from ..ops.nn.norm import *  # noqa: F403
from ..ops.nn.pool import *  # noqa: F403
from ..ops.nn.softmax import *  # noqa: F403
from ..ops.rearrange import pad  # noqa: F401  (F.pad)
from .layers.attention import multi_head_attention_forward  # noqa: E402, F401

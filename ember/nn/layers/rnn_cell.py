"""One-step recurrent cells: ``RNNCell``, ``LSTMCell`` and ``GRUCell``.

PyTorch's arguments, parameter names (``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``), shapes, gate order and initialisation (uniform in ``±1/sqrt(hidden_size)``).
The arithmetic is the same step functions the sequence layers in ``rnn`` loop over.

Example:
    >>> import ember
    >>> from ember.nn.layers.rnn_cell import GRUCell
    >>> cell = GRUCell(4, 8)
    >>> h = None
    >>> for x in ember.randn(5, 3, 4):
    ...     h = cell(x, h)
    >>> h.shape
    (3, 8)
"""

from __future__ import annotations

import math
from typing import Any

from ...errors import DTypeError, ShapeError
from ...ops.creation import empty, zeros
from ...ops.shape import slice_dim, squeeze, unsqueeze
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter
from .rnn import gru_step, lstm_step, rnn_step

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class RNNCellBase(Module):
    """What the cells share: ``weight_ih`` ``(chunks * hidden, input)``, ``weight_hh``
    ``(chunks * hidden, hidden)`` and the two biases ``(chunks * hidden,)``.

    Example:
        >>> RNNCellBase(3, 5, True, num_chunks=4).weight_hh.shape
        (20, 5)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool,
        num_chunks: int,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bias = bias
        g = num_chunks * hidden_size
        self.weight_ih = Parameter(empty(g, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(g, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(g, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(g, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter uniformly in ``±1/sqrt(hidden_size)``."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _input(self, input: Tensor) -> tuple[Tensor, bool]:
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected an ember Tensor input, got {type(input).__name__}")
        if input.ndim not in (1, 2):
            raise ShapeError(name, f"expected input to be 1-D or 2-D, got {input.ndim}-D instead")
        if input.shape[-1] != self.input_size:
            raise ShapeError(
                name,
                f"input of shape {tuple(input.shape)} does not match input_size="
                f"{self.input_size} (expected it as the last dimension)",
            )
        if input._data.dtype != self.weight_ih._data.dtype:
            raise DTypeError(
                name,
                f"input dtype ({input.dtype}) does not match weight dtype ({self.weight_ih.dtype})",
            )
        batched = input.ndim == 2
        return (input if batched else unsqueeze(input, 0)), batched

    def _state(self, what: str, h: Tensor | None, batched: bool, like: Tensor) -> Tensor:
        batch = like.shape[0]
        if h is None:
            return zeros(batch, self.hidden_size, dtype=like.dtype, device=like.device)
        name = type(self).__name__
        if h.ndim not in (1, 2):
            raise ShapeError(name, f"expected {what} to be 1-D or 2-D, got {h.ndim}-D instead")
        if not batched:
            h = unsqueeze(h, 0)
        if tuple(h.shape) != (batch, self.hidden_size):
            raise ShapeError(
                name,
                f"{what} of shape {tuple(h.shape)} does not match the input batch "
                f"({batch}) and hidden_size ({self.hidden_size}): expected "
                f"{(batch, self.hidden_size)}",
            )
        return h

    def _input_projection(self, x: Tensor) -> Tensor:
        """``x @ weight_ih.T`` plus both biases (RNN and LSTM cells)."""
        b = None if self.bias_ih is None else self.bias_ih + self.bias_hh
        return F.linear(x, self.weight_ih, b)


def _out(h: Tensor, batched: bool) -> Tensor:
    return h if batched else squeeze(h, 0)


class RNNCell(RNNCellBase):
    """One Elman step: ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``, ``act`` tanh or relu.

    ``forward(input, hx=None)``: ``input`` ``(N, input_size)`` or ``(input_size,)``, ``hx``
    of matching shape with ``hidden_size`` features (zeros when None).

    Example:
        >>> RNNCell(4, 6, nonlinearity="relu")(ember.randn(3, 4)).shape
        (3, 6)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        nonlinearity: str = "tanh",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._input(input)
        h = self._state("hx", hx, batched, x)
        return _out(rnn_step(self._input_projection(x), h, self.weight_hh, self.nonlinearity),
                    batched)  # fmt: skip


class LSTMCell(RNNCellBase):
    """One LSTM step (gates ``i, f, g, o``): returns ``(h', c')``.

    ``forward(input, hx=None)`` with ``hx = (h, c)`` (zeros when None).

    Example:
        >>> h, c = LSTMCell(4, 6)(ember.randn(3, 4))
        >>> h.shape, c.shape
        ((3, 6), (3, 6))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        x, batched = self._input(input)
        if hx is None:
            hx = (None, None)
        elif not isinstance(hx, tuple | list) or len(hx) != 2:
            raise TypeError("LSTMCell: hx must be a tuple (h, c) of two tensors")
        h = self._state("hx[0]", hx[0], batched, x)
        c = self._state("hx[1]", hx[1], batched, x)
        h, c = lstm_step(self._input_projection(x), h, c, self.weight_hh, None)
        return _out(h, batched), _out(c, batched)


class GRUCell(RNNCellBase):
    """One GRU step (gates ``r, z, n``, PyTorch's formula): returns ``h'``.

    Example:
        >>> GRUCell(4, 6)(ember.randn(4), ember.zeros(6)).shape
        (6,)
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        x, batched = self._input(input)
        h = self._state("hx", hx, batched, x)
        H = self.hidden_size
        xw = F.linear(x, self.weight_ih, self.bias_ih)
        xrz, xn = slice_dim(xw, 1, 0, 2 * H), slice_dim(xw, 1, 2 * H, 3 * H)
        return _out(gru_step(xrz, xn, h, self.weight_hh, self.bias_hh), batched)

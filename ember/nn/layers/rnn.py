"""Recurrent layers: ``RNN``, ``LSTM`` and ``GRU`` (their one-step cells are in ``rnn_cell``).

PyTorch's constructor arguments, parameter names (``weight_ih_l0``, ``bias_hh_l1_reverse``,
``weight_hr_l0`` ...), shapes, gate order (LSTM ``i, f, g, o``; GRU ``r, z, n`` with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``) and initialisation (every parameter
uniform in ``±1/sqrt(hidden_size)``), so a PyTorch ``state_dict`` loads as is.

How a layer runs: per layer and direction, the input projection of *all* time steps is one
matrix product ``(T, N, F) @ W_ih.T``; only the recurrent product ``h @ W_hh.T`` and the gate
arithmetic loop over time, and the step outputs are joined with one ``stack``. For RNN and
LSTM the two biases are summed once and folded into that projection. Autograd records the
loop like any other code, so gradients (and second derivatives) need nothing here.

Example:
    >>> import ember
    >>> from ember.nn.layers.rnn import LSTM
    >>> lstm = LSTM(10, 20, num_layers=2)
    >>> out, (h, c) = lstm(ember.randn(5, 3, 10))
    >>> out.shape, h.shape, c.shape
    ((5, 3, 20), (2, 3, 20), (2, 3, 20))
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from ...errors import DTypeError, ShapeError
from ...ops.activation import relu, sigmoid, tanh
from ...ops.creation import empty, zeros
from ...ops.join import cat, stack, unbind
from ...ops.shape import reshape, slice_dim, squeeze, transpose, unsqueeze
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}
_LEAF = 4  # time blocks at most this long are sliced step by step (see _time_steps)


# -- the steps (shared with the cells) -------------------------------------------------------
def rnn_step(xw: Tensor, h: Tensor, w_hh: Tensor, nonlinearity: str) -> Tensor:
    """One Elman step: ``act(xw + h @ w_hh.T)``; ``xw`` holds ``x @ w_ih.T`` and both biases.

    Example:
        >>> rnn_step(ember.zeros(2, 3), ember.ones(2, 3), ember.ones(3, 3), "tanh").shape
        (2, 3)
    """
    pre = xw + F.linear(h, w_hh)
    return tanh(pre) if nonlinearity == "tanh" else relu(pre)


def lstm_step(
    xw: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, w_hr: Tensor | None
) -> tuple[Tensor, Tensor]:
    """One LSTM step from ``xw = x @ w_ih.T + b_ih + b_hh`` (gates ``i, f, g, o``); ``w_hr``
    (or None) projects the new hidden state (``proj_size``).

    Example:
        >>> h, c = lstm_step(ember.zeros(2, 12), ember.zeros(2, 3), ember.zeros(2, 3),
        ...                  ember.ones(12, 3), None)
        >>> h.shape, c.shape
        ((2, 3), (2, 3))
    """
    hidden = c.shape[-1]
    gates = xw + F.linear(h, w_hh)
    s = sigmoid(gates)
    i = slice_dim(s, 1, 0, hidden)
    f = slice_dim(s, 1, hidden, 2 * hidden)
    o = slice_dim(s, 1, 3 * hidden, 4 * hidden)
    g = tanh(slice_dim(gates, 1, 2 * hidden, 3 * hidden))
    c = f * c + i * g
    h = o * tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def gru_step(xrz: Tensor, xn: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step (PyTorch's formula) from the input projections ``xrz = (x @ w_ih.T +
    b_ih)[:, :2H]`` and ``xn = (...)[:, 2H:]``.

    Example:
        >>> gru_step(ember.zeros(2, 6), ember.zeros(2, 3), ember.zeros(2, 3),
        ...          ember.ones(9, 3), None).shape
        (2, 3)
    """
    hidden = h.shape[-1]
    hw = F.linear(h, w_hh, b_hh)
    rz = sigmoid(xrz + slice_dim(hw, 1, 0, 2 * hidden))
    r = slice_dim(rz, 1, 0, hidden)
    z = slice_dim(rz, 1, hidden, 2 * hidden)
    n = tanh(xn + r * slice_dim(hw, 1, 2 * hidden, 3 * hidden))
    return n + z * (h - n)


def _time_steps(x: Tensor) -> list[Tensor]:
    """The ``T`` slices of ``x`` ``(T, ...)`` along dim 0, each without that dim.

    Halves are split recursively, so each step's slice sends back a gradient the size of a
    small block: ``T`` slices of the whole tensor would cost O(T^2) in backward.
    """
    n = x.shape[0]
    if n <= _LEAF:
        rest = tuple(x.shape[1:])
        return [reshape(slice_dim(x, 0, t, t + 1), rest) for t in range(n)]
    mid = n // 2
    return _time_steps(slice_dim(x, 0, 0, mid)) + _time_steps(slice_dim(x, 0, mid, n))


# -- the layers --------------------------------------------------------------------------
class RNNBase(Module):
    """What ``RNN``, ``LSTM`` and ``GRU`` share: arguments, parameters, checks, the loop.

    ``mode`` is ``"RNN_TANH"``, ``"RNN_RELU"``, ``"LSTM"`` or ``"GRU"``.

    Example:
        >>> RNNBase("GRU", 4, 8).weight_ih_l0.shape
        (24, 4)
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if mode not in _GATES:
            raise ValueError("Unrecognized RNN mode: " + str(mode))
        if (
            not isinstance(dropout, numbers.Number)
            or isinstance(dropout, bool)
            or not 0 <= dropout <= 1
        ):
            raise ValueError(
                "dropout should be a number in range [0, 1] representing the probability of "
                "an element being zeroed"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        for name, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError(
                "proj_size should be a positive integer or zero to disable projections"
            )
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        dirs = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for d in range(dirs):
                suffix = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else real_hidden * dirs
                shapes = {
                    "weight_ih": (gate_size, in_size),
                    "weight_hh": (gate_size, real_hidden),
                }
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = []
                for base, shape in shapes.items():
                    name = base + suffix
                    setattr(self, name, Parameter(empty(*shape, device=device, dtype=dtype)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw every parameter uniformly in ``±1/sqrt(hidden_size)``."""
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """Does nothing (PyTorch packs weights for cuDNN here); kept for compatibility."""

    @property
    def _flat_weights(self) -> list[Parameter]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters, one list per layer and direction (PyTorch's order)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # -- forward -------------------------------------------------------------------------
    def _name(self) -> str:
        return "RNN" if self.mode.startswith("RNN") else self.mode

    def _prepare(self, input: Tensor) -> tuple[Tensor, bool]:
        """Check ``input``; return it time-major ``(T, N, F)`` and whether it was batched."""
        name = self._name()
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: expected an ember Tensor input, got {type(input).__name__}")
        if input.ndim not in (2, 3):
            raise ShapeError(
                name, f"expected input to be 2-D or 3-D, got {input.ndim}-D tensor instead"
            )
        if input.shape[-1] != self.input_size:
            raise ShapeError(
                name,
                f"input of shape {tuple(input.shape)} does not match input_size="
                f"{self.input_size} (expected it as the last dimension)",
            )
        w = self.weight_ih_l0
        if input._data.dtype != w._data.dtype:
            raise DTypeError(
                name,
                f"input dtype ({input.dtype}) does not match weight dtype ({w.dtype}); "
                f"convert the input with input.to({w.dtype}) or the model with "
                f"model.to({input.dtype})",
            )
        if input.shape[1 if input.ndim == 3 and self.batch_first else 0] == 0:
            raise ShapeError(name, f"input of shape {tuple(input.shape)} has no time steps")
        if input.ndim == 2:
            return unsqueeze(input, 1), False
        return (transpose(input, 0, 1) if self.batch_first else input), True

    def _check_state(self, what: str, h: Tensor, batched: bool, size: int, batch: int) -> Tensor:
        name = self._name()
        if not isinstance(h, Tensor):
            raise TypeError(f"{name}: expected {what} to be an ember Tensor, got {type(h)}")
        want = 3 if batched else 2
        if h.ndim != want:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise ShapeError(
                name, f"for {kind} input, {what} should be {want}-D but got {h.ndim}-D tensor"
            )
        if not batched:
            h = unsqueeze(h, 1)
        dirs = 2 if self.bidirectional else 1
        expected = (self.num_layers * dirs, batch, size)
        if tuple(h.shape) != expected:
            raise ShapeError(name, f"expected {what} of shape {expected}, got {tuple(h.shape)}")
        return h

    def _run(
        self, x: Tensor, h0: Tensor | None, c0: Tensor | None, batch_first_out: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """The stacked, possibly bidirectional recurrence over time-major ``x``."""
        dirs = 2 if self.bidirectional else 1
        count = self.num_layers * dirs
        batch, dt, dev = x.shape[1], x.dtype, x.device
        if h0 is None:
            h0 = zeros(count, batch, self.proj_size or self.hidden_size, dtype=dt, device=dev)
        if c0 is None and self.mode == "LSTM":
            c0 = zeros(count, batch, self.hidden_size, dtype=dt, device=dev)
        hs = unbind(h0, 0)
        cs = unbind(c0, 0) if c0 is not None else [None] * count
        final_h, final_c = [], []
        for layer in range(self.num_layers):
            last = layer == self.num_layers - 1
            stack_dim = 1 if (last and batch_first_out) else 0
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                steps, h, c = self._direction(x, self._all_weights[k], hs[k], cs[k], bool(d))
                outs.append(stack(steps, stack_dim))
                final_h.append(h)
                final_c.append(c)
            x = outs[0] if dirs == 1 else cat(outs, -1)
            if self.dropout and self.training and not last:
                x = F.dropout(x, self.dropout, True)
        h_n = stack(final_h, 0)
        c_n = stack(final_c, 0) if self.mode == "LSTM" else None
        return x, h_n, c_n

    def _direction(
        self, x: Tensor, names: list[str], h: Tensor, c: Tensor | None, reverse: bool
    ) -> tuple[list[Tensor], Tensor, Tensor | None]:
        """One layer in one direction: the step outputs (in time order) and final state."""
        params = [getattr(self, n) for n in names]
        w_ih, w_hh = params[0], params[1]
        b_ih, b_hh = (params[2], params[3]) if self.bias else (None, None)
        w_hr = params[-1] if self.proj_size else None
        T = x.shape[0]
        outs: list[Any] = [None] * T
        order = range(T - 1, -1, -1) if reverse else range(T)
        if self.mode == "GRU":
            xw = F.linear(x, w_ih, b_ih)
            H = self.hidden_size
            xrz = _time_steps(slice_dim(xw, 2, 0, 2 * H))
            xn = _time_steps(slice_dim(xw, 2, 2 * H, 3 * H))
            for t in order:
                h = outs[t] = gru_step(xrz[t], xn[t], h, w_hh, b_hh)
            return outs, h, None
        xw = _time_steps(F.linear(x, w_ih, None if b_ih is None else b_ih + b_hh))
        if self.mode == "LSTM":
            for t in order:
                h, c = lstm_step(xw[t], h, c, w_hh, w_hr)
                outs[t] = h
            return outs, h, c
        act = "tanh" if self.mode == "RNN_TANH" else "relu"
        for t in order:
            h = outs[t] = rnn_step(xw[t], h, w_hh, act)
        return outs, h, None

    def _forward(self, input: Tensor, h0: Any, c0: Any) -> tuple[Tensor, Tensor, Any]:
        x, batched = self._prepare(input)
        batch = x.shape[1]
        out_size = self.proj_size or self.hidden_size
        if h0 is not None:
            h0 = self._check_state("hx", h0, batched, out_size, batch)
        if c0 is not None:
            c0 = self._check_state("cx", c0, batched, self.hidden_size, batch)
        out, h_n, c_n = self._run(x, h0, c0, batched and self.batch_first)
        if not batched:
            out, h_n = squeeze(out, 1), squeeze(h_n, 1)
            c_n = None if c_n is None else squeeze(c_n, 1)
        return out, h_n, c_n


class RNN(RNNBase):
    """A multi-layer Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``
    with ``act`` tanh or relu.

    ``forward(input, hx=None)`` takes ``input`` ``(L, N, H_in)`` (``(N, L, H_in)`` with
    ``batch_first``, or unbatched ``(L, H_in)``) and ``hx`` ``(D * num_layers, N, H_out)``
    (zeros when None); it returns ``(output, h_n)``: every step's last-layer hidden state
    ``(L, N, D * H_out)`` and the final hidden state of every layer and direction.

    Example:
        >>> rnn = RNN(10, 20, 2, nonlinearity="relu", bidirectional=True)
        >>> out, h = rnn(ember.randn(5, 3, 10), ember.zeros(4, 3, 20))
        >>> out.shape, h.shape
        ((5, 3, 40), (4, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'."
            )
        self.nonlinearity = nonlinearity
        mode = "RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU"
        super().__init__(
            mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device=device, dtype=dtype,
        )  # fmt: skip

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, h_n, _ = self._forward(input, hx, None)
        return out, h_n


class LSTM(RNNBase):
    """A multi-layer long short-term memory RNN (PyTorch's gates ``i, f, g, o``):
    ``c_t = f * c_{t-1} + i * g``, ``h_t = o * tanh(c_t)`` (times ``W_hr^T`` with
    ``proj_size > 0``).

    ``forward(input, (h_0, c_0)=None)`` returns ``(output, (h_n, c_n))``; shapes as
    :class:`RNN`, with ``H_out = proj_size or hidden_size`` and ``c`` of width
    ``hidden_size``.

    Example:
        >>> lstm = LSTM(10, 20, proj_size=5, batch_first=True)
        >>> out, (h, c) = lstm(ember.randn(3, 7, 10))
        >>> out.shape, h.shape, c.shape
        ((3, 7, 5), (1, 3, 5), (1, 3, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, proj_size, device=device, dtype=dtype,
        )  # fmt: skip

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if hx is None:
            h0 = c0 = None
        else:
            if not isinstance(hx, tuple | list) or len(hx) != 2:
                raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of two tensors")
            h0, c0 = hx
        out, h_n, c_n = self._forward(input, h0, c0)
        return out, (h_n, c_n)


class GRU(RNNBase):
    """A multi-layer gated recurrent unit RNN (PyTorch's gates ``r, z, n``):
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``, ``h' = (1 - z) * n + z * h``.

    ``forward(input, hx=None)`` returns ``(output, h_n)``; shapes as :class:`RNN`.

    Example:
        >>> gru = GRU(10, 20, num_layers=2, dropout=0.1)
        >>> out, h = gru(ember.randn(5, 10))
        >>> out.shape, h.shape
        ((5, 20), (2, 20))
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            "GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
            bidirectional, device=device, dtype=dtype,
        )  # fmt: skip

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        out, h_n, _ = self._forward(input, hx, None)
        return out, h_n

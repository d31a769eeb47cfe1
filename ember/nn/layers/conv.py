"""Convolutions: ``Conv1d``, ``Conv2d``, ``ConvTranspose1d``, ``ConvTranspose2d``
(PyTorch's arguments, padding modes and default initialisation).

Example:
    >>> import ember
    >>> from ember import nn
    >>> nn.Conv2d(3, 8, 3, padding=1)(ember.ones(2, 3, 16, 16)).shape
    (2, 8, 16, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ... import ops
from ...ops.creation import empty
from ...tensor import Tensor
from .. import functional as F
from .. import init
from ..module import Module
from ..parameter import Parameter

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _tuple(value: Any, n: int) -> tuple:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != n:
            raise ValueError(f"expected {n} value(s), got {tuple(value)}")
        return tuple(value)
    return (value,) * n


class _ConvNd(Module):
    """Shared set-up of the convolution layers (checks, weight, bias, init, repr)."""

    _n = 2
    _transposed = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        output_padding: Any,
        groups: int,
        bias: bool,
        padding_mode: str,
        device: Any,
        dtype: Any,
    ) -> None:
        super().__init__()
        n, name = self._n, type(self).__name__
        if groups <= 0:
            raise ValueError(f"{name}: groups must be a positive integer, got {groups}")
        if in_channels % groups != 0:
            raise ValueError(f"{name}: in_channels ({in_channels}) must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError(f"{name}: out_channels ({out_channels}) must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {list(_PADDING_MODES)}, got '{padding_mode}'"
            )
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for {name}')
        kernel_size, stride, dilation = (_tuple(v, n) for v in (kernel_size, stride, dilation))
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string '{padding}', should be one of same, valid"
                )
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _tuple(padding, n)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = self._transposed
        self.output_padding = _tuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's (last dim first) padding for the non-"zeros" modes
        if isinstance(padding, str):
            pads = [0, 0] * n
            if padding == "same":
                for i, (d, k) in enumerate(zip(dilation, kernel_size)):
                    total = d * (k - 1)
                    j = 2 * (n - 1 - i)
                    pads[j], pads[j + 1] = total // 2, total - total // 2
            self._reversed_padding_repeated_twice = tuple(pads)
        else:
            self._reversed_padding_repeated_twice = tuple(
                p for p in reversed(padding) for _ in (0, 1)
            )
        if self._transposed:
            shape = (in_channels, out_channels // groups, *kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *kernel_size)
        self.weight = Parameter(empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: weight kaiming-uniform with ``a=sqrt(5)`` (bound
        ``1/sqrt(fan_in)``), bias uniform in ``±1/sqrt(fan_in)``."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        n = self._n
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _output_padding(self, input: Tensor, output_size: Any) -> tuple:
        """The output padding that makes a transposed convolution produce ``output_size``."""
        n = self._n
        if output_size is None:
            return self.output_padding
        output_size = tuple(int(s) for s in output_size)
        if len(output_size) > n:
            output_size = output_size[-n:]
        if len(output_size) != n:
            raise ValueError(
                f"output_size must have {n} or {n + 2} elements (got {len(output_size)})"
            )
        spatial = tuple(input.shape)[-n:]
        result = []
        for d in range(n):
            smallest = (
                (spatial[d] - 1) * self.stride[d]
                - 2 * self.padding[d]
                + self.dilation[d] * (self.kernel_size[d] - 1)
                + 1
            )
            largest = smallest + self.stride[d] - 1
            if not smallest <= output_size[d] <= largest:
                raise ValueError(
                    f"requested an output size of {output_size}, but valid sizes range from "
                    f"{smallest} to {largest} in dim {d} (for an input of {spatial})"
                )
            result.append(output_size[d] - smallest)
        return tuple(result)


class _Conv(_ConvNd):
    """``Conv1d``/``Conv2d``: PyTorch's arguments (no ``output_padding``) and the forward,
    which pads first for the non-"zeros" padding modes."""

    _functional: Any = None  # F.conv1d / F.conv2d, as a staticmethod

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, 0, groups,
            bias, padding_mode, device, dtype,
        )  # fmt: skip

    def forward(self, input: Tensor) -> Tensor:
        if self.padding_mode != "zeros":
            input = ops.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: Any = (0,) * self._n
        else:
            padding = self.padding
        return self._functional(
            input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups
        )


class Conv1d(_Conv):
    """1-D convolution over ``(N, C_in, L)`` (or ``(C_in, L)``) inputs.

    Example:
        >>> nn.Conv1d(4, 6, kernel_size=3)(ember.ones(2, 4, 10)).shape
        (2, 6, 8)
    """

    _n = 1
    _functional = staticmethod(F.conv1d)


class Conv2d(_Conv):
    """2-D convolution over ``(N, C_in, H, W)`` (or ``(C_in, H, W)``) inputs.

    Example:
        >>> conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)
        >>> conv(ember.ones(1, 3, 32, 32)).shape
        (1, 8, 16, 16)
    """

    _n = 2
    _functional = staticmethod(F.conv2d)


class _ConvTransposeNd(_ConvNd):
    """``ConvTranspose1d``/``ConvTranspose2d``: PyTorch's arguments and the forward, which
    picks the output padding for ``output_size``."""

    _transposed = True
    _functional: Any = None  # F.conv_transpose1d / F.conv_transpose2d, as a staticmethod

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        if isinstance(padding, str):
            raise ValueError(f"{type(self).__name__} does not support string padding")
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, output_padding,
            groups, bias, padding_mode, device, dtype,
        )  # fmt: skip

    def forward(self, input: Tensor, output_size: Any = None) -> Tensor:
        return self._functional(
            input, self.weight, self.bias, self.stride, self.padding,
            self._output_padding(input, output_size), self.groups, self.dilation,
        )  # fmt: skip


class ConvTranspose1d(_ConvTransposeNd):
    """1-D transposed convolution (the gradient of ``Conv1d`` with respect to its input);
    ``forward(input, output_size=None)`` picks the output padding for ``output_size``.

    Example:
        >>> nn.ConvTranspose1d(4, 2, 3, stride=2)(ember.ones(1, 4, 5)).shape
        (1, 2, 11)
    """

    _n = 1
    _functional = staticmethod(F.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """2-D transposed convolution (the gradient of ``Conv2d`` with respect to its input);
    ``forward(input, output_size=None)`` picks the output padding for ``output_size``.

    Example:
        >>> up = nn.ConvTranspose2d(8, 4, kernel_size=2, stride=2)
        >>> up(ember.ones(1, 8, 5, 5)).shape
        (1, 4, 10, 10)
    """

    _n = 2
    _functional = staticmethod(F.conv_transpose2d)

"""In-place ops (``x += y``, ``x.add_(y)``, ``x[i] = v``) with PyTorch's autograd rules.

* Under grad recording, an in-place op on a leaf that requires grad is an error.
* Otherwise, when autograd is involved, the op is computed out of place and the tensor
  takes the result (its values and its graph node); tensors saved for an earlier backward
  see the version counter move, so a backward that needs the old values raises instead of
  silently using new ones.
* Without autograd, the result is written into the tensor's own memory, so views and
  aliases see it (optimizers rely on this).

Example:
    >>> import ember
    >>> x = ember.zeros(3); x += 1; x.tolist()
    [1.0, 1.0, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..autograd.mode import no_grad, state
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor

__all__ = ["apply_inplace"]


def _requires_grad(args: tuple) -> bool:
    return any(isinstance(a, Tensor) and a.requires_grad for a in args)


def apply_inplace(
    self: Tensor, name: str, fn: Callable[..., Tensor], *args: Any, **kwargs: Any
) -> Tensor:
    """Run ``fn(self, *args)`` and make ``self`` hold the result (see the module docstring)."""
    if state.grad_enabled and (self.requires_grad or _requires_grad(args)):
        if self._node is None and self.requires_grad:
            raise RuntimeError(
                f"{name}: a leaf tensor that requires grad is being used in an in-place "
                "operation; wrap it in `with ember.no_grad():` or use the out-of-place form"
            )
        old = Tensor._make(self._data, self.device, self._node)
        old.requires_grad = self.requires_grad
        result = fn(old, *args, **kwargs)
        result = _conform(name, self, result)
        self._data = result._data
        self._node = result._node
        self.requires_grad = result.requires_grad
        if self._retain and self._node is not None:
            self._node.retain = self
    else:
        with no_grad():
            result = fn(self, *args, **kwargs)
        result = _conform(name, self, result)
        if result._data is not self._data:
            try:
                self.device.xp.copyto(self._data, result._data)
            except ValueError as e:
                raise ShapeError(name, f"cannot write into this tensor: {e}") from None
    self._vc[0] += 1
    tracer = state.tracer
    if tracer is not None:
        tracer.record_inplace(self, result)
    return self


def _conform(name: str, self: Tensor, result: Tensor) -> Tensor:
    """Check the result fits ``self`` (same shape, castable dtype) and cast it back."""
    if result.shape != self.shape:
        raise ShapeError(
            name,
            f"output with shape {tuple(self.shape)} doesn't match the broadcast "
            f"shape {tuple(result.shape)}",
        )
    src, dst = result._data.dtype, self._data.dtype
    if src == dst:
        return result
    order = "biuf"
    if order.index(src.kind) > order.index(dst.kind):
        raise DTypeError(
            name,
            f"result type {result.dtype} can't be cast to the desired output type {self.dtype}",
        )
    return result.to(self.dtype)


def _tracks(self: Tensor, value: Any) -> bool:
    return (
        state.grad_enabled
        and (self.requires_grad or (isinstance(value, Tensor) and value.requires_grad))
        or state.tracer is not None
    )


def _filled_like(t: Tensor, value: Any) -> Tensor:
    from .creation import cast, clone, full_like
    from .shape import broadcast_to

    if isinstance(value, Tensor):
        return clone(broadcast_to(cast(value.to(t.device), t.dtype), tuple(t.shape)))
    return full_like(t, value)


def copy_(self: Tensor, src: Any, non_blocking: bool = False) -> Tensor:
    """Copy ``src`` (broadcast, cast, moved across devices) into this tensor; returns self.
    Gradients flow to ``src``; the overwritten values get none.

    Example:
        >>> t = ember.zeros(2, 2); t.copy_(ember.tensor([1.0, 2.0])).tolist()
        [[1.0, 2.0], [1.0, 2.0]]
    """
    if not _tracks(self, src):
        from ..device import transfer

        arr = transfer(src._data, self.device) if isinstance(src, Tensor) else src
        try:
            self.device.xp.copyto(self._data, arr, casting="unsafe")
        except ValueError as e:
            raise ShapeError(
                "copy_",
                f"cannot copy shape {tuple(getattr(src, 'shape', ()))} "
                f"into shape {tuple(self.shape)}: {e}",
            ) from None
        self._vc[0] += 1
        return self
    return apply_inplace(self, "copy_", _filled_like, src)


def fill_(self: Tensor, value: Any) -> Tensor:
    """Fill this tensor with ``value`` (a number or a 0-d tensor); returns self.

    Example:
        >>> ember.zeros(3).fill_(7).tolist()
        [7.0, 7.0, 7.0]
    """
    if not _tracks(self, value):
        self._data[...] = value._data if isinstance(value, Tensor) else value
        self._vc[0] += 1
        return self
    return apply_inplace(self, "fill_", _filled_like, value)


def zero_(self: Tensor) -> Tensor:
    """Fill this tensor with zeros; returns self.

    Example:
        >>> ember.ones(2).zero_().tolist()
        [0.0, 0.0]
    """
    return fill_(self, 0)


METHODS = {"copy_": copy_, "fill_": fill_, "zero_": zero_}

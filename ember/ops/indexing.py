"""Indexing: ``x[idx]`` and ``x[idx] = v`` (ints, slices with any step, None, Ellipsis, bool
masks, integer arrays/lists/tensors, and any mix, with PyTorch's rules), index_put,
masked_fill, masked_select, take, nonzero. The ops along one dimension (gather, scatter,
index_select, index_add ...) live in ``gather.py`` and are re-exported here.

An index is normalised into a plain tuple (the ``index`` attribute): ints, slices, None,
Ellipsis and bools stay as they are, and every index array becomes an extra *input* of the
op (so a traced graph takes it as data instead of baking its values in), marked ``"tensor"``
in the tuple. Two families of primitives:

* ``getitem`` / ``getitem_backward`` / ``setitem``: basic indexing only; they save nothing
  (``x[:, t] = h`` in a loop keeps no old copies alive).
* ``index`` / ``index_backward`` / ``index_put``: with index arrays, which they save.

Backward of a read is its ``*_backward`` op (the gradient written, or added with
``add.at`` when integer arrays may repeat, into zeros of the input's shape); backward of
that is the read again, so second derivatives work.

Example:
    >>> import ember
    >>> x = ember.arange(6.0).reshape(2, 3)
    >>> x[:, [0, 2]].tolist()
    [[0.0, 2.0], [3.0, 5.0]]
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..autograd.mode import state
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor
from ._util import SCALARS
from .creation import as_tensor, cast
from .elementwise import where
from .inplace import apply_inplace
from .registry import defop
from .shape import IndexingError, broadcast_to, reshape, sum_to

__all__ = [
    "IndexingError",
    "index_put",
    "masked_fill",
    "masked_select",
    "take",
    "nonzero",
    "argwhere",
]

_T = "tensor"  # marks the place of an index array (an extra op input) in an index tuple


# -- normalising an index ------------------------------------------------------------------
def _index_array(x: Tensor, item: Any, op: str) -> Tensor:
    if not isinstance(item, Tensor):
        arr = np.asarray(item)
        if arr.size == 0 and arr.dtype.kind == "f":  # x[[]]: an empty integer index
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "biu":
            raise IndexingError(
                op,
                f"only integers, slices, None, Ellipsis and integer or bool arrays are valid "
                f"indices, got {type(item).__name__} of dtype {arr.dtype}",
            )
        return as_tensor(arr, device=x.device)
    if item._data.dtype.kind not in "biu":
        raise IndexingError(
            op, f"tensors used as indices must be integer or bool tensors, got {item.dtype}"
        )
    return item if item.device is x.device else item.to(x.device)


def _plain_slice(s: slice, op: str) -> slice:
    parts = (s.start, s.stop, s.step)
    if not all(p is None or type(p) is int for p in parts):
        parts = tuple(None if p is None else operator.index(p) for p in parts)
        s = slice(*parts)
    if s.step == 0:
        raise IndexingError(op, "slice step cannot be zero")
    return s


def _plain(item: Any) -> bool:
    """An index item kept as it is: an int, a bool, None, Ellipsis or a slice of ints."""
    t = type(item)
    if t is int or t is bool or item is None or item is Ellipsis:
        return True
    if t is slice:
        a, b, c = item.start, item.stop, item.step
        return (
            (a is None or type(a) is int)
            and (b is None or type(b) is int)
            and (c is None or (type(c) is int and c != 0))
        )
    return False


def parse_index(x: Tensor, index: Any, op: str = "getitem") -> tuple[tuple, list[Tensor]]:
    """Split a Python index into a plain tuple (arrays marked ``"tensor"``) and the index
    tensors, in order.

    Example:
        >>> parse_index(ember.zeros(3, 4), (0, [1, 2]))[0]
        (0, 'tensor')
    """
    if type(index) is not tuple:
        index = (index,)
    for item in index:  # the common case: nothing to convert, the tuple is the spec
        if not _plain(item):
            break
    else:
        return index, []
    spec: list[Any] = []
    tensors: list[Tensor] = []
    for item in index:
        if item is None or item is Ellipsis:
            spec.append(item)
        elif isinstance(item, slice):
            spec.append(_plain_slice(item, op))
        elif isinstance(item, bool | np.bool_):
            spec.append(bool(item))
        elif isinstance(item, int | np.integer):
            spec.append(int(item))
        else:
            tensors.append(_index_array(x, item, op))
            spec.append(_T)
    return tuple(spec), tensors


def _key(index: tuple, arrays: Any) -> tuple:
    """The index tuple with its ``"tensor"`` marks replaced by the arrays."""
    if not arrays:
        return index
    it = iter(arrays)
    return tuple(next(it) if isinstance(i, str) else i for i in index)


def _reword(op: str, shape: tuple, exc: Exception) -> IndexingError:
    msg = str(exc).replace("axis", "dimension").replace("array", "tensor")
    return IndexingError(op, f"{msg} (tensor of shape {tuple(shape)})")


def _split(key: tuple) -> tuple[tuple, tuple] | None:
    """PyTorch applies integer indices first (a select) and then the index arrays, where NumPy
    counts ints among the arrays: ``x[0, :, [1, 0]]`` has shape (3, 2) for x of shape
    (2, 3, 4), not (2, 3). When ints meet arrays, return the two steps (the first a view)."""
    has_int = has_array = False
    for k in key:
        if type(k) is int:
            has_int = True
        elif hasattr(k, "ndim"):
            if k.ndim:
                has_array = True
            elif k.dtype.kind in "iu":
                has_int = True
    if not (has_int and has_array):
        return None
    first, then = [], []
    for k in key:
        if k is None or type(k) is bool:
            then.append(k)
        elif type(k) is int:
            first.append(k)
        elif k is Ellipsis:
            first.append(k)
            then.append(k)
        elif isinstance(k, slice):
            first.append(slice(None))
            then.append(k)
        elif k.ndim == 0 and k.dtype.kind in "iu":
            first.append(int(k))
        else:
            first.extend([slice(None)] * (k.ndim if k.dtype.kind == "b" else 1))
            then.append(k)
    return tuple(first), tuple(then)


def _read(op: str, x: Any, key: tuple) -> Any:
    try:
        steps = _split(key)
        return x[key] if steps is None else x[steps[0]][steps[1]]
    except IndexError as e:
        raise _reword(op, x.shape, e) from None


def _write(op: str, out: Any, key: tuple, value: Any, accumulate: bool, xp: Any) -> None:
    target = out
    try:
        steps = _split(key)
        if steps is not None:
            target, key = out[steps[0]], steps[1]  # a view: writing to it writes to out
        if accumulate:
            xp.add.at(target, key, value)
        else:
            target[key] = value
    except IndexError as e:
        raise _reword(op, out.shape, e) from None
    except ValueError as e:
        if not out.flags.writeable:
            raise ShapeError(
                op, "cannot write into a read-only view (made by expand/broadcast_to); clone() it"
            ) from None
        region = tuple(target[key].shape)
        raise ShapeError(
            op,
            f"a value of shape {tuple(np.shape(value))} cannot be broadcast to the indexed "
            f"region of shape {region} (tensor of shape {tuple(out.shape)}): {e}",
        ) from None


def _saved_indices(ctx: Any, start: int) -> list[Tensor]:
    """The saved index arrays (inputs ``start:``) as tensors."""
    return [Tensor._make(a, ctx.device) for a in ctx.saved[start:]]


def _unversioned(x: Any) -> Any:
    """``x`` under its own version counter. The ``index*`` ops save their inputs only for the
    index arrays: their backward never reads the indexed tensor's (or value's) values, so a
    later in-place write to it must not fail that backward, as in PyTorch. A leaf that
    requires grad stays itself (it is the graph's edge)."""
    if not isinstance(x, Tensor) or (x.requires_grad and x._node is None):
        return x
    t = Tensor._make(x._data, x.device, x._node)
    t.requires_grad = x.requires_grad
    return t


def _value_grad(gv: Tensor, shape: tuple) -> Tensor:
    """Reduce the gradient of an assigned region to the shape of the assigned value (which
    broadcast to it, possibly with extra leading size-1 dimensions)."""
    lead = len(shape) - gv.ndim
    if lead > 0:
        return reshape(sum_to(gv, shape[lead:]), shape)
    return sum_to(gv, tuple(shape))


def _accumulates(arrays: Any) -> bool:
    return any(a.dtype.kind in "iu" for a in arrays)  # integer arrays may repeat positions


# -- basic indexing: the whole index is the attribute, nothing saved -----------------------
@defop("getitem", saves_inputs=False, onnx="Slice")
def _getitem(xp, x, index):
    return _read("getitem", x, index)


@_getitem.defgrad
def _(ctx, g):
    return (_getitem_backward(g, shape=ctx.input_shape(0), index=ctx.attrs["index"]),)


@defop("getitem_backward", saves_inputs=False, onnx="ScatterND")
def _getitem_backward(xp, g, shape, index):
    """Zeros of ``shape`` with ``g`` written at ``index``."""
    out = xp.zeros(shape, dtype=g.dtype)
    out[index] = g
    return out


@_getitem_backward.defgrad
def _(ctx, g):
    return (_getitem(g, index=ctx.attrs["index"]),)


@defop("setitem", saves_inputs=False, onnx="ScatterND")
def _setitem(xp, x, value, index):
    """A copy of ``x`` with ``value`` (broadcast) written at ``index``."""
    out = x.copy()
    _write("setitem", out, index, value, False, xp)
    return out


@_setitem.defgrad
def _(ctx, g):
    index = ctx.attrs["index"]
    need_x, need_v = ctx.needs_input_grad
    gx = _setitem(g, 0, index=index) if need_x else None
    gv = _value_grad(_getitem(g, index=index), ctx.input_shape(1)) if need_v else None
    return gx, gv


@_getitem.defonnx
def _(g, x, index):
    return g.index(x, index)


@_getitem_backward.defonnx
def _(g, dy, shape, index):
    return g.index_put(g.zeros(shape, dy.dtype), index, dy)


@_setitem.defonnx
def _(g, x, value, index):
    return g.index_put(x, index, value)


# -- advanced indexing: index arrays are inputs (saved) ------------------------------------
@defop("index", onnx="Gather")
def _index(xp, x, *arrays, index):
    return _read("getitem", x, _key(index, arrays))


@_index.defgrad
def _(ctx, g):
    arrays = _saved_indices(ctx, 1)
    gx = _index_backward(g, *arrays, shape=ctx.input_shape(0), index=ctx.attrs["index"])
    return (gx,) + (None,) * len(arrays)


@defop("index_backward", onnx="ScatterND")
def _index_backward(xp, g, *arrays, shape, index):
    """Zeros of ``shape`` with ``g`` added at ``index`` (repeated positions add up)."""
    out = xp.zeros(shape, dtype=g.dtype)
    _write("getitem", out, _key(index, arrays), g, _accumulates(arrays), xp)
    return out


@_index_backward.defgrad
def _(ctx, g):
    arrays = _saved_indices(ctx, 1)
    return (_index(g, *arrays, index=ctx.attrs["index"]),) + (None,) * len(arrays)


@defop("index_put", onnx="ScatterND")
def _index_put(xp, x, value, *arrays, index, accumulate):
    """A copy of ``x`` with ``value`` written (or added, with ``accumulate``) at ``index``."""
    out = x.copy()
    _write("index_put", out, _key(index, arrays), value, accumulate, xp)
    return out


@_index_put.defgrad
def _(ctx, g):
    arrays = _saved_indices(ctx, 2)
    a = ctx.attrs
    need_x, need_v = ctx.needs_input_grad[:2]
    gx = gv = None
    if need_x:
        gx = g if a["accumulate"] else _index_put(g, 0, *arrays, index=a["index"], accumulate=False)
    if need_v:
        gv = _value_grad(_index(g, *arrays, index=a["index"]), ctx.input_shape(1))
    return (gx, gv) + (None,) * len(arrays)


@_index.defonnx
def _(g, x, *arrays, index):
    return g.index(x, index, arrays)


@_index_backward.defonnx
def _(g, dy, *arrays, shape, index):
    return g.index_put(g.zeros(shape, dy.dtype), index, dy, arrays, accumulate=True)


@_index_put.defonnx
def _(g, x, value, *arrays, index, accumulate):
    return g.index_put(x, index, value, arrays, accumulate=accumulate)


# -- Tensor.__getitem__ / __setitem__ ------------------------------------------------------
def getitem(input: Tensor, index: Any) -> Tensor:
    """``input[index]`` with NumPy's (and PyTorch's) indexing rules; differentiable.

    Example:
        >>> x = ember.arange(6).reshape(2, 3)
        >>> x[1], x[:, ::2].tolist(), x[x > 3].tolist()
        (tensor([3, 4, 5]), [[0, 2], [3, 5]], [4, 5])
    """
    if type(index) is int:  # the most common case, without the general parse
        return _getitem(input, index=(index,))
    spec, tensors = parse_index(input, index)
    if tensors:
        return _index(_unversioned(input), *tensors, index=spec)
    return _getitem(input, index=spec)


def _assign(base: Tensor, spec: tuple, tensors: list, value: Any) -> Tensor:
    """``base[spec] = value``: into base's memory when nothing records (apply_inplace's direct
    path), else out of place through ``setitem`` / ``index_put``."""
    if not state.grad_enabled and state.tracer is None:
        key = _key(spec, [t._data for t in tensors])
        v = value._data if isinstance(value, Tensor) else value
        _write("setitem", base._data, key, v, False, base.device.xp)
        return base
    if isinstance(value, Tensor):
        value = cast(value, base.dtype)
    if tensors:
        return _index_put(base, _unversioned(value), *tensors, index=spec, accumulate=False)
    return _setitem(base, value, index=spec)


def setitem(input: Tensor, index: Any, value: Any) -> None:
    """``input[index] = value`` (value a tensor or scalar, broadcast to the indexed region and
    cast to ``input``'s dtype), with the in-place rules of ``ember.ops.inplace``.

    Example:
        >>> x = ember.zeros(2, 3)
        >>> x[:, 1] = 5; x[0, [0, 2]] = ember.tensor([1.0, 2.0])
        >>> x.tolist()
        [[1.0, 5.0, 2.0], [0.0, 5.0, 0.0]]
    """
    spec, tensors = parse_index(input, index, "setitem")
    if isinstance(value, Tensor):
        if value.device is not input.device:
            value = value.to(input.device)
    elif not isinstance(value, SCALARS):
        value = as_tensor(value, device=input.device)
    apply_inplace(input, "setitem", _assign, spec, tensors, value)


# -- index_put and helpers shared with gather.py ----------------------------------------------
def _named(op: str, fn: Any, *args: Any, **kwargs: Any) -> Tensor:
    """Run a primitive, naming the public op in its index errors."""
    try:
        return fn(*args, **kwargs)
    except IndexingError as e:
        raise IndexingError(op, e.detail, e.where) from None


def _fill_value(op: str, input: Tensor, value: Any) -> Any:
    if isinstance(value, Tensor):
        if value.ndim != 0:
            raise ShapeError(
                op, f"only supports a 0-dimensional value tensor, got shape {tuple(value.shape)}"
            )
        return cast(value, input.dtype)
    kind = input._data.dtype.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    return value


def index_put(input: Tensor, indices: Any, values: Any, accumulate: bool = False) -> Tensor:
    """A copy of ``input`` with ``values`` written (or added, with ``accumulate``) at
    ``input[indices]``, where ``indices`` is a tuple of index tensors.

    Example:
        >>> x = ember.zeros(2, 2)
        >>> x.index_put((ember.tensor([0, 1]), ember.tensor([1, 1])), ember.tensor(3.0)).tolist()
        [[0.0, 3.0], [0.0, 3.0]]
    """
    tensors = [_index_array(input, i, "index_put") for i in indices]
    if isinstance(values, Tensor):
        values = cast(values, input.dtype)
    elif not isinstance(values, SCALARS):
        values = as_tensor(values, dtype=input.dtype, device=input.device)
    spec = (_T,) * len(tensors)
    x, v = _unversioned(input), _unversioned(values)
    return _index_put(x, v, *tensors, index=spec, accumulate=bool(accumulate))


# -- masks ---------------------------------------------------------------------------------
def _check_mask(op: str, mask: Any) -> None:
    if not isinstance(mask, Tensor) or mask._data.dtype.kind != "b":
        got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
        raise DTypeError(op, f"expects a bool tensor as mask, got {got}")


def masked_fill(input: Tensor, mask: Tensor, value: Any) -> Tensor:
    """``input`` with the entries where ``mask`` is True set to ``value`` (a number or a 0-d
    tensor); ``mask`` broadcasts.

    Example:
        >>> ember.tensor([1, 2, 3]).masked_fill(ember.tensor([True, False, True]), 0).tolist()
        [0, 2, 0]
    """
    _check_mask("masked_fill", mask)
    return where(mask, _fill_value("masked_fill", input, value), input)


def masked_select(input: Tensor, mask: Tensor) -> Tensor:
    """The entries of ``input`` where ``mask`` (broadcast with it) is True, as a 1-D tensor.

    Example:
        >>> ember.tensor([[1, 2], [3, 4]]).masked_select(ember.tensor([True, False])).tolist()
        [1, 3]
    """
    _check_mask("masked_select", mask)
    try:
        shape = np.broadcast_shapes(tuple(input.shape), tuple(mask.shape))
    except ValueError:
        raise ShapeError(
            "masked_select",
            f"mask of shape {tuple(mask.shape)} cannot be broadcast with input of shape "
            f"{tuple(input.shape)}",
        ) from None
    x = _unversioned(broadcast_to(input, shape))
    return _index(x, broadcast_to(mask, shape), index=(_T,))


def take(input: Tensor, index: Tensor) -> Tensor:
    """Entries of the flattened ``input`` at ``index`` (the result has ``index``'s shape).

    Example:
        >>> ember.tensor([[1, 2], [3, 4]]).take(ember.tensor([[0, 3]])).tolist()
        [[1, 4]]
    """
    idx = _index_array(input, index, "take")
    return _named("take", _index, _unversioned(reshape(input, (-1,))), idx, index=(_T,))


# -- nonzero -------------------------------------------------------------------------------
@defop("nonzero", saves_inputs=False, onnx="NonZero")
def _nonzero(xp, x):
    return xp.argwhere(x)


@_nonzero.defonnx
def _(g, x):  # ONNX NonZero is (ndim, count): transpose to argwhere's (count, ndim)
    if x.ndim == 0:  # (count, 0), as NumPy's argwhere of a 0-d array
        rows = g.op("NonZero", g.reshape(g.cast(x, "bool"), (1,)))
        return g.op("Transpose", g.slice(rows, [0], [0], [0]), perm=[1, 0])
    return g.op("Transpose", g.op("NonZero", g.cast(x, "bool")), perm=[1, 0])


def nonzero(input: Tensor, *, as_tuple: bool = False) -> Any:
    """Indices of the non-zero entries: an ``(n, ndim)`` int64 tensor, or with ``as_tuple`` one
    1-D tensor per dimension (usable as an index).

    Example:
        >>> ember.tensor([[0, 1], [2, 0]]).nonzero().tolist()
        [[0, 1], [1, 0]]
    """
    if as_tuple:
        x = reshape(input, (1,)) if input.ndim == 0 else input
        rows = _nonzero(x)
        return tuple(_getitem(rows, index=(slice(None), d)) for d in range(x.ndim))
    return _nonzero(input)


argwhere = nonzero


def _inplace(name: str, fn: Any) -> Any:
    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        return apply_inplace(self, name, fn, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"In-place ``{name[:-1]}``; returns self."
    return method


# -- the gather/scatter family (its own file) ----------------------------------------------
from . import gather as _gather_family  # noqa: E402
from .gather import *  # noqa: E402, F403

__all__ += _gather_family.__all__


METHODS = {
    "__getitem__": getitem,
    "__setitem__": setitem,
    "index_put": index_put,
    "masked_fill": masked_fill,
    "masked_select": masked_select,
    "take": take,
    "nonzero": nonzero,
    "argwhere": argwhere,
    "index_put_": _inplace("index_put_", index_put),
    **_gather_family.METHODS,
}

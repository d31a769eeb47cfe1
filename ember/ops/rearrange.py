"""Ops that move or copy values without arithmetic: pad, flip, roll, repeat, tile,
repeat_interleave, tril, triu.

``pad`` follows ``torch.nn.functional.pad``: the pad tuple starts at the *last* dimension
(``(left, right, top, bottom, ...)``); constant padding may be negative (it crops), and the
reflect/replicate/circular modes are made of slices, flips and ``cat`` so their gradients
(and second derivatives) come for free.

Example:
    >>> import ember
    >>> ember.pad(ember.ones(2, 3), (1, 1)).shape
    (2, 5)
"""

from __future__ import annotations

from typing import Any

from ..errors import ShapeError
from ..tensor import Tensor
from ._util import normalize_dim, normalize_dims, normalize_shape
from .creation import clone
from .join import cat
from .registry import REGISTRY, defop
from .shape import broadcast_to, reshape, slice_dim

__all__ = ["pad", "flip", "roll", "repeat", "tile", "repeat_interleave", "tril", "triu"]


# -- pad -----------------------------------------------------------------------------------
@defop("pad", saves_inputs=False, onnx="Pad")
def _pad(xp, x, pads, value):
    """Constant padding; ``pads`` holds one ``(before, after)`` pair per dimension."""
    crop = tuple(
        slice(-b if b < 0 else 0, (n + a if a < 0 else n)) for (b, a), n in zip(pads, x.shape)
    )
    inner = x[crop]
    shape = tuple(s + max(b, 0) + max(a, 0) for (b, a), s in zip(pads, inner.shape))
    out = xp.full(shape, value, dtype=x.dtype)
    out[tuple(slice(max(b, 0), max(b, 0) + s) for (b, _), s in zip(pads, inner.shape))] = inner
    return out


@_pad.defgrad
def _(ctx, g):
    pads = tuple((-b, -a) for b, a in ctx.attrs["pads"])
    return (_pad(g, pads=pads, value=0),)


@_pad.defonnx
def _(g, x, pads, value):  # negative amounts crop, as ONNX Pad allows
    amounts = [b for b, _ in pads] + [a for _, a in pads]
    return g.op("Pad", x, g.ints(amounts), g.scalar(value, x))


_MODES = ("constant", "reflect", "replicate", "circular")


def pad(input: Tensor, pad: Any, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad ``input`` (``torch.nn.functional.pad``): ``pad`` lists ``(before, after)`` amounts
    from the last dimension backwards; ``mode`` is 'constant' (with ``value``, default 0;
    negative amounts crop), 'reflect' (mirror without the edge), 'replicate' (repeat the edge)
    or 'circular' (wrap around).

    Example:
        >>> ember.pad(ember.tensor([1.0, 2.0, 3.0]), (2, 1), mode="reflect").tolist()
        [3.0, 2.0, 1.0, 2.0, 3.0, 2.0]
    """
    amounts = tuple(int(p) for p in pad)
    shape = tuple(input.shape)
    if len(amounts) % 2:
        raise ShapeError("pad", f"padding length must be divisible by 2, got {len(amounts)}")
    k = len(amounts) // 2
    if k > len(shape):
        raise ShapeError(
            "pad",
            f"padding length {len(amounts)} is too large for an input of shape {shape} "
            f"(at most 2 per dimension)",
        )
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {_MODES}, got {mode!r}")
    pads = [(0, 0)] * len(shape)
    for i in range(k):
        pads[len(shape) - 1 - i] = (amounts[2 * i], amounts[2 * i + 1])
    if mode == "constant":
        for d, ((b, a), n) in enumerate(zip(pads, shape)):
            if n + b + a < 0:
                raise ShapeError(
                    "pad",
                    f"the size {n} of dimension {d} plus padding ({b}, {a}) is negative "
                    f"(input shape {shape})",
                )
        if all(p == (0, 0) for p in pads):
            return input
        return _pad(input, pads=tuple(pads), value=0 if value is None else value)
    if value not in (None, 0):
        raise ValueError(f"pad: padding mode {mode!r} doesn't take in value argument")
    out = input
    for d, ((b, a), n) in enumerate(zip(pads, shape)):
        if b == a == 0:
            continue
        _check_mode(mode, d, b, a, n, shape)
        out = cat(_mode_parts(out, mode, d, b, a, n), dim=d)
    return out


def _check_mode(mode: str, d: int, b: int, a: int, n: int, shape: tuple) -> None:
    if b < 0 or a < 0:
        raise ShapeError("pad", f"negative padding ({b}, {a}) needs mode 'constant', not {mode!r}")
    if n == 0:
        raise ShapeError(
            "pad", f"{mode} padding of dimension {d} needs a non-empty dimension (shape {shape})"
        )
    limit, rule = {"reflect": (n - 1, "smaller than"), "circular": (n, "at most")}.get(
        mode, (None, "")
    )
    if limit is not None and max(b, a) > limit:
        raise ShapeError(
            "pad",
            f"{mode} padding ({b}, {a}) of dimension {d} must be {rule} its size {n} "
            f"(input shape {shape})",
        )


def _mode_parts(x: Tensor, mode: str, d: int, b: int, a: int, n: int) -> list[Tensor]:
    parts = []
    if mode == "reflect":
        if b:
            parts.append(flip(slice_dim(x, d, 1, b + 1), d))
        parts.append(x)
        if a:
            parts.append(flip(slice_dim(x, d, n - 1 - a, n - 1), d))
    elif mode == "replicate":
        edge_shape = list(x.shape)
        if b:
            edge_shape[d] = b
            parts.append(broadcast_to(slice_dim(x, d, 0, 1), tuple(edge_shape)))
        parts.append(x)
        if a:
            edge_shape[d] = a
            parts.append(broadcast_to(slice_dim(x, d, n - 1, n), tuple(edge_shape)))
    else:  # circular
        if b:
            parts.append(slice_dim(x, d, n - b, n))
        parts.append(x)
        if a:
            parts.append(slice_dim(x, d, 0, a))
    return parts


# -- flip, roll ----------------------------------------------------------------------------
@defop("flip", saves_inputs=False, onnx=None)
def _flip(xp, x, dims):
    return xp.flip(x, axis=dims)


@_flip.defgrad
def _(ctx, g):
    return (_flip(g, dims=ctx.attrs["dims"]),)


@_flip.defonnx
def _(g, x, dims):
    n = len(dims)
    return g.slice(x, list(dims), [-1] * n, [g.INT64_MIN] * n, [-1] * n)


def flip(input: Tensor, dims: Any) -> Tensor:
    """Reverse the order of entries along ``dims`` (an int or a sequence of ints).

    Example:
        >>> ember.arange(3).flip(0).tolist()
        [2, 1, 0]
    """
    ds = normalize_dims("flip", dims, input.ndim)
    if not ds:
        return clone(input)
    return _flip(input, dims=ds)


@defop("roll", saves_inputs=False, onnx=None)
def _roll(xp, x, shifts, dims):
    return xp.roll(x, shifts, axis=dims)


@_roll.defgrad
def _(ctx, g):
    a = ctx.attrs
    shifts = -a["shifts"] if isinstance(a["shifts"], int) else tuple(-s for s in a["shifts"])
    return (_roll(g, shifts=shifts, dims=a["dims"]),)


@_roll.defonnx
def _(g, x, shifts, dims):
    if dims is None:  # roll the flattened tensor, then restore the shape
        n = 1
        for d in x.shape:
            n *= d
        flat = g.op("Reshape", x, g.ints([-1]), shape=(n,))
        return g.op("Reshape", _roll.onnx(g, flat, shifts, (0,)), g.op("Shape", x))
    shifts = (shifts,) if isinstance(shifts, int) else shifts
    for s, d in zip(shifts, dims):
        n = x.shape[d]
        s %= n if n else 1
        if s:
            head = g.slice(x, [d], [n - s], [n])
            x = g.op("Concat", head, g.slice(x, [d], [0], [n - s]), axis=d, shape=x.shape)
    return x


def roll(input: Tensor, shifts: Any, dims: Any = None) -> Tensor:
    """Shift entries cyclically by ``shifts`` along ``dims`` (the flattened tensor when None).

    Example:
        >>> ember.arange(4).roll(1).tolist()
        [3, 0, 1, 2]
    """
    if dims is None:
        if not isinstance(shifts, int):
            shifts = tuple(shifts)
            if len(shifts) != 1:
                raise ShapeError("roll", f"with dims=None, shifts must be one int, got {shifts}")
            shifts = shifts[0]
        return _roll(input, shifts=int(shifts), dims=None)
    sh = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    ds = (dims,) if isinstance(dims, int) else tuple(dims)
    if len(sh) != len(ds):
        raise ShapeError("roll", f"shifts {sh} and dims {ds} must have the same length")
    ds = tuple(normalize_dim("roll", d, input.ndim) for d in ds)
    return _roll(input, shifts=sh, dims=ds)


# -- repeat, tile, repeat_interleave (broadcast + reshape: one copy) -----------------------
def repeat(input: Tensor, *sizes: Any) -> Tensor:
    """Tile ``input`` ``sizes[i]`` times along each dimension (PyTorch's ``Tensor.repeat``;
    extra leading sizes add dimensions).

    Example:
        >>> ember.tensor([1, 2]).repeat(2, 2).tolist()
        [[1, 2, 1, 2], [1, 2, 1, 2]]
    """
    reps = normalize_shape(sizes)
    shape = tuple(input.shape)
    if len(reps) < len(shape):
        raise ShapeError(
            "repeat",
            f"number of repeat dims {len(reps)} can't be smaller than the number of "
            f"dimensions of the tensor (shape {shape})",
        )
    if any(r < 0 for r in reps):
        raise ShapeError("repeat", f"repeats must be non-negative, got {reps}")
    shape = (1,) * (len(reps) - len(shape)) + shape
    inter = sum(((1, s) for s in shape), ())
    big = sum(((r, s) for r, s in zip(reps, shape)), ())
    out = broadcast_to(reshape(input, inter), big)
    out = reshape(out, tuple(r * s for r, s in zip(reps, shape)))
    return clone(out) if all(r == 1 for r in reps) else out  # always a copy, as in PyTorch


def tile(input: Tensor, dims: Any) -> Tensor:
    """Like :func:`repeat`, but ``dims`` shorter than the tensor's rank is padded with 1s.

    Example:
        >>> ember.zeros(2, 3).tile((2,)).shape
        (2, 6)
    """
    reps = normalize_shape((dims,))
    reps = (1,) * (input.ndim - len(reps)) + reps
    return repeat(input, *reps)


def repeat_interleave(
    input: Tensor, repeats: Any, dim: int | None = None, *, output_size: int | None = None
) -> Tensor:
    """Repeat each entry ``repeats`` times along ``dim`` (the flattened tensor when None);
    ``repeats`` is an int or a 1-D tensor with one count per entry.

    Example:
        >>> ember.tensor([1, 2]).repeat_interleave(2).tolist()
        [1, 1, 2, 2]
    """
    if dim is None:
        input, dim = reshape(input, (-1,)), 0
    d = normalize_dim("repeat_interleave", dim, input.ndim)
    shape = tuple(input.shape)
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
        repeats = int(repeats.item())
    if isinstance(repeats, int):
        if repeats < 0:
            raise ShapeError("repeat_interleave", f"repeats must be non-negative, got {repeats}")
        x = reshape(input, shape[: d + 1] + (1,) + shape[d + 1 :])
        x = broadcast_to(x, shape[: d + 1] + (repeats,) + shape[d + 1 :])
        return reshape(x, shape[:d] + (shape[d] * repeats,) + shape[d + 1 :])
    from .indexing import index_select  # indexing builds on this family

    reps = repeats._data if isinstance(repeats, Tensor) else repeats
    xp = input.device.xp
    reps = xp.asarray(reps)
    if reps.ndim != 1 or reps.shape[0] != shape[d]:
        raise ShapeError(
            "repeat_interleave",
            f"repeats must have shape ({shape[d]},) for dimension {d} of a tensor of shape "
            f"{shape}, got {tuple(reps.shape)}",
        )
    idx = xp.repeat(xp.arange(shape[d]), reps)
    return index_select(input, d, Tensor._make(idx, input.device))


# -- tril, triu ----------------------------------------------------------------------------
def _tri(name: str, fn):
    op = defop(name, saves_inputs=False, onnx="Trilu")(fn)

    @op.defgrad
    def _(ctx, g):
        return (op(g, diagonal=ctx.attrs["diagonal"]),)

    def public(input: Tensor, diagonal: int = 0) -> Tensor:
        if input.ndim < 2:
            raise ShapeError(
                name, f"expects a tensor with at least 2 dimensions, got shape {tuple(input.shape)}"
            )
        return op(input, diagonal=int(diagonal))

    public.__name__ = name
    return public


tril = _tri("tril", lambda xp, x, diagonal: xp.tril(x, diagonal))
tril.__doc__ = """The lower triangle of the last two dimensions (entries above diagonal
``diagonal`` set to 0; positive values keep more).

Example:
    >>> ember.ones(2, 2).tril().tolist()
    [[1.0, 0.0], [1.0, 1.0]]
"""
triu = _tri("triu", lambda xp, x, diagonal: xp.triu(x, diagonal))
triu.__doc__ = """The upper triangle of the last two dimensions (entries below diagonal
``diagonal`` set to 0; positive values keep less).

Example:
    >>> ember.ones(2, 2).triu(1).tolist()
    [[0.0, 1.0], [0.0, 0.0]]
"""


def _tri_onnx(upper: int):
    def lower(g, x, diagonal):
        return g.op("Trilu", x, g.size(diagonal), upper=upper)

    return lower


REGISTRY["tril"].defonnx(_tri_onnx(0))
REGISTRY["triu"].defonnx(_tri_onnx(1))


METHODS = {
    "flip": flip,
    "roll": roll,
    "repeat": repeat,
    "tile": tile,
    "repeat_interleave": repeat_interleave,
    "tril": tril,
    "triu": triu,
}

"""Table rows for the shape family: flatten, narrow, movedim, cat/stack/split, pad, flip,
roll, repeat, tril/triu ..."""

import numpy as np

from .optable import Case, F, I, V, cases


def _pad_torch(*args, **kw):
    def run(m, a):
        return m.nn.functional.pad(a, *args, **kw)

    return run


def _np_pad(pad, mode="constant", value=0.0):
    modes = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}

    def ref(a):
        pairs = [(0, 0)] * a.ndim
        for i in range(len(pad) // 2):
            pairs[a.ndim - 1 - i] = (pad[2 * i], pad[2 * i + 1])
        crop = tuple(slice(max(-b, 0), n - max(-e, 0)) for (b, e), n in zip(pairs, a.shape))
        a = a[crop]
        pairs = [(max(b, 0), max(e, 0)) for b, e in pairs]
        kw = {"constant_values": value} if mode == "constant" else {}
        return np.pad(a, pairs, mode=modes[mode], **kw)

    return ref


def _split_ref(sizes, axis=0):
    def ref(a):
        idx = np.cumsum(sizes)[:-1]
        return np.split(a, idx, axis=axis)

    return ref


CASES = cases(
    # -- flatten / unflatten / ravel
    Case("flatten_from1", lambda m, a: a.flatten(1), [F(2, 3, 4)], ref=lambda a: a.reshape(2, 12)),
    Case("flatten_all", lambda m, a: m.flatten(a), [F(2, 3)], ref=lambda a: a.reshape(-1)),
    Case("flatten_0d", lambda m, a: a.flatten(), [F()], ref=lambda a: a.reshape(1)),
    Case(
        "flatten_mid_noncontig",
        lambda m, a: a.flatten(0, -2),
        [F(2, 3, 4, noncontig=True)],
        ref=lambda a: a.reshape(-1, a.shape[-1]),
    ),
    Case(
        "unflatten",
        lambda m, a: a.unflatten(-1, (2, -1)),
        [F(3, 6)],
        ref=lambda a: a.reshape(3, 2, 3),
    ),
    Case("ravel_noncontig", lambda m, a: a.ravel(), [F(3, 4, noncontig=True)], ref=np.ravel),
    # -- narrow / select / movedim / *_as
    Case("narrow_neg_start", lambda m, a: a.narrow(1, -3, 2), [F(2, 5)], ref=lambda a: a[:, 2:4]),
    Case("narrow_size0", lambda m, a: a.narrow(0, 1, 0), [F(3, 2)], ref=lambda a: a[1:1]),
    Case("select_neg", lambda m, a: a.select(-1, -2), [F(2, 3, 4)], ref=lambda a: a[..., -2]),
    Case(
        "movedim_tuple",
        lambda m, a: m.movedim(a, (0, 1), (2, 0)),
        [F(2, 3, 4)],
        ref=lambda a: np.moveaxis(a, (0, 1), (2, 0)),
    ),
    Case(
        "moveaxis",
        lambda m, a: a.moveaxis(-1, 0),
        [F(2, 3, 4)],
        ref=lambda a: np.moveaxis(a, -1, 0),
    ),
    Case(
        "view_as_reshape_as",
        lambda m, a, b: (a.view_as(b), a.reshape_as(b)),
        [F(6), F(2, 3, grad=False)],
        ref=lambda a, b: (a.reshape(2, 3), a.reshape(2, 3)),
    ),
    Case(
        "expand_as",
        lambda m, a, b: a.expand_as(b),
        [F(3, 1), F(2, 3, 4, grad=False)],
        ref=lambda a, b: np.broadcast_to(a, b.shape),
    ),
    # -- cat / stack
    Case(
        "cat_dim0",
        lambda m, a, b: m.cat([a, b]),
        [F(2, 3), F(1, 3)],
        ref=lambda a, b: np.concatenate([a, b]),
        grad2=True,
    ),
    Case(
        "cat_neg_dim_three",
        lambda m, a, b, c: m.cat((a, b, c), dim=-1),
        [F(2, 1), F(2, 3), F(2, 2, noncontig=True)],
        ref=lambda a, b, c: np.concatenate([a, b, c], -1),
    ),
    Case(
        "cat_size0",
        lambda m, a, b: m.cat([a, b], 0),
        [F(0, 3), F(2, 3)],
        ref=lambda a, b: np.concatenate([a, b]),
    ),
    Case(
        "cat_int",
        lambda m, a, b: m.cat([a, b], 1),
        [I(2, 2), I(2, 3)],
        ref=lambda a, b: np.concatenate([a, b], 1),
        grad=False,
    ),
    Case(
        "cat_promote_int_float",
        lambda m, a, b: m.concat([a, b]),
        [I(2), F(3)],
        ref=lambda a, b: np.concatenate([a.astype(b.dtype), b]),
    ),
    Case("cat_single", lambda m, a: m.concatenate([a], dim=1), [F(2, 2)], ref=lambda a: a),
    Case(
        "stack_dim0",
        lambda m, a, b: m.stack([a, b]),
        [F(2, 3), F(2, 3)],
        ref=lambda a, b: np.stack([a, b]),
        grad2=True,
    ),
    Case(
        "stack_neg_dim",
        lambda m, a, b, c: m.stack([a, b, c], dim=-1),
        [F(3), F(3), F(3)],
        ref=lambda a, b, c: np.stack([a, b, c], -1),
    ),
    Case(
        "hstack_1d",
        lambda m, a, b: m.hstack([a, b]),
        [F(2), F(3)],
        ref=lambda a, b: np.hstack([a, b]),
    ),
    Case(
        "hstack_2d",
        lambda m, a, b: m.hstack([a, b]),
        [F(2, 1), F(2, 3)],
        ref=lambda a, b: np.hstack([a, b]),
    ),
    Case(
        "vstack",
        lambda m, a, b: m.vstack([a, b]),
        [F(3), F(2, 3)],
        ref=lambda a, b: np.vstack([a, b]),
    ),
    Case(
        "dstack",
        lambda m, a, b: m.dstack([a, b]),
        [F(2, 3), F(2, 3)],
        ref=lambda a, b: np.dstack([a, b]),
    ),
    # -- split / chunk / unbind
    Case("split_int", lambda m, a: a.split(2), [F(5, 2)], ref=_split_ref([2, 2, 1])),
    Case(
        "split_sizes_neg_dim",
        lambda m, a: m.split(a, [1, 3, 0], dim=-1),
        [F(2, 4)],
        ref=_split_ref([1, 3, 0], axis=-1),
    ),
    Case("chunk_uneven", lambda m, a: a.chunk(3, 1), [F(2, 5)], ref=_split_ref([2, 2, 1], axis=1)),
    Case("chunk_fewer", lambda m, a: m.chunk(a, 4), [F(6)], ref=_split_ref([2, 2, 2])),
    Case(
        "unbind_dim1",
        lambda m, a: a.unbind(1),
        [F(2, 3, noncontig=True)],
        ref=lambda a: [a[:, i] for i in range(3)],
    ),
    # -- pad (torch.nn.functional.pad)
    Case(
        "pad_constant_last",
        lambda m, a: m.pad(a, (1, 2)),
        [F(2, 3)],
        ref=_np_pad((1, 2)),
        torch_fn=_pad_torch((1, 2)),
        grad2=True,
    ),
    Case(
        "pad_constant_value_2d",
        lambda m, a: m.pad(a, (1, 0, 2, 1), value=1.5),
        [F(2, 3, 2)],
        ref=_np_pad((1, 0, 2, 1), value=1.5),
        torch_fn=_pad_torch((1, 0, 2, 1), value=1.5),
    ),
    Case(
        "pad_constant_negative_crop",
        lambda m, a: m.pad(a, (-1, 2, 1, -2)),
        [F(4, 5)],
        ref=_np_pad((-1, 2, 1, -2)),
        torch_fn=_pad_torch((-1, 2, 1, -2)),
        grad2=True,
    ),
    Case(
        "pad_constant_all_dims",
        lambda m, a: m.pad(a, (1, 1, 0, 1, 2, 0)),
        [F(2, 2, 2, noncontig=True)],
        ref=_np_pad((1, 1, 0, 1, 2, 0)),
        torch_fn=_pad_torch((1, 1, 0, 1, 2, 0)),
    ),
    Case(
        "pad_constant_int",
        lambda m, a: m.pad(a, (2, 1), value=7),
        [I(2, 3)],
        ref=_np_pad((2, 1), value=7),
        torch_fn=_pad_torch((2, 1), value=7),
        grad=False,
    ),
    Case(
        "pad_reflect_1d",
        lambda m, a: m.pad(a, (2, 3), mode="reflect"),
        [F(2, 5)],
        ref=_np_pad((2, 3), "reflect"),
        torch_fn=_pad_torch((2, 3), mode="reflect"),
        grad2=True,
    ),
    Case(
        "pad_reflect_2d",
        lambda m, a: m.pad(a, (1, 2, 2, 1), mode="reflect"),
        [F(1, 2, 4, 3)],
        ref=_np_pad((1, 2, 2, 1), "reflect"),
        torch_fn=_pad_torch((1, 2, 2, 1), mode="reflect"),
    ),
    Case(
        "pad_replicate_1d",
        lambda m, a: m.pad(a, (3, 1), mode="replicate"),
        [F(2, 3, 4)],
        ref=_np_pad((3, 1), "replicate"),
        torch_fn=_pad_torch((3, 1), mode="replicate"),
        grad2=True,
    ),
    Case(
        "pad_replicate_2d",
        lambda m, a: m.pad(a, (0, 2, 1, 1), mode="replicate"),
        [F(1, 2, 3, 3)],
        ref=_np_pad((0, 2, 1, 1), "replicate"),
        torch_fn=_pad_torch((0, 2, 1, 1), mode="replicate"),
    ),
    Case(
        "pad_circular_1d",
        lambda m, a: m.pad(a, (2, 3), mode="circular"),
        [F(1, 2, 4)],
        ref=_np_pad((2, 3), "circular"),
        torch_fn=_pad_torch((2, 3), mode="circular"),
        grad2=True,
    ),
    Case(
        "pad_circular_2d",
        lambda m, a: m.pad(a, (1, 1, 3, 0), mode="circular"),
        [F(1, 1, 3, 4)],
        ref=_np_pad((1, 1, 3, 0), "circular"),
        torch_fn=_pad_torch((1, 1, 3, 0), mode="circular"),
    ),
    # -- flip / roll
    Case(
        "flip_dims",
        lambda m, a: a.flip((0, 2)),
        [F(2, 3, 4)],
        ref=lambda a: a[::-1, :, ::-1],
        grad2=True,
    ),
    Case(
        "flip_neg_int",
        lambda m, a: m.flip(a, (-1,)),
        [I(2, 3)],
        ref=lambda a: a[:, ::-1],
        grad=False,
    ),
    Case(
        "roll_dims",
        lambda m, a: a.roll((1, -2), (0, -1)),
        [F(3, 4, noncontig=True)],
        ref=lambda a: np.roll(a, (1, -2), (0, 1)),
    ),
    Case("roll_flat", lambda m, a: m.roll(a, 5), [F(2, 3)], ref=lambda a: np.roll(a, 5)),
    Case(
        "roll_int",
        lambda m, a: a.roll(-1, 1),
        [I(2, 3)],
        ref=lambda a: np.roll(a, -1, 1),
        grad=False,
    ),
    # -- repeat / tile / repeat_interleave
    Case(
        "repeat_more_dims",
        lambda m, a: a.repeat(2, 1, 3),
        [F(2, 3)],
        ref=lambda a: np.tile(a, (2, 1, 3)),
        grad2=True,
    ),
    Case("repeat_size1", lambda m, a: a.repeat(3, 2), [F(1, 2)], ref=lambda a: np.tile(a, (3, 2))),
    Case("repeat_ones", lambda m, a: a.repeat(1, 1), [F(2, 2)], ref=lambda a: a.copy()),
    Case("repeat_int", lambda m, a: a.repeat(2), [I(3)], ref=lambda a: np.tile(a, 2), grad=False),
    Case("tile_short", lambda m, a: a.tile((2,)), [F(2, 3)], ref=lambda a: np.tile(a, 2)),
    Case(
        "tile_long", lambda m, a: m.tile(a, (2, 1, 2)), [F(3)], ref=lambda a: np.tile(a, (2, 1, 2))
    ),
    Case(
        "repeat_interleave_int_dim",
        lambda m, a: a.repeat_interleave(2, dim=1),
        [F(2, 3)],
        ref=lambda a: np.repeat(a, 2, axis=1),
    ),
    Case(
        "repeat_interleave_flat",
        lambda m, a: m.repeat_interleave(a, 3),
        [F(2, 2)],
        ref=lambda a: np.repeat(a, 3),
    ),
    Case(
        "repeat_interleave_tensor",
        lambda m, a, r: a.repeat_interleave(r, dim=0),
        [F(3, 2), V([1, 0, 2])],
        ref=lambda a, r: np.repeat(a, r, axis=0),
    ),
    # -- tril / triu
    Case("tril", lambda m, a: a.tril(), [F(3, 4)], ref=np.tril),
    Case(
        "tril_batched_neg", lambda m, a: m.tril(a, -1), [F(2, 3, 3)], ref=lambda a: np.tril(a, -1)
    ),
    Case(
        "triu_diag1", lambda m, a: a.triu(1), [F(4, 3, noncontig=True)], ref=lambda a: np.triu(a, 1)
    ),
    Case(
        "triu_int", lambda m, a: m.triu(a, -1), [I(3, 3)], ref=lambda a: np.triu(a, -1), grad=False
    ),
)

"""The fused attention kernels (``sdpa``) against ember's NumPy composite, PyTorch and finite
differences.

The kernels run in float32 and float64, on 1 and 2 threads, over edge shapes (T = 1, odd
lengths and head dims such as 7 and 33, L != S, Ev != E, 2-D to 4-D operands), every mask
kind (none, causal, bool with fully masked rows, float with -inf, broadcast masks), the
strided views a GPT block makes with ``transpose(1, 2)``, and inputs holding inf and NaN,
which must land exactly where the composite puts them. The gradients of q, k, v split from
one fused qkv projection come back interleaved in one buffer (``packed``), so that the
engine's merge of the split's slice gradients is a view, not a copy, eagerly and compiled.
The kernels' blocking has its own cases: 8 x 8 transposed tiles with tails (and inf/NaN
inside them), more than 64 query rows (the backward's chunks), one-vector column blocks,
the GPT layouts, exponentials that round into denormals or to zero, and the thread policy
that keeps small calls on the calling thread.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
import ember.ops.join as join
from ember import kernels
from ember.kernels.attention import heads_inner, packed_qkv
from ember.ops.registry import REGISTRY

from .conftest import assert_close, numpy_path

DTYPES = [np.float32, np.float64]
# (batch dims, L, S, E, Ev)
SHAPES = [
    ((2, 3), 5, 5, 4, 4),
    ((1, 1), 1, 1, 1, 1),
    ((2, 2), 7, 7, 33, 33),
    ((1, 2), 3, 6, 7, 5),
    ((3,), 9, 4, 2, 3),
    ((), 4, 4, 8, 8),
]
ODD_SHAPES = [  # (batch dims, L, S, E, Ev): 8 x 8 transposed tiles with tails, L > 64 (the
    # backward's chunks of 64 rows), one-vector column blocks, length 1 and 3
    ((2,), 17, 17, 17, 9),
    ((1, 2), 65, 65, 8, 16),
    ((1,), 3, 17, 65, 3),
    ((2, 1), 65, 1, 3, 1),
    ((1, 1), 12, 12, 24, 40),
]
MASKS = ["none", "causal", "bool", "float", "bool_broadcast"]


def _ref(op: str, *arrays, **attrs):
    with numpy_path():
        return REGISTRY[op].forward(np, *arrays, **attrs)


def _operands(batch, L, S, E, Ev, dtype, seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(batch + (L, E)).astype(dtype)
    k = rng.standard_normal(batch + (S, E)).astype(dtype)
    v = rng.standard_normal(batch + (S, Ev)).astype(dtype)
    g = rng.standard_normal(batch + (L, Ev)).astype(dtype)
    return rng, q, k, v, g


def _mask(kind, rng, batch, L, S, dtype):
    if kind in ("none", "causal"):
        return None
    if kind == "bool_broadcast":
        m = rng.random((L, S)) < 0.6
        m[0] = False  # a fully masked row
        return m
    m = rng.random(batch + (L, S)) < 0.6
    m[..., L // 2, :] = False
    if kind == "bool":
        return m
    f = rng.standard_normal(batch + (L, S)).astype(dtype)
    return np.where(m, f, dtype(-np.inf)).astype(dtype)


def _check(q, k, v, g, mask, scale, causal, inner=False):
    out = kernels.sdpa_forward(q, k, v, mask, scale, causal)
    extra = () if mask is None else (mask,)
    assert_close(out, _ref("sdpa", q, k, v, *extra, scale=scale, causal=causal))
    grads = kernels.sdpa_backward(g, q, k, v, mask, scale, causal, inner)
    want = _ref("sdpa_backward", g, q, k, v, *extra, scale=scale, causal=causal, heads_inner=inner)
    assert_close(grads, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES + ODD_SHAPES, ids=str)
@pytest.mark.parametrize("kind", MASKS)
def test_kernels_match_the_composite(c_kernels, threaded, shape, dtype, kind):
    batch, L, S, E, Ev = shape
    rng, q, k, v, g = _operands(batch, L, S, E, Ev, dtype, 3)
    mask = _mask(kind, rng, batch, L, S, dtype)
    _check(q, k, v, g, mask, 1.0 / np.sqrt(E), kind == "causal")


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_views_of_a_gpt_block_are_read_in_place(c_kernels, threaded, dtype):
    B, T, H, HD = 3, 10, 4, 6
    rng = np.random.default_rng(5)
    qkv = rng.standard_normal((B, T, 3 * H * HD)).astype(dtype)
    q, k, v = (a.reshape(B, T, H, HD).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1))
    assert not q.flags.c_contiguous
    g = rng.standard_normal((B, H, T, HD)).astype(dtype).transpose(0, 1, 3, 2).copy()
    g = g.transpose(0, 1, 3, 2)  # a non-contiguous output gradient too
    for causal in (False, True):
        for inner in (False, True):  # gradients raveled as (B, H, T, HD) or (B, T, H, HD)
            _check(q, k, v, g, None, 0.4, causal, inner)
    # the output takes the layout of q: heads inside rows, so transposing back is free
    out = kernels.sdpa_forward(q, k, v, None, 0.4, True)
    assert heads_inner(out) and out.transpose(0, 2, 1, 3).flags.c_contiguous
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    assert kernels.sdpa_forward(qc, kc, vc, None, 0.4, True).flags.c_contiguous
    # reversed and broadcast operands
    _check(q[:, ::-1], k[:, ::-1], v[:, ::-1], g, None, 0.4, True)
    kb = np.broadcast_to(k[:1], k.shape)
    _check(q, kb, v, g, None, 0.4, False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
@pytest.mark.parametrize("where", ["q", "k", "v", "g"])
def test_inf_and_nan_spread_like_the_composite(c_kernels, dtype, kind, where):
    batch, L, S, E, Ev = (2, 2), 5, 5, 3, 3
    rng, q, k, v, g = _operands(batch, L, S, E, Ev, dtype, 11)
    arrays = {"q": q, "k": k, "v": v, "g": g}
    a = arrays[where]
    a[0, 0, 1, 2] = np.nan
    a[1, 1, 3, 0] = np.inf
    a[1, 0, 4, 1] = -np.inf
    mask = _mask(kind, rng, batch, L, S, dtype)
    _check(q, k, v, g, mask, 0.5, kind == "causal")


def test_fully_masked_rows_give_zeros_and_unmasked_nan_rows_stay_nan(c_kernels):
    q = k = v = np.ones((1, 2, 2), np.float32)
    mask = np.array([[True, True], [False, False]])
    out = kernels.sdpa_forward(q, k, v, mask, 1.0, False)
    assert out is not None
    assert out[0, 1].tolist() == [0.0, 0.0] and out[0, 0].tolist() == [1.0, 1.0]
    grads = kernels.sdpa_backward(np.ones_like(q), q, k, v, mask, 1.0, False)
    assert grads[:4].reshape(2, 2)[1].tolist() == [0.0, 0.0]  # dq of the masked row
    qn = q.copy()
    qn[0, 0, 0] = np.nan
    out = kernels.sdpa_forward(qn, k, v, None, 1.0, False)
    assert np.isnan(out[0, 0]).all() and not np.isnan(out[0, 1]).any()


def test_declines_what_it_does_not_serve(c_kernels):
    q = np.ones((2, 3, 4), np.float32)
    assert kernels.sdpa_forward(q.astype(np.float16), q, q, None, 1.0, False) is None
    assert kernels.sdpa_forward(q, q.astype(np.float64), q, None, 1.0, False) is None
    assert kernels.sdpa_forward(q, q[:1], q[:1], None, 1.0, False) is None  # batch broadcast
    assert (
        kernels.sdpa_forward(q[None, None], q[None, None], q[None, None], None, 1.0, False) is None
    )
    assert kernels.sdpa_forward(q, q, q, np.ones((3, 3), np.int64), 1.0, False) is None
    assert kernels.sdpa_forward(q[:, :0], q[:, :0], q[:, :0], None, 1.0, False) is None


# -- through the public function -------------------------------------------------------------
def _tensors(arrays, grad=True):
    return [ember.tensor(a, requires_grad=grad) for a in arrays]


def _run(q, k, v, g, **kw):
    qt, kt, vt = _tensors((q, k, v))
    out = F.scaled_dot_product_attention(qt, kt, vt, **kw)
    out.backward(ember.tensor(g))
    return out, [t.grad.numpy() for t in (qt, kt, vt)]


@pytest.mark.parametrize("kind", MASKS)
def test_gradients_match_torch_in_float64(c_kernels, threaded, kind):
    torch = pytest.importorskip("torch")
    batch, L, S, E, Ev = (2, 3), 6, 7, 5, 4
    rng, q, k, v, g = _operands(batch, L, S, E, Ev, np.float64, 7)
    if kind == "causal":
        L = S
        rng, q, k, v, g = _operands(batch, L, S, E, Ev, np.float64, 7)
    mask = _mask(kind, rng, batch, L, S, np.float64)
    kw = {"is_causal": True} if kind == "causal" else {}
    out, grads = _run(q, k, v, g, attn_mask=None if mask is None else ember.tensor(mask), **kw)
    assert out.grad_fn.name == "sdpa"
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tm = None if mask is None else torch.tensor(mask)
    to = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, **kw)
    to.backward(torch.tensor(g))
    np.testing.assert_allclose(out.detach().numpy(), to.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, t in zip(grads, (tq, tk, tv)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("causal", [False, True])
def test_first_and_second_order_finite_differences(c_kernels, causal):
    rng = np.random.default_rng(2)
    q, k, v = (ember.tensor(rng.standard_normal((2, 4, 3)), requires_grad=True) for _ in range(3))

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=0.7)

    assert fn(q, k, v).grad_fn.name == "sdpa"
    assert ember.autograd.gradcheck(fn, (q, k, v))
    assert ember.autograd.gradgradcheck(fn, (q, k, v))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASKS)
def test_numpy_mode_gives_the_same_results(c_kernels, dtype, kind):
    batch, L, S, E, Ev = (2, 2), 7, 7, 33, 33
    rng, q, k, v, g = _operands(batch, L, S, E, Ev, dtype, 9)
    mask = _mask(kind, rng, batch, L, S, dtype)
    kw = {"is_causal": kind == "causal"}
    if mask is not None:
        kw["attn_mask"] = ember.tensor(mask)
    out, grads = _run(q, k, v, g, **kw)
    with numpy_path():
        ref, ref_grads = _run(q, k, v, g, **kw)
    assert out.grad_fn.name == ref.grad_fn.name == "sdpa"
    assert_close(out.detach().numpy(), ref.detach().numpy())
    for a, b in zip(grads, ref_grads):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_gpt_block_through_the_public_function(c_kernels, threaded, dtype):
    """qkv split into heads, attention, heads merged back: the kernels' layouts (heads inside
    rows) give what the NumPy path gives, forward and backward."""
    B, T, H, HD = 2, 9, 3, 5
    rng = np.random.default_rng(8)
    qkv, g = (rng.standard_normal((B, T, n * H * HD)).astype(dtype) for n in (3, 1))

    def run():
        x = ember.tensor(qkv, requires_grad=True)
        q, k, v = (a.reshape(B, T, H, HD).transpose(1, 2) for a in x.split(H * HD, dim=-1))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = a.transpose(1, 2).reshape(B, T, H * HD)
        y.backward(ember.tensor(g))
        return y.detach().numpy(), x.grad.numpy()

    got = run()
    with numpy_path():
        want = run()
    for a, b in zip(got, want):
        assert_close(a, b)


def test_the_composite_serves_the_rest():
    q = ember.randn(2, 3, 4, requires_grad=True)
    mask = ember.randn(3, 3, requires_grad=True)
    assert F.scaled_dot_product_attention(q, q, q, attn_mask=mask).grad_fn.name != "sdpa"
    assert F.scaled_dot_product_attention(q, q, q, dropout_p=0.5).grad_fn.name != "sdpa"
    k = ember.randn(1, 3, 4)
    assert F.scaled_dot_product_attention(q, k, k).grad_fn.name != "sdpa"
    assert F.scaled_dot_product_attention(q, q, q).grad_fn.name == "sdpa"


# -- packed gradients: q, k, v split from one fused qkv projection ---------------------------
def _split_qkv(qkv, H, E):
    """The three heads views of a (B, T, 3 H E) array, as a GPT block makes them."""
    B, T = qkv.shape[:2]
    return [a.reshape(B, T, H, E).transpose(0, 2, 1, 3) for a in np.split(qkv, 3, -1)]


def _interleave(flat, shape):
    """The unpacked (``heads_inner``) flat gradients laid out as the packed ones."""
    B, H, L, E = shape
    parts = np.split(flat, 3)
    return np.stack([p.reshape(B, L, H, E) for p in parts], axis=2).ravel()


def test_packed_qkv_recognises_the_split_of_one_projection():
    qkv = np.zeros((2, 5, 3 * 4 * 8), np.float32)
    q, k, v = _split_qkv(qkv, 4, 8)
    assert packed_qkv(q, k, v)
    assert not packed_qkv(k, q, v) and not packed_qkv(q, q, q)
    assert not packed_qkv(*(np.ascontiguousarray(a) for a in (q, k, v)))
    assert not packed_qkv(*_split_qkv(qkv, 8, 4)[:1] * 3)
    other = _split_qkv(np.zeros_like(qkv), 4, 8)
    assert not packed_qkv(q, other[1], other[2])
    wide = np.zeros((2, 5, 4 * 4 * 8), np.float32)[..., : 3 * 4 * 8]  # rows 4 H E apart
    assert not packed_qkv(*_split_qkv(wide, 4, 8))
    assert not packed_qkv(q[0], k[0], v[0])  # 3-D
    assert not packed_qkv(q, k.astype(np.float64), v)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["none", "causal", "bool", "float"])
def test_packed_gradients_equal_the_unpacked_ones(c_kernels, threaded, dtype, kind):
    B, T, H, E = 2, 7, 3, 5
    rng = np.random.default_rng(21)
    qkv = rng.standard_normal((B, T, 3 * H * E)).astype(dtype)
    q, k, v = _split_qkv(qkv, H, E)
    g = rng.standard_normal((B, T, H, E)).astype(dtype).transpose(0, 2, 1, 3)
    mask = _mask(kind, rng, (B, H), T, T, dtype)
    extra = () if mask is None else (mask,)
    causal = kind == "causal"
    unpacked = kernels.sdpa_backward(g, q, k, v, mask, 0.4, causal, True)
    packed = kernels.sdpa_backward(g, q, k, v, mask, 0.4, causal, True, True)
    assert packed.shape == unpacked.shape
    np.testing.assert_array_equal(packed, _interleave(unpacked, q.shape))
    want = _ref(
        "sdpa_backward", g, q, k, v, *extra, scale=0.4, causal=causal, heads_inner=True, packed=True
    )
    assert_close(packed, want)
    assert_close(want, _interleave(_ref("sdpa_backward", g, q, k, v, *extra, scale=0.4,
                                        causal=causal, heads_inner=True), q.shape))  # fmt: skip
    # any q, k, v of one 4-D shape may be packed (contiguous ones too); other shapes may not
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    assert_close(kernels.sdpa_backward(g, qc, kc, vc, mask, 0.4, causal, False, True), packed)
    k2, v2 = (a[:, :, : T - 1] for a in (k, v))
    assert kernels.sdpa_backward(g, q, k2, v2, None, 0.4, False, True, True) is None
    with pytest.raises(ember.errors.ShapeError, match="packed"):
        _ref("sdpa_backward", g, q, k2, v2, scale=0.4, causal=False, packed=True)


def _gpt_block(qkv, H, E, causal=True):
    """Split a (B, T, 3 H E) tensor into heads, attend, merge the heads back."""
    B, T = qkv.shape[:2]
    q, k, v = (a.reshape(B, T, H, E).transpose(1, 2) for a in qkv.split(H * E, dim=-1))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return a.transpose(1, 2).reshape(B, T, H * E)


@pytest.fixture
def merges(monkeypatch):
    """The results of the engine's joins of slice gradients (None: a copy was made)."""
    seen = []
    real = join.adjacent_view

    def spy(arrays, dim):
        out = real(arrays, dim)
        seen.append(out)
        return out

    monkeypatch.setattr(join, "adjacent_view", spy)
    return seen


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_gpt_block_merges_its_qkv_gradients_without_a_copy(c_kernels, merges, dtype):
    B, T, H, E = 2, 6, 3, 4
    rng = np.random.default_rng(4)
    qkv, g = (rng.standard_normal((B, T, n * H * E)).astype(dtype) for n in (3, 1))

    def run():
        x = ember.tensor(qkv, requires_grad=True)
        y = _gpt_block(x * 1.0, H, E)  # (x * 1: the merged gradient flows on into mul)
        y.backward(ember.tensor(g))
        return x.grad.numpy()

    got = run()
    with numpy_path():  # EMBER_KERNELS=numpy: the NumPy path packs the same way
        want = run()
    assert_close(got, want)
    assert len(merges) == 2 and all(m is not None and m.shape == qkv.shape for m in merges)
    assert all(m.flags.c_contiguous for m in merges)


@pytest.mark.parametrize("causal", [False, True])
def test_packed_gradients_by_finite_differences(c_kernels, merges, causal):
    rng = np.random.default_rng(6)
    x = ember.tensor(rng.standard_normal((2, 4, 3 * 2 * 3)), requires_grad=True)
    fn = lambda x: _gpt_block(x, 2, 3, causal)  # noqa: E731
    assert ember.autograd.gradcheck(fn, (x,))
    assert merges and merges[0] is not None  # (the packed path was taken)
    assert ember.autograd.gradgradcheck(fn, (x,))


def _gpt_step(m, w_qkv, w_proj, x, r, H, E):
    """A W3-like attention block's training step in framework ``m``: fused qkv linear,
    split, heads, causal attention, projection, a loss, backward."""
    B, T, D = x.shape
    qkv = m.matmul(x, w_qkv)
    q, k, v = (a.reshape(B, T, H, E).transpose(1, 2) for a in qkv.split(H * E, dim=2))
    a = m.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    y = m.matmul(a.transpose(1, 2).reshape(B, T, H * E), w_proj)
    loss = (y * r).sum()
    loss.backward()
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_compiled_gpt_block_matches_eager_and_torch(c_kernels, dtype):
    torch = pytest.importorskip("torch")
    B, T, D, H, E = 2, 8, 12, 3, 4
    rng = np.random.default_rng(12)
    arrays = [rng.standard_normal(s).astype(dtype) * 0.5 for s in
              ((D, 3 * H * E), (H * E, D), (B, T, D), (B, T, D))]  # fmt: skip

    def ember_grads(compiled):
        w1, w2 = (ember.tensor(a, requires_grad=True) for a in arrays[:2])
        x, r = (ember.tensor(a) for a in arrays[2:])

        def step():
            w1.grad = w2.grad = None
            return _gpt_step(ember, w1, w2, x, r, H, E)

        f = ember.compile(step) if compiled else step
        out = []
        for _ in range(3):  # traced, then replayed
            loss = f()
            out.append([loss.item(), w1.grad.numpy().copy(), w2.grad.numpy().copy()])
        return out, f

    eager, _ = ember_grads(False)
    compiled, f = ember_grads(True)
    code = f.code
    assert "packed=True" in code and "f_cat_or_view(" in code and "f_cat(" not in code
    tw1, tw2 = (torch.tensor(a, requires_grad=True) for a in arrays[:2])
    tloss = _gpt_step(torch, tw1, tw2, *(torch.tensor(a) for a in arrays[2:]), H, E)
    want = [tloss.item(), tw1.grad.numpy(), tw2.grad.numpy()]
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == np.float64 else {"rtol": 2e-4, "atol": 2e-4}
    for run in (*eager, *compiled):
        np.testing.assert_allclose(run[0], want[0], **tol)
        for a, b in zip(run[1:], want[1:]):
            np.testing.assert_allclose(a, b, **tol)
    for a, b in zip(eager[0][1:], compiled[-1][1:]):
        assert_close(a, b)
    with numpy_path():
        plain, _ = ember_grads(True)
    for a, b in zip(plain[-1][1:], want[1:]):
        np.testing.assert_allclose(a, b, **tol)


# -- the kernels' blocking: tiles, tails, chunks, exponentials, threads ----------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("T", [64, 19])
def test_the_gpt_shapes_read_in_place(c_kernels, threaded, dtype, T):
    """The W3/W4 layout (T = 64, 4 heads of 32, split from one qkv projection), causal."""
    rng = np.random.default_rng(17)
    q, k, v = _split_qkv(rng.standard_normal((2, T, 3 * 4 * 32)).astype(dtype), 4, 32)
    g = rng.standard_normal((2, T, 4, 32)).astype(dtype).transpose(0, 2, 1, 3)
    for causal in (True, False):
        _check(q, k, v, g, None, 32**-0.5, causal, True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["q", "k", "v", "g"])
@pytest.mark.parametrize("kind", ["none", "causal", "bool"])
def test_non_finite_entries_inside_the_tiles_spread_like_the_composite(
    c_kernels, dtype, where, kind
):
    batch, L, S, E, Ev = (2,), 19, 19, 17, 17
    rng, q, k, v, g = _operands(batch, L, S, E, Ev, dtype, 23)
    a = {"q": q, "k": k, "v": v, "g": g}[where]
    a[0, 9, 10] = np.nan  # inside an 8 x 8 tile of the transposed k or v
    a[1, 17, 16] = np.inf  # in the tails (row 16 + 1, column 16)
    a[1, 2, 3] = -np.inf
    mask = _mask(kind, rng, batch, L, S, dtype)
    _check(q, k, v, g, mask, 0.3, kind == "causal")


@pytest.mark.parametrize("dtype", DTYPES)
def test_exponentials_round_into_denormals_and_to_zero(c_kernels, dtype):
    """Scores 0, -100 and -110 below the row's largest: exp gives 1, a denormal (float32) and
    0; values of 1e38 make the denormal weight visible in the output."""
    q = np.ones((1, 3, 1), dtype)
    k = np.array([[[0.0], [-100.0], [-110.0]]], dtype)
    v = np.array([[[0.0, 1.0], [1e38, 1.0], [1e38, 1.0]]], dtype)
    g = np.ones((1, 3, 2), dtype)
    for causal in (False, True):
        _check(q, k, v, g, None, 1.0, causal)
    out = kernels.sdpa_forward(q, k, v, None, 1.0, False)
    with np.errstate(under="ignore"):
        want = (np.exp(dtype(-100.0)) + np.exp(dtype(-110.0))) * dtype(1e38)
    assert out[0, 0, 0] == pytest.approx(want, rel=1e-5) and out[0, 0, 0] > 0


def test_small_calls_stay_on_the_calling_thread(monkeypatch):
    from ember import threads
    from ember.kernels.attention import _threads

    monkeypatch.setattr(threads, "_kernel_threads", 2)
    W3, W4 = (32, 4, 64, 64, 32, 32), (1, 4, 64, 64, 32, 32)
    assert _threads(W4, True, False) == 1 and _threads(W4, True, True) == 1
    assert _threads(W3, True, False) == 2 and _threads(W3, True, True) == 2
    assert _threads((8, 4, 64, 64, 32, 32), True, False) == 2

"""MultiheadAttention and the Transformer layers against PyTorch: PyTorch's weights copied
across through ``load_state_dict``, then outputs, attention weights and the gradients of the
inputs and every parameter compared in float64 (eval mode: dropout off)."""

import copy
import warnings

import numpy as np
import pytest

import ember
from ember.nn.layers import attention as attention_module
from ember.nn.layers import transformer as transformer_module
from ember.nn.layers.attention import MultiheadAttention
from ember.nn.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)
from tests.nn.helpers import (
    assert_close,
    assert_doctests_pass,
    assert_param_grads_close,
    backward_through_outputs,
    load_torch_weights,
    to_numpy,
)

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")

E, NHEAD, N, L, S = 8, 2, 2, 4, 5


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def check(make_th, make_em, arrays, order=None, masks=None, kwargs=None, seed=0, train=False):
    """Run both modules on ``arrays`` (differentiated; ``order`` lists which array each
    positional argument is, so that self-attention passes the very same tensor three times),
    with ``masks`` (name -> array, not differentiated) and plain ``kwargs``; compare outputs
    and all gradients."""
    torch.manual_seed(seed)
    th, em = load_torch_weights(make_th(), make_em())
    th.train(train), em.train(train)
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    e_in = [ember.tensor(a, requires_grad=True) for a in arrays]
    order = range(len(arrays)) if order is None else order
    masks, kwargs = masks or {}, kwargs or {}
    t_kw = {k: torch.tensor(v) for k, v in masks.items()} | kwargs
    e_kw = {k: ember.tensor(v) for k, v in masks.items()} | kwargs
    t_out = th(*[t_in[i] for i in order], **t_kw)
    e_out = em(*[e_in[i] for i in order], **e_kw)
    if not isinstance(t_out, tuple):
        t_out, e_out = (t_out,), (e_out,)
    backward_through_outputs(e_out, t_out, np.random.default_rng(seed + 1))
    for k, (e, t) in enumerate(zip(e_in, t_in)):
        assert_close(e.grad, t.grad, f"grad of input {k}")
    assert_param_grads_close(em, th)
    return em, th


def _mha(**kw):
    return (lambda: torch.nn.MultiheadAttention(E, NHEAD, **kw),
            lambda: MultiheadAttention(E, NHEAD, **kw))  # fmt: skip


# -- MultiheadAttention ---------------------------------------------------------------------
def _qkv(kind, batch_first=False, kdim=E, vdim=E, batched=True):
    """Inputs and their order for self, cross (key is value) and separate attention."""

    def shape(n, e):
        if not batched:
            return (n, e)
        return (N, n, e) if batch_first else (n, N, e)

    if kind == "self":
        return [_x(*shape(L, E))], [0, 0, 0]
    if kind == "cross":
        return [_x(*shape(L, E)), _x(*shape(S, kdim), seed=1)], [0, 1, 1]
    return [_x(*shape(L, E)), _x(*shape(S, kdim), seed=1), _x(*shape(S, vdim), seed=2)], [0, 1, 2]


def _run_mha(kind, module_kw=None, masks=None, batch_first=False, batched=True, **fwd):
    module_kw = dict(module_kw or {}, batch_first=batch_first)
    arrays, order = _qkv(kind, batch_first, module_kw.get("kdim", E), module_kw.get("vdim", E),
                        batched)  # fmt: skip
    make_th, make_em = _mha(**module_kw)
    return check(make_th, make_em, arrays, order, masks=masks, kwargs=fwd)


@pytest.mark.parametrize("kind", ["self", "cross", "separate"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "no_weights"])
@pytest.mark.parametrize("average", [True, False], ids=["avg", "per_head"])
def test_mha_inputs(kind, batch_first, need_weights, average):
    _run_mha(kind, batch_first=batch_first, need_weights=need_weights,
             average_attn_weights=average)  # fmt: skip


@pytest.mark.parametrize(
    "module_kw",
    [
        {"bias": False},
        {"kdim": 3, "vdim": 6},
        {"kdim": 3, "vdim": 6, "bias": False},
        {"add_bias_kv": True},
        {"add_zero_attn": True},
        {"add_bias_kv": True, "add_zero_attn": True},
    ],
    ids=["no_bias", "kdim_vdim", "kdim_vdim_no_bias", "bias_kv", "zero_attn", "bias_kv_zero"],
)
@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "no_weights"])
def test_mha_options(module_kw, need_weights):
    kind = "separate" if "kdim" in module_kw else "cross"
    masks = {"key_padding_mask": _kpm(), "attn_mask": _bool_mask(L, S)}
    _run_mha(kind, module_kw, masks=masks, need_weights=need_weights)


def _kpm(s=S):
    m = np.zeros((N, s), bool)
    m[0, -1] = m[1, 1] = True
    return m


def _bool_mask(lq, s, seed=0):
    m = np.random.default_rng(seed).random((lq, s)) < 0.3
    m[:, 0] = False  # every query keeps key 0 (which no padding or causal mask hides)
    return m


MASKS = {
    "bool_attn": lambda: {"attn_mask": _bool_mask(L, S)},
    "float_attn": lambda: {"attn_mask": _x(L, S, seed=4)},
    "bool_attn_3d": lambda: {
        "attn_mask": np.stack([_bool_mask(L, S, seed=i) for i in range(N * NHEAD)])
    },
    "float_attn_3d": lambda: {"attn_mask": _x(N * NHEAD, L, S, seed=5)},
    "bool_kpm": lambda: {"key_padding_mask": _kpm()},
    "float_kpm": lambda: {"key_padding_mask": _x(N, S, seed=6)},
    "bool_both": lambda: {"attn_mask": _bool_mask(L, S), "key_padding_mask": _kpm()},
    "float_both": lambda: {"attn_mask": _x(L, S, seed=4), "key_padding_mask": _x(N, S, seed=6)},
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "no_weights"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_mha_masks(mask, need_weights, batch_first):
    _run_mha("cross", masks=MASKS[mask](), batch_first=batch_first, need_weights=need_weights)


@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "no_weights"])
@pytest.mark.parametrize("with_kpm", [False, True], ids=["mask", "mask_kpm"])
def test_mha_is_causal_hint(need_weights, with_kpm):
    masks = {"attn_mask": np.triu(np.ones((L, L), bool), 1)}
    if with_kpm:
        masks["key_padding_mask"] = _kpm(L)
    _run_mha("self", masks=masks, need_weights=need_weights, is_causal=True)


def test_mha_is_causal_without_mask_applies_the_causal_mask():
    mha = MultiheadAttention(E, NHEAD).double()
    x = ember.tensor(_x(L, N, E))
    causal = ember.tensor(np.triu(np.ones((L, L), bool), 1))
    for need_weights in (True, False):
        ref = mha(x, x, x, attn_mask=causal, need_weights=need_weights)[0]
        assert_close(mha(x, x, x, is_causal=True, need_weights=need_weights)[0], ref, "causal")


@pytest.mark.parametrize("kind", ["self", "cross", "separate"])
@pytest.mark.parametrize("need_weights", [True, False], ids=["weights", "no_weights"])
def test_mha_unbatched(kind, need_weights):
    module_kw = {"kdim": 3, "vdim": 6} if kind == "separate" else {}
    masks = {"key_padding_mask": np.array([False, True, False, False, False][:S])}
    if kind == "self":
        masks = {"attn_mask": np.triu(np.ones((L, L), bool), 1)}
    _run_mha(kind, module_kw, masks=masks, batched=False, need_weights=need_weights,
             average_attn_weights=False)  # fmt: skip


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_mha_fully_masked_row():
    """All keys padded for one batch entry: zeros without weights (scaled_dot_product_attention)
    and NaN with weights, as PyTorch."""
    kpm = np.zeros((N, L), bool)
    kpm[0] = True
    for need_weights in (False, True):
        torch.manual_seed(0)
        th, em = load_torch_weights(
            torch.nn.MultiheadAttention(E, NHEAD), MultiheadAttention(E, NHEAD)
        )
        x = _x(L, N, E)
        t = th(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(kpm),
               need_weights=need_weights)  # fmt: skip
        e = em(*[ember.tensor(x)] * 3, key_padding_mask=ember.tensor(kpm),
               need_weights=need_weights)  # fmt: skip
        assert_close(e[0], t[0], "output", equal_nan=True)


def test_mha_dropout_only_in_training():
    mha = MultiheadAttention(E, NHEAD, dropout=0.5).double()
    x = ember.tensor(_x(L, N, E))
    ref_out, ref_w = mha.eval()(x, x, x)
    mha.train()
    ember.manual_seed(0)
    out, w = mha(x, x, x)
    assert not np.allclose(to_numpy(out), to_numpy(ref_out))
    assert not np.allclose(to_numpy(w), to_numpy(ref_w))
    out2, _ = mha(x, x, x, need_weights=False)
    assert not np.allclose(to_numpy(out2), to_numpy(ref_out))


def test_mha_init_and_names():
    mha = MultiheadAttention(16, 4, kdim=5, vdim=7, add_bias_kv=True)
    th = torch.nn.MultiheadAttention(16, 4, kdim=5, vdim=7, add_bias_kv=True)
    assert [(n, p.shape) for n, p in mha.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in th.named_parameters()
    ]
    assert mha.in_proj_weight is None
    assert not to_numpy(mha.in_proj_bias).any() and not to_numpy(mha.out_proj.bias).any()
    bound = np.sqrt(6 / (16 + 16))
    assert np.abs(to_numpy(mha.q_proj_weight)).max() <= bound


def test_mha_errors():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        MultiheadAttention(10, 3)
    with pytest.raises(ValueError, match="greater than 0"):
        MultiheadAttention(0, 1)
    mha = MultiheadAttention(E, NHEAD)
    x = ember.zeros(L, N, E)
    with pytest.raises(ember.ShapeError, match=r"2-D attn_mask is \(4, 3\), but should be"):
        mha(x, x, x, attn_mask=ember.zeros(L, 3, dtype=ember.bool))
    with pytest.raises(ember.ShapeError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=ember.zeros(N, L + 1, dtype=ember.bool))
    with pytest.raises(ember.DTypeError, match="only bool and floating"):
        mha(x, x, x, attn_mask=ember.zeros(L, L, dtype=ember.int64))
    with pytest.raises(ember.ShapeError, match="expected key and value to be 3-D"):
        mha(x, ember.zeros(L, E), ember.zeros(L, E))
    with pytest.raises(ember.ShapeError, match="embedding dimension of 8, but got 4"):
        mha(ember.zeros(L, N, 4), x, x)
    with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
        mha(x, x, x, attn_mask=ember.zeros(L, L), key_padding_mask=ember.zeros(N, L) > 1)


# -- encoder layer and encoder --------------------------------------------------------------
def _layer_pair(cls_name, **kw):
    kw = {"dim_feedforward": 16} | kw
    return (lambda: getattr(torch.nn, cls_name)(E, NHEAD, **kw),
            lambda: getattr(transformer_module, cls_name)(E, NHEAD, **kw))  # fmt: skip


@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("masked", [False, True], ids=["no_mask", "masks"])
def test_encoder_layer(norm_first, activation, batch_first, masked):
    make_th, make_em = _layer_pair(
        "TransformerEncoderLayer", norm_first=norm_first, activation=activation,
        batch_first=batch_first,
    )  # fmt: skip
    x = _x(N, L, E) if batch_first else _x(L, N, E)
    masks = {}
    if masked:
        masks = {"src_mask": _bool_mask(L, L), "src_key_padding_mask": _kpm(L)}
    check(make_th, make_em, [x], masks=masks)


def test_encoder_layer_callable_activation_and_options():
    kw = dict(dim_feedforward=16, bias=False, layer_norm_eps=1e-3)
    pairs = [
        (torch.nn.functional.silu, ember.nn.functional.silu),
        (torch.nn.GELU(), ember.nn.GELU()),  # a module: registered as a child, in the repr
    ]
    for th_act, em_act in pairs:
        em, th = check(
            lambda a=th_act: torch.nn.TransformerEncoderLayer(E, NHEAD, activation=a, **kw),
            lambda a=em_act: TransformerEncoderLayer(E, NHEAD, activation=a, **kw),
            [_x(L, N, E)],
        )
        assert em.activation_relu_or_gelu == th.activation_relu_or_gelu


def test_encoder_layer_unbatched_and_causal():
    make_th, make_em = _layer_pair("TransformerEncoderLayer")
    causal = np.triu(np.ones((L, L), bool), 1)
    check(make_th, make_em, [_x(L, E)], masks={"src_mask": causal}, kwargs={"is_causal": True})


@pytest.mark.parametrize("with_norm", [False, True], ids=["no_norm", "norm"])
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
def test_encoder(with_norm, norm_first):
    kw = dict(dim_feedforward=16, norm_first=norm_first, batch_first=True)

    def make_th():
        norm = torch.nn.LayerNorm(E) if with_norm else None
        layer = torch.nn.TransformerEncoderLayer(E, NHEAD, **kw)
        return torch.nn.TransformerEncoder(layer, 2, norm=norm, enable_nested_tensor=False)

    def make_em():
        norm = ember.nn.LayerNorm(E) if with_norm else None
        return TransformerEncoder(TransformerEncoderLayer(E, NHEAD, **kw), 2, norm=norm)

    masks = {"mask": np.triu(np.ones((L, L), bool), 1), "src_key_padding_mask": _kpm(L)}
    check(make_th, make_em, [_x(N, L, E)], masks=masks)


@pytest.mark.parametrize("is_causal", [None, False, True])
def test_encoder_causal_mask(is_causal):
    mask = np.where(np.triu(np.ones((L, L), bool), 1), -np.inf, 0.0)
    check(
        lambda: torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(E, NHEAD, 16), 2,
                                            enable_nested_tensor=False),
        lambda: TransformerEncoder(TransformerEncoderLayer(E, NHEAD, 16), 2),
        [_x(L, N, E)], masks={"mask": mask}, kwargs={"is_causal": is_causal},
    )  # fmt: skip


def test_encoder_layers_are_independent_copies():
    layer = TransformerEncoderLayer(E, NHEAD, 16)
    enc = TransformerEncoder(layer, 3)
    weights = [m.linear1.weight for m in enc.layers]
    assert len({id(w) for w in weights}) == 3 and all(
        w is not layer.linear1.weight for w in weights
    )
    for w in weights[1:]:
        np.testing.assert_array_equal(to_numpy(w), to_numpy(weights[0]))
    with ember.no_grad():
        weights[0].mul_(0)
    assert to_numpy(weights[1]).any() and to_numpy(layer.linear1.weight).any()
    assert len(list(enc.parameters())) == 3 * len(list(layer.parameters()))
    assert copy.deepcopy(enc).layers[0].linear1.weight is not weights[0]


@pytest.mark.parametrize("cls", ["TransformerEncoderLayer", "TransformerDecoderLayer"])
def test_train_mode_dropout_changes_outputs(cls):
    em = getattr(transformer_module, cls)(E, NHEAD, 16, dropout=0.3).double()
    args = [ember.tensor(_x(L, N, E))]
    if cls == "TransformerDecoderLayer":
        args.append(ember.tensor(_x(S, N, E, seed=1)))
    ref = to_numpy(em.eval()(*args))
    assert_close(em(*args), ref, "eval mode is deterministic")
    em.train()
    ember.manual_seed(0)
    a, b = to_numpy(em(*args)), to_numpy(em(*args))
    assert not np.allclose(a, ref) and not np.allclose(a, b)


# -- decoder and the whole Transformer ------------------------------------------------------
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_norm", "pre_norm"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_decoder_layer(norm_first, batch_first):
    make_th, make_em = _layer_pair(
        "TransformerDecoderLayer", norm_first=norm_first, batch_first=batch_first,
        activation="gelu",
    )  # fmt: skip
    tgt = _x(N, L, E) if batch_first else _x(L, N, E)
    mem = _x(N, S, E, seed=1) if batch_first else _x(S, N, E, seed=1)
    masks = {
        "tgt_mask": np.triu(np.ones((L, L), bool), 1),
        "memory_mask": _bool_mask(L, S),
        "tgt_key_padding_mask": _kpm(L),
        "memory_key_padding_mask": _kpm(S),
    }
    check(make_th, make_em, [tgt, mem], masks=masks)


def test_decoder_stack():
    check(
        lambda: torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(E, NHEAD, 16), 2,
                                            norm=torch.nn.LayerNorm(E)),
        lambda: TransformerDecoder(TransformerDecoderLayer(E, NHEAD, 16), 2,
                                   norm=ember.nn.LayerNorm(E)),
        [_x(L, N, E), _x(S, N, E, seed=1)],
        masks={"tgt_mask": np.where(np.triu(np.ones((L, L), bool), 1), -np.inf, 0.0)},
    )  # fmt: skip


def test_transformer():
    kw = dict(d_model=E, nhead=NHEAD, num_encoder_layers=2, num_decoder_layers=1,
              dim_feedforward=16, batch_first=True)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em, th = check(
            lambda: torch.nn.Transformer(**kw), lambda: Transformer(**kw),
            [_x(N, S, E), _x(N, L, E, seed=1)],
            masks={
                "tgt_mask": torch.nn.Transformer.generate_square_subsequent_mask(L).numpy(),
                "src_key_padding_mask": _kpm(S),
                "memory_key_padding_mask": _kpm(S),
            },
        )  # fmt: skip
    assert_close(Transformer.generate_square_subsequent_mask(3),
           torch.nn.Transformer.generate_square_subsequent_mask(3), "causal mask")  # fmt: skip


def test_transformer_init_is_xavier():
    model = Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                        dim_feedforward=32)  # fmt: skip
    w = to_numpy(model.encoder.layers[0].linear1.weight)
    assert np.abs(w).max() <= np.sqrt(6 / (16 + 32))
    with pytest.raises(ValueError, match="batch number of src and tgt"):
        model(ember.zeros(3, 2, 16), ember.zeros(3, 4, 16))


def test_activation_errors():
    with pytest.raises(ValueError, match="relu/gelu"):
        TransformerEncoderLayer(E, NHEAD, activation="tanh")
    with pytest.raises(TypeError, match="callable"):
        TransformerEncoderLayer(E, NHEAD, activation=3)


def test_functional_form_matches_module():
    mha = MultiheadAttention(E, NHEAD).double()
    x = ember.tensor(_x(L, N, E))
    out, w = attention_module.multi_head_attention_forward(
        x, x, x, E, NHEAD, mha.in_proj_weight, mha.in_proj_bias, None, None, False, 0.0,
        mha.out_proj.weight, mha.out_proj.bias,
    )  # fmt: skip
    ref_out, ref_w = mha(x, x, x)
    assert_close(out, ref_out, "output")
    assert_close(w, ref_w, "weights")


@pytest.mark.parametrize("modname", ["ember.nn.layers.attention", "ember.nn.layers.transformer"])
def test_docstring_examples(modname):
    assert_doctests_pass(modname, at_least=10)

"""Every layer against PyTorch: same constructor arguments, PyTorch's weights copied across
through ``load_state_dict`` (so state-dict keys must match too), then forward outputs,
input gradients, parameter gradients, buffers and reprs compared in float64."""

import warnings

import numpy as np
import pytest

import ember
from tests.nn.helpers import assert_close, assert_param_grads_close, load_torch_weights

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


# -- inputs ----------------------------------------------------------------------------------
def f(*shape, scale=1.0):
    """A float input that is differentiated."""
    return ("f", shape, scale)


def c(*shape):
    """A float input that is not differentiated (targets)."""
    return ("c", shape, 1.0)


def prob(*shape):
    """Values in (0.05, 0.95), differentiated (BCE inputs)."""
    return ("p", shape, 1.0)


def unit(*shape):
    """Values in [0, 1], not differentiated (BCE targets)."""
    return ("u", shape, 1.0)


def dist(*shape):
    """Rows of a probability distribution over dim 1, not differentiated."""
    return ("d", shape, 1.0)


def i(*shape, high=5, low=0):
    """Integer class indices in [low, high)."""
    return ("i", shape, (low, high))


def _make(spec, rng):
    kind, shape, extra = spec
    if kind == "i":
        return rng.integers(extra[0], extra[1], size=shape).astype(np.int64)
    if kind == "p":
        return rng.uniform(0.05, 0.95, size=shape)
    if kind == "u":
        return rng.uniform(0.0, 1.0, size=shape)
    if kind == "d":
        x = rng.random(shape) + 0.1
        return x / x.sum(axis=1, keepdims=True)
    return rng.standard_normal(shape) * extra


def _close(a, b, what, rtol=1e-7, atol=1e-9):
    assert_close(a, b, what, rtol=rtol, atol=atol)


def check_layer(make, specs, *, train=True, grad=True, seed=0, steps=1):
    """Build the layer in both frameworks from ``make(lib)``, copy torch's state into ember
    and compare everything on the inputs made from ``specs``."""
    rng = np.random.default_rng(seed)
    th, em = load_torch_weights(make(torch), make(ember))
    th.train(train), em.train(train)
    for _ in range(steps):
        arrays = [_make(s, rng) for s in specs]
        needs = [grad and s[0] in "fp" for s in specs]
        e_in = [ember.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
        t_in = [torch.tensor(a, requires_grad=n) for a, n in zip(arrays, needs)]
        eo, to = em(*e_in), th(*t_in)
        if isinstance(to, tuple):
            for k, (x, y) in enumerate(zip(eo, to)):
                _close(x, y, f"output {k}")
            eo, to = eo[0], to[0]
        else:
            _close(eo, to, "output")
        for (name, b1), (_, b2) in zip(em.named_buffers(), th.named_buffers()):
            _close(b1, b2, f"buffer {name}")
        if not (grad and to.requires_grad):
            continue
        cot = rng.standard_normal(tuple(to.shape))
        (eo * ember.tensor(cot)).sum().backward()
        (to * torch.tensor(cot)).sum().backward()
        for k, (x, y) in enumerate(zip(e_in, t_in)):
            if y.requires_grad:
                _close(x.grad, y.grad, f"grad of input {k}")
        assert_param_grads_close(em, th, close=_close)
    return em, th


# -- the table -------------------------------------------------------------------------------
LAYERS = {
    "linear": (lambda L: L.nn.Linear(5, 3), [f(4, 5)]),
    "linear_no_bias_3d": (lambda L: L.nn.Linear(5, 3, bias=False), [f(2, 4, 5)]),
    "linear_unbatched": (lambda L: L.nn.Linear(5, 3), [f(5)]),
    "bilinear": (lambda L: L.nn.Bilinear(3, 4, 2), [f(5, 3), f(5, 4)]),
    "identity": (lambda L: L.nn.Identity(7, x=1), [f(2, 3)]),
    "flatten": (lambda L: L.nn.Flatten(), [f(2, 3, 4)]),
    "flatten_0_1": (lambda L: L.nn.Flatten(0, 1), [f(2, 3, 4)]),
    "unflatten": (lambda L: L.nn.Unflatten(1, (2, 3)), [f(4, 6)]),
    "unflatten_neg": (lambda L: L.nn.Unflatten(-1, (2, -1)), [f(4, 6)]),
    "conv1d": (lambda L: L.nn.Conv1d(4, 6, 3, stride=2, padding=1), [f(2, 4, 9)]),
    "conv1d_groups_dilation": (
        lambda L: L.nn.Conv1d(4, 6, 3, dilation=2, groups=2, bias=False),
        [f(2, 4, 11)],
    ),
    "conv1d_same": (lambda L: L.nn.Conv1d(3, 2, 4, padding="same"), [f(2, 3, 7)]),
    "conv1d_valid": (lambda L: L.nn.Conv1d(3, 2, 4, padding="valid"), [f(2, 3, 7)]),
    "conv1d_reflect": (
        lambda L: L.nn.Conv1d(3, 2, 3, padding=2, padding_mode="reflect"),
        [f(2, 3, 7)],
    ),
    "conv1d_circular": (
        lambda L: L.nn.Conv1d(3, 2, 3, padding=1, padding_mode="circular"),
        [f(2, 3, 7)],
    ),
    "conv1d_unbatched": (lambda L: L.nn.Conv1d(3, 2, 3), [f(3, 8)]),
    "conv2d": (lambda L: L.nn.Conv2d(3, 4, 3, padding=1), [f(2, 3, 6, 5)]),
    "conv2d_mixed": (
        lambda L: L.nn.Conv2d(
            4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False
        ),
        [f(2, 4, 7, 8)],
    ),
    "conv2d_same_dilated": (
        lambda L: L.nn.Conv2d(2, 3, (3, 4), padding="same", dilation=2),
        [f(1, 2, 9, 8)],
    ),
    "conv2d_replicate": (
        lambda L: L.nn.Conv2d(2, 3, 3, padding=1, padding_mode="replicate"),
        [f(1, 2, 5, 5)],
    ),
    "conv2d_circular_same": (
        lambda L: L.nn.Conv2d(2, 3, 4, padding="same", padding_mode="circular"),
        [f(1, 2, 6, 6)],
    ),
    "conv2d_unbatched": (lambda L: L.nn.Conv2d(2, 3, 3), [f(2, 5, 5)]),
    "conv_transpose1d": (
        lambda L: L.nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1, output_padding=1),
        [f(2, 4, 5)],
    ),
    "conv_transpose2d": (
        lambda L: L.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1),
        [f(2, 4, 4, 3)],
    ),
    "conv_transpose2d_groups": (
        lambda L: L.nn.ConvTranspose2d(
            4, 6, (2, 3), stride=(1, 2), groups=2, dilation=(2, 1), bias=False
        ),
        [f(1, 4, 3, 4)],
    ),
    "maxpool1d": (lambda L: L.nn.MaxPool1d(3, stride=2, padding=1), [f(2, 3, 9)]),
    "maxpool1d_ceil_dilation": (
        lambda L: L.nn.MaxPool1d(2, dilation=2, ceil_mode=True),
        [f(2, 3, 10)],
    ),
    "maxpool2d": (lambda L: L.nn.MaxPool2d(2), [f(2, 3, 6, 7)]),
    "maxpool2d_indices": (
        lambda L: L.nn.MaxPool2d((3, 2), stride=(2, 1), padding=1, return_indices=True),
        [f(1, 2, 7, 5)],
    ),
    "avgpool1d": (lambda L: L.nn.AvgPool1d(3, stride=2, padding=1), [f(2, 3, 9)]),
    "avgpool1d_no_pad_count": (
        lambda L: L.nn.AvgPool1d(3, padding=1, ceil_mode=True, count_include_pad=False),
        [f(2, 3, 10)],
    ),
    "avgpool2d": (lambda L: L.nn.AvgPool2d(2), [f(2, 3, 6, 6)]),
    "avgpool2d_options": (
        lambda L: L.nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
        [f(1, 2, 7, 6)],
    ),
    "avgpool2d_divisor": (lambda L: L.nn.AvgPool2d(2, divisor_override=3), [f(1, 2, 4, 4)]),
    "adaptive_avgpool1d": (lambda L: L.nn.AdaptiveAvgPool1d(4), [f(2, 3, 10)]),
    "adaptive_avgpool2d": (lambda L: L.nn.AdaptiveAvgPool2d((3, 2)), [f(2, 3, 7, 5)]),
    "adaptive_avgpool2d_none": (lambda L: L.nn.AdaptiveAvgPool2d((None, 1)), [f(2, 3, 4, 5)]),
    "adaptive_avgpool2d_global": (lambda L: L.nn.AdaptiveAvgPool2d(1), [f(2, 3, 4, 5)]),
    "adaptive_maxpool1d": (lambda L: L.nn.AdaptiveMaxPool1d(3), [f(2, 3, 8)]),
    "adaptive_maxpool2d": (lambda L: L.nn.AdaptiveMaxPool2d((2, 3)), [f(2, 3, 5, 7)]),
    "batchnorm1d_2d": (lambda L: L.nn.BatchNorm1d(4), [f(8, 4, scale=2.0)]),
    "batchnorm1d_3d": (lambda L: L.nn.BatchNorm1d(3, momentum=0.3), [f(4, 3, 5)]),
    "batchnorm2d": (lambda L: L.nn.BatchNorm2d(3), [f(4, 3, 5, 5)]),
    "batchnorm2d_no_affine": (lambda L: L.nn.BatchNorm2d(3, affine=False), [f(2, 3, 4, 4)]),
    "batchnorm2d_untracked": (
        lambda L: L.nn.BatchNorm2d(3, track_running_stats=False),
        [f(2, 3, 4, 4)],
    ),
    "batchnorm3d": (lambda L: L.nn.BatchNorm3d(2, eps=1e-3), [f(2, 2, 3, 3, 3)]),
    "layernorm": (lambda L: L.nn.LayerNorm(6), [f(3, 4, 6)]),
    "layernorm_2d_shape": (lambda L: L.nn.LayerNorm((4, 6), eps=1e-3), [f(3, 4, 6)]),
    "layernorm_no_affine": (lambda L: L.nn.LayerNorm(6, elementwise_affine=False), [f(3, 6)]),
    "layernorm_no_bias": (lambda L: L.nn.LayerNorm(6, bias=False), [f(3, 6)]),
    "groupnorm": (lambda L: L.nn.GroupNorm(2, 6), [f(3, 6, 4, 4)]),
    "groupnorm_no_affine_3d": (lambda L: L.nn.GroupNorm(3, 6, affine=False), [f(2, 6, 5)]),
    "groupnorm_no_bias": (lambda L: L.nn.GroupNorm(3, 6, bias=False), [f(2, 6, 5)]),
    "batchnorm1d_no_bias": (lambda L: L.nn.BatchNorm1d(3, bias=False), [f(5, 3)]),
    "instancenorm1d": (lambda L: L.nn.InstanceNorm1d(3), [f(2, 3, 6)]),
    "instancenorm1d_unbatched": (lambda L: L.nn.InstanceNorm1d(3, affine=True), [f(3, 6)]),
    "instancenorm2d_tracked": (
        lambda L: L.nn.InstanceNorm2d(3, affine=True, track_running_stats=True),
        [f(2, 3, 4, 5)],
    ),
    "rmsnorm": (lambda L: L.nn.RMSNorm(6), [f(3, 4, 6)]),
    "rmsnorm_eps_2d": (lambda L: L.nn.RMSNorm((4, 6), eps=1e-3), [f(3, 4, 6)]),
    "rmsnorm_no_affine": (lambda L: L.nn.RMSNorm(6, elementwise_affine=False), [f(2, 6)]),
    "embedding": (lambda L: L.nn.Embedding(10, 4), [i(3, 5, high=10)]),
    "embedding_padding": (lambda L: L.nn.Embedding(10, 4, padding_idx=2), [i(6, 5, high=10)]),
    "embedding_neg_padding": (lambda L: L.nn.Embedding(6, 3, padding_idx=-1), [i(8, high=6)]),
    "dropout_eval": (lambda L: L.nn.Dropout(0.5), [f(4, 5)]),
    "dropout_p0": (lambda L: L.nn.Dropout(0.0), [f(4, 5)]),
}

ACTIVATIONS = {
    "relu": lambda L: L.nn.ReLU(),
    "relu6": lambda L: L.nn.ReLU6(),
    "leaky_relu": lambda L: L.nn.LeakyReLU(),
    "leaky_relu_02": lambda L: L.nn.LeakyReLU(0.2),
    "prelu": lambda L: L.nn.PReLU(),
    "prelu_channels": lambda L: L.nn.PReLU(6, init=0.1),
    "elu": lambda L: L.nn.ELU(),
    "elu_alpha": lambda L: L.nn.ELU(alpha=0.5),
    "selu": lambda L: L.nn.SELU(),
    "celu": lambda L: L.nn.CELU(alpha=2.0),
    "gelu": lambda L: L.nn.GELU(),
    "gelu_tanh": lambda L: L.nn.GELU(approximate="tanh"),
    "silu": lambda L: L.nn.SiLU(),
    "mish": lambda L: L.nn.Mish(),
    "softplus": lambda L: L.nn.Softplus(),
    "softplus_beta": lambda L: L.nn.Softplus(beta=2.0, threshold=3.0),
    "softsign": lambda L: L.nn.Softsign(),
    "sigmoid": lambda L: L.nn.Sigmoid(),
    "logsigmoid": lambda L: L.nn.LogSigmoid(),
    "tanh": lambda L: L.nn.Tanh(),
    "hardtanh": lambda L: L.nn.Hardtanh(),
    "hardtanh_range": lambda L: L.nn.Hardtanh(-2.0, 0.5),
    "hardsigmoid": lambda L: L.nn.Hardsigmoid(),
    "hardswish": lambda L: L.nn.Hardswish(),
    "softmax": lambda L: L.nn.Softmax(dim=1),
    "softmax_last": lambda L: L.nn.Softmax(dim=-1),
    "log_softmax": lambda L: L.nn.LogSoftmax(dim=0),
    "softmin": lambda L: L.nn.Softmin(dim=1),
    "threshold": lambda L: L.nn.Threshold(0.3, -2.0),
    "hardshrink": lambda L: L.nn.Hardshrink(),
    "softshrink": lambda L: L.nn.Softshrink(0.8),
    "tanhshrink": lambda L: L.nn.Tanhshrink(),
    "glu": lambda L: L.nn.GLU(dim=1),
    "glu_last": lambda L: L.nn.GLU(),
}

INPLACE_ACTIVATIONS = {
    "relu": lambda L: L.nn.ReLU(inplace=True),
    "relu6": lambda L: L.nn.ReLU6(inplace=True),
    "leaky_relu": lambda L: L.nn.LeakyReLU(0.1, inplace=True),
    "elu": lambda L: L.nn.ELU(inplace=True),
    "selu": lambda L: L.nn.SELU(inplace=True),
    "silu": lambda L: L.nn.SiLU(inplace=True),
    "hardtanh": lambda L: L.nn.Hardtanh(inplace=True),
    "threshold": lambda L: L.nn.Threshold(0.1, 20.0, inplace=True),
}


def _w(L, values):
    return L.tensor(np.array(values, dtype=np.float64))


LOSSES = {
    "mse": (lambda L: L.nn.MSELoss(), [f(4, 3), f(4, 3)]),
    "mse_sum": (lambda L: L.nn.MSELoss(reduction="sum"), [f(4, 3), c(4, 3)]),
    "mse_none": (lambda L: L.nn.MSELoss(reduction="none"), [f(4, 3), c(4, 3)]),
    "l1": (lambda L: L.nn.L1Loss(), [f(4, 3), f(4, 3)]),
    "l1_none": (lambda L: L.nn.L1Loss(reduction="none"), [f(2, 5), c(2, 5)]),
    "smooth_l1": (lambda L: L.nn.SmoothL1Loss(beta=0.5), [f(4, 3), c(4, 3)]),
    "smooth_l1_sum": (lambda L: L.nn.SmoothL1Loss(reduction="sum"), [f(6), c(6)]),
    "huber": (lambda L: L.nn.HuberLoss(delta=0.7), [f(4, 3), c(4, 3)]),
    "huber_none": (lambda L: L.nn.HuberLoss(reduction="none"), [f(4, 3), c(4, 3)]),
    "nll": (lambda L: L.nn.NLLLoss(), [f(4, 5), i(4)]),
    "nll_weight_ignore": (
        lambda L: L.nn.NLLLoss(weight=_w(L, [1, 2, 0.5, 1, 3]), ignore_index=1),
        [f(6, 5), i(6)],
    ),
    "nll_kdim_sum": (lambda L: L.nn.NLLLoss(reduction="sum"), [f(2, 5, 3), i(2, 3)]),
    "cross_entropy": (lambda L: L.nn.CrossEntropyLoss(), [f(4, 5), i(4)]),
    "cross_entropy_none": (lambda L: L.nn.CrossEntropyLoss(reduction="none"), [f(4, 5), i(4)]),
    "cross_entropy_weight": (
        lambda L: L.nn.CrossEntropyLoss(weight=_w(L, [1, 2, 0.5, 1, 3])),
        [f(6, 5), i(6)],
    ),
    "cross_entropy_ignore": (
        lambda L: L.nn.CrossEntropyLoss(ignore_index=0),
        [f(8, 3), i(8, high=3)],
    ),
    "cross_entropy_smoothing": (
        lambda L: L.nn.CrossEntropyLoss(label_smoothing=0.1),
        [f(5, 4), i(5, high=4)],
    ),
    "cross_entropy_kdim": (lambda L: L.nn.CrossEntropyLoss(), [f(2, 4, 3, 2), i(2, 3, 2, high=4)]),
    "cross_entropy_probs": (lambda L: L.nn.CrossEntropyLoss(), [f(4, 5), dist(4, 5)]),
    "bce": (lambda L: L.nn.BCELoss(), [prob(4, 3), unit(4, 3)]),
    "bce_weight_sum": (
        lambda L: L.nn.BCELoss(weight=_w(L, [1, 2, 3]), reduction="sum"),
        [prob(4, 3), unit(4, 3)],
    ),
    "bce_logits": (lambda L: L.nn.BCEWithLogitsLoss(), [f(4, 3), unit(4, 3)]),
    "bce_logits_pos_weight": (
        lambda L: L.nn.BCEWithLogitsLoss(pos_weight=_w(L, [1, 2, 3]), weight=_w(L, [0.5, 1, 2])),
        [f(4, 3, scale=3.0), unit(4, 3)],
    ),
    "bce_logits_none": (lambda L: L.nn.BCEWithLogitsLoss(reduction="none"), [f(5), unit(5)]),
    "kl_div_batchmean": (lambda L: L.nn.KLDivLoss(reduction="batchmean"), [f(4, 5), dist(4, 5)]),
    "kl_div_log_target": (
        lambda L: L.nn.KLDivLoss(reduction="sum", log_target=True),
        [f(4, 5), c(4, 5)],
    ),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_matches_torch(name):
    make, specs = LAYERS[name]
    train = not name.startswith("dropout")
    check_layer(make, specs, train=train)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_matches_torch(name):
    check_layer(ACTIVATIONS[name], [f(4, 6, 2, scale=3.0)])


@pytest.mark.parametrize("name", list(INPLACE_ACTIVATIONS))
def test_inplace_activation_matches_torch(name):
    check_layer(INPLACE_ACTIVATIONS[name], [f(3, 4, scale=3.0)], grad=False)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_torch(name):
    make, specs = LOSSES[name]
    check_layer(make, specs)


# -- state across steps and modes ------------------------------------------------------------
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_running_stats_over_steps_then_eval(momentum):
    em, th = check_layer(lambda L: L.nn.BatchNorm2d(3, momentum=momentum), [f(4, 3, 2, 2)], steps=3)
    assert int(em.num_batches_tracked) == 3
    em.eval(), th.eval()
    x = np.random.default_rng(5).standard_normal((2, 3, 2, 2))
    _close(em(ember.tensor(x)), th(torch.tensor(x)), "eval output")
    _close(em.running_var, th.running_var, "running_var after eval")


def test_batchnorm_eval_uses_running_stats():
    check_layer(lambda L: L.nn.BatchNorm1d(4), [f(6, 4)], train=False)
    check_layer(lambda L: L.nn.BatchNorm1d(4, track_running_stats=False), [f(6, 4)], train=False)


def test_embedding_from_pretrained_and_padding_gradient():
    w = np.random.default_rng(0).standard_normal((5, 3))
    em = ember.nn.Embedding.from_pretrained(ember.tensor(w))
    th = torch.nn.Embedding.from_pretrained(torch.tensor(w))
    assert repr(em) == repr(th) and not em.weight.requires_grad
    idx = [[0, 4], [2, 2]]
    _close(em(ember.tensor(idx)), th(torch.tensor(idx)), "from_pretrained")
    emb = ember.nn.Embedding.from_pretrained(ember.tensor(w), freeze=False, padding_idx=1)
    assert emb.weight.requires_grad and emb.padding_idx == 1
    emb(ember.tensor([1, 1, 3])).sum().backward()
    g = emb.weight.grad.numpy()
    assert np.all(g[1] == 0) and np.all(g[3] == 1)


def test_conv_transpose_output_size():
    em, th = check_layer(lambda L: L.nn.ConvTranspose2d(2, 3, 3, stride=2), [f(1, 2, 4, 4)])
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4))
    for size in [(10, 9), (1, 3, 10, 10), (9, 9)]:
        out = em(ember.tensor(x), output_size=size)
        _close(out, th(torch.tensor(x), output_size=size), f"output_size={size}")
    with pytest.raises(ValueError, match="valid sizes range from 9 to 10"):
        em(ember.tensor(x), output_size=(12, 9))


def test_dropout_training_statistics():
    ember.manual_seed(0)
    drop = ember.nn.Dropout(0.3)
    x = ember.ones(200, 100)
    y = drop(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert not np.any(ember.nn.Dropout(1.0)(x).numpy())
    drop.eval()
    assert drop(x) is x or np.all(drop(x).numpy() == 1)


def test_channel_dropout_zeroes_whole_channels():
    ember.manual_seed(1)
    for drop, shape in [
        (ember.nn.Dropout1d(0.5), (40, 30, 6)),
        (ember.nn.Dropout2d(0.5), (40, 30, 3, 2)),
    ]:
        y = drop(ember.ones(*shape)).numpy().reshape(40, 30, -1)
        per_channel = y.min(axis=-1) == y.max(axis=-1)
        assert per_channel.all()  # each channel is all zeros or all 2s
        assert 0.4 < (y[..., 0] == 0).mean() < 0.6
        assert set(np.unique(y)) <= {0.0, 2.0}
        drop.eval()
        assert np.all(drop(ember.ones(*shape)).numpy() == 1)


def test_small_networks_match_torch_end_to_end():
    def cnn(L):
        return L.nn.Sequential(
            L.nn.Conv2d(2, 4, 3, padding=1),
            L.nn.BatchNorm2d(4),
            L.nn.ReLU(),
            L.nn.MaxPool2d(2),
            L.nn.Conv2d(4, 4, 3, padding=1, groups=2),
            L.nn.GELU(),
            L.nn.AdaptiveAvgPool2d(1),
            L.nn.Flatten(),
            L.nn.Linear(4, 3),
        )

    def mlp(L):
        return L.nn.Sequential(
            L.nn.Linear(5, 8), L.nn.LayerNorm(8), L.nn.Tanh(), L.nn.Dropout(0.0), L.nn.Linear(8, 2)
        )

    check_layer(cnn, [f(2, 2, 6, 6)], steps=2)
    check_layer(mlp, [f(4, 5)])


def test_layers_work_in_float32_by_default():
    net = ember.nn.Sequential(
        ember.nn.Conv2d(3, 4, 3, padding=1),
        ember.nn.BatchNorm2d(4),
        ember.nn.ReLU(),
        ember.nn.MaxPool2d(2),
        ember.nn.Flatten(),
        ember.nn.Linear(4 * 4 * 4, 10),
    )
    x = ember.randn(2, 3, 8, 8)
    out = net(x)
    assert out.shape == (2, 10) and out.dtype == ember.float32
    ember.nn.CrossEntropyLoss()(out, ember.tensor([1, 2])).backward()
    assert all(p.grad is not None and p.grad.dtype == ember.float32 for p in net.parameters())


# -- argument errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "build,error,message",
    [
        (lambda: ember.nn.Conv2d(3, 4, 3, groups=2), ValueError, "in_channels"),
        (lambda: ember.nn.Conv2d(4, 3, 3, groups=2), ValueError, "out_channels"),
        (lambda: ember.nn.Conv2d(2, 2, 3, stride=2, padding="same"), ValueError, "strided"),
        (lambda: ember.nn.Conv2d(2, 2, 3, padding="full"), ValueError, "Invalid padding"),
        (lambda: ember.nn.Conv1d(2, 2, 3, padding_mode="mirror"), ValueError, "padding_mode"),
        (
            lambda: ember.nn.ConvTranspose2d(2, 2, 3, padding_mode="reflect"),
            ValueError,
            'Only "zeros" padding mode',
        ),
        (lambda: ember.nn.Dropout(1.5), ValueError, "between 0 and 1"),
        (lambda: ember.nn.GroupNorm(4, 6), ValueError, "divisible by num_groups"),
        (lambda: ember.nn.Embedding(5, 2, padding_idx=5), ValueError, "padding_idx"),
        (lambda: ember.nn.MSELoss(reduction="avg"), ValueError, "not a valid value"),
        (lambda: ember.nn.GELU("fast"), ValueError, "approximate"),
        (lambda: ember.nn.Unflatten(1, 6), TypeError, "tuple or list"),
    ],
)
def test_constructor_errors(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_batchnorm_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"expected 4D input \(got 3D input\)"):
        ember.nn.BatchNorm2d(3)(ember.ones(2, 3, 4))
    with pytest.raises(ValueError, match=r"expected 2D or 3D input \(got 4D input\)"):
        ember.nn.BatchNorm1d(3)(ember.ones(2, 3, 4, 4))


def test_legacy_loss_arguments_map_to_reduction():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ember.nn.MSELoss(size_average=False).reduction == "sum"
        assert ember.nn.L1Loss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning, match="deprecated"):
        ember.nn.NLLLoss(size_average=True)

"""The eager ops call the C kernels (``ember.kernels``) and give what their NumPy path gives.

Each case runs an op forward and backward through the public API twice: with the C kernels
(counting the seam calls that served it, so a wiring that silently falls back fails) and with
``EMBER_KERNELS=numpy`` semantics (the reference). Inputs are W3-sized where that is cheap
(W2-sized for convolution and pooling). The optimizers' fused path must give the same bits as
their per-parameter path, and must not run while ``ember.compile`` traces a step.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels, nn
from ember.graph import compile
from ember.ops.nn.softmax import safe_softmax

from .conftest import numpy_path

pytestmark = pytest.mark.usefixtures("c_kernels")


def _run(fn, arrays, grad_seed=1):
    """``fn(*tensors)`` and the gradients of ``sum(out * u)`` (u fixed random)."""
    ts = [ember.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*ts)
    y = out[0] if isinstance(out, tuple) else out
    yd = y.detach().numpy()
    u = np.random.default_rng(grad_seed).standard_normal(yd.shape).astype(yd.dtype)
    (y * ember.tensor(u)).sum().backward()
    grads = [t.grad.numpy() for t in ts if t.grad is not None]
    extra = [o.numpy() for o in out[1:]] if isinstance(out, tuple) else []
    return [yd, *extra, *grads]


def _check(served, fn, arrays, expect, rtol=2e-5, atol=2e-6):
    got = _run(fn, arrays)
    for name in expect:
        assert served[name] > 0, f"{name} was not served by the C kernels"
    with numpy_path():
        want = _run(fn, arrays)
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


RNG = np.random.default_rng(0)


def _randn(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_family(served, dtype):
    x = _randn(32, 4, 64, 64, dtype=dtype)
    _check(served, lambda t: F.softmax(t, -1), [x], ["softmax_forward", "softmax_backward"])
    logits = _randn(2048, 65, dtype=dtype)
    _check(
        served,
        lambda t: F.log_softmax(t, 1),
        [logits],
        ["softmax_forward", "softmax_backward"],
    )
    _check(served, lambda t: F.softmax(t, 0), [_randn(5, 7, 3, dtype=dtype)], [])


def test_safe_softmax_masked_rows(served):
    x = _randn(64, 16)
    x[::3] = -np.inf
    _check(served, lambda t: safe_softmax(t, -1), [x], ["softmax_forward"])
    y = safe_softmax(ember.tensor(x), -1).numpy()
    assert (y[::3] == 0).all() and np.isfinite(y).all()


@pytest.mark.parametrize(
    "fn, seams",
    [
        (lambda t: F.gelu(t), ["gelu_forward", "gelu_backward"]),
        (lambda t: F.gelu(t, approximate="tanh"), ["gelu_forward", "gelu_backward"]),
        (lambda t: F.silu(t), ["silu_forward", "silu_backward"]),
        (lambda t: ember.sigmoid(t), ["sigmoid_forward", "sigmoid_backward"]),
        (lambda t: ember.tanh(t), ["tanh_backward"]),
    ],
    ids=["gelu", "gelu_tanh", "silu", "sigmoid", "tanh"],
)
def test_activations(served, fn, seams):
    _check(served, fn, [_randn(2048, 512)], seams)
    _check(served, fn, [_randn(7, 3, dtype=np.float64)], seams)


def test_activation_scalar_keeps_shape(served):
    for fn in (F.gelu, F.silu, ember.sigmoid, ember.tanh):
        assert fn(ember.tensor(0.5)).shape == ()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy(served, reduction, weighted, smoothing):
    x = _randn(2048, 65)
    t = RNG.integers(0, 65, 2048)
    t[::17] = -100
    w = RNG.random(65).astype(np.float32) if weighted else None

    def fn(logits):
        weight = None if w is None else ember.tensor(w)
        return F.cross_entropy(
            logits, ember.tensor(t), weight=weight, reduction=reduction, label_smoothing=smoothing
        )

    _check(served, fn, [x], ["cross_entropy_forward", "cross_entropy_backward"], atol=1e-5)


def test_cross_entropy_all_ignored_and_bad_target(served):
    x = ember.tensor(_randn(4, 5), requires_grad=True)
    loss = F.cross_entropy(x, ember.tensor([-100] * 4))
    assert np.isnan(loss.item())
    loss.backward()
    assert (x.grad.numpy() == 0).all()
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(ember.tensor(_randn(3, 4)), ember.tensor([0, 1, 7]))


def test_cross_entropy_float16_falls_back(served):
    x = _randn(8, 5).astype(np.float16)
    got = F.cross_entropy(ember.tensor(x), ember.tensor([0, 1, 2, 3, 4, 0, 1, 2])).item()
    assert served["cross_entropy_forward"] == 0
    with numpy_path():
        want = F.cross_entropy(ember.tensor(x), ember.tensor([0, 1, 2, 3, 4, 0, 1, 2])).item()
    assert got == want


@pytest.mark.parametrize(
    "fn, shape",
    [
        (lambda t: F.layer_norm(t, (128,)), (32, 64, 128)),
        (lambda t: F.layer_norm(t, (4, 8)), (6, 4, 8)),
        (lambda t: F.group_norm(t, 2), (8, 6, 5, 5)),
        (lambda t: F.instance_norm(t), (8, 6, 5, 5)),
    ],
    ids=["layer_norm", "layer_norm_2d", "group_norm", "instance_norm"],
)
def test_norm_backward(served, fn, shape):
    _check(served, fn, [_randn(*shape)], ["layer_norm_backward"], atol=1e-5)


def test_batch_norm_uses_channel_kernels(served):
    x = ember.tensor(_randn(8, 3, 4, 4), requires_grad=True)
    F.batch_norm(x, None, None, training=True).sum().backward()
    assert served["layer_norm_backward"] == 0
    assert served["norm_moments"] > 0 and served["norm_standardize"] > 0
    assert served["norm_standardize_backward"] > 0


@pytest.mark.parametrize("padding_idx", [None, 1, -2])
@pytest.mark.parametrize("freq", [False, True])
def test_embedding_backward(served, padding_idx, freq):
    idx = RNG.integers(0, 65, (32, 64))

    def fn(w):
        return F.embedding(ember.tensor(idx), w, padding_idx=padding_idx, scale_grad_by_freq=freq)

    _check(served, fn, [_randn(65, 128)], ["embedding_backward"])


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, dilation=2),
    ],
    ids=["2x2", "3x3s2p1", "dilated"],
)
def test_max_pool2d(served, kw):
    x = _randn(16, 8, 14, 14)
    _check(
        served, lambda t: F.max_pool2d(t, **kw), [x], ["max_pool2d_forward", "max_pool2d_backward"]
    )
    _check(
        served,
        lambda t: F.max_pool2d(t, return_indices=True, **kw),
        [x],
        ["max_pool2d_forward"],
    )


def test_max_pool2d_integer_falls_back(served):
    x = ember.tensor(np.arange(16).reshape(1, 1, 4, 4))
    assert F.max_pool2d(x, 2).tolist() == [[[[5, 7], [13, 15]]]]
    assert served["max_pool2d_forward"] == 0


@pytest.mark.parametrize(
    "kw, kernels",
    [
        (dict(padding=1), ["implicit_conv2d", "implicit_weight_grad", "implicit_transpose2d"]),
        # strided: its input gradient is a strided transposed convolution (GEMM + col2im)
        (
            dict(stride=2, padding=1, groups=2),
            ["implicit_conv2d", "implicit_weight_grad", "col2im"],
        ),
        (
            dict(dilation=2, padding=2),
            ["implicit_conv2d", "implicit_weight_grad", "implicit_transpose2d"],
        ),
    ],
    ids=["same", "strided_grouped", "dilated"],
)
def test_conv2d(served, kw, kernels):
    x, w = _randn(16, 8, 14, 14), _randn(6, 8 // kw.get("groups", 1), 3, 3)
    _check(served, lambda a, b: F.conv2d(a, b, **kw), [x, w], kernels, atol=1e-4)


def test_conv_transpose2d_strided(served):
    """Strided: GEMM + col2im; its input gradient is a convolution (implicit GEMM)."""
    x, w = _randn(8, 6, 7, 7), _randn(6, 4, 3, 3)
    fn = lambda a, b: F.conv_transpose2d(a, b, stride=2, padding=1)  # noqa: E731
    _check(served, fn, [x, w], ["col2im", "implicit_conv2d", "implicit_weight_grad"], atol=1e-4)


def test_conv_transpose2d_unit_stride(served):
    """Unit stride: the convolution with the flipped, transposed weight (implicit GEMM)."""
    x, w = _randn(8, 6, 7, 7), _randn(6, 4, 3, 3)
    fn = lambda a, b: F.conv_transpose2d(a, b, padding=1)  # noqa: E731
    _check(served, fn, [x, w], ["implicit_transpose2d", "implicit_conv2d", "implicit_weight_grad"],
           atol=1e-4)  # fmt: skip
    assert served["col2im"] == 0


# -- optimizers ------------------------------------------------------------------------------
OPTIMIZERS = {
    "adam": lambda ps: ember.optim.Adam(ps, lr=1e-2),
    "adam_all": lambda ps: ember.optim.Adam(
        ps, lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True
    ),
    "adamw": lambda ps: ember.optim.AdamW(ps, lr=1e-2, betas=(0.3, 0.9)),
    "sgd": lambda ps: ember.optim.SGD(ps, lr=1e-2),
    "sgd_momentum": lambda ps: ember.optim.SGD(
        ps, lr=1e-2, momentum=0.9, dampening=0.1, weight_decay=0.01
    ),
    "sgd_nesterov": lambda ps: ember.optim.SGD(
        ps, lr=1e-2, momentum=0.9, nesterov=True, maximize=True
    ),
    "rmsprop": lambda ps: ember.optim.RMSprop(ps, lr=1e-2),
    "rmsprop_all": lambda ps: ember.optim.RMSprop(
        ps, lr=1e-2, momentum=0.9, centered=True, weight_decay=0.1
    ),
}
STEP_SEAM = {"adam": "adam_step", "sgd": "sgd_step", "rmsprop": "rmsprop_step"}


def _train(make, fused: bool, steps: int = 20):
    rng = np.random.default_rng(3)
    shapes = [(300, 70), (70,), (5,), (0, 3), (40000,)]
    ps = [
        ember.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in shapes
    ]
    opt = make(ps)
    with pytest.MonkeyPatch.context() as mp:
        if not fused:
            for name in STEP_SEAM.values():
                mp.setattr(kernels, name, lambda *a, **k: False)
        for _ in range(steps):
            for p in ps:
                p.grad = ember.tensor(rng.standard_normal(p.shape).astype(np.float32))
            versions = [p._vc[0] for p in ps]
            opt.step()
            assert all(p._vc[0] == v + 1 for p, v in zip(ps, versions))
    return [p.detach().numpy() for p in ps], opt.state_dict()["state"]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_fused_is_bit_identical(served, name):
    seam = STEP_SEAM[name.split("_")[0].rstrip("w")]
    fused, fused_state = _train(OPTIMIZERS[name], fused=True)
    assert served[seam] == 20
    plain, plain_state = _train(OPTIMIZERS[name], fused=False)
    for a, b in zip(fused, plain):
        np.testing.assert_array_equal(a, b)
    assert fused_state.keys() == plain_state.keys()
    for i in fused_state:
        assert fused_state[i].keys() == plain_state[i].keys()
        for k, v in fused_state[i].items():
            np.testing.assert_array_equal(v.numpy(), plain_state[i][k].numpy())


def test_optimizer_mixed_dtypes_falls_back(served):
    a = ember.ones(3, requires_grad=True)
    b = ember.ones(3, dtype=ember.float64, requires_grad=True)
    opt = ember.optim.Adam([a, b], lr=0.1)
    (a.sum() + b.sum()).backward()
    opt.step()
    # the group-wide call declines (two dtypes); each parameter's adam_update op then
    # runs the kernel on its own tensor
    assert served["adam_step"] == 2
    assert a.detach().tolist() == pytest.approx([0.9] * 3)
    assert b.detach().tolist() == pytest.approx([0.9] * 3)


def test_compiled_step_updates_the_group_in_one_kernel_call(served):
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = ember.optim.Adam(model.parameters(), lr=1e-2)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = compile(step)
    x, y = ember.tensor(_randn(16, 4)), ember.tensor(RNG.integers(0, 2, 16))
    before = served["adam_step"]
    for _ in range(3):
        fn(x, y)
    # the trace recorded one adam_group_update op for the group; its forward runs the fused
    # kernel once over every parameter, at the trace and at every replay
    assert served["adam_step"] - before == 3

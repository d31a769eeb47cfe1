"""Table rows for the activation functions (``ember/ops/activation.py``), called through
``m.nn.functional`` (``torch.nn.functional``) or the top-level/tensor-method spellings."""

import math

import numpy as np

from .optable import Case, F, I, V, cases

_erf = np.vectorize(math.erf, otypes=[np.float64])
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# magnitudes where naive formulas overflow; the first derivative is still checked
_EXTREMES = [-1000.0, -100.0, -30.0, -1.0, 0.25, 30.0, 100.0, 1000.0]


def nnf(m):
    return m.nn.functional


def _sigmoid(a):
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(a, beta=1.0, threshold=20.0):
    z = a * beta
    return np.where(z > threshold, a, np.logaddexp(0, z) / beta)


def _elu(a, alpha=1.0, scale=1.0, input_scale=1.0):
    return np.where(a > 0, scale * a, scale * alpha * np.expm1(np.minimum(a, 0) * input_scale))


def _gelu_tanh(a):
    return 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))


def _glu(a):
    h = a.shape[-1] // 2
    return a[..., :h] * _sigmoid(a[..., h:])


def _prelu(a, w):
    return np.where(a > 0, a, w.reshape(-1, 1) * a)


CASES = cases(
    Case("relu", lambda m, a: nnf(m).relu(a), [F(3, 4)], ref=lambda a: np.maximum(a, 0)),
    Case(
        "relu_method_noncontig",
        lambda m, a: a.relu(),
        [F(3, 4, noncontig=True)],
        ref=lambda a: np.maximum(a, 0),
    ),
    Case(
        "relu_int",
        lambda m, a: m.relu(a),
        [I(6, low=-3, high=3)],
        ref=lambda a: np.maximum(a, 0),
        grad=False,
    ),
    Case("relu_size0", lambda m, a: m.relu(a), [F(0, 4)], ref=lambda a: np.maximum(a, 0)),
    Case(
        "relu_grad2_4d_noncontig",  # backward through relu_backward, and its own backward
        lambda m, a: nnf(m).relu(a) * a,
        [F(2, 3, 4, 5, noncontig=True)],
        ref=lambda a: np.maximum(a, 0) * a,
        grad2=True,
    ),
    Case(
        "relu6",
        lambda m, a: nnf(m).relu6(a),
        [F(3, 4, low=-3, high=9)],
        ref=lambda a: np.clip(a, 0, 6),
    ),
    Case(
        "leaky_relu",
        lambda m, a: nnf(m).leaky_relu(a, 0.1),
        [F(3, 4)],
        ref=lambda a: np.where(a > 0, a, 0.1 * a),
        grad2=True,
    ),
    Case(
        "leaky_relu_default",
        lambda m, a: nnf(m).leaky_relu(a),
        [F(2, 1, 3)],
        ref=lambda a: np.where(a > 0, a, 0.01 * a),
    ),
    Case("elu", lambda m, a: nnf(m).elu(a), [F(3, 4)], ref=_elu, grad2=True),
    Case(
        "elu_alpha",
        lambda m, a: nnf(m).elu(a, alpha=0.5),
        [F(3, 4)],
        ref=lambda a: _elu(a, 0.5),
    ),
    Case(
        "elu_negative_alpha",
        lambda m, a: nnf(m).elu(a, alpha=-0.5),
        [F(6)],
        ref=lambda a: _elu(a, -0.5),
        grad2=True,
    ),
    Case(
        "selu",
        lambda m, a: nnf(m).selu(a),
        [F(3, 4)],
        ref=lambda a: _elu(a, _SELU_ALPHA, _SELU_SCALE),
        grad2=True,
    ),
    Case(
        "celu",
        lambda m, a: nnf(m).celu(a, alpha=2.0),
        [F(3, 4)],
        ref=lambda a: _elu(a, 2.0, 1.0, 0.5),
        grad2=True,
    ),
    Case(
        "gelu",
        lambda m, a: nnf(m).gelu(a),
        [F(3, 4)],
        ref=lambda a: 0.5 * a * (1 + _erf(a / math.sqrt(2))),
        grad2=True,
    ),
    Case(
        "gelu_tanh",
        lambda m, a: nnf(m).gelu(a, approximate="tanh"),
        [F(3, 4)],
        ref=_gelu_tanh,
        grad2=True,
    ),
    Case(
        "gelu_extremes",
        lambda m, a: nnf(m).gelu(a),
        [V([-40.0, -10.0, -5.0, 0.0, 5.0, 10.0], grad=True)],
        ref=lambda a: 0.5 * a * (1 + _erf(a / math.sqrt(2))),
    ),
    Case("silu", lambda m, a: nnf(m).silu(a), [F(3, 4)], ref=lambda a: a * _sigmoid(a), grad2=True),
    Case(
        "silu_extremes",
        lambda m, a: nnf(m).silu(a),
        [V(_EXTREMES, grad=True)],
        ref=lambda a: a * _sigmoid(a),
    ),
    Case(
        "mish",
        lambda m, a: nnf(m).mish(a),
        [F(3, 4)],
        ref=lambda a: a * np.tanh(_softplus(a)),
        grad2=True,
    ),
    Case(
        "mish_extremes",
        lambda m, a: nnf(m).mish(a),
        [V(_EXTREMES, grad=True)],
        ref=lambda a: a * np.tanh(_softplus(a)),
    ),
    Case("softplus", lambda m, a: nnf(m).softplus(a), [F(3, 4)], ref=_softplus, grad2=True),
    Case(
        "softplus_beta_threshold",  # 1.5 * 4 crosses threshold 5 in the range
        lambda m, a: nnf(m).softplus(a, beta=1.5, threshold=5.0),
        [F(3, 4, low=-5, high=8)],
        ref=lambda a: _softplus(a, 1.5, 5.0),
    ),
    Case(
        "softplus_extremes",
        lambda m, a: nnf(m).softplus(a),
        [V(_EXTREMES, grad=True)],
        ref=_softplus,
    ),
    Case(
        "softsign",
        lambda m, a: nnf(m).softsign(a),
        [F(3, 4)],
        ref=lambda a: a / (1 + np.abs(a)),
        grad2=True,
    ),
    Case("sigmoid", lambda m, a: m.sigmoid(a), [F(3, 4)], ref=_sigmoid, grad2=True),
    Case("sigmoid_method", lambda m, a: a.sigmoid(), [F(2, 3, noncontig=True)], ref=_sigmoid),
    Case("sigmoid_extremes", lambda m, a: m.sigmoid(a), [V(_EXTREMES, grad=True)], ref=_sigmoid),
    Case(
        "sigmoid_int",
        lambda m, a: m.sigmoid(a),
        [I(4)],
        ref=lambda a: _sigmoid(a).astype(np.float32),
        grad=False,
    ),
    Case(
        "logsigmoid",
        lambda m, a: nnf(m).logsigmoid(a),
        [F(3, 4)],
        ref=lambda a: -_softplus(-a),
        grad2=True,
    ),
    Case(
        "logsigmoid_extremes",
        lambda m, a: nnf(m).logsigmoid(a),
        [V(_EXTREMES, grad=True)],
        ref=lambda a: -np.logaddexp(0, -a),
    ),
    Case("tanh", lambda m, a: m.tanh(a), [F(3, 4)], ref=np.tanh, grad2=True),
    Case("tanh_method_extremes", lambda m, a: a.tanh(), [V(_EXTREMES, grad=True)], ref=np.tanh),
    Case(
        "hardtanh",
        lambda m, a: nnf(m).hardtanh(a),
        [F(3, 4, low=-2, high=2)],
        ref=lambda a: np.clip(a, -1, 1),
    ),
    Case(
        "hardtanh_bounds",
        lambda m, a: nnf(m).hardtanh(a, min_val=-0.5, max_val=2.0),
        [F(3, 4, low=-2, high=3)],
        ref=lambda a: np.clip(a, -0.5, 2.0),
    ),
    Case(
        "hardsigmoid",
        lambda m, a: nnf(m).hardsigmoid(a),
        [F(3, 4, low=-5, high=5)],
        ref=lambda a: np.clip(a / 6 + 0.5, 0, 1),
    ),
    Case(
        "hardswish",
        lambda m, a: nnf(m).hardswish(a),
        [F(3, 4, low=-5, high=5)],
        ref=lambda a: a * np.clip(a + 3, 0, 6) / 6,
        grad2=True,
    ),
    Case(
        "threshold",
        lambda m, a: nnf(m).threshold(a, 0.2, -1.0),
        [F(3, 4)],
        ref=lambda a: np.where(a > 0.2, a, -1.0),
    ),
    Case(
        "hardshrink",
        lambda m, a: nnf(m).hardshrink(a, 0.4),
        [F(3, 4)],
        ref=lambda a: np.where(np.abs(a) > 0.4, a, 0.0),
    ),
    Case(
        "softshrink",
        lambda m, a: nnf(m).softshrink(a),
        [F(3, 4)],
        ref=lambda a: np.sign(a) * np.maximum(np.abs(a) - 0.5, 0),
    ),
    Case(
        "tanhshrink",
        lambda m, a: nnf(m).tanhshrink(a),
        [F(3, 4)],
        ref=lambda a: a - np.tanh(a),
    ),
    Case(
        "prelu_channels",
        lambda m, a, w: nnf(m).prelu(a, w),
        [F(2, 3, 4), F(3, low=0.05, high=0.5)],
        ref=lambda a, w: np.where(a > 0, a, w.reshape(3, 1) * a),
    ),
    Case(
        "prelu_single",
        lambda m, a, w: nnf(m).prelu(a, w),
        [F(3, 2), F(1, low=0.05, high=0.5)],
        ref=lambda a, w: np.where(a > 0, a, w * a),
    ),
    Case("glu", lambda m, a: nnf(m).glu(a), [F(3, 4)], ref=_glu, grad2=True),
    Case(
        "glu_dim0",
        lambda m, a: nnf(m).glu(a, 0),
        [F(4, 3)],
        ref=lambda a: a[:2] * _sigmoid(a[2:]),
    ),
)

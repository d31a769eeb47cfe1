"""RNN, LSTM, GRU and their cells against PyTorch: PyTorch's weights copied across through
``load_state_dict`` (so names, shapes and order must match), then outputs, final states and
the gradients of the inputs, initial states and every parameter compared in float64."""

import warnings

import numpy as np
import pytest

import ember
from ember.nn.layers import rnn as rnn_module
from ember.nn.layers.rnn import GRU, LSTM, RNN
from ember.nn.layers.rnn_cell import GRUCell, LSTMCell, RNNCell
from tests.nn.helpers import (
    assert_close,
    assert_doctests_pass,
    assert_param_grads_close,
    backward_through_outputs,
    load_torch_weights,
    to_numpy,
)

torch = pytest.importorskip("torch")

EMBER = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU, "RNNCell": RNNCell, "LSTMCell": LSTMCell,
         "GRUCell": GRUCell}  # fmt: skip


def _flat(out):
    """Nested tuples of tensors as a flat list."""
    if isinstance(out, tuple | list):
        return [t for o in out for t in _flat(o)]
    return [out]


def _pair(kind, seed=0, **kwargs):
    """The same layer in both frameworks, PyTorch's weights loaded into ember's."""
    torch.manual_seed(seed)
    return load_torch_weights(getattr(torch.nn, kind)(**kwargs), EMBER[kind](**kwargs))


def check(kind, inputs, seed=0, train=False, **kwargs):
    """Run ``kind(**kwargs)`` on ``inputs`` (arrays, or tuples of arrays for (h0, c0)) in both
    frameworks; compare every output and every gradient."""
    th, em = _pair(kind, seed, **kwargs)
    th.train(train), em.train(train)

    def make(lib, a):
        if isinstance(a, tuple):
            return tuple(make(lib, x) for x in a)
        return lib.tensor(a, requires_grad=True)

    t_in = [make(torch, a) for a in inputs]
    e_in = [make(ember, a) for a in inputs]
    t_out, e_out = _flat(th(*t_in)), _flat(em(*e_in))
    assert len(t_out) == len(e_out)
    backward_through_outputs(e_out, t_out, np.random.default_rng(seed + 1))
    for k, (e, t) in enumerate(zip(_flat(e_in), _flat(t_in))):
        assert_close(e.grad, t.grad, f"grad of input {k}")
    assert_param_grads_close(em, th, every=True)
    return em, th


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# -- the sequence layers: kind x layers x directions x batch_first x initial state ---------
KINDS = [
    ("RNN", {}),
    ("RNN", {"nonlinearity": "relu"}),
    ("LSTM", {}),
    ("GRU", {}),
]
N, L, F_IN, H = 2, 6, 3, 4  # L > the split block (4): the time split is exercised


def _state(kind, layers, dirs, batch=(N,), hidden=H, proj=0, seed=3):
    shape = (layers * dirs, *batch)
    h = _x(*shape, proj or hidden, seed=seed)
    if kind == "LSTM":
        return (h, _x(*shape, hidden, seed=seed + 1))
    return h


@pytest.mark.parametrize("kind,extra", KINDS, ids=["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_h0", "h0"])
def test_sequence_layers(kind, extra, num_layers, bidirectional, batch_first, with_state):
    x = _x(N, L, F_IN) if batch_first else _x(L, N, F_IN)
    inputs = [x]
    if with_state:
        inputs.append(_state(kind, num_layers, 2 if bidirectional else 1))
    check(
        kind, inputs, input_size=F_IN, hidden_size=H, num_layers=num_layers,
        bidirectional=bidirectional, batch_first=batch_first, **extra,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_h0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["seq_first", "batch_first"])
def test_unbatched(kind, with_state, batch_first):
    inputs = [_x(5, F_IN)]
    if with_state:
        inputs.append(_state(kind, 2, 2, batch=()))
    em, _ = check(
        kind, inputs, input_size=F_IN, hidden_size=H, num_layers=2, bidirectional=True,
        batch_first=batch_first,
    )  # fmt: skip


@pytest.mark.parametrize("length", [1, 4, 5, 13])
def test_sequence_lengths(length):
    """Every way the time split can fall (one step, one block, odd lengths)."""
    check("GRU", [_x(length, N, F_IN)], input_size=F_IN, hidden_size=H, bidirectional=True)
    check("LSTM", [_x(length, N, F_IN)], input_size=F_IN, hidden_size=H)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_h0", "h0"])
def test_lstm_proj_size(bidirectional, with_state):
    dirs = 2 if bidirectional else 1
    inputs = [_x(L, N, F_IN)]
    if with_state:
        inputs.append(_state("LSTM", 2, dirs, proj=2))
    em, _ = check(
        "LSTM", inputs, input_size=F_IN, hidden_size=H, num_layers=2, proj_size=2,
        bidirectional=bidirectional,
    )  # fmt: skip
    assert em.weight_hr_l0.shape == (2, H)
    assert em.weight_hh_l1.shape == (4 * H, 2)
    assert em.weight_ih_l1.shape == (4 * H, 2 * dirs)


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_no_bias(kind):
    em, _ = check(
        kind, [_x(L, N, F_IN)], input_size=F_IN, hidden_size=H, num_layers=2, bias=False,
        bidirectional=True,
    )  # fmt: skip
    assert not any("bias" in name for name, _ in em.named_parameters())


def test_parameter_names_shapes_and_all_weights():
    em = LSTM(3, 5, num_layers=2, bidirectional=True)
    th = torch.nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    assert [(n, p.shape) for n, p in em.named_parameters()] == [
        (n, tuple(p.shape)) for n, p in th.named_parameters()
    ]
    assert [[p.shape for p in ws] for ws in em.all_weights] == [
        [tuple(p.shape) for p in ws] for ws in th.all_weights
    ]
    assert em._flat_weights_names == th._flat_weights_names


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_default_init_is_uniform_in_one_over_sqrt_hidden(kind):
    hidden = 25
    em = EMBER[kind](16, hidden)
    bound = 1 / np.sqrt(hidden)
    values = np.concatenate([to_numpy(p).ravel() for p in em.parameters()])
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound  # spread over the whole range
    assert abs(values.mean()) < 0.1 * bound


def test_weights_can_be_replaced():
    """A reassigned parameter is used by the next forward (weights are looked up by name)."""
    em = GRU(3, 4).double()
    x = ember.tensor(_x(L, N, 3))
    before = to_numpy(em(x)[0])
    em.weight_hh_l0 = ember.nn.Parameter(ember.zeros(12, 4, dtype=ember.float64))
    assert not np.allclose(to_numpy(em(x)[0]), before)


def test_float32():
    th, em = _pair("LSTM", input_size=3, hidden_size=4, num_layers=2)
    th, em = th.float(), em.float()
    x = _x(L, N, 3).astype(np.float32)
    out, (h, c) = em(ember.tensor(x))
    assert out.dtype == ember.float32
    t_out, _ = th(torch.tensor(x))
    np.testing.assert_allclose(to_numpy(out), to_numpy(t_out), rtol=1e-5, atol=1e-6)


# -- dropout between layers -----------------------------------------------------------------
def test_dropout_between_layers_only_in_training():
    th, em = _pair("LSTM", input_size=3, hidden_size=8, num_layers=2, dropout=0.5)
    x = ember.tensor(_x(L, N, 3))
    em.eval()
    th.eval()
    assert_close(em(x)[0], th(torch.tensor(_x(L, N, 3)))[0], "eval output")
    em.train()
    ember.manual_seed(0)
    a = to_numpy(em(x)[0])
    b = to_numpy(em(x)[0])
    ref = to_numpy(em.eval()(x)[0])
    assert not np.allclose(a, ref), "dropout did not change the training output"
    assert not np.allclose(a, b), "two training passes drew the same dropout mask"


def test_dropout_single_layer_warns_and_changes_nothing():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        em = GRU(3, 4, dropout=0.5).double()
    x = ember.tensor(_x(L, N, 3))
    assert_close(em.train()(x)[0], em.eval()(x)[0], "one layer: no dropout")


def test_dropout_training_gradients_flow():
    em = RNN(3, 4, num_layers=3, dropout=0.3).double()
    x = ember.tensor(_x(L, N, 3), requires_grad=True)
    em(x)[0].sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in em.parameters())


# -- second order ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_second_order_gradients(kind):
    th, em = _pair(kind, input_size=2, hidden_size=3, bidirectional=True)
    x = _x(3, 1, 2)
    tx = torch.tensor(x, requires_grad=True)
    ex = ember.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(th(tx)[0].pow(2).sum(), tx, create_graph=True)
    (eg,) = ember.autograd.grad((em(ex)[0] ** 2).sum(), ex, create_graph=True)
    assert_close(eg, tg, "first-order gradient")
    tw = torch.autograd.grad(tg.pow(2).sum(), th.weight_hh_l0)[0]
    ew = ember.autograd.grad((eg**2).sum(), em.weight_hh_l0)[0]
    assert_close(ew, tw, "second-order gradient")


# -- cells ----------------------------------------------------------------------------------
CELLS = [
    ("RNNCell", {}),
    ("RNNCell", {"nonlinearity": "relu", "bias": False}),
    ("LSTMCell", {}),
    ("LSTMCell", {"bias": False}),
    ("GRUCell", {}),
    ("GRUCell", {"bias": False}),
]


@pytest.mark.parametrize("kind,extra", CELLS, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CELLS)])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [False, True], ids=["no_hx", "hx"])
def test_cells(kind, extra, batched, with_state):
    batch = (N,) if batched else ()
    inputs = [_x(*batch, F_IN)]
    if with_state:
        h = _x(*batch, H, seed=5)
        inputs.append((h, _x(*batch, H, seed=6)) if kind == "LSTMCell" else h)
    check(kind, inputs, input_size=F_IN, hidden_size=H, **extra)


def test_cell_loop_matches_layer():
    """Stepping an LSTMCell with the layer's weights reproduces the LSTM layer."""
    layer = LSTM(3, 4).double()
    cell = LSTMCell(3, 4).double()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = ember.tensor(_x(L, N, 3))
    out, (h, c) = layer(x)
    state = None
    steps = []
    for t in range(L):
        state = cell(x[t], state)
        steps.append(state[0])
    assert_close(ember.stack(steps), out.detach(), "cell loop output")
    assert_close(state[1], c[0].detach(), "cell loop final c")


# -- errors ---------------------------------------------------------------------------------
def test_errors():
    gru = GRU(3, 4, num_layers=2).double()
    with pytest.raises(ember.ShapeError, match="input_size=3"):
        gru(ember.zeros(5, 2, 4, dtype=ember.float64))
    with pytest.raises(ember.ShapeError, match="2-D or 3-D"):
        gru(ember.zeros(1, 5, 2, 3, dtype=ember.float64))
    with pytest.raises(
        ember.ShapeError, match=r"expected hx of shape \(2, 2, 4\), got \(1, 2, 4\)"
    ):
        gru(ember.zeros(5, 2, 3, dtype=ember.float64), ember.zeros(1, 2, 4, dtype=ember.float64))
    with pytest.raises(ember.ShapeError, match="should be 3-D"):
        gru(ember.zeros(5, 2, 3, dtype=ember.float64), ember.zeros(2, 4, dtype=ember.float64))
    with pytest.raises(ember.ShapeError, match="no time steps"):
        gru(ember.zeros(0, 2, 3, dtype=ember.float64))
    with pytest.raises(ember.DTypeError, match="does not match weight dtype"):
        gru(ember.zeros(5, 2, 3))
    lstm = LSTM(3, 4, proj_size=2)
    with pytest.raises(ember.ShapeError, match="expected cx of shape"):
        lstm(ember.zeros(5, 2, 3), (ember.zeros(1, 2, 2), ember.zeros(1, 2, 2)))
    with pytest.raises(TypeError, match="tuple"):
        lstm(ember.zeros(5, 2, 3), ember.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size has to be smaller"):
        LSTM(3, 4, proj_size=4)
    with pytest.raises(ValueError, match="dropout should be a number"):
        GRU(3, 4, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero"):
        GRU(3, 0)
    with pytest.raises(TypeError, match="hidden_size should be of type int"):
        GRU(3, 4.0)
    with pytest.raises(ValueError, match="num_layers must be greater than zero"):
        LSTM(3, 4, num_layers=0)
    cell = GRUCell(3, 4)
    with pytest.raises(ember.ShapeError, match="1-D or 2-D"):
        cell(ember.zeros(1, 2, 3))
    with pytest.raises(ember.ShapeError, match=r"expected \(2, 4\)"):
        cell(ember.zeros(2, 3), ember.zeros(3, 4))


def test_reprs_match_torch():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, kwargs in [
            ("RNN", dict(input_size=3, hidden_size=4, nonlinearity="relu", bias=False)),
            ("LSTM", dict(input_size=3, hidden_size=4, proj_size=2, num_layers=2, dropout=0.1,
                          batch_first=True, bidirectional=True)),
            ("GRU", dict(input_size=3, hidden_size=4)),
            ("RNNCell", dict(input_size=3, hidden_size=4, nonlinearity="relu", bias=False)),
            ("LSTMCell", dict(input_size=3, hidden_size=4)),
            ("GRUCell", dict(input_size=3, hidden_size=4, bias=False)),
        ]:  # fmt: skip
            assert repr(EMBER[kind](**kwargs)) == repr(getattr(torch.nn, kind)(**kwargs))


def test_time_split_gives_every_step_in_order():
    x = ember.arange(11.0).reshape(11, 1)
    steps = rnn_module._time_steps(x)
    assert [s.tolist() for s in steps] == [[float(t)] for t in range(11)]


@pytest.mark.parametrize("modname", ["ember.nn.layers.rnn", "ember.nn.layers.rnn_cell"])
def test_docstring_examples(modname):
    assert_doctests_pass(modname, at_least=10)

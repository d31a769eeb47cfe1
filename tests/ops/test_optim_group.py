"""The grouped optimizer updates (``ember.ops.optim_group``) against the per-parameter ops
(the reference): same bits with the C kernel and on the NumPy path, declined calls (mixed
dtypes, strided arrays) served per parameter, and the ONNX lowering (the first parameter's
new value). The op table (``optable.py``) holds pure, differentiable ops only, so these
in-place updates are checked here, as the per-parameter ones are in their own tests."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import kernels
from ember.kernels import runtime
from ember.ops.optim import adam_update, rmsprop_update, sgd_update
from ember.ops.optim_group import (
    adam_group_update,
    rmsprop_group_update,
    sgd_group_update,
    split_group,
)

SHAPES = [(17, 5), (3,), (0, 4), (9000,)]

ADAM = dict(beta1=0.8, beta2=0.95, eps=1e-6, weight_decay=0.1, maximize=False)
SGD = dict(momentum=0.9, dampening=0.1, weight_decay=0.05, nesterov=False, maximize=True)
RMS = dict(alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.5, maximize=False)


@pytest.fixture(params=["c", "numpy"])
def mode(request):
    before = runtime.mode()
    runtime.set_mode("auto" if request.param == "c" else "numpy")
    if request.param == "c" and not kernels.available():
        runtime.set_mode(before)
        pytest.skip("the C kernels cannot be built here")
    yield request.param
    runtime.set_mode(before)


def _arrays(n_lists: int, dtypes=None, seed: int = 0) -> list[list[np.ndarray]]:
    """``n_lists`` lists (params, grads, states ...) of arrays shaped as SHAPES; states >= 0."""
    rng = np.random.default_rng(seed)
    dtypes = dtypes or [np.float32] * len(SHAPES)
    out = []
    for k in range(n_lists):
        lst = [rng.standard_normal(s).astype(d) for s, d in zip(SHAPES, dtypes)]
        out.append([np.abs(a) if k >= 2 else a for a in lst])
    return out


def _tensors(lists):
    return [[ember.from_numpy(a.copy(order="K")) for a in lst] for lst in lists]


def _assert_same(a_lists, b_lists):
    for la, lb in zip(a_lists, b_lists):
        for x, y in zip(la, lb):
            np.testing.assert_array_equal(x.numpy(), y.numpy())


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decoupled", [False, True])
def test_adam_group_matches_per_parameter(mode, amsgrad, decoupled):
    n_lists = 5 if amsgrad else 4
    lists = _arrays(n_lists)
    steps = [3.0, 1.0, 2.0, 7.0]
    ref, got = _tensors(lists), _tensors(lists)
    for i in range(len(SHAPES)):
        vmax = ref[4][i] if amsgrad else None
        adam_update(*(r[i] for r in ref[:4]), vmax, steps[i], 0.01, decoupled=decoupled, **ADAM)
    out = adam_group_update(
        *(t for lst in got for t in lst), *steps, 0.01,
        n=len(SHAPES), amsgrad=amsgrad, decoupled=decoupled, **ADAM,
    )  # fmt: skip
    assert out._data is got[0][0]._data  # returns the first parameter (updated in place)
    _assert_same(ref, got)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_group_matches_per_parameter(mode, momentum):
    lists = _arrays(3 if momentum else 2)
    first = (True, False, False, True) if momentum else None
    opts = {**SGD, "momentum": momentum}
    ref, got = _tensors(lists), _tensors(lists)
    for i in range(len(SHAPES)):
        buf = ref[2][i] if momentum else None
        sgd_update(ref[0][i], ref[1][i], buf, 0.1, first=bool(first and first[i]), **opts)
    sgd_group_update(*(t for lst in got for t in lst), 0.1, n=len(SHAPES), first=first, **opts)
    _assert_same(ref, got)


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop_group_matches_per_parameter(mode, centered, momentum):
    names = ["p", "g", "sq"] + (["ga"] if centered else []) + (["buf"] if momentum else [])
    lists = _arrays(len(names))
    if centered:  # keep sq - ga * ga positive
        lists[2] = [a + 4.0 for a in lists[2]]
        lists[3] = [a * 0.1 for a in lists[3]]
    opts = {**RMS, "momentum": momentum}
    ref, got = _tensors(lists), _tensors(lists)
    for i in range(len(SHAPES)):
        row = dict(zip(names, (r[i] for r in ref)))
        rmsprop_update(row["p"], row["g"], row["sq"], row.get("ga"), row.get("buf"), 2.0, 0.01, **opts)  # fmt: skip
    steps = [2.0] * len(SHAPES)
    rmsprop_group_update(
        *(t for lst in got for t in lst), *steps, 0.01, n=len(SHAPES), centered=centered, **opts
    )
    _assert_same(ref, got)


def test_declined_calls_run_per_parameter(mode):
    """Mixed dtypes and a strided parameter: the kernel declines, each parameter is updated
    by its own op (which may still use the kernel alone)."""
    dtypes = [np.float32, np.float64, np.float32, np.float32]
    lists = _arrays(4, dtypes)
    lists[0][0] = np.asfortranarray(lists[0][0])
    ref, got = _tensors(lists), _tensors(lists)
    assert not got[0][0]._data.flags.c_contiguous
    steps = [1.0, 2.0, 3.0, 4.0]
    for i in range(len(SHAPES)):
        adam_update(*(r[i] for r in ref), None, steps[i], 0.01, decoupled=True, **ADAM)
    adam_group_update(
        *(t for lst in got for t in lst), *steps, 0.01,
        n=len(SHAPES), amsgrad=False, decoupled=True, **ADAM,
    )  # fmt: skip
    _assert_same(ref, got)


def test_strided_gradients_keep_the_kernel(mode, monkeypatch):
    """A strided gradient is read through a contiguous copy, so the group stays on the
    kernel (gradients are only read)."""
    lists = _arrays(4)
    grads = [np.asfortranarray(lists[1][0])] + lists[1][1:]
    calls = []
    real = kernels.adam_step

    def spy(*args, **kw):
        calls.append(real(*args, **kw))
        return calls[-1]

    monkeypatch.setattr(kernels, "adam_step", spy)
    ref, got = _tensors(lists), _tensors(lists)
    for i in range(len(SHAPES)):
        adam_update(*(r[i] for r in ref), None, 1.0, 0.01, decoupled=False, **ADAM)
    args = [t._data for t in got[0]] + grads + [t._data for lst in got[2:] for t in lst]
    adam_group_update.forward(
        np, *args, *[1.0] * len(SHAPES), 0.01,
        n=len(SHAPES), amsgrad=False, decoupled=False, **ADAM,
    )  # fmt: skip
    _assert_same(ref, got)
    assert calls[-1] is (mode == "c")


def test_split_group_checks_the_input_count():
    assert split_group((1, 2, 3), 2) == ([[1, 2]], 3)
    with pytest.raises(ValueError, match="grouped update of 2 parameters"):
        split_group((1, 2, 3, 4), 2)


def test_cupy_arrays_loop_over_the_per_parameter_kernels():
    if not ember.cuda_is_available():
        pytest.skip("needs a CUDA GPU")
    lists = _arrays(4)
    cpu = _tensors(lists)
    gpu = [[t.to("cuda") for t in lst] for lst in _tensors(lists)]
    steps = [1.0, 2.0, 3.0, 4.0]
    for group in (cpu, gpu):
        adam_group_update(
            *(t for lst in group for t in lst), *steps, 0.01,
            n=len(SHAPES), amsgrad=False, decoupled=True, **ADAM,
        )  # fmt: skip
    for lc, lg in zip(cpu, gpu):
        for c, g in zip(lc, lg):
            np.testing.assert_allclose(g.cpu().numpy(), c.numpy(), rtol=1e-5, atol=1e-6)


# -- ONNX: the first parameter's new value ------------------------------------------------------
@pytest.mark.parametrize(
    "name, lists, tail, attrs",
    [
        ("adam_group_update", 5, [[3.0, 3.0]], dict(amsgrad=True, decoupled=True, **ADAM)),
        ("sgd_group_update", 3, [], dict(first=(False, False), **SGD)),
        ("rmsprop_group_update", 5, [[2.0, 2.0]], dict(centered=True, **RMS)),
    ],
)
def test_onnx_lowering_is_the_first_parameters_update(name, lists, tail, attrs):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from ember.graph.ir import Graph
    from ember.onnx.exporter import graph_to_onnx

    rng = np.random.default_rng(0)
    shape = (3, 4)
    g = Graph("group")
    n = 2
    values = [g.add_input(shape, np.float32, label=f"a{k}") for k in range(lists * n)]
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in values]
    for k in range(2 * n, lists * n):  # moments are non-negative (and sq > ga * ga)
        arrays[k] = np.abs(arrays[k]) + 4.0 if k < 3 * n else np.abs(arrays[k]) * 0.1
    steps = [s for lst in tail for s in lst]
    g.outputs = [g.add_node(name, values + steps + [0.01], {"n": n, **attrs}, shape, np.float32)]
    feeds = {f"input_{k}": a for k, a in enumerate(arrays)}
    got = ort.InferenceSession(graph_to_onnx(g).SerializeToString()).run(None, feeds)[0]
    tensors = [ember.tensor(a.copy()) for a in arrays]
    want = globals()[name](*tensors, *steps, 0.01, n=n, **attrs).numpy()
    assert np.isfinite(want).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

"""Compiled C regions (ember/graph/passes/regions.py, ember/graph/codegen_c.py): the compiled
function gives what eager mode gives, for every op the generator writes, with broadcasting,
odd and size-1 shapes, non-contiguous inputs, reductions, inf/-inf/NaN and float64; the
NumPy path stays when the kernels are off or cannot be built; one C file per graph, loaded
from the disk cache the second time."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember
import ember.nn.functional as F
import ember.ops.activation_grad as AG
from ember import config
from ember.graph import codegen_c
from ember.graph.passes import region_groups
from ember.kernels import build, runtime

pytestmark = pytest.mark.skipif(build.find_compiler() is None, reason="no C compiler")


@pytest.fixture(autouse=True)
def _c_mode(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
    before = runtime.mode()
    runtime.set_mode("auto")
    config.passes = None  # the default pipeline (conftest restores it)
    yield
    runtime.set_mode(before)


def _arr(shape, seed=0, lo=-2.0, hi=2.0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


def _check(fn, *arrays, n_regions=1, rtol=2e-6, atol=1e-6, ops=()):
    """Run ``fn`` eagerly and compiled (second call runs the graph); compare; return the
    compiled function."""
    ts = [ember.tensor(a) for a in arrays]
    with ember.no_grad():
        want = fn(*ts)
        f = ember.compile(fn)
        f(*ts)
        got = f(*ts)
    want = want if isinstance(want, tuple) else (want,)
    got = got if isinstance(got, tuple) else (got,)
    for w, g in zip(want, got):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=atol, equal_nan=True)
    assert f.cache_info().hits == 1
    groups = region_groups(f.graph)
    assert len(groups) == n_regions, f.graph
    if n_regions:
        assert f.c_code is not None and f.c_code.count("EMBER_API void") == n_regions
        names = " ".join(n.op for r in groups for n in r.nodes)
        for op in ops:
            assert op in names.split(), (op, names)
    return f


UNARY = {
    "neg": lambda x: -x,
    "exp": ember.exp,
    "log": lambda x: ember.log(ember.abs(x) + 0.1),
    "tanh": ember.tanh,
    "sqrt": lambda x: ember.sqrt(ember.abs(x)),
    "rsqrt": lambda x: ember.rsqrt(ember.abs(x) + 0.5),
    "abs": ember.abs,
    "relu": ember.relu,
    "sigmoid": ember.sigmoid,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "square": ember.square,
    "reciprocal": lambda x: ember.reciprocal(x + 3.0),
    "pow2": lambda x: x**2,
    "pow3": lambda x: ember.abs(x) ** 1.7,
    "clamp": lambda x: ember.clamp(x, -0.5, 0.7),
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "hardtanh": lambda x: F.hardtanh(x, -0.3, 0.4),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unary_ops(name, dtype):
    op = UNARY[name]
    _check(lambda x, y: op(x * y), _arr((5, 33), 1, dtype=dtype), _arr((5, 33), 2, dtype=dtype))


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "div": lambda a, b: a / (ember.abs(b) + 0.5),
    "maximum": ember.maximum,
    "minimum": ember.minimum,
    "where": lambda a, b: ember.where(a > b, a, b * 2.0),
    "compare": lambda a, b: (a <= b).to(ember.float32) + (a != b).to(ember.float32),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_ops(name):
    op = BINARY[name]
    _check(lambda a, b: op(a * 1.5, b), _arr((7, 9), 3), _arr((7, 9), 4))


GRADS = {
    "relu_backward": lambda g, v: AG.relu_backward(g * 2.0, ember.relu(v)),
    "tanh_backward": lambda g, v: AG.tanh_backward(g * 2.0, ember.tanh(v)),
    "sigmoid_backward": lambda g, v: AG.sigmoid_backward(g * 2.0, ember.sigmoid(v)),
    "silu_backward": lambda g, v: AG.silu_backward(g * 2.0, v),
    "gelu_backward": lambda g, v: AG.gelu_backward(g * 2.0, v),
    "gelu_backward_tanh": lambda g, v: AG.gelu_backward(g * 2.0, v, approximate="tanh"),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_activation_backward_ops(name):
    g, v = _arr((6, 35), 12), _arr((6, 35), 13)
    v[0, :4] = [0.0, -0.0, np.nan, np.inf]
    _check(GRADS[name], g, v, ops=(name.replace("_tanh", ""),))


@pytest.mark.parametrize(
    "other",
    [(9,), (7, 1), (1, 9), (1, 1), ()],
    ids=["row", "column", "row2d", "one", "0d"],
)
def test_broadcast_inputs(other):
    _check(lambda a, b: ember.tanh(a * b + b), _arr((7, 9), 5), _arr(other, 6))


def test_scalars_and_float64_promotion():
    x = _arr((4, 6), 7)
    _check(lambda a: ember.exp(a * 0.25 - 1.0) + 2, x)
    f = _check(lambda a, b: (a * b).exp(), x, np.float64(3.0))  # a 0-d tensor: an argument
    assert "double s0" in f.c_code


@pytest.mark.parametrize("shape", [(1,), (3,), (1, 1, 5), (2, 1, 3), (3, 17, 1), (70000,)])
def test_odd_and_size_one_shapes(shape):
    _check(lambda a, b: ember.sigmoid(a - b) * b, _arr(shape, 8), _arr(shape, 9))


def test_non_contiguous_inputs():
    a, b = _arr((6, 10), 10), _arr((10, 6), 11)
    _check(lambda a, b: ember.exp(a * b.t()) - a, a, b)
    _check(lambda a: ember.relu(a[:, ::2] * 2.0) + 1.0, a)


def test_multi_output_region():
    def fn(a, b):
        t = a * b
        u = ember.tanh(t)
        return t, u + 1.0, u * u

    f = _check(fn, _arr((8, 16), 12), _arr((16,), 13))
    assert len(region_groups(f.graph)[0].nodes) == 4
    assert len(f._last.program.c_library.path.read_bytes()) > 0
    assert f.c_code.count("*restrict out") == 3


def test_value_read_outside_is_written_and_regions_stay_convex():
    def fn(a, w):
        t = ember.exp(a * 0.5)
        return (t @ w) + t.sum()  # the sum runs after the matmul: not in t's region

    f = _check(fn, _arr((4, 4), 14), _arr((4, 4), 15))
    assert [n.op for n in region_groups(f.graph)[0].nodes] == ["mul", "exp"]


def test_softmax_by_hand_and_masked():
    def softmax(x, mask):
        x = ember.where(mask, x, float("-inf"))
        e = ember.exp(x - x.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True)

    x = _arr((6, 37), 16, -30, 30)
    mask = np.random.default_rng(0).uniform(size=(6, 37)) > 0.3
    mask[2] = False  # a fully masked row: NaN, like NumPy
    f = _check(softmax, x, mask, ops=("amax", "sum", "exp", "where"))
    assert "#pragma omp simd reduction(max:" in f.c_code


def test_layer_norm_by_hand():
    def ln(x, g, b):
        mu = x.mean(-1, keepdim=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdim=True)
        return xc * ember.rsqrt(var + 1e-5) * g + b

    _check(ln, _arr((3, 5, 48), 17), _arr((48,), 18), _arr((48,), 19), rtol=1e-5, atol=1e-5)


def test_sum_of_squares_and_full_reductions():
    x = _arr((5, 4, 6), 20)
    _check(lambda a: (a * a).sum(-1), x)
    _check(lambda a: (a * a).sum((-2, -1), keepdim=True) + 1.0, x, rtol=1e-5)
    _check(lambda a: ember.exp(a).sum(), x, rtol=1e-5)
    _check(lambda a: (a * 2.0).mean(-1) * 3.0, x)


def test_special_values():
    x = _arr((4, 8), 21)
    x[0, 1], x[1, 2], x[2, 3], x[3, 0] = np.nan, np.inf, -np.inf, np.nan
    y = _arr((4, 8), 22)
    y[1, 1], y[2, 2] = np.nan, -np.inf
    _check(lambda a, b: ember.maximum(a, b) * 2.0, x, y)
    _check(lambda a, b: ember.minimum(a, b) * 2.0, x, y)
    _check(lambda a: ember.relu(a) + ember.exp(a) + ember.sigmoid(a), x)
    _check(lambda a: ember.tanh(a * 2.0) + ember.clamp(a, -1.0, 1.0), x)
    _check(lambda a, b: (a + b).amax(-1) + (a * b).sum(-1), x, y)
    _check(lambda a: (a * 2.0).amax(-1, keepdim=True) - a, _arr((3, 5), 23) * np.inf)


def test_float64_reduction_region():
    x = _arr((9, 31), 24, dtype=np.float64)
    _check(lambda a: ember.exp(a - a.amax(-1, keepdim=True)).sum(-1), x, rtol=1e-12)


def test_training_step_gradients_match_eager():
    def make():
        ember.manual_seed(0)
        model = ember.nn.Sequential(
            ember.nn.Linear(12, 32), ember.nn.GELU(approximate="tanh"), ember.nn.Linear(32, 5)
        )
        return model, ember.optim.SGD(model.parameters(), lr=0.1)

    x, y = ember.tensor(_arr((16, 12), 25)), ember.tensor(_arr((16, 5), 26))

    def step_fn(model, opt):
        def step(x, y):
            opt.zero_grad()
            h = model(x)
            loss = ((ember.tanh(h) - y) ** 2).mean() + (ember.sigmoid(h) * h).mean()
            loss.backward()
            opt.step()
            return loss

        return step

    m1, o1 = make()
    m2, o2 = make()
    eager, compiled = step_fn(m1, o1), ember.compile(step_fn(m2, o2))
    for _ in range(3):
        l1, l2 = eager(x, y), compiled(x, y)
        np.testing.assert_allclose(l2.item(), l1.item(), rtol=1e-5)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.grad.numpy(), p1.grad.numpy(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(p2.detach().numpy(), p1.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert region_groups(compiled.graph) and compiled.c_code is not None


def test_numpy_mode_keeps_the_numpy_path():
    runtime.set_mode("numpy")
    f = _check(lambda a, b: ember.tanh(a * b + 1.0), _arr((4, 5), 27), _arr((5,), 28), n_regions=0)
    assert f.c_code is None and "_r0" not in f.code
    assert any("fused" in n.meta for n in f.graph.nodes)  # the in-place NumPy fusion


def test_build_failure_falls_back_with_one_message(monkeypatch):
    def fail(unit):
        raise build.KernelBuildError("no C compiler found (looked for cc)")

    monkeypatch.setattr(build, "load_unit", fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = _check(lambda a: ember.exp(a * 2.0) + 1.0, _arr((3, 4), 29), n_regions=0)
        _check(lambda a: ember.tanh(a * 2.0) - 1.0, _arr((3, 4), 30), n_regions=0)
    msgs = [w for w in caught if issubclass(w.category, runtime.KernelFallbackWarning)]
    assert len(msgs) == 1 and "C kernels unavailable" in str(msgs[0].message)
    assert f.c_code is None


def test_c_mode_raises_when_kernels_cannot_be_built(monkeypatch):
    runtime.set_mode("c")

    def fail(unit):
        raise build.KernelBuildError("no C compiler found (looked for cc)")

    monkeypatch.setattr(build, "load_unit", fail)
    f = ember.compile(lambda a: ember.exp(a * 2.0))
    with ember.no_grad(), pytest.raises(runtime.KernelUnavailableError, match="no C compiler"):
        f(ember.ones(3))


def test_one_c_file_per_graph_and_disk_cache(monkeypatch):
    def fn(a, b):
        t = ember.exp(a * b)
        m = ember.matmul(t, b)  # splits the graph into two regions
        return ember.tanh(m * 2.0 + 1.0), t

    a, b = _arr((6, 6), 31), _arr((6, 6), 32)
    f = _check(fn, a, b, n_regions=2)
    assert f.c_code.count("/* region ") == 2
    lib = f._last.program.c_library
    assert lib.path.exists() and lib.path.with_suffix(".c").read_text().count("EMBER_API void") == 2

    def no_compiler(*args, **kwargs):
        raise AssertionError("the compiler ran for a cached graph")

    monkeypatch.setattr(build, "_compile", no_compiler)
    g = _check(fn, a, b, n_regions=2)
    assert g._last.program.c_library.built is False
    assert g.c_code == f.c_code


def test_failing_region_names_the_users_line():
    from ember.graph.executor import GraphRuntimeError

    def fn(a):
        return ember.tanh(a * 3.0)  # the region's line

    f = _check(fn, _arr((2, 3), 33))

    def boom(*args):
        raise ValueError("kernel failed")

    f._last.program._namespace["_r0"] = boom
    with ember.no_grad(), pytest.raises(GraphRuntimeError, match="the region's line"):
        f(ember.ones(2, 3))


def test_empty_graph_source():
    src = codegen_c.generate(ember.graph.ir.Graph(), [])
    assert src.functions == [] and "EMBER_API void" not in src.text


def test_row_nodes_read_broadcast_outside_inputs():
    def fn(a, c, d, e):
        m = a.mean(-1, keepdim=True) * c + e  # c: (4, 5, 1), e: (1, 5, 1): keepdim row values
        s = (a * a).sum(-1) + d  # d: (5,): a row value without keepdim
        return a - m, s * 2.0

    a, c, d, e = _arr((4, 5, 7), 34), _arr((4, 5, 1), 35), _arr((5,), 36), _arr((1, 5, 1), 37)
    f = _check(fn, a, c, d, e, n_regions=2, rtol=1e-5)
    assert sum(len(r.nodes) for r in region_groups(f.graph)) == 8


def test_a_region_wakes_threads_by_its_estimated_nanoseconds():
    """The work handed to kernel_threads is an estimate in ns of one core: per element, each
    array read or written and each op, transcendental ops (exp) costing more. At 100K
    elements a cheap chain (about 0.4 ns an element) stays on one thread and an exp chain
    (about 1 ns) asks for threads."""
    from ember.threads import MIN_WORK_PER_THREAD

    a, b = _arr((250, 400), 1), _arr((250, 400), 2)
    cheap = _check(lambda x, y: (x + y) * 2.0, a, b)
    heavy = _check(lambda x, y: ember.exp(x) * y, a, b)
    (fc,), (fh,) = (codegen_c.generate(f.graph, region_groups(f.graph)).functions
                    for f in (cheap, heavy))  # fmt: skip
    assert fc.work < 2 * MIN_WORK_PER_THREAD <= fh.work
    assert fh.work / a.size > 2 * fc.work / a.size  # exp dominates
    assert "_kt(" not in cheap.code and "_kt(" in heavy.code

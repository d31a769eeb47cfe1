"""The conv2d paths of ``ember/ops/nn/conv_gemm.py`` at the op level: the implicit-GEMM
kernels, columns kept from the forward for the weight gradient (the
``im2col`` op; with the implicit kernels switched off), and the direct
kernels for few taps per output. Each must give what the plain im2col + GEMM path gives and
what PyTorch gives, forward and backward, in eager mode, under ``EMBER_KERNELS=numpy`` and
in a compiled training step; the columns must lower to ONNX; finite differences check the
gradients."""

from __future__ import annotations

import numpy as np
import pytest

import ember
import ember.nn.functional as F
from ember import kernels, nn
from ember.autograd import gradcheck, gradgradcheck
from ember.kernels import conv as kc
from ember.ops.nn import conv_gemm

from .conftest import IMPLICIT, numpy_path

torch = pytest.importorskip("torch")

# x shape, w shape, conv2d keywords; K = C/groups * kh * kw decides the path (direct: <= 16)
CASES = [
    ((3, 4, 9, 11), (6, 4, 3, 3), dict(padding=1)),  # K 36: kept columns
    ((2, 4, 9, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),  # K 18
    ((1, 3, 10, 7), (4, 3, 2, 3), dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1))),
    ((2, 1, 7, 9), (5, 1, 3, 3), dict(padding=1)),  # K 9: direct
    ((2, 3, 6, 6), (6, 1, 3, 3), dict(stride=2, groups=3)),  # depthwise: direct
    ((1, 2, 5, 4), (3, 2, 2, 2), dict(padding="same")),  # K 8, batch 1, odd sizes
]
IDS = ["cols", "cols_grouped_strided", "cols_dilated", "direct", "direct_depthwise", "direct_b1"]


def _arrays(xs, ws, dtype, seed=0, noncontig=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(xs[::-1] if noncontig else xs).astype(dtype)
    x = x.T if noncontig else x
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    return x, w, b


def _ember(x, w, b, kw, bias=True):
    """Output and gradients (input, weight, bias) of conv2d for a fixed output gradient."""
    ts = [ember.tensor(a.copy() if not a.flags.c_contiguous else a, requires_grad=True)
          for a in (x, w, b)]  # fmt: skip
    if not x.flags.c_contiguous:  # a non-contiguous input, as a view
        ts[0] = ember.tensor(np.ascontiguousarray(x.T), requires_grad=True)
        xin = ts[0].permute(*reversed(range(x.ndim)))
    else:
        xin = ts[0]
    y = F.conv2d(xin, ts[1], ts[2] if bias else None, **kw)
    u = np.random.default_rng(9).standard_normal(y.shape).astype(x.dtype)
    (y * ember.tensor(u)).sum().backward()
    gx = ts[0].grad.numpy()
    gx = gx.T if not x.flags.c_contiguous else gx
    out = [y.detach().numpy(), gx, ts[1].grad.numpy()]
    return out + ([ts[2].grad.numpy()] if bias else []), y


def _torch(x, w, b, kw, bias=True):
    ts = [torch.from_numpy(np.ascontiguousarray(a)).requires_grad_() for a in (x, w, b)]
    y = torch.nn.functional.conv2d(ts[0], ts[1], ts[2] if bias else None, **kw)
    u = np.random.default_rng(9).standard_normal(tuple(y.shape)).astype(x.dtype)
    (y * torch.from_numpy(u)).sum().backward()
    out = [y.detach().numpy()] + [t.grad.numpy() for t in ts[:2]]
    return out + ([ts[2].grad.numpy()] if bias else [])


def _paths(monkeypatch, keep: bool, direct: bool, implicit: bool = True):
    monkeypatch.setattr(conv_gemm, "KEEP_COLUMNS_BYTES", (32 << 20) if keep else 0)
    monkeypatch.setattr(conv_gemm, "DIRECT_MAX_TAPS", 16 if direct else 0)
    if not implicit:  # the implicit-GEMM kernels decline every call
        for name in IMPLICIT:
            monkeypatch.setattr(kernels, name, lambda *a, **k: None)


def _implicit_case(ws, kw) -> bool:
    """True when the C kernels take this case's convolution on the implicit-GEMM path (any
    groups: more taps per output than the direct path takes)."""
    return ws[1] * ws[2] * ws[3] > conv_gemm.DIRECT_MAX_TAPS


@pytest.mark.parametrize("implicit", [True, False], ids=["implicit", "noimplicit"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("noncontig", [False, True], ids=["contig", "noncontig"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, kw", CASES, ids=IDS)
def test_paths_match_plain_path_and_torch(c_kernels, monkeypatch, xs, ws, kw, dtype, noncontig,
                                          bias, implicit):  # fmt: skip
    x, w, b = _arrays(xs, ws, dtype, noncontig=noncontig)
    with monkeypatch.context() as m:
        _paths(m, keep=False, direct=False, implicit=False)
        plain, _ = _ember(x, w, b, kw, bias)
    _paths(monkeypatch, keep=True, direct=True, implicit=implicit)
    got, y = _ember(x, w, b, kw, bias)
    k = ws[1] * ws[2] * ws[3]
    kept = len(y.grad_fn.edges) == 4  # conv2d(x, w, b, cols)
    assert kept == (k > conv_gemm.DIRECT_MAX_TAPS and not (implicit and _implicit_case(ws, kw)))
    want = _torch(x, w, b, kw, bias)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for a, p, t in zip(got, plain, want):
        assert a.shape == t.shape and a.dtype == t.dtype
        np.testing.assert_allclose(a, p, **tol)
        np.testing.assert_allclose(a, t, **tol)


@pytest.mark.parametrize("xs, ws, kw", CASES, ids=IDS)
def test_numpy_path_matches(c_kernels, xs, ws, kw):
    x, w, b = _arrays(xs, ws, np.float32, seed=1)
    got, _ = _ember(x, w, b, kw)
    with numpy_path():
        want, y = _ember(x, w, b, kw)
    assert (len(y.grad_fn.edges) == 4) == (ws[1] * ws[2] * ws[3] > conv_gemm.DIRECT_MAX_TAPS)
    for a, t in zip(got, want):
        np.testing.assert_allclose(a, t, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode", ["c", "numpy"])
def test_paths_in_pieces(c_kernels, monkeypatch, mode):
    """Over the one-piece limit, columns are not kept and the NumPy form of the direct path
    works a few samples at a time: same results."""
    from ember.ops.nn import conv

    for xs, ws, kw in (CASES[0], CASES[3], CASES[4]):
        x, w, b = _arrays(xs, ws, np.float64, seed=2)
        with numpy_path() if mode == "numpy" else _nullcontext():
            whole, _ = _ember(x, w, b, kw)
            monkeypatch.setattr(conv, "_COLS_LIMIT", 40)  # about one sample per piece
            pieces, y = _ember(x, w, b, kw)
            monkeypatch.undo()
        assert len(y.grad_fn.edges) == 3
        for a, p in zip(whole, pieces):
            np.testing.assert_allclose(a, p, rtol=1e-12, atol=1e-12)


def test_direct_kernels_serve_small_convolutions(c_kernels, monkeypatch):
    calls = {"conv_direct": 0, "conv_weight_grad_direct": 0}
    for name in calls:  # called through the package (the seam), as the op calls them
        f = getattr(kernels, name)

        def counted(*a, _f=f, _n=name, **k):
            out = _f(*a, **k)
            calls[_n] += out is not None
            return out

        monkeypatch.setattr(kernels, name, counted)
    x, w, b = _arrays((2, 1, 7, 9), (5, 1, 3, 3), np.float32)
    _ember(x, w, b, dict(padding=1))
    assert calls == {"conv_direct": 1, "conv_weight_grad_direct": 1}


def test_columns_kept_only_when_the_weight_needs_a_gradient(c_kernels, monkeypatch):
    x = ember.randn(2, 4, 6, 6, requires_grad=True)
    assert len(F.conv2d(x, ember.randn(3, 4, 3, 3, requires_grad=True)).grad_fn.edges) == 3
    _paths(monkeypatch, keep=True, direct=True, implicit=False)  # (implicit GEMM: none kept)
    w = ember.randn(3, 4, 3, 3)
    assert len(F.conv2d(x, w, padding=1).grad_fn.edges) == 3  # frozen weight
    w.requires_grad_(True)
    assert len(F.conv2d(x, w, padding=1).grad_fn.edges) == 4
    with ember.no_grad():
        assert F.conv2d(x, w, padding=1).grad_fn is None
    # over the cap (or over the one-piece limit) the weight gradient builds them again
    monkeypatch.setattr(conv_gemm, "KEEP_COLUMNS_BYTES", 4 * 36 * 72 - 1)
    assert len(F.conv2d(x, w, padding=1).grad_fn.edges) == 3
    monkeypatch.setattr(conv_gemm, "KEEP_COLUMNS_BYTES", 4 * 36 * 72)
    assert len(F.conv2d(x, w, padding=1).grad_fn.edges) == 4


def test_keeps_columns_rule():
    f4 = np.dtype(np.float32)
    # W2's second convolution: 288 x 12544 float32 = 14.5 MB
    assert conv_gemm.keeps_columns((64, 32, 14, 14), (64, 32, 3, 3), (14, 14), f4)
    assert not conv_gemm.keeps_columns((256, 32, 14, 14), (64, 32, 3, 3), (14, 14), f4)  # 58 MB
    assert not conv_gemm.keeps_columns((0, 32, 14, 14), (64, 32, 3, 3), (14, 14), f4)
    assert not conv_gemm.keeps_columns((64, 32, 14, 14), (64, 32, 3, 3), (14, 14), f4, 1 << 20)
    assert not conv_gemm.keeps_columns((64, 1, 28, 28), (32, 1, 3, 3), (28, 28), f4)  # direct


def test_docstring_examples():
    from tests.nn.helpers import assert_doctests_pass

    assert_doctests_pass("ember.ops.nn.conv_gemm", at_least=3, np=np)


@pytest.mark.parametrize("xs, ws, kw", [CASES[0], CASES[1], CASES[3], CASES[4]],
                         ids=["cols", "cols_grouped_strided", "direct", "direct_depthwise"])  # fmt: skip
def test_finite_differences_float64(xs, ws, kw):
    rng = np.random.default_rng(4)
    xs = (min(xs[0], 2), xs[1], min(xs[2], 6), min(xs[3], 5))
    ins = [ember.tensor(rng.standard_normal(s), requires_grad=True) for s in (xs, ws, ws[:1])]
    fn = lambda x, w, b: F.conv2d(x, w, b, **kw)  # noqa: E731
    gradcheck(fn, ins, eps=1e-6, atol=1e-6, rtol=1e-5)
    gradgradcheck(fn, ins, eps=1e-6, atol=1e-4, rtol=1e-3)


def test_im2col_op_matches_the_kernel_and_lowers_to_onnx(c_kernels):
    ort = pytest.importorskip("onnxruntime")
    from ember.graph.trace import trace
    from ember.onnx.exporter import graph_to_onnx

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    attrs = dict(kernel=(3, 2), stride=(2, 1), padding=((1, 1), (0, 1)), dilation=(1, 2),
                 out_hw=(4, 5))  # fmt: skip
    cols = conv_gemm.im2col(ember.tensor(x), **attrs).numpy()
    want = kc.im2col(x, (3, 2), (2, 1), ((1, 1), (0, 1)), (1, 2), (4, 5))
    np.testing.assert_array_equal(cols, want)
    with numpy_path():
        np.testing.assert_array_equal(conv_gemm.im2col(ember.tensor(x), **attrs).numpy(), want)
    graph, _ = trace(lambda t: conv_gemm.im2col(t, **attrs), ember.tensor(x))
    model = graph_to_onnx(graph)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_im2col_op_never_returns_a_view(c_kernels):
    x = ember.randn(1, 2, 3, 3)
    for mode in ("c", "numpy"):
        ctx = numpy_path() if mode == "numpy" else _nullcontext()
        with ctx:
            cols = conv_gemm.im2col(x, kernel=(1, 1), stride=(1, 1), padding=((0, 0), (0, 0)),
                                    dilation=(1, 1), out_hw=(3, 3))  # fmt: skip
        assert not np.shares_memory(cols.numpy(), x.numpy())


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _cnn():
    """W2 in small: conv(1->4) relu pool, conv(4->8) relu pool, linear."""
    ember.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 5),
    )  # fmt: skip


@pytest.mark.parametrize("mode", ["c", "numpy"])
def test_compiled_training_step_equals_eager(c_kernels, mode):
    rng = np.random.default_rng(6)
    x = ember.tensor(rng.standard_normal((6, 1, 12, 12)).astype(np.float32))
    y = ember.tensor(rng.integers(0, 5, 6))

    def run(compiled):
        model = _cnn()
        opt = ember.optim.Adam(model.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = ember.compile(step) if compiled else step
        losses = [fn(x, y).item() for _ in range(4)]
        return losses, [p.detach().numpy().copy() for p in model.parameters()], fn

    ctx = numpy_path() if mode == "numpy" else _nullcontext()
    with ctx:
        eager, eager_params, _ = run(False)
        comp, comp_params, fn = run(True)
    np.testing.assert_allclose(comp, eager, rtol=1e-5, atol=1e-6)
    for a, b in zip(comp_params, eager_params):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ops = [n.op for g in fn.graphs for n in g.nodes]
    # the second convolution takes the implicit-GEMM kernels (the first one the direct
    # path); without them, its columns are shared by its forward and its weight gradient
    assert ops.count("im2col") == (1 if mode == "numpy" else 0)
    assert sum(o == "conv2d_weight_grad" for o in ops) == 2


def test_conv2d_fused_with_relu_lowers_to_onnx_and_has_no_gradient(c_kernels):
    """The optimizer's conv2d(relu=True): Conv then Relu in ONNX; differentiating it directly
    is an error that says what to do."""
    ort = pytest.importorskip("onnxruntime")
    from ember.graph.ir import Graph
    from ember.onnx.exporter import graph_to_onnx
    from ember.ops.nn.conv import _conv2d

    x, w, b = _arrays((2, 3, 6, 5), (4, 3, 3, 3), np.float32, seed=7)
    attrs = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1,
                 out_hw=(6, 5))  # fmt: skip
    g = Graph()
    xi, wi, bi = (g.add_input(a.shape, np.float32, label=n) for a, n in zip((x, w, b), "xwb"))
    g.outputs = [g.add_node("conv2d", [xi, wi, bi], dict(attrs, relu=True), (2, 4, 6, 5),
                            np.float32)]  # fmt: skip
    model = graph_to_onnx(g)
    assert [n.op_type for n in model.graph.node][-1] == "Relu"
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), (x, w, b))})[0]
    want = np.maximum(_torch(x, w, b, dict(padding=1))[0], 0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    y = _conv2d(*(ember.tensor(a, requires_grad=True) for a in (x, w, b)), relu=True, **attrs)
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ember.errors.ShapeError, match="differentiate conv2d, then relu"):
        y.sum().backward()

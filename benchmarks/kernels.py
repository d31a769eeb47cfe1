"""ember's C kernels vs its NumPy path vs PyTorch (CPU), one op at a time, at W3 sizes
(W2 sizes for the convolution and pooling kernels).

Each row times the array-level work only (no autograd, no dispatch): ember's seam function
(``ember.kernels``), the NumPy path of the same op (the registry forward run with
``EMBER_KERNELS=numpy``), and PyTorch's ATen op (``torch.ops.aten`` for backward ops, the
fused AdamW). Times are the best of ``--repeat`` interleaved rounds (the least noisy
estimate on a shared machine), in microseconds; the ratios are ember-kernel / NumPy and
ember-kernel / PyTorch (below 1.0: the kernel is faster). All three use ``--threads``
threads. Run: ``python benchmarks/kernels.py [--threads 1] [--repeat 7]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ember before NumPy: it sets OpenBLAS's thread timeout, read when NumPy loads OpenBLAS
import ember  # noqa: E402

# isort: split
import numpy as np  # noqa: E402

import ember.nn.functional  # noqa: E402, F401  (registers the nn ops)
from benchmarks.workloads import w3_gpt  # noqa: E402
from ember import kernels  # noqa: E402
from ember.kernels import runtime  # noqa: E402
from ember.ops.registry import REGISTRY  # noqa: E402

try:
    import torch
except ImportError:  # the comparison needs PyTorch; ember's columns still print
    torch = None

Case = tuple[str, Callable[[], object], Callable[[], object], Callable[[], object] | None]


def numpy_op(name: str, *args, **attrs) -> Callable[[], object]:
    fwd = REGISTRY[name].forward
    return lambda: fwd(np, *args, **attrs)


def _t(a):
    return torch.from_numpy(a) if torch is not None else None


def softmax_cases(rng) -> list[Case]:
    x = rng.standard_normal((32, 4, 64, 64)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y = kernels.softmax_forward(x, -1)
    aten = torch.ops.aten if torch else None
    return [
        ("softmax fwd (32,4,64,64)", lambda: kernels.softmax_forward(x, -1),
         numpy_op("softmax", x, dim=3), torch and (lambda: torch.softmax(_t(x), -1))),
        ("softmax bwd", lambda: kernels.softmax_backward(g, y, -1),
         numpy_op("softmax_backward", g, y, dim=3),
         torch and (lambda: aten._softmax_backward_data(_t(g), _t(y), -1, torch.float32))),
        ("log_softmax fwd", lambda: kernels.softmax_forward(x, -1, log=True),
         numpy_op("log_softmax", x, dim=3), torch and (lambda: torch.log_softmax(_t(x), -1))),
    ]  # fmt: skip


def layer_norm_cases(rng) -> list[Case]:
    x = rng.standard_normal((2048, 128)).astype(np.float32)
    w, b = np.ones(128, np.float32), np.zeros(128, np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y, mean, rstd = kernels.layer_norm_forward(x, 1, w, b)

    def numpy_fwd():
        m = REGISTRY["norm_moments"].forward(np, x, axes=(1,))
        return REGISTRY["standardize"].forward(np, x, m, axes=(1,), eps=1e-5) * w + b

    m = REGISTRY["norm_moments"].forward(np, x, axes=(1,))
    xhat = REGISTRY["standardize"].forward(np, x, m, axes=(1,), eps=1e-5)

    def numpy_bwd():
        dx = REGISTRY["standardize_backward"].forward(np, x, xhat, m, g * w, axes=(1,), eps=1e-5)
        return dx, (g * xhat).sum(0), g.sum(0)

    cases = [
        ("layer_norm fwd (2048,128)", lambda: kernels.layer_norm_forward(x, 1, w, b, 1e-5),
         numpy_fwd, None),
        ("layer_norm bwd", lambda: kernels.layer_norm_backward(g, x, mean, rstd, 1, w),
         numpy_bwd, None),
    ]  # fmt: skip
    if torch:
        tx, tw, tb, tg = _t(x), _t(w), _t(b), _t(g)
        ty, tm, tr = torch.ops.aten.native_layer_norm(tx, [128], tw, tb, 1e-5)
        cases[0] = cases[0][:3] + (
            lambda: torch.ops.aten.native_layer_norm(tx, [128], tw, tb, 1e-5),
        )
        cases[1] = cases[1][:3] + (
            lambda: torch.ops.aten.native_layer_norm_backward(tg, tx, [128], tm, tr, tw, tb,
                                                              [True, True, True]),
        )  # fmt: skip
    return cases


def gelu_cases(rng) -> list[Case]:
    x = rng.standard_normal((2048, 512)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    tf = torch.nn.functional if torch else None
    return [
        ("gelu-tanh fwd (2048,512)", lambda: kernels.gelu_forward(x, "tanh"),
         numpy_op("gelu", x, approximate="tanh"),
         torch and (lambda: tf.gelu(_t(x), approximate="tanh"))),
        ("gelu-tanh bwd", lambda: kernels.gelu_backward(g, x, "tanh"),
         numpy_op("gelu_backward", g, x, approximate="tanh"),
         torch and (lambda: torch.ops.aten.gelu_backward(_t(g), _t(x), approximate="tanh"))),
        ("gelu (erf) fwd", lambda: kernels.gelu_forward(x), numpy_op("gelu", x, approximate="none"),
         torch and (lambda: tf.gelu(_t(x)))),
    ]  # fmt: skip


def cross_entropy_cases(rng) -> list[Case]:
    x = rng.standard_normal((2048, 96)).astype(np.float32)
    t = rng.integers(0, 96, 2048)
    attrs = dict(ignore_index=-100, label_smoothing=0.0)
    one = np.asarray(1.0, np.float32)
    xent, back = REGISTRY["cross_entropy"].forward, REGISTRY["cross_entropy_backward"].forward

    def numpy_both():
        return xent(np, x, t, None, reduction="mean", **attrs), back(
            np, x, t, None, one, reduction="mean", **attrs
        )

    def torch_both():
        xt = _t(x).requires_grad_()
        loss = torch.nn.functional.cross_entropy(xt, _t(t))
        loss.backward()
        return xt.grad

    return [
        ("cross_entropy loss+grad (2048,96)",
         lambda: kernels.cross_entropy_forward(x, t, with_grad=True), numpy_both,
         torch and torch_both),
    ]  # fmt: skip


def adamw_cases(rng) -> list[Case]:
    shapes = [w.shape for w in w3_gpt.make_weights().values()]
    ps = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    gs = [rng.standard_normal(s).astype(np.float32) * 1e-3 for s in shapes]
    ms, vs = [np.zeros_like(p) for p in ps], [np.zeros_like(p) for p in ps]
    kp, km, kv = [p.copy() for p in ps], [m.copy() for m in ms], [v.copy() for v in vs]
    opts = dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True, maximize=False)
    upd = REGISTRY["adam_update"].forward

    def numpy_step():
        for p, g, m, v in zip(ps, gs, ms, vs):
            upd(np, p, g, m, v, None, 1, 1e-3, **opts)

    torch_step = None
    if torch:
        tp = [torch.from_numpy(p.copy()).requires_grad_() for p in ps]
        for p, g in zip(tp, gs):
            p.grad = torch.from_numpy(g)
        try:
            opt = torch.optim.AdamW(tp, lr=1e-3, weight_decay=0.01, fused=True)
        except (RuntimeError, TypeError, ValueError):
            opt = torch.optim.AdamW(tp, lr=1e-3, weight_decay=0.01)
        torch_step = opt.step
    n = sum(p.size for p in ps)
    return [
        (f"AdamW step ({n} params, {len(ps)} tensors)",
         lambda: kernels.adam_step(kp, gs, km, kv, None, 1, lr=1e-3, **opts), numpy_step,
         torch_step),
    ]  # fmt: skip


def embedding_cases(rng) -> list[Case]:
    idx = rng.integers(0, 96, (32, 64))
    g = rng.standard_normal((32, 64, 128)).astype(np.float32)
    return [
        ("embedding bwd (32x64 -> 96x128)", lambda: kernels.embedding_backward(g, idx, 96),
         numpy_op("embedding_backward", g, idx, num_weights=96, padding_idx=None,
                  scale_grad_by_freq=False),
         torch and (lambda: torch.ops.aten.embedding_dense_backward(_t(g), _t(idx), 96, -1, False))),
    ]  # fmt: skip


def conv_pool_cases(rng) -> list[Case]:
    """W2's second convolution (3x3, padding 1, on (64, 32, 14, 14): Winograd's forward and
    weight gradient, the columns of the im2col path) and first pooling."""
    from ember.ops.nn.conv import _col2im, _im2col

    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    geom = ((3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (14, 14))
    cols = kernels.im2col(x, *geom)
    tf = torch.nn.functional if torch else None
    p = rng.standard_normal((64, 32, 28, 28)).astype(np.float32)
    pg = ((2, 2), (2, 2), (0, 0), (1, 1), (14, 14))
    attrs = dict(
        kernel_size=(2, 2), stride=(2, 2), padding=(0, 0), dilation=(1, 1), out_hw=(14, 14)
    )
    y = kernels.max_pool2d_forward(p, *pg)
    g = rng.standard_normal(y.shape).astype(np.float32)
    ti = torch and tf.max_pool2d(_t(p), 2, 2, return_indices=True)[1]
    w = (rng.standard_normal((64, 32, 3, 3)) / 17).astype(np.float32)
    b = rng.standard_normal(64).astype(np.float32)
    gy = rng.standard_normal((64, 64, 14, 14)).astype(np.float32)
    conv = dict(stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1), groups=1)
    aten = torch.ops.aten if torch else None
    return [
        ("conv2d fwd (64,32,14,14) 3x3 -> 64", lambda: kernels.implicit_conv2d(
            x, w, b, (1, 1), (1, 1), (1, 1), (14, 14)),
         numpy_op("conv2d", x, w, b, out_hw=(14, 14), **conv),
         torch and (lambda: tf.conv2d(_t(x), _t(w), _t(b), padding=1))),
        ("conv2d weight+bias grad (same)", lambda: kernels.implicit_weight_grad(
            x, gy, (3, 3), (1, 1), (1, 1), (1, 1), bias=True),
         numpy_op("conv2d_weight_grad", x, gy, kernel=(3, 3), with_bias=True, **conv),
         torch and (lambda: aten.convolution_backward(
             _t(gy), _t(x), _t(w), [64], [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
             [False, True, True]))),
        ("im2col (64,32,14,14) 3x3 pad 1", lambda: kernels.im2col(x, *geom),
         lambda: _im2col(np, x, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (14, 14), 1),
         torch and (lambda: tf.unfold(_t(x), 3, padding=1))),
        ("col2im (same)", lambda: kernels.col2im(cols, x.shape, *geom),
         lambda: _col2im(np, cols, x.shape, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), (14, 14)),
         torch and (lambda: tf.fold(_t(cols.reshape(288, 64, 196).transpose(1, 0, 2)), (14, 14), 3,
                                    padding=1))),
        ("max_pool2d fwd (64,32,28,28) 2x2", lambda: kernels.max_pool2d_forward(p, *pg),
         numpy_op("max_pool2d", p, **attrs), torch and (lambda: tf.max_pool2d(_t(p), 2, 2))),
        ("max_pool2d bwd", lambda: kernels.max_pool2d_backward(g, p, *pg),
         numpy_op("max_pool2d_backward", g, p, y, **attrs),
         torch and (lambda: torch.ops.aten.max_pool2d_with_indices_backward(
             _t(g), _t(p), [2, 2], [2, 2], [0, 0], [1, 1], False, ti))),
    ]  # fmt: skip


def best(fn: Callable[[], object] | None, number: int) -> float | None:
    if fn is None:
        return None
    return timeit.timeit(fn, number=number) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    ember.set_num_threads(args.threads)
    if torch is not None:
        torch.set_num_threads(args.threads)
    print(f"kernels: {kernels.describe()}")
    if not kernels.available():
        print("the C kernels are unavailable: nothing to compare")
        return
    rng = np.random.default_rng(0)
    cases = []
    for make in (softmax_cases, layer_norm_cases, gelu_cases, cross_entropy_cases, adamw_cases,
                 embedding_cases, conv_pool_cases):  # fmt: skip
        cases += make(rng)
    print(f"threads: {args.threads}; best of {args.repeat} rounds; microseconds per call")
    head = f"{'op':38s} {'kernel':>9s} {'numpy':>9s} {'torch':>9s} {'k/numpy':>8s} {'k/torch':>8s}"
    print(head)
    print("-" * len(head))
    for name, kfn, nfn, tfn in cases:
        kfn(), nfn()  # warm up (first calls build or load the kernels)
        if tfn:
            tfn()
        once = max(best(kfn, 1), 1.0)
        number = max(1, int(2e4 / once))  # about 20 ms per round
        k = n = t = float("inf")
        for _ in range(args.repeat):
            k = min(k, best(kfn, number))
            runtime.set_mode("numpy")
            n = min(n, best(nfn, number))
            runtime.set_mode("auto")
            t = min(t, best(tfn, number) or float("inf"))
        tt = f"{t:9.1f}" if t != float("inf") else f"{'-':>9s}"
        kt = f"{k / t:8.2f}" if t != float("inf") else f"{'-':>8s}"
        print(f"{name:38s} {k:9.1f} {n:9.1f} {tt} {k / n:8.2f} {kt}")


if __name__ == "__main__":
    main()

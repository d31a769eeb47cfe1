"""Table rows for pooling: max/avg pools (1-D, 2-D) and adaptive avg/max pools.

Inputs are random normals, so windows have no ties and finite differences of max pools are
well defined; ties (PyTorch's first-max rule) are checked in tests/nn/test_conv_pool.py.
``ref_pool2d`` is an independent NumPy reference: a loop over output positions.
"""

import numpy as np

from .optable import Case, F, I, cases


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _out(size, k, s, p, d, ceil):
    span = d * (k - 1) + 1
    o = (size + 2 * p - span + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def ref_pool2d(x, kind, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               count_include_pad=True, divisor_override=None):  # fmt: skip
    """Max or average over each window, following PyTorch's definitions literally."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = _pair(stride if stride is not None else kernel_size)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    oh, ow = _out(h, kh, sh, ph, dh, ceil_mode), _out(w, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            rows = [i * sh - ph + a * dh for a in range(kh)]
            cols = [j * sw - pw + b * dw for b in range(kw)]
            rin = [r for r in rows if 0 <= r < h]
            cin = [q for q in cols if 0 <= q < w]
            win = x[:, :, rin][:, :, :, cin].astype(np.float64)
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
                continue
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + kh, h + ph), min(w0 + kw, w + pw)
            if divisor_override:
                div = divisor_override
            elif count_include_pad:
                div = (h1 - h0) * (w1 - w0)
            else:
                div = len(rin) * len(cin)
            out[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return out.astype(x.dtype)


def ref_adaptive2d(x, kind, out_hw):
    n, c, h, w = x.shape
    oh, ow = out_hw
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(oh):
        for j in range(ow):
            r0, r1 = (i * h) // oh, -(-(i + 1) * h // oh)
            c0, c1 = (j * w) // ow, -(-(j + 1) * w // ow)
            win = x[:, :, r0:r1, c0:c1].astype(np.float64)
            out[:, :, i, j] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out.astype(x.dtype)


def _f(name, **kw):
    return lambda m, x: getattr(m.nn.functional, name)(x, **kw)


def _ref(kind, **kw):
    return lambda x: ref_pool2d(x, kind, **kw)


def _ref1d(kind, **kw):
    return lambda x: ref_pool2d(x[:, :, None], kind, **kw)[:, :, 0]


CASES = cases(
    # -- max_pool2d ------------------------------------------------------------------------
    Case(
        "max_pool2d_k2",
        _f("max_pool2d", kernel_size=2),
        [F(2, 2, 4, 6)],
        ref=_ref("max", kernel_size=2),
        grad2=True,
    ),  # fmt: skip
    Case(
        "max_pool2d_k2_tiling_noncontig",
        _f("max_pool2d", kernel_size=2),
        [F(2, 3, 6, 8, noncontig=True)],
        ref=_ref("max", kernel_size=2),
        grad2=True,
    ),
    Case(
        "max_pool2d_k3_s2_p1",
        _f("max_pool2d", kernel_size=3, stride=2, padding=1),
        [F(2, 2, 5, 5)],
        ref=_ref("max", kernel_size=3, stride=2, padding=1),
        grad2=True,
    ),
    Case(
        "max_pool2d_odd_floor",
        _f("max_pool2d", kernel_size=2),
        [F(1, 2, 5, 7)],
        ref=_ref("max", kernel_size=2),
    ),
    Case(
        "max_pool2d_ceil_mode",
        _f("max_pool2d", kernel_size=2, ceil_mode=True),
        [F(1, 2, 5, 7)],
        ref=lambda x: ref_pool2d(x, "max", 2, ceil_mode=True),
    ),
    Case(
        "max_pool2d_ceil_pad_stride",
        _f("max_pool2d", kernel_size=3, stride=2, padding=1, ceil_mode=True),
        [F(2, 2, 6, 5)],
        ref=lambda x: ref_pool2d(x, "max", 3, 2, 1, ceil_mode=True),
    ),
    Case(
        "max_pool2d_dilation_tuple",
        _f("max_pool2d", kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
        [F(1, 2, 6, 5)],
        ref=_ref("max", kernel_size=(3, 2), stride=(1, 2), padding=(1, 0), dilation=(2, 1)),
    ),
    Case(
        "max_pool2d_overlap",
        _f("max_pool2d", kernel_size=3, stride=1),
        [F(1, 2, 5, 5)],
        ref=_ref("max", kernel_size=3, stride=1),
        grad2=True,
    ),
    Case(
        "max_pool2d_indices",
        _f("max_pool2d", kernel_size=3, stride=2, padding=1, return_indices=True),
        [F(2, 2, 5, 6)],
    ),
    Case(
        "max_pool2d_noncontig_unbatched",
        _f("max_pool2d", kernel_size=2, stride=1),
        [F(2, 4, 3, noncontig=True)],
        ref=lambda x: ref_pool2d(x[None], "max", 2, 1)[0],
    ),
    Case(
        "max_pool2d_int",
        _f("max_pool2d", kernel_size=2, padding=1),
        [I(1, 2, 4, 5, low=-9, high=9)],
        ref=_ref("max", kernel_size=2, padding=1),
        grad=False,
    ),
    Case(
        "max_pool1d",
        _f("max_pool1d", kernel_size=3, stride=2, padding=1, ceil_mode=True),
        [F(2, 2, 8)],
        ref=_ref1d("max", kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True),
    ),
    Case(
        "max_pool1d_indices_unbatched",
        _f("max_pool1d", kernel_size=2, dilation=2, return_indices=True),
        [F(3, 9)],
    ),
    # -- avg_pool2d ------------------------------------------------------------------------
    Case(
        "avg_pool2d_k2",
        _f("avg_pool2d", kernel_size=2),
        [F(2, 2, 4, 5)],
        ref=_ref("avg", kernel_size=2),
        grad2=True,
    ),  # fmt: skip
    Case(
        "avg_pool2d_pad",
        _f("avg_pool2d", kernel_size=3, stride=2, padding=1),
        [F(2, 2, 5, 5)],
        ref=_ref("avg", kernel_size=3, stride=2, padding=1),
        grad2=True,
    ),
    Case(
        "avg_pool2d_exclude_pad",
        _f("avg_pool2d", kernel_size=3, stride=2, padding=1, count_include_pad=False),
        [F(2, 2, 5, 6)],
        ref=_ref("avg", kernel_size=3, stride=2, padding=1, count_include_pad=False),
    ),
    Case(
        "avg_pool2d_exclude_pad_noncontig_grad2",
        _f("avg_pool2d", kernel_size=(3, 2), stride=(1, 2), padding=1, count_include_pad=False),
        [F(2, 3, 5, 7, noncontig=True)],
        ref=_ref("avg", kernel_size=(3, 2), stride=(1, 2), padding=1, count_include_pad=False),
        grad2=True,
    ),
    Case(
        "avg_pool2d_ceil",
        _f("avg_pool2d", kernel_size=3, stride=2, padding=1, ceil_mode=True),
        [F(1, 2, 6, 5)],
        ref=_ref("avg", kernel_size=3, stride=2, padding=1, ceil_mode=True),
    ),
    Case(
        "avg_pool2d_ceil_exclude_pad",
        _f(
            "avg_pool2d",
            kernel_size=(2, 3),
            stride=2,
            padding=1,
            ceil_mode=True,
            count_include_pad=False,
        ),  # fmt: skip
        [F(1, 2, 6, 5)],
        ref=_ref(
            "avg", kernel_size=(2, 3), stride=2, padding=1, ceil_mode=True, count_include_pad=False
        ),  # fmt: skip
    ),
    Case(
        "avg_pool2d_divisor_override",
        _f("avg_pool2d", kernel_size=2, stride=1, divisor_override=3),
        [F(1, 2, 4, 4)],
        ref=_ref("avg", kernel_size=2, stride=1, divisor_override=3),
    ),
    Case(
        "avg_pool2d_unbatched_noncontig",
        _f("avg_pool2d", kernel_size=2, stride=1, padding=1),
        [F(2, 3, 4, noncontig=True)],
        ref=lambda x: ref_pool2d(x[None], "avg", 2, 1, 1)[0],
    ),
    Case(
        "avg_pool2d_int",
        _f("avg_pool2d", kernel_size=2),
        [I(1, 2, 4, 4, low=0, high=9)],
        grad=False,
    ),
    Case(
        "avg_pool1d",
        _f("avg_pool1d", kernel_size=3, stride=2, padding=1, count_include_pad=False),
        [F(2, 2, 7)],
        ref=_ref1d(
            "avg", kernel_size=(1, 3), stride=(1, 2), padding=(0, 1), count_include_pad=False
        ),  # fmt: skip
    ),
    # -- adaptive pools --------------------------------------------------------------------
    Case(
        "adaptive_avg_pool2d_global",
        _f("adaptive_avg_pool2d", output_size=1),
        [F(2, 3, 4, 5)],
        ref=lambda x: ref_adaptive2d(x, "avg", (1, 1)),
    ),
    Case(
        "adaptive_avg_pool2d_divisible",
        _f("adaptive_avg_pool2d", output_size=(2, None)),
        [F(2, 2, 4, 3)],
        ref=lambda x: ref_adaptive2d(x, "avg", (2, 3)),
    ),
    Case(
        "adaptive_avg_pool2d_uneven",
        _f("adaptive_avg_pool2d", output_size=(3, 4)),
        [F(2, 2, 5, 7)],
        ref=lambda x: ref_adaptive2d(x, "avg", (3, 4)),
        grad2=True,
    ),
    Case(
        "adaptive_avg_pool1d",
        _f("adaptive_avg_pool1d", output_size=3),
        [F(2, 2, 7)],
        ref=lambda x: ref_adaptive2d(x[:, :, None], "avg", (1, 3))[:, :, 0],
    ),
    Case(
        "adaptive_max_pool2d_uneven",
        _f("adaptive_max_pool2d", output_size=(3, 4)),
        [F(2, 2, 5, 7)],
        ref=lambda x: ref_adaptive2d(x, "max", (3, 4)),
        grad2=True,
    ),
    Case(
        "adaptive_max_pool2d_indices",
        _f("adaptive_max_pool2d", output_size=(2, 3), return_indices=True),
        [F(1, 2, 5, 6)],
    ),
    Case(
        "adaptive_max_pool1d_unbatched",
        _f("adaptive_max_pool1d", output_size=4),
        [F(2, 7)],
        ref=lambda x: ref_adaptive2d(x[None, :, None], "max", (1, 4))[0, :, 0],
    ),
)

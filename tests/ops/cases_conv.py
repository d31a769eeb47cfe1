"""Table rows for the convolutions: conv1d, conv2d, conv_transpose1d, conv_transpose2d.

Shapes stay tiny (finite differences cost one forward per input element). ``ref_conv2d``
and ``ref_conv_transpose2d`` are independent NumPy references: a loop over output (resp.
input) positions, nothing shared with ember's im2col.
"""

import numpy as np

from .optable import Case, F, cases


def _pads(padding, kernel, dilation):
    if padding == "valid":
        return [(0, 0), (0, 0)]
    if padding == "same":
        tot = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(t // 2, t - t // 2) for t in tot]
    p = (padding, padding) if isinstance(padding, int) else padding
    return [(p[0], p[0]), (p[1], p[1])]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def ref_conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Direct definition: out[n, o, i, j] = sum over the window of x * w (float64)."""
    (sh, sw), (dh, dw) = _pair(stride), _pair(dilation)
    n, c, _, _ = x.shape
    o, cg, kh, kw = w.shape
    pads = _pads(padding, (kh, kw), (dh, dw))
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + pads)
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                win = xp[
                    :,
                    g * cg : (g + 1) * cg,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ]
                out[:, oc, i, j] = (win * w[oc]).sum(axis=(1, 2, 3))
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out.astype(x.dtype)


def ref_conv_transpose2d(x, w, b=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """Direct definition: every input pixel scatters ``x * w`` into the output."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = map(
        _pair, (stride, padding, output_padding, dilation)
    )
    n, i_ch, ih, iw = x.shape
    _, og, kh, kw = w.shape
    h = (ih - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wd = (iw - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    big = np.zeros((n, og * groups, h + 2 * ph + kh * dh, wd + 2 * pw + kw * dw))
    ig = i_ch // groups
    for c in range(i_ch):
        g = c // ig
        for i in range(ih):
            for j in range(iw):
                contrib = x[:, c, i, j][:, None, None, None] * w[c][None]
                big[
                    :,
                    g * og : (g + 1) * og,
                    i * sh : i * sh + dh * (kh - 1) + 1 : dh,
                    j * sw : j * sw + dw * (kw - 1) + 1 : dw,
                ] += contrib
    out = big[:, :, ph : ph + h, pw : pw + wd]
    if b is not None:
        out = out + b.reshape(1, -1, 1, 1)
    return out.astype(x.dtype)


def _conv2d(**kw):
    return lambda m, x, w: m.nn.functional.conv2d(x, w, **kw)


def _conv2d_b(**kw):
    return lambda m, x, w, b: m.nn.functional.conv2d(x, w, b, **kw)


def _convt2d(**kw):
    return lambda m, x, w: m.nn.functional.conv_transpose2d(x, w, **kw)


def _ref(fn, **kw):
    return lambda *arrays: fn(*arrays, **kw)


CASES = cases(
    # -- conv2d ----------------------------------------------------------------------------
    Case(
        "conv2d_bias",
        _conv2d_b(),
        [F(2, 2, 5, 5), F(3, 2, 3, 3), F(3)],
        ref=ref_conv2d,
        grad2=True,
    ),
    Case(
        "conv2d_bias_pad_noncontig_grad2",  # W2's layer shape in small: 3x3, padding 1, bias
        _conv2d_b(padding=1),
        [F(3, 2, 5, 6, noncontig=True), F(4, 2, 3, 3), F(4)],
        ref=lambda x, w, b: ref_conv2d(x, w, b, padding=1),
        grad2=True,
    ),
    Case(
        "conv2d_one_channel_bias_grad2",  # W2's first layer in small: the direct kernels
        _conv2d_b(padding=1),
        [F(2, 1, 5, 6), F(3, 1, 3, 3), F(3)],
        ref=lambda x, w, b: ref_conv2d(x, w, b, padding=1),
        grad2=True,
    ),
    Case(
        "conv2d_depthwise_strided_grad2",  # direct kernels, groups, stride, short last rows
        _conv2d_b(groups=2, stride=2, padding=1),
        [F(1, 2, 7, 5), F(4, 1, 3, 3), F(4)],
        ref=lambda x, w, b: ref_conv2d(x, w, b, stride=2, padding=1, groups=2),
        grad2=True,
    ),
    Case(
        "conv2d_stride_pad",
        _conv2d(stride=2, padding=1),
        [F(2, 2, 5, 5), F(3, 2, 3, 3)],
        ref=_ref(ref_conv2d, stride=2, padding=1),
        grad2=True,
    ),
    Case(
        "conv2d_tuple_args",
        _conv2d(stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        [F(2, 2, 6, 5), F(3, 2, 3, 2)],
        ref=_ref(ref_conv2d, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    ),
    Case(
        "conv2d_dilation",
        _conv2d(dilation=2, padding=2),
        [F(1, 2, 6, 6), F(2, 2, 3, 3)],
        ref=_ref(ref_conv2d, dilation=2, padding=2),
    ),
    Case(
        "conv2d_groups",
        _conv2d_b(groups=2, padding=1),
        [F(2, 4, 4, 4), F(6, 2, 3, 3), F(6)],
        ref=_ref(ref_conv2d, groups=2, padding=1),
        grad2=True,
    ),
    Case(
        "conv2d_depthwise",
        _conv2d(groups=3, stride=2),
        [F(2, 3, 5, 5), F(6, 1, 3, 3)],
        ref=_ref(ref_conv2d, groups=3, stride=2),
    ),
    Case(
        "conv2d_same_odd",
        _conv2d(padding="same"),
        [F(2, 2, 5, 4), F(3, 2, 3, 3)],
        ref=_ref(ref_conv2d, padding="same"),
    ),
    Case(
        "conv2d_same_even_kernel",
        _conv2d(padding="same"),
        [F(1, 2, 5, 6), F(2, 2, 2, 4)],
        ref=_ref(ref_conv2d, padding="same"),
    ),
    Case(
        "conv2d_same_dilation",
        _conv2d(padding="same", dilation=(2, 1)),
        [F(1, 2, 6, 5), F(2, 2, 3, 2)],
        ref=_ref(ref_conv2d, padding="same", dilation=(2, 1)),
    ),
    Case(
        "conv2d_valid",
        _conv2d(padding="valid"),
        [F(2, 2, 4, 5), F(3, 2, 2, 2)],
        ref=_ref(ref_conv2d, padding="valid"),
    ),
    Case("conv2d_1x1", _conv2d(), [F(2, 3, 4, 3), F(2, 3, 1, 1)], ref=ref_conv2d),
    Case(
        "conv2d_odd_sizes",
        _conv2d(stride=(3, 2), padding=(2, 1)),
        [F(1, 3, 7, 4), F(2, 3, 2, 3)],
        ref=_ref(ref_conv2d, stride=(3, 2), padding=(2, 1)),
    ),
    Case(
        "conv2d_noncontig",
        _conv2d(padding=1),
        [F(2, 2, 4, 4, noncontig=True), F(3, 2, 3, 3, noncontig=True)],
        ref=_ref(ref_conv2d, padding=1),
    ),
    Case(
        "conv2d_unbatched",
        _conv2d_b(padding=1),
        [F(2, 4, 4), F(3, 2, 3, 3), F(3)],
        ref=lambda x, w, b: ref_conv2d(x[None], w, b, padding=1)[0],
    ),
    Case("conv2d_size1", _conv2d(), [F(1, 1, 1, 1), F(1, 1, 1, 1)], ref=ref_conv2d),
    Case(
        "conv2d_batch0",
        _conv2d(padding=1),
        [F(0, 2, 4, 4), F(3, 2, 3, 3)],
        ref=_ref(ref_conv2d, padding=1),
    ),
    # -- conv1d (a height-1 conv2d) ---------------------------------------------------------
    Case(
        "conv1d_bias",
        lambda m, x, w, b: m.nn.functional.conv1d(x, w, b, stride=2, padding=1),
        [F(2, 2, 7), F(3, 2, 3), F(3)],
        ref=lambda x, w, b: ref_conv2d(x[:, :, None], w[:, :, None], b, (1, 2), (0, 1))[:, :, 0],
        grad2=True,
    ),
    Case(
        "conv1d_groups_dilation",
        lambda m, x, w: m.nn.functional.conv1d(x, w, groups=2, dilation=2),
        [F(2, 4, 8), F(4, 2, 3)],
        ref=lambda x, w: ref_conv2d(x[:, :, None], w[:, :, None], dilation=(1, 2), groups=2)[
            :, :, 0
        ],
    ),
    Case(
        "conv1d_same",
        lambda m, x, w: m.nn.functional.conv1d(x, w, padding="same"),
        [F(2, 2, 6), F(3, 2, 4)],
    ),
    Case(
        "conv1d_unbatched",
        lambda m, x, w: m.nn.functional.conv1d(x, w, stride=3),
        [F(2, 8), F(3, 2, 2)],
    ),
    # -- conv_transpose2d -------------------------------------------------------------------
    Case(
        "conv_transpose2d",
        _convt2d(),
        [F(2, 3, 3, 4), F(3, 2, 3, 3)],
        ref=ref_conv_transpose2d,
        grad2=True,
    ),
    Case(
        "conv_transpose2d_stride_outpad",
        lambda m, x, w, b: m.nn.functional.conv_transpose2d(
            x, w, b, stride=2, padding=1, output_padding=1
        ),
        [F(2, 3, 3, 3), F(3, 2, 3, 3), F(2)],
        ref=_ref(ref_conv_transpose2d, stride=2, padding=1, output_padding=1),
        grad2=True,
    ),
    Case(
        "conv_transpose2d_groups_dilation",
        _convt2d(stride=(2, 3), padding=(0, 1), output_padding=(1, 0), groups=2, dilation=2),
        [F(1, 4, 3, 3), F(4, 3, 2, 3)],
        ref=_ref(
            ref_conv_transpose2d,
            stride=(2, 3),
            padding=(0, 1),
            output_padding=(1, 0),
            groups=2,
            dilation=2,
        ),
    ),
    Case(
        "conv_transpose2d_outpad_dilation",
        _convt2d(stride=1, output_padding=1, dilation=2),
        [F(1, 2, 3, 3), F(2, 2, 2, 2)],
    ),
    Case(
        "conv_transpose2d_unbatched_noncontig",
        _convt2d(stride=2),
        [F(2, 3, 3, noncontig=True), F(2, 2, 2, 2)],
    ),
    Case(
        "conv_transpose1d",
        lambda m, x, w, b: m.nn.functional.conv_transpose1d(
            x, w, b, stride=3, padding=1, output_padding=2
        ),
        [F(2, 2, 4), F(2, 3, 3), F(3)],
        grad2=True,
    ),
)

"""ember.nn.functional beyond the op table: dropout statistics and reproducibility, running
statistics of batch/instance norm against PyTorch, stability at extreme logits, gradients
that are not true derivatives (padding_idx, scale_grad_by_freq) and error messages."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ember
import ember.nn.functional as F

try:
    import torch
    import torch.nn.functional as TF
except ImportError:  # the oracle is optional
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (test oracle) not installed")


def _np(t):
    return t.detach().numpy()


# -- dropout -------------------------------------------------------------------------------
def test_dropout_statistics_and_scale():
    ember.manual_seed(1)
    x = ember.ones(200_000)
    y = _np(F.dropout(x, p=0.3))
    zero = (y == 0).mean()
    assert abs(zero - 0.3) < 0.005
    assert set(np.unique(y).tolist()) == {0.0, np.float32(1 / 0.7).item()}
    assert abs(y.mean() - 1.0) < 0.01


def test_dropout_reproducible_with_manual_seed_and_fresh_each_call():
    ember.manual_seed(123)
    a = _np(F.dropout(ember.ones(64), 0.5))
    b = _np(F.dropout(ember.ones(64), 0.5))
    ember.manual_seed(123)
    a2 = _np(F.dropout(ember.ones(64), 0.5))
    np.testing.assert_array_equal(a, a2)
    assert not np.array_equal(a, b)


def test_dropout_gradient_is_the_mask():
    ember.manual_seed(0)
    x = ember.randn(50, 4, requires_grad=True)
    y = F.dropout(x, 0.4)
    y.sum().backward()
    kept = _np(y) != 0
    np.testing.assert_allclose(_np(x.grad), np.where(kept, 1 / 0.6, 0.0), rtol=1e-6)


def test_dropout_identity_cases_and_p_one():
    x = ember.randn(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.alpha_dropout(x, 0.5) is x  # training defaults to False there
    assert (_np(F.dropout(x, 1.0)) == 0).all()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match=f"between 0 and 1, but got {p}"):
        F.dropout(ember.ones(2), p)


def test_dropout_inplace_writes_input():
    ember.manual_seed(5)
    x = ember.ones(1000)
    y = F.dropout(x, 0.5, inplace=True)
    assert y is x
    assert set(np.unique(_np(x)).tolist()) == {0.0, 2.0}


def test_dropout2d_drops_whole_channels():
    ember.manual_seed(2)
    y = _np(F.dropout2d(ember.ones(8, 16, 3, 3), 0.5))
    per_channel = y.reshape(8, 16, -1)
    assert (per_channel.min(-1) == per_channel.max(-1)).all()
    assert 0 < (per_channel[..., 0] == 0).mean() < 1


def test_dropout1d_unbatched_and_bad_rank():
    ember.manual_seed(3)
    y = _np(F.dropout1d(ember.ones(10, 5), 0.5))
    assert (y.min(-1) == y.max(-1)).all()
    with pytest.raises(ember.ShapeError, match=r"2-D or 3-D input, got shape \(5,\)"):
        F.dropout1d(ember.ones(5), 0.5)


def test_alpha_dropout_keeps_zero_mean_unit_variance():
    ember.manual_seed(4)
    y = _np(F.alpha_dropout(ember.randn(400_000), 0.2, training=True))
    assert abs(y.mean()) < 0.01
    assert abs(y.std() - 1.0) < 0.01
    z = _np(F.feature_alpha_dropout(ember.ones(4, 6, 5), 0.5, training=True))
    assert (z.min(-1) == z.max(-1)).all()


# -- batch norm / instance norm running statistics ----------------------------------------
@needs_torch
@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (2, 3, 4, 4)])
def test_batch_norm_running_stats_match_torch(shape):
    rng = np.random.default_rng(0)
    erm, erv = ember.zeros(3), ember.ones(3)
    trm, trv = torch.zeros(3), torch.ones(3)
    w, b = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    for step in range(3):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        ey = F.batch_norm(
            ember.tensor(x), erm, erv, ember.tensor(w), ember.tensor(b), True, 0.2, 1e-5
        )
        ty = TF.batch_norm(
            torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), True, 0.2, 1e-5
        )
        np.testing.assert_allclose(_np(ey), ty.numpy(), atol=1e-5)
    np.testing.assert_allclose(erm.numpy(), trm.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(erv.numpy(), trv.numpy(), rtol=1e-5, atol=1e-6)
    assert erm.dtype == ember.float32
    x = rng.standard_normal(shape).astype(np.float32)
    ey = F.batch_norm(ember.tensor(x), erm, erv, ember.tensor(w), ember.tensor(b), False)
    ty = TF.batch_norm(torch.tensor(x), trm, trv, torch.tensor(w), torch.tensor(b), False)
    np.testing.assert_allclose(_np(ey), ty.numpy(), atol=1e-5)


def test_batch_norm_running_update_bumps_version_and_keeps_grad_off():
    rm, rv = ember.zeros(2), ember.ones(2)
    x = ember.randn(4, 2, requires_grad=True)
    F.batch_norm(x, rm, rv, training=True).sum().backward()
    assert rm._vc[0] == 1 and rv._vc[0] == 1
    assert not rm.requires_grad and x.grad is not None


@needs_torch
def test_instance_norm_running_stats_match_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 5)).astype(np.float32)
    erm, erv = ember.zeros(2), ember.ones(2)
    trm, trv = torch.zeros(2), torch.ones(2)
    ey = F.instance_norm(ember.tensor(x), erm, erv, momentum=0.3)
    ty = TF.instance_norm(torch.tensor(x), trm, trv, momentum=0.3)
    np.testing.assert_allclose(_np(ey), ty.numpy(), atol=1e-5)
    np.testing.assert_allclose(erm.numpy(), trm.numpy(), atol=1e-6)
    np.testing.assert_allclose(erv.numpy(), trv.numpy(), atol=1e-6)


def test_batch_norm_errors():
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        F.batch_norm(ember.ones(1, 3), None, None, training=True)
    with pytest.raises(RuntimeError, match="must be defined in evaluation mode"):
        F.batch_norm(ember.ones(2, 3), None, None, training=False)
    with pytest.raises(ember.ShapeError, match=r"weight of shape \(4,\).*3 channels"):
        F.batch_norm(ember.ones(2, 3), None, None, ember.ones(4), training=True)


# -- stability -----------------------------------------------------------------------------
def test_large_logits_stay_finite():
    x = ember.tensor([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], requires_grad=True)
    t = ember.tensor([1, 0])
    loss = F.cross_entropy(x, t)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(_np(x.grad)).all()
    assert abs(loss.item() - 2e4) < 1.0
    for f in (F.softmax, F.log_softmax):
        assert np.isfinite(_np(f(x, dim=1))).all()
    z = ember.tensor([1e4, -1e4, 1e4, -1e4], requires_grad=True)
    bce = F.binary_cross_entropy_with_logits(z, ember.tensor([1.0, 0.0, 0.0, 1.0]))
    bce.backward()
    assert abs(bce.item() - 5e3) < 1e-3
    assert np.isfinite(_np(z.grad)).all()


def test_binary_cross_entropy_clamps_log_at_minus_100():
    loss = F.binary_cross_entropy(
        ember.tensor([0.0, 1.0]), ember.tensor([1.0, 0.0]), reduction="none"
    )
    assert loss.tolist() == [100.0, 100.0]
    with pytest.raises(ember.EmberError, match="between 0 and 1"):
        F.binary_cross_entropy(ember.tensor([1.5]), ember.tensor([1.0]))


@needs_torch
def test_cross_entropy_all_ignored_matches_torch():
    x = np.random.default_rng(0).standard_normal((3, 4))
    t = np.array([-100, -100, -100])
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    el, tl = F.cross_entropy(ex, ember.tensor(t)), TF.cross_entropy(tx, torch.tensor(t))
    assert np.isnan(el.item()) and np.isnan(tl.item())
    el.backward()
    tl.backward()
    np.testing.assert_array_equal(_np(ex.grad), tx.grad.numpy())


def test_softmax_float16_and_implicit_dim_warning():
    x = ember.tensor([[1.0, 2.0, 3.0]], dtype=ember.float16)
    y = F.softmax(x, dim=-1)
    assert y.dtype == ember.float16
    np.testing.assert_allclose(_np(y).astype(np.float64).sum(), 1.0, atol=1e-3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        F.softmax(ember.zeros(2, 3))
    assert any("Implicit dimension" in str(m.message) for m in w)
    with pytest.raises(ember.DTypeError, match="floating point"):
        F.softmax(ember.tensor([1, 2]), 0)
    assert F.softmax(ember.tensor([1, 2]), 0, dtype=ember.float64).dtype == ember.float64


# -- gradients that follow PyTorch rather than calculus ------------------------------------
@needs_torch
@pytest.mark.parametrize(
    "kwargs", [{"padding_idx": 2}, {"scale_grad_by_freq": True}, {"padding_idx": -1}]
)
def test_embedding_gradient_matches_torch(kwargs):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 3))
    idx = np.array([[0, 2, 2], [5, 1, 2]])
    g = rng.standard_normal((2, 3, 3))
    ew, tw = ember.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    (F.embedding(ember.tensor(idx), ew, **kwargs) * ember.tensor(g)).sum().backward()
    (TF.embedding(torch.tensor(idx), tw, **kwargs) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(_np(ew.grad), tw.grad.numpy(), atol=1e-12)


@needs_torch
def test_embedding_max_norm_renormalizes_rows_like_torch():
    w = np.random.default_rng(3).standard_normal((5, 4)).astype(np.float32) * 3
    idx = np.array([0, 3, 3])
    ew, tw = ember.tensor(w), torch.tensor(w)
    ey = F.embedding(ember.tensor(idx), ew, max_norm=1.0)
    ty = TF.embedding(torch.tensor(idx), tw, max_norm=1.0)
    np.testing.assert_allclose(_np(ey), ty.numpy(), rtol=1e-5)
    np.testing.assert_allclose(ew.numpy(), tw.numpy(), rtol=1e-5)


# -- error messages ------------------------------------------------------------------------
def test_cross_entropy_wrong_target_shape_names_both_shapes():
    with pytest.raises(ember.ShapeError) as e:
        F.cross_entropy(ember.zeros(4, 5), ember.tensor([1, 2]))
    msg = str(e.value)
    assert "(4, 5)" in msg and "(2,)" in msg and "(4,)" in msg
    assert "test_functional.py" in msg  # the user's line


def test_cross_entropy_argument_errors():
    with pytest.raises(ember.DTypeError, match=r"integers.*float32.*\(4,\)"):
        F.cross_entropy(ember.zeros(4, 5), ember.zeros(4))
    with pytest.raises(IndexError, match="target 7 is out of bounds for 5 classes"):
        F.cross_entropy(ember.zeros(2, 5), ember.tensor([1, 7]))
    with pytest.raises(IndexError, match="target -3 is out of bounds"):
        F.cross_entropy(ember.zeros(2, 5), ember.tensor([1, -3]))
    with pytest.raises(ember.ShapeError, match=r"weight of shape \(3,\).*5 classes"):
        F.cross_entropy(ember.zeros(2, 5), ember.tensor([1, 2]), weight=ember.ones(3))
    with pytest.raises(ValueError, match="'avg' is not a valid value for reduction"):
        F.cross_entropy(ember.zeros(2, 5), ember.tensor([1, 2]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(ember.zeros(2, 5), ember.tensor([1, 2]), label_smoothing=1.5)
    with pytest.raises(ember.ShapeError, match=r"\(3,\) \(class indices\), got \(3, 4\)"):
        F.nll_loss(ember.zeros(3, 4), ember.zeros(3, 4))


def test_legacy_size_average_reduce_map_to_reduction():
    x, t = ember.randn(3, 4), ember.tensor([0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = F.cross_entropy(x, t, size_average=False)
        n = F.cross_entropy(x, t, reduce=False)
    assert abs(s.item() - F.cross_entropy(x, t, reduction="sum").item()) < 1e-5
    assert n.shape == (3,)


def test_shape_errors_of_norms_linear_embedding_attention():
    with pytest.raises(
        ember.ShapeError, match=r"\(2, 3\) does not end with normalized_shape \(4,\)"
    ):
        F.layer_norm(ember.zeros(2, 3), (4,))
    with pytest.raises(ember.ShapeError, match=r"\(2, 3\).*\(4, 5\).*in_features=5"):
        F.linear(ember.zeros(2, 3), ember.zeros(4, 5))
    with pytest.raises(ember.ShapeError, match="divisible by num_groups=4"):
        F.group_norm(ember.zeros(2, 6, 3), 4)
    with pytest.raises(IndexError, match=r"index 10 is out of range.*\(4, 2\)"):
        F.embedding(ember.tensor([1, 10]), ember.zeros(4, 2))
    with pytest.raises(ember.DTypeError, match="integer indices"):
        F.embedding(ember.tensor([1.0]), ember.zeros(4, 2))
    with pytest.raises(ember.ShapeError, match=r"query \(1, 3, 4\), key \(1, 5, 3\)"):
        F.scaled_dot_product_attention(
            ember.zeros(1, 3, 4), ember.zeros(1, 5, 3), ember.zeros(1, 5, 3)
        )
    with pytest.raises(ember.EmberError, match="should not be set when is_causal"):
        F.scaled_dot_product_attention(
            ember.zeros(1, 2, 2), ember.zeros(1, 2, 2), ember.zeros(1, 2, 2),
            attn_mask=ember.ones(2, 2, dtype=ember.bool), is_causal=True,
        )  # fmt: skip


def test_one_hot_errors_and_dtype():
    assert F.one_hot(ember.tensor([1, 0])).dtype == ember.int64
    with pytest.raises(ValueError, match="non-negative"):
        F.one_hot(ember.tensor([1, -1]), 3)
    with pytest.raises(ValueError, match=r"smaller than num_classes \(3\)"):
        F.one_hot(ember.tensor([1, 3]), 3)
    with pytest.raises(ember.DTypeError, match="integer"):
        F.one_hot(ember.tensor([1.0]), 3)


def test_mse_loss_warns_on_broadcasting_target():
    with pytest.warns(
        UserWarning, match=r"target of shape \(3, 1\) differs from input of shape \(3,\)"
    ):
        F.mse_loss(ember.zeros(3), ember.zeros(3, 1))


def test_embedding_backward_survives_in_place_weight_update():
    w = ember.randn(5, 3, requires_grad=True)
    y = F.embedding(ember.tensor([1, 1, 4]), w)
    with ember.no_grad():
        w.mul_(0.5)  # an optimizer step before backward must not invalidate the lookup
    y.sum().backward()
    np.testing.assert_array_equal(_np(w.grad)[:, 0], [0.0, 2.0, 0.0, 0.0, 1.0])


@needs_torch
def test_cosine_similarity_zero_vector_matches_torch():
    a = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    b = np.random.default_rng(0).standard_normal((2, 3))
    ea, ta = ember.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    ey = F.cosine_similarity(ea, ember.tensor(b), dim=-1)
    ty = TF.cosine_similarity(ta, torch.tensor(b), dim=-1)
    np.testing.assert_allclose(_np(ey), ty.detach().numpy(), atol=1e-12)
    ey.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(_np(ea.grad), ta.grad.numpy(), rtol=1e-6)


def test_gumbel_softmax_samples_follow_softmax_and_hard_is_one_hot():
    ember.manual_seed(0)
    logits = ember.tensor([[1.0, 2.0, 0.5]] * 40_000, requires_grad=True)
    y = F.gumbel_softmax(logits, tau=0.5, hard=True)
    freq = _np(y).mean(0)
    np.testing.assert_allclose(freq, _np(F.softmax(logits[:1], -1))[0], atol=0.01)
    assert set(np.unique(_np(y)).tolist()) == {0.0, 1.0}
    (y * ember.tensor([1.0, 0.0, 0.0])).sum().backward()  # straight-through: soft gradient
    assert np.isfinite(_np(logits.grad)).all() and np.abs(_np(logits.grad)).sum() > 0
    ember.manual_seed(7)
    a = _np(F.gumbel_softmax(ember.zeros(5, 4), dim=0))
    ember.manual_seed(7)
    np.testing.assert_array_equal(a, _np(F.gumbel_softmax(ember.zeros(5, 4), dim=0)))
    np.testing.assert_allclose(a.sum(0), 1.0, rtol=1e-6)

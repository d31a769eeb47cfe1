"""ember.compile on the GPU (skipped without a usable GPU): compiled training steps on CuPy
arrays match eager mode, and a changing batch size still gives one graph."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn

pytestmark = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


def _train(compiled, batches, dtype=np.float32, make_opt=None, dropout=True, device="cuda"):
    """A small classifier trained on ``device`` (eagerly or compiled), one fresh batch of
    each size in ``batches``: (losses, final parameters as NumPy arrays, the step)."""
    ember.manual_seed(0)
    layers = [nn.Linear(6, 8), nn.ReLU()] + [nn.Dropout(0.1)] * dropout + [nn.Linear(8, 3)]
    model = nn.Sequential(*layers).to(device).to(dtype)
    make_opt = make_opt or (lambda ps: ember.optim.AdamW(ps, lr=1e-2))
    opt = make_opt(model.parameters())

    def step(x, y):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = ember.compile(step) if compiled else step
    rng = np.random.default_rng(0)
    losses = []
    for b in batches:
        x = ember.tensor(rng.standard_normal((b, 6)).astype(dtype), device=device)
        y = ember.tensor(rng.integers(0, 3, b), device=device)
        losses.append(fn(x, y).item())
    return losses, [p.numpy(force=True) for p in model.parameters()], fn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_varying_batch_size_merges_into_one_graph(dtype):
    # the backward seed is a constant made on the GPU: the two traces' constants must
    # compare by value on the device for the traces to merge
    batches = [8, 5, 8, 3, 7, 8, 2]
    eager, eager_params, _ = _train(False, batches, dtype)
    comp, comp_params, fn = _train(True, batches, dtype)
    np.testing.assert_array_equal(comp, eager)
    for a, b in zip(eager_params, comp_params):
        np.testing.assert_array_equal(a, b)
    info = fn.cache_info()
    assert info.traces == 2 and info.size == 1 and fn.graph.meta["dynamic"]
    assert info.hits == len(batches) - 2


@pytest.mark.parametrize("synchronize", [True, False])
def test_profile_times_every_node_of_a_gpu_graph(synchronize):
    w = ember.randn(64, 64, device="cuda", requires_grad=True)
    opt = ember.optim.SGD([w], lr=0.1)

    @ember.compile
    def step(x):
        opt.zero_grad()
        loss = (x @ w).relu().sum()
        loss.backward()
        opt.step()
        return loss

    p = step.profile(ember.randn(32, 64, device="cuda"), runs=3, synchronize=synchronize)
    assert p.runs == 3 and {"matmul", "relu"} <= set(p.by_op())
    assert all(n.seconds >= 0 for n in p.nodes)

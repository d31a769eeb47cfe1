"""Tensor basics: factories, dtypes and promotion, properties, conversion, repr, devices."""

import numpy as np
import pytest

import ember

needs_cuda = pytest.mark.skipif(not ember.cuda_is_available(), reason="needs a CUDA GPU")


def test_factory_dtypes_follow_pytorch():
    assert ember.tensor([1.0, 2.0]).dtype == ember.float32
    assert ember.tensor([1, 2]).dtype == ember.int64
    assert ember.tensor([True]).dtype == ember.bool
    assert ember.tensor(np.zeros(2)).dtype == ember.float64
    assert ember.arange(3).dtype == ember.int64
    assert ember.arange(0, 1, 0.5).dtype == ember.float32
    assert ember.full((2,), 7).dtype == ember.int64
    assert ember.full((2,), 7.0).dtype == ember.float32
    assert ember.zeros(2, 3, dtype=ember.float64).dtype == ember.float64


def test_factories_shapes_and_values():
    assert ember.zeros((2, 3)).shape == (2, 3)
    assert ember.ones(2, 3).sum().item() == 6
    assert ember.eye(3).numpy().trace() == 3
    assert ember.linspace(0, 1, 5).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert ember.full_like(ember.zeros(2), 3).tolist() == [3.0, 3.0]
    assert ember.empty(4).shape == (4,)
    assert ember.zeros_like(ember.ones(2, dtype=ember.int32)).dtype == ember.int32


DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


@pytest.mark.parametrize("device", DEVICES)
def test_random_is_reproducible_and_in_range(device):
    ember.manual_seed(123)
    a = ember.randn(100, device=device)
    r = ember.rand(1000, device=device)
    i = ember.randint(0, 7, (1000,), device=device)
    ember.manual_seed(123)
    np.testing.assert_array_equal(ember.randn(100, device=device).numpy(), a.numpy())
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert i.numpy().min() >= 0 and i.numpy().max() < 7 and i.dtype == ember.int64
    n = ember.normal(2.0, 0.5, size=(20000,), device=device)
    assert n.device.type == device
    n = n.numpy()
    assert abs(n.mean() - 2.0) < 0.02 and abs(n.std() - 0.5) < 0.02


def test_normal_is_mean_plus_std_times_randn():
    g = ember.Generator().manual_seed(7)
    got = ember.normal(2.0, 0.5, size=(1000,), generator=g, dtype=ember.float64).numpy()
    z = ember.randn(1000, generator=g.manual_seed(7), dtype=ember.float64).numpy()
    np.testing.assert_array_equal(got, 2.0 + 0.5 * z)


@needs_cuda
def test_default_device_is_the_gpu_when_present(monkeypatch):
    import importlib

    d = importlib.import_module("ember.device")
    monkeypatch.delenv("EMBER_DEVICE", raising=False)
    assert d._initial_default().type == "cuda"


def test_version():
    assert isinstance(ember.__version__, str) and ember.__version__.count(".") == 2

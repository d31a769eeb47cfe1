"""Tensor basics: factories, dtypes and promotion, properties, conversion, repr, devices."""

import numpy as np
import pytest

import ember


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


def test_random_is_reproducible_and_in_range():
    ember.manual_seed(123)
    a = ember.randn(100)
    r = ember.rand(1000)
    i = ember.randint(0, 7, (1000,))
    ember.manual_seed(123)
    np.testing.assert_array_equal(ember.randn(100).numpy(), a.numpy())
    assert 0 <= r.numpy().min() and r.numpy().max() < 1
    assert i.numpy().min() >= 0 and i.numpy().max() < 7 and i.dtype == ember.int64
    n = ember.normal(2.0, 0.5, size=(20000,)).numpy()
    assert abs(n.mean() - 2.0) < 0.02 and abs(n.std() - 0.5) < 0.02


def test_rng_state_roundtrip():
    s = ember.get_rng_state()
    a = ember.rand(3).numpy()
    ember.set_rng_state(s)
    np.testing.assert_array_equal(ember.rand(3).numpy(), a)


@pytest.mark.parametrize(
    "a,b,want",
    [
        (ember.int64, ember.float32, ember.float32),
        (ember.int32, ember.float16, ember.float16),
        (ember.bool, ember.int32, ember.int32),
        (ember.float32, ember.float64, ember.float64),
        (ember.int32, ember.int64, ember.int64),
    ],
)
def test_tensor_tensor_promotion(a, b, want):
    assert (ember.ones(2, dtype=a) + ember.ones(2, dtype=b)).dtype == want


def test_scalar_and_zero_dim_promotion():
    assert (ember.ones(2, dtype=ember.int64) * 2.5).dtype == ember.float32
    assert (ember.ones(2, dtype=ember.int32) + 1).dtype == ember.int32
    assert (ember.ones(2, dtype=ember.bool) + 1).dtype == ember.int64
    assert (ember.ones(2, dtype=ember.float16) * 1e3).dtype == ember.float16
    f64_scalar = ember.tensor(1.0, dtype=ember.float64)
    assert (ember.ones(2) + f64_scalar).dtype == ember.float32  # 0-dim does not widen
    assert (ember.ones(2, dtype=ember.int64) + f64_scalar).dtype == ember.float64
    assert (ember.tensor([1, 2]) / 2).dtype == ember.float32


def test_properties_and_conversion():
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.numel() == 4 and t.size(1) == 2
    assert t.T.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    assert t.device == ember.device("cpu") and t.is_leaf and t.grad is None
    assert isinstance(t.numpy(), np.ndarray)
    assert ember.tensor([5]).item() == 5
    assert t.to(ember.float64).dtype == ember.float64
    assert t.to("cpu") is t
    c = t.clone()
    c += 1
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_item_numpy_bool_errors():
    with pytest.raises(ValueError, match="4 elements"):
        ember.ones(4).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(ember.ones(2))
    with pytest.raises(RuntimeError, match="detach"):
        ember.ones(2, requires_grad=True).numpy()


def test_repr_is_readable():
    assert repr(ember.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(ember.tensor([1, 2])) == "tensor([1, 2])"
    assert "requires_grad=True" in repr(ember.ones(1, requires_grad=True))
    assert "grad_fn=<mul>" in repr(ember.ones(1, requires_grad=True) * 2)
    assert "dtype=ember.float64" in repr(ember.zeros(1, dtype=ember.float64))


def test_numpy_scalar_on_the_left_defers_to_tensor():
    out = np.float32(2.0) * ember.ones(2)
    assert isinstance(out, ember.Tensor)


def test_shape_error_names_op_shapes_and_user_line():
    with pytest.raises(ember.ShapeError) as info:
        ember.ones(32, 10) @ ember.ones(20, 5)
    msg = str(info.value)
    assert "matmul: shapes (32, 10) and (20, 5) do not align" in msg
    assert "test_tensor.py" in msg
    with pytest.raises(ember.ShapeError, match=r"add: shapes \(2, 3\) and \(4,\) cannot"):
        ember.ones(2, 3) + ember.ones(4)
    with pytest.raises(ember.ShapeError, match="reshape"):
        ember.ones(6).reshape(4, 2)


def test_device_seam():
    cpu = ember.device("cpu")
    assert cpu.xp is np and str(cpu) == "cpu"
    if not ember.cuda_is_available():
        with pytest.raises(RuntimeError, match="no usable GPU"):
            ember.device("cuda")
    with pytest.raises(ValueError, match="unknown device"):
        ember.device("tpu")


def test_default_device_env(monkeypatch):
    import importlib

    d = importlib.import_module("ember.device")  # the module; ember.device is the function
    monkeypatch.setenv("EMBER_DEVICE", "cpu")
    assert d._initial_default() is d.CPU
    ember.set_default_device("cpu")
    assert ember.get_default_device().type == "cpu"


def test_version():
    assert isinstance(ember.__version__, str) and ember.__version__.count(".") == 2

"""Shared helpers for the nn tests: docstring examples, and comparing an ember module with
its PyTorch twin (weights copied across, outputs and gradients compared in float64)."""

from __future__ import annotations

import doctest
import importlib
from typing import Any

import numpy as np

import ember

try:
    import torch
except ImportError:  # the tests that compare with PyTorch skip themselves
    torch = None


def assert_doctests_pass(modname: str, at_least: int, **globs: Any) -> None:
    """Run every docstring example of module ``modname`` (with its own names, ``ember`` and
    ``globs`` in scope): there must be ``at_least`` examples and none may fail."""
    mod = importlib.import_module(modname)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    scope = {**vars(mod), "ember": ember, **globs}
    tests = doctest.DocTestFinder().find(mod, modname, globs=scope)
    assert sum(len(t.examples) for t in tests) >= at_least
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0, modname


def to_numpy(x: Any) -> np.ndarray:
    """An ember or PyTorch tensor (or an array) as a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    return x.detach().numpy() if isinstance(x, torch.Tensor) else x.numpy(force=True)


def assert_close(
    a: Any, b: Any, what: str, rtol: float = 1e-9, atol: float = 1e-11, equal_nan: bool = False
) -> None:
    """``a`` (ember) matches ``b`` (PyTorch): same shape, equal integers, close floats."""
    a, b = to_numpy(a), to_numpy(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs torch {b.shape}"
    if a.dtype.kind in "iub":
        np.testing.assert_array_equal(a, b, err_msg=what)
    else:
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=what, equal_nan=equal_nan)


def load_torch_weights(th: Any, em: Any) -> tuple[Any, Any]:
    """Both modules in float64 with PyTorch's weights loaded into ember's (the state-dict keys
    must match, in order) and equal reprs (ember's parameter-count line aside); returns
    ``(th, em)``."""
    th, em = th.double(), em.double()
    sd = {k: v.detach().numpy().copy() for k, v in th.state_dict().items()}
    assert list(em.state_dict()) == list(sd), "state_dict keys differ from torch's"
    em.load_state_dict(sd)
    text = repr(em)
    if "\nTotal parameters: " in text:  # ember's count line under a container
        text = text.rsplit("\n", 1)[0]
    assert text == repr(th)
    return th, em


def backward_through_outputs(e_out: Any, t_out: Any, rng: np.random.Generator) -> None:
    """Compare the outputs pairwise (a None from PyTorch must be None in ember too), then
    backpropagate the same random weighting of all of them in both frameworks."""
    t_loss = e_loss = 0
    for k, (e, t) in enumerate(zip(e_out, t_out)):
        if t is None:
            assert e is None, f"output {k}: torch gives None"
            continue
        assert_close(e, t, f"output {k}")
        cot = rng.standard_normal(tuple(t.shape))
        t_loss = t_loss + (t * torch.tensor(cot)).sum()
        e_loss = e_loss + (e * ember.tensor(cot)).sum()
    t_loss.backward()
    e_loss.backward()


def assert_param_grads_close(
    em: Any, th: Any, close: Any = assert_close, every: bool = False
) -> None:
    """Each parameter's gradient matches PyTorch's, and is None where PyTorch's is (with
    ``every``, every parameter must have one)."""
    for (name, p1), (_, p2) in zip(em.named_parameters(), th.named_parameters()):
        if p2.grad is None and not every:
            assert p1.grad is None, f"{name} got a gradient torch does not give"
        else:
            assert p1.grad is not None, f"{name} got no gradient"
            close(p1.grad, p2.grad, f"grad of {name}")

"""Finite-difference checks of first and second derivatives (float64).

Example:
    >>> import ember
    >>> x = ember.randn(3, dtype=ember.float64, requires_grad=True)
    >>> ember.autograd.gradcheck(lambda t: (t.exp() * t).sum(), (x,))
    True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor
from .engine import grad

__all__ = ["gradcheck", "gradgradcheck"]


def _outputs(fn: Callable[..., Any], inputs: Sequence[Any]) -> list[Tensor]:
    out = fn(*inputs)
    outs = [out] if isinstance(out, Tensor) else list(out)
    return [o for o in outs if isinstance(o, Tensor) and o.is_floating_point()]


def _numeric_vjp(
    fn: Callable[..., Any], inputs: Sequence[Any], cotangents: list[np.ndarray], eps: float
) -> list[np.ndarray | None]:
    """d(sum_k <out_k, v_k>)/d(input) by central differences, one element at a time."""
    result: list[np.ndarray | None] = []

    def objective() -> float:
        outs = _outputs(fn, inputs)  # grad mode stays on: fn may itself differentiate
        return float(sum((o.detach().numpy() * v).sum() for o, v in zip(outs, cotangents)))

    for x in inputs:
        if not (isinstance(x, Tensor) and x.requires_grad):
            result.append(None)
            continue
        arr = x._data
        g = np.zeros(arr.shape, dtype=np.float64)
        for i in np.ndindex(arr.shape):  # works on non-contiguous views too
            orig = arr[i].item()  # a copy: on CuPy arr[i] is a view
            arr[i] = orig + eps
            hi = objective()
            arr[i] = orig - eps
            lo = objective()
            arr[i] = orig
            g[i] = (hi - lo) / (2 * eps)
        result.append(g)
    return result


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Compare ``fn``'s analytic gradients with central differences on float64 inputs.

    Inputs that require grad must be float64 (they are perturbed in place). Checks a random vector-Jacobian product of every floating output.

    Example:
        >>> x = ember.randn(2, 2, dtype=ember.float64, requires_grad=True)
        >>> ember.autograd.gradcheck(lambda t: t @ t, (x,))
        True
    """
    inputs = list(inputs)
    for x in inputs:
        if isinstance(x, Tensor) and x.requires_grad and x._data.dtype != np.float64:
            raise TypeError("gradcheck needs float64 inputs for the ones that require grad")
    outs = _outputs(fn, inputs)
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outs]
    diff_in = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    live = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    if live:
        analytic = grad(
            [o for o, _ in live],
            diff_in,
            [Tensor(v.astype(o._data.dtype)).to(o.device) for o, v in live],
            allow_unused=True,
        )
    else:
        analytic = [None] * len(diff_in)
    numeric = [g for g in _numeric_vjp(fn, inputs, vs, eps) if g is not None]
    for k, (a, n) in enumerate(zip(analytic, numeric)):
        a_arr = np.zeros_like(n) if a is None else a.numpy()
        if a_arr.shape != n.shape or not np.allclose(a_arr, n, atol=atol, rtol=rtol):
            if raise_exception:
                err = np.abs(a_arr - n).max() if a_arr.shape == n.shape else "shape"
                raise AssertionError(
                    f"gradcheck: gradient of input {k} does not match finite differences "
                    f"(max abs error {err})\nanalytic:\n{a_arr}\nnumeric:\n{n}"
                )
            return False
    return True


def gradgradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 1,
) -> bool:
    """Check second derivatives: gradcheck of the (create_graph) gradient of ``fn``.

    Example:
        >>> x = ember.randn(3, dtype=ember.float64, requires_grad=True)
        >>> ember.autograd.gradgradcheck(lambda t: (t * t * t).sum(), (x,))
        True
    """
    diff_idx = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    rng = np.random.default_rng(seed)
    outs0 = _outputs(fn, inputs)
    vs = [Tensor(rng.standard_normal(o.shape)).to(o.device) for o in outs0]

    def first_grad(*xs: Any) -> tuple:
        outs = _outputs(fn, xs)
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        diff = [xs[i] for i in diff_idx]
        gs = grad(
            [o for o, _ in pairs], diff, [v for _, v in pairs], create_graph=True, allow_unused=True
        )
        return tuple(g for g in gs if g is not None)

    return gradcheck(first_grad, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed + 1)

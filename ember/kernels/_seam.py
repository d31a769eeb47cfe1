"""What every seam function shares: finding a kernel for a dtype, passing arrays to C.

:func:`kernel` returns the cffi function of a kernel for an array's dtype (float32 or
float64), or None (another dtype, NumPy mode, kernels unavailable); the answer is cached in
``runtime.FUNCS`` so a call costs one dict lookup. :func:`ptr` gives a C pointer to a
C-contiguous array's data (``ffi.from_buffer``; read-only arrays are fine), :data:`NULL` the
null pointer for optional arguments.

Example:
    >>> import numpy as np
    >>> from ember.kernels._seam import kernel
    >>> kernel("softmax", "softmax_forward", np.dtype(np.int64)) is None
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import runtime

__all__ = ["kernel", "ptr", "NULL", "FFI", "is_array", "split_axis", "contiguous"]

_SFX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
_FUNCS = runtime.FUNCS
_MISSING = object()
ptr: Any = None  # ffi.from_buffer, set when the first kernel is found
NULL: Any = None
FFI: Any = None  # the cffi.FFI those come from (for ffi.new)


def kernel(unit: str, name: str, dtype: Any) -> Any:
    """The kernel ``name`` of ``unit`` for ``dtype``, or None.

    Example:
        >>> f = kernel("softmax", "softmax_forward", np.dtype(np.float32))
        >>> f is None or callable(f)
        True
    """
    global ptr, NULL, FFI
    sfx = _SFX.get(dtype)
    if sfx is None:
        return None
    f = _FUNCS.get((name, sfx), _MISSING)
    if f is _MISSING:
        f = runtime.function(unit, name, sfx)
        if f is not None and ptr is None:
            # cffi's C backend alone: cffi.FFI() would import its C parser (30-60 ms)
            import _cffi_backend

            FFI = _cffi_backend.FFI()
            ptr, NULL = FFI.from_buffer, FFI.NULL
        _FUNCS[(name, sfx)] = f
    return f


def is_array(*arrays: Any) -> bool:
    """True when every argument is a non-empty NumPy array (kernels never see CuPy arrays,
    subclasses or empty arrays).

    Example:
        >>> is_array(np.ones(2), np.ones(3)), is_array(np.ones(0))
        (True, False)
    """
    for a in arrays:
        if type(a) is not np.ndarray or a.size == 0:
            return False
    return True


def contiguous(a: Any, dtype: Any = None) -> Any:
    """``a`` as a C-contiguous array (of ``dtype`` when given); no copy when it already is.

    Example:
        >>> contiguous(np.ones((2, 3)).T).flags.c_contiguous
        True
    """
    return np.ascontiguousarray(a, dtype=dtype)


def split_axis(shape: tuple, axis: int) -> tuple[int, int, int]:
    """``shape`` seen as ``(A, K, B)`` around ``axis``.

    Example:
        >>> split_axis((2, 3, 4, 5), 1)
        (2, 3, 20)
    """
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])

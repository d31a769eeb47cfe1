"""Thread policy: how many threads BLAS (and later ember's own kernels) may use.

``ember.set_num_threads(n)`` caps the BLAS thread pool NumPy uses (through threadpoolctl),
like ``torch.set_num_threads``; ``ember.get_num_threads()`` reads it back. On a busy or
small machine, 1 thread is often faster for small matrices.

Example:
    >>> import ember
    >>> ember.set_num_threads(1); ember.get_num_threads()
    1
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_num_threads", "get_num_threads"]

_limiter: Any = None
_requested: int | None = None


def set_num_threads(n: int) -> None:
    """Use at most ``n`` threads for BLAS calls in this process.

    Example:
        >>> ember.set_num_threads(2)
    """
    global _limiter, _requested
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits

    _limiter = threadpool_limits(limits=int(n), user_api="blas")
    _requested = int(n)


def get_num_threads() -> int:
    """The number of threads BLAS uses now (the largest over loaded BLAS libraries).

    Example:
        >>> ember.get_num_threads() >= 1
        True
    """
    from threadpoolctl import threadpool_info

    counts = [i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"]
    if counts:
        return max(counts)
    return _requested or 1

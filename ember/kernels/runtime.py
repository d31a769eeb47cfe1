"""Which kernels run, C or NumPy; the units loaded so far; the one message on fallback.

``EMBER_KERNELS`` chooses (read once, on first use; :func:`set_mode` changes it at run
time):

* ``auto`` (default): the C kernels when they can be built, else the NumPy path, with one
  :class:`KernelFallbackWarning` per process saying why and how to fix or silence it;
* ``c``: the C kernels or an error (:class:`KernelUnavailableError`), never a silent
  fallback;
* ``numpy``: never compile; every seam function returns None.

Units are built or loaded lazily, one library per unit and element type (``softmax.f32``,
``softmax.f64``), the first time one of its kernels is asked for, so ``import ember`` never
runs the compiler and a float32 program never compiles float64 code. A library that fails
is not retried in this process.

Example:
    >>> from ember.kernels import runtime
    >>> runtime.mode() in ("auto", "c", "numpy")
    True
"""

from __future__ import annotations

import os
import threading
import warnings
from typing import Any

from ..errors import EmberError, user_frame

# build (compiler, cache; imports subprocess, hashlib, ...) and the C sources are imported on
# the first kernel lookup, not with ember

__all__ = [
    "MODES",
    "KernelFallbackWarning",
    "KernelUnavailableError",
    "mode",
    "set_mode",
    "library",
    "prepare",
    "pending",
    "unbuilt",
    "warn_fallback",
    "function",
    "failures",
    "loaded",
    "FUNCS",
]

MODES = ("auto", "c", "numpy")

_mode: str | None = None
_libs: dict[str, Any] = {}  # "unit.f32" -> build.Library
_failed: dict[str, Any] = {}  # "unit.f32" -> build.KernelBuildError
_warned = False
_lock = threading.RLock()
FUNCS: dict[tuple[str, str], Any] = {}  # (kernel, dtype suffix) -> cffi function or None


class KernelFallbackWarning(RuntimeWarning):
    """The C kernels are unavailable and ember uses its NumPy path (said once per process).

    Example:
        >>> issubclass(KernelFallbackWarning, RuntimeWarning)
        True
    """


class KernelUnavailableError(EmberError):
    """``EMBER_KERNELS=c`` was asked for, but the C kernels cannot be built or loaded.

    Example:
        >>> issubclass(KernelUnavailableError, ember.EmberError)
        True
    """


def mode() -> str:
    """The kernel mode: ``'auto'``, ``'c'`` or ``'numpy'`` (``EMBER_KERNELS``, read once).

    Example:
        >>> mode() in MODES
        True
    """
    global _mode
    if _mode is None:
        value = os.environ.get("EMBER_KERNELS", "").strip().lower() or "auto"
        if value not in MODES:
            warnings.warn(
                f"EMBER_KERNELS={value!r} is not one of {', '.join(MODES)}; using 'auto'",
                KernelFallbackWarning,
                stacklevel=2,
            )
            value = "auto"
        _mode = value
    return _mode


def set_mode(value: str | None) -> None:
    """Switch between ``'auto'``, ``'c'`` and ``'numpy'`` kernels now (None: read
    ``EMBER_KERNELS`` again). Loaded libraries stay loaded; failures are forgotten.

    Example:
        >>> before = mode(); set_mode("numpy"); mode()
        'numpy'
        >>> set_mode(before)
    """
    global _mode, _warned
    if value is not None and value not in MODES:
        raise ValueError(f"set_mode: mode must be one of {MODES}, got {value!r}")
    with _lock:
        _mode = value
        _failed.clear()
        _warned = False
        FUNCS.clear()


def _fallback_message(err: Any) -> str:
    if "no C compiler" in err.reason:
        fix = "Install a C compiler (gcc or clang) to enable them."
    elif "cffi" in err.reason:
        fix = "Install the cffi package to enable them."
    elif err.log:
        fix = f"The compiler's output is in {err.log}."
    else:
        fix = ""
    return (
        f"ember: C kernels unavailable ({err.reason}); using the NumPy kernels, which are "
        f"slower. {fix} Set EMBER_KERNELS=numpy to silence this message."
    ).replace("  ", " ")


def warn_fallback(err: Any) -> None:
    """Say once per process that the C kernels are unavailable (``err``: a
    :class:`~ember.kernels.build.KernelBuildError`) and that ember runs its NumPy path; the
    warning points at the user's line. Used by every caller that falls back.

    Example:
        >>> callable(warn_fallback)
        True
    """
    global _warned
    if _warned:
        return
    _warned = True
    frame = user_frame(1)
    if frame is None:
        warnings.warn(_fallback_message(err), KernelFallbackWarning, stacklevel=3)
        return
    warnings.warn_explicit(
        _fallback_message(err),
        KernelFallbackWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
    )


def _key(unit: str, sfx: str) -> str:
    return f"{unit}.{sfx}"


def _load(unit: str, sfx: str) -> Any:
    """Build or load the ``sfx`` library of ``unit`` (raises ``KernelBuildError``)."""
    from .build import load_unit
    from .source import UNITS, variant

    return load_unit(variant(UNITS[unit], sfx))


def library(unit: str, sfx: str = "f32") -> Any:
    """The loaded library of kernel unit ``unit`` for element type ``sfx`` (``'f32'`` or
    ``'f64'``: each is its own library, built on first use); None in ``'numpy'`` mode or when
    it cannot be built (``'auto'``: one warning per process); raises
    :class:`KernelUnavailableError` in ``'c'`` mode.

    Example:
        >>> library("softmax") is None or library("softmax").path.exists()
        True
    """
    key = _key(unit, sfx)
    lib = _libs.get(key)
    if lib is not None:
        return None if mode() == "numpy" else lib
    m = mode()
    if m == "numpy":
        return None
    with _lock:
        lib = _libs.get(key)
        if lib is not None:
            return lib
        err = _failed.get(key)
        if err is None:
            from .build import KernelBuildError

            try:
                lib = _load(unit, sfx)
            except KernelBuildError as e:
                err = _failed[key] = e
            else:
                _libs[key] = lib
                return lib
    if m == "c":
        raise KernelUnavailableError(
            "kernels",
            f"EMBER_KERNELS=c but the C kernels are unavailable: {err.reason}"
            + (f" (compiler output: {err.log})" if err.log else ""),
        )
    warn_fallback(err)
    return None


def prepare(workers: int | None = None, dtypes: tuple[str, ...] = ("f32", "f64")) -> dict:
    """Build or load every kernel unit now for the element types ``dtypes``, running the
    compiler on several libraries at once (so a program can pay the one-time compilation up
    front, in parallel, instead of op by op during its first step). Returns ``{unit: 'ok' |
    reason}``; failures are handled as in :func:`library` (one warning in ``'auto'`` mode, an
    error in ``'c'`` mode).

    Example:
        >>> set(prepare(dtypes=("f32",))) >= {"softmax", "optim"}
        True
    """
    from concurrent.futures import ThreadPoolExecutor

    from .build import KernelBuildError
    from .source import UNITS

    if mode() == "numpy":
        return {name: "EMBER_KERNELS=numpy" for name in UNITS}
    done = _libs | _failed
    todo = [(u, s) for u in UNITS for s in dtypes if _key(u, s) not in done]

    def one(item: tuple[str, str]) -> None:
        try:
            lib = _load(*item)
        except KernelBuildError as e:
            _failed[_key(*item)] = e
        else:
            _libs[_key(*item)] = lib

    n = workers or min(len(todo), max(1, os.cpu_count() or 1)) or 1
    with _lock, ThreadPoolExecutor(max_workers=n) as pool:
        list(pool.map(one, todo))
    out = {}
    for name in UNITS:  # the usual failure handling (warning or error), once
        for sfx in dtypes:
            library(name, sfx)
        errs = [_failed[_key(name, s)].reason for s in dtypes if _key(name, s) in _failed]
        out[name] = errs[0] if errs else "ok"
    return out


def pending(dtypes: tuple[str, ...] = ("f32", "f64")) -> list[str]:
    """The kernel units with a library for one of ``dtypes`` neither loaded nor failed in
    this process (what :func:`prepare` would build or load).

    Example:
        >>> isinstance(pending(), list)
        True
    """
    from .source import UNITS

    done = _libs | _failed
    return [n for n in UNITS if any(_key(n, s) not in done for s in dtypes)]


def unbuilt(names: list[str] | None = None, dtypes: tuple[str, ...] = ("f32", "f64")) -> list:
    """Those of the kernel units ``names`` (default: all) with a library for one of
    ``dtypes`` not compiled in the disk cache yet, i.e. whose first use would run the
    compiler; all of them when that cannot be told (no compiler, no cache directory:
    :func:`prepare` then reports why).

    Example:
        >>> isinstance(unbuilt(["softmax"]), list)
        True
    """
    from .build import KernelBuildError, library_path
    from .source import UNITS, variant

    names = list(UNITS) if names is None else names
    try:
        return [
            n for n in names if any(not library_path(variant(UNITS[n], s)).exists() for s in dtypes)
        ]
    except (KernelBuildError, OSError):
        return names


def function(unit: str, name: str, sfx: str) -> Any:
    """The cffi function ``ember_<name>_<sfx>`` of ``unit``, or None (see :func:`library`).

    Example:
        >>> f = function("softmax", "softmax_forward", "f32")
        >>> f is None or callable(f)
        True
    """
    lib = library(unit, sfx)
    return None if lib is None else getattr(lib.lib, f"ember_{name}_{sfx}")


def failures() -> dict[str, str]:
    """The units that failed to build in this process, with the reason.

    Example:
        >>> isinstance(failures(), dict)
        True
    """
    return {k: v.reason for k, v in _failed.items()}


def loaded() -> dict[str, Any]:
    """The units loaded in this process.

    Example:
        >>> isinstance(loaded(), dict)
        True
    """
    return dict(_libs)


def cache_location() -> str:
    """The kernel cache directory, as text.

    Example:
        >>> cache_location().endswith("kernels")
        True
    """
    from .build import cache_dir

    return str(cache_dir())

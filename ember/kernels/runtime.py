"""Which kernels run, C or NumPy; the units loaded so far; the one message on fallback.

``EMBER_KERNELS`` chooses (read once, on first use; :func:`set_mode` changes it at run
time):

* ``auto`` (default): the C kernels when they can be built, else the NumPy path, with one
  :class:`KernelFallbackWarning` per process saying why and how to fix or silence it;
* ``c``: the C kernels or an error (:class:`KernelUnavailableError`), never a silent
  fallback;
* ``numpy``: never compile; every seam function returns None.

Kernels are built or loaded lazily, the first time one is asked for, so ``import ember``
never runs the compiler and a float32 program never compiles float64 code. Each unit has one
library per element type (``softmax.f32``, ``softmax.f64``); a kernel asked for before its
unit's library is compiled gets a library of its own (the unit's part holding it, a fraction
of the compile time), and a forward kernel's backward compiles meanwhile on another thread.
So the first step of a program waits only for the kernels it calls, about one compiler at a
time, with the backward kernels compiling on the second core while the forward pass runs.
:func:`prepare` instead compiles every unit whole, all cores at once. Builds of different
libraries run concurrently from any threads; each library is built once; a library that
fails is not retried in this process.

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
    "function_if_ready",
    "failures",
    "loaded",
    "FUNCS",
    "BUILD_SECONDS",
]

MODES = ("auto", "c", "numpy")

_mode: str | None = None
_libs: dict[str, Any] = {}  # "unit.f32" (or a part: "unit.f32:fn") -> build.Library
_failed: dict[str, Any] = {}  # "unit.f32" -> build.KernelBuildError
_building: dict[str, threading.Event] = {}  # libraries being built now (set when done)
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


def _key(unit: str, sfx: str, lib: Any = None) -> str:
    """``unit.sfx`` for a whole unit, ``unit.sfx:fn+fn`` for a part of it (``lib``)."""
    keep = getattr(lib, "keep", ())
    return f"{unit}.{sfx}" + (f":{'+'.join(keep)}" if keep else "")


def _source(unit: str, sfx: str, name: str | None = None) -> Any:
    """The :class:`~ember.kernels.source.Unit` of ``unit``'s ``sfx`` library, or of its part
    holding the function ``name``."""
    from .source import UNITS, part, variant

    whole = variant(UNITS[unit], sfx)
    return whole if name is None else part(whole, name)


def _obtain(key: str, source: Any) -> Any:
    """The library ``key`` (of the unit ``source``): already loaded, else built or loaded
    now in this thread, or awaited when another thread is building it. Raises
    ``KernelBuildError``; a failure is remembered and not retried."""
    while True:
        with _lock:
            lib = _libs.get(key)
            if lib is not None:
                return lib
            err = _failed.get(key)
            if err is not None:
                raise err
            done = _building.get(key)
            mine = done is None
            if mine:
                done = _building[key] = threading.Event()
        if mine:
            _build(key, source, done)
        else:
            done.wait()  # then look again


def _build(key: str, source: Any, done: threading.Event) -> None:
    """Build or load ``source`` into ``_libs[key]`` (or its failure into ``_failed``), then
    set ``done``."""
    from .build import KernelBuildError, load_unit

    try:
        lib = load_unit(source)
    except KernelBuildError as e:
        with _lock:
            _failed[key] = e
    else:
        with _lock:
            _libs[key] = lib
    finally:
        with _lock:
            _building.pop(key, None)
        done.set()


def _start(key: str, source: Any) -> None:
    """Build ``source`` into ``_libs[key]`` on a thread of its own (unless it is loaded,
    failed or under way): a library the program will likely ask for soon."""
    with _lock:
        if key in _libs or key in _failed or key in _building:
            return
        done = _building[key] = threading.Event()
    threading.Thread(target=_build, args=(key, source, done), name=f"ember-build-{key}").start()


def warm(unit: str, name: str, sfx: str = "f32") -> None:
    """Start building (or loading from the cache) the library that holds kernel ``name`` of
    ``unit`` on a thread of its own, unless kernels are off (``'numpy'`` mode) or it is
    loaded, failed or under way: for kernels a program is about to need (creating an
    optimizer warms the fused step and the GEMM of the training steps to come, so that they
    compile while the model is set up). Never raises: a failed build is reported when the
    kernel is asked for.

    Example:
        >>> warm("gemm", "gemm")
    """
    if mode() == "numpy":
        return
    try:
        from .build import library_path

        if _libs.get(_key(unit, sfx)) is not None:
            return
        whole = _source(unit, sfx)
        src = whole if library_path(whole).exists() else _source(unit, sfx, name)
        _start(_key(unit, sfx, src), src)
    except Exception:  # no cache directory, an unknown kernel: the lookup will say
        return


def _unavailable(err: Any, m: str) -> None:
    """The failure handling of every lookup: an error in ``'c'`` mode, else one warning."""
    if m == "c":
        raise KernelUnavailableError(
            "kernels",
            f"EMBER_KERNELS=c but the C kernels are unavailable: {err.reason}"
            + (f" (compiler output: {err.log})" if err.log else ""),
        )
    warn_fallback(err)


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
    from .build import KernelBuildError

    try:
        return _obtain(key, _source(unit, sfx))
    except KernelBuildError as e:
        _unavailable(e, m)
    return None


# rough seconds gcc 12 takes for each unit's float32 library at -O3 (biggest first: two
# cores then finish together); only the order of prepare() depends on them
BUILD_SECONDS = {
    "steps": 3.0,
    "optim": 1.3,
    "attention": 1.2,
    "softmax": 1.0,
    "conv_gemm": 1.1,
    "im2col": 0.9,
    "winograd": 0.7,
    "pool": 0.7,
    "activation": 0.6,
    "norm": 0.5,
    "loss": 0.2,
    "embedding": 0.1,
    "gemv": 0.1,
    "dropout": 0.1,
}


def prepare(workers: int | None = None, dtypes: tuple[str, ...] = ("f32", "f64")) -> dict:
    """Build or load every kernel unit now for the element types ``dtypes``, running the
    compiler on several libraries at once, biggest first (so a program can pay the one-time
    compilation up front, in parallel, instead of op by op during its first step). Returns
    ``{unit: 'ok' | reason}``; failures are handled as in :func:`library` (one warning in
    ``'auto'`` mode, an error in ``'c'`` mode).

    Example:
        >>> set(prepare(dtypes=("f32",))) >= {"softmax", "optim"}
        True
    """
    from concurrent.futures import ThreadPoolExecutor

    from .build import KernelBuildError
    from .source import UNITS

    if mode() == "numpy":
        return {name: "EMBER_KERNELS=numpy" for name in UNITS}
    order = sorted(UNITS, key=lambda n: -BUILD_SECONDS.get(n, 0.5))
    todo = [(u, s) for u in order for s in dtypes if _key(u, s) not in _libs]

    def one(item: tuple[str, str]) -> None:
        try:
            _obtain(_key(*item), _source(*item))
        except KernelBuildError:
            pass  # remembered in _failed, reported below

    n = workers or min(len(todo), max(1, os.cpu_count() or 1)) or 1
    with ThreadPoolExecutor(max_workers=n) as pool:
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
    ``dtypes`` not compiled whole in the disk cache yet (what :func:`prepare` would compile;
    parts compiled on first use do not count); all of them when that cannot be told (no
    compiler, no cache directory: :func:`prepare` then reports why).

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

    It comes from the unit's whole library when that is loaded or compiled already
    (:func:`prepare`), else from the unit's part holding ``name`` alone
    (:func:`ember.kernels.source.part`), compiled now if need be, with the parts of its
    companions (``x_backward`` for ``x_forward``, unless under ``no_grad``) compiled
    meanwhile on other threads: the first step of a program waits only for the kernels it
    calls, and the backward kernels compile while the forward pass runs.

    Example:
        >>> f = function("softmax", "softmax_forward", "f32")
        >>> f is None or callable(f)
        True
    """
    m = mode()
    if m == "numpy":
        return None
    lib = _libs.get(_key(unit, sfx))
    if lib is None:
        from .build import KernelBuildError

        try:
            lib = _function_library(unit, name, sfx)
        except KernelBuildError as e:
            _unavailable(e, m)
            return None
    return getattr(lib.lib, f"ember_{name}_{sfx}")


def function_if_ready(unit: str, name: str, sfx: str) -> Any:
    """The cffi function ``ember_<name>_<sfx>`` of ``unit`` when its whole library is loaded
    or compiled in the disk cache (then loaded now), else None, having started compiling it
    on a thread of its own: for a faster path the caller can do without until it is ready
    (a compiled inference graph runs node by node meanwhile). None in ``'numpy'`` mode and
    after a failed build.

    Example:
        >>> f = function_if_ready("softmax", "softmax_forward", "f32")
        >>> f is None or callable(f)
        True
    """
    if mode() == "numpy":
        return None
    key = _key(unit, sfx)
    lib = _libs.get(key)
    if lib is None:
        if key in _failed or key in _building:
            return None
        from .build import KernelBuildError, library_path

        try:
            whole = _source(unit, sfx)
            if not library_path(whole).exists():
                _start(key, whole)
                return None
            lib = _obtain(key, whole)
        except (KernelBuildError, OSError):  # no compiler, no cache directory
            return None
    return getattr(lib.lib, f"ember_{name}_{sfx}")


def _function_library(unit: str, name: str, sfx: str) -> Any:
    """The library holding ``name`` (see :func:`function`); raises ``KernelBuildError``."""
    from ..autograd.mode import state
    from .build import KernelBuildError, library_path
    from .source import companions

    try:
        whole = _source(unit, sfx)
        if library_path(whole).exists():  # compiled whole: one library serves all its kernels
            return _obtain(_key(unit, sfx), whole)
        src = _source(unit, sfx, name)
        key = _key(unit, sfx, src)
        if key not in _libs and state.grad_enabled and not library_path(src).exists():
            for other in companions(whole, name):  # (under no_grad, no backward follows)
                _start(_key(unit, sfx, _source(unit, sfx, other)), _source(unit, sfx, other))
    except KernelBuildError as e:  # no compiler: remembered like a failed build
        _failed.setdefault(_key(unit, sfx), e)
        raise
    except OSError:  # no cache directory: load_unit says so
        src = _source(unit, sfx, name)
        key = _key(unit, sfx, src)
    return _obtain(key, src)


def failures() -> dict[str, str]:
    """The units that failed to build in this process, with the reason.

    Example:
        >>> isinstance(failures(), dict)
        True
    """
    return {k.split(":")[0]: v.reason for k, v in _failed.items()}


def loaded() -> dict[str, Any]:
    """The units loaded in this process (``'softmax.f32'``: its library, or the first of
    its parts loaded).

    Example:
        >>> isinstance(loaded(), dict)
        True
    """
    out = {k: v for k, v in _libs.items() if ":" not in k}
    for k, v in _libs.items():
        out.setdefault(k.split(":")[0], v)
    return out


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's build threads: forget their builds."""
    global _lock
    _lock = threading.RLock()
    _building.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def cache_location() -> str:
    """The kernel cache directory, as text.

    Example:
        >>> cache_location().endswith("kernels")
        True
    """
    from .build import cache_dir

    return str(cache_dir())

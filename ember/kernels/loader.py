"""Loading a compiled kernel library through cffi (ABI mode): its declarations from the
type tables kept in the library's record (no pycparser parse), else parsed; the ABI version
check; and the one OpenMP runtime that must never be unloaded.

Example:
    >>> from ember.kernels.loader import OPENMP_RUNTIMES
    >>> "libgomp.so.1" in OPENMP_RUNTIMES
    True
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from .source import ABI_VERSION, Unit, cdef

__all__ = ["ffi_tables", "open_library", "OPENMP_RUNTIMES"]


def ffi_tables(unit: Unit) -> str | None:
    """cffi's compiled type tables of ``unit``'s declarations, as the text of a Python
    literal ``(args, kwargs)`` for ``_cffi_backend.FFI``: what cffi's out-of-line ABI mode
    writes into a generated module (``ffibuilder.set_source(name, None)``), kept in the
    library's record instead. None when cffi fails or writes something else than plain
    literals (the library then loads by parsing its declarations)."""
    import io

    try:
        import cffi
        from cffi.recompiler import make_py_source

        ffi = cffi.FFI()
        ffi.cdef(cdef(unit))
        out = io.StringIO()
        make_py_source(ffi, f"_ember_{unit.name}", out)
        for node in ast.parse(out.getvalue()).body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            if [getattr(t, "id", None) for t in node.targets] != ["ffi"]:
                continue
            args = tuple(ast.literal_eval(a) for a in node.value.args)
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.value.keywords}
            return None if None in kwargs else repr((args, kwargs))
    except Exception:  # noqa: BLE001 - only a speed-up for the next process
        pass
    return None


def _ffi(unit: Unit, record: dict) -> Any:
    """The ``FFI`` of ``unit``: from the type tables in its ``record`` when they are there
    (no parsing), else from its declarations (parsed by pycparser; unusable tables are then
    dropped from ``record``, so that ``build.load_unit`` writes them again)."""
    tables = record.get("ffi")
    if isinstance(tables, str):
        import _cffi_backend

        try:
            args, kwargs = ast.literal_eval(tables)
            return _cffi_backend.FFI(*args, **kwargs)
        except Exception:  # noqa: BLE001 - damaged, or from another cffi: parse instead
            del record["ffi"]
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(cdef(unit))
    return ffi


def open_library(unit: Unit, path: Path, record: dict | None = None) -> tuple[Any, Any]:
    """``(ffi, lib)`` of the compiled library of ``unit`` at ``path``: its declarations from
    the type tables in ``record`` when there (see :func:`ffi_tables`), its ABI version
    checked (``OSError`` when it is another), the OpenMP runtime pinned (:func:`_pin_openmp`).

    Example:
        >>> callable(open_library)
        True
    """
    ffi = _ffi(unit, record or {})
    lib = ffi.dlopen(str(path))
    _pin_openmp()
    version = getattr(lib, f"ember_{unit.name}_abi")()
    if version != ABI_VERSION:
        raise OSError(f"ABI version {version}, expected {ABI_VERSION}")
    return ffi, lib


# the OpenMP runtimes a kernel library may link: GCC's, LLVM's, Intel's (Linux, macOS)
OPENMP_RUNTIMES = (
    "libgomp.so.1", "libomp.so", "libomp.so.5", "libiomp5.so", "libgomp.1.dylib",
    "libomp.dylib",
)  # fmt: skip
_openmp_pinned = False


def _pin_openmp() -> None:
    """Keep the OpenMP runtime the kernel libraries loaded mapped until the process ends
    (``RTLD_NODELETE``). At interpreter exit cffi closes its libraries, and the last close
    unmapped the runtime while its worker threads still ran in it: busy-waiting under
    ``OMP_WAIT_POLICY=ACTIVE``, and every such process crashed on its way out (SIGSEGV).
    The kernel libraries themselves still unload when dropped (a compiled graph's library
    goes with its graph)."""
    global _openmp_pinned
    if _openmp_pinned:
        return
    import ctypes  # (cffi's dlopen crashes when a RTLD_NOLOAD open fails: no dlerror text)

    flags = getattr(os, "RTLD_NOW", 2) | getattr(os, "RTLD_NOLOAD", 0)
    flags |= getattr(os, "RTLD_NODELETE", 0)
    if not flags & getattr(os, "RTLD_NOLOAD", 0):  # no dlopen flags here (Windows)
        return
    for name in OPENMP_RUNTIMES:
        try:
            ctypes.CDLL(name, mode=flags)  # only if loaded already (NOLOAD); now for good
        except OSError:
            continue
        _openmp_pinned = True
        return

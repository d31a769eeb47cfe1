"""Compile, cache and load a kernel unit: the system C compiler, a disk cache, cffi.

* **Compiler**: ``$CC`` when set (it may hold a wrapper: ``"ccache gcc"``), else the first of
  ``cc``, ``gcc``, ``clang`` on ``PATH``; its identity is its resolved path and the first line
  of ``--version`` (remembered in the cache directory until the compiler's files change, so
  loading cached kernels starts no process).
* **Flags**: ``-O3`` with IEEE semantics (``-fno-math-errno -fno-trapping-math``, never
  ``-ffast-math``: see :mod:`ember.kernels.source.common`), ``-march=native`` on Linux
  x86 (``-mcpu=native`` on Linux ARM), ``-fopenmp``. A ladder of flag sets is tried in
  order (without OpenMP, then without the native architecture) until one compiles, so a
  compiler without OpenMP (Apple's clang) still gives working kernels.
* **Cache**: ``$EMBER_CACHE_DIR/kernels`` (default ``~/.cache/ember/kernels``, a temporary
  directory when that is not writable). A library's file name holds a hash of everything
  its machine code depends on: the C source, the flag ladder, the compiler's identity, the
  CPU's instruction-set flags (``/proc/cpuinfo``), the OS and machine. A ``-march=native``
  build made on one CPU is therefore never loaded on a CPU lacking its instructions, even
  from a shared home directory. A part of a unit (:func:`ember.kernels.source.part`) is a
  library of its own, named after its functions (``norm-layer_norm_forward-<hash>.so``).
  Every build prunes the cache to the :data:`MAX_LIBRARIES` most recently used libraries
  (:func:`prune`; each compiled graph adds one).
* **Atomic writes**: each build happens in a private temporary directory inside the cache;
  the finished library is flushed to disk and moved into place with ``os.replace`` (its
  ``.c`` source and ``.json`` record first). Processes building the same unit at once each
  produce a complete file and the last rename wins; a crash mid-build leaves only a
  temporary directory, never a truncated library under the final name. A library that fails
  to load (or reports another ABI version) is deleted and rebuilt once.
* **Loading**: ``cffi`` in ABI mode (``ffi.dlopen``): no Python headers needed and the
  libraries do not depend on the Python version. Calls release the GIL. A build keeps cffi's
  type tables of the unit's declarations in its ``.json`` record (what cffi's out-of-line ABI
  mode generates, made while the compiler runs), so a cached library loads without
  pycparser; older records gain them.

Example:
    >>> from ember.kernels import build
    >>> build.cache_dir().name
    'kernels'
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loader import ffi_tables, open_library
from .source import ABI_VERSION, Unit, render

__all__ = [
    "KernelBuildError",
    "Toolchain",
    "Library",
    "find_compiler",
    "toolchain",
    "cache_dir",
    "isa_flags",
    "flag_ladder",
    "unit_key",
    "library_path",
    "load_unit",
    "prune",
    "MAX_LIBRARIES",
]

_COMPILERS = ("cc", "gcc", "clang")
_COMPILE_TIMEOUT = 300
_lock = threading.Lock()
_toolchain: Toolchain | None = None


class KernelBuildError(RuntimeError):
    """The C kernels cannot be built or loaded: no compiler, a failed compilation, or a
    library that does not load. ``reason`` is one line for people; ``log`` the path of the
    compiler's full output (or None).

    Example:
        >>> str(KernelBuildError("no C compiler found"))
        'no C compiler found'
    """

    def __init__(self, reason: str, log: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log = log


@dataclass(frozen=True)
class Toolchain:
    """The C compiler: the command that runs it, its resolved path, its version line.

    Example:
        >>> Toolchain(("gcc",), "/usr/bin/gcc", "gcc 12").command
        ('gcc',)
    """

    command: tuple[str, ...]
    path: str
    version: str


@dataclass
class Library:
    """A loaded unit: its cffi library and FFI, where it lives, the flags it was built with,
    and whether this process compiled it (False: it came from the cache).

    Example:
        >>> Library.__dataclass_fields__.keys() >= {"lib", "path", "flags", "built"}
        True
    """

    lib: Any
    ffi: Any
    path: Path
    flags: list[str]
    built: bool


def find_compiler() -> tuple[str, ...] | None:
    """The compiler command: ``$CC`` (split like a shell would) or the first of ``cc``,
    ``gcc``, ``clang`` found on ``PATH``; None when there is none.

    Example:
        >>> find_compiler() is None or isinstance(find_compiler(), tuple)
        True
    """
    cc = os.environ.get("CC", "").strip()
    if cc:
        import shlex

        parts = shlex.split(cc)
        found = shutil.which(parts[0]) if parts else None
        return (found, *parts[1:]) if found else None
    for name in _COMPILERS:
        found = shutil.which(name)
        if found:
            return (found,)
    return None


def toolchain(refresh: bool = False) -> Toolchain:
    """The compiler this process uses (looked up once); raises :class:`KernelBuildError`
    when there is none or it does not run.

    Example:
        >>> try:
        ...     toolchain().version != ""
        ... except KernelBuildError:
        ...     True
        True
    """
    with _lock:  # one lookup even when several threads build units at once
        return _find_toolchain(refresh)


def _find_toolchain(refresh: bool) -> Toolchain:
    global _toolchain
    if _toolchain is not None and not refresh:
        return _toolchain
    command = find_compiler()
    if command is None:
        where = "$CC" if os.environ.get("CC", "").strip() else "cc, gcc or clang on PATH"
        raise KernelBuildError(f"no C compiler found (looked for {where})")
    path = os.path.realpath(command[0])
    stamp = _stamp(command)
    remembered = cache_dir() / "compilers.json"  # version lines of the compilers seen here
    known = _read_json(remembered) if stamp is not None else None
    known = known if isinstance(known, dict) else {}
    version = None if refresh else known.get(stamp)
    if not isinstance(version, str) or not version:
        version = _version_line(command)
        if stamp is not None and remembered.parent.is_dir():  # (a lookup creates no cache)
            known[stamp] = version
            _write_atomic(remembered, json.dumps(dict(list(known.items())[-16:])).encode())
    _toolchain = Toolchain(tuple(command), path, version)
    return _toolchain


def _version_line(command: tuple[str, ...]) -> str:
    """The first line of ``command --version`` (raises :class:`KernelBuildError`)."""
    import subprocess  # (not with the module: a process loading cached kernels never needs it)

    try:
        out = subprocess.run(
            [*command, "--version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as e:
        raise KernelBuildError(f"the C compiler {command[0]} does not run ({e})") from None
    lines = (out.stdout or out.stderr).strip().splitlines()
    if out.returncode != 0 or not lines:
        raise KernelBuildError(f"the C compiler {command[0]} does not run (--version failed)")
    return lines[0].strip()


def _stamp(command: tuple[str, ...]) -> str | None:
    """The key of ``command``'s remembered version line: the command with the size,
    modification time and inode of each program in it (symbolic links resolved), so that a
    compiler that is replaced or updated is asked again; None: not remembered."""
    parts: list[Any] = []
    for i, part in enumerate(command):
        # the first is a path already; later ones may name the compiler behind a wrapper
        found = part if i == 0 else None if part.startswith("-") else shutil.which(part)
        try:
            st = None if found is None else os.stat(os.path.realpath(found))
        except OSError:
            return None
        parts.append(part if st is None else [part, st.st_size, st.st_mtime_ns, st.st_ino])
    return json.dumps(parts)


def _write_atomic(path: Path, data: bytes) -> None:
    """:func:`_replace_file` through a private temporary directory; best effort."""
    try:
        tmpdir = Path(tempfile.mkdtemp(prefix=".build-", dir=path.parent))
        try:
            _replace_file(path, data, tmpdir)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    except OSError:
        pass


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$EMBER_CACHE_DIR/kernels``, else the user cache
    directory (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows) + ``ember/kernels``. Not created here.

    Example:
        >>> cache_dir().name
        'kernels'
    """
    root = os.environ.get("EMBER_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "kernels"
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "ember" / "kernels"


def _writable_cache_dir() -> Path:
    """:func:`cache_dir`, created; a per-user temporary directory when it is not writable."""
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    path = Path(tempfile.gettempdir()) / f"ember-{uid}" / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1)
def isa_flags() -> str:
    """The CPU's instruction-set flags (sorted, space separated): ``/proc/cpuinfo``'s
    ``flags`` (x86) or ``Features`` (ARM) line; elsewhere the machine and processor names.

    Example:
        >>> isinstance(isa_flags(), str)
        True
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return " ".join(sorted(set(value.split())))
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _arch_flags() -> list[str]:
    if not sys.platform.startswith("linux"):
        return []
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        # every loop on a 64-byte line: GCC otherwise pads a loop to 16 bytes only when that
        # takes few bytes, so an unrelated change elsewhere in a unit could move a hot loop
        # across a line (the chain kernel's dot-product loop did, and W4's MLP call went
        # from 15 to 17-19 us; aligned, 14.7-15.3 us)
        return ["-march=native", "-falign-loops=64"]
    if machine in ("aarch64", "arm64"):
        return ["-mcpu=native"]
    return []


def flag_ladder(unit: Unit) -> list[list[str]]:
    """The compiler flag sets tried in order for ``unit`` (the first that compiles wins).

    Example:
        >>> from ember.kernels.source import UNITS
        >>> "-O3" in flag_ladder(UNITS["softmax"])[0]
        True
    """
    base = ["-O3", "-std=gnu11", "-fPIC", "-shared", "-fvisibility=hidden"]
    base += ["-fno-math-errno", "-fno-trapping-math", *unit.flags]
    arch = _arch_flags()
    ladder = []
    for a in ([arch] if arch else []) + [[]]:
        ladder += [base + a + ["-fopenmp"], base + a + ["-fopenmp-simd"]]
    ladder.append(base)
    return ladder


def _link_flags() -> list[str]:
    return ["-lm"] + (["-Wl,-z,defs"] if sys.platform.startswith("linux") else [])


def unit_key(unit: Unit, tc: Toolchain) -> str:
    """The cache key of ``unit`` built by ``tc`` on this CPU (20 hex digits).

    Example:
        >>> from ember.kernels.source import UNITS
        >>> len(unit_key(UNITS["softmax"], Toolchain(("cc",), "/usr/bin/cc", "cc 1")))
        20
    """
    h = hashlib.sha256()
    parts = [
        str(ABI_VERSION),
        render(unit),
        json.dumps([flag_ladder(unit), _link_flags()]),
        tc.path,
        tc.version,
        " ".join(tc.command[1:]),
        isa_flags(),
        sys.platform,
        platform.machine(),
    ]
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def _replace_file(path: Path, data: bytes, tmpdir: Path) -> None:
    """Write ``data`` to ``path`` atomically (a flushed temporary file, then a rename)."""
    tmp = tmpdir / (path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _compile(unit: Unit, tc: Toolchain, target: Path) -> list[str]:
    """Build ``unit`` into ``target`` (atomically); returns the flags that worked."""
    import shlex
    import subprocess

    tmpdir = Path(tempfile.mkdtemp(prefix=f".build-{unit.name}-", dir=target.parent))
    try:
        src = tmpdir / f"{unit.name}.c"
        src.write_text(render(unit))
        out = tmpdir / f"{unit.name}.so"
        attempts, tables, proc = [], None, None
        for i, flags in enumerate(flag_ladder(unit)):
            cmd = [*tc.command, *flags, "-o", str(out), str(src), *_link_flags()]
            try:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True)  # fmt: skip
                if i == 0:  # cffi's type tables, made while the compiler runs
                    tables = ffi_tables(unit)
                text = proc.communicate(timeout=_COMPILE_TIMEOUT)[0]
                ok = proc.returncode == 0 and out.exists()
            except (OSError, subprocess.SubprocessError) as e:
                ok, text = False, str(e)
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()
            attempts.append(f"$ {shlex.join(cmd)}\n{text}")
            if not ok:
                continue
            with open(out, "rb+") as f:
                os.fsync(f.fileno())
            record = {"flags": flags, "compiler": tc.version, "built": time.time()}
            if tables is not None:
                record["ffi"] = tables
            stem = target.with_suffix("")
            _replace_file(stem.with_suffix(".c"), src.read_bytes(), tmpdir)
            _replace_file(stem.with_suffix(".json"), json.dumps(record).encode(), tmpdir)
            os.replace(out, target)
            return flags
        log = target.with_suffix(".log")
        try:
            _replace_file(log, "\n".join(attempts).encode(), tmpdir)
        except OSError:
            log = None
        first = next((ln for ln in attempts[0].splitlines()[1:] if "error" in ln), "")
        detail = f": {first.strip()}" if first else ""
        raise KernelBuildError(
            f"compiling the '{unit.name}' kernels with {tc.version} failed{detail}",
            str(log) if log else None,
        )
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


MAX_LIBRARIES = 256  # compiled libraries kept in the cache; the least recently used go first


def prune(directory: Path | None = None, keep: int = MAX_LIBRARIES) -> list[Path]:
    """Delete all but the ``keep`` most recently used libraries in the kernel cache (with their
    ``.c``/``.json``/``.log`` files), and build directories abandoned over a day ago; returns
    the libraries removed. Each compiled graph leaves a library of its own, so without this
    the cache would only grow. A library's modification time is its last use (loading one
    touches it). Safe beside running processes: a library another process has loaded stays
    mapped, and one deleted between a check and a load is rebuilt.

    Example:
        >>> import tempfile
        >>> prune(Path(tempfile.mkdtemp()))
        []
    """
    root = cache_dir() if directory is None else Path(directory)
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    libs, stale = [], time.time() - 86400
    for p in entries:
        try:
            st = p.stat()
        except OSError:
            continue
        if p.suffix == ".so":
            libs.append((st.st_mtime, p))
        elif p.name.startswith(".build-") and st.st_mtime < stale:
            shutil.rmtree(p, ignore_errors=True)
    libs.sort(reverse=True)
    removed = []
    for _, lib in libs[keep:]:
        for q in (lib, lib.with_suffix(".c"), lib.with_suffix(".json"), lib.with_suffix(".log")):
            try:
                q.unlink()
            except OSError:
                pass
        removed.append(lib)
    return removed


def library_path(unit: Unit) -> Path:
    """Where the compiled library of ``unit`` lives (or will live) in the disk cache, for
    this compiler and CPU. Raises :class:`KernelBuildError` without a compiler and
    ``OSError`` without a writable cache directory.

    Example:
        >>> from ember.kernels.source import UNITS
        >>> try:
        ...     library_path(UNITS["softmax"]).suffix
        ... except KernelBuildError:
        ...     '.so'
        '.so'
    """
    name = "-".join((unit.name, *unit.keep))  # a part names its functions: norm-layer_norm_forward
    return _writable_cache_dir() / f"{name}-{unit_key(unit, toolchain())}.so"


def load_unit(unit: Unit) -> Library:
    """The loaded library of ``unit``: from the cache, else compiled now (and cached).
    Raises :class:`KernelBuildError` when that is impossible. Safe to call from several
    threads at once (for different units or the same one: each build is atomic).

    Example:
        >>> from ember.kernels.source import UNITS
        >>> try:
        ...     load_unit(UNITS["softmax"]).path.suffix
        ... except KernelBuildError:
        ...     '.so'
        '.so'
    """
    from ..threads import configure_openmp_env

    try:
        import _cffi_backend  # noqa: F401  (cffi's compiled part; cffi itself loads lazily)
    except ImportError:
        raise KernelBuildError("the cffi package is not installed") from None
    try:
        target = library_path(unit)
    except OSError as e:
        raise KernelBuildError(f"no writable cache directory ({e})") from None
    tc = toolchain()
    configure_openmp_env()
    built = False
    for attempt in range(2):
        if not target.exists():
            _compile(unit, tc, target)
            built = True
        record = _read_record(target)
        try:
            ffi, lib = open_library(unit, target, record)
            break
        except (OSError, AttributeError) as e:  # corrupt or foreign file: rebuild once
            if attempt:
                raise KernelBuildError(f"the '{unit.name}' kernels do not load ({e})") from None
            try:
                target.unlink()
            except OSError:
                pass
    if built:
        prune(target.parent)
    else:
        try:
            os.utime(target)  # mark as recently used (for prune)
        except OSError:
            pass
        if "flags" in record and "ffi" not in record:  # an older cache: add the type tables
            _add_tables(unit, target, record)
    flags = record.get("flags")
    return Library(lib, ffi, target, flags if isinstance(flags, list) else [], built)


def _read_record(target: Path) -> dict:
    """The ``.json`` record of the library ``target`` (``{}`` when missing or damaged)."""
    record = _read_json(target.with_suffix(".json"))
    return record if isinstance(record, dict) else {}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _add_tables(unit: Unit, target: Path, record: dict) -> None:
    """Write the record of ``target`` again with cffi's type tables (best effort)."""
    tables = ffi_tables(unit)
    if tables is not None:
        _write_atomic(target.with_suffix(".json"), json.dumps({**record, "ffi": tables}).encode())

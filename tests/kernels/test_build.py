"""Compile / cache / load: the cache key, atomic and concurrent builds, corrupt entries, and
that loading the kernels never changes the process's floating-point state."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ember import kernels
from ember.kernels import build, loader
from ember.kernels.source import UNITS, cdef, render

from .conftest import REPO, toolchain_or_skip


def test_cache_key_depends_on_source_flags_compiler_and_cpu(monkeypatch):
    unit = UNITS["embedding"]
    tc = build.Toolchain(("cc",), "/usr/bin/cc", "cc 12.2.0")
    key = build.unit_key(unit, tc)
    assert len(key) == 20 and key == build.unit_key(unit, tc)
    assert build.unit_key(dataclasses.replace(unit, body=unit.body + "\n"), tc) != key
    assert build.unit_key(dataclasses.replace(unit, flags=("-O2",)), tc) != key
    assert build.unit_key(unit, dataclasses.replace(tc, version="cc 13.1.0")) != key
    assert build.unit_key(unit, dataclasses.replace(tc, path="/opt/cc")) != key
    monkeypatch.setattr(build, "isa_flags", lambda: "sse sse2")  # a CPU without AVX
    assert build.unit_key(unit, tc) != key


def test_isa_flags_come_from_the_cpu():
    flags = build.isa_flags()
    assert flags
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text(errors="replace")
        line = next(
            ln for ln in text.splitlines() if ln.split(":")[0].strip() in ("flags", "Features")
        )
        assert set(flags.split()) == set(line.split(":", 1)[1].split())


def test_flag_ladder_never_uses_fast_math():
    for unit in UNITS.values():
        for flags in build.flag_ladder(unit):
            assert not any("fast-math" in f or f == "-Ofast" for f in flags)
            assert "-funsafe-math-optimizations" not in flags


def test_activation_kinds_agree_between_seam_and_source():
    from ember.kernels import nn
    from ember.kernels.source import activation

    assert nn.KINDS == activation.KINDS


def test_sources_render_and_declare_every_function():
    for unit in UNITS.values():
        src, decl = render(unit), cdef(unit)
        assert f"ember_{unit.name}_abi" in src and f"ember_{unit.name}_abi" in decl
        assert decl.count(";") == 1 + 2 * len(unit.functions)  # float and double


def test_build_cache_and_reuse(tmp_path, monkeypatch):
    toolchain_or_skip()
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    lib = build.load_unit(UNITS["embedding"])
    assert lib.built and lib.path.parent == tmp_path / "kernels"
    assert lib.path.with_suffix(".c").exists() and lib.path.with_suffix(".json").exists()
    assert lib.flags and "-O3" in lib.flags
    assert not [p for p in lib.path.parent.iterdir() if p.name.startswith(".build-")]
    again = build.load_unit(UNITS["embedding"])
    assert not again.built and again.path == lib.path


LOAD_EMBEDDING = textwrap.dedent(
    """
    import numpy as np
    from ember.kernels import build
    from ember.kernels.source import UNITS
    lib = build.load_unit(UNITS["embedding"])
    out = np.zeros((2, 1), np.float32)
    lib.lib.ember_embedding_backward_f32(
        lib.ffi.from_buffer(np.ones((1, 1), np.float32)), lib.ffi.from_buffer(np.array([1])),
        lib.ffi.from_buffer(out), 1, 1, 2, -1, 1)
    assert out.tolist() == [[0.0], [1.0]], out
    print(lib.built, lib.path)
    """
)


def _load_in_new_process(cache: Path) -> tuple[bool, Path]:
    """(built, path) of the embedding unit loaded by a fresh process (a process never
    re-reads a library it has loaded, so a damaged file is only seen by a new one)."""
    env = dict(os.environ, EMBER_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-c", LOAD_EMBEDDING], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    built, path = r.stdout.split()
    return built == "True", Path(path)


def test_corrupt_or_torn_cache_entry_is_rebuilt(tmp_path):
    toolchain_or_skip()
    built, path = _load_in_new_process(tmp_path)
    assert built
    assert _load_in_new_process(tmp_path) == (False, path)  # from the cache
    path.unlink()
    path.write_bytes(b"\x7fELF truncated")  # what a torn write would leave
    crashed = path.parent / ".build-embedding-crashed"  # a build killed mid-way
    crashed.mkdir()
    (crashed / "embedding.so").write_bytes(b"partial")
    assert _load_in_new_process(tmp_path) == (True, path)
    assert path.stat().st_size > 1000


def test_a_unit_from_another_abi_is_rebuilt(tmp_path, monkeypatch):
    toolchain_or_skip()
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    path = build.load_unit(UNITS["embedding"]).path
    monkeypatch.setattr(loader, "ABI_VERSION", 999)  # the cached file reports version 1
    monkeypatch.setattr(build, "unit_key", lambda unit, tc: path.stem.split("-", 1)[1])
    with pytest.raises(build.KernelBuildError, match="do not load"):
        build.load_unit(UNITS["embedding"])  # rebuilt once, still version 1: a clear error


def test_concurrent_processes_share_one_cache_entry(tmp_path):
    toolchain_or_skip()
    code = textwrap.dedent(
        """
        import numpy as np
        from ember import kernels
        g = kernels.embedding_backward(np.ones((3, 2), np.float32), np.array([0, 1, 0]), 2)
        assert g.tolist() == [[2.0, 2.0], [1.0, 1.0]], g
        print("ok")
        """
    )
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path), EMBER_KERNELS="c")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for _ in range(3)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err
    entries = sorted(p.name for p in (tmp_path / "kernels").iterdir())
    assert len([e for e in entries if e.endswith(".so")]) == 1
    assert not [e for e in entries if e.startswith(".build-") or e.endswith(".part")]


def test_loading_every_unit_keeps_denormals(c_kernels):
    """No crtfastmath.o: loading the kernels must not turn on flush-to-zero."""
    for name in UNITS:
        assert kernels.runtime.library(name) is not None
    tiny = np.array([1e-38], np.float32) * np.float32(1e-3)
    assert tiny[0] != 0  # a denormal float32
    y = kernels.sigmoid_forward(np.array([-95.0, -100.0], np.float32))
    assert 0 < y[0] < 1e-38 and 0 < y[1] < 1e-38  # the kernels produce denormals too


PORTABLE = textwrap.dedent(
    """
    import numpy as np
    from ember import kernels
    from ember.kernels import build

    full = build.flag_ladder
    # only the last rung: no OpenMP runtime, no -march=native (what a bare compiler gets)
    build.flag_ladder = lambda unit: [full(unit)[-1]]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 33)).astype(np.float32)
    y = kernels.softmax_forward(x, 0)
    e = np.exp(x - x.max(0))
    np.testing.assert_allclose(y, e / e.sum(0), rtol=1e-5, atol=1e-7)
    g = kernels.gelu_forward(x, "tanh")
    ref = 0.5 * x * (1 + np.tanh(0.7978845608028654 * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6)
    info = kernels.info()
    assert not any(f in info["flags"] for f in ("-fopenmp", "-march=native")), info["flags"]
    print("ok")
    """
)


def test_portable_build_without_openmp_or_native_arch(tmp_path):
    toolchain_or_skip()
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path), EMBER_KERNELS="c")
    r = subprocess.run([sys.executable, "-c", PORTABLE], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_prune_keeps_the_most_recently_used_libraries(tmp_path):
    for i in range(5):
        for ext in (".so", ".c", ".json"):
            p = tmp_path / f"graph-{i}{ext}"
            p.write_text("x")
            os.utime(p, (1000 + i, 1000 + i))  # graph-4 is the most recently used
    old_build = tmp_path / ".build-abandoned"
    old_build.mkdir()
    os.utime(old_build, (1000, 1000))
    fresh_build = tmp_path / ".build-running"
    fresh_build.mkdir()
    removed = build.prune(tmp_path, keep=2)
    assert sorted(p.name for p in removed) == ["graph-0.so", "graph-1.so", "graph-2.so"]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".build-running"] + [
        f"graph-{i}{e}" for i in (3, 4) for e in (".c", ".json", ".so")
    ]


def test_loading_marks_a_library_as_used(c_kernels, tmp_path, monkeypatch):
    from ember.kernels.source import UNITS

    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    lib = build.load_unit(UNITS["dropout"])
    os.utime(lib.path, (1000, 1000))
    again = build.load_unit(UNITS["dropout"])
    assert not again.built and lib.path.stat().st_mtime > 1000

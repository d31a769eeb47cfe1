"""Loading from the kernel cache is cheap: cffi's type tables come from the library's record
(no pycparser, no parse of the declarations) and the compiler's version line is remembered
(no ``cc --version`` process), until the compiler changes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ember.kernels import build, loader
from ember.kernels.source import UNITS

REPO = Path(__file__).resolve().parents[2]

LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ember.kernels import build
    from ember.kernels.source import UNITS
    lib = build.load_unit(UNITS["embedding"])
    out = np.zeros((2, 1), np.float32)
    lib.lib.ember_embedding_backward_f32(
        lib.ffi.from_buffer(np.ones((1, 1), np.float32)), lib.ffi.from_buffer(np.array([1])),
        lib.ffi.from_buffer(out), 1, 1, 2, -1, 1)
    assert out.tolist() == [[0.0], [1.0]], out
    print(json.dumps([lib.built, [m for m in ("pycparser", "subprocess") if m in sys.modules]]))
    """
)


def _toolchain_or_skip() -> build.Toolchain:
    try:
        return build.toolchain()
    except build.KernelBuildError as e:
        pytest.skip(f"no C compiler here: {e}")


def _load_in_new_process(cache: Path) -> tuple[bool, list[str]]:
    env = dict(os.environ, EMBER_CACHE_DIR=str(cache))
    r = subprocess.run([sys.executable, "-c", LOAD], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    built, modules = json.loads(r.stdout.strip().splitlines()[-1])
    return built, modules


def test_a_cached_library_loads_without_parsing_or_running_the_compiler(tmp_path):
    _toolchain_or_skip()
    built, _ = _load_in_new_process(tmp_path)
    assert built
    built, modules = _load_in_new_process(tmp_path)
    assert not built and modules == []  # neither pycparser nor subprocess was imported


def test_a_record_without_type_tables_still_loads_and_gains_them(tmp_path, monkeypatch):
    _toolchain_or_skip()
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    lib = build.load_unit(UNITS["embedding"])
    record_path = lib.path.with_suffix(".json")
    record = json.loads(record_path.read_text())
    assert isinstance(record.get("ffi"), str)
    del record["ffi"]  # what an older ember wrote
    record_path.write_text(json.dumps(record))
    again = build.load_unit(UNITS["embedding"])
    assert not again.built and again.flags == lib.flags
    assert isinstance(json.loads(record_path.read_text()).get("ffi"), str)
    record["ffi"] = "not a literal ("  # a damaged record: parsed from the declarations instead
    record_path.write_text(json.dumps(record))
    third = build.load_unit(UNITS["embedding"])
    out = np.zeros((2, 1), np.float32)
    third.lib.ember_embedding_backward_f32(
        third.ffi.from_buffer(np.ones((1, 1), np.float32)),
        third.ffi.from_buffer(np.array([0])),
        third.ffi.from_buffer(out), 1, 1, 2, -1, 1)  # fmt: skip
    assert out.tolist() == [[1.0], [0.0]]


def test_the_compiler_version_is_remembered_until_the_compiler_changes(tmp_path, monkeypatch):
    fake = tmp_path / "fakecc"
    fake.write_text('#!/bin/sh\necho "fakecc 1.0"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(build, "_toolchain", None)
    assert build.toolchain(refresh=True).version == "fakecc 1.0"
    assert not (tmp_path / "kernels").exists()  # a lookup alone creates no cache directory
    (tmp_path / "kernels").mkdir()
    assert build.toolchain(refresh=True).version == "fakecc 1.0"  # now remembered
    real = build._version_line

    def no_process(command):
        raise AssertionError("the version line should have been remembered")

    monkeypatch.setattr(build, "_version_line", no_process)
    monkeypatch.setattr(build, "_toolchain", None)
    assert build.toolchain().version == "fakecc 1.0"
    fake.write_text('#!/bin/sh\necho "fakecc 2.0 (updated)"\n')  # another size: asked again
    monkeypatch.setattr(build, "_version_line", real)
    monkeypatch.setattr(build, "_toolchain", None)
    assert build.toolchain().version == "fakecc 2.0 (updated)"


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc/self/maps")
def test_only_the_openmp_runtime_stays_loaded_for_good(c_kernels):
    # the runtime is pinned (a process exiting with OpenMP threads still spinning in it
    # crashed when the last library close unmapped it), the kernel libraries are not: a
    # compiled graph's library is unmapped with its graph
    import gc

    import ember

    f = ember.compile(lambda t: (ember.exp(t * 0.371) + t).tanh() * 3.25)
    with ember.no_grad():
        f(ember.tensor(np.ones((8, 8), np.float32)))
    lib = f._last.program.c_library
    assert lib is not None
    name = lib.path.name

    def mapped() -> bool:
        return name in Path("/proc/self/maps").read_text()

    assert mapped()
    del f, lib
    gc.collect()
    assert not mapped()
    assert loader._openmp_pinned == ("-fopenmp" in build.flag_ladder(UNITS["embedding"])[0])

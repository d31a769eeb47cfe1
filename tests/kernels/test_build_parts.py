"""Kernels built one function at a time: a part of a unit exports only its functions and
compiles into the same machine code as the whole unit; the runtime builds the part a call
needs (with its backward companion on another thread) unless the whole unit is compiled."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ember.kernels import build, runtime
from ember.kernels.source import UNITS, cdef, companions, function_names, part, render, variant

from .conftest import REPO, toolchain_or_skip


def test_a_part_exports_only_its_functions():
    for unit in UNITS.values():
        for sfx in ("f32", "f64"):
            whole = variant(unit, sfx)
            for name in function_names(whole):
                p = part(whole, name)
                assert name in p.keep or p == whole
                exported = [n for n in function_names(whole) if f"ember_{n}_{sfx}(" in cdef(p)]
                assert exported == (list(p.keep) or function_names(whole))
                src = render(p)
                for other in set(function_names(whole)) - set(exported):
                    assert re.search(
                        rf"static __attribute__\(\(unused\)\)[^;{{]*FN\({other}\)", src
                    )
    with pytest.raises(ValueError, match="no function 'nope'"):
        part(UNITS["softmax"], "nope")


def test_groups_and_companions():
    attention = UNITS["attention"]  # its shared helpers are noipa: parts of their own
    assert part(attention, "sdpa_forward").keep == ("sdpa_forward",)
    assert companions(attention, "sdpa_forward") == ["sdpa_backward"]
    assert part(UNITS["im2col"], "im2col") == UNITS["im2col"]
    assert companions(UNITS["norm"], "layer_norm_forward") == ["layer_norm_backward"]
    assert companions(UNITS["norm"], "layer_norm_backward") == []
    assert companions(UNITS["optim"], "adam_multi") == []
    assert part(UNITS["optim"], "adam_multi").keep == ("adam_multi",)


def _functions(obj: Path) -> dict[str, list[str]]:
    """Disassembly of each function in ``obj``, addresses, local label numbers and vector
    register numbers removed (with AVX-512's 32 registers, GCC numbered the registers of
    the same instructions differently in a part and its unit), and a constant's section
    read as a local label (GCC put the same constants in ``.rodata`` for one and ``.LC``
    labels for the other, in the AVX-512 activation kernels); no-ops left out (the padding
    that puts each loop on a 64-byte line depends on where the function starts)."""
    text = subprocess.run(["objdump", "-d", "-r", "--no-show-raw-insn", str(obj)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = out.setdefault(m.group(1), [])
        elif current is not None and re.match(r"^\s+[0-9a-f]+:", line):
            t = line.split(":", 1)[1].split("#")[0].strip()
            t = re.sub(r"-?0x[0-9a-f]+\(%rip\)", "(%rip)", t)
            t = re.sub(r"\b[0-9a-f]+ <[^>]*>", "<>", t)
            t = re.sub(r"[-+]0x[0-9a-f]+$", "", t)
            t = re.sub(r"%([xyz]mm)[0-9]+", r"%\1", t)
            t = re.sub(r"\.(LC|constprop\.|part\.|isra\.|cold\.|_omp_fn\.)\d+", r".\1", t)
            t = re.sub(r"\.rodata(\.cst\d+)?", ".LC", t)  # a constant's place, not its value
            if not re.match(r"^((data16|cs)\s+)*(nop|xchg\s+%ax,%ax)", t):  # (loop padding)
                current.append(t)
    return out


def _objects(units: list, tmp: Path, tc: build.Toolchain) -> list[dict]:
    def one(item: tuple[int, object]) -> dict:
        i, unit = item
        src = tmp / f"u{i}.c"
        src.write_text(render(unit))
        obj = src.with_suffix(".o")
        flags = [f for f in build.flag_ladder(unit)[0] if f != "-shared"]
        subprocess.run([*tc.command, *flags, "-c", "-o", str(obj), str(src)], check=True)
        return _functions(obj)

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        return list(pool.map(one, enumerate(units)))


@pytest.mark.skipif(
    shutil.which("objdump") is None or sys.platform != "linux", reason="needs GNU objdump"
)
def test_a_part_compiles_to_the_same_machine_code_as_its_unit(tmp_path):
    """Same code, same bits: a shared helper inlined or specialized differently once it has
    a single caller would change what a kernel computes (another order of a sum)."""
    tc = toolchain_or_skip()
    wholes, parts = [], []
    for unit in UNITS.values():
        whole = variant(unit, "f32")
        split = {part(whole, n) for n in function_names(whole)} - {whole}
        if split:
            wholes.append(whole)
            parts.append(sorted(split, key=lambda p: p.keep))
    objects = _objects(wholes + [p for ps in parts for p in ps], tmp_path, tc)
    done = len(wholes)
    for whole, ps in zip(wholes, parts):
        code = objects[wholes.index(whole)]
        bodies = [tuple(b) for b in code.values()]
        for p in ps:
            for name, body in objects[done].items():
                assert code.get(name) == body or tuple(body) in bodies, (p.keep, name)
            done += 1


LAZY = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from ember import kernels
    from ember.kernels import runtime
    x = np.ones((2, 3), np.float32)
    y = kernels.layer_norm_forward(x, 1)
    # the library that serves the forward (the backward's part may have loaded first)
    lib = next(v for k, v in runtime._libs.items()
               if k.startswith("norm.f32") and "ember_layer_norm_forward_f32" in dir(v.lib))
    print(json.dumps([lib.built, lib.path.name, "subprocess" in sys.modules]))
    """
)


def _lazy_run(cache: Path) -> list:
    env = dict(os.environ, EMBER_CACHE_DIR=str(cache), EMBER_KERNELS="c")
    r = subprocess.run([sys.executable, "-c", LAZY], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_a_first_call_builds_its_part_and_its_backward(tmp_path):
    toolchain_or_skip()
    built, name, _ = _lazy_run(tmp_path)
    assert built and name.startswith("norm-layer_norm_forward-")
    libs = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "kernels").glob("*.so"))
    # the backward was compiled meanwhile (the process waits for it before exiting)
    assert libs == ["norm-layer_norm_backward", "norm-layer_norm_forward"]
    built, again, subprocess_imported = _lazy_run(tmp_path)
    assert (built, again, subprocess_imported) == (False, name, False)  # from the cache


def test_a_compiled_whole_unit_serves_every_function(tmp_path, monkeypatch):
    toolchain_or_skip()
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    whole = build.load_unit(variant(UNITS["norm"], "f32"))  # as prepare() builds it
    built, name, _ = _lazy_run(tmp_path)
    assert not built and name == whole.path.name
    assert not list((tmp_path / "kernels").glob("norm-layer_norm*"))


def test_one_build_per_library_however_many_threads_ask(monkeypatch):
    calls = []

    class Lib:
        lib = type("L", (), {"ember_relu_forward_f32": "relu", "ember_relu_backward_f32": "b"})

    def slow_load(unit):
        calls.append(unit.keep)
        time.sleep(0.2)
        return Lib()

    monkeypatch.setattr(build, "load_unit", slow_load)
    monkeypatch.setattr(build, "library_path", lambda unit: Path("/nonexistent/x.so"))
    monkeypatch.setattr(runtime, "_libs", {})
    monkeypatch.setattr(runtime, "_failed", {})
    monkeypatch.setattr(runtime, "_building", {})
    monkeypatch.setattr(runtime, "_mode", "c")
    results = []

    def ask() -> None:
        results.append(runtime.function("pool", "relu_forward", "f32"))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for t in threading.enumerate():  # the companion build
        if t.name.startswith("ember-build-"):
            t.join()
    assert results == ["relu"] * 4
    assert sorted(calls) == [("relu_backward",), ("relu_forward",)]
    assert sorted(runtime.loaded()) == ["pool.f32"]


def test_a_failed_part_is_not_retried_and_falls_back_once(monkeypatch):
    calls = []

    def failing(unit):
        calls.append(unit.keep)
        raise build.KernelBuildError("compiling the 'pool' kernels failed")

    monkeypatch.setattr(build, "load_unit", failing)
    monkeypatch.setattr(build, "library_path", lambda unit: Path("/nonexistent/x.so"))
    monkeypatch.setattr(runtime, "_libs", {})
    monkeypatch.setattr(runtime, "_failed", {})
    monkeypatch.setattr(runtime, "_building", {})
    monkeypatch.setattr(runtime, "_mode", "auto")
    monkeypatch.setattr(runtime, "_warned", False)
    from ember.autograd import no_grad

    with no_grad(), warnings.catch_warnings(record=True) as caught:  # (no_grad: no companion)
        warnings.simplefilter("always")
        assert runtime.function("pool", "relu_forward", "f32") is None
        assert runtime.function("pool", "relu_forward", "f32") is None
    assert [w.category for w in caught] == [runtime.KernelFallbackWarning]  # one message
    assert calls == [("relu_forward",)]  # not retried
    assert runtime.failures() == {"pool.f32": "compiling the 'pool' kernels failed"}


WARM = textwrap.dedent("""
    import json, sys, threading
    import ember
    dtype = {"f32": ember.float32, "f16": ember.float16}[sys.argv[1]]
    ember.optim.Adam([ember.nn.Parameter(ember.ones(3, 3, dtype=dtype))], lr=0.1)
    names = [t.name for t in threading.enumerate() if t.name.startswith("ember-build-")]
    for t in threading.enumerate():
        if t.name.startswith("ember-build-"):
            t.join()
    print(json.dumps(sorted(names)))
""")


@pytest.mark.parametrize("kernels, dtype", [("c", "f32"), ("numpy", "f32"), ("c", "f16")])
def test_creating_an_optimizer_warms_its_step_and_the_gemm(tmp_path, kernels, dtype):
    # the kernels every training step will call compile in the background while the
    # program sets up: the optimizer's fused step and the GEMM of the linear layers
    if kernels == "c":
        toolchain_or_skip()
    env = dict(os.environ, EMBER_CACHE_DIR=str(tmp_path), EMBER_KERNELS=kernels)
    r = subprocess.run([sys.executable, "-c", WARM, dtype], env=env, cwd=REPO,
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    threads_started = json.loads(r.stdout.strip().splitlines()[-1])
    libs = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("kernels/*.so"))
    if kernels == "c" and dtype == "f32":
        assert len(threads_started) == 2
        assert libs == ["gemm", "optim-adam_multi"]  # (gemm: a one-function unit)
    else:  # kernels off, or a dtype they do not cover: nothing starts
        assert (threads_started, libs) == ([], [])


def test_warm_never_raises():
    runtime.warm("no-such-unit", "nothing")
    runtime.warm("gemm", "no_such_function")

"""Start-up figures: how long ``import ember`` takes, and how long the first call of a
compiled W3 training step takes, cold (C kernels compile) and from the kernel cache.

    python benchmarks/startup.py                # both parts
    python benchmarks/startup.py --profile      # also a cProfile of the cold first call
    python benchmarks/startup.py --profile-cached   # ... of the first call from the cache
    python benchmarks/startup.py --repeat 15    # more interpreter starts for the medians
    python benchmarks/startup.py --cold-runs 5  # several cold first calls (median; noisy)
    python benchmarks/startup.py --no-prepare   # ... without compile's up-front kernel build

``import ember`` is the median wall time of several fresh ``python -c "import ember"``
processes minus the median of bare ``python -c pass`` ones (interpreter start), with NumPy's
own import shown beside it the same way. Where ``PYTHONDONTWRITEBYTECODE`` is set, no
``.pyc`` is ever written for a source checkout, so every import compiles ember's source; the
figures are then also given with a bytecode cache (``PYTHONPYCACHEPREFIX``, a new temporary
directory filled by one warm-up run), which is what an installed package has.

The compile figure is the first call of ``ember.compile(step)`` on the W3 step in a fresh
process whose ``EMBER_CACHE_DIR`` is a new empty directory (cold: the C kernels compile),
then again in a second fresh process on the same directory (cached), split into phases:
trace (the eager run under the tracer), passes, codegen (building the executor), C compile,
loading the compiled libraries (cffi), waiting for libraries other threads compile, and the
rest. Each kernel library compiled during the cold call is listed with when it started and
ended (kernels compile on first use, a forward kernel's backward on another thread meanwhile),
with the CPU seconds of all compiler processes together: wall times on a shared machine are
noisy, the compiler's CPU time much less so. Where ``PYTHONDONTWRITEBYTECODE`` is set,
the modules the first call imports (the passes, the kernel sources) are compiled from source
in that call too; the cached figure is then also given with a bytecode cache, as for imports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.workloads import common  # noqa: E402

# (record key, most allowed seconds, goal as printed)
GOALS = [
    ("import_s", 0.15, "import ember <= 0.15 s"),
    ("compile_cold_s", 5.0, "W3 compiled step, first call cold <= 5 s"),
    ("compile_cached_s", 0.5, "W3 compiled step, first call cached <= 0.5 s"),
]

IMPORTS = {
    "bare": "pass",
    "numpy": "import numpy",
    "ember": "import ember",
    "first_use": "import ember; ember.ones(1) + 1",
}


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a measured child: this checkout first on the path, and OpenBLAS's
    idle threads told to sleep as ``import ember`` would tell them (a compile child loads
    NumPy before it imports ember, too late for ember to set it; see ember.threads)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    env.update(extra)
    return env


def _process_s(code: str, env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def import_times(repeat: int = 9, env: dict[str, str] | None = None) -> dict[str, float]:
    """Median seconds of each of :data:`IMPORTS` in fresh processes (interleaved, so that all
    see the same load), less the bare interpreter start.

    Example:
        >>> r = import_times(1)
        >>> sorted(r)
        ['bare_s', 'ember_s', 'first_use_s', 'numpy_s']
    """
    env = env or child_env()
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeat):
        for name, code in IMPORTS.items():
            times[name].append(_process_s(code, env))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    out = {"bare_s": med["bare"]}
    for name in ("numpy", "ember", "first_use"):
        out[f"{name}_s"] = med[name] - med["bare"]
    return out


def import_times_bytecode(repeat: int = 9) -> dict[str, float]:
    """:func:`import_times` with a bytecode cache in a new temporary directory."""
    prefix = tempfile.mkdtemp(prefix="ember-pyc-")
    try:
        env = child_env(PYTHONPYCACHEPREFIX=prefix)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        _process_s(IMPORTS["first_use"], env)  # writes the cache
        return import_times(repeat, env)
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


# -- first call of the compiled W3 step ---------------------------------------------------------
class Phases:
    """Exclusive wall time spent in wrapped functions, by label (a wrapped call inside another
    counts for its own label only)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[float] = []

    def wrap(self, owner: object, attr: str, label: str) -> None:
        fn = getattr(owner, attr)
        phases = self

        def timed(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return fn(*args, **kwargs)  # (builds on other threads: see compile_child)
            t = time.perf_counter()
            phases._stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                inner = phases._stack.pop()
                phases.seconds[label] += dt - inner
                if phases._stack:
                    phases._stack[-1] += dt

        setattr(owner, attr, timed)


def compile_child(profile: bool = False, prepare: bool = True) -> dict:
    """In this (fresh) process: build the W3 model and its compiled step, time the first
    call by phase and the second call (the first run of the generated program). Without
    ``prepare``, ``ember.compile`` skips its up-front build of every kernel unit
    (``_prepare_kernels``): the kernels then compile on first use."""
    t0 = time.perf_counter()
    import ember
    import ember.graph.compile
    import ember.kernels.build as kb
    import ember.kernels.runtime as rt
    from benchmarks.workloads import w3_gpt
    from ember.graph.executor import Program

    imports = time.perf_counter() - t0
    gc = sys.modules["ember.graph.compile"]  # the attribute ember.graph.compile is the function
    phases = Phases()
    phases.wrap(gc.CompiledFunction, "_trace", "trace")
    phases.wrap(gc, "optimize", "passes")
    phases.wrap(Program, "__init__", "codegen")
    phases.wrap(kb, "_compile", "C compile")
    phases.wrap(kb, "open_library", "load .so (cffi)")
    phases.wrap(kb, "load_unit", "kernel lookup (toolchain, cffi import)")
    phases.wrap(rt, "_obtain", "waiting for builds on other threads")
    phases.wrap(rt, "prepare", "prepare (every kernel unit, in parallel)")
    if not prepare and hasattr(gc, "_prepare_kernels"):
        gc._prepare_kernels = lambda: None
    builds: list[tuple[str, float, float]] = []
    compile_ = kb._compile

    def timed_compile(unit, *args):
        t = time.perf_counter()
        try:
            return compile_(unit, *args)
        finally:
            label = "-".join((unit.name, *unit.keep)) + "." + "+".join(unit.dtypes)
            builds.append((label, t - start, time.perf_counter() - start))

    kb._compile = timed_compile
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()  # (the set-up may start builds: creating the optimizer warms)
    step = w3_gpt.framework_step(ember, compiled=True)
    setup = time.perf_counter() - start
    prof = None
    if profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    gcc_cpu = max(0.0, after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
    if prof is not None:
        import io
        import pstats

        prof.disable()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue())
    t = time.perf_counter()
    step()
    second = time.perf_counter() - t
    split = dict(phases.seconds)
    split["other"] = first - sum(split.values())
    builds.sort(key=lambda b: b[1])
    return {"first_call_s": first, "second_call_s": second, "imports_s": imports,
            "setup_s": setup, "phases": split, "compiler_cpu_s": gcc_cpu,
            "builds": builds}  # fmt: skip


def _compile_run(env: dict[str, str], profile: bool, label: str, prepare: bool = True) -> dict:
    """One :func:`compile_child` in a fresh process (its record, or ``{"error": ...}``)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--compile-child"]
    cmd += [] if prepare else ["--no-prepare"]
    r = subprocess.run(cmd + (["--profile"] if profile else []), env=env, capture_output=True,
                       text=True)  # fmt: skip
    lines = r.stdout.strip().splitlines()
    if r.returncode or not lines:
        return {"error": (r.stderr.strip().splitlines() or ["no output"])[-1]}
    if profile:
        print(f"-- cProfile of the {label} first call")
        print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def compile_times(
    profile: bool = False, profile_cached: bool = False, cold_runs: int = 1, prepare: bool = True
) -> dict:
    """The cold and the cached first call, each in a fresh process on one new cache dir (and,
    where ``PYTHONDONTWRITEBYTECODE`` is set, the cached one again with a bytecode cache:
    ``cached_bytecode``). With ``cold_runs`` > 1 the cold call runs that many times, each on
    a new empty cache dir; ``cold`` is then the run of median time and ``cold_runs`` lists
    ``(first_call_s, compiler_cpu_s)`` of every run."""
    out: dict = {"cold_runs": []}
    colds = []
    for _ in range(cold_runs - 1):
        cache = tempfile.mkdtemp(prefix="ember-cache-")
        try:
            colds.append(_compile_run(child_env(EMBER_CACHE_DIR=cache), False, "cold", prepare))
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    cache = tempfile.mkdtemp(prefix="ember-cache-")
    env = child_env(EMBER_CACHE_DIR=cache)
    runs = [("cold", profile, env), ("cached", profile_cached, env)]
    prefix = None
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        prefix = tempfile.mkdtemp(prefix="ember-pyc-")
        pyc = child_env(EMBER_CACHE_DIR=cache, PYTHONPYCACHEPREFIX=prefix)
        pyc.pop("PYTHONDONTWRITEBYTECODE", None)
        runs += [("bytecode warm-up", False, pyc), ("cached_bytecode", False, pyc)]
    try:
        for name, prof, run_env in runs:
            out[name] = _compile_run(run_env, prof, name, prepare)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        if prefix is not None:
            shutil.rmtree(prefix, ignore_errors=True)
    out.pop("bytecode warm-up", None)
    colds = [r for r in colds + [out["cold"]] if "error" not in r]
    out["cold_runs"] = [(r["first_call_s"], r["compiler_cpu_s"]) for r in colds]
    if len(colds) > 1:
        out["cold"] = sorted(colds, key=lambda r: r["first_call_s"])[(len(colds) - 1) // 2]
    return out


def _phases_text(rec: dict) -> str:
    if "error" in rec:
        return f"ERROR {rec['error'][:100]}"
    parts = ", ".join(
        f"{k} {v:.3f}" for k, v in sorted(rec["phases"].items(), key=lambda kv: -kv[1])
    )
    text = f"{rec['first_call_s']:.3f} s = {parts}; next call {rec['second_call_s'] * 1e3:.0f} ms"
    if "setup_s" in rec:
        text += f"; set-up before it (model, optimizer) {rec['setup_s']:.3f} s"
    if rec.get("builds"):
        libs = ", ".join(f"{n} {a:.2f}-{b:.2f}" for n, a, b in rec["builds"])
        text += (f"\n    {len(rec['builds'])} kernel libraries compiled (all compiler processes "
                 f"{rec['compiler_cpu_s']:.2f} CPU s, set-up included; started-ended, s into "
                 f"the call, negative: during the set-up): {libs}")  # fmt: skip
    return text


def measure(
    repeat: int = 9,
    profile: bool = False,
    report: Callable = print,
    profile_cached: bool = False,
    cold_runs: int = 1,
    prepare: bool = True,
) -> dict:
    """Both parts, printed as they finish; returns the figures (keys of :data:`GOALS`)."""
    imp = import_times(repeat)
    report(
        f"  import ember: {imp['ember_s']:.3f} s (median of {repeat} fresh processes minus "
        f"bare interpreter start {imp['bare_s']:.3f} s); numpy alone {imp['numpy_s']:.3f} s, "
        f"so ember's own {imp['ember_s'] - imp['numpy_s']:.3f} s; first use "
        f"(import + ember.ones(1) + 1) {imp['first_use_s']:.3f} s"
    )
    rec = {"import_s": imp["ember_s"], "imports": imp}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        pyc = import_times_bytecode(repeat)
        rec["imports_bytecode"] = pyc
        report(
            "  PYTHONDONTWRITEBYTECODE is set here, so each import compiles ember's source; "
            f"with a bytecode cache: import ember {pyc['ember_s']:.3f} s, numpy alone "
            f"{pyc['numpy_s']:.3f} s, first use {pyc['first_use_s']:.3f} s"
        )
    comp = compile_times(profile, profile_cached, cold_runs, prepare)
    rec["compile"] = comp
    for name in ("cold", "cached"):
        report(f"  W3 compiled step, first call {name:6s}: {_phases_text(comp[name])}")
        rec[f"compile_{name}_s"] = comp[name].get("first_call_s")
    if len(comp["cold_runs"]) > 1:
        runs = ", ".join(f"{t:.2f} s ({c:.2f} CPU s)" for t, c in comp["cold_runs"])
        report(f"    cold runs (each on an empty cache; the median is shown above): {runs}")
    if "cached_bytecode" in comp:
        report(f"    cached, with a bytecode cache: {_phases_text(comp['cached_bytecode'])}")
    return rec


def goal_rows(rec: dict) -> list[dict]:
    """The start-up goals with their measured seconds (see ``common.print_goals``)."""
    return [
        {"goal": label, "ratio": rec[key], "limit": limit, "unit": "s"}
        for key, limit, label in GOALS
        if rec.get(key) is not None
    ]


def main() -> None:
    p = argparse.ArgumentParser(description="ember start-up figures")
    p.add_argument("--repeat", type=int, default=9, help="fresh processes per import figure")
    p.add_argument("--profile", action="store_true", help="cProfile the cold first call")
    p.add_argument(
        "--profile-cached", action="store_true", help="cProfile the first call from the cache"
    )
    p.add_argument("--cold-runs", type=int, default=1, help="cold first calls (median)")
    p.add_argument("--no-prepare", action="store_true", help="kernels compile on first use")
    p.add_argument("--json", help="write the figures to this file")
    p.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.compile_child:
        print(json.dumps(compile_child(a.profile, not a.no_prepare)))
        return
    rec = measure(a.repeat, a.profile, profile_cached=a.profile_cached, cold_runs=a.cold_runs,
                  prepare=not a.no_prepare)  # fmt: skip
    common.print_goals(goal_rows(rec))
    common.save_json(a.json, rec)


if __name__ == "__main__":
    main()

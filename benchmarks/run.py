"""Run the workloads of ../shared/bench/WORKLOADS.md for ember, PyTorch and the NumPy floor
in one process and print the figures and ratios.

    python benchmarks/run.py                 # W1-W4, all implementations
    python benchmarks/run.py --only W1 W3    # a subset
    python benchmarks/run.py --json out.json # also write the raw records

Timings are noisy on a shared machine: run it at least twice and compare medians; each
record carries contention diagnostics (machine_busy, steal, loadavg).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ember  # noqa: E402
from benchmarks.workloads import common, w1_mlp, w2_cnn, w3_gpt  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def _torch():
    """PyTorch, imported only in the process that times it: importing it starts OpenMP
    thread pools that would compete with the other implementations' threads."""
    import torch

    return torch


def training_entries():
    yield "W1", "numpy", w1_mlp.numpy_step
    yield "W1", "torch", lambda: w1_mlp.framework_step(_torch())
    yield "W1", "ember", lambda: w1_mlp.framework_step(ember)
    yield "W2", "numpy", w2_cnn.numpy_step
    yield "W2", "torch", lambda: w2_cnn.framework_step(_torch())
    yield "W2", "ember", lambda: w2_cnn.framework_step(ember)
    yield "W3", "numpy", w3_gpt.numpy_step
    yield "W3", "torch", lambda: w3_gpt.framework_step(_torch())
    yield "W3", "ember", lambda: w3_gpt.framework_step(ember)


def inference_entries():
    yield "W4-MLP", "numpy", w1_mlp.numpy_infer
    yield "W4-MLP", "torch", lambda: w1_mlp.framework_infer(_torch())
    yield "W4-MLP", "ember", lambda: w1_mlp.framework_infer(ember)
    yield "W4-GPT", "torch", lambda: w3_gpt.framework_infer(_torch())
    yield "W4-GPT", "ember", lambda: w3_gpt.framework_infer(ember)


def _measure(workload: str, impl: str, timed: int) -> dict:
    """Time one (workload, implementation) pair in this process."""
    kind = "train" if not workload.startswith("W4") else "infer"
    entries = training_entries() if kind == "train" else inference_entries()
    make = {(w, i): m for w, i, m in entries}[(workload, impl)]
    rec = {"workload": workload, "impl": impl}
    try:
        fn = make()
        if kind == "train":
            rec.update(common.time_training(fn, timed))
        else:
            rec.update(common.time_inference(fn, max(timed * 6, 60)))
    except Exception as e:  # report and go on: one broken entry must not hide others
        rec["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc(limit=3)
    return rec


def run(only: set[str] | None, timed: int) -> list[dict]:
    """Each pair runs in a fresh subprocess, one after another: thread pools left spinning
    by one framework (PyTorch's OpenMP workers) must not slow down the next one."""
    records = []
    pairs = [(w, i) for w, i, _ in (*training_entries(), *inference_entries())]
    for workload, impl in pairs:
        if only and workload.split("-")[0] not in only:
            continue
        if impl == "torch" and not HAVE_TORCH:
            continue
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--single",
            workload,
            impl,
            "--timed",
            str(timed),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        try:
            rec = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            rec = {
                "workload": workload,
                "impl": impl,
                "error": (out.stderr.strip().splitlines() or ["no output"])[-1],
            }
        records.append(rec)
        print(_line(rec), flush=True)
    return records


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['workload']:7s} {r['impl']:6s} ERROR {r['error'][:90]}"
    if "median_ms" in r:
        extra = f"loss {r['loss_first']:.6f}->{r['loss_20']:.4f} ok={r['loss_decreased']}"
        fig = f"{r['median_ms']:9.2f} ms"
    else:
        extra = ""
        fig = f"{r['median_us']:9.1f} us"
    return (
        f"{r['workload']:7s} {r['impl']:6s} {fig}  first {r['first_call_s']:.3f}s  "
        f"busy {r['machine_busy']:.2f} {extra}"
    )


def summary(records: list[dict]) -> None:
    by = {(r["workload"], r["impl"]): r for r in records if "error" not in r}
    print("\nratios (lower is better for ember):")
    for w in sorted({r["workload"] for r in records}):
        e = by.get((w, "ember"))
        if e is None:
            continue
        key = "median_ms" if "median_ms" in e else "median_us"
        parts = []
        for other in ("torch", "numpy"):
            o = by.get((w, other))
            if o:
                parts.append(f"ember/{other} = {e[key] / o[key]:.2f}x")
        print(f"  {w:7s} " + ", ".join(parts))


def main() -> None:
    p = argparse.ArgumentParser(description="ember benchmark workloads")
    p.add_argument("--only", nargs="*", help="workloads to run, e.g. W1 W3")
    p.add_argument("--timed", type=int, default=50, help="timed training steps")
    p.add_argument("--json", help="write raw records to this file")
    p.add_argument("--single", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.single:  # the child process of run(): one pair, one JSON line
        print(json.dumps(_measure(*a.single, a.timed)))
        return
    print(
        f"ember {ember.__version__}; PyTorch {'found' if HAVE_TORCH else 'not installed'}; "
        "each pair timed in its own process"
    )
    records = run(set(a.only) if a.only else None, a.timed)
    summary(records)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

"""Run the workloads of ../shared/bench/WORKLOADS.md for ember (eager and compiled), PyTorch,
ONNX Runtime (W4), TensorFlow's tf.function (W2, where TensorFlow is installed) and the NumPy
floor, plus the start-up figures, and print every figure, the ratios and the goals of the
kernels issue (met / missed) in one run.

    python benchmarks/run.py                       # W1-W4 and start-up, all implementations
    python benchmarks/run.py --only W1 W3          # a subset ("startup" names the start-up part)
    python benchmarks/run.py --impl ember ember-compiled
    python benchmarks/run.py --json out.json       # also write the raw records
    python benchmarks/run.py --device cuda         # W1-W3 training on a GPU: ember vs PyTorch

Each (workload, implementation) pair runs in its own fresh process, one after another.
Timings are noisy on a shared machine: run it at least twice and compare medians; each record
carries contention diagnostics (machine_busy, steal, loadavg).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import ember  # noqa: E402
from benchmarks import startup  # noqa: E402
from benchmarks.workloads import common, w1_mlp, w2_cnn, w3_gpt  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_ORT = importlib.util.find_spec("onnxruntime") is not None
HAVE_TF = importlib.util.find_spec("tensorflow") is not None

# the yardstick of the compiled-W2 goal: W2 under TensorFlow's tf.function, measured in the same
# run (w2_cnn.tf_step) where TensorFlow is importable; else the figure for it, quoted
TF_MEASURED = "tf.function"
TF_W2_QUOTED_MS = 14.8
TF_NAME = "tf.function (quoted)"
NEEDS = {"torch": HAVE_TORCH, "onnxruntime": HAVE_ORT, TF_MEASURED: HAVE_TF}

# (workload, ember implementation, yardstick implementation, most allowed ratio)
GOALS = [
    ("W1", "ember", "torch", 1.0),
    ("W2", "ember", "torch", 1.3),
    ("W3", "ember", "torch", 1.0),
    ("W1", "ember-compiled", "torch", 1.0),
    ("W2", "ember-compiled", TF_MEASURED, 1.0),  # TF_NAME (quoted) where not measured
    ("W3", "ember-compiled", "torch", 0.8),
    ("W4-MLP", "ember-compiled", "onnxruntime", 1.0),
    ("W4-GPT", "ember-compiled", "onnxruntime", 1.0),
]


def _torch():
    """PyTorch, imported only in the process that times it: importing it starts OpenMP
    thread pools that would compete with the other implementations' threads."""
    import torch

    return torch


# where the training workloads run ("cuda": ember on CuPy, PyTorch on CUDA; set by --device)
DEVICE = "cpu"

WORKLOADS = {"W1": w1_mlp, "W2": w2_cnn, "W3": w3_gpt, "W4-MLP": w1_mlp, "W4-GPT": w3_gpt}


def entries():
    """(workload, implementation, maker) for every pair; a maker builds the timed callable."""
    for w in ("W1", "W2", "W3"):
        mod = WORKLOADS[w]
        if DEVICE == "cpu":
            yield w, "numpy", mod.numpy_step
        yield w, "torch", lambda mod=mod: mod.framework_step(_torch(), device=DEVICE)
        yield w, "ember", lambda mod=mod: mod.framework_step(ember, device=DEVICE)
        yield (
            w,
            "ember-compiled",
            lambda mod=mod: mod.framework_step(ember, compiled=True, device=DEVICE),
        )
        if w == "W2" and DEVICE == "cpu":  # imports TensorFlow in the timing process only
            yield w, TF_MEASURED, w2_cnn.tf_step
    if DEVICE != "cpu":  # batch-1 inference (W4) is a CPU workload
        return
    for w in ("W4-MLP", "W4-GPT"):
        mod = WORKLOADS[w]
        if w == "W4-MLP":
            yield w, "numpy", mod.numpy_infer
        yield w, "torch", lambda mod=mod: mod.framework_infer(_torch())
        yield w, "ember", lambda mod=mod: mod.framework_infer(ember)
        yield w, "ember-compiled", lambda mod=mod: mod.framework_infer(ember, compiled=True)
        yield w, "onnxruntime", lambda w=w: onnxruntime_infer(w)


# -- ONNX Runtime (W4) -------------------------------------------------------------------------
def export_onnx(workload: str, path: str) -> str:
    """Write the W4 model as ONNX (opset 17) to ``path``: exported from the PyTorch model with
    ``torch.onnx.export(dynamo=False)`` as WORKLOADS.md says, else from ember's model with
    ``ember.export``. Returns which exporter wrote it."""
    mod = WORKLOADS[workload]
    make = mod.make_model if workload == "W4-MLP" else mod.make_gpt
    x = mod.make_batch(1)[0]
    try:
        torch = _torch()
        model = make(torch).eval()
        torch.onnx.export(
            model, (torch.tensor(x),), path, dynamo=False, opset_version=17,
            input_names=["x"], output_names=["y"],
        )  # fmt: skip
        return "torch.onnx.export(dynamo=False), opset 17"
    except Exception as e:  # no torch, or its exporter failed: ember's own exporter
        ember.export(make(ember).eval(), (ember.tensor(x),), path, opset=17)
        return f"ember.export, opset 17 (torch.onnx.export unavailable: {type(e).__name__})"


def onnxruntime_infer(workload: str):
    """``InferenceSession.run`` on the exported W4 model (default thread pools). The export
    runs in a separate process so that PyTorch's thread pools never exist in this one."""
    import onnxruntime as ort

    path = os.path.join(tempfile.mkdtemp(prefix="ember-bench-"), f"{workload}.onnx")
    cmd = [sys.executable, os.path.abspath(__file__), "--export-onnx", workload, path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = WORKLOADS[workload].make_batch(1)[0]

    def call():
        return session.run(None, {name: x})[0]

    call.note = out.stdout.strip().splitlines()[-1]  # type: ignore[attr-defined]
    return call


# -- running -----------------------------------------------------------------------------------
def measure(workload: str, impl: str, timed: int) -> dict:
    """Time one (workload, implementation) pair in this process."""
    make = {(w, i): m for w, i, m in entries()}[(workload, impl)]
    rec = {"workload": workload, "impl": impl}
    try:
        fn = make()
        if not workload.startswith("W4"):
            rec.update(common.time_training(fn, timed))
        else:
            rec.update(common.time_inference(fn, max(timed * 6, 60)))
        if getattr(fn, "note", None):
            rec["note"] = fn.note
    except Exception as e:  # report and go on: one broken entry must not hide others
        rec["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc(limit=3)
    return rec


def selected(only: set[str] | None, impls: set[str] | None) -> list[tuple[str, str]]:
    """The (workload, implementation) pairs a run covers (``only``: names such as W1, W4
    (both W4 parts) or W4-MLP)."""
    pairs = []
    for workload, impl, _ in entries():
        if only and workload not in only and workload.split("-")[0] not in only:
            continue
        if (impls and impl not in impls) or not NEEDS.get(impl, True):
            continue
        pairs.append((workload, impl))
    return pairs


def run(pairs: list[tuple[str, str]], timed: int) -> list[dict]:
    """Each pair runs in a fresh subprocess, one after another: thread pools left spinning
    by one framework (PyTorch's OpenMP workers) must not slow down the next one."""
    records = []
    for workload, impl in pairs:
        cmd = [sys.executable, os.path.abspath(__file__), "--single", workload, impl]
        cmd += ["--timed", str(timed), "--device", DEVICE]
        out = subprocess.run(cmd, capture_output=True, text=True)
        try:
            rec = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            last = (out.stderr.strip().splitlines() or ["no output"])[-1]
            rec = {"workload": workload, "impl": impl, "error": last}
        records.append(rec)
        print(line(rec), flush=True)
    if DEVICE == "cpu" and any(r["workload"] == "W2" for r in records):
        if ("W2", TF_MEASURED) not in pairs:  # not installed (or not selected): the quote
            records.append({"workload": "W2", "impl": TF_NAME, "median_ms": TF_W2_QUOTED_MS})
    return records


def combine(rounds: list[list[dict]]) -> list[dict]:
    """One record per pair from several rounds of :func:`run`: the median of its figures
    (``rounds`` keeps each round's); a pair that failed in any round keeps that error."""
    out = []
    for recs in zip(*rounds):
        bad = [r for r in recs if "error" in r]
        if bad or len(recs) == 1:
            out.append(bad[0] if bad else recs[0])
            continue
        key = "median_ms" if "median_ms" in recs[0] else "median_us"
        values = [r[key] for r in recs]
        rec = dict(sorted(recs, key=lambda r: r[key])[len(recs) // 2])
        rec[key], rec["rounds"] = statistics.median(values), values
        out.append(rec)
    return out


def round_ratio(rounds: list[list[dict]], workload: str, a: str, b: str) -> list[float]:
    """``a``'s figure over ``b``'s for ``workload`` in each round where both ran: pairs of
    one round run minutes apart at most, so their ratio drifts less than the figures."""
    ratios = []
    for recs in rounds:
        by = {(r["workload"], r["impl"]): r for r in recs}
        av, bv = _value(by.get((workload, a))), _value(by.get((workload, b)))
        if av is not None and bv is not None:
            ratios.append(av / bv)
    return ratios


def _figure(r: dict) -> str:
    if "median_ms" in r:
        return f"{r['median_ms']:.2f} ms"
    return f"{r['median_us']:.1f} us"


def line(r: dict) -> str:
    """One record as a line of text."""
    head = f"{r['workload']:7s} {r['impl']:14s}"
    if "error" in r:
        return f"{head} ERROR {r['error'][:90]}"
    extra = ""
    if "loss_first" in r:
        extra = f"loss {r['loss_first']:.6f}->{r['loss_20']:.4f} ok={r['loss_decreased']}"
    if r.get("note"):
        extra += f" [{r['note']}]"
    return (
        f"{head} {_figure(r):>11s}  first {r['first_call_s']:.3f}s  "
        f"busy {r['machine_busy']:.2f}  {extra}"
    )


def _value(r: dict | None) -> float | None:
    if r is None or "error" in r:
        return None
    return r.get("median_ms", r.get("median_us"))


def table(records: list[dict]) -> None:
    """Every figure, one row a workload (ms for training, us for W4)."""
    by = {(r["workload"], r["impl"]): r for r in records}
    cols = list(dict.fromkeys(r["impl"] for r in records))
    print("\n" + f"{'':8s}" + "".join(f"{c:>22s}" for c in cols))
    for w in dict.fromkeys(r["workload"] for r in records):
        cells = []
        for c in cols:
            r = by.get((w, c))
            cells.append("-" if r is None else "ERROR" if "error" in r else _figure(r))
        print(f"{w:8s}" + "".join(f"{c:>22s}" for c in cells))
    if TF_NAME in cols:
        why = "not selected" if HAVE_TF else "not installed"
        print(f"({TF_NAME}: the issue's figure for TensorFlow, not measured here: {why})")
    if TF_MEASURED in cols:
        print(f"({TF_MEASURED}: TensorFlow measured in this run, same weights, batch and Adam)")


def summary(
    records: list[dict],
    start: dict | None = None,
    goals: bool = True,
    rounds: list[list[dict]] | None = None,
) -> list[dict]:
    """Print the ratios and (with ``goals``) each goal of the issue with its measured ratio
    and met/missed; returns the goal rows. With several ``rounds`` a goal's ratio is the
    median of the per-round ratios (:func:`round_ratio`), and its range is shown."""
    by = {(r["workload"], r["impl"]): r for r in records}
    print("\nratios (ember figure / other figure; lower is better for ember):")
    for w in dict.fromkeys(r["workload"] for r in records):
        parts = []
        for e in ("ember", "ember-compiled"):
            ev = _value(by.get((w, e)))
            for o in ("torch", "onnxruntime", TF_MEASURED, TF_NAME, "numpy"):
                ov = _value(by.get((w, o)))
                if ev is not None and ov is not None:
                    parts.append(f"{e}/{o} = {ev / ov:.2f}x")
        if parts:
            print(f"  {w:7s} " + ", ".join(parts))
    rows = []
    if not goals:
        return rows
    for w, e, o, limit in GOALS:
        if o == TF_MEASURED and (w, o) not in by:  # TensorFlow not run: the quoted figure
            o = TF_NAME
        ev, ov = _value(by.get((w, e))), _value(by.get((w, o)))
        per_round = round_ratio(rounds, w, e, o) if rounds and len(rounds) > 1 else []
        goal = f"{w} {e} <= {limit:g}x {o}"
        if len(per_round) > 1:
            spread = f" ({min(per_round):.2f}-{max(per_round):.2f} over {len(per_round)} rounds)"
            ratio = statistics.median(per_round)
            rows.append({"goal": goal, "ratio": ratio, "limit": limit, "spread": spread})
        elif ev is not None and ov is not None:
            rows.append({"goal": goal, "ratio": ev / ov, "limit": limit})
    rows += startup.goal_rows(start or {})
    print("\ngoals of the kernels issue:")
    common.print_goals(rows)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description="ember benchmark workloads")
    p.add_argument("--only", nargs="*", help="workloads to run, e.g. W1 W3 startup")
    p.add_argument("--impl", nargs="*", help="implementations, e.g. ember ember-compiled")
    p.add_argument("--timed", type=int, default=50, help="timed training steps")
    p.add_argument(
        "--rounds", type=int, default=1, help="run every pair this many times, interleaved"
    )
    p.add_argument("--json", help="write raw records to this file")
    p.add_argument("--device", default="cpu", help="device of W1-W3 (cpu, cuda)")
    p.add_argument("--single", nargs=2, metavar=("WORKLOAD", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--export-onnx", nargs=2, metavar=("WORKLOAD", "PATH"), help=argparse.SUPPRESS)
    a = p.parse_args()
    global DEVICE
    DEVICE = a.device
    if a.single:  # the child process of run(): one pair, one JSON line
        print(json.dumps(measure(*a.single, a.timed)))
        return
    if a.export_onnx:  # the exporting process of onnxruntime_infer()
        print(export_onnx(*a.export_onnx))
        return
    tf_state = (
        "found (W2 measured under tf.function)"
        if HAVE_TF
        else f"not installed (its W2 figure is quoted: {TF_W2_QUOTED_MS} ms)"
    )
    print(
        f"ember {ember.__version__}; PyTorch {'found' if HAVE_TORCH else 'not installed'}; "
        f"ONNX Runtime {'found' if HAVE_ORT else 'not installed'}; TensorFlow {tf_state}; "
        f"each pair timed in its own process; device {a.device}"
    )
    only = set(a.only) if a.only else None
    pairs = selected(only, set(a.impl) if a.impl else None)
    rounds = []
    for i in range(max(1, a.rounds)):
        if a.rounds > 1:
            print(f"round {i + 1} of {a.rounds}:", flush=True)
        rounds.append(run(pairs, a.timed))
    records = combine(rounds)
    start = None
    if DEVICE != "cpu":  # the goals and the start-up figures are CPU ones
        table(records)
        summary(records, goals=False)
        common.save_json(a.json, {"records": records, "device": DEVICE})
        return
    if only is None or "startup" in only:
        print("\nstart-up:")
        start = startup.measure()
    if records:
        table(records)
    summary(records, start, rounds=rounds)
    common.save_json(a.json, {"records": records, "rounds": rounds, "startup": start})


if __name__ == "__main__":
    main()

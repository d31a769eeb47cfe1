"""Compiled beside eager: the W1-W4 workloads of ../shared/bench/WORKLOADS.md, each run as the
eager ember step and as the same step under ``ember.compile``, in one process.

    python benchmarks/compiled.py                # W1-W4
    python benchmarks/compiled.py --only W1 W4   # a subset
    python benchmarks/compiled.py --json out.json

The compiled training step returns the loss tensor and reads ``.item()`` outside the compiled
function (reading it inside would be a graph break). Goals (issue 4): compiled training
>= 1.3x faster than eager on W3 and never slower on W1/W2; compiled batch-1 inference (W4)
>= 2x faster than eager. Timings are noisy on a shared machine: run twice, compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import ember  # noqa: E402
from benchmarks.workloads import common, w1_mlp, w2_cnn, w3_gpt  # noqa: E402
from ember.graph import compile as ember_compile  # noqa: E402


def _training(model, x, y, opt, loss_fn, compiled: bool) -> Callable[[], float]:
    def step(x, y):
        opt.zero_grad()
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss

    fn = ember_compile(step) if compiled else step

    def run() -> float:
        return fn(x, y).item()

    run.compiled = fn  # type: ignore[attr-defined]
    return run


def w1(compiled: bool) -> Callable[[], float]:
    model = w1_mlp.make_model(ember)
    x, y = (ember.tensor(a) for a in w1_mlp.make_batch())
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    return _training(model, x, y, opt, ember.nn.CrossEntropyLoss(), compiled)


def w2(compiled: bool) -> Callable[[], float]:
    model = w2_cnn.make_model(ember)
    x, y = (ember.tensor(a) for a in w2_cnn.make_batch())
    opt = ember.optim.Adam(model.parameters(), lr=1e-3)
    return _training(model, x, y, opt, ember.nn.CrossEntropyLoss(), compiled)


def w3(compiled: bool) -> Callable[[], float]:
    model = w3_gpt.make_gpt(ember)
    x, y = (ember.tensor(a) for a in w3_gpt.make_batch())
    opt = ember.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    return _training(model, x, y, opt, ember.nn.functional.cross_entropy, compiled)


def _inference(model, x, compiled: bool) -> Callable[[], object]:
    fn = ember_compile(model) if compiled else model

    def call():
        with ember.no_grad():
            return fn(x).numpy()

    return call


def w4_mlp(compiled: bool) -> Callable[[], object]:
    model = w1_mlp.make_model(ember).eval()
    return _inference(model, ember.tensor(w1_mlp.make_batch(1)[0]), compiled)


def w4_gpt(compiled: bool) -> Callable[[], object]:
    model = w3_gpt.make_gpt(ember).eval()
    return _inference(model, ember.tensor(w3_gpt.make_batch(1)[0]), compiled)


ENTRIES = [
    ("W1", "train", w1),
    ("W2", "train", w2),
    ("W3", "train", w3),
    ("W4-MLP", "infer", w4_mlp),
    ("W4-GPT", "infer", w4_gpt),
]


def run(only: set[str] | None, timed: int) -> list[dict]:
    records = []
    for workload, kind, make in ENTRIES:
        if only and workload.split("-")[0] not in only:
            continue
        for impl, compiled in (("eager", False), ("compiled", True)):
            rec = {"workload": workload, "impl": impl}
            try:
                fn = make(compiled)
                if kind == "train":
                    rec.update(common.time_training(fn, timed))
                else:
                    rec.update(common.time_inference(fn, max(timed * 6, 60)))
            except Exception as e:  # report and go on
                rec["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc(limit=3)
            records.append(rec)
            print(_line(rec), flush=True)
    return records


def _line(r: dict) -> str:
    if "error" in r:
        return f"{r['workload']:7s} {r['impl']:8s} ERROR {r['error'][:90]}"
    if "median_ms" in r:
        fig = f"{r['median_ms']:9.2f} ms"
        extra = f"loss {r['loss_first']:.6f}->{r['loss_20']:.4f}"
    else:
        fig = f"{r['median_us']:9.1f} us"
        extra = ""
    return (
        f"{r['workload']:7s} {r['impl']:8s} {fig}  first {r['first_call_s']:.3f}s  "
        f"busy {r['machine_busy']:.2f} {extra}"
    )


def summary(records: list[dict]) -> None:
    by = {(r["workload"], r["impl"]): r for r in records if "error" not in r}
    print("\nspeed-up of compiled over eager (higher is better):")
    for w in dict.fromkeys(r["workload"] for r in records):
        e, c = by.get((w, "eager")), by.get((w, "compiled"))
        if e and c:
            key = "median_ms" if "median_ms" in e else "median_us"
            print(f"  {w:7s} {e[key] / c[key]:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(description="ember compiled vs eager")
    p.add_argument("--only", nargs="*", help="workloads to run, e.g. W1 W4")
    p.add_argument("--timed", type=int, default=50, help="timed training steps")
    p.add_argument("--json", help="write raw records to this file")
    a = p.parse_args()
    records = run(set(a.only) if a.only else None, a.timed)
    summary(records)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()

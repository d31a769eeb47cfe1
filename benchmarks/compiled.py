"""Compiled beside eager: the W1-W4 workloads of ../shared/bench/WORKLOADS.md run as the eager
ember step and as the same step under ``ember.compile`` (a thin front end of ``run.py``, which
times both among the other implementations; see ``benchmarks/workloads/common.py`` for the
compiled step: it returns the loss tensor and ``.item()`` is read outside).

    python benchmarks/compiled.py                # W1-W4
    python benchmarks/compiled.py --only W1 W4   # a subset
    python benchmarks/compiled.py --json out.json

Goals (issue 4): compiled training >= 1.3x faster than eager on W3 and never slower on W1/W2;
compiled batch-1 inference (W4) >= 2x faster than eager. Timings are noisy on a shared
machine: run twice, compare medians.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import run as bench  # noqa: E402
from benchmarks.workloads import common  # noqa: E402


def speedups(records: list[dict]) -> dict[str, float]:
    """Eager time / compiled time per workload (higher is better).

    Example:
        >>> speedups([{"workload": "W1", "impl": "ember", "median_ms": 3.0},
        ...           {"workload": "W1", "impl": "ember-compiled", "median_ms": 2.0}])
        {'W1': 1.5}
    """
    by = {(r["workload"], r["impl"]): r for r in records if "error" not in r}
    out = {}
    for w in dict.fromkeys(r["workload"] for r in records):
        e, c = by.get((w, "ember")), by.get((w, "ember-compiled"))
        if e and c:
            key = "median_ms" if "median_ms" in e else "median_us"
            out[w] = e[key] / c[key]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description="ember compiled vs eager")
    p.add_argument("--only", nargs="*", help="workloads to run, e.g. W1 W4")
    p.add_argument("--timed", type=int, default=50, help="timed training steps")
    p.add_argument("--json", help="write raw records to this file")
    a = p.parse_args()
    pairs = bench.selected(set(a.only) if a.only else None, {"ember", "ember-compiled"})
    records = bench.run(pairs, a.timed)
    print("\nspeed-up of compiled over eager (higher is better):")
    for w, s in speedups(records).items():
        print(f"  {w:7s} {s:.2f}x")
    common.save_json(a.json, records)


if __name__ == "__main__":
    main()

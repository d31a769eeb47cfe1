"""Report how many ONNX node conformance cases pass (printed at the end of the run)."""

from __future__ import annotations

from typing import Any

_CONFORMANCE = "OnnxBackendNodeModelTest"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    stats = terminalreporter.stats
    passed = [
        r for r in stats.get("passed", []) if _CONFORMANCE in r.nodeid and r.nodeid.endswith("_cpu")
    ]
    failed = [r for r in stats.get("failed", []) if _CONFORMANCE in r.nodeid]
    skipped = [
        r for r in stats.get("skipped", []) if _CONFORMANCE in r.nodeid and "_cpu" in r.nodeid
    ]
    total = len(passed) + len(failed) + len(skipped)
    if total:
        terminalreporter.write_line(
            f"ONNX node conformance: {len(passed)} of {total} CPU node cases pass "
            f"({100.0 * len(passed) / total:.1f}%), {len(failed)} fail, {len(skipped)} excluded"
        )

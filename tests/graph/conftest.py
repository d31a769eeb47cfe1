"""Graph tests validate every graph (after tracing and after every pass) and restore the
global switches afterwards. Tests run on the traced graphs as they are (``config.passes =
[]``) unless they ask for the ``pipeline`` fixture, which runs them both ways."""

from __future__ import annotations

import pytest

from ember import config
from ember.graph import steps

# modules that test the per-node path of compiled graphs (C regions, buffers, the passes'
# generated code): their inference graphs would otherwise run as one C call
# (ember/graph/steps.py, tested in test_steps.py) and never reach the code under test
PER_NODE = {
    "test_call_path",
    "test_codegen",
    "test_executor_memory",
    "test_passes",
    "test_passes_chain",
    "test_passes_plan",
    "test_profile",
}


@pytest.fixture(autouse=True)
def _graph_config():
    saved = (config.run_eagerly, config.validate_graphs, config.passes, config.retrace_warning)
    config.run_eagerly, config.validate_graphs, config.passes = False, True, []
    yield
    config.run_eagerly, config.validate_graphs, config.passes, config.retrace_warning = saved


@pytest.fixture(params=["raw", "passes"])
def pipeline(request):
    """Run a test on the traced graph as is and through the default optimization passes."""
    config.passes = [] if request.param == "raw" else None
    return request.param


@pytest.fixture(autouse=True)
def _per_node_path(request, monkeypatch):
    if request.module.__name__.rsplit(".", 1)[-1] in PER_NODE:
        monkeypatch.setattr(steps, "ENABLED", False)

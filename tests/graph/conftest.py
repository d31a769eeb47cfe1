"""Graph tests validate every graph (after tracing and after every pass) and restore the
global switches afterwards. Tests run on the traced graphs as they are (``config.passes =
[]``) unless they ask for the ``pipeline`` fixture, which runs them both ways."""

from __future__ import annotations

import pytest

from ember import config


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

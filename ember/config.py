"""Global switches of ember (read on every call, so they can be flipped at any time).

* ``run_eagerly``: make every ``ember.compile``'d function run its Python body eagerly, so a
  debugger stops anywhere inside it (the environment variable ``EMBER_EAGER=1`` does the
  same).
* ``retrace_warning``: after this many traces of one compiled function, warn once, naming
  the argument (or guard) that keeps changing.
* ``validate_graphs``: check the IR (``Graph.validate``) after tracing and after every pass
  (the test suite turns it on; off by default for speed).
* ``passes``: the optimization passes run on each traced graph, as a list of functions
  ``pass_(graph) -> (graph, changed)``; None means ``ember.graph.passes``'s default pipeline
  (when that module provides one), ``[]`` turns optimization off.

Example:
    >>> from ember import config
    >>> config.run_eagerly
    False
    >>> config.run_eagerly = True; config.run_eagerly = False
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["run_eagerly", "retrace_warning", "validate_graphs", "passes", "eager_forced"]

run_eagerly: bool = False
retrace_warning: int = 8
validate_graphs: bool = False
passes: list[Any] | None = None


def eager_forced() -> bool:
    """True when compiled functions must run eagerly (``run_eagerly`` or ``EMBER_EAGER``).

    Example:
        >>> eager_forced() in (True, False)
        True
    """
    if run_eagerly:
        return True
    if _ENV_DATA is not None:  # one dict lookup, where os.environ.get costs ~2 us a call
        if _EAGER_KEY not in _ENV_DATA:
            return False
    env = os.environ.get("EMBER_EAGER")
    return bool(env) and env not in ("0", "false", "False")


# os.environ keeps its (encoded) variables in ``_data``, updated by every assignment and
# deletion through os.environ (what os.environ.get reads too); where that is not so, the
# plain lookup runs
_ENV_DATA: Any = getattr(os.environ, "_data", None)
try:
    _EAGER_KEY: Any = os.environ.encodekey("EMBER_EAGER")  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover - another os.environ
    _ENV_DATA = None

"""Suite-wide setup.

Tests create tensors on the CPU unless they ask for a device, as in PyTorch, so the suite
means the same on a machine with a GPU (where ember's own default is the GPU). Tests of the
GPU ask for ``"cuda"``; ``EMBER_DEVICE`` set by the caller is respected.
"""

from __future__ import annotations

import os

import pytest

import ember


@pytest.fixture(autouse=True)
def _cpu_default_device():
    if not os.environ.get("EMBER_DEVICE"):
        ember.set_default_device("cpu")
    yield

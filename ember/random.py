"""The one random-number generator behind every random op (factories, dropout, init).

``ember.manual_seed(s)`` makes a run reproducible; ``get_rng_state``/``set_rng_state``
save and restore it (checkpoints use them).

Example:
    >>> import ember
    >>> _ = ember.manual_seed(0); a = ember.rand(2)
    >>> _ = ember.manual_seed(0); b = ember.rand(2)
    >>> bool((a == b).all())
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .device import CPU, Device

__all__ = [
    "Generator",
    "manual_seed",
    "seed",
    "initial_seed",
    "get_rng_state",
    "set_rng_state",
    "default_generator",
]


class Generator:
    """A seedable source of random arrays for a device (PCG64 on the host; the GPU
    generator is seeded from the same seed).

    Example:
        >>> g = ember.Generator().manual_seed(3)
        >>> g.numpy().integers(0, 10) == ember.Generator().manual_seed(3).numpy().integers(0, 10)
        True
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else seed
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        self._gpu: Any = None

    def manual_seed(self, seed: int) -> Generator:
        self._seed = int(seed)
        self._np = np.random.Generator(np.random.PCG64(self._seed))
        self._gpu = None
        return self

    def initial_seed(self) -> int:
        return self._seed

    def numpy(self) -> np.random.Generator:
        """The host generator (``numpy.random.Generator``)."""
        return self._np

    def for_device(self, device: Device) -> Any:
        """The generator to draw arrays on ``device`` (numpy's or cupy's)."""
        if device is CPU:
            return self._np
        if self._gpu is None:
            self._gpu = device.xp.random.Generator(device.xp.random.XORWOW(self._seed))
        return self._gpu

    def get_state(self) -> dict:
        """The generator's state as plain JSON-able data."""
        state = self._np.bit_generator.state
        return {
            "seed": self._seed,
            "bit_generator": state["bit_generator"],
            "state": {k: int(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }

    def set_state(self, state: dict) -> None:
        self._seed = int(state["seed"])
        self._np = np.random.Generator(np.random.PCG64())
        self._np.bit_generator.state = {
            "bit_generator": state["bit_generator"],
            "state": dict(state["state"]),
            "has_uint32": state["has_uint32"],
            "uinteger": state["uinteger"],
        }
        self._gpu = None


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed ember's global generator; returns it.

    Example:
        >>> isinstance(ember.manual_seed(42), ember.Generator)
        True
    """
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the global generator from fresh entropy and return that seed."""
    s = int(np.random.SeedSequence().entropy % (2**63))
    default_generator.manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed the global generator was last seeded with."""
    return default_generator.initial_seed()


def get_rng_state() -> dict:
    """The global generator's state (JSON-able), for checkpoints.

    Example:
        >>> s = ember.get_rng_state(); a = ember.rand(1); ember.set_rng_state(s)
        >>> bool((ember.rand(1) == a).all())
        True
    """
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    """Restore a state from :func:`get_rng_state`."""
    default_generator.set_state(state)

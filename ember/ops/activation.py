"""Activation functions as ops: relu leaky_relu elu gelu silu softplus sigmoid tanh ..."""

from __future__ import annotations

__all__: list[str] = []

METHODS: dict = {}

"""Unary math: abs sign sqrt rsqrt reciprocal sin cos tan floor ceil round clamp erf ..."""

from __future__ import annotations

__all__: list[str] = []

METHODS: dict = {}

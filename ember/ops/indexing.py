"""Indexing: getitem/setitem (ints, slices, None, Ellipsis, masks, advanced), gather, scatter ..."""

from __future__ import annotations

__all__: list[str] = []

METHODS: dict = {}

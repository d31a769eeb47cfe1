"""(nn op family file: see docs/developing.md)"""

from __future__ import annotations

__all__: list[str] = []

"""Parsing human durations such as `500ms`, `10s`, `1h30m` (the `?delay=` parameter)."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: str) -> int:
    """Milliseconds in `text`; a bare number means milliseconds. Raises ValueError."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}: use forms like 500ms, 10s, 5m, 1h30m")
    return int(sum(float(n) * _UNIT_MS[u] for n, u in parts))

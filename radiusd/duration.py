"""Durations as admins write them: ``90s``, ``30m``, ``72h``, ``7d`` (and ``0``).

Must not import: anything outside the standard library.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d{1,9}(?:\.\d{1,6})?)\s*(ms|[smhdw]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``, ``"30m"``, ``"72h"``, ``"7d"``, ``"2w"``, ``"0.5s"``, ``"200ms"`` or a
    bare number of seconds.

    Raises:
        ValueError: the text is not a duration; the message says what is expected.
    """
    match = _PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 30m, 72h, 7d)")
    number, unit = match.groups()
    return timedelta(seconds=float(number) * _UNITS[unit or "s"])


def format_duration(value: timedelta) -> str:
    """An exact spelling of ``value`` that :func:`parse_duration` reads back."""
    total = value.total_seconds()
    if total != int(total):
        return f"{total:g}s"
    seconds = int(total)
    if seconds == 0:
        return "0"
    # Days from a week up; hours below that (SPEC's default lifetime reads "72h").
    if seconds % 86400 == 0 and seconds >= 7 * 86400:
        return f"{seconds // 86400}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

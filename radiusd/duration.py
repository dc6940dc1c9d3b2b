"""Durations as admins write them: ``90s``, ``30m``, ``72h``, ``7d`` (and ``0``).

Must not import: anything outside the standard library.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``, ``"30m"``, ``"72h"``, ``"7d"``, ``"2w"`` or a bare number of seconds.

    Raises:
        ValueError: the text is not a duration; the message says what is expected.
    """
    match = _PATTERN.match(str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 30m, 72h, 7d)")
    number, unit = match.groups()
    return timedelta(seconds=int(number) * _UNITS[unit or "s"])


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of ``value`` in the units of :func:`parse_duration`."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

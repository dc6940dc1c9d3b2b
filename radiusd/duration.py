"""Durations as admins write them: ``90s``, ``30m``, ``72h``, ``7d`` (and ``0``).

Must not import: anything outside the standard library.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# A hundred years: longer than anything a setting or an option means, and short enough that
# an instant that far back or ahead is still a date.
MAX_DURATION = timedelta(days=36500)
_PATTERN = re.compile(r"^\s*(\d{1,9}(?:\.\d{1,6})?)\s*(ms|[smhdw]?)\s*$")


def parse_duration(text: str) -> timedelta:
    """Parse ``"90s"``, ``"30m"``, ``"72h"``, ``"7d"``, ``"2w"``, ``"0.5s"``, ``"200ms"`` or a
    bare number of seconds.

    Raises:
        ValueError: the text is not a duration, is negative, or is longer than
            ``MAX_DURATION``; the message says which.
    """
    match = _PATTERN.match(str(text))
    if match is None:
        stripped = str(text).strip()
        if stripped.startswith("-") and _PATTERN.match(stripped[1:]):
            raise ValueError(f"{text!r}: a duration must not be negative")
        raise ValueError(f"{text!r} is not a duration (use e.g. 90s, 30m, 72h, 7d)")
    number, unit = match.groups()
    seconds = float(number) * _UNITS[unit or "s"]
    if seconds > MAX_DURATION.total_seconds():
        # Past this, "now - duration" leaves the calendar (and timedelta overflows).
        raise ValueError(f"{text!r} is too long: a duration is at most "
                         f"{format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


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

"""How many dropped datagrams are logged: the first few of each source and reason in
full, the rest as one count a minute (issue 21, 9).

A flood from an address without a shared secret used to write one line per datagram
(51.75 MB in 30 s). ``DropLimiter.note`` says whether a drop is logged in full: at most
``full`` per (source, reason) and ``total_full`` in all per window; ``flush`` returns the
counts of the others, one ``DropSummary`` per (source, reason), and starts a new window.
Memory is bounded: at most ``max_tracked`` (source, reason) pairs are kept; drops from
further sources are counted together, per reason. The caller (``protocol.py``) owns the
clock and the logging: ``now`` is passed in, nothing here logs.

Must not import: twisted, radiusd.protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

# Per window: drops of one (source, reason) logged in full, and of all together.
FULL_PER_SOURCE = 5
FULL_IN_ALL = 100
# The window: the counts of the drops not logged in full are logged once per window.
WINDOW = 60.0
# (source, reason) pairs tracked at once; drops from further sources are counted together.
MAX_TRACKED = 256


@dataclass(frozen=True, slots=True)
class DropSummary:
    """``count`` drops not logged in full, from ``address`` (None: the sources beyond the
    ``MAX_TRACKED`` tracked) for ``reason``, in the ``seconds`` the window lasted."""

    address: str | None
    reason: str
    count: int
    seconds: float


class DropLimiter:
    """Counts drops per (source, reason) in windows of ``window`` seconds."""

    def __init__(self, *, full: int = FULL_PER_SOURCE, total_full: int = FULL_IN_ALL,
                 window: float = WINDOW, max_tracked: int = MAX_TRACKED):
        self.full = full
        self.total_full = total_full
        self.window = window
        self.max_tracked = max_tracked
        self._started: float | None = None
        self._logged: dict[tuple[str, str], int] = {}      # logged in full, this window
        self._counted: dict[tuple[str, str], int] = {}     # not logged in full
        self._others: dict[str, int] = {}                  # reason -> drops, untracked sources
        self._logged_in_all = 0

    @property
    def tracked(self) -> int:
        """How many (source, reason) pairs are held (never more than ``max_tracked``)."""
        return len(self._logged.keys() | self._counted.keys())

    @property
    def pending(self) -> bool:
        """Drops not logged in full wait for ``flush``."""
        return bool(self._counted or self._others)

    def flush_due(self) -> float | None:
        """When the pending counts are to be flushed (the window's end), or None."""
        return None if self._started is None else self._started + self.window

    def note(self, address: str, reason: str, now: float) -> bool:
        """A drop from ``address`` for ``reason`` at ``now``: True to log it in full,
        False when it is only counted (for ``flush``)."""
        if self._started is None or (now >= self._started + self.window and not self.pending):
            self._start(now)
        key = (address, reason)
        logged = self._logged.get(key)
        if logged is None and key not in self._counted and self.tracked >= self.max_tracked:
            self._others[reason] = self._others.get(reason, 0) + 1
            return False
        if (logged or 0) < self.full and self._logged_in_all < self.total_full:
            self._logged[key] = (logged or 0) + 1
            self._logged_in_all += 1
            return True
        if logged is None:
            self._logged[key] = 0
        self._counted[key] = self._counted.get(key, 0) + 1
        return False

    def flush(self, now: float) -> list[DropSummary]:
        """The counts of the drops not logged in full since the window began, and a new
        window (with nothing tracked)."""
        seconds = 0.0 if self._started is None else now - self._started
        summaries = [DropSummary(address, reason, count, seconds)
                     for (address, reason), count in self._counted.items()]
        summaries += [DropSummary(None, reason, count, seconds)
                      for reason, count in self._others.items()]
        self._start(None)
        return summaries

    def _start(self, now: float | None) -> None:
        self._started = now
        self._logged.clear()
        self._counted.clear()
        self._others.clear()
        self._logged_in_all = 0

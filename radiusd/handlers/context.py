"""What handlers are given (``HandlerContext``) and what they return (``Response``).

Must not import: twisted (``run_db`` arrives as a callable returning an awaitable).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable

from radiusd.crypto import Keys
from radiusd.model import PacketCode
from radiusd.settings import Settings


@dataclass(frozen=True, slots=True)
class Response:
    """The reply a handler decided: the codec encodes and signs it; ``delay`` holds it back."""

    code: PacketCode
    reply_messages: tuple[str, ...] = ()
    delay: float = 0.0


class SettingsCache:
    """The self-service policy, re-read from the database at most every ``ttl``.

    Every one-time effect is a compare-and-set, so a policy a few seconds old never lets a
    code be used twice; it only delays a policy change (SPEC: all servers within 5 s).
    Called from the DB threads.
    """

    def __init__(self, load: Callable[[], Settings], ttl: timedelta = timedelta(seconds=5)):
        self._load = load
        self._ttl = ttl
        self._lock = threading.Lock()
        self._value: Settings | None = None
        self._loaded_at: datetime | None = None

    def get(self, now: datetime) -> Settings:
        with self._lock:
            if (self._value is None or self._loaded_at is None
                    or not self._loaded_at <= now < self._loaded_at + self._ttl):
                self._value = self._load()
                self._loaded_at = now
            return self._value


@dataclass
class HandlerContext:
    """Dependencies of the handlers, built once by ``app.py``.

    Attributes:
        store: the Store (only ever called inside ``run_db``).
        keys: the server keys.
        run_db: ``run_db(fn, *args)`` runs ``fn`` in the DB thread pool; awaitable; raises
            StoreUnavailable when the database is down or too slow.
        now: the current time as an aware UTC datetime (read once per request).
        settings: the policy cache.
        reject_delay: seconds an Access-Reject is held back (FreeRADIUS ``reject_delay``).
        node: this server's name for audit rows.
        perimeter: the ``[perimeter]`` config (emergency codes).
        health: whether the database is reachable (Status-Server goes quiet when not).
        group_commit: ``group_commit(pending) -> awaitable Verdict`` batching requests
            into one transaction (app.py); ``None``: each request is its own batch.
        debug: ``serve -X``: log every decision.
    """

    store: Any
    keys: Keys
    run_db: Callable[..., Awaitable[Any]]
    now: Callable[[], datetime]
    settings: SettingsCache
    reject_delay: float = 1.0
    node: str = "radiusd"
    perimeter: Any = None
    health: "StoreHealth" = field(default_factory=lambda: StoreHealth())
    group_commit: Callable[[Any], Awaitable[Any]] | None = None
    origins: dict = field(default_factory=dict)  # (client, address) -> decide.Origin
    debug: bool = False


class StoreHealth:
    """Whether the database answered the last call; set by the DB runner (app.py)."""

    def __init__(self) -> None:
        self.down_since: float | None = None
        self.reason: str = ""

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def mark_down(self, now: float, reason: str) -> bool:
        """Returns True if this starts an outage."""
        self.reason = reason
        if self.down_since is None:
            self.down_since = now
            return True
        return False

    def mark_up(self) -> bool:
        """Returns True if this ends an outage."""
        was_down = self.down_since is not None
        self.down_since = None
        return was_down

"""Duplicate detection for Access-Request (RFC 5080 §2.2.2): the in-memory reply cache.

Owns: whether a request is new (PROCESS), a retransmission of one already answered (RESEND
the exact reply bytes), or a retransmission of one still being decided (DROP); the
lifetime and size bound of that memory. The design follows pyrad2's ``dedup`` (an
in-flight set beside a TTL reply cache); the code is our own.

The key is what RFC 2865 §3 and RFC 5080 §2.2.2 name: client source address and port,
Code and Identifier; the Request Authenticator tells a retransmission (same) from a new
request that reuses the Identifier (different: the old entry is purged).

Only packets that passed every check (client, structure, Message-Authenticator) may reach
this cache: RFC 5080 §2.2.2 forbids invalid packets to affect it. Time is the ``now``
argument (seconds, e.g. ``reactor.seconds()``); nothing here reads a clock.

This cache is per process. A retransmission that reaches another worker or server is
recognised by the receipt stored with the database commit (radius-protocol notes §1.7).

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum


class DedupAction(Enum):
    """What the shell does with a request after :meth:`ReplyCache.check`."""

    PROCESS = "process"  # new request: decide it, then complete() or abandon()
    RESEND = "resend"    # answered before: send the cached reply bytes again, decide nothing
    DROP = "drop"        # still being decided: silently discard (RFC 5080 §2.2.2)


# A key is ``(address, port, code, identifier)`` and an entry ``(authenticator, at, reply)``:
# plain tuples of str, int, float and bytes, which the cyclic garbage collector stops
# tracking after their first collection. The cache holds tens of thousands of them (30 s
# of requests); as tracked objects (dataclasses) every full collection walked them all:
# 21 ms for 65,536 entries against 7 ms as tuples, on the bench machine (docs/performance.md).
DedupKey = tuple[str, int, int, int]
_Entry = tuple[bytes, float, bytes | None]  # authenticator, at, reply (None: in flight)
_AUTHENTICATOR, _AT, _REPLY = 0, 1, 2


def dedup_key(address: str, port: int, code: int, identifier: int) -> DedupKey:
    """The key of a request: source address and port, Code and Identifier (RFC 5080
    §2.2.2), as plain ``str``/``int`` (a ``PacketCode`` becomes its number)."""
    return (address, int(port), int(code), int(identifier))


class ReplyCache:
    """Recently answered and in-flight requests, bounded in time and size.

    Two insertion-ordered maps keep every operation O(1) (amortised): ``_in_flight`` in
    order of start, ``_answered`` in order of completion. Because ``now`` only grows,
    the oldest entry of each is at its front, so the sweep run by every call pops
    expired entries from the fronts, and the size cap evicts from there too.
    """

    def __init__(self, ttl: float = 30.0, max_entries: int = 65536, *,
                 in_flight_timeout: float = 60.0):
        """Create an empty cache.

        Args:
            ttl: seconds a reply is kept for retransmissions. RFC 5080 §2.2.2 suggests
                5–30 s; the NAS's whole retry cycle should fit in it.
            max_entries: the most requests remembered (in flight and answered together).
            in_flight_timeout: seconds after which a request still marked in flight is
                taken as lost (its retransmission is processed again).

        Raises:
            ValueError: ``ttl`` or ``in_flight_timeout`` is not positive, or
                ``max_entries`` is less than 1.
        """
        if ttl <= 0 or in_flight_timeout <= 0:
            raise ValueError("ttl and in_flight_timeout must be positive")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.ttl = ttl
        self.max_entries = max_entries
        self.in_flight_timeout = in_flight_timeout
        self._in_flight: OrderedDict[DedupKey, _Entry] = OrderedDict()
        self._answered: OrderedDict[DedupKey, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._in_flight) + len(self._answered)

    def check(self, key: DedupKey, authenticator: bytes,
              now: float) -> tuple[DedupAction, bytes | None]:
        """Classify a valid request and, when it is new, mark it in flight.

        Args:
            key: source address and port, Code, Identifier.
            authenticator: the Request Authenticator (16 octets).
            now: the current time in seconds.

        Returns:
            ``(PROCESS, None)`` for a new request (now in flight), ``(RESEND, reply)``
            for a retransmission already answered, ``(DROP, None)`` for one still in
            flight, or when the cache is full of requests in flight (overload:
            RFC 5080 §2.2.3 lets a server drop; the NAS retries or fails over).
        """
        self._sweep(now)
        entry = self._answered.get(key)
        if entry is not None:
            if now - entry[_AT] < self.ttl:
                # The Request Authenticator is a nonce (RFC 2865 §3), not a MAC: == is fine.
                if entry[_AUTHENTICATOR] == authenticator:
                    # RFC 5080 §2.2.2: the original reply, byte for byte, not reprocessed.
                    return DedupAction.RESEND, entry[_REPLY]
            # Expired, or RFC 5080 §2.2.2: a different authenticator is a new request
            # and purges the cached reply.
            del self._answered[key]
        else:
            entry = self._in_flight.get(key)
            if entry is not None:
                if now - entry[_AT] < self.in_flight_timeout:
                    if entry[_AUTHENTICATOR] == authenticator:
                        # RFC 5080 §2.2.2: no reply yet, silently discard the duplicate.
                        return DedupAction.DROP, None
                # A new request with this Identifier (or a request lost long ago): the
                # old one's reply, when it comes, is not cached (complete() ignores it).
                del self._in_flight[key]
        if len(self) >= self.max_entries:
            if not self._answered:
                return DedupAction.DROP, None  # all in flight: overloaded, mark nothing
            self._answered.popitem(last=False)  # the oldest reply goes first
        self._in_flight[key] = (authenticator, now, None)
        return DedupAction.PROCESS, None

    def complete(self, key: DedupKey, authenticator: bytes, reply: bytes, now: float) -> None:
        """Cache the exact reply sent for a request; it lives ``ttl`` seconds from ``now``.

        Args:
            key: as given to :meth:`check`.
            authenticator: the Request Authenticator of the request answered.
            reply: the reply datagram, byte for byte as sent.
            now: the current time in seconds.

        A reply for a request whose entry has meanwhile been taken over by a new request
        (another authenticator) is ignored. When the entry was evicted, the reply is cached
        again: it is still the right answer to a retransmission.
        """
        self._sweep(now)
        entry = self._in_flight.get(key)
        if entry is not None:
            if entry[_AUTHENTICATOR] != authenticator:
                return
            del self._in_flight[key]
        elif key in self._answered:
            if self._answered[key][_AUTHENTICATOR] != authenticator:
                return
            del self._answered[key]
        elif len(self) >= self.max_entries:
            if not self._answered:
                return
            self._answered.popitem(last=False)
        self._answered[key] = (authenticator, now, bytes(reply))

    def abandon(self, key: DedupKey, authenticator: bytes) -> None:
        """Forget an in-flight request that gets no reply (e.g. the database is down).

        The NAS's retransmission is then processed again instead of being dropped.

        Args:
            key: as given to :meth:`check`.
            authenticator: the Request Authenticator of the request abandoned; an entry
                that belongs to another request is left alone.
        """
        entry = self._in_flight.get(key)
        if entry is not None and entry[_AUTHENTICATOR] == authenticator:
            del self._in_flight[key]

    def _sweep(self, now: float) -> None:
        # Amortised O(1): each entry is popped at most once. An entry not at the front
        # (a clock that stepped back) still expires lazily in check().
        answered = self._answered
        while answered:
            entry = next(iter(answered.values()))
            if now - entry[_AT] < self.ttl:
                break
            answered.popitem(last=False)
        in_flight = self._in_flight
        while in_flight:
            entry = next(iter(in_flight.values()))
            if now - entry[_AT] < self.in_flight_timeout:
                break
            in_flight.popitem(last=False)

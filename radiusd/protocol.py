"""The RADIUS UDP shell: Twisted's ``DatagramProtocol`` around the codec, the duplicate
cache and the handlers.

Per datagram (all on the reactor thread, microseconds): client lookup by source address
(RFC 2865 §2) → ``codec.decode`` (rad_packet_ok checks, Message-Authenticator policy) →
RFC 5080 duplicate cache (resend / drop / process; the in-flight mark is set before the
first thread hop) → the handler of the packet code → encode, sign, cache, send (an
Access-Reject after ``reject_delay`` plus a random 0–25 % of it, scheduled on the reactor,
never blocking it).

Packets that fail any check are dropped, and never touch the cache; the first few drops of
each source and reason a minute are logged in full, the rest as one count a minute
(``droplog.DropLimiter``, issue 21, 9).
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Mapping

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from radiusd import codec
from radiusd.clients import ClientTable
from radiusd.dedup import DedupAction, DedupKey, ReplyCache, dedup_key
from radiusd.droplog import DropLimiter
from radiusd.errors import (BadMessageAuthenticator, MalformedPacket,
                            MissingMessageAuthenticator, PacketDropped, StoreUnavailable,
                            UnexpectedPacketCode)
from radiusd.escaping import word
from radiusd.handlers.context import HandlerContext, Response
from radiusd.model import Client, PacketCode, RadiusRequest, RandomSource

# Issue 21 (10): an Access-Reject waits reject_delay plus up to this share of it, drawn anew
# for each reply, so what is left of a timing difference between reject paths drowns in the
# spread. Never less than reject_delay (the FreeRADIUS setting's meaning: at least this
# long); 0 s stays 0 s.
REJECT_JITTER = 0.25

# The reason a drop is counted under in the summaries (the full lines say more).
_DROP_REASONS = ((BadMessageAuthenticator, "bad Message-Authenticator"),
                 (MissingMessageAuthenticator, "missing Message-Authenticator"),
                 (UnexpectedPacketCode, "unexpected packet code"),
                 (MalformedPacket, "malformed packet"))


def _drop_reason(exc: PacketDropped) -> str:
    for kind, reason in _DROP_REASONS:
        if isinstance(exc, kind):
            return reason
    return "dropped"


class RadiusProtocol(DatagramProtocol):
    """One listening socket. ``handlers`` maps PacketCode to an async handler."""

    log = Logger(namespace="radiusd.protocol")

    def __init__(self, *, clients: ClientTable, handlers: Mapping[PacketCode, Callable[..., Any]],
                 ctx: HandlerContext, clock: IReactorTime, cache: ReplyCache | None = None,
                 debug: bool = False, drops: DropLimiter | None = None,
                 random: RandomSource = secrets.token_bytes):
        self.random = random  # the reject delay's jitter
        self.clients = clients
        self.handlers = handlers
        self.ctx = ctx
        self.clock = clock
        self.cache = cache if cache is not None else ReplyCache()
        self.debug = debug
        self.drops = drops if drops is not None else DropLimiter()
        self._drop_flush: Any = None    # the pending summary's DelayedCall

    def stopProtocol(self) -> None:  # noqa: N802 (Twisted)
        if self._drop_flush is not None and self._drop_flush.active():
            self._drop_flush.cancel()
        self._flush_drops()

    # --- drops ---------------------------------------------------------------------------

    def _dropped(self, address: str, kind: str, message: str, **fields: Any) -> None:
        """Log a drop in full, or count it (under ``kind``) for this minute's summary."""
        now = self.clock.seconds()
        if self.drops.note(address, kind, now):
            self.log.warn(message, address=address, **fields)
        elif self._drop_flush is None:
            due = self.drops.flush_due()
            self._drop_flush = self.clock.callLater(max(0.0, (due or now) - now),
                                                    self._flush_drops)

    def _flush_drops(self) -> None:
        self._drop_flush = None
        for summary in self.drops.flush(self.clock.seconds()):
            self.log.warn("dropped {count:,} more packets from {source} ({reason}) in the "
                          "last {seconds:.0f} s", count=summary.count, reason=summary.reason,
                          source=(summary.address if summary.address is not None else
                                  f"sources beyond the {self.drops.max_tracked} tracked"),
                          address=summary.address, seconds=summary.seconds)

    # --- receive -------------------------------------------------------------------------

    def datagramReceived(self, data: bytes, addr: tuple) -> None:  # noqa: N802 (Twisted)
        try:
            self._received(data, addr)
        except Exception:  # never raise into the reactor, whatever the bytes
            self.log.failure("unexpected error handling a datagram from {address}",
                             address=addr[0])

    def _received(self, data: bytes, addr: tuple) -> None:
        host, port = addr[0], addr[1]
        client = self.clients.lookup(host)
        if client is None:
            # RFC 2865 §2: no shared secret for this source, silently discard.
            self._dropped(host, "unknown client",
                          "dropped packet from unknown client {address}:{port}", port=port)
            return
        try:
            request = codec.decode(data, client)
        except PacketDropped as exc:
            self._dropped(host, _drop_reason(exc),
                          "dropped packet from {client} ({address}:{port}): {reason}",
                          client=client.name, port=port, reason=str(exc))
            return
        if self.debug:
            self.log.info("received {code} Id {identifier} from {address}:{port} "
                          "({client})\n{packet}", code=request.code.name,
                          identifier=request.identifier, address=host, port=port,
                          client=client.name, packet=codec.describe(request))
        handler = self.handlers.get(request.code)
        if handler is None:
            self._dropped(host, "no handler", "dropped {code} from {client}: no handler",
                          code=request.code.name, client=client.name)
            return
        key = None
        if request.code == PacketCode.ACCESS_REQUEST:
            # RFC 5080 §2.2.2. Status-Server is not de-duplicated: RFC 5997 §4.1 clients
            # change the Identifier for every Status-Server.
            key = dedup_key(host, port, request.code, request.identifier)
            action, cached = self.cache.check(key, request.authenticator, self.clock.seconds())
            if action is DedupAction.RESEND:
                if self.debug:
                    self.log.info("retransmission from {address}:{port} Id {identifier}: "
                                  "resending the cached reply", address=host, port=port,
                                  identifier=request.identifier)
                self._write(cached, addr)
                return
            if action is DedupAction.DROP:
                if self.debug:
                    self.log.info("retransmission from {address}:{port} Id {identifier} "
                                  "still in progress: dropped", address=host, port=port,
                                  identifier=request.identifier)
                return
        d = maybeDeferred(handler, request, client, (host, port), self.ctx)
        d.addCallbacks(self._respond, self._failed,
                       callbackArgs=(request, client, addr, key),
                       errbackArgs=(request, client, key))

    # --- answer --------------------------------------------------------------------------

    def _respond(self, response: Response | None, request: RadiusRequest, client: Client,
                 addr: tuple, key: DedupKey | None) -> None:
        if response is None:
            if key is not None:
                self.cache.abandon(key, request.authenticator)
            return
        reply = codec.encode_reply(request, client.secret, response.code,
                                   response.reply_messages)
        if response.delay > 0:
            # Duplicates stay "in flight" (dropped) until the delayed reply is sent.
            self.clock.callLater(self.jittered(response.delay), self._send, reply, addr, key,
                                 request.authenticator)
        else:
            self._send(reply, addr, key, request.authenticator)

    def jittered(self, delay: float) -> float:
        """``delay`` stretched by a uniform random share in [0, REJECT_JITTER) of it."""
        share = int.from_bytes(self.random(4), "big") / 2**32
        return delay * (1 + REJECT_JITTER * share)

    def _send(self, reply: bytes, addr: tuple, key: DedupKey | None,
              authenticator: bytes) -> None:
        if key is not None:
            self.cache.complete(key, authenticator, reply, self.clock.seconds())
        if self.debug:
            self.log.info("sending to {address}:{port}\n{packet}", address=addr[0],
                          port=addr[1], packet=codec.describe_reply(reply))
        self._write(reply, addr)

    def _write(self, data: bytes, addr: tuple) -> None:
        if self.transport is None:
            return
        try:
            self.transport.write(data, addr)
        except OSError as exc:
            self.log.warn("cannot send to {address}:{port}: {error}", address=addr[0],
                          port=addr[1], error=exc.strerror)

    def _failed(self, failure, request: RadiusRequest, client: Client,
                key: DedupKey | None) -> None:
        if key is not None:
            # No reply: the NAS's retransmission must be processed again, not dropped.
            self.cache.abandon(key, request.authenticator)
        if failure.check(StoreUnavailable):
            return  # logged once a minute by the database runner (app.py); no reply
        self.log.failure("unexpected error answering {user} from {client}", failure,
                         user=word(request.user_name or ""), client=client.name)

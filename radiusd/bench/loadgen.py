"""The closed-loop UDP load generator: many requests in flight, every reply verified.

Design: one process, a few connected non-blocking UDP sockets (one source port each, as
from several NASes) and one ``epoll``. Every request packet is
built before the timed phase (``build``); during the phase a reply costs one ``recv``, one
MD5 and one HMAC-MD5 (its Response Authenticator and Message-Authenticator) and triggers the
next ``send``: about 10 µs of the generator's CPU per request here, i.e. a ceiling near
100,000 requests/s on one core. (An asyncio ``DatagramProtocol`` doing the same work
measured the same 10 µs; the plain loop is kept for its explicit control of Identifiers,
timeouts and pacing.)

Identifiers: each socket has 256, handed out first-in first-out (the one answered longest
ago is reused next). Packet *k* of a socket is prebuilt with Identifier *k* mod 256, which
is exactly what FIFO hands out while replies come back in order; when they do not, the
packet is re-signed under the Identifier it gets (``with_identifier``: one HMAC). A request
not answered within ``timeout`` is lost; its Identifier is retired for the rest of the
phase, so a late reply can never be mistaken for the answer to a newer request.

The generator's own cost is measured (its CPU time over the phase): ``cpu`` near 1.0 means
it, not the server, was the limit.
"""

from __future__ import annotations

import os
import resource
import select
import socket
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from radiusd.bench import packets
from radiusd.bench.packets import check_reply, with_identifier

IDENTIFIERS = 256


@dataclass(frozen=True, slots=True)
class Target:
    """A RADIUS server to load: address, shared secret, whether replies must carry MA."""

    name: str
    host: str
    port: int
    secret: bytes
    require_ma: bool


@dataclass(frozen=True, slots=True)
class Pap:
    """An Access-Request with this User-Name and (cleartext) User-Password."""

    user: str
    password: bytes


STATUS = None  # a Status-Server request (a spec without user)
Spec = Pap | None


@dataclass
class PhaseResult:
    """What one timed phase measured (times in seconds, latencies in milliseconds)."""

    name: str
    target: str
    sent: int = 0
    answered: int = 0
    ok: int = 0             # verified and of the expected code
    wrong: int = 0          # verified but not the expected code (e.g. Reject for an accept)
    bad: int = 0            # failed verification (length, Response Auth., MA)
    lost: int = 0           # no reply within the timeout
    late: int = 0           # replies after their request was counted lost (not verified)
    send_errors: int = 0
    resigned: int = 0       # packets re-signed under another Identifier (out-of-order)
    elapsed: float = 0.0
    rate: float = 0.0       # answered requests per second
    p50: float = 0.0
    p90: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    cpu: float = 0.0        # the generator's CPU time / elapsed (1.0 = one core busy)
    exhausted: bool = False  # every prebuilt packet was sent before the duration ended
    codes: dict[str, int] = field(default_factory=dict)
    bad_kinds: dict[str, int] = field(default_factory=dict)
    sent_specs: list[int] = field(default_factory=list, repr=False)  # spec indices sent

    def as_json(self) -> dict[str, object]:
        values = {key: getattr(self, key) for key in self.__dataclass_fields__
                  if key != "sent_specs"}
        for key in ("elapsed", "rate", "p50", "p90", "p99", "max", "cpu"):
            values[key] = round(float(values[key]), 4)
        return values


class _Socket:
    __slots__ = ("sock", "send", "recv", "packets", "specs", "next", "free", "sent_at",
                 "authenticators", "window", "in_flight")

    def __init__(self, target: Target, window: int):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect((target.host, target.port))  # send() skips the address checks
        self.sock.setblocking(False)
        self.send = self.sock.send
        self.recv = self.sock.recv
        self.packets: list[bytes] = []
        self.specs: list[int] = []
        self.next = 0
        self.free: deque[int] = deque(range(IDENTIFIERS))
        self.sent_at = [0] * IDENTIFIERS  # perf_counter_ns of the request in flight, 0: none
        self.authenticators = [b""] * IDENTIFIERS
        self.window = window
        self.in_flight = 0


def build(target: Target, specs: Sequence[Spec], sockets: int) -> list[list[tuple[int, bytes]]]:
    """Build every packet of a phase, dealt round-robin to ``sockets`` sockets.

    Returns:
        Per socket, ``(spec index, packet)`` in sending order; packet *k* of a socket has
        Identifier *k* mod 256 and a fresh random Request Authenticator.
    """
    authenticators = os.urandom(16 * len(specs))
    dealt: list[list[tuple[int, bytes]]] = [[] for _ in range(sockets)]
    secret = target.secret
    for index, spec in enumerate(specs):
        queue = dealt[index % sockets]
        identifier = len(queue) % IDENTIFIERS
        authenticator = authenticators[16 * index:16 * index + 16]
        if spec is None:
            packet = packets.status_server(secret, identifier, authenticator)
        else:
            packet = packets.access_request(secret, identifier, authenticator, spec.user,
                                            spec.password)
        queue.append((index, packet))
    return dealt


def _percentile(ordered: list[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index] / 1e6


def run(name: str, target: Target, dealt: list[list[tuple[int, bytes]]], expect: int, *,
        duration: float, in_flight: int, timeout: float = 2.0,
        rate: float | None = None) -> PhaseResult:
    """Send the prebuilt packets for ``duration`` seconds, keeping ``in_flight`` outstanding.

    Args:
        name: the phase, for the result. target: where to send.
        dealt: ``build`` output (one list per socket).
        expect: the reply code every request should get (2 Accept, 3 Reject).
        duration: seconds of sending; the phase ends earlier when the packets run out.
        in_flight: requests outstanding at once, spread over the sockets.
        timeout: seconds after which an unanswered request counts as lost.
        rate: if given, at most this many requests per second (open-loop pacing, still
            capped at ``in_flight``); otherwise closed loop: a reply releases the next.
    Returns:
        The measurements.
    """
    sockets = [_Socket(target, in_flight // len(dealt) + (i < in_flight % len(dealt)))
               for i in range(len(dealt))]
    for state, queue in zip(sockets, dealt, strict=True):
        state.specs = [index for index, _ in queue]
        state.packets = [packet for _, packet in queue]
    poller = select.epoll()
    by_fd = {}
    for state in sockets:
        poller.register(state.sock.fileno(), select.EPOLLIN)
        by_fd[state.sock.fileno()] = state
    result = PhaseResult(name=name, target=target.name)
    latencies: list[int] = []
    codes: Counter[int] = Counter()
    bad_kinds: Counter[str] = Counter()
    secret, require_ma = target.secret, target.require_ma
    timeout_ns = int(timeout * 1e9)
    perf = time.perf_counter_ns
    counters = {"sent": 0, "send_errors": 0, "resigned": 0}

    def send_one(state: _Socket, now: int) -> bool:
        if state.next >= len(state.packets) or not state.free:
            return False
        identifier = state.free.popleft()
        packet = state.packets[state.next]
        state.next += 1
        if packet[1] != identifier:
            packet = with_identifier(packet, identifier, secret)
            counters["resigned"] += 1
        state.authenticators[identifier] = packet[4:20]
        state.sent_at[identifier] = now
        state.in_flight += 1
        counters["sent"] += 1
        try:
            state.send(packet)
        except OSError:  # ENOBUFS/EAGAIN: counted, and it will time out as lost
            counters["send_errors"] += 1
        return True

    def fill(now: int, allowed: int | None) -> None:
        for state in sockets:
            while state.in_flight < state.window:
                if allowed is not None and counters["sent"] >= allowed:
                    return
                if not send_one(state, now):
                    break

    usage_start = resource.getrusage(resource.RUSAGE_SELF)
    start = perf()
    stop_at = start + int(duration * 1e9)
    rate_per_ns = None if rate is None else rate / 1e9
    sending = True
    last_reply = start
    next_scan = start + 100_000_000
    fill(start, None if rate_per_ns is None else 1)
    poll_timeout = 0.001 if rate is not None else 0.01
    ok = wrong = bad = late = 0
    while True:
        for fd, _ in poller.poll(poll_timeout):
            state = by_fd[fd]
            recv, sent_at, authenticators = state.recv, state.sent_at, state.authenticators
            while True:
                try:
                    data = recv(4096)
                except BlockingIOError:
                    break
                except OSError:  # ECONNREFUSED from an earlier send: nobody listening
                    break
                now = perf()
                if len(data) < 20:
                    bad += 1
                    bad_kinds[packets.BAD_LENGTH] += 1
                    continue
                identifier = data[1]
                sent = sent_at[identifier]
                if not sent:
                    late += 1
                    continue
                verdict = check_reply(data, authenticators[identifier], secret, require_ma)
                sent_at[identifier] = 0
                state.free.append(identifier)
                state.in_flight -= 1
                latencies.append(now - sent)
                last_reply = now
                codes[data[0]] += 1
                if verdict != packets.OK:
                    bad += 1
                    bad_kinds[verdict] += 1
                elif data[0] == expect:
                    ok += 1
                else:
                    wrong += 1
                if sending and rate_per_ns is None:
                    send_one(state, now)
        now = perf()
        if sending and now >= stop_at:
            sending = False
        if sending:
            allowed = None if rate_per_ns is None else int((now - start) * rate_per_ns) + 1
            fill(now, allowed)
            if all(state.next >= len(state.packets) for state in sockets):
                sending = False
                result.exhausted = True
        if now >= next_scan:
            next_scan = now + 100_000_000
            for state in sockets:
                for identifier, sent in enumerate(state.sent_at):
                    if sent and now - sent > timeout_ns:
                        state.sent_at[identifier] = 0  # retired: not back in `free`
                        state.in_flight -= 1
                        result.lost += 1
            if sending:
                fill(now, None if rate_per_ns is None
                     else int((now - start) * rate_per_ns) + 1)
        if not sending and all(state.in_flight == 0 for state in sockets):
            break
    usage_end = resource.getrusage(resource.RUSAGE_SELF)
    poller.close()
    for state in sockets:
        state.sock.close()

    elapsed_ns = max(1, last_reply - start)
    result.sent = counters["sent"]
    result.send_errors = counters["send_errors"]
    result.resigned = counters["resigned"]
    result.answered = len(latencies)
    result.ok, result.wrong, result.bad, result.late = ok, wrong, bad, late
    result.elapsed = elapsed_ns / 1e9
    result.rate = result.answered / result.elapsed if result.answered else 0.0
    latencies.sort()
    result.p50 = _percentile(latencies, 0.50)
    result.p90 = _percentile(latencies, 0.90)
    result.p99 = _percentile(latencies, 0.99)
    result.max = latencies[-1] / 1e6 if latencies else 0.0
    cpu = ((usage_end.ru_utime - usage_start.ru_utime)
           + (usage_end.ru_stime - usage_start.ru_stime))
    result.cpu = cpu / max(1e-9, (perf() - start) / 1e9)
    result.codes = {_CODE_NAMES.get(code, str(code)): count for code, count in codes.items()}
    result.bad_kinds = dict(bad_kinds)
    result.sent_specs = [index for state in sockets for index in state.specs[:state.next]]
    return result


_CODE_NAMES = {packets.ACCESS_ACCEPT: "Access-Accept", packets.ACCESS_REJECT: "Access-Reject",
               11: "Access-Challenge"}


def exchange(target: Target, spec: Spec, timeout: float = 1.0) -> int | None:
    """One request, one verified reply (a readiness probe).

    Returns:
        The reply's code, or None without a (valid) reply within ``timeout``.
    """
    [[(_, packet)]] = build(target, [spec], 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (target.host, target.port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                reply = sock.recv(4096)
                if len(reply) >= 20 and reply[1] == packet[1] and check_reply(
                        reply, packet[4:20], target.secret, target.require_ma) == packets.OK:
                    return reply[0]
        except OSError:
            return None
    return None

"""RadiusProtocol driven in memory: FakeDatagramTransport, task.Clock, a synchronous
run_db and a real SQLite Store. Retransmissions, reject delay, drops, database outages."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import netaddr
import pytest
from pyrad import packet
from twisted.internet.defer import maybeDeferred
from twisted.internet.testing import Clock, FakeDatagramTransport
from twisted.logger import globalLogPublisher

from radius_client import build_request, reply_verifies
from radiusd.accounts import Accounts
from radiusd.clients import ClientTable
from radiusd.crypto import Keys
from radiusd.errors import StoreUnavailable
from radiusd.handlers import HANDLERS
from radiusd.handlers.context import HandlerContext, SettingsCache
from radiusd.model import Client, Secret
from radiusd.otp import hotp, totp_step
from radiusd.protocol import RadiusProtocol
from radiusd.store import Store

SECRET = "component-secret-0123456789"
NAS = ("10.0.0.1", 40000)
SEED = b"component-test-seed!"
START = 1_800_000_000.0


class Harness:
    def __init__(self, tmp_path):
        self.store = Store.open(f"sqlite:///{tmp_path / 'radiusd.db'}")
        self.store.migrate()
        self.keys = Keys.from_master(b"k" * 32)
        self.clock = Clock()
        self.clock.advance(START)
        self.accounts = Accounts(self.store, self.keys, lambda n: b"\x01" * n, "test")
        self.db_calls = 0
        self.db_down = False
        self.ctx = HandlerContext(
            store=self.store, keys=self.keys, run_db=self.run_db, now=self.now,
            settings=SettingsCache(self.store.load_settings), reject_delay=1.0, node="test")
        clients = ClientTable([Client("nas", netaddr.IPNetwork("10.0.0.1/32"), Secret(SECRET))])
        # No jitter unless a test asks for it: the reject delay is exactly 1 s.
        self.random = lambda n: bytes(n)
        self.protocol = RadiusProtocol(clients=clients, handlers=HANDLERS, ctx=self.ctx,
                                       clock=self.clock, random=lambda n: self.random(n))
        self.transport = FakeDatagramTransport()
        self.protocol.makeConnection(self.transport)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), UTC)

    def run_db(self, fn, *args):
        self.db_calls += 1
        if self.db_down:
            def down(*_):
                raise StoreUnavailable("connection refused")
            return maybeDeferred(down)
        return maybeDeferred(fn, *args)

    def add_user(self, name: str, pin: str | None = "1234"):
        self.accounts.add_user(name, pin=pin, password=None, actor="test", now=self.now())
        self.accounts.add_token(name, secret=base64.b32encode(SEED).decode(), actor="test",
                                now=self.now())

    def code(self) -> str:
        return hotp(SEED, totp_step(self.now()), 6)

    def send(self, data: bytes, addr=NAS) -> None:
        self.protocol.datagramReceived(data, addr)

    def auth_rows(self, user: str):
        return [r for r in self.store.list_audit(user_name=user) if r.event.action == "auth"]


@pytest.fixture()
def h(tmp_path):
    harness = Harness(tmp_path)
    yield harness
    harness.store.close()


def test_accept_is_sent_at_once_and_signed(h):
    h.add_user("alice")
    request = build_request(SECRET, "alice", "1234" + h.code())
    h.send(request.RequestPacket())
    assert len(h.transport.written) == 1
    raw, addr = h.transport.written[0]
    assert addr == NAS and raw[0] == packet.AccessAccept and reply_verifies(request, raw)


def test_the_accept_leaves_only_after_the_write_ahead_log_is_synced(h, monkeypatch):
    """The request path commits without SQLite's own fsync (synchronous=NORMAL) and syncs
    the log itself, outside the writer lock: the reply must come after that sync."""
    h.add_user("alice")
    events: list[str] = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd: int) -> None:
        events.append(f"sync {os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))}")
        real_fdatasync(fd)

    monkeypatch.setattr("radiusd.store.store.os.fdatasync", fdatasync)
    real_write = h.transport.write
    monkeypatch.setattr(h.transport, "write",
                        lambda data, addr=None: (events.append("reply"),
                                                 real_write(data, addr)))
    h.send(build_request(SECRET, "alice", "1234" + h.code()).RequestPacket())
    assert events == ["sync radiusd.db-wal", "reply"]
    assert h.transport.written[0][0][0] == packet.AccessAccept


def test_reject_waits_for_reject_delay_on_the_clock(h):
    h.add_user("bob")
    h.send(build_request(SECRET, "bob", "1234000000").RequestPacket())
    assert h.transport.written == []
    h.clock.advance(0.99)
    assert h.transport.written == []
    h.clock.advance(0.02)
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessReject]


def _reject_wait(h, name: str) -> float:
    """Seconds on the clock from an Access-Request to its Access-Reject (1 ms steps)."""
    written = len(h.transport.written)
    h.send(build_request(SECRET, name, "1234000000").RequestPacket())
    waited = 0.0
    while len(h.transport.written) == written:
        assert waited < 2.0, "no reply"
        h.clock.advance(0.001)
        waited += 0.001
    assert h.transport.written[-1][0][0] == packet.AccessReject
    return waited


def test_reject_delay_varies_within_delay_and_a_quarter_more(h):
    """Issue 21 (10): each Reject waits reject_delay plus a random share of at most 25 %
    of it, drawn from the injected random source: never less than the delay."""
    h.add_user("jit")
    draws = iter([bytes(4), b"\x80\x00\x00\x00", b"\xff\xff\xff\xff", b"\x40\x00\x00\x00"])
    h.random = lambda n: next(draws)
    waits = [_reject_wait(h, "jit") for _ in range(4)]
    assert waits == pytest.approx([1.0, 1.125, 1.25, 1.0625], abs=0.0015)


def test_reject_delay_with_a_real_random_source_spreads_within_the_bounds(h):
    """Issue 21 (10): with ``secrets`` as the source, the waits differ and stay in
    [delay, 1.25 delay]."""
    import secrets
    h.random = secrets.token_bytes
    h.add_user("spread")
    waits = [_reject_wait(h, "spread") for _ in range(12)]
    assert all(1.0 - 0.0015 <= wait <= 1.25 + 0.0015 for wait in waits), waits
    assert len({round(wait, 3) for wait in waits}) > 1, waits


def test_a_zero_reject_delay_sends_at_once_whatever_the_random_source(h):
    """Issue 21 (10): ``reject_delay = "0s"`` stays no delay at all."""
    h.ctx.reject_delay = 0.0
    h.random = lambda n: b"\xff" * n
    h.add_user("zero")
    h.send(build_request(SECRET, "zero", "1234000000").RequestPacket())
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessReject]


def test_retransmission_in_flight_dropped_then_resent_byte_for_byte(h):
    h.add_user("carol")
    data = build_request(SECRET, "carol", "1234000000").RequestPacket()
    h.send(data)
    h.send(data)                      # during the reject delay: still in flight, dropped
    h.clock.advance(1.0)
    h.send(data)                      # after the reply: the cached bytes again
    assert len(h.transport.written) == 2
    assert h.transport.written[0][0] == h.transport.written[1][0]
    assert len(h.auth_rows("carol")) == 1 and h.db_calls == 1


def test_retransmitted_accept_is_not_reevaluated(h):
    h.add_user("dave")
    data = build_request(SECRET, "dave", "1234" + h.code()).RequestPacket()
    h.send(data)
    h.send(data)
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept] * 2
    assert h.transport.written[0][0] == h.transport.written[1][0]
    assert [r.event.result for r in h.auth_rows("dave")] == ["accept"]


def test_new_authenticator_with_same_identifier_is_a_new_request(h):
    h.add_user("erin")
    first = build_request(SECRET, "erin", "1234" + h.code())
    second = build_request(SECRET, "erin", "1234" + h.code())
    second.id = first.id
    h.send(first.RequestPacket())
    h.send(second.RequestPacket())     # RFC 5080 §2.2.2: purge, process anew → replay
    h.clock.advance(1.0)
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept,
                                                         packet.AccessReject]
    assert [r.event.reason for r in h.auth_rows("erin")] == ["replayed_code", None]


def test_after_the_cache_expires_the_receipt_answers_until_60_seconds(h):
    h.add_user("fay")
    data = build_request(SECRET, "fay", "1234" + h.code()).RequestPacket()
    h.send(data)
    h.clock.advance(31.0)
    h.send(data)                       # memory entry expired (30 s): the DB receipt answers
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept] * 2
    assert len(h.auth_rows("fay")) == 1
    h.clock.advance(60.0)
    h.send(data)                       # receipt expired too: decided again, a replay now
    h.clock.advance(1.0)
    assert h.transport.written[-1][0][0] == packet.AccessReject
    assert [r.event.result for r in h.auth_rows("fay")] == ["reject", "accept"]


def test_a_retransmitted_reject_is_decided_again_after_the_cache_expires(h):
    h.add_user("ivy")
    data = build_request(SECRET, "ivy", "1234000000").RequestPacket()
    h.send(data)
    h.clock.advance(1.0)               # the delayed Reject is sent (and cached 30 s)
    h.clock.advance(31.0)
    h.send(data)                       # no receipt for a Reject: decided (and counted) again
    h.clock.advance(1.0)
    assert len(h.auth_rows("ivy")) == 2


def test_receipt_gives_a_second_server_the_same_accept(h, tmp_path):
    """A retransmission reaching another server sharing the database: same Accept, and
    the code is not used twice; a new request with the same code is rejected."""
    h.add_user("gil")
    first = build_request(SECRET, "gil", "1234" + h.code())
    h.send(first.RequestPacket())
    other = _second_server(h)                                 # empty memory cache
    other.send(first.RequestPacket())
    assert [raw[0] for raw, _ in other.transport.written] == [packet.AccessAccept]
    second = build_request(SECRET, "gil", "1234" + h.code())
    other.send(second.RequestPacket())
    h.clock.advance(1.0)
    assert [raw[0] for raw, _ in other.transport.written] == [packet.AccessAccept,
                                                             packet.AccessReject]
    assert [r.event.result for r in h.auth_rows("gil")] == ["reject", "accept"]


def _second_server(h: Harness) -> Harness:
    """Another server on the same database: same store and clock, empty memory cache."""
    other = Harness.__new__(Harness)
    other.__dict__.update(h.__dict__)
    other.protocol = RadiusProtocol(clients=h.protocol.clients, handlers=HANDLERS, ctx=h.ctx,
                                    clock=h.clock, random=lambda n: bytes(n))
    other.transport = FakeDatagramTransport()
    other.protocol.makeConnection(other.transport)
    return other


def test_the_tokens_next_accept_keeps_the_earlier_receipt_for_its_60_seconds(h):
    """The receipt lives on the token's row; the token's next Accept moves it to the
    receipt table, where a late retransmission of the first request still finds it."""
    h.add_user("hal")
    first = build_request(SECRET, "hal", "1234" + h.code())
    h.send(first.RequestPacket())
    h.clock.advance(30.0)                                     # the next TOTP step
    h.send(build_request(SECRET, "hal", "1234" + h.code()).RequestPacket())
    other = _second_server(h)
    other.send(first.RequestPacket())                         # 30 s after: still answered
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept] * 2
    assert [raw[0] for raw, _ in other.transport.written] == [packet.AccessAccept]
    assert [r.event.result for r in h.auth_rows("hal")] == ["accept", "accept"]
    h.clock.advance(31.0)                                     # 61 s after the first
    third = _second_server(h)
    third.send(first.RequestPacket())
    h.clock.advance(1.0)
    assert [raw[0] for raw, _ in third.transport.written] == [packet.AccessReject]


def test_database_down_means_no_reply_and_retransmission_processed_later(h):
    h.add_user("gus")
    data = build_request(SECRET, "gus", "1234" + h.code()).RequestPacket()
    h.db_down = True
    h.send(data)
    h.clock.advance(5)
    assert h.transport.written == []
    h.db_down = False
    h.send(data)                       # not stuck "in flight": processed now
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept]


@pytest.mark.parametrize("where", ["deciding", "queueing"])
def test_a_bug_while_deciding_is_a_reject_and_is_logged_never_an_accept(h, monkeypatch, where):
    # Fail closed: an unexpected exception (not an unreachable database) answers Reject,
    # after the reject delay, and the error is logged; the NAS is not left waiting.
    h.add_user("ida")
    if where == "deciding":
        def broken(*_args, **_kwargs):
            raise ValueError("bug")
        monkeypatch.setattr("radiusd.handlers.access_request.decide_access", broken)
    else:
        def broken_queue(_pending):
            raise RuntimeError("bug")
        h.ctx.group_commit = broken_queue
    logged = []
    globalLogPublisher.addObserver(logged.append)
    try:
        h.send(build_request(SECRET, "ida", "1234" + h.code()).RequestPacket())
        h.clock.advance(1.0)
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessReject]
    [event] = [e for e in logged if e.get("log_failure") is not None]
    assert event["log_format"].startswith("internal error deciding for {user}")
    assert event["log_failure"].check(ValueError if where == "deciding" else RuntimeError)


def test_status_server_silent_while_database_down(h):
    status = build_request(SECRET, None, code=packet.StatusServer)
    h.ctx.health.mark_down(h.clock.seconds(), "test")
    h.send(status.RequestPacket())
    assert h.transport.written == []
    h.ctx.health.mark_up()
    h.send(status.RequestPacket())
    assert [raw[0] for raw, _ in h.transport.written] == [packet.AccessAccept]
    assert h.db_calls == 0             # RFC 5997 §4.2: no side effects


@pytest.mark.parametrize("data", [b"", b"\x01", bytes(20), b"\xff" * 4096,
                                  bytes.fromhex("01000016") + bytes(16) + b"\x00\x02"])
def test_garbage_is_dropped_without_exception(h, data):
    h.send(data)
    h.clock.advance(2)
    assert h.transport.written == []


def test_unknown_client_is_dropped(h):
    h.add_user("hal")
    h.send(build_request(SECRET, "hal", "1234" + h.code()).RequestPacket(),
           addr=("10.0.0.2", 40000))
    assert h.transport.written == [] and h.db_calls == 0


def _issue_codes(h: Harness, name: str, random) -> list[str]:
    from radiusd.emergency import issuing
    prepared = issuing.prepare_set(h.store, h.keys, random, h.store.load_settings(),
                                   user_name=name, count=3, issued_by="cli", reason="",
                                   now=h.now())
    issuing.commit_set(h.store, prepared, actor="cli", destination="stdout", node="test",
                       now=h.now())
    return [code.reveal().decode() for code in prepared.codes]


def test_a_code_of_a_replaced_set_is_audited_as_such_and_its_accept_still_answers(h):
    """Issue 20 (12): a code of a superseded set was logged as `bad_code`; and a
    retransmission of a request accepted with it, reaching another server after the set
    was replaced, finds its receipt (the same Accept), as before the replacement."""
    import random as random_module

    from radiusd.config import PerimeterConfig
    inside = (netaddr.IPNetwork("10.0.0.0/8"),)
    h.ctx.perimeter = PerimeterConfig(networks=inside, ip_set=netaddr.IPSet(inside),
                                      check="nas")
    random = random_module.Random(20).randbytes
    h.add_user("em")
    old = _issue_codes(h, "em", random)
    first = build_request(SECRET, "em", "1234" + old[0])
    h.send(first.RequestPacket())
    _issue_codes(h, "em", random)                              # replaces the set
    other = _second_server(h)
    other.send(first.RequestPacket())                          # the retransmission
    assert [raw[0] for raw, _ in other.transport.written] == [packet.AccessAccept]
    other.send(build_request(SECRET, "em", "1234" + old[1]).RequestPacket())
    h.clock.advance(1.0)
    assert [raw[0] for raw, _ in other.transport.written] == [packet.AccessAccept,
                                                             packet.AccessReject]
    rows = h.auth_rows("em")
    assert [(r.event.result, r.event.reason) for r in rows] == [
        ("reject", "code_of_replaced_set"), ("accept", None)]
    assert rows[0].event.detail["code"] == 2 and rows[0].event.detail["counted"] is False
    assert h.accounts.get_user("em").failures == 0


class LogLines:
    """The warnings the protocol logs, with the clock's time when each was written."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        if event.get("log_format", "").startswith("dropped"):
            self.events.append({**event, "at": self.clock.seconds()})

    def full(self) -> list[dict]:
        return [e for e in self.events if not e["log_format"].startswith("dropped {count")]

    def summaries(self) -> list[dict]:
        return [e for e in self.events if e["log_format"].startswith("dropped {count")]


@pytest.fixture()
def drop_lines(h):
    lines = LogLines(h.clock)
    globalLogPublisher.addObserver(lines)
    yield lines
    globalLogPublisher.removeObserver(lines)


def test_a_flood_from_an_unknown_address_logs_five_lines_and_one_count_a_minute(h, drop_lines):
    """Issue 21 (9): 10,000 datagrams from an unknown address in a minute write the first
    5 in full and one summary with the count of the rest, not 10,000 lines."""
    from twisted.logger import formatEvent
    datagram = build_request(SECRET, "hal", "1234567890").RequestPacket()
    for index in range(10_000):
        h.send(datagram, addr=("10.0.0.9", 40000 + index % 1000))
        h.clock.advance(0.005)                         # 10,000 in 50 s
    assert len(drop_lines.full()) == 5 and drop_lines.summaries() == []
    h.clock.advance(10.0)                              # the minute ends
    [summary] = drop_lines.summaries()
    assert summary["count"] == 9_995 and summary["address"] == "10.0.0.9"
    assert formatEvent(summary) == ("dropped 9,995 more packets from 10.0.0.9 "
                                    "(unknown client) in the last 60 s")
    assert summary["at"] == pytest.approx(START + 60, abs=0.01)
    for index in range(3_000):                         # the next minute: the same again
        h.send(datagram, addr=("10.0.0.9", 40000))
        h.clock.advance(0.01)
    h.clock.advance(60)
    assert len(drop_lines.full()) == 10
    assert [e["count"] for e in drop_lines.summaries()] == [9_995, 2_995]
    h.clock.advance(600)                               # quiet: nothing more is logged
    assert len(drop_lines.events) == 12
    assert h.transport.written == []


def test_drops_of_another_reason_and_another_source_are_counted_apart(h, drop_lines):
    """Issue 21 (9): each (source, reason) gets its own 5 full lines and its own count;
    a known client's bad packets are not hidden by a stranger's flood."""
    stranger = build_request(SECRET, "hal", "1234567890").RequestPacket()
    for _ in range(20):
        h.send(stranger, addr=("10.0.0.9", 40000))
        h.send(b"\x01" * 30)                           # from the NAS: malformed
    h.clock.advance(60)
    assert len(drop_lines.full()) == 10
    assert sorted((e["address"], e["reason"], e["count"]) for e in drop_lines.summaries()) \
        == [("10.0.0.1", "malformed packet", 15), ("10.0.0.9", "unknown client", 15)]


def test_a_flood_from_100000_sources_keeps_the_tracked_table_bounded(h, drop_lines):
    """Issue 21 (9): spoofed sources cannot grow memory: at most MAX_TRACKED sources are
    tracked, the drops of the others are counted together; at most FULL_IN_ALL full
    lines a minute, and every drop is in a count."""
    from radiusd.droplog import FULL_IN_ALL, MAX_TRACKED
    datagram = build_request(SECRET, "hal", "1234567890").RequestPacket()
    for index in range(100_000):
        h.send(datagram, addr=(f"11.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                               40000))
        assert h.protocol.drops.tracked <= MAX_TRACKED
    assert h.protocol.drops.tracked == MAX_TRACKED
    h.clock.advance(60)
    assert len(drop_lines.full()) == FULL_IN_ALL
    summaries = drop_lines.summaries()
    assert len(summaries) == MAX_TRACKED - FULL_IN_ALL + 1
    assert sum(e["count"] for e in summaries) == 100_000 - FULL_IN_ALL
    [others] = [e for e in summaries if e["address"] is None]
    assert others["count"] == 100_000 - MAX_TRACKED
    assert h.protocol.drops.tracked == 0

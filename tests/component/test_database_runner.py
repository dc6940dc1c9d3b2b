"""``DatabaseRunner``: every DB call of the server goes through it. A call that does not
answer in time is an outage (no reply, logged once a minute, probed); a call that answers,
but late enough for a NAS to retransmit, is logged as slow (once a minute, with a count)."""

from __future__ import annotations

import pytest
from twisted.internet import defer
from twisted.internet.testing import Clock
from twisted.logger import globalLogPublisher

from radiusd.app import OUTAGE_LOG_INTERVAL, SLOW_DB_CALL, DatabaseRunner
from radiusd.errors import StoreUnavailable
from radiusd.handlers.context import StoreHealth


class HeldThreads:
    """Stands in for ``BlockingThreads``: each call waits until the test answers it."""

    def __init__(self) -> None:
        self.calls: list[defer.Deferred] = []

    def run(self, fn, *args) -> defer.Deferred:
        self.calls.append(defer.Deferred())
        return self.calls[-1]


@pytest.fixture
def runner():
    clock, threads = Clock(), HeldThreads()
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        yield (DatabaseRunner(clock, threads, StoreHealth(), probe=lambda: None, timeout=3.0),
               clock, threads, logged)
    finally:
        globalLogPublisher.removeObserver(logged.append)


def slow_warnings(logged: list[dict]) -> list[tuple[int, float]]:
    return [(event["calls"], event["slowest"]) for event in logged
            if event.get("log_format", "").startswith("database slow")]


def answer_after(runner, clock, threads, seconds: float, value: object = "rows") -> list:
    results: list = []
    runner(lambda: None).addBoth(results.append)
    clock.advance(seconds)
    threads.calls[-1].callback(value)
    return results


def test_a_call_answering_late_is_logged_as_slow_with_its_time(runner):
    runner, clock, threads, logged = runner
    assert answer_after(runner, clock, threads, SLOW_DB_CALL - 0.1) == ["rows"]
    assert slow_warnings(logged) == []
    assert answer_after(runner, clock, threads, 2.5, "late rows") == ["late rows"]
    assert slow_warnings(logged) == [(1, 2.5)]
    [event] = [e for e in logged if e.get("log_format", "").startswith("database slow")]
    assert event["log_level"].name == "warn"
    assert "rows" not in str(event)  # what the call returned is never logged


def test_slow_calls_are_logged_once_a_minute_with_the_count_and_the_slowest(runner):
    runner, clock, threads, logged = runner
    answer_after(runner, clock, threads, 1.2)
    answer_after(runner, clock, threads, 2.8)   # within the minute: counted, not logged
    answer_after(runner, clock, threads, 1.5)
    assert slow_warnings(logged) == [(1, 1.2)]
    clock.advance(OUTAGE_LOG_INTERVAL)
    answer_after(runner, clock, threads, 1.1)
    assert slow_warnings(logged) == [(1, 1.2), (3, 2.8)]


def test_a_call_that_never_answers_is_an_outage_not_a_slow_call(runner):
    runner, clock, threads, logged = runner
    results: list = []
    runner(lambda: None).addBoth(results.append)
    clock.advance(3.0)
    [failure] = results
    assert failure.check(StoreUnavailable) and "no answer within 3 s" in str(failure.value)
    assert runner.health.is_down
    assert [e["reason"] for e in logged
            if e.get("log_format", "").startswith("database unreachable")] == [
        "no answer within 3 s"]
    assert slow_warnings(logged) == []


class DiskFull:
    """A database whose reads answer while its writes fail (a full disk, SQLite's writer
    held by another process); ``writable`` ends the fault."""

    def __init__(self) -> None:
        self.writable = False

    def read(self) -> str:
        return "rows"

    def write(self) -> None:
        if not self.writable:
            raise StoreUnavailable("database sqlite:///radiusd.db unavailable: "
                                   "OperationalError: database or disk is full")


class AtOnceThreads:
    """Stands in for ``BlockingThreads``: runs each call at once."""

    def run(self, fn, *args) -> defer.Deferred:
        return defer.maybeDeferred(fn, *args)


def outage_lines(logged: list[dict]) -> list[tuple[float, str]]:
    return [(event["at"], event["log_format"].split(" (")[0].split(":")[0])
            for event in logged if event.get("log_format", "").startswith(
                ("database unreachable", "database reachable again"))]


def test_reads_that_answer_while_writes_fail_keep_the_outage_and_status_server_quiet():
    """Issue 21 (4): reads and writes fail apart (a full disk): only a commit ends the
    outage, so Status-Server stays unanswered while logins cannot commit; the outage is
    logged once when it starts, once a minute while it lasts, once when it ends."""
    from types import SimpleNamespace

    from radiusd.app import OUTAGE_PROBE_INTERVAL
    from radiusd.handlers.status_server import handle_status_server

    clock, database, health = Clock(), DiskFull(), StoreHealth()
    logged: list[dict] = []

    def observe(event: dict) -> None:
        logged.append({**event, "at": clock.seconds()})

    globalLogPublisher.addObserver(observe)
    try:
        runner = DatabaseRunner(clock, AtOnceThreads(), health, probe=database.write,
                                timeout=3.0)
        ctx = SimpleNamespace(health=health)
        answered = []
        for second in range(150):
            runner(database.write).addErrback(lambda f: f.trap(StoreUnavailable))
            runner(database.read)                      # a read answers: no evidence
            answered.append(handle_status_server(None, None, ("192.0.2.1", 1812), ctx))
            clock.advance(1)
        assert answered == [None] * 150
        assert outage_lines(logged) == [(0, "database unreachable"),
                                        (60, "database unreachable"),
                                        (120, "database unreachable")]
        database.writable = True
        runner(database.read)
        assert handle_status_server(None, None, ("192.0.2.1", 1812), ctx) is None
        clock.advance(OUTAGE_PROBE_INTERVAL)              # the probe commits
        assert handle_status_server(None, None, ("192.0.2.1", 1812), ctx) is not None
        assert outage_lines(logged)[3:] == [(152, "database reachable again")]
        clock.advance(300)
        assert len(outage_lines(logged)) == 4          # no more probes, no more lines
    finally:
        globalLogPublisher.removeObserver(observe)


def test_an_outage_that_flaps_logs_at_most_one_unreachable_line_a_minute():
    """Issue 21 (4): writes that fail and succeed by turns (a disk nearly full) do not
    write two lines per flap: a new outage within a minute of the last line is not
    logged, nor its end; one that lasts is logged at the minute, and its end."""
    from radiusd.app import OUTAGE_PROBE_INTERVAL

    clock, database, health = Clock(), DiskFull(), StoreHealth()
    logged: list[dict] = []

    def observe(event: dict) -> None:
        logged.append({**event, "at": clock.seconds()})

    globalLogPublisher.addObserver(observe)
    try:
        runner = DatabaseRunner(clock, AtOnceThreads(), health, probe=database.write,
                                timeout=3.0)
        for _ in range(10):                            # 10 outages of 2 s in 40 s
            database.writable = False
            runner(database.write).addErrback(lambda f: f.trap(StoreUnavailable))
            assert health.is_down
            clock.advance(1)
            database.writable = True
            clock.advance(OUTAGE_PROBE_INTERVAL)
            assert not health.is_down
            clock.advance(1)
        assert outage_lines(logged) == [(0, "database unreachable"),
                                        (3, "database reachable again")]
        database.writable = False                      # one more, that lasts
        runner(database.write).addErrback(lambda f: f.trap(StoreUnavailable))
        clock.pump([1] * 90)
        database.writable = True
        clock.advance(OUTAGE_PROBE_INTERVAL)
        # Its start (40 s) is within a minute of the last line: logged at 60 s, then
        # once a minute, and its end.
        assert outage_lines(logged)[2:] == [(60, "database unreachable"),
                                            (120, "database unreachable"),
                                            (132, "database reachable again")]
    finally:
        globalLogPublisher.removeObserver(observe)

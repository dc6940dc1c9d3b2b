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

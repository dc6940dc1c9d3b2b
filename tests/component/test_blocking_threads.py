"""``BlockingThreads``: the DB threads run blocking calls and hand the results back to the
reactor thread, without leaving garbage that only the cyclic collector can free."""

from __future__ import annotations

import gc
import queue
import threading

import pytest

from radiusd.app import BlockingThreads
from radiusd.errors import StoreUnavailable


class QueueReactor:
    """What BlockingThreads needs of a reactor: ``callFromThread``, run here by the test."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue = queue.SimpleQueue()

    def callFromThread(self, fn, *args) -> None:  # noqa: N802 (Twisted's name)
        self.calls.put((fn, args))

    def run_one(self) -> None:
        fn, args = self.calls.get(timeout=10)
        fn(*args)


@pytest.fixture
def pool():
    reactor = QueueReactor()
    threads = BlockingThreads(reactor, 2, name="test-db")
    threads.start()
    yield reactor, threads
    threads.stop()


def test_results_and_failures_come_back_on_the_reactor_thread(pool):
    reactor, threads = pool
    seen = []

    def work(value):
        seen.append(threading.current_thread().name)
        if value == "bad":
            raise StoreUnavailable("database down")
        return value * 2

    results, failures = [], []
    threads.run(work, 21).addCallback(results.append)
    threads.run(work, "bad").addErrback(lambda f: failures.append(f.value))
    assert results == [] and failures == []  # nothing fires before the reactor runs it
    reactor.run_one()
    reactor.run_one()
    assert results == [42]
    assert len(failures) == 1 and isinstance(failures[0], StoreUnavailable)
    assert all(name.startswith("test-db-") for name in seen)
    assert threading.current_thread().name not in seen


def test_a_call_leaves_no_reference_cycle(pool):
    """Twisted's ThreadPool left one self-referencing closure per call (4 objects): at
    thousands of DB calls a second that made generation-0 collections of ~45,000 objects
    that stopped the reactor for 12-50 ms."""
    reactor, threads = pool
    results = []
    gc.collect()
    gc.disable()
    try:
        for value in range(200):
            threads.run(pow, value, 2).addCallback(results.append)
            reactor.run_one()
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert len(results) == 200
    assert unreachable == 0


def test_stop_finishes_the_queued_calls_and_refuses_new_ones(pool):
    reactor, threads = pool
    release = threading.Event()
    results = []
    threads.run(release.wait, 10).addCallback(results.append)
    threads.run(release.wait, 10).addCallback(results.append)
    threads.run(lambda: "queued").addCallback(results.append)
    stopper = threading.Thread(target=threads.stop)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    for _ in range(3):
        reactor.run_one()
    assert sorted(map(str, results)) == ["True", "True", "queued"]
    refused = []
    threads.run(lambda: "late").addErrback(lambda f: refused.append(f.value))
    assert len(refused) == 1 and isinstance(refused[0], StoreUnavailable)
    threads.stop()  # a second stop is harmless

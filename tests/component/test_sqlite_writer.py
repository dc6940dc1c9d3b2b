"""SQLite's one writer across processes (``_SqliteWriter``): writers of two stores on one
file (as two ``serve --workers`` processes, or the CLI beside the server) queue on an
flock of ``DATABASE-writer`` and go the moment it is free, instead of sleeping in SQLite's
busy handler; a writer that cannot get it within the timeout gets StoreUnavailable."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from radiusd.errors import StoreUnavailable
from radiusd.model import AuditEvent
from radiusd.store import Store

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def event() -> AuditEvent:
    return AuditEvent(at=NOW, action="settings.set", result="ok", actor="test")


@pytest.fixture
def database(tmp_path):
    path = tmp_path / "radiusd.db"
    store = Store.open(f"sqlite:///{path}")
    store.migrate()
    store.close()
    return path


def test_a_writer_waits_for_another_process_and_goes_when_it_is_done(database, tmp_path):
    # The other process holds the lock until told (a line on its stdin) to let go.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"""
import fcntl, os, sys, time
fd = os.open({str(database) + "-writer"!r}, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
released = time.monotonic()
fcntl.flock(fd, fcntl.LOCK_UN)
print("released", released, flush=True)
sys.stdin.readline()
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    store = Store.open(f"sqlite:///{database}", statement_timeout=5.0)
    done = threading.Event()
    finished_at: list[float] = []

    def write() -> None:
        store.set_setting("lockout.max_failures", "7", event())
        finished_at.append(time.monotonic())
        done.set()

    writer = threading.Thread(target=write)
    try:
        assert holder.stdout.readline().strip() == "held"
        writer.start()
        assert not done.wait(0.3)  # it waits for the other process ...
        holder.stdin.write("release\n")
        holder.stdin.flush()
        released = float(holder.stdout.readline().split()[1])
        assert done.wait(5.0)
        assert 0 <= finished_at[0] - released < 0.05  # ... and goes within ms of release
        assert store.load_settings().max_failures == 7
    finally:
        holder.kill()
        holder.wait()
        writer.join(5.0)
        store.close()


def test_a_writer_gives_up_after_the_timeout(database):
    first = Store.open(f"sqlite:///{database}")
    second = Store.open(f"sqlite:///{database}", statement_timeout=0.3)
    try:
        with first._write_lock:  # another process's writer, as far as the flock knows
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="locked by another process"):
                second.set_setting("lockout.max_failures", "7", event())
            assert 0.25 <= time.monotonic() - started < 1.5
        second.set_setting("lockout.max_failures", "8", event())  # free again
        assert first.load_settings().max_failures == 8
    finally:
        first.close()
        second.close()


def test_writers_of_two_stores_take_turns(database):
    stores = [Store.open(f"sqlite:///{database}") for _ in range(2)]
    inside = threading.Semaphore(1)
    overlaps = []

    def write(store: Store, rounds: int) -> None:
        for _ in range(rounds):
            with store._write_lock:
                if not inside.acquire(blocking=False):
                    overlaps.append(1)
                    continue
                time.sleep(0.001)
                inside.release()

    try:
        threads = [threading.Thread(target=write, args=(store, 100)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert overlaps == []
    finally:
        for store in stores:
            store.close()


def test_an_in_memory_database_has_no_lock_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a lock file named after no path would land
    store = Store.open("sqlite://")
    try:
        with store._write_lock:
            pass
    finally:
        store.close()
    assert list(tmp_path.iterdir()) == []


def test_a_prune_with_nothing_expired_does_not_queue_for_the_writer(database):
    """The server prunes receipts every second; with nothing expired that must not be a
    write transaction queued with the logins."""
    from datetime import timedelta

    from radiusd.store.tables import receipt

    first = Store.open(f"sqlite:///{database}")
    second = Store.open(f"sqlite:///{database}", statement_timeout=0.3)
    try:
        with first._engine.begin() as connection:
            connection.execute(receipt.insert().values(
                key=b"k" * 32, code=2, reply_messages="[]",
                expires_at=NOW + timedelta(seconds=60)))
        with first._write_lock:  # another process writing, as far as the flock knows
            assert second.prune_receipts(NOW + timedelta(seconds=59)) == 0  # at once
            with pytest.raises(StoreUnavailable, match="locked by another process"):
                second.prune_receipts(NOW + timedelta(seconds=60))  # one to delete: waits
        assert second.prune_receipts(NOW + timedelta(seconds=60)) == 1
        assert second.prune_receipts(NOW + timedelta(seconds=60)) == 0
    finally:
        first.close()
        second.close()


def test_the_checkpoint_timer_only_wakes_a_thread_after_a_write(database):
    """The server checkpoints fifty times a second while it writes; idle, it must not."""
    import os

    from radiusd.model import ResetFailures

    store = Store.open(f"sqlite:///{database}")
    try:
        store.checkpoint()
        assert not store.has_new_writes()
        store.load_settings()  # reads are not writes
        assert not store.has_new_writes()
        assert store.apply_batch([((ResetFailures(user_id=1),), event(), None)]) == [True]
        assert store.has_new_writes()
        assert os.path.getsize(f"{database}-wal") > 0  # the audit row is in the log ...
        store.checkpoint()
        assert not store.has_new_writes()  # ... and was copied into the database file
        with store._engine.connect() as connection:
            busy, log_frames, copied = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(PASSIVE)").one()
        assert (busy, log_frames) == (0, copied)
    finally:
        store.close()


def test_writes_before_a_failed_checkpoint_are_checkpointed_by_the_next(database):
    import sqlite3

    from radiusd.model import ResetFailures

    class Failing:
        def execute(self, statement):
            raise sqlite3.OperationalError("disk I/O error")

    store = Store.open(f"sqlite:///{database}")
    try:
        store.apply_batch([((ResetFailures(user_id=1),), event(), None)])
        working, store._checkpoint_connection = store._checkpoint_connection, Failing()
        with pytest.raises(StoreUnavailable, match="checkpoint failed"):
            store.checkpoint()
        assert store.has_new_writes()  # still to copy: the timer tries again
        store._checkpoint_connection = working
        store.checkpoint()
        assert not store.has_new_writes()
    finally:
        store.close()

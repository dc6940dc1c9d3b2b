"""The Store: every read and write of the database, one method per unit of work.

Owns: the engine and its connection set-up (SQLite WAL + ``synchronous=FULL``, and for the
request path ``NORMAL`` plus its own fdatasync of the log, ``_WalSync``; PostgreSQL
statement timeout), transactions, the compare-and-set commits of ``apply``, the audit rows
written with each change, schema migration, and the translation of SQLAlchemy errors into
``radiusd.errors`` (STYLE §8). Takes and returns ``radiusd.model`` values only: no Row or
ORM object leaves this package.

Thread-safe: every method runs its own transaction (the admin path on a pooled connection,
the request path on a connection of the calling thread), so the server calls it from its DB
threads (1 on SQLite, 2 on PostgreSQL: app.db_threads).

Must not know: twisted, pyrad. Never logs, and never puts a PIN hash, password hash or seed
into an exception message (the engine hides bound parameters).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (ColumnElement, Connection, Engine, FromClause, Row, and_,
                        create_engine, delete, event, func, insert, select, text, update)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError,
                            StatementError)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import StaticPool

from radiusd.errors import (AlreadyExists, ConfigError, DataRefused, NotFound, NotInitialised,
                            StoreUnavailable)
from radiusd.model import (CAS_COMMITS, AdvanceToken, AuditEvent, AuditRecord, Commit,
                           EmergencyCode, EmergencySet, PacketCode, Receipt, RecordFailure,
                           ResetFailures, RevokeEmergencySet, SaveReceipt, Subject, Token,
                           TokenInfo, TokenKind, UseEmergencyCode, UserInfo)
from radiusd.model import ADMIN_ACCOUNT, WebAccount
from radiusd.errors import UsageError
from radiusd.settings import Settings, settings_from_rows
from radiusd.emergency import rules
from radiusd.store import tables
from radiusd.store.tables import (admins, audit_event, emergency_code,
                                  emergency_set, tokens, users)
from radiusd.store.tables import receipt as receipt_table

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# pg_advisory_xact_lock key: two servers running `init` at once migrate one after the other.
_MIGRATION_LOCK = 0x72616469_75736400  # "radiusd\0"

# PostgreSQL SQLSTATE undefined_table; SQLite says "no such table".
_UNDEFINED_TABLE = "42P01"

# Driver errors that mean "this statement, for the data it carried", not "the database is
# down" (PEP 249: DataError, IntegrityError, ProgrammingError; issue 21, 1): e.g. psycopg's
# DataError for a NUL in text. OperationalError, InterfaceError, DatabaseError and an
# invalidated connection stay StoreUnavailable: no reply, so the NAS fails over.
_REFUSED_DATA = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError,
                 sqlite3.DataError, sqlite3.IntegrityError, sqlite3.ProgrammingError)
# ... except missing rights, which no request's data causes and every request meets.
_NOT_REFUSED_DATA = (psycopg.errors.InsufficientPrivilege,)


def _is_refused_data(error: BaseException | None) -> bool:
    return isinstance(error, _REFUSED_DATA) and not isinstance(error, _NOT_REFUSED_DATA)

# Store.probe_commit's row: a key no receipt has (Keys.receipt_hash is 32 bytes), expired.
_PROBE_RECEIPT_KEY = b"radiusd outage probe"
_PROBE_RECEIPT_EXPIRY = datetime(2000, 1, 1, tzinfo=UTC)

# Execution option read by the SQLite "begin" hook.
_BEGIN = "radiusd_begin"

# emergency_code.code_hash: Keys.code_hash is HMAC-SHA256.
_CODE_HASH_BYTES = 32

# revoked_reason of the sets a new set replaces (issue_emergency_set).
SUPERSEDED = rules.SUPERSEDED

# The row of the ``settings`` table that holds the key check value (``record_key_check``):
# outside the policy's keys, so ``settings show`` never lists it and ``settings set``
# refuses it as unknown.
KEY_CHECK = "server.key_check"


# --- the one-time effects: compare-and-set statements -------------------------------------


# The oldest SQLite with every statement used here (RETURNING: 3.35, 2021).
_SQLITE_NEEDED = (3, 35, 0)

# The tail of the one statement of the request path that returns a row: the set's codes
# left after a use (``_RequestSql.note_code_use``).
_COUNTED = " RETURNING codes_left"


class _RequestSql:
    """The request path as driver SQL, run on the transaction's own DBAPI cursor: the
    one-time effects, the batch's reads (receipts, users with their tokens, emergency set
    headers, candidate codes) and its inserts (audit rows, receipts). The same statements
    on SQLite and PostgreSQL but for the placeholder, without SQLAlchemy's per-statement
    and per-row machinery (bind and result processors, compiled-cache look-ups), which
    profiles put at a third of an emergency-code accept. Every other statement goes
    through SQLAlchemy; the component tests run both against the same rows.

    Each compare-and-set is one conditional UPDATE with a row-count check (STYLE §5): of
    racing requests, on one server or several, exactly one matches.
    """

    def __init__(self, is_sqlite: bool):
        self.p = p = "?" if is_sqlite else "%s"
        # The receipt of the Accept that used a row goes on that row, in the same UPDATE.
        receipt = f"receipt_key = {p}, receipt_reply = {p}, receipt_expires_at = {p}"
        # AdvanceToken: a step/counter is accepted once, across servers.
        self.advance_token = (f"UPDATE tokens SET last_used = {p}, {receipt} "
                              f"WHERE id = {p} AND last_used < {p}")
        # RecordFailure: one atomic UPDATE, so two servers counting at once never lose a
        # count. The right-hand sides read the row as it was, hence the count twice. An
        # expired lock is over: it must not linger beside count 1.
        self.record_failure = (
            f"UPDATE users SET failures = CASE WHEN {p} THEN 1 ELSE failures + 1 END, "
            f"locked_at = CASE WHEN (CASE WHEN {p} THEN 1 ELSE failures + 1 END) >= {p} "
            f"THEN {p} WHEN {p} THEN NULL ELSE locked_at END WHERE id = {p}")
        self.reset_failures = (f"UPDATE users SET failures = 0, locked_at = NULL "
                               f"WHERE id = {p} AND (failures <> 0 OR locked_at IS NOT NULL)")
        # UseEmergencyCode: the code unused and its set still active at `at` (a revoke or
        # expiry between load and apply wins over the code).
        self.use_code = (
            f"UPDATE emergency_code SET used_at = {p}, used_client = {p}, {receipt}, "
            f"reserved = NULL "
            f"WHERE id = {p} AND set_id = {p} AND used_at IS NULL AND EXISTS "
            f"(SELECT 1 FROM emergency_set WHERE id = {p} AND revoked_at IS NULL "
            f"AND expires_at > {p})")
        # The set's count as this very update left it (RETURNING: SQLite 3.35+,
        # PostgreSQL): the Reply-Message's "N codes left" (issue 21, 11). The UPDATE holds
        # the set's row (PostgreSQL: locked, re-read if another transaction changed it;
        # SQLite: one writer), so codes of one set used at once each get their own count.
        self.note_code_use = (f"UPDATE emergency_set SET codes_left = codes_left - 1, "
                              f"last_used_at = {p}, last_used_client = {p} WHERE id = {p}"
                              + _COUNTED)
        # The Reply-Message of the receipt a code's use wrote on its row, told again from
        # the committed count (``apply_batch``'s ``recount``): the row is this
        # transaction's already.
        self.note_receipt_reply = f"UPDATE emergency_code SET receipt_reply = {p} WHERE id = {p}"
        # RevokeEmergencySet: changes nothing when the set is already revoked.
        self.revoke_set = (f"UPDATE emergency_set SET revoked_at = {p}, revoked_reason = {p} "
                           f"WHERE id = {p} AND revoked_at IS NULL")
        # The reads; "{in}" becomes a list of placeholders (``in_``).
        self.receipts = ("SELECT key, code, reply_messages, expires_at FROM receipt "
                         f"WHERE key IN ({{in}}) AND expires_at > {p}")
        self.any_expired_receipt = f"SELECT 1 FROM receipt WHERE expires_at <= {p} LIMIT 1"
        self.subject_rows = (
            "SELECT u.id, u.name, u.is_disabled, u.pin_hash, u.failures, u.locked_at, "
            "t.id, t.serial, t.kind, t.digits, t.period, t.sealed_seed, t.last_used, "
            "t.algorithm, t.receipt_key, t.receipt_reply, t.receipt_expires_at "
            "FROM users u LEFT OUTER JOIN tokens t ON t.user_id = u.id "
            "WHERE u.name IN ({in}) ORDER BY u.id, t.id")
        # Each user's latest set, as _LATEST_SET_ID orders them.
        self.set_headers = (
            "SELECT s.id, s.user_id, s.code_length, s.issued_at, s.expires_at, s.issued_by, "
            "s.reason, s.revoked_at, s.revoked_reason, s.last_used_at, s.last_used_client, "
            "s.codes_left FROM users u JOIN emergency_set s ON s.user_id = u.id AND s.id = "
            "(SELECT c.id FROM emergency_set c WHERE c.user_id = u.id ORDER BY "
            "c.revoked_at IS NULL DESC, c.issued_at DESC, c.revoked_at DESC, c.id DESC "
            "LIMIT 1) WHERE u.name IN ({in})")
        # Each user's set before the latest one (issue 20, 12): the same order, one further.
        self.replaced_set_headers = self.set_headers.replace("LIMIT 1)", "LIMIT 1 OFFSET 1)")
        self.candidate_codes = ("SELECT id, set_id, position, code_hash, used_at, "
                                "receipt_key, receipt_reply, receipt_expires_at "
                                "FROM emergency_code WHERE code_hash IN ({in})")
        self.insert_audit = (
            "INSERT INTO audit_event (at, node, action, result, actor, user_name, reason, "
            f"client, nas_address, detail) VALUES ({', '.join([p] * 10)})")
        self.insert_receipt = ("INSERT INTO receipt (key, code, reply_messages, expires_at) "
                               f"VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (key) DO NOTHING")
        # UTCDateTime's storage: timestamptz on PostgreSQL, naive UTC text on SQLite (the
        # format SQLAlchemy's SQLite DATETIME writes, so text order stays time order).
        self.instant = _sqlite_instant if is_sqlite else _utc_instant
        self.moment = _sqlite_moment if is_sqlite else _utc_moment
        self._in_texts: dict[tuple[str, int], str] = {}

    def in_(self, template: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``template`` with its "{in}" replaced by placeholders, and the values for them:
        ``values`` padded with NULLs (equal to nothing, so they match no row) up to the
        next power of two.

        A template so has a handful of texts whatever the batch size, and they stay
        prepared: sqlite3 keeps the last 128 statements by text, and with one text per
        count the reads of batches of every size from 1 to 64 (two workers' batches) evicted
        each other (three queries an emergency batch), and a read prepared again cost
        0.1–0.6 ms on the bench's database (psycopg likewise prepares a text only after it
        has seen it five times).
        """
        padded = [*values, *[None] * ((1 << max(0, len(values) - 1).bit_length())
                                      - len(values))]
        text = self._in_texts.get((template, len(padded)))
        if text is None:
            text = template.replace("{in}", ", ".join([self.p] * len(padded)))
            self._in_texts[(template, len(padded))] = text
        return text, padded


# The request path formats and parses a few instants per login: these forms avoid
# ``replace(tzinfo=...)``, whose keyword parsing made each call 1-2 µs (5-7x slower).
def _sqlite_instant(value: datetime) -> str:
    if value.tzinfo is not UTC:  # the request path's instants are UTC already
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:-6]  # without its "+00:00"


def _utc_instant(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _sqlite_moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value + "+00:00")


def _utc_moment(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


# A user's latest set, as SQLAlchemy (the admin paths; _RequestSql.set_headers is the
# request path's form of the same query): the unrevoked one first, whatever its issued_at
# (see get_emergency_set); the id only makes the order total.
_CANDIDATE_SET = emergency_set.alias("candidate")
_LATEST_SET_ID = (
    select(_CANDIDATE_SET.c.id)
    .where(_CANDIDATE_SET.c.user_id == users.c.id)
    .order_by(_CANDIDATE_SET.c.revoked_at.is_(None).desc(),
              _CANDIDATE_SET.c.issued_at.desc(), _CANDIDATE_SET.c.revoked_at.desc(),
              _CANDIDATE_SET.c.id.desc())
    .limit(1)
    .correlate(users)
    .scalar_subquery())
_LATEST_SET_JOIN = users.join(emergency_set, and_(emergency_set.c.user_id == users.c.id,
                                                  emergency_set.c.id == _LATEST_SET_ID))


def _lock_order(commits: Sequence[Commit]) -> tuple[int, int | str]:
    """The row the first effect locks, as ``(table rank, id)``: ``apply_batch`` runs the
    requests of a batch in this order."""
    match commits[0] if commits else None:
        case AdvanceToken(token_id=token_id):
            return (0, token_id)
        case UseEmergencyCode(code_id=code_id):
            return (1, code_id)
        case RecordFailure(user_id=user_id) | ResetFailures(user_id=user_id):
            return (2, user_id)
        case RevokeEmergencySet(set_id=set_id):
            return (3, set_id)
    return (4, 0)


# Enum construction by value is slow on the request path: a plain dict look-up instead.
_TOKEN_KINDS = {kind.value: kind for kind in TokenKind}


# SQLite: the bytes an unused code's row holds for its use (``emergency_code.reserved``,
# cleared by ``_RequestSql.use_code``). A use adds ~180 bytes to the row: its time (26),
# the client's name, the receipt's key (32), Reply-Message (~85) and expiry (26). Rows
# issued together fill their pages, so without this room nearly every use split a page
# in two (a new page, its neighbour and their parent written to the log): 1.8 pages
# written a PIN+emergency login for the code's row instead of 1, 2.1 in all instead of
# 1.3. A longer client name, or the two last codes of a set (whose reply adds a warning),
# may still split one; nothing depends on it but the pages written. PostgreSQL writes
# every UPDATE as a new row version anyway: no room there.
CODE_ROW_ROOM = 200

# WAL pages before SQLite checkpoints inside a commit (its default: 1,000); the server's
# own checkpoint fifty times a second keeps the log far below this.
_AUTOCHECKPOINT_PAGES = 20_000


# One statement of a one-time effect: (driver SQL, parameters, is_compare_and_set, the row
# it locks as (table rank, id), ranked as in ``_lock_order``).
_Statement = tuple[str, tuple, bool, tuple[int, Any]]


def _cas_first_only(effects: Sequence[Sequence[_Statement]]) -> bool:
    """Whether a request's statements hold no compare-and-set but (maybe) the first."""
    return not any(statement[2] for position, statement in
                   enumerate(statement for commit in effects for statement in commit)
                   if position > 0)


def _postgresql_session(statement_timeout: float) -> dict[str, Any]:
    """psycopg connection arguments: how long a connect and a statement may take."""
    return {"connect_timeout": max(2, math.ceil(statement_timeout)),  # libpq: whole s, >= 2
            "options": f"-c statement_timeout={max(1, round(statement_timeout * 1000))}ms"}


def _set_up_sqlite(connection: sqlite3.Connection, timeout_ms: int) -> None:
    """Every SQLite connection's settings (the pool's, and the request path's own)."""
    # sqlite3's own transaction handling does not BEGIN before a SELECT or DDL; turn it
    # off and BEGIN explicitly (SQLAlchemy's documented recipe; the "begin" hook).
    connection.isolation_level = None
    cursor = connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        cursor.execute("PRAGMA journal_mode = WAL")
        # WAL + FULL: a returned commit is on disk (STYLE §2 step 5).
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")  # tokens ON DELETE CASCADE
        # Checkpoints run beside the request path (Store.checkpoint, fifty times a second); the
        # automatic one, inside a commit, stays only as a safety net.
        cursor.execute(f"PRAGMA wal_autocheckpoint = {_AUTOCHECKPOINT_PAGES}")
    finally:
        cursor.close()


class _SqliteWriter:
    """SQLite's one writer, taken before ``BEGIN IMMEDIATE``: a thread lock within this
    process, and an ``flock`` on ``DATABASE-writer`` across processes (``serve --workers``,
    the CLI beside a running server).

    Without it, a writer that finds the database locked by another process waits in
    SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20 ... ms between tries: with two
    workers committing a batch every few milliseconds, most of each one's time went to those
    sleeps. Here a writer polls the lock every 0.1–1 ms instead, up to ``timeout`` seconds
    (then ``StoreUnavailable``, as for a locked database). Processes that do not take the
    lock (an older radiusd, the sqlite3 shell) still meet SQLite's own lock and
    busy_timeout: the lock only shortens the waits, it guards nothing by itself. No lock
    file for an in-memory database, or when the directory is not writable.
    """

    def __init__(self, database: str | None, timeout: float, safe_url: str):
        self._thread_lock = threading.Lock()
        self._path = (None if not database or database == ":memory:"
                      else f"{database}-writer")
        self._timeout = timeout
        self._safe_url = safe_url
        self._fd: int | None = None
        self._is_flocked = False

    def __enter__(self) -> None:
        if not self._thread_lock.acquire(timeout=self._timeout):
            raise StoreUnavailable(f"database {self._safe_url}: the writer is busy")
        try:
            self._flock()
        except BaseException:
            self._thread_lock.release()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._is_flocked:
                self._is_flocked = False
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def _flock(self) -> None:
        if self._path is None:
            return
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError:
                self._path = None  # e.g. a read-only directory: SQLite's lock alone
                return
        deadline = time.monotonic() + self._timeout
        pause = 0.0001
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(f"database {self._safe_url}: locked by another "
                                           f"process for over {self._timeout:g} s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
                continue
            self._is_flocked = True
            return

    def close(self) -> None:
        with self._thread_lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _WalSync:
    """The request path's durability on SQLite: its commits run with ``synchronous =
    NORMAL`` (the write-ahead log is written, not synced) and ``sync`` then calls
    ``fdatasync`` on the log itself, after the writer lock is released.

    Same durability as ``synchronous = FULL``, whose only difference in WAL mode is that
    fsync inside COMMIT (https://sqlite.org/pragma.html#pragma_synchronous): a reply waits
    for a ``sync`` that began after its batch committed, and the log is one file, so that
    fdatasync covers every frame written before it, the batch's and any other process's.
    If SQLite moved the frames out of the log meanwhile (a checkpoint, then the log reset
    or deleted), the checkpoint synced the database file first. Out of the lock, one
    worker's fsync no longer holds up the other workers' commits (``serve --workers``).

    ``ticket()`` is taken when a batch's database work is done; ``sync(ticket)`` returns
    once a fdatasync that began after that ticket was issued has completed, so one
    fdatasync serves every batch that finished before it began, whichever thread calls
    it. A batch that wrote nothing still syncs: what it read may be another worker's
    commit that is not on disk yet, and its answer must not go out before it is.
    (Syncing on a thread of its own, so that the DB thread decides the next batch while
    the disk writes the last, was measured too: it made more, smaller batches and cost
    ~12 % more CPU at a fixed 2,300 logins/s, with the same throughput at two workers.)

    A failed fdatasync leaves it unknown what reached the disk (the kernel may have
    dropped the pages), so every later ``sync`` fails too: the server stops answering
    (NASes fail over) until it is restarted and SQLite recovers from what is on disk.
    """

    def __init__(self, database: str | None, safe_url: str):
        self._path = (None if not database or database == ":memory:"
                      else f"{database}-wal")
        self._safe_url = safe_url
        self._fd: int | None = None
        self._issued = 0    # tickets handed out
        self._covered = 0   # every ticket up to this one is on disk
        self._tickets = threading.Lock()
        self._lock = threading.Lock()  # one fdatasync at a time; guards _fd and _failed
        self._failed: str | None = None

    def ticket(self) -> int:
        with self._tickets:
            self._issued += 1
            return self._issued

    def sync(self, ticket: int) -> None:
        """Raises StoreUnavailable: the log could not be synced (now or before)."""
        with self._lock:
            if self._failed is not None:
                raise StoreUnavailable(self._failed)
            if self._covered >= ticket or self._path is None:
                return
            with self._tickets:
                covering = self._issued  # every one issued before the fdatasync begins
            # SQLite deletes the log (once it checkpointed all of it, synced) when its last
            # connection closes, and a later commit makes a new one: if the file synced
            # was deleted meanwhile (no link left), the new one is synced too.
            for _ in range(3):
                fd = self._wal_fd()
                if fd is None:
                    break
                try:
                    os.fdatasync(fd)
                except OSError as exc:
                    self._failed = (f"database {self._safe_url}: cannot sync its write-ahead "
                                    f"log ({exc.strerror or exc}); logins committed since "
                                    f"the last sync may not be on disk: restart radiusd")
                    raise StoreUnavailable(self._failed) from None
                if os.fstat(fd).st_nlink:
                    break
                os.close(fd)
                self._fd = None
            self._covered = covering

    def _wal_fd(self) -> int | None:
        """The log's descriptor (opened once); None if there is no log."""
        assert self._path is not None
        if self._fd is None:
            try:
                self._fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise StoreUnavailable(f"database {self._safe_url}: cannot open its "
                                       f"write-ahead log: {exc.strerror or exc}") from None
        return self._fd

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_alembic_config())


def _alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic configured in code: no alembic.ini (the revisions ship as package data)."""
    config = AlembicConfig()
    # ConfigParser interpolation: a literal % in the install path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def _json_default(value: object) -> object:
    """Audit ``detail`` values JSON has no type for."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"  # never the bytes themselves: they may be secret
    return str(value)  # model.Secret prints as Secret(<redacted>)


# One encoder for every audit row: json.dumps with options builds a new one per call.
_DETAIL_ENCODER = json.JSONEncoder(sort_keys=True, default=_json_default, ensure_ascii=False)


def _detail_to_json(detail: Mapping[str, object]) -> str:
    return _DETAIL_ENCODER.encode(dict(detail))


def _detail_from_json(stored: str | None) -> dict[str, object]:
    try:
        value = json.loads(stored or "{}")
    except ValueError:
        return {"unparsed": stored}  # edited by hand: show it rather than fail the listing
    return value if isinstance(value, dict) else {"value": value}


class Store:
    """The radiusd database (SQLite for one server, PostgreSQL for several).

    Build it with ``Store.open(url)``; ``close()`` releases the connections. Every public
    method is one transaction, and every mutating admin method writes its ``audit`` event
    in that same transaction.
    """

    def __init__(self, engine: Engine, url: URL, *, write_timeout: float = 2.0):
        """Use ``Store.open``; this takes an engine already set up by it."""
        self._engine = engine
        self._url = url
        self._is_sqlite = engine.dialect.name == "sqlite"
        self._safe_url = url.render_as_string(hide_password=True)
        self._write_lock: Any = (_SqliteWriter(url.database, write_timeout, self._safe_url)
                                 if self._is_sqlite else contextlib.nullcontext())
        self._write_timeout = write_timeout
        self._wal_sync = _WalSync(url.database if self._is_sqlite else None, self._safe_url)
        # The request path's own driver connection per thread (_request_cursor).
        self._local = threading.local()
        self._request_connections: list[Any] = []
        self._request_connections_lock = threading.Lock()
        self._checkpoint_lock = threading.Lock()
        self._sql = _RequestSql(self._is_sqlite)
        self._checkpoint_connection: sqlite3.Connection | None = None
        # Write transactions committed by this Store (``has_new_writes``: an idle server's
        # checkpoint timer then does not wake a thread for nothing).
        self._writes = 0
        self._checkpointed_writes = 0

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, pool_size: int = 1, statement_timeout: float = 2.0) -> "Store":
        """Set up the engine for ``url``; no connection is made until the first call.

        Args:
            url: ``sqlite:///PATH`` or ``postgresql+psycopg://USER[:PASSWORD]@HOST/DB``
                (plain ``postgresql://`` is taken to mean psycopg 3).
            pool_size: connections kept (the size of the caller's DB thread pool).
            statement_timeout: seconds a statement (PostgreSQL) or a wait for the SQLite
                write lock may take before ``StoreUnavailable``.
        Returns:
            The store.
        Raises:
            ConfigError: the URL cannot be parsed, or names a database other than SQLite or
                PostgreSQL, or a driver that is not installed (key ``database.url``).
        """
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ConfigError([("database.url", "not a database URL (use sqlite:///PATH or "
                                "postgresql+psycopg://USER@HOST/DB)")]) from None
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ConfigError([("database.url", f"unsupported database {backend!r} (use "
                                "sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)")])
        if backend == "sqlite" and sqlite3.sqlite_version_info < _SQLITE_NEEDED:
            # UPDATE ... RETURNING (_RequestSql.note_code_use) came with SQLite 3.35.
            raise ConfigError([("database.url", f"SQLite {sqlite3.sqlite_version} is too old: "
                                "radiusd needs 3.35 or newer")])
        timeout_ms = max(1, round(statement_timeout * 1000))
        common: dict[str, Any] = {"hide_parameters": True}  # no hash or seed in any message
        try:
            if backend == "sqlite":
                engine = cls._sqlite_engine(parsed, pool_size, statement_timeout, timeout_ms,
                                            common)
            else:
                engine = create_engine(
                    parsed, pool_size=pool_size, max_overflow=0, pool_pre_ping=True,
                    pool_timeout=max(5.0, statement_timeout),
                    connect_args=_postgresql_session(statement_timeout), **common)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise ConfigError([("database.url", f"cannot use {backend}: {exc}")]) from None
        return cls(engine, parsed, write_timeout=statement_timeout)

    @staticmethod
    def _sqlite_engine(url: URL, pool_size: int, statement_timeout: float, timeout_ms: int,
                       common: dict[str, Any]) -> Engine:
        is_memory = url.database in (None, "", ":memory:")
        pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 0,
                                "pool_timeout": max(5.0, statement_timeout)}
        if is_memory:
            # One shared connection, or each would see its own empty database: fine for
            # single-threaded tests, not for a server.
            pool = {"poolclass": StaticPool}
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": statement_timeout},
            **pool, **common)

        @event.listens_for(engine, "connect")
        def _set_up(dbapi_connection: Any, _record: Any) -> None:
            _set_up_sqlite(dbapi_connection, timeout_ms)

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            # Writers take the write lock up front (BEGIN IMMEDIATE), so they queue on
            # busy_timeout instead of failing when a read transaction tries to upgrade.
            connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN, "BEGIN"))

        return engine

    def close(self) -> None:
        """Close every pooled connection. The store must not be used afterwards."""
        with self._checkpoint_lock:
            if self._checkpoint_connection is not None:
                self._checkpoint_connection.close()
                self._checkpoint_connection = None
        if isinstance(self._write_lock, _SqliteWriter):
            self._write_lock.close()
        self._wal_sync.close()
        with self._request_connections_lock:
            for connection in self._request_connections:
                connection.close()
            self._request_connections.clear()
        self._local = threading.local()
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self._safe_url!r})"

    # --- transactions and error translation ----------------------------------------------

    @contextmanager
    def _transaction(self, *, write: bool = False,
                     conflict: Callable[[IntegrityError], Exception] | None = None
                     ) -> Iterator[Connection]:
        """One unit of work: commit on success, roll back on any exception.

        Raises:
            NotInitialised: a table is missing.
            DataRefused: the statement was refused for its data (an IntegrityError without
                ``conflict``, a DataError, a ProgrammingError).
            StoreUnavailable: cannot connect, locked or timed out, or any other DB error.
            whatever ``conflict`` returns for an IntegrityError (AlreadyExists, NotFound).
        """
        try:
            with self._engine.connect() as connection:
                if write and self._is_sqlite:
                    connection.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
                with connection.begin():
                    yield connection
        except IntegrityError as exc:
            if conflict is None:
                raise DataRefused(self._refused(exc)) from exc
            raise conflict(exc) from None
        except DBAPIError as exc:
            if self._is_missing_table(exc):
                raise NotInitialised() from None
            if not exc.connection_invalidated and _is_refused_data(exc.orig):
                raise DataRefused(self._refused(exc)) from exc
            raise StoreUnavailable(self._describe(exc)) from exc
        except (sqlite3.Error, psycopg.Error) as exc:
            # From the raw cursor of the request path (_RequestSql).
            raise self._driver_error(exc) from exc
        except PoolTimeoutError as exc:
            raise StoreUnavailable(f"database {self._safe_url}: every connection is busy") \
                from exc
        except OSError as exc:
            raise self._os_error(exc) from exc
        except StatementError as exc:
            # A bind processor refused a value (e.g. UTCDateTime and a naive datetime): the
            # caller's mistake, so its own exception, without SQLAlchemy around it.
            if isinstance(exc.orig, (ValueError, TypeError)):
                raise exc.orig from None
            raise

    @contextmanager
    def _request_cursor(self, *, write: bool = False) -> Iterator[Any]:
        """A DBAPI cursor in a transaction of its own, for the request path's driver SQL
        (``_RequestSql``); errors translated as in ``_transaction``.

        On a driver connection the calling thread keeps, not one checked out of
        SQLAlchemy's pool: its checkout, transaction events and (PostgreSQL) pre-ping round
        trip cost ~0.1 ms on SQLite and ~0.2 ms on PostgreSQL a transaction, most of a
        small batch's fixed cost (measured: a batch of one login took 0.58 ms of CPU on
        SQLite; on PostgreSQL its two reads took 0.62 ms). SQLite: begun and committed with
        plain SQL. PostgreSQL: autocommit, so a read is one statement and no BEGIN/COMMIT
        round trips (each read sees its own snapshot, which is enough: every one-time
        effect is a compare-and-set); a write is one transaction. A connection that
        fails is closed and the next call opens a new one.
        """
        if not self._is_sqlite:
            with self._postgresql_cursor(write=write) as cursor:
                yield cursor
            return
        with self._write_lock if write else contextlib.nullcontext():
            try:
                connection = self._request_connection()
                cursor = self._cursor(connection)
                cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield cursor
                except BaseException:
                    connection.rollback()
                    raise
                connection.commit()
                if write:
                    self._writes += 1
            except sqlite3.Error as exc:
                self._drop_request_connection()
                raise self._driver_error(exc) from exc
            except UnicodeEncodeError as exc:
                # A string the driver cannot encode (a lone surrogate): this statement's
                # data (rolled back above), not the database.
                raise self._unencodable(exc) from exc

    @contextmanager
    def _postgresql_cursor(self, *, write: bool) -> Iterator[Any]:
        try:
            connection = self._request_connection()
            cursor = self._cursor(connection)
            if write:
                with connection.transaction():
                    yield cursor
                self._writes += 1
            else:
                yield cursor
        except psycopg.Error as exc:
            self._drop_request_connection()
            raise self._driver_error(exc) from exc
        except OSError as exc:
            self._drop_request_connection()
            raise self._os_error(exc) from exc
        except UnicodeEncodeError as exc:
            # As on SQLite; the connection may be inside an aborted pipeline: a new one.
            self._drop_request_connection()
            raise self._unencodable(exc) from exc

    def _os_error(self, exc: OSError) -> StoreUnavailable:
        """An OSError from the driver (psycopg's selector or socket at the descriptor
        limit: EMFILE): the database cannot be reached from here (issue 21, 13)."""
        detail = (exc.strerror or type(exc).__name__).lower()
        return StoreUnavailable(f"database {self._safe_url} unavailable: {detail}")

    def _unencodable(self, exc: UnicodeEncodeError) -> DataRefused:
        return DataRefused(f"database {self._safe_url} refused a statement: a string it "
                           f"cannot encode ({exc.reason})")

    def _request_connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None and not self._is_sqlite:
            arguments = self._url.translate_connect_args(username="user", database="dbname")
            connection = psycopg.connect(**{**dict(self._url.query), **arguments,
                                            **_postgresql_session(self._write_timeout)},
                                         autocommit=True)
            with self._request_connections_lock:
                self._request_connections.append(connection)
            self._local.connection = connection
        if connection is None:
            path = self._url.database
            if not path or path == ":memory:":
                # The one shared in-memory database (StaticPool): its only connection.
                connection = self._engine.raw_connection().driver_connection
            else:
                connection = sqlite3.connect(path, timeout=self._write_timeout,
                                             check_same_thread=False)
                _set_up_sqlite(connection, max(1, round(self._write_timeout * 1000)))
                # Its commits write the log and _WalSync syncs it, outside the writer lock
                # (apply_batch): the same durability as FULL.
                connection.execute("PRAGMA synchronous = NORMAL")
                with self._request_connections_lock:
                    self._request_connections.append(connection)
            self._local.connection = connection
        return connection

    def _drop_request_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None and connection in self._request_connections:
            with self._request_connections_lock:
                self._request_connections.remove(connection)
            connection.close()

    @contextmanager
    def _write(self, conflict: Callable[[IntegrityError], Exception] | None = None
               ) -> Iterator[Connection]:
        with self._write_lock, self._transaction(write=True, conflict=conflict) as connection:
            yield connection
        self._writes += 1

    def _driver_error(self, exc: sqlite3.Error | psycopg.Error) -> Exception:
        """A driver's own error (the request path's raw cursor) as NotInitialised,
        DataRefused (the statement's data) or StoreUnavailable (the database)."""
        if self._is_missing_table(exc):
            return NotInitialised()
        lines = str(exc).strip().splitlines()
        detail = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        if _is_refused_data(exc):
            return DataRefused(f"database {self._safe_url} refused a statement: {detail}")
        return StoreUnavailable(f"database {self._safe_url} unavailable: {detail}")

    @staticmethod
    def _is_missing_table(exc: Exception) -> bool:
        """``exc`` (SQLAlchemy's, or the driver's own from ``_RequestSql``) says a table is
        missing."""
        orig = exc.orig if isinstance(exc, DBAPIError) else exc
        return (getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE
                or "no such table" in str(orig))

    def _refused(self, exc: DBAPIError) -> str:
        return self._describe(exc).replace(" unavailable: ", " refused a statement: ", 1)

    def _describe(self, exc: DBAPIError) -> str:
        """One line naming the database and the driver's complaint; never the password."""
        cause = exc.orig if exc.orig is not None else exc
        lines = str(cause).strip().splitlines()
        message = f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__
        if self._url.password:
            message = message.replace(str(self._url.password), "***")
        return f"database {self._safe_url} unavailable: {message}"

    # --- schema --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest revision (``alembic upgrade head``).

        Idempotent, and one transaction on both databases: a failed migration leaves the
        schema as it was. On PostgreSQL an advisory lock serialises servers migrating at
        once, and the statement timeout is lifted (a migration may rewrite a large table).

        Raises:
            NotInitialised: the schema is newer than this radiusd (nothing is changed).
            StoreUnavailable: the database cannot be reached or is locked.
        """
        with self._write() as connection:
            if not self._is_sqlite:
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": _MIGRATION_LOCK})
            newer = self._newer_schema(self._current_revisions(connection))
            if newer is not None:
                raise newer
            command.upgrade(_alembic_config(connection), "head")

    def check_schema(self) -> None:
        """Check that the schema exists and is at the newest revision this code knows.

        Raises:
            NotInitialised: no schema, an older one (run ``radiusd init``), or a newer one
                (this radiusd is older than the database).
            StoreUnavailable: the database cannot be reached.
        """
        with self._transaction() as connection:
            current = self._current_revisions(connection)
        heads = set(_scripts().get_heads())
        if not current:
            raise NotInitialised()
        if current == heads:
            return
        newer = self._newer_schema(current)
        if newer is not None:
            raise newer
        raise NotInitialised(
            f"the database schema is at revision {', '.join(sorted(current))}, not "
            f"{', '.join(sorted(heads))}: run `radiusd init`")

    @staticmethod
    def _current_revisions(connection: Connection) -> set[str]:
        """The revisions in ``alembic_version``; empty when there is no schema."""
        return set(MigrationContext.configure(connection).get_current_heads())

    @staticmethod
    def _newer_schema(current: set[str]) -> NotInitialised | None:
        """The error for a schema written by a newer radiusd (unknown revisions), else None."""
        scripts = _scripts()
        unknown = current - {script.revision for script in scripts.walk_revisions()}
        if not unknown:
            return None
        return NotInitialised(
            f"the database schema (revision {', '.join(sorted(unknown))}) is newer than "
            f"this radiusd (revision {', '.join(sorted(scripts.get_heads()))}): "
            "upgrade radiusd")

    # --- users ---------------------------------------------------------------------------

    def add_user(self, name: str, *, pin_hash: bytes | None, password_hash: str | None,
                 at: datetime, audit: AuditEvent, generation: int = 0) -> int:
        """Create a user (no tokens, not disabled, no failures).

        Args:
            name: the RADIUS User-Name (validated by the caller).
            pin_hash: ``Keys.hash_pin`` output, or None for a user without PIN.
            password_hash: the self-service password hash, or None.
            at: creation time (aware). audit: written with the user.
            generation: the first ``users.generation`` (``WebAccount``; a random start
                keeps a re-created name from matching a session of the deleted one).
        Returns:
            The new user's id.
        Raises:
            AlreadyExists: the name is taken.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        taken = AlreadyExists(f"user {name!r} already exists")
        with self._write(conflict=lambda exc: taken) as connection:
            if self._user_id(connection, name) is not None:
                raise taken
            result = connection.execute(insert(users).values(
                name=name, pin_hash=pin_hash, password_hash=password_hash, is_disabled=False,
                failures=0, locked_at=None, created_at=at, generation=generation))
            user_id = int(result.inserted_primary_key[0])
            self._insert_audit(connection, audit)
        return user_id

    def get_user(self, name: str) -> UserInfo:
        """One user as admins see it.

        Args:
            name: the user name (exact, case-sensitive).
        Returns:
            The user, with the serials of their tokens.
        Raises:
            NotFound: no such user ("no user 'bob'").
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            found = self._user_infos(connection, users.c.name == name)
        if not found:
            raise NotFound(f"no user {name!r}")
        return found[0]

    def list_users(self, search: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[UserInfo]:
        """Users ordered by name.

        Args:
            search: keep names containing this, ignoring case (None or "": all).
            limit, offset: the page.
        Returns:
            At most ``limit`` users.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            return self._user_infos(connection, self._search(search), limit=limit,
                                    offset=offset)

    def count_users(self, search: str | None = None) -> int:
        """The number of users ``list_users(search)`` pages through.

        Args:
            search: as for ``list_users``.
        Returns:
            The count.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            query = select(func.count()).select_from(users).where(self._search(search))
            return int(connection.execute(query).scalar_one())

    def set_pin(self, name: str, pin_hash: bytes | None, audit: AuditEvent) -> None:
        """Set or clear a user's PIN.

        Args:
            name: the user. pin_hash: ``Keys.hash_pin`` output, or None to clear.
            audit: written with the change.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        self._update_user(name, {"pin_hash": pin_hash}, audit)

    def set_password(self, name: str, password_hash: str | None, audit: AuditEvent) -> None:
        """Set or clear a user's self-service password.

        Args:
            name: the user. password_hash: the scrypt string, or None to clear.
            audit: written with the change.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        # A new generation ends the user's open self-service sessions (issue 20, 4).
        self._update_user(name, {"password_hash": password_hash,
                                 "generation": users.c.generation + 1}, audit)

    def get_password_hash(self, name: str) -> str | None:
        """A user's self-service password hash (for the self-service sign-in).

        Returns:
            The hash, or None when the user has no self-service password.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            row = connection.execute(
                select(users.c.password_hash).where(users.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"no user {name!r}")
        return row.password_hash

    def set_disabled(self, name: str, is_disabled: bool, audit: AuditEvent) -> None:
        """Disable (True) or enable (False) a user.

        Args:
            name: the user. is_disabled: the new state. audit: written with the change.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        self._update_user(name, {"is_disabled": is_disabled,
                                 "generation": users.c.generation + 1}, audit)

    def unlock(self, name: str, audit: AuditEvent) -> None:
        """Clear a user's failure count and lock.

        Args:
            name: the user. audit: written with the change.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        self._update_user(name, {"failures": 0, "locked_at": None}, audit)

    def delete_user(self, name: str, audit: AuditEvent) -> None:
        """Delete a user and (ON DELETE CASCADE) their tokens and emergency sets.

        Args:
            name: the user. audit: written with the deletion.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            result = connection.execute(delete(users).where(users.c.name == name))
            if result.rowcount != 1:
                raise NotFound(f"no user {name!r}")
            self._insert_audit(connection, audit)

    def load_subject(self, name: str) -> Subject | None:
        """The user, their tokens and their latest emergency set for ``decide_access``.

        Two queries in one read transaction: the user joined to their tokens, then the
        user's latest emergency set joined to its codes (one join of both would multiply
        tokens by codes).

        Returns:
            The subject (``emergency`` as ``get_emergency_set`` returns it), or None for an
            unknown user.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        return self.load_subjects([name]).get(name)

    def load_subjects(self, names: Sequence[str], *,
                      with_codes: bool = True) -> dict[str, Subject]:
        """``load_subject`` for many users at once (the batched request path): two queries
        whatever the number of names. Unknown names are absent from the result.

        With ``with_codes=False`` each emergency set comes without its codes (``codes=()``,
        ``unused_count`` set): the request path then fetches only the candidate code
        (``find_emergency_codes``) instead of reading the whole set.

        Raises:
            StoreUnavailable, NotInitialised: as ``load_subject``.
        """
        wanted = sorted(set(names))
        if not wanted:
            return {}
        sql = self._sql
        if with_codes:
            with self._transaction() as connection:
                rows = self._fetch(self._cursor(connection), sql.subject_rows, wanted)
                sets = (self._latest_emergency_sets(connection, users.c.name.in_(wanted))
                        if rows else {})
        else:
            with self._request_cursor() as cursor:
                rows, headers = self._fetch_both(cursor, (sql.subject_rows, sql.set_headers),
                                                 wanted)
                sets = {row[1]: self._set_header(row) for row in headers}
        moment = sql.moment
        subjects = {}
        for user_id, user_rows in itertools.groupby(rows, key=itemgetter(0)):
            user_rows = list(user_rows)
            (_, name, is_disabled, pin_hash, failures, locked_at, *_) = user_rows[0]
            subjects[name] = Subject(
                id=user_id, name=name, is_disabled=bool(is_disabled),
                pin_hash=None if pin_hash is None else bytes(pin_hash),
                failures=failures, locked_at=moment(locked_at),
                tokens=tuple(
                    Token(id=token_id, serial=serial, kind=_TOKEN_KINDS[kind],
                          digits=digits, period=period, sealed_seed=bytes(sealed_seed),
                          last_used=last_used, algorithm=algorithm,
                          receipt=self._row_receipt(receipt_key, reply, expires_at))
                    for (*_, token_id, serial, kind, digits, period, sealed_seed, last_used,
                         algorithm, receipt_key, reply, expires_at) in user_rows
                    if token_id is not None),
                emergency=sets.get(user_id))
        return subjects

    def load_replaced_sets(self, names: Sequence[str]) -> dict[int, EmergencySet]:
        """For each named user, the set before their latest one (``_RequestSql.set_headers``
        order, one further), without its codes, by user id: one query.

        The request path reads it only for a Reject that found nothing better, to tell a
        code of a replaced set from a wrong code (issue 20, 12).

        Raises:
            StoreUnavailable, NotInitialised: as ``load_subject``.
        """
        wanted = sorted(set(names))
        if not wanted:
            return {}
        with self._request_cursor() as cursor:
            rows = self._fetch(cursor, self._sql.replaced_set_headers, wanted)
        return {row[1]: self._set_header(row) for row in rows}

    def _fetch_both(self, cursor: Any, templates: tuple[str, str],
                    values: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        """Two ``_fetch`` reads of the same values; on PostgreSQL in one round trip
        (pipeline mode), on SQLite the second only if the first found rows."""
        if self._is_sqlite:
            first = self._fetch(cursor, templates[0], values)
            return first, (self._fetch(cursor, templates[1], values) if first else [])
        connection = cursor.connection
        second = self._cursor(connection)
        with connection.pipeline():
            cursor.execute(*self._sql.in_(templates[0], values))
            second.execute(*self._sql.in_(templates[1], values))
        return cursor.fetchall(), second.fetchall()

    def _fetch(self, cursor: Any, template: str, values: Sequence[Any],
               *extra: Any) -> list[Any]:
        """Rows of a ``_RequestSql`` read whose "{in}" list is ``values``."""
        text, padded = self._sql.in_(template, values)
        cursor.execute(text, [*padded, *extra])
        return cursor.fetchall()

    def _row_receipt(self, key: bytes | None, reply: str | None,
                     expires_at: Any) -> Receipt | None:
        """The receipt columns of a one-time row (an Access-Accept's), or None."""
        if key is None:
            return None
        return Receipt(key=bytes(key), code=PacketCode.ACCESS_ACCEPT,
                       reply_messages=tuple(json.loads(reply or "[]")),
                       expires_at=self._sql.moment(expires_at))

    def _set_header(self, row: Sequence[Any]) -> EmergencySet:
        """A ``_RequestSql.set_headers`` row: the set without its codes, ``unused_count``
        from ``codes_left``."""
        moment = self._sql.moment
        (set_id, user_id, code_length, issued_at, expires_at, issued_by, reason, revoked_at,
         revoked_reason, last_used_at, last_used_client, codes_left) = row
        return EmergencySet(
            id=set_id, user_id=user_id, code_length=code_length, issued_at=moment(issued_at),
            expires_at=moment(expires_at), issued_by=issued_by, reason=reason,
            revoked_at=moment(revoked_at), revoked_reason=revoked_reason,
            last_used_at=moment(last_used_at), last_used_client=last_used_client,
            unused_count=codes_left)

    # --- tokens --------------------------------------------------------------------------

    def add_token(self, user_name: str, *, serial: str, kind: TokenKind, digits: int,
                  period: int, sealed_seed: bytes, last_used: int, at: datetime,
                  audit: AuditEvent) -> int:
        """Give a user a token.

        Args:
            serial: unique across all users. kind: TOTP or HOTP. digits, period: as the
                token shows them. sealed_seed: ``Keys.seal_seed`` output. last_used: the
                step/counter last accepted (``model.Token``). at: creation time.
        Returns:
            The new token's id.
        Raises:
            NotFound: no such user. AlreadyExists: the serial is taken.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        taken = AlreadyExists(f"token serial {serial!r} already exists")
        no_user = NotFound(f"no user {user_name!r}")

        def conflict(exc: IntegrityError) -> Exception:
            # Lost a race: the serial was taken, or the user deleted, since the checks below.
            return taken if "serial" in str(exc.orig) else no_user

        with self._write(conflict=conflict) as connection:
            user_id = self._user_id(connection, user_name)
            if user_id is None:
                raise no_user
            if connection.execute(
                    select(tokens.c.id).where(tokens.c.serial == serial)).first() is not None:
                raise taken
            result = connection.execute(insert(tokens).values(
                user_id=user_id, serial=serial, kind=TokenKind(kind).value, digits=digits,
                period=period, algorithm="SHA1", sealed_seed=sealed_seed,
                last_used=last_used, created_at=at))
            token_id = int(result.inserted_primary_key[0])
            self._insert_audit(connection, audit)
        return token_id

    def list_tokens(self, user_name: str) -> list[TokenInfo]:
        """A user's tokens as admins see them (never the seed).

        Returns:
            The tokens, ordered by serial; empty when the user has none.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        query = (select(users.c.id.label("user_id"), tokens.c.id, tokens.c.serial,
                        tokens.c.kind, tokens.c.digits, tokens.c.period, tokens.c.last_used,
                        tokens.c.created_at)
                 .select_from(users.outerjoin(tokens, tokens.c.user_id == users.c.id))
                 .where(users.c.name == user_name)
                 .order_by(tokens.c.serial))
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        if not rows:
            raise NotFound(f"no user {user_name!r}")
        return [TokenInfo(id=row.id, user_name=user_name, serial=row.serial,
                          kind=_TOKEN_KINDS[row.kind], digits=row.digits, period=row.period,
                          last_used=row.last_used, created_at=row.created_at)
                for row in rows if row.id is not None]

    def delete_token(self, user_name: str, serial: str, audit: AuditEvent) -> None:
        """Delete one of a user's tokens.

        Raises:
            NotFound: no such user ("no user 'alice'"), or the user has no token with that
                serial ("user 'alice' has no token 'X'").
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            user_id = self._user_id(connection, user_name)
            if user_id is None:
                raise NotFound(f"no user {user_name!r}")
            result = connection.execute(delete(tokens).where(
                tokens.c.user_id == user_id, tokens.c.serial == serial))
            if result.rowcount != 1:
                raise NotFound(f"user {user_name!r} has no token {serial!r}")
            self._insert_audit(connection, audit)

    # --- emergency code sets -------------------------------------------------------------

    def issue_emergency_set(self, user_name: str, emergency: EmergencySet,
                            code_hashes: Sequence[bytes],
                            audits: Sequence[AuditEvent], *,
                            superseded_audit: Callable[[str, int], AuditEvent] | None = None
                            ) -> EmergencySet:
        """Store a new set with its codes, revoking the user's earlier sets, in one
        transaction with its audit rows.

        Every earlier set of the user not yet revoked gets ``revoked_at =
        emergency.issued_at`` and ``revoked_reason = "superseded"``. On PostgreSQL the
        user's row is locked first, so two sets issued at once end with one of them
        revoked, never both active.

        Args:
            user_name: the user the set is for.
            emergency: the set's values (``id``, ``user_id``, lifetime, issuer, reason);
                its ``codes`` are ignored.
            code_hashes: the codes' keyed hashes (32 bytes each), in export order: the
                first becomes position 1.
            audits: written with the set (``emergency.issue``, ``emergency.export``).
            superseded_audit: ``(set_id, codes_left) -> AuditEvent``, the row written
                (before ``audits``) for each earlier set this one ends while it was still
                active (not expired at ``emergency.issued_at``).
        Returns:
            The stored set, as ``get_emergency_set`` returns it.
        Raises:
            NotFound: no such user, or ``emergency.user_id`` is not that user's id (the
                user was deleted and created again since the hashes were bound to it).
            AlreadyExists: a set with this id exists (128 random bits: never by chance).
            ValueError: a code hash is not 32 bytes.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        if any(len(code_hash) != _CODE_HASH_BYTES for code_hash in code_hashes):
            raise ValueError(f"emergency code hashes must be {_CODE_HASH_BYTES} bytes")
        no_user = NotFound(f"no user {user_name!r}")

        def conflict(exc: IntegrityError) -> Exception:
            # The only unique key the caller chooses is the set id; anything else (the
            # user's row gone under a foreign key) means the user is not there.
            if "pk_emergency_set" in str(exc.orig) or "emergency_set.id" in str(exc.orig):
                return AlreadyExists(f"emergency set {emergency.id!r} already exists")
            return no_user

        with self._write(conflict=conflict) as connection:
            # FOR NO KEY UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises):
            # a second issuer for this user waits here, then supersedes this set.
            user_id = connection.execute(
                select(users.c.id).where(users.c.name == user_name)
                .with_for_update(key_share=True)).scalar_one_or_none()
            if user_id is None or user_id != emergency.user_id:
                raise no_user
            if superseded_audit is not None:
                active = connection.execute(
                    select(emergency_set.c.id, emergency_set.c.codes_left)
                    .where(emergency_set.c.user_id == user_id,
                           emergency_set.c.revoked_at.is_(None),
                           emergency_set.c.expires_at > emergency.issued_at)
                    .order_by(emergency_set.c.issued_at, emergency_set.c.id)).all()
                audits = [*(superseded_audit(row.id, row.codes_left) for row in active),
                          *audits]
            connection.execute(
                update(emergency_set)
                .where(emergency_set.c.user_id == user_id, emergency_set.c.revoked_at.is_(None))
                .values(revoked_at=emergency.issued_at, revoked_reason=SUPERSEDED))
            connection.execute(insert(emergency_set).values(
                id=emergency.id, user_id=user_id, code_length=emergency.code_length,
                issued_at=emergency.issued_at, expires_at=emergency.expires_at,
                issued_by=emergency.issued_by, reason=emergency.reason,
                revoked_at=emergency.revoked_at, revoked_reason=emergency.revoked_reason,
                last_used_at=None, last_used_client=None, codes_left=len(code_hashes)))
            if code_hashes:
                reserved = bytes(CODE_ROW_ROOM) if self._is_sqlite else None
                connection.execute(insert(emergency_code), [
                    {"set_id": emergency.id, "position": position,
                     "code_hash": bytes(code_hash), "used_at": None, "used_client": None,
                     "reserved": reserved}
                    for position, code_hash in enumerate(code_hashes, start=1)])
            for audit in audits:
                self._insert_audit(connection, audit)
            stored = self._emergency_set(connection, emergency_set,
                                         emergency_set.c.id == emergency.id)
        return stored  # type: ignore[return-value]  # inserted above: never None

    def get_emergency_set(self, user_name: str) -> EmergencySet | None:
        """The user's latest set, whatever its state, with all its codes (hashes only).

        "Latest" is the set not revoked, if any (issuing revokes all others, so there is
        at most one), else the one issued last (then revoked last). Not simply the last
        ``issued_at``: a set issued by a server whose clock is behind, or at the same
        instant by a fixed clock, must still be the one that counts.

        Returns:
            The set, or None when the user never had one.
        Raises:
            NotFound: no such user.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            if self._user_id(connection, user_name) is None:
                raise NotFound(f"no user {user_name!r}")
            return self._latest_emergency_set(connection, users.c.name == user_name)

    def revoke_emergency_set(self, set_id: str, *, at: datetime, reason: str,
                             audit: AuditEvent) -> bool:
        """End a set now, with its audit row in the same transaction.

        Args:
            set_id: the set. at: the revocation time (aware). reason: why (shown in status).
            audit: written only when the set was revoked by this call.
        Returns:
            True when this call revoked the set; False (nothing written) when there is no
            such set or it was already revoked.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            result = connection.execute(self._revoke_set(set_id, at, reason))
            if result.rowcount != 1:
                return False
            self._insert_audit(connection, audit)
        return True

    def count_active_emergency_sets(self, now: datetime) -> int:
        """Sets usable at ``now``: not revoked and not expired (used-up sets included).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        query = (select(func.count()).select_from(emergency_set)
                 .where(emergency_set.c.revoked_at.is_(None),
                        emergency_set.c.expires_at > now))
        with self._transaction() as connection:
            return int(connection.execute(query).scalar_one())

    def count_emergency_uses(self, since: datetime) -> int:
        """Emergency codes used at or after ``since`` (of users not deleted since).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        query = (select(func.count()).select_from(emergency_code)
                 .where(emergency_code.c.used_at >= since))
        with self._transaction() as connection:
            return int(connection.execute(query).scalar_one())

    # --- settings ------------------------------------------------------------------------

    def load_settings(self) -> Settings:
        """The self-service policy: the stored values over SPEC's defaults.

        Returns:
            The settings (an invalid stored value reads as its default).
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        return settings_from_rows(self.load_setting_rows())

    def load_setting_rows(self) -> dict[str, str]:
        """The stored policy rows as text, ``{key: value}`` (``settings.stored_problems``).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            rows = connection.execute(select(tables.settings.c.key,
                                             tables.settings.c.value)).all()
        return {row.key: row.value for row in rows}

    def set_setting(self, key: str, value: str, audit: AuditEvent) -> None:
        """Store one policy value (validated and normalised by the caller).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        dialect_insert = sqlite_insert if self._is_sqlite else postgresql_insert
        statement = dialect_insert(tables.settings).values(key=key, value=value,
                                                           updated_at=audit.at)
        statement = statement.on_conflict_do_update(
            index_elements=[tables.settings.c.key],
            set_={"value": statement.excluded.value,
                  "updated_at": statement.excluded.updated_at})
        with self._write() as connection:
            connection.execute(statement)
            self._insert_audit(connection, audit)

    # --- the key check (issue 21, 7) ----------------------------------------------------

    def key_check(self) -> str | None:
        """The key check value stored by ``record_key_check``; None if there is none yet
        (a database initialised before radiusd stored one).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        query = select(tables.settings.c.value).where(tables.settings.c.key == KEY_CHECK)
        with self._transaction() as connection:
            return connection.execute(query).scalar_one_or_none()

    def record_key_check(self, value: str, at: datetime) -> str:
        """Store ``value`` as the key check value unless one is stored already; returns the
        stored one (the first written wins, so two servers starting at once agree).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        dialect_insert = sqlite_insert if self._is_sqlite else postgresql_insert
        statement = dialect_insert(tables.settings).values(
            key=KEY_CHECK, value=value, updated_at=at).on_conflict_do_nothing(
            index_elements=[tables.settings.c.key])
        query = select(tables.settings.c.value).where(tables.settings.c.key == KEY_CHECK)
        with self._write() as connection:
            connection.execute(statement)
            return connection.execute(query).scalar_one()

    # --- authentication effects ----------------------------------------------------------

    def apply(self, commits: Sequence[Commit], audit: AuditEvent,
              receipt: Receipt | None = None) -> bool:
        """Run one request's commits and its audit row in one transaction.

        ``AdvanceToken`` (``... WHERE last_used < :value``) and ``UseEmergencyCode``
        (``... WHERE used_at IS NULL`` and the set still active at ``at``) are
        compare-and-sets (``model.CAS_COMMITS``): if one matches no row, another request or
        server got there first (or the set ended), and nothing of this call is written,
        the audit row included. ``RevokeEmergencySet`` of a set already revoked is no
        lost race: it changes nothing and the rest commits.

        Args:
            commits: the verdict's effects, in order.
            audit: the request's audit row.
            receipt: the answer, for retransmissions reaching another server (a receipt
                already stored under the same key is left as it is).
        Returns:
            True when everything is committed, and on disk (SQLite: the log synced by
            ``apply_batch``); False when a compare-and-set lost and all was rolled back.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out;
                nothing was committed.
            NotInitialised: the schema is missing.
            TypeError: a commit of a kind this store does not know.
        """
        return self.apply_batch([(commits, audit, receipt)])[0]

    def find_receipts(self, keys: Sequence[bytes], now: datetime) -> dict[bytes, Receipt]:
        """The unexpired receipts stored under ``keys``, by key: one query.

        Raises:
            StoreUnavailable: the database cannot be reached.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        sql = self._sql
        with self._request_cursor() as cursor:
            rows = self._fetch(cursor, sql.receipts, wanted, sql.instant(now))
        return {bytes(key): Receipt(key=bytes(key), code=code,
                                    reply_messages=tuple(json.loads(reply_messages)),
                                    expires_at=sql.moment(expires_at))
                for key, code, reply_messages, expires_at in rows}

    def apply_batch(self, items: Sequence[tuple[Sequence[Commit], AuditEvent,
                                                Receipt | None]], *,
                    sync: bool = True,
                    recount: Callable[[int, int], tuple[AuditEvent, Receipt | None] | None]
                    | None = None) -> list[bool]:
        """Group commit: ``apply`` for many requests in ONE transaction (one fsync).

        Each request keeps its own compare-and-set check: a request whose CAS matches no
        row has none of its effects, audit row or receipt written (its own savepoint is
        rolled back, or its CAS ran first and nothing of it followed), and gets False;
        the others commit together. A receipt already stored under the same key (another
        server answered this very request) is left as it is.

        Args:
            sync: return only once the batch is on disk. False (SQLite): it is committed
                and visible, and the caller must ``sync(sync_ticket())`` before anything
                that depends on it leaves the server (``authenticate_batch`` does, once,
                after its last query).
            recount: for each item whose ``UseEmergencyCode`` committed, called inside the
                transaction as ``recount(index, codes_left)`` with its set's unused codes
                as this use left them (not as the caller's snapshot had them: requests
                using codes of one set at once, in this batch or in others, each get
                their own count); returns the item's audit event and receipt told from
                that count, to store instead of its own, or None to keep them. Only a
                receipt on the code's row (the code's use the item's first commit) is
                told again.
        Returns:
            One bool per item, in order: True when committed.
        Raises:
            DataRefused: a statement was refused for the data of one of the requests
                (which one is not known in pipeline mode); nothing of the batch was
                committed, and the database is up (the caller may retry each alone).
            StoreUnavailable: nothing of the batch was committed.
            NotInitialised: the schema is missing.
        """
        sql = self._sql
        # Everything but the SQL itself is prepared before the writer is taken: SQLite has
        # one writer for every process (serve --workers), so the time it is held is what
        # the workers queue for.
        prepared = []
        for commits, audit, receipt in items:
            audit_row = self._audit_row(audit)
            # The receipt goes on the row of the request's compare-and-set (its first
            # commit), or else into the receipt table.
            on_row = bool(commits) and isinstance(commits[0], CAS_COMMITS)
            statements = [self._statements(commit, receipt if position == 0 and on_row
                                           else None)
                          for position, commit in enumerate(commits)]
            if receipt is not None and not on_row:
                statements.append(self._statements(SaveReceipt(receipt)))
            prepared.append((statements, audit_row))
        # Rows are locked in one global order (by table, then id), so batches committing at
        # once on several servers or threads (PostgreSQL) do not deadlock on each other.
        order = sorted(range(len(items)), key=lambda index: _lock_order(items[index][0]))
        results: list[bool] = [False] * len(items)
        counts: dict[int, int] = {}  # by item: its set's codes left after its use
        pipelined = (not self._is_sqlite
                     and all(_cas_first_only(effects) for effects, _ in prepared))
        with (self._request_cursor(write=True) as cursor,
              cursor.connection.pipeline() if pipelined else contextlib.nullcontext()):
            if pipelined:
                self._run_pipelined(cursor, [prepared[index][0] for index in order],
                                    order, results, counts)
            else:
                for index in order:
                    results[index] = self._apply_one(cursor, prepared[index][0], counts,
                                                     index)
                    if not results[index]:
                        counts.pop(index, None)  # rolled back with the rest of it
            if recount is not None and counts:
                self._recount(cursor, items, prepared, counts, recount)
            audits = [prepared[index][1] for index in order if results[index]]
            if audits:
                cursor.executemany(sql.insert_audit, audits)  # pipelined: same round trip
        if sync:
            self.sync(self.sync_ticket())
        return results

    def sync_ticket(self) -> int:
        """A ticket for ``sync``: taken once a batch's reads and commit are done."""
        return self._wal_sync.ticket()

    def sync(self, ticket: int) -> None:
        """Return once everything committed, and everything read, before ``ticket`` was
        taken is on disk (SQLite: ``_WalSync``; PostgreSQL: already, so at once).

        Raises:
            StoreUnavailable: the write-ahead log could not be synced.
        """
        self._wal_sync.sync(ticket)

    def probe_commit(self) -> None:
        """Whether a login can commit now (the outage probe, ``app.DatabaseRunner``): one
        transaction on the request path's writer, as a login batch takes it (SQLite: the
        writer lock and ``BEGIN IMMEDIATE``), that writes a row of the receipt table and
        deletes it again, so its commit writes the log like a login's (a page on SQLite, a
        commit record on PostgreSQL), then the sync a login's reply waits for. A read
        proves nothing: with a full disk, or SQLite's writer held by another process, reads
        answer while every login fails (issue 21, 4). The row's key is shorter than any
        real receipt's (``Keys.receipt_hash``, 32 bytes), and no other transaction sees it.

        Raises:
            StoreUnavailable: the database cannot be reached, is locked, full or cannot sync.
            NotInitialised: the schema is missing.
        """
        sql = self._sql
        with self._request_cursor(write=True) as cursor:
            cursor.execute(sql.insert_receipt, (_PROBE_RECEIPT_KEY, 0, "[]",
                                                sql.instant(_PROBE_RECEIPT_EXPIRY)))
            cursor.execute(f"DELETE FROM receipt WHERE key = {sql.p}", (_PROBE_RECEIPT_KEY,))
        self.sync(self.sync_ticket())

    @staticmethod
    def _run_pipelined(cursor: Any, effects: Sequence[Sequence[Sequence[_Statement]]],
                       order: Sequence[int], results: list[bool],
                       counts: dict[int, int]) -> None:
        """PostgreSQL: ``_apply_one`` for every request of a batch in two round trips
        instead of one per statement (psycopg's pipeline mode). First every request's
        compare-and-set, then, for the requests whose compare-and-set matched its row,
        their other statements. Each request has at most one compare-and-set and it
        comes first (``_cas_first_only``), so a loser has written nothing, as in
        ``_apply_one``. Rows are locked in one global order, so that batches committing
        at once on several servers do not deadlock: the compare-and-sets (tokens, codes)
        in batch order, then the other statements (users, sets, receipts) sorted by the
        row each locks. A set's count after a use (``note_code_use``) goes into ``counts``
        by request, read once the second round trip is done.
        """
        connection = cursor.connection
        checks: list[tuple[int, Any]] = []
        with connection.pipeline() as pipeline:
            for index, request in zip(order, effects):
                first = request[0][0] if request and request[0] else None
                if first is None or not first[2]:
                    results[index] = True
                    continue
                check = connection.cursor()
                check.execute(first[0], first[1])
                checks.append((index, check))
            pipeline.sync()
            for index, check in checks:
                results[index] = check.rowcount == 1
            rest = []
            for index, request in zip(order, effects):
                if not results[index]:
                    continue
                statements = [statement for commit in request for statement in commit]
                if statements and statements[0][2]:
                    statements = statements[1:]  # the compare-and-set, run above
                rest += [(lock, len(rest) + position, statement, parameters, index)
                         for position, (statement, parameters, _, lock) in enumerate(statements)]
            counters: list[tuple[list[int], Any]] = []
            for is_counted, run in itertools.groupby(
                    sorted(rest, key=itemgetter(0, 1)),
                    key=lambda entry: entry[2].endswith(_COUNTED)):
                if not is_counted:
                    for *_, statement, parameters, _index in run:
                        cursor.execute(statement, parameters)
                    continue
                # The sets' updates (one text) in lock order, as one executemany that
                # keeps each one's row: a cursor per statement cost ~10 µs each.
                run = list(run)
                counter = connection.cursor()
                counter.executemany(run[0][2], [entry[3] for entry in run], returning=True)
                counters.append(([entry[4] for entry in run], counter))
        for indexes, counter in counters:
            for position, index in enumerate(indexes):
                if position and not counter.nextset():
                    break
                row = counter.fetchone()
                if row is not None:
                    counts[index] = row[0]

    @staticmethod
    def _apply_one(cursor: Any, effects: Sequence[Sequence[_Statement]],
                   counts: dict[int, int] | None = None, index: int = 0) -> bool:
        """One request's effects inside a batch; False (nothing of it kept) if a CAS lost."""
        if _cas_first_only(effects):
            # At most one CAS and it runs first (decide's verdicts have this shape): if it
            # loses nothing of the request was written, so no savepoint is needed.
            return Store._run_effects(cursor, effects, counts, index)
        cursor.execute("SAVEPOINT request")
        if not Store._run_effects(cursor, effects, counts, index):
            cursor.execute("ROLLBACK TO SAVEPOINT request")
            cursor.execute("RELEASE SAVEPOINT request")
            return False
        cursor.execute("RELEASE SAVEPOINT request")
        return True

    @staticmethod
    def _run_effects(cursor: Any, effects: Sequence[Sequence[_Statement]],
                     counts: dict[int, int] | None = None, index: int = 0) -> bool:
        """Run the statements of ``_statements``; False as soon as a compare-and-set
        matches no row (the statements after it are not run). A set's count after a use
        goes into ``counts[index]``."""
        for statements in effects:
            for statement, parameters, is_cas, _ in statements:
                cursor.execute(statement, parameters)
                if is_cas and cursor.rowcount != 1:
                    return False
                if statement.endswith(_COUNTED):
                    row = cursor.fetchone()
                    if row is not None and counts is not None:
                        counts[index] = row[0]
        return True

    def _recount(self, cursor: Any, items: Sequence[tuple[Sequence[Commit], AuditEvent,
                                                          Receipt | None]],
                 prepared: list, counts: Mapping[int, int],
                 recount: Callable[[int, int], tuple[AuditEvent, Receipt | None] | None]
                 ) -> None:
        """``apply_batch``'s ``recount``: each counted item's audit row (not yet written)
        and the receipt on its code's row told again from the committed count, where the
        caller's count differs."""
        for index, codes_left in counts.items():
            settled = recount(index, codes_left)
            if settled is None:
                continue
            audit, receipt = settled
            prepared[index] = (prepared[index][0], self._audit_row(audit))
            first = items[index][0][0] if items[index][0] else None
            if receipt is not None and isinstance(first, UseEmergencyCode):
                cursor.execute(self._sql.note_receipt_reply,
                               (json.dumps(list(receipt.reply_messages)), first.code_id))

    def _audit_row(self, audit: AuditEvent) -> tuple:
        """An audit event as ``_RequestSql.insert_audit``'s parameters."""
        return (self._sql.instant(audit.at), audit.node, audit.action, audit.result,
                audit.actor, audit.user_name, audit.reason, audit.client,
                audit.nas_address, _detail_to_json(audit.detail))

    def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database file (a PASSIVE checkpoint,
        which never blocks readers or the writer), on a connection of its own.

        Left to SQLite, the checkpoint runs inside whichever commit crosses the WAL size
        threshold and stalls every login waiting behind it; the server calls this fifty
        times a second from a thread of its own instead. A no-op on PostgreSQL.
        """
        if not self._is_sqlite:
            return
        with self._checkpoint_lock:
            writes = self._writes  # those committed before it began: the ones it copies
            if self._checkpoint_connection is None:
                path = self._url.database
                self._checkpoint_connection = sqlite3.connect(
                    path, timeout=1.0, check_same_thread=False, isolation_level=None)
            try:
                self._checkpoint_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"database {self._safe_url}: checkpoint failed: "
                                       f"{exc}") from None
            self._checkpointed_writes = writes  # a failed one is tried again next time

    def has_new_writes(self) -> bool:
        """Whether this Store committed a write since the last successful ``checkpoint``
        began (cheap: no database call). Writes of other processes are not seen; each checkpoints its own.
        """
        return self._writes != self._checkpointed_writes

    def prune_receipts(self, now: datetime, limit: int = 5000) -> int:
        """Delete at most ``limit`` expired receipts (oldest first); returns how many.

        Bounded, so one call never holds the writer (and with it every login) for long;
        the caller runs it every second. With nothing expired (the common case: the table
        only keeps displaced receipts) it is one indexed read and takes no write lock: a
        write transaction a second, queued with the logins, showed in their latency.
        """
        with self._request_cursor() as cursor:
            cursor.execute(self._sql.any_expired_receipt, (self._sql.instant(now),))
            if cursor.fetchone() is None:
                return 0
        expired = (select(receipt_table.c.key).where(receipt_table.c.expires_at <= now)
                   .order_by(receipt_table.c.expires_at).limit(limit))
        with self._write() as connection:
            return connection.execute(
                delete(receipt_table).where(receipt_table.c.key.in_(expired))).rowcount

    def _statements(self, commit: Commit, receipt: Receipt | None = None
                    ) -> list[_Statement]:
        """One effect as ``(driver SQL, parameters, is_compare_and_set, locked row)``
        statements for the transaction's DBAPI cursor (see ``_RequestSql``); a
        compare-and-set must match exactly one row. ``receipt`` (compare-and-sets only) is written on the row it
        changes; without one, the row's earlier receipt is cleared.

        Raises:
            TypeError: a commit of a kind this store does not know.
        """
        sql = self._sql
        is_cas = isinstance(commit, CAS_COMMITS)  # the first statement is the CAS
        on_row = ((None, None, None) if receipt is None else
                  (receipt.key, json.dumps(list(receipt.reply_messages)),
                   sql.instant(receipt.expires_at)))
        match commit:
            case AdvanceToken(token_id=token_id, value=value):
                return [(sql.advance_token, (value, *on_row, token_id, value), is_cas,
                         (0, token_id))]
            case RecordFailure(user_id=user_id, at=at, max_failures=max_failures,
                               restart=restart):
                return [(sql.record_failure, (restart, restart, max_failures, sql.instant(at),
                                              restart, user_id), False, (2, user_id))]
            case ResetFailures(user_id=user_id):
                return [(sql.reset_failures, (user_id,), False, (2, user_id))]
            case UseEmergencyCode(code_id=code_id, set_id=set_id, at=at, client=client):
                instant = sql.instant(at)
                return [(sql.use_code, (instant, client, *on_row, code_id, set_id, set_id,
                                        instant), is_cas, (1, code_id)),
                        (sql.note_code_use, (instant, client, set_id), False, (3, set_id))]
            case RevokeEmergencySet(set_id=set_id, at=at, reason=reason):
                return [(sql.revoke_set, (sql.instant(at), reason, set_id), False,
                         (3, set_id))]
            case SaveReceipt(receipt=kept):
                return [(sql.insert_receipt, (kept.key, int(kept.code),
                                              json.dumps(list(kept.reply_messages)),
                                              sql.instant(kept.expires_at)), False,
                         (4, kept.key))]
        raise TypeError(f"unknown commit {type(commit).__name__}")

    @staticmethod
    def _cursor(connection: Connection | sqlite3.Connection) -> Any:
        """A DBAPI cursor: in a SQLAlchemy connection's current transaction, or of a
        driver connection (``_request_cursor``)."""
        if isinstance(connection, Connection):
            return connection.connection.driver_connection.cursor()
        return connection.cursor()

    # --- audit ---------------------------------------------------------------------------

    def write_audit(self, audit: AuditEvent) -> None:
        """Write one audit row on its own (an event with no other effect).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            self._insert_audit(connection, audit)

    def list_audit(self, *, user_name: str | None = None, since: datetime | None = None,
                   action: str | None = None, result: str | None = None, limit: int = 1000,
                   offset: int = 0) -> list[AuditRecord]:
        """Audit rows, newest first.

        Args:
            user_name, action, result: keep rows equal to these (None: any).
            since: keep rows at or after this instant.
            limit, offset: the page.
        Returns:
            At most ``limit`` records.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        column = audit_event.c
        conditions = []
        if user_name is not None:
            conditions.append(column.user_name == user_name)
        if since is not None:
            conditions.append(column.at >= since)
        if action is not None:
            conditions.append(column.action == action)
        if result is not None:
            conditions.append(column.result == result)
        query = (select(audit_event).where(and_(True, *conditions))
                 .order_by(column.at.desc(), column.id.desc()).limit(limit).offset(offset))
        with self._transaction() as connection:
            rows = connection.execute(query).all()
        return [self._audit_record(row) for row in rows]

    def count_audit_before(self, older_than: datetime) -> int:
        """How many audit rows are before ``older_than`` (what ``prune_audit`` would delete).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            return int(connection.execute(
                select(func.count()).select_from(audit_event)
                .where(audit_event.c.at < older_than)).scalar_one())

    def prune_audit(self, older_than: datetime, audit: AuditEvent) -> int:
        """Delete audit rows before ``older_than``, then write ``audit`` (which survives),
        in one transaction; ``audit``'s detail gains ``deleted``, the number deleted.

        Returns:
            The number of rows deleted.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            deleted = int(connection.execute(
                delete(audit_event).where(audit_event.c.at < older_than)).rowcount)
            self._insert_audit(connection, dataclasses.replace(
                audit, detail={**audit.detail, "deleted": deleted}))
        return deleted

    # --- admins of the web console -------------------------------------------------------

    def add_admin(self, name: str, password_hash: str, at: datetime, audit: AuditEvent,
                  generation: int = 0) -> int:
        """Create an admin of the web console.

        Args:
            name: the admin's sign-in name. password_hash: ``crypto.hash_password`` output.
            at: creation time (aware). audit: written with the admin.
        Returns:
            The new admin's id.
        Raises:
            AlreadyExists: the name is taken.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        taken = AlreadyExists(f"admin {name!r} already exists")
        with self._write(conflict=lambda exc: taken) as connection:
            if connection.execute(
                    select(admins.c.id).where(admins.c.name == name)).first() is not None:
                raise taken
            result = connection.execute(insert(admins).values(
                name=name, password_hash=password_hash, created_at=at,
                generation=generation))
            admin_id = int(result.inserted_primary_key[0])
            self._insert_audit(connection, audit)
        return admin_id

    def count_admins(self) -> int:
        """How many admins of the web console exist."""
        with self._transaction() as connection:
            return int(connection.execute(
                select(func.count()).select_from(admins)).scalar_one())

    def get_admin_password_hash(self, name: str) -> str | None:
        """An admin's password hash, for the web console's sign-in.

        Returns:
            The hash, or None for an unknown admin.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            return connection.execute(
                select(admins.c.password_hash).where(admins.c.name == name)).scalar_one_or_none()

    def find_web_account(self, kind: str, *, name: str | None = None,
                         account_id: int | None = None) -> WebAccount | None:
        """An account of a web console by name (sign-in) or by id (every request).

        Args:
            kind: ``ADMIN_ACCOUNT`` or ``USER_ACCOUNT``.
            name, account_id: exactly one of them.
        Returns:
            The account with its password hash (and an admin's sealed TOTP seed), or None.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        table = admins if kind == ADMIN_ACCOUNT else users
        condition = table.c.id == account_id if name is None else table.c.name == name
        if kind == ADMIN_ACCOUNT:
            columns = (admins.c.id, admins.c.name, admins.c.generation, admins.c.created_at,
                       admins.c.password_hash, admins.c.totp_sealed_seed,
                       admins.c.totp_last_step)
        else:
            columns = (users.c.id, users.c.name, users.c.generation, users.c.created_at,
                       users.c.password_hash, users.c.is_disabled)
        with self._transaction() as connection:
            row = connection.execute(select(*columns).where(condition)).one_or_none()
        if row is None:
            return None
        if kind == ADMIN_ACCOUNT:
            return WebAccount(kind=kind, id=row.id, name=row.name, generation=row.generation,
                              created_at=row.created_at, password_hash=row.password_hash,
                              totp_sealed_seed=(bytes(row.totp_sealed_seed)
                                                if row.totp_sealed_seed is not None else None),
                              totp_last_step=row.totp_last_step)
        return WebAccount(kind=kind, id=row.id, name=row.name, generation=row.generation,
                          created_at=row.created_at, is_disabled=bool(row.is_disabled),
                          password_hash=row.password_hash)

    def list_admins(self) -> list[WebAccount]:
        """Every admin by name, without password hash or seed (``has_totp`` kept).

        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._transaction() as connection:
            rows = connection.execute(
                select(admins.c.id, admins.c.name, admins.c.generation, admins.c.created_at,
                       admins.c.totp_sealed_seed.is_not(None).label("has_totp"))
                .order_by(admins.c.name)).all()
        return [WebAccount(kind=ADMIN_ACCOUNT, id=row.id, name=row.name,
                           generation=row.generation, created_at=row.created_at,
                           totp_sealed_seed=b"" if row.has_totp else None)
                for row in rows]

    def delete_admin(self, name: str, audit: AuditEvent) -> None:
        """Delete an admin, never the last one.

        Every admin row is locked first (PostgreSQL ``FOR UPDATE``; SQLite writes one at a
        time), so two deletions at once cannot leave no admin.

        Raises:
            NotFound: no such admin.
            UsageError: it is the last admin (the console would have nobody to sign in).
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            names = connection.execute(
                select(admins.c.name).order_by(admins.c.id).with_for_update()).scalars().all()
            if name not in names:
                raise NotFound(f"no admin {name!r}")
            if len(names) == 1:
                raise UsageError(f"cannot delete {name!r}: it is the last admin (add another "
                                 "admin first)")
            connection.execute(delete(admins).where(admins.c.name == name))
            self._insert_audit(connection, audit)

    def set_admin_password(self, name: str, password_hash: str, audit: AuditEvent) -> int:
        """Change an admin's password; a new generation ends the admin's open sessions.

        Returns:
            The new generation (the console keeps the session that made the change).
        Raises:
            NotFound: no such admin.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        return self._update_admin(name, {"password_hash": password_hash}, audit)

    def reset_admin_totp(self, name: str, audit: AuditEvent) -> int:
        """Forget an admin's TOTP: the next sign-in enrols a new one; sessions end.

        Raises:
            NotFound: no such admin.
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        return self._update_admin(name, {"totp_sealed_seed": None, "totp_last_step": -1},
                                  audit)

    def enrol_admin_totp(self, admin_id: int, generation: int, sealed_seed: bytes,
                         step: int, audit: AuditEvent) -> bool:
        """Store an admin's first TOTP seed, with the step of the code that confirmed it.

        Compare-and-set: only while the admin has no seed and still has ``generation``.

        Returns:
            False when the admin is gone, changed, or enrolled meanwhile (nothing written).
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            result = connection.execute(
                update(admins).where(admins.c.id == admin_id,
                                     admins.c.generation == generation,
                                     admins.c.totp_sealed_seed.is_(None))
                .values(totp_sealed_seed=sealed_seed, totp_last_step=step))
            if result.rowcount != 1:
                return False
            self._insert_audit(connection, audit)
        return True

    def use_admin_totp_step(self, admin_id: int, step: int) -> bool:
        """Record a TOTP step as used (compare-and-set, as for tokens: a code works once).

        Returns:
            False when that step (or a later one) was used already.
        Raises:
            StoreUnavailable: the database cannot be reached, is locked or timed out.
            NotInitialised: the schema is missing.
        """
        with self._write() as connection:
            result = connection.execute(
                update(admins).where(admins.c.id == admin_id,
                                     admins.c.totp_last_step < step)
                .values(totp_last_step=step))
        return result.rowcount == 1

    def _update_admin(self, name: str, values: Mapping[str, object],
                      audit: AuditEvent) -> int:
        with self._write() as connection:
            result = connection.execute(
                update(admins).where(admins.c.name == name)
                .values(generation=admins.c.generation + 1, **values))
            if result.rowcount != 1:
                raise NotFound(f"no admin {name!r}")
            self._insert_audit(connection, audit)
            return int(connection.execute(
                select(admins.c.generation).where(admins.c.name == name)).scalar_one())

    # --- helpers (inside a transaction) --------------------------------------------------

    @staticmethod
    def _insert_audit(connection: Connection, audit: AuditEvent) -> None:
        connection.execute(insert(audit_event).values(**Store._audit_values(audit)))

    @staticmethod
    def _audit_values(audit: AuditEvent) -> dict[str, object]:
        return dict(at=audit.at, node=audit.node, action=audit.action, result=audit.result,
                    actor=audit.actor, user_name=audit.user_name, reason=audit.reason,
                    client=audit.client, nas_address=audit.nas_address,
                    detail=_detail_to_json(audit.detail))

    @staticmethod
    def _audit_record(row: Row) -> AuditRecord:
        return AuditRecord(id=row.id, event=AuditEvent(
            at=row.at, action=row.action, result=row.result, actor=row.actor,
            user_name=row.user_name, reason=row.reason, client=row.client,
            nas_address=row.nas_address, node=row.node,
            detail=_detail_from_json(row.detail)))

    @staticmethod
    def _revoke_set(set_id: str, at: datetime, reason: str):
        """The UPDATE ending a set; matches no row when it is already revoked."""
        return (update(emergency_set)
                .where(emergency_set.c.id == set_id, emergency_set.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_reason=reason))

    @staticmethod
    def _latest_emergency_sets(connection: Connection,
                               user: ColumnElement[bool]) -> dict[int, EmergencySet]:
        """``_latest_emergency_set`` for every user matching ``user``, by user id."""
        return Store._emergency_sets(connection, _LATEST_SET_JOIN, user)

    @staticmethod
    def _latest_emergency_set(connection: Connection,
                              user: ColumnElement[bool]) -> EmergencySet | None:
        """The latest set (``get_emergency_set``) of the one user matching ``user``, with
        its codes: one query (see ``_latest_emergency_sets``)."""
        return next(iter(Store._latest_emergency_sets(connection, user).values()), None)

    @staticmethod
    def _emergency_set(connection: Connection, from_: FromClause,
                       where: ColumnElement[bool]) -> EmergencySet | None:
        """The one set ``from_``/``where`` select, with its codes by position: one query."""
        return next(iter(Store._emergency_sets(connection, from_, where).values()), None)

    @staticmethod
    def _emergency_sets(connection: Connection, from_: FromClause,
                        where: ColumnElement[bool]) -> dict[int, EmergencySet]:
        """Every set ``from_``/``where`` select, with their codes, by user id: one query."""
        query = (
            select(emergency_set, emergency_code.c.id.label("code_id"),
                   emergency_code.c.position, emergency_code.c.code_hash,
                   emergency_code.c.used_at)
            .select_from(from_.outerjoin(emergency_code,
                                         emergency_code.c.set_id == emergency_set.c.id))
            .where(where)
            .order_by(emergency_set.c.id, emergency_code.c.position))
        by_set: dict[str, list[Row]] = {}
        for row in connection.execute(query).all():
            by_set.setdefault(row.id, []).append(row)
        sets = (Store._set_from_rows(rows) for rows in by_set.values())
        return {found.user_id: found for found in sets}

    def find_emergency_codes(self, candidates: Sequence[tuple[str, bytes]]
                             ) -> dict[tuple[str, bytes], EmergencyCode]:
        """The codes matching ``(set_id, code_hash)`` candidates: one indexed query.

        Returns:
            ``{(set_id, code_hash): EmergencyCode}`` for the candidates that exist.
        """
        if not candidates:
            return {}
        wanted = set(candidates)
        hashes = sorted({code_hash for _, code_hash in wanted})
        sql = self._sql
        with self._request_cursor() as cursor:
            rows = self._fetch(cursor, sql.candidate_codes, hashes)
        found = {}
        for (code_id, set_id, position, code_hash, used_at, receipt_key, reply,
             expires_at) in rows:
            key = (set_id, bytes(code_hash))
            if key in wanted:
                found[key] = EmergencyCode(
                    id=code_id, position=position, code_hash=key[1],
                    used_at=sql.moment(used_at),
                    receipt=self._row_receipt(receipt_key, reply, expires_at))
        return found

    @staticmethod
    def _set_from_rows(rows: Sequence[Row], *, with_codes: bool = True) -> EmergencySet:
        first = rows[0]
        return EmergencySet(
            id=first.id, user_id=first.user_id, code_length=first.code_length,
            issued_at=first.issued_at, expires_at=first.expires_at,
            issued_by=first.issued_by, reason=first.reason, revoked_at=first.revoked_at,
            revoked_reason=first.revoked_reason,
            codes=tuple(EmergencyCode(id=row.code_id, position=row.position,
                                      code_hash=bytes(row.code_hash), used_at=row.used_at)
                        for row in rows if with_codes and row.code_id is not None),
            last_used_at=first.last_used_at, last_used_client=first.last_used_client)

    @staticmethod
    def _user_id(connection: Connection, name: str) -> int | None:
        return connection.execute(
            select(users.c.id).where(users.c.name == name)).scalar_one_or_none()

    @staticmethod
    def _search(search: str | None) -> ColumnElement[bool]:
        if not search:
            return and_(True)
        # lower() on both sides: LIKE is case-sensitive on PostgreSQL, not on SQLite.
        return func.lower(users.c.name).contains(search.lower(), autoescape=True)

    def _update_user(self, name: str, values: Mapping[str, object], audit: AuditEvent) -> None:
        with self._write() as connection:
            result = connection.execute(
                update(users).where(users.c.name == name).values(**values))
            if result.rowcount != 1:
                raise NotFound(f"no user {name!r}")
            self._insert_audit(connection, audit)

    @staticmethod
    def _user_infos(connection: Connection, condition: ColumnElement[bool], *,
                    limit: int | None = None, offset: int = 0) -> list[UserInfo]:
        """Users matching ``condition`` by name, with their token serials: two queries."""
        query = (select(users.c.id, users.c.name, users.c.is_disabled,
                        users.c.pin_hash.is_not(None).label("has_pin"),
                        users.c.password_hash.is_not(None).label("has_password"),
                        users.c.failures, users.c.locked_at, users.c.created_at)
                 .where(condition).order_by(users.c.name).limit(limit).offset(offset))
        rows = connection.execute(query).all()
        serials: dict[int, list[str]] = {row.id: [] for row in rows}
        if serials:
            for token in connection.execute(
                    select(tokens.c.user_id, tokens.c.serial)
                    .where(tokens.c.user_id.in_(list(serials)))
                    .order_by(tokens.c.serial)):
                serials[token.user_id].append(token.serial)
        return [UserInfo(id=row.id, name=row.name, is_disabled=bool(row.is_disabled),
                         has_pin=bool(row.has_pin),
                         has_self_service_password=bool(row.has_password),
                         failures=row.failures, locked_at=row.locked_at,
                         created_at=row.created_at, token_serials=tuple(serials[row.id]))
                for row in rows]

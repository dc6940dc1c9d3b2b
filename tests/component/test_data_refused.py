"""A statement refused for one request's data is not a database outage (issue 21, 1): the
Store raises ``DataRefused`` (not a plain ``StoreUnavailable``), the group commit retries
the batch one request at a time so the others still commit and get their answers, the
refused request gets a Reject, and the database runner does not call the database down."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from twisted.internet import defer
from twisted.internet.testing import Clock
from twisted.logger import globalLogPublisher

from radiusd.accounts import Accounts
from radiusd.app import DatabaseRunner
from radiusd.crypto import Keys
from radiusd.errors import DataRefused, StoreUnavailable
from radiusd.handlers import access_request
from radiusd.handlers.access_request import Pending, authenticate_batch
from radiusd.handlers.context import HandlerContext, SettingsCache, StoreHealth
from radiusd.model import (Accept, AdvanceToken, AuditEvent, Client, PacketCode, RadiusRequest,
                           Reject, RejectReason, Secret)
from radiusd.otp import hotp, totp_step
from radiusd.store import Store

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
KEYS = Keys.from_master(b"k" * 32)
SEED = b"data-refused-seed-01"
CLIENT = Client("nas", __import__("netaddr").IPNetwork("127.0.0.1/32"), Secret("s"))


def auth(user: str) -> AuditEvent:
    return AuditEvent(at=NOW, action="auth", result="accept", actor="radius", user_name=user)


def _users(store: Store, count: int) -> list[int]:
    accounts = Accounts(store, KEYS, os.urandom, "test")
    for index in range(count):
        accounts.add_user(f"u{index}", pin=None, password=None, actor="test", now=NOW)
        accounts.add_token(f"u{index}", secret=base64.b32encode(SEED).decode(), actor="test",
                           now=NOW)
    return [store.load_subject(f"u{index}").tokens[0].id for index in range(count)]


@pytest.fixture()
def pg_store(postgresql_url):
    from component.conftest import empty_postgresql
    empty_postgresql(postgresql_url)
    store = Store.open(postgresql_url, pool_size=2)
    store.migrate()
    yield store
    store.close()


def test_postgresql_refusing_a_nul_is_data_refused_and_the_store_keeps_working(pg_store):
    """Issue 21 (1): psycopg's DataError (NUL in text) is the request's fault, not an
    outage; nothing of the batch is committed, and the next batch on the same thread
    works."""
    [token_id] = _users(pg_store, 1)
    with pytest.raises(DataRefused) as caught:
        pg_store.apply_batch([((AdvanceToken(token_id, 9),), auth("u0"), None),
                              ((), auth("bad\x00name"), None)])
    assert "DataError" in str(caught.value)
    assert pg_store.load_subject("u0").tokens[0].last_used != 9
    assert pg_store.apply_batch([((AdvanceToken(token_id, 9),), auth("u0"), None)]) == [True]


def test_a_name_that_is_not_utf8_is_data_refused_on_both_databases(store):
    """Issue 21 (1): a string that cannot be encoded (a lone surrogate) reaching a
    statement is refused for its data on SQLite and PostgreSQL alike."""
    with pytest.raises(DataRefused):
        store.apply_batch([((), auth("bad\udcff"), None)])
    assert store.apply_batch([((), auth("good"), None)]) == [True]


def test_a_statement_the_server_cannot_run_is_still_unavailable(pg_store):
    """Issue 21 (1): a connection that fails is an outage, not data (control case)."""
    pg_store.apply_batch([((), auth("warm"), None)])
    connection = pg_store._local.connection
    connection.pgconn.finish()  # the server side of this thread's connection is gone
    with pytest.raises(StoreUnavailable) as caught:
        pg_store.apply_batch([((), auth("after"), None)])
    assert not isinstance(caught.value, DataRefused)


def _request(identifier: int, user: str, password: str, **fields) -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=identifier,
                         authenticator=bytes([identifier]) * 16, attributes=(),
                         user_name=user, password=Secret(password), **fields)


@pytest.mark.parametrize("slipped", [
    lambda value: value + "\x00" if value == "u2" else value,   # PostgreSQL: DataError
    lambda value: value + "\udcff" if value == "10.0.0.2" else value,  # cannot be encoded
], ids=["nul-in-audit-user-name", "surrogate-in-audit-detail"])
def test_a_batch_with_one_refused_request_commits_the_others(pg_store, monkeypatch, slipped):
    """Issue 21 (1): one request whose data PostgreSQL refuses when its Accept is committed
    (here the escaping of its audit row is made to miss a NUL, or a lone surrogate) does
    not cost the other requests of its group commit their Accepts; it gets a Reject and
    commits nothing, and the batch is retried only because it failed."""
    _users(pg_store, 6)
    monkeypatch.setattr(access_request, "recorded", slipped)
    calls: list[int] = []
    real = pg_store.apply_batch
    monkeypatch.setattr(pg_store, "apply_batch",
                        lambda items, **kw: (calls.append(len(items)), real(items, **kw))[1])
    now = datetime.now(UTC)
    code = hotp(SEED, totp_step(now), 6)
    ctx = HandlerContext(store=pg_store, keys=KEYS, run_db=None, now=lambda: now,
                         settings=SettingsCache(pg_store.load_settings), node="test")
    batch = [Pending(_request(index, f"u{index}", code,
                              calling_station_id=f"10.0.0.{index}"),
                     CLIENT, ("127.0.0.1", 1000 + index), now)
             for index in range(6)]
    verdicts = authenticate_batch(ctx, batch)
    assert [type(verdict) for verdict in verdicts] == [Accept, Accept, Reject, Accept, Accept,
                                                       Accept]
    assert verdicts[2].reason is RejectReason.DATA_REFUSED
    step = totp_step(now)
    assert [pg_store.load_subject(f"u{index}").tokens[0].last_used == step
            for index in range(6)] == [True, True, False, True, True, True]
    rows = {row.event.user_name: row.event.reason
            for row in pg_store.list_audit(action="auth")}
    assert rows == {"u0": None, "u1": None, "u2": "data_refused", "u3": None, "u4": None,
                    "u5": None}
    assert calls == [6, 1, 1, 1, 1, 1, 1, 1]  # the batch, each alone, u2's plain audit row


def test_a_batch_that_commits_is_not_retried(pg_store, monkeypatch):
    """Issue 21 (1): the hot path is one apply_batch per group commit, as before."""
    _users(pg_store, 3)
    calls: list[int] = []
    real = pg_store.apply_batch
    monkeypatch.setattr(pg_store, "apply_batch",
                        lambda items, **kw: (calls.append(len(items)), real(items, **kw))[1])
    now = datetime.now(UTC)
    code = hotp(SEED, totp_step(now), 6)
    ctx = HandlerContext(store=pg_store, keys=KEYS, run_db=None, now=lambda: now,
                         settings=SettingsCache(pg_store.load_settings), node="test")
    batch = [Pending(_request(index, f"u{index}", code), CLIENT, ("127.0.0.1", 1000 + index),
                     now) for index in range(3)]
    assert [type(verdict) for verdict in authenticate_batch(ctx, batch)] == [Accept] * 3
    assert calls == [3]


def test_a_bad_user_name_is_never_looked_up(store, monkeypatch):
    """Issue 21 (1): a User-Name breaking the rule gets a Reject (bad_user_name) without a
    store lookup of the name, and is audited escaped."""
    looked_up: list = []
    real = store.load_subjects
    monkeypatch.setattr(store, "load_subjects",
                        lambda names, **kw: (looked_up.extend(names), real(names, **kw))[1])
    now = datetime.now(UTC)
    ctx = HandlerContext(store=store, keys=KEYS, run_db=None, now=lambda: now,
                         settings=SettingsCache(store.load_settings), node="test")
    batch = [Pending(_request(1, "ev\x00il", "123456"), CLIENT, ("127.0.0.1", 1), now),
             Pending(_request(2, "m\udcfcller", "123456"), CLIENT, ("127.0.0.1", 2), now),
             Pending(_request(3, "nobody", "123456"), CLIENT, ("127.0.0.1", 3), now)]
    verdicts = authenticate_batch(ctx, batch)
    assert [verdict.reason for verdict in verdicts] == [
        RejectReason.BAD_USER_NAME, RejectReason.BAD_USER_NAME, RejectReason.UNKNOWN_USER]
    assert looked_up == ["nobody"]
    names = {row.event.user_name: row.event.reason for row in store.list_audit(action="auth")}
    assert names == {"ev\\x00il": "bad_user_name", "m\\xfcller": "bad_user_name",
                     "nobody": "unknown_user"}


class FailingThreads:
    def __init__(self, error: Exception):
        self.error = error

    def run(self, fn, *args) -> defer.Deferred:
        return defer.fail(self.error)


def test_data_refused_does_not_mark_the_database_down():
    """Issue 21 (1): the runner passes DataRefused through: no outage, no "database
    unreachable" line, no prober; a real StoreUnavailable still is one (control)."""
    logged: list[dict] = []
    globalLogPublisher.addObserver(logged.append)
    try:
        health = StoreHealth()
        runner = DatabaseRunner(Clock(), FailingThreads(DataRefused("DataError: NUL")), health,
                                probe=lambda: None, timeout=3.0)
        results: list = []
        runner(lambda: None).addErrback(results.append)
        assert results[0].check(DataRefused)
        assert not health.is_down
        assert not [e for e in logged if "unreachable" in e.get("log_format", "")]
        runner.threads = FailingThreads(StoreUnavailable("connection refused"))
        runner(lambda: None).addErrback(results.append)
        assert health.is_down
        assert [e for e in logged if "unreachable" in e.get("log_format", "")]
    finally:
        globalLogPublisher.removeObserver(logged.append)


@pytest.fixture()
def latin1_store():
    """A Store on a PostgreSQL database in LATIN1 (an old cluster's default), where a
    name in another script passes the User-Name rule but cannot be sent to the database."""
    import secrets

    from sqlalchemy import make_url

    from support import PG_SERVER, admin_engine
    server = make_url(PG_SERVER)
    name = f"radiusd_latin1_{secrets.token_hex(6)}"
    admin = admin_engine(server)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}" ENCODING \'LATIN1\' '
                                       "LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    except Exception as exc:  # noqa: BLE001 (the reason is shown)
        admin.dispose()
        from support import missing_part
        missing_part(f"PostgreSQL not reachable at {PG_SERVER}: {type(exc).__name__}")
    store = Store.open(server.set(database=name).render_as_string(hide_password=False),
                       pool_size=2)
    try:
        store.migrate()
        yield store
    finally:
        store.close()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def test_a_name_the_database_cannot_hold_costs_only_its_own_request(latin1_store):
    """Issue 21 (1): a read refused for one request's data (here a User-Name the LATIN1
    database cannot hold) does not cost the other requests of its batch their Accepts:
    the batch is decided again one request at a time, and the database is not down."""
    _users(latin1_store, 4)
    now = datetime.now(UTC)
    code = hotp(SEED, totp_step(now), 6)
    ctx = HandlerContext(store=latin1_store, keys=KEYS, run_db=None, now=lambda: now,
                         settings=SettingsCache(latin1_store.load_settings), node="test")
    names = ["u0", "u1", "李小龍", "u2", "u3"]
    batch = [Pending(_request(index, name, code), CLIENT, ("127.0.0.1", 1000 + index), now)
             for index, name in enumerate(names)]
    verdicts = authenticate_batch(ctx, batch)
    assert [type(verdict) for verdict in verdicts] == [Accept, Accept, Reject, Accept, Accept]
    assert verdicts[2].reason is RejectReason.DATA_REFUSED
    rows = {row.event.user_name: row.event.reason
            for row in latin1_store.list_audit(action="auth")}
    assert rows == {"u0": None, "u1": None, "\\u674e\\u5c0f\\u9f8d": "data_refused",
                    "u2": None, "u3": None}

"""The Store on real databases: SQLite (a file in tmp_path) and a throw-away PostgreSQL
database, each test on both. Schema migration, CRUD and its errors, aware UTC instants,
the compare-and-set commits of ``apply`` (also under 20 racing threads), the audit trail."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import make_url

from radiusd.app import _probe
from radiusd.errors import AlreadyExists, ConfigError, NotFound, NotInitialised, StoreUnavailable
from radiusd.model import (AdvanceToken, AuditEvent, RecordFailure, RejectReason,
                           ResetFailures, Secret, TokenKind)
from radiusd.settings import Settings
from radiusd.store import Store
from radiusd.store.store import _WalSync
from radiusd.store.tables import metadata

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
PIN_HASH = b"\x00pin-hash\xff"
SEED = b"\x01sealed-seed\xfe" * 3


def event(action: str = "user.add", user: str | None = None, *, at: datetime = NOW,
          result: str = "ok", actor: str = "cli", **detail: object) -> AuditEvent:
    return AuditEvent(at=at, action=action, result=result, actor=actor, user_name=user,
                      node="test-node", detail=detail)


def add_user(store: Store, name: str, *, pin_hash: bytes | None = PIN_HASH,
             password_hash: str | None = None, at: datetime = NOW) -> int:
    return store.add_user(name, pin_hash=pin_hash, password_hash=password_hash, at=at,
                          audit=event("user.add", name, at=at))


def add_token(store: Store, user: str, serial: str, *, kind: TokenKind = TokenKind.TOTP,
              last_used: int = -1) -> int:
    return store.add_token(user, serial=serial, kind=kind, digits=6, period=30,
                           sealed_seed=SEED, last_used=last_used, at=NOW,
                           audit=event("token.add", user, serial=serial))


def actions(store: Store, **filters: object) -> list[str]:
    return [record.event.action for record in store.list_audit(**filters)]


def is_aware_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --- schema ------------------------------------------------------------------------------


def test_check_schema_raises_not_initialised_before_migrate(empty_store):
    with pytest.raises(NotInitialised, match="radiusd init"):
        empty_store.check_schema()


def test_calls_before_migrate_raise_not_initialised(empty_store):
    with pytest.raises(NotInitialised):
        empty_store.get_user("alice")
    with pytest.raises(NotInitialised):
        empty_store.load_subject("alice")
    with pytest.raises(NotInitialised):
        empty_store.apply((), event("auth", "alice"))


def test_migrate_is_idempotent(empty_store):
    empty_store.migrate()
    add_user(empty_store, "alice")
    empty_store.migrate()
    empty_store.check_schema()
    assert empty_store.get_user("alice").name == "alice"


def test_check_schema_refuses_a_schema_newer_than_this_radiusd(store):
    with store._engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(NotInitialised, match="newer than this radiusd"):
        store.check_schema()
    with pytest.raises(NotInitialised, match="newer than this radiusd"):
        store.migrate()


def test_check_schema_refuses_a_database_without_version(store):
    with store._engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM alembic_version")
    with pytest.raises(NotInitialised, match="radiusd init"):
        store.check_schema()


def test_migrations_create_exactly_the_tables_module(store):
    with store._engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


# --- connections and errors -----------------------------------------------------------------


def test_sqlite_connections_use_wal_full_sync_foreign_keys_and_busy_timeout(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'radiusd.db'}", statement_timeout=1.5)
    try:
        with store._engine.connect() as connection:
            pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 1500
    finally:
        store.close()


def test_postgresql_sessions_carry_the_statement_timeout(postgresql_url):
    store = Store.open(postgresql_url, statement_timeout=0.75)
    try:
        with store._engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "750ms"
    finally:
        store.close()


def hold_write_lock(database_url: str):
    """Another client holding the lock a write needs (SQLite: the database; PG: alice's row)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
    else:
        connection = psycopg.connect(host=url.host, port=url.port, user=url.username,
                                     password=url.password, dbname=url.database)
        connection.execute("UPDATE users SET failures = failures WHERE name = 'alice'")
    return connection


def test_a_write_blocked_past_the_timeout_raises_store_unavailable(database_url):
    store = Store.open(database_url, statement_timeout=0.3)
    try:
        store.migrate()
        add_user(store, "alice")
        blocker = hold_write_lock(database_url)
        try:
            with pytest.raises(StoreUnavailable):
                store.set_disabled("alice", True, event("user.disable", "alice"))
        finally:
            blocker.rollback()
            blocker.close()
        store.set_disabled("alice", True, event("user.disable", "alice"))  # usable again
        assert store.get_user("alice").is_disabled
    finally:
        store.close()


def test_unreachable_postgresql_raises_store_unavailable_without_the_password():
    store = Store.open("postgresql+psycopg://radiusd:hunter2-pw@127.0.0.1:1/radiusd",
                       statement_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.get_user("alice")
        assert "hunter2-pw" not in str(caught.value)
        assert "127.0.0.1" in str(caught.value)
        assert "hunter2-pw" not in repr(store)
    finally:
        store.close()


def test_the_request_path_survives_its_connection_dying(store, database_url):
    """The request path keeps a driver connection per thread (not the pool, whose
    pre-ping would notice a dead one): a failure is StoreUnavailable for that call, and
    the next call opens a new connection."""
    add_user(store, "alice")
    assert "alice" in store.load_subjects(["alice"], with_codes=False)
    connection = store._local.connection
    if database_url.startswith("sqlite"):
        connection.close()
    else:
        pid = connection.info.backend_pid
        with store._engine.connect() as admin:
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
    with pytest.raises(StoreUnavailable):
        store.load_subjects(["alice"], with_codes=False)
    assert "alice" in store.load_subjects(["alice"], with_codes=False)
    assert store._local.connection is not connection
    assert store.apply_batch([((), event("auth", "alice"), None)]) == [True]


def test_batched_reads_pad_their_lists_and_find_exactly_the_users_asked_for(store):
    """The request path's reads pad their IN list with NULLs to a power of two, so a
    template has 9 texts for batches of 1 to 256 (they stay prepared: sqlite3 keeps 128
    statements by text) and the NULLs match nothing."""
    names = [f"user{i:02d}" for i in range(40)]
    for name in names:
        add_user(store, name)
        add_token(store, name, f"S-{name}")
    for count in (1, 2, 3, 5, 8, 9, 17, 31, 40):
        subjects = store.load_subjects([*names[:count], "nobody"], with_codes=False)
        assert sorted(subjects) == names[:count]
        assert [len(subject.tokens) for subject in subjects.values()] == [1] * count
    sql = store._sql
    texts = {sql.in_(sql.subject_rows, range(count))[0] for count in range(1, 257)}
    assert len(texts) == 9
    text, values = sql.in_(sql.receipts, [b"a", b"b", b"c"])
    assert values == [b"a", b"b", b"c", None] and text.count(sql.p) == 4 + 1


def test_unreachable_postgresql_on_the_request_path_raises_store_unavailable():
    store = Store.open("postgresql+psycopg://radiusd:hunter2-pw@127.0.0.1:1/radiusd",
                       statement_timeout=1.0)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.load_subjects(["alice"], with_codes=False)
        assert "hunter2-pw" not in str(caught.value)
        with pytest.raises(StoreUnavailable):
            store.apply_batch([((), event("auth", "alice"), None)])
    finally:
        store.close()


def test_unopenable_sqlite_file_raises_store_unavailable(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'missing-dir' / 'radiusd.db'}")
    try:
        with pytest.raises(StoreUnavailable, match="unable to open"):
            store.check_schema()
    finally:
        store.close()


@pytest.mark.parametrize("url", ["mysql://root@localhost/radiusd", "not a url"])
def test_open_refuses_other_databases_naming_the_config_key(url):
    with pytest.raises(ConfigError, match="database.url"):
        Store.open(url)


def test_errors_never_carry_hashes_or_seeds(store):
    add_user(store, "alice")
    add_token(store, "alice", "T-1")
    with pytest.raises(AlreadyExists) as user_error:
        add_user(store, "alice")
    with pytest.raises(AlreadyExists) as token_error:
        add_token(store, "alice", "T-1")
    for error in (user_error.value, token_error.value):
        assert PIN_HASH.hex() not in str(error) and repr(PIN_HASH) not in str(error)
        assert repr(SEED) not in str(error) and error.__cause__ is None


# --- users -----------------------------------------------------------------------------------


def test_add_and_get_user(store):
    user_id = add_user(store, "alice", password_hash="scrypt$x")
    user = store.get_user("alice")
    assert (user.id, user.name, user.is_disabled, user.has_pin,
            user.has_self_service_password, user.failures, user.locked_at,
            user.token_serials) == (user_id, "alice", False, True, True, 0, None, ())
    assert user.created_at == NOW and is_aware_utc(user.created_at)
    assert store.get_password_hash("alice") == "scrypt$x"
    assert actions(store, user_name="alice") == ["user.add"]


def test_add_user_twice_raises_already_exists_and_writes_no_audit_row(store):
    add_user(store, "alice")
    with pytest.raises(AlreadyExists, match="user 'alice' already exists"):
        add_user(store, "alice")
    assert actions(store) == ["user.add"]


@pytest.mark.parametrize("call", [
    lambda s: s.get_user("bob"),
    lambda s: s.get_password_hash("bob"),
    lambda s: s.set_pin("bob", PIN_HASH, event("user.set_pin", "bob")),
    lambda s: s.set_password("bob", "h", event("user.set_password", "bob")),
    lambda s: s.set_disabled("bob", True, event("user.disable", "bob")),
    lambda s: s.unlock("bob", event("user.unlock", "bob")),
    lambda s: s.delete_user("bob", event("user.delete", "bob")),
    lambda s: s.list_tokens("bob"),
    lambda s: add_token(s, "bob", "T-1"),
    lambda s: s.delete_token("bob", "T-1", event("token.delete", "bob")),
], ids=["get_user", "get_password_hash", "set_pin", "set_password", "set_disabled", "unlock",
        "delete_user", "list_tokens", "add_token", "delete_token"])
def test_unknown_user_raises_not_found_and_writes_no_audit_row(store, call):
    with pytest.raises(NotFound, match="no user 'bob'"):
        call(store)
    assert store.list_audit() == []


def test_list_users_orders_by_name_searches_ignoring_case_and_pages(store):
    for name in ("carol", "Alice", "bob", "a_b", "axb", "dave%"):
        add_user(store, name)
    names = lambda users: [u.name for u in users]
    assert names(store.list_users()) == sorted(["carol", "Alice", "bob", "a_b", "axb", "dave%"])
    assert names(store.list_users("A")) == ["Alice", "a_b", "axb", "carol", "dave%"]
    assert names(store.list_users("_")) == ["a_b"]  # LIKE wildcards are searched literally
    assert names(store.list_users("%")) == ["dave%"]
    assert names(store.list_users("a", limit=2, offset=1)) == ["a_b", "axb"]
    assert store.count_users() == 6 and store.count_users("LIC") == 1
    assert store.count_users("zzz") == 0 and store.list_users("zzz") == []


def test_set_pin_password_and_disabled_round_trip_with_audit(store):
    add_user(store, "alice", pin_hash=None)
    assert store.load_subject("alice").pin_hash is None
    store.set_pin("alice", PIN_HASH, event("user.set_pin", "alice"))
    assert store.load_subject("alice").pin_hash == PIN_HASH
    store.set_pin("alice", None, event("user.clear_pin", "alice"))
    assert not store.get_user("alice").has_pin
    store.set_password("alice", "scrypt$1", event("user.set_password", "alice"))
    assert store.get_password_hash("alice") == "scrypt$1"
    store.set_password("alice", None, event("user.clear_password", "alice"))
    assert store.get_password_hash("alice") is None
    store.set_disabled("alice", True, event("user.disable", "alice"))
    assert store.get_user("alice").is_disabled and store.load_subject("alice").is_disabled
    store.set_disabled("alice", False, event("user.enable", "alice"))
    assert not store.get_user("alice").is_disabled
    assert actions(store, user_name="alice") == [  # same `at`: newest id first
        "user.enable", "user.disable", "user.clear_password", "user.set_password",
        "user.clear_pin", "user.set_pin", "user.add"]


def test_instants_come_back_as_aware_utc(store):
    berlin = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 1, 14, 30, tzinfo=berlin)
    user_id = add_user(store, "alice", at=created)
    store.apply([RecordFailure(user_id, at=created, max_failures=1)],
                event("auth", "alice", at=created, result="reject"))
    user = store.get_user("alice")
    record = store.list_audit(action="auth")[0]
    for value in (user.created_at, user.locked_at, store.load_subject("alice").locked_at,
                  record.event.at):
        assert value == created and is_aware_utc(value)
    assert user.created_at.hour == 12


def test_naive_datetimes_are_refused(store):
    with pytest.raises(ValueError, match="naive"):
        add_user(store, "alice", at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        store.list_audit(since=datetime(2026, 1, 1))


def test_unlock_clears_failures_and_lock(store):
    user_id = add_user(store, "alice")
    store.apply([RecordFailure(user_id, at=NOW, max_failures=2)] * 2, event("auth", "alice"))
    assert store.get_user("alice").locked_at == NOW
    store.unlock("alice", event("user.unlock", "alice"))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (0, None)


def test_delete_user_deletes_their_tokens(store):
    add_user(store, "alice")
    add_token(store, "alice", "T-1")
    store.delete_user("alice", event("user.delete", "alice"))
    assert store.load_subject("alice") is None
    with pytest.raises(NotFound):
        store.get_user("alice")
    add_user(store, "bob")
    add_token(store, "bob", "T-1")  # the serial is free: the token row went with alice
    assert [t.serial for t in store.list_tokens("bob")] == ["T-1"]


# --- tokens ----------------------------------------------------------------------------------


def test_add_list_and_delete_tokens(store):
    add_user(store, "alice")
    hotp_id = add_token(store, "alice", "B-2", kind=TokenKind.HOTP, last_used=9)
    totp_id = add_token(store, "alice", "A-1")
    listed = store.list_tokens("alice")
    assert [(t.id, t.serial, t.kind, t.last_used) for t in listed] == [
        (totp_id, "A-1", TokenKind.TOTP, -1), (hotp_id, "B-2", TokenKind.HOTP, 9)]
    assert all(t.user_name == "alice" and (t.digits, t.period) == (6, 30)
               and t.created_at == NOW and is_aware_utc(t.created_at) for t in listed)
    assert store.get_user("alice").token_serials == ("A-1", "B-2")
    store.delete_token("alice", "A-1", event("token.delete", "alice", serial="A-1"))
    assert [t.serial for t in store.list_tokens("alice")] == ["B-2"]
    assert actions(store, user_name="alice") == ["token.delete", "token.add", "token.add",
                                                 "user.add"]


def test_token_serial_is_unique_across_users(store):
    add_user(store, "alice")
    add_user(store, "bob")
    add_token(store, "alice", "T-1")
    with pytest.raises(AlreadyExists, match="token serial 'T-1' already exists"):
        add_token(store, "bob", "T-1")
    assert store.list_tokens("bob") == []


def test_delete_token_of_another_user_raises_not_found(store):
    add_user(store, "alice")
    add_user(store, "bob")
    add_token(store, "bob", "T-1")
    with pytest.raises(NotFound, match="user 'alice' has no token 'T-1'"):
        store.delete_token("alice", "T-1", event("token.delete", "alice"))
    assert [t.serial for t in store.list_tokens("bob")] == ["T-1"]


def test_load_subject_returns_the_user_with_tokens_or_none(store):
    assert store.load_subject("nobody") is None
    user_id = add_user(store, "alice")
    subject = store.load_subject("alice")
    assert (subject.id, subject.name, subject.tokens) == (user_id, "alice", ())
    token_id = add_token(store, "alice", "T-1", last_used=41)
    add_token(store, "alice", "T-0", kind=TokenKind.HOTP)
    subject = store.load_subject("alice")
    assert (subject.pin_hash, subject.failures, subject.locked_at) == (PIN_HASH, 0, None)
    first = subject.tokens[0]
    assert (first.id, first.serial, first.kind, first.digits, first.period, first.sealed_seed,
            first.last_used, first.algorithm) == (token_id, "T-1", TokenKind.TOTP, 6, 30, SEED,
                                                   41, "SHA1")
    assert [t.serial for t in subject.tokens] == ["T-1", "T-0"]  # in the order added


# --- settings --------------------------------------------------------------------------------


def test_settings_default_then_round_trip(store):
    assert store.load_settings() == Settings()
    store.set_setting("lockout.max_failures", "3", event("settings.set"))
    store.set_setting("emergency.lifetime", "7d", event("settings.set"))
    store.set_setting("lockout.max_failures", "7", event("settings.set"))
    settings = store.load_settings()
    assert (settings.max_failures, settings.lifetime) == (7, timedelta(days=7))
    assert settings.codes_per_set == Settings().codes_per_set
    assert actions(store, action="settings.set") == ["settings.set"] * 3


# --- apply: the one-time effects of a request ------------------------------------------------


def test_advance_token_succeeds_once_then_fails_for_the_same_or_a_lower_value(store):
    user_id = add_user(store, "alice")
    token_id = add_token(store, "alice", "T-1", last_used=10)
    assert store.apply([AdvanceToken(token_id, 11)], event("auth", "alice", result="accept"))
    assert store.load_subject("alice").tokens[0].last_used == 11
    store.apply([RecordFailure(user_id, at=NOW, max_failures=5)], event("auth", "alice"))
    before = store.list_audit()
    for value in (11, 7):
        # The failure reset and the audit row of a lost compare-and-set are rolled back too.
        assert not store.apply([ResetFailures(user_id), AdvanceToken(token_id, value)],
                               event("auth", "alice", result="accept"))
    assert store.list_audit() == before
    subject = store.load_subject("alice")
    assert (subject.tokens[0].last_used, subject.failures) == (11, 1)


def test_record_failure_counts_and_locks_at_max(store):
    user_id = add_user(store, "alice")
    fail = lambda at: store.apply([RecordFailure(user_id, at=at, max_failures=3)],
                                  event("auth", "alice", at=at, result="reject"))
    for minute in range(2):
        assert fail(NOW + timedelta(minutes=minute))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (2, None)
    assert fail(NOW + timedelta(minutes=2))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (3, NOW + timedelta(minutes=2))


def test_record_failure_restart_counts_from_one_and_ends_the_expired_lock(store):
    user_id = add_user(store, "alice")
    store.apply([RecordFailure(user_id, at=NOW, max_failures=2)] * 2, event("auth", "alice"))
    assert store.get_user("alice").locked_at == NOW
    later = NOW + timedelta(hours=1)
    store.apply([RecordFailure(user_id, at=later, max_failures=2, restart=True)],
                event("auth", "alice", at=later))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (1, None)
    store.apply([RecordFailure(user_id, at=later, max_failures=2)], event("auth", "alice"))
    assert store.get_user("alice").locked_at == later
    store.apply([RecordFailure(user_id, at=NOW, max_failures=1, restart=True)],
                event("auth", "alice"))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (1, NOW)  # max 1: the first failure locks


def test_reset_failures_clears_count_and_lock(store):
    user_id = add_user(store, "alice")
    store.apply([RecordFailure(user_id, at=NOW, max_failures=1)], event("auth", "alice"))
    assert store.apply([ResetFailures(user_id)], event("auth", "alice", result="accept"))
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (0, None)
    # Nothing to reset is no lost race: ResetFailures is not a compare-and-set.
    assert store.apply([ResetFailures(user_id)], event("auth", "alice", result="accept"))


def test_apply_writes_the_audit_row_with_its_commits(store):
    add_user(store, "alice")
    audit = AuditEvent(at=NOW, action="auth", result="reject", actor="radius",
                       user_name="alice", reason=RejectReason.BAD_CODE.value, client="nas-1",
                       nas_address="10.0.0.1", node="node-a",
                       detail={"tokens": 1, "at": NOW, "kind": TokenKind.TOTP,
                               "raw": b"\x00secret", "pin": Secret("1234")})
    assert store.apply((), audit)
    record = store.list_audit(action="auth")[0]
    assert record.event == AuditEvent(
        at=NOW, action="auth", result="reject", actor="radius", user_name="alice",
        reason="bad_code", client="nas-1", nas_address="10.0.0.1", node="node-a",
        detail={"tokens": 1, "at": NOW.isoformat(), "kind": "totp", "raw": "<7 bytes>",
                "pin": "Secret(<redacted>)"})


def test_apply_refuses_an_unknown_commit_and_writes_nothing(store):
    with pytest.raises(TypeError, match="unknown commit"):
        store.apply([object()], event("auth"))
    assert store.list_audit() == []


# --- audit -----------------------------------------------------------------------------------


def test_list_audit_filters_and_orders_newest_first(store):
    rows = [("auth", "alice", "accept", 3), ("auth", "bob", "reject", 1),
            ("user.add", "alice", "ok", 0), ("auth", "alice", "reject", 2)]
    for action, user, result, minutes in rows:
        store.write_audit(event(action, user, result=result, at=NOW + timedelta(minutes=minutes)))
    listed = lambda **f: [(r.event.user_name, r.event.at.minute) for r in store.list_audit(**f)]
    assert listed() == [("alice", 3), ("alice", 2), ("bob", 1), ("alice", 0)]
    assert listed(user_name="alice") == [("alice", 3), ("alice", 2), ("alice", 0)]
    assert listed(action="auth", result="reject") == [("alice", 2), ("bob", 1)]
    assert listed(since=NOW + timedelta(minutes=2)) == [("alice", 3), ("alice", 2)]
    assert listed(user_name="alice", limit=1, offset=1) == [("alice", 2)]
    ids = [r.id for r in store.list_audit()]
    assert len(set(ids)) == 4


def test_prune_audit_deletes_older_rows_and_keeps_its_own(store):
    for minutes in range(5):
        store.write_audit(event("auth", "alice", at=NOW + timedelta(minutes=minutes)))
    pruned = store.prune_audit(NOW + timedelta(minutes=3),
                               event("audit.prune", at=NOW + timedelta(days=1)))
    assert pruned == 3
    assert [r.event.action for r in store.list_audit()] == ["audit.prune", "auth", "auth"]


def test_prune_audit_counts_first_and_records_the_count_in_its_own_row(store):
    """Issue 20 (5): what a prune would delete is counted before, and its audit row,
    written in the prune's transaction, holds the number deleted."""
    for minutes in range(5):
        store.write_audit(event("auth", "alice", at=NOW + timedelta(minutes=minutes)))
    assert store.count_audit_before(NOW + timedelta(minutes=2)) == 2
    store.prune_audit(NOW + timedelta(minutes=2),
                      event("audit.prune", at=NOW + timedelta(days=1)))
    newest = store.list_audit(limit=1)[0].event
    assert newest.action == "audit.prune" and newest.detail["deleted"] == 2
    assert store.count_audit_before(NOW + timedelta(minutes=2)) == 0


# --- admins ----------------------------------------------------------------------------------


def test_add_admin_and_read_the_password_hash(store):
    assert store.get_admin_password_hash("root") is None
    admin_id = store.add_admin("root", "scrypt$admin", NOW, event("admin.add"))
    assert isinstance(admin_id, int)
    assert store.get_admin_password_hash("root") == "scrypt$admin"
    with pytest.raises(AlreadyExists, match="admin 'root' already exists"):
        store.add_admin("root", "scrypt$other", NOW, event("admin.add"))
    assert actions(store) == ["admin.add"]


# --- races: two servers, twenty threads ------------------------------------------------------

THREADS = 20
ROUNDS = 20


def race(database_url: str, call, rounds: int = ROUNDS) -> list[list[object]]:
    """``call(store, round)`` from THREADS threads at once, split over two Stores (two
    servers), ``rounds`` times; returns each round's results."""
    servers = [Store.open(database_url, pool_size=THREADS // 2, statement_timeout=10.0)
               for _ in range(2)]
    barrier = threading.Barrier(THREADS)

    def one(index: int, round_: int) -> object:
        barrier.wait(timeout=30)
        return call(servers[index % 2], round_)

    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            return [list(pool.map(lambda i: one(i, round_), range(THREADS)))
                    for round_ in range(rounds)]
    finally:
        for server in servers:
            server.close()


def test_racing_advance_token_accepts_exactly_once_per_round(store, database_url):
    add_user(store, "alice")
    token_id = add_token(store, "alice", "T-1", last_used=0)
    results = race(database_url, lambda server, round_: server.apply(
        [AdvanceToken(token_id, round_ + 1)], event("auth", "alice", result="accept")))
    assert [outcome.count(True) for outcome in results] == [1] * ROUNDS
    assert store.load_subject("alice").tokens[0].last_used == ROUNDS
    assert len(store.list_audit(action="auth")) == ROUNDS  # the losers' rows rolled back


def test_racing_failures_lose_no_count(store, database_url):
    user_id = add_user(store, "alice")
    rounds = 5
    results = race(database_url, lambda server, round_: server.apply(
        [RecordFailure(user_id, at=NOW, max_failures=THREADS * rounds)],
        event("auth", "alice", result="reject")), rounds=rounds)
    assert all(all(outcome) for outcome in results)
    user = store.get_user("alice")
    assert (user.failures, user.locked_at) == (THREADS * rounds, NOW)


# --- the request path's durability on SQLite (_WalSync) -----------------------------------

def _record_syncs(monkeypatch) -> list[str]:
    """Every fdatasync the store makes, as the path of the file synced (the real call
    still runs)."""
    synced: list[str] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr("radiusd.store.store.os.fdatasync", fdatasync)
    return synced


def test_the_request_path_commits_without_fsync_and_sync_puts_it_on_disk(sqlite_store,
                                                                         monkeypatch):
    """Its commits skip SQLite's fsync (synchronous=NORMAL on its connection only) and
    ``sync`` fdatasyncs the write-ahead log: the same durability, out of the writer lock.
    Every other connection keeps synchronous=FULL."""
    store = sqlite_store
    synced = _record_syncs(monkeypatch)
    user_id = add_user(store, "alice")
    assert store.apply_batch([((RecordFailure(user_id, NOW, 5),), event("auth", "alice"),
                               None)], sync=False) == [True]
    assert synced == []                                      # committed, not yet synced
    assert store.get_user("alice").failures == 1             # and visible
    assert store._local.connection.execute("PRAGMA synchronous").fetchone()[0] == 1
    with store._engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
    ticket = store.sync_ticket()
    store.sync(ticket)
    wal = str(store._url.database) + "-wal"
    assert synced == [wal]
    store.sync(ticket)                                       # already on disk: no call
    assert synced == [wal]
    assert store.apply_batch([((), event("auth", "alice"), None)]) == [True]  # sync=True
    assert synced == [wal, wal]


def test_one_fdatasync_serves_every_batch_done_before_it_began(sqlite_store, monkeypatch):
    store = sqlite_store
    synced = _record_syncs(monkeypatch)
    add_user(store, "alice")
    first = store.sync_ticket()
    second = store.sync_ticket()
    store.sync(second)
    store.sync(first)
    assert len(synced) == 1
    third = store.sync_ticket()
    store.sync(third)
    assert len(synced) == 2


def test_a_failed_fdatasync_fails_every_later_sync(sqlite_store, monkeypatch):
    """After a failed fdatasync nobody knows what reached the disk: no answer may rely on
    it, until a restart lets SQLite recover from what is there."""
    store = sqlite_store
    add_user(store, "alice")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr("radiusd.store.store.os.fdatasync", failing)
    with pytest.raises(StoreUnavailable, match="cannot sync its write-ahead log .*restart"):
        store.sync(store.sync_ticket())
    monkeypatch.undo()
    with pytest.raises(StoreUnavailable, match="restart radiusd"):
        store.sync(store.sync_ticket())
    with pytest.raises(StoreUnavailable):
        store.apply_batch([((), event("auth", "alice"), None)])
    with pytest.raises(StoreUnavailable):   # the outage probe does not see it as over
        _probe(store)


def test_sync_follows_the_log_when_sqlite_replaces_it(tmp_path, monkeypatch):
    """SQLite deletes the log once it checkpointed all of it (last connection closed) and
    makes a new one: the fdatasync goes to the file there now; no file, nothing to sync."""
    synced = _record_syncs(monkeypatch)
    wal_sync = _WalSync(str(tmp_path / "radiusd.db"), "sqlite:///radiusd.db")
    wal = tmp_path / "radiusd.db-wal"
    try:
        wal_sync.sync(wal_sync.ticket())                      # no log yet
        assert synced == []
        wal.write_bytes(b"first")
        wal_sync.sync(wal_sync.ticket())
        assert synced == [str(wal)]
        first_inode = os.stat(wal).st_ino
        wal.unlink()                                          # deleted, then a new one
        (tmp_path / "replacement").write_bytes(b"second")
        os.replace(tmp_path / "replacement", wal)
        assert os.stat(wal).st_ino != first_inode
        wal_sync.sync(wal_sync.ticket())
        assert synced == [str(wal), f"{wal} (deleted)", str(wal)]
        assert os.fstat(wal_sync._fd).st_ino == os.stat(wal).st_ino
        wal.unlink()                                          # deleted, none since
        wal_sync.sync(wal_sync.ticket())
        assert synced == [str(wal), f"{wal} (deleted)", str(wal), f"{wal} (deleted)"]
        assert wal_sync._fd is None
    finally:
        wal_sync.close()


def test_sync_fdatasyncs_the_sqlite_log_and_does_nothing_on_postgresql(store, database_url,
                                                                      monkeypatch):
    """A PostgreSQL commit is on disk when it returns: ``sync`` has nothing to do."""
    synced = _record_syncs(monkeypatch)
    add_user(store, "alice")
    assert store.apply_batch([((), event("auth", "alice"), None)], sync=False) == [True]
    store.sync(store.sync_ticket())
    assert synced == ([] if not database_url.startswith("sqlite")
                      else [make_url(database_url).database + "-wal"])


def test_the_outage_probe_is_a_commit_so_a_held_writer_fails_it_while_reads_answer(
        tmp_path):
    """Issue 21 (4): with SQLite's writer held by another process (``BEGIN EXCLUSIVE``),
    reads answer but no login can commit: the probe (``Store.probe_commit``) fails like a
    login until the writer is released, then commits and leaves no row behind."""
    import sqlite3

    path = tmp_path / "radiusd.db"
    store = Store.open(f"sqlite:///{path}", statement_timeout=0.3)
    try:
        store.migrate()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        store.load_settings()                   # a read answers ...
        with pytest.raises(StoreUnavailable):   # ... a commit does not
            store.probe_commit()
        other.execute("COMMIT")
        other.close()
        store.probe_commit()
        with sqlite3.connect(path) as reader:
            assert reader.execute("SELECT count(*) FROM receipt").fetchone() == (0,)
    finally:
        store.close()


def test_the_outage_probe_commits_on_every_database(store):
    """Issue 21 (4): ``probe_commit`` writes and deletes its row in one committed
    transaction (SQLite and PostgreSQL); nothing of it remains."""
    store.probe_commit()
    store.probe_commit()
    assert store.find_receipts([b"radiusd outage probe"],
                               datetime(1999, 1, 1, tzinfo=UTC)) == {}

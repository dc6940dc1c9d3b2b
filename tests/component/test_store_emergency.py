"""The Store's emergency code sets on real databases (SQLite file and throw-away PostgreSQL,
each test on both): issuing (superseding the earlier set), reading the latest set, the
subject snapshot, the compare-and-set that uses a code up (also under 20 racing threads on
two servers), revoking, cascades, and the dashboard counts."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, inspect, select

from radiusd.emergency.export import accepted_reply
from radiusd.errors import AlreadyExists, NotFound
from radiusd.model import (AuditEvent, EmergencyCode, EmergencySet, PacketCode, Receipt,
                           RecordFailure, ResetFailures, RevokeEmergencySet, TokenKind,
                           UseEmergencyCode)
from radiusd.store import Store
from radiusd.store.store import _alembic_config
from radiusd.store.tables import emergency_code, emergency_set

NOW = datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)
LIFETIME = timedelta(hours=72)
SEED = b"\x01sealed-seed\xfe" * 3


def event(action: str, user: str | None = None, *, at: datetime = NOW, result: str = "ok",
          actor: str = "cli", **detail: object) -> AuditEvent:
    return AuditEvent(at=at, action=action, result=result, actor=actor, user_name=user,
                      node="test-node", detail=detail)


def add_user(store: Store, name: str) -> int:
    return store.add_user(name, pin_hash=b"pin-hash", password_hash=None, at=NOW,
                          audit=event("user.add", name))


def code_hashes(set_id: str, count: int) -> tuple[bytes, ...]:
    """Distinct 32-byte values standing in for ``Keys.code_hash`` (NUL and 0xff bytes
    included, so a text round trip would show)."""
    return tuple(hashlib.sha256(f"{set_id}:{n}".encode()).digest()[:30] + b"\x00\xff"
                 for n in range(count))


def new_set(user_id: int, number: int = 1, *, issued_at: datetime = NOW,
            lifetime: timedelta = LIFETIME) -> EmergencySet:
    return EmergencySet(id=f"{number:032x}", user_id=user_id, code_length=8,
                        issued_at=issued_at, expires_at=issued_at + lifetime,
                        issued_by="admin:root", reason="token left at home")


def issue(store: Store, user: str, emergency: EmergencySet, count: int = 5) -> EmergencySet:
    at = emergency.issued_at
    return store.issue_emergency_set(
        user, emergency, code_hashes(emergency.id, count),
        [event("emergency.issue", user, at=at, set=emergency.id),
         event("emergency.export", user, at=at, set=emergency.id, destination="stdout")])


def use(store: Store, user: str, emergency: EmergencySet, code: EmergencyCode, *,
        at: datetime = NOW + timedelta(minutes=1), client: str = "vpn-1",
        before: tuple = ()) -> bool:
    return store.apply([*before, UseEmergencyCode(code.id, emergency.id, at, client)],
                       event("auth", user, at=at, result="accept", actor="radius"))


def actions(store: Store, **filters: object) -> list[str]:
    return [record.event.action for record in store.list_audit(**filters)]


def rows(store: Store, table) -> list:
    with store._engine.connect() as connection:
        return connection.execute(select(table).order_by(*table.primary_key)).all()


def is_aware_utc(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() == timedelta(0)


# --- issue and read --------------------------------------------------------------------------


def test_issue_then_get_returns_the_set_with_its_codes_in_order(store):
    user_id = add_user(store, "alice")
    berlin = timezone(timedelta(hours=1))
    emergency = new_set(user_id, issued_at=NOW.astimezone(berlin))
    stored = issue(store, "alice", emergency, count=5)
    got = store.get_emergency_set("alice")
    assert got == stored
    assert (got.id, got.user_id, got.code_length, got.issued_at, got.expires_at,
            got.issued_by, got.reason, got.revoked_at, got.revoked_reason, got.last_used_at,
            got.last_used_client) == (emergency.id, user_id, 8, NOW, NOW + LIFETIME,
                                      "admin:root", "token left at home", None, None, None,
                                      None)
    assert is_aware_utc(got.issued_at) and is_aware_utc(got.expires_at)
    assert [code.position for code in got.codes] == [1, 2, 3, 4, 5]
    assert [code.code_hash for code in got.codes] == list(code_hashes(emergency.id, 5))
    assert all(type(code.code_hash) is bytes and code.used_at is None for code in got.codes)
    assert len({code.id for code in got.codes}) == 5 and got.codes_left == 5
    assert actions(store, user_name="alice") == ["emergency.export", "emergency.issue",
                                                 "user.add"]


def test_get_emergency_set_is_none_without_a_set_and_not_found_for_an_unknown_user(store):
    add_user(store, "alice")
    assert store.get_emergency_set("alice") is None
    with pytest.raises(NotFound, match="no user 'bob'"):
        store.get_emergency_set("bob")


def test_a_new_set_supersedes_the_earlier_one(store):
    user_id = add_user(store, "alice")
    first = issue(store, "alice", new_set(user_id, 1))
    later = NOW + timedelta(hours=1)
    second = issue(store, "alice", new_set(user_id, 2, issued_at=later), count=3)
    assert store.get_emergency_set("alice") == second
    assert (second.revoked_at, len(second.codes)) == (None, 3)
    by_id = {row.id: row for row in rows(store, emergency_set)}
    assert (by_id[first.id].revoked_at, by_id[first.id].revoked_reason) == (later, "superseded")
    # A set revoked by an admin keeps its own revocation when a newer one supersedes it.
    assert store.revoke_emergency_set(second.id, at=later, reason="found the token",
                                      audit=event("emergency.revoke", "alice", at=later))
    issue(store, "alice", new_set(user_id, 3, issued_at=later + timedelta(hours=1)))
    by_id = {row.id: row for row in rows(store, emergency_set)}
    assert by_id[second.id].revoked_reason == "found the token"
    assert by_id[first.id].revoked_at == later


def _supersede_row(set_id: str, codes_left: int, at: datetime = NOW) -> AuditEvent:
    return event("emergency.revoke", "alice", at=at, set=set_id, codes_left=codes_left)


def test_superseding_an_active_set_writes_its_revoke_row_with_the_new_set(store):
    """Issue 20 (12): superseding a set wrote no revoke row; the help desk could not see
    why the earlier codes stopped working."""
    user_id = add_user(store, "alice")
    first = issue(store, "alice", new_set(user_id, 1))
    assert use(store, "alice", first, first.codes[0])
    later = NOW + timedelta(hours=1)
    second = new_set(user_id, 2, issued_at=later)
    store.issue_emergency_set("alice", second, code_hashes(second.id, 3),
                              [event("emergency.issue", "alice", at=later, set=second.id)],
                              superseded_audit=lambda *row: _supersede_row(*row, at=later))
    revokes = [r.event for r in store.list_audit(action="emergency.revoke")]
    assert [(e.detail["set"], e.detail["codes_left"]) for e in revokes] == [(first.id, 4)]
    # The revoke row comes before the issue row (same transaction, in that order).
    assert actions(store, user_name="alice")[:2] == ["emergency.issue", "emergency.revoke"]


def test_an_expired_or_revoked_set_gets_no_second_revoke_row(store):
    """Issue 20 (12): only a set still active at the new set's issue is superseded."""
    user_id = add_user(store, "alice")
    issue(store, "alice", new_set(user_id, 1, lifetime=timedelta(minutes=5)))
    later = NOW + timedelta(hours=1)
    for number, at in ((2, later), (3, later + timedelta(hours=1))):
        emergency = new_set(user_id, number, issued_at=at)
        if number == 3:
            assert store.revoke_emergency_set(f"{2:032x}", at=at, reason="found the token",
                                              audit=event("emergency.revoke", "alice", at=at))
        store.issue_emergency_set("alice", emergency, code_hashes(emergency.id, 2), [],
                                  superseded_audit=_supersede_row)
    assert actions(store, action="emergency.revoke") == ["emergency.revoke"]  # the admin's


def test_load_replaced_sets_reads_the_set_before_the_latest_in_one_query(store, selects):
    """Issue 20 (12): the request path can match a code of the set a newer one replaced."""
    alice_id, bob_id = add_user(store, "alice"), add_user(store, "bob")
    add_user(store, "carol")
    first = issue(store, "alice", new_set(alice_id, 1))
    issue(store, "alice", new_set(alice_id, 2, issued_at=NOW + timedelta(hours=1)))
    issue(store, "bob", new_set(bob_id, 3))
    selects.clear()
    replaced = store.load_replaced_sets(["alice", "bob", "carol", "nobody"])
    assert len(selects) == 1
    assert list(replaced) == [alice_id]
    assert (replaced[alice_id].id, replaced[alice_id].revoked_reason) == (first.id,
                                                                         "superseded")
    assert replaced[alice_id].codes == () and replaced[alice_id].codes_left == 5


def test_a_set_issued_at_the_same_instant_still_supersedes_the_earlier_one(store):
    # An injected clock may stand still; the random set ids must not decide which is latest.
    user_id = add_user(store, "alice")
    for number in (9, 1, 5, 3, 7):
        stored = issue(store, "alice", new_set(user_id, number))
        assert store.get_emergency_set("alice").id == stored.id
        assert store.load_subject("alice").emergency.id == stored.id
    assert [row.revoked_at is None for row in rows(store, emergency_set)].count(True) == 1


def test_a_set_issued_by_a_server_whose_clock_is_behind_still_supersedes(store):
    user_id = add_user(store, "alice")
    issue(store, "alice", new_set(user_id, 1, issued_at=NOW + timedelta(minutes=1)))
    second = issue(store, "alice", new_set(user_id, 2, issued_at=NOW))
    assert store.get_emergency_set("alice") == second
    assert store.load_subject("alice").emergency == second
    assert second.is_active(NOW + timedelta(minutes=2))


def test_issue_for_an_unknown_user_raises_not_found_and_writes_nothing(store):
    alice_id = add_user(store, "alice")
    add_user(store, "bob")
    with pytest.raises(NotFound, match="no user 'carol'"):
        issue(store, "carol", new_set(alice_id))
    # The hashes are bound to the user id: bob cannot receive a set made for alice.
    with pytest.raises(NotFound, match="no user 'bob'"):
        issue(store, "bob", new_set(alice_id))
    with pytest.raises(ValueError, match="32 bytes"):
        store.issue_emergency_set("alice", new_set(alice_id), [b"short"], [event("x")])
    assert rows(store, emergency_set) == [] and rows(store, emergency_code) == []
    assert actions(store) == ["user.add", "user.add"]


def test_issuing_a_set_id_twice_raises_already_exists_and_keeps_the_first(store):
    user_id = add_user(store, "alice")
    first = issue(store, "alice", new_set(user_id, 1))
    with pytest.raises(AlreadyExists, match="emergency set"):
        issue(store, "alice", new_set(user_id, 1, issued_at=NOW + timedelta(hours=1)))
    assert store.get_emergency_set("alice") == first  # not even superseded
    assert actions(store, action="emergency.issue") == ["emergency.issue"]


# --- the subject snapshot --------------------------------------------------------------------


def test_load_subject_carries_the_latest_set_with_used_codes(store):
    user_id = add_user(store, "alice")
    for serial in ("T-1", "T-2"):
        store.add_token("alice", serial=serial, kind=TokenKind.TOTP, digits=6, period=30,
                        sealed_seed=SEED, last_used=-1, at=NOW,
                        audit=event("token.add", "alice"))
    assert store.load_subject("alice").emergency is None
    issue(store, "alice", new_set(user_id, 1))
    emergency = issue(store, "alice", new_set(user_id, 2, issued_at=NOW + timedelta(hours=1)),
                      count=3)
    assert use(store, "alice", emergency, emergency.codes[1],
               at=NOW + timedelta(hours=2))
    subject = store.load_subject("alice")
    assert [token.serial for token in subject.tokens] == ["T-1", "T-2"]  # not times codes
    assert subject.emergency == store.get_emergency_set("alice")
    assert subject.emergency.id == emergency.id
    assert [code.used_at for code in subject.emergency.codes] == [
        None, NOW + timedelta(hours=2), None]
    assert subject.emergency.codes_left == 2


class _CountingCursor:
    """A DBAPI cursor that notes every SELECT it runs (the request path's driver SQL)."""

    def __init__(self, cursor, selects: list[str]):
        self._cursor = cursor
        self._selects = selects

    def execute(self, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            self._selects.append(statement)
        return self._cursor.execute(statement, *args)

    def __getattr__(self, name):
        return getattr(self._cursor, name)


@pytest.fixture
def selects(store, monkeypatch) -> list[str]:
    """Every SELECT the store runs from now on, through SQLAlchemy or on a raw cursor."""
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    raw_cursor = Store._cursor
    monkeypatch.setattr(Store, "_cursor",
                        staticmethod(lambda connection: _CountingCursor(
                            raw_cursor(connection), seen)))
    sqlalchemy_event.listen(store._engine, "before_cursor_execute", count)
    yield seen
    sqlalchemy_event.remove(store._engine, "before_cursor_execute", count)


def test_load_subject_reads_in_two_queries(store, selects):
    user_id = add_user(store, "alice")
    issue(store, "alice", new_set(user_id), count=10)
    selects.clear()
    assert len(store.load_subject("alice").emergency.codes) == 10
    assert len(selects) == 2


def test_request_path_reads_one_query_each(store, selects):
    """The batched request path: users+tokens and set headers in two queries, candidate
    codes in one, whatever the number of users."""
    for number, name in enumerate(("alice", "bob", "carol"), start=1):
        issue(store, name, new_set(add_user(store, name), number), count=10)
    selects.clear()
    subjects = store.load_subjects(["alice", "bob", "carol", "nobody"], with_codes=False)
    assert sorted(subjects) == ["alice", "bob", "carol"]
    assert all(subject.emergency.codes == () and subject.emergency.codes_left == 10
               for subject in subjects.values())
    assert len(selects) == 2
    wanted = [(subjects[name].emergency.id, code_hashes(subjects[name].emergency.id, 10)[2])
              for name in ("alice", "bob")]
    selects.clear()
    found = store.find_emergency_codes(wanted + [("no-such-set", b"\0" * 32)])
    assert len(selects) == 1
    assert sorted(found) == sorted(wanted)
    assert {code.position for code in found.values()} == {3}


# --- apply: using a code, revoking -----------------------------------------------------------


def test_use_emergency_code_succeeds_once_and_records_the_last_use(store):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id))
    code = emergency.codes[2]
    at = NOW + timedelta(minutes=5)
    assert use(store, "alice", emergency, code, at=at, client="vpn-1")
    stored = store.get_emergency_set("alice")
    assert [c.used_at for c in stored.codes] == [None, None, at, None, None]
    assert (stored.last_used_at, stored.last_used_client, stored.codes_left) == (at, "vpn-1", 4)
    assert is_aware_utc(stored.last_used_at) and is_aware_utc(stored.codes[2].used_at)
    assert [row.used_client for row in rows(store, emergency_code)] == [
        None, None, "vpn-1", None, None]

    # The same code again: refused, and nothing of the request is written, audit included.
    store.apply([RecordFailure(user_id, at=at, max_failures=5)], event("auth", "alice"))
    before = store.list_audit()
    assert not use(store, "alice", emergency, code, at=at + timedelta(minutes=1),
                   client="vpn-2", before=(ResetFailures(user_id),))
    assert store.list_audit() == before
    assert store.get_emergency_set("alice") == stored
    assert store.get_user("alice").failures == 1


def test_sqlite_uses_a_code_without_growing_its_row(sqlite_store):
    """The room an unused code's row holds (store.CODE_ROW_ROOM) takes its use and
    receipt: using the codes of a set rewrites their pages in place, splits none (each
    split writes three pages to the log instead of one)."""
    store = sqlite_store
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id), count=100)

    def pages() -> int:
        with store._engine.connect() as connection:
            return connection.exec_driver_sql(
                "SELECT count(*) FROM dbstat WHERE name = 'emergency_code'").scalar_one()

    before = pages()
    assert before > 2  # rows of a set fill several pages: a split would show
    at = NOW + timedelta(minutes=1)
    codes = emergency.codes[:98]  # the last two add a warning to the reply
    for start in range(0, len(codes), 10):
        batch = codes[start:start + 10]
        assert store.apply_batch([
            ((UseEmergencyCode(code.id, emergency.id, at, "vpn-concentrator-1"),),
             event("auth", "alice", at=at, result="accept", actor="radius"),
             Receipt(key=hashlib.sha256(bytes([code.position])).digest(),
                     code=PacketCode.ACCESS_ACCEPT, expires_at=at + timedelta(seconds=60),
                     reply_messages=accepted_reply(100 - code.position,
                                                   emergency.expires_at)))
            for code in batch]) == [True] * len(batch)
    assert store.get_emergency_set("alice").codes_left == 2
    assert pages() == before


def test_use_emergency_code_is_refused_once_the_set_is_revoked(store):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id))
    assert store.revoke_emergency_set(emergency.id, at=NOW, reason="found the token",
                                      audit=event("emergency.revoke", "alice"))
    before = store.list_audit()
    assert not use(store, "alice", emergency, emergency.codes[0])
    assert store.list_audit() == before
    assert store.get_emergency_set("alice").codes_left == 5


def test_use_emergency_code_is_refused_at_and_after_expiry(store):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id))
    expires_at = emergency.expires_at
    assert not use(store, "alice", emergency, emergency.codes[0], at=expires_at)
    assert not use(store, "alice", emergency, emergency.codes[0],
                   at=expires_at + timedelta(days=1))
    assert use(store, "alice", emergency, emergency.codes[0],
               at=expires_at - timedelta(microseconds=1))
    assert actions(store, action="auth") == ["auth"]


def test_codes_of_a_superseded_or_another_set_are_refused(store):
    alice_id, bob_id = add_user(store, "alice"), add_user(store, "bob")
    old = issue(store, "alice", new_set(alice_id, 1))
    current = issue(store, "alice", new_set(alice_id, 2, issued_at=NOW + timedelta(seconds=1)))
    bobs = issue(store, "bob", new_set(bob_id, 3))
    assert not use(store, "alice", old, old.codes[0])  # superseded: revoked
    # A code id paired with a set it does not belong to matches no row.
    assert not store.apply([UseEmergencyCode(old.codes[0].id, current.id, NOW, "vpn-1")],
                           event("auth", "alice"))
    assert not store.apply([UseEmergencyCode(bobs.codes[0].id, current.id, NOW, "vpn-1")],
                           event("auth", "alice"))
    assert [row.used_at for row in rows(store, emergency_code)] == [None] * 15


def test_revoke_emergency_set_in_apply_is_not_a_compare_and_set(store):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id))
    at = NOW + timedelta(minutes=3)
    assert store.apply([RevokeEmergencySet(emergency.id, at, "token used")],
                       event("auth", "alice", at=at, result="accept"))
    stored = store.get_emergency_set("alice")
    assert (stored.revoked_at, stored.revoked_reason) == (at, "token used")
    assert not stored.is_active(at)
    # Already revoked: the request still commits, and the first revocation stays.
    assert store.apply([RevokeEmergencySet(emergency.id, at + timedelta(hours=1), "again")],
                       event("auth", "alice", at=at, result="accept"))
    stored = store.get_emergency_set("alice")
    assert (stored.revoked_at, stored.revoked_reason) == (at, "token used")
    assert actions(store, action="auth") == ["auth", "auth"]


def test_revoke_emergency_set_revokes_once_and_audits_once(store):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id))
    revoke = lambda set_id, reason: store.revoke_emergency_set(
        set_id, at=NOW + timedelta(hours=1), reason=reason,
        audit=event("emergency.revoke", "alice", reason=reason))
    assert revoke(emergency.id, "found the token")
    assert not revoke(emergency.id, "again")
    assert not revoke("f" * 32, "no such set")
    stored = store.get_emergency_set("alice")
    assert (stored.revoked_at, stored.revoked_reason) == (NOW + timedelta(hours=1),
                                                          "found the token")
    assert actions(store, action="emergency.revoke") == ["emergency.revoke"]


def test_deleting_a_user_deletes_their_sets_and_codes(store):
    alice_id, bob_id = add_user(store, "alice"), add_user(store, "bob")
    issue(store, "alice", new_set(alice_id, 1))
    issue(store, "alice", new_set(alice_id, 2, issued_at=NOW + timedelta(seconds=1)))
    bobs = issue(store, "bob", new_set(bob_id, 3), count=2)
    store.delete_user("alice", event("user.delete", "alice"))
    assert [row.id for row in rows(store, emergency_set)] == [bobs.id]
    assert {row.set_id for row in rows(store, emergency_code)} == {bobs.id}
    assert len(rows(store, emergency_code)) == 2


# --- the dashboard ---------------------------------------------------------------------------


def test_counts_of_active_sets_and_of_uses(store):
    ids = {name: add_user(store, name) for name in ("alice", "bob", "carol", "dave")}
    alice = issue(store, "alice", new_set(ids["alice"], 1))
    bob = issue(store, "bob", new_set(ids["bob"], 2))
    store.revoke_emergency_set(bob.id, at=NOW, reason="r", audit=event("emergency.revoke"))
    issue(store, "carol", new_set(ids["carol"], 3, issued_at=NOW - timedelta(days=4)))
    issue(store, "dave", new_set(ids["dave"], 4, issued_at=NOW - timedelta(hours=1)))
    issue(store, "dave", new_set(ids["dave"], 5))  # supersedes set 4
    assert store.count_active_emergency_sets(NOW) == 2  # alice, dave's set 5
    assert store.count_active_emergency_sets(NOW + LIFETIME) == 0
    assert store.count_emergency_uses(NOW) == 0
    assert use(store, "alice", alice, alice.codes[0], at=NOW + timedelta(minutes=1))
    assert use(store, "alice", alice, alice.codes[1], at=NOW + timedelta(hours=2))
    assert store.count_emergency_uses(NOW) == 2
    assert store.count_emergency_uses(NOW + timedelta(hours=2)) == 1
    assert store.count_emergency_uses(NOW + timedelta(hours=3)) == 0


# --- schema ----------------------------------------------------------------------------------


def test_downgrade_to_0001_drops_the_emergency_tables_and_upgrade_restores_them(store):
    user_id = add_user(store, "alice")
    issue(store, "alice", new_set(user_id))
    with store._engine.begin() as connection:
        command.downgrade(_alembic_config(connection), "0001")
    assert not {"emergency_set", "emergency_code"} & set(
        inspect(store._engine).get_table_names())
    store.migrate()
    store.check_schema()
    assert store.get_emergency_set("alice") is None
    assert store.get_user("alice").name == "alice"


# --- races: two servers, twenty threads, one code --------------------------------------------

THREADS = 20
ROUNDS = 50


def test_racing_for_one_code_accepts_exactly_once_per_round(store, database_url):
    user_id = add_user(store, "alice")
    emergency = issue(store, "alice", new_set(user_id), count=ROUNDS)
    servers = [Store.open(database_url, pool_size=THREADS // 2, statement_timeout=10.0)
               for _ in range(2)]
    barrier = threading.Barrier(THREADS)

    def attempt(index: int, round_: int) -> bool:
        barrier.wait(timeout=30)
        at = NOW + timedelta(minutes=round_ + 1)
        return use(servers[index % 2], "alice", emergency, emergency.codes[round_], at=at,
                   client=f"server-{index % 2}")

    try:
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = [list(pool.map(lambda index: attempt(index, round_), range(THREADS)))
                       for round_ in range(ROUNDS)]
    finally:
        for server in servers:
            server.close()
    assert [outcome.count(True) for outcome in results] == [1] * ROUNDS
    stored = store.get_emergency_set("alice")
    assert stored.codes_left == 0
    assert [code.used_at for code in stored.codes] == [
        NOW + timedelta(minutes=n + 1) for n in range(ROUNDS)]
    assert stored.last_used_at == NOW + timedelta(minutes=ROUNDS)
    assert len(store.list_audit(action="auth")) == ROUNDS  # the losers' rows rolled back
    with store._engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(emergency_code)
                                  .where(emergency_code.c.used_client.is_not(None))
                                  ).scalar_one() == ROUNDS


def test_sets_issued_at_once_on_two_servers_leave_exactly_one_active(store, database_url):
    user_id = add_user(store, "alice")
    threads, rounds = 10, 5
    servers = [Store.open(database_url, pool_size=threads // 2, statement_timeout=10.0)
               for _ in range(2)]
    barrier = threading.Barrier(threads)

    def attempt(index: int, round_: int) -> str:
        emergency = new_set(user_id, round_ * threads + index + 1,
                            issued_at=NOW + timedelta(minutes=round_))
        barrier.wait(timeout=30)
        return issue(servers[index % 2], "alice", emergency, count=2).id

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for round_ in range(rounds):
                issued = set(pool.map(lambda index: attempt(index, round_), range(threads)))
                active = [row.id for row in rows(store, emergency_set)
                          if row.revoked_at is None]
                assert len(issued) == threads and len(active) == 1
                assert active[0] in issued
                assert store.get_emergency_set("alice").id == active[0]
    finally:
        for server in servers:
            server.close()

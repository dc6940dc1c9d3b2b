"""Group commit: ``Store.apply_batch`` (one transaction, a compare-and-set per request) on
SQLite and PostgreSQL, and the ``GroupCommit`` queue that forms the batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from twisted.internet import defer

from radiusd.app import GroupCommit
from radiusd.model import (AdvanceToken, AuditEvent, Receipt, RecordFailure, SaveReceipt,
                           TokenKind, UseEmergencyCode)
from radiusd.store import Store
from radiusd.store.tables import receipt as receipt_table
from test_store_emergency import add_user, issue, new_set, rows

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def auth(user: str, result: str) -> AuditEvent:
    return AuditEvent(at=NOW, action="auth", result=result, actor="radius", user_name=user)


def token(store: Store, user: str, serial: str) -> int:
    store.add_token(user, serial=serial, kind=TokenKind.TOTP, digits=6, period=30,
                    sealed_seed=b"s" * 40, last_used=1, at=NOW,
                    audit=AuditEvent(at=NOW, action="token.add", result="ok", actor="cli"))
    return next(t.id for t in store.list_tokens(user) if t.serial == serial)


def receipt(n: int) -> Receipt:
    return Receipt(key=bytes([n]) * 32, code=2, reply_messages=(f"r{n}",),
                   expires_at=NOW + timedelta(seconds=60))


def test_each_request_in_a_batch_keeps_its_own_compare_and_set(store):
    user_id = add_user(store, "alice")
    add_user(store, "bob")
    first, second = token(store, "alice", "A1"), token(store, "bob", "B1")
    results = store.apply_batch([
        ((AdvanceToken(first, 5),), auth("alice", "accept"), receipt(1)),
        ((AdvanceToken(first, 5),), auth("alice", "accept"), receipt(2)),   # same step: lost
        ((RecordFailure(user_id, NOW, 5),), auth("alice", "reject"), receipt(3)),
        ((AdvanceToken(second, 9),), auth("bob", "accept"), None),
        ((), auth("ghost", "reject"), None),
    ])
    assert results == [True, False, True, True, True]
    audit = [(r.event.user_name, r.event.result) for r in store.list_audit(action="auth")]
    assert sorted(audit) == sorted([("alice", "accept"), ("alice", "reject"),
                                    ("bob", "accept"), ("ghost", "reject")])
    # An Accept's receipt is on the row its compare-and-set changed; the loser left none.
    tokens = {t.serial: t for t in store.load_subjects(["alice", "bob"])["alice"].tokens}
    assert tokens["A1"].receipt == receipt(1)
    assert store.load_subject("bob").tokens[0].receipt is None
    # A receipt without a compare-and-set to carry it goes to the receipt table.
    assert sorted(bytes(r.key)[0] for r in rows(store, receipt_table)) == [3]
    assert store.get_user("alice").failures == 1
    assert store.find_receipts([bytes([3]) * 32, bytes([2]) * 32], NOW).keys() == \
        {bytes([3]) * 32}


def test_an_emergency_code_keeps_the_receipt_of_the_request_that_used_it(store):
    user_id = add_user(store, "dave")
    emergency = issue(store, "dave", new_set(user_id))
    code = emergency.codes[1]
    use = (UseEmergencyCode(code.id, emergency.id, NOW, "vpn"),)
    assert store.apply_batch([(use, auth("dave", "accept"), receipt(7))]) == [True]
    found = store.find_emergency_codes([(emergency.id, code.code_hash)])
    assert found[(emergency.id, code.code_hash)].receipt == receipt(7)
    assert rows(store, receipt_table) == []


def test_a_displaced_receipt_is_saved_in_the_receipt_table(store):
    add_user(store, "erin")
    token_id = token(store, "erin", "E1")
    assert store.apply_batch([((AdvanceToken(token_id, 5),), auth("erin", "accept"),
                               receipt(4))]) == [True]
    displaced = store.load_subject("erin").tokens[0].receipt
    assert store.apply_batch([((AdvanceToken(token_id, 6), SaveReceipt(displaced)),
                               auth("erin", "accept"), receipt(5))]) == [True]
    assert store.load_subject("erin").tokens[0].receipt == receipt(5)
    assert store.find_receipts([receipt(4).key], NOW) == {receipt(4).key: receipt(4)}


def test_a_request_whose_second_cas_loses_keeps_none_of_its_effects(store):
    user_id = add_user(store, "carol")
    token_id = token(store, "carol", "C1")
    emergency = issue(store, "carol", new_set(user_id))
    code = emergency.codes[0]
    assert store.apply_batch([((UseEmergencyCode(code.id, emergency.id, NOW, "x"),),
                               auth("carol", "accept"), None)]) == [True]
    both = (AdvanceToken(token_id, 7), UseEmergencyCode(code.id, emergency.id, NOW, "x"))
    assert store.apply_batch([(both, auth("carol", "accept"), None)]) == [False]
    assert store.load_subject("carol").tokens[0].last_used == 1   # rolled back to savepoint


def test_a_batch_locks_rows_in_one_global_order(postgresql_url, monkeypatch):
    """PostgreSQL: tokens and codes (the compare-and-sets) first, then users and sets
    sorted by id, whatever the order of the requests: two servers committing batches at
    once then never wait for each other in a cycle (PostgreSQL would abort one as a
    deadlock). SQLite has no row locks: a writer holds the whole database."""
    from component.conftest import empty_postgresql
    from radiusd.model import ResetFailures

    empty_postgresql(postgresql_url)
    store = Store.open(postgresql_url)
    store.migrate()
    alice, bob = add_user(store, "alice"), add_user(store, "bob")
    token_a, token_b = token(store, "alice", "A1"), token(store, "bob", "B1")
    executed: list[tuple[str, tuple]] = []

    class Recording:
        def __init__(self, cursor):
            self._cursor = cursor

        def execute(self, statement, parameters=()):
            executed.append((statement.split()[1], tuple(parameters)))
            return self._cursor.execute(statement, parameters)

        def __getattr__(self, name):
            return getattr(self._cursor, name)

    try:
        raw_cursor = Store._cursor
        monkeypatch.setattr(Store, "_cursor", staticmethod(
            lambda connection: Recording(raw_cursor(connection))))
        assert store.apply_batch([
            ((RecordFailure(bob, NOW, 5),), auth("bob", "reject"), None),
            ((AdvanceToken(token_b, 9), ResetFailures(bob)), auth("bob", "accept"), None),
            ((RecordFailure(alice, NOW, 5),), auth("alice", "reject"), None),
            ((AdvanceToken(token_a, 9), ResetFailures(alice)), auth("alice", "accept"), None),
        ]) == [True] * 4
    finally:
        store.close()
    users = [parameters[-1] for table, parameters in executed if table == "users"]
    assert sorted(users) == [alice, alice, bob, bob]
    assert users == sorted(users)


def test_batches_form_while_the_database_is_busy():
    calls: list[list[int]] = []
    gates: list[defer.Deferred] = []

    def run_db(process, ctx, items):
        calls.append(list(items))
        gate = defer.Deferred()
        gates.append(gate)
        return gate.addCallback(lambda _: [item * 10 for item in items])

    group = GroupCommit(run_db, process=None, ctx=None, max_batch=3)
    results = []
    for item in range(6):
        group(item).addCallback(results.append)
    assert calls == [[0]]                 # the first request does not wait
    gates[0].callback(None)
    assert calls == [[0], [1, 2, 3]]      # those that arrived meanwhile, up to max_batch
    gates[1].callback(None)
    gates[2].callback(None)
    assert calls == [[0], [1, 2, 3], [4, 5]]
    assert results == [0, 10, 20, 30, 40, 50]


def test_a_failed_batch_fails_each_of_its_requests():
    def run_db(process, ctx, items):
        return defer.fail(RuntimeError("database down"))

    group = GroupCommit(run_db, process=None, ctx=None)
    failures = []
    group(1).addErrback(failures.append)
    group(2).addErrback(failures.append)
    assert len(failures) == 2 and all(f.check(RuntimeError) for f in failures)


def test_a_request_that_finds_the_database_idle_never_waits_for_company():
    calls: list[list[int]] = []
    gates: list[defer.Deferred] = []

    def run_db(process, ctx, items):
        calls.append(list(items))
        gate = defer.Deferred()
        gates.append(gate)
        return gate.addCallback(lambda _: [None] * len(items))

    group = GroupCommit(run_db, process=None, ctx=None)
    group(1)
    group(2)
    gates[0].callback(None)              # a batch just finished, under a steady stream:
    assert calls == [[1], [2]]           # the one waiting goes at once, alone
    gates[1].callback(None)
    group(3)                             # idle again: at once
    assert calls == [[1], [2], [3]]


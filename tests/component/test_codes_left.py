""""N codes left" is the count the commit left, not the snapshot's (issue 21, 11).

Four codes of one set used at once (in one group commit, or in batches committing at
once) must each be told their own count: 4, 3, 2, 1 (in some order), the last ones with
the "get your token back" warning. ``authenticate_batch`` on a real Store, on SQLite and
PostgreSQL; the concurrent batches all read their snapshot before any of them commits.
"""

from __future__ import annotations

import random
import re
import threading
from datetime import UTC, datetime

import netaddr
import pytest

from radiusd.accounts import Accounts
from radiusd.config import PerimeterConfig
from radiusd.crypto import Keys
from radiusd.emergency import issuing
from radiusd.handlers.access_request import Pending, authenticate_batch
from radiusd.handlers.context import HandlerContext, SettingsCache
from radiusd.model import Accept, Client, PacketCode, RadiusRequest, Secret

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PIN = "4821"
CLIENT = Client("nas", netaddr.IPNetwork("10.0.0.1/32"), Secret("component-secret-0123"))
LEFT = re.compile(r"Emergency code accepted: (\d+) codes? left")


def _ctx(store) -> HandlerContext:
    keys = Keys.from_master(b"c" * 32)
    network = netaddr.IPNetwork("10.0.0.0/8")
    return HandlerContext(store=store, keys=keys, run_db=None, now=lambda: NOW,
                          settings=SettingsCache(store.load_settings), node="test",
                          perimeter=PerimeterConfig(networks=(network,),
                                                    ip_set=netaddr.IPSet([network]),
                                                    check="nas"))


def _issue(ctx: HandlerContext, user: str, count: int = 5) -> list[str]:
    accounts = Accounts(ctx.store, ctx.keys, random.Random(user).randbytes, "test")
    accounts.add_user(user, pin=PIN, password=None, actor="test", now=NOW)
    prepared = issuing.prepare_set(ctx.store, ctx.keys, accounts.random,
                                   ctx.settings.get(NOW), user_name=user, count=count,
                                   issued_by="cli", reason="test", now=NOW)
    issuing.commit_set(ctx.store, prepared, actor="cli", destination="stdout", node="test",
                       now=NOW)
    return [code.reveal().decode() for code in prepared.codes]


def _pending(user: str, code: str, identifier: int) -> Pending:
    request = RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=identifier,
                            authenticator=bytes([identifier]) * 16, attributes=(), user_name=user,
                            password=Secret(PIN + code))
    return Pending(request, CLIENT, ("10.0.0.1", 40000 + identifier), NOW)


def _counts(verdicts) -> list[int]:
    counts = []
    for verdict in verdicts:
        assert isinstance(verdict, Accept), verdict
        counts.append(int(LEFT.match(verdict.reply_messages[0]).group(1)))
    return counts


def _check(ctx: HandlerContext, user: str, verdicts) -> None:
    counts = _counts(verdicts)
    assert sorted(counts) == [1, 2, 3, 4], counts
    for verdict, left in zip(verdicts, counts):
        # The warning from 2 left (SPEC), and the audit row says the same count.
        assert (len(verdict.reply_messages) == 2) == (left <= 2), verdict.reply_messages
    audited = sorted(record.event.detail["codes_left"]
                     for record in ctx.store.list_audit(user_name=user)
                     if record.event.action == "auth")
    assert audited == [1, 2, 3, 4]
    assert ctx.store.get_emergency_set(user).codes_left == 1


def test_four_codes_of_one_set_in_one_batch_are_told_4_3_2_1(store):
    """Issue 21 (11): one group commit holding four codes of one set."""
    ctx = _ctx(store)
    codes = _issue(ctx, "batch-alice")
    verdicts = authenticate_batch(ctx, [_pending("batch-alice", code, index)
                                        for index, code in enumerate(codes[:4])])
    _check(ctx, "batch-alice", verdicts)


def test_four_codes_of_one_set_in_concurrent_batches_are_told_4_3_2_1(store, monkeypatch):
    """Issue 21 (11): four batches (threads, as the DB threads or several servers) that
    all read the set (5 left) before any of them commits."""
    ctx = _ctx(store)
    codes = _issue(ctx, "race-alice")
    barrier = threading.Barrier(4, timeout=20)
    apply_batch = store.apply_batch

    def apply_after_every_read(*args, **kwargs):
        barrier.wait()
        return apply_batch(*args, **kwargs)

    monkeypatch.setattr(store, "apply_batch", apply_after_every_read)
    verdicts: list = [None] * 4
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            verdicts[index] = authenticate_batch(
                ctx, [_pending("race-alice", codes[index], index)])[0]
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    _check(ctx, "race-alice", verdicts)


def test_the_receipt_of_each_use_holds_the_count_it_was_told(store):
    """Issue 21 (11): a retransmission answered from the receipt (another server, a
    restart) gets the very Reply-Message of the Accept, not the snapshot's count."""
    ctx = _ctx(store)
    codes = _issue(ctx, "receipt-alice")
    batch = [_pending("receipt-alice", code, index) for index, code in enumerate(codes[:4])]
    first = authenticate_batch(ctx, batch)
    again = authenticate_batch(ctx, batch)
    assert [verdict.reply_messages for verdict in again] == \
        [verdict.reply_messages for verdict in first]
    assert sorted(_counts(again)) == [1, 2, 3, 4]


def test_an_sqlite_without_update_returning_is_refused_when_opened(monkeypatch):
    """Issue 21 (11): the count comes from UPDATE ... RETURNING (SQLite 3.35+); an older
    SQLite is a config error naming the version, not a failure at every login."""
    import sqlite3

    from radiusd.errors import ConfigError
    from radiusd.store import Store

    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 34, 1))
    monkeypatch.setattr(sqlite3, "sqlite_version", "3.34.1")
    with pytest.raises(ConfigError, match=r"SQLite 3\.34\.1 is too old"):
        Store.open("sqlite:///:memory:")

"""Bulk import on real databases (SQLite and a throw-away PostgreSQL, each test on both):
``importing.import_users`` over ``store.bulk.import_batch``. Batches are whole, duplicates
across batches and against the database are bad rows with nothing half-written, and an
imported user authenticates through ``decide_access`` like a user the CLI created."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime

import pytest

from radiusd import otp
from radiusd.crypto import Keys
from radiusd.decide import decide_access
from radiusd.importing import BadRow, generate_serial, import_users, read_rows
from radiusd.model import (Accept, AdvanceToken, AuditEvent, PacketCode, RadiusRequest, Reject,
                           RejectReason, Secret, TokenKind)
from radiusd.settings import Settings
from radiusd.store.bulk import import_batch
from support import run_cli

NOW = datetime(2026, 11, 28, 12, 0, 10, tzinfo=UTC)
KEYS = Keys.from_master(b"m" * 32)
HEADER = "name,pin,token_type,secret,digits,period,counter,serial"
_nonces = itertools.count()


def fake_random(n: int) -> bytes:
    return next(_nonces).to_bytes(n, "big")


def b32(seed: bytes) -> str:
    return base64.b32encode(seed).decode().rstrip("=")


def seed_of(i: int) -> bytes:
    return f"seed-{i:015d}".encode()


def run_import(store, lines, *, batch_size=1000, random=fake_random):
    rows = read_rows([HEADER + "\n", *(line + "\n" for line in lines)])
    return import_users(rows, lambda batch, audit_for: import_batch(store, batch, audit_for),
                        KEYS, random, now=NOW, actor="cli", node="test-node",
                        source="users.csv", batch_size=batch_size)


def imports(store) -> list[AuditEvent]:
    return [record.event for record in store.list_audit(action="user.import")]


def access_request(user: str, passcode: bytes) -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                         authenticator=b"\x00" * 16, attributes=(), user_name=user,
                         password=Secret(passcode))


def test_users_and_tokens_are_stored_in_batches_with_one_audit_row_each(store):
    lines = [f"user{i:03d},{4000 + i},totp,{b32(seed_of(i))},,,," for i in range(25)]
    lines += [f"plain{i},,,,,,," for i in range(5)]
    report = run_import(store, lines, batch_size=10)
    assert report.summary() == "imported 30 users (25 tokens); 0 bad rows"
    assert store.count_users() == 30
    user = store.get_user("user007")
    assert user.has_pin and len(user.token_serials) == 1
    assert user.created_at == NOW
    assert store.get_user("plain3").token_serials == ()
    audits = imports(store)
    assert len(audits) == 3
    assert sorted((a.detail["first_line"], a.detail["users"], a.detail["tokens"])
                  for a in audits) == [(2, 10, 10), (12, 10, 10), (22, 10, 5)]


def test_duplicates_across_batches_and_in_the_database_are_bad_rows_never_half_imported(store):
    # Already in the database: a user (by name) and a token serial.
    store.add_user("taken", pin_hash=None, password_hash=None, at=NOW,
                   audit=AuditEvent(at=NOW, action="user.add", result="ok", actor="cli"))
    store.add_token("taken", serial="HW-TAKEN", kind=TokenKind.TOTP, digits=6, period=30,
                    sealed_seed=b"x" * 40, last_used=-1, at=NOW,
                    audit=AuditEvent(at=NOW, action="token.add", result="ok", actor="cli"))
    lines = [
        f"a1,1234,totp,{b32(seed_of(1))},,,,HW-1",     # line 2, batch 1
        "taken,1234,,,,,,",                            # line 3: name in the database
        f"a2,1234,totp,{b32(seed_of(2))},,,,HW-TAKEN",  # line 4: serial in the database
        "a3,1234,,,,,,",                               # line 5, batch 2
        "a1,9999,,,,,,",                               # line 6: name on line 2 (batch 1)
        f"a4,1234,hotp,{b32(seed_of(4))},,,,HW-1",      # line 7: serial on line 2
        "a5,1234,,,,,,",                               # line 8, batch 3
    ]
    report = run_import(store, lines, batch_size=2)
    assert report.bad_rows == [
        BadRow(3, "user 'taken' already exists"),
        BadRow(4, "token serial 'HW-TAKEN' already exists"),
        BadRow(6, "user name 'a1' already on line 2"),
        BadRow(7, "token serial 'HW-1' already on line 2")]
    assert report.summary() == "imported 3 users (1 tokens); 4 bad rows"
    names = {user.name for user in store.list_users()}
    assert names == {"taken", "a1", "a3", "a5"}     # a2 refused whole: no user without token
    assert store.get_user("a1").token_serials == ("HW-1",)
    assert store.get_user("taken").token_serials == ("HW-TAKEN",)

    # The same file again: every row is now taken, nothing is written, no audit row added.
    before = len(imports(store))
    again = run_import(store, lines, batch_size=2)
    assert again.users == 0 and len(again.bad_rows) == 7
    assert len(imports(store)) == before
    assert {user.name for user in store.list_users()} == names


def test_a_batch_refusing_a_row_keeps_the_rest_of_the_batch(store):
    store.add_user("b2", pin_hash=None, password_hash=None, at=NOW,
                   audit=AuditEvent(at=NOW, action="user.add", result="ok", actor="cli"))
    report = run_import(store, ["b1,,,,,,,", "b2,,,,,,,", "b3,,,,,,,"], batch_size=3)
    assert report.users == 2 and report.bad_rows == [BadRow(3, "user 'b2' already exists")]
    [audit] = imports(store)
    assert (audit.detail["users"], audit.detail["first_line"],
            audit.detail["last_line"]) == (2, 2, 4)


def test_a_taken_generated_serial_is_replaced_without_a_bad_row(store):
    colliding = generate_serial(TokenKind.TOTP, lambda n: b"\x01" * n)
    store.add_user("owner", pin_hash=None, password_hash=None, at=NOW,
                   audit=AuditEvent(at=NOW, action="user.add", result="ok", actor="cli"))
    store.add_token("owner", serial=colliding, kind=TokenKind.TOTP, digits=6, period=30,
                    sealed_seed=b"x" * 40, last_used=-1, at=NOW,
                    audit=AuditEvent(at=NOW, action="token.add", result="ok", actor="cli"))
    draws = iter([b"\x01" * 5, b"\x02" * 5])

    def random(n: int) -> bytes:
        return next(draws) if n == 5 else fake_random(n)

    report = run_import(store, [f"new,,totp,{b32(seed_of(9))},,,,"], random=random)
    assert report.users == 1 and not report.bad_rows
    [serial] = store.get_user("new").token_serials
    assert serial != colliding
    [token] = store.load_subject("new").tokens
    assert KEYS.open_seed(token.sealed_seed, "new", serial).reveal() == seed_of(9)


@pytest.mark.parametrize(("kind", "digits", "pin"), [("totp", 6, "4821"), ("hotp", 8, ""),
                                                     ("totp", 8, "Pin42")])
def test_an_imported_user_authenticates_with_a_code_from_its_seed(store, kind, digits, pin):
    seed = seed_of(42)
    run_import(store, [f"zoe,{pin},{kind},{b32(seed)},{digits},30,5,"])
    subject = store.load_subject("zoe")
    [token] = subject.tokens
    value = otp.totp_step(NOW, 30) if kind == "totp" else 5
    code = otp.hotp(seed, value, digits).encode()
    settings = Settings()

    verdict = decide_access(access_request("zoe", pin.encode() + code), subject, settings,
                            KEYS, NOW)
    assert isinstance(verdict, Accept), verdict
    assert verdict.commits == (AdvanceToken(token.id, value),)
    assert store.apply(verdict.commits, AuditEvent(at=NOW, action="auth", result="accept",
                                                   actor="radius", user_name="zoe"))

    # The code is used up (no replay) and a wrong PIN is refused, as for CLI-made users.
    replay = decide_access(access_request("zoe", pin.encode() + code),
                           store.load_subject("zoe"), settings, KEYS, NOW)
    assert isinstance(replay, Reject) and replay.reason is RejectReason.REPLAYED_CODE
    if pin:
        wrong = decide_access(access_request("zoe", b"0000" + code), subject, settings,
                              KEYS, NOW)
        assert isinstance(wrong, Reject) and wrong.reason is RejectReason.BAD_PIN


def test_cli_prints_the_summary_and_every_bad_row_as_file_line_and_exits_1(
        database_url, tmp_path):
    config = tmp_path / "radiusd.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n[keys]\npath = "radiusd.key"\n'
                      '[[clients]]\nname = "nas"\naddress = "127.0.0.1"\n'
                      'secret = "cli-test-secret-0123456789"\n[admin_web]\nlisten = ""\n')
    assert run_cli(config, "init").returncode == 0
    good = tmp_path / "good.csv"
    good.write_text(f"{HEADER}\nann,4821,totp,{b32(seed_of(1))},,,,\nben,,,,,,,\n")
    result = run_cli(config, "user", "import", str(good))
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "imported 2 users (1 tokens); 0 bad rows\n", "")

    mixed = tmp_path / "mixed.csv"
    mixed.write_text(f"{HEADER}\nann,4821,,,,,,\ncid,12,,,,,,\ndee,,,,,,,\n")
    result = run_cli(config, "user", "import", str(mixed))
    assert (result.returncode, result.stdout) == (1, "imported 1 users (0 tokens); 2 bad rows\n")
    assert result.stderr.splitlines() == [f"{mixed}:2: user 'ann' already exists",
                                          f"{mixed}:3: PIN must be 4–8 letters or digits"]

    broken = tmp_path / "broken.csv"
    for content, message in [(b"name,colour\n", "the first line must be the header"),
                             (HEADER.encode() + b"\nj\xe9r\xf4me,,,,,,,\n", ":2: not UTF-8")]:
        broken.write_bytes(content)
        result = run_cli(config, "user", "import", str(broken))
        assert (result.returncode, result.stdout) == (1, "")
        assert message in result.stderr and len(result.stderr.splitlines()) == 1
    result = run_cli(config, "user", "import", str(tmp_path / "none.csv"))
    assert result.returncode == 1 and "cannot read" in result.stderr

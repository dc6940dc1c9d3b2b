"""CSV bulk import, without a database: parsing, validation with line numbers (every kind of
bad row), sealing as ``accounts.py`` does, batching and the report (``write_batch`` faked)."""

from __future__ import annotations

import base64
import random as stdlib_random
from datetime import UTC, datetime

import pytest

from radiusd.crypto import Keys
from radiusd.importing import (BATCH_SIZE, BadRow, BatchOutcome, HeaderError, SealedUser,
                               UserRow, import_users, read_rows, seal_row)
from radiusd.model import TokenKind

HEADER = "name,pin,token_type,secret,digits,period,counter,serial"
SEED = bytes(range(20))
B32 = base64.b32encode(SEED).decode()
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
KEYS = Keys.from_master(b"k" * 32)


def seeded(seed: int = 1):
    return stdlib_random.Random(seed).randbytes


def parse(*lines: str, header: str = HEADER) -> list[UserRow | BadRow]:
    return list(read_rows([header + "\n", *(line + "\n" for line in lines)]))


def bad(*lines: str) -> dict[int, str]:
    return {row.line: row.problem for row in parse(*lines) if isinstance(row, BadRow)}


# --- good rows -------------------------------------------------------------------------------


def test_row_with_pin_and_totp_defaults():
    [row] = parse(f"alice,4821,totp,{B32},,,,")
    assert isinstance(row, UserRow)
    assert (row.line, row.name, row.pin.reveal()) == (2, "alice", b"4821")
    token = row.token
    assert (token.kind, token.seed.reveal(), token.digits, token.period, token.counter,
            token.serial) == (TokenKind.TOTP, SEED, 6, 30, 0, None)


def test_row_without_pin_and_without_token():
    [row] = parse("bob,,,,,,,")
    assert isinstance(row, UserRow) and row.pin is None and row.token is None


def test_hotp_row_with_every_field_and_blanks_trimmed():
    [row] = parse(f" carol , Ab12 , HOTP ,{B32.lower()}, 8 ,60,7, HW-0001 ")
    assert (row.name, row.pin.reveal()) == ("carol", b"Ab12")
    assert (row.token.kind, row.token.digits, row.token.period, row.token.counter,
            row.token.serial) == (TokenKind.HOTP, 8, 60, 7, "HW-0001")


def test_columns_in_any_order_and_optional_columns_left_out():
    rows = parse(f"{B32},totp,dave", header="secret,token_type,name")
    assert rows[0].name == "dave" and rows[0].token.kind is TokenKind.TOTP


def test_byte_order_mark_blank_lines_and_quoted_multiline_field_keep_file_line_numbers():
    rows = list(read_rows(["\ufeff" + HEADER + "\n", "\n", "erin,1234,,,,,,\n",
                           '"frank\n', 'x",1234,,,,,,\n', "gina,12,,,,,,\n"]))
    assert rows[0].line == 3 and rows[0].name == "erin"
    assert rows[1] == BadRow(4, "invalid user name 'frank\\nx': use 1–64 characters, "
                                "no spaces")
    assert rows[2].line == 6  # the line after the two-line record


# --- bad rows: one kind each, with the line number ----------------------------------------


@pytest.mark.parametrize(("line", "problem"), [
    ("a b,1234,,,,,,", "invalid user name 'a b': use 1–64 characters, no spaces"),
    (",1234,,,,,,", "invalid user name ''"),
    ("x" * 65 + ",,,,,,,", "invalid user name"),
    ("u,12,,,,,,", "PIN must be 4–8 letters or digits"),
    ("u,123456789,,,,,,", "PIN must be 4–8 letters or digits"),
    ("u,12-4,,,,,,", "PIN must be 4–8 letters or digits"),
    ("u,1234,motp,{B32},,,,", "token_type must be totp or hotp, not 'motp'"),
    ("u,1234,totp,,,,,", "secret (base32) is required with a token_type"),
    ("u,1234,totp,not-base32!,,,,", "secret: the secret is not valid base32"),
    ("u,1234,totp,JBSWY3DP,,,,", "secret: the secret is too short: 40 bits"),
    ("u,1234,totp,{B32},7,,,", "digits must be 6 or 8, not 7"),
    ("u,1234,totp,{B32},six,,,", "digits 'six' is not a whole number"),
    ("u,1234,totp,{B32},,9,,", "period must be 10–300 seconds, not 9"),
    ("u,1234,totp,{B32},,301,,", "period must be 10–300 seconds, not 301"),
    ("u,1234,hotp,{B32},,,-1,", "counter must be 0 or more, not -1"),
    ("u,1234,hotp,{B32},,,1000000000001,", "counter must be at most 1000000000000"),
    ("u,1234,totp,{B32},,,,bad serial", "invalid serial 'bad serial'"),
    ("u,1234,,{B32},8,,,", "secret, digits given without token_type"),
    ("u,1234,,,,,,SER-1", "serial given without token_type"),
    ("u,1234", "expected 8 fields (name,pin,token_type,secret,digits,period,counter,serial), "
               "found 2"),
    ("u,1234,,,,,,,", "expected 8 fields"),
    ('u,"12"34,,,,,,', "not valid CSV"),
])
def test_each_kind_of_bad_row_is_reported_with_its_line(line, problem):
    problems = bad("ok1,1234,,,,,,", line.replace("{B32}", B32), "ok2,1234,,,,,,")
    assert list(problems) == [3]
    assert problem in problems[3]


def test_every_problem_of_a_row_is_listed_and_secrets_never_repeated():
    [row] = parse("x y,1!,totp,SECRET!!,7,5,-1,")
    assert isinstance(row, BadRow)
    assert row.problem.count(";") == 5
    assert "1!" not in row.problem and "SECRET" not in row.problem


def test_duplicate_name_and_serial_in_the_file_name_the_first_line():
    problems = bad("alice,1234,,,,,,", f"bob,,totp,{B32},,,,S-1", "alice,9999,,,,,,",
                   f"carol,,totp,{B32},,,,S-1")
    assert problems == {4: "user name 'alice' already on line 2",
                        5: "token serial 'S-1' already on line 3"}


def test_a_name_repeated_after_a_bad_row_is_still_a_duplicate():
    assert bad("alice,12,,,,,,", "alice,1234,,,,,,") == {
        2: "PIN must be 4–8 letters or digits", 3: "user name 'alice' already on line 2"}


@pytest.mark.parametrize("header", ["", "user,pin", "name,pin,pin", "pin,secret",
                                    "name,pin,colour"])
def test_a_bad_header_imports_nothing(header):
    with pytest.raises(HeaderError, match="header name,pin,token_type"):
        list(read_rows([header + "\n", "alice,1234\n"] if header else []))


# --- sealing: the same values accounts.py stores ------------------------------------------


def test_seal_row_hashes_the_pin_and_seals_the_seed_to_owner_and_serial():
    [row] = parse(f"alice,4821,hotp,{B32},8,,5,HW-1")
    sealed = seal_row(row, KEYS, seeded())
    assert KEYS.verify_pin(b"4821", sealed.pin_hash)
    assert not KEYS.verify_pin(b"4822", sealed.pin_hash)
    token = sealed.token
    assert KEYS.open_seed(token.sealed_seed, "alice", "HW-1").reveal() == SEED
    assert (token.serial, token.is_generated_serial, token.last_used) == ("HW-1", False, 4)


def test_generated_serial_looks_like_token_add_and_totp_starts_unused():
    [row] = parse(f"alice,,totp,{B32},,,,")
    token = seal_row(row, KEYS, seeded()).token
    assert token.is_generated_serial and token.serial.startswith("TOTP-")
    assert len(token.serial) == len("TOTP-") + 10 and token.last_used == -1
    assert KEYS.open_seed(token.sealed_seed, "alice", token.serial).reveal() == SEED


# --- batching and the report -------------------------------------------------------------


class FakeDatabase:
    """``write_batch`` over dicts: names and serials taken, batches and audit rows seen."""

    def __init__(self, names=(), serials=()):
        self.names = set(names)
        self.serials = set(serials)
        self.batches: list[list[int]] = []
        self.audits = []

    def __call__(self, batch, audit_for) -> BatchOutcome:
        self.batches.append([user.line for user in batch])
        stored, name_taken, serial_taken = [], [], []
        for user in batch:
            if user.name in self.names:
                name_taken.append(user.line)
            elif user.token is not None and user.token.serial in self.serials:
                serial_taken.append(user.line)
            else:
                stored.append(user)
                self.names.add(user.name)
                if user.token is not None:
                    self.serials.add(user.token.serial)
        if stored:
            self.audits.append(audit_for(stored))
        return BatchOutcome(tuple(stored), tuple(name_taken), tuple(serial_taken))


def run(rows, database, random=None, batch_size=BATCH_SIZE):
    return import_users(rows, database, KEYS, random or seeded(), now=NOW, actor="cli",
                        node="n1", source="users.csv", batch_size=batch_size)


def test_rows_are_written_a_thousand_per_batch_with_one_audit_row_each():
    lines = [f"user{i},,totp,{B32},,,," for i in range(2500)]
    database = FakeDatabase()
    report = run(parse(*lines), database)
    assert [len(batch) for batch in database.batches] == [1000, 1000, 500]
    assert report.summary() == "imported 2500 users (2500 tokens); 0 bad rows"
    audit = database.audits[1]
    assert (audit.action, audit.actor, audit.node, audit.at) == ("user.import", "cli", "n1", NOW)
    assert audit.detail == {"file": "users.csv", "users": 1000, "tokens": 1000,
                            "first_line": 1002, "last_line": 2001}


def test_names_and_serials_already_in_the_database_are_bad_rows_in_line_order():
    rows = parse("new1,,,,,,,", "alice,1234,,,,,,", f"new2,,totp,{B32},,,,HW-9",
                 "bad,1,,,,,,", f"new3,,totp,{B32},,,,")
    database = FakeDatabase(names={"alice"}, serials={"HW-9"})
    report = run(rows, database, batch_size=2)
    assert report.users == 2 and report.tokens == 1
    assert report.bad_rows == [BadRow(3, "user 'alice' already exists"),
                               BadRow(4, "token serial 'HW-9' already exists"),
                               BadRow(5, "PIN must be 4–8 letters or digits")]
    assert report.summary() == "imported 2 users (1 tokens); 3 bad rows"
    assert database.names == {"alice", "new1", "new3"}


def test_a_taken_generated_serial_is_drawn_again_and_resealed():
    [row] = parse(f"alice,,totp,{B32},,,,")
    first = seal_row(row, KEYS, seeded(7)).token.serial
    database = FakeDatabase(serials={first})
    report = run([row], database, random=seeded(7))
    assert report.users == 1 and not report.bad_rows
    assert len(database.batches) == 2
    [serial] = database.serials - {first}
    assert serial.startswith("TOTP-")


def test_a_generated_serial_that_keeps_colliding_is_reported_in_the_end():
    [row] = parse(f"alice,,totp,{B32},,,,")

    class Always(FakeDatabase):
        def __call__(self, batch, audit_for):
            self.batches.append([user.line for user in batch])
            return BatchOutcome((), (), tuple(user.line for user in batch))

    database = Always()
    report = run([row], database)
    assert len(database.batches) == 5
    assert report.users == 0 and report.bad_rows[0].line == 2
    assert "already exists" in report.bad_rows[0].problem


def test_write_batch_receives_sealed_users_only():
    database = FakeDatabase()
    seen = []

    def spy(batch, audit_for):
        seen.extend(batch)
        return database(batch, audit_for)

    run(parse("alice,4821,,,,,,"), spy)
    assert all(isinstance(user, SealedUser) for user in seen)
    assert seen[0].pin_hash != b"4821" and len(seen[0].pin_hash) == 48

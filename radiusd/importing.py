"""Bulk import of users and tokens from CSV (SPEC: ``radiusd user import FILE.csv``).

Owns: reading the CSV (header ``name,pin,token_type,secret,digits,period,counter,serial``,
empty fields allowed), validating every row with the rules ``accounts.py`` applies to one
user (``validate_user_name``, ``passcode.validate_pin``, ``otp.parse_base32_seed``, digits
6|8, period 10–300, counter 0–10^12, serial format), duplicate names and serials inside the
file, hashing PINs and sealing seeds exactly as ``Accounts.add_user``/``add_token`` do (so
imported users authenticate like CLI-created ones), cutting the rows into batches and
collecting the report: how many users and tokens were imported, and every bad row with
its line number.

The SQL is not here: ``import_users`` calls the ``write_batch`` it is given (production:
``radiusd.store.bulk.import_batch``), which stores a batch in one transaction and says
which rows it refused because the name or serial is already in the database. A refused
row is a bad row, and none of it is stored (never a user without its token).

Must not import: twisted, sqlalchemy, pyrad. Time and randomness come in as arguments.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from radiusd import otp
# The serial rule of Accounts.add_token, imported rather than copied so both stay one rule.
from radiusd.accounts import _SERIAL as SERIAL_PATTERN
from radiusd.accounts import MAX_HOTP_COUNTER, validate_user_name
from radiusd.crypto import Keys
from radiusd.errors import UsageError
from radiusd.model import AuditEvent, RandomSource, Secret, TokenKind
from radiusd.passcode import validate_pin

COLUMNS = ("name", "pin", "token_type", "secret", "digits", "period", "counter", "serial")
TOKEN_COLUMNS = COLUMNS[2:]
BATCH_SIZE = 1000  # rows per transaction (issue 6)
DEFAULT_DIGITS, DEFAULT_PERIOD, DEFAULT_COUNTER = 6, 30, 0  # as `radiusd token add`
# A generated serial that is taken (40 random bits: rare, not impossible among millions of
# tokens) is drawn again this many times before the row is reported.
SERIAL_ATTEMPTS = 5


class HeaderError(UsageError):
    """The first line is not a usable header: nothing is imported."""


@dataclass(frozen=True, slots=True)
class TokenRow:
    """The token part of a row, validated. ``serial`` None: generate one."""

    kind: TokenKind
    seed: Secret
    digits: int
    period: int
    counter: int
    serial: str | None


@dataclass(frozen=True, slots=True)
class UserRow:
    """A valid row: a user, with or without PIN, with or without a token."""

    line: int
    name: str
    pin: Secret | None
    token: TokenRow | None


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row that is not imported, and why (never a PIN or secret in ``problem``)."""

    line: int
    problem: str


@dataclass(frozen=True, slots=True)
class SealedToken:
    """A token ready to store: seed sealed to its owner and serial."""

    serial: str
    is_generated_serial: bool
    kind: TokenKind
    digits: int
    period: int
    sealed_seed: bytes
    last_used: int  # model.Token.last_used


@dataclass(frozen=True, slots=True)
class SealedUser:
    """A user ready to store: PIN hashed, token sealed. ``line``: where it came from."""

    line: int
    name: str
    pin_hash: bytes | None
    token: SealedToken | None


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What ``write_batch`` did with one batch (one transaction).

    Attributes:
        imported: the users stored (with their tokens).
        name_taken: lines refused because the user name is already in the database.
        serial_taken: lines refused because the token serial is already in the database.
    """

    imported: tuple[SealedUser, ...]
    name_taken: tuple[int, ...] = ()
    serial_taken: tuple[int, ...] = ()


AuditFor = Callable[[Sequence[SealedUser]], AuditEvent]
WriteBatch = Callable[[Sequence[SealedUser], AuditFor], BatchOutcome]
"""``(users, audit_for) -> outcome``: store the users not refused, with their tokens and
the audit row ``audit_for(stored users)``, in one transaction."""


@dataclass
class ImportReport:
    """The result of an import: counts and the bad rows by line."""

    users: int = 0
    tokens: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)

    def summary(self) -> str:
        return (f"imported {self.users} users ({self.tokens} tokens); "
                f"{len(self.bad_rows)} bad rows")


# --- reading and validating ------------------------------------------------------------


def _header(fields: list[str]) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in fields)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or "name" not in names or len(set(names)) != len(names):
        raise HeaderError(f"the first line must be the header {','.join(COLUMNS)} "
                          f"(found {','.join(fields) or 'an empty line'})")
    return names


def _whole_number(values: dict[str, str], column: str, default: int,
                  problems: list[str]) -> int:
    text = values.get(column, "")
    if not text:
        return default
    try:
        return int(text, 10)
    except ValueError:
        problems.append(f"{column} {text!r} is not a whole number")
        return default


def _token(values: dict[str, str], problems: list[str]) -> TokenRow | None:
    """The token columns of one row, checked as ``Accounts.add_token`` checks them."""
    kind_text = values.get("token_type", "").lower()
    if not kind_text:
        given = [column for column in TOKEN_COLUMNS if values.get(column)]
        if given:
            problems.append(f"{', '.join(given)} given without token_type (totp or hotp)")
        return None
    try:
        kind = TokenKind(kind_text)
    except ValueError:
        problems.append(f"token_type must be totp or hotp, not {values['token_type']!r}")
        kind = TokenKind.TOTP
    seed = b""
    if not values.get("secret"):
        problems.append("secret (base32) is required with a token_type: the seed of the "
                        "hardware token")
    else:
        try:
            seed = otp.parse_base32_seed(values["secret"])
        except ValueError as exc:  # the message never repeats the secret
            problems.append(f"secret: {exc}")
    digits = _whole_number(values, "digits", DEFAULT_DIGITS, problems)
    period = _whole_number(values, "period", DEFAULT_PERIOD, problems)
    counter = _whole_number(values, "counter", DEFAULT_COUNTER, problems)
    if digits not in (6, 8):
        problems.append(f"digits must be 6 or 8, not {digits}")
    if not 10 <= period <= 300:
        problems.append(f"period must be 10–300 seconds, not {period}")
    if counter < 0:
        problems.append(f"counter must be 0 or more, not {counter}")
    elif counter > MAX_HOTP_COUNTER:  # the 64-bit column would overflow (issue 20, 9)
        problems.append(f"counter must be at most {MAX_HOTP_COUNTER}, not {counter}")
    serial = values.get("serial") or None
    if serial is not None and not SERIAL_PATTERN.match(serial):
        problems.append(f"invalid serial {serial!r}: use 1–64 letters, digits, . _ : -")
    return TokenRow(kind=kind, seed=Secret(seed), digits=digits, period=period,
                    counter=counter, serial=serial)


def read_rows(lines: Iterable[str]) -> Iterator[UserRow | BadRow]:
    """Parse and validate CSV text, one result per data row, in file order.

    Fields are trimmed of surrounding blanks; blank lines are skipped; a UTF-8 byte order
    mark before the header is ignored (spreadsheets write one). Columns may come in any
    order and may be left out, except ``name``. A name or serial that appeared on an
    earlier row (valid or not) makes the later row bad.

    Args:
        lines: the file's lines (an open text file with ``newline=""``, or a list).
    Yields:
        ``UserRow`` for a valid row, ``BadRow`` (line number, all its problems) otherwise.
        Line numbers are those of the file (the header is line 1; a quoted field spanning
        lines counts from the row's first line).
    Raises:
        HeaderError: the first non-blank line is not a header of known, distinct columns
            including ``name``.
        UnicodeDecodeError: from ``lines``, when the file is not UTF-8.
    """
    reader = csv.reader(lines, strict=True)
    header: tuple[str, ...] | None = None
    names: dict[str, int] = {}
    serials: dict[str, int] = {}
    end_of_previous = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line = end_of_previous + 1
            end_of_previous = reader.line_num
            if header is None:
                raise HeaderError(f"line {line}: {exc}") from None
            yield BadRow(line, f"not valid CSV: {exc}")
            continue
        line, end_of_previous = end_of_previous + 1, reader.line_num
        if not fields or all(not value.strip() for value in fields):
            continue
        if header is None:
            if line == 1 and fields[0].startswith("\ufeff"):
                fields[0] = fields[0][1:]
            header = _header(fields)
            continue
        if len(fields) != len(header):
            yield BadRow(line, f"expected {len(header)} fields ({','.join(header)}), "
                               f"found {len(fields)}")
            continue
        yield _row(line, dict(zip(header, (value.strip() for value in fields))), names,
                   serials)
    if header is None:
        raise HeaderError(f"the file is empty: the first line must be the header "
                          f"{','.join(COLUMNS)}")


def _row(line: int, values: dict[str, str], names: dict[str, int],
         serials: dict[str, int]) -> UserRow | BadRow:
    problems: list[str] = []
    name = values["name"]
    try:
        validate_user_name(name)
    except UsageError as exc:
        problems.append(str(exc))
    else:
        if name in names:
            problems.append(f"user name {name!r} already on line {names[name]}")
        else:
            names[name] = line
    pin: Secret | None = None
    if values.get("pin"):
        try:
            validate_pin(values["pin"])
        except ValueError as exc:  # the message never repeats the PIN
            problems.append(str(exc))
        else:
            pin = Secret(values["pin"])
    token = _token(values, problems)
    if token is not None and token.serial is not None and SERIAL_PATTERN.match(token.serial):
        if token.serial in serials:
            problems.append(f"token serial {token.serial!r} already on line "
                            f"{serials[token.serial]}")
        else:
            serials[token.serial] = line
    if problems:
        return BadRow(line, "; ".join(problems))
    return UserRow(line=line, name=name, pin=pin, token=token)


# --- sealing and batching --------------------------------------------------------------


def generate_serial(kind: TokenKind, random: RandomSource) -> str:
    """A serial as ``Accounts.add_token`` generates it: ``TOTP-0A1B2C3D4E``."""
    return f"{kind.value.upper()}-{random(5).hex().upper()}"


def seal_row(row: UserRow, keys: Keys, random: RandomSource) -> SealedUser:
    """Hash the PIN and seal the seed exactly as ``Accounts.add_user``/``add_token`` do."""
    pin_hash = keys.hash_pin(row.pin, random) if row.pin is not None else None
    token = None
    if row.token is not None:
        token = _seal_token(row.name, row.token, row.token.serial, keys, random)
    return SealedUser(line=row.line, name=row.name, pin_hash=pin_hash, token=token)


def _seal_token(owner: str, token: TokenRow, serial: str | None, keys: Keys,
                random: RandomSource) -> SealedToken:
    is_generated = token.serial is None
    if serial is None:
        serial = generate_serial(token.kind, random)
    # model.Token.last_used: the step/counter last accepted; HOTP starts before `counter`.
    last_used = token.counter - 1 if token.kind is TokenKind.HOTP else -1
    return SealedToken(serial=serial, is_generated_serial=is_generated, kind=token.kind,
                       digits=token.digits, period=token.period,
                       sealed_seed=keys.seal_seed(token.seed.reveal(), owner, serial, random),
                       last_used=last_used)


def import_users(rows: Iterable[UserRow | BadRow], write_batch: WriteBatch, keys: Keys,
                 random: RandomSource, *, now: datetime, actor: str, node: str,
                 source: str, batch_size: int = BATCH_SIZE) -> ImportReport:
    """Seal the valid rows and store them ``batch_size`` at a time.

    Each batch is one call of ``write_batch`` (one transaction) with one ``user.import``
    audit row naming the file, the lines and the counts. A row whose name or serial is
    already in the database is a bad row; a row whose serial was generated and happens to
    be taken gets a new serial (and a newly sealed seed) in the next batch instead.

    Args:
        rows: ``read_rows`` output. write_batch: see ``WriteBatch``.
        keys: PIN hashes and sealed seeds. random: salts, nonces, generated serials.
        now: the import time (creation time of every row, time of the audit rows).
        actor, node: for the audit rows. source: the file name, for the audit rows.
        batch_size: rows per transaction.
    Returns:
        The report; ``bad_rows`` sorted by line.
    Raises:
        StoreUnavailable, NotInitialised: from ``write_batch``; the batches written before
            stay imported (each is whole).
    """
    report = ImportReport()
    pending: list[SealedUser] = []
    rows_by_line: dict[int, UserRow] = {}  # rows not yet stored or reported
    attempts: dict[int, int] = {}  # line -> serials drawn so far (generated serials only)

    def audit_for(stored: Sequence[SealedUser]) -> AuditEvent:
        lines = [user.line for user in stored]
        return AuditEvent(at=now, action="user.import", result="ok", actor=actor,
                          node=node, detail={
                              "file": source, "users": len(stored),
                              "tokens": sum(user.token is not None for user in stored),
                              "first_line": min(lines), "last_line": max(lines)})

    def flush() -> None:
        batch = pending[:batch_size]
        del pending[:batch_size]
        outcome = write_batch(batch, audit_for)
        report.users += len(outcome.imported)
        report.tokens += sum(user.token is not None for user in outcome.imported)
        for user in outcome.imported:
            rows_by_line.pop(user.line, None)
        for line in outcome.name_taken:
            row = rows_by_line.pop(line)
            report.bad_rows.append(BadRow(line, f"user {row.name!r} already exists"))
        sealed_by_line = {user.line: user for user in batch}
        for line in outcome.serial_taken:
            if line not in rows_by_line:
                continue  # already reported (its name is taken too)
            row, sealed = rows_by_line[line], sealed_by_line[line]
            assert row.token is not None and sealed.token is not None
            attempts[line] = attempts.get(line, 1) + 1
            if sealed.token.is_generated_serial and attempts[line] <= SERIAL_ATTEMPTS:
                pending.append(SealedUser(
                    line=line, name=row.name, pin_hash=sealed.pin_hash,
                    token=_seal_token(row.name, row.token, None, keys, random)))
                continue
            del rows_by_line[line]
            report.bad_rows.append(BadRow(line, f"token serial {sealed.token.serial!r} "
                                                "already exists"))

    for row in rows:
        if isinstance(row, BadRow):
            report.bad_rows.append(row)
            continue
        rows_by_line[row.line] = row
        pending.append(seal_row(row, keys, random))
        if len(pending) >= batch_size:
            flush()
    while pending:
        flush()
    report.bad_rows.sort(key=lambda bad: bad.line)
    return report

"""The ``.txt`` export (golden files, byte for byte) and the Access-Accept Reply-Message texts.

Regenerate the golden files after a deliberate format change with
``RADIUSD_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_emergency_export.py`` and review
the diff: the export format is part of the product contract (SPEC "Emergency export").
"""

from __future__ import annotations

import os
import random as stdlib_random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from radiusd.emergency.codes import generate_codes
from radiusd.emergency.export import MAX_REPLY_MESSAGE_OCTETS, accepted_reply, render_export
from radiusd.model import Secret

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("RADIUSD_UPDATE_GOLDEN") == "1"

ISSUED_AT = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
EXPIRES_AT = datetime(2026, 11, 28, 19, 0, tzinfo=UTC)
CODE_LINE = re.compile(r" *(\d+)\. (\d+)")


def seeded(seed: int):
    return stdlib_random.Random(seed).randbytes


def render(**overrides) -> str:
    values = dict(user_name="alice", issued_at=ISSUED_AT, expires_at=EXPIRES_AT,
                  codes=generate_codes(seeded(1), 10, 8), has_pin=True, issued_by="cli")
    values.update(overrides)
    return render_export(**values)


def code_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if CODE_LINE.fullmatch(line)]


# --- golden files ---------------------------------------------------------------------------


GOLDEN_CASES = {
    # SPEC defaults: 10 codes of 8 digits, a user with a PIN, issued from the CLI.
    "emergency-export-pin.txt": dict(
        user_name="alice", issued_at=ISSUED_AT, expires_at=EXPIRES_AT,
        codes=generate_codes(seeded(20261125), 10, 8), has_pin=True, issued_by="cli"),
    # No PIN, self-service, a non-ASCII name, times given in +02:00 with microseconds
    # (rendered in UTC, to the second), 5 codes of 12 digits (numbers need no padding).
    "emergency-export-nopin.txt": dict(
        user_name="Zoë Müller", issued_at=datetime(2026, 11, 25, 21, 0, 0, 999_999,
                                                    tzinfo=timezone(timedelta(hours=2))),
        expires_at=datetime(2026, 11, 26, 21, 30, 15, 500_000,
                            tzinfo=timezone(timedelta(hours=2))),
        codes=generate_codes(seeded(42), 5, 12), has_pin=False,
        issued_by="self-service:Zoë Müller"),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_export_matches_golden_file_byte_for_byte(name: str) -> None:
    actual = render_export(**GOLDEN_CASES[name]).encode("utf-8")
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(actual)
        pytest.skip(f"RADIUSD_UPDATE_GOLDEN=1: rewrote {path.name}; review the diff")
    assert path.exists(), f"{path} missing: run with RADIUSD_UPDATE_GOLDEN=1 to create it"
    assert actual == path.read_bytes()


def test_golden_pin_export_shows_what_spec_promises() -> None:
    text = (GOLDEN / "emergency-export-pin.txt").read_text(encoding="utf-8")
    assert text.startswith("Emergency access codes for alice\n")
    assert "2026-11-25T19:00:00+00:00" in text and "2026-11-28T19:00:00+00:00" in text
    assert "Codes:       10\n" in text
    assert "your PIN followed by one code" in text
    lines = code_lines(text)
    assert [CODE_LINE.fullmatch(line).group(1) for line in lines] == \
        [str(n) for n in range(1, 11)]
    assert lines[0].startswith(" 1. ") and lines[-1].startswith("10. ")


def test_golden_nopin_export_says_type_the_code_alone() -> None:
    text = (GOLDEN / "emergency-export-nopin.txt").read_text(encoding="utf-8")
    assert "the code alone" in text and "PIN" not in text
    assert "Zoë Müller" in text
    assert "Issued:      2026-11-25T19:00:00+00:00\n" in text
    assert "Valid until: 2026-11-26T19:30:15+00:00\n" in text


# --- format rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("count,first,last", [
    (1, "1. ", "1. "), (9, "1. ", "9. "), (10, " 1. ", "10. "), (100, "  1. ", "100. "),
])
def test_code_numbers_are_right_aligned_to_the_widest(count: int, first: str,
                                                      last: str) -> None:
    lines = code_lines(render(codes=generate_codes(seeded(count), count, 6)))
    assert len(lines) == count
    assert lines[0].startswith(first) and lines[-1].startswith(last)
    assert len({len(line) for line in lines}) == 1


def test_each_code_appears_once_in_order() -> None:
    codes = generate_codes(seeded(7), 10, 8)
    text = render(codes=codes)
    for number, code in enumerate(codes, 1):
        value = code.reveal().decode()
        assert text.count(value) == 1
        assert f"{number:>2}. {value}\n" in text


def test_export_is_ascii_lines_ending_in_newline_apart_from_user_name() -> None:
    text = render()
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "\r" not in text
    assert text.isascii()


def test_export_states_the_rules_of_use() -> None:
    text = render()
    assert "Each code works once" in text
    assert "only from inside the company network" in text
    assert "expires or is revoked" in text


def test_export_says_what_to_type_with_and_without_pin() -> None:
    with_pin, without_pin = render(has_pin=True), render(has_pin=False)
    assert "your PIN followed by one code" in with_pin and "the code alone" not in with_pin
    assert "the code alone" in without_pin and "PIN" not in without_pin


def test_export_names_the_issuer() -> None:
    assert "Issued by:   admin:bob\n" in render(issued_by="admin:bob")


def test_export_times_are_utc_iso_8601_to_the_second() -> None:
    text = render(issued_at=datetime(2026, 1, 2, 3, 4, 5, 678_000,
                                     tzinfo=timezone(timedelta(hours=-5))),
                  expires_at=datetime(2026, 1, 5, 8, 4, 5, tzinfo=UTC))
    assert "Issued:      2026-01-02T08:04:05+00:00\n" in text
    assert "Valid until: 2026-01-05T08:04:05+00:00\n" in text


@pytest.mark.parametrize("name,shown", [
    ("mallory\n 1. 12345678", "mallory\\n 1. 12345678"),
    ("eve\r\n", "eve\\r\\n"),
    ("bob\u2028x", "bob\\u2028x"),
    ("\u202eecila", "\\u202eecila"),   # right-to-left override
    ("tab\there", "tab\\there"),
])
def test_user_name_cannot_add_lines_or_reorder_text(name: str, shown: str) -> None:
    text = render(user_name=name, codes=generate_codes(seeded(1), 3, 8))
    assert text.splitlines()[0] == f"Emergency access codes for {shown}"
    assert len(code_lines(text)) == 3


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="issued_at"):
        render(issued_at=ISSUED_AT.replace(tzinfo=None))
    with pytest.raises(ValueError, match="expires_at"):
        render(expires_at=EXPIRES_AT.replace(tzinfo=None))


def test_expiry_not_after_issue_is_refused() -> None:
    with pytest.raises(ValueError, match="after"):
        render(expires_at=ISSUED_AT)


def test_export_without_codes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one code"):
        render(codes=())


@pytest.mark.parametrize("code", [b"", b"1234567a", b"1234 5678", "١٢٣٤٥٦".encode()])
def test_code_that_is_not_ascii_digits_is_refused_without_echoing_it(code: bytes) -> None:
    with pytest.raises(ValueError) as raised:
        render(codes=(Secret(b"12345678"), Secret(code)))
    assert code.decode() not in str(raised.value) or not code


def test_duplicate_code_is_refused() -> None:
    with pytest.raises(ValueError, match="once"):
        render(codes=(Secret(b"12345678"), Secret(b"12345678")))


# --- accepted_reply -------------------------------------------------------------------------


@pytest.mark.parametrize("left,expected", [
    (9, ("Emergency code accepted: 9 codes left, valid until 2026-11-28T19:00:00+00:00.",)),
    (3, ("Emergency code accepted: 3 codes left, valid until 2026-11-28T19:00:00+00:00.",)),
    (2, ("Emergency code accepted: 2 codes left, valid until 2026-11-28T19:00:00+00:00.",
         "Only 2 emergency codes left: get your token back or ask for a new set.")),
    (1, ("Emergency code accepted: 1 code left, valid until 2026-11-28T19:00:00+00:00.",
         "Only 1 emergency code left: get your token back or ask for a new set.")),
    (0, ("Emergency code accepted: 0 codes left, valid until 2026-11-28T19:00:00+00:00.",
         "No emergency codes left: get your token back or ask for a new set.")),
])
def test_accepted_reply_counts_codes_left_and_warns_at_two_or_fewer(
        left: int, expected: tuple[str, ...]) -> None:
    assert accepted_reply(left, EXPIRES_AT) == expected


def test_accepted_reply_shows_expiry_in_utc() -> None:
    expires_at = datetime(2026, 11, 28, 20, 0, 0, 123, tzinfo=timezone(timedelta(hours=1)))
    assert accepted_reply(5, expires_at)[0].endswith(
        "valid until 2026-11-28T19:00:00+00:00.")


@pytest.mark.parametrize("left", range(0, 101))
def test_every_reply_message_fits_one_attribute(left: int) -> None:
    for message in accepted_reply(left, EXPIRES_AT):
        assert len(message.encode("utf-8")) <= MAX_REPLY_MESSAGE_OCTETS == 253
        assert message.isascii()


def test_negative_codes_left_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        accepted_reply(-1, EXPIRES_AT)


def test_accepted_reply_refuses_naive_expiry() -> None:
    with pytest.raises(ValueError, match="expires_at"):
        accepted_reply(3, EXPIRES_AT.replace(tzinfo=None))

"""What the user reads: the ``.txt`` export of a code set and the Reply-Message texts of an
Access-Accept with an emergency code.

Owns: the export format of SPEC "Emergency export" (golden-file tested: a change to any byte
is a change to the contract) and the wording of the accept reply (SPEC "Authentication
rules": how many codes are left and until when the set is valid). Times are shown in UTC as
ISO 8601 with the offset, to the second: ``2026-11-28T19:00:00+00:00``.

Pure: values in, text out. The caller encodes the export as UTF-8 and writes it.

Must not import: twisted, sqlalchemy, pyrad, os.environ. Must not know: files, clocks.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from functools import lru_cache
from typing import Sequence

from radiusd.model import Secret

# RFC 2865 §5: an attribute value holds at most 253 octets; §5.18 Reply-Message is "text".
MAX_REPLY_MESSAGE_OCTETS = 253

# Warn in the Accept when this many codes or fewer are left (issue 3: "2 or fewer").
LOW_CODES_WARNING_AT = 2


def render_export(*, user_name: str, issued_at: datetime, expires_at: datetime,
                  codes: Sequence[Secret], has_pin: bool, issued_by: str) -> str:
    """The ``.txt`` export of a freshly issued set (SPEC "Emergency export").

    A header naming the user, when the set was issued and until when it is valid, how many
    codes it holds and what to type; then one code per line as ``N. CODE`` with ``N``
    right-aligned to the widest number (`` 1. 48201937`` ... ``10. 11223344``). Lines end
    in ``\\n``, the text ends with one. Plain ASCII apart from the user name and the issuer;
    their control and line-breaking characters are shown escaped (``\\n``, ``\\u202e``) so
    a name can never add lines (or fake codes) to the file.

    Args:
        user_name: the user the codes belong to.
        issued_at: when the set was issued (timezone-aware).
        expires_at: when it stops working (timezone-aware).
        codes: the plaintext codes, in order, from ``codes.generate_codes``.
        has_pin: the user has a PIN (type PIN + code) or not (the code alone).
        issued_by: who issued the set (``cli``, ``admin:NAME``, ``self-service:NAME``).

    Returns:
        The file's text; encode it as UTF-8.

    Raises:
        ValueError: a naive datetime, ``expires_at`` not after ``issued_at``, no codes, a
            code that is not ASCII digits, or the same code twice.
    """
    if not _utc(expires_at, "expires_at") > _utc(issued_at, "issued_at"):
        raise ValueError("expires_at must be after issued_at")
    texts = [_code_text(code) for code in codes]
    if not texts:
        raise ValueError("a set needs at least one code")
    if len(set(texts)) != len(texts):
        raise ValueError("each code must appear once")
    if has_pin:
        how = ("To sign in, type your PIN followed by one code at the password prompt,\n"
               "with no space in between.\n")
    else:
        how = "To sign in, type the code alone at the password prompt.\n"
    header = (
        f"Emergency access codes for {_printable(user_name)}\n"
        "\n"
        f"Issued:      {_iso(issued_at, 'issued_at')}\n"
        f"Valid until: {_iso(expires_at, 'expires_at')}\n"
        f"Codes:       {len(texts)}\n"
        f"Issued by:   {_printable(issued_by)}\n"
        "\n"
        f"{how}"
        "Each code works once.\n"
        "The codes work only from inside the company network.\n"
        "They stop working when the set expires or is revoked (a new set revokes this one).\n"
        "Keep this file private, and delete it once you have your token back.\n"
        "\n"
    )
    width = len(str(len(texts)))
    lines = "".join(f"{number:>{width}}. {text}\n" for number, text in enumerate(texts, 1))
    return header + lines


def accepted_reply(codes_left: int, expires_at: datetime) -> tuple[str, ...]:
    """The Reply-Message texts of an Access-Accept with an emergency code.

    Always ``Emergency code accepted: N codes left, valid until <time>.``; with 2 or fewer
    codes left, a second message asking the user to get her token back or a new set.

    Args:
        codes_left: unused codes in the set after this one was used up.
        expires_at: when the set stops working (timezone-aware).

    Returns:
        One or two texts, each at most 253 octets in UTF-8 (one Reply-Message each).

    Raises:
        ValueError: ``codes_left`` negative, or ``expires_at`` naive.
    """
    if codes_left < 0:
        raise ValueError(f"codes_left must not be negative, got {codes_left}")
    messages = [f"Emergency code accepted: {_count(codes_left)} left, "
                f"valid until {_until(expires_at)}."]
    if codes_left <= LOW_CODES_WARNING_AT:
        lead = ("No emergency codes left" if codes_left == 0
                else f"Only {_count(codes_left, 'emergency code')} left")
        messages.append(f"{lead}: get your token back or ask for a new set.")
    for message in messages:
        # Fixed wording and a count of at most 100: a failure here is a wording change.
        if len(message.encode("utf-8")) > MAX_REPLY_MESSAGE_OCTETS:
            raise ValueError(f"Reply-Message longer than {MAX_REPLY_MESSAGE_OCTETS} octets")
    return tuple(messages)


def _count(number: int, noun: str = "code") -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _utc(moment: datetime, name: str) -> datetime:
    # A naive datetime would be read as the machine's local time: a hidden clock input.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment.astimezone(UTC)


def _iso(moment: datetime, name: str) -> str:
    """ISO 8601 in UTC to the second (truncated: never later than the real instant)."""
    return _utc(moment, name).replace(microsecond=0).isoformat()


@lru_cache(maxsize=4096)
def _until(expires_at: datetime) -> str:
    """``_iso`` of a set's expiry, for each Accept's Reply-Message: all of a set's codes
    (up to 100) share one expiry, and the formatting was 5 % of an emergency login's
    Python time in the database thread (py-spy, session 9)."""
    return _iso(expires_at, "expires_at")


def _code_text(code: Secret) -> str:
    value = code.reveal()
    if not value or not all(0x30 <= octet <= 0x39 for octet in value):
        raise ValueError("a code must be ASCII digits")  # never echo the value
    return value.decode("ascii")


def _printable(text: str) -> str:
    """``text`` with control, format and line/paragraph separator characters escaped."""
    return "".join(ascii(char)[1:-1] if unicodedata.category(char)[0] == "C"
                   or unicodedata.category(char) in ("Zl", "Zp") else char
                   for char in text)

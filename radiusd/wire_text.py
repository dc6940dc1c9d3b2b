"""What text from the wire may contain before it is used as a name or recorded.

Owns: the rule for a User-Name (a table: each problem and its test), and the escaped form
in which a text attribute that breaks it is recorded (audit rows). The codec decodes text
attributes losslessly (invalid UTF-8 octets become U+DC80..U+DCFF, ``surrogateescape``),
so the rule sees every octet the NAS sent.

Why: a name with NUL is valid UTF-8, but PostgreSQL refuses NUL in text; a control
character in a name forges log lines and terminal output; invalid UTF-8 can match no user.
None of them can be a user's name (``accounts.validate_user_name`` never creates one), so
such a request is refused before any lookup (``decide``: ``bad_user_name``), and the
values that are only recorded (Calling-Station-Id, NAS-Identifier) go in escaped.

Must not import: twisted, sqlalchemy, pyrad. Must not know: the store, sockets, logs.
"""

from __future__ import annotations

import re
from typing import Callable

from radiusd.escaping import escape

__all__ = ["MAX_OCTETS", "USER_NAME_RULES", "recorded", "user_name_problem"]

MAX_OCTETS = 253  # RFC 2865 §5.1: a User-Name is 1..253 octets

# Unicode category Cc: C0 (NUL included), DEL and C1 (U+0085 NEL, U+009B CSI, ...).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# Lone surrogates: from ``surrogateescape`` (invalid UTF-8 octets), or anything else that
# could never be encoded as UTF-8.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _octets(name: str) -> int:
    return len(name.encode("utf-8"))


# (problem, breaks): checked in order, the first that breaks is the problem. The length is
# counted only once the name is known to be valid UTF-8.
USER_NAME_RULES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("empty", lambda name: not name),
    ("not UTF-8", lambda name: _SURROGATE.search(name) is not None),
    ("control character", lambda name: _CONTROL.search(name) is not None),
    (f"longer than {MAX_OCTETS} octets", lambda name: _octets(name) > MAX_OCTETS),
)

_ANY_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SHORT = MAX_OCTETS // 4  # at most 4 octets a character: a name this short always fits


def user_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a User-Name, or ``None`` when it may be looked up.

    Args:
        name: the User-Name as the codec decoded it.

    Returns:
        The first problem of ``USER_NAME_RULES`` it breaks (``"empty"``, ``"not UTF-8"``,
        ``"control character"``, ``"longer than 253 octets"``), else ``None``.

    Raises:
        Nothing, whatever the string.
    """
    # The request path: an ordinary name costs a scan or two (printable ASCII: no C0, no
    # DEL, no surrogate; isprintable is False for exactly those among ASCII characters).
    if name and len(name) <= _SHORT and (
            (name.isascii() and name.isprintable()) or _ANY_FORBIDDEN.search(name) is None):
        return None
    for problem, breaks in USER_NAME_RULES:
        if breaks(name):
            return problem
    return None


def recorded(value: str | None) -> str | None:
    """``value`` as it may be recorded: itself, or, when it holds a control character or
    octets that are not UTF-8, its escaped form (``escaping.escape``: ``\\xNN`` for such
    an octet, ``\\n``, ``\\x00``, ``\\\\`` for a backslash), which is strict UTF-8 and has
    no control character. An ordinary value (``DOMAIN\\user``) is recorded as sent.

    Raises:
        Nothing, whatever the string.
    """
    if (value is None or (value.isascii() and value.isprintable())
            or _ANY_FORBIDDEN.search(value) is None):
        return value
    return escape(value)

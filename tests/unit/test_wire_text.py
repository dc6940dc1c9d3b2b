"""The text rule for User-Name and the recorded text attributes (issue 21, 1): what a name
from the wire may contain, and the escaped form in which a breaking value is recorded."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from radiusd import wire_text
from radiusd.crypto import Keys
from radiusd.decide import decide_access
from radiusd.model import PacketCode, RadiusRequest, Reject, RejectReason, Secret
from radiusd.settings import Settings

NOW = datetime(2024, 5, 1, 12, 0, 10, tzinfo=timezone.utc)
KEYS = Keys.from_master(b"k" * 32)


def _from_wire(octets: bytes) -> str:
    """What the codec makes of a text attribute's octets (lossless: surrogateescape)."""
    return octets.decode("utf-8", "surrogateescape")


@pytest.mark.parametrize("octets, problem", [
    (b"alice\x00", "control character"),
    (b"\x00", "control character"),
    (b"al\x01ice", "control character"),
    (b"alice\n", "control character"),
    (b"alice\x1b[31m", "control character"),
    (b"alice\x7f", "control character"),
    ("alice\u0085".encode(), "control character"),  # C1: NEL
    (b"\xff\xfe", "not UTF-8"),
    (b"m\xfcller", "not UTF-8"),             # Latin-1, not UTF-8
    (b"\xc3", "not UTF-8"),                  # truncated sequence
    (b"\xc0\xaf", "not UTF-8"),              # overlong "/"
    (b"\xed\xa0\x80", "not UTF-8"),          # an encoded surrogate
    (b"", "empty"),
])
def test_user_name_breaking_the_rule_names_the_problem(octets, problem):
    """Issue 21 (1): NUL, C0, DEL, C1, invalid UTF-8 and empty names are refused."""
    assert wire_text.user_name_problem(_from_wire(octets)) == problem


@pytest.mark.parametrize("name", ["alice", "DOMAIN\\alice", "alice@example.org", "Jürgen",
                                  "李小龍", "first last", "a" * 253, "é" * 126])
def test_ordinary_user_names_pass(name):
    """Issue 21 (1): realms, NT domains, spaces and any printable script are names."""
    assert wire_text.user_name_problem(name) is None
    assert wire_text.recorded(name) == name


def test_name_of_253_octets_passes_and_a_longer_one_does_not():
    """Issue 21 (1): RFC 2865 §5.1, at most 253 octets (a decoded attribute never has
    more; a name from elsewhere may)."""
    assert wire_text.user_name_problem("a" * 253) is None
    assert wire_text.user_name_problem("a" * 254) == "longer than 253 octets"
    assert wire_text.user_name_problem("é" * 127) == "longer than 253 octets"


@pytest.mark.parametrize("value, shown", [
    ("alice\x00", "alice\\x00"),
    ("a\nb", "a\\nb"),  # the one escaping (radiusd.escaping): a newline as \\n
    ("a\x7f", "a\\x7f"),
    ("a\u0085", "a\\x85"),
    (_from_wire(b"m\xfcller"), "m\\xfcller"),
    (_from_wire(b"a\\b\x00"), "a\\\\b\\x00"),  # a backslash in an escaped value is doubled
])
def test_recorded_form_escapes_a_breaking_value(value, shown):
    """Issue 21 (1): what reaches the audit trail of a value that breaks the rule."""
    assert wire_text.recorded(value) == shown


def test_recorded_keeps_none():
    assert wire_text.recorded(None) is None


@hypothesis_settings(max_examples=500, deadline=None)
@given(octets=st.binary(max_size=300))
def test_rule_and_escaping_never_raise_on_any_octets(octets):
    """Issue 21 (1): any octets, as the codec decodes them: the rule answers, and the
    recorded form is strict UTF-8 without a control character, the value itself when it
    passes, and never the same text for a value that breaks the rule and one that passes."""
    value = _from_wire(octets)
    problem = wire_text.user_name_problem(value)
    shown = wire_text.recorded(value)
    shown.encode("utf-8")  # strict: no lone surrogate survives
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in shown)
    if b"\x00" in octets or any(o < 0x20 or o == 0x7f for o in octets):
        assert problem is not None
    is_escaped = any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0xd800 <= ord(c) <= 0xdfff
                     for c in value)
    assert (shown != value) is is_escaped
    if problem is None:
        assert shown == value
    if problem is None and octets:
        assert octets.decode("utf-8") == value


@hypothesis_settings(max_examples=300, deadline=None)
@given(octets=st.binary(max_size=253))
def test_decide_never_raises_and_refuses_every_breaking_name(octets):
    """Issue 21 (1): decide_access refuses a name breaking the rule before anything else,
    whatever the octets (no subject is looked up for it: the handler passes None)."""
    value = _from_wire(octets)
    request = RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                            authenticator=bytes(16), attributes=(), user_name=value,
                            password=Secret(b"123456"))
    verdict = decide_access(request, None, Settings(), KEYS, NOW)
    assert isinstance(verdict, Reject)
    if wire_text.user_name_problem(value) is not None:
        assert verdict.reason is RejectReason.BAD_USER_NAME
        assert verdict.commits == ()
        assert verdict.detail == {"user_name": wire_text.user_name_problem(value)}
    else:
        assert verdict.reason is RejectReason.UNKNOWN_USER

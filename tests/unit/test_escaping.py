"""``radiusd.escaping``: the one escaping of outside text for terminals and logs (issue 20,
6), the same as the ``-X`` packet dump's."""

from __future__ import annotations

import pytest

from radiusd import codec
from radiusd.escaping import escape, quote, word


@pytest.mark.parametrize("text,expected", [
    ("alice", "alice"),
    ("DOMAIN\\bob", "DOMAIN\\\\bob"),
    ("a\nb", "a\\nb"),
    ("red\x1b[31m", "red\\x1b[31m"),
    ("csi\u009b2J", "csi\\x9b2J"),
    ("del\x7f", "del\\x7f"),
    ("rtl\u202eevil", "rtl\\u202eevil"),
    ("line\u2028sep", "line\\u2028sep"),
    ("nbsp\u00a0", "nbsp\\xa0"),
    ("tab\t", "tab\\t"),
    ("zoë 日本", "zoë 日本"),
])
def test_escape_leaves_no_control_character(text, expected):
    """Issue 20 (6): every character a terminal or a log line could act on is escaped."""
    assert escape(text) == expected
    assert escape(text).isprintable()


def test_quote_is_the_form_of_the_debug_packet_dump():
    """Issue 20 (6): one escaping: ``-X`` (codec.describe) quotes with it."""
    assert quote('evil"\nUser-Name = "admin') == '"evil\\"\\nUser-Name = \\"admin"'
    table = {1: ("User-Name", "string", {})}
    line = codec._describe_attribute(table, 1, 'x"\x1b[2J'.encode(), None)
    assert line == "\tUser-Name = " + quote('x"\x1b[2J')


@pytest.mark.parametrize("text,expected", [
    ("bob", "bob"),
    ("", '""'),
    ("bob accept", '"bob accept"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("a\nb", "a\\nb"),
])
def test_word_keeps_a_value_in_one_column(text, expected):
    """Issue 20 (6): a value with a space cannot pass itself off as the next column."""
    assert word(text) == expected


def test_an_octet_that_was_not_utf8_is_shown_as_that_octet():
    """Issue 21 (1): the codec decodes invalid UTF-8 losslessly (surrogateescape); the one
    escaping shows each such octet as the NAS sent it, in logs, the CLI and audit rows."""
    from_wire = b"m\xfcller\x1b".decode("utf-8", "surrogateescape")
    assert escape(from_wire) == "m\\xfcller\\x1b"
    assert quote(from_wire) == '"m\\xfcller\\x1b"'


@pytest.mark.parametrize("stored,shown", [
    ("10.0.0.1\\nforged", "10.0.0.1\\nforged"),   # recorded escaped: not escaped twice
    ("DOMAIN\\user", "DOMAIN\\user"),             # an ordinary value, as it was sent
    ("lost\nforged", "lost\\nforged"),            # typed by an admin: still escaped
    ("rtl\u202e", "rtl\\u202e"),
    ("a b", '"a b"'),
    ("", '""'),
])
def test_recorded_word_shows_an_audit_value_escaped_once(stored, shown):
    """Issue 20 (6) with issue 21 (1): the audit listing shows what the request path
    recorded escaped once, and still escapes anything that is not printable."""
    from radiusd.escaping import recorded_word
    assert recorded_word(stored) == shown

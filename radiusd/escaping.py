"""Text from outside, made safe to print: the one escaping of every value the CLI prints or
the server writes into a log line.

Owns: how a value that arrived from a NAS (User-Name, Calling-Station-Id, NAS-Identifier)
or from a form (a reason, a name) is shown on a terminal or in a log. A newline in such a
value would forge a line of ``radiusd audit`` or of the log, and an ESC (``\\x1b[...``)
would reach the admin's terminal; so every character that ``str.isprintable`` refuses
(C0 and C1 controls, DEL, bidirectional overrides, line and paragraph separators, every
space but U+0020) is written as its Python escape (``\\n``, ``\\x1b``, ``\\u202e``), and a
backslash as ``\\\\`` so the escaped form is never ambiguous. This is the form the ``-X``
packet dump (``codec.describe``) has always used. An octet that was not UTF-8 (decoded by
the codec as U+DC80..U+DCFF, ``surrogateescape``) is written as ``\\xNN``, that octet.

Must not import: anything outside the standard library.
"""

from __future__ import annotations


def escape(text: str) -> str:
    """``text`` with backslashes and non-printable characters escaped.

    Args:
        text: any text, e.g. a User-Name as a NAS sent it.

    Returns:
        Printable text without a control character: ``"a\\nb"`` → ``a\\\\nb`` (a backslash and
        an ``n``), ``"\\x1b[31m"`` → ``\\\\x1b[31m``. Printable text without a backslash comes
        back unchanged.
    """
    if text.isprintable() and "\\" not in text:
        return text  # the common case, without building a new string
    return "".join(_escaped(character) for character in text)


def quote(text: str) -> str:
    """``text`` escaped as by :func:`escape`, ``"`` escaped too, inside double quotes.

    The form of a string attribute in the ``-X`` packet dump: ``User-Name = "bob"``.
    """
    return '"' + "".join("\\" + character if character == '"' else _escaped(character)
                         for character in text) + '"'


def word(text: str) -> str:
    """``text`` as one word of a space-separated line (an audit line, a log line).

    Escaped as by :func:`escape`; quoted as by :func:`quote` when it is empty or holds a
    space or a ``"``, so that a value cannot pass itself off as the next column
    (``"bob accept"``) and an empty value is still seen.
    """
    if not text or " " in text or '"' in text:
        return quote(text)
    return escape(text)


def recorded_word(text: str) -> str:
    """An audit value as one word, as :func:`word` but with its backslashes as stored.

    The request path records a value from the wire that holds a control character or
    octets that are not UTF-8 in escaped form already (``wire_text.recorded``:
    ``10.0.0.1\\nforged``); doubling its backslashes here would show it escaped twice. What
    is still not printable (a value an admin typed, a right-to-left override) is escaped,
    so a listing still cannot be forged; ``DOMAIN\\user`` shows as it was sent.
    """
    if not text or " " in text or '"' in text:
        return '"' + "".join("\\" + c if c == '"' else c if c == "\\" else _escaped(c)
                             for c in text) + '"'
    if text.isprintable():
        return text
    return "".join(c if c == "\\" else _escaped(c) for c in text)


def _escaped(character: str) -> str:
    if character == "\\":
        return "\\\\"
    if character.isprintable():
        return character
    if "\udc80" <= character <= "\udcff":
        # An octet that was not UTF-8, as the codec decodes it (surrogateescape): shown as
        # the octet the NAS sent.
        return f"\\x{ord(character) - 0xdc00:02x}"
    return character.encode("unicode_escape", "backslashreplace").decode("ascii")

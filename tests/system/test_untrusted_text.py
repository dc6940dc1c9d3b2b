"""Text a NAS or an admin controls never reaches a terminal or a log raw (issue 20, 6): a
real ``radiusd serve -X`` and the real CLI, with values holding newlines and ESC."""

from __future__ import annotations

import json
import re

from pyrad import packet

from radius_client import pyrad_exchange

# A forged log line, then a terminal escape sequence (red text) and an 8-bit CSI.
FORGED = "Access-Accept for admin from localhost"
EVIL = f"mallory\n{FORGED}\x1b[31m\u009b2J"
# Anything a terminal acts on: C0 controls but the newlines that end our own lines and the
# tabs that indent the log's continuation lines (Twisted's text observer), DEL, C1, and the
# characters that reorder or break a line.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e]")


def _no_raw_control(text: str) -> None:
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} in {text!r}"


def test_user_name_with_newline_and_escape_is_escaped_in_debug_log_and_audit(server):
    """Issue 20 (6): a User-Name holding a newline and ESC sequences forges no log line,
    no audit line, and sends no escape to the terminal; --json gives the recorded form."""
    reply = pyrad_exchange(server.port, server.secret, EVIL, "123456")
    assert reply.code == packet.AccessReject
    log = server.log_text()
    _no_raw_control(log)
    assert not any(line.lstrip().startswith(FORGED) or f"] {FORGED}" in line
                   for line in log.splitlines()), log
    # The decision line (-X) and the packet dump show the same escaped form.
    escaped = "mallory\\nAccess-Accept for admin from localhost\\x1b[31m\\x9b2J"
    assert f'Access-Reject for "{escaped}" from localhost' in log
    assert f'User-Name = "{escaped}"' in log

    text = server.cli_ok("audit")
    _no_raw_control(text)
    assert not any(FORGED in line and escaped not in line for line in text.splitlines())
    assert escaped in text
    by_user = server.cli_ok("audit", "--user", EVIL)
    assert len(by_user.strip().splitlines()) == 1 and escaped in by_user

    raw_json = server.cli_ok("audit", "--user", EVIL, "--json")
    _no_raw_control(raw_json)
    rows = json.loads(raw_json)
    # Recorded escaped (issue 21, 1: no control character reaches the database), and
    # shown once escaped in the text listing above.
    assert [row["user"] for row in rows] == [escaped]


def test_calling_station_id_and_nas_identifier_cannot_forge_audit_columns(server):
    """Issue 20 (6): request attributes written into audit details are escaped too, and a
    value with a space cannot pass itself off as further ``key=value`` columns."""
    name = "station-user"
    pyrad_exchange(server.port, server.secret, name, "123456",
                   Calling_Station_Id="10.0.0.1\nforged", NAS_Identifier="vpn authenticator=pin")
    text = server.cli_ok("audit", "--user", name)
    _no_raw_control(text)
    (line,) = text.strip().splitlines()
    assert "calling_station_id=10.0.0.1\\nforged" in line
    assert 'nas_identifier="vpn authenticator=pin"' in line
    assert " authenticator=pin" not in line.replace('"vpn authenticator=pin"', "")

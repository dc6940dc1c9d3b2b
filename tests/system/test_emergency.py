"""Emergency access over real UDP (pyrad's client, raw sockets, radclient) and the
``radiusd emergency`` CLI: issue, export, use once, perimeter, revoke, lockout."""

from __future__ import annotations

import base64
import json
import re
import socket
import stat

import pytest
from pyrad import packet

from radius_client import build_request, pyrad_exchange, radclient, send_raw
from support import ServerProcess, free_udp_port, totp_now, write_server_config
from system.conftest import SECRET

LEGACY_SECRET = "legacy-nas-secret-0123456789"
CODE_LINE = re.compile(r"^\s*(\d+)\. (\d+)$", re.M)


def _start(directory, check: str) -> ServerProcess:
    port = free_udp_port()
    config = write_server_config(directory, port=port, secret=SECRET, extra=f"""
[[clients]]
name = "outside-nas"
address = "127.0.0.2"
secret = "{LEGACY_SECRET}"
require_message_authenticator = false

[perimeter]
networks = ["127.0.0.1/32", "10.0.0.0/8"]
check = "{check}"
""")
    server = ServerProcess(directory=directory, port=port, secret=SECRET, config=config,
                           log_path=directory / "radiusd.log")
    server.start()
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = _start(tmp_path_factory.mktemp("emergency-nas"), "nas")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def user_check_server(tmp_path_factory):
    proc = _start(tmp_path_factory.mktemp("emergency-user"), "user")
    yield proc
    proc.stop()


def _issue(server, name: str, *, pin: str | None = "4821", count: int = 5,
           tmp_path=None) -> list[str]:
    server.cli_ok("user", "add", name, *(("--pin", pin) if pin else ()))
    output = server.cli_ok("emergency", "issue", name, "--count", str(count))
    codes = [code for _, code in CODE_LINE.findall(output)]
    assert len(codes) == count and len(set(codes)) == count
    return codes


def _audit(server, user: str) -> list[dict]:
    """The user's audit rows, newest first (``audit --json`` lists them oldest first)."""
    return json.loads(server.cli_ok("audit", "--user", user, "--json"))[::-1]


def test_pin_and_code_accepted_with_reply_message_then_reuse_rejected(server):
    codes = _issue(server, "em-alice")
    attrs = (f'User-Name = "em-alice", User-Password = "4821{codes[0]}", '
             'Message-Authenticator = 0x00')
    first = radclient(server.port, server.secret, attrs)
    assert "Received Access-Accept" in first.stdout, first.stdout + first.stderr
    assert "Emergency code accepted: 4 codes left, valid until" in first.stdout
    again = radclient(server.port, server.secret, attrs)
    assert "Received Access-Reject" in again.stdout
    assert _audit(server, "em-alice")[0]["reason"] == "code_used"
    reply = pyrad_exchange(server.port, server.secret, "em-alice", "4821" + codes[1])
    assert reply.code == packet.AccessAccept
    assert "3 codes left" in reply["Reply-Message"][0]


def test_retransmission_of_an_accepted_request_gets_the_same_accept(server):
    codes = _issue(server, "em-retrans")
    request = build_request(server.secret, "em-retrans", "4821" + codes[0])
    data = request.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        replies = [send_raw(data, server.port, sock=sock) for _ in range(3)]
    assert replies[0][0] == packet.AccessAccept and replies.count(replies[0]) == 3
    rows = [row for row in _audit(server, "em-retrans") if row["action"] == "auth"]
    assert [row["result"] for row in rows] == ["accept"]


def test_outside_the_perimeter_rejected_and_the_code_still_works_inside(server):
    codes = _issue(server, "em-outside")
    outside = build_request(LEGACY_SECRET, "em-outside", "4821" + codes[0], with_ma=False)
    raw = send_raw(outside.RequestPacket(), server.port, source="127.0.0.2")
    assert raw is not None and raw[0] == packet.AccessReject
    row = _audit(server, "em-outside")[0]
    assert row["reason"] == "outside_perimeter" and "127.0.0.2" in row["detail"]["perimeter"]
    assert pyrad_exchange(server.port, server.secret, "em-outside",
                          "4821" + codes[0]).code == packet.AccessAccept


def _attribute_types(reply: bytes) -> list[int]:
    types, at = [], 20
    while at < len(reply):
        types.append(reply[at])
        at += reply[at + 1]
    return types


def test_a_valid_code_refused_five_times_outside_the_perimeter_locks_nothing(server):
    """Issue 20 (7): a user who tried her valid code five times from outside the perimeter
    was locked out of her real token too. Each attempt is a plain Access-Reject (the same
    as a wrong code's), audited as outside the perimeter and not counted; the code is not
    used up and the token still works."""
    seed = b"perimeter-token-seed"
    codes = _issue(server, "em-away")
    server.cli_ok("token", "add", "em-away", "--type", "totp", "--serial", "AWAY-1",
                  "--secret", base64.b32encode(seed).decode())
    server.cli_ok("user", "add", "em-away-wrong", "--pin", "4821")
    wrong = build_request(LEGACY_SECRET, "em-away-wrong", "4821" + "0" * 7 + "1",
                          with_ma=False)
    wrong_reply = send_raw(wrong.RequestPacket(), server.port, source="127.0.0.2")
    for _ in range(5):
        outside = build_request(LEGACY_SECRET, "em-away", "4821" + codes[0], with_ma=False)
        reply = send_raw(outside.RequestPacket(), server.port, source="127.0.0.2")
        assert reply is not None and reply[0] == packet.AccessReject
        # Nothing in the Reply tells the perimeter from a wrong code (SPEC).
        assert len(reply) == len(wrong_reply)
        assert _attribute_types(reply) == _attribute_types(wrong_reply)
    rows = [row for row in _audit(server, "em-away") if row["action"] == "auth"]
    assert [row["reason"] for row in rows] == ["outside_perimeter"] * 5
    assert all(row["detail"]["counted"] is False for row in rows)
    assert re.search(r"(?m)^failures:\s+0$", server.cli_ok("user", "show", "em-away"))
    assert "codes left:  5 of 5" in server.cli_ok("emergency", "status", "em-away")
    token = pyrad_exchange(server.port, SECRET, "em-away", "4821" + totp_now(seed))
    assert token.code == packet.AccessAccept


@pytest.mark.parametrize("calling_station_id,expected", [
    ("10.1.2.3", packet.AccessAccept),
    ("192.0.2.44", packet.AccessReject),
    ("00-11-22-33-44-55", packet.AccessReject),
])
def test_user_perimeter_reads_calling_station_id(user_check_server, calling_station_id,
                                                 expected):
    name = f"em-csi-{calling_station_id.replace('.', '-').replace(':', '-')}"
    codes = _issue(user_check_server, name)
    reply = pyrad_exchange(user_check_server.port, SECRET, name, "4821" + codes[0],
                           Calling_Station_Id=calling_station_id)
    assert reply.code == expected


def test_pin_user_must_type_pin_and_no_pin_user_types_code_alone(server):
    codes = _issue(server, "em-pin")
    assert pyrad_exchange(server.port, SECRET, "em-pin", codes[0]).code == packet.AccessReject
    codes = _issue(server, "em-nopin", pin=None)
    assert pyrad_exchange(server.port, SECRET, "em-nopin", codes[0]).code == packet.AccessAccept
    assert "the code alone" in server.cli_ok("emergency", "issue", "em-nopin")


def test_revoked_and_superseded_sets_rejected(server):
    """Issue 20 (12): superseding writes a revoke row (reason superseded), and a code of
    the superseded set is logged as one, not as `bad_code`."""
    old = _issue(server, "em-revoke")
    new = [c for _, c in CODE_LINE.findall(server.cli_ok("emergency", "issue", "em-revoke"))]
    issues = [row for row in _audit(server, "em-revoke") if row["action"] == "emergency.issue"]
    new_set, old_set = issues[0]["detail"]["set"], issues[1]["detail"]["set"]
    revoke = next(row for row in _audit(server, "em-revoke")
                  if row["action"] == "emergency.revoke")
    assert (revoke["reason"], revoke["actor"]) == ("superseded", "cli")
    assert revoke["detail"] == {"set": old_set, "codes_left": 5, "replaced_by": new_set}
    assert pyrad_exchange(server.port, SECRET, "em-revoke",
                          "4821" + old[0]).code == packet.AccessReject     # superseded
    row = _audit(server, "em-revoke")[0]
    assert row["reason"] == "code_of_replaced_set"
    assert (row["detail"]["set"], row["detail"]["replaced_by"]) == (old_set, new_set)
    assert pyrad_exchange(server.port, SECRET, "em-revoke",
                          "4821" + "0" * 7 + "1").code == packet.AccessReject  # a guess
    assert _audit(server, "em-revoke")[0]["reason"] == "bad_code"
    server.cli_ok("emergency", "revoke", "em-revoke")
    assert pyrad_exchange(server.port, SECRET, "em-revoke",
                          "4821" + new[0]).code == packet.AccessReject     # revoked
    assert _audit(server, "em-revoke")[0]["reason"] == "set_revoked"
    assert "status:      revoked" in server.cli_ok("emergency", "status", "em-revoke")


def test_wrong_codes_lock_the_user_until_unlock(server):
    codes = _issue(server, "em-lock")
    for _ in range(5):
        assert pyrad_exchange(server.port, SECRET, "em-lock",
                              "4821" + "0" * 7 + "1").code == packet.AccessReject
    assert pyrad_exchange(server.port, SECRET, "em-lock",
                          "4821" + codes[0]).code == packet.AccessReject
    assert _audit(server, "em-lock")[0]["reason"] == "locked"
    server.cli_ok("user", "unlock", "em-lock")
    assert pyrad_exchange(server.port, SECRET, "em-lock",
                          "4821" + codes[0]).code == packet.AccessAccept


def test_status_shows_use_but_never_codes(server):
    codes = _issue(server, "em-status", count=3)
    pyrad_exchange(server.port, SECRET, "em-status", "4821" + codes[2])
    status = server.cli_ok("emergency", "status", "em-status")
    assert "status:      active" in status and "codes left:  2 of 3" in status
    assert "last use:" in status and "localhost" in status
    audit = server.cli_ok("audit", "--user", "em-status", "--json")
    for code in codes:
        assert code not in status and code not in audit
        assert code not in server.log_text()


def test_issue_to_file_is_private_and_matches_stdout_format(server, tmp_path):
    server.cli_ok("user", "add", "em-file", "--pin", "4821")
    target = tmp_path / "codes.txt"
    result = server.cli("emergency", "issue", "em-file", "--count", "10", "--output",
                        str(target), "--reason", "left token at home")
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "your PIN followed by one code" in text
    assert [n for n, _ in CODE_LINE.findall(text)] == [str(i) for i in range(1, 11)]
    assert " 1. " in text and "10. " in text
    actions = [row["action"] for row in _audit(server, "em-file")]
    assert "emergency.issue" in actions and "emergency.export" in actions


@pytest.mark.parametrize("args,needle", [
    (("emergency", "issue", "nobody"), "nobody"),
    (("emergency", "issue", "em-bad", "--count", "0"), "--count"),
    (("emergency", "issue", "em-bad", "--count", "101"), "--count"),
    (("emergency", "issue", "em-bad", "--lifetime", "soon"), "lifetime"),
    (("emergency", "issue", "em-bad", "--output", "/nonexistent/dir/codes.txt"), "cannot write"),
    (("emergency", "revoke", "em-bad"), "no active emergency set"),
])
def test_bad_input_issues_nothing(server, args, needle):
    server.cli("user", "add", "em-bad")
    result = server.cli(*args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and needle in result.stderr
    assert "status:      none" in server.cli_ok("emergency", "status", "em-bad")

"""A real ``radiusd serve`` on 127.0.0.1, driven by pyrad's client, raw sockets and
FreeRADIUS's radclient: the promises of SPEC "Authentication rules" over real UDP."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time

import pytest
from pyrad import packet

from radius_client import (Timeout, build_request, pyrad_exchange, radclient, reply_verifies,
                           send_raw)
from radiusd.otp import hotp
from support import totp_now


def _seed() -> tuple[bytes, str]:
    seed = os.urandom(20)
    return seed, base64.b32encode(seed).decode().rstrip("=")


def _user(server, name: str, *, pin: str | None = "4821", kind: str = "totp",
          digits: int = 6) -> bytes:
    seed, b32 = _seed()
    server.cli_ok("user", "add", name, *(("--pin", pin) if pin else ()))
    server.cli_ok("token", "add", name, "--type", kind, "--secret", b32, "--digits", str(digits))
    return seed


def _audit(server, user: str) -> list[dict]:
    """The user's audit rows, newest first (``audit --json`` lists them oldest first)."""
    return json.loads(server.cli_ok("audit", "--user", user, "--json"))[::-1]


def test_pin_and_totp_accepted_with_signed_reply_then_replay_rejected(server):
    seed = _user(server, "alice")
    passcode = "4821" + totp_now(seed)
    reply = pyrad_exchange(server.port, server.secret, "alice", passcode)
    assert reply.code == packet.AccessAccept
    reply = pyrad_exchange(server.port, server.secret, "alice", passcode)
    assert reply.code == packet.AccessReject
    reasons = [row["reason"] for row in _audit(server, "alice") if row["action"] == "auth"]
    assert reasons == ["replayed_code", None]  # newest first


def test_reply_carries_message_authenticator_first_and_echoes_proxy_state(server):
    seed = _user(server, "proxied")
    request = build_request(server.secret, "proxied", "4821" + totp_now(seed),
                            proxy_states=(b"first", b"second"))
    raw = send_raw(request.RequestPacket(), server.port)
    assert raw is not None and raw[0] == packet.AccessAccept
    assert raw[20] == 80 and raw[21] == 18          # Message-Authenticator is attribute #1
    assert reply_verifies(request, raw)
    reply = request.CreateReply(packet=raw)
    assert reply[33] == [b"first", b"second"]        # RFC 2865 §5.33: unmodified, in order


def test_user_without_pin_sends_code_alone_and_pin_user_cannot(server):
    seed = _user(server, "nopin", pin=None)
    assert pyrad_exchange(server.port, server.secret, "nopin",
                          "1234" + totp_now(seed)).code == packet.AccessReject
    assert pyrad_exchange(server.port, server.secret, "nopin",
                          totp_now(seed)).code == packet.AccessAccept
    seed = _user(server, "haspin")
    assert pyrad_exchange(server.port, server.secret, "haspin",
                          totp_now(seed)).code == packet.AccessReject


def test_hotp_counter_advances_and_each_code_works_once(server):
    seed = _user(server, "hotpuser", kind="hotp", digits=8)
    codes = [hotp(seed, counter, 8) for counter in range(4)]
    assert pyrad_exchange(server.port, server.secret, "hotpuser",
                          "4821" + codes[2]).code == packet.AccessAccept   # look-ahead
    for code in codes[:3]:                                                   # all used up
        assert pyrad_exchange(server.port, server.secret, "hotpuser",
                              "4821" + code).code == packet.AccessReject
    assert pyrad_exchange(server.port, server.secret, "hotpuser",
                          "4821" + codes[3]).code == packet.AccessAccept


def test_radclient_accept_then_same_passcode_rejected(server):
    seed = _user(server, "radc")
    attrs = (f'User-Name = "radc", User-Password = "4821{totp_now(seed)}", '
             'Message-Authenticator = 0x00')
    first = radclient(server.port, server.secret, attrs)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Received Access-Accept" in first.stdout
    second = radclient(server.port, server.secret, attrs)
    assert "Received Access-Reject" in second.stdout
    assert second.returncode == 1


def test_radclient_without_message_authenticator_gets_no_answer(server):
    seed = _user(server, "noma")
    attrs = f'User-Name = "noma", User-Password = "4821{totp_now(seed)}"'
    result = radclient(server.port, server.secret, attrs, args=("-x", "-r", "1", "-t", "1"))
    assert result.returncode == 1
    assert "Received" not in result.stdout
    assert "MissingMessageAuthenticator" in server.log_text() or \
        "Message-Authenticator" in server.log_text()
    assert [row for row in _audit(server, "noma") if row["action"] == "auth"] == []


def test_radclient_retransmissions_get_one_evaluation(tmp_path):
    """radclient -r 3 with a timeout shorter than the reject delay: identical datagrams
    from one port, one evaluation, one reply (RFC 5080 §2.2.2)."""
    slow = _own_server(tmp_path, reject_delay="2s")  # 2–2.5 s with its jitter: under -r 3 -t 1
    slow.start()
    try:
        _user(slow, "retrans")
        attrs = ('User-Name = "retrans", User-Password = "4821000000", '
                 'Message-Authenticator = 0x00')
        result = radclient(slow.port, slow.secret, attrs, args=("-x", "-r", "3", "-t", "1"))
        assert "Received Access-Reject" in result.stdout, result.stdout + result.stderr
        assert len(re.findall(r"^Sent Access-Request", result.stdout, re.M)) >= 2
        assert "still in progress: dropped" in slow.log_text()
        auth_rows = [row for row in _audit(slow, "retrans") if row["action"] == "auth"]
        assert len(auth_rows) == 1
    finally:
        slow.stop()


def _own_server(tmp_path, **options):
    from support import ServerProcess, free_udp_port, write_server_config
    from system.conftest import SECRET
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET, **options)
    return ServerProcess(directory=tmp_path, port=port, secret=SECRET, config=config,
                         log_path=tmp_path / "radiusd.log")


def test_retransmitted_accept_is_resent_byte_for_byte_without_reevaluation(server):
    seed = _user(server, "dupe")
    request = build_request(server.secret, "dupe", "4821" + totp_now(seed))
    data = request.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        replies = [send_raw(data, server.port, sock=sock) for _ in range(3)]
    assert replies[0] is not None and replies[0][0] == packet.AccessAccept
    assert replies[1] == replies[0] and replies[2] == replies[0]
    rows = [row for row in _audit(server, "dupe") if row["action"] == "auth"]
    assert [row["result"] for row in rows] == ["accept"]


def test_status_server_answered_with_signed_accept(server):
    result = radclient(server.port, server.secret, "Message-Authenticator = 0x00",
                       command="status")
    assert "Received Access-Accept" in result.stdout, result.stdout + result.stderr
    request = build_request(server.secret, None, code=packet.StatusServer)
    raw = send_raw(request.RequestPacket(), server.port)
    assert raw is not None and raw[0] == packet.AccessAccept and reply_verifies(request, raw)


def test_a_burst_of_requests_waits_for_the_server_none_is_dropped(server):
    """2,000 Status-Server at once, as from NASes rebooting: every one is answered. The
    kernel's default receive buffer holds 256 requests on loopback and drops the rest
    (app.enlarge_receive_buffer)."""
    sockets = []
    try:
        expected, datagrams = {}, []
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sockets.append(sock)
            sock.bind(("127.0.0.1", 0))
            for identifier in range(100):
                request = build_request(server.secret, None, code=packet.StatusServer)
                request.id = identifier
                expected[(sock.getsockname()[1], identifier)] = request
                datagrams.append((sock, request.RequestPacket()))
        for sock, data in datagrams:   # all sent before any reply is read
            sock.sendto(data, ("127.0.0.1", server.port))
        answered = set()
        deadline = time.monotonic() + 20
        while len(answered) < len(expected) and time.monotonic() < deadline:
            for sock in sockets:
                sock.settimeout(0.05)
                try:
                    while True:
                        raw = sock.recv(4096)
                        key = (sock.getsockname()[1], raw[1])
                        assert raw[0] == packet.AccessAccept
                        assert reply_verifies(expected[key], raw)
                        answered.add(key)
                except socket.timeout:
                    pass
        assert len(answered) == len(expected)
    finally:
        for sock in sockets:
            sock.close()


def test_accounting_request_is_silently_dropped(server):
    result = radclient(server.port, server.secret, 'User-Name = "acct"', command="acct",
                       args=("-x", "-r", "1", "-t", "1"))
    assert "Received" not in result.stdout


def test_chap_gets_access_reject(server):
    _user(server, "chapuser")
    result = radclient(server.port, server.secret,
                       'User-Name = "chapuser", CHAP-Password = "4821123456", '
                       'Message-Authenticator = 0x00')
    assert "Received Access-Reject" in result.stdout, result.stdout + result.stderr
    assert _audit(server, "chapuser")[0]["reason"] == "chap_not_supported"


def test_unknown_client_is_dropped(server):
    request = build_request(server.secret, "alice", "48210000")
    assert send_raw(request.RequestPacket(), server.port, source="127.0.0.3", timeout=1) is None
    assert "unknown client 127.0.0.3" in server.log_text()


def test_legacy_client_without_ma_answered_but_proxy_state_without_ma_dropped(server):
    legacy_secret = "legacy-nas-secret-0123456789"
    seed = _user(server, "legacy")
    plain = build_request(legacy_secret, "legacy", "4821" + totp_now(seed), with_ma=False)
    raw = send_raw(plain.RequestPacket(), server.port, source="127.0.0.2")
    assert raw is not None and raw[0] == packet.AccessAccept
    assert raw[20] == 80  # our reply is signed anyway
    forged = build_request(legacy_secret, "legacy", "48210000", with_ma=False,
                           proxy_states=(b"x" * 40,))
    assert send_raw(forged.RequestPacket(), server.port, source="127.0.0.2", timeout=1) is None


MALFORMED = {
    "short datagram": bytes.fromhex("0100001400") + bytes(14),
    "length beyond datagram": bytes.fromhex("01000064") + bytes(range(16)),
    "type-0 attribute": bytes.fromhex("01000016") + bytes(range(16)) + bytes.fromhex("0002"),
    "attribute overflows packet": bytes.fromhex("01000016") + bytes(range(16))
    + bytes.fromhex("010a"),
    "Message-Authenticator wrong length": bytes.fromhex("01000019") + bytes(range(16))
    + bytes.fromhex("5005000000"),
    "Status-Server without Message-Authenticator": bytes.fromhex("0c000014") + bytes(range(16)),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_packet_dropped_and_next_good_request_answered(server, name):
    assert send_raw(MALFORMED[name], server.port, timeout=0.5) is None
    assert "dropped packet from localhost" in server.log_text()
    result = radclient(server.port, server.secret, "Message-Authenticator = 0x00",
                       command="status")
    assert "Received Access-Accept" in result.stdout


def test_reject_is_delayed_and_accept_is_not(server):
    _user(server, "slow")
    request = build_request(server.secret, "slow", "4821999999")
    started = time.monotonic()
    raw = send_raw(request.RequestPacket(), server.port)
    assert raw is not None and raw[0] == packet.AccessReject
    assert time.monotonic() - started >= 0.2  # reject_delay of this server's config


def test_lockout_after_max_failures_until_unlock(server):
    seed = _user(server, "locky", kind="hotp")
    for _ in range(5):
        assert pyrad_exchange(server.port, server.secret, "locky",
                              "4821000000").code == packet.AccessReject
    good = "4821" + hotp(seed, 0, 6)
    assert pyrad_exchange(server.port, server.secret, "locky", good).code == packet.AccessReject
    assert _audit(server, "locky")[0]["reason"] == "locked"
    server.cli_ok("user", "unlock", "locky")
    assert pyrad_exchange(server.port, server.secret, "locky", good).code == packet.AccessAccept


def test_unknown_user_and_disabled_user_rejected(server):
    assert pyrad_exchange(server.port, server.secret, "ghost",
                          "4821123456").code == packet.AccessReject
    seed = _user(server, "offuser")
    server.cli_ok("user", "disable", "offuser")
    assert pyrad_exchange(server.port, server.secret, "offuser",
                          "4821" + totp_now(seed)).code == packet.AccessReject
    assert _audit(server, "offuser")[0]["reason"] == "disabled"


def test_pyrad_client_with_enforce_ma_times_out_on_dropped_request(server):
    with pytest.raises(Timeout):
        pyrad_exchange(server.port, "wrong-secret-wrong-secret", "alice", "4821000000",
                       timeout=0.5)
    assert "Message-Authenticator" in server.log_text()

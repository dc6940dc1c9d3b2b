"""Process-level promises: clean stop on SIGTERM/SIGINT, and no secret ever in a log line
or audit row (canary values run through every flow, then searched for)."""

from __future__ import annotations

import base64
import json
import signal

import pytest
from pyrad import packet

from radius_client import build_request, pyrad_exchange, radclient, send_raw
from support import ServerProcess, free_udp_port, totp_now, write_server_config


def _server(tmp_path, secret: str) -> ServerProcess:
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=secret)
    return ServerProcess(directory=tmp_path, port=port, secret=secret, config=config,
                         log_path=tmp_path / "radiusd.log")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_server_cleanly(tmp_path, sig):
    server = _server(tmp_path, "lifecycle-secret-0123456789")
    server.start()
    assert server.stop(sig) == 0
    assert "radiusd stopped" in server.log_text()
    assert "Traceback" not in server.log_text()


def test_canary_secrets_never_reach_logs_or_audit(tmp_path):
    secret = "CANARYsecretQx7Vw9Lk"
    pin = "Qx7V"
    seed = b"CANARY-seed-Qx7Vw9Lk"
    password = "CANARYpasswordQx7Vw9"
    server = _server(tmp_path, secret)
    server.start()
    try:
        server.cli_ok("user", "add", "canary", "--pin-stdin", "--password-stdin",
                      input=f"{pin}\n{password}\n")
        b32 = base64.b32encode(seed).decode()
        added = server.cli_ok("token", "add", "canary", "--secret-stdin", input=b32 + "\n")
        assert b32.rstrip("=") not in added  # issue 21 (12): an imported seed is not echoed
        good = pin + totp_now(seed)
        assert pyrad_exchange(server.port, secret, "canary", good).code == packet.AccessAccept
        assert pyrad_exchange(server.port, secret, "canary", good).code == packet.AccessReject
        assert pyrad_exchange(server.port, secret, "canary",
                              pin + "00000000").code == packet.AccessReject
        bad_secret = build_request("CANARYwrongSecretQx7", "canary", good)
        assert send_raw(bad_secret.RequestPacket(), server.port, timeout=0.5) is None
        radclient(server.port, secret,
                  f'User-Name = "canary", User-Password = "{good}", '
                  'Message-Authenticator = 0x00')
        audit = server.cli_ok("audit", "--json") + server.cli_ok("audit")
    finally:
        server.stop()
    key_hex = (tmp_path / "radiusd.key").read_text().strip()
    log = server.log_text()
    assert "canary" in log and "Access-Accept" in log  # the flows really were logged
    # -X logs each decision too (the audit trail has them without -X).
    assert "Access-Accept for canary from" in log
    assert "Access-Reject for canary from" in log
    for value in (secret, "CANARYwrongSecretQx7", pin, good, password, seed.decode(),
                  b32.rstrip("="), key_hex):
        assert value not in log, "a secret leaked into the log"
        assert value not in audit, "a secret leaked into the audit trail"
    assert json.loads(server.cli_ok("audit", "--json"))  # rows exist

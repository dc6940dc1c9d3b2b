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


def test_descriptor_limit_on_postgresql_is_one_database_unreachable_line(tmp_path):
    """Issue 21 (13): at the descriptor limit psycopg's EMFILE (an OSError) escaped as
    "Unhandled error in Deferred"; it is the one "database unreachable" line, and no
    reply goes out. The running server's limit is lowered from outside (prlimit) so that
    a new database connection gets its socket but not psycopg's selector."""
    import os
    import resource
    import time

    from support import pg_database

    secret = "lifecycle-secret-0123456789"
    with pg_database() as url:
        port = free_udp_port()
        config = write_server_config(tmp_path, port=port, secret=secret, database_url=url)
        server = ServerProcess(directory=tmp_path, port=port, secret=secret, config=config,
                               log_path=tmp_path / "radiusd.log")
        server.start()
        try:
            pid = server.process.pid
            soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            used = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
            lowest_free = min(set(range(len(used) + 1)) - used)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free + 1, hard))
            try:
                deadline = time.monotonic() + 15
                while "too many open files" not in server.log_text().lower():
                    assert time.monotonic() < deadline, server.log_text()
                    request = build_request(secret, "nobody", "12345678")
                    send_raw(request.RequestPacket(), port, timeout=0.5)
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        finally:
            assert server.stop() == 0, server.log_text()
    log = server.log_text()
    lines = [line for line in log.splitlines() if "too many open files" in line.lower()]
    assert lines and all("database unreachable" in line for line in lines), log
    assert "Unhandled error" not in log and "Traceback" not in log, log

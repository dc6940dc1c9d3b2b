"""``radiusd serve --workers N``: N processes share the RADIUS port with SO_REUSEPORT."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from pyrad import packet

from radius_client import build_request, send_raw
from support import REPO, ServerProcess, free_udp_port, write_server_config
from system.conftest import SECRET


def test_two_workers_share_the_port_and_stop_together(tmp_path):
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET, reject_delay="0s")
    server = ServerProcess(directory=tmp_path, port=port, secret=SECRET, config=config,
                           log_path=tmp_path / "radiusd.log")
    log = server.log_path.open("ab")
    server.process = subprocess.Popen(
        [sys.executable, "-m", "radiusd.cli", "--config", str(config), "serve", "--workers",
         "2"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    deadline = time.monotonic() + 30
    while "2 workers sharing RADIUS" not in server.log_text():
        assert server.process.poll() is None, server.log_text()
        assert time.monotonic() < deadline, server.log_text()
        time.sleep(0.1)
    try:
        replies = [send_raw(build_request(SECRET, f"nobody{i}", "12345678").RequestPacket(),
                            port) for i in range(40)]   # a new source port each time
        assert all(reply is not None and reply[0] == packet.AccessReject for reply in replies)
        nodes = {row["node"] for row in json.loads(server.cli_ok("audit", "--json"))
                 if row["action"] == "auth"}
        assert len(nodes) == 2, nodes   # both workers answered (host:pid differ)
    finally:
        assert server.stop(signal.SIGTERM) == 0, server.log_text()
    assert server.log_text().count("worker") >= 2 and "radiusd stopped" in server.log_text()

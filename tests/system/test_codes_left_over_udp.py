""""N codes left" over real UDP when codes of one set arrive together (issue 21, 11).

Four datagrams sent at once to one ``radiusd serve`` reach it in one group commit or in
batches back to back; each Accept must tell its own count (4, 3, 2, 1), and the ones with
2 or fewer left the warning.
"""

from __future__ import annotations

import re
import socket

from pyrad import packet

from radius_client import build_request, reply_verifies
from support import ServerProcess, free_udp_port, write_server_config
from system.conftest import SECRET

CODE_LINE = re.compile(r"^\s*(\d+)\. (\d+)$", re.M)
LEFT = re.compile(r"Emergency code accepted: (\d+) codes? left")


def test_four_codes_sent_at_once_are_told_4_3_2_1_codes_left(tmp_path):
    """Issue 21 (11): true counts, all distinct, the last ones warned."""
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET, extra="""
[perimeter]
networks = ["127.0.0.1/32"]
check = "nas"
""")
    server = ServerProcess(directory=tmp_path, port=port, secret=SECRET, config=config,
                           log_path=tmp_path / "radiusd.log")
    server.start()
    sockets = []
    try:
        server.cli_ok("user", "add", "left-alice", "--pin", "4821")
        output = server.cli_ok("emergency", "issue", "left-alice", "--count", "5")
        codes = [code for _, code in CODE_LINE.findall(output)]
        requests = [build_request(SECRET, "left-alice", "4821" + code) for code in codes[:4]]
        for request in requests:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sockets.append(sock)
        for sock, request in zip(sockets, requests):  # all four before any reply
            sock.sendto(request.RequestPacket(), ("127.0.0.1", port))
        replies = [sock.recv(4096) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
        server.stop()
    counts = []
    for request, raw in zip(requests, replies):
        assert reply_verifies(request, raw)
        reply = request.CreateReply(packet=raw)
        assert reply.code == packet.AccessAccept
        messages = reply["Reply-Message"]
        left = int(LEFT.match(messages[0]).group(1))
        counts.append(left)
        assert (len(messages) == 2) == (left <= 2), messages
    assert sorted(counts) == [1, 2, 3, 4], counts

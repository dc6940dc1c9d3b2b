"""Faults of the database under a real ``radiusd serve`` on SQLite (issue 21, 4): what
the NAS sees (logins and Status-Server answered or not) and what the log says."""

from __future__ import annotations

import errno
import hashlib
import os
import select
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field

import pytest
from pyrad import packet

from radius_client import build_request
from support import ServerProcess, free_udp_port, missing_part, write_server_config

SECRET = "database-faults-secret-5f2e81"  # noqa: S105 (test value)
# How long the test holds SQLite's writer, and sends while it does.
HOLD = 8.0
STEP = 0.25


@dataclass
class Probes:
    """Logins (an unknown user's: answered by a Reject only after its audit row commits)
    and Status-Server requests: every ``STEP`` seconds one Status-Server and
    ``logins_per_step`` logins, each with its own Identifier, and the times of the replies."""

    port: int
    logins_per_step: int = 1
    name: str = "nobody"
    logins: socket.socket = field(default_factory=lambda: _socket())
    status: socket.socket = field(default_factory=lambda: _socket())
    sent: dict = field(default_factory=dict)      # (kind, identifier, number) -> time sent
    answered: dict = field(default_factory=dict)  # (kind, identifier, number) -> answered at
    authenticators: dict = field(default_factory=dict)  # key -> its Request Authenticator
    count: int = 0

    def send(self) -> None:
        status = build_request(SECRET, None, code=packet.StatusServer)
        self._send("status", self.status, status)
        for _ in range(self.logins_per_step):
            self._send("login", self.logins,
                       build_request(SECRET, f"{self.name}-{self.count}", "123456"))

    def _send(self, kind: str, sock: socket.socket, request: packet.AuthPacket) -> None:
        identifier = self.count % 256
        self.count += 1
        request.id = identifier
        raw = request.RequestPacket()
        self.sent[(kind, identifier, self.count)] = time.monotonic()
        self.authenticators[(kind, identifier, self.count)] = raw[4:20]
        sock.sendto(raw, ("127.0.0.1", self.port))

    def receive(self, until: float) -> None:
        while (left := until - time.monotonic()) > 0:
            ready, _, _ = select.select([self.logins, self.status], [], [], left)
            for sock in ready:
                raw = sock.recv(4096)
                kind = "login" if sock is self.logins else "status"
                # The reply to exactly this request: its Response Authenticator (RFC 2865
                # §3) is made with that request's authenticator. An Identifier alone repeats
                # every 256 requests, and a late reply would be counted for a newer one.
                [key] = [key for key in self.sent if key[:2] == (kind, raw[1])
                         and key not in self.answered
                         and hashlib.md5(raw[:4] + self.authenticators[key] + raw[20:]
                                         + SECRET.encode()).digest() == raw[4:20]] or [None]
                if key is not None:
                    self.answered[key] = time.monotonic()

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.send()
            self.receive(min(end, time.monotonic() + STEP))

    def answered_between(self, kind: str, start: float, end: float) -> tuple[int, int]:
        """(answered, sent) of ``kind`` sent in [start, end)."""
        keys = [key for key, at in self.sent.items() if key[0] == kind and start <= at < end]
        return sum(key in self.answered for key in keys), len(keys)

    def close(self) -> None:
        self.logins.close()
        self.status.close()


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture()
def sqlite_server(tmp_path):
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret=SECRET, reject_delay="0s")
    server = ServerProcess(directory=tmp_path, port=port, secret=SECRET, config=config,
                           log_path=tmp_path / "radiusd.log")
    server.start()
    yield server
    server.stop()


def _lines(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.log_text().splitlines() if text in line]


def test_status_server_is_quiet_while_another_process_holds_the_sqlite_writer(sqlite_server):
    """Issue 21 (4): another process holds SQLite's writer (``BEGIN EXCLUSIVE``) for 8 s:
    reads still answer, but no login can commit, so no login is answered and, once the
    first login failed (SQLite's 2 s busy timeout), no Status-Server either; after the
    writer is released both are answered again within a few seconds. The log says
    ``database unreachable`` once and ``database reachable again`` once.

    Before the fix, the reads (the outage probe, the receipt pruning) marked the
    database up between failed logins and Status-Server answered all along."""
    server = sqlite_server
    probes = Probes(server.port)
    try:
        probes.run(1.0)                                   # healthy: everything answered
        assert probes.answered_between("login", 0, time.monotonic()) == (4, 4)
        assert probes.answered_between("status", 0, time.monotonic()) == (4, 4)
        other = sqlite3.connect(server.directory / "radiusd.db", isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        held = time.monotonic()
        detected = None
        while time.monotonic() < held + HOLD:
            probes.run(STEP)
            if detected is None and _lines(server, "database unreachable"):
                detected = time.monotonic()
        other.execute("COMMIT")
        other.close()
        released = time.monotonic()
        probes.run(6.0)
        end = time.monotonic()

        assert detected is not None, server.log_text()

        def recovered(kind: str) -> float:
            return min(at for key, at in probes.answered.items()
                       if key[0] == kind and probes.sent[key] >= released) - released
        logins_held = probes.answered_between("login", held, released)
        status_before = probes.answered_between("status", held, detected)
        status_after = probes.answered_between("status", detected, released)
        print(f"writer held {HOLD:g} s: logins sent meanwhile {logins_held[1]}, answered "
              f"{logins_held[0]} (all after the release); Status-Server answered "
              f"{status_before[0]} of "
              f"{status_before[1]} before the outage was detected "
              f"({detected - held:.1f} s), {status_after[0]} of {status_after[1]} after; "
              f"recovery: first login answered {recovered('login'):.1f} s, first "
              f"Status-Server {recovered('status'):.1f} s after the release")
        # A login is answered only once it committed: none while the writer is held.
        assert [at for (kind, *_), at in probes.answered.items()
                if kind == "login" and held + 0.1 < at < released] == []
        assert status_after == (0, status_after[1]) and status_after[1] >= 16
        assert detected - held < 3.5                     # busy timeout, or 3 s DB timeout
        # Back: everything sent from 4 s after the release on is answered.
        assert probes.answered_between("login", released + 4, end)[0] == \
            probes.answered_between("login", released + 4, end)[1] > 0
        assert probes.answered_between("status", released + 4, end)[0] == \
            probes.answered_between("status", released + 4, end)[1] > 0
        assert len(_lines(server, "database unreachable")) == 1, server.log_text()
        assert len(_lines(server, "database reachable again")) == 1, server.log_text()
    finally:
        probes.close()


@pytest.fixture()
def small_disk(tmp_path):
    """A 4 MB tmpfs the test mounts itself (needs root), unmounted afterwards."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs",
                             str(mount_point)], capture_output=True, text=True)
    if result.returncode != 0:
        missing_part("the full-disk test mounts a 4 MB tmpfs, which needs root "
                     f"(CAP_SYS_ADMIN): {result.stderr.strip() or 'mount failed'}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory) -> object:
    """Fill the file system of ``directory`` up to ENOSPC; returns the filler's path."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_status_server_is_quiet_while_a_full_disk_refuses_the_logins(tmp_path, small_disk):
    """Issue 21 (4): the database's file system is full: reads answer, commits fail. No
    Status-Server is answered once the first login failed, the outage is logged once
    (not once per flap), and after space is freed logins and Status-Server are answered
    again within seconds, and ``database reachable again`` is logged once."""
    port = free_udp_port()
    config = write_server_config(small_disk, port=port, secret=SECRET, reject_delay="0s")
    server = ServerProcess(directory=small_disk, port=port, secret=SECRET, config=config,
                           log_path=tmp_path / "radiusd.log")
    server.start()
    probes = Probes(server.port, logins_per_step=10, name="n" * 200)
    try:
        probes.run(1.0)
        assert probes.answered_between("status", 0, time.monotonic())[0] > 0
        filler = _fill(small_disk)
        full = time.monotonic()
        detected = None
        while time.monotonic() < full + 30:
            probes.run(STEP)
            if _lines(server, "database unreachable"):
                detected = time.monotonic()
                break
        assert detected is not None, f"no outage within 30 s of a full disk:\n" \
                                     f"{server.log_text()[-3000:]}"
        probes.run(8.0)                                   # the disk stays full
        freed = time.monotonic()
        os.unlink(filler)
        probes.run(6.0)
        end = time.monotonic()

        status_full = probes.answered_between("status", detected, freed)
        logins_full = probes.answered_between("login", detected + 3, freed)
        recovered = {kind: min((at for key, at in probes.answered.items()
                                if key[0] == kind and probes.sent[key] >= freed),
                               default=float("inf")) - freed
                     for kind in ("login", "status")}
        print(f"disk full: outage detected {detected - full:.1f} s after it filled; "
              f"while full, Status-Server answered {status_full[0]} of {status_full[1]}, "
              f"logins {logins_full[0]} of {logins_full[1]}; after freeing, first login "
              f"answered {recovered['login']:.1f} s, Status-Server {recovered['status']:.1f} s")
        assert status_full == (0, status_full[1]) and status_full[1] >= 16
        assert logins_full[0] == 0
        # Status-Server returns with the first probe (every 2 s) that commits a whole probe
        # interval after the last failed login: within two intervals of the space freed.
        assert recovered["login"] < 4 and recovered["status"] < 5
        assert probes.answered_between("status", freed + 5, end)[0] == \
            probes.answered_between("status", freed + 5, end)[1] > 0
        assert len(_lines(server, "database unreachable")) == 1, server.log_text()[-3000:]
        assert len(_lines(server, "database reachable again")) == 1
    finally:
        probes.close()
        server.stop()

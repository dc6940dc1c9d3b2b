"""Several ``radiusd serve`` processes sharing one PostgreSQL (issue 5): one-time effects
exactly once across servers, retransmissions answered from receipts, SIGKILL, a database
cut and restored, lockout and policy shared."""

from __future__ import annotations

import base64
import os
import selectors
import signal
import socket
import threading
import time
from datetime import UTC, datetime

import pytest
from pyrad import packet

from radius_client import build_request, send_raw
from radiusd.accounts import Accounts
from radiusd.emergency import issuing
from radiusd.keyfile import load_keys
from radiusd.otp import hotp, totp_step
from radiusd.store import Store
from support import ServerProcess, free_tcp_port, free_udp_port, pg_database, write_server_config

SECRET = "multi-server-secret-0123456789"
PIN = "4821"


class Cluster:
    """N servers on one database and one key file (copied to every server in production)."""

    def __init__(self, directory, url: str, count: int, *, db_url_for=None, key_path=None):
        self.url = url
        # One database, one key: radiusd refuses another key on it (issue 21, 7).
        self.key_path = key_path or directory / "shared.key"
        self.servers: list[ServerProcess] = []
        for index in range(count):
            folder = directory / f"server{index}"
            port = free_udp_port()
            config = write_server_config(
                folder, port=port, secret=SECRET, reject_delay="0s",
                database_url=(db_url_for(index) if db_url_for else url),
                key_path=str(self.key_path))
            self.servers.append(ServerProcess(directory=folder, port=port, secret=SECRET,
                                              config=config, log_path=folder / "radiusd.log"))

    def start(self) -> None:
        self.servers[0].start()           # creates the key file and the schema
        for server in self.servers[1:]:
            server.start()
        self.keys = load_keys(self.key_path)
        self.store = Store.open(self.url, pool_size=2)
        self.accounts = Accounts(self.store, self.keys, os.urandom, "test")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.store.close()


@pytest.fixture(scope="module")
def database():
    with pg_database("radiusd_multi") as url:
        yield url


@pytest.fixture(scope="module")
def key_path(tmp_path_factory):
    """The key file of the module's database, for every cluster on it."""
    return tmp_path_factory.mktemp("key") / "shared.key"


@pytest.fixture(scope="module")
def cluster(database, key_path, tmp_path_factory):
    group = Cluster(tmp_path_factory.mktemp("cluster"), database, 4, key_path=key_path)
    group.start()
    yield group
    group.stop()


def _now() -> datetime:
    return datetime.now(UTC)


def broadcast(servers, datagram: bytes, timeout: float = 5.0,
              wait_for: set[int] | None = None) -> list[int | None]:
    """Send the same passcode (each server its own socket) at once; reply codes in order.

    Waits until every server in `wait_for` (default: all) has answered or `timeout` passed;
    a late reply from another server is not read.
    """
    waited = set(range(len(servers))) if wait_for is None else wait_for
    selector = selectors.DefaultSelector()
    sockets = []
    for index, server in enumerate(servers):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
        sockets.append(sock)
    for sock, server in zip(sockets, servers):
        sock.sendto(datagram, ("127.0.0.1", server.port))
    codes: list[int | None] = [None] * len(servers)
    deadline = time.monotonic() + timeout
    while any(codes[index] is None for index in waited) and time.monotonic() < deadline:
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            codes[key.data] = key.fileobj.recv(4096)[0]
    selector.close()
    for sock in sockets:
        sock.close()
    return codes


def _issue(cluster, name: str, count: int = 100) -> list[str]:
    cluster.accounts.add_user(name, pin=PIN, password=None, actor="test", now=_now())
    prepared = issuing.prepare_set(cluster.store, cluster.keys, os.urandom,
                                   cluster.store.load_settings(), user_name=name, count=count,
                                   issued_by="test", reason="test", now=_now())
    issuing.commit_set(cluster.store, prepared, actor="test", destination="test",
                       node="test", now=_now())
    return [code.reveal().decode() for code in prepared.codes]


@pytest.mark.parametrize("servers", [2, 4])
def test_same_emergency_code_at_once_to_every_server_accepted_exactly_once(cluster, servers):
    codes = _issue(cluster, f"race-em-{servers}", 100) + _issue(cluster, f"race-em2-{servers}", 100)
    users = [f"race-em-{servers}"] * 100 + [f"race-em2-{servers}"] * 100
    for round_, (user, code) in enumerate(zip(users, codes)):
        request = build_request(SECRET, user, PIN + code)
        replies = broadcast(cluster.servers[:servers], request.RequestPacket())
        assert None not in replies, f"round {round_}: a server did not answer"
        assert replies.count(packet.AccessAccept) == 1, f"round {round_}: {replies}"


@pytest.mark.parametrize("servers", [2, 4])
def test_same_totp_passcode_at_once_to_every_server_accepted_exactly_once(cluster, servers):
    seeds = {}
    for index in range(200):
        name = f"race-totp-{servers}-{index}"
        seed = os.urandom(20)
        cluster.accounts.add_user(name, pin=PIN, password=None, actor="test", now=_now())
        cluster.accounts.add_token(name, secret=base64.b32encode(seed).decode(), actor="test",
                                   now=_now())
        seeds[name] = seed
    for round_, (name, seed) in enumerate(seeds.items()):
        code = hotp(seed, totp_step(_now()), 6)
        replies = broadcast(cluster.servers[:servers],
                            build_request(SECRET, name, PIN + code).RequestPacket())
        assert None not in replies and replies.count(packet.AccessAccept) == 1, \
            f"round {round_}: {replies}"


def test_retransmission_to_another_server_gets_the_accept_but_a_new_request_does_not(cluster):
    code = _issue(cluster, "retrans-em", 3)[0]
    request = build_request(SECRET, "retrans-em", PIN + code)
    datagram = request.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        first = send_raw(datagram, cluster.servers[0].port, sock=sock)
        again = send_raw(datagram, cluster.servers[1].port, sock=sock)
    assert first[0] == packet.AccessAccept and again[0] == packet.AccessAccept
    assert first[4:20] != again[4:20] or first == again  # each server signs its own reply
    assert b"2 codes left" in again                        # the same Reply-Message
    fresh = build_request(SECRET, "retrans-em", PIN + code)
    assert send_raw(fresh.RequestPacket(), cluster.servers[1].port)[0] == packet.AccessReject


def test_lockout_counts_failures_from_all_servers(cluster):
    seed = os.urandom(20)
    cluster.accounts.add_user("lock-all", pin=PIN, password=None, actor="test", now=_now())
    cluster.accounts.add_token("lock-all", kind="hotp", secret=base64.b32encode(seed).decode(),
                               actor="test", now=_now())
    for index in range(5):
        server = cluster.servers[index % len(cluster.servers)]
        reply = send_raw(build_request(SECRET, "lock-all", PIN + "000000").RequestPacket(),
                         server.port)
        assert reply[0] == packet.AccessReject
    assert cluster.store.get_user("lock-all").locked_at is not None
    good = build_request(SECRET, "lock-all", PIN + hotp(seed, 0, 6))
    assert send_raw(good.RequestPacket(), cluster.servers[3].port)[0] == packet.AccessReject


def test_policy_changed_on_one_server_applies_on_all_within_5_seconds(cluster):
    seed = os.urandom(20)
    cluster.accounts.add_user("policy", pin=PIN, password=None, actor="test", now=_now())
    cluster.accounts.add_token("policy", kind="hotp", secret=base64.b32encode(seed).decode(),
                               actor="test", now=_now())
    # "keep" first, so token logins leave the set active until "deny" arrives; every
    # server re-reads the policy at least every 5 s.
    cluster.servers[1].cli_ok("settings", "set", "emergency.on_token_use", "keep")
    time.sleep(5.5)
    prepared = issuing.prepare_set(cluster.store, cluster.keys, os.urandom,
                                   cluster.store.load_settings(), user_name="policy",
                                   issued_by="test", reason="t", now=_now())
    issuing.commit_set(cluster.store, prepared, actor="test", destination="t", node="t",
                       now=_now())
    counter = 0

    def token_login(server) -> int:
        nonlocal counter
        code = hotp(seed, counter, 6)
        counter += 1
        return send_raw(build_request(SECRET, "policy", PIN + code).RequestPacket(),
                        server.port)[0]

    cluster.servers[0].cli_ok("settings", "set", "emergency.on_token_use", "deny")
    changed_at = time.monotonic()
    try:
        while token_login(cluster.servers[3]) == packet.AccessAccept:
            assert time.monotonic() - changed_at < 6.0, "policy not applied within 5 s"
            time.sleep(0.25)
    finally:
        cluster.servers[0].cli_ok("settings", "set", "emergency.on_token_use", "revoke")


def test_sigkill_mid_load_never_accepts_a_code_twice(database, key_path, tmp_path):
    pair = Cluster(tmp_path, database, 2, key_path=key_path)
    pair.start()
    try:
        codes = _issue(pair, "killed", 100)
        accepts: dict[str, int] = {code: 0 for code in codes}
        answered_after_kill = []
        for index, code in enumerate(codes):
            if index == 40:
                pair.servers[0].process.send_signal(signal.SIGKILL)
                pair.servers[0].process.wait()
            # After the kill only the survivor can answer: wait for it alone (the datagram
            # to the dead server's port is still sent).
            replies = broadcast(pair.servers, build_request(SECRET, "killed",
                                                            PIN + code).RequestPacket(),
                                wait_for={1} if index >= 40 else None)
            accepts[code] += replies.count(packet.AccessAccept)
            if index >= 40:
                answered_after_kill.append(replies[1])
        assert max(accepts.values()) == 1
        assert all(reply == packet.AccessAccept for reply in answered_after_kill)
    finally:
        pair.stop()


class TcpProxy:
    """A TCP proxy to PostgreSQL that the test can cut (refuse + reset) and restore."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_tcp_port()
        self.connections: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()
        self.restore()

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone would leave the
            # kernel socket listening until that call returns.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.close()
                except OSError:
                    pass


def _status(server, timeout: float = 1.5) -> int | None:
    reply = send_raw(build_request(SECRET, None, code=packet.StatusServer).RequestPacket(),
                     server.port, timeout=timeout)
    return None if reply is None else reply[0]


def test_database_cut_means_silence_then_service_resumes_without_restart(database, key_path,
                                                                         tmp_path):
    from sqlalchemy import make_url
    target = make_url(database)
    proxy = TcpProxy((target.host or "127.0.0.1", target.port or 5432))
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    single = Cluster(tmp_path, database, 1, db_url_for=lambda _: proxied, key_path=key_path)
    single.start()
    server = single.servers[0]
    try:
        codes = _issue(single, "cut", 5)
        assert _status(server) == packet.AccessAccept
        proxy.cut()
        request = build_request(SECRET, "cut", PIN + codes[0])
        assert send_raw(request.RequestPacket(), server.port, timeout=5.0) is None
        assert _status(server) is None
        assert "database unreachable" in server.log_text()
        proxy.restore()
        deadline = time.monotonic() + 15
        while _status(server, timeout=0.5) != packet.AccessAccept:
            assert time.monotonic() < deadline, "no recovery within 15 s"
        fresh = build_request(SECRET, "cut", PIN + codes[1])
        assert send_raw(fresh.RequestPacket(), server.port)[0] == packet.AccessAccept
        assert server.log_text().count("database unreachable") == 1
        assert "database reachable again" in server.log_text()
    finally:
        single.stop()
        proxy.cut()

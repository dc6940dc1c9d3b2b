"""Hostile strings in one burst to a real ``radiusd serve`` (issue 21, 1), on SQLite and on
a throw-away PostgreSQL: User-Names with NUL, other C0 characters, DEL, C1, invalid UTF-8
and 253 octets, and valid logins whose recorded attributes (Calling-Station-Id,
NAS-Identifier) carry the same, all among many valid logins. Every valid login is answered
correctly, every bad name gets a plain Access-Reject, the database is never called
unreachable, and the audit trail holds the bad names escaped."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import selectors
import socket
import struct
import time
from datetime import UTC, datetime

import pytest

from radiusd import codec
from radiusd.accounts import Accounts
from radiusd.keyfile import load_keys
from radiusd.model import Secret
from radiusd.otp import hotp, totp_step
from radiusd.store import Store
from support import ServerProcess, free_udp_port, pg_database, write_server_config

SECRET = "hostile-strings-secret-0123456789"
VALID_LOGINS = 240
WRONG_CODES = 20
ACCEPT, REJECT = 2, 3

# User-Names that break the rule (wire_text), as octets.
BAD_NAMES: list[bytes] = (
    [b"user\x00", b"\x00", b"us\x00er", b"\x00" * 20, b"a" * 252 + b"\x00"]
    + [b"ctl" + bytes((octet,)) + b"x" for octet in range(1, 0x20)]
    + [b"del\x7f", "c1\u0085".encode(), "csi\u009b31m".encode()]
    + [b"\xff\xfe", b"m\xfcller", b"trunc\xc3", b"over\xc0\xaf", b"surr\xed\xa0\x80",
       b"\x80" * 253, b"\xf8\x88\x80\x80\x80"]
)
# Names that pass the rule but belong to no user: a plain Reject too.
UNKNOWN_NAMES: list[bytes] = [b"a" * 253, "é".encode() * 126, b"nobody"]
# Values that only get recorded: a valid login carrying them is still accepted.
RECORDED: list[bytes] = [b"\x00", b"10.0.0.1\x00", b"\xff\xfe", b"nas\x1b[2J", b"\x7f" * 253]


def _attribute(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value) + 2)) + value


def access_request(identifier: int, user: bytes, password: bytes, *,
                   calling: bytes | None = None, nas_identifier: bytes | None = None) -> bytes:
    """An Access-Request with raw User-Name octets, signed as a NAS signs it."""
    authenticator = os.urandom(16)
    secret = Secret(SECRET)
    attributes = (_attribute(1, user)
                  + _attribute(2, codec.encrypt_password(password, secret, authenticator)))
    if calling is not None:
        attributes += _attribute(31, calling)
    if nas_identifier is not None:
        attributes += _attribute(32, nas_identifier)
    attributes += _attribute(80, bytes(16))
    header = struct.pack("!BBH", 1, identifier, 20 + len(attributes))
    mac = codec.message_authenticator(header + authenticator + attributes, secret)
    attributes = attributes[:-16] + mac
    return header + authenticator + attributes


def burst(port: int, datagrams: list[bytes], timeout: float = 20.0) -> tuple[list[int | None],
                                                                              float]:
    """Send every datagram at once (256 per socket, one Identifier each); the reply code
    of each (None: no answer within ``timeout``) and the seconds until the last reply."""
    selector = selectors.DefaultSelector()
    sockets = []
    for start in range(0, len(datagrams), 256):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, start)
        sockets.append(sock)
    codes: list[int | None] = [None] * len(datagrams)
    started = time.monotonic()
    for index, datagram in enumerate(datagrams):
        sockets[index // 256].sendto(datagram, ("127.0.0.1", port))
    last = started
    deadline = started + timeout
    while None in codes and time.monotonic() < deadline:
        for key, _ in selector.select(max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(BlockingIOError):
                while True:
                    reply = key.fileobj.recv(4096)
                    codes[key.data + reply[1]] = reply[0]
                    last = time.monotonic()
    selector.close()
    for sock in sockets:
        sock.close()
    return codes, last - started


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'radiusd.db'}"
        return
    with pg_database("radiusd_hostile") as url:
        yield url


def test_hostile_user_names_in_a_burst_cost_no_valid_login_its_answer(database, tmp_path):
    """Issue 21 (1): one burst of valid logins, wrong codes, and User-Names with NUL, C0,
    DEL, C1, invalid UTF-8 and 253 octets: each valid login Accepted, everything else
    Rejected, no "database unreachable", bad names audited escaped as bad_user_name."""
    port = free_udp_port()
    key_path = tmp_path / "radiusd.key"
    config = write_server_config(tmp_path / "server", port=port, secret=SECRET,
                                 reject_delay="0s", database_url=database,
                                 key_path=str(key_path))
    server = ServerProcess(directory=tmp_path / "server", port=port, secret=SECRET,
                           config=config, log_path=tmp_path / "radiusd.log")
    server.start()
    store = Store.open(database, pool_size=2)
    try:
        accounts = Accounts(store, load_keys(key_path), os.urandom, "test")
        now = datetime.now(UTC)
        seeds = {}
        for index in range(VALID_LOGINS + WRONG_CODES):
            name = f"burst-{index}"
            seed = hashlib.sha256(name.encode()).digest()[:20]
            accounts.add_user(name, pin=None, password=None, actor="test", now=now)
            accounts.add_token(name, secret=base64.b32encode(seed).decode(), actor="test",
                               now=now)
            seeds[name] = seed

        step = totp_step(datetime.now(UTC), 30)
        datagrams: list[bytes] = []
        expected: list[int] = []
        for index, (name, seed) in enumerate(seeds.items()):
            code = hotp(seed, step, 6).encode()
            if index >= VALID_LOGINS:
                code = b"%06d" % ((int(code) + 500000) % 1000000)  # never in the window
            recorded = RECORDED[index % len(RECORDED)] if index % 3 == 0 else None
            datagrams.append(access_request(len(datagrams) % 256, name.encode(), code,
                                            calling=recorded, nas_identifier=recorded))
            expected.append(ACCEPT if index < VALID_LOGINS else REJECT)
        hostile = BAD_NAMES + UNKNOWN_NAMES
        # Spread the hostile requests through the burst, so they share batches with
        # valid logins (a group commit takes what arrived while the last one committed).
        for offset, name in enumerate(hostile):
            position = (offset * len(datagrams)) // len(hostile)
            datagrams.insert(position, access_request(0, name, b"123456"))
            expected.insert(position, REJECT)
        datagrams = [datagram[:1] + bytes((index % 256,)) + datagram[2:]
                     for index, datagram in enumerate(datagrams)]
        # The Identifier changed: sign again.
        datagrams = [_resign(datagram) for datagram in datagrams]

        codes, seconds = burst(port, datagrams)

        unanswered = [index for index, code in enumerate(codes) if code is None]
        wrong = [(index, codes[index], expected[index]) for index in range(len(codes))
                 if codes[index] is not None and codes[index] != expected[index]]
        figures = (f"{len(datagrams)} sent, {len(datagrams) - len(unanswered)} answered, "
                   f"{codes.count(ACCEPT)} accepted, {codes.count(REJECT)} rejected, "
                   f"{len(BAD_NAMES)} bad names, last reply after {seconds:.2f} s")
        print(f"\n[{database.split(':')[0]}] {figures}")
        assert unanswered == [] and wrong == [], f"{figures}; unanswered {unanswered[:10]}, " \
                                                 f"wrong {wrong[:10]}"
        log = server.log_text()
        # The log still works after the hostile names (so its silence below means something).
        assert f"Access-Accept for burst-{VALID_LOGINS - 1} from" in log
        assert "database unreachable" not in log
        assert "reachable again" not in log

        rows = store.list_audit(action="auth", limit=5000)
        refused = [row.event for row in rows if row.event.reason == "bad_user_name"]
        assert len(refused) == len(BAD_NAMES)
        names = {event.user_name for event in refused}
        assert "user\\x00" in names and "m\\xfcller" in names and "del\\x7f" in names
        for event in refused:
            event.user_name.encode("utf-8")
            assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in event.user_name)
        stations = {row.event.detail.get("calling_station_id") for row in rows}
        assert "10.0.0.1\\x00" in stations and "\\xff\\xfe" in stations
    finally:
        store.close()
        server.stop()


def _resign(datagram: bytes) -> bytes:
    """Recompute the Message-Authenticator (the last attribute) after a header change."""
    body = datagram[:-16] + bytes(16)
    return datagram[:-16] + codec.message_authenticator(body, Secret(SECRET))

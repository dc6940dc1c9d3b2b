"""Test-side RADIUS clients: pyrad (the reference codec) over a real UDP socket, and
FreeRADIUS's ``radclient`` as a process."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from pyrad import packet
from pyrad.client import Client, Timeout
from pyrad.dictionary import Dictionary

from support import REPO, require_radclient

DICTIONARY = Dictionary(str(REPO / "dictionaries" / "dictionary"))


def build_request(secret: str, user: str, password: str | bytes | None = None, *,
                  with_ma: bool = True, proxy_states: tuple[bytes, ...] = (),
                  code: int = packet.AccessRequest, **attributes) -> packet.AuthPacket:
    """A pyrad Access-Request (or Status-Server) with User-Password encrypted by pyrad."""
    pkt = packet.AuthPacket(code=code, secret=secret.encode(), dict=DICTIONARY)
    if user is not None:
        pkt["User-Name"] = user
    if password is not None:
        pkt["User-Password"] = pkt.PwCrypt(password)
    for name, value in attributes.items():
        pkt[name.replace("_", "-")] = value
    for state in proxy_states:
        pkt.AddAttribute("Proxy-State", state)
    if with_ma:
        pkt.add_message_authenticator()
    return pkt


def send_raw(data: bytes, port: int, *, source: str = "127.0.0.1", timeout: float = 2.0,
             sock: socket.socket | None = None) -> bytes | None:
    """Send one datagram; return the first reply or None if nothing came within timeout."""
    own = sock is None
    if own:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((source, 0))
    try:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except socket.timeout:
            return None
    finally:
        if own:
            sock.close()


def pyrad_exchange(port: int, secret: str, user: str, password: str | bytes, *,
                   timeout: float = 3.0, **attributes):
    """Send with pyrad's client (enforce_ma: unsigned replies are discarded); the reply."""
    client = Client(server="127.0.0.1", authport=port, secret=secret.encode(),
                    dict=DICTIONARY, retries=1, timeout=timeout, enforce_ma=True)
    request = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=user)
    request["User-Password"] = request.PwCrypt(password)
    for name, value in attributes.items():
        request[name.replace("_", "-")] = value
    request.add_message_authenticator()
    return client.SendPacket(request)


def reply_verifies(request: packet.AuthPacket, raw_reply: bytes) -> bool:
    """The reply's Response Authenticator and Message-Authenticator both verify."""
    reply = request.CreateReply(packet=raw_reply)
    return bool(request.VerifyReply(reply, raw_reply, enforce_ma=True))


def radclient(port: int, secret: str, attributes: str, *, command: str = "auth",
              args: tuple[str, ...] = ("-x",), timeout: float = 20) -> subprocess.CompletedProcess:
    """``echo ATTRIBUTES | radclient ARGS 127.0.0.1:PORT COMMAND SECRET``."""
    binary = require_radclient()
    return subprocess.run([binary, *args, f"127.0.0.1:{port}", command, secret],
                          input=attributes, capture_output=True, text=True, timeout=timeout)


__all__ = ["Timeout", "build_request", "send_raw", "pyrad_exchange", "radclient",
           "reply_verifies", "DICTIONARY", "Path"]

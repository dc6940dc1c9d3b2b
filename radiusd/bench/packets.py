"""RADIUS packets for the load generator: Access-Request (PAP) and Status-Server with a
Message-Authenticator first, and the check of every reply.

Written with ``hashlib``/``hmac`` only, independently of ``radiusd.codec``: the bench must
catch a server that signs wrongly, not agree with it by sharing its code.

Requests carry the Message-Authenticator as their first attribute, so changing the
Identifier of a prebuilt packet (``with_identifier``) only re-computes that one HMAC.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT, STATUS_SERVER = 1, 2, 3, 12
USER_NAME, USER_PASSWORD, NAS_IP_ADDRESS, MESSAGE_AUTHENTICATOR = 1, 2, 4, 80
_MA_HEADER = bytes([MESSAGE_AUTHENTICATOR, 18])
_ZERO16 = bytes(16)
_LOOPBACK = bytes([127, 0, 0, 1])

# Reply verdicts of ``check_reply``.
OK, BAD_LENGTH, BAD_RESPONSE_AUTH, BAD_MA, MISSING_MA = "ok", "length", "response_auth", \
    "message_authenticator", "no_message_authenticator"


def encrypt_password(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    """User-Password hiding (RFC 2865 §5.2): c(i) = p(i) xor MD5(S + c(i-1)), c(0) = RA."""
    padded = password + bytes(-len(password) % 16 or (16 if not password else 0))
    out, previous = bytearray(), authenticator
    for start in range(0, len(padded), 16):
        key = hashlib.md5(secret + previous).digest()
        block = (int.from_bytes(padded[start:start + 16], "big")
                 ^ int.from_bytes(key, "big")).to_bytes(16, "big")
        out += block
        previous = block
    return bytes(out)


def _attribute(kind: int, value: bytes) -> bytes:
    return bytes([kind, len(value) + 2]) + value


def _signed(code: int, identifier: int, authenticator: bytes, attributes: bytes,
            secret: bytes) -> bytes:
    """Header + MA (zeroed) + attributes, then the HMAC-MD5 filled in (RFC 3579 §3.2)."""
    body = _MA_HEADER + _ZERO16 + attributes
    packet = struct.pack("!BBH", code, identifier, 20 + len(body)) + authenticator + body
    mac = hmac.digest(secret, packet, "md5")
    return packet[:22] + mac + packet[38:]


def access_request(secret: bytes, identifier: int, authenticator: bytes, user: str,
                   password: bytes) -> bytes:
    """An Access-Request: MA, User-Name, User-Password (PAP), NAS-IP-Address 127.0.0.1."""
    attributes = (_attribute(USER_NAME, user.encode("utf-8"))
                  + _attribute(USER_PASSWORD, encrypt_password(password, secret,
                                                               authenticator))
                  + _attribute(NAS_IP_ADDRESS, _LOOPBACK))
    return _signed(ACCESS_REQUEST, identifier, authenticator, attributes, secret)


def status_server(secret: bytes, identifier: int, authenticator: bytes) -> bytes:
    """A Status-Server (RFC 5997): the Message-Authenticator is mandatory, nothing else."""
    return _signed(STATUS_SERVER, identifier, authenticator, b"", secret)


def with_identifier(packet: bytes, identifier: int, secret: bytes) -> bytes:
    """The same request under another Identifier: only the MA (first attribute) changes."""
    zeroed = packet[:1] + bytes([identifier]) + packet[2:22] + _ZERO16 + packet[38:]
    mac = hmac.digest(secret, zeroed, "md5")
    return zeroed[:22] + mac + zeroed[38:]


def check_reply(reply: bytes, request_authenticator: bytes, secret: bytes,
                require_ma: bool) -> str:
    """Verify a reply's Response Authenticator and Message-Authenticator.

    Args:
        reply: the datagram. request_authenticator: of the request it answers.
        secret: the shared secret. require_ma: a reply without MA is bad (radiusd always
            signs; FreeRADIUS 3.2.1 never does, so its MA is checked only when present).
    Returns:
        ``OK`` or the name of what failed.
    """
    if len(reply) < 20 or int.from_bytes(reply[2:4], "big") != len(reply):
        return BAD_LENGTH
    expected = hashlib.md5(reply[:4] + request_authenticator + reply[20:] + secret).digest()
    if not hmac.compare_digest(expected, reply[4:20]):
        return BAD_RESPONSE_AUTH
    offset = 20 if reply[20:22] == _MA_HEADER else _find_ma(reply)
    if offset < 0:
        return MISSING_MA if require_ma else OK
    zeroed = (reply[:4] + request_authenticator + reply[20:offset + 2] + _ZERO16
              + reply[offset + 18:])
    if not hmac.compare_digest(hmac.digest(secret, zeroed, "md5"),
                               reply[offset + 2:offset + 18]):
        return BAD_MA
    return OK


def _find_ma(reply: bytes) -> int:
    """Offset of the Message-Authenticator attribute, -1 if absent or malformed."""
    offset = 20
    while offset + 2 <= len(reply):
        kind, length = reply[offset], reply[offset + 1]
        if length < 2:
            return -1
        if kind == MESSAGE_AUTHENTICATOR:
            return offset if length == 18 else -1
        offset += length
    return -1

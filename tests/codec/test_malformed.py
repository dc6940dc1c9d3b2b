"""Packets that must be dropped (or, for padding and opted-out clients, accepted).

The corpus is ``vectors/errors.txt``: FreeRADIUS ``src/tests/unit/protocols/radius/
errors.txt`` plus the further ``rad_packet_ok()`` and RFC 2865 §4.1/§5.2 checks. The cases
below need a valid Message-Authenticator or sizes too large for a data file.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

import netaddr
import pytest
from test_vectors import VECTORS, Vector, check_vector, read_vectors

from radiusd import codec
from radiusd.errors import (
    BadMessageAuthenticator,
    MalformedPacket,
    MissingMessageAuthenticator,
    PacketDropped,
)
from radiusd.model import Client, PacketCode, Secret

ERROR_VECTORS = read_vectors(VECTORS / "errors.txt")


@pytest.mark.parametrize("vector", ERROR_VECTORS, ids=[v.case_id for v in ERROR_VECTORS])
def test_error_corpus(vector: Vector) -> None:
    check_vector(vector)


SECRET = Secret("testing123")
AUTHENTICATOR = bytes(range(16))
USER_PASSWORD = b"\x02\x12" + bytes(range(0x10, 0x20))

# RFC 2865 §7.1 (secret xyzzy5461): a valid Access-Request without Message-Authenticator.
RFC2865_7_1 = bytes.fromhex("010000380f403f94739780 57bd83d5cb98f4227a01066e656d6f02120dbe708d93"
                            "d413ce3196e43f782a0aee0406c0a80110050600000003")


def client(*, require_ma: bool, secret: Secret = SECRET) -> Client:
    return Client("nas", netaddr.IPNetwork("192.0.2.0/24"), secret,
                  require_message_authenticator=require_ma)


def build(code: int, attributes: bytes, *, sign: bool = False, identifier: int = 7,
          secret: Secret = SECRET) -> bytes:
    """A request with ``attributes``; ``sign`` prepends a valid Message-Authenticator."""
    if sign:
        attributes = b"\x50\x12" + bytes(16) + attributes
    data = struct.pack("!BBH", code, identifier, 20 + len(attributes)) + AUTHENTICATOR + attributes
    if sign:
        mac = hmac.digest(secret.reveal(), data, "md5")  # computed with the value zeroed
        data = data[:22] + mac + data[38:]
    return data


# --- padding (RFC 2865 §3) ------------------------------------------------------------------


@pytest.mark.parametrize("padding", [b"\x00" * 4, b"\xff\xfe\xfd\xfc", b"\x01" * 100])
def test_octets_after_length_are_padding_and_trimmed(padding: bytes) -> None:
    nas = client(require_ma=False, secret=Secret("xyzzy5461"))
    request = codec.decode(RFC2865_7_1 + padding, nas)
    assert request == codec.decode(RFC2865_7_1, nas)
    assert request.password.reveal() == b"arctangent"
    assert len(request.attributes) == 4


def test_padding_is_excluded_from_message_authenticator() -> None:
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD, sign=True)
    request = codec.decode(data + b"\x00\x00\x00\x00", client(require_ma=True))
    assert request.has_message_authenticator


def test_length_field_above_4096_is_malformed() -> None:
    data = struct.pack("!BBH", 1, 0, 4097) + AUTHENTICATOR + bytes(4077)
    with pytest.raises(MalformedPacket, match="above the maximum"):
        codec.decode(data, client(require_ma=False))


def test_packet_of_4096_octets_is_accepted() -> None:
    # MA (18) + User-Password (18) + 20 Class attributes of 202 octets = 4076 + header 20.
    filler = (bytes((25, 202)) + bytes(200)) * 20
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD + filler, sign=True)
    assert len(data) == 4096
    assert codec.decode(data, client(require_ma=True)).code is PacketCode.ACCESS_REQUEST


def test_more_than_200_attributes_is_malformed() -> None:
    attributes = USER_PASSWORD + b"\x19\x02" * 200  # 201 attributes
    with pytest.raises(MalformedPacket, match="more than 200 attributes"):
        codec.decode(build(PacketCode.ACCESS_REQUEST, attributes), client(require_ma=False))


def test_exactly_200_attributes_is_accepted() -> None:
    attributes = USER_PASSWORD + b"\x19\x02" * 199
    request = codec.decode(build(PacketCode.ACCESS_REQUEST, attributes), client(require_ma=False))
    assert len(request.attributes) == 200


# --- Message-Authenticator -------------------------------------------------------------------


def test_duplicate_message_authenticator_is_malformed_even_when_the_first_verifies() -> None:
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD + b"\x50\x12" + bytes(16), sign=True)
    with pytest.raises(MalformedPacket, match="more than one Message-Authenticator"):
        codec.decode(data, client(require_ma=False))


@pytest.mark.parametrize("require_ma", [True, False])
def test_signed_request_is_accepted(require_ma: bool) -> None:
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD + b"\x21\x04ps", sign=True)
    request = codec.decode(data, client(require_ma=require_ma))
    assert request.has_message_authenticator
    assert request.proxy_states == (b"ps",)


@pytest.mark.parametrize("require_ma", [True, False])
def test_bad_message_authenticator_is_dropped_even_for_opted_out_clients(
        require_ma: bool) -> None:
    data = bytearray(build(PacketCode.ACCESS_REQUEST, USER_PASSWORD, sign=True))
    data[-1] ^= 0x80  # a bit of the User-Password, covered by the HMAC
    with pytest.raises(BadMessageAuthenticator):
        codec.decode(bytes(data), client(require_ma=require_ma))


def test_message_authenticator_signed_with_another_secret_is_dropped() -> None:
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD, sign=True, secret=Secret("other"))
    with pytest.raises(BadMessageAuthenticator):
        codec.decode(data, client(require_ma=False))


def test_message_authenticator_anywhere_in_the_packet_verifies() -> None:
    # RFC 3579 §3.2 places no constraint on the position; verify over the raw bytes.
    attributes = USER_PASSWORD + b"\x50\x12" + bytes(16) + b"\x01\x05bob"
    data = struct.pack("!BBH", 1, 9, 20 + len(attributes)) + AUTHENTICATOR + attributes
    mac = hmac.digest(SECRET.reveal(), data, "md5")
    data = data[:40] + mac + data[56:]
    request = codec.decode(data, client(require_ma=True))
    assert request.user_name == "bob" and request.has_message_authenticator


def test_opted_out_client_with_proxy_state_and_no_message_authenticator_is_dropped() -> None:
    data = build(PacketCode.ACCESS_REQUEST, USER_PASSWORD + b"\x21\x04ps")
    with pytest.raises(MissingMessageAuthenticator, match="Proxy-State"):
        codec.decode(data, client(require_ma=False))


def test_opted_out_client_without_proxy_state_or_message_authenticator_is_accepted() -> None:
    request = codec.decode(build(PacketCode.ACCESS_REQUEST, USER_PASSWORD),
                           client(require_ma=False))
    assert not request.has_message_authenticator


def test_status_server_without_message_authenticator_is_dropped_for_opted_out_clients() -> None:
    with pytest.raises(MissingMessageAuthenticator, match="Status-Server"):
        codec.decode(build(PacketCode.STATUS_SERVER, b""), client(require_ma=False))


def test_policy_is_checked_after_structure() -> None:
    # A structurally broken packet is Malformed, whatever the policy would say.
    data = build(PacketCode.STATUS_SERVER, b"\x00\x02")
    with pytest.raises(MalformedPacket):
        codec.decode(data, client(require_ma=True))


# --- what a drop says -------------------------------------------------------------------------


def test_drop_reasons_never_contain_the_secret_or_the_password() -> None:
    secret = Secret("VerySecretSharedKey")
    password = b"Hunter2Password!"
    cases = []
    good_attributes = b"\x01\x06nemo" + b"\x02\x12" + _hide(password, secret)
    cases.append(build(1, good_attributes + b"\x21\x03x", secret=secret))  # Proxy-State, no MA
    wrong = bytearray(build(1, good_attributes, sign=True, secret=secret))
    wrong[30] ^= 1
    cases.append(bytes(wrong))
    cases.append(build(1, good_attributes + b"\x01\x03\xff", secret=secret)[:-1])  # truncated
    # NAS-IP-Address of 3 octets (a User-Name that is not UTF-8 is no drop: issue 21)
    cases.append(build(1, good_attributes + b"\x04\x05\x01\x02\x03", sign=True, secret=secret))
    for data in cases:
        with pytest.raises(PacketDropped) as caught:
            codec.decode(data, client(require_ma=False, secret=secret))
        message = str(caught.value)
        assert "VerySecret" not in message and "Hunter2" not in message
        assert password.hex() not in message


def test_unexpected_exception_becomes_malformed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise RuntimeError("Hunter2 leaked?")
    monkeypatch.setattr(codec, "decrypt_password", boom)
    with pytest.raises(MalformedPacket) as caught:
        codec.decode(build(1, USER_PASSWORD), client(require_ma=False))
    assert "RuntimeError" in str(caught.value) and "Hunter2" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def _hide(password: bytes, secret: Secret) -> bytes:
    padded = password + bytes(-len(password) % 16)
    key = hashlib.md5(secret.reveal() + AUTHENTICATOR).digest()
    return bytes(p ^ k for p, k in zip(padded, key))  # one block (RFC 2865 §5.2)

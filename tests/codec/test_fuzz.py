"""Fuzzing the decoder: whatever the bytes, ``decode`` returns a ``RadiusRequest`` or raises
``PacketDropped`` — nothing else (STYLE §10). Seeds: arbitrary bytes, mutations of valid
signed and unsigned packets (bit flips, truncations, appended octets, overwritten octets),
and well-framed packets of random attributes, signed correctly, so the later checks run too.
"""

from __future__ import annotations

import hmac
import struct

import netaddr
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from radiusd import codec
from radiusd.errors import PacketDropped
from radiusd.model import Client, PacketCode, RadiusRequest, Secret

SECRET = Secret("fuzz-secret")
STRICT = Client("strict", netaddr.IPNetwork("192.0.2.0/24"), SECRET)
LENIENT = Client("lenient", netaddr.IPNetwork("192.0.2.0/24"), SECRET,
                 require_message_authenticator=False)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# RFC 2865 §7.1 (unsigned; secret xyzzy5461, so for SECRET only its structure is right) and a
# signed request with every field the decoder reads, Proxy-State included.
RFC2865_7_1 = bytes.fromhex("010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93"
                            "d413ce3196e43f782a0aee0406c0a80110050600000003")


def _sign(code: int, identifier: int, authenticator: bytes, attributes: bytes) -> bytes:
    attributes = b"\x50\x12" + bytes(16) + attributes
    data = struct.pack("!BBH", code, identifier, 20 + len(attributes)) + authenticator + attributes
    mac = hmac.digest(SECRET.reveal(), data, "md5")
    return data[:22] + mac + data[38:]


def _attribute(attribute_type: int, value: bytes) -> bytes:
    return bytes((attribute_type, len(value) + 2)) + value


SIGNED = _sign(1, 42, bytes(range(16)), b"".join([
    _attribute(1, b"nemo"),
    _attribute(2, codec.encrypt_password(b"4821937201", SECRET, bytes(range(16)))),
    _attribute(4, bytes((192, 168, 1, 16))),
    _attribute(8, bytes((10, 0, 0, 1))),
    _attribute(31, b"10.0.0.1:1234"),
    _attribute(32, b"nas"),
    _attribute(24, b"abcd"),
    _attribute(33, b"p1"),
    _attribute(33, b"p2"),
]))
SEEDS = [RFC2865_7_1, SIGNED, _sign(12, 7, bytes(16), b"")]


def test_seeds_are_valid() -> None:
    request = codec.decode(SIGNED, STRICT)
    assert request.password.reveal() == b"4821937201"
    assert (request.user_name, request.nas_ip_address, request.framed_ip_address,
            request.calling_station_id, request.nas_identifier, request.state,
            request.proxy_states) == ("nemo", "192.168.1.16", "10.0.0.1", "10.0.0.1:1234",
                                      "nas", b"abcd", (b"p1", b"p2"))
    assert codec.decode(SEEDS[2], STRICT).code is PacketCode.STATUS_SERVER
    assert codec.decode(RFC2865_7_1, LENIENT).user_name == "nemo"


def _outcome(data: bytes, client: Client) -> RadiusRequest | None:
    """Decode; any exception but PacketDropped fails the test. Checks what a success means."""
    try:
        request = codec.decode(data, client)
    except PacketDropped as exc:
        assert str(exc)  # the shell logs a reason
        event(f"dropped: {type(exc).__name__}")
        return None
    event("decoded")
    assert isinstance(request, RadiusRequest)
    assert request.code in (PacketCode.ACCESS_REQUEST, PacketCode.STATUS_SERVER)
    # The attributes re-encode to exactly the bytes inside the Length field.
    length = int.from_bytes(data[2:4], "big")
    encoded = b"".join(bytes((t, len(v) + 2)) + v for t, v in request.attributes)
    assert data[20:length] == encoded
    if client.require_message_authenticator or request.code == PacketCode.STATUS_SERVER:
        assert request.has_message_authenticator
    # -X output and a reply can be made for anything decode accepts.
    assert isinstance(codec.describe(request), str)
    reply = codec.encode_reply(request, SECRET, PacketCode.ACCESS_REJECT, ["no"])
    assert codec.describe_reply(reply).startswith("Access-Reject")
    return request


@FUZZ
@given(data=st.binary(max_size=300), strict=st.booleans())
def test_arbitrary_bytes(data: bytes, strict: bool) -> None:
    _outcome(data, STRICT if strict else LENIENT)


@FUZZ
@given(header=st.sampled_from([b"\x01", b"\x0c", b"\x04", b"\x00"]), identifier=st.binary(
    min_size=1, max_size=1), length=st.integers(0, 4200), rest=st.binary(max_size=300),
    strict=st.booleans())
def test_arbitrary_bytes_behind_a_plausible_header(header: bytes, identifier: bytes, length: int,
                                                   rest: bytes, strict: bool) -> None:
    _outcome(header + identifier + struct.pack("!H", length) + rest,
             STRICT if strict else LENIENT)


@FUZZ
@given(seed=st.sampled_from(SEEDS), flips=st.lists(st.integers(0, 8 * 200 - 1), min_size=1,
                                                   max_size=4), strict=st.booleans())
@example(seed=SIGNED, flips=[763, 165, 525], strict=False)  # MA and Proxy-State types hit
def test_bit_flips_of_valid_packets(seed: bytes, flips: list[int], strict: bool) -> None:
    data = bytearray(seed)
    for bit in flips:
        if bit // 8 < len(data):
            data[bit // 8] ^= 1 << (bit % 8)
    result = _outcome(bytes(data), STRICT if strict else LENIENT)
    if seed is SIGNED and bytes(data) != seed:
        # Every octet of a signed packet (padding aside) is covered by the HMAC: a client
        # that requires it drops every change. A lenient one may take a packet whose flips
        # destroyed the Message-Authenticator attribute itself (and the Proxy-States that
        # would have needed it): an unsigned request, as RFC 2865 allows; never one that
        # still carries it.
        assert result is None or (not strict and not result.has_message_authenticator)


@FUZZ
@given(seed=st.sampled_from(SEEDS), cut=st.integers(0, 200), tail=st.binary(max_size=64),
       strict=st.booleans())
def test_truncations_and_appended_octets(seed: bytes, cut: int, tail: bytes, strict: bool) -> None:
    client = STRICT if strict else LENIENT
    _outcome(seed[:cut], client)
    padded = _outcome(seed + tail, client)
    if seed is SIGNED:
        assert padded is not None  # RFC 2865 §3: octets after Length are padding


@FUZZ
@given(seed=st.sampled_from(SEEDS), position=st.integers(0, 199), octets=st.binary(min_size=1,
                                                                                   max_size=8))
def test_overwritten_octets(seed: bytes, position: int, octets: bytes) -> None:
    data = seed[:position] + octets + seed[position + len(octets):]
    _outcome(data, LENIENT)


_random_attribute = st.tuples(st.integers(0, 255), st.binary(max_size=40))


@FUZZ
@given(code=st.sampled_from([1, 12]), identifier=st.integers(0, 255),
       authenticator=st.binary(min_size=16, max_size=16),
       attributes=st.lists(_random_attribute, max_size=12), sign=st.booleans(),
       strict=st.booleans())
def test_well_framed_packets_of_random_attributes(code: int, identifier: int,
                                                  authenticator: bytes,
                                                  attributes: list[tuple[int, bytes]],
                                                  sign: bool, strict: bool) -> None:
    body = b"".join(bytes((t, len(v) + 2)) + v for t, v in attributes)
    if sign:
        data = _sign(code, identifier, authenticator, body)
    else:
        data = struct.pack("!BBH", code, identifier, 20 + len(body)) + authenticator + body
    _outcome(data, STRICT if strict else LENIENT)

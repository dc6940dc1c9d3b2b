"""Replies: Message-Authenticator first and valid, Proxy-State echoed, Reply-Message split,
Response Authenticator correct, and byte-for-byte equal to pyrad 2.6.0's CreateReply/ReplyPacket.
"""

from __future__ import annotations

import hashlib
import hmac

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from radius_client import DICTIONARY, build_request, reply_verifies

from radiusd import codec
from radiusd.model import Client, PacketCode, RadiusRequest, Secret

SECRET = "reply-secret-0123456789abcdef"
REPLY_CODES = [PacketCode.ACCESS_ACCEPT, PacketCode.ACCESS_REJECT, PacketCode.ACCESS_CHALLENGE]


def _client() -> Client:
    return Client("nas", netaddr.IPNetwork("127.0.0.1/32"), Secret(SECRET))


def _exchange(*, code: int = pyrad_packet.AccessRequest, proxy_states: tuple[bytes, ...] = ()
              ) -> tuple[pyrad_packet.AuthPacket, RadiusRequest]:
    """A pyrad request (client side, signed) and our decoding of its wire bytes."""
    if code == pyrad_packet.StatusServer:
        pkt = build_request(SECRET, None, None, code=code, proxy_states=proxy_states)
    else:
        pkt = build_request(SECRET, "nemo", "arctangent", proxy_states=proxy_states)
    return pkt, codec.decode(pkt.RequestPacket(), _client())


def _attributes(reply: bytes) -> list[tuple[int, bytes]]:
    found, position = [], 20
    while position < len(reply):
        length = reply[position + 1]
        found.append((reply[position], reply[position + 2:position + length]))
        position += length
    assert position == len(reply)
    return found


def _pyrad_reply(wire: bytes, code: int, messages: list[str]) -> bytes:
    """What pyrad 2.6.0 sends for the same request, code and Reply-Message chunks."""
    request = pyrad_packet.AuthPacket(packet=wire, secret=SECRET.encode(), dict=DICTIONARY)
    chunks = [chunk.decode("utf-8") for message in messages
              for chunk in codec._split_utf8(message.encode("utf-8"), 253)]
    reply = request.CreateReply(Reply_Message=chunks) if chunks else request.CreateReply()
    reply.code = code
    return reply.ReplyPacket()


# --- Message-Authenticator and Response Authenticator ---------------------------------------


@pytest.mark.parametrize("code", REPLY_CODES, ids=lambda c: c.name)
@pytest.mark.parametrize("request_code", [pyrad_packet.AccessRequest, pyrad_packet.StatusServer],
                         ids=["access-request", "status-server"])
def test_reply_verifies_with_pyrad_client_enforcing_message_authenticator(
        code: PacketCode, request_code: int) -> None:
    pkt, request = _exchange(code=request_code, proxy_states=(b"one", b"two"))
    reply = codec.encode_reply(request, Secret(SECRET), code, ["Hello"])
    assert reply_verifies(pkt, reply)
    assert pyrad_packet.AuthPacket(packet=reply, dict=DICTIONARY).code == code


@pytest.mark.parametrize("code", REPLY_CODES, ids=lambda c: c.name)
def test_message_authenticator_is_the_first_attribute_and_verifies(code: PacketCode) -> None:
    _, request = _exchange(proxy_states=(b"ps",))
    reply = codec.encode_reply(request, Secret(SECRET), code, ["a", "b"])
    assert reply[20:22] == b"\x50\x12"
    # RFC 3579 §3.2: HMAC-MD5 over the reply with the Request Authenticator, MA zeroed.
    zeroed = reply[:4] + request.authenticator + reply[20:22] + bytes(16) + reply[38:]
    assert hmac.compare_digest(hmac.digest(SECRET.encode(), zeroed, "md5"), reply[22:38])
    assert codec.message_authenticator(reply, Secret(SECRET), request.authenticator) == \
        reply[22:38]


@pytest.mark.parametrize("code", REPLY_CODES, ids=lambda c: c.name)
def test_response_authenticator_verifies(code: PacketCode) -> None:
    _, request = _exchange()
    reply = codec.encode_reply(request, Secret(SECRET), code)
    # RFC 2865 §3: MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
    expected = hashlib.md5(reply[:4] + request.authenticator + reply[20:] + SECRET.encode())
    assert reply[4:20] == expected.digest()
    assert codec.response_authenticator(reply, request.authenticator, Secret(SECRET)) == \
        reply[4:20]


def test_reply_keeps_the_request_identifier() -> None:
    pkt, request = _exchange()
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_ACCEPT)
    assert reply[0] == PacketCode.ACCESS_ACCEPT and reply[1] == pkt.id
    assert len(reply) == 38 and int.from_bytes(reply[2:4], "big") == 38


def test_reply_signed_with_another_secret_fails_pyrad_verification() -> None:
    pkt, request = _exchange()
    reply = codec.encode_reply(request, Secret("not-the-secret"), PacketCode.ACCESS_ACCEPT)
    assert not reply_verifies(pkt, reply)


# --- Proxy-State (RFC 2865 §5.33) ---------------------------------------------------------


def test_proxy_states_are_echoed_unmodified_and_in_order_after_the_messages() -> None:
    states = (b"\x00first", b"second", b"\xff" * 253, b"x")
    pkt, request = _exchange(proxy_states=states)
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_REJECT, ["no"])
    attributes = _attributes(reply)
    assert [t for t, _ in attributes] == [80, 18, 33, 33, 33, 33]
    assert tuple(v for t, v in attributes if t == 33) == states
    assert reply_verifies(pkt, reply)


# --- Reply-Message (RFC 2865 §5.18) -------------------------------------------------------


@pytest.mark.parametrize("message, sizes", [
    ("x" * 253, [253]),
    ("x" * 254, [253, 1]),
    ("x" * 600, [253, 253, 94]),
    ("é" * 200, [252, 148]),          # 2-octet characters: never split inside one
    ("€" * 100, [252, 48]),           # 3-octet
    ("a" + "😀" * 70, [253, 28]),     # 1 + 63 x 4 = 253, then 7 x 4
], ids=["253", "254", "600", "2-octet", "3-octet", "4-octet"])
def test_long_reply_message_is_split_at_253_octets_on_character_boundaries(
        message: str, sizes: list[int]) -> None:
    pkt, request = _exchange()
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_ACCEPT, [message])
    chunks = [v for t, v in _attributes(reply) if t == 18]
    assert [len(c) for c in chunks] == sizes
    assert "".join(c.decode("utf-8") for c in chunks) == message  # each chunk is valid UTF-8
    assert reply_verifies(pkt, reply)


def test_messages_keep_their_order_and_empty_ones_are_skipped() -> None:
    _, request = _exchange()
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_ACCEPT,
                               ["first", "", "second"])
    assert [v for t, v in _attributes(reply) if t == 18] == [b"first", b"second"]


def test_challenge_carries_state_before_proxy_state() -> None:
    pkt, request = _exchange(proxy_states=(b"ps",))
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_CHALLENGE,
                               ["Enter the code"], state=b"\x01" * 16)
    assert [t for t, _ in _attributes(reply)] == [80, 18, 24, 33]
    assert reply_verifies(pkt, reply)


@pytest.mark.parametrize("kwargs", [
    {"code": PacketCode.ACCESS_REQUEST},
    {"code": PacketCode.ACCOUNTING_RESPONSE},
    {"code": PacketCode.ACCESS_CHALLENGE, "state": b""},
    {"code": PacketCode.ACCESS_CHALLENGE, "state": b"s" * 254},
    {"code": PacketCode.ACCESS_ACCEPT, "reply_messages": ["x" * 4100]},
    {"code": PacketCode.ACCESS_ACCEPT, "reply_messages": ["\ud800"]},
], ids=["request-code", "accounting-code", "empty-state", "long-state", "too-long", "surrogate"])
def test_encode_reply_refuses_what_cannot_be_sent(kwargs: dict) -> None:
    _, request = _exchange()
    with pytest.raises(ValueError):
        codec.encode_reply(request, Secret(SECRET), **kwargs)


# --- pyrad 2.6.0 as the reference encoder -------------------------------------------------


@pytest.mark.parametrize("code", REPLY_CODES, ids=lambda c: c.name)
@pytest.mark.parametrize("request_code", [pyrad_packet.AccessRequest, pyrad_packet.StatusServer],
                         ids=["access-request", "status-server"])
@pytest.mark.parametrize("messages, proxy_states", [
    ([], ()),
    (["Welcome"], ()),
    ([], (b"a", b"b")),
    (["9 codes left, valid until 2026-01-01T00:00:00+00:00", "x" * 300], (b"\x00\x01", b"z")),
], ids=["bare", "message", "proxy-state", "both"])
def test_reply_is_byte_for_byte_pyrads(code: PacketCode, request_code: int, messages: list[str],
                                       proxy_states: tuple[bytes, ...]) -> None:
    pkt, request = _exchange(code=request_code, proxy_states=proxy_states)
    ours = codec.encode_reply(request, Secret(SECRET), code, messages)
    assert ours == _pyrad_reply(pkt.RequestPacket(), code, messages)


@settings(max_examples=200, deadline=None)
@given(code=st.sampled_from(REPLY_CODES),
       messages=st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
                         max_size=3),
       proxy_states=st.lists(st.binary(min_size=1, max_size=253), max_size=4),
       status_server=st.booleans())
def test_reply_matches_pyrad_for_any_input(code: PacketCode, messages: list[str],
                                           proxy_states: list[bytes],
                                           status_server: bool) -> None:
    request_code = pyrad_packet.StatusServer if status_server else pyrad_packet.AccessRequest
    pkt, request = _exchange(code=request_code, proxy_states=tuple(proxy_states))
    ours = codec.encode_reply(request, Secret(SECRET), code, messages)
    assert ours == _pyrad_reply(pkt.RequestPacket(), code, messages)
    assert reply_verifies(pkt, ours)

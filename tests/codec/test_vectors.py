"""Wire vectors: RFC 2865 §7, RFC 5997 §6 and a FreeRADIUS capture, plus pyrad as reference.

The decode vectors are data (``vectors/rfc.txt``, FreeRADIUS ``decode-proto``/``match``
style, read by ``read_vectors``, which ``test_malformed.py`` shares); the authenticator
vectors need two packets each and live in the tables below.
"""

from __future__ import annotations

import ast
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

import netaddr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrad import packet as pyrad_packet
from radius_client import DICTIONARY, build_request

from radiusd import codec, errors
from radiusd.model import Client, PacketCode, RadiusRequest, Secret

VECTORS = Path(__file__).resolve().parent / "vectors"


# --- the vector file format -------------------------------------------------------------


@dataclass(frozen=True)
class Vector:
    """One ``decode-proto``/``match`` pair with the client in force at that point."""

    case_id: str
    secret: str
    require_message_authenticator: bool
    data: bytes
    expected: str

    def client(self) -> Client:
        return Client(name="vector", network=netaddr.IPNetwork("192.0.2.0/24"),
                      secret=Secret(self.secret),
                      require_message_authenticator=self.require_message_authenticator)


def read_vectors(path: Path) -> list[Vector]:
    """Parse a vector file (format described at the top of ``vectors/rfc.txt``)."""
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if raw[:1].isspace() and raw.strip() and lines and not lines[-1][1].startswith("#"):
            lines[-1] = (lines[-1][0], lines[-1][1] + " " + raw.strip())  # continuation
        else:
            lines.append((number, raw.strip()))
    vectors: list[Vector] = []
    secret, require_ma, comment, pending = "", True, "", None
    for number, line in lines:
        if not line:
            continue
        if line.startswith("#"):
            comment = line.lstrip("# ").strip() or comment
            continue
        command, _, argument = line.partition(" ")
        if command == "secret":
            secret = argument
        elif command == "require-message-authenticator":
            require_ma = {"yes": True, "no": False}[argument]
        elif command == "decode-proto":
            pending = (number, bytes.fromhex(argument))
        elif command == "match":
            assert pending is not None, f"{path.name}:{number}: match without decode-proto"
            case_id = f"{path.stem}:{pending[0]} {comment}".replace("§", "s")  # ASCII ids
            vectors.append(Vector(case_id, secret, require_ma,
                                  pending[1], argument))
            pending = None
        else:
            raise AssertionError(f"{path.name}:{number}: unknown command {command!r}")
    return vectors


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def _expected_value(text: str) -> object:
    if text.startswith("0x"):
        return bytes.fromhex(text[2:])
    if text.isupper() and text.isidentifier():
        return PacketCode[text]
    return ast.literal_eval(text)


def check_vector(vector: Vector) -> None:
    """Decode the vector and assert its ``match`` line."""
    name, _, reason = vector.expected.partition(" ")
    error = getattr(errors, name, None)
    if isinstance(error, type) and issubclass(error, errors.PacketDropped):
        with pytest.raises(error) as caught:
            codec.decode(vector.data, vector.client())
        assert type(caught.value) is error
        if reason:
            assert ast.literal_eval(reason) in str(caught.value)
        return
    request = codec.decode(vector.data, vector.client())
    fields = _FIELD.findall(vector.expected)
    assert fields, f"nothing to match in {vector.expected!r}"
    for field_name, text in fields:
        expected = _expected_value(text)
        if field_name == "attribute_count":
            assert len(request.attributes) == expected
        elif field_name == "password" and expected is not None:
            assert request.password is not None
            expected_bytes = expected.encode("utf-8") if isinstance(expected, str) else expected
            assert request.password.reveal() == expected_bytes
        else:
            assert getattr(request, field_name) == expected, field_name


RFC_VECTORS = read_vectors(VECTORS / "rfc.txt")


@pytest.mark.parametrize("vector", RFC_VECTORS, ids=[v.case_id for v in RFC_VECTORS])
def test_rfc_decode_vector(vector: Vector) -> None:
    check_vector(vector)


# --- authenticators -----------------------------------------------------------------------

RFC2865_SECRET = Secret("xyzzy5461")

# (name, request hex, reply hex): each reply's Response Authenticator must verify.
REPLY_VECTORS = [
    ("rfc2865-7.1-access-accept",
     "010000380f403f94739780 57bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee"
     "0406c0a801100506 00000003",
     "02000026 86fe220e7624ba2a1005f6bf9b55e0b2 0606000000010f06000000000e06c0a80103"),
    ("rfc2865-7.3-access-challenge",
     "01020039f3a47a1f6a6d76710b947ab93041a039 01076d6f707379021233657573778289b570885e15084825c5"
     "0406c0a80110 050600000007",
     "0b02004e36f3c8764ae8c71157403c0c71ff9c45 1230 4368616c6c656e67652033323736393433302e2020"
     "456e74657220726573706f6e73652061742070726f6d70742e 180a 3332373639343330"),
    ("rfc2865-7.3-access-reject",
     "01030043b122556d428a13d0d6253807c457ecf0 01076d6f7073790212692c1f205fc081b919b95195f561a581"
     "0406c0a80110 050600000007 180a3332373639343330",
     "03030014a42f4fca45916c4e09c8340f9e746aa0"),
    ("rfc5997-6.1-access-accept-to-status-server",
     "0cda00268a54f4686fb394c52866e302185d0623 50125a665e2e1e8411f3e243822097c84fa3",
     "02da0014ef0d552a4bf2d693ec2b6fe8b5411d66"),
    ("rfc5997-6.3-access-accept-to-status-server",
     "0c47002cbf58de56ae408ad3b70c8513f9b03fbe 0406c0000210 5012852d6fec61e7ed74b8e32dac2f2a5fb2",
     "02470034 46f43e62fd0354424cbbebfd6d214e06 1220 52414449555320536572766572207570"
     "203220646179732c2031383a3430"),
    # RFC 5997 §6.2 labels this reply Accounting-Response but prints code 02: it verifies
    # only with code 05 (a typo in the RFC).
    ("rfc5997-6.2-accounting-response-code-corrected",
     "0cb30026925f6b66dd5fed571fcb1db7ad388260 5012e8d6eabda910875cd91fdade26367858",
     "05b300140f6f92145f107e2f504e860a4860669c"),
]


@pytest.mark.parametrize("request_hex, reply_hex", [v[1:] for v in REPLY_VECTORS],
                         ids=[v[0] for v in REPLY_VECTORS])
def test_rfc_response_authenticator_verifies(request_hex: str, reply_hex: str) -> None:
    request = bytes.fromhex(request_hex)
    reply = bytes.fromhex(reply_hex)
    computed = codec.response_authenticator(reply, request[4:20], RFC2865_SECRET)
    assert hmac.compare_digest(computed, reply[4:20])


def test_rfc5997_6_2_reply_as_printed_does_not_verify() -> None:
    name, request_hex, reply_hex = REPLY_VECTORS[-1]
    printed = bytes.fromhex("02" + reply_hex[2:])
    request = bytes.fromhex(request_hex)
    assert codec.response_authenticator(printed, request[4:20], RFC2865_SECRET) != printed[4:20]


def test_rfc5997_6_1_reply_is_reproduced_from_header_and_request_authenticator() -> None:
    # Our encode_reply always adds a Message-Authenticator, so the attribute-less RFC reply
    # is rebuilt from the raw helper.
    request_authenticator = bytes.fromhex("8a54f4686fb394c52866e302185d0623")
    header = bytes.fromhex("02da0014")
    authenticator = codec.response_authenticator(header + bytes(16), request_authenticator,
                                                 RFC2865_SECRET)
    assert (header + authenticator).hex() == "02da0014ef0d552a4bf2d693ec2b6fe8b5411d66"


STATUS_SERVER_6_1 = bytes.fromhex("0cda00268a54f4686fb394c52866e302185d062350125a665e2e1e8411f3"
                                  "e243822097c84fa3")
STATUS_SERVER_6_3 = bytes.fromhex("0c47002cbf58de56ae408ad3b70c8513f9b03fbe0406c00002105012852d"
                                  "6fec61e7ed74b8e32dac2f2a5fb2")


@pytest.mark.parametrize("data", [STATUS_SERVER_6_1, STATUS_SERVER_6_3],
                         ids=["rfc5997-6.1", "rfc5997-6.3"])
def test_message_authenticator_helper_reproduces_the_rfc_value(data: bytes) -> None:
    offset = data.index(b"\x50\x12")
    assert codec.message_authenticator(data, RFC2865_SECRET) == data[offset + 2:offset + 18]


@pytest.mark.parametrize("bit", [0, 7, 64, 127])
@pytest.mark.parametrize("opted_out", [False, True])
def test_rfc5997_6_1_one_bit_flip_in_message_authenticator_is_dropped(bit: int,
                                                                     opted_out: bool) -> None:
    mutated = bytearray(STATUS_SERVER_6_1)
    mutated[22 + bit // 8] ^= 1 << (bit % 8)
    client = Client("nas", netaddr.IPNetwork("192.0.2.1/32"), RFC2865_SECRET,
                    require_message_authenticator=not opted_out)
    with pytest.raises(errors.BadMessageAuthenticator):
        codec.decode(bytes(mutated), client)


@pytest.mark.parametrize("offset", [1, 4, 19])  # Identifier, first and last authenticator octet
def test_rfc5997_6_1_flip_in_signed_header_is_dropped(offset: int) -> None:
    mutated = bytearray(STATUS_SERVER_6_1)
    mutated[offset] ^= 0x01
    client = Client("nas", netaddr.IPNetwork("192.0.2.1/32"), RFC2865_SECRET)
    with pytest.raises(errors.BadMessageAuthenticator):
        codec.decode(bytes(mutated), client)


# --- User-Password ------------------------------------------------------------------------

# (name, secret, request authenticator, ciphertext, plaintext)
PASSWORD_VECTORS = [
    ("rfc2865-7.1", "xyzzy5461", "0f403f9473978057bd83d5cb98f4227a",
     "0dbe708d93d413ce3196e43f782a0aee", b"arctangent"),
    ("rfc2865-7.3-first", "xyzzy5461", "f3a47a1f6a6d76710b947ab93041a039",
     "33657573778289b570885e15084825c5", b"challenge"),
    ("rfc2865-7.3-second", "xyzzy5461", "b122556d428a13d0d6253807c457ecf0",
     "692c1f205fc081b919b95195f561a581", b"99101462"),
    ("freeradius-packet_rfc3162", "testing123", "2afdb090418ac6365298fbbb15e0fd2e",
     "45e8d5daead87e4015e0fcc0ec0f08a1", b"hello"),
]


@pytest.mark.parametrize("secret, authenticator, ciphertext, plaintext",
                         [v[1:] for v in PASSWORD_VECTORS], ids=[v[0] for v in PASSWORD_VECTORS])
def test_password_vector_decrypts(secret: str, authenticator: str, ciphertext: str,
                                  plaintext: bytes) -> None:
    decrypted = codec.decrypt_password(bytes.fromhex(ciphertext), Secret(secret),
                                       bytes.fromhex(authenticator))
    assert decrypted == plaintext


@pytest.mark.parametrize("secret, authenticator, ciphertext, plaintext",
                         [v[1:] for v in PASSWORD_VECTORS], ids=[v[0] for v in PASSWORD_VECTORS])
def test_password_vector_encrypts_back(secret: str, authenticator: str, ciphertext: str,
                                       plaintext: bytes) -> None:
    hidden = codec.encrypt_password(plaintext, Secret(secret), bytes.fromhex(authenticator))
    assert hidden.hex() == ciphertext


def test_password_keeps_octets_that_are_not_utf8() -> None:
    # pyrad's PwDecrypt drops these (errors="ignore"); the core must see them to reject.
    secret, authenticator = Secret("s3cret"), bytes(range(16))
    password = b"\xffpin\x80\x00code"
    hidden = codec.encrypt_password(password, secret, authenticator)
    assert codec.decrypt_password(hidden, secret, authenticator) == password


@pytest.mark.parametrize("size", [0, 15, 17, 144])
def test_decrypt_password_refuses_bad_lengths(size: int) -> None:
    with pytest.raises(ValueError):
        codec.decrypt_password(bytes(size), Secret("s"), bytes(16))


# --- pyrad 2.6.0 as the reference decoder -------------------------------------------------

SECRET = "reference-secret-0123456789"
_ascii_passwords = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e),
                           min_size=1, max_size=128)
_names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60).filter(
    lambda s: 0 < len(s.encode("utf-8")) <= 253)
_proxy_states = st.lists(st.binary(min_size=1, max_size=60), max_size=4)


def _client(require_ma: bool = True) -> Client:
    return Client("nas", netaddr.IPNetwork("127.0.0.1/32"), Secret(SECRET),
                  require_message_authenticator=require_ma)


def _pyrad_decode(wire: bytes) -> pyrad_packet.AuthPacket:
    return pyrad_packet.AuthPacket(packet=wire, secret=SECRET.encode(), dict=DICTIONARY)


@settings(max_examples=150, deadline=None)
@given(user=_names, password=_ascii_passwords, proxy_states=_proxy_states,
       nas_ip=st.ip_addresses(v=4), framed_ip=st.ip_addresses(v=4),
       calling=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e), min_size=1,
                       max_size=40),
       state=st.none() | st.binary(min_size=1, max_size=40))
def test_decode_matches_pyrad(user, password, proxy_states, nas_ip, framed_ip, calling,
                              state) -> None:
    extra = {"NAS_IP_Address": str(nas_ip), "Framed_IP_Address": str(framed_ip),
             "Calling_Station_Id": calling, "NAS_Identifier": "nas-1"}
    if state is not None:
        extra["State"] = state
    pkt = build_request(SECRET, user, password, proxy_states=tuple(proxy_states), **extra)
    wire = pkt.RequestPacket()

    ours = codec.decode(wire, _client())
    reference = _pyrad_decode(wire)

    assert reference.verify_message_authenticator()
    assert ours.has_message_authenticator
    assert ours.code == reference.code and ours.identifier == reference.id
    assert ours.authenticator == reference.authenticator
    assert ours.user_name == reference["User-Name"][0]
    assert ours.password.reveal().decode("ascii") == reference.PwDecrypt(reference[2][0])
    assert ours.password.reveal() == password.encode("ascii")
    assert ours.nas_ip_address == reference["NAS-IP-Address"][0]
    assert ours.framed_ip_address == reference["Framed-IP-Address"][0]
    assert ours.calling_station_id == reference["Calling-Station-Id"][0]
    assert ours.nas_identifier == reference["NAS-Identifier"][0]
    assert ours.proxy_states == tuple(reference.get(33, []))
    assert ours.state == (reference[24][0] if 24 in reference else None)
    # Raw values per type are pyrad's, and our wire order re-encodes the exact bytes.
    for attribute_type in {t for t, _ in ours.attributes}:
        assert [v for t, v in ours.attributes if t == attribute_type] == reference[attribute_type]
    assert b"".join(bytes((t, len(v) + 2)) + v for t, v in ours.attributes) == wire[20:]


@settings(max_examples=150, deadline=None)
@given(password=_ascii_passwords, secret=st.binary(min_size=1, max_size=64),
       authenticator=st.binary(min_size=16, max_size=16))
def test_pap_decrypt_matches_pyrad_pwdecrypt(password: str, secret: bytes,
                                             authenticator: bytes) -> None:
    pkt = pyrad_packet.AuthPacket(secret=secret, authenticator=authenticator, dict=DICTIONARY)
    hidden = pkt.PwCrypt(password)
    assert codec.encrypt_password(password.encode(), Secret(secret), authenticator) == hidden
    assert codec.decrypt_password(hidden, Secret(secret), authenticator) == \
        pkt.PwDecrypt(hidden).encode("ascii")


def test_status_server_built_by_pyrad_decodes() -> None:
    pkt = build_request(SECRET, None, None, code=pyrad_packet.StatusServer)
    request = codec.decode(pkt.RequestPacket(), _client())
    assert request.code is PacketCode.STATUS_SERVER
    assert request.has_message_authenticator and request.password is None


def test_chap_request_built_by_pyrad_decodes_with_chap_flag() -> None:
    pkt = build_request(SECRET, "flopsy", None, CHAP_Password=b"\x16" + bytes(range(16)))
    request = codec.decode(pkt.RequestPacket(), _client())
    assert request.has_chap_password and request.password is None
    assert request.user_name == "flopsy"


# --- describe -----------------------------------------------------------------------------


def test_describe_names_attributes_and_hides_the_password() -> None:
    pkt = build_request(SECRET, "nemo", "arctangent", proxy_states=(b"\x01\x02",),
                        NAS_IP_Address="192.168.1.16", NAS_Port=3, Service_Type="Login-User")
    request = codec.decode(pkt.RequestPacket(), _client())
    text = codec.describe(request)
    lines = text.splitlines()
    assert lines[0] == "\tMessage-Authenticator = <valid>"
    assert '\tUser-Name = "nemo"' in lines
    assert "\tUser-Password = <hidden>" in lines
    assert "\tNAS-IP-Address = 192.168.1.16" in lines
    assert "\tNAS-Port = 3" in lines
    assert "\tService-Type = Login-User" in lines
    assert "\tProxy-State = 0x0102" in lines
    assert len(lines) == len(request.attributes)
    assert "arctangent" not in text and SECRET not in text
    assert pkt[2][0].hex() not in text  # not even the ciphertext


def test_describe_hides_chap_password_and_escapes_control_characters() -> None:
    pkt = build_request(SECRET, 'evil"\nUser-Name = "admin', None,
                        CHAP_Password=b"\x16" + bytes(range(16)))
    text = codec.describe(codec.decode(pkt.RequestPacket(), _client()))
    assert "\tCHAP-Password = <hidden>" in text.splitlines()
    assert '\tUser-Name = "evil\\"\\nUser-Name = \\"admin"' in text.splitlines()
    assert len(text.splitlines()) == 3


def test_describe_shows_unknown_attributes_in_hex() -> None:
    request = RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                            authenticator=bytes(16), attributes=((200, b"\xab\xcd"),))
    assert codec.describe(request) == "\tAttr-200 = 0xabcd"


def test_describe_reply_shows_code_and_attributes() -> None:
    pkt = build_request(SECRET, "nemo", "x", proxy_states=(b"ps",))
    request = codec.decode(pkt.RequestPacket(), _client())
    reply = codec.encode_reply(request, Secret(SECRET), PacketCode.ACCESS_REJECT, ["Denied"])
    lines = codec.describe_reply(reply).splitlines()
    assert lines[0] == f"Access-Reject Id {request.identifier} Length {len(reply)}"
    assert lines[1] == f"\tMessage-Authenticator = 0x{reply[22:38].hex()}"
    assert lines[2:] == ['\tReply-Message = "Denied"', "\tProxy-State = 0x7073"]
    assert SECRET not in "\n".join(lines)


def test_describe_reply_survives_garbage() -> None:
    assert "undecodable" in codec.describe_reply(bytes.fromhex("02000017") + bytes(16) + b"\x12")
    assert "shorter" in codec.describe_reply(b"\x02")


def test_load_dictionary_is_cached_and_names_our_attributes() -> None:
    dictionary = codec.load_dictionary()
    assert dictionary is codec.load_dictionary(codec.DICTIONARY_PATH)
    assert dictionary.attributes["Message-Authenticator"].code == 80
    assert codec.DICTIONARY_PATH.is_file()

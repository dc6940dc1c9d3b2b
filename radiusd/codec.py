"""The RADIUS wire format: bytes ⇄ ``RadiusRequest`` / reply bytes, and the authenticators.

Owns: the structural checks of FreeRADIUS ``rad_packet_ok()`` (RFC 2865 §3, §5), the
Message-Authenticator policy (RFC 3579 §3.2, RFC 5997, CVE-2024-3596), the strict PAP
User-Password decryption (RFC 2865 §5.2), the encoding and signing of Access-Accept/Reject/
Challenge replies (Message-Authenticator first, Proxy-State echoed), and the ``-X`` packet
descriptions. The only module that imports pyrad, which serves as the dictionary (names and
types for ``describe``) and as the reference the tests compare this fast path against.

Decoding and encoding are hand-rolled with struct/hmac/hashlib: this is the hot path
(notes/performance-baseline.md §4.5: pyrad's decode + PwDecrypt 12.8-16.1 µs, a hand-rolled
one 1.6 µs).

Errors: ``decode`` raises only ``PacketDropped`` subclasses, whose messages never hold secret
material or the password. The codec does not log; the shell does.

Must not import: twisted, sqlalchemy. Must not know: sockets, clients by address, the store.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from pyrad.dictionary import Dictionary

from radiusd.errors import (
    BadMessageAuthenticator,
    MalformedPacket,
    MissingMessageAuthenticator,
    PacketDropped,
    UnexpectedPacketCode,
)
from radiusd.escaping import quote
from radiusd.keyedhash import HmacKey
from radiusd.model import Client, PacketCode, RadiusRequest, Secret

__all__ = [
    "DICTIONARY_PATH",
    "AttributeType",
    "decode",
    "decrypt_password",
    "describe",
    "describe_reply",
    "encode_reply",
    "encrypt_password",
    "load_dictionary",
    "message_authenticator",
    "response_authenticator",
]

DICTIONARY_PATH: Path = Path(__file__).resolve().parent.parent / "dictionaries" / "dictionary"

HEADER_LENGTH = 20  # Code, Identifier, Length, Authenticator (RFC 2865 §3)
MAX_PACKET_LENGTH = 4096  # RFC 2865 §3
MAX_ATTRIBUTES = 200  # FreeRADIUS radiusd.conf max_attributes: more is a DoS attempt
MAX_VALUE_LENGTH = 253  # RFC 2865 §5: one octet Length, including its 2-octet header
MESSAGE_AUTHENTICATOR_LENGTH = 18  # RFC 2869 §5.14: type, length, 16-octet HMAC-MD5

_HEADER = struct.Struct("!BBH")
_ZERO_MAC = bytes(16)

_ACCESS_REQUEST = PacketCode.ACCESS_REQUEST.value
_STATUS_SERVER = PacketCode.STATUS_SERVER.value
_REQUEST_CODES = {_ACCESS_REQUEST: PacketCode.ACCESS_REQUEST,
                  _STATUS_SERVER: PacketCode.STATUS_SERVER}
_REPLY_CODES = frozenset(
    (PacketCode.ACCESS_ACCEPT, PacketCode.ACCESS_REJECT, PacketCode.ACCESS_CHALLENGE))


class AttributeType(IntEnum):
    """The attribute types the codec reads or writes (RFC 2865 §5, RFC 2869 §5)."""

    USER_NAME = 1
    USER_PASSWORD = 2
    CHAP_PASSWORD = 3
    NAS_IP_ADDRESS = 4
    FRAMED_IP_ADDRESS = 8
    REPLY_MESSAGE = 18
    STATE = 24
    CALLING_STATION_ID = 31
    NAS_IDENTIFIER = 32
    PROXY_STATE = 33
    EAP_MESSAGE = 79
    MESSAGE_AUTHENTICATOR = 80


_HIDDEN = frozenset((AttributeType.USER_PASSWORD, AttributeType.CHAP_PASSWORD))

# Plain ints for the hot path: comparing and hashing enum members costs more than the
# rest of the attribute walk.
_USER_NAME = AttributeType.USER_NAME.value
_USER_PASSWORD = AttributeType.USER_PASSWORD.value
_CHAP_PASSWORD = AttributeType.CHAP_PASSWORD.value
_NAS_IP_ADDRESS = AttributeType.NAS_IP_ADDRESS.value
_FRAMED_IP_ADDRESS = AttributeType.FRAMED_IP_ADDRESS.value
_STATE = AttributeType.STATE.value
_CALLING_STATION_ID = AttributeType.CALLING_STATION_ID.value
_NAS_IDENTIFIER = AttributeType.NAS_IDENTIFIER.value
_PROXY_STATE = AttributeType.PROXY_STATE.value
_EAP_MESSAGE = AttributeType.EAP_MESSAGE.value
_MESSAGE_AUTHENTICATOR = AttributeType.MESSAGE_AUTHENTICATOR.value
_REPLY_MESSAGE = AttributeType.REPLY_MESSAGE.value
_UNSIGNED_MESSAGE_AUTHENTICATOR = bytes((_MESSAGE_AUTHENTICATOR,
                                        MESSAGE_AUTHENTICATOR_LENGTH)) + _ZERO_MAC


# --- dictionary -----------------------------------------------------------------------


def load_dictionary(path: Path = DICTIONARY_PATH) -> Dictionary:
    """Load (once per path) the pyrad dictionary naming and typing the attributes.

    The Dictionary is read-only after loading, so one instance is shared.

    Args:
        path: a FreeRADIUS-format dictionary; defaults to ``dictionaries/dictionary``.

    Returns:
        The parsed ``pyrad.dictionary.Dictionary``.

    Raises:
        OSError: the file cannot be read.
        pyrad.dictionary.ParseError: the file is not a valid dictionary.
    """
    return _load_dictionary(Path(path).resolve())


@lru_cache(maxsize=None)
def _load_dictionary(path: Path) -> Dictionary:
    return Dictionary(str(path))


@lru_cache(maxsize=None)
def _attribute_table() -> dict[int, tuple[str, str, dict[bytes, str]]]:
    """``type -> (name, data type, {raw value: VALUE name})`` for the standard attributes."""
    table: dict[int, tuple[str, str, dict[bytes, str]]] = {}
    for attribute in load_dictionary().attributes.values():
        if attribute.vendor or attribute.is_sub_attribute or not isinstance(attribute.code, int):
            continue
        table[attribute.code] = (attribute.name, attribute.type, dict(attribute.values.backward))
    return table


# --- authenticators and User-Password (pure functions over bytes) ---------------------


def message_authenticator(packet: bytes, secret: Secret,
                          request_authenticator: bytes | None = None) -> bytes:
    """Compute the Message-Authenticator of a packet (RFC 2869 §5.14, RFC 3579 §3.2).

    HMAC-MD5(secret, Code+Identifier+Length+Authenticator+Attributes), with the value of the
    packet's Message-Authenticator attribute (if any) taken as 16 zero octets.

    Args:
        packet: the packet, trimmed to its Length; its attributes must be well formed.
        secret: the shared secret of the client.
        request_authenticator: for a reply, the Request Authenticator of the request it
            answers (RFC 3579 §3.2); ``None`` for a request (its own Authenticator field).

    Returns:
        The 16-octet HMAC-MD5.

    Raises:
        ValueError: the packet is shorter than a header or its attributes cannot be walked.
    """
    if len(packet) < HEADER_LENGTH:
        raise ValueError("packet shorter than the RADIUS header")
    authenticator = packet[4:20] if request_authenticator is None else request_authenticator
    attributes = _zero_message_authenticator(packet[HEADER_LENGTH:])
    return _secret_hashes(secret)[0].digest(packet[:4] + authenticator + attributes)


@lru_cache(maxsize=1024)
def _secret_hashes(secret: Secret) -> tuple[HmacKey, "hashlib._Hash"]:
    """A client secret's HMAC-MD5 key (Message-Authenticator) and the MD5 state after the
    secret (User-Password's key stream, MD5(S + ...)), set up once per secret: three of
    the four MD5-based computations of a request start from these (``keyedhash``)."""
    return HmacKey(secret.reveal(), "md5"), hashlib.md5(secret.reveal())


def _md5_after_secret(secret: Secret, data: bytes) -> bytes:
    """MD5(secret + data)."""
    state = _secret_hashes(secret)[1].copy()
    state.update(data)
    return state.digest()


def _zero_message_authenticator(attributes: bytes) -> bytes:
    position = 0
    end = len(attributes)
    while position < end:
        if end - position < 2 or attributes[position + 1] < 2:
            raise ValueError("attributes cannot be walked")
        length = attributes[position + 1]
        if (attributes[position] == _MESSAGE_AUTHENTICATOR
                and length == MESSAGE_AUTHENTICATOR_LENGTH):
            return attributes[:position + 2] + _ZERO_MAC + attributes[position + 18:]
        position += length
    if position != end:
        raise ValueError("attributes cannot be walked")
    return attributes


def response_authenticator(packet: bytes, request_authenticator: bytes, secret: Secret) -> bytes:
    """Compute the Response Authenticator of a reply (RFC 2865 §3).

    MD5(Code+Identifier+Length+RequestAuthenticator+Attributes+Secret). The reply's own
    Authenticator field is ignored, so this both signs a reply under construction and
    verifies a received one (compare with ``packet[4:20]`` using ``hmac.compare_digest``).

    Args:
        packet: the reply, trimmed to its Length (Authenticator field: anything).
        request_authenticator: the Request Authenticator of the request answered
            (for a reply to Status-Server, the Status-Server's: RFC 5997 §3).
        secret: the shared secret of the client.

    Returns:
        The 16-octet MD5 digest.

    Raises:
        ValueError: the packet is shorter than a header.
    """
    if len(packet) < HEADER_LENGTH:
        raise ValueError("packet shorter than the RADIUS header")
    return hashlib.md5(packet[:4] + request_authenticator + packet[HEADER_LENGTH:]
                       + secret.reveal()).digest()


def decrypt_password(ciphertext: bytes, secret: Secret, authenticator: bytes) -> bytes:
    """Decrypt a PAP User-Password to bytes (RFC 2865 §5.2), trailing NULs stripped.

    b(1) = MD5(S + RA), p(1) = c(1) xor b(1); b(i) = MD5(S + c(i-1)), p(i) = c(i) xor b(i).
    Unlike pyrad's ``PwDecrypt`` this loses nothing: no UTF-8 decoding happens here.

    Args:
        ciphertext: the User-Password value, 16..128 octets, a multiple of 16.
        secret: the shared secret of the client.
        authenticator: the Request Authenticator of the Access-Request.

    Returns:
        The password octets without the NUL padding.

    Raises:
        ValueError: the ciphertext length is not 16..128 and a multiple of 16.
    """
    size = len(ciphertext)
    if size < 16 or size > 128 or size % 16:
        raise ValueError(f"User-Password length {size} is not 16..128 and a multiple of 16")
    # The key stream b(1..n) depends only on the ciphertext, so XOR it in one go.
    stream = _md5_after_secret(secret, authenticator)
    for offset in range(16, size, 16):
        stream += _md5_after_secret(secret, ciphertext[offset - 16:offset])
    plain = int.from_bytes(ciphertext, "big") ^ int.from_bytes(stream, "big")
    return plain.to_bytes(size, "big").rstrip(b"\x00")


def encrypt_password(password: bytes, secret: Secret, authenticator: bytes) -> bytes:
    """Hide a PAP password as a client does (RFC 2865 §5.2); for tests and tools.

    Args:
        password: the password octets, at most 128; NUL-padded to a multiple of 16.
        secret: the shared secret.
        authenticator: the Request Authenticator of the Access-Request.

    Returns:
        The User-Password attribute value.

    Raises:
        ValueError: the password is longer than 128 octets.
    """
    if len(password) > 128:
        raise ValueError("a User-Password holds at most 128 octets")
    padded_length = max(16, (len(password) + 15) // 16 * 16)  # at least one block
    padded = password + bytes(padded_length - len(password))
    key = secret.reveal()
    hidden = b""
    last = authenticator
    for offset in range(0, padded_length, 16):
        digest = hashlib.md5(key + last).digest()
        last = (int.from_bytes(padded[offset:offset + 16], "big")
                ^ int.from_bytes(digest, "big")).to_bytes(16, "big")
        hidden += last
    return hidden


# --- decode ---------------------------------------------------------------------------


def decode(data: bytes, client: Client) -> RadiusRequest:
    """Validate and decode a datagram from ``client`` into a ``RadiusRequest``.

    In order: the structural checks of FreeRADIUS ``rad_packet_ok()`` (octets beyond the
    Length field are padding and are trimmed, RFC 2865 §3), the Message-Authenticator
    policy (always verified when present), then the decoding of the fields the core reads,
    including the strict PAP decryption.

    Args:
        data: the UDP payload as received.
        client: the client selected by the source address; gives the secret and the
            ``require_message_authenticator`` policy.

    Returns:
        The decoded Access-Request or Status-Server.

    Raises:
        MalformedPacket: the packet fails a structural check (length, attribute walk,
            Message-Authenticator length or count, more than 200 attributes, EAP-Message,
            User-Password with CHAP-Password or repeated or of a bad length, an
            Access-Request without User-Password/CHAP-Password/State), or a field cannot be
            decoded (an address not 4 octets), or anything unexpected happens while
            decoding. Text that is not UTF-8 (User-Name, Calling-Station-Id,
            NAS-Identifier) is decoded with ``surrogateescape``, not dropped.
        UnexpectedPacketCode: the code is not Access-Request or Status-Server (e.g.
            Accounting-Request on the authentication port).
        MissingMessageAuthenticator: no Message-Authenticator where one is required:
            Status-Server (RFC 5997 §2), a client that requires it, or a packet carrying
            Proxy-State (CVE-2024-3596, FreeRADIUS ``limit_proxy_state``).
        BadMessageAuthenticator: the Message-Authenticator does not verify (RFC 3579 §3.2).
    """
    try:
        return _decode(bytes(data), client)
    except PacketDropped:
        raise
    except Exception as exc:  # a fuzzer's bytes must never escape as anything else
        # Only the exception type, and no chained cause: its message or traceback could
        # quote packet octets, the password included.
        raise MalformedPacket(f"undecodable packet ({type(exc).__name__})") from None


def _decode(data: bytes, client: Client) -> RadiusRequest:
    # --- 1. structure: FreeRADIUS src/lib/radius.c rad_packet_ok() ---
    size = len(data)
    if size < HEADER_LENGTH:
        raise MalformedPacket(f"datagram of {size} octets is shorter than a RADIUS header")
    code, identifier, length = _HEADER.unpack_from(data)
    if length < HEADER_LENGTH:
        raise MalformedPacket(f"Length field {length} is below the minimum of 20")
    if length > MAX_PACKET_LENGTH:
        raise MalformedPacket(f"Length field {length} is above the maximum of 4096")
    if size < length:
        # RFC 2865 §3: "If the packet is shorter than the Length field indicates, it MUST
        # be silently discarded."
        raise MalformedPacket(f"datagram of {size} octets is shorter than its Length {length}")
    if size > length:
        # RFC 2865 §3: octets outside the range of the Length field are padding, ignored.
        data = data[:length]
    if code not in _REQUEST_CODES:
        # The authentication port accepts Access-Request and Status-Server only; accounting
        # is not served (RFC 2866 §4.1: no reply unless recorded), other codes are invalid.
        raise UnexpectedPacketCode(f"packet code {code} is not accepted on the "
                                   "authentication port")

    attributes: list[tuple[int, bytes]] = []
    values: dict[int, list[bytes]] = {}  # by type, wire order kept within a type
    ma_offset = -1
    position = HEADER_LENGTH
    while position < length:
        if length - position < 2:
            raise MalformedPacket(f"truncated attribute header at offset {position}")
        attribute_type = data[position]
        attribute_length = data[position + 1]
        end = position + attribute_length
        if attribute_type == 0 or attribute_length < 2 or end > length:
            raise _bad_attribute(attribute_type, attribute_length, position)
        if attribute_type == _MESSAGE_AUTHENTICATOR:
            # RFC 2869 §5.14: exactly 18 octets; RFC 3579 §3.2: at most one.
            if attribute_length != MESSAGE_AUTHENTICATOR_LENGTH:
                raise MalformedPacket(f"Message-Authenticator of length {attribute_length} "
                                      "(must be 18)")
            if ma_offset >= 0:
                raise MalformedPacket("more than one Message-Authenticator")
            ma_offset = position
        value = data[position + 2:end]
        attributes.append((attribute_type, value))
        if attribute_type in values:
            values[attribute_type].append(value)
        else:
            values[attribute_type] = [value]
        position = end
    # The walk is bounded anyway (at most 2038 attributes fit in 4096 octets).
    if len(attributes) > MAX_ATTRIBUTES:
        raise MalformedPacket(f"more than {MAX_ATTRIBUTES} attributes")

    if _EAP_MESSAGE in values:
        # RFC 3579: EAP would require a Message-Authenticator; we do not do EAP at all.
        raise MalformedPacket("EAP-Message present: EAP not supported")
    passwords = values.get(_USER_PASSWORD, ())
    has_chap_password = _CHAP_PASSWORD in values
    if passwords and has_chap_password:
        raise MalformedPacket("both User-Password and CHAP-Password")  # RFC 2865 §4.1
    if len(passwords) > 1:
        raise MalformedPacket("more than one User-Password")  # RFC 2865 §5.44: 0-1
    if passwords:
        # RFC 2865 §5.2: 16..128 octets, a multiple of 16.
        password_length = len(passwords[0])
        if password_length < 16 or password_length > 128 or password_length % 16:
            raise MalformedPacket(f"User-Password of {password_length} octets is not "
                                  "16..128 and a multiple of 16")
    if (code == _ACCESS_REQUEST and not passwords and not has_chap_password
            and _STATE not in values):
        raise MalformedPacket("Access-Request without User-Password, CHAP-Password or State")

    # --- 2. Message-Authenticator policy ---
    if ma_offset < 0:
        if code == _STATUS_SERVER:
            raise MissingMessageAuthenticator(
                "Status-Server without Message-Authenticator (RFC 5997 §2)")
        if client.require_message_authenticator:
            raise MissingMessageAuthenticator(
                "Access-Request without Message-Authenticator, which this client requires "
                "(CVE-2024-3596)")
        if _PROXY_STATE in values:
            # FreeRADIUS limit_proxy_state: the BlastRADIUS collision hides in Proxy-State.
            raise MissingMessageAuthenticator(
                "Proxy-State without Message-Authenticator (CVE-2024-3596)")
    else:
        # RFC 3579 §3.2: always verified when present, over the raw (trimmed) bytes with the
        # value zeroed; compare_digest so the comparison leaks no timing.
        expected = _secret_hashes(client.secret)[0].digest(
            data[:ma_offset + 2] + _ZERO_MAC + data[ma_offset + 18:])
        if not hmac.compare_digest(expected, data[ma_offset + 2:ma_offset + 18]):
            raise BadMessageAuthenticator("Message-Authenticator does not verify")

    # --- 3. the fields the core reads ---
    authenticator = data[4:20]
    password = None
    if passwords:
        password = Secret(decrypt_password(passwords[0], client.secret, authenticator))
    state = values.get(_STATE)
    return RadiusRequest(
        code=_REQUEST_CODES[code],
        identifier=identifier,
        authenticator=authenticator,
        attributes=tuple(attributes),
        user_name=_text(values, _USER_NAME, "User-Name"),
        password=password,
        has_chap_password=has_chap_password,
        has_message_authenticator=ma_offset >= 0,
        proxy_states=tuple(values.get(_PROXY_STATE, ())),
        state=state[0] if state else None,
        calling_station_id=_text(values, _CALLING_STATION_ID, "Calling-Station-Id"),
        framed_ip_address=_ipv4(values, _FRAMED_IP_ADDRESS, "Framed-IP-Address"),
        nas_ip_address=_ipv4(values, _NAS_IP_ADDRESS, "NAS-IP-Address"),
        nas_identifier=_text(values, _NAS_IDENTIFIER, "NAS-Identifier"),
    )


def _bad_attribute(attribute_type: int, attribute_length: int, position: int) -> MalformedPacket:
    """The reason an attribute header fails the walk of rad_packet_ok()."""
    if attribute_type == 0:
        return MalformedPacket(f"invalid attribute type 0 at offset {position}")
    if attribute_length < 2:
        return MalformedPacket(f"attribute {attribute_type} at offset {position} has invalid "
                               f"length {attribute_length}")
    return MalformedPacket(f"attribute {attribute_type} at offset {position} overflows the "
                           "packet")


def _text(values: dict[int, list[bytes]], attribute_type: int, name: str) -> str | None:
    """The first value as UTF-8 (RFC 2865 §5 "text"), losslessly: octets that are not
    UTF-8 become U+DC80..U+DCFF (``surrogateescape``), so that no two values decode alike
    and the core's rule (``wire_text``) refuses such a User-Name with an Access-Reject and
    records such a Calling-Station-Id escaped (issue 21, 1): a user's text is not a
    malformed packet, and a drop would make the NAS fail over for one user's typing."""
    found = values.get(attribute_type)
    if not found:
        return None
    return found[0].decode("utf-8", "surrogateescape")


def _ipv4(values: dict[int, list[bytes]], attribute_type: int, name: str) -> str | None:
    found = values.get(attribute_type)
    if not found:
        return None
    value = found[0]
    if len(value) != 4:  # RFC 2865 §5.4, §5.8: 4 octets
        raise MalformedPacket(f"{name} of {len(value)} octets (must be 4)")
    return f"{value[0]}.{value[1]}.{value[2]}.{value[3]}"


# --- encode ---------------------------------------------------------------------------


def encode_reply(request: RadiusRequest, secret: Secret, code: PacketCode,
                 reply_messages: Sequence[str] = (), *, state: bytes | None = None) -> bytes:
    """Encode and sign the reply to ``request``.

    Attributes, in order: Message-Authenticator first (BlastRADIUS, as FreeRADIUS 3.2.5
    and pyrad 2.6.0 do), the Reply-Messages (each UTF-8, split into chunks of at most 253
    octets on character boundaries, RFC 2865 §5.18; empty messages skipped), State if given
    (RFC 2865 §5.24, for Access-Challenge), then every Proxy-State of the request
    unmodified and in order (RFC 2865 §5.33). The Message-Authenticator is computed first,
    with the Request Authenticator (RFC 3579 §3.2), then the Response Authenticator over
    the signed attributes (RFC 2865 §3). A reply to Status-Server is computed the same way
    with the Status-Server's authenticator (RFC 5997 §3).

    Args:
        request: the decoded request answered (Identifier, authenticator, Proxy-States).
        secret: the shared secret of the client.
        code: Access-Accept, Access-Reject or Access-Challenge.
        reply_messages: texts shown to the user, in order.
        state: the State of an Access-Challenge, 1..253 octets.

    Returns:
        The reply datagram.

    Raises:
        ValueError: ``code`` is not a reply code, ``state`` is empty or longer than 253
            octets, a message cannot be encoded as UTF-8 (a lone surrogate), or the reply
            would exceed 4096 octets.
    """
    if code not in _REPLY_CODES:
        raise ValueError(f"{code!r} is not an Access-Accept/Reject/Challenge")
    parts = [_UNSIGNED_MESSAGE_AUTHENTICATOR]  # first: BlastRADIUS (CVE-2024-3596)
    for message in reply_messages:
        for chunk in _split_utf8(message.encode("utf-8"), MAX_VALUE_LENGTH):
            parts.append(bytes((_REPLY_MESSAGE, len(chunk) + 2)))
            parts.append(chunk)
    if state is not None:
        if not 1 <= len(state) <= MAX_VALUE_LENGTH:
            raise ValueError(f"State of {len(state)} octets (must be 1..253)")
        parts.append(bytes((_STATE, len(state) + 2)))
        parts.append(state)
    for proxy_state in request.proxy_states:
        parts.append(bytes((_PROXY_STATE, len(proxy_state) + 2)))
        parts.append(proxy_state)
    attributes = b"".join(parts)
    length = HEADER_LENGTH + len(attributes)
    if length > MAX_PACKET_LENGTH:
        raise ValueError(f"reply of {length} octets exceeds 4096")
    header = _HEADER.pack(code, request.identifier, length)
    # RFC 3579 §3.2: replies are signed with the Request Authenticator, MA value zeroed.
    mac = _secret_hashes(secret)[0].digest(header + request.authenticator + attributes)
    attributes = attributes[:2] + mac + attributes[MESSAGE_AUTHENTICATOR_LENGTH:]
    # RFC 2865 §3: Response Authenticator = MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
    authenticator = hashlib.md5(header + request.authenticator + attributes
                                + secret.reveal()).digest()
    return header + authenticator + attributes


def _split_utf8(encoded: bytes, limit: int) -> list[bytes]:
    """Split valid UTF-8 into chunks of at most ``limit`` octets, never inside a character."""
    chunks = []
    start = 0
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        if end < len(encoded):
            while encoded[end] & 0xC0 == 0x80:  # a continuation octet: back up
                end -= 1
        chunks.append(encoded[start:end])
        start = end
    return chunks


# --- describe (-X debug output) -------------------------------------------------------


def describe(request: RadiusRequest) -> str:
    """Describe a decoded request for ``-X`` logging, one ``Name = value`` line per attribute.

    Names and types come from the dictionary; unknown attributes print as ``Attr-N = 0x..``.
    User-Password and CHAP-Password print as ``<hidden>``; the Message-Authenticator, which
    ``decode`` verified, as ``<valid>``. Text is quoted with control characters escaped, so
    a crafted value cannot forge log lines.

    Args:
        request: a request returned by ``decode``.

    Returns:
        The lines joined by newlines (empty for a packet without attributes).

    Raises:
        OSError, pyrad.dictionary.ParseError: the dictionary cannot be loaded.
    """
    table = _attribute_table()
    return "\n".join(_describe_attribute(table, attribute_type, value, "<valid>")
                     for attribute_type, value in request.attributes)


def describe_reply(data: bytes) -> str:
    """Describe reply bytes (as built by ``encode_reply``) for ``-X`` logging.

    A first line gives the code, Identifier and Length, then one line per attribute as in
    ``describe``; the Message-Authenticator prints in hex (it is no secret). Octets that do
    not form an attribute print as one final ``<N undecodable octets>`` line.

    Args:
        data: the reply datagram.

    Returns:
        The lines joined by newlines.

    Raises:
        OSError, pyrad.dictionary.ParseError: the dictionary cannot be loaded.
    """
    if len(data) < HEADER_LENGTH:
        return f"<{len(data)} octets: shorter than a RADIUS header>"
    code, identifier, length = _HEADER.unpack_from(data)
    try:
        code_name = _code_name(PacketCode(code))
    except ValueError:
        code_name = f"Code-{code}"
    lines = [f"{code_name} Id {identifier} Length {length}"]
    table = _attribute_table()
    end = min(length, len(data))
    position = HEADER_LENGTH
    while position < end:
        attribute_length = data[position + 1] if end - position >= 2 else 0
        if attribute_length < 2 or position + attribute_length > end:
            lines.append(f"\t<{end - position} undecodable octets>")
            break
        lines.append(_describe_attribute(table, data[position],
                                         data[position + 2:position + attribute_length], None))
        position += attribute_length
    return "\n".join(lines)


def _code_name(code: PacketCode) -> str:
    return "-".join(part.capitalize() for part in code.name.split("_"))


def _describe_attribute(table: dict[int, tuple[str, str, dict[bytes, str]]],
                        attribute_type: int, value: bytes, mac_text: str | None) -> str:
    name, data_type, named_values = table.get(attribute_type,
                                              (f"Attr-{attribute_type}", "octets", {}))
    if attribute_type in _HIDDEN:
        shown = "<hidden>"  # never the password, not even its ciphertext
    elif attribute_type == AttributeType.MESSAGE_AUTHENTICATOR and mac_text is not None:
        shown = mac_text
    else:
        shown = _format_value(data_type, value, named_values)
    return f"\t{name} = {shown}"


def _format_value(data_type: str, value: bytes, named_values: dict[bytes, str]) -> str:
    if value in named_values:
        return named_values[value]
    if data_type == "string":
        try:
            return quote(value.decode("utf-8"))
        except UnicodeDecodeError:
            return "0x" + value.hex()
    if data_type == "integer" and len(value) == 4:
        return str(int.from_bytes(value, "big"))
    if data_type == "ipaddr" and len(value) == 4:
        return str(ipaddress.IPv4Address(value))
    if data_type == "ipv6addr" and len(value) == 16:
        return str(ipaddress.IPv6Address(value))
    return "0x" + value.hex()

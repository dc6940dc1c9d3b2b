"""Frozen values shared by the core, the codec, the store and the shell.

Owns: ``Secret``, packet codes, the decoded request, the subject snapshot (user, PIN hash,
tokens), the verdicts of ``decide`` (``Accept``/``Reject``) with the one-time effects they
commit, and audit events.

Must not import: pyrad, sqlalchemy, twisted, os.environ. Must not know: SQL, sockets, clocks.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Callable, Mapping

import netaddr

RandomSource = Callable[[int], bytes]
"""``n -> n random bytes``; production passes ``secrets.token_bytes``, tests a seeded fake."""


class Secret:
    """A secret value (RADIUS secret, key, PIN, code, seed, password) that never prints.

    ``str()``/``repr()`` give ``Secret(<redacted>)``; ``reveal()`` is the only way in.
    """

    __slots__ = ("_value",)

    def __init__(self, value: bytes | str):
        self._value = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def reveal(self) -> bytes:
        return self._value

    def __len__(self) -> int:
        return len(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:  # usable in sets/dicts without exposing the value in repr
        return hash(("Secret", self._value))

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __reduce__(self):  # pickling would carry the value out of process; refuse
        raise TypeError("Secret values are not picklable")


class PacketCode(IntEnum):
    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    STATUS_CLIENT = 13


@dataclass(frozen=True, slots=True)
class Client:
    """A RADIUS client (NAS) from ``[[clients]]``, selected by UDP source address."""

    name: str
    network: netaddr.IPNetwork
    secret: Secret
    require_message_authenticator: bool = True


@dataclass(frozen=True, slots=True)
class RadiusRequest:
    """A validated, decoded request (Access-Request or Status-Server).

    ``attributes`` keeps every attribute as ``(type, value)`` in wire order; the named fields
    are the ones the core reads. ``password`` is the PAP User-Password decrypted to bytes
    (trailing NULs stripped), ``None`` when absent. The text fields (``user_name``,
    ``calling_station_id``, ``nas_identifier``) are decoded losslessly: octets that are not
    UTF-8 appear as U+DC80..U+DCFF (``surrogateescape``), and may hold control characters;
    ``wire_text`` says whether a name may be looked up and how a value is recorded.
    """

    code: PacketCode
    identifier: int
    authenticator: bytes
    attributes: tuple[tuple[int, bytes], ...]
    user_name: str | None = None
    password: Secret | None = None
    has_chap_password: bool = False
    has_message_authenticator: bool = False
    proxy_states: tuple[bytes, ...] = ()
    state: bytes | None = None
    calling_station_id: str | None = None
    framed_ip_address: str | None = None
    nas_ip_address: str | None = None
    nas_identifier: str | None = None


class TokenKind(StrEnum):
    TOTP = "totp"
    HOTP = "hotp"


@dataclass(frozen=True, slots=True)
class Token:
    """A hardware or software token. ``sealed_seed`` is AES-GCM ciphertext (crypto.Keys).

    ``last_used`` is the moving factor last accepted: the TOTP time step, or the HOTP
    counter (so the next HOTP counter expected is ``last_used + 1``). Advancing it is the
    compare-and-set ``... WHERE last_used < :new``. ``receipt``: the answer to the request
    that last advanced it (request path only; None elsewhere).
    """

    id: int
    serial: str
    kind: TokenKind
    digits: int
    period: int
    sealed_seed: bytes
    last_used: int
    algorithm: str = "SHA1"
    receipt: Receipt | None = None


@dataclass(frozen=True, slots=True)
class EmergencyCode:
    """One code of a set: its keyed hash (``Keys.code_hash``), never the code."""

    id: int
    position: int            # 1-based line number in the export
    code_hash: bytes
    used_at: datetime | None = None
    receipt: Receipt | None = None  # the answer to the request that used it (request path)


@dataclass(frozen=True, slots=True)
class EmergencySet:
    """A user's set of one-time emergency tokencodes (the latest one, active or not)."""

    id: str                  # random, non-guessable; bound into every code hash
    user_id: int
    code_length: int
    issued_at: datetime
    expires_at: datetime
    issued_by: str           # "cli", "admin:NAME", "self-service:NAME"
    reason: str
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    codes: tuple[EmergencyCode, ...] = ()
    last_used_at: datetime | None = None
    last_used_client: str | None = None
    unused_count: int | None = None  # set when ``codes`` holds only the candidate code

    @property
    def codes_left(self) -> int:
        if self.unused_count is not None:
            return self.unused_count
        return sum(1 for code in self.codes if code.used_at is None)

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def with_codes(self, codes: tuple[EmergencyCode, ...]) -> EmergencySet:
        """This set holding ``codes`` (the request path: the one candidate code).

        ``dataclasses.replace`` without its look-up of every field, which with the one for
        the Subject was a tenth of an emergency login's Python time in the database thread
        (py-spy, session 9); tests/unit/test_model.py checks every other field is kept.
        """
        return EmergencySet(self.id, self.user_id, self.code_length, self.issued_at,
                            self.expires_at, self.issued_by, self.reason, self.revoked_at,
                            self.revoked_reason, codes, self.last_used_at,
                            self.last_used_client, self.unused_count)


@dataclass(frozen=True, slots=True)
class Subject:
    """What the core needs to know about one user, loaded in one store call."""

    id: int
    name: str
    is_disabled: bool
    pin_hash: bytes | None
    failures: int
    locked_at: datetime | None
    tokens: tuple[Token, ...] = ()
    emergency: EmergencySet | None = None
    # The set before ``emergency`` (a newer set replaced it, or it ended before that), when
    # the passcode may be one of its codes: never accepted, recognised for the audit reason
    # (``code_of_replaced_set``) only. The request path loads it for a Reject that found
    # nothing better (handlers/access_request.py), else it is None.
    replaced: EmergencySet | None = None

    def with_emergency(self, emergency: EmergencySet | None) -> Subject:
        """This subject with ``emergency`` instead (see ``EmergencySet.with_codes``)."""
        return Subject(self.id, self.name, self.is_disabled, self.pin_hash, self.failures,
                       self.locked_at, self.tokens, emergency, self.replaced)

    def with_replaced(self, replaced: EmergencySet | None) -> Subject:
        """This subject with ``replaced`` as the set before its latest one."""
        return Subject(self.id, self.name, self.is_disabled, self.pin_hash, self.failures,
                       self.locked_at, self.tokens, self.emergency, replaced)


# --- verdicts and the one-time effects they commit -------------------------------------


class RejectReason(StrEnum):
    """Why a request was refused: for the audit trail only, never on the wire (SPEC)."""

    UNKNOWN_USER = "unknown_user"
    DISABLED = "disabled"
    LOCKED = "locked"
    NO_PASSWORD = "no_password"
    CHAP_NOT_SUPPORTED = "chap_not_supported"
    BAD_PASSWORD_ENCODING = "bad_password_encoding"
    NO_TOKEN = "no_token"
    BAD_PIN = "bad_pin"
    BAD_CODE = "bad_code"
    REPLAYED_CODE = "replayed_code"
    TOKEN_DENIED = "token_denied"
    LOST_RACE = "lost_race"
    RETRANSMISSION = "retransmission"  # answered from another server's receipt
    INTERNAL_ERROR = "internal_error"
    # emergency access (issue 3)
    CODE_USED = "code_used"
    SET_EXPIRED = "set_expired"
    SET_REVOKED = "set_revoked"
    OUTSIDE_PERIMETER = "outside_perimeter"
    # issue 20 (12): a code of the set a newer one replaced (superseded), not a wrong code
    CODE_OF_REPLACED_SET = "code_of_replaced_set"
    # hostile input (issue 21, 1)
    BAD_USER_NAME = "bad_user_name"  # breaks wire_text's rule: never looked up
    DATA_REFUSED = "data_refused"    # the database refused this request's own data


@dataclass(frozen=True, slots=True)
class AdvanceToken:
    """CAS: ``UPDATE token SET last_used=:value WHERE id=:token_id AND last_used < :value``."""

    token_id: int
    value: int


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Count one failed attempt; lock the user when the count reaches ``max_failures``.

    ``restart`` is true when an earlier lockout has expired: counting starts again at 1.
    """

    user_id: int
    at: datetime
    max_failures: int
    restart: bool = False


@dataclass(frozen=True, slots=True)
class UseEmergencyCode:
    """CAS: ``UPDATE emergency_code SET used_at=:at, used_by=:client WHERE id=:code_id AND
    used_at IS NULL``, and the set still active (not revoked, not expired at ``at``)."""

    code_id: int
    set_id: str
    at: datetime
    client: str


@dataclass(frozen=True, slots=True)
class RevokeEmergencySet:
    """End a set (``on_token_use = revoke``: the real token came back)."""

    set_id: str
    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ResetFailures:
    """A successful login clears the failure count and any expired lock."""

    user_id: int


@dataclass(frozen=True, slots=True)
class SaveReceipt:
    """Keep a receipt in the receipt table: one that a token's next Accept displaces from
    the token's row within its lifetime (its retransmissions must still find it)."""

    receipt: Receipt


Commit = (AdvanceToken | RecordFailure | ResetFailures | UseEmergencyCode | RevokeEmergencySet
          | SaveReceipt)
"""A one-time effect; ``Store.apply`` runs all of one request in one transaction."""

# Commits whose WHERE clause is a compare-and-set: a rowcount of 0 means another request
# (or another server) got there first, and an Accept that needed it becomes a Reject.
CAS_COMMITS: tuple[type, ...] = (AdvanceToken, UseEmergencyCode)


@dataclass(frozen=True, slots=True)
class Accept:
    reply_messages: tuple[str, ...] = ()
    commits: tuple[Commit, ...] = ()
    authenticator: str = ""  # "totp:SERIAL", "hotp:SERIAL", ... for the audit row
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reject:
    reason: RejectReason
    commits: tuple[Commit, ...] = ()
    detail: Mapping[str, object] = field(default_factory=dict)


Verdict = Accept | Reject


@dataclass(frozen=True, slots=True)
class Receipt:
    """The answer given to one request, kept a short while for its retransmissions.

    ``key`` is ``Keys.receipt_hash`` of (client address, source port, Identifier, Request
    Authenticator, User-Name); ``code`` the reply's PacketCode. Each server signs its own
    copy of the reply, so no secret or reply bytes are stored. Kept on the row whose
    one-time effect the request used (``Token.receipt``, ``EmergencyCode.receipt``), or in
    the receipt table (``SaveReceipt``).
    """


    key: bytes
    code: int
    reply_messages: tuple[str, ...]
    expires_at: datetime

    def answers(self, key: bytes, now: datetime) -> bool:
        """This is the receipt of the request ``key`` identifies, and still valid."""
        return self.key == key and now < self.expires_at


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One row of the audit trail. Never holds a passcode, PIN, code, seed or secret.

    ``action``: ``auth``, ``user.add``, ``token.add``, ``settings.set``, ...;
    ``result``: ``accept``/``reject`` for auth, ``ok``/``error`` for admin actions;
    ``actor``: ``radius``, ``cli``, ``admin:NAME``, ``self-service:NAME``.
    """

    at: datetime
    action: str
    result: str
    actor: str
    user_name: str | None = None
    reason: str | None = None
    client: str | None = None
    nas_address: str | None = None
    node: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An audit event as read back from the store."""

    id: int
    event: AuditEvent


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as admins see it (CLI ``user show``/``list``, admin web)."""

    id: int
    name: str
    is_disabled: bool
    has_pin: bool
    has_self_service_password: bool
    failures: int
    locked_at: datetime | None
    created_at: datetime
    token_serials: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as admins see it: never the seed."""

    id: int
    user_name: str
    serial: str
    kind: TokenKind
    digits: int
    period: int
    last_used: int
    created_at: datetime


# --- accounts of the web consoles (issue 20, defects 4 and 13) ------------------------------

ADMIN_ACCOUNT = "admin"
USER_ACCOUNT = "user"


@dataclass(frozen=True, slots=True)
class WebAccount:
    """An account of a web console (an admin, or a user of the self-service console) as
    sign-in and the sessions see it.

    A session remembers ``id``, ``created_at`` and ``generation`` at sign-in and is valid
    only while the account still has all three (and is not disabled): a deleted and
    re-created name is another account, and a changed password, a disable or a reset
    second factor changes ``generation``.

    Attributes:
        kind: ``ADMIN_ACCOUNT`` or ``USER_ACCOUNT``.
        password_hash: the scrypt string (None: a user without self-service password).
        totp_sealed_seed: an admin's own TOTP seed (``Keys.seal_seed``), None before
            enrolment; ``totp_last_step``: the step last accepted (-1: none).
    """

    kind: str
    id: int
    name: str
    generation: int
    created_at: datetime
    is_disabled: bool = False
    password_hash: str | None = field(default=None, repr=False)
    totp_sealed_seed: bytes | None = field(default=None, repr=False)
    totp_last_step: int = -1

    @property
    def has_totp(self) -> bool:
        return self.totp_sealed_seed is not None

    @property
    def stamp(self) -> tuple[int, datetime, int]:
        """What a session compares: the same account, unchanged since sign-in."""
        return (self.id, self.created_at, self.generation)

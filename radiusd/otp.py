"""One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) codes, matching a typed code
against a token's moving factor (window, look-ahead, replay), base32 seeds and the
``otpauth://`` provisioning URI.

Owns: the arithmetic of codes and moving factors. Pure: time (``now``) and randomness come in
as arguments; nothing here reads a clock, a random source, the database or the network.

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping
from urllib.parse import quote, urlencode

from radiusd.keyedhash import HmacKey
from radiusd.model import RandomSource

# RFC 4226 §5.3: "Implementations MUST extract a 6-digit code at a minimum and possibly 7 and
# 8-digit code". The 31-bit dynamic truncation holds at most 10 decimal digits.
MIN_DIGITS = 6
MAX_DIGITS = 10

# RFC 4226 §4 R6 requires a shared secret of at least 128 bits and recommends 160. We still
# accept 80 bits (10 bytes) on import: hardware tokens that admins must be able to enrol ship
# with 80-bit seeds (the minimum Google Authenticator and many OATH tokens use), and refusing
# them would leave those users without a second factor at all. Seeds we generate are 160 bits.
MIN_SEED_BYTES = 10
DEFAULT_SEED_BYTES = 20  # RFC 4226 §4 R6: 160 bits recommended

# RFC 6238 §1.2/§5.2 and the Key Uri Format: HMAC-SHA-1 (default), HMAC-SHA-256, HMAC-SHA-512.
_DIGESTS: Mapping[str, str] = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}

_COUNTER_LIMIT = 2**64  # RFC 4226 §5.1: C is an 8-byte counter
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # RFC 6238 §4.1: T0 = 0 (Unix epoch)


@dataclass(frozen=True, slots=True)
class OtpMatch:
    """The result of matching one typed code against a token.

    Attributes:
        value: the moving factor (TOTP time step or HOTP counter) the code matched and that
            is now to be recorded as used; ``None`` when the code is not accepted.
        is_replay: the code matched only a step/counter that was already used (RFC 4226 §7.2
            / RFC 6238 §5.2: a code is accepted once); always ``False`` when ``value`` is set.
    """

    value: int | None
    is_replay: bool = False

    @property
    def is_match(self) -> bool:
        return self.value is not None


NO_MATCH = OtpMatch(None)


def _digest_name(algorithm: str) -> str:
    try:
        return _DIGESTS[algorithm.upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"unknown OTP algorithm {algorithm!r} "
                         f"(use {', '.join(_DIGESTS)})") from None


def hotp(seed: bytes, counter: int, digits: int = 6, algorithm: str = "SHA1") -> str:
    """The HOTP value of ``seed`` at ``counter`` (RFC 4226 §5.3), zero-padded to ``digits``.

    With ``algorithm`` SHA256/SHA512 and a time step as ``counter`` this is TOTP (RFC 6238
    §4.2, which reuses HOTP's truncation).

    Args:
        seed: the shared secret K.
        counter: the moving factor C, 0 ≤ C < 2**64.
        digits: length of the code, 6–10.
        algorithm: ``SHA1``, ``SHA256`` or ``SHA512`` (case-insensitive).
    Returns:
        The code as a string of exactly ``digits`` ASCII digits.
    Raises:
        ValueError: counter out of range, digits out of range or unknown algorithm.
    """
    return _hotp(HmacKey(seed, _digest_name(algorithm)), counter, digits)


def _hotp(key: HmacKey, counter: int, digits: int) -> str:
    """``hotp`` with the seed's HMAC states set up once (``_match`` computes several)."""
    if not 0 <= counter < _COUNTER_LIMIT:
        raise ValueError(f"HOTP counter {counter} is out of range (0 to 2**64 - 1)")
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise ValueError(f"OTP digits {digits} is out of range ({MIN_DIGITS}–{MAX_DIGITS})")
    # RFC 4226 §5.3 step 1: HS = HMAC(K, C), C as 8 bytes big-endian (§5.2).
    mac = key.digest(counter.to_bytes(8, "big"))
    # Step 2, dynamic truncation: the low 4 bits of the last byte select 4 bytes, whose
    # top bit is masked off so the value is the same signed or unsigned (31 bits).
    offset = mac[-1] & 0x0F
    binary = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
    # Step 3: Snum mod 10^Digit, left-padded with zeros.
    return str(binary % 10**digits).zfill(digits)


def totp_step(now: datetime, period: int = 30) -> int:
    """The TOTP time step T = floor((unix time − T0) / X) (RFC 6238 §4.2), T0 = 0.

    Args:
        now: an aware datetime.
        period: the time step X in seconds (RFC 6238 §5.2 recommends 30).
    Returns:
        The step number (exact: computed on ``timedelta``, not on a float).
    Raises:
        ValueError: ``now`` is naive, or ``period`` is less than 1.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    if period < 1:
        raise ValueError(f"TOTP period {period} must be at least 1 second")
    return (now - _EPOCH) // timedelta(seconds=period)


def _is_same_code(expected: str, typed: str) -> bool:
    # Constant-time (RFC 4226 §7.2 leaves it open; timing must not leak digits). Encode
    # first: compare_digest refuses non-ASCII str, and a typed code is untrusted input.
    return hmac.compare_digest(expected.encode("ascii"), typed.encode("utf-8", "replace"))


def _match(seed: bytes, code: str, candidates: range, *, digits: int, algorithm: str,
           last_used: int) -> OtpMatch:
    """First value of ``candidates`` above ``last_used`` whose code is ``code``.

    Every candidate is computed (no early exit), so the time taken does not depend on
    where, or whether, the code matched.
    """
    matched: int | None = None
    is_replay = False
    key = HmacKey(seed, _digest_name(algorithm))
    for value in candidates:
        if not 0 <= value < _COUNTER_LIMIT:
            continue
        if _is_same_code(_hotp(key, value, digits), code):
            if value > last_used:
                if matched is None:
                    matched = value
            else:
                is_replay = True
    if matched is not None:
        return OtpMatch(matched)
    return OtpMatch(None, is_replay=is_replay)


def match_totp(seed: bytes, code: str, now: datetime, *, period: int, digits: int,
               algorithm: str, last_used: int, window: int = 1) -> OtpMatch:
    """Match a typed TOTP code against the steps around ``now``.

    RFC 6238 §5.2: accept codes of the steps ``now − window .. now + window`` (one step of
    clock drift each way by default) and only once: a step at or below ``last_used`` is
    reported as a replay, never accepted.

    Args:
        seed: the shared secret.
        code: the typed code (any string; a wrong length or non-digits simply do not match).
        now: the current time (aware).
        period, digits, algorithm: the token's parameters.
        last_used: the step last accepted for this token (−1 when none).
        window: steps accepted on each side of the current one.
    Returns:
        ``OtpMatch(step)`` on success, else ``OtpMatch(None, is_replay=...)``.
    Raises:
        ValueError: naive ``now``, bad period, digits or algorithm.
    """
    current = totp_step(now, period)
    return _match(seed, code, range(current - window, current + window + 1), digits=digits,
                  algorithm=algorithm, last_used=last_used)


def match_hotp(seed: bytes, code: str, *, digits: int, algorithm: str, last_used: int,
               look_ahead: int = 10) -> OtpMatch:
    """Match a typed HOTP code against the next ``look_ahead`` counters.

    RFC 4226 §7.4: the server tries ``last_used + 1 .. last_used + look_ahead`` (the token may
    have been pressed without logging in); a match ahead resynchronises: the matched counter
    becomes ``last_used``. A code of ``last_used`` itself (the one accepted last) is reported
    as a replay (RFC 4226 §7.2: a value is accepted once).

    Args:
        seed: the shared secret.
        code: the typed code.
        digits, algorithm: the token's parameters.
        last_used: the counter last accepted (−1 when none, so counter 0 is next).
        look_ahead: how many counters ahead are accepted.
    Returns:
        ``OtpMatch(counter)`` on success, else ``OtpMatch(None, is_replay=...)``.
    Raises:
        ValueError: bad digits or algorithm.
    """
    return _match(seed, code, range(last_used, last_used + look_ahead + 1), digits=digits,
                  algorithm=algorithm, last_used=last_used)


def parse_base32_seed(text: str) -> bytes:
    """Decode a base32 seed as admins paste it (RFC 4648 §6).

    Lower case, spaces and missing ``=`` padding are accepted (authenticator apps and token
    vendors print seeds that way).

    Args:
        text: the base32 text.
    Returns:
        The seed bytes.
    Raises:
        ValueError: not base32, or shorter than 80 bits. The message never repeats the text,
            which is a secret.
    """
    cleaned = "".join(str(text).split()).upper().rstrip("=")
    padded = cleaned + "=" * (-len(cleaned) % 8)
    try:
        seed = base64.b32decode(padded.encode("ascii"), casefold=False)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueError("the secret is not valid base32") from None
    if len(seed) < MIN_SEED_BYTES:
        raise ValueError(f"the secret is too short: {len(seed) * 8} bits, "
                         f"at least {MIN_SEED_BYTES * 8} needed")
    return seed


def generate_seed(random: RandomSource, length: int = DEFAULT_SEED_BYTES) -> bytes:
    """A new token seed of ``length`` bytes from ``random``.

    Args:
        random: the injected random source (production: ``secrets.token_bytes``).
        length: seed size in bytes (RFC 4226 §4 R6: 20 bytes = 160 bits recommended).
    Returns:
        The seed.
    Raises:
        ValueError: ``length`` is below 10 bytes, or the source returned the wrong size.
    """
    if length < MIN_SEED_BYTES:
        raise ValueError(f"seed length {length} is below {MIN_SEED_BYTES} bytes")
    seed = random(length)
    if len(seed) != length:
        raise ValueError(f"random source returned {len(seed)} bytes, not {length}")
    return seed


def otpauth_uri(*, kind: str, issuer: str, account: str, seed: bytes, digits: int,
                period: int, counter: int, algorithm: str) -> str:
    """The provisioning URI for authenticator apps (Google Authenticator "Key Uri Format").

    ``otpauth://TYPE/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=..&digits=..`` plus
    ``period`` (TOTP) or ``counter`` (HOTP: the next counter the token will use). The label
    and every parameter are percent-encoded (spaces as ``%20``, never ``+``); the secret is
    base32 without padding, as the format requires.

    Args:
        kind: ``totp`` or ``hotp``.
        issuer, account: shown by the app; ``issuer`` is both the label prefix and parameter.
        seed: the secret (the URI carries it: show it once, never log it).
        digits, period, counter, algorithm: the token's parameters.
    Returns:
        The URI.
    Raises:
        ValueError: unknown kind or algorithm.
    """
    kind = str(kind).lower()
    if kind not in ("totp", "hotp"):
        raise ValueError(f"token type must be totp or hotp, not {kind!r}")
    algorithm_name = algorithm.upper()
    _digest_name(algorithm_name)
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    params: list[tuple[str, str]] = [
        ("secret", base64.b32encode(seed).decode("ascii").rstrip("=")),
        ("issuer", issuer),
        ("algorithm", algorithm_name),
        ("digits", str(digits)),
    ]
    if kind == "totp":
        params.append(("period", str(period)))
    else:
        params.append(("counter", str(counter)))
    return f"otpauth://{kind}/{label}?{urlencode(params, quote_via=quote, safe='')}"

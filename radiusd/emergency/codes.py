"""One-time emergency tokencodes: generating a set, hashing it for storage, matching a
candidate against the stored hashes.

Owns: the code alphabet and draw (uniform decimal digits by rejection sampling, distinct
within a set, never one repeated digit), the set id, and the constant-work match. A code's
plaintext exists only in what ``generate_codes`` returns (the issue result and its export);
everything kept is ``Keys.code_hash``, an HMAC-SHA256 bound to the set id and the user id
(NIST SP 800-63B §5.1.2: look-up secrets are stored in a form that resists offline attack;
the HMAC key lives in the key file, never in the database, so a stolen database alone does
not let anyone test guesses).

Pure: randomness is the injected ``RandomSource``; no clock, no I/O, no ``secrets``.

Must not import: twisted, sqlalchemy, pyrad, os.environ.
"""

from __future__ import annotations

import hmac
from typing import Iterable

from radiusd.crypto import Keys
from radiusd.passcode import split_passcode
from radiusd.model import EmergencyCode, EmergencySet, RandomSource, Secret
from radiusd.settings import BOUNDS

# SPEC "Self-service policy": emergency.codes_per_set 1–100, emergency.code_length 6–12
# (settings.BOUNDS, the one table).
MIN_COUNT, MAX_COUNT = BOUNDS["emergency.codes_per_set"]
MIN_LENGTH, MAX_LENGTH = BOUNDS["emergency.code_length"]

SET_ID_BYTES = 16  # 128 bits: unguessable, and a distinct HMAC context per set

# Rejection sampling: a byte below 250 maps to a digit with ``% 10`` with no bias (250 is
# the largest multiple of 10 that fits in a byte); bytes 250–255 are drawn again.
_ACCEPT_BELOW = 250

# A broken RandomSource (e.g. one returning constant bytes) would otherwise loop forever
# drawing all-same-digit or duplicate codes. With a real source the chance of needing this
# many redraws for one code is below 10**-1000, so hitting it means the source is broken.
_MAX_REDRAWS_PER_CODE = 1000


def generate_codes(random: RandomSource, count: int, length: int) -> tuple[Secret, ...]:
    """Draw a set of ``count`` distinct codes of ``length`` ASCII digits.

    Each digit is uniform over 0–9 (rejection sampling on random bytes, no modulo bias).
    A code made of one repeated digit (``00000000``, ``77777777``) is drawn again, so no code
    looks like a placeholder; so is a code already in the set. Both exclusions remove at most
    ``10 + count`` of the ``10**length`` values, so one guess still succeeds with odds of
    about ``count / 10**length``. NIST SP 800-63B §5.1.2 asks for at least 20 bits of
    entropy per look-up secret: the default 8 digits give 26.6 bits; the SPEC's minimum of
    6 digits gives 19.9, just short, so rate limiting (the lockout) carries more weight.

    Args:
        random: ``n -> n random bytes`` (production: ``secrets.token_bytes``).
        count: codes in the set, 1–100.
        length: digits per code, 6–12.

    Returns:
        The codes, in export order, each wrapped in ``Secret``.

    Raises:
        ValueError: ``count`` or ``length`` out of range.
        RuntimeError: ``random`` returned the wrong number of bytes, or output so far from
            random that no valid set could be drawn.
    """
    if not MIN_COUNT <= count <= MAX_COUNT:
        raise ValueError(f"count {count} is out of range ({MIN_COUNT}–{MAX_COUNT})")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"code length {length} is out of range ({MIN_LENGTH}–{MAX_LENGTH})")
    codes: list[bytes] = []
    seen: set[bytes] = set()
    for _ in range(count):
        for _ in range(_MAX_REDRAWS_PER_CODE):
            code = _draw_digits(random, length)
            if code not in seen and not _is_one_repeated_digit(code):
                break
        else:
            raise RuntimeError("the random source does not look random: "
                               "no new valid code after many draws")
        seen.add(code)
        codes.append(code)
    return tuple(Secret(code) for code in codes)


def new_set_id(random: RandomSource) -> str:
    """A fresh set id: 128 random bits as 32 lowercase hex characters.

    Args:
        random: ``n -> n random bytes``.

    Returns:
        The id, e.g. ``"3f2a...e9"`` (32 characters).

    Raises:
        RuntimeError: ``random`` returned the wrong number of bytes.
    """
    return _read(random, SET_ID_BYTES).hex()


def hash_codes(keys: Keys, set_id: str, user_id: int,
               codes: Iterable[Secret]) -> tuple[bytes, ...]:
    """The keyed hashes to store for a set, in the order of ``codes``.

    Args:
        keys: the server's purpose keys (``code_key`` is used).
        set_id: the set the codes belong to; bound into each hash.
        user_id: the owner; bound into each hash.
        codes: the plaintext codes from ``generate_codes``.

    Returns:
        One 32-byte HMAC-SHA256 per code.
    """
    return tuple(keys.code_hash(set_id, user_id, code.reveal()) for code in codes)


def find_code(keys: Keys, emergency: EmergencySet, code: bytes) -> EmergencyCode | None:
    """The code of ``emergency`` whose stored hash matches the candidate, used or not.

    The candidate is hashed once (bound to this set and its user, so a code of another set
    or another user never matches) and compared against every code of the set with
    ``hmac.compare_digest``, without stopping at the first match, so the work does not
    depend on which code (if any) matched. Whether the code is already used is the
    caller's to judge (``EmergencyCode.used_at``), as is whether the set is active.

    Args:
        keys: the server's purpose keys.
        emergency: the user's set, with all its codes.
        code: the candidate code part of the passcode (ASCII digits).

    Returns:
        The matching code, or ``None``.
    """
    candidate = keys.code_hash(emergency.id, emergency.user_id, code)
    match: EmergencyCode | None = None
    for stored in emergency.codes:
        is_equal = hmac.compare_digest(candidate, stored.code_hash)  # every code, no early exit
        if is_equal and match is None:
            match = stored
    return match


def _read(random: RandomSource, size: int) -> bytes:
    data = random(size)
    if len(data) != size:
        raise RuntimeError(f"the random source returned {len(data)} bytes, expected {size}")
    return data


def _draw_digits(random: RandomSource, length: int) -> bytes:
    """``length`` uniform ASCII digits, drawing only as many bytes as still needed."""
    digits = bytearray()
    while len(digits) < length:
        for octet in _read(random, length - len(digits)):
            if octet < _ACCEPT_BELOW:
                digits.append(0x30 + octet % 10)
    return bytes(digits)


def _is_one_repeated_digit(code: bytes) -> bool:
    return code.count(code[:1]) == len(code)


def candidate_hash(keys: Keys, emergency: EmergencySet, password: bytes) -> bytes | None:
    """The keyed hash the passcode's code part would have in ``emergency``, or None when
    the passcode cannot hold a code of this set (too short, not digits).

    The request path looks up only this hash instead of reading every code of the set;
    ``find_code`` then decides as usual on what was found.
    """
    parts = split_passcode(password, emergency.code_length)
    if parts is None:
        return None
    return keys.code_hash(emergency.id, emergency.user_id, parts[1])

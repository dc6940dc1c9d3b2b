"""Emergency code sets: generation (uniform digits, distinct, no repeated-digit code, ranges),
set ids, keyed hashes bound to set and user, and the constant-work match."""

from __future__ import annotations

import random as stdlib_random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Callable, Iterable

import pytest

from radiusd.crypto import Keys
from radiusd.emergency import codes as codes_module
from radiusd.emergency.codes import find_code, generate_codes, hash_codes, new_set_id
from radiusd.model import EmergencyCode, EmergencySet, Secret

NOW = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)
KEYS = Keys.from_master(bytes(range(32)))
OTHER_KEYS = Keys.from_master(bytes(range(1, 33)))


def seeded(seed: int) -> Callable[[int], bytes]:
    """A deterministic RandomSource (never for production: Mersenne Twister)."""
    return stdlib_random.Random(seed).randbytes


def scripted(data: Iterable[int]) -> Callable[[int], bytes]:
    """A RandomSource that returns the given bytes in order, then fails the test."""
    stream = iter(data)

    def take(size: int) -> bytes:
        chunk = bytes(b for _, b in zip(range(size), stream))
        assert len(chunk) == size, "the scripted random source ran dry"
        return chunk

    return take


def digits_as_bytes(text: str) -> list[int]:
    return [int(c) for c in text]  # byte value 0..9 maps to the same digit


def make_set(code_values: Iterable[bytes], *, set_id: str = "a" * 32, user_id: int = 7,
             used: Iterable[int] = (), keys: Keys = KEYS) -> EmergencySet:
    used_positions = set(used)
    codes = tuple(
        EmergencyCode(id=100 + position, position=position,
                      code_hash=keys.code_hash(set_id, user_id, value),
                      used_at=NOW if position in used_positions else None)
        for position, value in enumerate(code_values, 1))
    return EmergencySet(id=set_id, user_id=user_id, code_length=8, issued_at=NOW,
                        expires_at=NOW + timedelta(hours=72), issued_by="cli", reason="test",
                        codes=codes)


# --- generate_codes -------------------------------------------------------------------------


@pytest.mark.parametrize("count,length", [(1, 6), (10, 8), (100, 12), (100, 6), (37, 9)])
def test_generated_codes_have_requested_count_and_length_of_ascii_digits(count: int,
                                                                         length: int) -> None:
    for seed in range(20):
        codes = generate_codes(seeded(seed), count, length)
        assert len(codes) == count
        assert all(isinstance(code, Secret) for code in codes)
        assert all(re.fullmatch(rb"[0-9]{%d}" % length, code.reveal()) for code in codes)


def test_generated_codes_are_distinct_and_never_one_repeated_digit_over_many_draws() -> None:
    for seed in range(200):
        values = [code.reveal() for code in generate_codes(seeded(seed), 100, 6)]
        assert len(set(values)) == len(values)
        assert not any(len(set(value)) == 1 for value in values)


def test_generated_digits_are_roughly_uniform() -> None:
    digits = Counter()
    for seed in range(10):
        for code in generate_codes(seeded(seed), 100, 10):
            digits.update(code.reveal())
    total = sum(digits.values())
    assert total == 10_000
    assert set(digits) == set(b"0123456789")
    # Expected 1000 each; the standard deviation is 30, so ±150 is a 5-sigma bound.
    assert all(850 <= n <= 1150 for n in digits.values()), digits


def test_bytes_from_250_up_are_rejected_not_folded_into_digits() -> None:
    # 250..255 would be 0..5 under a plain modulo: the bias rejection sampling avoids.
    source = scripted([250, 251, 252, 253, 254, 255, 1, 12, 249, 10, 0, 99])
    assert generate_codes(source, 1, 6)[0].reveal() == b"129009"


def test_code_of_one_repeated_digit_is_drawn_again() -> None:
    source = scripted(digits_as_bytes("777777") + digits_as_bytes("123456"))
    assert [c.reveal() for c in generate_codes(source, 1, 6)] == [b"123456"]


def test_duplicate_code_within_a_set_is_drawn_again() -> None:
    source = scripted(digits_as_bytes("123456" "123456" "654321"))
    assert [c.reveal() for c in generate_codes(source, 2, 6)] == [b"123456", b"654321"]


def test_same_seed_gives_same_codes() -> None:
    assert generate_codes(seeded(3), 10, 8) == generate_codes(seeded(3), 10, 8)
    assert generate_codes(seeded(3), 10, 8) != generate_codes(seeded(4), 10, 8)


@pytest.mark.parametrize("count", [0, -1, 101, 1000])
def test_count_outside_1_to_100_is_refused(count: int) -> None:
    with pytest.raises(ValueError, match="count"):
        generate_codes(seeded(1), count, 8)


@pytest.mark.parametrize("length", [0, 5, 13, 32])
def test_length_outside_6_to_12_is_refused(length: int) -> None:
    with pytest.raises(ValueError, match="length"):
        generate_codes(seeded(1), 10, length)


def test_random_source_of_constant_bytes_fails_instead_of_looping_forever() -> None:
    with pytest.raises(RuntimeError, match="random"):
        generate_codes(lambda size: bytes(size), 1, 6)


def test_random_source_returning_too_few_bytes_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="random"):
        generate_codes(lambda size: b"\x01", 1, 6)


def test_codes_never_print() -> None:
    codes = generate_codes(seeded(1), 3, 8)
    for code in codes:
        assert code.reveal().decode() not in repr(codes) + str(code)


# --- new_set_id -----------------------------------------------------------------------------


def test_set_id_is_128_bits_as_32_lowercase_hex() -> None:
    requested: list[int] = []

    def source(size: int) -> bytes:
        requested.append(size)
        return bytes(range(0xA0, 0xA0 + size))

    set_id = new_set_id(source)
    assert requested == [16]
    assert set_id == bytes(range(0xA0, 0xB0)).hex()
    assert re.fullmatch(r"[0-9a-f]{32}", set_id)


def test_set_ids_from_different_draws_differ() -> None:
    source = seeded(5)
    assert len({new_set_id(source) for _ in range(1000)}) == 1000


# --- hash_codes -----------------------------------------------------------------------------


def test_hash_codes_are_the_keyed_hashes_in_code_order() -> None:
    codes = (Secret(b"48201937"), Secret(b"11223344"))
    hashes = hash_codes(KEYS, "s" * 32, 7, codes)
    assert hashes == (KEYS.code_hash("s" * 32, 7, b"48201937"),
                      KEYS.code_hash("s" * 32, 7, b"11223344"))
    assert all(len(h) == 32 for h in hashes)
    assert b"48201937" not in b"".join(hashes)


def test_hash_of_the_same_code_differs_by_set_user_and_key() -> None:
    code = (Secret(b"48201937"),)
    base = hash_codes(KEYS, "a" * 32, 7, code)
    assert base != hash_codes(KEYS, "b" * 32, 7, code)
    assert base != hash_codes(KEYS, "a" * 32, 8, code)
    assert base != hash_codes(OTHER_KEYS, "a" * 32, 7, code)


# --- find_code ------------------------------------------------------------------------------


VALUES = (b"48201937", b"11223344", b"90817263")


def test_find_code_returns_the_matching_code() -> None:
    emergency = make_set(VALUES)
    found = find_code(KEYS, emergency, b"11223344")
    assert found is not None and found.position == 2 and found.id == 102


def test_find_code_returns_none_for_a_wrong_code() -> None:
    emergency = make_set(VALUES)
    assert find_code(KEYS, emergency, b"11223345") is None
    assert find_code(KEYS, emergency, b"") is None
    assert find_code(KEYS, emergency, b"4820193") is None


def test_find_code_returns_a_used_code_so_the_caller_can_tell_it_was_used() -> None:
    emergency = make_set(VALUES, used=[1])
    found = find_code(KEYS, emergency, b"48201937")
    assert found is not None and found.position == 1 and found.used_at == NOW


def test_code_hashed_for_another_set_never_matches() -> None:
    # Same plaintext codes and user, hashes made for set "a...": replayed into set "b...".
    original = make_set(VALUES, set_id="a" * 32)
    moved = EmergencySet(id="b" * 32, user_id=original.user_id, code_length=8, issued_at=NOW,
                         expires_at=original.expires_at, issued_by="cli", reason="test",
                         codes=original.codes)
    assert find_code(KEYS, original, b"48201937") is not None
    assert find_code(KEYS, moved, b"48201937") is None


def test_code_hashed_for_another_user_never_matches() -> None:
    original = make_set(VALUES, user_id=7)
    other_user = EmergencySet(id=original.id, user_id=8, code_length=8, issued_at=NOW,
                              expires_at=original.expires_at, issued_by="cli", reason="test",
                              codes=original.codes)
    assert find_code(KEYS, other_user, b"48201937") is None


def test_code_of_another_set_is_not_found_in_this_set() -> None:
    mine = make_set(VALUES, set_id="a" * 32)
    assert find_code(KEYS, mine, b"55667788") is None
    theirs = make_set((b"55667788",), set_id="b" * 32)
    assert find_code(KEYS, theirs, b"55667788") is not None


def test_code_hashed_under_another_key_never_matches() -> None:
    emergency = make_set(VALUES, keys=OTHER_KEYS)
    assert find_code(KEYS, emergency, b"48201937") is None


def test_find_code_in_a_set_without_codes_is_none() -> None:
    assert find_code(KEYS, make_set(()), b"48201937") is None


class CountingKeys:
    """Keys that count ``code_hash`` calls (duck-typed: find_code needs only code_hash)."""

    def __init__(self) -> None:
        self.calls = 0

    def code_hash(self, set_id: str, user_id: int, code: bytes) -> bytes:
        self.calls += 1
        return KEYS.code_hash(set_id, user_id, code)


@pytest.mark.parametrize("candidate", [b"48201937", b"90817263", b"00000001"])
def test_find_code_hashes_once_and_compares_every_code_whatever_matches(
        candidate: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real_compare = codes_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real_compare(a, b)

    monkeypatch.setattr(codes_module.hmac, "compare_digest", spy)
    emergency = make_set(VALUES)
    keys = CountingKeys()
    find_code(keys, emergency, candidate)  # type: ignore[arg-type]
    assert keys.calls == 1
    assert compared == [code.code_hash for code in emergency.codes]

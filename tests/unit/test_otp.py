"""HOTP/TOTP against the RFC vectors, matching windows, replay, base32 seeds, otpauth URIs."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest

from radiusd import otp

RFC4226_SEED = b"12345678901234567890"
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
UTC = timezone.utc


def at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


# RFC 4226 Appendix D
RFC4226_CODES = ["755224", "287082", "359152", "969429", "338314",
                 "254676", "287922", "162583", "399871", "520489"]


@pytest.mark.parametrize("counter,expected", list(enumerate(RFC4226_CODES)))
def test_hotp_matches_rfc4226_appendix_d(counter: int, expected: str) -> None:
    assert otp.hotp(RFC4226_SEED, counter) == expected


# RFC 6238 Appendix B: (time, algorithm, TOTP with 8 digits)
RFC6238_ROWS = [
    (59, "SHA1", "94287082"), (59, "SHA256", "46119246"), (59, "SHA512", "90693936"),
    (1111111109, "SHA1", "07081804"), (1111111109, "SHA256", "68084774"),
    (1111111109, "SHA512", "25091201"),
    (1111111111, "SHA1", "14050471"), (1111111111, "SHA256", "67062674"),
    (1111111111, "SHA512", "99943326"),
    (1234567890, "SHA1", "89005924"), (1234567890, "SHA256", "91819424"),
    (1234567890, "SHA512", "93441116"),
    (2000000000, "SHA1", "69279037"), (2000000000, "SHA256", "90698825"),
    (2000000000, "SHA512", "38618901"),
    (20000000000, "SHA1", "65353130"), (20000000000, "SHA256", "77737706"),
    (20000000000, "SHA512", "47863826"),
]


@pytest.mark.parametrize("unix,algorithm,expected", RFC6238_ROWS)
def test_totp_matches_rfc6238_appendix_b(unix: int, algorithm: str, expected: str) -> None:
    step = otp.totp_step(at(unix), 30)
    assert otp.hotp(SEEDS[algorithm], step, 8, algorithm) == expected


@pytest.mark.parametrize("unix,algorithm,expected", RFC6238_ROWS)
def test_match_totp_accepts_rfc6238_vectors(unix: int, algorithm: str, expected: str) -> None:
    found = otp.match_totp(SEEDS[algorithm], expected, at(unix), period=30, digits=8,
                           algorithm=algorithm, last_used=-1)
    assert found == otp.OtpMatch(otp.totp_step(at(unix), 30))


def test_totp_step_is_floor_of_unix_time_over_period() -> None:
    assert otp.totp_step(at(59)) == 1
    assert otp.totp_step(at(60)) == 2
    assert otp.totp_step(at(0), 30) == 0
    assert otp.totp_step(at(1111111109)) == 0x23523EC  # RFC 6238 Appendix B table
    assert otp.totp_step(at(20000000000)) == 0x27BC86AA
    # exact on sub-second times, also in another time zone
    assert otp.totp_step(datetime(1970, 1, 1, 0, 0, 59, 999999, tzinfo=UTC)) == 1
    assert otp.totp_step(datetime(1970, 1, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == 2


def test_totp_step_refuses_naive_time_and_bad_period() -> None:
    with pytest.raises(ValueError, match="aware"):
        otp.totp_step(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="period"):
        otp.totp_step(at(0), 0)


def test_hotp_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        otp.hotp(RFC4226_SEED, 0, 6, "MD5")
    with pytest.raises(ValueError, match="digits"):
        otp.hotp(RFC4226_SEED, 0, 5)
    with pytest.raises(ValueError, match="counter"):
        otp.hotp(RFC4226_SEED, -1)
    with pytest.raises(ValueError, match="counter"):
        otp.hotp(RFC4226_SEED, 2**64)


def test_hotp_algorithm_is_case_insensitive() -> None:
    assert otp.hotp(SEEDS["SHA256"], 1, 8, "sha256") == "46119246"


# --- TOTP window and replay ---------------------------------------------------------------

NOW = at(1_700_000_000)
STEP = otp.totp_step(NOW)


def totp_code(step: int) -> str:
    return otp.hotp(RFC4226_SEED, step)


def match_totp(code: str, last_used: int = -1) -> otp.OtpMatch:
    return otp.match_totp(RFC4226_SEED, code, NOW, period=30, digits=6, algorithm="SHA1",
                          last_used=last_used)


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_totp_accepts_one_step_either_side(offset: int) -> None:
    found = match_totp(totp_code(STEP + offset))
    assert found.is_match and found.value == STEP + offset and not found.is_replay


@pytest.mark.parametrize("offset", [-2, 2])
def test_totp_refuses_two_steps_away(offset: int) -> None:
    assert match_totp(totp_code(STEP + offset)) == otp.NO_MATCH


def test_totp_refuses_replay_of_used_step() -> None:
    found = match_totp(totp_code(STEP), last_used=STEP)
    assert found == otp.OtpMatch(None, is_replay=True)
    assert not found.is_match


def test_totp_refuses_earlier_step_after_later_one_was_used() -> None:
    assert match_totp(totp_code(STEP - 1), last_used=STEP) == otp.OtpMatch(None, is_replay=True)


def test_totp_accepts_next_step_after_used_one() -> None:
    assert match_totp(totp_code(STEP + 1), last_used=STEP) == otp.OtpMatch(STEP + 1)


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "٠١٢٣٤٥", "\udcff" * 6])
def test_totp_never_matches_malformed_codes(code: str) -> None:
    assert match_totp(code) == otp.NO_MATCH


def test_totp_window_is_a_parameter() -> None:
    found = otp.match_totp(RFC4226_SEED, totp_code(STEP - 2), NOW, period=30, digits=6,
                           algorithm="SHA1", last_used=-1, window=2)
    assert found == otp.OtpMatch(STEP - 2)


# --- HOTP look-ahead and replay -----------------------------------------------------------


def match_hotp(counter: int, last_used: int) -> otp.OtpMatch:
    return otp.match_hotp(RFC4226_SEED, RFC4226_CODES[counter], digits=6, algorithm="SHA1",
                          last_used=last_used)


def test_hotp_accepts_next_counter() -> None:
    assert match_hotp(0, last_used=-1) == otp.OtpMatch(0)
    assert match_hotp(5, last_used=4) == otp.OtpMatch(5)


def test_hotp_accepts_look_ahead_of_10_and_resynchronises() -> None:
    # last_used=-1: counters 0..9 are the look-ahead; 9 is ten ahead of "next" = 0
    assert match_hotp(9, last_used=-1) == otp.OtpMatch(9)


def test_hotp_refuses_eleven_ahead() -> None:
    # Appendix D goes to counter 9, so compute counter 11 for last_used=0.
    code = otp.hotp(RFC4226_SEED, 11)
    found = otp.match_hotp(RFC4226_SEED, code, digits=6, algorithm="SHA1", last_used=0)
    assert found == otp.NO_MATCH
    found = otp.match_hotp(RFC4226_SEED, code, digits=6, algorithm="SHA1", last_used=1)
    assert found == otp.OtpMatch(11)


def test_hotp_refuses_replay_of_last_counter() -> None:
    assert match_hotp(3, last_used=3) == otp.OtpMatch(None, is_replay=True)


def test_hotp_look_ahead_is_a_parameter() -> None:
    found = otp.match_hotp(RFC4226_SEED, RFC4226_CODES[5], digits=6, algorithm="SHA1",
                           last_used=-1, look_ahead=3)
    assert found == otp.NO_MATCH


# --- seeds ----------------------------------------------------------------------------------

RFC4226_SEED_BASE32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


@pytest.mark.parametrize("text", [
    RFC4226_SEED_BASE32,
    RFC4226_SEED_BASE32.lower(),
    "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
    " GEZDGNBVGY3TQOJQ\tGEZDGNBVGY3TQOJQ\n",
])
def test_parse_base32_seed_accepts_what_admins_paste(text: str) -> None:
    assert otp.parse_base32_seed(text) == RFC4226_SEED


def test_parse_base32_seed_accepts_missing_or_present_padding() -> None:
    seed = bytes(range(11))  # 11 bytes: 88 bits, base32 needs 3 padding characters
    encoded = base64.b32encode(seed).decode()
    assert encoded.endswith("===")
    assert otp.parse_base32_seed(encoded) == seed
    assert otp.parse_base32_seed(encoded.rstrip("=")) == seed


def test_parse_base32_seed_accepts_80_bits() -> None:
    seed = bytes(range(10))
    assert otp.parse_base32_seed(base64.b32encode(seed).decode()) == seed


@pytest.mark.parametrize("text", ["", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ1", "GEZDGNBVGY3TQOJQ!",
                                  "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQA", "GEZDÉNBVGY3TQOJQ"])
def test_parse_base32_seed_refuses_bad_text(text: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        otp.parse_base32_seed(text)
    message = str(excinfo.value)
    assert "base32" in message or "too short" in message
    if text:
        assert text not in message  # the secret is not repeated


def test_parse_base32_seed_refuses_seed_shorter_than_80_bits() -> None:
    with pytest.raises(ValueError, match="too short: 72 bits, at least 80"):
        otp.parse_base32_seed(base64.b32encode(bytes(9)).decode())


def test_parse_base32_seed_error_is_not_valid_base32() -> None:
    with pytest.raises(ValueError, match="is not valid base32"):
        otp.parse_base32_seed("not base32 at all 1")


def test_generate_seed_uses_injected_random() -> None:
    calls: list[int] = []

    def random(n: int) -> bytes:
        calls.append(n)
        return bytes([7]) * n

    assert otp.generate_seed(random) == bytes([7]) * 20
    assert otp.generate_seed(random, 32) == bytes([7]) * 32
    assert calls == [20, 32]


def test_generate_seed_refuses_short_or_wrong_sized_output() -> None:
    with pytest.raises(ValueError):
        otp.generate_seed(lambda n: bytes(n), 9)
    with pytest.raises(ValueError):
        otp.generate_seed(lambda n: bytes(n - 1))


# --- otpauth URI ------------------------------------------------------------------------------


def test_otpauth_uri_totp_matches_key_uri_format() -> None:
    uri = otp.otpauth_uri(kind="totp", issuer="radiusd", account="alice", seed=RFC4226_SEED,
                          digits=6, period=30, counter=0, algorithm="SHA1")
    assert uri == ("otpauth://totp/radiusd:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
                   "&issuer=radiusd&algorithm=SHA1&digits=6&period=30")


def test_otpauth_uri_hotp_carries_next_counter_not_period() -> None:
    uri = otp.otpauth_uri(kind="hotp", issuer="radiusd", account="bob", seed=bytes(range(11)),
                          digits=8, period=30, counter=42, algorithm="sha256")
    assert uri == ("otpauth://hotp/radiusd:bob?secret=AAAQEAYEAUDAOCAJBI"
                   "&issuer=radiusd&algorithm=SHA256&digits=8&counter=42")


def test_otpauth_uri_percent_encodes_label_and_parameters() -> None:
    uri = otp.otpauth_uri(kind="totp", issuer="ACME Co&x", account="jo doe@example.org:1",
                          seed=RFC4226_SEED, digits=6, period=60, counter=0, algorithm="SHA1")
    parts = urlsplit(uri)
    assert parts.path == "/ACME%20Co%26x:jo%20doe%40example.org%3A1"
    assert "+" not in uri and " " not in uri
    assert dict(parse_qsl(parts.query)) == {
        "secret": RFC4226_SEED_BASE32, "issuer": "ACME Co&x", "algorithm": "SHA1",
        "digits": "6", "period": "60"}
    assert "issuer=ACME%20Co%26x" in parts.query


def test_otpauth_uri_secret_round_trips_through_parse() -> None:
    seed = bytes(range(20))
    uri = otp.otpauth_uri(kind="totp", issuer="radiusd", account="a", seed=seed, digits=6,
                          period=30, counter=0, algorithm="SHA1")
    secret = dict(parse_qsl(urlsplit(uri).query))["secret"]
    assert "=" not in secret
    assert otp.parse_base32_seed(secret) == seed


def test_otpauth_uri_refuses_unknown_kind_and_algorithm() -> None:
    common = dict(issuer="radiusd", account="a", seed=RFC4226_SEED, digits=6, period=30,
                  counter=0)
    with pytest.raises(ValueError, match="totp or hotp"):
        otp.otpauth_uri(kind="sms", algorithm="SHA1", **common)
    with pytest.raises(ValueError, match="algorithm"):
        otp.otpauth_uri(kind="totp", algorithm="MD5", **common)

"""Splitting PIN + code by code length, and the PIN format (SPEC: 4–8 letters or digits)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from radiusd.passcode import split_passcode, validate_pin


@pytest.mark.parametrize("passcode,length,expected", [
    (b"4821937201", 6, (b"4821", b"937201")),
    (b"937201", 6, (b"", b"937201")),
    (b"abcd12345678", 8, (b"abcd", b"12345678")),
    (b"4821937201", 8, (b"48", b"21937201")),
    (b"\xff\x00pin123456", 6, (b"\xff\x00pin", b"123456")),
])
def test_split_takes_last_code_length_octets_as_code(passcode: bytes, length: int,
                                                     expected: tuple[bytes, bytes]) -> None:
    assert split_passcode(passcode, length) == expected


@pytest.mark.parametrize("passcode,length", [
    (b"", 6),
    (b"12345", 6),
    (b"1234567", 8),
])
def test_split_refuses_passcode_shorter_than_code(passcode: bytes, length: int) -> None:
    assert split_passcode(passcode, length) is None


@pytest.mark.parametrize("passcode", [
    b"4821 93720",        # space in the code part
    b"482193720a",
    b"4821-93720",
    b"4821\xd9\xa0\xd9\xa1\xd9\xa2",  # Arabic-Indic digits in UTF-8 are not ASCII digits
    b"4821+93720",
])
def test_split_refuses_non_digit_code(passcode: bytes) -> None:
    assert split_passcode(passcode, 6) is None


def test_split_refuses_nonsensical_code_length() -> None:
    with pytest.raises(ValueError):
        split_passcode(b"123456", 0)


@given(st.binary(max_size=40), st.integers(min_value=1, max_value=12))
def test_split_is_a_partition_or_none(passcode: bytes, length: int) -> None:
    parts = split_passcode(passcode, length)
    if parts is None:
        assert len(passcode) < length or not passcode[-length:].isdigit()
    else:
        pin_part, code = parts
        assert pin_part + code == passcode and len(code) == length
        assert all(48 <= octet <= 57 for octet in code)


@pytest.mark.parametrize("pin", ["4821", "abcd", "A1b2C3d4", "00000000", "Zz9y"])
def test_validate_pin_accepts_4_to_8_ascii_letters_or_digits(pin: str) -> None:
    validate_pin(pin)


@pytest.mark.parametrize("pin", ["", "123", "123456789", "12 34", "12-34", "1234\n", "ÄBCD",
                                 "١٢٣٤", "pin!", "\x001234"])
def test_validate_pin_refuses_other_pins(pin: str) -> None:
    with pytest.raises(ValueError, match="^PIN must be 4–8 letters or digits$"):
        validate_pin(pin)

"""The bounds of the self-service policy: one table (``settings.BOUNDS``), enforced where a
value is saved, read back from the database, and where a set is issued (issue 20, 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from radiusd import settings as policy
from radiusd.emergency import codes, issuing
from radiusd.settings import Settings, parse_setting, settings_from_rows, stored_problems


@pytest.mark.parametrize("key,value,spelled_range", [
    ("emergency.lifetime", "1000d", ("1m", "90d")),
    ("emergency.lifetime", "5s", ("1m", "90d")),
    ("emergency.lifetime", "0", ("1m", "90d")),
    ("emergency.codes_per_set", "0", ("1", "100")),
    ("emergency.codes_per_set", "101", ("1", "100")),
    ("emergency.code_length", "5", ("6", "12")),
    ("emergency.code_length", "13", ("6", "12")),
])
def test_a_value_out_of_bounds_is_refused_naming_the_key_and_the_range(key, value,
                                                                       spelled_range):
    """Issue 20 (1): `settings set emergency.lifetime 1000d` (or 5s) was accepted."""
    with pytest.raises(policy.OutOfBounds) as refused:
        parse_setting(key, value)
    message = str(refused.value)
    assert key in message
    assert f"between {spelled_range[0]} and {spelled_range[1]}" in message


@pytest.mark.parametrize("key,value", [("emergency.lifetime", "1m"),
                                       ("emergency.lifetime", "90d"),
                                       ("emergency.codes_per_set", "1"),
                                       ("emergency.codes_per_set", "100"),
                                       ("emergency.code_length", "6"),
                                       ("emergency.code_length", "12")])
def test_the_bounds_themselves_are_allowed(key, value):
    """Issue 20 (1): the bounds are inclusive."""
    parse_setting(key, value)


def test_a_stored_value_out_of_bounds_reads_as_the_default_and_is_reported():
    """Issue 20 (1): a lifetime of 1000d written by an earlier version (or by hand) must not
    brick issuing: it reads as the default 72h, and the shell can warn about it."""
    rows = {"emergency.lifetime": "1000d", "emergency.codes_per_set": "500",
            "emergency.code_length": "9"}
    settings = settings_from_rows(rows)
    assert settings.lifetime == timedelta(hours=72) and settings.codes_per_set == 10
    assert settings.code_length == 9
    problems = list(stored_problems(rows).values())
    assert list(stored_problems(rows)) == ["emergency.codes_per_set", "emergency.lifetime"]
    assert "emergency.codes_per_set = '500'" in problems[0]  # in SPEC order
    assert "emergency.lifetime = '1000d'" in problems[1] and "72h" in problems[1]
    assert "between 1m and 90d" in problems[1]
    # A set issued on that policy gets the default, within the bounds.
    assert issuing.check_request(settings, None, None) == (10, timedelta(hours=72))


def test_issuing_and_code_generation_use_the_same_bounds_table():
    """Issue 20 (1): one rule for the bounds (they were written out in three modules)."""
    assert (issuing.MIN_LIFETIME, issuing.MAX_LIFETIME) == policy.BOUNDS["emergency.lifetime"]
    assert (issuing.MIN_COUNT, issuing.MAX_COUNT) == policy.BOUNDS["emergency.codes_per_set"]
    assert (codes.MIN_LENGTH, codes.MAX_LENGTH) == policy.BOUNDS["emergency.code_length"]


@pytest.mark.parametrize("count,lifetime,field,words", [
    (101, None, "count", "the number of codes must be between 1 and 100, not 101"),
    (None, timedelta(days=1000), "lifetime",
     "the lifetime must be between 1m and 90d, not 1000d"),
    (None, timedelta(seconds=5), "lifetime", "the lifetime must be between 1m and 90d, not 5s"),
])
def test_issuing_refuses_out_of_range_without_naming_a_cli_flag(count, lifetime, field, words):
    """Issue 20 (1): the shared issuing code said `--lifetime must be ...` to every caller,
    the self-service console's end user included."""
    with pytest.raises(issuing.OutOfRange) as refused:
        issuing.check_request(Settings(), count, lifetime)
    assert refused.value.field == field
    assert str(refused.value) == words and "--" not in str(refused.value)
    assert refused.value.message_for(f"--{field}").startswith(f"--{field} must be between")


def test_an_admin_may_exceed_the_policy_within_the_hard_bounds():
    """Issue 20 (1): the policy is the default, not a cap (CLI and admin web alike)."""
    settings = Settings(codes_per_set=5, lifetime=timedelta(hours=8))
    assert issuing.check_request(settings, 100, timedelta(days=90)) == (100, timedelta(days=90))
    assert issuing.check_request(settings, None, None) == (5, timedelta(hours=8))

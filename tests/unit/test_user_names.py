"""The name rule of the CLI and consoles (``accounts.validate_user_name``) against the rule a
User-Name from the wire must pass (``wire_text.user_name_problem``): every name radiusd
lets an admin create is one a NAS can send and radiusd will look up."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from radiusd.accounts import validate_user_name
from radiusd.errors import UsageError
from radiusd.wire_text import user_name_problem


@given(st.text(min_size=1, max_size=64))
def test_every_name_that_can_be_created_can_be_looked_up(name):
    """Issue 21 (1): a created name is never one every login of would be refused."""
    try:
        validate_user_name(name)
    except UsageError:
        return
    assert user_name_problem(name) is None


@pytest.mark.parametrize("name", [
    "csi\x9bname",                                              # C1 control (CSI)
    "nel\x85name",                                              # C1 control (NEL)
    b"m\xfcller".decode("utf-8", "surrogateescape"),            # argv that is not UTF-8
])
def test_c1_controls_and_octets_that_are_not_utf8_are_refused(name):
    """Issue 21 (1): such a name could be created from the CLI, then no NAS could log in
    with it, and it reached the database as text its driver cannot encode."""
    with pytest.raises(UsageError, match="invalid user name"):
        validate_user_name(name)

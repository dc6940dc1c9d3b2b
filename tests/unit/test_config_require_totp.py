"""radiusd.config: ``[admin_web] require_totp`` (issue 20, 13)."""

from __future__ import annotations

import pytest

from radiusd.config import check_config, load_config
from radiusd.errors import ConfigError

CLIENT = """
[[clients]]
name = "nas"
address = "10.0.0.1"
secret = "s3cret-long-enough-for-rfc2865"
"""


def test_admins_need_their_totp_by_default(tmp_path):
    """Issue 20 (13): the second factor is on unless the config turns it off."""
    path = tmp_path / "radiusd.toml"
    path.write_text(CLIENT)
    assert load_config(path).admin_web.require_totp is True


def test_require_totp_false_loads_with_a_loud_warning(tmp_path):
    """Issue 20 (13): turning the second factor off is a warning, at every start."""
    path = tmp_path / "radiusd.toml"
    path.write_text(CLIENT + "[admin_web]\nrequire_totp = false\n")
    config = load_config(path)
    assert config.admin_web.require_totp is False
    warnings = dict(config.warnings)
    assert "password alone" in warnings["admin_web.require_totp"]
    _errors, warnings = check_config(path)
    assert "admin_web.require_totp" in dict(warnings)


@pytest.mark.parametrize("value", ['"yes"', "1", '"false"'])
def test_a_bad_require_totp_is_a_config_error_naming_the_key(tmp_path, value):
    """Issue 20 (13): only true or false."""
    path = tmp_path / "radiusd.toml"
    path.write_text(CLIENT + f"[admin_web]\nrequire_totp = {value}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "admin_web.require_totp" in dict(raised.value.problems)


def test_an_unknown_admin_web_key_is_still_an_error(tmp_path):
    path = tmp_path / "radiusd.toml"
    path.write_text(CLIENT + "[admin_web]\nrequire_totps = true\n")
    errors, _warnings = check_config(path)
    assert any(key.startswith("admin_web.require_totps") for key, _m in errors), errors

"""The CLI as scripts use it: exit codes, one-line errors naming the problem, nothing
half-written (SPEC "CLI")."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta

import pytest

from support import free_udp_port, run_cli, write_server_config


@pytest.fixture()
def config(tmp_path):
    return write_server_config(tmp_path, port=free_udp_port(), secret="cli-test-secret-0123456")


@pytest.fixture()
def ready(config):
    result = run_cli(config, "init")
    assert result.returncode == 0, result.stderr
    return config


def _one_line_error(result, *needles: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_init_creates_private_key_file_and_is_idempotent(config, tmp_path):
    first = run_cli(config, "init")
    assert first.returncode == 0 and "created" in first.stdout
    key = tmp_path / "radiusd.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    second = run_cli(config, "init")
    assert second.returncode == 0 and key.read_bytes() == before


def test_commands_before_init_say_run_init_and_create_nothing(config, tmp_path):
    result = run_cli(config, "user", "list")
    _one_line_error(result, "radiusd init")
    assert not (tmp_path / "radiusd.db").exists()


def test_user_lifecycle(ready):
    assert run_cli(ready, "user", "add", "bob", "--pin", "1234").returncode == 0
    shown = run_cli(ready, "user", "show", "bob").stdout
    assert "PIN:               set" in shown and "1234" not in shown
    assert run_cli(ready, "user", "set-pin", "bob", "--clear").returncode == 0
    assert "none" in run_cli(ready, "user", "show", "bob").stdout
    assert run_cli(ready, "user", "disable", "bob").returncode == 0
    assert "disabled" in run_cli(ready, "user", "list").stdout
    assert run_cli(ready, "user", "enable", "bob").returncode == 0
    assert run_cli(ready, "user", "delete", "bob").returncode == 0
    assert "bob" not in run_cli(ready, "user", "list").stdout


@pytest.mark.parametrize("args,needles", [
    (("user", "show", "nobody"), ("nobody",)),
    (("user", "add", "x", "--pin", "12"), ("PIN",)),
    (("user", "add", "x", "--pin", "12ab!"), ("PIN",)),
    (("token", "add", "nobody"), ("nobody",)),
    (("settings", "set", "no.such", "1"), ("no.such",)),
    (("settings", "set", "emergency.codes_per_set", "500"), ("emergency.codes_per_set",)),
    (("settings", "set", "lockout.duration", "soon"), ("lockout.duration",)),
    (("token", "delete", "nobody", "T1"), ("nobody",)),
])
def test_bad_input_exits_non_zero_with_one_line(ready, args, needles):
    _one_line_error(run_cli(ready, *args), *needles)


def test_duplicate_user_and_bad_seed(ready):
    assert run_cli(ready, "user", "add", "carol").returncode == 0
    _one_line_error(run_cli(ready, "user", "add", "carol"), "carol", "exists")
    _one_line_error(run_cli(ready, "token", "add", "carol", "--secret", "not*base32!"),
                    "base32")
    assert "SERIAL" in run_cli(ready, "token", "list", "carol").stdout
    assert len(run_cli(ready, "token", "list", "carol").stdout.strip().splitlines()) == 1


def test_token_add_prints_otpauth_uri(ready):
    assert run_cli(ready, "user", "add", "dave").returncode == 0
    result = run_cli(ready, "token", "add", "dave", "--serial", "SN1")
    assert result.returncode == 0
    assert "otpauth://totp/radiusd:dave?secret=" in result.stdout
    _one_line_error(run_cli(ready, "token", "add", "dave", "--serial", "SN1"), "SN1")


def test_settings_show_and_set(ready):
    shown = run_cli(ready, "settings", "show").stdout
    assert "emergency.codes_per_set = 10" in shown and "lockout.duration = 15m" in shown
    assert run_cli(ready, "settings", "set", "emergency.lifetime", "7d").stdout.strip() == \
        "emergency.lifetime = 7d"
    assert "emergency.lifetime = 7d" in run_cli(ready, "settings", "show").stdout


@pytest.mark.parametrize("key,value,words", [
    ("emergency.lifetime", "1000d", "emergency.lifetime must be between 1m and 90d, not 1000d"),
    ("emergency.lifetime", "5s", "emergency.lifetime must be between 1m and 90d, not 5s"),
    ("emergency.codes_per_set", "101", "emergency.codes_per_set must be between 1 and 100"),
    ("emergency.code_length", "5", "emergency.code_length must be between 6 and 12"),
])
def test_settings_set_refuses_a_value_out_of_bounds(ready, key, value, words):
    """Issue 20 (1): `settings set emergency.lifetime 1000d` was accepted and bricked every
    issue path afterwards."""
    before = run_cli(ready, "settings", "show").stdout
    refused = run_cli(ready, "settings", "set", key, value)
    _one_line_error(refused, words)
    assert refused.stderr.count(key) == 1
    assert run_cli(ready, "settings", "show").stdout == before


def _store_by_hand(config, key: str, value: str) -> None:
    """A stored value no `settings set` accepts (an earlier version's, or typed in SQL)."""
    from datetime import UTC, datetime

    from radiusd.model import AuditEvent
    from radiusd.store import Store
    with Store.open(f"sqlite:///{config.parent / 'radiusd.db'}") as store:
        store.set_setting(key, value, AuditEvent(at=datetime.now(UTC), action="settings.set",
                                                 result="ok", actor="test"))


def test_a_stored_lifetime_out_of_bounds_warns_and_issues_with_the_default(ready):
    """Issue 20 (1): with 1000d stored, `emergency issue dave` said `--lifetime must be
    between 1m and 90d, not 1000d` although no --lifetime was given."""
    _store_by_hand(ready, "emergency.lifetime", "1000d")
    assert run_cli(ready, "user", "add", "dave").returncode == 0
    issued = run_cli(ready, "emergency", "issue", "dave")
    assert issued.returncode == 0, issued.stderr
    assert "--lifetime" not in issued.stderr
    assert "warning: stored setting emergency.lifetime = '1000d' is not used" in issued.stderr
    assert "the default 72h applies" in issued.stderr
    header = dict(line.split(":", 1) for line in issued.stdout.splitlines()[:8] if ":" in line)
    issued_at = datetime.fromisoformat(header["Issued"].strip())
    valid_until = datetime.fromisoformat(header["Valid until"].strip())
    assert valid_until - issued_at == timedelta(hours=72)
    shown = run_cli(ready, "settings", "show")
    assert "emergency.lifetime = 72h" in shown.stdout and "1000d" in shown.stderr
    assert run_cli(ready, "settings", "set", "emergency.lifetime", "8h").returncode == 0
    assert run_cli(ready, "settings", "show").stderr == ""


def test_cli_count_and_lifetime_may_exceed_the_policy_within_the_hard_bounds(ready):
    """Issue 20 (1): the policy is the default, not a cap, on the CLI as in the admin web;
    beyond the hard bounds, the CLI names its own flags."""
    assert run_cli(ready, "settings", "set", "emergency.lifetime", "8h").returncode == 0
    assert run_cli(ready, "settings", "set", "emergency.codes_per_set", "5").returncode == 0
    assert run_cli(ready, "user", "add", "erin").returncode == 0
    issued = run_cli(ready, "emergency", "issue", "erin", "--count", "100", "--lifetime", "90d")
    assert issued.returncode == 0, issued.stderr
    assert "100. " in issued.stdout
    _one_line_error(run_cli(ready, "emergency", "issue", "erin", "--lifetime", "91d"),
                    "--lifetime must be between 1m and 90d, not 91d")
    _one_line_error(run_cli(ready, "emergency", "issue", "erin", "--count", "101"),
                    "--count must be between 1 and 100, not 101")


def test_bad_command_line_is_one_line_exit_2(ready):
    result = run_cli(ready, "user", "frobnicate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_config_error_names_the_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[radius]\nlisten = ["127.0.0.1:99999"]\nreject_dely = "1s"\n')
    result = run_cli(bad, "user", "list")
    assert result.returncode == 1
    assert "radius.listen" in result.stderr and "radius.reject_dely" in result.stderr
    checked = run_cli(bad, "check-config")
    assert checked.returncode == 1 and "radius.listen" in checked.stdout


def test_check_config_accepts_the_shipped_default():
    from support import REPO
    result = run_cli(REPO / "config" / "radiusd.toml", "check-config")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout


def test_audit_lists_admin_actions(ready):
    run_cli(ready, "user", "add", "erin")
    out = run_cli(ready, "audit", "--user", "erin").stdout
    assert "user.add" in out and "cli" in out
    assert run_cli(ready, "audit", "prune", "--older-than", "90d").returncode == 0

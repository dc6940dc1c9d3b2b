"""The CLI as scripts use it: exit codes, one-line errors naming the problem, nothing
half-written (SPEC "CLI")."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta

import pytest

from support import (ServerProcess, assert_one_line_error, free_udp_port, run_cli,
                     write_server_config)


@pytest.fixture()
def config(tmp_path):
    return write_server_config(tmp_path, port=free_udp_port(), secret="cli-test-secret-0123456")


@pytest.fixture()
def ready(config):
    result = run_cli(config, "init")
    assert result.returncode == 0, result.stderr
    return config


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
    assert_one_line_error(result, "radiusd init")
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
    assert_one_line_error(run_cli(ready, *args), *needles)


def test_duplicate_user_and_bad_seed(ready):
    assert run_cli(ready, "user", "add", "carol").returncode == 0
    assert_one_line_error(run_cli(ready, "user", "add", "carol"), "carol", "exists")
    assert_one_line_error(run_cli(ready, "token", "add", "carol", "--secret", "not*base32!"),
                    "base32")
    assert "SERIAL" in run_cli(ready, "token", "list", "carol").stdout
    assert len(run_cli(ready, "token", "list", "carol").stdout.strip().splitlines()) == 1


def test_token_add_prints_otpauth_uri(ready):
    assert run_cli(ready, "user", "add", "dave").returncode == 0
    result = run_cli(ready, "token", "add", "dave", "--serial", "SN1")
    assert result.returncode == 0
    assert "otpauth://totp/radiusd:dave?secret=" in result.stdout
    assert_one_line_error(run_cli(ready, "token", "add", "dave", "--serial", "SN1"), "SN1")


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
    assert_one_line_error(refused, words)
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


def test_serve_warns_at_start_about_a_stored_setting_out_of_bounds(tmp_path):
    """Issue 20 (1): a stored value out of bounds is read as its default; `serve` says so
    in its log at every start, naming the key, the value and the default that applies."""
    port = free_udp_port()
    config = write_server_config(tmp_path, port=port, secret="cli-test-secret-0123456")
    assert run_cli(config, "init").returncode == 0
    _store_by_hand(config, "emergency.codes_per_set", "500")
    server = ServerProcess(directory=tmp_path, port=port, secret="cli-test-secret-0123456",
                           config=config, log_path=tmp_path / "radiusd.log")
    server.start()
    try:
        warned = [line for line in server.log_text().splitlines()
                  if "stored setting emergency.codes_per_set = '500' is not used" in line]
        assert len(warned) == 1, server.log_text()
        assert "the default 10 applies" in warned[0]
    finally:
        server.stop()
    server.cli_ok("settings", "set", "emergency.codes_per_set", "20")
    server.start()
    try:
        assert "stored setting" not in server.log_text().split("radiusd stopped")[-1]
    finally:
        server.stop()


def test_cli_count_and_lifetime_may_exceed_the_policy_within_the_hard_bounds(ready):
    """Issue 20 (1): the policy is the default, not a cap, on the CLI as in the admin web;
    beyond the hard bounds, the CLI names its own flags."""
    assert run_cli(ready, "settings", "set", "emergency.lifetime", "8h").returncode == 0
    assert run_cli(ready, "settings", "set", "emergency.codes_per_set", "5").returncode == 0
    assert run_cli(ready, "user", "add", "erin").returncode == 0
    issued = run_cli(ready, "emergency", "issue", "erin", "--count", "100", "--lifetime", "90d")
    assert issued.returncode == 0, issued.stderr
    assert "100. " in issued.stdout
    assert_one_line_error(run_cli(ready, "emergency", "issue", "erin", "--lifetime", "91d"),
                    "--lifetime must be between 1m and 90d, not 91d")
    assert_one_line_error(run_cli(ready, "emergency", "issue", "erin", "--count", "101"),
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


# --- issue 20: audit prune (5), untrusted text (6), input that slipped through (9), audit
# order and columns (12) -------------------------------------------------------------------


def _old_audit_rows(config, *ages):
    """Audit rows written ``ages`` (timedeltas) ago, straight through the Store: the CLI
    reads the real clock, so the rows are aged instead of the clock advanced."""
    from datetime import UTC, datetime

    from radiusd.app import open_store
    from radiusd.config import load_config
    from radiusd.model import AuditEvent
    store = open_store(load_config(config))
    try:
        now = datetime.now(UTC)
        for number, age in enumerate(ages):
            store.write_audit(AuditEvent(at=now - age, action="auth", result="reject",
                                         actor="radius", user_name=f"old{number}"))
    finally:
        store.close()


def _audit_json(config, *args):
    import json
    result = run_cli(config, "audit", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("older_than", ["0", "12h", "1439m"])
def test_audit_prune_under_the_minimum_retention_is_refused_without_force(ready, older_than):
    """Issue 20 (5): a prune that would delete rows younger than one day is refused (one
    line naming the retention and --force) and deletes nothing."""
    from datetime import timedelta
    run_cli(ready, "user", "add", "keepme")
    _old_audit_rows(ready, timedelta(days=3))
    before = _audit_json(ready)
    result = run_cli(ready, "audit", "prune", "--older-than", older_than)
    assert_one_line_error(result, "--older-than", "1d", "--force")
    assert _audit_json(ready) == before


def test_audit_prune_says_what_it_deletes_and_is_audited_in_the_same_transaction(ready):
    """Issue 20 (5): the prune says how many rows it will delete and how many it deleted,
    and leaves an audit.prune row (cutoff and count) that survives the prune itself."""
    from datetime import timedelta
    run_cli(ready, "user", "add", "recent")
    _old_audit_rows(ready, timedelta(days=10), timedelta(days=9), timedelta(days=8))
    result = run_cli(ready, "audit", "prune", "--older-than", "7d")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert "3 audit rows" in lines[0] and "older than 7d" in lines[0]
    assert lines[1].startswith("deleted 3 audit rows")
    rows = _audit_json(ready)
    assert [row["user"] for row in rows if row["action"] == "auth"] == []
    assert [row["action"] for row in rows] == ["user.add", "audit.prune"]
    prune = rows[-1]
    assert prune["actor"] == "cli" and prune["detail"]["deleted"] == 3
    assert prune["detail"]["older_than"][:19] in lines[0].replace("Z", "")
    assert prune["detail"]["forced"] is False


def test_audit_prune_with_force_keeps_only_its_own_row(ready):
    """Issue 20 (5): --force may prune everything; the prune's own row is still there."""
    run_cli(ready, "user", "add", "gone")
    result = run_cli(ready, "audit", "prune", "--older-than", "0", "--force")
    assert result.returncode == 0, result.stderr
    assert "deleted 1 audit rows" in result.stdout
    rows = _audit_json(ready)
    assert [row["action"] for row in rows] == ["audit.prune"]
    assert rows[0]["detail"]["deleted"] == 1 and rows[0]["detail"]["forced"] is True


RAW_CONTROL = "".join(chr(c) for c in [*range(0, 9), *range(11, 32), *range(127, 160)])


def _printable(text: str) -> bool:
    return not any(character in RAW_CONTROL for character in text)


def test_names_and_reasons_with_control_characters_are_escaped_in_every_listing(ready):
    """Issue 20 (6): a name with a right-to-left override (allowed by the name rule, which
    refuses C0 and C1 controls) and a reason with a newline and ESC print escaped in user
    list/show, emergency status and audit; --json keeps the exact values and stays valid
    JSON."""
    name = "eve\u202e2J"
    reason = "lost\nforged line\x1b[31m"
    assert run_cli(ready, "user", "add", name, "--pin", "4821").returncode == 0
    assert run_cli(ready, "token", "add", name, "--serial", "SN-EVE").returncode == 0
    issued = run_cli(ready, "emergency", "issue", name, "--reason", reason)
    assert issued.returncode == 0, issued.stderr
    outputs = {command: run_cli(ready, *command) for command in [
        ("user", "list"), ("user", "show", name), ("token", "list", name),
        ("emergency", "status", name), ("audit",), ("audit", "--user", name)]}
    for command, result in outputs.items():
        assert result.returncode == 0, (command, result.stderr)
        assert _printable(result.stdout) and "\u202e" not in result.stdout, \
            (command, result.stdout)
    assert "eve\\u202e2J" in outputs[("user", "list")].stdout
    assert "name:              eve\\u202e2J" in outputs[("user", "show", name)].stdout
    status = outputs[("emergency", "status", name)].stdout
    assert "lost\\nforged line\\x1b[31m" in status
    assert not any(line.startswith("forged") for line in status.splitlines())
    audit = outputs[("audit",)].stdout
    assert not any(line.startswith("forged") for line in audit.splitlines())
    rows = _audit_json(ready, "--user", name)
    assert {row["user"] for row in rows} == {name}
    assert reason in {row["reason"] for row in rows}


@pytest.mark.parametrize("args,needles", [
    (("audit", "--limit", "-1"), ("--limit", "-1")),
    (("audit", "--limit", "0"), ("--limit", "0")),
    (("audit", "--limit", "ten"), ("--limit", "ten")),
    (("audit", "--limit", "99999999999999999999999"), ("--limit",)),
    (("audit", "--since", "-5m"), ("--since", "negative")),
    (("audit", "--since", "0"), ("--since",)),
    (("audit", "--since", "999999999w"), ("--since",)),
    (("audit", "--since", "9999999d"), ("--since",)),
    (("audit", "prune", "--older-than", "-1d"), ("--older-than", "negative")),
    (("audit", "prune", "--older-than", "999999999w", "--force"), ("--older-than",)),
    (("settings", "set", "lockout.duration", "-5m"), ("lockout.duration", "negative")),
    (("settings", "set", "lockout.max_failures", "-3"), ("lockout.max_failures",)),
    (("token", "add", "nobody", "--digits", "0"), ("--digits",)),
    (("token", "add", "nobody", "--digits", "7"), ("--digits",)),
    (("token", "add", "nobody", "--period", "-30"), ("--period",)),
    (("token", "add", "nobody", "--period", "0"), ("--period",)),
    (("token", "add", "nobody", "--counter", "-1"), ("--counter",)),
    (("token", "add", "nobody", "--type", "hotp", "--counter", "99999999999999999999999"),
     ("--counter",)),
    (("emergency", "issue", "nobody", "--count", "0"), ("--count",)),
    (("emergency", "issue", "nobody", "--count", "-2"), ("--count",)),
    (("emergency", "issue", "nobody", "--lifetime", "-5m"), ("--lifetime", "negative")),
    (("emergency", "issue", "nobody", "--lifetime", "999999999w"), ("--lifetime",)),
    (("serve", "--workers", "0"), ("--workers",)),
    (("serve", "--workers", "-1"), ("--workers",)),
    (("serve", "--workers", "65"), ("--workers",)),
    (("user", "add", "-bob"), ("-bob", "after '--'", "user add -- -bob")),
    (("user", "show", "bob", "-x"), ("-x", "after '--'")),
    (("user", "add", "carl", "--pin", "-x12"), ("--pin", "--pin=")),
])
def test_bad_numbers_and_durations_are_one_line_errors(ready, args, needles):
    """Issue 20 (9): every integer and duration option, and values that start with '-':
    one line naming the option (or key), non-zero exit, no traceback."""
    assert_one_line_error(run_cli(ready, *args), *needles)


def test_values_that_look_negative_reach_the_command(ready):
    """Issue 20 (9): '-2+3' is a user name, not an unknown option; a name that starts with
    '-' and a letter goes after '--'."""
    assert run_cli(ready, "user", "add", "-2+3").returncode == 0
    assert "name:              -2+3" in run_cli(ready, "user", "show", "-2+3").stdout
    assert run_cli(ready, "user", "add", "--", "-bob").returncode == 0
    assert "name:              -bob" in run_cli(ready, "user", "show", "--", "-bob").stdout


def test_audit_limit_keeps_the_newest_rows(ready):
    """Issue 20 (9, 12): --limit N is 1 or more and keeps the newest N rows."""
    for name in ("first", "second", "third"):
        assert run_cli(ready, "user", "add", name).returncode == 0
    text = run_cli(ready, "audit", "--limit", "2").stdout.strip().splitlines()
    assert len(text) == 2 and "second" in text[0] and "third" in text[1]
    assert [row["user"] for row in _audit_json(ready, "--limit", "2")] == ["second", "third"]


def test_audit_text_and_json_are_both_oldest_first(ready):
    """Issue 20 (12): text and --json list the rows in one order, oldest first (the newest
    at the bottom, as in a log)."""
    for name in ("ann", "ben", "cat"):
        assert run_cli(ready, "user", "add", name).returncode == 0
    text = run_cli(ready, "audit").stdout.strip().splitlines()
    assert [line.split()[3] for line in text] == ["ann", "ben", "cat"]
    rows = _audit_json(ready)
    assert [row["user"] for row in rows] == ["ann", "ben", "cat"]
    assert [row["at"] for row in rows] == sorted(row["at"] for row in rows)


def test_audit_columns_stay_aligned_for_long_actions_and_names(ready):
    """Issue 20 (12): an action longer than 16 characters (user.set_password) and a long
    user name do not shift the columns after them."""
    import re
    long_name = "a-rather-long-user-name-of-thirty"
    assert run_cli(ready, "user", "add", "al").returncode == 0
    assert run_cli(ready, "user", "add", long_name).returncode == 0
    assert run_cli(ready, "user", "set-password", "al", "--password-stdin",
                   input="correct horse battery\n").returncode == 0
    assert run_cli(ready, "settings", "set", "lockout.max_failures", "7").returncode == 0
    lines = run_cli(ready, "audit").stdout.strip().splitlines()
    assert any("user.set_password" in line for line in lines)
    starts = [[match.start() for match in re.finditer(r"\S+", line)][:6] for line in lines]
    assert all(len(columns) == 6 for columns in starts), lines
    assert all(columns == starts[0] for columns in starts), "\n".join(lines)


def test_output_to_a_closed_pipe_exits_quietly(ready):
    """Issue 20 (9): `radiusd user show NAME | head -3`, the reader gone before the
    output: no BrokenPipeError traceback, no message, a non-zero exit (141, like SIGPIPE)."""
    import os
    import subprocess
    import sys

    from support import REPO
    assert run_cli(ready, "user", "add", "piped").returncode == 0
    for args in (("user", "show", "piped"), ("audit",), ("audit", "--json"), ("--help",)):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone: every write fails with EPIPE
        try:
            result = subprocess.run(
                [sys.executable, "-m", "radiusd.cli", "--config", str(ready), *args],
                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, cwd=REPO)
        finally:
            os.close(write_end)
        assert result.stderr == "", (args, result.stderr)
        # argparse's help swallows the write error itself (exit 0); the commands exit 141.
        assert result.returncode == (0 if args == ("--help",) else 141), (args, result)


def test_emergency_issue_to_a_closed_pipe_issues_nothing(ready):
    """Issue 20 (9): `radiusd emergency issue NAME | ...` whose reader is gone must not
    commit a set nobody received, nor revoke the set the user still has."""
    import os
    import subprocess
    import sys

    from support import REPO
    assert run_cli(ready, "user", "add", "pipa").returncode == 0
    assert run_cli(ready, "emergency", "issue", "pipa", "--output",
                   str(ready.parent / "first.txt")).returncode == 0
    before = run_cli(ready, "emergency", "status", "pipa").stdout
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "radiusd.cli", "--config", str(ready), "emergency",
             "issue", "pipa"], stdout=write_end, stderr=subprocess.PIPE, text=True,
            timeout=60, cwd=REPO)
    finally:
        os.close(write_end)
    assert result.returncode == 141 and result.stderr == "", result
    assert run_cli(ready, "emergency", "status", "pipa").stdout == before
    assert "status:      active" in before

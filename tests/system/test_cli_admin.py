"""``radiusd admin``: admins of the web console managed from the CLI (issue 20, 13)."""

from __future__ import annotations

import json

import pytest

from support import assert_one_line_error, free_udp_port, run_cli, write_server_config

GOOD = "a long admin password 7"


@pytest.fixture()
def ready(tmp_path):
    config = write_server_config(tmp_path, port=free_udp_port(), secret="cli-test-secret-0123456")
    result = run_cli(config, "init")
    assert result.returncode == 0, result.stderr
    return config


def _admin(config, *args, password=None):
    return run_cli(config, "admin", *args,
                   input=None if password is None else password + "\n")


@pytest.mark.parametrize(("password", "needle"), [
    ("password1234", "most common"),
    ("Password1234!", "most common"),
    ("qwertyuiopas", "most common"),
    ("aaaaaaaaaaaa", "one character repeated"),
    ("short pass", "at least 12 characters"),
    ("rootrootroot", None),  # passes every rule: not the name, not common
])
def test_admin_passwords_from_the_deny_list_or_too_short_are_refused(ready, password, needle):
    """Issue 20 (13): password1234, aaaaaaaaaaaa and the like are refused, in one line."""
    result = _admin(ready, "add", "root", "--password-stdin", password=password)
    if needle is None:
        assert result.returncode == 0, result.stderr
        return
    assert_one_line_error(result, needle, returncode=1)
    assert password not in result.stderr
    assert "root" not in run_cli(ready, "admin", "list").stdout


def test_list_set_password_reset_totp_and_delete_are_audited(ready):
    """Issue 20 (13): the CLI manages admins; each action writes its audit row."""
    assert _admin(ready, "add", "root", "--password-stdin", password=GOOD).returncode == 0
    assert _admin(ready, "add", "backup", "--password-stdin", password=GOOD).returncode == 0
    listed = _admin(ready, "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["NAME", "TOTP", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["backup", "root"]
    assert "not enrolled" in lines[2]
    changed = _admin(ready, "set-password", "root", "--password-stdin",
                     password="another admin password")
    assert changed.returncode == 0 and "another" not in changed.stdout
    assert_one_line_error(_admin(ready, "set-password", "root", "--password-stdin",
                                 password="password1234"), "most common", returncode=1)
    assert _admin(ready, "reset-totp", "root").returncode == 0
    assert _admin(ready, "delete", "backup").returncode == 0
    assert "backup" not in _admin(ready, "list").stdout
    audit = json.loads(run_cli(ready, "audit", "--json").stdout)
    actions = [(row["action"], row["detail"].get("admin"), row["actor"]) for row in audit]
    for expected in [("admin.add", "root", "cli"), ("admin.add", "backup", "cli"),
                     ("admin.set_password", "root", "cli"), ("admin.reset_totp", "root", "cli"),
                     ("admin.delete", "backup", "cli")]:
        assert expected in actions
    assert GOOD not in json.dumps(audit)


def test_the_last_admin_cannot_be_deleted(ready):
    """Issue 20 (13): deleting the last admin is refused; she stays."""
    assert _admin(ready, "add", "root", "--password-stdin", password=GOOD).returncode == 0
    assert_one_line_error(_admin(ready, "delete", "root"), "last admin", returncode=1)
    assert "root" in _admin(ready, "list").stdout


@pytest.mark.parametrize("action", ["delete", "reset-totp"])
def test_unknown_admin_is_one_line(ready, action):
    assert _admin(ready, "add", "root", "--password-stdin", password=GOOD).returncode == 0
    assert _admin(ready, "add", "spare", "--password-stdin", password=GOOD).returncode == 0
    assert_one_line_error(_admin(ready, action, "nobody"), "no admin 'nobody'", returncode=1)


def test_set_password_of_an_unknown_admin_is_one_line(ready):
    assert_one_line_error(_admin(ready, "set-password", "nobody", "--password-stdin",
                                 password="another admin password"), "no admin 'nobody'",
                          returncode=1)


def test_serve_warns_at_start_when_admins_sign_in_without_totp(tmp_path):
    """Issue 20 (13): ``[admin_web] require_totp = false`` is loud at every start."""
    from support import ServerProcess, free_tcp_port

    port, web_port = free_udp_port(), free_tcp_port()
    config = write_server_config(tmp_path, port=port, secret="cli-test-secret-0123456",
                                 web_port=web_port, extra="require_totp = false")
    server = ServerProcess(directory=tmp_path, port=port, secret="cli-test-secret-0123456",
                           config=config, log_path=tmp_path / "radiusd.log",
                           web_port=web_port)
    server.start()
    try:
        log = server.log_text()
    finally:
        server.stop()
    assert "admin_web.require_totp" in log and "password alone" in log
    checked = run_cli(config, "check-config")
    assert checked.returncode == 0 and "warning: admin_web.require_totp" in checked.stdout

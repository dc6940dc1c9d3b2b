"""A key file that is not the database's own is refused (issue 21, 7).

``init`` stores a check value of the key (a keyed hash of a fixed label, never the key) in
the ``settings`` table under ``server.key_check``; ``init``, ``serve`` and ``check-config``
then refuse another key with one line naming the key file and the database, instead of
starting and rejecting every PIN as ``bad_pin``. Through the real CLI, on SQLite and on a
throw-away PostgreSQL database.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO, ServerProcess, admin_engine, free_udp_port, pg_database, run_cli, \
    write_server_config

SECRET = "key-check-secret-0123456789"


@pytest.fixture(params=("sqlite", "postgresql"))
def database_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'radiusd.db'}"
        return
    with pg_database("radiusd_keycheck") as url:
        yield url


def _write_key(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, (secrets.token_bytes(32).hex() + "\n").encode())
    os.close(fd)


def _configs(tmp_path: Path, database_url: str) -> tuple[Path, Path, int]:
    """Two configs on one database: key A (``a/a.key``) and key B (``b/b.key``)."""
    port = free_udp_port()
    config_a = write_server_config(tmp_path / "a", port=port, secret=SECRET,
                                   database_url=database_url, key_path="a.key")
    config_b = write_server_config(tmp_path / "b", port=port, secret=SECRET,
                                   database_url=database_url, key_path="b.key")
    _write_key(tmp_path / "b" / "b.key")
    return config_a, config_b, port


def _refused(result: subprocess.CompletedProcess, key_file: Path, database: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in (result.stderr + result.stdout).splitlines()
             if "does not match" in line]
    assert len(lines) == 1, result.stderr + result.stdout
    assert str(key_file) in lines[0] and database in lines[0], lines[0]


def _shown(database_url: str) -> str:
    """The database as the refusal names it (no password)."""
    from sqlalchemy import make_url
    return make_url(database_url).render_as_string(hide_password=True).split("://", 1)[1]


def _serve(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radiusd.cli", "--config", str(config),
                           "serve"], capture_output=True, text=True, timeout=60, cwd=REPO)


def _engine(database_url: str):
    if database_url.startswith("sqlite"):
        from sqlalchemy import create_engine
        return create_engine(database_url)
    return admin_engine(database_url)


def _stored_key_check(database_url: str) -> str | None:
    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.exec_driver_sql(
                "SELECT value FROM settings WHERE key = 'server.key_check'").first()
    finally:
        engine.dispose()
    return None if row is None else row[0]


def _forget_key_check(database_url: str) -> None:
    """The database as a radiusd before the key check left it."""
    engine = _engine(database_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DELETE FROM settings WHERE key = 'server.key_check'")
    finally:
        engine.dispose()


def test_another_key_file_is_refused_by_init_serve_and_check_config(tmp_path, database_url):
    """Issue 21 (7): init with key A, then init, serve and check-config with key B (a valid
    key file of its own) exit 1 with one line naming the key file and the database; with
    key A they work."""
    config_a, config_b, port = _configs(tmp_path, database_url)
    assert run_cli(config_a, "init").returncode == 0
    key_b, shown = tmp_path / "b" / "b.key", _shown(database_url)

    _refused(run_cli(config_b, "init"), key_b, shown)
    _refused(run_cli(config_b, "check-config"), key_b, shown)
    served = _serve(config_b)
    _refused(served, key_b, shown)
    assert "radiusd ready" not in served.stdout + served.stderr

    assert run_cli(config_a, "init").returncode == 0
    checked = run_cli(config_a, "check-config")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    server = ServerProcess(directory=tmp_path / "a", port=port, secret=SECRET,
                           config=config_a, log_path=tmp_path / "a" / "radiusd.log")
    server.start()
    try:
        assert server.cli_ok("user", "add", "kc-alice", "--pin", "1234")
    finally:
        assert server.stop() == 0


def test_the_check_value_is_a_keyed_hash_never_the_key(tmp_path, database_url):
    """Issue 21 (7): what is stored tells two keys apart without holding either."""
    config_a, _config_b, _port = _configs(tmp_path, database_url)
    assert run_cli(config_a, "init").returncode == 0
    stored = _stored_key_check(database_url)
    key_hex = (tmp_path / "a" / "a.key").read_text().strip()
    assert stored and key_hex not in stored and key_hex.upper() not in stored.upper()


@pytest.mark.parametrize("first", ["init", "serve"])
def test_a_database_without_the_check_value_gets_it_at_its_next_start(tmp_path,
                                                                       database_url, first):
    """Issue 21 (7): a database initialised before the key check has no value; check-config
    cannot compare (and passes), the next init or serve stores the value of the key in use
    then, and from there on another key is refused."""
    config_a, config_b, port = _configs(tmp_path, database_url)
    assert run_cli(config_a, "init").returncode == 0
    _forget_key_check(database_url)
    assert _stored_key_check(database_url) is None
    checked = run_cli(config_b, "check-config")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert _stored_key_check(database_url) is None  # check-config writes nothing
    if first == "init":
        assert run_cli(config_a, "init").returncode == 0
    else:
        server = ServerProcess(directory=tmp_path / "a", port=port, secret=SECRET,
                               config=config_a, log_path=tmp_path / "a" / "radiusd.log")
        server.start()
        assert server.stop() == 0
    assert _stored_key_check(database_url) is not None
    _refused(run_cli(config_b, "init"), tmp_path / "b" / "b.key", _shown(database_url))


def test_the_check_value_is_not_a_setting(tmp_path):
    """Issue 21 (7): ``settings show`` does not list it and ``settings set`` refuses it as
    unknown, so no admin overwrites it by accident."""
    config_a, _config_b, _port = _configs(tmp_path, f"sqlite:///{tmp_path / 'radiusd.db'}")
    assert run_cli(config_a, "init").returncode == 0
    before = _stored_key_check(f"sqlite:///{tmp_path / 'radiusd.db'}")
    shown = run_cli(config_a, "settings", "show")
    assert shown.returncode == 0 and "key_check" not in shown.stdout
    refused = run_cli(config_a, "settings", "set", "server.key_check", "x")
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "unknown setting" in refused.stderr
    assert _stored_key_check(f"sqlite:///{tmp_path / 'radiusd.db'}") == before

"""The SQLite database and its -wal/-shm hold user names, audit rows and password hashes:
they are created private (mode 0600, like the key file), and a start that finds one open to
group or others says so with the fix (issue 20, 8)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from support import ServerProcess, free_udp_port, run_cli, write_server_config

SECRET = "database-files-secret-0123456"  # noqa: S105 (test value)


@pytest.fixture()
def umask_022():
    """The usual login umask, under which a plain create gives 0644."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _server(directory: Path) -> ServerProcess:
    port = free_udp_port()
    config = write_server_config(directory, port=port, secret=SECRET)
    return ServerProcess(directory=directory, port=port, secret=SECRET, config=config,
                         log_path=directory / "radiusd.log")


def test_init_creates_database_wal_and_shm_private(tmp_path, umask_022):
    """Issue 20 (8): a fresh `init`, then a first write while the server holds the database
    open, leaves the database, its -wal and its -shm readable by the owner alone."""
    server = _server(tmp_path)
    result = run_cli(server.config, "init")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    database = tmp_path / "radiusd.db"
    assert _mode(database) == 0o600
    server.start()
    try:
        server.cli_ok("user", "add", "alice", "--pin", "4821")
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")
        assert wal.exists() and shm.exists()
        assert {path.name: _mode(path) for path in (database, wal, shm)} == {
            "radiusd.db": 0o600, "radiusd.db-wal": 0o600, "radiusd.db-shm": 0o600}
        assert "chmod 600" not in server.log_text()
    finally:
        server.stop()


def test_init_and_serve_warn_about_a_database_open_to_others(tmp_path, umask_022):
    """Issue 20 (8): a database made before this fix (0644) is named at `init` (stderr) and
    at `serve` (its log) with its mode and the `chmod 600` that fixes it."""
    server = _server(tmp_path)
    assert run_cli(server.config, "init").returncode == 0
    database = tmp_path / "radiusd.db"
    database.chmod(0o644)
    result = run_cli(server.config, "init")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines()
               if line.endswith(f"chmod 600 {database}")]
    assert len(warning) == 1, result.stderr
    assert warning[0].startswith("radiusd: warning: ") and "0644" in warning[0]
    # SQLite gives the -wal and -shm the database's mode: they are named too.
    assert f"chmod 600 {database}-wal" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    server.start()
    try:
        logged = [line for line in server.log_text().splitlines()
                  if f"chmod 600 {database}" in line]
        assert logged and "0644" in logged[0], server.log_text()
    finally:
        server.stop()
    database.chmod(0o600)
    for name in ("radiusd.db-wal", "radiusd.db-shm"):
        if (tmp_path / name).exists():
            (tmp_path / name).chmod(0o600)
    quiet = run_cli(server.config, "init")
    assert quiet.returncode == 0 and "chmod" not in quiet.stderr, quiet.stderr


def test_init_warns_about_a_wal_file_open_to_others(tmp_path, umask_022):
    """Issue 20 (8): the -wal is checked as well as the database itself (here a -wal made
    readable by others while a server holds it open)."""
    server = _server(tmp_path)
    assert run_cli(server.config, "init").returncode == 0
    server.start()
    try:
        server.cli_ok("user", "add", "bob")
        wal = tmp_path / "radiusd.db-wal"
        wal.chmod(0o664)
        result = run_cli(server.config, "init")
        assert result.returncode == 0, result.stderr
        assert f"chmod 600 {wal}" in result.stderr and "0664" in result.stderr, result.stderr
        database = tmp_path / "radiusd.db"
        assert not any(line.endswith(f"chmod 600 {database}")
                       for line in result.stderr.splitlines()), result.stderr
    finally:
        server.stop()

"""Helpers shared by the test layers: parts that may be missing, a real server process,
free ports, OTP codes.

A missing part (radclient, chromium, PostgreSQL) skips with what to install, and fails
instead when ``RADIUSD_TEST_REQUIRE_ALL=1`` (CI), so a green CI run proves every layer ran.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_ALL = os.environ.get("RADIUSD_TEST_REQUIRE_ALL") == "1"


def missing_part(message: str) -> None:
    """Skip (laptop) or fail (CI, RADIUSD_TEST_REQUIRE_ALL=1) for a missing part."""
    if REQUIRE_ALL:
        pytest.fail(f"{message} (RADIUSD_TEST_REQUIRE_ALL=1: required)", pytrace=False)
    pytest.skip(message)


def require_radclient() -> str:
    path = shutil.which("radclient")
    if path is None:
        missing_part("radclient not found: apt-get install freeradius-utils")
    return path


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_tcp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run_cli(config: Path, *args: str, input: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``radiusd --config CONFIG ARGS...`` as a process; text output."""
    return subprocess.run([sys.executable, "-m", "radiusd.cli", "--config", str(config), *args],
                          input=input, capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={**os.environ, **(env or {})})


@dataclass
class ServerProcess:
    """A real ``radiusd serve -X`` on 127.0.0.1, its config, and its log file."""

    directory: Path
    port: int
    secret: str
    config: Path
    log_path: Path
    process: subprocess.Popen | None = None
    extra_config: str = ""
    web_port: int = 0
    env: dict = field(default_factory=dict)

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return run_cli(self.config, *args, input=input, env=self.env)

    def cli_ok(self, *args: str, input: str | None = None) -> str:
        result = self.cli(*args, input=input)
        assert result.returncode == 0, f"radiusd {' '.join(args)} failed: {result.stderr}"
        return result.stdout

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "radiusd.cli", "--config", str(self.config), "serve", "-X"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **self.env})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "radiusd ready" in self.log_text():
                return
            if self.process.poll() is not None:
                raise AssertionError(f"radiusd serve exited {self.process.returncode}:\n"
                                     f"{self.log_text()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"radiusd serve not ready within {timeout} s:\n{self.log_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("radiusd serve did not stop within 15 s of the signal")


def write_server_config(directory: Path, *, port: int, secret: str, reject_delay: str = "0.2s",
                        database_url: str = "sqlite:///radiusd.db", extra: str = "",
                        web_port: int = 0, key_path: str = "radiusd.key") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "radiusd.toml"
    web = f'"127.0.0.1:{web_port}"' if web_port else '""'
    config.write_text(f"""
[radius]
listen = ["127.0.0.1:{port}"]
reject_delay = "{reject_delay}"

[database]
url = "{database_url}"

[keys]
path = "{key_path}"

[[clients]]
name = "localhost"
address = "127.0.0.1"
secret = "{secret}"

[admin_web]
listen = {web}
{extra}
""")
    return config


def write_tls_pair(directory: Path, *, not_before: datetime | None = None,
                   not_after: datetime | None = None, prefix: str = "") -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1 and its key, as PEM files
    ``cert.pem`` / ``key.pem`` (with ``prefix``) in ``directory``; valid for a day unless
    told. The certificate is its own CA: a client trusts it with ``cafile=cert.pem``."""
    import ipaddress
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    not_before = not_before or now - timedelta(minutes=5)
    not_after = not_after or now + timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{prefix}cert.pem", directory / f"{prefix}key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def totp_now(seed: bytes, digits: int = 6, period: int = 30) -> str:
    from radiusd.otp import hotp, totp_step
    return hotp(seed, totp_step(datetime.now(UTC), period), digits)


# --- PostgreSQL: throw-away databases ---------------------------------------------------

PG_SERVER = os.environ.get("RADIUSD_TEST_PG",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def admin_engine(url):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool
    return create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool,
                         connect_args={"connect_timeout": 3})


@contextlib.contextmanager
def pg_database(prefix: str = "radiusd_test"):
    """A fresh PostgreSQL database on ``RADIUSD_TEST_PG``; yields its URL; dropped after.

    An unreachable server skips (or fails under RADIUSD_TEST_REQUIRE_ALL=1).
    """
    import secrets

    from sqlalchemy import make_url
    from sqlalchemy.exc import DBAPIError
    server = make_url(PG_SERVER)
    shown = server.render_as_string(hide_password=True)
    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = admin_engine(server)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except DBAPIError as exc:
        admin.dispose()
        lines = str(exc.orig).strip().splitlines()
        missing_part(f"PostgreSQL not reachable at {shown}: start it or set RADIUSD_TEST_PG "
                     f"({lines[0] if lines else ''})")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def assert_one_line_error(result, *needles: str, returncode: int | None = None) -> None:
    """A CLI run refused its input as SPEC says: non-zero exit (``returncode`` when given),
    one line on stderr holding every needle, no traceback."""
    if returncode is None:
        assert result.returncode != 0, (result.returncode, result.stderr)
    else:
        assert result.returncode == returncode, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]

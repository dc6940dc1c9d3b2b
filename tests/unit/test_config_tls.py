"""``[admin_web] tls_cert`` / ``tls_key``: ``check-config`` (and every command that loads the
config) loads the pair as HTTPS will, and names the key of what is wrong (issue 20, 3)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from radiusd.cli import main
from radiusd.config import check_config, load_config
from radiusd.errors import ConfigError
from support import write_tls_pair

CLIENT = """
[[clients]]
name = "nas"
address = "10.0.0.1"
secret = "s3cret-long-enough-for-rfc2865"
"""
TLS = '[admin_web]\ntls_cert = "cert.pem"\ntls_key = "key.pem"\n'
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "radiusd.toml"
    path.write_text(CLIENT + TLS, encoding="utf-8")
    return path


def _problems(tmp_path: Path, now: datetime | None = NOW):
    errors, warnings = check_config(_config(tmp_path), now=now)
    return dict(errors), dict(warnings)


def test_a_matching_pair_is_accepted(tmp_path):
    """Issue 20 (3)."""
    write_tls_pair(tmp_path, not_before=NOW - timedelta(days=1),
                   not_after=NOW + timedelta(days=90))
    assert _problems(tmp_path) == ({}, {})
    config = load_config(_config(tmp_path), now=NOW)
    assert config.admin_web.tls_cert == tmp_path / "cert.pem"


def test_a_key_of_another_certificate_is_an_error_naming_tls_key(tmp_path):
    """Issue 20 (3): the key of another pair is refused (serve could not start HTTPS)."""
    write_tls_pair(tmp_path)
    write_tls_pair(tmp_path, prefix="other-")
    (tmp_path / "other-key.pem").replace(tmp_path / "key.pem")
    errors, _warnings = _problems(tmp_path)
    assert list(errors) == ["admin_web.tls_key"]
    assert "is not the key of the certificate in" in errors["admin_web.tls_key"]
    with pytest.raises(ConfigError) as raised:
        load_config(_config(tmp_path))
    assert [key for key, _message in raised.value.problems] == ["admin_web.tls_key"]


def test_a_chain_with_the_servers_certificate_last_says_it_must_come_first(tmp_path):
    """Issue 20 (3)."""
    cert, _key = write_tls_pair(tmp_path)
    other, _ = write_tls_pair(tmp_path, prefix="ca-")
    cert.write_bytes(other.read_bytes() + cert.read_bytes())
    errors, _warnings = _problems(tmp_path)
    assert "must come first" in errors["admin_web.tls_key"]


@pytest.mark.parametrize(("which", "content", "key", "fragment"), [
    ("cert.pem", b"not a certificate\n", "admin_web.tls_cert", "holds no PEM certificate"),
    ("cert.pem", b"", "admin_web.tls_cert", "holds no PEM certificate"),
    ("key.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
     "admin_web.tls_key", "holds no PEM private key"),
], ids=["cert-not-pem", "cert-empty", "key-not-pem"])
def test_a_file_that_is_not_pem_is_an_error_naming_its_key(tmp_path, which, content, key,
                                                          fragment):
    """Issue 20 (3)."""
    write_tls_pair(tmp_path)
    (tmp_path / which).write_bytes(content)
    errors, _warnings = _problems(tmp_path)
    assert list(errors) == [key] and fragment in errors[key]


def test_the_key_file_holding_the_certificate_is_not_a_key(tmp_path):
    """Issue 20 (3): tls_key pointing at the certificate, a common slip."""
    cert, key = write_tls_pair(tmp_path)
    key.write_bytes(cert.read_bytes())
    errors, _warnings = _problems(tmp_path)
    assert list(errors) == ["admin_web.tls_key"]


def test_an_encrypted_key_is_an_error_that_says_so_and_never_shows_the_key(tmp_path):
    """Issue 20 (3)."""
    from cryptography.hazmat.primitives import serialization

    _cert, key_path = write_tls_pair(tmp_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))
    errors, _warnings = _problems(tmp_path)
    assert "is encrypted" in errors["admin_web.tls_key"]
    assert "BEGIN" not in errors["admin_web.tls_key"]


def test_missing_files_are_errors_naming_their_keys(tmp_path):
    """Issue 20 (3)."""
    errors, _warnings = _problems(tmp_path)
    assert errors["admin_web.tls_cert"].startswith("file not found")
    assert errors["admin_web.tls_key"].startswith("file not found")


def test_an_unreadable_file_is_an_error_naming_its_key(tmp_path, monkeypatch):
    """Issue 20 (3): read errors (a file radiusd's user may not read) name the key.
    Simulated: the suite runs as root, who reads every file."""
    write_tls_pair(tmp_path)
    real = Path.read_bytes

    def read_bytes(path):
        if path.name == "key.pem":
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    errors, _warnings = _problems(tmp_path)
    assert errors == {"admin_web.tls_key":
                      f"cannot read {tmp_path / 'key.pem'}: Permission denied"}


def test_an_expired_certificate_is_a_warning(tmp_path):
    """Issue 20 (3): a warning, not an error: the consoles still start (browsers warn)."""
    write_tls_pair(tmp_path, not_before=NOW - timedelta(days=400),
                   not_after=NOW - timedelta(days=2))
    errors, warnings = _problems(tmp_path)
    assert errors == {}
    assert warnings["admin_web.tls_cert"].startswith("the certificate expired on 2027-01-13")
    assert _problems(tmp_path, now=None) == ({}, {})  # no clock given: not checked


def test_a_certificate_not_valid_yet_is_a_warning(tmp_path):
    """Issue 20 (3)."""
    write_tls_pair(tmp_path, not_before=NOW + timedelta(days=1),
                   not_after=NOW + timedelta(days=30))
    _errors, warnings = _problems(tmp_path)
    assert "not valid before 2027-01-16" in warnings["admin_web.tls_cert"]


def test_without_pyopenssl_the_pair_is_an_error_that_says_how_to_install_it(
        tmp_path, monkeypatch):
    """Issue 20 (3): ``serve`` cannot start HTTPS without pyOpenSSL; check-config says so."""
    write_tls_pair(tmp_path)
    monkeypatch.setitem(sys.modules, "OpenSSL", None)  # import OpenSSL: ImportError
    errors, _warnings = _problems(tmp_path)
    assert "HTTPS needs pyOpenSSL" in errors["admin_web.tls_cert"]


def test_check_config_prints_the_bad_pair_with_its_key_and_exits_1(tmp_path, capsys):
    """Issue 20 (3): through the CLI."""
    write_tls_pair(tmp_path)
    write_tls_pair(tmp_path, prefix="other-")
    (tmp_path / "other-key.pem").replace(tmp_path / "key.pem")
    assert main(["--config", str(_config(tmp_path)), "check-config"]) == 1
    out = capsys.readouterr().out
    assert "error: admin_web.tls_key: " in out and "is not the key of the certificate" in out


def test_check_config_warns_of_an_expired_certificate(tmp_path, capsys):
    """Issue 20 (3): the CLI checks against the current time."""
    write_tls_pair(tmp_path, not_before=datetime.now(UTC) - timedelta(days=30),
                   not_after=datetime.now(UTC) - timedelta(days=1))
    assert main(["--config", str(_config(tmp_path)), "check-config"]) == 0
    out = capsys.readouterr().out
    assert "warning: admin_web.tls_cert: the certificate expired on" in out

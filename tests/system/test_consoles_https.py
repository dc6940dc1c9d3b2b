"""The consoles over HTTPS from the documented install (issue 20, 3), and ``serve`` stopping
with one clear error when a console cannot start.

``make install`` is ``pip install -c constraints.txt`` of the project without its ``test``
extra, whose treq pulls in pyOpenSSL by itself: so the suite's own ``.venv`` cannot show a
missing runtime dependency. The first test installs a copy of the source into a fresh
virtual environment exactly that way (no extras; the wheels come from pip's cache or the
configured index: about 30 s here), and serves the consoles over HTTPS from it.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support import REPO, free_tcp_port, free_udp_port, missing_part, write_server_config, \
    write_tls_pair
from system.conftest import SECRET

HSTS = "max-age=31536000"
SOURCE = ("pyproject.toml", "constraints.txt", "README.md", "radiusd", "admin_web")


def _clean_env() -> dict[str, str]:
    """The environment without the suite's virtualenv or source path."""
    return {k: v for k, v in os.environ.items()
            if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """``bin/`` of a fresh virtualenv holding radiusd as ``make install`` installs it."""
    base = tmp_path_factory.mktemp("make-install")
    source = base / "src"
    for name in SOURCE:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    venv = base / "venv"
    started = time.monotonic()
    # No pip inside the new environment: this pip installs into it (pip >= 22.3).
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "--no-compile", "--disable-pip-version-check", "-c",
         str(source / "constraints.txt"), str(source)],
        capture_output=True, text=True, timeout=600, env=_clean_env(), cwd=base)
    took = time.monotonic() - started
    if result.returncode != 0:
        missing_part(f"pip cannot install radiusd into a fresh virtualenv (no package "
                     f"index?): {result.stderr.strip().splitlines()[-1:]}")
    print(f"fresh install without extras: {took:.1f} s")
    bin_dir = venv / "bin"
    # The documented install, not the suite's: no test extra in it.
    probe = subprocess.run([str(bin_dir / "python"), "-c", "import treq"],
                           capture_output=True, text=True, env=_clean_env(), cwd=base)
    assert probe.returncode != 0, "treq (a test extra) is in the fresh install"
    return bin_dir


def _wait_for(proc: subprocess.Popen, log: Path, text: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log.read_text(errors="replace")
        if text in content:
            return content
        if proc.poll() is not None:
            raise AssertionError(f"radiusd serve exited {proc.returncode}:\n{content}")
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{log.read_text(errors='replace')}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_make_install_alone_serves_the_consoles_over_https_with_hsts(installed,
                                                                     tmp_path):
    """Issue 20 (3): was ``No module named 'OpenSSL'`` and no console at all."""
    cert, _key = write_tls_pair(tmp_path)
    web_port = free_tcp_port()
    config = write_server_config(tmp_path, port=free_udp_port(), secret=SECRET,
                                 web_port=web_port,
                                 extra='tls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    checked = subprocess.run([str(installed / "radiusd"), "--config", str(config),
                              "check-config"], capture_output=True, text=True, timeout=60,
                             env=_clean_env(), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    log = tmp_path / "radiusd.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(installed / "radiusd"), "--config", str(config),
                                 "serve"], stdout=out, stderr=subprocess.STDOUT,
                                env=_clean_env(), cwd=tmp_path)
    try:
        text = _wait_for(proc, log, "radiusd ready")
        assert f"admin web on https://127.0.0.1:{web_port}/" in text, text
        context = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{web_port}"
        with urllib.request.urlopen(f"{url}/sign-in", context=context, timeout=10) as page:
            assert page.status == 200
            assert page.headers["Strict-Transport-Security"] == HSTS
            assert "Secure" in page.headers["Set-Cookie"]
            assert "Sign in" in page.read().decode("utf-8")
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/no-such-page", context=context, timeout=10)
        assert missing.value.code == 404
        assert missing.value.headers["Strict-Transport-Security"] == HSTS
    finally:
        _stop(proc)


def test_serve_stops_with_one_error_when_the_consoles_port_is_taken(tmp_path):
    """Issue 20 (3): a console that cannot start stops ``serve`` (exit 1), one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        config = write_server_config(tmp_path, port=free_udp_port(), secret=SECRET,
                                     web_port=web_port)
        result = subprocess.run([sys.executable, "-m", "radiusd.cli", "--config", str(config),
                                 "serve"], capture_output=True, text=True, timeout=60,
                                cwd=REPO)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "cannot start" in line]
    assert len(errors) == 1 and "cannot start the admin web:" in errors[0], result.stderr
    assert "radiusd ready" not in result.stderr and "Traceback" not in result.stderr


def test_serve_without_pyopenssl_refuses_the_tls_config_in_one_line(tmp_path):
    """Issue 20 (3): an install without pyOpenSSL (before it was a dependency) stops at the
    config, naming the key and the fix, instead of serving RADIUS without consoles."""
    write_tls_pair(tmp_path)
    config = write_server_config(tmp_path, port=free_udp_port(), secret=SECRET,
                                 web_port=free_tcp_port(),
                                 extra='tls_cert = "cert.pem"\ntls_key = "key.pem"\n')
    program = ("import sys; sys.modules['OpenSSL'] = None; from radiusd.cli import main; "
               f"sys.exit(main(['--config', {str(config)!r}, 'serve']))")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=60, cwd=REPO)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "admin_web.tls_cert" in lines[0] \
        and "HTTPS needs pyOpenSSL" in lines[0], result.stderr

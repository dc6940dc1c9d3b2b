"""The consoles over HTTPS (issue 20, 3): ``Strict-Transport-Security`` on every response
served over TLS (and never over plain HTTP), and ``start_admin_web`` turning a missing
pyOpenSSL or an unusable pair into one ``ConfigError`` naming the key."""

from __future__ import annotations

import sys

import pytest
from twisted.internet.testing import MemoryReactorClock

from admin_web.server import start_admin_web
from admin_web.testing import make_console
from radiusd.config import load_config
from radiusd.crypto import Keys
from radiusd.errors import ConfigError
from support import write_server_config, write_tls_pair

HSTS = "max-age=31536000"


@pytest.fixture()
def console(sqlite_store):
    console = make_console(sqlite_store, is_tls=True)
    console.add_admin("root", "correct horse battery")
    return console


def test_every_response_over_tls_sends_strict_transport_security(console):
    """Issue 20 (3): pages, redirects, errors, unknown URLs and the stylesheet."""
    client = console.client()
    pages = [client.get("/sign-in"), client.get("/"), client.get("/no-such-page"),
             client.get("/static/style.css"), client.post("/sign-in", {}, csrf="forged"),
             client.get("/self-service/sign-in")]
    assert [p.code for p in pages] == [200, 303, 404, 200, 403, 200]
    for page in pages:
        assert page.header("strict-transport-security") == HSTS
    admin = console.signed_in("root", "correct horse battery")
    assert admin.get("/users").header("strict-transport-security") == HSTS


def test_plain_http_sends_no_strict_transport_security(sqlite_store):
    """Issue 20 (3): RFC 6797 §7.2, an HSTS header over plain HTTP is not sent."""
    page = make_console(sqlite_store).client().get("/sign-in")
    assert page.code == 200 and page.header("strict-transport-security") is None


def _tls_config(tmp_path):
    return load_config(write_server_config(
        tmp_path, port=18120, secret="s" * 20, web_port=18443,
        extra='tls_cert = "cert.pem"\ntls_key = "key.pem"\n'))


def _start(config, store):
    return start_admin_web(config, MemoryReactorClock(), store=store,
                           keys=Keys.from_master(b"\x01" * 32), run_db=None, node="n")


def test_without_pyopenssl_start_admin_web_raises_one_config_error(tmp_path, sqlite_store,
                                                                   monkeypatch):
    """Issue 20 (3): was ``No module named 'OpenSSL'`` out of the reactor, and serve went
    on without any console; now a ConfigError that ``serve`` stops on."""
    write_tls_pair(tmp_path)
    config = _tls_config(tmp_path)
    monkeypatch.setitem(sys.modules, "OpenSSL", None)
    monkeypatch.delitem(sys.modules, "twisted.internet.ssl", raising=False)
    monkeypatch.delitem(sys.modules, "twisted.internet._sslverify", raising=False)
    with pytest.raises(ConfigError) as raised:
        _start(config, sqlite_store)
    [(key, message)] = raised.value.problems
    assert key == "admin_web.tls_cert" and "HTTPS needs pyOpenSSL" in message


def test_a_pair_spoilt_after_loading_the_config_is_a_config_error(tmp_path, sqlite_store):
    """Issue 20 (3): the key replaced between check-config and serve."""
    write_tls_pair(tmp_path)
    config = _tls_config(tmp_path)
    write_tls_pair(tmp_path, prefix="other-")
    (tmp_path / "other-key.pem").replace(tmp_path / "key.pem")
    with pytest.raises(ConfigError) as raised:
        _start(config, sqlite_store)
    assert raised.value.problems[0][0] == "admin_web.tls_cert"


def test_the_certificates_after_the_first_are_sent_as_its_chain(tmp_path, sqlite_store):
    """Issue 20 (3): an intermediate after the server certificate goes out with it."""
    cert, _key = write_tls_pair(tmp_path)
    intermediate, _ = write_tls_pair(tmp_path, prefix="ca-")
    config = _tls_config(tmp_path)
    cert.write_bytes(cert.read_bytes() + intermediate.read_bytes())
    reactor = MemoryReactorClock()
    start_admin_web(config, reactor, store=sqlite_store, keys=Keys.from_master(b"\x01" * 32),
                    run_db=None, node="n")
    [(_port, _site, options, _backlog, _interface)] = reactor.sslServers
    assert len(options.extraCertChain) == 1

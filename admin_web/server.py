"""Listen for the web consoles: plain HTTP, or HTTPS when ``[admin_web]`` names a
certificate and key (pyOpenSSL, Twisted's ``tls`` extra, is a dependency for this).

Owns: turning ``AdminWebConfig`` into a listening port on the reactor that already runs
RADIUS, and building the ``AdminWeb`` app with the composition root's dependencies.

Must not import: sqlalchemy, pyrad.
"""

from __future__ import annotations

import secrets
from typing import Any, Awaitable, Callable

from twisted.internet import threads
from twisted.internet.interfaces import IListeningPort
from twisted.web.server import Site

from admin_web.app import AdminWeb
from radiusd.accounts import Accounts
from radiusd.config import AdminWebConfig, Config
from radiusd.crypto import Keys
from radiusd.errors import ConfigError
from radiusd.model import RandomSource


def build_site(web: AdminWeb) -> Site:
    """A ``Site`` for ``web`` that never shows a traceback."""
    site = Site(web.resource())
    site.displayTracebacks = False  # no stack trace ever reaches a browser
    return site


def _tls_context(config: AdminWebConfig):
    """The consoles' TLS options: the first certificate of ``tls_cert`` with the key of
    ``tls_key``, the certificates after it sent as its chain (intermediates), TLS 1.2 or
    later (Twisted's default).

    Raises:
        ConfigError: pyOpenSSL is not installed, or the certificate or key cannot be
            used (``check-config`` reports the same from ``radiusd.config``).
    """
    try:
        from OpenSSL import crypto
        from twisted.internet import ssl
    except ImportError as exc:  # Twisted's ``tls`` extra (pyOpenSSL), a dependency
        raise ConfigError([("admin_web.tls_cert", f"HTTPS needs pyOpenSSL, which is not "
                                                  f"installed ({exc}): reinstall radiusd "
                                                  f"(make install, or pip install "
                                                  f"'twisted[tls]')")]) from None
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    assert config.tls_cert is not None and config.tls_key is not None
    try:
        chain = [ssl.Certificate.loadPEM(certificate.public_bytes(Encoding.PEM))
                 for certificate in x509.load_pem_x509_certificates(
                     config.tls_cert.read_bytes())]
        server = ssl.PrivateCertificate.fromCertificateAndKeyPair(
            chain[0], ssl.KeyPair.load(config.tls_key.read_bytes(), crypto.FILETYPE_PEM))
        return ssl.CertificateOptions(privateKey=server.privateKey.original,
                                      certificate=server.original,
                                      extraCertChain=[c.original for c in chain[1:]])
    except Exception as exc:  # OpenSSL, cryptography and file errors alike: name the key
        raise ConfigError([("admin_web.tls_cert", f"cannot use the certificate and key: "
                                                  f"{exc}")]) from None


def start_admin_web(config: Config, reactor, *, store, keys: Keys,
                    run_db: Callable[..., Awaitable[Any]], node: str,
                    random: RandomSource = secrets.token_bytes,
                    clock=None) -> IListeningPort | None:
    """Serve the admin and self-service consoles on ``[admin_web] listen``.

    Args:
        config: the loaded config (``config.admin_web``).
        reactor: provides ``listenTCP``/``listenSSL`` (and ``seconds`` unless ``clock``).
        store, keys: the server's Store and keys.
        run_db: the composition root's ``DatabaseRunner`` (the DB thread pool).
        node: this server's name in audit rows.
        random: randomness for sessions, codes and seeds.
        clock: ``seconds()`` for session expiry; the reactor by default.
    Returns:
        The listening port, or None when the admin web is disabled (``listen = ""``).
    Raises:
        CannotListenError: the port is taken.
        ConfigError: the TLS certificate or key cannot be used.
    """
    web_config = config.admin_web
    if web_config.listen is None:
        return None
    is_tls = web_config.tls_cert is not None and web_config.tls_key is not None
    web = AdminWeb(store=store, keys=keys, accounts=Accounts(store, keys, random, node),
                   run_db=run_db, clock=clock or reactor, random=random, node=node,
                   is_tls=is_tls, require_totp=web_config.require_totp,
                   run_cpu=lambda fn, *args: threads.deferToThread(fn, *args))
    site = build_site(web)
    address = web_config.listen
    if is_tls:
        return reactor.listenSSL(address.port, site, _tls_context(web_config),
                                 interface=address.host)
    return reactor.listenTCP(address.port, site, interface=address.host)

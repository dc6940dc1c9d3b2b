"""The config file (SPEC "Config file"): TOML, loaded once, into frozen dataclasses.

Owns: the sections and keys of ``radiusd.toml``, their defaults, types and ranges; the
one rule for relative paths; the ``(key_path, message)`` problems ``check-config`` prints.

Relative paths -- the SQLite file of ``database.url`` (``sqlite:///relative/path``),
``keys.path``, ``admin_web.tls_cert`` and ``admin_web.tls_key`` -- are resolved against the
directory that contains the config file, whatever directory radiusd is started from.
``sqlite:////absolute/path``, ``sqlite://`` and ``sqlite:///:memory:`` are kept as written.

Key paths name the key as the file spells it; array entries are counted from 0:
``clients[1].address`` is the ``address`` of the second ``[[clients]]`` entry.

The TLS certificate and key of ``[admin_web]`` are loaded as HTTPS will load them (a file
that is not PEM, an encrypted key, a key that is not the certificate's are errors; an
expired certificate is a warning), so ``check-config`` finds what would stop ``serve``.

Every problem is collected (loading never stops at the first one). Errors make
``load_config`` raise ``ConfigError``; warnings are kept in ``Config.warnings``. Secrets are
wrapped in ``model.Secret`` as soon as they are read and never appear in a message.

Must not import: twisted, sqlalchemy, pyrad. Must not read: os.environ (the CLI passes it).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import netaddr

from radiusd.clients import unmap_network
from radiusd.duration import parse_duration
from radiusd.errors import ConfigError
from radiusd.model import Client, Secret

# --- the values ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """An IP address and port to listen on; ``host`` has no brackets (``"::1"``)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class RadiusConfig:
    """``[radius]``: where RADIUS listens, how long an Access-Reject is held back."""

    listen: tuple[ListenAddress, ...]
    reject_delay: timedelta


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """``[database]``: the SQLAlchemy URL (SQLite or PostgreSQL via psycopg 3)."""

    url: str  # a relative SQLite path is already resolved to an absolute one


@dataclass(frozen=True, slots=True)
class KeysConfig:
    """``[keys]``: the key file (absolute), created by ``radiusd init``."""

    path: Path


@dataclass(frozen=True, slots=True)
class PerimeterConfig:
    """``[perimeter]``: where emergency codes are accepted, and which address is checked."""

    networks: tuple[netaddr.IPNetwork, ...]
    ip_set: netaddr.IPSet
    check: str  # "nas" | "user" | "both"


@dataclass(frozen=True, slots=True)
class AdminWebConfig:
    """``[admin_web]``: the admin web's address (None: disabled) and TLS files (absolute).

    ``require_totp``: admins sign in with password and their own TOTP (default true;
    false only for a lab, with a warning at every start).
    """

    listen: ListenAddress | None  # None: the admin web is disabled (listen = "")
    tls_cert: Path | None
    tls_key: Path | None
    require_totp: bool = True


@dataclass(frozen=True, slots=True)
class Config:
    """The whole config file, validated; ``warnings`` are ``(key_path, message)``."""

    path: Path
    radius: RadiusConfig
    database: DatabaseConfig
    keys: KeysConfig
    clients: tuple[Client, ...]
    perimeter: PerimeterConfig
    admin_web: AdminWebConfig
    warnings: tuple[tuple[str, str], ...] = ()


# --- defaults (SPEC "Config file") --------------------------------------------------------

DEFAULT_RADIUS_LISTEN = ("127.0.0.1:1812",)
DEFAULT_REJECT_DELAY = "1s"  # FreeRADIUS reject_delay default
MAX_REJECT_DELAY = timedelta(seconds=10)  # FreeRADIUS caps reject_delay at 10 s too
DEFAULT_DATABASE_URL = "sqlite:///var/radiusd.db"
DEFAULT_KEYS_PATH = "var/radiusd.key"
DEFAULT_PERIMETER_NETWORKS = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
DEFAULT_PERIMETER_CHECK = "nas"
PERIMETER_CHECKS = ("nas", "user", "both")
DEFAULT_ADMIN_WEB_LISTEN = "127.0.0.1:8080"
MIN_SECRET_OCTETS = 16  # RFC 2865 §3: "SHOULD be at least 16 octets"
DATABASE_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
DEFAULT_CONFIG_RELATIVE = Path("config/radiusd.toml")

_SECTIONS: dict[str, tuple[str, ...]] = {
    "radius": ("listen", "reject_delay"),
    "database": ("url",),
    "keys": ("path",),
    "clients": ("name", "address", "secret", "require_message_authenticator"),
    "perimeter": ("networks", "check"),
    "admin_web": ("listen", "tls_cert", "tls_key", "require_totp"),
}

_URL_HINT = "expected sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
_LISTEN_HINT = "expected IP:PORT, e.g. 127.0.0.1:1812 or [::1]:1812"


# --- public functions ---------------------------------------------------------------------


def load_config(path: Path, *, now: datetime | None = None) -> Config:
    """Read and validate the config file.

    Args:
        path: the TOML file; a relative path is taken from the current directory.
        now: the time the TLS certificate's validity is checked against (a warning when
            it has expired or is not valid yet); None: not checked.

    Returns:
        The frozen configuration, its warnings in ``Config.warnings``.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has at least one error;
            ``problems`` lists every error as ``(key_path, message)``.
    """
    config, errors, _warnings = _load(path, now)
    if errors or config is None:
        raise ConfigError(errors)
    return config


def check_config(path: Path, *, now: datetime | None = None
                 ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Validate the config file without raising (``radiusd check-config``).

    Args:
        path: the TOML file.
        now: as for ``load_config``.

    Returns:
        ``(errors, warnings)``, each a list of ``(key_path, message)``. A file that cannot
        be read or parsed is one error whose key is the file name.
    """
    _config, errors, warnings = _load(path, now)
    return errors, warnings


def default_config_path(environ: Mapping[str, str], cwd: Path) -> Path:
    """The config file used without ``--config`` (SPEC "CLI").

    Args:
        environ: the process environment (the CLI passes ``os.environ``).
        cwd: the current directory.

    Returns:
        ``$RADIUSD_CONFIG`` (relative to ``cwd`` when relative), else
        ``cwd/config/radiusd.toml``.
    """
    value = environ.get("RADIUSD_CONFIG", "")
    if value:
        return cwd / value
    return cwd / DEFAULT_CONFIG_RELATIVE


# --- loading ------------------------------------------------------------------------------


def _load(path: Path, now: datetime | None = None
          ) -> tuple[Config | None, list[tuple[str, str]], list[tuple[str, str]]]:
    path = Path(os.path.abspath(path))
    try:
        with path.open("rb") as stream:
            document = tomllib.load(stream)
    except FileNotFoundError:
        return None, [(str(path), "file not found")], []
    except IsADirectoryError:
        return None, [(str(path), "is a directory, expected a TOML file")], []
    except OSError as exc:
        return None, [(str(path), f"cannot read: {exc.strerror or exc}")], []
    except UnicodeDecodeError:
        return None, [(str(path), "is not UTF-8 text")], []
    except tomllib.TOMLDecodeError as exc:
        # tomllib's messages name the position and the construct, never a value.
        return None, [(str(path), f"not valid TOML: {exc}")], []
    reader = _Reader(path.parent, now)
    config = reader.read(path, document)
    return config, reader.errors, reader.warnings


class _Reader:
    """Walks one parsed document, building values and collecting problems."""

    def __init__(self, base_dir: Path, now: datetime | None = None):
        self.base_dir = base_dir
        self.now = now
        self.errors: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append((key, message))

    def warn(self, key: str, message: str) -> None:
        self.warnings.append((key, message))

    # --- document and sections ----------------------------------------------------------

    def read(self, path: Path, document: dict[str, Any]) -> Config | None:
        for name in document:
            if name not in _SECTIONS:
                self.error(name, _unknown("section", name, _SECTIONS))
        radius = self.radius(self.section(document, "radius"))
        database = self.database(self.section(document, "database"))
        keys = self.keys(self.section(document, "keys"))
        clients = self.clients(document.get("clients", []))
        perimeter = self.perimeter(self.section(document, "perimeter"))
        admin_web = self.admin_web(self.section(document, "admin_web"))
        if self.errors:
            return None
        assert radius and database and keys and perimeter and admin_web and clients is not None
        return Config(path=path, radius=radius, database=database, keys=keys,
                      clients=clients, perimeter=perimeter, admin_web=admin_web,
                      warnings=tuple(self.warnings))

    def section(self, document: dict[str, Any], name: str) -> dict[str, Any]:
        value = document.get(name, {})
        if not isinstance(value, dict):
            self.error(name, f"expected a table [{name}], got {_shown(value)}")
            return {}
        self.known_keys(value, name, _SECTIONS[name])
        return value

    def known_keys(self, table: dict[str, Any], prefix: str, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in table:
            if key not in allowed:
                self.error(f"{prefix}.{key}", _unknown("key", key, allowed))

    # --- [radius] -----------------------------------------------------------------------

    def radius(self, table: dict[str, Any]) -> RadiusConfig | None:
        listen = self.listen_list(table.get("listen", list(DEFAULT_RADIUS_LISTEN)),
                                  "radius.listen")
        delay = self.reject_delay(table.get("reject_delay", DEFAULT_REJECT_DELAY))
        if listen is None or delay is None:
            return None
        return RadiusConfig(listen=listen, reject_delay=delay)

    def listen_list(self, value: object, key: str) -> tuple[ListenAddress, ...] | None:
        if isinstance(value, str):  # one address written without the brackets of a list
            items: list[tuple[str, object]] = [(key, value)]
        elif isinstance(value, list):
            items = [(f"{key}[{index}]", item) for index, item in enumerate(value)]
        else:
            self.error(key, f'expected a list of "IP:PORT" strings, got {_shown(value)}')
            return None
        if not items:
            self.error(key, 'is empty; expected at least one "IP:PORT", e.g. "127.0.0.1:1812"')
            return None
        addresses: list[ListenAddress] = []
        seen: dict[ListenAddress, str] = {}
        is_ok = True
        for item_key, item in items:
            address = self.listen_address(item, item_key)
            if address is None:
                is_ok = False
                continue
            if address in seen:
                self.error(item_key, f"{address} is listed twice (also {seen[address]})")
                is_ok = False
                continue
            seen[address] = item_key
            addresses.append(address)
        return tuple(addresses) if is_ok else None

    def listen_address(self, value: object, key: str) -> ListenAddress | None:
        if not isinstance(value, str):
            self.error(key, f'expected an "IP:PORT" string, got {_shown(value)}')
            return None
        try:
            return parse_listen_address(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return None

    def reject_delay(self, value: object) -> timedelta | None:
        key = "radius.reject_delay"
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # a bare TOML integer counts seconds, as "1" does
        if not isinstance(value, str):
            self.error(key, f'expected a duration like "1s", got {_shown(value)}')
            return None
        try:
            delay = parse_duration(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return None
        if delay > MAX_REJECT_DELAY:
            self.error(key, f"{value!r} is too long; expected 0s to 10s")
            return None
        return delay

    # --- [database] and [keys] ----------------------------------------------------------

    def database(self, table: dict[str, Any]) -> DatabaseConfig | None:
        key = "database.url"
        value = table.get("url", DEFAULT_DATABASE_URL)
        if not isinstance(value, str):
            # Not _shown(): a URL may carry a password.
            self.error(key, f"expected a URL string, got {_type_name(value)}; {_URL_HINT}")
            return None
        scheme, separator, rest = value.partition("://")
        if not separator:
            self.error(key, f"is not a URL; {_URL_HINT}")
            return None
        if scheme not in DATABASE_SCHEMES:
            hint = " (SQLAlchemy spells it postgresql)" if scheme == "postgres" else ""
            self.error(key, f"unsupported scheme {scheme!r}{hint}; {_URL_HINT}")
            return None
        if scheme == "sqlite":
            return DatabaseConfig(url=self.sqlite_url(rest))
        if not rest.strip("/"):
            self.error(key, f"names no server or database; {_URL_HINT}")
            return None
        return DatabaseConfig(url=value)

    def sqlite_url(self, rest: str) -> str:
        # rest is what follows "sqlite://": "" (in memory), "/:memory:", "/relative/path",
        # "//absolute/path", each optionally followed by "?query".
        location, question, query = rest.partition("?")
        if not location.startswith("/") or location in ("/", "/:memory:"):
            return f"sqlite://{rest}"
        file_path = location[1:]
        if file_path.startswith("/"):
            return f"sqlite://{rest}"
        resolved = self.resolve(file_path)
        return f"sqlite:///{resolved}{question}{query}"

    def keys(self, table: dict[str, Any]) -> KeysConfig | None:
        path = self.path_value(table.get("path", DEFAULT_KEYS_PATH), "keys.path")
        return KeysConfig(path=path) if path is not None else None

    def path_value(self, value: object, key: str) -> Path | None:
        if not isinstance(value, str):
            self.error(key, f"expected a file path string, got {_shown(value)}")
            return None
        if not value.strip():
            self.error(key, "is empty; expected a file path")
            return None
        return self.resolve(value)

    def resolve(self, value: str) -> Path:
        """The documented rule: relative to the config file's directory."""
        return Path(os.path.normpath(self.base_dir / value))

    # --- [[clients]] --------------------------------------------------------------------

    def clients(self, value: object) -> tuple[Client, ...] | None:
        if not isinstance(value, list):
            self.error("clients", f"expected [[clients]] entries, got {_shown(value)}")
            return None
        if not value:
            self.warn("clients", "no clients: every packet will be dropped")
            return ()
        clients: list[tuple[str, Client]] = []
        is_ok = True
        for index, entry in enumerate(value):
            prefix = f"clients[{index}]"
            if not isinstance(entry, dict):
                self.error(prefix, f"expected a [[clients]] table, got {_shown(entry)}")
                is_ok = False
                continue
            client = self.client(entry, prefix)
            if client is None:
                is_ok = False
            else:
                clients.append((prefix, client))
        is_ok = self.compare_clients(clients) and is_ok
        return tuple(client for _prefix, client in clients) if is_ok else None

    def client(self, entry: dict[str, Any], prefix: str) -> Client | None:
        self.known_keys(entry, prefix, _SECTIONS["clients"])
        name = self.client_name(entry, prefix)
        network = self.client_address(entry, prefix)
        secret = self.client_secret(entry, prefix)
        require_ma = self.require_message_authenticator(entry, prefix)
        if name is None or network is None or secret is None or require_ma is None:
            return None
        return Client(name=name, network=network, secret=secret,
                      require_message_authenticator=require_ma)

    def client_name(self, entry: dict[str, Any], prefix: str) -> str | None:
        key = f"{prefix}.name"
        if "name" not in entry:
            self.error(key, 'missing; expected a name, e.g. name = "vpn-1"')
            return None
        value = entry["name"]
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {_shown(value)}")
            return None
        if not value.strip():
            self.error(key, "is empty; expected a name")
            return None
        return value

    def client_address(self, entry: dict[str, Any], prefix: str) -> netaddr.IPNetwork | None:
        key = f"{prefix}.address"
        if "address" not in entry:
            self.error(key, 'missing; expected an address or CIDR network, e.g. "10.0.0.0/8"')
            return None
        return self.network(entry["address"], key, "an address or CIDR network")

    def network(self, value: object, key: str, what: str) -> netaddr.IPNetwork | None:
        if not isinstance(value, str):
            self.error(key, f"expected {what} string, got {_shown(value)}")
            return None
        try:
            network = netaddr.IPNetwork(value.strip())
        except (netaddr.AddrFormatError, ValueError, TypeError):
            self.error(key, f"{value!r} is not {what} (e.g. 10.0.0.1, 10.0.0.0/8, fd00::/8)")
            return None
        if network.ip != network.network:
            self.error(key, f"{value!r} has host bits set; did you mean {network.cidr}?")
            return None
        return unmap_network(netaddr.IPNetwork(str(network.cidr)))

    def client_secret(self, entry: dict[str, Any], prefix: str) -> Secret | None:
        key = f"{prefix}.secret"
        if "secret" not in entry:
            self.error(key, "missing; expected the shared secret of this NAS")
            return None
        value = entry["secret"]
        if not isinstance(value, str):
            # Never the value: a secret in the wrong type is still a secret.
            self.error(key, f"expected a string, got {_type_name(value)}")
            return None
        secret = Secret(value)
        if len(secret) == 0:
            self.error(key, "is empty; RFC 2865 §3: the shared secret MUST NOT be empty")
            return None
        if len(secret) < MIN_SECRET_OCTETS:
            self.warn(key, f"is {len(secret)} octets; RFC 2865 §3 asks for at least "
                           f"{MIN_SECRET_OCTETS} unguessable octets")
        return secret

    def require_message_authenticator(self, entry: dict[str, Any], prefix: str) -> bool | None:
        key = f"{prefix}.require_message_authenticator"
        value = entry.get("require_message_authenticator", True)
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {_shown(value)}")
            return None
        if not value:
            # CVE-2024-3596: the forgery needs Proxy-State, so FreeRADIUS limit_proxy_state
            # still drops unsigned packets that carry it.
            self.warn(key, "false: BlastRADIUS CVE-2024-3596: only packets without "
                           "Proxy-State are accepted unsigned")
        return value

    def compare_clients(self, clients: list[tuple[str, Client]]) -> bool:
        """Duplicate names and networks are errors; overlaps are warnings."""
        is_ok = True
        names: dict[str, str] = {}
        for prefix, client in clients:
            if client.name in names:
                self.error(f"{prefix}.name",
                           f"duplicate client name {client.name!r} (also {names[client.name]})")
                is_ok = False
            else:
                names[client.name] = prefix
        # Quadratic, but once at start-up over a list an admin wrote by hand.
        for index, (prefix, client) in enumerate(clients):
            for earlier_prefix, earlier in clients[:index]:
                a, b = client.network, earlier.network
                if a.version != b.version:
                    continue
                if a == b:
                    self.error(f"{prefix}.address", f"duplicate network {a} (also "
                                                    f"{earlier_prefix}, {earlier.name!r})")
                    is_ok = False
                elif a in b or b in a:
                    self.warn(f"{prefix}.address", f"{a} overlaps {b} of {earlier_prefix} "
                                                   f"({earlier.name!r}): most specific match wins")
        return is_ok

    # --- [perimeter] --------------------------------------------------------------------

    def perimeter(self, table: dict[str, Any]) -> PerimeterConfig | None:
        key = "perimeter.networks"
        value = table.get("networks", list(DEFAULT_PERIMETER_NETWORKS))
        networks: list[netaddr.IPNetwork] = []
        is_ok = True
        if not isinstance(value, list):
            self.error(key, f'expected a list of CIDR strings, got {_shown(value)}')
            is_ok = False
        else:
            for index, item in enumerate(value):
                network = self.network(item, f"{key}[{index}]", "a CIDR network")
                if network is None:
                    is_ok = False
                else:
                    networks.append(network)
            if not value:
                self.warn(key, "is empty: the perimeter check refuses every emergency code")
        check = table.get("check", DEFAULT_PERIMETER_CHECK)
        if not isinstance(check, str) or check not in PERIMETER_CHECKS:
            self.error("perimeter.check", f"{_shown(check)} is not one of "
                                          f"{', '.join(repr(c) for c in PERIMETER_CHECKS)}")
            is_ok = False
        if not is_ok:
            return None
        return PerimeterConfig(networks=tuple(networks), ip_set=netaddr.IPSet(networks),
                               check=check)

    # --- [admin_web] --------------------------------------------------------------------

    def admin_web(self, table: dict[str, Any]) -> AdminWebConfig | None:
        is_ok = True
        listen: ListenAddress | None = None
        value = table.get("listen", DEFAULT_ADMIN_WEB_LISTEN)
        if value != "":  # "" disables the admin web
            listen = self.listen_address(value, "admin_web.listen")
            is_ok = listen is not None
        cert = self.tls_file(table, "tls_cert")
        key = self.tls_file(table, "tls_key")
        if cert is False or key is False:
            is_ok = False
        elif (cert is None) != (key is None):
            missing, present = ("tls_key", "tls_cert") if key is None else ("tls_cert", "tls_key")
            self.error(f"admin_web.{missing}", f"missing; {present} needs {missing} too")
            is_ok = False
        require_totp = self.require_totp(table)
        if not is_ok or require_totp is None:
            return None
        assert cert is not False and key is not False
        if cert is not None and key is not None:
            problems, warnings = tls_pair_problems(cert, key, self.now)
            for problem in problems:
                self.error(*problem)
            for warning in warnings:
                self.warn(*warning)
            if problems:
                return None
        return AdminWebConfig(listen=listen, tls_cert=cert, tls_key=key,
                              require_totp=require_totp)

    def require_totp(self, table: dict[str, Any]) -> bool | None:
        """``admin_web.require_totp`` (issue 20, 13); None after reporting a problem."""
        key = "admin_web.require_totp"
        value = table.get("require_totp", True)
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {_shown(value)}")
            return None
        if not value:
            self.warn(key, "false: admins sign in to the web console with a password "
                           "alone; this console can issue any user's emergency codes "
                           "(use it in a lab only)")
        return value

    def tls_file(self, table: dict[str, Any], name: str) -> Path | None | bool:
        """The resolved path; None when absent; False after reporting a problem."""
        if name not in table:
            return None
        key = f"admin_web.{name}"
        path = self.path_value(table[name], key)
        if path is None:
            return False
        if not path.is_file():
            self.error(key, f"file not found: {path}")
            return False
        if not os.access(path, os.R_OK):
            self.error(key, f"file not readable: {path}")
            return False
        return path


# --- the TLS certificate and key -----------------------------------------------------------

_CERT, _KEY = "admin_web.tls_cert", "admin_web.tls_key"
_TLS_HINT = "the certificate, then any intermediate certificates, as PEM"


def tls_pair_problems(cert_path: Path, key_path: Path, now: datetime | None
                      ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Load the consoles' certificate and key as HTTPS will, and say what stops them.

    Args:
        cert_path: PEM: the server certificate first, then its intermediates (if any).
        key_path: the PEM private key of the first certificate, without a passphrase.
        now: the time validity is checked against; None: not checked.

    Returns:
        ``(errors, warnings)`` as ``(key_path, message)``: errors for a file that cannot
        be read or is not PEM, an encrypted key, a key that does not match the
        certificate, pyOpenSSL missing (HTTPS cannot start without it); warnings for a
        certificate that has expired or is not valid yet (browsers refuse it, but a
        console on a wrong clock should still start). No message holds key material.
    """
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    errors: list[tuple[str, str]] = []
    warnings: list[tuple[str, str]] = []
    certificates = key = None
    try:
        certificates = x509.load_pem_x509_certificates(cert_path.read_bytes())
    except OSError as exc:
        errors.append((_CERT, f"cannot read {cert_path}: {exc.strerror or exc}"))
    except ValueError:
        errors.append((_CERT, f"{cert_path} holds no PEM certificate; expected {_TLS_HINT}"))
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except OSError as exc:
        errors.append((_KEY, f"cannot read {key_path}: {exc.strerror or exc}"))
    except TypeError:  # cryptography: "Password was not given but private key is encrypted"
        errors.append((_KEY, f"{key_path} is encrypted: radiusd needs the key without a "
                             f"passphrase (e.g. openssl pkey -in KEY -out KEY.new)"))
    except (ValueError, UnsupportedAlgorithm):
        errors.append((_KEY, f"{key_path} holds no PEM private key"))
    if certificates and key is not None:
        def spki(public_key) -> bytes:
            return public_key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)

        mine = spki(key.public_key())
        if spki(certificates[0].public_key()) != mine:
            later = any(spki(c.public_key()) == mine for c in certificates[1:])
            errors.append((_KEY, f"{key_path} is not the key of the certificate in "
                                 f"{cert_path}" + ("; that certificate must come first "
                                                   "in the file" if later else "")))
    if certificates and now is not None:
        leaf = certificates[0]
        if leaf.not_valid_after_utc <= now:
            warnings.append((_CERT, f"the certificate expired on "
                                    f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC: "
                                    f"browsers will refuse the consoles until it is renewed"))
        elif leaf.not_valid_before_utc > now:
            warnings.append((_CERT, f"the certificate is not valid before "
                                    f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"))
    try:  # what HTTPS runs on (Twisted's ``tls`` extra): serve needs it, so say so here
        import OpenSSL  # noqa: F401
    except ImportError:
        errors.append((_CERT, "HTTPS needs pyOpenSSL, which is not installed: reinstall "
                              "radiusd (make install, or pip install 'twisted[tls]')"))
    return errors, warnings


# --- value parsers ------------------------------------------------------------------------


def parse_listen_address(text: str) -> ListenAddress:
    """Parse ``"IP:PORT"``; IPv6 in brackets, as in URLs: ``"[::1]:1812"``.

    Args:
        text: the address as written in the config.

    Returns:
        The address with the host in its canonical spelling, without brackets.

    Raises:
        ValueError: not an IP address and port in range; the message names the value.
    """
    value = text.strip()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r} has no closing bracket; {_LISTEN_HINT}")
        if not rest.startswith(":"):
            raise ValueError(f"{text!r} has no port; {_LISTEN_HINT}")
        port_text = rest[1:]
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            raise ValueError(f"{text!r} has no port; {_LISTEN_HINT}")
        if ":" in host:
            raise ValueError(f"{text!r}: IPv6 addresses need brackets, e.g. [::1]:1812")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} in {text!r} is not an IP address; {_LISTEN_HINT}") from None
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"{port_text!r} in {text!r} is not a port; expected 1-65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} in {text!r} is out of range; expected 1-65535")
    return ListenAddress(host=str(address), port=port)


def _unknown(kind: str, name: str, allowed: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1)
    return f"unknown {kind}" + (f" (did you mean {close[0]!r}?)" if close else "")


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return "a date/time"
    return type(value).__name__


def _shown(value: object) -> str:
    """The value as an admin wrote it, for keys that never hold a secret."""
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, (list, dict)):
        return _type_name(value)
    else:
        shown = repr(value) if isinstance(value, str) else str(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{_type_name(value)} {shown}" if not isinstance(value, str) else shown

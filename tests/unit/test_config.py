"""radiusd.config: the shipped file, defaults, path resolution, and every problem with its key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import netaddr
import pytest

from radiusd.config import (ListenAddress, check_config, default_config_path,
                            load_config, parse_listen_address)
from radiusd.errors import ConfigError
from radiusd.model import Secret
from support import write_tls_pair

REPO = Path(__file__).resolve().parents[2]
GOOD_SECRET = "s3cret-long-enough-for-rfc2865"
CANARY = "CANARY-x7Q9-never-print-me"

CLIENT = f"""
[[clients]]
name = "nas"
address = "10.0.0.1"
secret = "{GOOD_SECRET}"
"""


def write(tmp_path: Path, text: str, name: str = "radiusd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> tuple[dict[str, str], dict[str, str]]:
    """(errors, warnings) of ``text`` as {key: message}; keys are unique in these tests."""
    errors, warnings = check_config(write(tmp_path, text))
    return dict(errors), dict(warnings)


# --- the shipped config and defaults ------------------------------------------------------


def test_shipped_config_loads_with_only_the_short_secret_warning():
    config = load_config(REPO / "config" / "radiusd.toml")

    assert config.warnings == (
        ("clients[0].secret", config.warnings[0][1]),
    )
    assert "RFC 2865 §3" in config.warnings[0][1]
    assert [client.name for client in config.clients] == ["localhost"]
    assert config.clients[0].network == netaddr.IPNetwork("127.0.0.1/32")
    assert config.clients[0].secret == Secret("testing123")
    assert config.clients[0].require_message_authenticator is True


def test_shipped_config_keeps_its_data_in_the_project_var_folder():
    config = load_config(REPO / "config" / "radiusd.toml")

    assert config.database.url == f"sqlite:///{REPO / 'var' / 'radiusd.db'}"
    assert config.keys.path == REPO / "var" / "radiusd.key"
    assert config.path == REPO / "config" / "radiusd.toml"


def test_check_config_of_the_shipped_file_has_no_errors():
    errors, warnings = check_config(REPO / "config" / "radiusd.toml")

    assert errors == []
    assert [key for key, _message in warnings] == ["clients[0].secret"]


def test_every_section_is_optional_with_the_spec_defaults(tmp_path):
    config = load_config(write(tmp_path, CLIENT))

    assert config.radius.listen == (ListenAddress("127.0.0.1", 1812),)
    assert config.radius.reject_delay == timedelta(seconds=1)
    assert config.database.url == f"sqlite:///{tmp_path / 'var' / 'radiusd.db'}"
    assert config.keys.path == tmp_path / "var" / "radiusd.key"
    assert config.perimeter.networks == tuple(netaddr.IPNetwork(n) for n in (
        "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
    assert netaddr.IPAddress("192.168.1.1") in config.perimeter.ip_set
    assert config.perimeter.check == "nas"
    assert config.admin_web.listen == ListenAddress("127.0.0.1", 8080)
    assert config.admin_web.tls_cert is None and config.admin_web.tls_key is None
    assert config.warnings == ()


def test_an_empty_file_loads_with_a_no_clients_warning(tmp_path):
    config = load_config(write(tmp_path, ""))

    assert config.clients == ()
    assert config.warnings == (("clients", "no clients: every packet will be dropped"),)


def test_a_full_config_is_read_into_values(tmp_path):
    write_tls_pair(tmp_path / "tls")
    config = load_config(write(tmp_path, f"""
[radius]
listen = ["0.0.0.0:1812", "[::1]:11812"]
reject_delay = "0"

[database]
url = "postgresql+psycopg://radiusd@db.example/radiusd"

[keys]
path = "/etc/radiusd/radiusd.key"

[[clients]]
name = "vpn"
address = "10.1.0.0/16"
secret = "{GOOD_SECRET}"
require_message_authenticator = true

[[clients]]
name = "wifi"
address = "fd00::/8"
secret = "{GOOD_SECRET}-2"

[perimeter]
networks = ["10.0.0.0/8", "fd00::/8"]
check = "both"

[admin_web]
listen = "[::1]:8443"
tls_cert = "tls/cert.pem"
tls_key = "tls/key.pem"
"""))

    assert config.radius.listen == (ListenAddress("0.0.0.0", 1812), ListenAddress("::1", 11812))
    assert config.radius.reject_delay == timedelta(0)
    assert config.database.url == "postgresql+psycopg://radiusd@db.example/radiusd"
    assert config.keys.path == Path("/etc/radiusd/radiusd.key")
    assert [c.network for c in config.clients] == [netaddr.IPNetwork("10.1.0.0/16"),
                                                   netaddr.IPNetwork("fd00::/8")]
    assert config.perimeter.check == "both"
    assert netaddr.IPAddress("fd00::1") in config.perimeter.ip_set
    assert config.admin_web.listen == ListenAddress("::1", 8443)
    assert config.admin_web.tls_cert == tmp_path / "tls" / "cert.pem"
    assert config.admin_web.tls_key == tmp_path / "tls" / "key.pem"
    assert config.warnings == ()


def test_admin_web_listen_empty_disables_the_web(tmp_path):
    config = load_config(write(tmp_path, CLIENT + '[admin_web]\nlisten = ""\n'))

    assert config.admin_web.listen is None


def test_config_values_are_frozen(tmp_path):
    config = load_config(write(tmp_path, CLIENT))

    with pytest.raises(AttributeError):
        config.radius = None  # type: ignore[misc]


# --- relative paths: against the config file's directory ----------------------------------


@pytest.mark.parametrize("url, expected", [
    ("sqlite:///data/radiusd.db", "sqlite:///{base}/data/radiusd.db"),
    ("sqlite:///../var/radiusd.db", "sqlite:///{parent}/var/radiusd.db"),
    ("sqlite:///data/radiusd.db?timeout=5", "sqlite:///{base}/data/radiusd.db?timeout=5"),
    ("sqlite:////srv/radiusd.db", "sqlite:////srv/radiusd.db"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite://", "sqlite://"),
])
def test_sqlite_paths_resolve_against_the_config_directory(tmp_path, url, expected):
    base = tmp_path / "etc"
    base.mkdir()
    config = load_config(write(base, CLIENT + f'[database]\nurl = "{url}"\n'))

    assert config.database.url == expected.format(base=base, parent=tmp_path)


def test_relative_paths_do_not_depend_on_the_current_directory(tmp_path, monkeypatch):
    path = write(tmp_path, CLIENT + '[keys]\npath = "secret/radiusd.key"\n')
    monkeypatch.chdir("/")

    assert load_config(path).keys.path == tmp_path / "secret" / "radiusd.key"


def test_a_relative_config_path_is_taken_from_the_current_directory(tmp_path, monkeypatch):
    write(tmp_path, CLIENT)
    monkeypatch.chdir(tmp_path)

    config = load_config(Path("radiusd.toml"))

    assert config.path == tmp_path / "radiusd.toml"
    assert config.keys.path == tmp_path / "var" / "radiusd.key"


# --- default_config_path ------------------------------------------------------------------


def test_default_config_path_is_config_radiusd_toml_in_cwd():
    assert default_config_path({}, Path("/srv/app")) == Path("/srv/app/config/radiusd.toml")


def test_default_config_path_prefers_radiusd_config():
    assert default_config_path({"RADIUSD_CONFIG": "/etc/radiusd.toml"},
                               Path("/srv")) == Path("/etc/radiusd.toml")
    assert default_config_path({"RADIUSD_CONFIG": "alt.toml"},
                               Path("/srv")) == Path("/srv/alt.toml")


def test_default_config_path_ignores_an_empty_radiusd_config():
    assert default_config_path({"RADIUSD_CONFIG": ""},
                               Path("/srv")) == Path("/srv/config/radiusd.toml")


# --- each problem names its key -----------------------------------------------------------


ERROR_CASES = [
    # unknown sections and keys
    ("[radios]\n", "radios", "unknown section"),
    ("[radius]\nlisen = []\n", "radius.lisen", "unknown key (did you mean 'listen'?)"),
    (f'{CLIENT}adress = "10.0.0.2"\n', "clients[0].adress", "unknown key"),
    ('radius = "x"\n', "radius", "expected a table [radius]"),
    ('clients = "x"\n', "clients", "expected [[clients]] entries"),
    # [radius]
    ('[radius]\nlisten = ["127.0.0.1"]\n', "radius.listen[0]", "has no port"),
    ('[radius]\nlisten = ["::1:1812"]\n', "radius.listen[0]", "IPv6 addresses need brackets"),
    ('[radius]\nlisten = ["[::1]:0"]\n', "radius.listen[0]", "port 0"),
    ('[radius]\nlisten = ["127.0.0.1:65536"]\n', "radius.listen[0]", "expected 1-65535"),
    ('[radius]\nlisten = ["127.0.0.1:http"]\n', "radius.listen[0]", "'http' in"),
    ('[radius]\nlisten = ["radius.example:1812"]\n', "radius.listen[0]",
     "'radius.example' in 'radius.example:1812' is not an IP address"),
    ('[radius]\nlisten = ["[::1:1812"]\n', "radius.listen[0]", "no closing bracket"),
    ('[radius]\nlisten = []\n', "radius.listen", "is empty"),
    ('[radius]\nlisten = [1812]\n', "radius.listen[0]", "got an integer 1812"),
    ('[radius]\nlisten = ["127.0.0.1:1812", "127.0.0.1:1812"]\n', "radius.listen[1]",
     "listed twice (also radius.listen[0])"),
    ('[radius]\nreject_delay = "soon"\n', "radius.reject_delay", "'soon' is not a duration"),
    ('[radius]\nreject_delay = "11s"\n', "radius.reject_delay", "expected 0s to 10s"),
    ('[radius]\nreject_delay = "1m"\n', "radius.reject_delay", "too long"),
    ('[radius]\nreject_delay = true\n', "radius.reject_delay", "got a boolean true"),
    # [database]
    ('[database]\nurl = "mysql://db/radiusd"\n', "database.url", "unsupported scheme 'mysql'"),
    ('[database]\nurl = "postgres://db/radiusd"\n', "database.url", "spells it postgresql"),
    ('[database]\nurl = "var/radiusd.db"\n', "database.url", "is not a URL"),
    ('[database]\nurl = "postgresql+psycopg://"\n', "database.url", "names no server"),
    ('[database]\nurl = 5\n', "database.url", "expected a URL string, got an integer"),
    # [keys]
    ('[keys]\npath = ""\n', "keys.path", "is empty"),
    ('[keys]\npath = ["a"]\n', "keys.path", "expected a file path string, got an array"),
    # [[clients]]
    ('[[clients]]\naddress = "10.0.0.1"\nsecret = "x"\n', "clients[0].name", "missing"),
    ('[[clients]]\nname = "a"\nsecret = "x"\n', "clients[0].address", "missing"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.1"\n', "clients[0].secret", "missing"),
    ('[[clients]]\nname = ""\naddress = "10.0.0.1"\nsecret = "x"\n', "clients[0].name",
     "is empty"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.1"\nsecret = ""\n', "clients[0].secret",
     "MUST NOT be empty"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.1"\nsecret = 12345\n', "clients[0].secret",
     "expected a string, got an integer"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.5/8"\nsecret = "x"\n', "clients[0].address",
     "'10.0.0.5/8' has host bits set; did you mean 10.0.0.0/8?"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.256"\nsecret = "x"\n', "clients[0].address",
     "'10.0.0.256' is not an address or CIDR network"),
    ('[[clients]]\nname = "a"\naddress = "10.0.0.0/33"\nsecret = "x"\n',
     "clients[0].address", "is not an address or CIDR network"),
    ('[[clients]]\nname = "a"\naddress = "nas.example"\nsecret = "x"\n',
     "clients[0].address", "is not an address or CIDR network"),
    (f'{CLIENT}require_message_authenticator = "yes"\n',
     "clients[0].require_message_authenticator", "expected true or false, got 'yes'"),
    (CLIENT + CLIENT.replace("10.0.0.1", "10.0.0.2"), "clients[1].name",
     "duplicate client name 'nas' (also clients[0])"),
    (CLIENT + CLIENT.replace('"nas"', '"nas-2"').replace("10.0.0.1", "10.0.0.1/32"),
     "clients[1].address", "duplicate network 10.0.0.1/32 (also clients[0], 'nas')"),
    (CLIENT + CLIENT.replace('"nas"', '"mapped"').replace("10.0.0.1", "::ffff:10.0.0.1"),
     "clients[1].address", "duplicate network 10.0.0.1/32"),
    ('clients = [1]\n', "clients[0]", "expected a [[clients]] table"),
    # [perimeter]
    ('[perimeter]\nnetworks = ["10.0.0.0/8", "bogus"]\n', "perimeter.networks[1]",
     "'bogus' is not a CIDR network"),
    ('[perimeter]\nnetworks = ["192.168.1.1/16"]\n', "perimeter.networks[0]",
     "did you mean 192.168.0.0/16?"),
    ('[perimeter]\nnetworks = "10.0.0.0/8"\n', "perimeter.networks",
     "expected a list of CIDR strings"),
    ('[perimeter]\ncheck = "nass"\n', "perimeter.check",
     "'nass' is not one of 'nas', 'user', 'both'"),
    # [admin_web]
    ('[admin_web]\nlisten = "8080"\n', "admin_web.listen", "has no port"),
    ('[admin_web]\nlisten = false\n', "admin_web.listen", "got a boolean false"),
    ('[admin_web]\ntls_cert = "missing.pem"\n', "admin_web.tls_cert", "file not found"),
]


@pytest.mark.parametrize("text, key, fragment", ERROR_CASES,
                         ids=[f"{key}:{fragment[:30]}" for _t, key, fragment in ERROR_CASES])
def test_each_error_names_its_key(tmp_path, text, key, fragment):
    errors, _warnings = problems(tmp_path, text)

    assert key in errors, errors
    assert fragment in errors[key]


@pytest.mark.parametrize("text, key, fragment", ERROR_CASES[:5])
def test_load_config_raises_config_error_with_the_problems(tmp_path, text, key, fragment):
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))

    assert key in dict(raised.value.problems)
    assert key in str(raised.value)


def test_tls_cert_without_tls_key_is_an_error(tmp_path):
    write(tmp_path, "cert", "cert.pem")

    errors, _warnings = problems(tmp_path, CLIENT + '[admin_web]\ntls_cert = "cert.pem"\n')

    assert errors == {"admin_web.tls_key": "missing; tls_cert needs tls_key too"}


def test_tls_key_without_tls_cert_is_an_error(tmp_path):
    write(tmp_path, "key", "key.pem")

    errors, _warnings = problems(tmp_path, CLIENT + '[admin_web]\ntls_key = "key.pem"\n')

    assert errors == {"admin_web.tls_cert": "missing; tls_key needs tls_cert too"}


def test_a_tls_file_that_is_a_directory_is_not_found(tmp_path):
    (tmp_path / "tls").mkdir()
    write(tmp_path, "key", "key.pem")

    errors, _warnings = problems(
        tmp_path, CLIENT + '[admin_web]\ntls_cert = "tls"\ntls_key = "key.pem"\n')

    assert errors == {"admin_web.tls_cert": f"file not found: {tmp_path / 'tls'}"}


def test_several_problems_are_all_reported_at_once(tmp_path):
    errors, warnings = problems(tmp_path, """
[radius]
listen = ["127.0.0.1"]
reject_delay = "20s"
colour = "blue"

[database]
url = "mysql://db"

[[clients]]
name = "a"
address = "10.0.0.5/8"
secret = ""

[[clients]]
name = "a"
address = "10.0.0.0/24"
secret = "short"

[perimeter]
check = "everyone"

[admin_web]
tls_cert = "nope.pem"
""")

    assert set(errors) == {
        "radius.listen[0]", "radius.reject_delay", "radius.colour", "database.url",
        "clients[0].address", "clients[0].secret", "perimeter.check", "admin_web.tls_cert",
    }
    assert set(warnings) == {"clients[1].secret"}


def test_duplicate_names_are_reported_among_otherwise_valid_clients(tmp_path):
    errors, _warnings = problems(tmp_path, CLIENT + CLIENT.replace("10.0.0.1", "10.0.0.2")
                                 + CLIENT.replace("10.0.0.1", "10.0.0.3"))

    assert set(errors) == {"clients[1].name", "clients[2].name"}


# --- warnings -----------------------------------------------------------------------------


def test_short_secret_is_a_warning_citing_rfc_2865(tmp_path):
    config = load_config(write(tmp_path, CLIENT.replace(GOOD_SECRET, "123456789012345")))

    assert dict(config.warnings) == {
        "clients[0].secret": "is 15 octets; RFC 2865 §3 asks for at least 16 unguessable octets"}


def test_secret_length_counts_octets_not_characters(tmp_path):
    # 8 characters, 16 octets in UTF-8: long enough.
    config = load_config(write(tmp_path, CLIENT.replace(GOOD_SECRET, "éééééééé")))

    assert config.warnings == ()
    assert len(config.clients[0].secret) == 16


def test_require_message_authenticator_false_warns_about_blastradius(tmp_path):
    config = load_config(write(tmp_path, CLIENT + "require_message_authenticator = false\n"))

    assert config.clients[0].require_message_authenticator is False
    (key, message), = config.warnings
    assert key == "clients[0].require_message_authenticator"
    assert "BlastRADIUS CVE-2024-3596: only packets without Proxy-State are accepted unsigned" \
        in message


def test_overlapping_client_networks_warn_that_most_specific_wins(tmp_path):
    config = load_config(write(tmp_path, CLIENT.replace("10.0.0.1", "10.0.0.0/8")
                               + CLIENT.replace('"nas"', '"lab"')
                                       .replace("10.0.0.1", "10.1.0.0/16")))

    assert dict(config.warnings) == {
        "clients[1].address": "10.1.0.0/16 overlaps 10.0.0.0/8 of clients[0] ('nas'): "
                              "most specific match wins"}


def test_ipv4_and_ipv6_client_networks_do_not_overlap(tmp_path):
    config = load_config(write(tmp_path, CLIENT.replace("10.0.0.1", "0.0.0.0/0")
                               + CLIENT.replace('"nas"', '"v6"').replace("10.0.0.1", "::/0")))

    assert config.warnings == ()


def test_empty_perimeter_warns_that_emergency_codes_are_refused(tmp_path):
    config = load_config(write(tmp_path, CLIENT + "[perimeter]\nnetworks = []\n"))

    assert config.perimeter.networks == ()
    assert [key for key, _m in config.warnings] == ["perimeter.networks"]


# --- the file itself ----------------------------------------------------------------------


def test_missing_file_is_one_error_keyed_by_the_file_name(tmp_path):
    path = tmp_path / "absent.toml"

    errors, warnings = check_config(path)

    assert errors == [(str(path), "file not found")]
    assert warnings == []
    with pytest.raises(ConfigError, match="file not found"):
        load_config(path)


def test_toml_syntax_error_is_one_error_with_its_position(tmp_path):
    path = write(tmp_path, '[radius]\nlisten = [127.0.0.1:1812]\n')

    errors, _warnings = check_config(path)

    (key, message), = errors
    assert key == str(path)
    assert message.startswith("not valid TOML:") and "line" in message


def test_a_directory_is_not_a_config_file(tmp_path):
    errors, _warnings = check_config(tmp_path)

    assert errors == [(str(tmp_path), "is a directory, expected a TOML file")]


def test_unreadable_file_is_one_error(tmp_path, monkeypatch):
    path = write(tmp_path, CLIENT)
    real_open = type(path).open

    def refuse(self, *args, **kwargs):  # chmod 0 does not stop root, so refuse here
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(type(path), "open", refuse)

    errors, _warnings = check_config(path)

    assert [key for key, _m in errors] == [str(path)]
    assert errors[0][1].startswith("cannot read")


def test_non_utf8_file_is_one_error(tmp_path):
    path = tmp_path / "radiusd.toml"
    path.write_bytes(b'[radius]\nreject_delay = "\xff"\n')

    errors, _warnings = check_config(path)

    assert len(errors) == 1 and errors[0][0] == str(path)


# --- secrets never print ------------------------------------------------------------------


def test_secrets_never_appear_in_errors_or_warnings(tmp_path):
    text = f"""
[database]
url = "mysql://user:{CANARY}@db/radiusd"

[[clients]]
name = "short"
address = "10.0.0.1"
secret = "{CANARY[:10]}"

[[clients]]
name = "bad-address"
address = "10.0.0.300"
secret = "{CANARY}"
require_message_authenticator = false
secrett = "{CANARY}"

[[clients]]
name = "short"
address = "10.0.0.1"
secret = "{CANARY}"
"""
    errors, warnings = check_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text))

    assert errors and warnings
    shown = " ".join([str(raised.value), repr(raised.value), repr(errors), repr(warnings)])
    assert CANARY[:10] not in shown


def test_secret_of_the_wrong_type_is_not_shown(tmp_path):
    errors, _warnings = problems(
        tmp_path, '[[clients]]\nname = "a"\naddress = "10.0.0.1"\nsecret = 987654321987\n')

    assert "987654321987" not in repr(errors)


def test_secrets_are_wrapped_and_redacted_in_the_config_repr(tmp_path):
    config = load_config(write(tmp_path, CLIENT.replace(GOOD_SECRET, CANARY)))

    assert isinstance(config.clients[0].secret, Secret)
    assert config.clients[0].secret.reveal() == CANARY.encode()
    assert CANARY not in repr(config)


# --- listen addresses ---------------------------------------------------------------------


@pytest.mark.parametrize("text, host, port", [
    ("127.0.0.1:1812", "127.0.0.1", 1812),
    ("0.0.0.0:1", "0.0.0.0", 1),
    ("[::1]:1812", "::1", 1812),
    ("[::]:65535", "::", 65535),
    ("[2001:DB8::0001]:1812", "2001:db8::1", 1812),
])
def test_listen_addresses_parse_ipv4_and_bracketed_ipv6(text, host, port):
    address = parse_listen_address(text)

    assert address == ListenAddress(host, port)


def test_listen_address_prints_like_it_is_written():
    assert str(ListenAddress("::1", 1812)) == "[::1]:1812"
    assert str(ListenAddress("127.0.0.1", 1812)) == "127.0.0.1:1812"


def test_radius_listen_accepts_a_single_string(tmp_path):
    config = load_config(write(tmp_path, CLIENT + '[radius]\nlisten = "[::1]:1812"\n'))

    assert config.radius.listen == (ListenAddress("::1", 1812),)


def test_reject_delay_accepts_whole_seconds_as_an_integer(tmp_path):
    config = load_config(write(tmp_path, CLIENT + "[radius]\nreject_delay = 2\n"))

    assert config.radius.reject_delay == timedelta(seconds=2)


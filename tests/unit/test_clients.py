"""radiusd.clients: client lookup by UDP source address (RFC 2865 §2, §3)."""

from __future__ import annotations

import netaddr
import pytest

from radiusd.clients import ClientTable, unmap_network
from radiusd.model import Client, Secret


def client(name: str, network: str) -> Client:
    return Client(name=name, network=netaddr.IPNetwork(network),
                  secret=Secret(f"secret-of-{name}-0123456789"))


WORLD = client("world", "0.0.0.0/0")
CORP = client("corp", "10.0.0.0/8")
LAB = client("lab", "10.1.0.0/16")
VPN = client("vpn", "10.1.2.3")
V6_SITE = client("v6-site", "2001:db8::/32")
V6_HOST = client("v6-host", "2001:db8::1")
MAPPED = client("mapped", "::ffff:192.0.2.0/120")

TABLE = ClientTable([CORP, LAB, VPN, V6_SITE, V6_HOST, MAPPED])


@pytest.mark.parametrize("address, expected", [
    ("10.9.9.9", CORP),
    ("10.1.9.9", LAB),
    ("10.1.2.3", VPN),
    ("10.1.2.4", LAB),
    ("2001:db8::1", V6_HOST),
    ("2001:db8::2", V6_SITE),
    ("2001:0DB8:0000::0001", V6_HOST),
    ("fe80::1%eth0", None),
    ("2001:db8::1%eth0", V6_HOST),
    ("11.0.0.1", None),
    ("2001:db9::1", None),
    ("192.0.2.77", MAPPED),
])
def test_most_specific_network_wins(address, expected):
    assert TABLE.lookup(address) is expected


def test_order_of_clients_does_not_change_the_most_specific_match():
    table = ClientTable([VPN, LAB, CORP, WORLD])

    assert table.lookup("10.1.2.3") is VPN
    assert table.lookup("10.1.0.1") is LAB
    assert table.lookup("10.2.0.1") is CORP
    assert table.lookup("8.8.8.8") is WORLD


@pytest.mark.parametrize("address, expected", [
    ("::ffff:10.1.2.3", VPN),
    ("::ffff:10.1.0.9", LAB),
    ("::FFFF:10.200.0.1", CORP),
    ("::ffff:a01:203", VPN),
    ("::ffff:11.0.0.1", None),
])
def test_ipv4_mapped_ipv6_is_treated_as_its_ipv4_address(address, expected):
    assert TABLE.lookup(address) is expected


def test_ipv4_client_does_not_match_ipv6_addresses():
    table = ClientTable([WORLD])

    assert table.lookup("::1") is None
    assert table.lookup("::a01:203") is None  # IPv4-compatible (deprecated), not mapped


@pytest.mark.parametrize("address", [
    "", " ", "10.1.2.3 ", "10.1.2", "10.1.2.3.4", "10.1.2.256", "010.1.2.3", "10.1.2.3/32",
    "localhost", "::ffff:10.1.2.3/128", "[::1]", "x" * 10_000, "10.1.2.3\x00", "٣.٣.٣.٣",
])
def test_garbage_strings_are_unknown(address):
    assert TABLE.lookup(address) is None


@pytest.mark.parametrize("address", [None, 167838211, b"10.1.2.3", ["10.1.2.3"], object()])
def test_non_strings_are_unknown_and_never_raise(address):
    assert TABLE.lookup(address) is None  # type: ignore[arg-type]


def test_an_empty_table_knows_no_one():
    table = ClientTable([])

    assert table.lookup("127.0.0.1") is None
    assert len(table) == 0


def test_repeated_lookups_give_the_same_answer_from_the_cache():
    table = ClientTable([CORP, LAB])

    first = [table.lookup(a) for a in ("10.1.0.1", "10.2.0.1", "11.0.0.1")]
    second = [table.lookup(a) for a in ("10.1.0.1", "10.2.0.1", "11.0.0.1")]

    assert first == second == [LAB, CORP, None]


def test_a_full_cache_starts_over_and_keeps_answering():
    table = ClientTable([CORP], cache_size=4)

    answers = [table.lookup(f"10.0.0.{n}") for n in range(50)]
    answers += [table.lookup(f"11.0.0.{n}") for n in range(50)]

    assert answers == [CORP] * 50 + [None] * 50
    assert len(table._cache) <= 4


def test_the_first_of_two_clients_with_the_same_network_is_kept():
    first, second = client("first", "10.0.0.0/8"), client("second", "10.0.0.0/8")

    assert ClientTable([first, second]).lookup("10.0.0.1") is first


def test_cache_size_must_be_positive():
    with pytest.raises(ValueError):
        ClientTable([], cache_size=0)


@pytest.mark.parametrize("network, expected", [
    ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
    ("::ffff:10.1.2.3/128", "10.1.2.3/32"),
    ("::ffff:0:0/96", "0.0.0.0/0"),
    ("::/0", "::/0"),
    ("2001:db8::/32", "2001:db8::/32"),
    ("10.0.0.0/8", "10.0.0.0/8"),
])
def test_unmap_network_turns_ipv4_mapped_networks_into_ipv4(network, expected):
    assert unmap_network(netaddr.IPNetwork(network)) == netaddr.IPNetwork(expected)

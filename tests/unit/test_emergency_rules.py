"""Whether a set may be used: its state at ``now``, and the perimeter (nas / user / both),
with the address and most specific rule reported for the audit row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import netaddr
import pytest
from hypothesis import given, strategies as st

from radiusd.emergency.rules import (PERIMETER_CHECKS, PerimeterResult, SetStatus,
                                     check_perimeter, parse_ip_address, set_status)
from radiusd.model import EmergencyCode, EmergencySet, PacketCode, RadiusRequest

NOW = datetime(2026, 11, 25, 19, 0, tzinfo=UTC)

NETWORKS = tuple(netaddr.IPNetwork(n) for n in (
    "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "192.168.0.0/16", "127.0.0.0/8",
    "2001:db8::/32", "2001:db8:1::/48"))
IP_SET = netaddr.IPSet(NETWORKS)

INSIDE_NAS = "192.168.7.1"
OUTSIDE_NAS = "203.0.113.9"


def request(*, station: str | None = None, framed: str | None = None) -> RadiusRequest:
    return RadiusRequest(code=PacketCode.ACCESS_REQUEST, identifier=1,
                         authenticator=bytes(16), attributes=(), user_name="alice",
                         calling_station_id=station, framed_ip_address=framed)


def perimeter(check: str, nas: str = INSIDE_NAS, *, station: str | None = None,
              framed: str | None = None, networks=NETWORKS,
              ip_set: netaddr.IPSet = IP_SET) -> PerimeterResult:
    return check_perimeter(check=check, networks=networks, ip_set=ip_set, nas_address=nas,
                           request=request(station=station, framed=framed))


# --- check = "nas" --------------------------------------------------------------------------


@pytest.mark.parametrize("nas,address,rule", [
    ("10.200.0.1", "10.200.0.1", "10.0.0.0/8"),
    ("10.1.9.9", "10.1.9.9", "10.1.0.0/16"),
    ("10.1.2.3", "10.1.2.3", "10.1.2.0/24"),       # most specific of three nested rules
    ("127.0.0.1", "127.0.0.1", "127.0.0.0/8"),
    ("::ffff:10.1.2.3", "10.1.2.3", "10.1.2.0/24"),  # dual-stack socket: IPv4-mapped
    ("2001:db8::1", "2001:db8::1", "2001:db8::/32"),
    ("2001:db8:1::5", "2001:db8:1::5", "2001:db8:1::/48"),
])
def test_nas_inside_reports_address_and_most_specific_rule(nas: str, address: str,
                                                           rule: str) -> None:
    result = perimeter("nas", nas)
    assert result == PerimeterResult(is_inside=True, address=address, rule=rule,
                                     reason=f"nas {address} inside {rule}")


@pytest.mark.parametrize("nas", [OUTSIDE_NAS, "11.0.0.1", "2001:db9::1", "::1",
                                 "::ffff:203.0.113.9"])
def test_nas_outside_is_refused_without_rule(nas: str) -> None:
    result = perimeter("nas", nas)
    assert not result.is_inside and result.rule is None
    assert result.address == str(parse_ip_address(nas))
    assert result.reason.endswith("outside the perimeter")


@pytest.mark.parametrize("nas", ["", "localhost", "10.1.2", "not an address"])
def test_nas_address_that_is_not_an_ip_is_outside(nas: str) -> None:
    assert perimeter("nas", nas) == PerimeterResult(
        is_inside=False, address=None, rule=None, reason="nas address is not an IP address")


def test_nas_check_ignores_the_user_address() -> None:
    assert not perimeter("nas", OUTSIDE_NAS, station="10.1.2.3", framed="10.1.2.3").is_inside
    assert perimeter("nas", INSIDE_NAS, station="203.0.113.5").is_inside


# --- check = "user" -------------------------------------------------------------------------


def test_user_framed_ip_address_inside() -> None:
    result = perimeter("user", OUTSIDE_NAS, framed="10.1.2.3")
    assert result == PerimeterResult(
        is_inside=True, address="10.1.2.3", rule="10.1.2.0/24",
        reason="user 10.1.2.3 (Framed-IP-Address) inside 10.1.2.0/24")


def test_user_framed_ip_address_outside_wins_over_calling_station_inside() -> None:
    result = perimeter("user", INSIDE_NAS, framed="203.0.113.5", station="10.1.2.3")
    assert not result.is_inside and result.address == "203.0.113.5" and result.rule is None
    assert result.reason == "user 203.0.113.5 (Framed-IP-Address) outside the perimeter"


@pytest.mark.parametrize("placeholder", ["255.255.255.255", "255.255.255.254"])
def test_framed_ip_placeholder_falls_back_to_calling_station_id(placeholder: str) -> None:
    # RFC 2865 §5.8: these values ask the NAS to pick an address; they are not the user's.
    assert perimeter("user", framed=placeholder, station="10.1.2.3").address == "10.1.2.3"
    assert not perimeter("user", framed=placeholder).is_inside


def test_unreadable_framed_ip_address_is_outside_even_with_calling_station_inside() -> None:
    result = perimeter("user", framed="not-an-ip", station="10.1.2.3")
    assert result == PerimeterResult(is_inside=False, address=None, rule=None,
                                     reason="Framed-IP-Address is not an IP address")


@pytest.mark.parametrize("station,address,rule", [
    ("10.1.2.3", "10.1.2.3", "10.1.2.0/24"),
    ("  192.168.0.20\t", "192.168.0.20", "192.168.0.0/16"),
    ("2001:db8:1::20", "2001:db8:1::20", "2001:db8:1::/48"),
    ("2001:DB8::20", "2001:db8::20", "2001:db8::/32"),
    ("[2001:db8::20]", "2001:db8::20", "2001:db8::/32"),
    (" [2001:db8::20] ", "2001:db8::20", "2001:db8::/32"),
    ("::ffff:10.1.2.3", "10.1.2.3", "10.1.2.0/24"),
    ("[::ffff:192.168.1.1]", "192.168.1.1", "192.168.0.0/16"),
])
def test_user_calling_station_ip_inside(station: str, address: str, rule: str) -> None:
    result = perimeter("user", OUTSIDE_NAS, station=station)
    assert result == PerimeterResult(
        is_inside=True, address=address, rule=rule,
        reason=f"user {address} (Calling-Station-Id) inside {rule}")


@pytest.mark.parametrize("station", ["203.0.113.5", "2001:db9::1", "[2001:db9::1]",
                                     "::ffff:8.8.8.8"])
def test_user_calling_station_ip_outside(station: str) -> None:
    result = perimeter("user", INSIDE_NAS, station=station)
    assert not result.is_inside and result.rule is None and result.address is not None
    assert result.reason.endswith("(Calling-Station-Id) outside the perimeter")


@pytest.mark.parametrize("station", [
    "00-11-22-33-44-55", "00:11:22:33:44:55", "0011.2233.4455", "001122334455",
    "AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff", "AABB.CCDD.EEFF", "AABBCCDDEEFF",
    " 00-11-22-33-44-55 ",
    "00:11:22:33:44:55:66:77",   # EUI-64: also valid IPv6 text, read as a MAC (fail closed)
    "0a:00:00:01:00:00:00:01",
])
def test_user_mac_address_in_calling_station_id_never_matches(station: str) -> None:
    # A perimeter of everything: a MAC must still not pass.
    everything = (netaddr.IPNetwork("0.0.0.0/0"), netaddr.IPNetwork("::/0"))
    result = perimeter("user", station=station, networks=everything,
                       ip_set=netaddr.IPSet(everything))
    assert result == PerimeterResult(is_inside=False, address=None, rule=None,
                                     reason="Calling-Station-Id is a MAC address")


@pytest.mark.parametrize("station", [
    "alice-laptop", "10.1.2", "10.1.2.3.4", "010.001.002.003", "0x0a010203", "167838211",
    "10.1.2.3:4500", "[2001:db8::1]:443", "10.0.0.0/8", "fe80::1%eth0", "[10.1.2.3]",
    "10.1.2.3 10.1.2.4", "10.1.2.3\x00", "１０.1.2.3", "00-11-22-33-44-55:Corp-WiFi",
])
def test_user_calling_station_garbage_is_outside_without_echoing_it(station: str) -> None:
    everything = (netaddr.IPNetwork("0.0.0.0/0"), netaddr.IPNetwork("::/0"))
    result = perimeter("user", station=station, networks=everything,
                       ip_set=netaddr.IPSet(everything))
    assert result == PerimeterResult(is_inside=False, address=None, rule=None,
                                     reason="Calling-Station-Id is not an IP address")


@pytest.mark.parametrize("station", [None, "", "   "])
def test_user_address_missing_is_outside(station: str | None) -> None:
    assert perimeter("user", INSIDE_NAS, station=station) == PerimeterResult(
        is_inside=False, address=None, rule=None, reason="user address missing")


def test_user_check_ignores_the_nas_address() -> None:
    assert perimeter("user", OUTSIDE_NAS, station="10.1.2.3").is_inside
    assert not perimeter("user", INSIDE_NAS, station="203.0.113.5").is_inside


# --- check = "both" -------------------------------------------------------------------------


def test_both_inside_reports_the_user_address_and_both_reasons() -> None:
    result = perimeter("both", "10.200.0.1", station="10.1.2.3")
    assert result == PerimeterResult(
        is_inside=True, address="10.1.2.3", rule="10.1.2.0/24",
        reason="nas 10.200.0.1 inside 10.0.0.0/8; "
               "user 10.1.2.3 (Calling-Station-Id) inside 10.1.2.0/24")


def test_both_with_nas_outside_is_outside_and_names_the_nas() -> None:
    result = perimeter("both", OUTSIDE_NAS, station="10.1.2.3")
    assert not result.is_inside and result.address == OUTSIDE_NAS
    assert result.reason == f"nas {OUTSIDE_NAS} outside the perimeter"


@pytest.mark.parametrize("station,framed,reason", [
    ("203.0.113.5", None, "user 203.0.113.5 (Calling-Station-Id) outside the perimeter"),
    ("00:11:22:33:44:55", None, "Calling-Station-Id is a MAC address"),
    (None, None, "user address missing"),
    ("10.1.2.3", "203.0.113.5", "user 203.0.113.5 (Framed-IP-Address) outside the perimeter"),
])
def test_both_with_user_outside_is_outside(station: str | None, framed: str | None,
                                           reason: str) -> None:
    result = perimeter("both", INSIDE_NAS, station=station, framed=framed)
    assert not result.is_inside and result.rule is None and result.reason == reason


# --- fail closed ----------------------------------------------------------------------------


@pytest.mark.parametrize("check", ["", "NAS", "either", "none", "any", " nas", "both "])
def test_unknown_check_value_is_outside(check: str) -> None:
    result = perimeter(check, INSIDE_NAS, station="10.1.2.3", framed="10.1.2.3")
    assert result == PerimeterResult(is_inside=False, address=None, rule=None,
                                     reason=f"unknown perimeter check {check!r}")


@pytest.mark.parametrize("check", PERIMETER_CHECKS)
def test_empty_perimeter_refuses_everything(check: str) -> None:
    result = perimeter(check, "10.1.2.3", station="10.1.2.3", networks=(),
                       ip_set=netaddr.IPSet())
    assert not result.is_inside and result.rule is None


@given(nas=st.text(max_size=60), station=st.none() | st.text(max_size=60),
       framed=st.none() | st.text(max_size=60), check=st.sampled_from(PERIMETER_CHECKS))
def test_perimeter_check_never_raises_and_inside_always_names_address_and_rule(
        nas: str, station: str | None, framed: str | None, check: str) -> None:
    result = perimeter(check, nas, station=station, framed=framed)
    if result.is_inside:
        assert result.address is not None and result.rule is not None
        assert netaddr.IPAddress(result.address) in IP_SET
    else:
        assert result.rule is None


# --- parse_ip_address -----------------------------------------------------------------------


@pytest.mark.parametrize("text,expected", [
    ("10.1.2.3", "10.1.2.3"), (" 10.1.2.3\n", "10.1.2.3"), ("::1", "::1"),
    ("[::1]", "::1"), ("::ffff:10.1.2.3", "10.1.2.3"), ("::FFFF:a01:203", "10.1.2.3"),
])
def test_parse_ip_address_reads_the_usual_forms(text: str, expected: str) -> None:
    address = parse_ip_address(text)
    assert address is not None and str(address) == expected


@pytest.mark.parametrize("text", ["", "[]", "[10.1.2.3]", "10.1", "1", "0x0a.1.2.3",
                                  "10.01.2.3", "fe80::1%1", "::1/128", "[::1", "::1]"])
def test_parse_ip_address_refuses_ambiguous_or_decorated_forms(text: str) -> None:
    assert parse_ip_address(text) is None


# --- set_status -----------------------------------------------------------------------------


def emergency(*, expires_in: timedelta = timedelta(hours=1), revoked: bool = False,
              used: int = 0, total: int = 3) -> EmergencySet:
    codes = tuple(EmergencyCode(id=i, position=i, code_hash=bytes(32),
                                used_at=NOW - timedelta(minutes=5) if i <= used else None)
                  for i in range(1, total + 1))
    return EmergencySet(id="a" * 32, user_id=7, code_length=8,
                        issued_at=NOW - timedelta(hours=1), expires_at=NOW + expires_in,
                        issued_by="cli", reason="test",
                        revoked_at=NOW - timedelta(minutes=1) if revoked else None,
                        revoked_reason="superseded" if revoked else None, codes=codes)


@pytest.mark.parametrize("subject,expected", [
    (None, "none"),
    (emergency(), "active"),
    (emergency(used=2), "active"),
    (emergency(expires_in=timedelta(microseconds=1)), "active"),
    (emergency(expires_in=timedelta(0)), "expired"),       # valid until, not including
    (emergency(expires_in=-timedelta(seconds=1)), "expired"),
    (emergency(revoked=True), "revoked"),
    (emergency(used=3), "used_up"),
    (emergency(total=0), "used_up"),
    (emergency(revoked=True, expires_in=-timedelta(hours=1)), "revoked"),
    (emergency(used=3, expires_in=-timedelta(hours=1)), "expired"),
    (emergency(used=3, revoked=True), "revoked"),
], ids=["none", "active", "active-one-left", "active-last-microsecond", "expired-at-boundary",
        "expired", "revoked", "used-up", "no-codes", "revoked-beats-expired",
        "expired-beats-used-up", "revoked-beats-used-up"])
def test_set_status(subject: EmergencySet | None, expected: str) -> None:
    status = set_status(subject, NOW)
    assert status == expected and isinstance(status, SetStatus) and isinstance(status, str)


def test_set_status_with_naive_now_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        set_status(emergency(), NOW.replace(tzinfo=None))

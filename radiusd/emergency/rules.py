"""Whether an emergency code set may be used: its state at ``now`` and the network perimeter.

Owns: the set states (``none``, ``active``, ``expired``, ``revoked``, ``used_up``) and the
perimeter check of SPEC "Config file" ``[perimeter]``: ``check = "nas"`` (the RADIUS client's
UDP source address), ``"user"`` (Framed-IP-Address, else an IP address in
Calling-Station-Id), ``"both"``. Which address was checked and which configured network
matched go into the result, for the audit row.

Fail closed: an unknown check, a missing or unparseable address, or a MAC address in
Calling-Station-Id is *outside*.

Must not import: twisted, sqlalchemy, pyrad, os.environ. Must not know: sockets, clocks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import netaddr

from radiusd.model import EmergencySet, RadiusRequest

PERIMETER_CHECKS: tuple[str, ...] = ("nas", "user", "both")

# A MAC address in the forms NAS vendors put in Calling-Station-Id (RFC 3580 §3.21 uses
# "00-10-A4-23-19-C0"; others use colons, Cisco dotted quads of hex, or bare hex). EUI-64
# (8 groups) is included: "00:11:22:33:44:55:66:77" also parses as IPv6, but no NAS writes
# a user's IPv6 address that way, and reading it as a MAC fails closed.
_MAC = re.compile(
    r"""(?ix)
    (?: [0-9a-f]{2} (?P<sep>[-:]) [0-9a-f]{2}
        (?: (?P=sep) [0-9a-f]{2} ){4} (?: (?P=sep) [0-9a-f]{2} ){0,2}
      | [0-9a-f]{4} \. [0-9a-f]{4} \. [0-9a-f]{4} (?: \. [0-9a-f]{4} )?
      | [0-9a-f]{12} (?: [0-9a-f]{4} )?
    )""")

# RFC 2865 §5.8: in Framed-IP-Address, 255.255.255.255 means "let the user choose" and
# 255.255.255.254 "the NAS assigns one": neither is the user's address.
_FRAMED_IP_PLACEHOLDERS = frozenset({"255.255.255.255", "255.255.255.254"})


# revoked_reason of a set that a newer set of the same user replaced (issuing a set while
# one is active); its codes are refused as ``code_of_replaced_set`` (decide.py).
SUPERSEDED = "superseded"


class SetStatus(StrEnum):
    """The state of a user's latest set (a ``str``: compares equal to ``"active"`` etc.)."""

    NONE = "none"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED_UP = "used_up"


def set_status(emergency: EmergencySet | None, now: datetime) -> SetStatus:
    """The state of ``emergency`` at ``now``.

    Precedence: revoked (an admin's or the policy's explicit act) before expired, expired
    before used up. Only ``"active"`` means a code of the set may be accepted.

    Args:
        emergency: the user's latest set, or ``None`` when she never had one.
        now: the time of the request (timezone-aware, like ``expires_at``).

    Returns:
        ``"none"``, ``"revoked"``, ``"expired"`` (``now >= expires_at``), ``"used_up"``
        (active but every code used) or ``"active"``.

    Raises:
        TypeError: ``now`` and ``expires_at`` are not both timezone-aware (or both naive).
    """
    if emergency is None:
        return SetStatus.NONE
    if emergency.revoked_at is not None:
        return SetStatus.REVOKED
    if not now < emergency.expires_at:  # valid until, not including, expires_at
        return SetStatus.EXPIRED
    if emergency.codes_left == 0:
        return SetStatus.USED_UP
    return SetStatus.ACTIVE


@dataclass(frozen=True, slots=True)
class PerimeterResult:
    """The outcome of the perimeter check, for the decision and the audit row.

    ``address`` is the address that decided (``None`` when there was none to check),
    ``rule`` the most specific configured network that contained it (``None`` when outside),
    ``reason`` a short sentence for the audit trail (never on the wire).
    """

    is_inside: bool
    address: str | None
    rule: str | None
    reason: str


def check_perimeter(*, check: str, networks: tuple[netaddr.IPNetwork, ...],
                    ip_set: netaddr.IPSet, nas_address: str,
                    request: RadiusRequest) -> PerimeterResult:
    """Whether the request comes from inside the network perimeter.

    ``"nas"`` checks the RADIUS client's UDP source address; ``"user"`` checks the user's
    address: Framed-IP-Address when the NAS sent one, else Calling-Station-Id when it holds
    an IPv4 or IPv6 address (surrounding whitespace ignored, ``[v6]`` brackets accepted; a
    MAC address or anything else never matches); ``"both"`` needs both to pass. An
    IPv4-mapped IPv6 address (``::ffff:10.1.2.3``) counts as its IPv4 address.

    Args:
        check: ``"nas"``, ``"user"`` or ``"both"``; anything else is outside (fail closed).
        networks: the configured ``[perimeter] networks``, to name the matching rule.
        ip_set: the same networks as an ``IPSet``; membership decides.
        nas_address: the client's UDP source address (``addr[0]`` of the datagram).
        request: the decoded Access-Request.

    Returns:
        The result. For ``"both"`` when both pass: the user's address and rule, and a
        reason naming both; when one fails: that check's result.
    """
    if check == "nas":
        return _check_nas(networks, ip_set, nas_address)
    if check == "user":
        return _check_user(networks, ip_set, request)
    if check == "both":
        nas = _check_nas(networks, ip_set, nas_address)
        if not nas.is_inside:
            return nas
        user = _check_user(networks, ip_set, request)
        if not user.is_inside:
            return user
        return PerimeterResult(is_inside=True, address=user.address, rule=user.rule,
                               reason=f"{nas.reason}; {user.reason}")
    return PerimeterResult(is_inside=False, address=None, rule=None,
                           reason=f"unknown perimeter check {check!r}")


def parse_ip_address(text: str) -> netaddr.IPAddress | None:
    """An IPv4 or IPv6 address written in the usual text forms, else ``None``.

    Surrounding whitespace and ``[...]`` around an IPv6 address are accepted; an
    IPv4-mapped IPv6 address becomes its IPv4 address. Refused: legacy IPv4 forms
    (``10.1``, ``0x0a000001``, leading zeros, which ``inet_aton`` would read as octal),
    zone ids (``fe80::1%eth0``), ports, CIDR suffixes, and anything else.

    Args:
        text: the candidate.

    Returns:
        The address, or ``None`` when ``text`` is not one.
    """
    text = text.strip()
    is_bracketed = text.startswith("[") and text.endswith("]")
    if is_bracketed:
        text = text[1:-1]
    if "%" in text:  # a zone id names a local interface, not a place in the network
        return None
    try:
        # The standard library parser is strict (no inet_aton shorthand, no leading zeros).
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    elif is_bracketed and address.version == 4:
        return None  # brackets are IPv6 notation (RFC 3986 §3.2.2)
    return netaddr.IPAddress(int(address), version=address.version)


def check_nas_perimeter(*, networks: tuple[netaddr.IPNetwork, ...], ip_set: netaddr.IPSet,
                        nas_address: str) -> PerimeterResult:
    """``check_perimeter(check="nas", ...)``: it depends on the NAS's address alone, so the
    request path computes it once per NAS and reuses it (``decide.Origin``)."""
    return _check_nas(networks, ip_set, nas_address)


def _check_nas(networks: tuple[netaddr.IPNetwork, ...], ip_set: netaddr.IPSet,
               nas_address: str) -> PerimeterResult:
    address = parse_ip_address(nas_address)
    if address is None:
        return PerimeterResult(is_inside=False, address=None, rule=None,
                               reason="nas address is not an IP address")
    return _locate("nas", address, networks, ip_set)


def _check_user(networks: tuple[netaddr.IPNetwork, ...], ip_set: netaddr.IPSet,
                request: RadiusRequest) -> PerimeterResult:
    framed = request.framed_ip_address
    if framed is not None:
        address = parse_ip_address(framed)
        if address is None:  # the NAS said something we cannot read: fail closed
            return PerimeterResult(is_inside=False, address=None, rule=None,
                                   reason="Framed-IP-Address is not an IP address")
        if str(address) not in _FRAMED_IP_PLACEHOLDERS:
            return _locate("user", address, networks, ip_set, source="Framed-IP-Address")
    station = request.calling_station_id
    if station is None or not station.strip():
        return PerimeterResult(is_inside=False, address=None, rule=None,
                               reason="user address missing")
    if _MAC.fullmatch(station.strip()):
        return PerimeterResult(is_inside=False, address=None, rule=None,
                               reason="Calling-Station-Id is a MAC address")
    address = parse_ip_address(station)
    if address is None:
        # The value itself stays out of the reason: it is free text from the network.
        return PerimeterResult(is_inside=False, address=None, rule=None,
                               reason="Calling-Station-Id is not an IP address")
    return _locate("user", address, networks, ip_set, source="Calling-Station-Id")


def _locate(who: str, address: netaddr.IPAddress, networks: tuple[netaddr.IPNetwork, ...],
            ip_set: netaddr.IPSet, source: str | None = None) -> PerimeterResult:
    label = f"{who} {address}" + (f" ({source})" if source else "")
    if address not in ip_set:
        return PerimeterResult(is_inside=False, address=str(address), rule=None,
                               reason=f"{label} outside the perimeter")
    rule = _most_specific(address, networks)
    where = f"inside {rule}" if rule is not None else "inside the perimeter"
    return PerimeterResult(is_inside=True, address=str(address), rule=rule,
                           reason=f"{label} {where}")


def _most_specific(address: netaddr.IPAddress,
                   networks: tuple[netaddr.IPNetwork, ...]) -> str | None:
    """The longest-prefix network containing ``address`` (as routing picks it)."""
    containing = [network for network in networks
                  if network.version == address.version and address in network]
    if not containing:
        return None
    return str(max(containing, key=lambda network: network.prefixlen).cidr)

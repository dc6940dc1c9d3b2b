"""Which ``[[clients]]`` entry (NAS) a datagram comes from, by its UDP source address.

Owns: the longest-prefix match of a source address against the configured client networks,
on the per-packet hot path. RFC 2865 §3 ("Administrative Note"): the shared secret is
selected by the source IP address of the packet, never by NAS-IP-Address/NAS-Identifier
(§5.4, §5.32); a packet from an address matching no client is silently discarded (§2).

IPv4-mapped IPv6 (``::ffff:192.0.2.1``, as a dual-stack socket reports IPv4 peers) is the
IPv4 address it carries, both in the table and in the addresses looked up.

Must not import: twisted, sqlalchemy, pyrad.
"""

from __future__ import annotations

import ipaddress
from typing import Iterable

import netaddr

from radiusd.model import Client

_IPV4_MAPPED = netaddr.IPNetwork("::ffff:0:0/96")  # RFC 4291 §2.5.5.2
_BITS = {4: 32, 6: 128}
_MAX_CACHED_ADDRESS = 64  # longer strings are not addresses a socket reports: not cached


def unmap_network(network: netaddr.IPNetwork) -> netaddr.IPNetwork:
    """The IPv4 network an IPv4-mapped IPv6 network stands for; others unchanged.

    Args:
        network: any network, e.g. ``::ffff:10.0.0.0/104``.

    Returns:
        ``10.0.0.0/8`` for the example; ``network`` itself when it is not inside
        ``::ffff:0:0/96``.
    """
    if network.version == 6 and network.prefixlen >= 96 and network in _IPV4_MAPPED:
        return network.ipv4()
    return network


class ClientTable:
    """The configured clients, indexed for longest-prefix lookup by source address.

    Networks are grouped by prefix length, longest first, each group a dict from network
    number to client: the /32 and /128 group is the exact-host dict, and a lookup costs one
    dict probe per distinct prefix length. Results (including "no client") are memoised per
    address string in a bounded cache, so a known NAS costs one dict lookup per packet.
    """

    def __init__(self, clients: Iterable[Client], cache_size: int = 4096):
        """Index ``clients``.

        Args:
            clients: the ``[[clients]]`` entries; when two have the same network (config
                reports it as an error), the first one is kept.
            cache_size: how many distinct source addresses are memoised; a full cache
                starts over (an address spray cannot grow memory).

        Raises:
            ValueError: ``cache_size`` is less than 1.
        """
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self._clients = tuple(clients)
        self._cache_size = cache_size
        self._cache: dict[str, Client | None] = {}
        groups: dict[int, dict[int, dict[int, Client]]] = {4: {}, 6: {}}
        for client in self._clients:
            network = unmap_network(client.network)
            by_number = groups[network.version].setdefault(network.prefixlen, {})
            by_number.setdefault(network.first, client)
        self._groups: dict[int, tuple[tuple[int, dict[int, Client]], ...]] = {
            version: tuple((_mask(_BITS[version], prefixlen), by_number)
                           for prefixlen, by_number in sorted(by_prefix.items(), reverse=True))
            for version, by_prefix in groups.items()
        }

    def __len__(self) -> int:
        return len(self._clients)

    def lookup(self, address: str) -> Client | None:
        """The client whose network contains ``address``; the most specific one wins.

        Args:
            address: the UDP source address as the socket reports it: IPv4, IPv6 (a
                ``%zone`` suffix is ignored) or IPv4-mapped IPv6.

        Returns:
            The matching client, or None for an unknown address or a string that is not
            an IP address (never raises).
        """
        try:
            return self._cache[address]
        except KeyError:
            pass
        except TypeError:  # unhashable: certainly not an address
            return None
        client = self._match(address)
        if isinstance(address, str) and len(address) <= _MAX_CACHED_ADDRESS:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[address] = client
        return client

    def _match(self, address: object) -> Client | None:
        if not isinstance(address, str):
            return None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        number = int(ip)
        for mask, by_number in self._groups[ip.version]:
            client = by_number.get(number & mask)
            if client is not None:
                return client
        return None


def _mask(bits: int, prefixlen: int) -> int:
    """The netmask of ``prefixlen`` as an integer (``/8`` of 32 bits: ``0xFF000000``)."""
    return ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1)

"""IP address management: subnet defaults, pool validation, random free addresses.

Uniqueness is the database's job (primary key (subnet_id, ip_address)); write transactions
are serialized, so "pick a free address, insert it" cannot race.  Addresses are picked at
random from the pools (as Neutron does), never the lowest free one.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Connection, select

from dvr.db.tables import ip_allocations
from dvr.server.errors import BadRequestError, conflict, invalid_input

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ENUMERATE_LIMIT = 1 << 16  # pools up to this size are enumerated, larger ones sampled
RANDOM_TRIES = 64
PROBES = 8  # random candidates checked one by one before loading the whole subnet
SLAAC_MODES = ("slaac", "dhcpv6-stateless")


def parse_cidr(cidr: Any, ip_version: int | None = None) -> IPNetwork:
    """Neutron's checks: a network address with prefix, of the requested IP version."""
    try:
        if not isinstance(cidr, str) or "/" not in cidr:
            raise ValueError
        network = ipaddress.ip_network(cidr, strict=False)
        given = ipaddress.ip_interface(cidr).ip
    except ValueError:
        raise invalid_input(f"{cidr} is not in a CIDR format.") from None
    if network.network_address != given:
        raise invalid_input(
            f"'{cidr}' isn't a recognized IP subnet cidr, '{network}' is recommended"
        )
    if ip_version is not None and network.version != ip_version:
        raise invalid_input("Cidr and ip_version do not match")
    if network.prefixlen == 0:
        raise invalid_input(f"{cidr} is not a valid subnet (prefix length 0).")
    return network


def first_host(network: IPNetwork) -> IPAddress:
    if network.num_addresses == 1:
        return network.network_address
    return network.network_address + 1


def _usable_bounds(network: IPNetwork) -> tuple[int, int]:
    first, last = int(network.network_address), int(network.broadcast_address)
    if network.version == 4 and network.prefixlen < 31:
        return first + 1, last - 1
    if network.version == 6 and network.num_addresses > 1:
        return first + 1, last  # the subnet-router anycast address is not handed out
    return first, last


def _ranges_without(start: int, end: int, excluded: int | None) -> list[tuple[int, int]]:
    if excluded is None or not start <= excluded <= end:
        return [(start, end)] if start <= end else []
    result = []
    if start <= excluded - 1:
        result.append((start, excluded - 1))
    if excluded + 1 <= end:
        result.append((excluded + 1, end))
    return result


def default_pools(network: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    start, end = _usable_bounds(network)
    excluded = int(ipaddress.ip_address(gateway)) if gateway else None
    cls = type(network.network_address)
    return [
        {"start": str(cls(a)), "end": str(cls(b))} for a, b in _ranges_without(start, end, excluded)
    ]


def validate_gateway(network: IPNetwork, gateway: str) -> None:
    address = ipaddress.ip_address(gateway)
    if address.version != network.version or address not in network:
        raise invalid_input(f"Gateway is not valid on subnet: {gateway} is not in {network}.")
    if (
        network.version == 4
        and network.prefixlen < 31
        and address
        in (
            network.network_address,
            network.broadcast_address,
        )
    ):
        raise invalid_input(f"Gateway is not valid on subnet: {gateway} is not a host address.")


def validate_pools(
    network: IPNetwork, pools: list[dict[str, str]], gateway: str | None
) -> list[dict[str, str]]:
    ranges = []
    for pool in pools:
        start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        if start.version != network.version or end.version != network.version or start > end:
            raise BadRequestError(
                f"The allocation pool {pool['start']}-{pool['end']} is not valid.",
                type_name="InvalidAllocationPool",
            )
        if start not in network or end not in network:
            raise BadRequestError(
                f"The allocation pool {pool['start']}-{pool['end']} spans beyond the subnet "
                f"cidr {network}.",
                type_name="OutOfBoundsAllocationPool",
            )
        ranges.append((int(start), int(end), pool))
    ranges.sort(key=lambda r: r[0])
    for (_, end_a, a), (start_b, _, b) in zip(ranges, ranges[1:], strict=False):
        if start_b <= end_a:
            raise conflict(
                "OverlappingAllocationPools",
                f"Found overlapping allocation pools: {a['start']}-{a['end']} and "
                f"{b['start']}-{b['end']} for subnet {network}.",
            )
    if gateway is not None:
        gw = int(ipaddress.ip_address(gateway))
        for start, end, pool in ranges:
            if start <= gw <= end:
                raise conflict(
                    "GatewayConflictWithAllocationPools",
                    f"Gateway ip {gateway} conflicts with allocation pool "
                    f"{pool['start']}-{pool['end']}.",
                )
    return [r[2] for r in ranges]


def allocated_addresses(conn: Connection, subnet_id: str) -> set[str]:
    query = select(ip_allocations.c.ip_address).where(ip_allocations.c.subnet_id == subnet_id)
    return {row[0] for row in conn.execute(query)}


def is_allocated(conn: Connection, subnet_id: str, ip_address: str) -> bool:
    query = select(ip_allocations.c.port_id).where(
        ip_allocations.c.subnet_id == subnet_id, ip_allocations.c.ip_address == ip_address
    )
    return conn.execute(query).first() is not None


def _pool_ranges(pools: Iterable[dict[str, str]]) -> list[tuple[int, int]]:
    return [
        (int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"]))) for p in pools
    ]


def _nth_address(ranges: list[tuple[int, int]], offset: int) -> int:
    for start, end in ranges:
        if offset <= end - start:
            return start + offset
        offset -= end - start + 1
    raise IndexError(offset)


def pick_free_address(
    pools: list[dict[str, str]],
    taken: set[str],
    version: int,
    rng: random.Random,
    reserved: Iterable[str] = (),
    is_taken: Callable[[str], bool] | None = None,
) -> str | None:
    """A random pool address that is neither taken nor reserved, or None when full.

    ``taken`` may be partial when ``is_taken`` (a point lookup) is given: random candidates
    are tried first, each confirmed by ``is_taken``; callers fall back to a complete
    ``taken`` set (see ``allocate``) when sampling finds nothing.
    """
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    blocked = {int(ipaddress.ip_address(a)) for a in (*taken, *reserved)}
    ranges = _pool_ranges(pools)
    size = sum(end - start + 1 for start, end in ranges)
    if size == 0:
        return None
    for _ in range(RANDOM_TRIES if is_taken is None else PROBES):
        candidate = _nth_address(ranges, rng.randrange(size))
        if candidate not in blocked and (is_taken is None or not is_taken(str(cls(candidate)))):
            return str(cls(candidate))
    if is_taken is not None:
        return None
    if size <= ENUMERATE_LIMIT:
        free = [a for start, end in ranges for a in range(start, end + 1) if a not in blocked]
        return str(cls(rng.choice(free))) if free else None
    # a huge, nearly full pool: a window of len(blocked)+1 addresses holds a free one
    first = rng.randrange(size)
    for step in range(min(size, len(blocked) + 1)):
        candidate = _nth_address(ranges, (first + step) % size)
        if candidate not in blocked:
            return str(cls(candidate))
    return None


def allocate(
    conn: Connection,
    subnet_id: str,
    pools: list[dict[str, str]],
    version: int,
    rng: random.Random,
    reserved: Iterable[str] = (),
    pending: set[str] = frozenset(),  # type: ignore[assignment]
) -> str | None:
    """A random free address of the subnet: a few point lookups, else one full scan."""
    reserved = [*reserved, *pending]
    picked = pick_free_address(
        pools, set(), version, rng, reserved, lambda ip: is_allocated(conn, subnet_id, ip)
    )
    if picked is not None:
        return picked
    return pick_free_address(pools, allocated_addresses(conn, subnet_id), version, rng, reserved)


def eui64_address(cidr: str, mac: str) -> str:
    """The SLAAC address of ``mac`` on an IPv6 /64 (modified EUI-64)."""
    network = ipaddress.ip_network(cidr)
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    interface_id = int.from_bytes(bytes(eui), "big")
    return str(ipaddress.IPv6Address(int(network.network_address) | interface_id))


def address_in_subnet(ip_address: str, cidr: str) -> bool:
    address = ipaddress.ip_address(ip_address)
    network = ipaddress.ip_network(cidr)
    return address.version == network.version and address in network


def is_subnet_boundary(ip_address: str, cidr: str) -> bool:
    """The network or broadcast address of an IPv4 subnet that has both (prefix < 31): no
    port may hold it (Neutron's InvalidIpForSubnet)."""
    network = ipaddress.ip_network(cidr, strict=False)
    if network.version != 4 or network.prefixlen >= 31:
        return False
    address = ipaddress.ip_address(ip_address)
    return address in (network.network_address, network.broadcast_address)

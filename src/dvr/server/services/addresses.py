"""Which addresses a port holds: plan (subnet, ip) pairs on a network, then write them.

``plan_addresses`` reads the network's subnets and the allocations already made, picks free
addresses (or checks requested ones) and returns the plan; ``write_allocations`` and
``delete_allocations`` store it.  Nothing here declares change impact: the port write that
uses a plan does (``changes.port_change``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert

from dvr.db.tables import ip_allocations
from dvr.server.errors import BadRequestError, conflict, invalid_input
from dvr.server.services import ipam
from dvr.server.services.queries import network_subnets
from dvr.server.tx import WriteTx


def _subnet_for_ip(subnet_rows: list[Any], ip: str, network_id: str) -> Any:
    for row in subnet_rows:
        if ipam.address_in_subnet(ip, row.cidr):
            return row
    raise invalid_input(
        f"IP address {ip} is not a valid IP for any of the subnets on the specified network."
    )


def _pick(tx: WriteTx, subnet: Any, taken: set[str], mac: str) -> str | None:
    if subnet.ip_version == 6 and subnet.ipv6_address_mode in ipam.SLAAC_MODES:
        return ipam.eui64_address(subnet.cidr, mac)
    reserved = [subnet.gateway_ip] if subnet.gateway_ip else []
    return ipam.allocate(
        tx.conn,
        subnet.id,
        list(subnet.allocation_pools),
        subnet.ip_version,
        tx.rng,
        reserved,
        pending=taken,
    )


def plan_addresses(
    tx: WriteTx,
    network_id: str,
    requested: list[dict[str, str]] | None,
    mac: str,
    keep: tuple[tuple[str, str], ...] = (),
) -> tuple[tuple[str, str], ...]:
    """The (subnet, ip) pairs a port on ``network_id`` should hold.

    ``requested`` None means Neutron's default (one IPv4 address, one stateful IPv6 address,
    plus every SLAAC subnet); ``keep`` are addresses the port already holds (update).
    """
    subnet_rows = network_subnets(tx.conn, network_id)
    by_id = {s.id: s for s in subnet_rows}
    planned: list[tuple[str, str]] = []
    taken: set[str] = set()
    if requested is None:
        return _default_addresses(tx, network_id, subnet_rows, mac)
    kept = dict(keep)
    for entry in requested:
        subnet_id = entry.get("subnet_id")
        ip = entry.get("ip_address")
        if subnet_id is not None and subnet_id not in by_id:
            raise invalid_input(
                f"Failed to create port on network {network_id}, because fixed_ips included "
                f"invalid subnet {subnet_id}."
            )
        if ip is not None:
            subnet = by_id[subnet_id] if subnet_id else _subnet_for_ip(subnet_rows, ip, network_id)
            if not ipam.address_in_subnet(ip, subnet.cidr) or ipam.is_subnet_boundary(
                ip, subnet.cidr
            ):
                raise BadRequestError(
                    f"IP address {ip} is not a valid IP for the specified subnet.",
                    type_name="InvalidIpForSubnet",
                )
            already_ours = (subnet.id, ip) in keep
            if (subnet.id, ip) in planned or (
                not already_ours and ipam.is_allocated(tx.conn, subnet.id, ip)
            ):
                raise conflict(
                    "IpAddressAlreadyAllocated",
                    f"IP address {ip} already allocated in subnet {subnet.id}",
                )
            planned.append((subnet.id, ip))
            continue
        subnet = by_id[subnet_id]  # type: ignore[index]
        if subnet.id in kept and (subnet.id, kept[subnet.id]) not in planned:
            planned.append((subnet.id, kept.pop(subnet.id)))
            continue
        picked = _pick(tx, subnet, taken | {p for _, p in planned}, mac)
        if picked is None:
            raise conflict(
                "IpAddressGenerationFailure",
                f"No more IP addresses available for subnet {subnet.id}.",
            )
        planned.append((subnet.id, picked))
    taken.update(p for _, p in planned)
    return tuple(sorted(planned))


def _default_addresses(
    tx: WriteTx, network_id: str, subnet_rows: list[Any], mac: str
) -> tuple[tuple[str, str], ...]:
    planned: list[tuple[str, str]] = []
    need_v4 = any(s.ip_version == 4 for s in subnet_rows)
    need_v6 = any(
        s.ip_version == 6 and s.ipv6_address_mode not in ipam.SLAAC_MODES for s in subnet_rows
    )
    got_v4 = got_v6 = False
    for subnet in subnet_rows:
        slaac = subnet.ip_version == 6 and subnet.ipv6_address_mode in ipam.SLAAC_MODES
        if subnet.ip_version == 4 and got_v4 or subnet.ip_version == 6 and not slaac and got_v6:
            continue
        picked = _pick(tx, subnet, set(), mac)
        if picked is None:
            continue
        planned.append((subnet.id, picked))
        got_v4 = got_v4 or subnet.ip_version == 4
        got_v6 = got_v6 or (subnet.ip_version == 6 and not slaac)
    if (need_v4 and not got_v4) or (need_v6 and not got_v6):
        raise conflict(
            "IpAddressGenerationFailure", f"No more IP addresses available on network {network_id}."
        )
    return tuple(sorted(planned))


def write_allocations(
    tx: WriteTx, port_id: str, network_id: str, ips: tuple[tuple[str, str], ...]
) -> None:
    if ips:
        tx.conn.execute(
            insert(ip_allocations),
            [
                {"port_id": port_id, "subnet_id": s, "ip_address": ip, "network_id": network_id}
                for s, ip in ips
            ],
        )


def delete_allocations(tx: WriteTx, port_id: str) -> None:
    tx.conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == port_id))

"""Network IP availability (Neutron's ``network-ip-availability``): per network and subnet,
how many addresses the allocation pools hold (``total_ips``) and how many are allocated
(``used_ips``, pool or not)."""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

from sqlalchemy import Connection, func, select

from dvr.db.tables import ip_allocations, networks, subnets
from dvr.server.errors import NotFoundError


def pool_size(pools: list[dict[str, str]]) -> int:
    return sum(
        int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
        for p in pools
    )


def _render(network: Any, subnet_rows: list[Any], used: Counter) -> dict[str, Any]:
    per_subnet = [
        {
            "subnet_id": s.id,
            "subnet_name": s.name,
            "cidr": s.cidr,
            "ip_version": s.ip_version,
            "total_ips": pool_size(list(s.allocation_pools)),
            "used_ips": used[s.id],
        }
        for s in subnet_rows
    ]
    return {
        "network_id": network.id,
        "network_name": network.name,
        "project_id": network.project_id,
        "tenant_id": network.project_id,
        "total_ips": sum(s["total_ips"] for s in per_subnet),
        "used_ips": sum(s["used_ips"] for s in per_subnet),
        "subnet_ip_availability": per_subnet,
    }


def availabilities(conn: Connection, network_id: str | None = None) -> list[dict[str, Any]]:
    """Every network's availability (or one network's; 404 when it does not exist)."""
    network_query = select(networks).order_by(networks.c.id)
    subnet_query = select(subnets).order_by(subnets.c.created_at, subnets.c.id)
    used_query = select(ip_allocations.c.subnet_id, func.count()).group_by(
        ip_allocations.c.subnet_id
    )
    if network_id is not None:
        network_query = network_query.where(networks.c.id == network_id)
        subnet_query = subnet_query.where(subnets.c.network_id == network_id)
        used_query = used_query.where(
            ip_allocations.c.subnet_id.in_(
                select(subnets.c.id).where(subnets.c.network_id == network_id)
            )
        )
    network_rows = list(conn.execute(network_query))
    if network_id is not None and not network_rows:
        raise NotFoundError(
            f"Network IP Availability {network_id} could not be found.",
            type_name="NetworkNotFound",
        )
    by_network: dict[str, list[Any]] = {}
    for row in conn.execute(subnet_query):
        by_network.setdefault(row.network_id, []).append(row)
    used = Counter(dict(conn.execute(used_query).all()))
    return [_render(n, by_network.get(n.id, []), used) for n in network_rows]

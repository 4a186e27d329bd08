"""Read-only queries several services share: one row by id, a network's subnets, a port's
addresses, the routers that show a network's subnets.

This module imports no service module (only the helpers in ``common``), so any service can
use it without creating an import cycle.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dvr.db.tables import (
    address_scopes,
    floatingips,
    ip_allocations,
    networks,
    ports,
    routers,
    subnetpools,
    subnets,
)
from dvr.server.services.common import get_row


# -- one row by id (404 when absent) ---------------------------------------------------------
def get_network(conn: Connection, network_id: str) -> Any:
    return get_row(conn, networks, "network", network_id)


def get_subnet(conn: Connection, subnet_id: str) -> Any:
    return get_row(conn, subnets, "subnet", subnet_id)


def get_port(conn: Connection, port_id: str) -> Any:
    return get_row(conn, ports, "port", port_id)


def get_router(conn: Connection, router_id: str) -> Any:
    return get_row(conn, routers, "router", router_id)


def get_floatingip(conn: Connection, fip_id: str) -> Any:
    return get_row(conn, floatingips, "floatingip", fip_id)


def get_subnetpool(conn: Connection, subnetpool_id: str) -> Any:
    return get_row(conn, subnetpools, "subnetpool", subnetpool_id)


def get_address_scope(conn: Connection, address_scope_id: str) -> Any:
    return get_row(conn, address_scopes, "address_scope", address_scope_id)


# -- networks and their subnets --------------------------------------------------------------
def network_subnets(conn: Connection, network_id: str) -> list[Any]:
    """The subnet rows of a network, oldest first."""
    query = (
        select(subnets)
        .where(subnets.c.network_id == network_id)
        .order_by(subnets.c.created_at, subnets.c.id)
    )
    return list(conn.execute(query))


def subnet_ids_by_network(conn: Connection, network_ids: list[str] | None) -> dict[str, list[str]]:
    """network id -> its subnet ids, oldest first (None: of every network)."""
    query = select(subnets.c.network_id, subnets.c.id).order_by(subnets.c.created_at, subnets.c.id)
    if network_ids is not None:
        query = query.where(subnets.c.network_id.in_(network_ids))
    result: dict[str, list[str]] = {}
    for network_id, subnet_id in conn.execute(query):
        result.setdefault(network_id, []).append(subnet_id)
    return result


def address_scopes_by_network(
    conn: Connection, network_ids: list[str] | None
) -> dict[str, dict[int, str | None]]:
    """network id -> {ip_version: address scope id} of the pools its subnets came from
    (None: of every network).  A network has one pool per IP version (subnets enforce it)."""
    query = (
        select(subnets.c.network_id, subnetpools.c.ip_version, subnetpools.c.address_scope_id)
        .select_from(subnets.join(subnetpools, subnetpools.c.id == subnets.c.subnetpool_id))
        .distinct()
    )
    if network_ids is not None:
        query = query.where(subnets.c.network_id.in_(network_ids))
    result: dict[str, dict[int, str | None]] = {}
    for network_id, ip_version, scope_id in conn.execute(query):
        result.setdefault(network_id, {})[ip_version] = scope_id
    return result


def gateway_routers(conn: Connection, network_id: str) -> set[str]:
    """Routers whose external gateway is on this network (they show its subnets)."""
    query = select(routers.c.id).where(routers.c.gw_network_id == network_id)
    return {row[0] for row in conn.execute(query)}


# -- port addresses --------------------------------------------------------------------------
def port_ips(conn: Connection, port_id: str) -> tuple[tuple[str, str], ...]:
    """The (subnet_id, ip) pairs a port holds, sorted."""
    query = select(ip_allocations.c.subnet_id, ip_allocations.c.ip_address).where(
        ip_allocations.c.port_id == port_id
    )
    return tuple(sorted((s, ip) for s, ip in conn.execute(query)))


def fixed_ips_of_ports(conn: Connection, port_ids: list[str] | None) -> dict[str, list[dict]]:
    """port id -> its ``fixed_ips`` as the API renders them (None: of every port)."""
    query = (
        select(ip_allocations.c.port_id, ip_allocations.c.subnet_id, ip_allocations.c.ip_address)
        .select_from(ip_allocations.join(subnets, subnets.c.id == ip_allocations.c.subnet_id))
        .order_by(subnets.c.created_at, subnets.c.id, ip_allocations.c.ip_address)
    )
    if port_ids is not None:
        query = query.where(ip_allocations.c.port_id.in_(port_ids))
    result: dict[str, list[dict]] = {}
    for port_id, subnet_id, ip in conn.execute(query):
        result.setdefault(port_id, []).append({"subnet_id": subnet_id, "ip_address": ip})
    return result

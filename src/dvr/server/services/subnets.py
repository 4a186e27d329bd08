"""Subnets: CIDR/gateway/pool validation, create, update, delete, render."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import ip_allocations, networks, ports, router_interfaces, routers, subnets
from dvr.server.errors import bad_request, conflict, invalid_input
from dvr.server.services import ipam
from dvr.server.services.common import bump, get_row, new_id, standard_fields, standard_values
from dvr.server.tx import WriteTx

AUTO_DELETE_OWNERS = ("network:dhcp",)  # their addresses go with the subnet


def get_subnet(conn: Connection, subnet_id: str) -> Any:
    return get_row(conn, subnets, "subnet", subnet_id)


def render_subnet(row: Any) -> dict[str, Any]:
    return {
        **standard_fields(row),
        "name": row.name,
        "network_id": row.network_id,
        "ip_version": row.ip_version,
        "cidr": row.cidr,
        "gateway_ip": row.gateway_ip,
        "allocation_pools": list(row.allocation_pools or []),
        "enable_dhcp": row.enable_dhcp,
        "dns_nameservers": list(row.dns_nameservers or []),
        "host_routes": list(row.host_routes or []),
        "ipv6_ra_mode": row.ipv6_ra_mode,
        "ipv6_address_mode": row.ipv6_address_mode,
        "subnetpool_id": None,
        "service_types": list(row.service_types or []),
        "segment_id": None,
    }


def show(conn: Connection, subnet_id: str) -> dict[str, Any]:
    return render_subnet(get_subnet(conn, subnet_id))


def network_subnets(conn: Connection, network_id: str) -> list[Any]:
    query = (
        select(subnets)
        .where(subnets.c.network_id == network_id)
        .order_by(subnets.c.created_at, subnets.c.id)
    )
    return list(conn.execute(query))


def gateway_routers(conn: Connection, network_id: str) -> set[str]:
    """Routers whose external gateway is on this network (they show its subnets)."""
    query = select(routers.c.id).where(routers.c.gw_network_id == network_id)
    return {row[0] for row in conn.execute(query)}


def _check_ipv6_modes(body: dict[str, Any], ip_version: int) -> None:
    for key in ("ipv6_ra_mode", "ipv6_address_mode"):
        if body.get(key) is not None and ip_version != 6:
            raise invalid_input(f"{key} set to '{body[key]}' with ip_version set to '4'")
    ra, address = body.get("ipv6_ra_mode"), body.get("ipv6_address_mode")
    if ra and address and ra != address:
        raise invalid_input(
            f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{address}' is not valid"
        )


def _check_no_overlap(conn: Connection, network_id: str, network: ipam.IPNetwork) -> None:
    for other in network_subnets(conn, network_id):
        if ipaddress.ip_network(other.cidr).overlaps(network):
            raise invalid_input(
                f"Requested subnet with cidr: {network} for network: {network_id} overlaps "
                "with another subnet"
            )


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    network_row = get_row(tx.conn, networks, "network", body["network_id"])
    if body.get("subnetpool_id") is not None or body.get("use_default_subnetpool"):
        raise bad_request("subnet", "subnet pools are not supported; give a cidr")
    if body.get("cidr") is None:
        raise bad_request("subnet", "a cidr must be specified in the absence of a subnet pool")
    ip_version = body.get("ip_version")
    network = ipam.parse_cidr(body["cidr"], ip_version)
    ip_version = network.version
    _check_ipv6_modes(body, ip_version)
    if ip_version == 6 and body.get("ipv6_address_mode") in ipam.SLAAC_MODES:
        if network.prefixlen != 64:
            raise invalid_input("Invalid CIDR for IPv6 address mode: prefix must be /64")
    _check_no_overlap(tx.conn, network_row.id, network)
    if "gateway_ip" in body:
        gateway = body["gateway_ip"]
    else:
        gateway = str(ipam.first_host(network))
    if gateway is not None:
        ipam.validate_gateway(network, gateway)
    if body.get("allocation_pools"):
        pools = ipam.validate_pools(network, body["allocation_pools"], gateway)
    else:
        pools = ipam.default_pools(network, gateway)
    subnet_id = new_id()
    tx.impact.track_networks([network_row.id])
    tx.impact.track_routers(gateway_routers(tx.conn, network_row.id))
    tx.conn.execute(
        insert(subnets).values(
            id=subnet_id,
            network_id=network_row.id,
            name=body.get("name", ""),
            ip_version=ip_version,
            cidr=str(network),
            gateway_ip=gateway,
            enable_dhcp=body.get("enable_dhcp", True),
            ipv6_ra_mode=body.get("ipv6_ra_mode"),
            ipv6_address_mode=body.get("ipv6_address_mode"),
            allocation_pools=pools,
            dns_nameservers=body.get("dns_nameservers", []),
            host_routes=body.get("host_routes", []),
            service_types=body.get("service_types", []),
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    bump(tx.conn, networks, network_row.id, tx.now)
    _subnets_of_network_changed(tx, network_row.id, subnet_id)
    return show(tx.conn, subnet_id)


def _subnets_of_network_changed(tx: WriteTx, network_id: str, subnet_id: str) -> None:
    tx.impact.network_changed(network_id)
    for router_id in gateway_routers(tx.conn, network_id):
        tx.impact.router_changed(router_id)
    tx.impact.subject("subnet", subnet_id)


def update_subnet(tx: WriteTx, subnet_id: str, body: dict[str, Any]) -> dict[str, Any]:
    row = get_subnet(tx.conn, subnet_id)
    network = ipaddress.ip_network(row.cidr)
    values: dict[str, Any] = {
        k: body[k]
        for k in ("name", "description", "enable_dhcp", "dns_nameservers", "host_routes")
        if k in body
    }
    gateway = body["gateway_ip"] if "gateway_ip" in body else row.gateway_ip
    gateway_changed = gateway != row.gateway_ip
    if gateway_changed:
        if gateway is not None:
            ipam.validate_gateway(network, gateway)
        interface = tx.conn.execute(
            select(router_interfaces.c.port_id).where(router_interfaces.c.subnet_id == subnet_id)
        ).first()
        if interface is not None:
            raise conflict(
                "GatewayIpInUse",
                f"Current gateway ip {row.gateway_ip} already in use by port "
                f"{interface.port_id}. Unable to update.",
            )
        values["gateway_ip"] = gateway
    if "allocation_pools" in body:
        values["allocation_pools"] = ipam.validate_pools(network, body["allocation_pools"], gateway)
    elif gateway_changed and gateway is not None:
        ipam.validate_pools(network, list(row.allocation_pools), gateway)
    if gateway_changed:
        tx.impact.track_networks([row.network_id])
        tx.impact.track_routers(gateway_routers(tx.conn, row.network_id))
    bump(tx.conn, subnets, subnet_id, tx.now, **values)
    if gateway_changed:
        _subnets_of_network_changed(tx, row.network_id, subnet_id)
    return show(tx.conn, subnet_id)


def delete_subnet(tx: WriteTx, subnet_id: str) -> None:
    from dvr.server.services import ports as port_service

    row = get_subnet(tx.conn, subnet_id)
    users = list(
        tx.conn.execute(
            select(ports.c.id, ports.c.device_owner)
            .select_from(ip_allocations.join(ports, ports.c.id == ip_allocations.c.port_id))
            .where(ip_allocations.c.subnet_id == subnet_id)
        )
    )
    if any(u.device_owner not in AUTO_DELETE_OWNERS for u in users):
        raise conflict(
            "SubnetInUse",
            f"Unable to complete operation on subnet {subnet_id}: One or more ports have an IP "
            "allocation from this subnet.",
        )
    for user in users:
        port_service.remove_subnet_addresses(tx, user.id, subnet_id)
    tx.impact.track_networks([row.network_id])
    tx.impact.track_routers(gateway_routers(tx.conn, row.network_id))
    tx.conn.execute(delete(subnets).where(subnets.c.id == subnet_id))
    bump(tx.conn, networks, row.network_id, tx.now)
    _subnets_of_network_changed(tx, row.network_id, subnet_id)

"""Subnets: CIDR/gateway/pool validation, create, update, render.  (Deleting a subnet
takes DHCP addresses with it: ``cascades.delete_subnet``.)"""

from __future__ import annotations

import ipaddress
from contextlib import nullcontext
from typing import Any

from sqlalchemy import Connection, insert, select

from dvr.db.tables import networks, router_interfaces, subnets
from dvr.server.errors import BadRequestError, bad_request, conflict, invalid_input
from dvr.server.services import ipam, subnetpools
from dvr.server.services.changes import subnets_change
from dvr.server.services.common import bump, new_id, standard_fields, standard_values
from dvr.server.services.queries import (
    get_network,
    get_subnet,
    get_subnetpool,
    network_subnets,
)
from dvr.server.tx import WriteTx


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
        "subnetpool_id": row.subnetpool_id,
        "service_types": list(row.service_types or []),
        "segment_id": None,
    }


def show(conn: Connection, subnet_id: str) -> dict[str, Any]:
    return render_subnet(get_subnet(conn, subnet_id))


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


def _subnetpool_id(tx: WriteTx, body: dict[str, Any]) -> str | None:
    """The pool a subnet is asked from: ``subnetpool_id``, or with ``use_default_subnetpool``
    the default pool of the subnet's IP version (Neutron's ``_get_subnetpool_id``)."""
    pool_id = body.get("subnetpool_id")
    use_default = body.get("use_default_subnetpool", False)
    if use_default and pool_id:
        raise bad_request(
            "subnets", "subnetpool_id and use_default_subnetpool cannot both be specified"
        )
    if pool_id or not use_default:
        return pool_id
    if body.get("cidr") is not None:
        ip_version = ipam.parse_cidr(body["cidr"], body.get("ip_version")).version
    elif body.get("ip_version") is not None:
        ip_version = body["ip_version"]
    else:
        raise bad_request(
            "subnets", "ip_version must be specified in the absence of cidr and subnetpool_id"
        )
    default = subnetpools.default_pool_id(tx.conn, ip_version)
    if default is None:
        raise bad_request("subnets", f"No default subnetpool found for IPv{ip_version}")
    return default


def _requested_network(tx: WriteTx, body: dict[str, Any]) -> tuple[ipam.IPNetwork, Any]:
    """The subnet's CIDR (given, or allocated from its pool) and its pool row (or None)."""
    has_cidr = body.get("cidr") is not None
    if has_cidr and body.get("prefixlen") is not None:
        raise bad_request("subnets", "cidr and prefixlen must not be supplied together")
    pool_id = _subnetpool_id(tx, body)
    if pool_id is None:
        if not has_cidr:
            raise bad_request("subnets", "a subnetpool must be specified in the absence of a cidr")
        return ipam.parse_cidr(body["cidr"], body.get("ip_version")), None
    if not has_cidr and body.get("allocation_pools"):
        raise bad_request("subnets", "allocation_pools allowed only for specific subnet requests.")
    pool = get_subnetpool(tx.conn, pool_id)
    gateway = body.get("gateway_ip")
    requested_version = body.get("ip_version")
    if requested_version is None and not has_cidr and gateway is not None:
        requested_version = ipaddress.ip_address(gateway).version
    if requested_version not in (None, pool.ip_version):
        raise bad_request(
            "subnets",
            f"Cannot allocate IPv{requested_version} subnet from IPv{pool.ip_version} "
            "subnet pool",
        )
    wanted = None
    if has_cidr:
        wanted = ipam.parse_cidr(body["cidr"], pool.ip_version)
    elif gateway is not None:
        prefixlen = body.get("prefixlen", pool.default_prefixlen)
        wanted = subnetpools.prefix_for_gateway(gateway, prefixlen)
    return subnetpools.allocate_prefix(tx.conn, pool, wanted, body.get("prefixlen")), pool


def _check_pool_affinity(tx: WriteTx, network_id: str, ip_version: int, pool: Any) -> None:
    """Neutron's ``_validate_network_subnetpools``: the subnets of one IP version on a
    network come from one pool, or from pools of one address scope."""
    same_family = [s for s in network_subnets(tx.conn, network_id) if s.ip_version == ip_version]
    scopes = subnetpools.pools_in_scope(
        tx.conn, {s.subnetpool_id for s in same_family if s.subnetpool_id}
    )
    network_scope = next((scope for scope in scopes.values() if scope), None)
    if network_scope and pool is not None and pool.address_scope_id != network_scope:
        raise subnetpools.address_scope_affinity_error()
    for other in same_family:
        if pool is not None:
            mismatch = other.subnetpool_id != pool.id and not network_scope
        else:
            mismatch = other.subnetpool_id is not None
        if mismatch:
            raise BadRequestError(
                "Subnets hosted on the same network must be allocated from the same subnet "
                "pool.",
                type_name="NetworkSubnetPoolAffinityError",
            )


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    network_row = get_network(tx.conn, body["network_id"])
    network, pool = _requested_network(tx, body)
    ip_version = network.version
    _check_ipv6_modes(body, ip_version)
    if ip_version == 6 and body.get("ipv6_address_mode") in ipam.SLAAC_MODES:
        if network.prefixlen != 64:
            raise invalid_input("Invalid CIDR for IPv6 address mode: prefix must be /64")
    _check_no_overlap(tx.conn, network_row.id, network)
    _check_pool_affinity(tx, network_row.id, ip_version, pool)
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
    with subnets_change(tx, network_row.id, subnet_id):
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
                subnetpool_id=None if pool is None else pool.id,
                **standard_values(tx.now, body.get("project_id"), body.get("description")),
            )
        )
        bump(tx.conn, networks, network_row.id, tx.now)
    return show(tx.conn, subnet_id)


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
    # only the gateway shows in host views
    with subnets_change(tx, row.network_id, subnet_id) if gateway_changed else nullcontext():
        bump(tx.conn, subnets, subnet_id, tx.now, **values)
    return show(tx.conn, subnet_id)

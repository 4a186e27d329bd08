"""Router interfaces: add/remove by subnet or port, SNAT ports, one router per subnet."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete, insert, select

from dvr.db.tables import floatingips, ip_allocations, router_interfaces, routers
from dvr.server.errors import NotFoundError, bad_request, conflict
from dvr.server.services import cascades
from dvr.server.services import ports as port_service
from dvr.server.services.changes import load_state, router_change
from dvr.server.services.common import bump
from dvr.server.services.queries import get_port, get_router, get_subnet
from dvr.server.services.routers import (
    create_snat_port,
    interface_owner,
    interfaces,
    snat_port_on_subnet,
)
from dvr.server.services.scheduler import central_host
from dvr.server.tx import WriteTx


def _interface_info(router: Any, port_id: str, network_id: str, subnet_ids: list[str]) -> dict:
    return {
        "id": router.id,
        "tenant_id": router.project_id,
        "project_id": router.project_id,
        "port_id": port_id,
        "network_id": network_id,
        "subnet_id": subnet_ids[0] if subnet_ids else None,
        "subnet_ids": subnet_ids,
    }


def _check_attachable(tx: WriteTx, router: Any, subnet: Any) -> None:
    attached = tx.conn.execute(
        select(router_interfaces.c.router_id).where(router_interfaces.c.subnet_id == subnet.id)
    ).scalar()
    if attached == router.id:
        raise bad_request("router", f"Router already has a port on subnet {subnet.id}")
    if attached is not None:
        raise conflict(
            "RouterInterfaceInUseByOtherRouter",
            f"Subnet {subnet.id} is already attached to router {attached}. A subnet can be "
            "attached to only one router: DVR restores the gateway MAC of the one router of "
            "the destination subnet on inbound routed frames (see docs/API.md).",
        )
    new = ipaddress.ip_network(subnet.cidr)
    for interface in interfaces(tx.conn, router.id):
        other = get_subnet(tx.conn, interface.subnet_id)
        if ipaddress.ip_network(other.cidr).overlaps(new):
            raise bad_request(
                "router",
                f"Cidr {subnet.cidr} of subnet {subnet.id} overlaps with cidr {other.cidr} of "
                f"subnet {other.id}",
            )


def add_interface(tx: WriteTx, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
    router = get_router(tx.conn, router_id)
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    if subnet_id and port_id:
        raise bad_request("router", "Cannot specify both subnet-id and port-id")
    if not subnet_id and not port_id:
        raise bad_request("router", "Either subnet_id or port_id must be specified")
    host = central_host(tx.conn, router_id) if not router.distributed else None
    if subnet_id:
        subnet = get_subnet(tx.conn, subnet_id)
        if subnet.gateway_ip is None:
            raise bad_request(
                "router", f"Subnet for router interface must have a gateway IP: {subnet.id}"
            )
        _check_attachable(tx, router, subnet)
        subnet_ids, network_id = [subnet.id], subnet.network_id
    else:
        port = get_port(tx.conn, port_id)
        if port.device_id or port.device_owner:
            raise conflict(
                "PortInUse",
                f"Unable to complete operation on port {port.id} for network "
                f"{port.network_id}. Port already has an attached device {port.device_id}.",
            )
        state = load_state(tx.conn, port.id)
        if not state.ips:
            raise bad_request("router", "Router port must have at least one fixed IP")
        subnet_ids, network_id = sorted(state.subnet_ids), port.network_id
        for sid in subnet_ids:
            _check_attachable(tx, router, get_subnet(tx.conn, sid))
    with router_change(tx, router_id, networks=[network_id]):
        if subnet_id:
            port_id = port_service.create(
                tx,
                {
                    "network_id": network_id,
                    "project_id": router.project_id,
                    "device_owner": interface_owner(router.distributed),
                    "device_id": router_id,
                    "fixed_ips": [{"subnet_id": subnet.id, "ip_address": subnet.gateway_ip}],
                    "binding:host_id": host or "",
                    "status": "ACTIVE",
                },
            )
        else:
            cascades.update_port(
                tx,
                port_id,
                {
                    "device_owner": interface_owner(router.distributed),
                    "device_id": router_id,
                    "binding:host_id": host or "",
                },
                internal=True,
            )
        tx.conn.execute(
            insert(router_interfaces),
            [
                {
                    "subnet_id": s,
                    "router_id": router_id,
                    "port_id": port_id,
                    "network_id": network_id,
                }
                for s in subnet_ids
            ],
        )
        if router.distributed and router.gw_network_id:
            for sid in subnet_ids:
                create_snat_port(tx, router, sid, central_host(tx.conn, router_id))
        bump(tx.conn, routers, router_id, tx.now)
    return _interface_info(router, port_id, network_id, subnet_ids)


def remove_interface(tx: WriteTx, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
    router = get_router(tx.conn, router_id)
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    if not subnet_id and not port_id:
        raise bad_request("router", "Either subnet_id or port_id must be specified")
    attached = interfaces(tx.conn, router_id)
    if port_id:
        rows = [i for i in attached if i.port_id == port_id]
        if not rows:
            raise not_found_interface(router_id, port_id)
        if subnet_id and subnet_id not in {r.subnet_id for r in rows}:
            raise conflict(
                "SubnetMismatchForPort",
                f"Subnet {subnet_id} does not match the port {port_id}.",
            )
    else:
        get_subnet(tx.conn, subnet_id)
        rows = [i for i in attached if i.subnet_id == subnet_id]
        if not rows:
            raise interface_not_found_for_subnet(router_id, subnet_id)
    port_id = rows[0].port_id
    port_rows = [i for i in attached if i.port_id == port_id]
    subnet_ids = sorted(r.subnet_id for r in port_rows)
    network_id = rows[0].network_id
    _check_no_floating_ips(tx, router_id, subnet_ids)
    with router_change(tx, router_id, networks=[network_id]):
        for sid in subnet_ids:
            snat = snat_port_on_subnet(tx.conn, router_id, sid)
            if snat is not None:
                cascades.delete_port(tx, snat, internal=True)
        tx.conn.execute(delete(router_interfaces).where(router_interfaces.c.port_id == port_id))
        cascades.delete_port(tx, port_id, internal=True)
        bump(tx.conn, routers, router_id, tx.now)
    return _interface_info(router, port_id, network_id, subnet_ids)


def not_found_interface(router_id: str, port_id: str) -> Exception:
    return NotFoundError(
        f"Router {router_id} does not have an interface with id {port_id}",
        type_name="RouterInterfaceNotFound",
    )


def interface_not_found_for_subnet(router_id: str, subnet_id: str) -> Exception:
    return NotFoundError(
        f"Router {router_id} has no interface on subnet {subnet_id}",
        type_name="RouterInterfaceNotFoundForSubnet",
    )


def _check_no_floating_ips(tx: WriteTx, router_id: str, subnet_ids: list[str]) -> None:
    query = (
        select(floatingips.c.id)
        .select_from(
            floatingips.join(
                ip_allocations,
                (ip_allocations.c.port_id == floatingips.c.fixed_port_id)
                & (ip_allocations.c.ip_address == floatingips.c.fixed_ip_address),
            )
        )
        .where(floatingips.c.router_id == router_id, ip_allocations.c.subnet_id.in_(subnet_ids))
    )
    if tx.conn.execute(query).first() is not None:
        raise conflict(
            "RouterInterfaceInUseByFloatingIP",
            f"Router interface for subnet {subnet_ids[0]} on router {router_id} cannot be "
            "deleted, as it is required by one or more floating IPs.",
        )

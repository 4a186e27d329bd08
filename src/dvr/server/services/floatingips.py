"""Floating IPs: create (with its port), associate with a fixed port, update, render.

Disassociating and deleting take more with them (the host's FIP agent gateway port, the
floating IP's own port): ``cascades.disassociate_floatingip`` / ``delete_floatingip``."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Connection, insert, select

from dvr.db.tables import floatingips, ports, router_interfaces, routers
from dvr.model.hostview import OWNER_FLOATINGIP
from dvr.server.errors import NotFoundError, bad_request, conflict
from dvr.server.services import ports as port_service
from dvr.server.services.cascades import disassociate_floatingip
from dvr.server.services.changes import PortState, floatingip_change, load_state
from dvr.server.services.common import bump, new_id, standard_fields, standard_values
from dvr.server.services.fip_gateways import ensure_fip_agent_gateway, one_ipv4_address
from dvr.server.services.queries import get_floatingip, get_network
from dvr.server.tx import WriteTx


# -- rendering -----------------------------------------------------------------------------
def render_floatingips(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    port_ids = [r.fixed_port_id for r in rows if r.fixed_port_id]
    details: dict[str, dict[str, Any]] = {}
    if port_ids:
        query = select(ports).where(ports.c.id.in_(port_ids))
        for port in conn.execute(query):
            details[port.id] = {
                "name": port.name,
                "network_id": port.network_id,
                "mac_address": port.mac_address,
                "admin_state_up": port.admin_state_up,
                "status": port.status,
                "device_id": port.device_id,
                "device_owner": port.device_owner,
            }
    return [render_floatingip(row, details.get(row.fixed_port_id)) for row in rows]


def render_floatingip(row: Any, port_details: dict[str, Any] | None) -> dict[str, Any]:
    return {
        **standard_fields(row),
        "floating_ip_address": row.floating_ip_address,
        "floating_network_id": row.floating_network_id,
        "router_id": row.router_id,
        "port_id": row.fixed_port_id,
        "fixed_ip_address": row.fixed_ip_address,
        "status": row.status,
        "port_details": port_details,
        "port_forwardings": [],
    }


def show(conn: Connection, fip_id: str) -> dict[str, Any]:
    return render_floatingips(conn, [get_floatingip(conn, fip_id)])[0]


# -- association -----------------------------------------------------------------------------
def _router_for(conn: Connection, network_id: str, subnet_id: str, port_id: str) -> Any:
    query = (
        select(routers)
        .select_from(routers.join(router_interfaces, router_interfaces.c.router_id == routers.c.id))
        .where(router_interfaces.c.subnet_id == subnet_id, routers.c.gw_network_id == network_id)
    )
    router = conn.execute(query).first()
    if router is None:
        raise NotFoundError(
            f"External network {network_id} is not reachable from subnet {subnet_id}.  "
            f"Therefore, cannot associate Port {port_id} with a Floating IP.",
            type_name="ExternalGatewayForFloatingIPNotFound",
        )
    return router


def _fixed_address(state: PortState, requested: str | None) -> tuple[str, str]:
    """(subnet_id, ip) of the port's IPv4 address to map."""
    v4 = [(s, ip) for s, ip in state.ips if ipaddress.ip_address(ip).version == 4]
    if requested is not None:
        match = [(s, ip) for s, ip in v4 if ip == requested]
        if not match:
            raise bad_request("floatingip", f"Port {state.id} does not have fixed ip {requested}.")
        return match[0]
    if not v4:
        raise bad_request(
            "floatingip",
            f"Port {state.id} does not have an IPv4 address to associate a floating IP with.",
        )
    if len(v4) > 1:
        raise bad_request(
            "floatingip",
            f"Port {state.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4 "
            "address when assigning a floating IP.",
        )
    return v4[0]


def associate(tx: WriteTx, fip_id: str, port_id: str, fixed_ip: str | None) -> None:
    fip = get_floatingip(tx.conn, fip_id)
    state = load_state(tx.conn, port_id)
    subnet_id, address = _fixed_address(state, fixed_ip)
    router = _router_for(tx.conn, fip.floating_network_id, subnet_id, port_id)
    clash = tx.conn.execute(
        select(floatingips.c.id).where(
            floatingips.c.floating_network_id == fip.floating_network_id,
            floatingips.c.fixed_port_id == port_id,
            floatingips.c.fixed_ip_address == address,
            floatingips.c.id != fip_id,
        )
    ).first()
    if clash is not None:
        raise conflict(
            "FloatingIPPortAlreadyAssociated",
            f"Cannot associate floating IP {fip.floating_ip_address} ({fip_id}) with port "
            f"{port_id} using fixed IP {address}, as that fixed IP already has a floating IP on "
            f"external network {fip.floating_network_id}.",
        )
    if fip.fixed_port_id == port_id and fip.fixed_ip_address == address:
        return
    if fip.fixed_port_id is not None:
        disassociate_floatingip(tx, fip_id)
    with floatingip_change(tx, fip_id, router.id, fip.floating_network_id, state.host):
        bump(
            tx.conn,
            floatingips,
            fip_id,
            tx.now,
            fixed_port_id=port_id,
            fixed_ip_address=address,
            router_id=router.id,
            status="ACTIVE",
        )
        if router.distributed:
            ensure_fip_agent_gateway(tx, fip.floating_network_id, state.host)


# -- create / update / delete ----------------------------------------------------------------
def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    network = get_network(tx.conn, body["floating_network_id"])
    if not network.external:
        raise bad_request("floatingip", f"Network {network.id} is not a valid external network.")
    fip_id = new_id()
    if body.get("floating_ip_address"):
        fixed_ips = [{"ip_address": body["floating_ip_address"]}]
        if body.get("subnet_id"):
            fixed_ips[0]["subnet_id"] = body["subnet_id"]
    elif body.get("subnet_id"):
        fixed_ips = [{"subnet_id": body["subnet_id"]}]
    else:
        fixed_ips = one_ipv4_address(tx.conn, network.id)
        if fixed_ips is None:
            raise bad_request(
                "floatingip", f"Network {network.id} has no IPv4 subnet for floating IPs."
            )
    port_id = port_service.create(
        tx,
        {
            "network_id": network.id,
            "project_id": "",
            "device_owner": OWNER_FLOATINGIP,
            "device_id": fip_id,
            "fixed_ips": fixed_ips,
            "status": "N/A",
        },
    )
    address = load_state(tx.conn, port_id).ips[0][1]
    tx.conn.execute(
        insert(floatingips).values(
            id=fip_id,
            floating_network_id=network.id,
            floating_ip_address=address,
            floating_port_id=port_id,
            fixed_port_id=None,
            fixed_ip_address=None,
            router_id=None,
            status="DOWN",
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    if body.get("port_id"):
        associate(tx, fip_id, body["port_id"], body.get("fixed_ip_address"))
    return show(tx.conn, fip_id)


def update_floatingip(tx: WriteTx, fip_id: str, body: dict[str, Any]) -> dict[str, Any]:
    get_floatingip(tx.conn, fip_id)
    if "description" in body:
        bump(tx.conn, floatingips, fip_id, tx.now, description=body["description"])
    if "port_id" in body:
        if body["port_id"] is None:
            disassociate_floatingip(tx, fip_id)
        else:
            associate(tx, fip_id, body["port_id"], body.get("fixed_ip_address"))
    return show(tx.conn, fip_id)

"""Floating IPs: their ports, association, and per-host FIP agent gateway ports."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from dvr.db.tables import agents, floatingips, ports, router_interfaces, routers
from dvr.model.hostview import OWNER_FLOATINGIP, OWNER_FLOATINGIP_AGENT_GATEWAY
from dvr.server.errors import NotFoundError, bad_request, conflict
from dvr.server.services import ports as port_service
from dvr.server.services.common import bump, get_row, new_id, standard_fields, standard_values
from dvr.server.services.networks import get_network
from dvr.server.tx import WriteTx


def get_floatingip(conn: Connection, fip_id: str) -> Any:
    return get_row(conn, floatingips, "floatingip", fip_id)


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


# -- FIP agent gateway ports -----------------------------------------------------------------
def fip_agent_gateway_ports(conn: Connection, network_id: str, host: str) -> list[str]:
    query = select(ports.c.id).where(
        ports.c.network_id == network_id,
        ports.c.host == host,
        ports.c.device_owner == OWNER_FLOATINGIP_AGENT_GATEWAY,
    )
    return [row[0] for row in conn.execute(query)]


def ensure_fip_agent_gateway(tx: WriteTx, network_id: str, host: str) -> None:
    """One ``network:floatingip_agent_gateway`` port per (host, external network)."""
    if not host or fip_agent_gateway_ports(tx.conn, network_id, host):
        return
    agent_id = tx.conn.execute(
        select(agents.c.id).where(agents.c.host == host, agents.c.agent_type == "L3 agent")
    ).scalar()
    port_service.create(
        tx,
        {
            "network_id": network_id,
            "project_id": "",
            "device_owner": OWNER_FLOATINGIP_AGENT_GATEWAY,
            "device_id": agent_id or host,
            "binding:host_id": host,
            "fixed_ips": _one_ipv4(tx.conn, network_id),
            "status": "ACTIVE",
        },
    )


def _one_ipv4(conn: Connection, network_id: str) -> list[dict[str, str]] | None:
    from dvr.server.services.subnets import network_subnets

    v4 = [s for s in network_subnets(conn, network_id) if s.ip_version == 4]
    return [{"subnet_id": v4[0].id}] if v4 else None


def _host_has_fips(conn: Connection, network_id: str, host: str) -> bool:
    query = (
        select(floatingips.c.id)
        .select_from(
            floatingips.join(ports, ports.c.id == floatingips.c.fixed_port_id).join(
                routers, routers.c.id == floatingips.c.router_id
            )
        )
        .where(
            floatingips.c.floating_network_id == network_id,
            ports.c.host == host,
            routers.c.distributed,
        )
    )
    return conn.execute(query).first() is not None


def cleanup_fip_agent_gateway(tx: WriteTx, network_id: str, host: str) -> None:
    if not host or _host_has_fips(tx.conn, network_id, host):
        return
    for port_id in fip_agent_gateway_ports(tx.conn, network_id, host):
        port_service.delete_port(tx, port_id, internal=True)


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


def _fixed_address(state: port_service.PortState, requested: str | None) -> tuple[str, str]:
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
    state = port_service.load_state(tx.conn, port_id)
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
        disassociate(tx, fip_id)
    tx.impact.track_routers([router.id])
    tx.impact.track_networks([fip.floating_network_id])
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
    tx.impact.router_host_changed(router.id, state.host)
    tx.impact.subject("floatingip", fip_id)


def disassociate(tx: WriteTx, fip_id: str) -> None:
    fip = get_floatingip(tx.conn, fip_id)
    if fip.fixed_port_id is None:
        return
    host = tx.conn.execute(select(ports.c.host).where(ports.c.id == fip.fixed_port_id)).scalar()
    tx.impact.track_routers([fip.router_id])
    tx.impact.track_networks([fip.floating_network_id])
    bump(
        tx.conn,
        floatingips,
        fip_id,
        tx.now,
        fixed_port_id=None,
        fixed_ip_address=None,
        router_id=None,
        status="DOWN",
    )
    cleanup_fip_agent_gateway(tx, fip.floating_network_id, host or "")
    tx.impact.router_host_changed(fip.router_id, host or "")
    tx.impact.subject("floatingip", fip_id)


def disassociate_port(tx: WriteTx, port_id: str) -> None:
    query = select(floatingips.c.id).where(floatingips.c.fixed_port_id == port_id)
    for (fip_id,) in list(tx.conn.execute(query)):
        disassociate(tx, fip_id)


def port_moved(tx: WriteTx, port_id: str, old_host: str, new_host: str) -> None:
    """A port with floating IPs changed host: the FIP gateway follows it."""
    query = (
        select(floatingips.c.floating_network_id, routers.c.distributed)
        .select_from(floatingips.join(routers, routers.c.id == floatingips.c.router_id))
        .where(floatingips.c.fixed_port_id == port_id)
    )
    for network_id, distributed in list(tx.conn.execute(query)):
        if distributed:
            ensure_fip_agent_gateway(tx, network_id, new_host)
            cleanup_fip_agent_gateway(tx, network_id, old_host)


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
        fixed_ips = _one_ipv4(tx.conn, network.id)
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
    address = port_service.load_state(tx.conn, port_id).ips[0][1]
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
            disassociate(tx, fip_id)
        else:
            associate(tx, fip_id, body["port_id"], body.get("fixed_ip_address"))
    return show(tx.conn, fip_id)


def delete_floatingip(tx: WriteTx, fip_id: str) -> None:
    fip = get_floatingip(tx.conn, fip_id)
    disassociate(tx, fip_id)
    tx.conn.execute(delete(floatingips).where(floatingips.c.id == fip_id))
    port_service.delete_port(tx, fip.floating_port_id, internal=True)
    tx.impact.subject("floatingip", fip_id)

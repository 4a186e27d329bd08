"""Networks: create (with a segment), update, render.  (Deleting a network takes its DHCP
ports and subnets with it: ``cascades.delete_network``.)"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from sqlalchemy import Connection, insert, select, update

from dvr.db.tables import floatingips, networks, routers
from dvr.server.errors import conflict, invalid_input
from dvr.server.services.changes import network_change
from dvr.server.services.common import (
    BULK_RENDER_THRESHOLD,
    bump,
    new_id,
    standard_fields,
    standard_values,
)
from dvr.server.services.queries import (
    address_scopes_by_network,
    get_network,
    subnet_ids_by_network,
)
from dvr.server.services.segments import allocate_segment
from dvr.server.tx import WriteTx

MIN_MTU = 68


def render_networks(conn: Connection, rows: list[Any]) -> list[dict]:
    many = len(rows) > BULK_RENDER_THRESHOLD
    ids = None if many else [r.id for r in rows]
    subnet_map = subnet_ids_by_network(conn, ids)
    scope_map = address_scopes_by_network(conn, ids)
    return [
        render_network(row, subnet_map.get(row.id, []), scope_map.get(row.id, {}))
        for row in rows
    ]


def render_network(
    row: Any, subnet_ids: list[str], scopes: dict[int, str | None] | None = None
) -> dict[str, Any]:
    """``scopes``: ip_version -> the address scope of the pool its subnets came from."""
    scopes = scopes or {}
    return {
        **standard_fields(row),
        "name": row.name,
        "admin_state_up": row.admin_state_up,
        "status": row.status,
        "subnets": subnet_ids,
        "shared": row.shared,
        "mtu": row.mtu,
        "router:external": row.external,
        "provider:network_type": row.network_type,
        "provider:physical_network": row.physical_network,
        "provider:segmentation_id": row.segmentation_id,
        "port_security_enabled": row.port_security_enabled,
        "availability_zone_hints": list(row.availability_zone_hints or []),
        "availability_zones": [],
        "ipv4_address_scope": scopes.get(4),
        "ipv6_address_scope": scopes.get(6),
    }


def show(conn: Connection, network_id: str) -> dict[str, Any]:
    return render_networks(conn, [get_network(conn, network_id)])[0]


def _max_mtu(tx: WriteTx, network_type: str) -> int:
    return tx.config.tenant_mtu if network_type == "vxlan" else tx.config.underlay_mtu


def _check_mtu(tx: WriteTx, network_type: str, mtu: int) -> None:
    maximum = _max_mtu(tx, network_type)
    if mtu > maximum:
        raise invalid_input(f"Requested MTU is too big, maximum is {maximum}")
    if mtu < MIN_MTU:
        raise invalid_input(f"Requested MTU is too small, minimum is {MIN_MTU}")


def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    network_id = new_id()
    network_type = body.get("provider:network_type") or "vxlan"
    physnet = body.get("provider:physical_network")
    mtu = body.get("mtu") or _max_mtu(tx, network_type)
    _check_mtu(tx, network_type, mtu)
    tx.conn.execute(
        insert(networks).values(
            id=network_id,
            name=body.get("name", ""),
            admin_state_up=body.get("admin_state_up", True),
            status="ACTIVE",
            shared=body.get("shared", False),
            mtu=mtu,
            external=body.get("router:external", False),
            network_type=network_type,
            physical_network=physnet,
            segmentation_id=None,
            port_security_enabled=body.get("port_security_enabled", True),
            availability_zone_hints=body.get("availability_zone_hints", []),
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    segmentation_id = allocate_segment(
        tx.conn,
        network_id,
        network_type,
        physnet,
        body.get("provider:segmentation_id"),
        tx.config.vni_range,
        tx.rng,
    )
    tx.conn.execute(
        update(networks).where(networks.c.id == network_id).values(segmentation_id=segmentation_id)
    )
    return show(tx.conn, network_id)


def update_network(tx: WriteTx, network_id: str, body: dict[str, Any]) -> dict[str, Any]:
    row = get_network(tx.conn, network_id)
    values: dict[str, Any] = {}
    for key, column in (
        ("name", "name"),
        ("admin_state_up", "admin_state_up"),
        ("description", "description"),
        ("shared", "shared"),
        ("mtu", "mtu"),
        ("router:external", "external"),
        ("port_security_enabled", "port_security_enabled"),
        ("availability_zone_hints", "availability_zone_hints"),
    ):
        if key in body:
            values[column] = body[key]
    if "mtu" in values:
        _check_mtu(tx, row.network_type, values["mtu"])
    if values.get("external") is False and row.external:
        _check_not_used_as_external(tx.conn, network_id)
    view_changed = any(
        column in values and values[column] != getattr(row, column)
        for column in ("name", "mtu", "external")
    )
    change = network_change(tx, network_id, "mtu" in values) if view_changed else nullcontext()
    with change:
        bump(tx.conn, networks, network_id, tx.now, **values)
    return show(tx.conn, network_id)


def _check_not_used_as_external(conn: Connection, network_id: str) -> None:
    gateway_users = conn.execute(
        select(routers.c.id).where(routers.c.gw_network_id == network_id)
    ).first()
    fip_users = conn.execute(
        select(floatingips.c.id).where(floatingips.c.floating_network_id == network_id)
    ).first()
    if gateway_users or fip_users:
        raise conflict(
            "ExternalNetworkInUse",
            f"External network {network_id} cannot be updated to be internal: it is used by "
            "router gateways or floating IPs.",
        )

"""Routers: create/update/delete, external gateway and SNAT ports, central scheduling."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dvr.db.tables import (
    floatingips,
    ip_allocations,
    ports,
    router_interfaces,
    router_l3_bindings,
    routers,
)
from dvr.model.hostview import (
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    OWNER_ROUTER_INTERFACE_DISTRIBUTED,
    OWNER_ROUTER_SNAT,
)
from dvr.server.errors import BadRequestError, bad_request, conflict
from dvr.server.services import cascades
from dvr.server.services import ports as port_service
from dvr.server.services.changes import router_change
from dvr.server.services.common import (
    BULK_RENDER_THRESHOLD,
    bump,
    new_id,
    standard_fields,
    standard_values,
)
from dvr.server.services.queries import (
    fixed_ips_of_ports,
    get_network,
    get_router,
    get_subnet,
    network_subnets,
    port_ips,
)
from dvr.server.services.scheduler import (
    alive_since,
    central_host,
    central_modes,
    pick_central_host,
)
from dvr.server.tx import WriteTx


def interface_owner(distributed: bool) -> str:
    return OWNER_ROUTER_INTERFACE_DISTRIBUTED if distributed else OWNER_ROUTER_INTERFACE


# -- rendering -----------------------------------------------------------------------------
def render_routers(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    gw_ports = [r.gw_port_id for r in rows if r.gw_port_id]
    ips = fixed_ips_of_ports(conn, None if len(gw_ports) > BULK_RENDER_THRESHOLD else gw_ports)
    return [render_router(row, ips.get(row.gw_port_id, [])) for row in rows]


def render_router(row: Any, gateway_ips: list[dict]) -> dict[str, Any]:
    gateway = None
    if row.gw_network_id:
        gateway = {
            "network_id": row.gw_network_id,
            "enable_snat": row.enable_snat,
            "external_fixed_ips": gateway_ips,
        }
    return {
        **standard_fields(row),
        "name": row.name,
        "admin_state_up": row.admin_state_up,
        "status": row.status,
        "distributed": row.distributed,
        "ha": row.ha,
        "external_gateway_info": gateway,
        "routes": list(row.routes or []),
        "availability_zone_hints": list(row.availability_zone_hints or []),
        "availability_zones": [],
        "flavor_id": row.flavor_id,
    }


def show(conn: Connection, router_id: str) -> dict[str, Any]:
    return render_routers(conn, [get_router(conn, router_id)])[0]


# -- queries ---------------------------------------------------------------------------------
def interfaces(conn: Connection, router_id: str) -> list[Any]:
    query = select(router_interfaces).where(router_interfaces.c.router_id == router_id)
    return list(conn.execute(query.order_by(router_interfaces.c.subnet_id)))


def owned_ports(conn: Connection, router_id: str, owner: str) -> list[str]:
    query = select(ports.c.id).where(ports.c.device_id == router_id, ports.c.device_owner == owner)
    return [row[0] for row in conn.execute(query.order_by(ports.c.id))]


def snat_port_on_subnet(conn: Connection, router_id: str, subnet_id: str) -> str | None:
    query = (
        select(ports.c.id)
        .select_from(ports.join(ip_allocations, ip_allocations.c.port_id == ports.c.id))
        .where(
            ports.c.device_id == router_id,
            ports.c.device_owner == OWNER_ROUTER_SNAT,
            ip_allocations.c.subnet_id == subnet_id,
        )
    )
    return conn.execute(query).scalar()


def central_ports(conn: Connection, router: Any) -> list[str]:
    """Ports that live on the router's central host."""
    owners = [OWNER_ROUTER_GATEWAY, OWNER_ROUTER_SNAT]
    if not router.distributed:
        owners.append(OWNER_ROUTER_INTERFACE)
    query = select(ports.c.id).where(
        ports.c.device_id == router.id, ports.c.device_owner.in_(owners)
    )
    return [row[0] for row in conn.execute(query.order_by(ports.c.id))]


def needs_central_host(router: Any) -> bool:
    return not router.distributed or router.gw_network_id is not None


# -- central scheduling --------------------------------------------------------------------
def ensure_central_host(tx: WriteTx, router_id: str) -> str | None:
    """Bind the router's central part to a host if it needs one and has none; returns it."""
    router = get_router(tx.conn, router_id)
    if not needs_central_host(router):
        return None
    host = central_host(tx.conn, router_id)
    if host is not None:
        return host
    down_time = tx.config.agent_down_time
    seen_alive = tx.liveness.alive_hosts(alive_since(tx.now, down_time))
    host = pick_central_host(
        tx.conn, central_modes(router.distributed), tx.now, down_time, seen_alive
    )
    if host is None:
        return None
    bind_central_host(tx, router_id, host)
    return host


def bind_central_host(tx: WriteTx, router_id: str, host: str) -> None:
    """Bind the router's central part (and the ports that live there) to ``host``."""
    router = get_router(tx.conn, router_id)
    with router_change(tx, router_id):
        tx.conn.execute(insert(router_l3_bindings).values(router_id=router_id, host=host))
        for port_id in central_ports(tx.conn, router):
            cascades.update_port(tx, port_id, {"binding:host_id": host}, internal=True)


def unbind_central_host(tx: WriteTx, router_id: str) -> None:
    """Remove the router's central binding; the ports that lived there wait unbound."""
    router = get_router(tx.conn, router_id)
    drop_central_host(tx, router_id)
    with router_change(tx, router_id):
        for port_id in central_ports(tx.conn, router):
            cascades.update_port(tx, port_id, {"binding:host_id": ""}, internal=True)


def drop_central_host(tx: WriteTx, router_id: str) -> None:
    with router_change(tx, router_id, subject=False):
        query = delete(router_l3_bindings).where(router_l3_bindings.c.router_id == router_id)
        tx.conn.execute(query)


def schedule_pending(tx: WriteTx) -> list[str]:
    """Give a central host to every router that needs one and lacks it (agent came up)."""
    bound = select(router_l3_bindings.c.router_id)
    query = select(routers.c.id).where(
        routers.c.id.not_in(bound),
        (routers.c.distributed.is_(False)) | (routers.c.gw_network_id.is_not(None)),
    )
    scheduled = []
    for (router_id,) in list(tx.conn.execute(query.order_by(routers.c.id))):
        if ensure_central_host(tx, router_id) is not None:
            scheduled.append(router_id)
    return scheduled


# -- create / update / delete ----------------------------------------------------------------
def create(tx: WriteTx, body: dict[str, Any]) -> dict[str, Any]:
    router_id = new_id()
    if body.get("flavor_id") is not None:
        raise bad_request("router", "flavors are not supported")
    # a new router is seen by the hosts that start hosting it (its central host, ...)
    with router_change(tx, router_id, seen=False, subject=False):
        tx.conn.execute(
            insert(routers).values(
                id=router_id,
                name=body.get("name", ""),
                admin_state_up=body.get("admin_state_up", True),
                status="ACTIVE",
                distributed=body.get("distributed", False),
                ha=body.get("ha", False),
                flavor_id=None,
                gw_port_id=None,
                gw_network_id=None,
                enable_snat=True,
                routes=[],
                availability_zone_hints=body.get("availability_zone_hints", []),
                **standard_values(tx.now, body.get("project_id"), body.get("description")),
            )
        )
        ensure_central_host(tx, router_id)
        if body.get("external_gateway_info"):
            set_gateway(tx, router_id, body["external_gateway_info"])
    return show(tx.conn, router_id)


def _check_routes(tx: WriteTx, router_id: str, routes: list[dict[str, str]]) -> None:
    router = get_router(tx.conn, router_id)
    subnet_ids = [i.subnet_id for i in interfaces(tx.conn, router_id)]
    if router.gw_network_id:
        subnet_ids += [s.id for s in network_subnets(tx.conn, router.gw_network_id)]
    cidrs = [ipaddress.ip_network(get_subnet(tx.conn, s).cidr) for s in subnet_ids]
    own_ports = [i.port_id for i in interfaces(tx.conn, router_id)]
    if router.gw_port_id:
        own_ports.append(router.gw_port_id)
    own_ips = {
        ipaddress.ip_address(ip) for port_id in own_ports for _, ip in port_ips(tx.conn, port_id)
    }
    for route in routes:
        nexthop = ipaddress.ip_address(route["nexthop"])
        if nexthop in own_ips:
            raise BadRequestError(
                f"Invalid format for routes: {routes}, the nexthop is used by router",
                type_name="InvalidRoutes",
            )
        if not any(nexthop.version == c.version and nexthop in c for c in cidrs):
            raise BadRequestError(
                f"Invalid format for routes: {routes}, the nexthop is not connected with router",
                type_name="InvalidRoutes",
            )


def update_router(tx: WriteTx, router_id: str, body: dict[str, Any]) -> dict[str, Any]:
    row = get_router(tx.conn, router_id)
    values = {k: body[k] for k in ("name", "description", "admin_state_up") if k in body}
    for key in ("distributed", "ha"):
        if key in body and body[key] != getattr(row, key):
            if row.admin_state_up:
                raise bad_request(
                    "router",
                    f"Cannot change the '{key}' attribute of active routers. Please set router "
                    "admin_state_up to False prior to upgrade",
                )
            values[key] = body[key]
    view_changed = any(
        k in values and values[k] != getattr(row, k)
        for k in ("name", "admin_state_up", "distributed", "ha")
    )
    if "routes" in body:
        _check_routes(tx, router_id, body["routes"])
        values["routes"] = body["routes"]
        view_changed = view_changed or body["routes"] != list(row.routes)
    with router_change(tx, router_id, seen=view_changed, subject=view_changed):
        bump(tx.conn, routers, router_id, tx.now, **values)
        if "distributed" in values and values["distributed"] != row.distributed:
            if values["distributed"]:
                _migrate_to_distributed(tx, router_id)
            else:
                _migrate_to_centralized(tx, router_id)
        if "external_gateway_info" in body:
            info = body["external_gateway_info"]
            if not info:
                if row.gw_network_id:
                    clear_gateway(tx, router_id)
            else:
                set_gateway(tx, router_id, info)
    return show(tx.conn, router_id)


def _migrate_to_distributed(tx: WriteTx, router_id: str) -> None:
    """Centralized -> distributed (admin down): interfaces become distributed ports."""
    for interface in interfaces(tx.conn, router_id):
        cascades.update_port(
            tx,
            interface.port_id,
            {"device_owner": OWNER_ROUTER_INTERFACE_DISTRIBUTED, "binding:host_id": ""},
            internal=True,
        )
    drop_central_host(tx, router_id)
    router = get_router(tx.conn, router_id)
    if router.gw_network_id:
        for interface in interfaces(tx.conn, router_id):
            create_snat_port(tx, router, interface.subnet_id, central_host(tx.conn, router_id))
        ensure_central_host(tx, router_id)
    cascades.router_fip_gateways_follow(tx, router_id)


def _migrate_to_centralized(tx: WriteTx, router_id: str) -> None:
    """Distributed -> centralized (admin down): the SNAT ports go, the interfaces become
    ordinary router ports on the central host (rescheduled to a legacy or dvr_snat agent),
    and the floating IPs no longer need their hosts' FIP agent gateways."""
    for port_id in owned_ports(tx.conn, router_id, OWNER_ROUTER_SNAT):
        cascades.delete_port(tx, port_id, internal=True)
    drop_central_host(tx, router_id)
    host = ensure_central_host(tx, router_id)
    for interface in interfaces(tx.conn, router_id):
        cascades.update_port(
            tx,
            interface.port_id,
            {"device_owner": OWNER_ROUTER_INTERFACE, "binding:host_id": host or ""},
            internal=True,
        )
    cascades.router_fip_gateways_follow(tx, router_id)


def delete_router(tx: WriteTx, router_id: str) -> None:
    row = get_router(tx.conn, router_id)
    attached = interfaces(tx.conn, router_id)
    if attached:
        port_ids = sorted({i.port_id for i in attached})
        raise conflict(
            "RouterInUse",
            f"Router {router_id} has ports still attached: {', '.join(port_ids)}",
        )
    with router_change(tx, router_id, seen=False):
        if row.gw_network_id:
            clear_gateway(tx, router_id)
        drop_central_host(tx, router_id)
        tx.conn.execute(delete(routers).where(routers.c.id == router_id))


# -- external gateway ------------------------------------------------------------------------
def set_gateway(tx: WriteTx, router_id: str, info: dict[str, Any]) -> None:
    router = get_router(tx.conn, router_id)
    network = get_network(tx.conn, info["network_id"])
    if not network.external:
        raise bad_request("router", f"Network {network.id} is not an external network.")
    requested_ips = info.get("external_fixed_ips")
    enable_snat = info.get("enable_snat", True)
    same_network = router.gw_network_id == network.id
    if same_network and requested_ips is None:
        if enable_snat != router.enable_snat:
            with router_change(tx, router_id):
                bump(tx.conn, routers, router_id, tx.now, enable_snat=enable_snat)
        return
    if router.gw_network_id:
        clear_gateway(tx, router_id, keep_snat_ports=True)
    with router_change(tx, router_id, networks=[network.id]):
        values = {"gw_network_id": network.id, "enable_snat": enable_snat}
        bump(tx.conn, routers, router_id, tx.now, **values)
        host = ensure_central_host(tx, router_id)
        port_id = port_service.create(
            tx,
            {
                "network_id": network.id,
                "project_id": "",
                "device_owner": OWNER_ROUTER_GATEWAY,
                "device_id": router_id,
                "fixed_ips": requested_ips,
                "binding:host_id": host or "",
                "status": "ACTIVE",
            },
        )
        query = update(routers).where(routers.c.id == router_id).values(gw_port_id=port_id)
        tx.conn.execute(query)
        if router.distributed:
            for interface in interfaces(tx.conn, router_id):
                if snat_port_on_subnet(tx.conn, router_id, interface.subnet_id) is None:
                    create_snat_port(tx, router, interface.subnet_id, host)


def create_snat_port(tx: WriteTx, router: Any, subnet_id: str, host: str | None) -> str:
    subnet = get_subnet(tx.conn, subnet_id)
    return port_service.create(
        tx,
        {
            "network_id": subnet.network_id,
            "project_id": "",
            "device_owner": OWNER_ROUTER_SNAT,
            "device_id": router.id,
            "fixed_ips": [{"subnet_id": subnet_id}],
            "binding:host_id": host or "",
            "status": "ACTIVE",
        },
    )


def clear_gateway(tx: WriteTx, router_id: str, keep_snat_ports: bool = False) -> None:
    router = get_router(tx.conn, router_id)
    users = tx.conn.execute(
        select(floatingips.c.id).where(floatingips.c.router_id == router_id)
    ).first()
    if users is not None:
        raise conflict(
            "RouterExternalGatewayInUseByFloatingIp",
            f"Gateway cannot be updated for router {router_id}, since a gateway to external "
            f"network {router.gw_network_id} is required by one or more floating IPs.",
        )
    owners = (
        [OWNER_ROUTER_GATEWAY] if keep_snat_ports else [OWNER_ROUTER_GATEWAY, OWNER_ROUTER_SNAT]
    )
    with router_change(tx, router_id, networks=[router.gw_network_id]):
        tx.conn.execute(
            update(routers)
            .where(routers.c.id == router_id)
            .values(gw_port_id=None, gw_network_id=None, enable_snat=True)
        )
        for owner in owners:
            for port_id in owned_ports(tx.conn, router_id, owner):
                cascades.delete_port(tx, port_id, internal=True)
        if router.distributed and not keep_snat_ports:
            drop_central_host(tx, router_id)
        bump(tx.conn, routers, router_id, tx.now)

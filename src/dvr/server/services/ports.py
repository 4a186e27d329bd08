"""Ports: create, update and delete one port (its row, MAC, addresses and binding), each
write inside ``changes.port_change``; and how the API renders ports.

``update_row`` and ``delete_row`` touch the port alone.  What a port update or delete takes
with it beyond the port (its floating IPs, their FIP agent gateway ports) is in
``cascades``: everything else calls ``cascades.update_port`` / ``cascades.delete_port``.
Addresses are planned in ``addresses``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dvr.db.tables import dvr_hosts, floatingips, ports
from dvr.model.hostview import (
    OWNER_FLOATINGIP,
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE_DISTRIBUTED,
    OWNER_ROUTER_SNAT,
    is_dvr_serviceable,
)
from dvr.server.errors import BadRequestError, conflict
from dvr.server.services.addresses import delete_allocations, plan_addresses, write_allocations
from dvr.server.services.changes import (
    ROUTER_INTERFACE_OWNERS,
    PortState,
    address_pairs_of,
    load_state,
    port_change,
)
from dvr.server.services.common import (
    BULK_RENDER_THRESHOLD,
    NOAUTH_PROJECT,
    bump,
    in_ids,
    new_id,
    standard_fields,
    standard_values,
)
from dvr.server.services.firewall_queries import groups_of_ports
from dvr.server.services.firewall_rules import is_filtered, is_network_owned
from dvr.server.services.macs import allocate_port_mac, mac_in_use
from dvr.server.services.queries import fixed_ips_of_ports, get_network, get_port
from dvr.server.services.scheduler import alive_since
from dvr.server.services.security_groups import (
    ensure_default_group,
    existing_groups,
    set_port_groups,
)
from dvr.server.tx import WriteTx

SERVICE_OWNERS = (
    *ROUTER_INTERFACE_OWNERS,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_SNAT,
    OWNER_FLOATINGIP,
    OWNER_FLOATINGIP_AGENT_GATEWAY,
)


# -- create ----------------------------------------------------------------------------------
def create(tx: WriteTx, body: dict[str, Any]) -> str:
    """Create a port from validated attributes (API or internal); returns its id."""
    network = get_network(tx.conn, body["network_id"])
    mac = body.get("mac_address")
    if mac is None:
        mac = allocate_port_mac(tx.conn, network.id, tx.config.port_mac_base, tx.rng)
    else:
        _check_mac(tx, network.id, mac)
    port_security = body.get("port_security_enabled", network.port_security_enabled)
    pairs = _address_pairs(body.get("allowed_address_pairs", []), mac, port_security)
    ips = plan_addresses(tx, network.id, body.get("fixed_ips"), mac)
    owner = body.get("device_owner", "")
    host = body.get("binding:host_id") or ""
    project = body.get("project_id", NOAUTH_PROJECT)
    groups = _port_groups(tx, body.get("security_groups"), port_security, bool(ips), owner, project)
    after = PortState(
        id=body.get("id") or new_id(),
        network_id=network.id,
        host=host,
        mac_address=mac,
        ips=ips,
        device_owner=owner,
        device_id=body.get("device_id", ""),
        admin_state_up=body.get("admin_state_up", True),
        port_security_enabled=is_filtered(port_security, owner),
        security_groups=tuple(groups),
        address_pairs=address_pairs_of(pairs),
    )
    with port_change(tx, None, after):
        tx.conn.execute(
            insert(ports).values(
                id=after.id,
                network_id=network.id,
                name=body.get("name", ""),
                mac_address=mac,
                admin_state_up=after.admin_state_up,
                status=body.get("status", "DOWN"),
                device_id=after.device_id,
                device_owner=owner,
                host=host,
                vif_type=vif_type_for(tx, host, owner),
                vnic_type=body.get("binding:vnic_type", "normal"),
                binding_profile=body.get("binding:profile", {}),
                port_security_enabled=port_security,
                allowed_address_pairs=pairs,
                dvr_serviceable=is_dvr_serviceable(owner),
                **standard_values(tx.now, project, body.get("description")),
            )
        )
        write_allocations(tx, after.id, network.id, ips)
        set_port_groups(tx, after.id, groups)
    return after.id


# -- update ----------------------------------------------------------------------------------
SIMPLE_UPDATES = {
    "name": "name",
    "description": "description",
    "admin_state_up": "admin_state_up",
    "device_id": "device_id",
    "device_owner": "device_owner",
    "binding:profile": "binding_profile",
    "binding:vnic_type": "vnic_type",
    "port_security_enabled": "port_security_enabled",
}
SERVICE_PORT_UPDATABLE = {"name", "description", "admin_state_up", "binding:profile"}


def update_row(
    tx: WriteTx, port_id: str, body: dict[str, Any], internal: bool = False
) -> tuple[PortState, PortState]:
    """Update the port from validated attributes; returns its state before and after."""
    row = get_port(tx.conn, port_id)
    before = load_state(tx.conn, port_id)
    if not internal and row.device_owner in SERVICE_OWNERS:
        forbidden = sorted(set(body) - SERVICE_PORT_UPDATABLE)
        if forbidden:
            raise conflict(
                "ServicePortInUse",
                f"Port {port_id} cannot be updated directly via the port API: has device owner "
                f"{row.device_owner} (attributes {', '.join(forbidden)}).",
            )
    values = {col: body[key] for key, col in SIMPLE_UPDATES.items() if key in body}
    port_security = values.get("port_security_enabled", row.port_security_enabled)
    mac = body.get("mac_address", row.mac_address)
    if "allowed_address_pairs" in body:
        pairs = _address_pairs(body["allowed_address_pairs"], mac, port_security)
        values["allowed_address_pairs"] = pairs
    else:
        pairs = list(row.allowed_address_pairs or [])
        _check_pairs_allowed(pairs, port_security)
    if mac != row.mac_address:
        # Neutron refuses this on a bound port (PortBound); our agents reconcile the new MAC
        _check_mac(tx, row.network_id, mac)
        values["mac_address"] = mac
    ips = before.ips
    if "fixed_ips" in body:
        ips = plan_addresses(tx, row.network_id, body["fixed_ips"], mac, keep=before.ips)
        _check_floating_ips_keep_addresses(tx, port_id, before.ips, ips)
    host = body["binding:host_id"] or "" if "binding:host_id" in body else row.host
    owner = values.get("device_owner", row.device_owner)
    if host != row.host or owner != row.device_owner:
        values.update(host=host, vif_type=vif_type_for(tx, host, owner))
        if host != row.host:
            values["status"] = "DOWN"
    values["dvr_serviceable"] = is_dvr_serviceable(owner)
    groups = _updated_groups(tx, row, body, before, port_security, bool(ips), owner)
    after = PortState(
        id=port_id,
        network_id=row.network_id,
        host=host,
        mac_address=mac,
        ips=ips,
        device_owner=owner,
        device_id=values.get("device_id", row.device_id),
        admin_state_up=values.get("admin_state_up", row.admin_state_up),
        port_security_enabled=is_filtered(port_security, owner),
        security_groups=tuple(groups),
        address_pairs=address_pairs_of(pairs),
    )
    with port_change(tx, before, after):
        if ips != before.ips:
            delete_allocations(tx, port_id)
            write_allocations(tx, port_id, row.network_id, ips)
        if after.security_groups != before.security_groups:
            set_port_groups(tx, port_id, groups)
        bump(tx.conn, ports, port_id, tx.now, **values)
    return before, after


def _check_floating_ips_keep_addresses(
    tx: WriteTx, port_id: str, old: tuple[tuple[str, str], ...], new: tuple[tuple[str, str], ...]
) -> None:
    removed = {ip for _, ip in old} - {ip for _, ip in new}
    if not removed:
        return
    query = select(floatingips.c.id, floatingips.c.fixed_ip_address).where(
        floatingips.c.fixed_port_id == port_id
    )
    for fip_id, fixed_ip in tx.conn.execute(query):
        if fixed_ip in removed:
            raise BadRequestError(
                f"Cannot remove fixed IP {fixed_ip} from port {port_id}: it is associated with "
                f"floating IP {fip_id}. Disassociate the floating IP first.",
                type_name="BadRequest",
            )


def set_bound_status(tx: WriteTx, port_ids: list[str], status: str) -> None:
    """The status agents reported for ``port_ids`` (the caller checked that each is bound
    to the host that reported it)."""
    if port_ids:
        tx.conn.execute(
            update(ports)
            .where(in_ids(tx.conn, ports.c.id, port_ids), ports.c.status != status)
            .values(status=status, updated_at=tx.now, revision_number=ports.c.revision_number + 1)
        )


# -- delete ----------------------------------------------------------------------------------
def check_deletable(row: Any, internal: bool) -> None:
    """Service ports (routers', floating IPs') go only with what owns them."""
    if not internal and row.device_owner in SERVICE_OWNERS:
        raise conflict(
            "ServicePortInUse",
            f"Port {row.id} cannot be deleted directly via the port API: has device owner "
            f"{row.device_owner}.",
        )


def delete_row(tx: WriteTx, port_id: str) -> None:
    """Delete the port and its addresses (no floating IP may map to it any more)."""
    before = load_state(tx.conn, port_id)
    with port_change(tx, before, None):
        delete_allocations(tx, port_id)
        tx.conn.execute(delete(ports).where(ports.c.id == port_id))


# -- checks and binding ----------------------------------------------------------------------
def _check_mac(tx: WriteTx, network_id: str, mac: str) -> None:
    if mac_in_use(tx.conn, network_id, mac):
        raise conflict(
            "MacAddressInUse",
            f"Unable to complete operation for network {network_id}. The mac address {mac} "
            "is in use.",
        )


def _address_pairs(
    requested: list[dict[str, str]], mac: str, port_security: bool
) -> list[dict[str, str]]:
    """The pairs as stored: each MAC defaulted to the port's; no pair twice."""
    pairs = [{"mac_address": p.get("mac_address") or mac, "ip_address": p["ip_address"]}
             for p in requested]
    seen: set[tuple[str, str]] = set()
    for pair in pairs:
        key = (pair["mac_address"], pair["ip_address"])
        if key in seen:
            raise BadRequestError(
                f"Request contains duplicate address pair: mac_address {key[0]} ip_address "
                f"{key[1]}.",
                type_name="DuplicateAddressPairInRequest",
            )
        seen.add(key)
    _check_pairs_allowed(pairs, port_security)
    return pairs


def _check_pairs_allowed(pairs: list[dict[str, str]], port_security: bool) -> None:
    if pairs and not port_security:
        raise conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        )


def _port_groups(
    tx: WriteTx,
    requested: list[str] | None,
    port_security: bool,
    has_ip: bool,
    owner: str,
    project: str,
) -> list[str]:
    """A port's groups (Neutron's rules): the requested ones, which need port security and
    an address; none requested: the project's default group, unless port security is off,
    the port has no address or it belongs to the network itself (``network:*`` owners)."""
    if requested:
        if not (port_security and has_ip):
            raise BadRequestError(
                "Port security must be enabled and port must have an IP address in order to "
                "use security groups.",
                type_name="PortSecurityAndIPRequiredForSecurityGroups",
            )
        return existing_groups(tx.conn, requested)
    if requested is None and port_security and has_ip and not is_network_owned(owner):
        return [ensure_default_group(tx, project)]
    return []


def _updated_groups(
    tx: WriteTx,
    row: Any,
    body: dict[str, Any],
    before: PortState,
    port_security: bool,
    has_ip: bool,
    owner: str,
) -> list[str]:
    if "security_groups" in body:
        return _port_groups(tx, body["security_groups"], port_security, has_ip, owner,
                            row.project_id)
    if before.security_groups and not (port_security and has_ip):
        raise conflict(
            "PortSecurityPortHasSecurityGroup",
            "Port has security group associated. Cannot disable port security or ip address "
            "until security group is removed.",
        )
    if port_security and not row.port_security_enabled:
        # port security turned on without naming groups: the default one, as on create
        return _port_groups(tx, None, port_security, has_ip, owner, row.project_id)
    return list(before.security_groups)




def vif_type_for(tx: WriteTx, host: str, device_owner: str) -> str:
    if device_owner == OWNER_ROUTER_INTERFACE_DISTRIBUTED:
        return "distributed"
    if not host:
        return "unbound"
    query = select(dvr_hosts.c.heartbeat_at).where(dvr_hosts.c.host == host)
    heartbeat = tx.conn.execute(query).scalar()
    if heartbeat is None:
        return "unbound"
    seen = tx.liveness.last_seen(host, heartbeat)  # memory over the database
    if seen >= alive_since(tx.now, tx.config.agent_down_time):
        return "ovs"
    return "unbound"


# -- rendering -------------------------------------------------------------------------------
def render_ports(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    ids = None if len(rows) > BULK_RENDER_THRESHOLD else [r.id for r in rows]
    allocations = fixed_ips_of_ports(conn, ids)
    groups = groups_of_ports(conn, ids)
    return [
        render_port(row, allocations.get(row.id, []), groups.get(row.id, [])) for row in rows
    ]


def render_port(row: Any, fixed_ips: list[dict], security_groups: list[str]) -> dict[str, Any]:
    return {
        **standard_fields(row),
        "name": row.name,
        "network_id": row.network_id,
        "mac_address": row.mac_address,
        "admin_state_up": row.admin_state_up,
        "status": row.status,
        "device_id": row.device_id,
        "device_owner": row.device_owner,
        "fixed_ips": fixed_ips,
        "allowed_address_pairs": list(row.allowed_address_pairs or []),
        "security_groups": security_groups,
        "port_security_enabled": row.port_security_enabled,
        "binding:host_id": row.host,
        "binding:vif_type": row.vif_type,
        "binding:vif_details": _vif_details(row),
        "binding:vnic_type": row.vnic_type,
        "binding:profile": dict(row.binding_profile or {}),
    }


def _vif_details(row: Any) -> dict[str, Any]:
    if row.vif_type != "ovs":
        return {}
    return {
        "port_filter": True,
        "connectivity": "l2",
        "bridge_name": "br-int",
        "ovs_hybrid_plug": False,
    }


def show(conn: Connection, port_id: str) -> dict[str, Any]:
    return render_ports(conn, [get_port(conn, port_id)])[0]

"""Ports: addresses, MACs, binding, and exactly-who-is-affected bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dvr.db.tables import dvr_hosts, floatingips, ip_allocations, ports, subnets
from dvr.model.hostview import (
    OWNER_FLOATINGIP,
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    OWNER_ROUTER_INTERFACE_DISTRIBUTED,
    OWNER_ROUTER_SNAT,
    is_dvr_serviceable,
)
from dvr.server.errors import BadRequestError, conflict, invalid_input
from dvr.server.services import ipam
from dvr.server.services.common import (
    BULK_RENDER_THRESHOLD,
    bump,
    get_row,
    new_id,
    standard_fields,
    standard_values,
)
from dvr.server.services.macs import allocate_port_mac, mac_in_use
from dvr.server.services.networks import get_network
from dvr.server.services.scheduler import alive_since, routers_on_subnets
from dvr.server.tx import WriteTx

ROUTER_INTERFACE_OWNERS = (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_INTERFACE_DISTRIBUTED)
SERVICE_OWNERS = (
    *ROUTER_INTERFACE_OWNERS,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_SNAT,
    OWNER_FLOATINGIP,
    OWNER_FLOATINGIP_AGENT_GATEWAY,
)


# -- state snapshots used to decide who is affected -----------------------------------------
@dataclass(frozen=True)
class PortState:
    id: str
    network_id: str
    host: str
    mac_address: str
    ips: tuple[tuple[str, str], ...]  # sorted (subnet_id, ip)
    device_owner: str
    device_id: str
    admin_state_up: bool

    @property
    def subnet_ids(self) -> set[str]:
        return {s for s, _ in self.ips}

    def l2_entry(self) -> tuple | None:
        if not self.host:
            return None
        return (self.network_id, self.host, self.mac_address, self.ips)

    def arp_entries(self) -> frozenset[tuple[str, str, str]]:
        if self.device_owner in ROUTER_INTERFACE_OWNERS:
            return frozenset()
        return frozenset((s, ip, self.mac_address) for s, ip in self.ips)


def port_ips(conn: Connection, port_id: str) -> tuple[tuple[str, str], ...]:
    query = select(ip_allocations.c.subnet_id, ip_allocations.c.ip_address).where(
        ip_allocations.c.port_id == port_id
    )
    return tuple(sorted((s, ip) for s, ip in conn.execute(query)))


def load_state(conn: Connection, port_id: str) -> PortState:
    row = get_row(conn, ports, "port", port_id)
    return PortState(
        id=row.id,
        network_id=row.network_id,
        host=row.host,
        mac_address=row.mac_address,
        ips=port_ips(conn, port_id),
        device_owner=row.device_owner,
        device_id=row.device_id,
        admin_state_up=row.admin_state_up,
    )


def begin_change(tx: WriteTx, before: PortState | None, after: PortState | None) -> None:
    """Snapshot the networks and routers a port change may affect (call BEFORE writing)."""
    states = [s for s in (before, after) if s is not None]
    tx.impact.track_networks({s.network_id for s in states})
    subnet_ids = set().union(*(s.subnet_ids for s in states))
    tx.impact.track_routers(routers_on_subnets(tx.conn, subnet_ids))


def end_change(tx: WriteTx, before: PortState | None, after: PortState | None) -> None:
    """Declare what a port change changed (call AFTER writing)."""
    states = [s for s in (before, after) if s is not None]
    if before != after:
        tx.impact.host_changed(*(s.host for s in states))
    before_l2 = before.l2_entry() if before else None
    after_l2 = after.l2_entry() if after else None
    if before_l2 != after_l2:
        for state in states:
            if state.host:
                tx.impact.network_entries_changed(state.network_id, state.host)
    before_arp = before.arp_entries() if before else frozenset()
    after_arp = after.arp_entries() if after else frozenset()
    if before_arp != after_arp:
        subnet_ids = {s for s, _, _ in before_arp | after_arp}
        for router_id in routers_on_subnets(tx.conn, subnet_ids):
            tx.impact.router_changed(router_id)
    port_id = (after or before).id  # type: ignore[union-attr]
    tx.impact.subject("port", port_id)


# -- rendering -----------------------------------------------------------------------------
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


def render_ports(conn: Connection, rows: list[Any]) -> list[dict[str, Any]]:
    ids = None if len(rows) > BULK_RENDER_THRESHOLD else [r.id for r in rows]
    allocations = fixed_ips_of_ports(conn, ids)
    return [render_port(row, allocations.get(row.id, [])) for row in rows]


def render_port(row: Any, fixed_ips: list[dict]) -> dict[str, Any]:
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
        "security_groups": list(row.security_groups or []),
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
    return render_ports(conn, [get_row(conn, ports, "port", port_id)])[0]


# -- binding ---------------------------------------------------------------------------------
def vif_type_for(tx: WriteTx, host: str, device_owner: str) -> str:
    if device_owner == OWNER_ROUTER_INTERFACE_DISTRIBUTED:
        return "distributed"
    if not host:
        return "unbound"
    query = select(dvr_hosts.c.heartbeat_at).where(dvr_hosts.c.host == host)
    heartbeat = tx.conn.execute(query).scalar()
    if heartbeat is not None and heartbeat >= alive_since(tx.now, tx.config.agent_down_time):
        return "ovs"
    return "unbound"


# -- addresses -------------------------------------------------------------------------------
def _subnet_for_ip(subnet_rows: list[Any], ip: str, network_id: str) -> Any:
    for row in subnet_rows:
        if ipam.address_in_subnet(ip, row.cidr):
            return row
    raise invalid_input(
        f"IP address {ip} is not a valid IP for any of the subnets on the specified network."
    )


def _pick(tx: WriteTx, subnet: Any, taken: set[str], mac: str) -> str | None:
    if subnet.ip_version == 6 and subnet.ipv6_address_mode in ipam.SLAAC_MODES:
        return ipam.eui64_address(subnet.cidr, mac)
    reserved = [subnet.gateway_ip] if subnet.gateway_ip else []
    return ipam.allocate(
        tx.conn,
        subnet.id,
        list(subnet.allocation_pools),
        subnet.ip_version,
        tx.rng,
        reserved,
        pending=taken,
    )


def plan_addresses(
    tx: WriteTx,
    network_id: str,
    requested: list[dict[str, str]] | None,
    mac: str,
    keep: tuple[tuple[str, str], ...] = (),
) -> tuple[tuple[str, str], ...]:
    """The (subnet, ip) pairs a port on ``network_id`` should hold.

    ``requested`` None means Neutron's default (one IPv4 address, one stateful IPv6 address,
    plus every SLAAC subnet); ``keep`` are addresses the port already holds (update).
    """
    from dvr.server.services.subnets import network_subnets

    subnet_rows = network_subnets(tx.conn, network_id)
    by_id = {s.id: s for s in subnet_rows}
    planned: list[tuple[str, str]] = []
    taken: set[str] = set()
    if requested is None:
        return _default_addresses(tx, network_id, subnet_rows, mac)
    kept = dict(keep)
    for entry in requested:
        subnet_id = entry.get("subnet_id")
        ip = entry.get("ip_address")
        if subnet_id is not None and subnet_id not in by_id:
            raise invalid_input(
                f"Failed to create port on network {network_id}, because fixed_ips included "
                f"invalid subnet {subnet_id}."
            )
        if ip is not None:
            subnet = by_id[subnet_id] if subnet_id else _subnet_for_ip(subnet_rows, ip, network_id)
            if not ipam.address_in_subnet(ip, subnet.cidr):
                raise invalid_input(f"IP address {ip} is not a valid IP for the specified subnet.")
            already_ours = (subnet.id, ip) in keep
            if (subnet.id, ip) in planned or (
                not already_ours and ipam.is_allocated(tx.conn, subnet.id, ip)
            ):
                raise conflict(
                    "IpAddressAlreadyAllocated",
                    f"IP address {ip} already allocated in subnet {subnet.id}",
                )
            planned.append((subnet.id, ip))
            continue
        subnet = by_id[subnet_id]  # type: ignore[index]
        if subnet.id in kept and (subnet.id, kept[subnet.id]) not in planned:
            planned.append((subnet.id, kept.pop(subnet.id)))
            continue
        picked = _pick(tx, subnet, taken | {p for _, p in planned}, mac)
        if picked is None:
            raise conflict(
                "IpAddressGenerationFailure",
                f"No more IP addresses available for subnet {subnet.id}.",
            )
        planned.append((subnet.id, picked))
    taken.update(p for _, p in planned)
    return tuple(sorted(planned))


def _default_addresses(
    tx: WriteTx, network_id: str, subnet_rows: list[Any], mac: str
) -> tuple[tuple[str, str], ...]:
    planned: list[tuple[str, str]] = []
    need_v4 = any(s.ip_version == 4 for s in subnet_rows)
    need_v6 = any(
        s.ip_version == 6 and s.ipv6_address_mode not in ipam.SLAAC_MODES for s in subnet_rows
    )
    got_v4 = got_v6 = False
    for subnet in subnet_rows:
        slaac = subnet.ip_version == 6 and subnet.ipv6_address_mode in ipam.SLAAC_MODES
        if subnet.ip_version == 4 and got_v4 or subnet.ip_version == 6 and not slaac and got_v6:
            continue
        picked = _pick(tx, subnet, set(), mac)
        if picked is None:
            continue
        planned.append((subnet.id, picked))
        got_v4 = got_v4 or subnet.ip_version == 4
        got_v6 = got_v6 or (subnet.ip_version == 6 and not slaac)
    if (need_v4 and not got_v4) or (need_v6 and not got_v6):
        raise conflict(
            "IpAddressGenerationFailure", f"No more IP addresses available on network {network_id}."
        )
    return tuple(sorted(planned))


def _write_allocations(
    tx: WriteTx, port_id: str, network_id: str, ips: tuple[tuple[str, str], ...]
) -> None:
    if ips:
        tx.conn.execute(
            insert(ip_allocations),
            [
                {"port_id": port_id, "subnet_id": s, "ip_address": ip, "network_id": network_id}
                for s, ip in ips
            ],
        )


# -- create / update / delete ----------------------------------------------------------------
def _check_mac(tx: WriteTx, network_id: str, mac: str) -> None:
    if mac_in_use(tx.conn, network_id, mac):
        raise conflict(
            "MacAddressInUse",
            f"Unable to complete operation for network {network_id}. The mac address {mac} "
            "is in use.",
        )


def _check_address_pairs(body: dict[str, Any], port_security: bool) -> None:
    if body.get("allowed_address_pairs") and not port_security:
        raise conflict(
            "AddressPairAndPortSecurityRequired",
            "Port Security must be enabled in order to have allowed address pairs on a port.",
        )


def create(tx: WriteTx, body: dict[str, Any]) -> str:
    """Create a port from validated attributes (API or internal); returns its id."""
    network = get_network(tx.conn, body["network_id"])
    mac = body.get("mac_address")
    if mac is None:
        mac = allocate_port_mac(tx.conn, network.id, tx.config.port_mac_base, tx.rng)
    else:
        _check_mac(tx, network.id, mac)
    port_security = body.get("port_security_enabled", network.port_security_enabled)
    _check_address_pairs(body, port_security)
    ips = plan_addresses(tx, network.id, body.get("fixed_ips"), mac)
    owner = body.get("device_owner", "")
    host = body.get("binding:host_id") or ""
    after = PortState(
        id=body.get("id") or new_id(),
        network_id=network.id,
        host=host,
        mac_address=mac,
        ips=ips,
        device_owner=owner,
        device_id=body.get("device_id", ""),
        admin_state_up=body.get("admin_state_up", True),
    )
    begin_change(tx, None, after)
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
            allowed_address_pairs=body.get("allowed_address_pairs", []),
            security_groups=body.get("security_groups", []),
            dvr_serviceable=is_dvr_serviceable(owner),
            **standard_values(tx.now, body.get("project_id"), body.get("description")),
        )
    )
    _write_allocations(tx, after.id, network.id, ips)
    end_change(tx, None, after)
    return after.id


SIMPLE_UPDATES = {
    "name": "name",
    "description": "description",
    "admin_state_up": "admin_state_up",
    "device_id": "device_id",
    "device_owner": "device_owner",
    "binding:profile": "binding_profile",
    "binding:vnic_type": "vnic_type",
    "allowed_address_pairs": "allowed_address_pairs",
    "security_groups": "security_groups",
    "port_security_enabled": "port_security_enabled",
}
SERVICE_PORT_UPDATABLE = {"name", "description", "admin_state_up", "binding:profile"}


def update_port(tx: WriteTx, port_id: str, body: dict[str, Any], internal: bool = False) -> None:
    row = get_row(tx.conn, ports, "port", port_id)
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
    pairs = values.get("allowed_address_pairs", row.allowed_address_pairs)
    _check_address_pairs({"allowed_address_pairs": pairs}, port_security)
    mac = body.get("mac_address", row.mac_address)
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
    after = PortState(
        id=port_id,
        network_id=row.network_id,
        host=host,
        mac_address=mac,
        ips=ips,
        device_owner=owner,
        device_id=values.get("device_id", row.device_id),
        admin_state_up=values.get("admin_state_up", row.admin_state_up),
    )
    begin_change(tx, before, after)
    if ips != before.ips:
        tx.conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == port_id))
        _write_allocations(tx, port_id, row.network_id, ips)
    bump(tx.conn, ports, port_id, tx.now, **values)
    end_change(tx, before, after)
    if host != before.host:
        from dvr.server.services import floatingips

        floatingips.port_moved(tx, port_id, before.host, host)


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


def remove_subnet_addresses(tx: WriteTx, port_id: str, subnet_id: str) -> None:
    before = load_state(tx.conn, port_id)
    keep = [{"subnet_id": s, "ip_address": ip} for s, ip in before.ips if s != subnet_id]
    update_port(tx, port_id, {"fixed_ips": keep}, internal=True)


def delete_port(tx: WriteTx, port_id: str, internal: bool = False) -> None:
    row = get_row(tx.conn, ports, "port", port_id)
    if not internal and row.device_owner in SERVICE_OWNERS:
        raise conflict(
            "ServicePortInUse",
            f"Port {port_id} cannot be deleted directly via the port API: has device owner "
            f"{row.device_owner}.",
        )
    from dvr.server.services import floatingips

    floatingips.disassociate_port(tx, port_id)
    before = load_state(tx.conn, port_id)
    begin_change(tx, before, None)
    tx.conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == port_id))
    tx.conn.execute(delete(ports).where(ports.c.id == port_id))
    end_change(tx, before, None)


def set_host(tx: WriteTx, port_id: str, host: str) -> None:
    """Internal re-binding (SNAT/gateway/centralized-router ports follow their router)."""
    update_port(tx, port_id, {"binding:host_id": host}, internal=True)


def set_status(tx: WriteTx, port_ids: list[str], host: str, status: str) -> list[str]:
    """Agent-reported status of ports bound to ``host`` (others are ignored)."""
    if not port_ids:
        return []
    query = select(ports.c.id).where(ports.c.id.in_(port_ids), ports.c.host == host)
    ids = [row[0] for row in tx.conn.execute(query)]
    if ids:
        tx.conn.execute(
            update(ports)
            .where(ports.c.id.in_(ids), ports.c.status != status)
            .values(status=status, updated_at=tx.now, revision_number=ports.c.revision_number + 1)
        )
    return ids

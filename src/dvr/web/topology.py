"""The topology document of ``GET /dvr/v1/topology``: the whole cloud in one JSON object.

Built in one read transaction with a handful of set-based queries (no per-object loops over
the database), reusing the server's own queries for host summaries, router placement,
central (SNAT) hosts, router interfaces and fixed IPs:

- ``hosts``: every registered host (mode, host MAC, tunnel IP, liveness, last heartbeat,
  applied revision, revisions recorded for it after that one, routers it hosts), plus a
  placeholder (``registered: false``) for a host that ports are bound to but whose agent
  never registered;
- ``networks`` with their subnets;
- ``routers`` with the hosts each is instantiated on, its SNAT host, its interfaces and its
  external gateway (network, port, IPs, ``enable_snat``);
- ``vms``: compute ports with host, network, addresses, MAC, status, whether the firewall
  filters them (``port_security_enabled``) and their security groups' ids;
- ``security_groups``: every group as the security-group API renders it (name, ``stateful``,
  ``security_group_rules``), so a port's groups and their rules can be shown by id;
- ``floating_ips``: each floating IP with its external network, router, and the port,
  fixed IP and host it is associated with (all null when it is not);
- ``revision``: the server's current global revision.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from dvr.db.tables import (
    changes,
    dvr_hosts,
    floatingips,
    networks,
    ports,
    routers,
    security_groups,
    subnets,
)
from dvr.model.hostview import OWNER_COMPUTE_PREFIX
from dvr.server.api.dvr_protocol import host_summaries
from dvr.server.hostview import fixed_ips_by_port, router_interface_rows
from dvr.server.services.firewall_queries import groups_of_ports
from dvr.server.services.firewall_rules import is_filtered
from dvr.server.services.notify import current_revision, pruned_revision
from dvr.server.services.scheduler import all_router_hosts, central_hosts
from dvr.server.services.security_groups import render_groups
from dvr.server.tx import ReadTx


def _fixed_ips(conn: Connection, port_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    return {
        port_id: [{"subnet_id": f.subnet_id, "ip_address": f.ip_address} for f in fixed]
        for port_id, fixed in fixed_ips_by_port(conn, port_ids).items()
    }


def _pending_changes(tx: ReadTx) -> dict[str, int]:
    """host -> number of revisions recorded for it after its applied revision (memory's,
    where a heartbeat newer than the database's says another)."""
    stored = {
        row.host: (row.applied_revision, row.heartbeat_at)
        for row in tx.conn.execute(
            select(dvr_hosts.c.host, dvr_hosts.c.applied_revision, dvr_hosts.c.heartbeat_at)
        )
    }
    newer = tx.liveness.newer_applied(stored)
    applied = (
        case(newer, value=dvr_hosts.c.host, else_=dvr_hosts.c.applied_revision)
        if newer
        else dvr_hosts.c.applied_revision
    )
    query = (
        select(changes.c.host, func.count(func.distinct(changes.c.revision)))
        .select_from(
            changes.join(
                dvr_hosts,
                and_(
                    dvr_hosts.c.host == changes.c.host,
                    changes.c.revision > applied,
                ),
            )
        )
        .group_by(changes.c.host)
    )
    return {host: count for host, count in tx.conn.execute(query)}


def _hosts(tx: ReadTx, referenced: set[str]) -> list[dict[str, Any]]:
    pending = _pending_changes(tx)
    pruned = pruned_revision(tx.conn)
    result = []
    for summary in host_summaries(tx):
        applied = summary["applied_revision"]
        behind = pending.get(summary["host"], 0)
        result.append(
            {
                **summary,
                "registered": True,
                "pending_revisions": behind,
                # below the pruned revision we cannot know what it missed: assume behind
                "in_sync": behind == 0 and applied >= pruned,
            }
        )
    known = {h["host"] for h in result}
    for host in sorted(referenced - known):
        result.append(
            {
                "host": host,
                "registered": False,
                "agent_mode": None,
                "host_mac": None,
                "tunnel_ip": None,
                "datapath_type": None,
                "alive": False,
                "heartbeat_timestamp": None,
                "applied_revision": None,
                "pending_revisions": 0,
                "in_sync": False,
                "routers": [],
            }
        )
    return result


def _networks(conn: Connection) -> list[dict[str, Any]]:
    by_network: dict[str, list[dict[str, Any]]] = defaultdict(list)
    subnet_query = select(
        subnets.c.id,
        subnets.c.network_id,
        subnets.c.name,
        subnets.c.cidr,
        subnets.c.gateway_ip,
        subnets.c.ip_version,
    ).order_by(subnets.c.network_id, subnets.c.cidr, subnets.c.id)
    for row in conn.execute(subnet_query):
        by_network[row.network_id].append(
            {
                "id": row.id,
                "name": row.name,
                "cidr": row.cidr,
                "gateway_ip": row.gateway_ip,
                "ip_version": row.ip_version,
            }
        )
    network_query = select(networks).order_by(networks.c.name, networks.c.id)
    return [
        {
            "id": row.id,
            "name": row.name,
            "network_type": row.network_type,
            "segmentation_id": row.segmentation_id,
            "mtu": row.mtu,
            "external": row.external,
            "admin_state_up": row.admin_state_up,
            "subnets": by_network.get(row.id, []),
        }
        for row in conn.execute(network_query)
    ]


def _router_placement(conn: Connection) -> dict[str, list[str]]:
    """router id -> hosts it is instantiated on, from the scheduler's own host index."""
    result: dict[str, set[str]] = defaultdict(set)
    for host, router_ids in all_router_hosts(conn).items():
        for router_id in router_ids:
            result[router_id].add(host)
    return {router_id: sorted(hosts) for router_id, hosts in result.items()}


def _routers(conn: Connection) -> list[dict[str, Any]]:
    interfaces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(router_interface_rows(conn), key=lambda r: r.cidr):
        interfaces[row.router_id].append(
            {
                "port_id": row.port_id,
                "subnet_id": row.subnet_id,
                "network_id": row.network_id,
                "ip_address": row.ip_address,
                "mac_address": row.mac_address,
                "cidr": row.cidr,
            }
        )
    central = central_hosts(conn)
    placement = _router_placement(conn)
    rows = list(conn.execute(select(routers).order_by(routers.c.name, routers.c.id)))
    gateway_ips = _fixed_ips(conn, [r.gw_port_id for r in rows if r.gw_port_id])
    return [
        {
            "id": row.id,
            "name": row.name,
            "distributed": row.distributed,
            "ha": row.ha,
            "admin_state_up": row.admin_state_up,
            "hosts": placement.get(row.id, []),
            "snat_host": central.get(row.id),
            "interfaces": interfaces.get(row.id, []),
            "gateway": (
                {
                    "network_id": row.gw_network_id,
                    "port_id": row.gw_port_id,
                    "fixed_ips": gateway_ips.get(row.gw_port_id, []),
                    "enable_snat": row.enable_snat,
                }
                if row.gw_port_id
                else None
            ),
        }
        for row in rows
    ]


def _vms(conn: Connection) -> list[dict[str, Any]]:
    query = (
        select(ports)
        .where(ports.c.device_owner.startswith(OWNER_COMPUTE_PREFIX))
        .order_by(ports.c.name, ports.c.id)
    )
    rows = list(conn.execute(query))
    ids = [r.id for r in rows]
    fixed = _fixed_ips(conn, ids)
    groups = groups_of_ports(conn, ids)
    return [
        {
            "id": row.id,
            "name": row.name,
            "device_id": row.device_id,
            "device_owner": row.device_owner,
            "host": row.host or None,
            "network_id": row.network_id,
            "mac_address": row.mac_address,
            "fixed_ips": fixed.get(row.id, []),
            "status": row.status,
            "admin_state_up": row.admin_state_up,
            "port_security_enabled": is_filtered(row.port_security_enabled, row.device_owner),
            "security_groups": groups.get(row.id, []),
        }
        for row in rows
    ]


def _security_groups(conn: Connection) -> list[dict[str, Any]]:
    query = select(security_groups).order_by(security_groups.c.name, security_groups.c.id)
    return render_groups(conn, list(conn.execute(query)))


def _floating_ips(conn: Connection) -> list[dict[str, Any]]:
    query = (
        select(floatingips, ports.c.host, ports.c.name.label("port_name"))
        .select_from(floatingips.outerjoin(ports, ports.c.id == floatingips.c.fixed_port_id))
        .order_by(floatingips.c.floating_ip_address, floatingips.c.id)
    )
    return [
        {
            "id": row.id,
            "floating_ip_address": row.floating_ip_address,
            "floating_network_id": row.floating_network_id,
            "router_id": row.router_id,
            "port_id": row.fixed_port_id,
            "port_name": row.port_name if row.fixed_port_id else None,
            "fixed_ip_address": row.fixed_ip_address,
            "host": (row.host or None) if row.fixed_port_id else None,
            "status": row.status,
        }
        for row in conn.execute(query)
    ]


def build_topology(tx: ReadTx) -> dict[str, Any]:
    """The whole topology document (see the module docstring)."""
    revision = current_revision(tx.conn)
    vms = _vms(tx.conn)
    router_list = _routers(tx.conn)
    referenced = {vm["host"] for vm in vms if vm["host"]} | {
        host for router in router_list for host in router["hosts"]
    }
    return {
        "revision": revision,
        "hosts": _hosts(tx, referenced),
        "networks": _networks(tx.conn),
        "routers": router_list,
        "vms": vms,
        "floating_ips": _floating_ips(tx.conn),
        "security_groups": _security_groups(tx.conn),
    }

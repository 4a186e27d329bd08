"""Agents: registration and heartbeat of host agents, Neutron's /v2.0/agents rows, and
which L3 agents host which routers."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from dvr.db.tables import agents, dvr_hosts, routers
from dvr.model.hostview import AGENT_MODES, LAYOUT_CHOICES
from dvr.server.auth import ADMIN, Identity, registration_refusal
from dvr.server.errors import invalid_input
from dvr.server.services.changes import host_registration_change
from dvr.server.services.common import get_row, list_rows, new_id
from dvr.server.services.credentials import has_credential
from dvr.server.services.heartbeats import bind_waiting_ports, require_host
from dvr.server.services.queries import get_router
from dvr.server.services.routers import render_routers, schedule_pending
from dvr.server.services.scheduler import alive_since, router_hosts, routers_hosted_on
from dvr.server.tx import ReadTx, WriteTx
from dvr.server.validate import is_path_segment, is_plain_text, to_ip

OVS_AGENT = "Open vSwitch agent"
L3_AGENT = "L3 agent"
DEFAULT_AVAILABILITY_ZONE = "nova"
AGENT_BINARIES = {OVS_AGENT: "dvr-agent", L3_AGENT: "dvr-agent"}
AGENT_TOPICS = {OVS_AGENT: "N/A", L3_AGENT: "l3_agent"}
DATAPATH_TYPES = ("system", "netdev")


def format_agent_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def last_seen(tx: ReadTx, host: str, stored: Any) -> Any:
    """When the host's agent was last heard of: memory over the database."""
    return tx.liveness.last_seen(host, stored)


def is_alive(tx: ReadTx, host: str, stored: Any) -> bool:
    return last_seen(tx, host, stored) >= alive_since(tx.now, tx.config.agent_down_time)


def render_agent(tx: ReadTx, row: Any) -> dict[str, Any]:
    heartbeat = last_seen(tx, row.host, row.heartbeat_timestamp)
    return {
        "id": row.id,
        "agent_type": row.agent_type,
        "binary": row.binary,
        "topic": row.topic,
        "host": row.host,
        "admin_state_up": row.admin_state_up,
        "alive": heartbeat >= alive_since(tx.now, tx.config.agent_down_time),
        "configurations": dict(row.configurations or {}),
        "heartbeat_timestamp": format_agent_time(heartbeat),
        "created_at": format_agent_time(row.created_at),
        "started_at": format_agent_time(row.started_at),
        "description": row.description,
        "availability_zone": row.availability_zone,
        "resources_synced": None,
    }


def list_agent_rows(conn: Connection, hosts: list[str] | None = None) -> list[Any]:
    query = select(agents).order_by(agents.c.host, agents.c.agent_type)
    if hosts is not None:
        query = query.where(agents.c.host.in_(hosts))
    return list(conn.execute(query))


def get_agent(conn: Connection, agent_id: str) -> Any:
    return get_row(conn, agents, "agent", agent_id)


def l3_agents_hosting(tx: ReadTx, router_id: str) -> list[dict[str, Any]]:
    """The L3 agents of the hosts that host the router (/v2.0/routers/{id}/l3-agents)."""
    get_router(tx.conn, router_id)
    hosts = sorted(router_hosts(tx.conn, [router_id])[router_id])
    rows = [r for r in list_agent_rows(tx.conn, hosts) if r.agent_type == L3_AGENT]
    return [{**render_agent(tx, r), "ha_state": None} for r in rows]


def routers_on_agent(tx: ReadTx, agent_id: str) -> list[dict[str, Any]]:
    """The routers an L3 agent's host hosts, rendered (/v2.0/agents/{id}/l3-routers)."""
    agent = get_agent(tx.conn, agent_id)
    if agent.agent_type != L3_AGENT:
        return []
    router_ids = routers_hosted_on(tx.conn, agent.host)
    rows = list_rows(tx.conn, routers, routers.c.id.in_(sorted(router_ids)))
    return render_routers(tx.conn, rows)


def _configurations(agent_type: str, mode: str, tunnel_ip: str | None, datapath: str) -> dict:
    if agent_type == L3_AGENT:
        return {"agent_mode": mode}
    return {
        "agent_mode": mode,
        "tunnel_types": ["vxlan"],
        "tunneling_ip": tunnel_ip,
        "l2_population": True,
        "enable_distributed_routing": True,
        "datapath_type": datapath,
    }


def register(tx: WriteTx, body: dict[str, Any], caller: Identity = ADMIN) -> list[dict[str, Any]]:
    """Register (or update) a host's agents.  ``caller``: who asks (a host may register only
    itself; a host with a credential changes its tunnel IP or mode only with it)."""
    host = body.get("host")
    if not isinstance(host, str) or not host or not is_plain_text(host):
        raise invalid_input("host must be a non-empty string")
    if not is_path_segment(host):
        raise invalid_input(
            f"host '{host}' cannot name a URL path segment (no '/', not '.' or '..')"
        )
    mode = body.get("agent_mode", "dvr")
    if mode not in AGENT_MODES:
        raise invalid_input(f"agent_mode '{mode}' is not one of {', '.join(AGENT_MODES)}")
    tunnel_ip = body.get("tunnel_ip")
    if tunnel_ip is not None:
        try:
            tunnel_ip = to_ip(tunnel_ip)
        except ValueError as exc:
            raise invalid_input(str(exc)) from None
    datapath = body.get("datapath_type", "system")
    if datapath not in DATAPATH_TYPES:
        raise invalid_input(f"datapath_type '{datapath}' is not one of {', '.join(DATAPATH_TYPES)}")
    zone = body.get("availability_zone", DEFAULT_AVAILABILITY_ZONE)
    if not isinstance(zone, str) or not zone or not is_plain_text(zone):
        raise invalid_input("availability_zone must be a non-empty string")
    existing = tx.conn.execute(select(dvr_hosts).where(dvr_hosts.c.host == host)).first()
    values = {
        "agent_mode": mode,
        "tunnel_ip": tunnel_ip,
        "datapath_type": datapath,
        "heartbeat_at": tx.now,
    }
    changes_identity = existing is not None and (existing.agent_mode, existing.tunnel_ip) != (
        mode,
        tunnel_ip,
    )
    refusal = registration_refusal(
        caller, host, changes_identity, has_credential(tx.conn, host)
    )
    if refusal is not None:
        raise refusal
    view_changed = existing is None or changes_identity
    tx.liveness.forget(host)  # its next heartbeat is written: the row may be new
    with host_registration_change(tx, host) if view_changed else nullcontext():
        if existing is None:
            tx.conn.execute(
                insert(dvr_hosts).values(
                    host=host, registered_at=tx.now, applied_revision=0, **values
                )
            )
        else:
            tx.conn.execute(update(dvr_hosts).where(dvr_hosts.c.host == host).values(**values))
        for agent_type in (OVS_AGENT, L3_AGENT):
            configurations = _configurations(agent_type, mode, tunnel_ip, datapath)
            _upsert_agent(tx, host, agent_type, configurations, zone)
    bind_waiting_ports(tx, [host])
    if mode in ("dvr_snat", "legacy"):
        schedule_pending(tx)
    return [render_agent(tx, row) for row in list_agent_rows(tx.conn, [host])]


def _upsert_agent(
    tx: WriteTx, host: str, agent_type: str, configurations: dict, zone: str
) -> None:
    """Neutron gives L3 agents an availability zone (the routers' zones), not OVS agents."""
    agent_zone = zone if agent_type == L3_AGENT else None
    query = select(agents.c.id).where(agents.c.host == host, agents.c.agent_type == agent_type)
    agent_id = tx.conn.execute(query).scalar()
    if agent_id is None:
        tx.conn.execute(
            insert(agents).values(
                id=new_id(),
                host=host,
                agent_type=agent_type,
                binary=AGENT_BINARIES[agent_type],
                topic=AGENT_TOPICS[agent_type],
                admin_state_up=True,
                description="",
                availability_zone=agent_zone,
                configurations=configurations,
                created_at=tx.now,
                started_at=tx.now,
                heartbeat_timestamp=tx.now,
            )
        )
    else:
        tx.conn.execute(
            update(agents)
            .where(agents.c.id == agent_id)
            .values(
                configurations=configurations,
                availability_zone=agent_zone,
                started_at=tx.now,
                heartbeat_timestamp=tx.now,
            )
        )


def agent_report(tx: ReadTx, host: str) -> dict[str, Any]:
    row = require_host(tx, host)
    report = row.agent_report or {}
    return {
        "host": host,
        "reported": row.agent_report is not None,  # an empty ``vifs`` then means "none"
        "applied_revision": tx.liveness.newest_applied(
            host, row.applied_revision, row.heartbeat_at
        ),
        "vifs": report.get("vifs", {}),
        "local_vlans": report.get("local_vlans", {}),
        "bridge_mappings": report.get("bridge_mappings", {}),
        **{name: report.get(name, default) for name, (_, default) in LAYOUT_CHOICES.items()},
    }


def update_agent(tx: WriteTx, agent_id: str, body: dict[str, Any]) -> dict[str, Any]:
    get_agent(tx.conn, agent_id)
    values = {k: body[k] for k in ("admin_state_up", "description") if k in body}
    if values:
        tx.conn.execute(update(agents).where(agents.c.id == agent_id).values(**values))
    return render_agent(tx, get_agent(tx.conn, agent_id))


def delete_agent(tx: WriteTx, agent_id: str) -> None:
    """Delete one agent row; with the host's last agent the host registration goes too."""
    row = get_agent(tx.conn, agent_id)
    tx.conn.execute(delete(agents).where(agents.c.id == agent_id))
    remaining = tx.conn.execute(select(agents.c.id).where(agents.c.host == row.host)).first()
    if remaining is None:
        tx.liveness.forget(row.host)
        with host_registration_change(tx, row.host):
            tx.conn.execute(delete(dvr_hosts).where(dvr_hosts.c.host == row.host))

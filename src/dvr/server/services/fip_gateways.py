"""FIP agent gateway ports: one ``network:floatingip_agent_gateway`` port per (host,
external network) on which a distributed router maps a floating IP to a port bound to
the host.

``ensure_fip_agent_gateway`` creates the port when missing; ``unused_fip_agent_gateways``
names the ones no floating IP needs any more (``cascades`` deletes them, since deleting a
port disassociates its floating IPs first).
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from dvr.db.tables import agents, floatingips, ports, routers
from dvr.model.hostview import OWNER_FLOATINGIP_AGENT_GATEWAY
from dvr.server.services import ports as port_service
from dvr.server.services.queries import network_subnets
from dvr.server.tx import WriteTx


def fip_agent_gateway_ports(conn: Connection, network_id: str, host: str) -> list[str]:
    query = select(ports.c.id).where(
        ports.c.network_id == network_id,
        ports.c.host == host,
        ports.c.device_owner == OWNER_FLOATINGIP_AGENT_GATEWAY,
    )
    return [row[0] for row in conn.execute(query)]


def ensure_fip_agent_gateway(tx: WriteTx, network_id: str, host: str) -> None:
    """Create the host's gateway port on the external network unless it has one."""
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
            "fixed_ips": one_ipv4_address(tx.conn, network_id),
            "status": "ACTIVE",
        },
    )


def unused_fip_agent_gateways(conn: Connection, network_id: str, host: str) -> list[str]:
    """The host's gateway ports on the network, if no floating IP there needs them."""
    if not host or _host_has_fips(conn, network_id, host):
        return []
    return fip_agent_gateway_ports(conn, network_id, host)


def one_ipv4_address(conn: Connection, network_id: str) -> list[dict[str, str]] | None:
    """``fixed_ips`` asking for one address of the network's first IPv4 subnet (None: the
    network has no IPv4 subnet)."""
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

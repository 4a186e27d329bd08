"""L2 population: who takes part in which network, and which MACs live where.

A host *touches* network N when it has a port bound on N or hosts a router with an
interface on N.  Every other host touching N is a flood target of N, and the ports bound
to it on N (never a distributed router interface: those have no host) are its unicast
entries.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, select

from dvr.db.tables import ports
from dvr.server.services.scheduler import router_hosts, routers_on_networks


def touching_hosts(conn: Connection, network_ids: Collection[str]) -> dict[str, set[str]]:
    """network id -> hosts touching it (every id given appears)."""
    result: dict[str, set[str]] = {n: set() for n in network_ids}
    if not result:
        return result
    query = (
        select(ports.c.network_id, ports.c.host)
        .where(ports.c.network_id.in_(list(result)), ports.c.host != "")
        .distinct()
    )
    for network_id, host in conn.execute(query):
        result[network_id].add(host)
    routers_by_network = routers_on_networks(conn, list(result))
    all_routers = {r for rs in routers_by_network.values() for r in rs}
    hosts_by_router = router_hosts(conn, all_routers)
    for network_id, router_ids in routers_by_network.items():
        for router_id in router_ids:
            result[network_id] |= hosts_by_router[router_id]
    return result


def bound_port_networks(conn: Connection, host: str) -> set[str]:
    query = select(ports.c.network_id).where(ports.c.host == host).distinct()
    return {row[0] for row in conn.execute(query)}

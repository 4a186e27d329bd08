"""L2 population: who takes part in which network, and which MACs live where.

A host *touches* network N when it has a port bound on N or hosts a router with an
interface on N.  On a tunnel network (VXLAN), every other host touching N is a flood target
of N, and the ports bound to it on N (never a distributed router interface: those have no
host) are its unicast entries.  Flat and VLAN networks have none of that: their frames
cross the physical network, which learns where MACs are (as Neutron's l2population does
only for tunnel types).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import Connection, select

from dvr.db.tables import networks, ports
from dvr.server.services.common import ids_statement
from dvr.server.services.scheduler import router_hosts, routers_on_networks

L2POP_NETWORK_TYPES = ("vxlan",)


def populated_networks(conn: Connection, network_ids: Collection[str]) -> set[str]:
    """The networks among these that take part in L2 population (tunnel networks)."""
    if not network_ids:
        return set()
    query = select(networks.c.id).where(
        networks.c.id.in_(list(network_ids)),
        networks.c.network_type.in_(L2POP_NETWORK_TYPES),
    )
    return {row[0] for row in conn.execute(query)}


def _bound_hosts_query(ids: Callable[[Any], Any]) -> Any:
    return select(ports.c.network_id, ports.c.host).where(
        ids(ports.c.network_id), ports.c.host != "").distinct()


def touching_hosts(conn: Connection, network_ids: Collection[str]) -> dict[str, set[str]]:
    """network id -> hosts touching it (every id given appears)."""
    result: dict[str, set[str]] = {n: set() for n in network_ids}
    if not result:
        return result
    query = ids_statement(conn, _bound_hosts_query)
    for network_id, host in conn.execute(query, {"ids": list(result)}):
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

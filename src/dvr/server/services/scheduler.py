"""Router scheduling (DVR.md §3), derived by query — no stale "router on host" table.

A distributed router R is hosted on host H iff H has a DVR-serviceable port (VM, DHCP,
load balancer) bound to H with an IP on a subnet attached to R.  The centralized part of a
router (SNAT of a distributed router with a gateway, or the whole of a centralized router)
is bound to one host in ``router_l3_bindings``; that host hosts the router too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, union

from dvr.db.tables import (
    agents,
    dvr_hosts,
    ip_allocations,
    ports,
    router_interfaces,
    router_l3_bindings,
    routers,
)
from dvr.server.services.common import ids_statement, in_ids


def _serviceable_hosts_select():  # type: ignore[no-untyped-def]
    return (
        select(router_interfaces.c.router_id, ports.c.host)
        .select_from(router_interfaces)
        .join(routers, and_(routers.c.id == router_interfaces.c.router_id, routers.c.distributed))
        .join(ip_allocations, ip_allocations.c.subnet_id == router_interfaces.c.subnet_id)
        .join(ports, ports.c.id == ip_allocations.c.port_id)
        .where(ports.c.dvr_serviceable, ports.c.host != "")
    )


def router_hosts(conn: Connection, router_ids: Collection[str]) -> dict[str, set[str]]:
    """router id -> hosts that host it (every id given appears, possibly with no hosts)."""
    result: dict[str, set[str]] = {r: set() for r in router_ids}
    if not result:
        return result
    for router_id, host in conn.execute(ids_statement(conn, _router_hosts_query),
                                        {"ids": list(result)}):
        result[router_id].add(host)
    return result


def _router_hosts_query(ids: Callable[[Any], Any]) -> Any:
    return union(
        _serviceable_hosts_select().where(ids(router_interfaces.c.router_id)),
        select(router_l3_bindings.c.router_id, router_l3_bindings.c.host).where(
            ids(router_l3_bindings.c.router_id)
        ),
    )


# the routers hosted on the host bound to "host" (a constant statement: compiled once)
_ROUTERS_HOSTED_ON = union(
    _serviceable_hosts_select()
    .where(ports.c.host == bindparam("host"))
    .with_only_columns(router_interfaces.c.router_id),
    select(router_l3_bindings.c.router_id).where(router_l3_bindings.c.host == bindparam("host")),
)


def routers_hosted_on(conn: Connection, host: str) -> set[str]:
    return {row[0] for row in conn.execute(_ROUTERS_HOSTED_ON, {"host": host})}


def routers_on_subnets(conn: Connection, subnet_ids: Collection[str]) -> set[str]:
    if not subnet_ids:
        return set()
    query = ids_statement(conn, _routers_on_subnets_query)
    return {row[0] for row in conn.execute(query, {"ids": list(subnet_ids)})}


def _routers_on_subnets_query(ids: Callable[[Any], Any]) -> Any:
    return select(router_interfaces.c.router_id).where(ids(router_interfaces.c.subnet_id))


def routers_on_networks(conn: Connection, network_ids: Collection[str]) -> dict[str, set[str]]:
    """network id -> routers with an interface on it."""
    result: dict[str, set[str]] = {n: set() for n in network_ids}
    if not result:
        return result
    query = ids_statement(conn, _routers_on_networks_query)
    for network_id, router_id in conn.execute(query, {"ids": list(result)}):
        result[network_id].add(router_id)
    return result


def _routers_on_networks_query(ids: Callable[[Any], Any]) -> Any:
    return select(router_interfaces.c.network_id, router_interfaces.c.router_id).where(
        ids(router_interfaces.c.network_id))


def router_networks(conn: Connection, router_ids: Collection[str]) -> set[str]:
    """Networks of the interfaces of these routers."""
    if not router_ids:
        return set()
    query = ids_statement(conn, _router_networks_query)
    return {row[0] for row in conn.execute(query, {"ids": list(router_ids)})}


def _router_networks_query(ids: Callable[[Any], Any]) -> Any:
    return select(router_interfaces.c.network_id).where(ids(router_interfaces.c.router_id))


def alive_since(now: datetime, agent_down_time: int) -> datetime:
    return now - timedelta(seconds=agent_down_time)


def pick_central_host(
    conn: Connection,
    modes: Collection[str],
    now: datetime,
    agent_down_time: int,
    seen_alive: Collection[str] = (),
) -> str | None:
    """The alive, admin-up host of one of ``modes`` with the fewest central bindings.
    ``seen_alive``: hosts alive by heartbeats not yet in the database.

    Ties go to the first host by name.
    """
    since = alive_since(now, agent_down_time)
    alive = dvr_hosts.c.heartbeat_at >= since
    if seen_alive:
        alive = or_(alive, dvr_hosts.c.host.in_(sorted(seen_alive)))
    load = (
        select(router_l3_bindings.c.host, func.count().label("n"))
        .group_by(router_l3_bindings.c.host)
        .subquery()
    )
    query = (
        select(dvr_hosts.c.host)
        .select_from(
            dvr_hosts.join(
                agents,
                and_(agents.c.host == dvr_hosts.c.host, agents.c.agent_type == "L3 agent"),
            ).outerjoin(load, load.c.host == dvr_hosts.c.host)
        )
        .where(
            dvr_hosts.c.agent_mode.in_(list(modes)),
            alive,
            agents.c.admin_state_up,
        )
        .order_by(func.coalesce(load.c.n, 0), dvr_hosts.c.host)
        .limit(1)
    )
    return conn.execute(query).scalar()


def central_modes(distributed: bool) -> tuple[str, ...]:
    """Agent modes that may run the centralized part of a router."""
    return ("dvr_snat",) if distributed else ("legacy", "dvr_snat")


def central_host(conn: Connection, router_id: str) -> str | None:
    query = select(router_l3_bindings.c.host).where(router_l3_bindings.c.router_id == router_id)
    return conn.execute(query).scalar()


def central_hosts(conn: Connection, router_ids: Collection[str] | None = None) -> dict[str, str]:
    """router id -> the host of its centralized part, for these routers (None: all) that
    have one."""
    query = select(router_l3_bindings.c.router_id, router_l3_bindings.c.host)
    if router_ids is not None:
        query = query.where(in_ids(conn, router_l3_bindings.c.router_id, router_ids))
    return dict(conn.execute(query).all())


def all_router_hosts(conn: Connection) -> dict[str, set[str]]:
    """host -> routers it hosts, for every host (one query)."""
    query = union(
        _serviceable_hosts_select(),
        select(router_l3_bindings.c.router_id, router_l3_bindings.c.host),
    )
    result: dict[str, set[str]] = {}
    for router_id, host in conn.execute(query):
        result.setdefault(host, set()).add(router_id)
    return result

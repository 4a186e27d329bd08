"""Hosts known to the server: registered agents, hosts with a MAC, hosts with bound ports."""

from __future__ import annotations

from sqlalchemy import Connection, select, union

from dvr.db.tables import dvr_host_macs, dvr_hosts, ports, router_l3_bindings


def all_hosts(conn: Connection) -> set[str]:
    query = union(
        select(dvr_hosts.c.host),
        select(dvr_host_macs.c.host),
        select(ports.c.host).where(ports.c.host != "").distinct(),
        select(router_l3_bindings.c.host),
    )
    return {row[0] for row in conn.execute(query)}

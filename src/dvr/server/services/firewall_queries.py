"""Read-only queries about security groups that several services share: a port's groups,
the hosts of a group's members, the groups whose rules reference a group or an address
group, a group or address group by id.

Like ``queries``, this module imports no service module (only ``common``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, or_, select

from dvr.db.tables import (
    address_groups,
    port_security_groups,
    ports,
    security_group_rules,
    security_groups,
)
from dvr.server.services.common import get_row, in_ids

bindings = port_security_groups


def get_security_group(conn: Connection, group_id: str) -> Any:
    return get_row(conn, security_groups, "security_group", group_id)


def get_address_group(conn: Connection, address_group_id: str) -> Any:
    return get_row(conn, address_groups, "address_group", address_group_id)


def groups_of_ports(conn: Connection, port_ids: Collection[str] | None) -> dict[str, list[str]]:
    """port -> its groups, sorted (None: of every port); ports without any are absent."""
    query = select(bindings.c.port_id, bindings.c.security_group_id)
    if port_ids is not None:
        if not port_ids:
            return {}
        query = query.where(in_ids(conn, bindings.c.port_id, port_ids))
    result: dict[str, list[str]] = defaultdict(list)
    for port_id, group_id in conn.execute(query).all():
        result[port_id].append(group_id)
    return {port_id: sorted(groups) for port_id, groups in result.items()}


def hosts_with_members(conn: Connection, group_ids: Collection[str]) -> set[str]:
    """Hosts with a bound port in one of these groups."""
    if not group_ids:
        return set()
    query = (
        select(ports.c.host)
        .select_from(bindings.join(ports, ports.c.id == bindings.c.port_id))
        .where(in_ids(conn, bindings.c.security_group_id, group_ids), ports.c.host != "")
        .distinct()
    )
    return {row[0] for row in conn.execute(query)}


def groups_referencing(
    conn: Connection,
    remote_group_ids: Collection[str] = (),
    address_group_ids: Collection[str] = (),
) -> set[str]:
    """Groups with a rule whose remote is one of these groups or address groups."""
    clauses = []
    if remote_group_ids:
        clauses.append(in_ids(conn, security_group_rules.c.remote_group_id, remote_group_ids))
    if address_group_ids:
        clauses.append(
            in_ids(conn, security_group_rules.c.remote_address_group_id, address_group_ids)
        )
    if not clauses:
        return set()
    query = select(security_group_rules.c.security_group_id).where(or_(*clauses)).distinct()
    return {row[0] for row in conn.execute(query)}


def hosts_seeing(
    conn: Connection,
    group_ids: Collection[str] = (),
    remote_group_ids: Collection[str] = (),
    address_group_ids: Collection[str] = (),
) -> set[str]:
    """Hosts whose HostView shows these groups' rules (a member port is bound there), or
    the addresses of these groups or address groups (a rule of a group with a member there
    references them)."""
    referencing = groups_referencing(conn, remote_group_ids, address_group_ids)
    return hosts_with_members(conn, set(group_ids) | referencing)

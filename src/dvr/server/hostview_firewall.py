"""The firewall part of a HostView, in a constant number of set-based queries: the groups
of the host's ports with their typed rules, and the address sets those rules reference
(a remote group's member addresses on any host; an address group's CIDRs).  Both are the
same for every host, so they are shared parts of the revision (``hostview_parts``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, select

from dvr.db.tables import (
    address_groups,
    ip_allocations,
    port_security_groups,
    ports,
    security_group_rules,
    security_groups,
)
from dvr.model.hostview import AddressPair, AddressSetView, SecurityGroupView
from dvr.server.hostview_parts import AddressSetKey, RevisionParts, reuse
from dvr.server.memory_only import MemoryOnly, NeedsDatabase, parts_locked
from dvr.server.services.common import in_ids
from dvr.server.services.firewall_rules import MATCH_KEYS, rule_view

bindings = port_security_groups


def address_pairs(stored: list[dict[str, str]] | None, mac: str) -> tuple[AddressPair, ...]:
    """A port's allowed address pairs, the MAC defaulted to the port's, sorted."""
    pairs = {AddressPair(p.get("mac_address") or mac, p["ip_address"]) for p in stored or ()}
    return tuple(sorted(pairs, key=lambda p: (p.mac_address, p.ip_address)))


def firewall_views(
    conn: Connection, group_ids: Collection[str], parts: RevisionParts
) -> tuple[tuple[SecurityGroupView, ...], tuple[AddressSetView, ...]]:
    """The views of these groups (those of the host's ports) and of the address sets their
    rules reference, from the revision's shared ``parts`` (adding those missing)."""
    if not group_ids:
        return (), ()
    with parts_locked(parts.lock, conn):
        missing = parts.missing_security_groups(set(group_ids))
        before = parts.previous
        if missing:
            if isinstance(conn, MemoryOnly):  # (a miss counts when the groups are read)
                raise NeedsDatabase("security groups")
            groups_ahead, sets_ahead = parts.read_ahead()
            for group_id, group in _group_views(conn, missing | groups_ahead).items():
                earlier = before.security_groups.get(group_id) if before else None
                held = parts.security_groups if group_id in missing \
                    else parts.unchanged_security_groups
                held[group_id] = reuse(earlier, group)
            for key, address_set in _address_set_views(conn, sets_ahead).items():
                earlier = before.address_sets.get(key) if before else None
                parts.unchanged_address_sets[key] = reuse(earlier, address_set)
        groups = tuple(
            parts.security_groups[g] for g in sorted(group_ids) if g in parts.security_groups
        )
        wanted = {
            key
            for group in groups
            for rule in group.rules
            for key in (
                ("security_group", rule.remote_group_id),
                ("address_group", rule.remote_address_group_id),
            )
            if key[1]
        }
        missing_sets = parts.missing_address_sets(wanted)
        if missing_sets:
            for key, address_set in _address_set_views(conn, missing_sets).items():
                earlier = before.address_sets.get(key) if before else None
                parts.address_sets[key] = reuse(earlier, address_set)
        sets = tuple(parts.address_sets[k] for k in sorted(wanted))
    return groups, tuple(s for s in sets if s is not None)


def _group_views(conn: Connection, group_ids: set[str]) -> dict[str, SecurityGroupView]:
    """The existing ones of these groups, with their typed rules."""
    columns = [security_group_rules.c[n] for n in ("id", "security_group_id", *MATCH_KEYS)]
    rows = conn.execute(
        select(*columns).where(in_ids(conn, security_group_rules.c.security_group_id, group_ids))
    ).all()
    rules: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        rules[row.security_group_id].append(rule_view(row))
    query = select(security_groups.c.id, security_groups.c.stateful).where(
        in_ids(conn, security_groups.c.id, group_ids)
    )
    return {
        g: SecurityGroupView(id=g, stateful=stateful,
                             rules=tuple(sorted(rules[g], key=lambda r: r.id)))
        for g, stateful in conn.execute(query).all()
    }


def _address_set_views(
    conn: Connection, keys: set[AddressSetKey]
) -> dict[AddressSetKey, AddressSetView | None]:
    """These address sets; None for an address group that does not exist (a remote group
    that does not is an empty set)."""
    found: dict[AddressSetKey, AddressSetView | None] = dict.fromkeys(keys)
    remote_groups = {i for kind, i in keys if kind == "security_group"}
    address_group_ids = {i for kind, i in keys if kind == "address_group"}
    for view in (*_address_group_sets(conn, address_group_ids),
                 *_member_sets(conn, remote_groups)):
        found[(view.kind, view.id)] = view
    return found


def _as_cidr(address: str) -> str:
    """A stored address or CIDR (both stored normalized) as a CIDR: a host is /32 or /128.
    (String work: ``ipaddress`` would cost more than the rest of the view's firewall part.)"""
    if "/" in address:
        return address
    return f"{address}/128" if ":" in address else f"{address}/32"


def _member_sets(conn: Connection, group_ids: set[str]) -> list[AddressSetView]:
    """Each group's members' fixed IPs and allowed-address-pair IPs (any host)."""
    if not group_ids:
        return []
    query = (
        select(bindings.c.security_group_id, ports.c.allowed_address_pairs,
               ip_allocations.c.ip_address)
        .select_from(
            bindings.join(ports, ports.c.id == bindings.c.port_id).outerjoin(
                ip_allocations, ip_allocations.c.port_id == ports.c.id
            )
        )
        .where(in_ids(conn, bindings.c.security_group_id, group_ids))
    )
    cidrs: dict[str, set[str]] = {g: set() for g in group_ids}
    for group_id, pairs, ip in conn.execute(query).all():
        if ip is not None:
            cidrs[group_id].add(_as_cidr(ip))
        for pair in pairs or ():
            cidrs[group_id].add(_as_cidr(pair["ip_address"]))
    return [AddressSetView(g, "security_group", _sorted_cidrs(c)) for g, c in cidrs.items()]


def _address_group_sets(conn: Connection, ids: set[str]) -> list[AddressSetView]:
    if not ids:
        return []
    query = select(address_groups.c.id, address_groups.c.addresses).where(
        in_ids(conn, address_groups.c.id, ids)
    )
    return [
        AddressSetView(g, "address_group", _sorted_cidrs({_as_cidr(a) for a in addresses}))
        for g, addresses in conn.execute(query).all()
    ]


def _sorted_cidrs(cidrs: set[str]) -> tuple[str, ...]:
    return tuple(sorted(cidrs))

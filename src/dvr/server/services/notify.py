"""Who must hear about a write: exactly the hosts whose HostView it changes.

A write declares what it is about to touch (``track_networks`` / ``track_routers``, BEFORE
mutating: that snapshots who touches each network and who hosts each router), then what it
changed:
- ``network_changed(N)``: something every host touching N sees (network attributes,
  subnets);
- ``network_entries_changed(N, H)``: the L2 entry of a port bound to H on N — the other
  hosts touching N see it only if H is *visible* (registered with a tunnel IP);
- ``network_endpoints_changed(N)``: a tunnel endpoint of N appeared, moved or left (a host
  touching N registered or went away) — every host touching a tunnel network N sees it;
- ``router_changed(R)``: something every host of R sees (interfaces, static ARP, routes,
  gateway, SNAT);
- ``router_host_changed(R, H)``: something of R only H sees, if H hosts R (its FIPs);
- ``host_changed(H)``: something only H sees (its own ports, agent, MAC);
- ``hosts_told(H...)``: a shared part these hosts show changed (a security group's rules
  or members' addresses), but none of their own rows;
- ``host_macs_changed(H...)``: the host MACs, which these hosts show as their peers'.

``affected_hosts`` then answers from before/after snapshots:
- a router that changed: its hosts before ∪ after; a router whose hosts changed: the hosts
  that started or stopped hosting it;
- a network that changed: its hosts before ∪ after; a network whose touching hosts
  changed: the hosts that joined or left, and — when one of those is visible and the
  network is a tunnel network — everybody touching it before ∪ after (their flood lists /
  remote hosts changed; flat and VLAN networks have no L2 population);
- plus the hosts named explicitly.

Services track only through the context managers of ``changes`` (``port_change``,
``router_change``, ...), which track on entry and declare on exit; a write that needs no
snapshot (it names its hosts, or only a subject) declares directly.

Tracking a router tracks the networks of its interfaces, because a host starting or
stopping to host a router starts or stops touching all of them.  In the same transaction
``record_changes`` writes one change row per (host, subject) under a fresh revision.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from dvr.db.tables import changes, dvr_hosts, server_state
from dvr.server.services.l2pop import populated_networks, touching_hosts
from dvr.server.services.scheduler import router_hosts, router_networks

CHANGE_KINDS = (
    "port",
    "network",
    "subnet",
    "router",
    "hostmac",
    "floatingip",
    "agent",
    "security_group",
    "address_group",
)
PRUNE_EVERY = 64  # revisions
FIREWALL_KINDS = ("security_group", "address_group")  # subjects of a firewall write


@dataclass(frozen=True)
class ChangedParts:
    """The parts of host views that many hosts share (``server/hostview_parts``) a write may
    have changed: networks (fields, subnets, L2 entries, tunnel endpoints, hosts touching
    them), routers, the member address sets of security groups, or (``firewall``) every
    security group and address set, and (``host_macs``) the host MACs."""

    networks: frozenset[str]
    routers: frozenset[str]
    member_sets: frozenset[str] = frozenset()  # groups whose members' addresses changed
    firewall: bool = False  # a group, its rules or an address group changed
    # the hosts whose own rows (registration, bound ports with their addresses and groups,
    # routers hosted, floating IPs served) the write may have changed; None: any host's
    own_rows: frozenset[str] | None = None
    host_macs: bool = True  # a host MAC was allocated (True unless the write says not)


def merged_changes(writes: Sequence[ChangedParts]) -> ChangedParts:
    """What a run of writes may have changed, together."""
    own_rows = None if any(w.own_rows is None for w in writes) else frozenset().union(
        *(w.own_rows for w in writes if w.own_rows is not None))
    return ChangedParts(
        networks=frozenset().union(*(w.networks for w in writes)),
        routers=frozenset().union(*(w.routers for w in writes)),
        member_sets=frozenset().union(*(w.member_sets for w in writes)),
        firewall=any(w.firewall for w in writes),
        own_rows=own_rows,
        host_macs=any(w.host_macs for w in writes),
    )


@dataclass
class Impact:
    conn: Connection
    network_hosts_before: dict[str, set[str]] = field(default_factory=dict)
    router_hosts_before: dict[str, set[str]] = field(default_factory=dict)
    changed_networks: set[str] = field(default_factory=set)
    endpoint_networks: set[str] = field(default_factory=set)
    # (network, host): the L2 entry of a port bound to host changed
    entry_changes: set[tuple[str, str]] = field(default_factory=set)
    changed_routers: set[str] = field(default_factory=set)
    # (router, host): host sees the change only if it hosts the router (before or after)
    router_host_pairs: set[tuple[str, str]] = field(default_factory=set)
    hosts: set[str] = field(default_factory=set)
    told: set[str] = field(default_factory=set)  # hosts that see a shared part change only
    # security groups whose members' addresses (their address sets) changed
    member_groups: set[str] = field(default_factory=set)
    subjects: list[tuple[str, str]] = field(default_factory=list)
    host_macs_written: bool = False  # a host MAC was allocated (``host_macs_changed``)
    _networks_after: dict[str, set[str]] | None = field(default=None, repr=False)
    _routers_after: dict[str, set[str]] | None = field(default=None, repr=False)

    # -- declared before mutating -------------------------------------------------------
    def track_networks(self, network_ids: Iterable[str]) -> None:
        new = {n for n in network_ids if n and n not in self.network_hosts_before}
        self.network_hosts_before.update(touching_hosts(self.conn, new))

    def track_routers(self, router_ids: Iterable[str]) -> None:
        new = {r for r in router_ids if r and r not in self.router_hosts_before}
        if not new:
            return
        self.router_hosts_before.update(router_hosts(self.conn, new))
        self.track_networks(router_networks(self.conn, new))

    # -- declared after mutating --------------------------------------------------------
    def network_changed(self, network_id: str) -> None:
        self._require(network_id in self.network_hosts_before, "network", network_id)
        self.changed_networks.add(network_id)

    def network_endpoints_changed(self, network_id: str) -> None:
        self._require(network_id in self.network_hosts_before, "network", network_id)
        self.endpoint_networks.add(network_id)

    def network_entries_changed(self, network_id: str, host: str) -> None:
        self._require(network_id in self.network_hosts_before, "network", network_id)
        self.entry_changes.add((network_id, host))

    def router_changed(self, router_id: str) -> None:
        self._require(router_id in self.router_hosts_before, "router", router_id)
        self.changed_routers.add(router_id)

    def router_host_changed(self, router_id: str, host: str) -> None:
        self._require(router_id in self.router_hosts_before, "router", router_id)
        if host:
            self.router_host_pairs.add((router_id, host))

    def members_changed(self, group_ids: Iterable[str]) -> None:
        """The addresses of these groups' members changed (their address sets); the hosts
        that see them are named with ``hosts_told``."""
        self.member_groups.update(group_ids)

    def host_changed(self, *hosts: str | None) -> None:
        self.hosts.update(h for h in hosts if h)

    def hosts_told(self, *hosts: str | None) -> None:
        """These hosts show a shared part the write declared changed (``members_changed``,
        a firewall subject): they hear of it, but their own rows did not change."""
        self.told.update(h for h in hosts if h)

    def host_macs_changed(self, *hosts: str) -> None:
        """The host MACs changed, which these hosts show (their peers'): they hear of it,
        but their own rows did not change."""
        self.host_macs_written = True
        self.hosts_told(*hosts)

    def subject(self, kind: str, object_id: str) -> None:
        if kind not in CHANGE_KINDS:
            raise ValueError(f"unknown change kind {kind}")
        if (kind, object_id) not in self.subjects:
            self.subjects.append((kind, object_id))

    @staticmethod
    def _require(ok: bool, kind: str, object_id: str) -> None:
        if not ok:
            raise RuntimeError(f"{kind} {object_id} changed without being tracked first")

    # -- result ---------------------------------------------------------------------------
    def affected_hosts(self) -> set[str]:
        result = self.hosts | self.told
        after_routers = self._hosting_after()
        for router_id, before in self.router_hosts_before.items():
            after = after_routers[router_id]
            result |= (before | after) if router_id in self.changed_routers else before ^ after
        for router_id, host in self.router_host_pairs:
            if host in self.router_hosts_before[router_id] | after_routers[router_id]:
                result.add(host)
        after_networks = self._touching_after()
        moved = {n: before ^ after_networks[n] for n, before in self.network_hosts_before.items()}
        candidates = {h for hosts in moved.values() for h in hosts}
        candidates |= {h for _, h in self.entry_changes}
        visible = visible_hosts(self.conn, candidates)
        populated = populated_networks(self.conn, self.network_hosts_before)
        for network_id, before in self.network_hosts_before.items():
            everyone = before | after_networks[network_id]
            result |= moved[network_id]
            if network_id in self.changed_networks or (
                network_id in populated
                and (
                    network_id in self.endpoint_networks
                    or moved[network_id] & visible
                    or any(n == network_id and h in visible for n, h in self.entry_changes)
                )
            ):
                result |= everyone
        return result


    def changed_parts(self) -> ChangedParts:
        """The shared parts the write may have changed (after mutating): every network it
        declared changed (its fields or subnets, an L2 entry, a tunnel endpoint) or whose
        touching hosts changed, every router it declared changed or whose hosts changed
        (so that a part no write names stays in the views of the same hosts: none can
        change it without a revision, ``hostview_parts.keep_unchanged``), the member sets of the
        groups it declared, every firewall part if it wrote a group, its rules or an address
        group.  A part it does not name
        is the same as before the write for every host whose view holds it: were it not,
        those hosts would not be told either (``affected_hosts``)."""
        after = self._touching_after()
        networks = self.changed_networks | self.endpoint_networks
        networks |= {n for n, _ in self.entry_changes}
        networks |= {n for n, before in self.network_hosts_before.items() if before != after[n]}
        hosting = self._hosting_after()
        routers = self.changed_routers | {
            r for r, before in self.router_hosts_before.items() if before != hosting[r]}
        firewall = any(kind in FIREWALL_KINDS for kind, _ in self.subjects)
        return ChangedParts(frozenset(networks), frozenset(routers),
                            frozenset(self.member_groups), firewall,
                            frozenset(self._own_rows_hosts()), self.host_macs_written)

    def _own_rows_hosts(self) -> set[str]:
        """The hosts whose own rows the write may have changed (after mutating): those it
        named (``host_changed``: a port bound to it, its registration; ``router_host_changed``:
        floating IPs it serves), those that started or stopped hosting a router or touching a
        network, and every host of a router the write is about (its gateway and SNAT ports
        on its central host, its floating IPs when it turns distributed or centralized)."""
        hosts = set(self.hosts) | {h for _, h in self.router_host_pairs}
        router_write = any(kind == "router" for kind, _ in self.subjects)
        after_routers = self._hosting_after()
        for router_id, before in self.router_hosts_before.items():
            after = after_routers[router_id]
            hosts |= (before | after) if router_write else before ^ after
        after_networks = self._touching_after()
        for network_id, before in self.network_hosts_before.items():
            hosts |= before ^ after_networks[network_id]
        return hosts

    def _hosting_after(self) -> dict[str, set[str]]:
        """Who hosts each tracked router after the write (read once)."""
        if self._routers_after is None:
            self._routers_after = router_hosts(self.conn, self.router_hosts_before)
        return self._routers_after

    def _touching_after(self) -> dict[str, set[str]]:
        """Who touches each tracked network after the write (read once)."""
        if self._networks_after is None:
            self._networks_after = touching_hosts(self.conn, self.network_hosts_before)
        return self._networks_after


def visible_hosts(conn: Connection, hosts: Collection[str]) -> set[str]:
    """Hosts other hosts can see: registered with a tunnel IP."""
    if not hosts:
        return set()
    query = select(dvr_hosts.c.host).where(
        dvr_hosts.c.host.in_(list(hosts)), dvr_hosts.c.tunnel_ip.is_not(None)
    )
    return {row[0] for row in conn.execute(query)}


_REVISION = select(server_state.c.revision).where(server_state.c.id == 1)


def current_revision(conn: Connection) -> int:
    return conn.execute(_REVISION).scalar_one()


def pruned_revision(conn: Connection) -> int:
    query = select(server_state.c.pruned_revision).where(server_state.c.id == 1)
    return conn.execute(query).scalar_one()


_BOUNDS = select(server_state.c.pruned_revision, server_state.c.revision).where(
    server_state.c.id == 1
)


def revision_bounds(conn: Connection) -> tuple[int, int]:
    """(the newest revision whose change rows were pruned, the current revision): the
    change rows retained are those after the first, up to the second (one query)."""
    pruned, revision = conn.execute(_BOUNDS).one()
    return pruned, revision


def record_changes(
    conn: Connection,
    hosts: Collection[str],
    subjects: Collection[tuple[str, str]],
    retained: int,
) -> int | None:
    """Write change rows for every (host, subject) under a new revision; returns it."""
    if not hosts or not subjects:
        return None
    conn.execute(
        update(server_state)
        .where(server_state.c.id == 1)
        .values(revision=server_state.c.revision + 1)
    )
    revision = current_revision(conn)
    rows = [
        {"revision": revision, "host": host, "kind": kind, "object_id": object_id}
        for host in sorted(hosts)
        for kind, object_id in subjects
    ]
    conn.execute(insert(changes), rows)
    if revision % PRUNE_EVERY == 0:
        prune_changes(conn, retained)
    return revision


def prune_changes(conn: Connection, retained: int) -> None:
    """Keep only the newest ``retained`` change rows; remember the newest revision dropped."""
    newest_id = conn.execute(select(func.max(changes.c.id))).scalar()
    if newest_id is None or newest_id <= retained:
        return
    cutoff = newest_id - retained
    dropped = conn.execute(
        select(func.max(changes.c.revision)).where(changes.c.id <= cutoff)
    ).scalar()
    if dropped is None:
        return
    conn.execute(delete(changes).where(changes.c.id <= cutoff))
    conn.execute(
        update(server_state)
        .where(server_state.c.id == 1, server_state.c.pruned_revision < dropped)
        .values(pruned_revision=dropped)
    )


_CHANGES_FOR_HOST = (
    select(changes.c.revision, changes.c.kind, changes.c.object_id)
    .where(changes.c.host == bindparam("host"), changes.c.revision > bindparam("since"))
    .order_by(changes.c.revision, changes.c.id)
)
_NEWEST_CHANGE_FOR_HOST = select(func.max(changes.c.revision)).where(
    changes.c.host == bindparam("host"))


def changes_for_host(conn: Connection, host: str, since: int) -> list[tuple[int, str, str]]:
    """(revision, kind, id) of changes for ``host`` after ``since``, oldest first."""
    rows = conn.execute(_CHANGES_FOR_HOST, {"host": host, "since": since})
    return [tuple(row) for row in rows]  # type: ignore[misc]


def newest_change_for_host(conn: Connection, host: str) -> int:
    """The newest revision with a change row for ``host`` (0: none retained)."""
    return conn.execute(_NEWEST_CHANGE_FOR_HOST, {"host": host}).scalar() or 0


def unchanged_since(conn: Connection, host: str, since: int) -> int | None:
    """The current revision when no change concerning ``host`` came after revision
    ``since`` (every change after it still retained), else None: then ``host``'s view at
    ``since`` is its view now (what notification promises), its name and status fields
    aside, which no write notifies."""
    pruned, revision = revision_bounds(conn)
    if not pruned <= since <= revision:
        return None
    if newest_change_for_host(conn, host) > since:
        return None
    return revision


Subject = tuple[str, str]  # (kind, object id), as a change row names it
# revisions after which ``new_changes`` reads no write one by one (the change hub remembers
# as many: ``recent_writes.WINDOW``)
WRITES_READ_MAX = 256


class NewChanges(NamedTuple):
    """What the change rows say after a revision (other server processes' writes)."""

    revision: int  # the newest
    # host -> the newest revision concerning it, for hosts with changes after the revision
    # asked about; None: changes after it were pruned, so possibly every host
    host_revisions: dict[str, int] | None
    # each revision's change rows as (hosts, subjects): every host has a row for every
    # subject (``record_changes``); None: not read (too many revisions)
    writes: dict[int, tuple[frozenset[str], tuple[Subject, ...]]] | None = None


def new_changes(conn: Connection, since: int) -> NewChanges:
    """The changes after ``since`` (``NewChanges``); with each revision's hosts and
    subjects when at most ``WRITES_READ_MAX`` revisions came since."""
    pruned, revision = revision_bounds(conn)
    if revision <= since:
        return NewChanges(revision, {}, {})
    if since < pruned:
        return NewChanges(revision, None)
    if revision - since > WRITES_READ_MAX:
        query = (
            select(changes.c.host, func.max(changes.c.revision))
            .where(changes.c.revision > since)
            .group_by(changes.c.host)
        )
        return NewChanges(revision, {host: newest for host, newest in conn.execute(query)})
    rows = conn.execute(
        select(changes.c.revision, changes.c.host, changes.c.kind, changes.c.object_id)
        .where(changes.c.revision > since)
        .order_by(changes.c.id)
    )
    hosts: dict[int, set[str]] = {}
    subjects: dict[int, dict[Subject, None]] = {}
    newest: dict[str, int] = {}
    for row_revision, host, kind, object_id in rows:
        hosts.setdefault(row_revision, set()).add(host)
        subjects.setdefault(row_revision, {}).setdefault((kind, object_id), None)
        newest[host] = max(newest.get(host, 0), row_revision)
    writes = {r: (frozenset(hosts[r]), tuple(subjects[r])) for r in hosts}
    return NewChanges(revision, newest, writes)

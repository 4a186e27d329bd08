"""The parts of HostViews that many hosts share, built once per database revision.

A network every host is on, a router on many hosts, the host MACs, a security group and the
address sets its rules name: each is the same for every host that needs it (a network's
remote hosts leave the asking host out; a router's floating IPs depend on the host and are
not part of it), so the views built at one revision share one copy of each, built from the
first view's snapshot.  The revision moves with every write that changes any view, in the
same transaction (``notify.record_changes``), so parts read in a snapshot at revision R are
the parts of every snapshot at R.

A newer revision starts with none of them, except after a write this process knows
(``SharedViewParts.written``: its own, or another process's from that process's change
notice): each write says which parts it may have changed (``notify.Impact.changed_parts``),
and a revision starts with the parts of the newest earlier revision a view was built at that
none of the writes between changed (merged: ``notify.merged_changes``), of those a view of
that revision held (networks and routers also those it carried on itself,
``RevisionParts.keep_unchanged``).  Such a part was in some host's view, so no write could
have changed it without telling that host, that is without a revision of its own: a
revision whose write this process does not know (a notice without its parts, not received
yet, or a gap) reads everything again.

A new revision's parts reuse the objects of the revisions before where they are equal
(``reuse``, ``interned``; ``previous`` holds the newest earlier object of each part, even
one no view of the last revision needed): what did not change stays the very same object,
so comparing a host's new view with the one it was served (the delta) mostly compares
identities.

What a view makes of a shared part for its host (a network without the host's own remote
entry, a router with the host's floating IPs), and its ports, are kept per host
(``HostParts``) with what they were made from: while that stays the same, the host's next
view takes the very same object instead of making an equal one (and its delta compares
identities there too).

The rows a view reads of its host alone (``OwnRows``: registration, bound ports, routers
hosted, floating IPs served) are kept too, and read again only when a revision between may
have changed them: one whose write this process does not know, or one that names the host
(``ChangedParts.own_rows``).  A port on a network of 1,000 hosts thus reads the rows of one
host, not of 1,000.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dvr.model.hostview import (
    AddressSetView,
    FloatingIpView,
    HostMac,
    NetworkView,
    PortView,
    RemoteHost,
    RouterView,
    SecurityGroupView,
    SubnetView,
)
from dvr.server.own_rows_ledger import OwnRowsLedger
from dvr.server.serialize import JsonableCache
from dvr.server.services.notify import ChangedParts, merged_changes

AddressSetKey = tuple[str, str]  # (kind, id)
T = TypeVar("T")
H = TypeVar("H", bound=Hashable)
K = TypeVar("K")
V = TypeVar("V")
MAX_EARLIER = 50_000  # earlier objects kept to reuse, per kind of part
WRITTEN_KEPT = 64  # the revisions whose writes are remembered
# views of one revision that read missing groups before the rest are read at once
# (``RevisionParts.read_ahead``): more than a tenant network's hosts
READ_AHEAD_AFTER_MISSES = 32
READ_AHEAD_MOST = 4096  # groups (and address sets) read ahead at most


def reuse(previous: T | None, new: T) -> T:
    """``previous`` if it equals ``new``, else ``new``."""
    return previous if previous is not None and previous == new else new


def interned(previous: Iterable[H], new: tuple[H, ...]) -> tuple[H, ...]:
    """``new`` with each item that ``previous`` holds an equal of replaced by that one."""
    pool = {item: item for item in previous}
    return tuple(pool.get(item, item) for item in new)


@dataclass(frozen=True)
class OwnRows:
    """What a view reads of its host alone, as read (or known unchanged) at ``revision``:
    the host's registration, the ports bound to it with their fixed IPs and security
    groups, the routers it hosts and the floating IPs it serves of them."""

    revision: int
    registration: Any  # its dvr_hosts row, or None
    ports: tuple[Any, ...]  # (id, network_id, mac, owner, device_id, host, admin, security, pairs)
    fixed_ips: tuple[Any, ...]  # (port_id, subnet_id, ip_address)
    groups: tuple[Any, ...]  # (port_id, security_group_id)
    router_ids: frozenset[str]
    floating_ips: tuple[Any, ...]  # (router_id, id, address, network, fixed IP, port, host)


@dataclass
class HostParts:
    """What one host's last view made of the shared parts, each with the shared object it
    was made from, and the rows it read of the host alone."""

    # network id -> (shared network, the host's: without its own remote-host entry)
    networks: dict[str, tuple[NetworkView, NetworkView]] = field(default_factory=dict)
    # port id -> (the rows it was made from: port, fixed IPs, groups; the port's view)
    ports: dict[str, tuple[tuple[Any, ...], PortView]] = field(default_factory=dict)
    # router id -> (shared router, the host's floating IPs of it, the host's router)
    routers: dict[str, tuple[RouterView, tuple[FloatingIpView, ...], RouterView]] = field(
        default_factory=dict
    )
    # (every host's MACs, the host's own, its peers') of the revision's MACs
    host_macs: tuple[tuple[HostMac, ...], str | None, tuple[HostMac, ...]] | None = None
    own: OwnRows | None = None


@dataclass
class HostPartsCache:
    """The ``HostParts`` of the last ``hosts`` hosts whose view was built."""

    hosts: int = 10_000
    _parts: OrderedDict[str, HostParts] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, host: str) -> HostParts:
        """The host's parts from its last view (empty if none is kept)."""
        with self._lock:
            return self._parts.get(host) or HostParts()

    def put(self, host: str, parts: HostParts) -> None:
        with self._lock:
            self._parts.pop(host, None)
            self._parts[host] = parts
            while len(self._parts) > self.hosts:
                self._parts.popitem(last=False)


@dataclass
class RevisionParts:
    """The shared parts of the views of one revision; ``lock`` is held while a view adds the
    parts it found missing, so that concurrent views of the revision build each only once."""

    revision: int
    host_macs: tuple[HostMac, ...] | None = None  # every host's, sorted by host
    # a network with the remote-host entry of *every* host touching it (views leave out
    # their own host)
    networks: dict[str, NetworkView] = field(default_factory=dict)
    routers: dict[str, RouterView] = field(default_factory=dict)  # without floating IPs
    security_groups: dict[str, SecurityGroupView] = field(default_factory=dict)
    # None: the set does not exist (a rule names an address group that is gone)
    address_sets: dict[AddressSetKey, AddressSetView | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # the newest earlier object of each part (to reuse); None once a newer revision exists
    previous: RevisionParts | None = field(default=None, repr=False)
    # the networks and routers of the revision before that the write between did not
    # change (``keep_unchanged``): taken into ``networks`` and ``routers`` once a view needs
    # them, so that only what a view of this revision held passes to the next
    unchanged_networks: dict[str, NetworkView] = field(default_factory=dict, repr=False)
    unchanged_routers: dict[str, RouterView] = field(default_factory=dict, repr=False)
    # groups and address sets held ready in the same way: of the revision before, or read
    # at this revision ahead of the views that will need them (``read_ahead``)
    unchanged_security_groups: dict[str, SecurityGroupView] = field(
        default_factory=dict, repr=False
    )
    unchanged_address_sets: dict[AddressSetKey, AddressSetView | None] = field(
        default_factory=dict, repr=False
    )
    # views of this revision that found groups missing (``read_ahead``)
    group_misses: int = field(default=0, repr=False)
    # per host, what its last view made of shared parts (shared by every revision's parts)
    host_parts: HostPartsCache = field(default_factory=HostPartsCache, repr=False)

    def keep_unchanged(self, following: RevisionParts, changed: ChangedParts) -> None:
        """Give ``following`` (the parts of a later revision) this revision's host MACs,
        networks, routers, groups and address sets that the writes between them did not
        change (host MACs: when read at this revision, every host's, none allocated).  Only
        those a view of this revision held: some host saw each, so no write could change it
        without telling that host, that is without a revision.  Networks and routers carried
        here from earlier revisions go on too: a network or router is in the views of the
        hosts touching or hosting it, and a write that changes those hosts names it
        (``Impact.changed_parts``), so one no write named since a view held it is still in
        that host's view.  (Groups and address sets are not: a port leaving a group takes
        it out of its host's view without naming it.)"""
        with self.lock:
            if not changed.host_macs and self.host_macs is not None:
                following.host_macs = self.host_macs
            following.unchanged_networks = {
                k: v for k, v in {**self.unchanged_networks, **self.networks}.items()
                if k not in changed.networks
            }
            following.unchanged_routers = {
                k: v for k, v in {**self.unchanged_routers, **self.routers}.items()
                if k not in changed.routers
            }
            if changed.firewall:
                return
            following.unchanged_security_groups = dict(self.security_groups)
            following.unchanged_address_sets = {
                k: v for k, v in self.address_sets.items()
                if v is not None and not (k[0] == "security_group" and k[1] in changed.member_sets)
            }

    def missing_networks(self, network_ids: set[str]) -> set[str]:
        """Of these networks, those to read (the unchanged ones kept from the revision
        before are taken in); with ``lock`` held."""
        return _take_unchanged(self.networks, self.unchanged_networks, network_ids)

    def missing_routers(self, router_ids: set[str]) -> set[str]:
        """Of these routers, those to read (as ``missing_networks``); with ``lock`` held."""
        return _take_unchanged(self.routers, self.unchanged_routers, router_ids)

    def missing_security_groups(self, group_ids: set[str]) -> set[str]:
        """Of these groups, those to read (as ``missing_networks``); with ``lock`` held."""
        return _take_unchanged(self.security_groups, self.unchanged_security_groups, group_ids)

    def missing_address_sets(self, keys: set[AddressSetKey]) -> set[AddressSetKey]:
        """Of these address sets, those to read (as ``missing_networks``); with ``lock``
        held."""
        return _take_unchanged(self.address_sets, self.unchanged_address_sets, keys)

    def read_ahead(self) -> tuple[set[str], set[AddressSetKey]]:
        """Count a view that found groups missing; at the ``READ_AHEAD_AFTER_MISSES``th of
        this revision (a write that woke many hosts, whose views need groups the few views
        of the revisions before did not hold), the groups and address sets that earlier
        revisions' views held and this one has not (at most ``READ_AHEAD_MOST`` of each),
        to read with the missing ones into ``unchanged_*``: the other hosts' views then
        find them in memory instead of reading each its own.  With ``lock`` held."""
        self.group_misses += 1
        if self.group_misses != READ_AHEAD_AFTER_MISSES or self.previous is None:
            return set(), set()
        have_groups = self.security_groups.keys() | self.unchanged_security_groups.keys()
        have_sets = self.address_sets.keys() | self.unchanged_address_sets.keys()
        groups = [g for g in self.previous.security_groups if g not in have_groups]
        sets = [k for k in self.previous.address_sets if k not in have_sets]
        return set(groups[-READ_AHEAD_MOST:]), set(sets[-READ_AHEAD_MOST:])

    def earlier_objects(self) -> RevisionParts:
        """The objects a newer revision may reuse: this revision's, else the newest earlier
        (those of deleted objects go once a kind holds ``MAX_EARLIER`` objects)."""
        before = self.previous or RevisionParts(self.revision)
        with self.lock:
            return RevisionParts(
                self.revision,
                host_macs=self.host_macs if self.host_macs is not None else before.host_macs,
                networks=_newest(before.networks, self.networks),
                routers=_newest(before.routers, self.routers),
                security_groups=_newest(before.security_groups, self.security_groups),
                address_sets=_newest(before.address_sets, self.address_sets),
            )


def _take_unchanged(parts: dict[K, V], unchanged: dict[K, V], ids: set[K]) -> set[K]:
    """``ids`` not in ``parts``, after moving those ``unchanged`` holds into ``parts``.
    (Steps over ``ids`` only: ``ids - parts.keys()`` would copy every key of the revision's
    parts, thousands, for each view.)"""
    missing = set()
    for key in ids:
        if key in parts:
            continue
        if key in unchanged:
            parts[key] = unchanged.pop(key)
        else:
            missing.add(key)
    return missing


def _newest(earlier: dict[K, V], current: dict[K, V]) -> dict[K, V]:
    """``current``'s objects, and ``earlier``'s of other keys unless that makes too many."""
    merged = {**earlier, **current}
    return merged if len(merged) <= MAX_EARLIER else dict(current)


@dataclass
class SharedViewParts:
    """The parts of the newest revision a view was built at (one per server process).

    A revision whose writes since the newest revision seen this process knows
    (``written``: what each may have changed, its own or from another process's notice)
    starts with that revision's parts that none of them changed; after a write not known,
    or a gap, the parts are all read again.  Which hosts' own rows the writes may have
    changed is kept apart, for any number of revisions (``OwnRowsLedger``)."""

    newest: RevisionParts | None = None  # the parts of the newest revision seen
    host_parts: HostPartsCache = field(default_factory=HostPartsCache)
    _written: OrderedDict[int, ChangedParts] = field(default_factory=OrderedDict)
    _own_rows: OwnRowsLedger = field(default_factory=OwnRowsLedger)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def written(self, revision: int, changed: ChangedParts) -> None:
        """``revision`` was committed (by this process or, as its notice says, another),
        and changed at most ``changed``."""
        with self._lock:
            self._written[revision] = changed
            while len(self._written) > WRITTEN_KEPT:
                self._written.popitem(last=False)
            self._own_rows.written(revision, changed.own_rows)

    def own_rows_kept(self, host: str, read_at: int, revision: int) -> bool:
        """Whether ``host``'s own rows read at ``read_at`` are its rows at ``revision``: this
        process knows the write of every revision between, and none of them may have
        changed them (``ChangedParts.own_rows``; ``OwnRowsLedger``)."""
        with self._lock:
            return self._own_rows.kept(host, read_at, revision)

    def at(self, revision: int) -> RevisionParts:
        """The parts of ``revision``: shared if it is the newest seen, private (built for
        one view, then dropped) if a newer one was seen already."""
        with self._lock:
            newest = self.newest
            if newest is not None and newest.revision == revision:
                return newest
            if newest is not None and newest.revision > revision:
                return RevisionParts(revision, host_parts=self.host_parts)
            parts = RevisionParts(revision, host_parts=self.host_parts)
            if newest is not None:
                parts.previous = newest.earlier_objects()
                changed = self._changed_between(newest.revision, revision)
                if changed is not None:
                    newest.keep_unchanged(parts, changed)
                newest.previous = None  # one set of objects to reuse, not a chain
            self.newest = parts
            return parts

    def _changed_between(self, after: int, upto: int) -> ChangedParts | None:
        """What the writes of the revisions in (``after``, ``upto``] may have changed
        together; None if one of them is not known (with ``_lock`` held)."""
        if not 0 < upto - after <= WRITTEN_KEPT:
            return None
        writes = [self._written.get(r) for r in range(after + 1, upto + 1)]
        known = [w for w in writes if w is not None]
        return merged_changes(known) if len(known) == len(writes) else None


def shared_forms() -> JsonableCache:
    """JSON forms kept for the parts that many answers hold as the very same object: a
    router (without floating IPs), a network's subnets and remote hosts, host MACs, security
    groups and address sets (a host's own networks and ports are converted each time)."""
    return JsonableCache(frozenset(
        {RouterView, SubnetView, RemoteHost, HostMac, SecurityGroupView, AddressSetView}
    ))

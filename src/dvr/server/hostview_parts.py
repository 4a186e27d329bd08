"""The parts of HostViews that many hosts share, built once per database revision.

A network every host is on, a router on many hosts, the host MACs, a security group and the
address sets its rules name: each is the same for every host that needs it (a network's
remote hosts leave the asking host out; a router's floating IPs depend on the host and are
not part of it), so the views built at one revision share one copy of each, built from the
first view's snapshot.  The revision moves with every write that changes any view, in the
same transaction (``notify.record_changes``), so parts read in a snapshot at revision R are
the parts of every snapshot at R; a newer revision starts an empty set of parts.

A new revision's parts reuse the previous revision's objects where they are equal
(``reuse``, ``interned``): what did not change stays the very same object, so comparing a
host's new view with the one it was served (the delta) mostly compares identities.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from dvr.model.hostview import (
    AddressSetView,
    HostMac,
    NetworkView,
    RouterView,
    SecurityGroupView,
)

AddressSetKey = tuple[str, str]  # (kind, id)
T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


def reuse(previous: T | None, new: T) -> T:
    """``previous`` if it equals ``new``, else ``new``."""
    return previous if previous is not None and previous == new else new


def interned(previous: Iterable[H], new: tuple[H, ...]) -> tuple[H, ...]:
    """``new`` with each item that ``previous`` holds an equal of replaced by that one."""
    pool = {item: item for item in previous}
    return tuple(pool.get(item, item) for item in new)


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
    # the parts of the revision before (objects to reuse); None once a newer one exists
    previous: RevisionParts | None = field(default=None, repr=False)


@dataclass
class SharedViewParts:
    """The parts of the newest revision a view was built at (one per server process)."""

    newest: RevisionParts | None = None  # the parts of the newest revision seen
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def at(self, revision: int) -> RevisionParts:
        """The parts of ``revision``: shared if it is the newest seen, private (built for
        one view, then dropped) if a newer one was seen already."""
        with self._lock:
            newest = self.newest
            if newest is not None and newest.revision == revision:
                return newest
            if newest is not None and newest.revision > revision:
                return RevisionParts(revision)
            if newest is not None:
                newest.previous = None  # keep one revision of objects to reuse, not a chain
            self.newest = RevisionParts(revision, previous=newest)
            return self.newest

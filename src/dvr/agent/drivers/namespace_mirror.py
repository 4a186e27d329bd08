"""A namespace as the Linux driver last read it, kept up to date by its notifications.

Reading a namespace over netlink (links, addresses, routes, rules, neighbors) costs tens of
milliseconds in Python; between two reconciles usually nothing changed in it, or only a
neighbor (a port came or went behind a router).  So the driver reads a namespace once,
then only drains its ``ChangeWatch``: neighbor notifications are replayed into the kept
reading (``caught_up``, pure), any other notification (a link, an address, a route, a
rule) makes the driver read the namespace again.  A kept reading equals a fresh one.

The driver's own namespace holds devices the agent does not manage (every VIF a
hypervisor plugs, for one) besides the bridge ends of its links: only the links it asks
for are kept, and a link notification that names none of them (``names_kept_link``)
leaves the kept ones as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from dvr.agent.desired.state import Address, Route, Rule
from dvr.agent.drivers.netlink_watch import LinkNotice
from dvr.agent.drivers.rtnl_wire import RTM_DELLINK, RTM_DELNEIGH, RTM_NEWLINK, RTM_NEWNEIGH
from dvr.agent.reconcile.observed import ObservedLink, ObservedNeighbor

# a neighbor message -> what a dump reports for it (None: a dump leaves it out)
ReadNeighbor = Callable[[object, Mapping[int, str]], ObservedNeighbor | None]


@dataclass(frozen=True)
class SeenNamespace:
    """One reading of a namespace (sysctls apart: they send no notification and are read
    every time), with its interfaces' names by index (what notifications name)."""

    names: Mapping[int, str]
    links: tuple[ObservedLink, ...]
    addresses: tuple[Address, ...]
    routes: tuple[Route, ...]
    rules: tuple[Rule, ...]
    neighbors: tuple[ObservedNeighbor, ...]


def caught_up(seen: SeenNamespace, messages: Iterable, read_neighbor: ReadNeighbor,
              ) -> SeenNamespace | None:
    """``seen`` after ``messages`` (rtnetlink notifications, oldest first): neighbors added,
    changed or deleted; None when a message says something else changed (or names an
    interface ``seen`` does not know): the namespace must be read again."""
    neighbors: dict[tuple[str, str], ObservedNeighbor] | None = None
    for message in messages:
        kind = message["header"]["type"]
        if kind not in (RTM_NEWNEIGH, RTM_DELNEIGH):
            return None
        device = seen.names.get(message["ifindex"])
        if device is None:
            return None
        ip = message.get_attr("NDA_DST")
        if ip is None:
            continue  # not reported by a dump either
        if neighbors is None:
            neighbors = {(n.device, n.ip_address): n for n in seen.neighbors}
        found = read_neighbor(message, seen.names) if kind == RTM_NEWNEIGH else None
        if found is None:
            neighbors.pop((device, ip), None)
        else:
            neighbors[(device, ip)] = found
    if neighbors is None:
        return seen
    return replace(seen, neighbors=tuple(sorted(neighbors.values())))


@dataclass(frozen=True)
class KeptHostLinks:
    """The links of the driver's own namespace named ``wanted`` (sorted), as last read, and
    their interface numbers."""

    wanted: frozenset[str]
    indexes: frozenset[int]
    links: tuple[ObservedLink, ...]


def names_kept_link(notices: Iterable[LinkNotice], names: frozenset[str],
                    indexes: frozenset[int]) -> bool:
    """Whether any of ``notices`` (rtnetlink notifications) may concern a kept link: one
    named ``names`` or numbered ``indexes`` (a rename keeps the number), or a notification
    that is not of a link with a name (it cannot be told apart)."""
    for notice in notices:
        if notice.kind not in (RTM_NEWLINK, RTM_DELLINK):
            return True
        if notice.name is None or notice.name in names or notice.index in indexes:
            return True
    return False

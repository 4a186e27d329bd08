"""What the drivers report back: the dataplane as it actually is, as frozen data.

Also what the agent *owns*, which is policy and lives here (``Ownership``), not in the
drivers: namespaces named ``qrouter-``/``snat-``/``fip-``, OVS ports marked with the
managed external id, and every flow on the bridges of the desired state.

Drivers only *describe* (they decide nothing); the reconciler compares these values with a
``DesiredState``.  Where a desired type already says exactly what is observed (``Address``,
``Route``, ``Rule``) it is reused, so the diff is plain set arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dvr.agent.desired.state import Address, NatRule, Route, Rule

NEIGHBOR_PERMANENT = "permanent"


@dataclass(frozen=True, order=True)
class ObservedFlow:
    """One installed OpenFlow entry (``ovs-ofctl dump-flows``), identified by its cookie.

    Read from a flow monitor (the OVS driver's mirror) rather than a dump, ``priority`` is
    None (the monitor does not tell) and the counters are 0: the planner reads only the
    cookie, the table and the ports."""

    cookie: int
    table: int
    priority: int | None
    n_packets: int = 0
    n_bytes: int = 0
    text: str = ""  # the match and actions as the switch prints them (for people)
    # the ports the flow names (in_port, outputs) as the switch prints them, unquoted: the
    # port's name, or its number once no port has it; None when not reported
    ports: tuple[str, ...] | None = None


class MirroredFlows(Protocol):
    """A bridge's flows as a flow mirror held them when observed, indexed by cookie, and
    what changed since an earlier observation of the same mirror (the incremental plan's
    input, ``plan.py``).  Equal to the observation's ``flows``, only indexed."""

    def installed(self, cookie: int) -> tuple[ObservedFlow, ...]:
        """The installed flows that carry ``cookie`` (sorted)."""
        ...

    def changed_since(self, earlier: MirroredFlows) -> frozenset[int] | None:
        """The cookies of every flow added, deleted or modified between ``earlier`` and
        this observation; None when the mirror cannot tell (another mirror, another port
        naming, a history it no longer keeps)."""
        ...


@dataclass(frozen=True, order=True)
class ObservedPort:
    """A Port with its (single) Interface.  ``external_ids`` are the Interface's."""

    name: str
    type: str = ""
    options: tuple[tuple[str, str], ...] = ()
    tag: int | None = None
    external_ids: tuple[tuple[str, str], ...] = ()
    ofport: int | None = None  # None: not assigned (yet); -1: the switch failed to open it
    error: str | None = None

    def external_id(self, key: str) -> str | None:
        return dict(self.external_ids).get(key)


@dataclass(frozen=True)
class ObservedBridge:
    """A bridge, its ports (without the bridge's own internal port) and its flows."""

    name: str
    datapath_type: str = ""
    fail_mode: str = ""
    external_ids: tuple[tuple[str, str], ...] = ()
    ports: tuple[ObservedPort, ...] = ()
    flows: tuple[ObservedFlow, ...] = ()
    # the same flows from a flow mirror, when they came from one (None: a dump)
    mirror: MirroredFlows | None = field(default=None, compare=False, repr=False)

    def port(self, name: str) -> ObservedPort | None:
        return next((p for p in self.ports if p.name == name), None)


@dataclass(frozen=True, order=True)
class ObservedLink:
    name: str
    kind: str  # "veth", "dummy", "" (unknown), ...
    mac_address: str = ""
    mtu: int = 0
    up: bool = False
    tx_checksumming: bool | None = None  # None: not known


@dataclass(frozen=True, order=True)
class ObservedNeighbor:
    device: str
    ip_address: str
    mac_address: str | None
    state: str  # "permanent", "reachable", "stale", "failed", ...

    @property
    def is_permanent(self) -> bool:
        return self.state == NEIGHBOR_PERMANENT


@dataclass(frozen=True)
class ObservedNamespace:
    """A network namespace: its links (without ``lo``), addresses, routes, rules, neighbors.

    Routes exclude those the kernel makes itself (connected and local routes); rules
    exclude the kernel's three default rules; addresses exclude IPv6 link-local ones.
    ``sysctls`` holds only the keys the observer was asked for.  ``nat`` is the content of
    its ``ip dvr`` nftables table: the typed rules read back, ``()`` when there is none (or
    it is empty), None when it holds something else (to be replaced) or was not read.
    """

    name: str
    links: tuple[ObservedLink, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    neighbors: tuple[ObservedNeighbor, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    nat: tuple[NatRule, ...] | None = ()

    def link(self, name: str) -> ObservedLink | None:
        return next((link for link in self.links if link.name == name), None)

    def sysctl(self, key: str) -> str | None:
        return dict(self.sysctls).get(key)


@dataclass(frozen=True)
class ObservedLinux:
    """The owned namespaces and the named links of the host's own namespace."""

    namespaces: tuple[ObservedNamespace, ...] = ()
    host_links: tuple[ObservedLink, ...] = ()


IFACE_ID = "iface-id"


@dataclass(frozen=True)
class Ownership:
    """Which objects the agent may remove when they are no longer desired."""

    namespace_prefixes: tuple[str, ...] = ("qrouter-", "snat-", "fip-")
    managed_port_key: str = "dvr-managed"  # in the interface's external_ids
    managed_port_value: str = "true"

    def owns_namespace(self, name: str) -> bool:
        return name.startswith(self.namespace_prefixes)

    def owns_port(self, port: ObservedPort) -> bool:
        return port.external_id(self.managed_port_key) == self.managed_port_value

    @property
    def managed_marker(self) -> tuple[str, str]:
        return (self.managed_port_key, self.managed_port_value)


DEFAULT_OWNERSHIP = Ownership()


@dataclass(frozen=True)
class ObservedState:
    bridges: tuple[ObservedBridge, ...] = ()
    namespaces: tuple[ObservedNamespace, ...] = ()
    host_links: tuple[ObservedLink, ...] = ()

    def bridge(self, name: str) -> ObservedBridge | None:
        return next((b for b in self.bridges if b.name == name), None)

    def namespace(self, name: str) -> ObservedNamespace | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def host_link(self, name: str) -> ObservedLink | None:
        return next((link for link in self.host_links if link.name == name), None)

    def find_port(self, name: str) -> tuple[str, ObservedPort] | None:
        """(bridge name, port) of the port called ``name`` on any observed bridge."""
        for bridge in self.bridges:
            port = bridge.port(name)
            if port is not None:
                return bridge.name, port
        return None

    def vif_ports(self, bridge: str = "br-int") -> dict[str, str]:
        """iface-id -> port name of the ports on ``bridge`` that carry an iface-id."""
        observed = self.bridge(bridge)
        if observed is None:
            return {}
        return {
            iface_id: port.name
            for port in observed.ports
            if (iface_id := port.external_id(IFACE_ID)) is not None
        }

"""DesiredState: what one host's dataplane should hold, as frozen data.

Produced by the pure functions of ``dvr.agent.desired`` from a HostView (plus the little
observed input they need: local VLANs already in use and which VIF ports are plugged).
Consumed by the reconciler (diff against what OVS and the kernel hold), the drivers
(apply a plan), the tracer (walk a packet through it) and ``dvr flows``.

Flows are typed (``dvr.agent.desired.openflow``) and name OVS ports by *name*: the OVS
driver binds names to OpenFlow port numbers, so desired state needs none.

Every flow carries an ``owner`` ("<kind>:<id>", e.g. ``hostmac:compute-2``,
``subnet:<uuid>``, ``port:<uuid>``, ``network:<uuid>``, ``bridge:br-tun``) and a 64-bit cookie
derived from it: the top 4 bits the owner kind, the next 28 bits a hash of the owner, the
low 32 bits a hash of the flow's content.  So a cookie names its owner
(``cookie=0x.../0xffffffff00000000`` selects all of an owner's flows), and a flow whose
content changes gets a new cookie: the reconciler diffs bridges by cookie alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from dvr.agent.desired.openflow import (
    Action,
    Match,
    flow_ports,
    render_actions,
    render_match,
)

# owner kind -> 4-bit code stored in the cookie's top nibble
OWNER_KIND_CODES: dict[str, int] = {
    "bridge": 0x1,
    "hostmac": 0x2,
    "network": 0x3,
    "subnet": 0x4,
    "port": 0x5,
    "router": 0x6,
    "tunnel": 0x7,
    "fip": 0x8,
    "snat": 0x9,
    "fastpath": 0xB,
    "firewall": 0xC,
}
OWNER_COOKIE_MASK = 0xFFFFFFFF00000000


def _hash(text: str, bits: int) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << bits) - 1)


def owner_cookie_prefix(owner: str) -> int:
    """The owner part (top 32 bits) of every cookie that ``owner``'s flows carry."""
    kind, _, _ = owner.partition(":")
    code = OWNER_KIND_CODES.get(kind, 0xF)
    return (code << 60) | (_hash(owner, 28) << 32)


class _FlowFields(NamedTuple):
    table: int
    priority: int
    match: Match
    actions: tuple[Action, ...]
    owner: str  # "<kind>:<id>"


class Flow(_FlowFields):
    """One OpenFlow entry: typed match and actions (``dvr.agent.desired.openflow``).

    Immutable: the fields of a NamedTuple (desired state builds ~7,000 Flows per host in a
    full computation, and a tuple is several times cheaper to build than a frozen
    dataclass).  Equal flows have equal fields.  The rendered content, the cookie and the
    port names are computed once per Flow, when first asked for, and kept in the
    instance's ``__dict__`` (desired state is built and compared far more often than it is
    installed).  Flows sort by (table, priority, content, owner).
    """

    @property
    def match_text(self) -> str:
        """The match as ``ovs-ofctl`` text ("" for match-all), for people and logs."""
        return render_match(self.match)

    @property
    def actions_text(self) -> str:
        """The actions as ``ovs-ofctl`` text, for people and logs."""
        return render_actions(self.actions)

    @property
    def content(self) -> str:
        """Match and actions as ``ovs-ofctl`` text (canonical: one rendering per value)."""
        found = getattr(self, "_content", None)
        if found is None:
            found = self._content = (
                f"{render_match(self.match)} actions={render_actions(self.actions)}")
        return found

    @property
    def cookie(self) -> int:
        found = getattr(self, "_cookie", None)
        if found is None:
            found = self._cookie = owner_cookie_prefix(self.owner) | _hash(
                f"{self.table}|{self.priority}|{self.content}", 32)
        return found

    @property
    def ports(self) -> frozenset[str]:
        """The port names the flow refers to (``in_port`` and outputs)."""
        found = getattr(self, "_ports", None)
        if found is None:
            found = self._ports = flow_ports(self.match, self.actions)
        return found

    def __hash__(self) -> int:
        # consistent with equality (equal flows have equal fields) and cheap: the match is
        # a tuple of atoms hashed in C; the actions (values with hashes written in Python)
        # are left out, they rarely tell two flows of one owner and match apart
        return hash((self.table, self.priority, self.match, self.owner))

    def __getstate__(self) -> None:
        """Fields only: pickles and copies recompute the caches where they are needed."""
        return None

    def sort_key(self) -> tuple[int, int, str, str]:
        """What flows sort by (``sorted(flows, key=Flow.sort_key)``: one call per flow)."""
        return (self.table, self.priority, self.content, self.owner)

    def __lt__(self, other: Flow) -> bool:
        return self.sort_key() < other.sort_key()

    def __le__(self, other: Flow) -> bool:
        return self.sort_key() <= other.sort_key()

    def __gt__(self, other: Flow) -> bool:
        return self.sort_key() > other.sort_key()

    def __ge__(self, other: Flow) -> bool:
        return self.sort_key() >= other.sort_key()




@dataclass(frozen=True, order=True)
class OvsPort:
    """A port on a bridge.

    ``managed`` ports are created and deleted by the agent (patch, vxlan, the bridge end of
    router veths).  Unmanaged ones (VM taps plugged by the compute service / the lab) are
    only given their ``tag``; the agent never creates or deletes them.
    """

    name: str
    type: str = ""  # "" (system/veth), "internal", "patch", "vxlan", "tap"
    options: tuple[tuple[str, str], ...] = ()  # e.g. (("peer", "patch-int"),)
    tag: int | None = None  # local VLAN (access port) on br-int
    external_ids: tuple[tuple[str, str], ...] = ()
    managed: bool = True


@dataclass(frozen=True)
class BridgeState:
    name: str
    ports: tuple[OvsPort, ...]  # sorted by name
    flows: frozenset[Flow]
    datapath_type: str = "netdev"
    fail_mode: str = "secure"
    external_ids: tuple[tuple[str, str], ...] = ()

    def port(self, name: str) -> OvsPort | None:
        return next((p for p in self.ports if p.name == name), None)

    def flows_owned_by(self, owner: str) -> frozenset[Flow]:
        """Exactly the flows that removing ``owner`` removes from this bridge."""
        return frozenset(f for f in self.flows if f.owner == owner)


@dataclass(frozen=True, order=True)
class VethLink:
    """A veth pair: ``name`` inside the namespace, ``peer`` as a port on ``bridge``."""

    name: str
    peer: str
    bridge: str
    mac_address: str
    mtu: int
    tag: int | None = None
    external_ids: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, order=True)
class PeerLink:
    """A veth pair between two namespaces: ``name`` in the namespace that declares it,
    ``peer`` in ``peer_namespace`` (the ``rfp-``/``fpr-`` pair between ``qrouter-<id>`` and
    ``fip-<external network id>``).  The kernel picks the MACs.  The peer namespace declares
    the peer's addresses and routes; the pair itself is declared once, here."""

    name: str
    peer: str
    peer_namespace: str
    mtu: int = 1500


@dataclass(frozen=True, order=True)
class Address:
    device: str
    cidr: str  # "192.0.2.1/24" (interface address with prefix)


@dataclass(frozen=True, order=True)
class Route:
    destination: str  # "198.51.100.0/24" or "default"
    device: str
    via: str | None = None
    table: int = 254  # main
    scope: str = "universe"  # or "link"


@dataclass(frozen=True, order=True)
class Rule:
    priority: int
    table: int
    source: str | None = None  # "192.0.2.0/24"
    iif: str | None = None


@dataclass(frozen=True, order=True)
class Neighbor:
    device: str
    ip_address: str
    mac_address: str  # installed PERMANENT


NatChain = Literal["prerouting", "postrouting", "output"]


@dataclass(frozen=True)
class NatRule:
    """One rule of the namespace's ``dvr`` nftables table (``ip`` family), as typed fields.

    It matches on the input/output interface name and the source/destination address or
    prefix (``None``: any) and rewrites the source (``snat_to``, in ``postrouting``) or the
    destination (``dnat_to``, in ``prerouting``/``output``).  Rendered once, to nftables
    JSON, by ``dvr.agent.desired.nftables``.
    """

    chain: NatChain
    owner: str  # "<kind>:<id>", kept as the rule's comment
    iif: str | None = None
    oif: str | None = None
    saddr: str | None = None  # "192.0.2.5" or "192.0.2.0/24"
    daddr: str | None = None
    snat_to: str | None = None
    dnat_to: str | None = None

    def __post_init__(self) -> None:
        if (self.snat_to is None) == (self.dnat_to is None):
            raise ValueError("a NAT rule rewrites either the source or the destination")
        if self.snat_to is not None and self.chain != "postrouting":
            raise ValueError("SNAT belongs in the postrouting chain")
        if self.dnat_to is not None and self.chain == "postrouting":
            raise ValueError("DNAT belongs in the prerouting or output chain")


@dataclass(frozen=True)
class NamespaceState:
    """A router-side namespace and everything in it.

    Kinds (owner in brackets):

    - ``qrouter-<router id>`` (``router:<id>``): one ``qr-`` link per interface.  A
      distributed router with a gateway adds, per internal subnet with an SNAT port, a rule
      ``from <subnet> lookup T`` (priority = table = the subnet's gateway IP as an integer,
      after main) and ``default via <SNAT port IP> dev qr-..`` in table T; with floating IPs
      on this host a ``rfp-`` ``PeerLink`` into ``fip-<net>`` (link-local /31), rules
      ``from <fixed IP> lookup 16`` (priority ``FIP_RULE_PRIORITY``), ``default via <fpr IP>``
      in table 16 and NAT: prerouting ``iif rfp- daddr FIP -> dnat fixed``, postrouting
      ``oif rfp- saddr fixed -> snat FIP``.  A legacy router (on its central host only) adds
      the ``qg-`` link, the default route in main, its floating IPs as /32 on ``qg-`` and
      NAT: DNAT/SNAT per floating IP, then SNAT to the gateway IP on ``qg-``.
    - ``snat-<router id>`` (``snat:<id>``, on the router's SNAT host): one ``sg-`` link per
      SNAT port, the ``qg-`` link, default route via the external subnet's gateway, PERMANENT
      neighbors of the subnets' ports, NAT postrouting ``oif qg- -> snat <gateway IP>``.
    - ``fip-<external network id>`` (``fip:<net id>``, on a host with floating IPs): the
      ``fg-`` link, default route via the external gateway, ``proxy_arp`` on ``fg-``; per
      router the ``fpr-`` end of its pair (its /31 address) and per floating IP a route
      ``<FIP>/32 via <rfp IP> dev fpr-..``.

    ``links`` are veths whose other end is a port of a bridge; ``peer_links`` are veths
    whose other end is in another namespace.  ``nat`` is the namespace's ``ip dvr``
    nftables table, in order (see ``dvr.agent.desired.nftables``).  ``announced`` are the
    (device, IPv4 address) pairs the namespace answers ARP for on an external network (its
    own gateway addresses, floating IPs by proxy ARP): whenever one is (re)configured a
    gratuitous ARP tells the segment, so that a floating IP that moves or comes back is
    reached at its new MAC at once.
    """

    name: str
    owner: str  # "router:<id>", "snat:<router id>", "fip:<external network id>"
    links: tuple[VethLink, ...] = ()
    addresses: tuple[Address, ...] = ()
    routes: tuple[Route, ...] = ()
    rules: tuple[Rule, ...] = ()
    neighbors: tuple[Neighbor, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = (("net.ipv4.ip_forward", "1"),)
    nat: tuple[NatRule, ...] = ()
    peer_links: tuple[PeerLink, ...] = ()
    announced: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DesiredState:
    host: str
    revision: int
    bridges: tuple[BridgeState, ...]  # br-int, br-tun, then the mapped bridges (br-ex)
    namespaces: tuple[NamespaceState, ...]  # sorted by name
    local_vlans: tuple[tuple[str, int], ...] = field(default=())  # (network id, vlan)
    # the agent's own bridges the host must not have (``DesiredConfig.retired_bridges``)
    retired_bridges: tuple[str, ...] = ()

    def bridge(self, name: str) -> BridgeState | None:
        return next((b for b in self.bridges if b.name == name), None)

    def namespace(self, name: str) -> NamespaceState | None:
        return next((n for n in self.namespaces if n.name == name), None)

    def local_vlan(self, network_id: str) -> int | None:
        return next((vlan for net, vlan in self.local_vlans if net == network_id), None)

"""What a packet trace is made of: packets, steps (a small sum type), verdicts.

A trace is a flat sequence of steps, each one place where something happened to the
packet.  Every step kind is a frozen dataclass with a ``kind`` tag; ``Step`` is their union.
North/south paths use the same kinds: a ``NamespaceStep`` in ``qrouter-``, ``snat-`` or
``fip-`` (policy rule, route, NAT rules and conntrack translations, how the next hop's MAC
was found), and a ``SegmentStep`` when the frame crosses an external (physical) segment
between a host's external bridge and an outside host or another host.

Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from dvr.agent.desired.state import Flow, NatRule, Neighbor, Route, Rule
from dvr.trace import ofsim

Proto = Literal["icmp", "tcp", "udp"]
PROTOCOLS: tuple[Proto, ...] = ("icmp", "tcp", "udp")
IP_PROTO_NUMBERS: dict[str, int] = {"icmp": 1, "tcp": 6, "udp": 17}
DEFAULT_TTL = 64
EPHEMERAL_PORT = 49152  # source port of a traced TCP/UDP request (fixed: traces are stable)
ICMP_ECHO_REQUEST = 8
ICMP_ECHO_REPLY = 0


# --- the packet ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PacketView:
    """The headers of the traced packet at one point of its path.

    ``dl_vlan`` None = untagged; ``tun_id`` is tunnel metadata (set while the frame is in
    br-tun on its way to a tunnel, or just received from one).
    """

    dl_src: str
    dl_dst: str
    nw_src: str
    nw_dst: str
    proto: Proto = "icmp"
    nw_ttl: int = DEFAULT_TTL
    dl_vlan: int | None = None
    tp_src: int | None = None
    tp_dst: int | None = None
    icmp_type: int | None = ICMP_ECHO_REQUEST
    tun_id: int | None = None

    def to_ofsim(self) -> ofsim.Packet:
        return ofsim.Packet(
            dl_src=self.dl_src, dl_dst=self.dl_dst, dl_type=ofsim.ETH_TYPE_IP,
            dl_vlan=self.dl_vlan, nw_src=self.nw_src, nw_dst=self.nw_dst,
            nw_proto=IP_PROTO_NUMBERS[self.proto],
            icmp_type=self.icmp_type if self.proto == "icmp" else None, tun_id=self.tun_id,
            nw_ttl=self.nw_ttl, tp_src=self.tp_src, tp_dst=self.tp_dst,
        )

    def with_ofsim(self, packet: ofsim.Packet) -> PacketView:
        """These headers after the OpenFlow actions that turned them into ``packet``."""
        return replace(self, dl_src=packet.dl_src, dl_dst=packet.dl_dst,
                       dl_vlan=packet.dl_vlan, tun_id=packet.tun_id,
                       nw_ttl=self.nw_ttl if packet.nw_ttl is None else packet.nw_ttl)

    def reply(self) -> PacketView:
        """The answer a destination sends back (addresses and ports swapped)."""
        return PacketView(
            dl_src=self.dl_dst, dl_dst=self.dl_src, nw_src=self.nw_dst, nw_dst=self.nw_src,
            proto=self.proto, nw_ttl=DEFAULT_TTL, tp_src=self.tp_dst, tp_dst=self.tp_src,
            icmp_type=ICMP_ECHO_REPLY if self.proto == "icmp" else None,
        )

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "dl_src": self.dl_src, "dl_dst": self.dl_dst, "dl_vlan": self.dl_vlan,
            "nw_src": self.nw_src, "nw_dst": self.nw_dst, "proto": self.proto,
            "nw_ttl": self.nw_ttl, "tun_id": self.tun_id,
        }
        if self.proto == "icmp":
            data["icmp_type"] = self.icmp_type
        else:
            data["tp_src"], data["tp_dst"] = self.tp_src, self.tp_dst
        return data


# --- verification of one OpenFlow step (filled in by ``verify``) --------------------------


@dataclass(frozen=True)
class RealHit:
    """One table lookup as the real switch reported it (``ovs-appctl ofproto/trace``)."""

    bridge: str
    table: int
    match: str
    priority: int | None  # None on a miss
    cookie: int | None  # None on a miss (cookie 0 is printed as no cookie)
    actions: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # "-> ..." and ">> ..." lines under the lookup
    miss: bool = False

    def describe(self) -> str:
        if self.miss:
            return f"{self.bridge} table {self.table}: no flow matched"
        cookie = f"{self.cookie:#x}" if self.cookie is not None else "0"
        actions = ",".join(self.actions) or "(none)"
        return (f"{self.bridge} table {self.table}: priority {self.priority} "
                f"{self.match or '(any)'} cookie {cookie} => {actions}")


CheckStatus = Literal["agree", "disagree", "missing", "error"]


@dataclass(frozen=True)
class StepCheck:
    """The real switch's opinion of one computed OpenFlow step."""

    status: CheckStatus
    detail: str = ""
    real: RealHit | None = None

    @property
    def agrees(self) -> bool:
        return self.status == "agree"


# --- steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendStep:
    """The source VM puts the packet on its NIC (its L2 decision: gateway or neighbour)."""

    host: str
    port_id: str
    device: str  # the VM's name (the port's device_id, or its id)
    ovs_port: str  # the VM's tap on the integration bridge
    why: str  # "to its gateway 10.0.0.1 (...)" / "same subnet: straight to ..."
    packet: PacketView
    kind: Literal["send"] = "send"


@dataclass(frozen=True)
class OpenFlowStep:
    """One table lookup on one bridge: the matching flow and the packet after its actions.

    ``flow`` is None on a table miss.  ``switch_pass`` numbers the passes through a host's
    switch (one ingress port, followed across patch ports): each pass is one
    ``ofproto/trace`` for ``--verify``.
    """

    host: str
    bridge: str
    table: int
    in_port: str
    flow: Flow | None
    packet_in: PacketView
    packet: PacketView
    switch_pass: int
    note: str = ""  # "NORMAL vlan 2 -> patch-tun", "patch patch-tun -> br-tun:patch-int"...
    check: StepCheck | None = None
    # a conntrack lookup that resumes the pipeline: the state it assumed ("trk,est,rpl")
    # and the ct_label the connections of this pass were assumed to carry (all zones')
    ct_lookup: tuple[str, int] | None = None

    @property
    def priority(self) -> int | None:
        return None if self.flow is None else self.flow.priority

    @property
    def match(self) -> str:
        """The flow's match as ``ovs-ofctl`` text (for people)."""
        return "" if self.flow is None else self.flow.match_text

    @property
    def actions(self) -> str:
        """The flow's actions as ``ovs-ofctl`` text (for people)."""
        return "" if self.flow is None else self.flow.actions_text

    @property
    def owner(self) -> str:
        return "" if self.flow is None else self.flow.owner

    @property
    def cookie(self) -> int | None:
        return None if self.flow is None else self.flow.cookie

    kind: Literal["openflow"] = "openflow"


@dataclass(frozen=True)
class NamespaceCheck:
    """The kernel's opinion of one computed namespace step (``--verify``)."""

    status: CheckStatus
    detail: str = ""

    @property
    def agrees(self) -> bool:
        return self.status == "agree"


@dataclass(frozen=True)
class NamespaceStep:
    """Routing in a namespace (``qrouter-<id>``, ``snat-<router id>``, ``fip-<network id>``).

    ``rule`` is the policy rule that chose the routing table (None: no rule, the main
    table), ``route`` the route used (connected subnets appear as link-scope routes),
    ``neighbor`` the neighbour entry that gave the next hop's MAC and ``resolved_by`` how
    it was found ("PERMANENT", or who answered ARP: the host itself, a proxy-ARP device,
    the peer of a namespace-to-namespace veth).  ``nat`` are the NAT rules that rewrote the
    packet (prerouting DNAT, postrouting SNAT) and ``conntrack`` the translations undone
    for a reply of a translated connection.  ``routed`` is the packet as the routing
    decision saw it (after prerouting NAT).
    """

    host: str
    namespace: str
    owner: str  # "router:<id>"
    in_device: str
    out_device: str
    rule: Rule | None
    route: Route
    nexthop: str
    neighbor: Neighbor
    packet_in: PacketView
    packet: PacketView
    nat: tuple[NatRule, ...] = ()
    resolved_by: str = "PERMANENT"
    conntrack: tuple[str, ...] = ()
    routed: PacketView | None = None
    check: NamespaceCheck | None = None
    kind: Literal["namespace"] = "namespace"

    @property
    def decision_packet(self) -> PacketView:
        """The headers the routing decision used (after prerouting NAT)."""
        return self.routed if self.routed is not None else self.packet_in


@dataclass(frozen=True)
class SegmentStep:
    """The frame crosses an external (physical) segment.

    From ``from_host`` (a host's external bridge uplink ``port``, or an outside host) to
    ``to_host`` (the outside host, or the host whose namespace device has the frame's
    destination MAC); ``station`` names who owns that MAC and why.
    """

    from_host: str
    to_host: str
    bridge: str  # the external bridge on the cloud host's side (br-ex)
    port: str  # its uplink port
    station: str
    packet: PacketView
    kind: Literal["segment"] = "segment"


@dataclass(frozen=True)
class TunnelStep:
    """The frame crosses the underlay: VXLAN from one host's tunnel IP to another's."""

    from_host: str
    to_host: str | None  # None: no known host has that tunnel IP
    local_ip: str
    remote_ip: str
    vni: int
    bridge: str
    port: str  # the vxlan port on the sender's br-tun
    packet: PacketView  # the inner frame
    also_flooded_to: tuple[str, ...] = ()  # other copies (remote IPs) of a flooded frame
    kind: Literal["tunnel"] = "tunnel"


@dataclass(frozen=True)
class DeliveryStep:
    """The packet leaves the switch on the destination's port (or reaches the router)."""

    host: str
    bridge: str
    ovs_port: str
    port_id: str
    device: str
    packet: PacketView
    kind: Literal["delivery"] = "delivery"


@dataclass(frozen=True)
class DropStep:
    """The packet goes no further: where, and why."""

    host: str
    place: str  # "br-tun table 22", "qrouter-<id>", "source VM", ...
    reason: str
    bridge: str | None = None
    table: int | None = None
    flow: Flow | None = None
    kind: Literal["drop"] = "drop"


Step = (SendStep | OpenFlowStep | NamespaceStep | TunnelStep | SegmentStep | DeliveryStep
        | DropStep)


# --- endpoints, verdicts, traces ------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A resolved end of the path."""

    ip: str
    port_id: str | None = None
    device: str | None = None  # VM name
    mac: str | None = None
    host: str | None = None
    network_id: str | None = None
    subnet_id: str | None = None
    external: bool = False  # a host on an external segment (not a cloud port)

    def label(self) -> str:
        name = self.device or self.port_id
        return f"{name} ({self.ip})" if name else self.ip


@dataclass(frozen=True)
class Verdict:
    delivered: bool
    host: str | None
    where: str  # the port / namespace / place
    reason: str  # "" when delivered
    summary: str

    def to_dict(self) -> dict[str, object]:
        return {"delivered": self.delivered, "host": self.host, "where": self.where,
                "reason": self.reason, "summary": self.summary}


@dataclass(frozen=True)
class Trace:
    """One direction of a traced conversation; ``reply`` holds the answer's path."""

    direction: Literal["forward", "reply"]
    source: Endpoint | None
    destination: Endpoint | None
    steps: tuple[Step, ...]
    verdict: Verdict
    reply: Trace | None = None
    verified: bool = False

    @property
    def delivered(self) -> bool:
        return self.verdict.delivered

    def openflow_steps(self) -> tuple[OpenFlowStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, OpenFlowStep))

    def path(self) -> tuple[tuple[str, str, int], ...]:
        """(host, bridge, table) of every OpenFlow step, in order."""
        return tuple((s.host, s.bridge, s.table) for s in self.openflow_steps())

    def namespace_steps(self) -> tuple[NamespaceStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, NamespaceStep))

    def checked(self, *statuses: CheckStatus) -> tuple[OpenFlowStep, ...]:
        """OpenFlow steps (this direction, then the reply) whose check has a given status."""
        own = tuple(s for s in self.openflow_steps()
                    if s.check is not None and s.check.status in statuses)
        return own + (self.reply.checked(*statuses) if self.reply is not None else ())

    def checked_namespaces(self, *statuses: CheckStatus) -> tuple[NamespaceStep, ...]:
        """Namespace steps (this direction, then the reply) whose check has a given status."""
        own = tuple(s for s in self.namespace_steps()
                    if s.check is not None and s.check.status in statuses)
        return own + (self.reply.checked_namespaces(*statuses)
                      if self.reply is not None else ())

    def disagreements(self) -> tuple[OpenFlowStep | NamespaceStep, ...]:
        """Steps where the real switch or kernel disagreed (this direction and the reply)."""
        return self.checked("disagree", "missing") + self.checked_namespaces("disagree",
                                                                               "missing")

    def unverified(self) -> tuple[OpenFlowStep | NamespaceStep, ...]:
        """Steps the real switch or kernel could not be asked about."""
        return self.checked("error") + self.checked_namespaces("error")

    def with_steps(self, steps: tuple[Step, ...], verified: bool) -> Trace:
        return replace(self, steps=steps, verified=verified)


@dataclass(frozen=True)
class ExternalHost:
    """A host on an external segment that is not a cloud object (the lab's ``outside``).

    ``mac`` None: unknown (the tracer then uses a placeholder for it)."""

    name: str
    ip: str
    mac: str | None = None


@dataclass(frozen=True)
class TraceRequest:
    """What to trace.

    ``source``: a VM name (its port's ``device_id``), a port id, the name of one of
    ``external_hosts`` or an IP address on an external subnet.  ``destination``: a VM
    name, a port id, an external host's name or an IP address.
    ``source_host``/``destination_host`` are optional hints (where to look first).
    ``with_reply``: once delivered, trace the answer too.  ``external_hosts``: hosts on
    external segments that are not cloud objects (the lab's ``outside``).  ``conntrack``:
    the connection state the firewalls' conntrack lookups find (``new``: the first packet;
    ``established``: a later one of a connection the rules admitted); the reply is always
    traced as established.
    """

    source: str
    destination: str
    proto: Proto = "icmp"
    dport: int | None = None
    with_reply: bool = True
    source_host: str | None = None
    destination_host: str | None = None
    external_hosts: tuple[ExternalHost, ...] = ()
    conntrack: str = ofsim.CT_NEW

    def __post_init__(self) -> None:
        if self.conntrack not in (ofsim.CT_NEW, ofsim.CT_ESTABLISHED):
            raise ValueError(f"conntrack must be new or established, not {self.conntrack!r}")
        if self.proto not in PROTOCOLS:
            raise ValueError(f"proto must be one of {', '.join(PROTOCOLS)}, not {self.proto!r}")
        if self.dport is not None and not 0 <= self.dport <= 65535:
            raise ValueError(f"dport must be 0..65535, not {self.dport}")
        if self.dport is not None and self.proto == "icmp":
            raise ValueError("--dport needs --proto tcp or udp")

    def to_dict(self) -> dict[str, object]:
        return {"source": self.source, "destination": self.destination, "proto": self.proto,
                "dport": self.dport}

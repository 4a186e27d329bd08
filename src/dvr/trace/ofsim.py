"""A small OpenFlow pipeline simulator over desired ``BridgeState`` flows.

Faucet's ``FakeOFTable`` idea for our bridges: run a packet through the flows the desired
state holds and record every step, so tests (and the tracer) assert *packet behaviour*
("this frame leaves through vxlan-c0000202 with tun_id 0x3e9 and the host MAC as source")
instead of flow text.

Scope: the typed flows of ``dvr.agent.desired.openflow``, executed as values (no flow text
is parsed here), the firewall's too (``LoadZone``, ``Ct`` under an assumed connection state,
conjunctive matches as OVS resolves them): every ``Match`` field (``dl_vlan`` 0xffff =
untagged, masks, prefixes, protocol shorthands, registers) and every action (``Resubmit``,
``Output``, ``ModDlSrc``/``ModDlDst``, ``ModVlanVid`` (pushes a tag on an untagged frame),
``StripVlan``, ``SetTunnel``, ``DecTtl`` (a TTL of 0 or 1 ends the actions: the frame goes
nowhere), ``LoadRegister``, ``Drop``, ``Normal``, ``OutputInPort``). Each step records the
packet after the flow's own header rewrites (``packet_own``) and after everything it led to
(``packet_out``), so the tracer needs no action interpreter of its own.

A value the simulator cannot model (a malformed MAC or prefix, an unknown action type)
raises ``UnsupportedFlow`` when the pipeline is built or run, so a flow is never silently
ignored.  Two flows of equal priority that both
match one packet raise ``AmbiguousMatch`` (OVS leaves the choice undefined).

Model of the switch:

- OpenFlow tables see frames from an access port (a port with a ``tag``) untagged, as OVS
  does; only ``NORMAL`` applies the port's tag.
- ``NORMAL``: the frame's VLAN is the in_port's tag (access) or its 802.1Q tag (trunk).  A
  unicast destination found in ``mac_table`` (MAC -> port name) on a port of that VLAN is
  delivered there; otherwise the frame is flooded to every access port of the VLAN and
  every trunk port except the in_port.  Access ports get it untagged, trunks tagged.
  VLAN 4095 (dead) never forwards.
- Registers start at 0 (the firewall's zone is register 6: ``Match.reg6`` and ``LoadZone``
  are that register); ``output`` to a patch port continues in the peer bridge at table 0
  with the peer as in_port (tunnel metadata, registers and conntrack state cleared, as OVS
  clears them); to a ``vxlan`` port it ends as a ``Tunnelled`` outcome (remote IP, tun_id);
  to any other port as ``Delivered``.  Output to the in_port is suppressed unless
  ``IN_PORT`` is used.
- A table miss drops the packet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from dvr.agent.desired.openflow import (
    ETH_TYPE_ARP,
    ETH_TYPE_IP,
    ETH_TYPE_IPV6,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    PROTOCOLS,
    Action,
    Conjunction,
    Ct,
    DecTtl,
    Drop,
    LoadRegister,
    LoadZone,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Normal,
    Output,
    OutputInPort,
    Resubmit,
    SetTunnel,
    StripVlan,
)
from dvr.agent.desired.state import BridgeState, Flow, OvsPort
from dvr.agent.desired.tables import REG_ZONE

MAX_RESUBMIT_DEPTH = 64
MAX_STEPS = 4096
DEAD_VLAN = 4095

BROADCAST = "ff:ff:ff:ff:ff:ff"


class UnsupportedFlow(ValueError):
    """A flow uses match fields or actions the simulator does not model."""


class AmbiguousMatch(RuntimeError):
    """Two flows of the same priority in one table both match a packet."""


class SimulationLimit(RuntimeError):
    """Too many resubmits or steps (a loop in the pipeline)."""


# --- packets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Packet:
    """The header fields the simulator looks at.  ``dl_vlan`` None = untagged."""

    dl_src: str
    dl_dst: str
    dl_type: int = ETH_TYPE_IP
    dl_vlan: int | None = None
    nw_src: str | None = None
    nw_dst: str | None = None
    nw_proto: int | None = None
    arp_op: int | None = None
    arp_spa: str | None = None
    arp_tpa: str | None = None
    icmp_type: int | None = None
    nd_target: str | None = None
    tun_id: int | None = None  # tunnel metadata, not a header
    nw_ttl: int | None = None
    tp_src: int | None = None
    tp_dst: int | None = None
    icmp_code: int | None = None
    arp_sha: str | None = None
    # pipeline metadata (not headers): registers, conntrack, conj_id
    registers: tuple[tuple[int, int], ...] = ()  # (register, value) nonzero, sorted
    ct_state: frozenset[str] = frozenset()  # empty: not tracked
    ct_label: int = 0
    conj_id: int | None = None

    def register(self, number: int) -> int:
        return next((value for reg, value in self.registers if reg == number), 0)

    def with_register(self, number: int, value: int) -> Packet:
        others = tuple((reg, v) for reg, v in self.registers if reg != number)
        loaded = ((number, value),) if value else ()
        return replace(self, registers=tuple(sorted(others + loaded)))

    @property
    def reg6(self) -> int:
        """The firewall's conntrack zone."""
        return self.register(REG_ZONE)

    @classmethod
    def ipv4(cls, dl_src: str, dl_dst: str, nw_src: str, nw_dst: str,
             nw_proto: int = IPPROTO_ICMP) -> Packet:
        return cls(dl_src=dl_src, dl_dst=dl_dst, dl_type=ETH_TYPE_IP, nw_src=nw_src,
                   nw_dst=nw_dst, nw_proto=nw_proto, icmp_type=8 if nw_proto == 1 else None)

    @classmethod
    def arp_request(cls, dl_src: str, arp_spa: str, arp_tpa: str) -> Packet:
        return cls(dl_src=dl_src, dl_dst=BROADCAST, dl_type=ETH_TYPE_ARP, arp_op=1,
                   arp_spa=arp_spa, arp_tpa=arp_tpa)

    @classmethod
    def neighbor_solicitation(cls, dl_src: str, nw_src: str, nd_target: str) -> Packet:
        low24 = int(ipaddress.IPv6Address(nd_target)) & 0xFFFFFF
        solicited_node = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low24)
        dl_dst = "33:33:" + ":".join(f"{b:02x}" for b in solicited_node.packed[-4:])
        return cls(dl_src=dl_src, dl_dst=dl_dst, dl_type=ETH_TYPE_IPV6, nw_src=nw_src,
                   nw_dst=str(solicited_node), nw_proto=IPPROTO_ICMPV6, icmp_type=135,
                   nd_target=nd_target)


def without_metadata(packet: Packet) -> Packet:
    """The frame as the next bridge or host sees it: no tunnel metadata, registers,
    conntrack state (OVS clears them on a patch port)."""
    return replace(packet, tun_id=None, registers=(), ct_state=frozenset(), ct_label=0,
                   conj_id=None)


# --- conntrack ----------------------------------------------------------------------------------

CT_NEW = "new"
CT_ESTABLISHED = "established"
CT_REPLY = "reply"  # established, in the reply direction
CT_ASSUMPTIONS = (CT_NEW, CT_ESTABLISHED, CT_REPLY)
CT_STATES: dict[str, frozenset[str]] = {
    CT_NEW: frozenset({"trk", "new"}),
    CT_ESTABLISHED: frozenset({"trk", "est"}),
    CT_REPLY: frozenset({"trk", "est", "rpl"}),
}


def ct_flags(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """``+trk+new-est`` -> (flags that must be set, flags that must be clear)."""
    on: set[str] = set()
    off: set[str] = set()
    word, sign = "", ""
    for char in text + "+":
        if char in "+-":
            if word:
                (on if sign == "+" else off).add(word)
            word, sign = "", char
        else:
            word += char
    return frozenset(on), frozenset(off)


# --- outcomes and the trace ------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    """One table lookup (or NORMAL / patch crossing) and the packet after its actions."""

    bridge: str
    table: int | None  # None for NORMAL and patch crossings
    flow: Flow | None  # the matching flow (None on a miss / NORMAL / patch)
    packet_in: Packet
    packet_out: Packet  # after all actions, those of the tables it resubmitted to included
    note: str = ""
    in_port: str = ""
    packet_own: Packet | None = None  # after the flow's own header rewrites only


@dataclass(frozen=True)
class Delivered:
    bridge: str
    port: str
    packet: Packet


@dataclass(frozen=True)
class Tunnelled:
    bridge: str
    port: str
    remote_ip: str | None
    local_ip: str | None
    tun_id: int
    packet: Packet  # the inner frame


@dataclass(frozen=True)
class Dropped:
    bridge: str
    table: int | None
    reason: str
    flow: Flow | None = None


Outcome = Delivered | Tunnelled | Dropped


@dataclass(frozen=True)
class Trace:
    steps: tuple[TraceStep, ...]
    outcomes: tuple[Outcome, ...]
    labels: Mapping[int, int] = field(default_factory=dict)  # zone -> ct_label after commits

    @property
    def delivered(self) -> tuple[Delivered, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Delivered))

    @property
    def tunnelled(self) -> tuple[Tunnelled, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Tunnelled))

    @property
    def drops(self) -> tuple[Dropped, ...]:
        return tuple(o for o in self.outcomes if isinstance(o, Dropped))

    @property
    def dropped(self) -> bool:
        """Nothing left the pipeline (no port, no tunnel)."""
        return not self.delivered and not self.tunnelled

    def delivered_to(self, port: str) -> tuple[Delivered, ...]:
        return tuple(o for o in self.delivered if o.port == port)

    def tunnelled_to(self, remote_ip: str) -> tuple[Tunnelled, ...]:
        return tuple(o for o in self.tunnelled if o.remote_ip == remote_ip)

    def tables(self, bridge: str) -> tuple[int, ...]:
        """The tables visited on ``bridge``, in order."""
        return tuple(s.table for s in self.steps if s.bridge == bridge and s.table is not None)

    def owners(self) -> tuple[str, ...]:
        return tuple(s.flow.owner for s in self.steps if s.flow is not None)


# --- compiling typed matches ------------------------------------------------------------------


def _mac_int(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6:
        raise UnsupportedFlow(f"bad MAC {text!r}")
    try:
        return int("".join(f"{int(p, 16):02x}" for p in parts), 16)
    except ValueError as exc:
        raise UnsupportedFlow(f"bad MAC {text!r}") from exc


_ALL_MAC = (1 << 48) - 1
_IP_FIELDS = ("nw_src", "nw_dst", "arp_spa", "arp_tpa", "nd_target")
_IPV6_FIELDS = {"ipv6_src": "nw_src", "ipv6_dst": "nw_dst"}  # match field -> packet field
_INT_FIELDS = ("arp_op", "icmp_type", "icmp_code", "nw_ttl", "conj_id", "nw_proto")


@dataclass(frozen=True)
class Condition:
    field: str
    value: object
    mask: object = None

    def holds(self, packet: Packet, in_port: str) -> bool:
        name = self.field
        if name == "in_port":
            return in_port == self.value
        if name == "dl_vlan":
            return (packet.dl_vlan if packet.dl_vlan is not None else 0xFFFF) == self.value
        if name == "vlan_tci":
            tci = 0 if packet.dl_vlan is None else 0x1000 | packet.dl_vlan
            return tci & self.mask == self.value & self.mask  # type: ignore[operator]
        if name == "register":
            number, value = self.value  # type: ignore[misc]
            return packet.register(number) == value
        if name == "tun_id":
            actual = packet.tun_id or 0
            return actual & self.mask == self.value & self.mask  # type: ignore[operator]
        if name in ("dl_src", "dl_dst", "arp_sha"):
            raw = getattr(packet, name)
            if raw is None:
                return False
            return _mac_int(raw) & self.mask == self.value  # type: ignore[operator]
        if name in ("tp_src", "tp_dst", "ct_label"):
            actual = getattr(packet, name)
            if actual is None:
                return False
            return actual & self.mask == self.value & self.mask  # type: ignore[operator]
        if name == "ct_state":
            on, off = self.value  # type: ignore[misc]
            return on <= packet.ct_state and not off & packet.ct_state
        if name in _IP_FIELDS:
            raw = getattr(packet, name)
            if raw is None:
                return False
            network = self.value
            assert isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network)
            try:
                return ipaddress.ip_address(raw) in network
            except ValueError:
                return False
        return getattr(packet, name) == self.value


def compile_match(match: Match) -> tuple[Condition, ...]:
    """The conditions a packet must meet to match ``match``."""
    fields = match.fields()  # read many times: a NamedTuple
    conditions: list[Condition] = []
    if fields.in_port is not None:
        conditions.append(Condition("in_port", fields.in_port))
    conditions += [Condition("register", pair) for pair in fields.registers]
    if fields.reg6 is not None:
        conditions.append(Condition("register", (REG_ZONE, fields.reg6)))
    if fields.proto is not None:
        dl_type, nw_proto = PROTOCOLS[fields.proto]
        conditions.append(Condition("dl_type", dl_type))
        if nw_proto is not None:
            conditions.append(Condition("nw_proto", nw_proto))
    if fields.dl_vlan is not None:
        conditions.append(Condition("dl_vlan", fields.dl_vlan))
    if fields.vlan_tci is not None:
        mask = 0xFFFF if fields.vlan_tci_mask is None else fields.vlan_tci_mask
        conditions.append(Condition("vlan_tci", fields.vlan_tci, mask))
    for name, value, mask in (("dl_src", fields.dl_src, fields.dl_src_mask),
                              ("dl_dst", fields.dl_dst, fields.dl_dst_mask),
                              ("arp_sha", fields.arp_sha, None)):
        if value is not None:
            bits = _ALL_MAC if mask is None else _mac_int(mask)
            conditions.append(Condition(name, _mac_int(value) & bits, bits))
    if fields.tun_id is not None:
        mask = -1 if fields.tun_id_mask is None else fields.tun_id_mask
        conditions.append(Condition("tun_id", fields.tun_id, mask))
    for name in (*_IP_FIELDS, *_IPV6_FIELDS):
        value = getattr(fields, name, None)
        if value is not None:
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError as exc:
                raise UnsupportedFlow(f"bad {name} {value!r}") from exc
            conditions.append(Condition(_IPV6_FIELDS.get(name, name), network))
    for name in _INT_FIELDS:
        value = getattr(fields, name)
        if value is not None:
            conditions.append(Condition(name, value))
    for name, value, mask in (("tp_src", fields.tp_src, fields.tp_src_mask),
                              ("tp_dst", fields.tp_dst, fields.tp_dst_mask),
                              ("ct_label", fields.ct_label, fields.ct_label_mask)):
        if value is not None:
            conditions.append(Condition(name, value, -1 if mask is None else mask))
    if fields.ct_state is not None:
        conditions.append(Condition("ct_state", ct_flags(fields.ct_state)))
    return tuple(conditions)


_HEADER_ACTIONS = (ModDlSrc, ModDlDst, ModVlanVid, StripVlan, SetTunnel, DecTtl, LoadZone,
                   LoadRegister)


def rewrite(packet: Packet, action: Action) -> Packet:
    """``packet`` after one header-rewriting action (others leave it as it is)."""
    kind = type(action)
    if kind is ModDlSrc:
        return replace(packet, dl_src=action.mac.lower())  # type: ignore[union-attr]
    if kind is ModDlDst:
        return replace(packet, dl_dst=action.mac.lower())  # type: ignore[union-attr]
    if kind is ModVlanVid:
        return replace(packet, dl_vlan=action.vlan)  # type: ignore[union-attr]
    if kind is StripVlan:
        return replace(packet, dl_vlan=None)
    if kind is SetTunnel:
        return replace(packet, tun_id=action.tun_id)  # type: ignore[union-attr]
    if kind is DecTtl and packet.nw_ttl is not None:
        return replace(packet, nw_ttl=packet.nw_ttl - 1)
    if kind is LoadZone:
        return packet.with_register(REG_ZONE, action.zone)  # type: ignore[union-attr]
    if kind is LoadRegister:
        return packet.with_register(action.register, action.value)  # type: ignore[union-attr]
    return packet


def ttl_expires(packet: Packet, action: Action) -> bool:
    """``dec_ttl`` on a frame whose TTL is 0 or 1: OVS stops the actions there."""
    return type(action) is DecTtl and packet.nw_ttl is not None and packet.nw_ttl <= 1


@dataclass(frozen=True)
class _CompiledFlow:
    flow: Flow
    conditions: tuple[Condition, ...]

    @property
    def clauses(self) -> tuple[Conjunction, ...]:
        """The conjunction clauses this flow is (empty for an ordinary flow)."""
        actions = self.flow.actions
        if actions and all(type(a) is Conjunction for a in actions):
            return actions  # type: ignore[return-value]
        return ()


@dataclass(frozen=True)
class _CompiledBridge:
    state: BridgeState
    ports: Mapping[str, OvsPort]
    tables: Mapping[int, tuple[_CompiledFlow, ...]]  # by priority, highest first


def _compile_bridge(bridge: BridgeState) -> _CompiledBridge:
    tables: dict[int, list[_CompiledFlow]] = {}
    for flow in bridge.flows:
        tables.setdefault(flow.table, []).append(
            _CompiledFlow(flow, compile_match(flow.match))
        )
    return _CompiledBridge(
        state=bridge,
        ports={p.name: p for p in bridge.ports},
        tables={
            t: tuple(sorted(fs, key=lambda c: (-c.flow.priority, c.flow)))
            for t, fs in tables.items()
        },
    )


# --- the simulator ------------------------------------------------------------------------------


@dataclass
class _Run:
    """Mutable bookkeeping of one trace (local to one ``Pipeline.trace`` call)."""

    mac_table: Mapping[str, str]
    conntrack: str = CT_NEW
    labels: dict[int, int] = field(default_factory=dict)  # zone -> ct_label committed
    steps: list[TraceStep] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)

    def step(self, step: TraceStep) -> int:
        if len(self.steps) >= MAX_STEPS:
            raise SimulationLimit(f"more than {MAX_STEPS} steps")
        self.steps.append(step)
        return len(self.steps) - 1


class Pipeline:
    """The bridges of one host, compiled once, traced many times (read-only after init)."""

    def __init__(self, bridges: Iterable[BridgeState]) -> None:
        self._bridges = {b.name: _compile_bridge(b) for b in bridges}
        self._port_bridge = {
            port: name for name, compiled in self._bridges.items() for port in compiled.ports
        }

    def bridge_of_port(self, port: str) -> str | None:
        return self._port_bridge.get(port)

    def tunnel_port_towards(self, remote_ip: str) -> tuple[str, str] | None:
        """(bridge, port) of the vxlan port whose ``remote_ip`` is ``remote_ip``."""
        for name, compiled in self._bridges.items():
            for port in compiled.ports.values():
                if port.type == "vxlan" and dict(port.options).get("remote_ip") == remote_ip:
                    return name, port.name
        return None

    def trace(
        self,
        bridge: str,
        in_port: str,
        packet: Packet,
        mac_table: Mapping[str, str] | None = None,
        conntrack: str = CT_NEW,
        labels: Mapping[int, int] | None = None,
    ) -> Trace:
        """Send ``packet`` into ``bridge`` through ``in_port`` and follow it everywhere.

        Every conntrack lookup finds the connection in the state ``conntrack`` assumes
        (``new``, ``established`` in the packet's original direction, or ``reply``) with the
        ``ct_label`` of ``labels`` (zone -> label) or, once committed in this trace, the
        label the commit set."""
        if bridge not in self._bridges:
            raise KeyError(f"no bridge {bridge!r}")
        if in_port not in self._bridges[bridge].ports:
            raise KeyError(f"no port {in_port!r} on {bridge}")
        if conntrack not in CT_ASSUMPTIONS:
            raise ValueError(f"conntrack must be one of {CT_ASSUMPTIONS}")
        run = _Run(mac_table=mac_table or {}, conntrack=conntrack, labels=dict(labels or {}))
        self._pipeline(run, bridge, in_port, packet)
        outcomes = list(run.outcomes)
        if not any(isinstance(o, Delivered | Tunnelled) for o in outcomes) and not any(
            isinstance(o, Dropped) for o in outcomes
        ):
            outcomes.append(Dropped(bridge, None, "actions ended without output"))
        return Trace(steps=tuple(run.steps), outcomes=tuple(outcomes), labels=dict(run.labels))

    def receive_from_tunnel(
        self,
        remote_ip: str,
        tun_id: int,
        packet: Packet,
        mac_table: Mapping[str, str] | None = None,
        conntrack: str = CT_NEW,
        labels: Mapping[int, int] | None = None,
    ) -> Trace:
        """A frame arriving over the tunnel from ``remote_ip`` with VNI ``tun_id``."""
        found = self.tunnel_port_towards(remote_ip)
        if found is None:
            return Trace((), (Dropped("", None, f"no tunnel port towards {remote_ip}"),))
        bridge, port = found
        return self.trace(bridge, port, replace(packet, tun_id=tun_id), mac_table, conntrack,
                          labels)

    # --- internals ------------------------------------------------------------------------------
    def _pipeline(self, run: _Run, bridge: str, in_port: str, packet: Packet) -> None:
        self._table(run, bridge, 0, in_port, packet, depth=0)

    def _lookup(
        self, bridge: str, table: int, in_port: str, packet: Packet
    ) -> tuple[_CompiledFlow | None, Packet]:
        """The flow that handles ``packet`` (and the packet, with ``conj_id`` set when a
        conjunctive match decided it), as OVS does: by priority, conjunctions competing at
        the priority of their clauses."""
        flows = self._bridges[bridge].tables.get(table, ())
        clauses: dict[tuple[int, int], set[int]] = {}  # (priority, id) -> clauses matched
        wanted: dict[tuple[int, int], int] = {}
        for index, candidate in enumerate(flows):
            priority = candidate.flow.priority
            fired = [ident for (prio, ident), seen in clauses.items()
                     if prio > priority and len(seen) == wanted[(prio, ident)]]
            if fired:
                return self._conjunction(bridge, table, in_port, packet, min(fired))
            if not all(c.holds(packet, in_port) for c in candidate.conditions):
                continue
            if candidate.clauses:
                for clause in candidate.clauses:
                    for ident in clause.ids:
                        clauses.setdefault((priority, ident), set()).add(clause.clause)
                        wanted[(priority, ident)] = clause.n_clauses
                continue
            for other in flows[index + 1:]:
                if other.flow.priority != priority:
                    break
                if not other.clauses and all(c.holds(packet, in_port) for c in other.conditions):
                    raise AmbiguousMatch(
                        f"{bridge} table {table}: {candidate.flow} and {other.flow}"
                    )
            return candidate, packet
        fired = [ident for key, seen in clauses.items() if len(seen) == wanted[key]
                 for ident in (key[1],)]
        if fired:
            return self._conjunction(bridge, table, in_port, packet, min(fired))
        return None, packet

    def _conjunction(self, bridge: str, table: int, in_port: str, packet: Packet,
                     ident: int) -> tuple[_CompiledFlow | None, Packet]:
        """The lookup again with ``conj_id`` set, clause flows left out."""
        packet = replace(packet, conj_id=ident)
        for candidate in self._bridges[bridge].tables.get(table, ()):
            if not candidate.clauses and all(c.holds(packet, in_port)
                                             for c in candidate.conditions):
                return candidate, replace(packet, conj_id=None)
        return None, replace(packet, conj_id=None)

    def _table(
        self, run: _Run, bridge: str, table: int, in_port: str, packet: Packet, depth: int
    ) -> Packet:
        """Look ``packet`` up in ``table`` and run the actions; returns the packet after."""
        if depth > MAX_RESUBMIT_DEPTH:
            raise SimulationLimit(f"resubmit depth over {MAX_RESUBMIT_DEPTH}")
        match, packet = self._lookup(bridge, table, in_port, packet)
        if match is None:
            run.step(TraceStep(bridge, table, None, packet, packet, "table miss", in_port))
            run.outcomes.append(Dropped(bridge, table, f"no flow matched in table {table}"))
            return packet
        index = run.step(TraceStep(bridge, table, match.flow, packet, packet, "", in_port))
        current = own = packet
        for action in match.flow.actions:
            kind = type(action)
            if ttl_expires(current, action):
                run.outcomes.append(Dropped(bridge, table, "dec_ttl: TTL expired "
                                            "(OVS sends it to a controller; none runs)",
                                            match.flow))
                break
            if kind in _HEADER_ACTIONS:
                current, own = rewrite(current, action), rewrite(own, action)
            elif kind is Resubmit:
                current = self._table(run, bridge, action.table, in_port, current,  # type: ignore[union-attr]
                                      depth + 1)
            elif kind is Output:
                self._output(run, bridge, action.port, in_port, current, depth)  # type: ignore[union-attr]
            elif kind is OutputInPort:
                self._output(run, bridge, in_port, in_port, current, depth, allow_in_port=True)
            elif kind is Drop:
                run.outcomes.append(
                    Dropped(bridge, table, f"dropped by flow in table {table}", match.flow)
                )
            elif kind is Normal:
                self._normal(run, bridge, in_port, current, depth)
            elif kind is Ct:
                current = self._conntrack(run, bridge, in_port, current, action, depth)  # type: ignore[arg-type]
            else:
                raise UnsupportedFlow(f"unsupported action {action!r}")
        run.steps[index] = replace(run.steps[index], packet_out=current, packet_own=own)
        return current

    def _conntrack(self, run: _Run, bridge: str, in_port: str, packet: Packet, action: Ct,
                   depth: int) -> Packet:
        """``ct(...)`` in the zone of reg6, under the run's conntrack assumption."""
        zone = packet.reg6
        if action.commit:
            before = run.labels.get(zone, 0)
            run.labels[zone] = (before & ~action.label_mask) | (action.label & action.label_mask)
            return replace(packet, ct_label=run.labels[zone])
        tracked = replace(packet, ct_state=CT_STATES[run.conntrack],
                          ct_label=run.labels.get(zone, 0))
        if action.table is None:
            return tracked
        return self._table(run, bridge, action.table, in_port, tracked, depth + 1)

    def _output(
        self,
        run: _Run,
        bridge: str,
        port_name: str,
        in_port: str,
        packet: Packet,
        depth: int,
        allow_in_port: bool = False,
    ) -> None:
        compiled = self._bridges[bridge]
        port = compiled.ports.get(port_name)
        if port is None:
            run.outcomes.append(Dropped(bridge, None, f"output to unknown port {port_name}"))
            return
        if port_name == in_port and not allow_in_port:
            run.outcomes.append(Dropped(bridge, None, f"output to in_port {port_name} skipped"))
            return
        if port.type == "patch":
            peer = dict(port.options).get("peer", "")
            peer_bridge = self._port_bridge.get(peer)
            if peer_bridge is None:
                run.outcomes.append(Dropped(bridge, None, f"patch {port_name}: no peer {peer}"))
                return
            crossed = without_metadata(packet)
            run.step(TraceStep(bridge, None, None, packet, crossed,
                               f"patch {port_name} -> {peer_bridge}:{peer}", in_port))
            if depth + 1 > MAX_RESUBMIT_DEPTH:
                raise SimulationLimit("patch port loop")
            self._table(run, peer_bridge, 0, peer, crossed, depth + 1)
            return
        if port.type == "vxlan":
            options = dict(port.options)
            run.outcomes.append(
                Tunnelled(bridge, port_name, options.get("remote_ip"), options.get("local_ip"),
                          packet.tun_id or 0, without_metadata(packet))
            )
            return
        run.outcomes.append(Delivered(bridge, port_name, without_metadata(packet)))

    def _normal(self, run: _Run, bridge: str, in_port: str, packet: Packet, depth: int) -> None:
        compiled = self._bridges[bridge]
        ingress = compiled.ports[in_port]
        if ingress.tag is not None:
            if packet.dl_vlan is not None:
                run.outcomes.append(Dropped(bridge, None, "NORMAL: tagged frame on access port"))
                return
            vlan = ingress.tag
        else:
            vlan = packet.dl_vlan or 0
        if vlan == DEAD_VLAN:
            run.outcomes.append(Dropped(bridge, None, "NORMAL: dead VLAN"))
            return
        members = [
            p for p in compiled.ports.values()
            if p.name != in_port and p.type != "vxlan" and (p.tag == vlan or p.tag is None)
        ]
        target = run.mac_table.get(packet.dl_dst)
        unicast = not int(packet.dl_dst.split(":")[0], 16) & 1
        chosen = [p for p in members if p.name == target] if unicast and target else []
        if unicast and target == in_port:
            run.outcomes.append(Dropped(bridge, None, f"NORMAL: {packet.dl_dst} is on in_port"))
            return
        egress = chosen or members
        run.step(TraceStep(bridge, None, None, packet, packet,
                           f"NORMAL vlan {vlan} -> {','.join(p.name for p in egress) or '-'}",
                           in_port))
        if not egress:
            run.outcomes.append(Dropped(bridge, None, f"NORMAL: no port in VLAN {vlan}"))
            return
        for port in sorted(egress, key=lambda p: p.name):
            if port.tag is not None:
                out = replace(packet, dl_vlan=None)
            else:
                out = replace(packet, dl_vlan=vlan or None)
            self._output(run, bridge, port.name, in_port, out, depth)

"""A small OpenFlow pipeline simulator over desired ``BridgeState`` flows.

Faucet's ``FakeOFTable`` idea for our bridges: run a packet through the flows the desired
state holds and record every step, so tests (and the tracer) assert *packet behaviour*
("this frame leaves through vxlan-c0000202 with tun_id 0x3e9 and the host MAC as source")
instead of flow text.

Scope: the ``ovs-ofctl`` match and action syntax our flow generator emits.

- matches: ``in_port``, ``dl_src``/``dl_dst`` (with ``/mask``), ``dl_vlan`` (``0xffff`` =
  untagged), ``dl_type``, ``nw_src``/``nw_dst``/``arp_spa``/``arp_tpa`` (with prefix or
  mask), ``nw_proto``, ``arp_op``, ``icmp_type``, ``nd_target``, ``tun_id`` (with mask) and
  the shorthands ``ip``, ``ipv6``, ``arp``, ``icmp``, ``icmp6``, ``tcp``, ``udp``;
- actions: ``resubmit(,T)``, ``output:P``, ``mod_dl_src:M``, ``mod_dl_dst:M``,
  ``mod_vlan_vid:V`` (pushes a tag on an untagged frame), ``strip_vlan``/``pop_vlan``,
  ``set_tunnel:V``/``set_tunnel64:V``, ``drop``, ``NORMAL``, ``IN_PORT``.

Anything else raises ``UnsupportedFlow`` when the pipeline is built, so a flow the
simulator cannot model is never silently ignored.  Two flows of equal priority that both
match one packet raise ``AmbiguousMatch`` (OVS leaves the choice undefined).

Model of the switch:

- OpenFlow tables see frames from an access port (a port with a ``tag``) untagged, as OVS
  does; only ``NORMAL`` applies the port's tag.
- ``NORMAL``: the frame's VLAN is the in_port's tag (access) or its 802.1Q tag (trunk).  A
  unicast destination found in ``mac_table`` (MAC -> port name) on a port of that VLAN is
  delivered there; otherwise the frame is flooded to every access port of the VLAN and
  every trunk port except the in_port.  Access ports get it untagged, trunks tagged.
  VLAN 4095 (dead) never forwards.
- ``output`` to a patch port continues in the peer bridge at table 0 with the peer as
  in_port (tunnel metadata cleared, as OVS clears it); to a ``vxlan`` port it ends as a
  ``Tunnelled`` outcome (remote IP, tun_id); to any other port as ``Delivered``.  Output
  to the in_port is suppressed unless ``IN_PORT`` is used.
- A table miss drops the packet.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from dvr.agent.desired.state import BridgeState, Flow, OvsPort

MAX_RESUBMIT_DEPTH = 64
MAX_STEPS = 4096
DEAD_VLAN = 4095

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
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


# --- outcomes and the trace ------------------------------------------------------------------


@dataclass(frozen=True)
class TraceStep:
    """One table lookup (or NORMAL / patch crossing) and the packet after its actions."""

    bridge: str
    table: int | None  # None for NORMAL and patch crossings
    flow: Flow | None  # the matching flow (None on a miss / NORMAL / patch)
    packet_in: Packet
    packet_out: Packet
    note: str = ""
    in_port: str = ""


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


# --- parsing ----------------------------------------------------------------------------------


def split_top_level(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    escaped = False
    for char in text:
        if quoted:
            current.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            continue
        if char == '"':
            quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    tail = "".join(current).strip()
    if tail:
        parts.append(tail)
    return [p for p in parts if p]


def unquote_port(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return text


def _mac_int(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6:
        raise UnsupportedFlow(f"bad MAC {text!r}")
    return int("".join(f"{int(p, 16):02x}" for p in parts), 16)


def _int(text: str) -> int:
    return int(text, 0)


_SHORTHANDS: dict[str, tuple[tuple[str, int], ...]] = {
    "ip": (("dl_type", ETH_TYPE_IP),),
    "ipv6": (("dl_type", ETH_TYPE_IPV6),),
    "arp": (("dl_type", ETH_TYPE_ARP),),
    "icmp": (("dl_type", ETH_TYPE_IP), ("nw_proto", IPPROTO_ICMP)),
    "icmp6": (("dl_type", ETH_TYPE_IPV6), ("nw_proto", IPPROTO_ICMPV6)),
    "tcp": (("dl_type", ETH_TYPE_IP), ("nw_proto", IPPROTO_TCP)),
    "udp": (("dl_type", ETH_TYPE_IP), ("nw_proto", IPPROTO_UDP)),
}
_MAC_FIELDS = frozenset({"dl_src", "dl_dst"})
_IP_FIELDS = frozenset({"nw_src", "nw_dst", "arp_spa", "arp_tpa", "nd_target"})
_INT_FIELDS = frozenset({"dl_type", "nw_proto", "arp_op", "icmp_type"})


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
        if name == "tun_id":
            actual = packet.tun_id or 0
            mask = self.mask if isinstance(self.mask, int) else -1
            return actual & mask == self.value & mask  # type: ignore[operator]
        if name in _MAC_FIELDS:
            actual = _mac_int(getattr(packet, name))
            mask = self.mask if isinstance(self.mask, int) else (1 << 48) - 1
            return actual & mask == self.value & mask  # type: ignore[operator]
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


def parse_match(match: str) -> tuple[Condition, ...]:
    conditions: list[Condition] = []
    for part in split_top_level(match):
        if "=" not in part:
            if part not in _SHORTHANDS:
                raise UnsupportedFlow(f"unsupported match keyword {part!r}")
            conditions.extend(Condition(f, v) for f, v in _SHORTHANDS[part])
            continue
        name, _, raw = part.partition("=")
        name, raw = name.strip(), raw.strip()
        if name == "in_port":
            conditions.append(Condition("in_port", unquote_port(raw)))
        elif name == "dl_vlan":
            conditions.append(Condition("dl_vlan", _int(raw)))
        elif name == "tun_id":
            value, _, mask = raw.partition("/")
            conditions.append(Condition("tun_id", _int(value), _int(mask) if mask else None))
        elif name in _MAC_FIELDS:
            value, _, mask = raw.partition("/")
            conditions.append(
                Condition(name, _mac_int(value), _mac_int(mask) if mask else None)
            )
        elif name in _IP_FIELDS:
            conditions.append(Condition(name, ipaddress.ip_network(raw, strict=False)))
        elif name in _INT_FIELDS:
            conditions.append(Condition(name, _int(raw)))
        else:
            raise UnsupportedFlow(f"unsupported match field {name!r}")
    return tuple(conditions)


@dataclass(frozen=True)
class Action:
    kind: str  # resubmit | output | mod_dl_src | mod_dl_dst | mod_vlan_vid | strip_vlan
    #            | set_tunnel | drop | normal | in_port
    argument: object = None


def parse_actions(actions: str) -> tuple[Action, ...]:
    parsed: list[Action] = []
    for part in split_top_level(actions):
        lower = part.lower()
        if lower.startswith("resubmit(") and part.endswith(")"):
            port, _, table = part[len("resubmit("):-1].partition(",")
            if port.strip() or not table.strip():
                raise UnsupportedFlow(f"only resubmit(,TABLE) is modelled: {part!r}")
            parsed.append(Action("resubmit", _int(table.strip())))
        elif lower.startswith("output:"):
            parsed.append(Action("output", unquote_port(part[len("output:"):])))
        elif lower.startswith("mod_dl_src:") or lower.startswith("mod_dl_dst:"):
            kind, _, mac = part.partition(":")
            _mac_int(mac)
            parsed.append(Action(kind.lower(), mac.lower()))
        elif lower.startswith("mod_vlan_vid:"):
            parsed.append(Action("mod_vlan_vid", _int(part.partition(":")[2])))
        elif lower in ("strip_vlan", "pop_vlan"):
            parsed.append(Action("strip_vlan"))
        elif lower.startswith("set_tunnel:") or lower.startswith("set_tunnel64:"):
            parsed.append(Action("set_tunnel", _int(part.partition(":")[2])))
        elif lower == "drop":
            parsed.append(Action("drop"))
        elif lower == "normal":
            parsed.append(Action("normal"))
        elif lower == "in_port":
            parsed.append(Action("in_port"))
        else:
            raise UnsupportedFlow(f"unsupported action {part!r}")
    return tuple(parsed)


@dataclass(frozen=True)
class _CompiledFlow:
    flow: Flow
    conditions: tuple[Condition, ...]
    actions: tuple[Action, ...]


@dataclass(frozen=True)
class _CompiledBridge:
    state: BridgeState
    ports: Mapping[str, OvsPort]
    tables: Mapping[int, tuple[_CompiledFlow, ...]]  # by priority, highest first


def _compile_bridge(bridge: BridgeState) -> _CompiledBridge:
    tables: dict[int, list[_CompiledFlow]] = {}
    for flow in bridge.flows:
        tables.setdefault(flow.table, []).append(
            _CompiledFlow(flow, parse_match(flow.match), parse_actions(flow.actions))
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
    ) -> Trace:
        """Send ``packet`` into ``bridge`` through ``in_port`` and follow it everywhere."""
        if bridge not in self._bridges:
            raise KeyError(f"no bridge {bridge!r}")
        if in_port not in self._bridges[bridge].ports:
            raise KeyError(f"no port {in_port!r} on {bridge}")
        run = _Run(mac_table=mac_table or {})
        self._pipeline(run, bridge, in_port, packet)
        outcomes = list(run.outcomes)
        if not any(isinstance(o, Delivered | Tunnelled) for o in outcomes) and not any(
            isinstance(o, Dropped) for o in outcomes
        ):
            outcomes.append(Dropped(bridge, None, "actions ended without output"))
        return Trace(steps=tuple(run.steps), outcomes=tuple(outcomes))

    def receive_from_tunnel(
        self,
        remote_ip: str,
        tun_id: int,
        packet: Packet,
        mac_table: Mapping[str, str] | None = None,
    ) -> Trace:
        """A frame arriving over the tunnel from ``remote_ip`` with VNI ``tun_id``."""
        found = self.tunnel_port_towards(remote_ip)
        if found is None:
            return Trace((), (Dropped("", None, f"no tunnel port towards {remote_ip}"),))
        bridge, port = found
        return self.trace(bridge, port, replace(packet, tun_id=tun_id), mac_table)

    # --- internals ------------------------------------------------------------------------------
    def _pipeline(self, run: _Run, bridge: str, in_port: str, packet: Packet) -> None:
        self._table(run, bridge, 0, in_port, packet, depth=0)

    def _lookup(
        self, bridge: str, table: int, in_port: str, packet: Packet
    ) -> _CompiledFlow | None:
        flows = self._bridges[bridge].tables.get(table, ())
        for index, candidate in enumerate(flows):
            if all(c.holds(packet, in_port) for c in candidate.conditions):
                for other in flows[index + 1:]:
                    if other.flow.priority != candidate.flow.priority:
                        break
                    if all(c.holds(packet, in_port) for c in other.conditions):
                        raise AmbiguousMatch(
                            f"{bridge} table {table}: {candidate.flow} and {other.flow}"
                        )
                return candidate
        return None

    def _table(
        self, run: _Run, bridge: str, table: int, in_port: str, packet: Packet, depth: int
    ) -> Packet:
        """Look ``packet`` up in ``table`` and run the actions; returns the packet after."""
        if depth > MAX_RESUBMIT_DEPTH:
            raise SimulationLimit(f"resubmit depth over {MAX_RESUBMIT_DEPTH}")
        match = self._lookup(bridge, table, in_port, packet)
        if match is None:
            run.step(TraceStep(bridge, table, None, packet, packet, "table miss", in_port))
            run.outcomes.append(Dropped(bridge, table, f"no flow matched in table {table}"))
            return packet
        index = run.step(TraceStep(bridge, table, match.flow, packet, packet, "", in_port))
        current = packet
        for action in match.actions:
            kind = action.kind
            if kind == "resubmit":
                assert isinstance(action.argument, int)
                current = self._table(run, bridge, action.argument, in_port, current, depth + 1)
            elif kind == "output":
                assert isinstance(action.argument, str)
                self._output(run, bridge, action.argument, in_port, current, depth)
            elif kind == "in_port":
                self._output(run, bridge, in_port, in_port, current, depth, allow_in_port=True)
            elif kind == "mod_dl_src":
                current = replace(current, dl_src=str(action.argument))
            elif kind == "mod_dl_dst":
                current = replace(current, dl_dst=str(action.argument))
            elif kind == "mod_vlan_vid":
                current = replace(current, dl_vlan=int(action.argument))  # type: ignore[arg-type]
            elif kind == "strip_vlan":
                current = replace(current, dl_vlan=None)
            elif kind == "set_tunnel":
                current = replace(current, tun_id=int(action.argument))  # type: ignore[arg-type]
            elif kind == "drop":
                run.outcomes.append(
                    Dropped(bridge, table, f"dropped by flow in table {table}", match.flow)
                )
            elif kind == "normal":
                self._normal(run, bridge, in_port, current, depth)
        run.steps[index] = replace(run.steps[index], packet_out=current)
        return current

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
            crossed = replace(packet, tun_id=None)
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
                          packet.tun_id or 0, replace(packet, tun_id=None))
            )
            return
        run.outcomes.append(Delivered(bridge, port_name, packet))

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

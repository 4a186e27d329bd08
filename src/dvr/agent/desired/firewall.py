"""The firewall in br-int: security groups and anti-spoofing, statefully, with conntrack
(Neutron's openvswitch firewall design; pure, like the other flow families).

Registers and conntrack fields (the one place they are defined):

- ``reg6``: the conntrack zone, i.e. the frame's network (its local VLAN).  Table 0 loads
  it for every frame from an access port (``access_port_zone_flows``); a frame from a trunk
  (br-tun, a physical bridge) carries its VLAN tag instead and gets reg6 where it enters the
  ingress firewall.  Patch ports clear registers, so a trunk frame has reg6 = 0.
- ``ct_label`` bits 0-31: the mark of the egress selector that admitted the connection;
  bits 32-63: the mark of the ingress selector (``firewall_rules.Selector.mark``).

The pipeline of one firewalled port P (network VLAN V, MAC M):

- table 0: ``in_port=P`` -> reg6=V, table 71.
- 71 BASE_EGRESS: no DHCP server replies / router advertisements from P; ARP, ND and DHCP
  client traffic from P's own MAC and addresses (and its allowed address pairs) go on
  (table 73); IP from them to the conntrack lookup (-> 72); everything else is dropped.
- 72 RULES_EGRESS: +inv dropped; +rel accepted; +est accepted while the selector whose
  mark the connection carries is still one of P's (egress mark for P's own connections,
  ingress mark for replies to connections P accepted); +new: the egress rules, each
  committing with its mark (-> 73); no rule: dropped.
- 73 ACCEPT_OR_INGRESS: back to table 60, where the frame meets the ingress firewall of a
  local firewalled destination or NORMAL.
- table 60: a unicast frame for M on V (tagged V from a trunk, or reg6=V untagged from an
  access port) -> reg6=V, untagged, table 81.  DVR-routed frames for P (br-int table 1)
  come straight to 81 the same way (``dvr_ingress_actions``).
- 81 BASE_INGRESS: ARP, ND and DHCP replies are output to P; IP to the conntrack lookup
  (-> 82); anything else is dropped.
- 82 RULES_INGRESS: as 72 for the ingress direction; an accepted frame is output to P.

A stateless group set (``SecurityGroupView.stateful`` False) skips conntrack: its rules
are matched both ways without state, as Neutron does.

Rules are conjunctive matches, one per selector (a rule of the port's groups,
``firewall_rules``), with its conj_id (a content hash, the same on every host):

- clause 1, the port (owner ``port:<id>``): one flow per direction, a new connection from
  P (``in_port``) or to P (reg6=V and M), naming every selector of P;
- clause 2, the protocol and ports (owner ``firewall:<network>``): reg6=V plus the rule's
  protocol, port range (as masks) or ICMP type, one flow per match, shared by every port
  of the network and naming every selector that uses that match;
- clause 3, only when the rule names remote addresses (owner ``firewall:<network>``): one
  flow per remote prefix or member address of the remote group / address group, reg6=V,
  shared likewise;
- ``conj_id`` + P (owner ``port:<id>``, one per selector of P): commit with the selector's
  mark and accept.  With the two +est flows of the selector, a port holds three flows per
  selector; OVS needs every flow of one conjunction at one priority and clause count, and
  one flow per match (the conjunction actions of every id merged): ``_Builder``.

Scaling: a port's flows are linear in its rules (about 30 of its own plus 3 per rule),
whatever the size of the remote sets; each network holds one flow per remote address and
one per distinct protocol match, whatever the number of its ports (as Neutron shares them
per network).  So a host with 200 ports of one 50-rule group on one network, whose
remote group has 200 members, holds ~37k flows (~186 per port, 250 shared), and a rule
change rewrites 5 flows per port (its clause 1 flows, its new conj_id and +est flows) plus
the network's shared clauses: the incremental cache keeps one piece per port selector
(``fwrule``), one for a port's clause 1 flows (``fwport``) and one per network
(``firewall``), so only those are recomputed.

Known limits: broadcast and multicast frames are flooded by NORMAL and reach firewalled
ports without the ingress rules (ARP, DHCP and ND are allowed anyway); established
traffic of a selector that is re-added with equal content resumes (the mark is the same).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from dvr.agent.desired import names
from dvr.agent.desired.firewall_rules import (
    EGRESS,
    INGRESS,
    IPV4,
    GroupSelectors,
    Selector,
    port_range_masks,
    set_members,
)
from dvr.agent.desired.openflow import (
    DROP_ONLY,
    STRIP_VLAN,
    Action,
    Conjunction,
    Ct,
    LoadZone,
    Match,
    Output,
    Resubmit,
    match_builder,
)
from dvr.agent.desired.state import Flow
from dvr.agent.desired.tables import (
    PRIO_DEFAULT,
    PRIO_FW_ALWAYS,
    PRIO_FW_CONJUNCTION,
    PRIO_FW_CONNTRACK,
    PRIO_FW_FORBIDDEN,
    PRIO_FW_FROM_PORT,
    PRIO_FW_INVALID,
    PRIO_FW_PORT_DROP,
    PRIO_FW_RULE,
    PRIO_FW_TO_PORT,
    PRIO_INT_ACCESS_PORT,
    IntTable,
)
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import AddressSetView, PortView

CT_NEW = "+trk+new-est"
CT_EST_ORIGINAL = "+trk+est-rel-rpl"
CT_EST_REPLY = "+trk+est-rel+rpl"
CT_RELATED = "+trk+rel-inv"
CT_INVALID = "+trk+inv"
EGRESS_LABEL_MASK = 0xFFFFFFFF
INGRESS_LABEL_SHIFT = 32
INGRESS_LABEL_MASK = EGRESS_LABEL_MASK << INGRESS_LABEL_SHIFT
UNTAGGED = (0x0000, 0x1FFF)  # vlan_tci value/mask of a frame without an 802.1Q tag
ND_TYPES = (130, 131, 132, 133, 135, 136, 143)  # MLD, RS, NS, NA, MLDv2 (VM may send)
ND_INGRESS_TYPES = (130, 131, 132, 134, 135, 136, 143)  # ... and RAs towards the VM
ROUTER_ADVERTISEMENT = 134
DHCP_SERVER, DHCP_CLIENT = 67, 68
DHCP6_SERVER, DHCP6_CLIENT = 547, 546

TO_ACCEPTED = (Resubmit(IntTable.ACCEPT_OR_INGRESS),)
MATCH_IN_PORT = match_builder("in_port")  # one per access port (positional, see match_builder)


@dataclass(frozen=True)
class PortSide:
    """Where a firewalled port's rule flows attach (all that they read of the port)."""

    port_id: str
    ovs_port_name: str
    zone: int  # the network's local VLAN
    mac: str
    stateful: bool  # Neutron forbids mixing; a port with any stateless group is stateless


@dataclass(frozen=True)
class PortFirewall:
    """Everything the firewall of one port reads."""

    port: PortView
    side: PortSide
    selectors: frozenset[Selector]  # of the port's groups that this view has


def firewall_inputs(
    port: PortView, ovs_port_name: str, zone: int, groups: Mapping[str, GroupSelectors],
) -> PortFirewall | None:
    """The firewall of ``port`` (None: port security off, no firewall, no anti-spoofing)."""
    if not port.port_security_enabled:
        return None
    chosen = [groups[g] for g in port.security_group_ids if g in groups]
    stateful = all(g.stateful for g in chosen)
    selectors = chosen[0].selectors if len(chosen) == 1 else frozenset().union(
        *(g.selectors for g in chosen))
    side = PortSide(port.id, ovs_port_name, zone, port.mac_address, stateful)
    return PortFirewall(port, side, selectors)


# --- shared flows -------------------------------------------------------------------------------


def firewall_base_flows(bridge: str) -> tuple[Flow, ...]:
    """The tables' skeleton: misses drop, +inv drops, 73 goes back to 60."""
    owner = names.bridge_owner(bridge)
    flows = [Flow(table, PRIO_DEFAULT, Match(), DROP_ONLY, owner) for table in (
        IntTable.BASE_EGRESS, IntTable.RULES_EGRESS, IntTable.BASE_INGRESS,
        IntTable.RULES_INGRESS)]
    flows += [Flow(table, PRIO_FW_INVALID, Match(ct_state=CT_INVALID), DROP_ONLY, owner)
              for table in (IntTable.RULES_EGRESS, IntTable.RULES_INGRESS)]
    flows.append(Flow(IntTable.ACCEPT_OR_INGRESS, PRIO_DEFAULT, Match(),
                      (Resubmit(IntTable.TRANSIENT),), owner))
    return tuple(flows)


def access_port_zone_flows(ovs_port_name: str, vlan: int, owner: str) -> tuple[Flow, ...]:
    """Table 0: a frame from an access port carries its network (VLAN) in reg6, so that
    table 60 can tell which network an untagged frame is on."""
    return (Flow(IntTable.LOCAL_SWITCHING, PRIO_INT_ACCESS_PORT, MATCH_IN_PORT(ovs_port_name),
                 zone_actions(vlan), owner),)


@lru_cache(maxsize=DEAD_VLAN + 1)
def zone_actions(vlan: int) -> tuple[Action, ...]:
    """Load the zone and go on to table 60: one tuple per VLAN for all the access ports."""
    return (LoadZone(vlan), Resubmit(IntTable.TRANSIENT))


def dvr_ingress_actions(zone: int, gateway_mac_rewrite: tuple[Action, ...]) -> tuple[Action, ...]:
    """br-int table 1 for a firewalled port: untag, restore the gateway MAC, then the
    port's ingress firewall (instead of straight output: Neutron's DVR bypass)."""
    return (STRIP_VLAN, *gateway_mac_rewrite, LoadZone(zone), Resubmit(IntTable.BASE_INGRESS))


# --- one port -----------------------------------------------------------------------------------


def _allowed_addresses(port: PortView) -> dict[str, list[str]]:
    """MAC -> the addresses / prefixes it may send from (fixed IPs, address pairs, and the
    IPv6 link-local address of each MAC)."""
    allowed: dict[str, list[str]] = {port.mac_address: [f.ip_address for f in port.fixed_ips]}
    for pair in port.allowed_address_pairs:
        allowed.setdefault(pair.mac_address, []).append(pair.ip_address)
    for mac, addresses in allowed.items():
        addresses.append(_link_local(mac))
    return {mac: sorted(set(addrs)) for mac, addrs in sorted(allowed.items())}


def _link_local(mac: str) -> str:
    octets = [int(b, 16) for b in mac.split(":")]
    octets[0] ^= 0x02
    eui = octets[:3] + [0xFF, 0xFE] + octets[3:]
    return str(ipaddress.IPv6Address(bytes([0xFE, 0x80] + [0] * 6 + eui)))


def _is_v4(address: str) -> bool:
    return ipaddress.ip_network(address, strict=False).version == 4


class _Builder:
    """Collects flows of one owner.  OVS keeps one flow per (table, priority, match): the
    first flow added for one wins, except that conjunction clauses for one are merged into
    a single flow naming every conjunction (``add_clause``)."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.flows: dict[tuple[int, int, Match], tuple[Action, ...]] = {}
        self.clauses: dict[tuple[int, int, Match], dict[tuple[int, int], set[int]]] = {}

    def add(self, table: int, priority: int, match: Match, actions: tuple[Action, ...]) -> None:
        self.flows.setdefault((table, priority, match), actions)

    def add_clause(self, table: int, match: Match, ids: Iterable[int], clause: int,
                   n: int) -> None:
        """``conjunction(id, clause/n)`` for each of ``ids`` on the flow of ``match``
        (at PRIO_FW_CONJUNCTION)."""
        by_clause = self.clauses.setdefault((table, PRIO_FW_CONJUNCTION, match), {})
        by_clause.setdefault((clause, n), set()).update(ids)

    def build(self) -> tuple[Flow, ...]:
        flows = [Flow(t, p, m, a, self.owner) for (t, p, m), a in self.flows.items()]
        flows += [Flow(t, p, m, tuple(Conjunction(tuple(sorted(ids)), clause, n)
                                      for (clause, n), ids in sorted(by_clause.items())),
                       self.owner)
                  for (t, p, m), by_clause in self.clauses.items()]
        return tuple(flows)


def _side(direction: str, side: PortSide) -> dict[str, object]:
    """The fields that pin a flow to the port: its in_port (egress) or its network and MAC
    (ingress, untagged)."""
    if direction == EGRESS:
        return {"in_port": side.ovs_port_name}
    return {"reg6": side.zone, "dl_dst": side.mac}


def _accept(direction: str, side: PortSide) -> tuple[Action, ...]:
    return TO_ACCEPTED if direction == EGRESS else (Output(side.ovs_port_name),)


def _rules_table(direction: str) -> int:
    return IntTable.RULES_EGRESS if direction == EGRESS else IntTable.RULES_INGRESS


def _label(direction: str, mark: int) -> tuple[int, int]:
    if direction == EGRESS:
        return mark, EGRESS_LABEL_MASK
    return mark << INGRESS_LABEL_SHIFT, INGRESS_LABEL_MASK


def _l4_matches(selector: Selector) -> list[dict[str, object]]:
    """The protocol / port / ICMP part of a selector, as one or more match field sets."""
    proto, nw_proto = selector.l4
    base: dict[str, object] = {"proto": proto}
    if nw_proto is not None:
        base["nw_proto"] = nw_proto
    if selector.icmp_type is not None:
        base["icmp_type"] = selector.icmp_type
        if selector.icmp_code is not None:
            base["icmp_code"] = selector.icmp_code
    if selector.port_min is None or selector.port_max is None:
        return [base]
    field = "tp_dst"
    return [{**base, field: value, f"{field}_mask": None if mask == 0xFFFF else mask}
            for value, mask in port_range_masks(selector.port_min, selector.port_max)]


def _remote_field(direction: str, ethertype: str) -> str:
    v4 = ethertype == IPV4
    if direction == INGRESS:
        return "nw_src" if v4 else "ipv6_src"
    return "nw_dst" if v4 else "ipv6_dst"


def _clause_count(selector: Selector) -> int:
    """The port and the protocol, plus the remote addresses when the rule names some."""
    return 2 if selector.remote_prefix is None and selector.remote_set is None else 3


def _egress_base(b: _Builder, fw: PortFirewall) -> None:
    table, p = IntTable.BASE_EGRESS, fw.side.ovs_port_name
    b.add(IntTable.LOCAL_SWITCHING, PRIO_FW_FROM_PORT, Match(in_port=p),
          (LoadZone(fw.side.zone), Resubmit(table)))
    for match in (Match(in_port=p, proto="udp", tp_src=DHCP_SERVER, tp_dst=DHCP_CLIENT),
                  Match(in_port=p, proto="udp6", tp_src=DHCP6_SERVER, tp_dst=DHCP6_CLIENT),
                  Match(in_port=p, proto="icmp6", icmp_type=ROUTER_ADVERTISEMENT)):
        b.add(table, PRIO_FW_FORBIDDEN, match, DROP_ONLY)
    b.add(table, PRIO_FW_PORT_DROP, Match(in_port=p), DROP_ONLY)
    after_spoof_check = (Ct(table=IntTable.RULES_EGRESS),) if fw.side.stateful else (
        Resubmit(IntTable.RULES_EGRESS),)
    for mac, addresses in _allowed_addresses(fw.port).items():
        b.add(table, PRIO_FW_ALWAYS, Match(in_port=p, proto="udp", dl_src=mac,
                                           tp_src=DHCP_CLIENT, tp_dst=DHCP_SERVER), TO_ACCEPTED)
        b.add(table, PRIO_FW_ALWAYS, Match(in_port=p, proto="udp6", dl_src=mac,
                                           tp_src=DHCP6_CLIENT, tp_dst=DHCP6_SERVER), TO_ACCEPTED)
        for icmp_type in ND_TYPES:
            b.add(table, PRIO_FW_ALWAYS,
                  Match(in_port=p, proto="icmp6", dl_src=mac, icmp_type=icmp_type), TO_ACCEPTED)
        for address in addresses:
            if _is_v4(address):
                b.add(table, PRIO_FW_ALWAYS, Match(in_port=p, proto="arp", dl_src=mac,
                                                   arp_sha=mac, arp_spa=address), TO_ACCEPTED)
                b.add(table, PRIO_FW_CONNTRACK, Match(in_port=p, proto="ip", dl_src=mac,
                                                      nw_src=address), after_spoof_check)
            else:
                b.add(table, PRIO_FW_CONNTRACK, Match(in_port=p, proto="ipv6", dl_src=mac,
                                                      ipv6_src=address), after_spoof_check)


def _ingress_base(b: _Builder, fw: PortFirewall) -> None:
    table, zone, mac = IntTable.BASE_INGRESS, fw.side.zone, fw.side.mac
    side = _side(INGRESS, fw.side)
    vlan, mask = UNTAGGED
    b.add(IntTable.TRANSIENT, PRIO_FW_TO_PORT, Match(dl_vlan=zone, dl_dst=mac, reg6=0),
          (LoadZone(zone), STRIP_VLAN, Resubmit(table)))
    b.add(IntTable.TRANSIENT, PRIO_FW_TO_PORT,
          Match(vlan_tci=vlan, vlan_tci_mask=mask, dl_dst=mac, reg6=zone), (Resubmit(table),))
    out = _accept(INGRESS, fw.side)
    b.add(table, PRIO_FW_ALWAYS, Match(proto="arp", **side), out)  # type: ignore[arg-type]
    for icmp_type in ND_INGRESS_TYPES:
        b.add(table, PRIO_FW_ALWAYS, Match(proto="icmp6", icmp_type=icmp_type, **side), out)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_ALWAYS, Match(proto="udp", tp_src=DHCP_SERVER, tp_dst=DHCP_CLIENT,
                                       **side), out)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_ALWAYS, Match(proto="udp6", tp_src=DHCP6_SERVER, tp_dst=DHCP6_CLIENT,
                                       **side), out)  # type: ignore[arg-type]
    onward = (Ct(table=IntTable.RULES_INGRESS),) if fw.side.stateful else (
        Resubmit(IntTable.RULES_INGRESS),)
    for proto in ("ip", "ipv6"):
        b.add(table, PRIO_FW_CONNTRACK, Match(proto=proto, **side), onward)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_PORT_DROP, Match(**side), DROP_ONLY)  # type: ignore[arg-type]


def _related(b: _Builder, side: PortSide) -> None:
    for direction in (EGRESS, INGRESS):
        b.add(_rules_table(direction), PRIO_FW_CONNTRACK,
              Match(ct_state=CT_RELATED, **_side(direction, side)), _accept(direction, side))  # type: ignore[arg-type]


def port_base_flows(fw: PortFirewall) -> tuple[Flow, ...]:
    """What a firewalled port holds whatever its rules: anti-spoofing, the always-allowed
    traffic, the conntrack lookups and (stateful) related traffic (owner ``port:<id>``)."""
    b = _Builder(names.port_owner(fw.side.port_id))
    _egress_base(b, fw)
    _ingress_base(b, fw)
    if fw.side.stateful:
        _related(b, fw.side)
    return b.build()


ClauseActions = tuple[tuple[str, tuple[Conjunction, ...]], ...]  # (direction, actions)


def port_clause_actions(selectors: Iterable[Selector],
                        conj_ids: Mapping[Selector, int]) -> ClauseActions:
    """Clause 1 of the conjunction of each of ``selectors`` (a port's), per direction: the
    same for every port with the same selectors (the members of one group)."""
    ids: dict[tuple[str, int], list[int]] = {}  # (direction, clauses) -> conj_ids
    for selector in selectors:
        ids.setdefault((selector.direction, _clause_count(selector)), []).append(
            conj_ids[selector])
    return tuple(
        (direction, tuple(Conjunction(tuple(sorted(ids[(direction, n)])), 1, n)
                          for n in (2, 3) if (direction, n) in ids))
        for direction in (EGRESS, INGRESS) if (direction, 2) in ids or (direction, 3) in ids)


def port_clause_flows(side: PortSide, actions: ClauseActions) -> tuple[Flow, ...]:
    """The port's clause 1 flows (``port_clause_actions`` of its selectors): a new
    connection from or to the port, one flow per direction naming every selector."""
    state = {"ct_state": CT_NEW} if side.stateful else {}
    owner = names.port_owner(side.port_id)
    return tuple(Flow(_rules_table(direction), PRIO_FW_CONJUNCTION,
                      Match(**_side(direction, side), **state), conjunctions, owner)  # type: ignore[arg-type]
                 for direction, conjunctions in actions)


def selector_flows(side: PortSide, selector: Selector, conj_id: int) -> tuple[Flow, ...]:
    """One selector of one port: its conjunction admits (and, stateful, commits the
    connection with the selector's mark), and established traffic that the mark admitted
    passes in both tables (the port's own direction: original packets; the other:
    replies)."""
    direction = selector.direction
    side_fields = _side(direction, side)
    label, mask = _label(direction, selector.mark)
    admit: tuple[Action, ...] = _accept(direction, side)
    state = {"ct_state": CT_NEW} if side.stateful else {}
    if side.stateful:
        admit = (Ct(commit=True, label=label, label_mask=mask), *admit)
    proto = "ip" if selector.ethertype == IPV4 else "ipv6"
    owner = names.port_owner(side.port_id)
    flows = [Flow(_rules_table(direction), PRIO_FW_RULE,
                  Match(proto=proto, conj_id=conj_id, **side_fields, **state), admit, owner)]  # type: ignore[arg-type]
    if side.stateful:
        for table_direction in (EGRESS, INGRESS):
            ct_state = CT_EST_ORIGINAL if table_direction == direction else CT_EST_REPLY
            flows.append(Flow(
                _rules_table(table_direction), PRIO_FW_CONNTRACK,
                Match(ct_state=ct_state, ct_label=label, ct_label_mask=mask,
                      **_side(table_direction, side)),  # type: ignore[arg-type]
                _accept(table_direction, side), owner))
    return tuple(flows)


def zone_flows(
    owner: str, zone: int, selectors: Iterable[Selector], conj_ids: Mapping[Selector, int],
    sets: Mapping[str, AddressSetView],
) -> tuple[Flow, ...]:
    """The clauses that the ports of one network (conntrack zone) share, for every selector
    of its firewalled ports: clause 2, the protocol and ports, and clause 3, one flow per
    remote prefix or member address.  A flow that several selectors share (an address in
    two sets, one port range in two rules) names every one of them."""
    b = _Builder(owner)
    remotes: dict[tuple[str, str, str, bool], list[int]] = {}  # (.., remote, is a set) -> ids
    for selector in selectors:
        ident = conj_ids[selector]
        table, n = _rules_table(selector.direction), _clause_count(selector)
        for l4 in _l4_matches(selector):
            b.add_clause(table, Match(reg6=zone, **l4), (ident,), 2, n)  # type: ignore[arg-type]
        if n == 3:
            remote = selector.remote_prefix or selector.remote_set or ""
            remotes.setdefault((selector.direction, selector.ethertype, remote,
                                selector.remote_prefix is None), []).append(ident)
    for (direction, ethertype, remote, is_set), ids in remotes.items():
        field = _remote_field(direction, ethertype)
        proto = "ip" if ethertype == IPV4 else "ipv6"
        cidrs = set_members(sets.get(remote), ethertype) if is_set else (remote,)
        for cidr in cidrs:
            b.add_clause(_rules_table(direction),
                         Match(proto=proto, reg6=zone, **{field: cidr}), ids, 3, 3)  # type: ignore[arg-type]
    return b.build()


def port_firewall_flows(fw: PortFirewall, conj_ids: Mapping[Selector, int]) -> tuple[Flow, ...]:
    """Every br-int flow that one firewalled port owns (``conj_ids``: at least its
    selectors' ids); the shared clauses are ``zone_flows``."""
    return (port_base_flows(fw)
            + port_clause_flows(fw.side, port_clause_actions(fw.selectors, conj_ids))
            + tuple(f for s in fw.selectors for f in selector_flows(fw.side, s, conj_ids[s])))

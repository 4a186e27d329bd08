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
are matched both ways without state, as Neutron does.  Remote groups and address groups
use conjunctions (``conjunction(id,1/2)`` per member address, ``conjunction(id,2/2)`` per
rule's protocol/ports), so a port's flows grow with rules + addresses, not their product.

Scaling: the address clause flows are per port (they match the port too), so a host with
P ports in a group whose rules name a remote set of M addresses holds P x M of them (Neutron
shares them per network, merging the conjunction actions of overlapping sets); sharing them
is the next step if hosts with hundreds of ports per group matter.

Known limits: broadcast and multicast frames are flooded by NORMAL and reach firewalled
ports without the ingress rules (ARP, DHCP and ND are allowed anyway); established
traffic of a selector that is re-added with equal content resumes (the mark is the same).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dvr.agent.desired import names
from dvr.agent.desired.firewall_rules import (
    EGRESS,
    INGRESS,
    IPV4,
    Selector,
    conjunction_ids,
    port_range_masks,
    port_selectors,
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
from dvr.model.hostview import AddressSetView, PortView, SecurityGroupView

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


@dataclass(frozen=True)
class PortFirewall:
    """Everything the firewall of one port reads."""

    port: PortView
    ovs_port_name: str
    zone: int  # the network's local VLAN
    groups: tuple[SecurityGroupView, ...]  # the port's groups that this view has
    address_sets: tuple[AddressSetView, ...]  # the sets its rules refer to

    @property
    def stateful(self) -> bool:
        """Neutron forbids mixing; a port with any stateless group is stateless."""
        return all(g.stateful for g in self.groups)


def firewall_inputs(
    port: PortView, ovs_port_name: str, zone: int,
    groups: Mapping[str, SecurityGroupView], sets: Mapping[str, AddressSetView],
) -> PortFirewall | None:
    """The firewall of ``port`` (None: port security off, no firewall, no anti-spoofing)."""
    if not port.port_security_enabled:
        return None
    chosen = tuple(groups[g] for g in port.security_group_ids if g in groups)
    wanted = sorted({r.remote_group_id or r.remote_address_group_id for g in chosen
                     for r in g.rules} - {None})
    return PortFirewall(port, ovs_port_name, zone, chosen,
                        tuple(sets[s] for s in wanted if s in sets))


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
    return (Flow(IntTable.LOCAL_SWITCHING, PRIO_INT_ACCESS_PORT,
                 Match(in_port=ovs_port_name), (LoadZone(vlan), Resubmit(IntTable.TRANSIENT)),
                 owner),)


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
    """Collects one port's flows; flows with one (table, priority, match) are merged (their
    conjunction actions joined), as OVS keeps one flow per match."""

    def __init__(self, fw: PortFirewall) -> None:
        self.fw = fw
        self.owner = names.port_owner(fw.port.id)
        self.flows: dict[tuple[int, int, Match], tuple[Action, ...]] = {}

    def add(self, table: int, priority: int, match: Match, actions: tuple[Action, ...]) -> None:
        key = (table, priority, match)
        before = self.flows.get(key)
        if before is None:
            self.flows[key] = actions
        elif len(before) == len(actions) == 1 and type(before[0]) is type(actions[0]) is \
                Conjunction:  # an address of two sets: one flow in both conjunctions
            first, second = before[0], actions[0]
            self.flows[key] = (Conjunction(tuple(sorted(set(first.ids) | set(second.ids))),  # type: ignore[union-attr]
                                           first.clause, first.n_clauses),)  # type: ignore[union-attr]

    def build(self) -> tuple[Flow, ...]:
        return tuple(Flow(t, p, m, a, self.owner) for (t, p, m), a in self.flows.items())


def _side(direction: str, fw: PortFirewall) -> dict[str, object]:
    """The fields that pin a flow to the port: its in_port (egress) or its network and MAC
    (ingress, untagged)."""
    if direction == EGRESS:
        return {"in_port": fw.ovs_port_name}
    return {"reg6": fw.zone, "dl_dst": fw.port.mac_address}


def _accept(direction: str, fw: PortFirewall) -> tuple[Action, ...]:
    return TO_ACCEPTED if direction == EGRESS else (Output(fw.ovs_port_name),)


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


def _remote_field(selector: Selector) -> str:
    v4 = selector.ethertype == IPV4
    if selector.direction == INGRESS:
        return "nw_src" if v4 else "ipv6_src"
    return "nw_dst" if v4 else "ipv6_dst"


def _egress_base(b: _Builder) -> None:
    fw, table = b.fw, IntTable.BASE_EGRESS
    p = fw.ovs_port_name
    b.add(IntTable.LOCAL_SWITCHING, PRIO_FW_FROM_PORT, Match(in_port=p),
          (LoadZone(fw.zone), Resubmit(table)))
    for match in (Match(in_port=p, proto="udp", tp_src=DHCP_SERVER, tp_dst=DHCP_CLIENT),
                  Match(in_port=p, proto="udp6", tp_src=DHCP6_SERVER, tp_dst=DHCP6_CLIENT),
                  Match(in_port=p, proto="icmp6", icmp_type=ROUTER_ADVERTISEMENT)):
        b.add(table, PRIO_FW_FORBIDDEN, match, DROP_ONLY)
    b.add(table, PRIO_FW_PORT_DROP, Match(in_port=p), DROP_ONLY)
    after_spoof_check = (Ct(table=IntTable.RULES_EGRESS),) if fw.stateful else (
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


def _ingress_base(b: _Builder) -> None:
    fw, table = b.fw, IntTable.BASE_INGRESS
    side = _side(INGRESS, fw)
    vlan, mask = UNTAGGED
    b.add(IntTable.TRANSIENT, PRIO_FW_TO_PORT,
          Match(dl_vlan=fw.zone, dl_dst=fw.port.mac_address, reg6=0),
          (LoadZone(fw.zone), STRIP_VLAN, Resubmit(table)))
    b.add(IntTable.TRANSIENT, PRIO_FW_TO_PORT,
          Match(vlan_tci=vlan, vlan_tci_mask=mask, dl_dst=fw.port.mac_address, reg6=fw.zone),
          (Resubmit(table),))
    out = _accept(INGRESS, fw)
    b.add(table, PRIO_FW_ALWAYS, Match(proto="arp", **side), out)  # type: ignore[arg-type]
    for icmp_type in ND_INGRESS_TYPES:
        b.add(table, PRIO_FW_ALWAYS, Match(proto="icmp6", icmp_type=icmp_type, **side), out)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_ALWAYS, Match(proto="udp", tp_src=DHCP_SERVER, tp_dst=DHCP_CLIENT,
                                       **side), out)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_ALWAYS, Match(proto="udp6", tp_src=DHCP6_SERVER, tp_dst=DHCP6_CLIENT,
                                       **side), out)  # type: ignore[arg-type]
    onward = (Ct(table=IntTable.RULES_INGRESS),) if fw.stateful else (
        Resubmit(IntTable.RULES_INGRESS),)
    for proto in ("ip", "ipv6"):
        b.add(table, PRIO_FW_CONNTRACK, Match(proto=proto, **side), onward)  # type: ignore[arg-type]
    b.add(table, PRIO_FW_PORT_DROP, Match(**side), DROP_ONLY)  # type: ignore[arg-type]


def _established(b: _Builder, selectors: Iterable[Selector]) -> None:
    """+est traffic passes while the selector that admitted it is still the port's."""
    fw = b.fw
    for direction in (EGRESS, INGRESS):
        side = _side(direction, fw)
        table = _rules_table(direction)
        out = _accept(direction, fw)
        b.add(table, PRIO_FW_CONNTRACK, Match(ct_state=CT_RELATED, **side), out)  # type: ignore[arg-type]
        for selector in selectors:
            label, mask = _label(selector.direction, selector.mark)
            # the port's own direction: original packets; the other: replies
            state = CT_EST_ORIGINAL if selector.direction == direction else CT_EST_REPLY
            b.add(table, PRIO_FW_CONNTRACK,
                  Match(ct_state=state, ct_label=label, ct_label_mask=mask, **side), out)  # type: ignore[arg-type]


def _rules(b: _Builder, selectors: Iterable[Selector],
           sets: Mapping[str, AddressSetView]) -> None:
    fw = b.fw
    selectors = list(selectors)
    conj_ids = conjunction_ids(selectors)
    state = {"ct_state": CT_NEW} if fw.stateful else {}
    by_set: dict[tuple[str, str, str], list[int]] = {}  # (direction, ethertype, set) -> ids
    members: dict[tuple[str, str], tuple[str, ...]] = {}  # (set, ethertype) -> CIDRs
    for selector in selectors:
        direction = selector.direction
        table = _rules_table(direction)
        side = {**_side(direction, fw), **state}
        label, mask = _label(direction, selector.mark)
        admit: tuple[Action, ...] = _accept(direction, fw)
        if fw.stateful:
            admit = (Ct(commit=True, label=label, label_mask=mask), *admit)
        if selector.remote_set is None:
            remote = _remote_field(selector)
            extra = {} if selector.remote_prefix is None else {remote: selector.remote_prefix}
            for l4 in _l4_matches(selector):
                b.add(table, PRIO_FW_RULE, Match(**side, **l4, **extra), admit)  # type: ignore[arg-type]
            continue
        key = (selector.remote_set, selector.ethertype)
        if key not in members:
            members[key] = set_members(sets.get(selector.remote_set), selector.ethertype)
        if not members[key]:
            continue
        ident = conj_ids[selector]
        by_set.setdefault((direction, selector.ethertype, selector.remote_set), []).append(ident)
        proto = "ip" if selector.ethertype == IPV4 else "ipv6"
        for l4 in _l4_matches(selector):
            b.add(table, PRIO_FW_CONJUNCTION, Match(**side, **l4),  # type: ignore[arg-type]
                  (Conjunction((ident,), 2, 2),))
        b.add(table, PRIO_FW_RULE, Match(proto=proto, conj_id=ident, **side), admit)  # type: ignore[arg-type]
    # the address clause: one flow per member address, naming every rule of its set
    for (direction, ethertype, set_id), ids in sorted(by_set.items()):
        side = {**_side(direction, fw), **state}
        remote = _remote_field(Selector(direction, ethertype))
        proto = "ip" if ethertype == IPV4 else "ipv6"
        clauses = (Conjunction(tuple(sorted(ids)), 1, 2),)
        for cidr in members[(set_id, ethertype)]:
            b.add(_rules_table(direction), PRIO_FW_CONJUNCTION,
                  Match(proto=proto, **side, **{remote: cidr}), clauses)  # type: ignore[arg-type]


def port_firewall_flows(fw: PortFirewall) -> tuple[Flow, ...]:
    """Every br-int flow of one firewalled port (owner ``port:<id>``)."""
    b = _Builder(fw)
    sets = {s.id: s for s in fw.address_sets}
    selectors = list(port_selectors(fw.groups))
    _egress_base(b)
    _ingress_base(b)
    if fw.stateful:
        _established(b, selectors)
    _rules(b, selectors, sets)
    return b.build()

"""Realistic flows for the OpenFlow encoder's tests: every bridge of the agent's desired
state for several HostViews, each bridge's ports bound to numbers, plus hand-made flows for
the parts of the vocabulary those views do not use."""

from __future__ import annotations

from dataclasses import dataclass

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.openflow import (
    DEC_TTL,
    DROP,
    IN_PORT,
    NORMAL,
    STRIP_VLAN,
    Conjunction,
    Ct,
    LoadRegister,
    LoadZone,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
)
from dvr.agent.desired.state import BridgeState, Flow
from tests.unit.desired.firewall_scenarios import firewall_cloud, overlay
from tests.unit.trace.north_south_scenarios import agent_cloud, agent_hosts

OFPP_LOCAL = 65534


@dataclass(frozen=True)
class BridgeFlows:
    """The flows of one bridge of one scenario, and the numbers of the ports they name."""

    label: str  # "<scenario>/<host>/<bridge>"
    flows: tuple[Flow, ...]
    numbers: dict[str, int]


def numbered(label: str, bridge: str, flows) -> BridgeFlows:
    """``flows`` with every port they name bound to a number (the bridge itself: LOCAL)."""
    flows = tuple(sorted(flows))
    names = sorted({p for f in flows for p in f.ports} - {bridge})
    numbers = {name: number for number, name in enumerate(names, start=1)}
    numbers[bridge] = OFPP_LOCAL
    return BridgeFlows(label, flows, numbers)


def _bridges(scenario: str, host: str, bridges: tuple[BridgeState, ...]) -> list[BridgeFlows]:
    return [numbered(f"{scenario}/{host}/{b.name}", b.name, b.flows) for b in bridges]


def realistic_bridges() -> list[BridgeFlows]:
    """East/west with the fast path and security groups (conjunctions, conntrack) on every
    host of ``firewall_cloud``, the same routed in namespaces only, and north/south (SNAT
    host, floating IP, br-ex) on every host of ``agent_cloud``; br-int, br-tun, br-ex."""
    found = []
    cloud = firewall_cloud()
    for host in cloud.hosts:
        view = overlay(cloud=cloud).apply(cloud.view(host.name))
        inputs = HostInputs(plugged=cloud.plugged(host.name))
        found += _bridges("firewall", host.name,
                          compute_desired_state(view, inputs).bridges)
        found += _bridges("namespace-routed", host.name, compute_desired_state(
            view, inputs, DesiredConfig(east_west="namespace")).bridges)
    for host, data in agent_hosts(agent_cloud()).items():
        found += _bridges("north-south", host, data.state.bridges)
    return found


MAC_A, MAC_B = "fa:16:3e:00:00:0a", "fa:16:3e:00:00:0b"


def vocabulary_flows() -> BridgeFlows:
    """One flow or more for every field, mask and action the realistic views leave out."""
    f = Flow
    flows = [
        f(0, 10, Match(proto="ipv6", ipv6_src="2001:db8::/64", ipv6_dst="2001:db8::1"),
          (LoadZone(3), Ct(commit=True)), "t:ipv6"),
        f(0, 11, Match(proto="icmp6", icmp_type=135, nd_target="2001:db8::5"), (NORMAL,),
          "t:nd"),
        f(0, 12, Match(proto="icmp6", icmp_type=136, icmp_code=0, nd_target="2001:db8::/64"),
          (DROP,), "t:na"),
        f(0, 13, Match(proto="icmp", icmp_type=3, icmp_code=4), (IN_PORT,), "t:icmp"),
        f(0, 14, Match(proto="tcp", tp_src=1024, tp_src_mask=0xFC00, tp_dst=80),
          (Output("tap-a"),), "t:tcp"),
        f(0, 15, Match(proto="udp", tp_dst=0x40, tp_dst_mask=0xFFF0), (DROP,), "t:udp"),
        f(0, 16, Match(proto="sctp", tp_src=5), (DROP,), "t:sctp"),
        f(0, 17, Match(proto="udp6", tp_src=546, tp_dst=547), (DROP,), "t:udp6"),
        f(0, 18, Match(proto="tcp6", tp_dst=22), (DROP,), "t:tcp6"),
        f(0, 19, Match(proto="ip", nw_proto=47, nw_src="198.18.0.0/15"), (DROP,), "t:gre"),
        f(0, 20, Match(proto="ipv6", nw_proto=50), (DROP,), "t:esp"),
        f(0, 21, Match(proto="ip", nw_ttl=1, nw_dst="192.0.2.7"), (DROP,), "t:ttl"),
        f(0, 22, Match(vlan_tci=0x1005, vlan_tci_mask=0xFFFF), (STRIP_VLAN, NORMAL), "t:pcp"),
        f(0, 23, Match(vlan_tci=0x1000, vlan_tci_mask=0x1000),
          (ModVlanVid(7), Output("patch-x")), "t:tagged"),
        f(0, 24, Match(vlan_tci=0x3003), (DROP,), "t:tci"),
        f(0, 25, Match(dl_vlan=0xFFFF, in_port="tap-a"), (ModVlanVid(5), ModVlanVid(6)),
          "t:push-once"),
        f(0, 26, Match(dl_vlan=9), (STRIP_VLAN, ModVlanVid(4), Output("br-test")),
          "t:pop-push"),
        f(0, 27, Match(tun_id=0x1234, tun_id_mask=0xFFFF0000FFFF), (SetTunnel(0xFFFFFFFFF),),
          "t:tun"),
        f(0, 28, Match(dl_src=MAC_A, dl_src_mask="ff:ff:ff:00:00:00", dl_dst=MAC_B,
                       dl_dst_mask="ff:ff:ff:ff:ff:ff"), (ModDlSrc(MAC_B), ModDlDst(MAC_A)),
          "t:macs"),
        f(0, 29, Match(registers=((0, 1), (1, 2), (7, 3), (15, 0xFFFFFFFF)), reg6=4),
          (LoadRegister(0, 5), LoadRegister(15, 0xFFFFFFFF), Resubmit(254)), "t:regs"),
        f(0, 30, Match(proto="arp", arp_op=2, arp_spa="192.0.2.0/28", arp_tpa="192.0.2.1",
                       arp_sha=MAC_A), (Output("tap-a"), Output("patch-x")), "t:arp"),
        f(0, 31, Match(proto="arp", nw_src="192.0.2.9", nw_dst="192.0.2.0/24"), (NORMAL,),
          "t:arp-nw"),
        f(0, 32, Match(ct_state="-trk", proto="ip"), (LoadZone(0xFFFF), Ct(table=200)),
          "t:ct-lookup"),
        f(0, 33, Match(ct_state="+trk+est-rel+rpl-inv+snat-dnat", ct_label=0x1,
                       proto="ipv6"), (Ct(commit=True, table=3, label=1 << 127,
                                          label_mask=(1 << 128) - 1),), "t:ct-label"),
        f(0, 34, Match(ct_label=5, proto="ip"), (DEC_TTL,), "t:ct-exact"),
        f(0, 35, Match(conj_id=0xFFFFFFFF, proto="ip"), (Resubmit(0),), "t:conj"),
        f(0, 36, Match(proto="ip", nw_src="192.0.2.0/24"),
          (Conjunction((1, 2, 0xFFFFFFFF), 2, 3),), "t:clauses"),
        f(253, 0, Match(), (DROP,), "t:last-table"),
        f(0, 0xFFFF, Match(in_port="br-test"), (Output("br-test"),), "t:local"),
        f(0, 37, Match(proto="ip", nw_src="0.0.0.0/0"), (DROP,), "t:any-src"),
        f(0, 38, Match(proto="icmp6", icmp_type=128), (DEC_TTL, NORMAL), "t:icmp6"),
    ]
    return numbered("vocabulary", "br-test", flows)

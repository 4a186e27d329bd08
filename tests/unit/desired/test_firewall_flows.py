"""The firewall's pure flows (desired/firewall.py), asserted as packet behaviour through the
OpenFlow simulator where it can be, and as flow structure where the structure is the point
(conjunction sizes, no conntrack for stateless groups, nothing without port security)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE_1,
    BLUE_2,
    HOST_1,
    HOST_2,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE_1,
    TUNNEL_IP_1,
    Cloud,
    tap_name,
)
from firewall_scenarios import (
    BLUE_4,
    EGRESS_ANY,
    GROUP,
    ICMP_IN,
    RULES,
    SSH_FROM_PREFIX,
    conjunction_problems,
    firewall_cloud,
    overlay,
)

from dvr.agent.desired import DesiredStateCache, HostInputs, compute_desired_state
from dvr.agent.desired.firewall_explain import RuleIndex, explain_firewall_flow
from dvr.agent.desired.firewall_rules import (
    RuleRef,
    Selector,
    port_range_masks,
    port_selectors,
    selector_of,
)
from dvr.agent.desired.names import router_interface_bridge_port_name
from dvr.agent.desired.openflow import (
    ETH_TYPE_IPV6,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Conjunction,
    Ct,
)
from dvr.agent.desired.state import DesiredState
from dvr.agent.desired.tables import PRIO_FW_CONJUNCTION, PRIO_FW_RULE, IntTable
from dvr.model.hostview import (
    AddressPair,
    AddressSetView,
    FixedIp,
    HostView,
    NetworkView,
    PortView,
    SecurityGroupRuleView,
    SecurityGroupView,
    SubnetView,
)
from dvr.trace.ofsim import CT_ESTABLISHED, Packet, Pipeline, Trace


def state_of(host: str, fw=None, cloud: Cloud | None = None) -> DesiredState:
    cloud = cloud or firewall_cloud()
    view = (fw or overlay(cloud=cloud)).apply(cloud.view(host))
    return compute_desired_state(view, HostInputs(plugged=cloud.plugged(host)))


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return firewall_cloud()


@pytest.fixture(scope="module")
def host2() -> DesiredState:
    return state_of(HOST_2)


def tcp(cloud: Cloud, src: str, dst: str, port: int, **changes) -> Packet:
    a, b = cloud.vm(src), cloud.vm(dst)
    packet = replace(Packet.ipv4(a.mac, b.mac, a.ip, b.ip, IPPROTO_TCP), tp_src=40000,
                     tp_dst=port)
    return replace(packet, **changes)


def send(state: DesiredState, vm: str, packet: Packet, **kwargs) -> Trace:
    return Pipeline(state.bridges).trace("br-int", tap_name(vm), packet, **kwargs)


def delivered_to(trace: Trace) -> set[str]:
    return {d.port for d in trace.delivered}


# --- same host, switched (NORMAL) --------------------------------------------------------------


def test_switched_tcp_allowed_by_the_remote_group_rule(cloud, host2):
    trace = send(host2, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 8080))
    assert delivered_to(trace) == {tap_name(BLUE_2)}
    tables = trace.tables("br-int")
    assert tables[:3] == (0, IntTable.BASE_EGRESS, IntTable.RULES_EGRESS)
    assert IntTable.BASE_INGRESS in tables and IntTable.RULES_INGRESS in tables


def test_switched_tcp_without_a_rule_is_dropped_in_the_ingress_rules(cloud, host2):
    trace = send(host2, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 9090))
    assert trace.dropped
    assert trace.drops[-1].table == IntTable.RULES_INGRESS


def test_a_non_member_source_does_not_satisfy_the_remote_group_conjunction(cloud):
    fw = overlay()
    fw.members[BLUE_4] = ()  # BLUE_4 leaves the group: no longer in the address set
    fw.unsecured = {BLUE_4}
    state = state_of(HOST_2, fw)
    assert send(state, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 8080)).dropped
    assert send(state, BLUE_4, replace(tcp(cloud, BLUE_4, BLUE_2, 22))).dropped


def test_a_prefix_rule_admits_only_its_prefix(cloud):
    fw = overlay()
    fw.unsecured = {BLUE_4}
    state = state_of(HOST_2, fw)
    inside = tcp(cloud, BLUE_4, BLUE_2, 22, nw_src="198.18.0.9")
    outside = tcp(cloud, BLUE_4, BLUE_2, 22, nw_src="198.18.1.77")
    assert delivered_to(send(state, BLUE_4, inside)) == {tap_name(BLUE_2)}
    assert send(state, BLUE_4, outside).dropped


# --- established connections and rule removal -----------------------------------------------


def committed_labels(state: DesiredState, vm: str, packet: Packet) -> dict[int, int]:
    """The ct_label per zone that a new connection's first packet commits."""
    trace = send(state, vm, packet)
    assert trace.delivered
    zone_label: dict[int, int] = {}
    for step in trace.steps:
        if step.flow is not None and any(type(a) is Ct and a.commit for a in step.flow.actions):
            packet_after = step.packet_out
            zone_label[packet_after.reg6] = packet_after.ct_label
    return zone_label


def test_established_traffic_passes_while_its_rule_stays_and_not_after(cloud, host2):
    first = tcp(cloud, BLUE_4, BLUE_2, 8080)
    labels = committed_labels(host2, BLUE_4, first)
    later = send(host2, BLUE_4, first, conntrack=CT_ESTABLISHED, labels=labels)
    assert delivered_to(later) == {tap_name(BLUE_2)}
    without = state_of(HOST_2, overlay(rules=(EGRESS_ANY, ICMP_IN, SSH_FROM_PREFIX)))
    assert send(without, BLUE_4, first, conntrack=CT_ESTABLISHED, labels=labels).dropped


def test_adding_a_rule_keeps_established_connections(cloud, host2):
    first = tcp(cloud, BLUE_4, BLUE_2, 8080)
    labels = committed_labels(host2, BLUE_4, first)
    more = SecurityGroupRuleView("r5-udp", "ingress", "IPv4", protocol=17)
    grown = state_of(HOST_2, overlay(rules=(*RULES, more)))
    assert delivered_to(send(grown, BLUE_4, first, conntrack=CT_ESTABLISHED,
                             labels=labels)) == {tap_name(BLUE_2)}


def test_an_unknown_established_connection_is_dropped(cloud, host2):
    trace = send(host2, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 8080), conntrack=CT_ESTABLISHED)
    assert trace.dropped


# --- anti-spoofing ----------------------------------------------------------------------------


def spoof_cases(cloud: Cloud) -> dict[str, Packet]:
    good = tcp(cloud, BLUE_4, BLUE_2, 8080)
    me, other = cloud.vm(BLUE_4), cloud.vm(BLUE_2)
    arp = Packet.arp_request(me.mac, me.ip, other.ip)
    return {
        "forged source MAC": replace(good, dl_src="fa:16:3e:99:99:99"),
        "another VM's MAC": replace(good, dl_src=other.mac),
        "a host MAC": replace(good, dl_src="fa:16:3f:00:00:01"),
        "forged source IP": replace(good, nw_src="203.0.113.50"),
        "gratuitous ARP for another VM": replace(arp, arp_spa=other.ip, arp_tpa=other.ip,
                                                 arp_sha=me.mac),
        "ARP with a forged sender MAC": replace(arp, arp_sha="fa:16:3e:99:99:99"),
        "DHCP server reply": replace(good, nw_proto=IPPROTO_UDP, tp_src=67, tp_dst=68),
        "router advertisement": Packet(me.mac, "33:33:00:00:00:01", ETH_TYPE_IPV6,
                                       nw_src="fe80::1", nw_dst="ff02::1",
                                       nw_proto=IPPROTO_ICMPV6, icmp_type=134),
    }


@pytest.mark.parametrize("case", [
    "forged source MAC", "another VM's MAC", "a host MAC", "forged source IP",
    "gratuitous ARP for another VM", "ARP with a forged sender MAC", "DHCP server reply",
    "router advertisement"])
def test_spoofed_frames_end_in_the_egress_base_table(cloud, host2, case):
    trace = send(host2, BLUE_4, spoof_cases(cloud)[case])
    assert trace.dropped
    assert trace.drops[0].table == IntTable.BASE_EGRESS


def test_own_arp_and_dhcp_requests_pass(cloud, host2):
    me, other = cloud.vm(BLUE_4), cloud.vm(BLUE_2)
    arp = replace(Packet.arp_request(me.mac, me.ip, other.ip), arp_sha=me.mac)
    assert tap_name(BLUE_2) in delivered_to(send(host2, BLUE_4, arp))
    discover = Packet(me.mac, "ff:ff:ff:ff:ff:ff", nw_src="0.0.0.0", nw_dst="255.255.255.255",
                      nw_proto=IPPROTO_UDP, tp_src=68, tp_dst=67)
    assert send(host2, BLUE_4, discover).delivered


def test_allowed_address_pairs_pass_exactly(cloud):
    pair_mac, pair_net = "fa:16:3e:77:00:01", "203.0.113.32/28"
    view = overlay().apply(cloud.view(HOST_2))
    ports = tuple(replace(p, allowed_address_pairs=(AddressPair(pair_mac, pair_net),))
                  if p.id == BLUE_4 else p for p in view.ports)
    state = compute_desired_state(replace(view, ports=ports),
                                  HostInputs(plugged=cloud.plugged(HOST_2)))
    good = tcp(cloud, BLUE_4, BLUE_2, 8080)
    pair = replace(good, dl_src=pair_mac, nw_src="203.0.113.33")
    assert tap_name(BLUE_2) in delivered_to(send(state, BLUE_4, good))
    # the pair's MAC with an address of the pair's prefix leaves the port (ICMP is allowed in)
    icmp = replace(pair, nw_proto=1, icmp_type=8, tp_src=None, tp_dst=None)
    assert tap_name(BLUE_2) in delivered_to(send(state, BLUE_4, icmp))
    assert send(state, BLUE_4, replace(icmp, nw_src="203.0.113.60")).dropped
    assert send(state, BLUE_4, replace(icmp, dl_src=cloud.vm(BLUE_4).mac,
                                       nw_src="203.0.113.33")).drops[0].table == 71


# --- routed paths -----------------------------------------------------------------------------


def routed_from_router(cloud: Cloud, dst_port: int) -> Packet:
    """What qr-orange sends after the router namespace routed blue-2 -> orange-1."""
    return replace(Packet.ipv4(IF_ORANGE_MAC, cloud.vm(ORANGE_1).mac, cloud.vm(BLUE_2).ip,
                               cloud.vm(ORANGE_1).ip, IPPROTO_TCP), tp_src=40000,
                   tp_dst=dst_port)


def test_routed_by_the_local_namespace_passes_the_ingress_firewall(cloud, host2):
    pipeline = Pipeline(host2.bridges)
    qr = router_interface_bridge_port_name(IF_ORANGE)
    allowed = pipeline.trace("br-int", qr, routed_from_router(cloud, 8080))
    assert delivered_to(allowed) == {tap_name(ORANGE_1)}
    assert IntTable.RULES_INGRESS in allowed.tables("br-int")
    assert pipeline.trace("br-int", qr, routed_from_router(cloud, 9090)).dropped


def test_dvr_routed_frames_from_the_tunnel_pass_the_ingress_firewall(cloud, host2):
    """br-int table 1 (the DVR delivery) no longer outputs straight to the VIF."""
    host1 = state_of(HOST_1)
    for port, allowed in ((8080, True), (9090, False)):
        sent = Pipeline(host1.bridges).trace(
            "br-int", router_interface_bridge_port_name(IF_ORANGE),
            routed_from_router(cloud, port)).tunnelled[0]
        trace = Pipeline(host2.bridges).receive_from_tunnel(TUNNEL_IP_1, sent.tun_id,
                                                            sent.packet)
        assert (delivered_to(trace) == {tap_name(ORANGE_1)}) is allowed
        assert trace.tables("br-int")[:2] == (0, 1)
        assert IntTable.RULES_INGRESS in trace.tables("br-int")
        if allowed:
            assert trace.delivered[0].packet.dl_src == IF_ORANGE_MAC


def test_cross_host_switched_frames_pass_the_ingress_firewall(cloud, host2):
    host1 = state_of(HOST_1)
    sent = send(host1, BLUE_1, tcp(cloud, BLUE_1, BLUE_2, 8080),
                mac_table={cloud.vm(BLUE_2).mac: "patch-tun"}).tunnelled[0]
    trace = Pipeline(host2.bridges).receive_from_tunnel(TUNNEL_IP_1, sent.tun_id,
                                                         sent.packet)
    assert delivered_to(trace) == {tap_name(BLUE_2)}
    assert IntTable.RULES_INGRESS in trace.tables("br-int")
    sent = send(host1, BLUE_1, tcp(cloud, BLUE_1, BLUE_2, 9090),
                mac_table={cloud.vm(BLUE_2).mac: "patch-tun"}).tunnelled[0]
    assert Pipeline(host2.bridges).receive_from_tunnel(TUNNEL_IP_1, sent.tun_id,
                                                       sent.packet).dropped


# --- routed in br-int by the east/west fast path (issue 13: every path passes the firewall) --


def fast_routed(cloud: Cloud, src: str, dst: str, port: int) -> Packet:
    """What a VM sends to its gateway for ``dst`` on another subnet of the router."""
    return tcp(cloud, src, dst, port, dl_dst=IF_BLUE_MAC, nw_ttl=64)


FAST_PATH_LOCAL = (0, IntTable.BASE_EGRESS, IntTable.RULES_EGRESS, IntTable.ACCEPT_OR_INGRESS,
                   IntTable.TRANSIENT, IntTable.FAST_PATH, IntTable.DVR_TO_SRC_MAC,
                   IntTable.BASE_INGRESS, IntTable.RULES_INGRESS)


def test_fast_path_to_a_local_port_passes_egress_then_the_destinations_ingress(cloud, host2):
    allowed = send(host2, BLUE_2, fast_routed(cloud, BLUE_2, ORANGE_1, 8080))
    assert delivered_to(allowed) == {tap_name(ORANGE_1)}
    assert allowed.tables("br-int") == FAST_PATH_LOCAL
    (delivered,) = allowed.delivered
    assert (delivered.packet.dl_src, delivered.packet.nw_ttl) == (IF_ORANGE_MAC, 63)
    # the ingress firewall runs in the destination network's zone, not the source's
    zones = {s.table: s.packet_in.reg6 for s in allowed.steps if s.bridge == "br-int"}
    orange_vlan = next(f.match.dl_vlan for f in host2.bridge("br-int").flows
                       if f.table == IntTable.DVR_TO_SRC_MAC
                       and f.match.dl_dst == cloud.vm(ORANGE_1).mac)
    assert zones[IntTable.RULES_INGRESS] == orange_vlan != zones[IntTable.RULES_EGRESS]
    refused = send(host2, BLUE_2, fast_routed(cloud, BLUE_2, ORANGE_1, 9090))
    assert refused.dropped and refused.drops[-1].table == IntTable.RULES_INGRESS
    assert refused.tables("br-int") == FAST_PATH_LOCAL


def test_fast_path_sees_only_what_the_egress_firewall_accepted(cloud):
    state = state_of(HOST_2, overlay(rules=tuple(r for r in RULES if r != EGRESS_ANY)))
    trace = send(state, BLUE_2, fast_routed(cloud, BLUE_2, ORANGE_1, 8080))
    assert trace.dropped and trace.drops[-1].table == IntTable.RULES_EGRESS
    assert IntTable.FAST_PATH not in trace.tables("br-int")


def test_fast_path_to_a_remote_port_passes_the_remote_hosts_ingress_firewall(cloud, host2):
    host1 = state_of(HOST_1)
    for port, allowed in ((8080, True), (9090, False)):
        sent = send(host1, BLUE_1, fast_routed(cloud, BLUE_1, ORANGE_1, port))
        assert sent.tables("br-int")[:6] == FAST_PATH_LOCAL[:6]
        (tunnelled,) = sent.tunnelled
        trace = Pipeline(host2.bridges).receive_from_tunnel(TUNNEL_IP_1, tunnelled.tun_id,
                                                            tunnelled.packet)
        assert trace.tables("br-int")[:2] == (0, IntTable.DVR_TO_SRC_MAC)
        assert IntTable.RULES_INGRESS in trace.tables("br-int")
        assert (delivered_to(trace) == {tap_name(ORANGE_1)}) is allowed


def test_the_firewall_and_the_fast_path_use_different_registers_and_owner_kinds(host2):
    flows = host2.bridge("br-int").flows
    fast = [f for f in flows if f.owner.startswith("fastpath:")]
    firewall_tables = {IntTable.BASE_EGRESS, IntTable.RULES_EGRESS, IntTable.ACCEPT_OR_INGRESS,
                       IntTable.BASE_INGRESS, IntTable.RULES_INGRESS}
    walled = [f for f in flows if f.table in firewall_tables]
    assert fast and walled
    assert not any(f.match.reg6 is not None for f in fast)
    assert not any(f.match.registers for f in walled)
    assert {f.cookie >> 60 for f in fast}.isdisjoint({f.cookie >> 60 for f in walled})


# --- port security off, stateless groups ----------------------------------------------------


def test_port_security_off_means_no_firewall_and_no_anti_spoofing(cloud):
    state = state_of(HOST_2, overlay(unsecured=frozenset({BLUE_2, BLUE_4})))
    owned = {f for f in state.bridge("br-int").flows if f.owner == f"port:{BLUE_2}"}
    assert {f.table for f in owned} == {0, 1}  # its zone flow and its DVR delivery
    spoofed = spoof_cases(cloud)["forged source IP"]
    assert tap_name(BLUE_2) in delivered_to(send(state, BLUE_4, replace(spoofed, tp_dst=9090)))


def test_stateless_groups_use_no_conntrack_and_match_both_ways(cloud):
    state = state_of(HOST_2, overlay(stateful=False))
    owned = [f for f in state.bridge("br-int").flows if f.owner == f"port:{BLUE_2}"]
    assert not any(type(a) is Ct for f in owned for a in f.actions)
    assert not any(f.match.ct_state for f in owned)
    assert delivered_to(send(state, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 8080))) == {
        tap_name(BLUE_2)}
    assert send(state, BLUE_4, tcp(cloud, BLUE_4, BLUE_2, 9090)).dropped


# --- structure: conjunctions keep flows linear ----------------------------------------------


def fifty_rules() -> tuple[SecurityGroupRuleView, ...]:
    return tuple(SecurityGroupRuleView(f"r{i:02d}", "ingress", "IPv4", protocol=6,
                                       port_range_min=1000 + i, port_range_max=1000 + i,
                                       remote_group_id=GROUP) for i in range(50))


def group_view(rules, members: int, ports: int = 1) -> tuple[HostView, HostInputs]:
    """``ports`` firewalled ports of one network on this host, in one group of ``rules``
    whose remote set has ``members`` addresses."""
    group = SecurityGroupView(GROUP, True, rules)
    addresses = tuple(f"198.18.{i // 250}.{i % 250 + 1}/32" for i in range(members))
    port_views = tuple(
        PortView(f"p{i:03d}", "net", f"fa:16:3e:00:00:{i:02x}",
                 (FixedIp("s", f"203.0.113.{i + 1}"),), "compute:nova", f"vm{i}", "h",
                 port_security_enabled=True,
                 security_group_ids=(GROUP,)) for i in range(ports))
    view = HostView(
        host="h", revision=1, agent_mode="dvr", host_mac="fa:16:3f:00:00:01",
        tunnel_ip="198.18.255.1", ports=port_views,
        networks=(NetworkView("net", "net", "vxlan", 100, 1450, False, None,
                              (SubnetView("s", "net", "203.0.113.0/24", None, 4),), ()),),
        routers=(), peer_host_macs=(), security_groups=(group,),
        address_sets=(AddressSetView(GROUP, "security_group", addresses),))
    return view, HostInputs(plugged={p.id: f"tap{p.id}" for p in port_views})


def group_host(rules, members: int, ports: int = 1) -> DesiredState:
    return compute_desired_state(*group_view(rules, members, ports))


def owned_counts(state: DesiredState) -> Counter[str]:
    return Counter(f.owner for f in state.bridge("br-int").flows)


def test_port_flows_grow_with_rules_only_and_addresses_are_shared_per_network():
    small, large = (owned_counts(group_host(fifty_rules(), n)) for n in (10, 200))
    assert small["port:p000"] == large["port:p000"]  # members cost the port nothing
    # one shared address flow per member, one shared protocol flow per rule
    assert large["firewall:net"] - small["firewall:net"] == 190
    assert large["firewall:net"] == 200 + 50
    one_rule = owned_counts(group_host(fifty_rules()[:1], 200))
    # per rule the port owns its admission and its established traffic, both directions
    assert large["port:p000"] - one_rule["port:p000"] == 49 * 3
    many = owned_counts(group_host(fifty_rules(), 200, ports=20))
    assert many["firewall:net"] == large["firewall:net"]
    assert {many[f"port:p{i:03d}"] for i in range(20)} == {large["port:p000"]}
    print(f"flows per port, 50-rule remote-group set, 200 members: {large['port:p000']} "
          f"own + {large['firewall:net']} shared per network")


def test_a_member_address_flow_carries_every_rule_of_its_set():
    state = group_host(fifty_rules()[:3], 2, ports=2)
    (flow,) = [f for f in state.bridge("br-int").flows if f.match.nw_src == "198.18.0.1/32"]
    (action,) = flow.actions
    assert type(action) is Conjunction and (action.clause, action.n_clauses) == (3, 3)
    assert len(action.ids) == 3 and flow.owner == "firewall:net"


def test_conjunctions_are_what_ovs_accepts(host2):
    assert conjunction_problems(host2.bridge("br-int").flows) == []
    assert conjunction_problems(group_host(fifty_rules(), 20, ports=5).bridge("br-int").flows) == []


def test_one_port_range_in_two_rules_is_one_shared_flow_naming_both():
    rules = (SecurityGroupRuleView("a", "ingress", "IPv4", protocol=6, port_range_min=64,
                                   port_range_max=87, remote_group_id=GROUP),
             SecurityGroupRuleView("b", "ingress", "IPv4", protocol=6, port_range_min=80,
                                   port_range_max=87, remote_ip_prefix="198.51.100.0/24"))
    flows = group_host(rules, 3, ports=2).bridge("br-int").flows
    assert conjunction_problems(flows) == []
    (shared,) = [f for f in flows if f.match.tp_dst == 80 and f.match.reg6 is not None]
    assert len(shared.actions[0].ids) == 2


def test_a_rule_change_recomputes_its_rule_and_clause_pieces_not_the_ports():
    view, inputs = group_view(fifty_rules()[:3], 5, ports=3)
    cache = DesiredStateCache()
    cache.update(view, inputs)
    group = view.security_groups[0]
    rule = SecurityGroupRuleView("r-udp", "ingress", "IPv4", protocol=17, port_range_min=53,
                                 port_range_max=53)
    grown = replace(view, security_groups=(replace(group, rules=(*group.rules, rule)),))
    state = cache.update(grown, inputs)
    assert state == compute_desired_state(grown, inputs)
    kinds = Counter(label.split(":")[0] for label in cache.last_stats.recomputed)
    assert kinds == {"fwport": 3, "fwrule": 3, "firewall": 1}


def test_a_membership_change_recomputes_only_the_networks_shared_clauses():
    view, inputs = group_view(fifty_rules()[:3], 5, ports=3)
    cache = DesiredStateCache()
    before = cache.update(view, inputs)
    (members,) = view.address_sets
    joined = replace(view, address_sets=(replace(
        members, cidrs=(*members.cidrs, "198.51.100.7/32")),))
    after = cache.update(joined, inputs)
    assert after == compute_desired_state(joined, inputs)
    assert cache.last_stats.recomputed == ("firewall:net",)
    (new,) = after.bridge("br-int").flows - before.bridge("br-int").flows
    assert new.match.nw_src == "198.51.100.7/32" and new.owner == "firewall:net"


def test_port_ranges_become_aligned_masks():
    assert port_range_masks(80, 80) == ((80, 0xFFFF),)
    assert port_range_masks(1000, 1999) == (
        (1000, 0xFFF8), (1008, 0xFFF0), (1024, 0xFE00), (1536, 0xFF00), (1792, 0xFF80),
        (1920, 0xFFC0), (1984, 0xFFF0))
    covered = {p for v, m in port_range_masks(1000, 1999) for p in range(65536) if p & m == v}
    assert covered == set(range(1000, 2000))
    assert port_range_masks(0, 65535) == ((0, 0),)


def test_selectors_merge_equal_rules_of_two_groups_and_drop_impossible_ones():
    same = SecurityGroupRuleView("x", "ingress", "IPv4", protocol=6, port_range_min=22,
                                 port_range_max=22)
    wrong_family = SecurityGroupRuleView("y", "ingress", "IPv4", remote_ip_prefix="2001:db8::/64")
    found = port_selectors((SecurityGroupView("g1", True, (same, wrong_family)),
                            SecurityGroupView("g2", True, (replace(same, id="z"),))))
    assert list(found.values()) == [(RuleRef("g1", "x"), RuleRef("g2", "z"))]
    assert selector_of(wrong_family) is None
    everything = SecurityGroupRuleView("w", "ingress", "IPv4", protocol=6, port_range_min=1,
                                       port_range_max=65535, remote_ip_prefix="0.0.0.0/0")
    assert selector_of(everything) == Selector("ingress", "IPv4", protocol=6)


def test_arp_is_not_tracked_and_ip_is(host2):
    owned = [f for f in host2.bridge("br-int").flows
             if f.owner == f"port:{BLUE_2}" and f.table == IntTable.BASE_EGRESS]
    arp = [f for f in owned if f.match.proto == "arp"]
    assert arp and not any(type(a) is Ct for f in arp for a in f.actions)
    ip = [f for f in owned if f.match.proto == "ip"]
    assert ip and all(any(type(a) is Ct for a in f.actions) for f in ip)


# --- explanations (dvr flows --explain) -----------------------------------------------------


def test_every_firewall_flow_is_explained_and_rule_flows_name_group_and_rule(cloud, host2):
    view = overlay(cloud=cloud).apply(cloud.view(HOST_2))
    rules = RuleIndex(view)
    owned = [f for f in host2.bridge("br-int").flows
             if f.owner == f"port:{BLUE_2}" or f.owner.startswith("firewall:")]
    texts = {f: explain_firewall_flow(f, rules) for f in owned}
    assert all(texts.values()), [f for f, t in texts.items() if not t]
    clauses = [t for f, t in texts.items() if f.priority == PRIO_FW_CONJUNCTION]
    assert clauses and all("group sg-a rule r" in t for t in clauses)
    assert any(t.startswith("firewall ingress: the remote address (shared by the network's "
                            "ports) of group sg-a rule r3-8080") for t in clauses)
    admitted = [t for f, t in texts.items() if f.priority == PRIO_FW_RULE
                and f.table == IntTable.RULES_INGRESS]
    assert any("group sg-a rule r3-8080 (ingress IPv4 tcp 8080-8080 from security group "
               "sg-a)" in t for t in admitted)
    assert any("group sg-a rule r4-ssh (ingress IPv4 tcp 22-22 from 198.18.0.0/24)" in t
               for t in admitted)
    gone = state_of(HOST_2, overlay(rules=(EGRESS_ANY,)))
    base = [f for f in gone.bridge("br-int").flows if f.owner == "bridge:br-int"]
    miss = next(f for f in base if f.table == 82 and f.priority == 0)
    assert explain_firewall_flow(miss, rules) == (
        "firewall ingress: no rule of the port's groups allows it")

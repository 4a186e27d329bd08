"""br-tun folded into br-int (``tunnel_layout = "folded"``): the same flows at an offset, and
the same packet behaviour, asserted through the OpenFlow simulator against the bridge layout."""

from __future__ import annotations

import pytest
from desired_scenarios import (
    BLUE_1,
    BLUE_2,
    BLUE_VNI,
    GREEN_VNI,
    HOST_1,
    HOST_2,
    HOST_3,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE_1,
    ORANGE_VNI,
    TUNNEL_IP_1,
    TUNNEL_IP_2,
    TUNNEL_IP_3,
    Cloud,
    east_west_cloud,
    tap_name,
)

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.folding import (
    PRIO_FOLDED_PORT,
    TUNNEL_TABLE_OFFSET,
    fold_piece,
    folded_flow,
    is_folded_port,
)
from dvr.agent.desired.names import router_interface_bridge_port_name
from dvr.agent.desired.openflow import Ct, Match, Output, Resubmit
from dvr.agent.desired.state import DesiredState, Flow, OvsPort
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.trace.ofsim import Packet, Pipeline, Trace

BRIDGE = DesiredConfig()
FOLDED = DesiredConfig(tunnel_layout="folded")
HOSTS = (HOST_1, HOST_2, HOST_3)
TUNNEL_IPS = {HOST_1: TUNNEL_IP_1, HOST_2: TUNNEL_IP_2, HOST_3: TUNNEL_IP_3}


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return east_west_cloud()


def desired(cloud: Cloud, host: str, config: DesiredConfig) -> DesiredState:
    return compute_desired_state(cloud.view(host), HostInputs(plugged=cloud.plugged(host)),
                                 config)


def test_a_folded_flow_keeps_all_but_its_tables():
    flow = Flow(4, 1, Match(tun_id=7), (Resubmit(9), Ct(table=3), Output("patch-int")),
                "network:n")
    folded = folded_flow(flow)
    assert folded.table == 4 + TUNNEL_TABLE_OFFSET
    assert folded.actions == (Resubmit(9 + TUNNEL_TABLE_OFFSET),
                              Ct(table=3 + TUNNEL_TABLE_OFFSET), Output("patch-int"))
    assert (folded.priority, folded.match, folded.owner) == (1, Match(tun_id=7), "network:n")


def test_a_piece_without_br_tun_is_left_as_it_is():
    flows = (("br-int", (Flow(0, 1, Match(), (Resubmit(60),), "bridge:br-int"),)),)
    ports = (("br-int", (OvsPort("tap1", tag=3, managed=False),)),)
    assert fold_piece(flows, ports, FOLDED) == (flows, ports)


def test_br_tun_ports_go_to_br_int_on_the_dead_vlan_with_a_dispatch_flow_each():
    vxlan = OvsPort("vxlan-1", type="vxlan", options=(("remote_ip", "198.51.100.9"),))
    patch = OvsPort("patch-int", type="patch", options=(("peer", "patch-tun"),))
    flows, ports = fold_piece((), (("br-tun", (vxlan, patch)),), FOLDED)
    assert ports == (("br-int", (OvsPort("vxlan-1", type="vxlan", tag=DEAD_VLAN,
                                         options=(("remote_ip", "198.51.100.9"),)),
                                 OvsPort("patch-int", type="patch", tag=DEAD_VLAN,
                                         options=(("peer", "patch-tun"),)))),)
    ((bridge, dispatch),) = flows
    assert bridge == "br-int"
    assert [(f.table, f.priority, f.match.in_port, f.actions, f.owner) for f in dispatch] == [
        (0, PRIO_FOLDED_PORT, "vxlan-1", (Resubmit(TUNNEL_TABLE_OFFSET),),
         "tunnel:198.51.100.9"),
        (0, PRIO_FOLDED_PORT, "patch-int", (Resubmit(TUNNEL_TABLE_OFFSET),), "bridge:br-tun"),
    ]


@pytest.mark.parametrize("host", HOSTS)
def test_the_folded_switch_holds_exactly_both_bridges_flows_and_ports(cloud, host):
    apart, folded = desired(cloud, host, BRIDGE), desired(cloud, host, FOLDED)
    assert [b.name for b in folded.bridges] == ["br-int"]
    integration, tunnel = apart.bridge("br-int"), apart.bridge("br-tun")
    dispatch = {f for f in folded.bridge("br-int").flows if f.priority == PRIO_FOLDED_PORT}
    assert {f.match.in_port for f in dispatch} == {p.name for p in tunnel.ports}
    assert folded.bridge("br-int").flows == (
        integration.flows | {folded_flow(f) for f in tunnel.flows} | dispatch)
    assert {p.name: p.tag for p in folded.bridge("br-int").ports} == {
        **{p.name: p.tag for p in integration.ports},
        **{p.name: DEAD_VLAN for p in tunnel.ports}}
    assert {p.name for p in folded.bridge("br-int").ports if is_folded_port(p)} == {
        p.name for p in tunnel.ports}
    assert max(f.table for f in integration.flows) < TUNNEL_TABLE_OFFSET
    assert max(f.priority for f in integration.flows if f.table == 0) < PRIO_FOLDED_PORT
    assert folded.local_vlans == apart.local_vlans and folded.namespaces == apart.namespaces


def outcome(trace: Trace) -> tuple:
    """What left the switch (bridge names aside: br-tun's ports are br-int's when folded)."""
    return (sorted((d.port, repr(d.packet)) for d in trace.delivered),
            sorted((t.port, t.remote_ip, t.tun_id, repr(t.packet)) for t in trace.tunnelled),
            bool(trace.dropped))


def frames(cloud: Cloud) -> list[Packet]:
    blue_1, blue_2, orange_1 = cloud.vm(BLUE_1), cloud.vm(BLUE_2), cloud.vm(ORANGE_1)
    return [
        Packet.ipv4(blue_1.mac, blue_2.mac, blue_1.ip, blue_2.ip),  # same subnet
        Packet.ipv4(IF_ORANGE_MAC, orange_1.mac, blue_1.ip, orange_1.ip),  # routed
        Packet.ipv4(IF_BLUE_MAC, blue_1.mac, orange_1.ip, blue_1.ip),  # routed back
        Packet.ipv4(blue_2.mac, "ff:ff:ff:ff:ff:ff", blue_2.ip, "203.0.113.63"),  # flood
        Packet.arp_request(blue_1.mac, blue_1.ip, blue_2.ip),
        Packet.ipv4(blue_1.mac, IF_BLUE_MAC, blue_1.ip, orange_1.ip),  # to the gateway
    ]


@pytest.mark.parametrize("host", HOSTS)
def test_every_frame_leaves_a_folded_host_as_it_leaves_a_host_with_br_tun(cloud, host):
    """From each VM and router port, and from each tunnel with each network's VNI."""
    apart = Pipeline(desired(cloud, host, BRIDGE).bridges)
    folded = Pipeline(desired(cloud, host, FOLDED).bridges)
    entries = [p.name for p in desired(cloud, host, BRIDGE).bridge("br-int").ports
               if p.type != "patch"]
    assert tap_name(BLUE_1) in entries or host != HOST_1
    assert router_interface_bridge_port_name(IF_ORANGE) in entries or host == HOST_3
    compared = 0
    for frame in frames(cloud):
        for port in entries:
            assert outcome(folded.trace("br-int", port, frame)) == \
                outcome(apart.trace("br-int", port, frame)), (port, frame)
            compared += 1
        for remote in (ip for h, ip in TUNNEL_IPS.items() if h != host):
            for vni in (BLUE_VNI, ORANGE_VNI, GREEN_VNI):
                assert outcome(folded.receive_from_tunnel(remote, vni, frame)) == \
                    outcome(apart.receive_from_tunnel(remote, vni, frame)), (remote, vni)
                compared += 1
    assert compared > 40


def test_a_routed_frame_crosses_the_folded_tunnel_tables(cloud):
    host1 = Pipeline(desired(cloud, HOST_1, FOLDED).bridges)
    routed = Packet.ipv4(IF_ORANGE_MAC, cloud.vm(ORANGE_1).mac, cloud.vm(BLUE_1).ip,
                         cloud.vm(ORANGE_1).ip)
    trace = host1.trace("br-int", router_interface_bridge_port_name(IF_ORANGE), routed)
    (out,) = trace.tunnelled
    assert out.remote_ip == TUNNEL_IP_2 and out.tun_id == ORANGE_VNI
    # br-int, then (through the patch pair on br-int) br-tun's tables 0, 1, 2, 20
    assert trace.tables("br-int") == (0, 60, 0, *(t + TUNNEL_TABLE_OFFSET for t in (0, 1, 2, 20)))
    assert trace.tables("br-tun") == ()

"""Packet behaviour of the desired flows (DVR.md §5), asserted through the OpenFlow simulator."""

from __future__ import annotations

import pytest
from desired_scenarios import (
    BLUE,
    BLUE_1,
    BLUE_2,
    BLUE_3,
    BLUE_VNI,
    GREEN,
    GREEN_1,
    GREEN_VNI,
    HOST_1,
    HOST_2,
    HOST_3,
    HOST_MAC_1,
    IF_BLUE,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE,
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
from dvr.agent.desired.names import router_interface_bridge_port_name, vxlan_port_name
from dvr.agent.desired.state import DesiredState
from dvr.trace.ofsim import Packet, Pipeline, Trace

DEFAULT = DesiredConfig()


def desired(cloud: Cloud, host: str, config: DesiredConfig = DEFAULT) -> DesiredState:
    return compute_desired_state(cloud.view(host), HostInputs(plugged=cloud.plugged(host)),
                                 config)


def pipeline(state: DesiredState) -> Pipeline:
    return Pipeline(state.bridges)


def vlan_of(state: DesiredState, network_id: str) -> int:
    return dict(state.local_vlans)[network_id]


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return east_west_cloud()


@pytest.fixture(scope="module")
def host1(cloud: Cloud) -> DesiredState:
    return desired(cloud, HOST_1)


@pytest.fixture(scope="module")
def host2(cloud: Cloud) -> DesiredState:
    return desired(cloud, HOST_2)


@pytest.fixture(scope="module")
def host3(cloud: Cloud) -> DesiredState:
    return desired(cloud, HOST_3)


def routed_frame_from_local_router(cloud: Cloud) -> Packet:
    """What qr-orange on host 1 sends after routing blue-1 -> orange-1 (DVR.md §5 step 2)."""
    return Packet.ipv4(IF_ORANGE_MAC, cloud.vm(ORANGE_1).mac, cloud.vm(BLUE_1).ip,
                       cloud.vm(ORANGE_1).ip)


def test_routed_frame_leaves_host_with_host_mac_to_destination_host(cloud, host1):
    trace = pipeline(host1).trace(
        "br-int", router_interface_bridge_port_name(IF_ORANGE),
        routed_frame_from_local_router(cloud),
    )
    assert not trace.delivered
    (out,) = trace.tunnelled
    assert out.port == vxlan_port_name(TUNNEL_IP_2)
    assert out.remote_ip == TUNNEL_IP_2 and out.local_ip == TUNNEL_IP_1
    assert out.tun_id == ORANGE_VNI
    assert out.packet.dl_src == HOST_MAC_1
    assert out.packet.dl_dst == cloud.vm(ORANGE_1).mac
    assert out.packet.dl_vlan is None
    assert trace.tables("br-tun") == (0, 1, 2, 20)


def test_routed_frame_is_delivered_on_destination_host_with_gateway_mac(cloud, host1, host2):
    sent = pipeline(host1).trace(
        "br-int", router_interface_bridge_port_name(IF_ORANGE),
        routed_frame_from_local_router(cloud),
    ).tunnelled[0]
    trace = pipeline(host2).receive_from_tunnel(TUNNEL_IP_1, sent.tun_id, sent.packet)
    (delivered,) = trace.delivered
    assert delivered.port == tap_name(ORANGE_1)
    assert delivered.packet.dl_src == IF_ORANGE_MAC  # gateway MAC restored
    assert delivered.packet.dl_dst == cloud.vm(ORANGE_1).mac
    assert delivered.packet.dl_vlan is None
    assert not trace.tunnelled
    assert trace.tables("br-tun") == (0, 4, 9)
    assert trace.tables("br-int") == (0, 1)
    assert {"hostmac:" + HOST_1, "port:" + ORANGE_1} <= set(trace.owners())


def test_full_east_west_walk_vm_to_vm(cloud):
    """Blue VM -> its gateway (local router) ...; here the VM's frame to the gateway MAC
    (east/west in the namespace: the fast path's own walk is in test_fast_path.py)."""
    blue_1 = cloud.vm(BLUE_1)
    to_gateway = Packet.ipv4(blue_1.mac, IF_BLUE_MAC, blue_1.ip, cloud.vm(ORANGE_1).ip)
    host1 = desired(cloud, HOST_1, DesiredConfig(east_west="namespace"))
    trace = pipeline(host1).trace(
        "br-int", tap_name(BLUE_1), to_gateway,
        mac_table={IF_BLUE_MAC: router_interface_bridge_port_name(IF_BLUE)},
    )
    # the frame reaches the local router and nothing leaves the host
    assert [d.port for d in trace.delivered] == [router_interface_bridge_port_name(IF_BLUE)]
    assert not trace.tunnelled


def test_frame_to_gateway_mac_never_leaves_host_even_when_flooded(cloud, host1):
    blue_1 = cloud.vm(BLUE_1)
    to_gateway = Packet.ipv4(blue_1.mac, IF_BLUE_MAC, blue_1.ip, "203.0.113.200")
    trace = pipeline(host1).trace("br-int", tap_name(BLUE_1), to_gateway)  # unknown: flood
    assert router_interface_bridge_port_name(IF_BLUE) in {d.port for d in trace.delivered}
    assert not trace.tunnelled


@pytest.mark.parametrize("host", [HOST_1, HOST_2, HOST_3])
def test_arp_for_gateway_ip_never_leaves_the_host(cloud, host):
    state = desired(cloud, host)
    vm = next(v for v in cloud.vms if v.host == host and v.network_id == BLUE)
    arp = Packet.arp_request(vm.mac, vm.ip, cloud.net(BLUE).gateway_ip)
    trace = pipeline(state).trace("br-int", tap_name(vm.id), arp)
    assert not trace.tunnelled
    assert router_interface_bridge_port_name(IF_BLUE) in {d.port for d in trace.delivered}
    assert any(d.flow is not None and d.flow.owner.startswith("subnet:") for d in trace.drops)


def test_arp_for_other_vm_is_flooded_to_the_network_hosts(cloud, host1):
    blue_1 = cloud.vm(BLUE_1)
    arp = Packet.arp_request(blue_1.mac, blue_1.ip, cloud.vm(BLUE_2).ip)
    trace = pipeline(host1).trace("br-int", tap_name(BLUE_1), arp)
    assert {t.remote_ip for t in trace.tunnelled} == {TUNNEL_IP_2, TUNNEL_IP_3}
    assert {t.tun_id for t in trace.tunnelled} == {BLUE_VNI}
    assert all(t.packet.dl_src == blue_1.mac for t in trace.tunnelled)  # not routed: no rewrite


def test_same_subnet_cross_host_unicast_goes_via_table_20(cloud, host1, host2):
    blue_1, blue_2 = cloud.vm(BLUE_1), cloud.vm(BLUE_2)
    frame = Packet.ipv4(blue_1.mac, blue_2.mac, blue_1.ip, blue_2.ip)
    trace = pipeline(host1).trace("br-int", tap_name(BLUE_1), frame)
    (out,) = trace.tunnelled
    assert out.remote_ip == TUNNEL_IP_2 and out.tun_id == BLUE_VNI
    assert out.packet.dl_src == blue_1.mac  # bridged, not routed: source untouched
    assert trace.tables("br-tun") == (0, 1, 2, 20)
    assert trace.steps[-1].flow is not None and trace.steps[-1].flow.table == 20
    arrived = pipeline(host2).receive_from_tunnel(TUNNEL_IP_1, out.tun_id, out.packet,
                                                  mac_table={blue_2.mac: tap_name(BLUE_2)})
    (delivered,) = arrived.delivered
    assert delivered.port == tap_name(BLUE_2) and delivered.packet.dl_src == blue_1.mac
    assert arrived.tables("br-tun") == (0, 4, 9, 10)


def test_broadcast_floods_exactly_to_the_hosts_of_that_network(cloud, host2, host3):
    blue_2 = cloud.vm(BLUE_2)
    trace = pipeline(host2).trace(
        "br-int", tap_name(BLUE_2), Packet.ipv4(blue_2.mac, "ff:ff:ff:ff:ff:ff", blue_2.ip,
                                                "203.0.113.63"),
    )
    assert sorted(t.remote_ip for t in trace.tunnelled) == [TUNNEL_IP_1, TUNNEL_IP_3]
    # green lives only on host 3: its broadcast goes nowhere else
    green_1 = cloud.vm(GREEN_1)
    trace = pipeline(host3).trace(
        "br-int", tap_name(GREEN_1), Packet.ipv4(green_1.mac, "ff:ff:ff:ff:ff:ff", green_1.ip,
                                                 "203.0.113.191"),
    )
    assert not trace.tunnelled
    assert GREEN not in dict(desired(cloud, HOST_1).local_vlans)
    assert GREEN_VNI not in {t.tun_id for t in trace.tunnelled}


def test_unknown_vni_from_tunnel_is_dropped(cloud, host1):
    frame = Packet.ipv4("fa:16:3e:99:99:99", cloud.vm(BLUE_1).mac, "203.0.113.50",
                        cloud.vm(BLUE_1).ip)
    trace = pipeline(host1).receive_from_tunnel(TUNNEL_IP_2, GREEN_VNI, frame)
    assert trace.dropped
    assert trace.tables("br-tun") == (0, 4)


def test_frame_from_unknown_tunnel_endpoint_has_no_port(cloud, host1):
    frame = Packet.ipv4("fa:16:3e:99:99:99", "ff:ff:ff:ff:ff:ff", "203.0.113.50",
                        "203.0.113.63")
    trace = pipeline(host1).receive_from_tunnel("198.51.100.99", BLUE_VNI, frame)
    assert trace.dropped


def test_incoming_tunnel_frame_reaches_local_vm_through_normal(cloud, host1):
    """Same-subnet frame from blue-3 (host 3) to blue-1: no host MAC, so table 10 -> NORMAL."""
    blue_1, blue_3 = cloud.vm(BLUE_1), cloud.vm(BLUE_3)
    frame = Packet.ipv4(blue_3.mac, blue_1.mac, blue_3.ip, blue_1.ip)
    trace = pipeline(host1).receive_from_tunnel(TUNNEL_IP_3, BLUE_VNI, frame,
                                                mac_table={blue_1.mac: tap_name(BLUE_1)})
    (delivered,) = trace.delivered
    assert delivered.port == tap_name(BLUE_1)
    assert delivered.packet.dl_vlan is None and delivered.packet.dl_src == blue_3.mac


def test_reply_takes_the_mirror_path(cloud, host1, host2):
    """orange-1 answers: routed on host 2 by its own qr-blue, arrives on host 1 as host-2 MAC."""
    orange_1, blue_1 = cloud.vm(ORANGE_1), cloud.vm(BLUE_1)
    routed = Packet.ipv4(IF_BLUE_MAC, blue_1.mac, orange_1.ip, blue_1.ip)
    sent = pipeline(host2).trace("br-int", router_interface_bridge_port_name(IF_BLUE), routed)
    (out,) = sent.tunnelled
    assert out.remote_ip == TUNNEL_IP_1 and out.tun_id == BLUE_VNI
    assert out.packet.dl_src != IF_BLUE_MAC
    arrived = pipeline(host1).receive_from_tunnel(TUNNEL_IP_2, out.tun_id, out.packet)
    (delivered,) = arrived.delivered
    assert delivered.port == tap_name(BLUE_1) and delivered.packet.dl_src == IF_BLUE_MAC


def test_removed_vm_is_no_longer_reachable_by_routed_frames(cloud):
    without = cloud.without_vm(ORANGE_1).with_vm(
        # keep host 2 hosting the router through another orange VM
        type(cloud.vm(ORANGE_1))("c2000000-0000-0000-0000-000000000002", ORANGE,
                                 "fa:16:3e:00:02:02", "203.0.113.76", HOST_2)
    )
    host1 = desired(without, HOST_1)
    trace = pipeline(host1).trace(
        "br-int", router_interface_bridge_port_name(IF_ORANGE),
        routed_frame_from_local_router(cloud),
    )
    # no L2-pop entry for the removed MAC any more: flooded (unknown unicast) to orange hosts
    assert {t.remote_ip for t in trace.tunnelled} == {TUNNEL_IP_2, TUNNEL_IP_3}
    assert all(t.packet.dl_src == HOST_MAC_1 for t in trace.tunnelled)


def _all_traces_terminate(trace: Trace) -> bool:
    return bool(trace.outcomes)


def test_every_local_port_and_every_tunnel_entry_terminates(cloud, host1, host2, host3):
    for state in (host1, host2, host3):
        sim = pipeline(state)
        for bridge in state.bridges:
            for port in bridge.ports:
                frame = Packet.ipv4("fa:16:3e:12:34:56", "ff:ff:ff:ff:ff:ff", "203.0.113.5",
                                    "203.0.113.6")
                assert _all_traces_terminate(sim.trace(bridge.name, port.name, frame))

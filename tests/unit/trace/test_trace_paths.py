"""Traced paths over desired states built in memory (DVR.md §5): east/west and same subnet,
both directions, same host and cross host."""

from __future__ import annotations

import pytest

from dvr.agent.desired.names import (
    router_interface_bridge_port_name,
    router_interface_device_name,
    router_namespace_name,
    vxlan_port_name,
)
from dvr.trace.hosts import HostData, LazyHostData
from dvr.trace.steps import (
    DeliveryStep,
    NamespaceStep,
    OpenFlowStep,
    SendStep,
    Trace,
    TraceRequest,
    TunnelStep,
)
from dvr.trace.tracer import trace_packet
from tests.unit.desired.desired_scenarios import (
    BLUE,
    BLUE_1,
    BLUE_2,
    BLUE_VNI,
    HOST_1,
    HOST_2,
    HOST_MAC_1,
    HOST_MAC_2,
    IF_BLUE,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE_1,
    ORANGE_VNI,
    ROUTER,
    TUNNEL_IP_1,
    TUNNEL_IP_2,
    Vm,
    east_west_cloud,
    tap_name,
)
from tests.unit.trace.trace_scenarios import NAMESPACE_PATH, east_west_hosts

CLOUD = east_west_cloud()
BLUE_4 = "b4000000-0000-0000-0000-000000000004"  # a second blue VM on compute-1


@pytest.fixture(scope="module")
def hosts() -> dict[str, HostData]:
    """Every routed packet through the namespace (the east/west fast path is off): the
    fast path's own walk is in test_trace_fast_path.py."""
    return east_west_hosts(config=NAMESPACE_PATH)


def kinds(trace: Trace) -> list[str]:
    return [s.kind for s in trace.steps]


def step(trace: Trace, kind: type, index: int = 0):
    return [s for s in trace.steps if isinstance(s, kind)][index]


def flow_step(trace: Trace, host: str, bridge: str, table: int) -> OpenFlowStep:
    return next(s for s in trace.openflow_steps()
                if (s.host, s.bridge, s.table) == (host, bridge, table))


# the routed east/west walk of DVR.md §5, blue-1 (compute-1) -> orange-1 (compute-2)
ROUTED_BLUE_1_TO_ORANGE_1 = (
    (HOST_1, "br-int", 0), (HOST_1, "br-int", 60),  # to the local qr-blue
    (HOST_1, "br-int", 0), (HOST_1, "br-int", 60),  # from qr-orange towards br-tun
    (HOST_1, "br-tun", 0), (HOST_1, "br-tun", 1), (HOST_1, "br-tun", 2), (HOST_1, "br-tun", 20),
    (HOST_2, "br-tun", 0), (HOST_2, "br-tun", 4), (HOST_2, "br-tun", 9),
    (HOST_2, "br-int", 0), (HOST_2, "br-int", 1),
)


def test_routed_cross_host_walks_the_dvr_east_west_path(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.path() == ROUTED_BLUE_1_TO_ORANGE_1
    assert kinds(trace) == (["send", "openflow", "openflow", "namespace"] + ["openflow"] * 6
                            + ["tunnel"] + ["openflow"] * 5 + ["delivery"])
    assert trace.delivered
    assert trace.verdict.host == HOST_2
    assert trace.verdict.where == f"{tap_name(ORANGE_1)} on br-int"


def test_source_vm_sends_to_its_gateway_mac(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    send = step(trace, SendStep)
    assert send.host == HOST_1 and send.ovs_port == tap_name(BLUE_1)
    assert send.packet.dl_src == CLOUD.vm(BLUE_1).mac
    assert send.packet.dl_dst == IF_BLUE_MAC
    assert send.packet.nw_src == CLOUD.vm(BLUE_1).ip
    assert send.packet.nw_dst == CLOUD.vm(ORANGE_1).ip
    first = trace.openflow_steps()[0]
    assert first.in_port == tap_name(BLUE_1)
    assert "qrb-" + IF_BLUE[:11] in trace.openflow_steps()[1].note  # NORMAL -> local router


def test_routed_on_the_source_host_with_static_arp(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    routed = step(trace, NamespaceStep)
    assert routed.host == HOST_1
    assert routed.namespace == router_namespace_name(ROUTER)
    assert routed.owner == f"router:{ROUTER}"
    assert routed.in_device == router_interface_device_name(IF_BLUE)
    assert routed.out_device == router_interface_device_name(IF_ORANGE)
    assert routed.route.destination == CLOUD.net(CLOUD.vm(ORANGE_1).network_id).cidr
    assert routed.route.scope == "link" and routed.rule is None
    assert routed.neighbor.ip_address == CLOUD.vm(ORANGE_1).ip
    assert routed.neighbor.mac_address == CLOUD.vm(ORANGE_1).mac
    assert routed.nat == ()
    assert routed.packet.dl_src == IF_ORANGE_MAC
    assert routed.packet.dl_dst == CLOUD.vm(ORANGE_1).mac
    assert routed.packet.nw_ttl == routed.packet_in.nw_ttl - 1
    back_in = trace.openflow_steps()[2]
    assert back_in.in_port == router_interface_bridge_port_name(IF_ORANGE)


def test_host_mac_rewrite_in_br_tun_table_1_and_the_tunnel(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    rewrite = flow_step(trace, HOST_1, "br-tun", 1)
    assert rewrite.packet_in.dl_src == IF_ORANGE_MAC
    assert rewrite.packet.dl_src == HOST_MAC_1
    assert rewrite.owner.startswith("subnet:")
    l2pop = flow_step(trace, HOST_1, "br-tun", 20)
    assert l2pop.owner.startswith("network:") and l2pop.packet.tun_id == ORANGE_VNI
    tunnel = step(trace, TunnelStep)
    assert (tunnel.from_host, tunnel.to_host) == (HOST_1, HOST_2)
    assert (tunnel.local_ip, tunnel.remote_ip) == (TUNNEL_IP_1, TUNNEL_IP_2)
    assert tunnel.vni == ORANGE_VNI
    assert tunnel.port == vxlan_port_name(TUNNEL_IP_2)
    assert tunnel.packet.dl_src == HOST_MAC_1  # the host MAC on the wire
    assert tunnel.packet.dl_vlan is None
    assert tunnel.also_flooded_to == ()


def test_receiving_host_recognises_the_host_mac_and_restores_the_gateway_mac(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    table_9 = flow_step(trace, HOST_2, "br-tun", 9)
    assert table_9.owner == f"hostmac:{HOST_1}"
    assert table_9.packet_in.dl_vlan == table_9.packet.dl_vlan is not None
    assert flow_step(trace, HOST_2, "br-int", 0).owner == f"hostmac:{HOST_1}"
    table_1 = flow_step(trace, HOST_2, "br-int", 1)
    assert table_1.owner == f"port:{ORANGE_1}"
    assert table_1.packet_in.dl_src == HOST_MAC_1
    assert table_1.packet.dl_src == IF_ORANGE_MAC
    delivered = step(trace, DeliveryStep)
    assert delivered.host == HOST_2 and delivered.ovs_port == tap_name(ORANGE_1)
    assert delivered.port_id == ORANGE_1
    assert delivered.packet.dl_src == IF_ORANGE_MAC  # the gateway MAC, restored
    assert delivered.packet.dl_dst == CLOUD.vm(ORANGE_1).mac
    assert delivered.packet.dl_vlan is None and delivered.packet.tun_id is None
    assert delivered.packet.nw_ttl == 63


def test_reply_is_routed_on_the_destination_host(hosts):
    reply = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1)).reply
    assert reply is not None and reply.direction == "reply" and reply.delivered
    assert reply.path() == tuple(
        (HOST_2 if h == HOST_1 else HOST_1, b, t) for h, b, t in ROUTED_BLUE_1_TO_ORANGE_1)
    assert step(reply, NamespaceStep).host == HOST_2
    assert step(reply, NamespaceStep).out_device == router_interface_device_name(IF_BLUE)
    tunnel = step(reply, TunnelStep)
    assert (tunnel.from_host, tunnel.to_host, tunnel.vni) == (HOST_2, HOST_1, BLUE_VNI)
    assert tunnel.packet.dl_src == HOST_MAC_2
    delivered = step(reply, DeliveryStep)
    assert delivered.host == HOST_1 and delivered.ovs_port == tap_name(BLUE_1)
    assert delivered.packet.dl_src == IF_BLUE_MAC
    assert delivered.packet.nw_src == CLOUD.vm(ORANGE_1).ip
    assert delivered.packet.icmp_type == 0  # echo reply
    assert reply.reply is None


def test_reverse_request_equals_the_reply_path(hosts):
    forward = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    reverse = trace_packet(hosts, TraceRequest(ORANGE_1, BLUE_1))
    assert forward.reply is not None
    assert reverse.path() == forward.reply.path()
    assert reverse.reply is not None and reverse.reply.path() == forward.path()


def test_same_subnet_cross_host_is_bridged_without_rewrite(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, BLUE_2))
    assert trace.path() == (
        (HOST_1, "br-int", 0), (HOST_1, "br-int", 60),
        (HOST_1, "br-tun", 0), (HOST_1, "br-tun", 1), (HOST_1, "br-tun", 2),
        (HOST_1, "br-tun", 20),
        (HOST_2, "br-tun", 0), (HOST_2, "br-tun", 4), (HOST_2, "br-tun", 9),
        (HOST_2, "br-tun", 10), (HOST_2, "br-int", 0), (HOST_2, "br-int", 60),
    )
    assert not any(isinstance(s, NamespaceStep) for s in trace.steps)
    send = step(trace, SendStep)
    assert send.packet.dl_dst == CLOUD.vm(BLUE_2).mac
    tunnel = step(trace, TunnelStep)
    assert tunnel.vni == BLUE_VNI and tunnel.packet.dl_src == CLOUD.vm(BLUE_1).mac
    delivered = step(trace, DeliveryStep)
    assert delivered.ovs_port == tap_name(BLUE_2)
    assert delivered.packet.dl_src == CLOUD.vm(BLUE_1).mac
    assert delivered.packet.nw_ttl == 64  # not routed
    assert trace.reply is not None and trace.reply.delivered
    assert step(trace.reply, TunnelStep).vni == BLUE_VNI


def test_routed_on_one_host_never_touches_br_tun(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_2, ORANGE_1))
    assert trace.path() == ((HOST_2, "br-int", 0), (HOST_2, "br-int", 60),
                            (HOST_2, "br-int", 0), (HOST_2, "br-int", 60))
    assert kinds(trace) == ["send", "openflow", "openflow", "namespace", "openflow",
                            "openflow", "delivery"]
    delivered = step(trace, DeliveryStep)
    assert delivered.packet.dl_src == IF_ORANGE_MAC
    assert trace.reply is not None and step(trace.reply, NamespaceStep).host == HOST_2
    assert trace.reply.delivered


def test_same_subnet_same_host_stays_on_br_int():
    cloud = CLOUD.with_vm(Vm(BLUE_4, BLUE, "fa:16:3e:00:01:04", "203.0.113.14", HOST_1))
    hosts = east_west_hosts(cloud)
    trace = trace_packet(hosts, TraceRequest(BLUE_1, BLUE_4))
    assert trace.path() == ((HOST_1, "br-int", 0), (HOST_1, "br-int", 60))
    assert step(trace, DeliveryStep).ovs_port == tap_name(BLUE_4)
    assert trace.reply is not None
    assert trace.reply.path() == ((HOST_1, "br-int", 0), (HOST_1, "br-int", 60))
    assert step(trace.reply, DeliveryStep).ovs_port == tap_name(BLUE_1)


def test_destination_by_ip_and_source_by_vm_name(hosts):
    by_name = trace_packet(hosts, TraceRequest(f"device-{BLUE_1}", CLOUD.vm(ORANGE_1).ip))
    by_id = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert by_name.path() == by_id.path()
    assert by_name.destination is not None and by_name.destination.port_id == ORANGE_1
    assert by_name.source is not None and by_name.source.device == f"device-{BLUE_1}"


def test_tcp_ports_travel_and_swap_on_the_reply(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1, proto="tcp", dport=80))
    delivered = step(trace, DeliveryStep)
    assert delivered.packet.proto == "tcp" and delivered.packet.tp_dst == 80
    assert trace.reply is not None
    answer = step(trace.reply, DeliveryStep).packet
    assert (answer.tp_src, answer.tp_dst) == (80, delivered.packet.tp_src)


def test_no_reply_when_not_asked(hosts):
    assert trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1, with_reply=False)).reply is None


def test_only_the_visited_hosts_are_loaded(hosts):
    loaded: list[str] = []

    def load(name: str) -> HostData:
        loaded.append(name)
        return hosts[name]

    lazy = LazyHostData(hosts, load)
    trace = trace_packet(lazy, TraceRequest(BLUE_2, ORANGE_1, source_host=HOST_2,
                                            destination_host=HOST_2))
    assert trace.delivered
    assert loaded == [HOST_2]


def test_request_rejects_bad_arguments():
    with pytest.raises(ValueError):
        TraceRequest(BLUE_1, ORANGE_1, proto="sctp")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TraceRequest(BLUE_1, ORANGE_1, dport=80)  # icmp has no ports
    with pytest.raises(ValueError):
        TraceRequest(BLUE_1, ORANGE_1, proto="udp", dport=70000)

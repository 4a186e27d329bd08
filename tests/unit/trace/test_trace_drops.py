"""Drops name the exact place and the reason (views edited the way a broken server or a
missed update would leave them)."""

from __future__ import annotations

from dataclasses import replace

from dvr.agent.desired import HostInputs, compute_desired_state
from dvr.agent.desired.names import router_interface_device_name, router_namespace_name
from dvr.model.hostview import HostView, NetworkView
from dvr.trace.hosts import HostData
from dvr.trace.steps import DeliveryStep, DropStep, Trace, TraceRequest, TunnelStep
from dvr.trace.tracer import trace_packet
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    HOST_1,
    HOST_2,
    HOST_3,
    IF_ORANGE,
    ORANGE,
    ORANGE_1,
    TUNNEL_IP_1,
    TUNNEL_IP_3,
    east_west_cloud,
    tap_name,
)
from tests.unit.trace.trace_scenarios import east_west_hosts

CLOUD = east_west_cloud()


def edit_network(view: HostView, network_id: str, **changes) -> HostView:
    networks = tuple(replace(n, **changes) if n.id == network_id else n for n in view.networks)
    return replace(view, networks=networks)


def without_remote(network: NetworkView, host: str) -> NetworkView:
    return replace(network, remote_hosts=tuple(r for r in network.remote_hosts
                                               if r.host != host))


def drop_of(trace: Trace) -> DropStep:
    last = trace.steps[-1]
    assert isinstance(last, DropStep), trace.verdict.summary
    assert not trace.delivered and trace.reply is None
    return last


def test_missing_l2pop_entry_with_nowhere_to_flood_drops_in_br_tun():
    hosts = east_west_hosts(edits={
        HOST_1: lambda v: edit_network(v, ORANGE, remote_hosts=()),
    })
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    drop = drop_of(trace)
    assert drop.host == HOST_1
    assert drop.place == "br-tun table 20"
    assert drop.bridge == "br-tun" and drop.table == 20
    assert f"no L2-population entry for {CLOUD.vm(ORANGE_1).mac}" in drop.reason
    assert "nowhere to flood" in drop.reason
    # the walk got that far: routed, host MAC rewritten, then table 20 missed -> 22 dropped
    assert trace.path()[-4:] == ((HOST_1, "br-tun", 1), (HOST_1, "br-tun", 2),
                                 (HOST_1, "br-tun", 20), (HOST_1, "br-tun", 22))
    assert trace.openflow_steps()[-2].flow is not None
    assert trace.openflow_steps()[-2].flow.priority == 0  # table 20's default, not L2 pop
    assert trace.verdict.summary.startswith(f"dropped on {HOST_1} at br-tun table 20: ")


def test_missing_l2pop_entry_floods_to_other_hosts_only():
    hosts = east_west_hosts(edits={
        HOST_1: lambda v: edit_network(
            v, ORANGE, remote_hosts=without_remote(v.network(ORANGE), HOST_2).remote_hosts),
    })
    drop = drop_of(trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1)))
    assert drop.place == "br-tun table 20"
    assert "no L2-population entry" in drop.reason
    assert f"flooded to {HOST_3} only, not to {HOST_2}" in drop.reason


def test_missing_l2pop_entry_but_known_host_is_reached_by_flooding():
    def forget_entries(view: HostView) -> HostView:
        network = view.network(ORANGE)
        remotes = tuple(replace(r, entries=()) if r.host == HOST_2 else r
                        for r in network.remote_hosts)
        return edit_network(view, ORANGE, remote_hosts=remotes)

    hosts = east_west_hosts(edits={HOST_1: forget_entries})
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.delivered
    tunnel = next(s for s in trace.steps if isinstance(s, TunnelStep))
    assert tunnel.to_host == HOST_2
    assert tunnel.also_flooded_to == (TUNNEL_IP_3,)
    assert (HOST_1, "br-tun", 22) in trace.path()


def test_missing_static_arp_entry_drops_in_the_router_namespace():
    orange_ip = CLOUD.vm(ORANGE_1).ip

    def forget_arp(view: HostView) -> HostView:
        routers = tuple(replace(r, arp_entries=tuple(a for a in r.arp_entries
                                                     if a.ip_address != orange_ip))
                        for r in view.routers)
        return replace(view, routers=routers)

    hosts = east_west_hosts(edits={HOST_1: forget_arp})
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    drop = drop_of(trace)
    device = router_interface_device_name(IF_ORANGE)
    namespace = next(n.name for n in hosts[HOST_1].state.namespaces)
    assert drop.host == HOST_1
    assert drop.place == f"{namespace} {device}"
    assert f"no static (PERMANENT) ARP entry for {orange_ip} on {device}" in drop.reason
    assert "never ARPs across the tunnel mesh" in drop.reason
    # an IP the router does not know has no fast-path flow: table 65 hands it to NORMAL
    assert trace.path() == ((HOST_1, "br-int", 0), (HOST_1, "br-int", 60),
                            (HOST_1, "br-int", 65))


def test_routed_to_an_ip_no_port_has():
    hosts = east_west_hosts()
    drop = drop_of(trace_packet(hosts, TraceRequest(BLUE_1, "203.0.113.100")))
    assert drop.place.startswith(router_namespace_name(""))
    assert "no static (PERMANENT) ARP entry for 203.0.113.100" in drop.reason
    assert "no known port has the IP 203.0.113.100" in drop.reason


def test_port_on_a_host_where_its_router_is_not_instantiated():
    hosts = east_west_hosts(edits={HOST_1: lambda v: replace(v, routers=())})
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    drop = drop_of(trace)
    assert drop.host == HOST_1
    assert drop.place == f"{HOST_1} (no router)"
    gateway = CLOUD.net(CLOUD.vm(BLUE_1).network_id).gateway_ip
    assert f"no router for subnet {CLOUD.net(CLOUD.vm(BLUE_1).network_id).cidr}" in drop.reason
    assert f"instantiated on {HOST_1}" in drop.reason and gateway in drop.reason
    assert trace.path() == ()  # nothing entered the switch


def test_destination_not_found():
    hosts = east_west_hosts()
    trace = trace_packet(hosts, TraceRequest(BLUE_1, "no-such-vm"))
    drop = drop_of(trace)
    assert drop.place == "destination"
    assert "destination 'no-such-vm' not found" in drop.reason
    assert trace.source is not None and trace.destination is None


def test_source_not_found():
    drop = drop_of(trace_packet(east_west_hosts(), TraceRequest("ghost", ORANGE_1)))
    assert drop.place == "source" and "source 'ghost' not found" in drop.reason


def test_same_subnet_ip_without_port_gets_no_arp_answer():
    drop = drop_of(trace_packet(east_west_hosts(), TraceRequest(BLUE_1, "203.0.113.40")))
    assert drop.host == HOST_1 and drop.place.startswith("source VM")
    assert "no port has IP 203.0.113.40" in drop.reason


def test_outside_address_has_no_route_yet():
    drop = drop_of(trace_packet(east_west_hosts(), TraceRequest(BLUE_1, "192.0.2.77")))
    assert drop.place == router_namespace_name(CLOUD.routers[0].id)
    assert "no route to 192.0.2.77" in drop.reason


def test_receiving_host_without_a_tunnel_port_back():
    def forget_host_1(view: HostView) -> HostView:
        return replace(view, networks=tuple(without_remote(n, HOST_1) for n in view.networks))

    hosts = east_west_hosts(edits={HOST_2: forget_host_1})
    drop = drop_of(trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1)))
    assert drop.host == HOST_2 and drop.place == "br-tun"
    assert f"no VXLAN port towards {TUNNEL_IP_1}" in drop.reason


def test_unplugged_source_port():
    hosts = east_west_hosts()
    view = CLOUD.view(HOST_1)
    plugged = {k: v for k, v in CLOUD.plugged(HOST_1).items() if k != BLUE_1}
    hosts[HOST_1] = HostData(view, compute_desired_state(view, HostInputs(plugged=plugged)),
                             plugged)
    drop = drop_of(trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1)))
    assert drop.place == "br-int"
    assert f"no OVS port {tap_name(BLUE_1)} on br-int" in drop.reason


def test_missing_host_mac_flow_is_delivered_with_the_wrong_source_mac():
    """Without compute-1's host MAC on compute-2 the frame is learned and bridged: it
    still arrives, but with compute-1's host MAC as source (DVR.md §4 broken)."""
    hosts = east_west_hosts(edits={HOST_2: lambda v: replace(
        v, peer_host_macs=tuple(m for m in v.peer_host_macs if m.host != HOST_1))})
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    delivered = trace.steps[-1]
    assert isinstance(delivered, DeliveryStep)
    assert delivered.packet.dl_src == hosts[HOST_1].view.host_mac
    assert (HOST_2, "br-tun", 10) in trace.path()

"""The east/west fast path in br-int (issue 12): which traffic it routes and which it must
leave to the ``qrouter-`` namespace, asserted as packet behaviour through the simulator."""

from __future__ import annotations

from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE,
    BLUE_1,
    BLUE_2,
    BLUE_3,
    GREEN,
    GREEN_1,
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
    ROUTER,
    TUNNEL_IP_2,
    Cloud,
    Interface,
    Router,
    Vm,
    east_west_cloud,
    tap_name,
)

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.fast_path import route_domain_ids
from dvr.agent.desired.names import router_interface_bridge_port_name
from dvr.agent.desired.openflow import ETH_TYPE_IPV6, IPPROTO_TCP, port_text
from dvr.agent.desired.state import DesiredState, Flow
from dvr.agent.desired.tables import REG_ROUTE_DOMAIN, IntTable
from dvr.model.hostview import ExtraRoute, FloatingIpView, HostView
from dvr.trace.ofsim import Packet, Pipeline, Trace

FAST = f"fastpath:{ROUTER}"
OPENFLOW = DesiredConfig()
NAMESPACE = DesiredConfig(east_west="namespace")
QRB_BLUE = router_interface_bridge_port_name(IF_BLUE)
QRB_ORANGE = router_interface_bridge_port_name(IF_ORANGE)
MAC_TABLE = {IF_BLUE_MAC: QRB_BLUE, IF_ORANGE_MAC: QRB_ORANGE}


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return east_west_cloud()


def state_of(view: HostView, plugged: dict[str, str],
             config: DesiredConfig = OPENFLOW) -> DesiredState:
    return compute_desired_state(view, HostInputs(plugged=plugged), config)


def host_state(cloud: Cloud, host: str, config: DesiredConfig = OPENFLOW) -> DesiredState:
    return state_of(cloud.view(host), cloud.plugged(host), config)


def fast_flows(state: DesiredState) -> set[Flow]:
    found = state.bridge("br-int")
    assert found is not None
    return {f for f in found.flows if f.owner == FAST}


def send(state: DesiredState, source: str, packet: Packet) -> Trace:
    return Pipeline(state.bridges).trace("br-int", tap_name(source), packet, MAC_TABLE)


def routed(cloud: Cloud, source: str, destination_ip: str, ttl: int = 64,
           gateway_mac: str = IF_BLUE_MAC) -> Packet:
    """What a VM sends to reach another subnet: its gateway's MAC, the destination's IP."""
    vm = cloud.vm(source)
    return replace(Packet.ipv4(vm.mac, gateway_mac, vm.ip, destination_ip, IPPROTO_TCP),
                   nw_ttl=ttl)


def went_to_namespace(trace: Trace, qrb: str = QRB_BLUE) -> bool:
    """The frame reached the router's qr- device unchanged, and nothing else."""
    return ([d.port for d in trace.delivered] == [qrb] and not trace.tunnelled
            and trace.delivered[0].packet.nw_ttl == trace.steps[0].packet_in.nw_ttl)


# --- what qualifies ---------------------------------------------------------------------------


def test_routed_to_a_remote_port_leaves_for_the_tunnel_as_the_namespace_would_send_it(cloud):
    orange_1 = cloud.vm(ORANGE_1)
    trace = send(host_state(cloud, HOST_1), BLUE_1, routed(cloud, BLUE_1, orange_1.ip))
    assert not trace.delivered  # the namespace never sees it
    (out,) = trace.tunnelled
    assert out.remote_ip == TUNNEL_IP_2 and out.tun_id == ORANGE_VNI
    assert out.packet.dl_src == HOST_MAC_1  # br-tun table 1: gateway MAC -> host MAC
    assert out.packet.dl_dst == orange_1.mac
    assert out.packet.nw_ttl == 63 and out.packet.dl_vlan is None
    assert trace.tables("br-int") == (0, IntTable.TRANSIENT, IntTable.FAST_PATH)
    assert trace.tables("br-tun") == (0, 1, 2, 20)
    routing = next(s for s in trace.steps if s.table == IntTable.FAST_PATH)
    assert routing.flow is not None and routing.flow.owner == FAST
    assert routing.packet_own is not None
    assert (routing.packet_own.dl_src, routing.packet_own.dl_dst) == (IF_ORANGE_MAC,
                                                                      orange_1.mac)


def test_routed_to_a_local_port_goes_through_table_1_untagged(cloud):
    orange_1 = cloud.vm(ORANGE_1)
    trace = send(host_state(cloud, HOST_2), BLUE_2, routed(cloud, BLUE_2, orange_1.ip))
    (out,) = trace.delivered
    assert out.port == tap_name(ORANGE_1)
    assert (out.packet.dl_src, out.packet.dl_dst) == (IF_ORANGE_MAC, orange_1.mac)
    assert out.packet.dl_vlan is None and out.packet.nw_ttl == 63
    assert not trace.tunnelled
    assert trace.tables("br-int") == (0, IntTable.TRANSIENT, IntTable.FAST_PATH,
                                      IntTable.DVR_TO_SRC_MAC)
    assert trace.owners()[-1] == f"port:{ORANGE_1}"  # delivered by the port's own flow


def test_the_reply_is_routed_in_br_int_too(cloud):
    blue_2 = cloud.vm(BLUE_2)
    reply = routed(cloud, ORANGE_1, blue_2.ip, gateway_mac=IF_ORANGE_MAC)
    trace = send(host_state(cloud, HOST_2), ORANGE_1, reply)
    assert [(d.port, d.packet.dl_src) for d in trace.delivered] == [
        (tap_name(BLUE_2), IF_BLUE_MAC)]


def test_the_flows_are_linear_in_ports_and_interfaces(cloud):
    flows = fast_flows(host_state(cloud, HOST_2))  # blue-2 and orange-1 local
    by_table = sorted((f.table, f.priority) for f in flows)
    # entries: 2 local routed ports x the interface on their network; 2 same-subnet guards;
    # destinations: blue-1, blue-2, blue-3, orange-1 (all known, local or in L2 population)
    assert by_table == [(IntTable.TRANSIENT, 10)] * 2 + [(IntTable.FAST_PATH, 10)] * 4 + [
        (IntTable.FAST_PATH, 20)] * 2


# --- what must stay in the namespace ------------------------------------------------------------


@pytest.mark.parametrize("ttl", [1, 0])
def test_ttl_1_goes_to_the_namespace_for_icmp_time_exceeded(cloud, ttl):
    trace = send(host_state(cloud, HOST_1), BLUE_1,
                 routed(cloud, BLUE_1, cloud.vm(ORANGE_1).ip, ttl=ttl))
    assert went_to_namespace(trace)


def test_ttl_2_is_still_routed(cloud):
    trace = send(host_state(cloud, HOST_1), BLUE_1,
                 routed(cloud, BLUE_1, cloud.vm(ORANGE_1).ip, ttl=2))
    assert [t.packet.nw_ttl for t in trace.tunnelled] == [1]


@pytest.mark.parametrize("destination", [
    "203.0.113.100",  # an unknown IP on the orange subnet
    "203.0.113.65",  # the orange gateway IP (ICMP to the router)
    "203.0.113.1",  # the blue gateway IP
    "203.0.113.139",  # green-1: a subnet the router is not attached to
    "192.0.2.50",  # outside every subnet
])
def test_destinations_the_router_does_not_know_go_to_the_namespace(cloud, destination):
    trace = send(host_state(cloud, HOST_1), BLUE_1, routed(cloud, BLUE_1, destination))
    assert went_to_namespace(trace)


def test_back_into_the_source_subnet_goes_to_the_namespace(cloud):
    trace = send(host_state(cloud, HOST_1), BLUE_1,
                 routed(cloud, BLUE_1, cloud.vm(BLUE_2).ip))
    assert went_to_namespace(trace)


def test_arp_and_ipv6_are_not_fast_pathed(cloud):
    state = host_state(cloud, HOST_1)
    blue_1 = cloud.vm(BLUE_1)
    arp = Packet.arp_request(blue_1.mac, blue_1.ip, cloud.net(BLUE).gateway_ip)
    assert FAST not in send(state, BLUE_1, arp).owners()
    ipv6 = Packet(dl_src=blue_1.mac, dl_dst=IF_BLUE_MAC, dl_type=ETH_TYPE_IPV6,
                  nw_src="2001:db8::11", nw_dst="2001:db8:1::75", nw_proto=IPPROTO_TCP)
    trace = send(state, BLUE_1, ipv6)
    assert FAST not in trace.owners() and went_to_namespace(trace)


def test_a_subnet_with_no_router_has_no_fast_path(cloud):
    state = host_state(cloud, HOST_3)  # blue-3 (router) and green-1 (no router)
    green_1 = cloud.vm(GREEN_1)
    assert not any(f.match.in_port == tap_name(GREEN_1) for f in fast_flows(state))
    to_blue = replace(Packet.ipv4(green_1.mac, IF_BLUE_MAC, green_1.ip,
                                  cloud.vm(BLUE_3).ip), nw_ttl=64)
    assert FAST not in send(state, GREEN_1, to_blue).owners()  # another network's gateway


def test_another_routers_subnets_are_not_reached(cloud):
    other = Router("rtr-other", (Interface("3d3d3d3d-0000-0000-0000-00000000000d", GREEN,
                                           "fa:16:3e:aa:00:0d"),
                                 Interface("4e4e4e4e-0000-0000-0000-00000000000e", BLUE,
                                           "fa:16:3e:aa:00:0e")))
    two_routers = cloud.with_router(other)
    state = host_state(two_routers, HOST_3)
    # blue-3 through router R (blue gateway) towards green-1: R is not on green
    trace = send(state, BLUE_3, routed(two_routers, BLUE_3, cloud.vm(GREEN_1).ip))
    assert went_to_namespace(trace)
    # through the other router's blue interface it is routed, by that router's flows
    trace = send(state, BLUE_3, routed(two_routers, BLUE_3, cloud.vm(GREEN_1).ip,
                                       gateway_mac="fa:16:3e:aa:00:0e"))
    assert [d.port for d in trace.delivered] == [tap_name(GREEN_1)]
    assert "fastpath:rtr-other" in trace.owners() and FAST not in trace.owners()


def test_a_legacy_or_down_router_has_no_fast_path(cloud):
    router = next(r for r in cloud.routers if r.id == ROUTER)
    for edited in (replace(router, admin_state_up=False), replace(router, distributed=False,
                                                                   snat_host=HOST_1)):
        assert not fast_flows(host_state(cloud.with_router(edited), HOST_1))


def test_a_port_being_deleted_is_no_destination(cloud):
    gone = cloud.without_vm(ORANGE_1)
    for host in (HOST_1, HOST_2):
        state = host_state(gone, host)
        assert not any(f.match.nw_dst == cloud.vm(ORANGE_1).ip for f in fast_flows(state))


def test_a_destination_without_l2_population_entry_stays_in_the_namespace(cloud):
    view = cloud.view(HOST_1)
    networks = tuple(replace(n, remote_hosts=()) if n.id == ORANGE else n
                     for n in view.networks)
    state = state_of(replace(view, networks=networks), cloud.plugged(HOST_1))
    trace = send(state, BLUE_1, routed(cloud, BLUE_1, cloud.vm(ORANGE_1).ip))
    assert went_to_namespace(trace)


def test_an_unplugged_destination_stays_in_the_namespace(cloud):
    plugged = {k: v for k, v in cloud.plugged(HOST_2).items() if k != ORANGE_1}
    state = state_of(cloud.view(HOST_2), plugged)
    trace = send(state, BLUE_2, routed(cloud, BLUE_2, cloud.vm(ORANGE_1).ip))
    assert went_to_namespace(trace)


def test_a_source_with_a_floating_ip_keeps_going_through_the_namespace(cloud):
    view = cloud.view(HOST_1)
    blue_1 = cloud.vm(BLUE_1)
    fip = FloatingIpView("fip-1", "198.51.100.50", "ext", blue_1.ip, BLUE_1, HOST_1)
    routers = tuple(replace(r, floating_ips=(fip,)) for r in view.routers)
    state = state_of(replace(view, routers=routers), cloud.plugged(HOST_1))
    assert went_to_namespace(send(state, BLUE_1, routed(cloud, BLUE_1,
                                                        cloud.vm(ORANGE_1).ip)))


def test_a_destination_behind_an_extra_route_stays_in_the_namespace(cloud):
    view = cloud.view(HOST_1)
    orange_ip = cloud.vm(ORANGE_1).ip
    routers = tuple(replace(r, routes=(ExtraRoute(f"{orange_ip}/32", "203.0.113.12"),))
                    for r in view.routers)
    state = state_of(replace(view, routers=routers), cloud.plugged(HOST_1))
    assert went_to_namespace(send(state, BLUE_1, routed(cloud, BLUE_1, orange_ip)))


def test_east_west_namespace_turns_it_off(cloud):
    state = host_state(cloud, HOST_1, NAMESPACE)
    assert not fast_flows(state)
    bridge = state.bridge("br-int")
    assert bridge is not None and IntTable.FAST_PATH not in {f.table for f in bridge.flows}
    assert went_to_namespace(send(state, BLUE_1, routed(cloud, BLUE_1,
                                                        cloud.vm(ORANGE_1).ip)))


def test_east_west_must_be_a_known_mode():
    with pytest.raises(ValueError, match="east_west"):
        DesiredConfig(east_west="kernel")


# --- appearing and disappearing with its inputs -------------------------------------------


def test_a_new_port_becomes_a_source_and_a_destination(cloud):
    orange_2 = Vm("c2000000-0000-0000-0000-000000000002", ORANGE, "fa:16:3e:00:02:02",
                  "203.0.113.76", HOST_1)
    grown = cloud.with_vm(orange_2)
    state = host_state(grown, HOST_1)
    trace = send(state, BLUE_1, routed(grown, BLUE_1, orange_2.ip))
    assert [d.port for d in trace.delivered] == [tap_name(orange_2.id)]
    back = send(state, orange_2.id, routed(grown, orange_2.id, cloud.vm(BLUE_1).ip,
                                           gateway_mac=IF_ORANGE_MAC))
    assert [d.port for d in back.delivered] == [tap_name(BLUE_1)]


def test_a_port_that_moved_is_reached_on_its_new_host(cloud):
    moved = cloud.with_vm(replace(cloud.vm(ORANGE_1), host=HOST_3))
    trace = send(host_state(moved, HOST_1), BLUE_1,
                 routed(moved, BLUE_1, cloud.vm(ORANGE_1).ip))
    assert [t.remote_ip for t in trace.tunnelled] == [moved.host(HOST_3).tunnel_ip]
    # and the old host no longer delivers locally: it tunnels it too
    trace = send(host_state(moved, HOST_2), BLUE_2, routed(moved, BLUE_2,
                                                           cloud.vm(ORANGE_1).ip))
    assert not trace.delivered
    assert [t.remote_ip for t in trace.tunnelled] == [moved.host(HOST_3).tunnel_ip]


# --- route domain ids ----------------------------------------------------------------------


def test_route_domain_ids_are_nonzero_distinct_and_stable():
    ids = route_domain_ids(f"router-{i}" for i in range(200))
    assert len(set(ids.values())) == 200 and 0 not in ids.values()
    assert all(0 < value < 2**31 for value in ids.values())
    fewer = route_domain_ids(f"router-{i}" for i in range(0, 200, 2))
    assert all(fewer[r] == ids[r] for r in fewer)  # others coming and going change nothing


def test_the_entry_loads_the_route_domain_register(cloud):
    state = host_state(cloud, HOST_1)
    (entry,) = [f for f in fast_flows(state) if f.table == IntTable.TRANSIENT]
    value = route_domain_ids([ROUTER])[ROUTER]
    assert f"load:{value:#x}->NXM_NX_REG{REG_ROUTE_DOMAIN}[]" in entry.actions_text
    assert entry.match_text == f"in_port={port_text(tap_name(BLUE_1))},ip,dl_dst={IF_BLUE_MAC}"

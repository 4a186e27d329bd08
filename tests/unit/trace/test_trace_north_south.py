"""North/south paths over hand-built SNAT and floating-IP plumbing (DVR.md §8-§9): SNAT out
and its reply, rule/table selection, the drops without a gateway or without SNAT."""

from __future__ import annotations

import json

import pytest

from dvr.agent.desired.names import (
    fip_namespace_name,
    router_namespace_name,
    snat_namespace_name,
)
from dvr.agent.desired.nftables import nat_table_document
from dvr.trace.hosts import HostData
from dvr.trace.routing import lookup_route
from dvr.trace.steps import (
    DeliveryStep,
    DropStep,
    NamespaceStep,
    SegmentStep,
    Trace,
    TraceRequest,
    TunnelStep,
)
from dvr.trace.tracer import trace_packet
from dvr.trace.verify import ProbeError, verify_trace
from tests.unit.desired.desired_scenarios import BLUE_1, BLUE_2, HOST_1, HOST_2, ORANGE_1
from tests.unit.trace.north_south_scenarios import (
    BLUE_CIDR,
    EXT,
    FG,
    FG_MAC,
    FIP,
    FIP_RULE_PRIORITY,
    FIP_TABLE,
    FPR,
    GATEWAY_IP,
    NETWORK_1,
    ORANGE_1_IP,
    OUTSIDE,
    QG,
    RFP,
    ROUTER,
    SG,
    SNAT_BLUE_IP,
    SNAT_TABLE,
    UPLINK,
    agent_cloud,
    agent_hosts,
    ext_vlan,
    north_south_hosts,
)
from tests.unit.trace.trace_scenarios import NAMESPACE_PATH

BLUE_1_IP = "203.0.113.11"


@pytest.fixture(scope="module")
def hosts() -> dict[str, HostData]:
    return north_south_hosts()


def outside(destination: str = OUTSIDE.name, source: str = BLUE_1) -> TraceRequest:
    return TraceRequest(source, destination, external_hosts=(OUTSIDE,))


def namespaces(trace: Trace) -> list[tuple[str, str]]:
    return [(s.host, s.namespace) for s in trace.steps if isinstance(s, NamespaceStep)]


def test_snat_path_out_and_back(hosts):
    trace = trace_packet(hosts, outside())
    assert trace.delivered, trace.verdict.summary
    assert namespaces(trace) == [(HOST_1, router_namespace_name(ROUTER)),
                                 (NETWORK_1, snat_namespace_name(ROUTER))]
    router, snat = (s for s in trace.steps if isinstance(s, NamespaceStep))
    # the policy rule of blue (after main) sends it to the SNAT port across the tunnel
    assert router.rule is not None and router.rule.source == BLUE_CIDR
    assert router.route.table == SNAT_TABLE and router.nexthop == SNAT_BLUE_IP
    assert router.resolved_by == "PERMANENT"
    tunnel = next(s for s in trace.steps if isinstance(s, TunnelStep))
    assert (tunnel.from_host, tunnel.to_host) == (HOST_1, NETWORK_1)
    # the snat- namespace: in on sg-, out of qg- to the outside router, source rewritten
    assert (snat.in_device, snat.out_device) == (SG, QG)
    assert snat.rule is None and snat.route.destination == "192.0.2.0/24"  # connected
    assert [n.snat_to for n in snat.nat] == [GATEWAY_IP]
    assert snat.packet.nw_src == GATEWAY_IP and snat.packet_in.nw_src == BLUE_1_IP
    assert snat.neighbor.mac_address == OUTSIDE.mac and "ARP" in snat.resolved_by
    # then br-int -> int-br-ex -> br-ex (VLAN stripped) -> the uplink, across the segment
    path = trace.path()
    assert (NETWORK_1, "br-ex", 0) in path and path[-1] == (NETWORK_1, "br-ex", 0)
    ex = [s for s in trace.openflow_steps() if s.bridge == "br-ex"][0]
    assert ex.packet_in.dl_vlan == ext_vlan(hosts[NETWORK_1]) and ex.packet.dl_vlan is None
    segment = next(s for s in trace.steps if isinstance(s, SegmentStep))
    assert (segment.from_host, segment.to_host, segment.port) == (NETWORK_1, "outside", UPLINK)
    delivered = trace.steps[-1]
    assert isinstance(delivered, DeliveryStep) and delivered.host == "outside"
    assert delivered.packet.nw_src == GATEWAY_IP  # outside sees the gateway IP
    # the reply: outside -> gateway IP, ARP answered by qg-, conntrack undoes the SNAT
    reply = trace.reply
    assert reply is not None and reply.delivered, reply.verdict.summary
    assert reply.steps[0].kind == "send" and QG in reply.steps[0].why
    back = next(s for s in reply.steps if isinstance(s, NamespaceStep))
    assert back.namespace == snat_namespace_name(ROUTER) and back.nat == ()
    assert back.conntrack and back.routed is not None and back.routed.nw_dst == BLUE_1_IP
    assert back.out_device == SG
    end = reply.steps[-1]
    assert isinstance(end, DeliveryStep) and end.host == HOST_1 and end.device


def test_tcp_to_an_unknown_outside_address(hosts):
    """An address on no known station: the frame goes to the outside router's MAC."""
    trace = trace_packet(hosts, TraceRequest(BLUE_1, "198.18.0.7", proto="tcp", dport=443,
                                             external_hosts=(OUTSIDE,)))
    assert trace.delivered
    last = trace.steps[-1]
    assert isinstance(last, DeliveryStep) and last.host == "outside"
    assert last.packet.nw_dst == "198.18.0.7" and last.packet.tp_dst == 443


def test_outside_without_its_mac_still_traced(hosts):
    """The web view does not know the outside host: its address is enough."""
    trace = trace_packet(hosts, TraceRequest(BLUE_1, OUTSIDE.ip))
    assert trace.delivered, trace.verdict.summary
    assert trace.reply is not None and trace.reply.delivered, trace.reply.verdict.summary


def test_east_west_still_wins_over_the_snat_rule():
    """Connected routes in main come before the SNAT rule (priority after main)."""
    hosts = north_south_hosts(config=NAMESPACE_PATH)
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.delivered
    (router,) = (s for s in trace.steps if isinstance(s, NamespaceStep))
    assert router.rule is None and router.route.table == 254


def test_east_west_takes_the_fast_path_on_a_router_with_a_gateway(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.delivered and namespaces(trace) == []
    assert any(s.owner == f"fastpath:{ROUTER}" for s in trace.openflow_steps())


def test_same_subnet_is_not_routed(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, BLUE_2))
    assert trace.delivered and namespaces(trace) == []


def test_no_gateway_drops_in_the_router():
    hosts = north_south_hosts(gateway_on=False)
    trace = trace_packet(hosts, outside())
    drop = trace.steps[-1]
    assert isinstance(drop, DropStep) and drop.host == HOST_1
    assert drop.place == router_namespace_name(ROUTER)
    assert f"no route to {OUTSIDE.ip}" in drop.reason
    assert "has no external gateway" in drop.reason
    assert "not traced yet" not in drop.reason


def test_snat_disabled_leaves_the_source_alone():
    hosts = north_south_hosts(enable_snat=False)
    trace = trace_packet(hosts, outside())
    snat = [s for s in trace.steps if isinstance(s, NamespaceStep)][-1]
    assert snat.nat == () and snat.packet.nw_src == BLUE_1_IP
    # outside answers to a tenant address it has no route for: the reply is not routed back
    assert trace.delivered


# --- floating IPs -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fip_hosts() -> dict[str, HostData]:
    return north_south_hosts(floating=True)


def test_floating_ip_out_leaves_from_its_own_host(fip_hosts):
    trace = trace_packet(fip_hosts, outside(source=ORANGE_1))
    assert trace.delivered, trace.verdict.summary
    fip_ns = fip_namespace_name(EXT)
    assert namespaces(trace) == [(HOST_2, router_namespace_name(ROUTER)), (HOST_2, fip_ns)]
    router, fip = (s for s in trace.steps if isinstance(s, NamespaceStep))
    # the floating IP's rule (table 16) wins over the SNAT rule; SNAT to the floating IP
    assert router.rule is not None and router.rule.table == FIP_TABLE
    assert router.rule.priority == FIP_RULE_PRIORITY and router.out_device == RFP
    assert [n.snat_to for n in router.nat] == [FIP] and router.packet.nw_src == FIP
    assert router.resolved_by == f"ARP: answered by {FPR} in {fip_ns}"
    assert (fip.in_device, fip.out_device) == (FPR, FG)
    assert not any(isinstance(s, TunnelStep) for s in trace.steps)  # network-1 not involved
    segment = next(s for s in trace.steps if isinstance(s, SegmentStep))
    assert segment.from_host == HOST_2
    assert trace.steps[-1].packet.nw_src == FIP  # type: ignore[union-attr]
    reply = trace.reply
    assert reply is not None and reply.delivered, reply.verdict.summary
    assert f"proxy ARP on {FG}" in reply.steps[0].why  # type: ignore[union-attr]
    back = [s for s in reply.steps if isinstance(s, NamespaceStep)]
    assert [s.namespace for s in back] == [fip_ns, router_namespace_name(ROUTER)]
    assert back[1].conntrack and back[1].packet.nw_dst == ORANGE_1_IP


def test_outside_reaches_the_floating_ip(fip_hosts):
    trace = trace_packet(fip_hosts, TraceRequest("outside", FIP, proto="tcp", dport=22,
                                                 external_hosts=(OUTSIDE,)))
    assert trace.delivered, trace.verdict.summary
    send = trace.steps[0]
    assert send.kind == "send" and "proxy ARP" in send.why  # type: ignore[union-attr]
    assert send.packet.dl_dst == FG_MAC  # type: ignore[union-attr]
    fip, router = (s for s in trace.steps if isinstance(s, NamespaceStep))
    assert fip.route.destination == f"{FIP}/32" and fip.out_device == FPR
    assert [n.dnat_to for n in router.nat] == [ORANGE_1_IP]
    assert router.routed is not None and router.routed.nw_dst == ORANGE_1_IP
    assert router.in_device == RFP
    end = trace.steps[-1]
    assert isinstance(end, DeliveryStep) and end.host == HOST_2
    assert end.packet.nw_dst == ORANGE_1_IP and end.packet.tp_dst == 22
    # the answer leaves from the floating IP, the way it came
    reply = trace.reply
    assert reply is not None and reply.delivered, reply.verdict.summary
    assert reply.steps[-1].packet.nw_src == FIP  # type: ignore[union-attr]
    assert reply.steps[-1].host == "outside"


def test_floating_ip_of_another_host_is_not_answered(fip_hosts):
    """Without the fip- namespace nobody answers ARP for the floating IP."""
    hosts = north_south_hosts()
    trace = trace_packet(hosts, TraceRequest("outside", FIP, external_hosts=(OUTSIDE,)))
    drop = trace.steps[-1]
    assert isinstance(drop, DropStep)
    assert f"nothing on the external segment answers ARP for {FIP}" in drop.reason


def test_blue_still_uses_snat_when_orange_has_a_floating_ip(fip_hosts):
    trace = trace_packet(fip_hosts, outside())
    assert trace.delivered
    assert namespaces(trace)[-1] == (NETWORK_1, snat_namespace_name(ROUTER))


# --- --verify of the namespace steps --------------------------------------------------------------


class Kernels:
    """Switch and namespace probes answering from the desired state itself (what a kernel
    that holds exactly that state would say), with optional breakage."""

    def __init__(self, hosts: dict[str, HostData], wrong_device: str | None = None,
                 drop_nat: bool = False) -> None:
        self.hosts = hosts
        self.wrong_device = wrong_device
        self.drop_nat = drop_nat
        self.asked: list[tuple[str, ...]] = []

    def trace(self, host: str, bridge: str, flow: str, ct_next: tuple[str, ...] = ()) -> str:
        raise ProbeError("no switch here")

    def route_get(self, host, namespace, destination, source, in_device):
        self.asked.append(("route", host, namespace, destination, source, in_device))
        state = self.hosts[host].state.namespace(namespace)
        decision = lookup_route(state, source, destination, in_device)
        assert decision is not None
        answer = {"dst": destination, "dev": self.wrong_device or decision.route.device}
        if decision.route.via:
            answer["gateway"] = decision.route.via
        return json.dumps([answer])

    def nat_ruleset(self, host, namespace):
        self.asked.append(("nft", host, namespace))
        state = self.hosts[host].state.namespace(namespace)
        document = nat_table_document(() if self.drop_nat else state.nat)
        rules = [c["add"] for c in document["nftables"] if "rule" in c.get("add", {})]
        return json.dumps({"nftables": [{"metainfo": {}}] + rules})


def test_verify_checks_every_namespace_step_in_the_kernel(hosts):
    trace = trace_packet(hosts, outside())
    kernels = Kernels(hosts)
    checked = verify_trace(trace, kernels, hosts)
    steps = checked.namespace_steps() + checked.reply.namespace_steps()  # type: ignore[union-attr]
    assert len(steps) == 3 and all(s.check is not None and s.check.agrees for s in steps)
    assert ("route", NETWORK_1, snat_namespace_name(ROUTER), OUTSIDE.ip, BLUE_1_IP, SG) in (
        kernels.asked)
    assert ("nft", NETWORK_1, snat_namespace_name(ROUTER)) in kernels.asked
    assert checked.checked_namespaces("disagree", "missing") == ()


def test_verify_reports_a_kernel_that_routes_elsewhere(hosts):
    trace = trace_packet(hosts, outside())
    checked = verify_trace(trace, Kernels(hosts, wrong_device="eth9"), hosts)
    bad = checked.checked_namespaces("disagree")
    assert bad and "device eth9 instead of" in bad[0].check.detail  # type: ignore[union-attr]
    assert all(s in checked.disagreements() for s in bad)


def test_verify_reports_a_missing_nat_rule(hosts):
    trace = trace_packet(hosts, outside())
    checked = verify_trace(trace, Kernels(hosts, drop_nat=True), hosts)
    (bad,) = checked.checked_namespaces("disagree")
    assert bad.namespace == snat_namespace_name(ROUTER)
    assert "nft: no rule postrouting" in bad.check.detail  # type: ignore[union-attr]


# --- the plumbing the agent computes -------------------------------------------------------------


def test_agent_computed_snat_and_floating_ip_paths():
    hosts = agent_hosts(agent_cloud())
    snat = trace_packet(hosts, outside())
    assert snat.delivered and snat.reply is not None and snat.reply.delivered, (
        snat.verdict.summary, snat.reply and snat.reply.verdict.summary)
    assert namespaces(snat)[-1] == (NETWORK_1, snat_namespace_name(ROUTER))
    assert snat.steps[-1].packet.nw_src == GATEWAY_IP  # type: ignore[union-attr]
    out = trace_packet(hosts, outside(source=ORANGE_1))
    assert out.delivered and out.steps[-1].packet.nw_src == FIP  # type: ignore[union-attr]
    assert namespaces(out)[-1] == (HOST_2, fip_namespace_name(EXT))
    inbound = trace_packet(hosts, TraceRequest("outside", FIP, external_hosts=(OUTSIDE,)))
    assert inbound.delivered, inbound.verdict.summary
    assert inbound.reply is not None and inbound.reply.delivered


def test_legacy_router_routes_on_its_central_host():
    hosts = agent_hosts(agent_cloud(distributed=False, floating=False))
    east_west = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert east_west.delivered, east_west.verdict.summary
    assert "a centralized router" in east_west.steps[0].why  # type: ignore[union-attr]
    assert namespaces(east_west) == [(NETWORK_1, router_namespace_name(ROUTER))]
    tunnels = [(s.from_host, s.to_host) for s in east_west.steps if isinstance(s, TunnelStep)]
    assert tunnels == [(HOST_1, NETWORK_1), (NETWORK_1, HOST_2)]
    north = trace_packet(hosts, outside())
    assert north.delivered and north.reply is not None and north.reply.delivered
    assert namespaces(north) == [(NETWORK_1, router_namespace_name(ROUTER))]
    assert north.steps[-1].packet.nw_src == GATEWAY_IP  # type: ignore[union-attr]

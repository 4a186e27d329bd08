"""`dvr trace` through the firewall: the steps name the group and rule that allowed the
packet, a denied packet's verdict says no rule allowed it, and ``--ct established``."""

from __future__ import annotations

import pytest

from dvr.trace.render import render_text
from dvr.trace.steps import OpenFlowStep, TraceRequest
from dvr.trace.tracer import trace_packet
from dvr.trace.verify import switch_passes, verify_trace
from tests.unit.desired.desired_scenarios import BLUE_1, BLUE_2, ORANGE_1
from tests.unit.desired.firewall_scenarios import (
    BLUE_4,
    EGRESS_ANY,
    ICMP_IN,
    SSH_FROM_PREFIX,
    firewall_cloud,
    overlay,
)
from tests.unit.trace.trace_scenarios import east_west_hosts


def hosts_with(rules=None):
    cloud = firewall_cloud()
    fw = overlay(cloud=cloud) if rules is None else overlay(rules=rules, cloud=cloud)
    return east_west_hosts(cloud, {h.name: fw.apply for h in cloud.hosts})


@pytest.fixture(scope="module")
def hosts():
    return hosts_with()


def notes(trace) -> str:
    return "\n".join(s.note for s in trace.steps if isinstance(s, OpenFlowStep))


@pytest.mark.parametrize("source,destination", [
    (BLUE_4, BLUE_2),  # switched on one host
    (BLUE_1, BLUE_2),  # switched across hosts
    (BLUE_1, ORANGE_1),  # routed on compute-1, delivered by br-int table 1 on compute-2
    (BLUE_2, ORANGE_1),  # routed by the namespace on compute-2
])
def test_allowed_paths_name_the_rule_and_the_reply_comes_back(hosts, source, destination):
    trace = trace_packet(hosts, TraceRequest(source, destination, proto="tcp", dport=8080))
    assert trace.delivered, trace.verdict.summary
    assert "allowed by group sg-a rule r3-8080" in notes(trace)
    assert "anti-spoofing passed" in notes(trace)
    assert trace.reply is not None and trace.reply.delivered, trace.reply.verdict.summary
    assert "replies to connections admitted by group sg-a rule r3-8080" in notes(trace.reply)


@pytest.mark.parametrize("source,destination", [(BLUE_4, BLUE_2), (BLUE_1, ORANGE_1)])
def test_denied_paths_say_no_rule_allowed_it(hosts, source, destination):
    trace = trace_packet(hosts, TraceRequest(source, destination, proto="tcp", dport=9090))
    assert not trace.delivered
    assert "no rule of the port's groups allows it" in trace.verdict.reason
    assert "firewall" in render_text(trace)


def test_established_traffic_of_an_allowed_connection(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1, proto="tcp", dport=8080,
                                             conntrack="established"))
    assert trace.delivered
    assert "more of connections admitted by group sg-a rule r3-8080" in notes(trace)
    assert "assumed +est+trk (established)" in notes(trace)


def test_icmp_is_allowed_by_its_own_rule_and_a_group_without_it_denies(hosts):
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1))
    assert trace.delivered and "rule r2-icmp" in notes(trace)
    denied = trace_packet(hosts_with((EGRESS_ANY, SSH_FROM_PREFIX)),
                          TraceRequest(BLUE_1, ORANGE_1))
    assert not denied.delivered
    assert ICMP_IN.id not in notes(denied)


class AskedSwitch:
    """Records what --verify asks of a real switch (the answer is irrelevant here)."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str, tuple[str, ...]]] = []

    def trace(self, host: str, bridge: str, flow: str, ct_next: tuple[str, ...] = ()) -> str:
        self.asked.append((host, bridge, flow, ct_next))
        return ""


def test_verify_asks_the_switch_under_the_conntrack_state_the_trace_assumed(hosts):
    """A reply (or --ct established) is replayed with ofproto/trace's --ct-next for each
    conntrack lookup of the pass, and the ct_label its connection was committed with."""
    trace = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1, proto="tcp", dport=8080))
    switch = AskedSwitch()
    verify_trace(trace, switch)
    passes = len(switch_passes(trace.steps))  # the forward passes are asked first
    forward, replies = switch.asked[:passes], switch.asked[passes:]
    assert forward and all(set(n) <= {"new,trk"} for *_, n in forward)
    looked_up = [(flow, n) for _, _, flow, n in replies if n]  # passes through a firewall
    assert looked_up and all(set(n) == {"est,rpl,trk"} for _, n in looked_up)
    assert all(",ct_label=0x" in flow for flow, _ in looked_up)
    lookups = [s for s in trace.reply.steps
               if isinstance(s, OpenFlowStep) and s.ct_lookup is not None]
    assert sum(len(n) for *_, n in replies) == len(lookups)

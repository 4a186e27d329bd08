"""``--verify`` when a packet completes two conjunctions of one priority: OpenFlow lets the
switch pick either, so another accept flow of the same port, table and priority agrees;
anything else the switch hits instead still disagrees."""

from __future__ import annotations

from dvr.agent.desired.openflow import Match, Output
from dvr.agent.desired.state import Flow
from dvr.trace.ofproto import RealTrace
from dvr.trace.steps import OpenFlowStep, PacketView, RealHit
from dvr.trace.verify import compare_pass

PACKET = PacketView("fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "192.0.2.1", "198.51.100.2")


def accept(conj_id: int, owner: str = "port:p1", priority: int = 70) -> Flow:
    return Flow(82, priority, Match(reg6=1, ct_state="+trk+new-est", conj_id=conj_id),
                (Output("tap-p1"),), owner)


def step(flow: Flow) -> OpenFlowStep:
    return OpenFlowStep("compute-2", "br-int", 82, "patch-tun", flow, PACKET, PACKET, 1)


def real(flow: Flow) -> RealTrace:
    hit = RealHit("br-int", 82, flow.match_text, flow.priority, flow.cookie)
    return RealTrace("", (hit,), "", "", "", ())


def check(computed: Flow, hit: Flow) -> str:
    known = {f.cookie: f for f in (computed, hit)}
    (result,) = compare_pass([step(computed)], real(hit), known)
    return result.status


def test_the_computed_conjunction_agrees():
    assert check(accept(1), accept(1)) == "agree"


def test_another_conjunction_of_the_same_port_and_priority_agrees():
    assert check(accept(1), accept(2)) == "agree"


def test_another_port_or_priority_still_disagrees():
    assert check(accept(1), accept(2, owner="port:p2")) == "disagree"
    assert check(accept(1), accept(2, priority=71)) == "disagree"


def test_a_flow_that_is_no_conjunction_still_disagrees():
    plain = Flow(82, 70, Match(reg6=1, ct_state="+trk+est-rel"), (Output("tap-p1"),), "port:p1")
    assert check(accept(1), plain) == "disagree"

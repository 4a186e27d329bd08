"""The fast phase's plan (``plan_from_known``): planned from the last plan's basis alone,
it leaves the switch as the full plan would, and the full plan after it finds nothing to
do -- on random histories of one bridge's flows and VIFs (the switch and its mirror as in
``test_incremental_flow_plan``), including flows deferred while their port was away."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.agent.desired.openflow import Match, Output
from dvr.agent.desired.state import BridgeState, DesiredState, Flow, NamespaceState, OvsPort
from dvr.agent.reconcile.commands import FlowBundle, SetPortTag
from dvr.agent.reconcile.known import beyond_flows_and_vif_tags, plan_from_known
from dvr.agent.reconcile.observed import ObservedBridge, ObservedPort
from dvr.agent.reconcile.plan import plan_changes
from tests.unit.reconcile.test_incremental_flow_plan import (
    FIXED,
    PORTS,
    TAPS,
    Switch,
    desired,
    steps,
    variant,
)


def apply(switch: Switch, bundles) -> None:
    for bundle in bundles:
        switch.apply(bundle)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(steps(), st.booleans()), min_size=1, max_size=12))
def test_the_fast_plan_leaves_the_switch_the_full_plan_leaves(history):
    switch = Switch()
    basis = None
    fast_plans = 0
    for (flows, plugged, _by_hand, _applies, _new_monitor), try_fast in history:
        if plugged is not None:
            switch.plugged = plugged
        state, observed = desired(flows), switch.observed()
        if basis is not None and try_fast:
            known = plan_from_known(state, observed.bridges, basis)
            if not known.unplanned:
                fast_plans += 1
                reference = copy.deepcopy(switch)
                apply(reference, plan_changes(state, observed).of_type(FlowBundle))
                apply(switch, known.plan.of_type(FlowBundle))
                assert switch.flows == reference.flows
                after = plan_changes(state, switch.observed(), basis=known.plan.basis)
                assert after.of_type(FlowBundle) == ()
                assert after.deferred == plan_changes(state, switch.observed()).deferred
                basis = after.basis
                continue
        full = plan_changes(state, observed, basis=basis)
        apply(switch, full.of_type(FlowBundle))
        basis = full.basis


def settled(flows: frozenset[Flow], plugged: frozenset[str]) -> tuple[Switch, object]:
    switch = Switch(plugged=plugged)
    first = plan_changes(desired(flows), switch.observed())
    apply(switch, first.of_type(FlowBundle))
    again = plan_changes(desired(flows), switch.observed(), basis=first.basis)
    assert again.commands == ()
    return switch, again.basis


def test_flows_deferred_while_their_port_was_away_are_sent_when_it_is_back():
    to_tap2 = variant(0, "tap2")
    flows = frozenset(FIXED) | {to_tap2}
    switch, basis = settled(flows, frozenset({"tap0", "tap1"}))
    assert to_tap2 in basis["br-int"].deferred
    switch.plugged = frozenset(TAPS)
    known = plan_from_known(desired(flows), switch.observed().bridges, basis)
    (bundle,) = known.plan.of_type(FlowBundle)
    assert to_tap2 in bundle.add and bundle.delete == ()
    assert not known.plan.basis["br-int"].deferred


def test_a_port_gone_or_renumbered_leaves_the_bridge_to_the_full_plan():
    flows = frozenset(FIXED)
    switch, basis = settled(flows, frozenset(TAPS))
    switch.plugged = frozenset({"tap0"})
    gone = plan_from_known(desired(flows), switch.observed().bridges, basis)
    assert gone.unplanned == {"br-int"} and "br-int" not in gone.plan.basis
    (bridge,) = Switch(plugged=frozenset(TAPS)).observed().bridges
    renumbered = ObservedBridge(bridge.name, ports=tuple(
        ObservedPort(p.name, p.type, p.options, p.tag, p.external_ids, p.ofport + 10)
        if p.name == "tap1" else p for p in bridge.ports))
    assert plan_from_known(desired(flows), (renumbered,), basis).unplanned == {"br-int"}
    assert plan_from_known(desired(flows), (), basis).unplanned == {"br-int"}
    assert plan_from_known(desired(flows), (bridge,), {}).unplanned == {"br-int"}


def test_a_vif_whose_tag_differs_gets_the_desired_tag():
    (bridge,) = Switch().observed().bridges
    retagged = DesiredState("h", 1, (BridgeState("br-int", tuple(
        OvsPort(p.name, tag=7, managed=False) if p.name == "tap2" else p for p in PORTS),
        frozenset()),), ())
    known = plan_from_known(retagged, (bridge,), {})
    assert known.plan.commands == (SetPortTag("tap2", 7),)


def test_beyond_flows_and_vif_tags():
    base = desired(frozenset(FIXED))
    other_flows = desired(frozenset({Flow(3, 1, Match(), (Output("tap0"),), "port:x")}))
    assert not beyond_flows_and_vif_tags(base, other_flows)
    vif_tag = DesiredState("h", 2, (BridgeState("br-int", tuple(
        OvsPort(p.name, tag=9, managed=False) if not p.managed else p for p in PORTS),
        frozenset()),), ())
    assert not beyond_flows_and_vif_tags(base, vif_tag)
    managed = DesiredState("h", 2, (BridgeState("br-int", PORTS[:1] + (
        OvsPort("qr-new"),), frozenset()),), ())
    assert beyond_flows_and_vif_tags(base, managed)
    namespace = DesiredState("h", 2, base.bridges, (NamespaceState("qrouter-x", "router:x"),))
    assert beyond_flows_and_vif_tags(base, namespace)
    bridge = DesiredState("h", 2, base.bridges + (BridgeState("br-ex", (), frozenset()),), ())
    assert beyond_flows_and_vif_tags(base, bridge)

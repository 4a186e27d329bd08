"""The incremental flow plan (``plan_changes(..., basis)``) equals the full one on random
histories of one bridge observed through a real ``FlowTable`` (the flow mirror's
bookkeeping): desired flows coming, going and changing, VIFs plugged and unplugged (the
port naming changes), bundles applied or failing, a monitor replaced, and flows changed on
the switch by hand (deleted, pointed at another port, given another cookie, added by
someone else) -- which the next plan repairs, because the mirror's journal reports their
cookies."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.agent.desired.openflow import (
    NORMAL,
    STRIP_VLAN,
    Match,
    Output,
    Resubmit,
)
from dvr.agent.desired.state import BridgeState, DesiredState, Flow, OvsPort
from dvr.agent.drivers.flow_mirror import FlowTable
from dvr.agent.drivers.openflow import FlowEvent, MonitoredFlow, monitored_flow
from dvr.agent.reconcile.commands import FlowBundle
from dvr.agent.reconcile.observed import ObservedBridge, ObservedPort, ObservedState
from dvr.agent.reconcile.plan import Plan, plan_changes

TAPS = ("tap0", "tap1", "tap2")
NUMBERS = {"patch-tun": 1, "tap0": 2, "tap1": 3, "tap2": 4}
PORTS = (OvsPort("patch-tun", "patch", (("peer", "patch-int"),)),
         *(OvsPort(tap, tag=1, managed=False) for tap in TAPS))

# never two flows with one (table, match) at once: the switch would keep only the last
FIXED = (
    Flow(0, 0, Match(), (Resubmit(60),), "bridge:br-int"),
    Flow(60, 3, Match(), (NORMAL,), "bridge:br-int"),
    *(Flow(0, 5, Match(in_port=tap), (Resubmit(60),), f"port:{tap}") for tap in TAPS),
    *(Flow(1, 4, Match(dl_vlan=v, dl_dst=f"fa:16:3e:10:00:0{i}"), (STRIP_VLAN, Output(tap)),
           f"port:{tap}") for i, tap in enumerate(TAPS) for v in (1, 2)),
)


def variant(k: int, tap: str) -> Flow:
    """One of several versions of a flow (a rule that changes its output)."""
    return Flow(2, 3, Match(dl_dst=f"fa:16:3e:20:00:0{k}"), (Output(tap),), f"fastpath:{k}")


def desired(flows: frozenset[Flow]) -> DesiredState:
    return DesiredState("h", 1, (BridgeState("br-int", PORTS, flows),), ())


def monitored(flow: Flow) -> MonitoredFlow:
    return monitored_flow(flow, NUMBERS)


@dataclass
class Switch:
    """One bridge's flows, reported to a FlowTable as ``ovs-ofctl monitor`` would."""

    flows: dict[tuple[int, str], MonitoredFlow] = field(default_factory=dict)
    table: FlowTable = field(default_factory=FlowTable)
    plugged: frozenset[str] = frozenset(TAPS)

    def event(self, kind: str, flow: MonitoredFlow) -> None:
        assert self.table.apply(FlowEvent(kind, flow))

    def put(self, flow: MonitoredFlow) -> None:
        key = (flow.table, flow.match)
        before = self.flows.get(key)
        self.flows[key] = flow
        self.event("ADDED" if before is None else "MODIFIED", flow)

    def remove(self, key: tuple[int, str]) -> None:
        self.event("DELETED", self.flows.pop(key))

    def apply(self, bundle: FlowBundle) -> None:
        for ref in bundle.delete:
            for key in [k for k, f in self.flows.items()
                        if f.table == ref.table and f.cookie == ref.cookie]:
                self.remove(key)
        for flow in bundle.add:
            self.put(monitored(flow))

    def new_monitor(self) -> None:
        self.table = FlowTable()
        for flow in self.flows.values():
            self.event("INITIAL", flow)

    def observed(self) -> ObservedState:
        numbers = {name: n for name, n in NUMBERS.items()
                   if name == "patch-tun" or name in self.plugged}
        names = {n: name for name, n in numbers.items()}
        ports = tuple(ObservedPort(name, "patch", (("peer", "patch-int"),), None,
                                   (("dvr-managed", "true"),), n) if name == "patch-tun"
                      else ObservedPort(name, tag=1, ofport=n)
                      for name, n in sorted(numbers.items()))
        bridge = ObservedBridge("br-int", "netdev", "secure", (), ports,
                                self.table.flows(names), self.table.snapshot(names))
        return ObservedState(bridges=(bridge,))

    def by_hand(self, change: tuple[str, int]) -> None:
        kind, pick = change
        keys = sorted(self.flows)
        if kind == "foreign":
            self.put(MonitoredFlow(7, 0xBEEF0000 + pick, f"reg5={pick}", "drop"))
            return
        if not keys:
            return
        key = keys[pick % len(keys)]
        flow = self.flows[key]
        if kind == "delete":
            self.remove(key)
        elif kind == "repoint":  # same cookie, another output port
            self.put(MonitoredFlow(flow.table, flow.cookie, flow.match, f"output:{pick % 4 + 1}"))
        else:  # "recookie": the same flow under a cookie nobody wants
            self.flows[key] = replaced = MonitoredFlow(flow.table, 0xDEAD0000 + pick,
                                                       flow.match, flow.actions)
            self.event("MODIFIED", replaced)


@st.composite
def steps(draw) -> tuple:
    flows = {f for f in FIXED if draw(st.booleans())}
    for k in range(3):
        tap = draw(st.sampled_from((None, *TAPS)))
        if tap is not None:
            flows.add(variant(k, tap))
    plugged = frozenset(draw(st.sets(st.sampled_from(TAPS)))) if draw(
        st.integers(0, 4)) == 0 else None  # mostly: the ports stay as they are
    by_hand = draw(st.lists(st.tuples(
        st.sampled_from(("delete", "repoint", "recookie", "foreign")), st.integers(0, 20)),
        max_size=2))
    return (frozenset(flows), plugged, by_hand, draw(st.booleans()),
            draw(st.integers(0, 9)) == 0)


def assert_same(incremental: Plan, full: Plan) -> None:
    assert incremental.commands == full.commands
    assert incremental.deferred == full.deferred


@settings(max_examples=300, deadline=None)
@given(st.lists(steps(), min_size=1, max_size=12))
def test_the_incremental_plan_is_the_full_plan(history):
    switch = Switch()
    basis = None
    for flows, plugged, by_hand, bundle_applies, new_monitor in history:
        if plugged is not None:
            switch.plugged = plugged
        for change in by_hand:
            switch.by_hand(change)
        if new_monitor:
            switch.new_monitor()
        state, observed = desired(flows), switch.observed()
        full = plan_changes(state, observed)
        incremental = plan_changes(state, observed, basis=basis)
        assert_same(incremental, full)
        if bundle_applies:
            for bundle in incremental.of_type(FlowBundle):
                switch.apply(bundle)
        basis = incremental.basis


def converged(flows: frozenset[Flow]) -> tuple[Switch, Plan]:
    """A switch holding ``flows`` and the basis of a plan that found nothing to do."""
    switch = Switch()
    first = plan_changes(desired(flows), switch.observed())
    for bundle in first.of_type(FlowBundle):
        switch.apply(bundle)
    settled = plan_changes(desired(flows), switch.observed(), basis=first.basis)
    assert settled.commands == ()
    return switch, settled


def test_a_rule_change_is_planned_from_the_basis_alone():
    flows = frozenset(FIXED) | {variant(0, "tap0")}
    switch, settled = converged(flows)
    changed = (flows - {variant(0, "tap0")}) | {variant(0, "tap1")}
    plan = plan_changes(desired(changed), switch.observed(), basis=settled.basis)
    assert plan.basis["br-int"].incremental
    (bundle,) = plan.of_type(FlowBundle)
    assert bundle.add == (variant(0, "tap1"),)
    assert [ref.cookie for ref in bundle.delete] == [variant(0, "tap0").cookie]


def test_flows_changed_by_hand_are_repaired_by_the_next_incremental_plan():
    flows = frozenset(FIXED)
    switch, settled = converged(flows)
    victim = Flow(0, 5, Match(in_port="tap1"), (Resubmit(60),), "port:tap1")
    switch.remove((victim.table, monitored(victim).match))
    switch.by_hand(("foreign", 3))
    plan = plan_changes(desired(flows), switch.observed(), basis=settled.basis)
    assert plan.basis["br-int"].incremental
    (bundle,) = plan.of_type(FlowBundle)
    assert bundle.add == (victim,)
    assert [ref.cookie for ref in bundle.delete] == [0xBEEF0003]


def test_a_failed_bundle_is_planned_again_and_a_new_monitor_means_a_full_plan():
    flows = frozenset(FIXED)
    switch, settled = converged(flows)
    grown = flows | {variant(1, "tap2")}
    failed = plan_changes(desired(grown), switch.observed(), basis=settled.basis)
    again = plan_changes(desired(grown), switch.observed(), basis=failed.basis)
    assert again.commands == failed.commands != ()
    assert again.basis["br-int"].incremental
    switch.new_monitor()
    fresh = plan_changes(desired(grown), switch.observed(), basis=again.basis)
    assert fresh.commands == failed.commands
    assert not fresh.basis["br-int"].incremental

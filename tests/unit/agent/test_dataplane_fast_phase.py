"""The fast phase of a pass (flows and VIF tags planned from what is known, unobserved) and
the local pass that may leave the full phase out: on random histories of VIFs plugged,
unplugged and replugged and of ports bound and unbound (with a security group, so the
firewall's flows come and go too), a dataplane that takes local passes ends every step
with the very switch of one that always reconciles in full, and a full reconcile right
after a local pass changes nothing."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane
from dvr.agent.drivers.base import DriverError, Drivers
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeNatDriver, FakeOvsDriver
from dvr.model.hostview import HostView, SecurityGroupRuleView, SecurityGroupView
from tests.unit.desired.desired_scenarios import (
    BLUE,
    HOST_2,
    ORANGE,
    ORANGE_1,
    Cloud,
    Vm,
    east_west_cloud,
    tap_name,
)
from tests.unit.desired.firewall_scenarios import FirewallOverlay

GROUP = SecurityGroupView("sg-a", stateful=True, rules=(
    SecurityGroupRuleView("rule-icmp", "ingress", "IPv4", protocol=1),
    SecurityGroupRuleView("rule-in", "ingress", "IPv4", remote_group_id="sg-a"),
    SecurityGroupRuleView("rule-out", "egress", "IPv4"),
))
# ports that may be bound to HOST_2 besides the scenario's (blue-2, orange-1)
EXTRA = tuple(Vm(f"e{i}000000-0000-0000-0000-00000000000{i}", (BLUE, ORANGE)[i % 2],
                 f"fa:16:3e:00:0e:0{i}", f"203.0.113.{(20, 80)[i % 2] + i}", HOST_2)
              for i in range(3))
ORPHAN = "f0000000-0000-0000-0000-0000000000ff"  # plugged, never bound here


def config() -> AgentConfig:
    return AgentConfig(host=HOST_2, server="http://127.0.0.1:1")


def dataplane(ovs: FakeOvsDriver) -> HostDataplane:
    linux = FakeLinuxDriver()
    return HostDataplane(config(), Drivers(ovs, linux, FakeNatDriver(linux)))


def secured(cloud: Cloud) -> HostView:
    view = cloud.view(HOST_2)
    overlay = FirewallOverlay(groups={GROUP.id: GROUP},
                              members={p.id: (GROUP.id,) for p in view.ports})
    return overlay.apply(view)


def switch(ovs: FakeOvsDriver) -> dict[str, object]:
    """What the switch holds: every bridge's flows and every port's tag."""
    return {name: (ovs.flows(name), {p.name: p.tag for p in bridge.ports.values()})
            for name, bridge in ovs.bridges.items()}


def changes(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


STEP = st.one_of(
    st.tuples(st.sampled_from(["plug", "unplug", "replug"]),
              st.sampled_from([v.id for v in EXTRA] + [ORANGE_1, ORPHAN])),
    st.tuples(st.sampled_from(["bind", "unbind"]), st.sampled_from([v.id for v in EXTRA])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(STEP, st.booleans(), st.booleans()), min_size=1, max_size=10))
def test_local_passes_leave_the_switch_a_full_reconcile_leaves(history):
    """``news``: something new waits when a pass ends its fast phase: it may leave its
    full phase to the next pass, which the loop runs at once (as here)."""
    cloud = east_west_cloud()
    fast_ovs, full_ovs = FakeOvsDriver(flow_mirror=True), FakeOvsDriver()
    fast, full = dataplane(fast_ovs), dataplane(full_ovs)
    news = [False]
    fast.interrupt_with(lambda: news[0])
    for ovs in (fast_ovs, full_ovs):
        ovs.plug_vif("br-int", tap_name(ORANGE_1), ORANGE_1)
    for side in (fast, full):
        assert side.reconcile(secured(cloud)).errors == ()
    for (kind, port_id), verify, waiting in history:
        extra = next((v for v in EXTRA if v.id == port_id), None)
        if kind in ("bind", "unbind"):
            cloud = cloud.with_vm(extra) if kind == "bind" else cloud.without_vm(port_id)
            cloud = replace(cloud, revision=cloud.revision + 1)
        for ovs in (fast_ovs, full_ovs):
            plugged = tap_name(port_id) in ovs.bridges["br-int"].ports
            if kind in ("unplug", "replug") and plugged:
                ovs.unplug_vif(tap_name(port_id))
            if kind == "replug" or (kind == "plug" and not plugged):
                ovs.plug_vif("br-int", tap_name(port_id), port_id)
        view = secured(cloud)
        local = kind in ("plug", "unplug", "replug")
        news[0] = waiting
        outcome = fast.reconcile_local(view) if local else fast.reconcile(view)
        assert outcome.errors == ()
        if not outcome.verified:  # the loop's next pass
            assert fast.reconcile(view).verified
        assert full.reconcile(view).errors == ()
        assert switch(fast_ovs) == switch(full_ovs)
        assert fast_ovs.stale_flows("br-int") == []
        if verify:  # what the local pass did is all a full reconcile would do
            assert changes(fast.reconcile(view).counts) == {}


class CountingOvs(FakeOvsDriver):
    """The mirrored fake switch, counting flow observations; ``fail_bundles`` refuses the
    next bundles."""

    def __init__(self) -> None:
        super().__init__(flow_mirror=True)
        self.flow_observations = 0
        self.fail_bundles = 0

    def observe(self, bridges, with_flows=True):
        self.flow_observations += with_flows
        return super().observe(bridges, with_flows)

    def apply_flows(self, bundle):
        if self.fail_bundles:
            self.fail_bundles -= 1
            raise DriverError("refused")
        super().apply_flows(bundle)


def bound_then_settled(ovs: CountingOvs) -> tuple[HostDataplane, HostView, Vm]:
    """A dataplane that reconciled a view naming a port not plugged yet."""
    new = EXTRA[1]
    view = secured(east_west_cloud().with_vm(new))
    plane = dataplane(ovs)
    assert plane.reconcile(view).errors == ()
    assert changes(plane.reconcile(view).counts) == {}
    return plane, view, new


def test_a_plugged_port_the_view_names_is_programmed_with_one_bundle_and_its_tag_alone():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    observations, bundles, transactions = ovs.flow_observations, ovs.bundles, ovs.transactions
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    transactions += 1  # the plug's
    outcome = plane.reconcile_local(view)
    assert outcome.errors == () and new.id in outcome.ports_up
    assert outcome.counts["port_tags_set"] == 1 and outcome.counts["flows_added"] > 5
    assert "observe" not in outcome.timings and "fast" in outcome.timings
    assert (ovs.flow_observations, ovs.bundles, ovs.transactions) == (
        observations, bundles + 1, transactions + 1)
    assert ovs.bridges["br-int"].ports[tap_name(new.id)].tag is not None
    assert changes(plane.reconcile(view).counts) == {}


def test_an_ordinary_pass_sends_its_flows_before_it_observes():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    outcome = plane.reconcile(view)  # e.g. the watch's pass: fast phase, then the full one
    assert outcome.errors == () and outcome.counts["flows_added"] > 5
    assert "fast" in outcome.timings and "observe" in outcome.timings
    assert changes(plane.reconcile(view).counts) == {}


def test_a_replug_under_the_same_name_is_left_to_the_full_phase():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    plane.reconcile_local(view)
    observations = ovs.flow_observations
    ovs.unplug_vif(tap_name(new.id))
    ovs.plug_vif("br-int", tap_name(new.id), new.id)  # a new OpenFlow number
    outcome = plane.reconcile_local(view)
    assert outcome.errors == () and ovs.flow_observations == observations + 1
    assert outcome.counts["flows_added"] > 5 and ovs.stale_flows("br-int") == []


def test_a_refused_fast_bundle_is_planned_again_from_an_observation():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    observations = ovs.flow_observations
    ovs.fail_bundles = 1  # the fast phase's: the full phase that follows repairs
    repaired = plane.reconcile_local(view)
    assert repaired.errors == () and new.id in repaired.ports_up
    assert ovs.flow_observations == observations + 1
    assert changes(plane.reconcile(view).counts) == {}


def test_after_an_error_the_next_pass_plans_nothing_from_what_was_known():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    ovs.fail_bundles = 2  # the fast phase's and the full phase's
    failed = plane.reconcile_local(view)
    assert failed.errors and failed.ports_up == ()
    observations = ovs.flow_observations
    repaired = plane.reconcile_local(view)
    assert repaired.errors == () and ovs.flow_observations == observations + 1
    assert "fast" not in repaired.timings
    assert changes(plane.reconcile(view).counts) == {}


def test_news_leave_the_full_phase_to_the_next_pass_but_never_twice_in_a_row():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    plane.interrupt_with(lambda: True)  # the server always has something new
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    observations = ovs.flow_observations
    first = plane.reconcile(view)
    assert not first.verified and first.errors == () and first.counts["flows_added"] > 5
    assert ovs.flow_observations == observations  # sent from what was known, unobserved
    second = plane.reconcile(view)
    assert second.verified and ovs.flow_observations == observations + 1
    assert changes(second.counts) == {}  # the fast phase had sent it all
    assert [plane.reconcile(view).verified for _ in range(4)] == [False, True, False, True]


class PluggingOvs(CountingOvs):
    """Plugs ``late`` while the fast phase sends its first bundle."""

    def __init__(self) -> None:
        super().__init__()
        self.late: tuple[str, str] | None = None

    def apply_flows(self, bundle):
        super().apply_flows(bundle)
        if self.late is not None:
            name, iface_id = self.late
            self.late = None
            self.plug_vif("br-int", name, iface_id)


def test_a_vif_plugged_during_the_fast_phase_is_programmed_before_the_full_phase_runs():
    ovs = PluggingOvs()
    plane, view, new = bound_then_settled(ovs)
    plane.interrupt_with(lambda: False)  # nothing from the server
    other = EXTRA[2]
    view = secured(east_west_cloud().with_vm(new).with_vm(other))
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    ovs.late = (tap_name(other.id), other.id)
    first = plane.reconcile(view)
    assert not first.verified and tap_name(other.id) in ovs.bridges["br-int"].ports
    local = plane.reconcile_local(view)  # the loop's VIF pass: the full phase owed runs
    assert local.verified and other.id in local.ports_up
    assert changes(plane.reconcile(view).counts) == {}


class Settle:
    """The loop's ``settle``: records each wait; ``plug`` (if given) is plugged during it,
    as a hypervisor would just after the port was bound."""

    def __init__(self, ovs: FakeOvsDriver, plug: tuple[str, str] | None = None) -> None:
        self.ovs, self.plug, self.waits, self.news_before = ovs, plug, [], []

    def __call__(self, seconds: float, news) -> bool:
        self.waits.append(seconds)
        self.news_before.append(news())  # nothing new yet: the pass waits
        if self.plug is None:
            return False
        name, iface_id = self.plug
        self.plug = None
        self.ovs.plug_vif("br-int", name, iface_id)
        return news()


def test_a_vif_plugged_within_the_grace_goes_ahead_of_the_observation_owed():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    other = EXTRA[2]
    view = secured(east_west_cloud().with_vm(new).with_vm(other))  # the server binds other
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    settle = Settle(ovs, plug=(tap_name(other.id), other.id))
    plane.interrupt_with(lambda: False, settle)
    observations = ovs.flow_observations
    first = plane.reconcile(view)  # the watch's pass: sends, then waits a moment: a plug
    assert settle.waits == [config().full_phase_grace] and config().full_phase_grace > 0
    assert settle.news_before == [False]  # the plug, seen by news(), ended the wait
    assert not first.verified and ovs.flow_observations == observations
    local = plane.reconcile_local(view)  # the VIF's pass: its own flows, then the full phase
    assert local.verified and other.id in local.ports_up
    assert ovs.flow_observations == observations + 1 and settle.waits == [0.02]
    assert changes(plane.reconcile(view).counts) == {}


def test_the_grace_is_waited_only_after_a_fast_phase_that_sent_something():
    ovs = CountingOvs()
    plane, view, new = bound_then_settled(ovs)
    settle = Settle(ovs)
    plane.interrupt_with(lambda: False, settle)
    assert plane.reconcile(view).verified and settle.waits == []  # nothing to send
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    outcome = plane.reconcile(view)  # nothing came within the grace: observed at once after
    assert outcome.verified and outcome.counts["flows_added"] > 5 and len(settle.waits) == 1
    other, linux = CountingOvs(), FakeLinuxDriver()
    instant = HostDataplane(replace(config(), full_phase_grace=0.0),
                            Drivers(other, linux, FakeNatDriver(linux)))
    never = Settle(other)
    instant.interrupt_with(lambda: False, never)
    instant.reconcile(view)
    other.plug_vif("br-int", tap_name(new.id), new.id)
    assert instant.reconcile(view).counts["flows_added"] > 5 and never.waits == []


def test_with_the_fast_phase_off_every_pass_observes_first():
    ovs = CountingOvs()
    new = EXTRA[1]
    view = secured(east_west_cloud().with_vm(new))
    linux = FakeLinuxDriver()
    plane = HostDataplane(replace(config(), fast_phase=False),
                          Drivers(ovs, linux, FakeNatDriver(linux)))
    plane.interrupt_with(lambda: True)
    assert plane.reconcile(view).errors == ()
    ovs.plug_vif("br-int", tap_name(new.id), new.id)
    observations = ovs.flow_observations
    outcome = plane.reconcile_local(view)
    assert outcome.verified and "fast" not in outcome.timings
    assert ovs.flow_observations == observations + 1 and outcome.counts["flows_added"] > 5

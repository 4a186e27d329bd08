"""execute_plan: batching, counting, and carrying on past failures."""

from __future__ import annotations

from reconcile_helpers import plugged_host

from dvr.agent.desired.openflow import DROP, NORMAL, Match
from dvr.agent.desired.state import Address, Flow, Neighbor
from dvr.agent.drivers.base import DriverError, Drivers
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeOvsDriver, fake_drivers
from dvr.agent.reconcile.commands import (
    AddAddress,
    CreateNamespace,
    CreateVeth,
    DeletePort,
    EnsureBridge,
    EnsurePort,
    FlowBundle,
    FlowRef,
    ReplaceNeighbor,
    SetPortTag,
)
from dvr.agent.reconcile.executor import execute_plan
from dvr.agent.reconcile.plan import Plan
from dvr.agent.reconcile.reconciler import reconcile
from dvr.lab.handmade import two_host_cloud

CLOUD = two_host_cloud()


class RecordingOvs(FakeOvsDriver):
    def __init__(self, refuse: type | None = None):
        super().__init__()
        self.batches: list[list] = []
        self.refuse = refuse

    def transact(self, ops):
        self.batches.append(list(ops))
        if self.refuse and any(isinstance(o, self.refuse) for o in ops):
            raise DriverError("refused")
        super().transact(ops)


def test_consecutive_ovsdb_commands_share_one_transaction():
    ovs = RecordingOvs()
    drivers = Drivers(ovs, FakeLinuxDriver())
    plan = Plan((
        EnsureBridge("br-int", "netdev", "secure"), EnsureBridge("br-tun", "netdev", "secure"),
        CreateNamespace("qrouter-1"),
        CreateVeth("qrouter-1", "qr-1", "qrb-1", "fa:16:3e:00:00:01", 1450),
        EnsurePort("br-int", "qrb-1", tag=1), EnsurePort("br-tun", "patch-int", "patch"),
        FlowBundle("br-int", (Flow(0, 0, Match(), (NORMAL,), "bridge:br-int"),)),
        DeletePort("br-tun", "patch-int"),
    ))
    report = execute_plan(plan, drivers)
    assert report.ok
    assert [[type(o).__name__ for o in b] for b in ovs.batches] == [
        ["EnsureBridge", "EnsureBridge"], ["EnsurePort", "EnsurePort"], ["DeletePort"]]
    assert report.as_dict() == {
        "bridges_ensured": 2, "namespaces_created": 1, "links_created": 1, "ports_ensured": 2,
        "flows_added": 1, "ports_removed": 1}


def test_a_failed_transaction_fails_all_its_commands_and_the_rest_goes_on():
    ovs = RecordingOvs(refuse=SetPortTag)
    drivers = Drivers(ovs, FakeLinuxDriver())
    plan = Plan((
        EnsureBridge("br-int", "netdev", "secure"),
        CreateNamespace("qrouter-1"),
        EnsurePort("br-int", "p1"), SetPortTag("p1", 3),
        CreateNamespace("qrouter-2"),
    ))
    report = execute_plan(plan, drivers)
    assert [type(f.command).__name__ for f in report.failures] == ["EnsurePort", "SetPortTag"]
    assert all("refused" in f.error for f in report.failures)
    assert report.count("namespaces_created") == 2 and report.count("ports_ensured") == 0
    assert "failures=2" in report.log_fields()
    assert "p1" not in ovs.bridges["br-int"].ports


def test_commands_of_a_namespace_that_could_not_be_created_are_skipped():
    drivers = fake_drivers()
    drivers.linux.add_foreign_namespace("qrouter-1")  # CreateNamespace will fail: it exists
    plan = Plan((
        CreateNamespace("qrouter-1"),
        CreateVeth("qrouter-1", "qr-1", "qrb-1", "fa:16:3e:00:00:01", 1450),
        AddAddress("qrouter-1", Address("qr-1", "192.0.2.1/24")),
        ReplaceNeighbor("qrouter-1", Neighbor("qr-1", "192.0.2.2", "fa:16:3e:00:00:02")),
        CreateNamespace("qrouter-2"),
    ))
    report = execute_plan(plan, drivers)
    assert [type(f.command).__name__ for f in report.failures] == ["CreateNamespace"]
    assert [type(c).__name__ for c in report.skipped] == [
        "CreateVeth", "AddAddress", "ReplaceNeighbor"]
    assert report.count("namespaces_created") == 1 and not report.ok
    assert "skipped=3" in report.log_fields()


def test_commands_on_a_bridge_that_could_not_be_created_are_skipped():
    ovs = RecordingOvs(refuse=EnsureBridge)
    drivers = Drivers(ovs, FakeLinuxDriver())
    plan = Plan((
        EnsureBridge("br-int", "netdev", "secure"),
        CreateNamespace("qrouter-1"),
        EnsurePort("br-int", "qrb-1"),
        FlowBundle("br-int", (Flow(0, 0, Match(), (NORMAL,), "bridge:br-int"),)),
    ))
    report = execute_plan(plan, drivers)
    assert [type(c).__name__ for c in report.skipped] == ["EnsurePort", "FlowBundle"]
    assert report.count("namespaces_created") == 1


def test_a_refused_bundle_changes_nothing_and_is_reported():
    desired = CLOUD.desired("compute-1")
    drivers = plugged_host(CLOUD, "compute-1")
    reconcile(desired, drivers)
    before = drivers.ovs.flows("br-int")
    flow = next(iter(before))
    bad = FlowBundle("br-int", (Flow(0, 9, Match(in_port="nosuchport"), (DROP,), "port:x"),),
                     (FlowRef(flow.table, flow.cookie),))
    report = execute_plan(Plan((bad,)), drivers)
    assert "nosuchport" in report.failures[0].error
    assert drivers.ovs.flows("br-int") == before
    assert report.count("flows_added") == report.count("flows_removed") == 0


def test_the_log_line_has_counts_and_timings():
    clock = iter([1.0, 1.010, 1.011, 1.050])
    result = reconcile(CLOUD.desired("compute-1"), plugged_host(CLOUD, "compute-1"),
                       clock=lambda: next(clock))
    line = result.log_line()
    assert line.startswith("reconcile host=compute-1 revision=1 ")
    assert "observe_ms=10.0 plan_ms=1.0 apply_ms=39.0 ms=50.0" in line
    assert "flows_added=" in line and "failures=0" in line

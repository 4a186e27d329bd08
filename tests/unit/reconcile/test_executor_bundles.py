"""execute_plan: bundles of different bridges are sent side by side, each all-or-nothing,
and everything else keeps its order."""

from __future__ import annotations

import threading

from dvr.agent.desired.openflow import DROP, Match
from dvr.agent.desired.state import Flow
from dvr.agent.drivers.base import DriverError, Drivers
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeOvsDriver
from dvr.agent.reconcile.commands import EnsureBridge, FlowBundle, SetSysctl
from dvr.agent.reconcile.executor import execute_plan
from dvr.agent.reconcile.plan import Plan


class MeetingOvs(FakeOvsDriver):
    """apply_flows waits (bounded) until ``parties`` bundles are in flight at once; a
    bundle that waited in vain fails."""

    def __init__(self, parties: int, refuse: str | None = None):
        super().__init__()
        self.meeting = threading.Barrier(parties, timeout=5)
        self.refuse = refuse
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def transact(self, ops):
        with self.lock:
            self.calls.append("ovsdb")
        super().transact(ops)

    def apply_flows(self, bundle: FlowBundle) -> None:
        with self.lock:
            self.calls.append(f"flows {bundle.bridge}")
        try:
            self.meeting.wait()
        except threading.BrokenBarrierError as error:
            raise DriverError("bundles were sent one after the other") from error
        if bundle.bridge == self.refuse:
            raise DriverError(f"{bundle.bridge}: refused")
        super().apply_flows(bundle)


def bundle(bridge: str, n: int) -> FlowBundle:
    flows = tuple(Flow(0, 10 + i, Match(dl_vlan=i + 1), (DROP,), f"x:{bridge}{i}")
                  for i in range(n))
    return FlowBundle(bridge, flows, ())


def bridges() -> tuple[EnsureBridge, ...]:
    return (EnsureBridge("br-int", "netdev", "secure"), EnsureBridge("br-tun", "netdev", "secure"))


def test_bundles_of_two_bridges_are_in_flight_together_after_the_ovsdb_batch():
    ovs = MeetingOvs(parties=2)
    plan = Plan((*bridges(), bundle("br-int", 2), bundle("br-tun", 3),
                 SetSysctl(None, "net.ipv4.ip_forward", "1")))
    report = execute_plan(plan, Drivers(ovs, FakeLinuxDriver()))
    assert report.failures == ()
    assert report.as_dict() == {"bridges_ensured": 2, "flows_added": 5, "sysctls_set": 1}
    assert ovs.calls[0] == "ovsdb" and sorted(ovs.calls[1:]) == ["flows br-int", "flows br-tun"]
    assert len(ovs.flows("br-int")) == 2 and len(ovs.flows("br-tun")) == 3
    assert dict(report.timings).keys() == {"ovsdb", "flows", "linux"}


def test_a_refused_bundle_fails_alone():
    ovs = MeetingOvs(parties=2, refuse="br-tun")
    plan = Plan((*bridges(), bundle("br-int", 2), bundle("br-tun", 3)))
    report = execute_plan(plan, Drivers(ovs, FakeLinuxDriver()))
    assert [f.command.bridge for f in report.failures] == ["br-tun"]
    assert report.count("flows_added") == 2
    assert len(ovs.flows("br-int")) == 2 and ovs.flows("br-tun") == set()


def test_two_bundles_of_one_bridge_keep_their_order():
    ovs = MeetingOvs(parties=1)
    first, second = bundle("br-int", 1), bundle("br-int", 2)
    report = execute_plan(Plan((bridges()[0], first, second)), Drivers(ovs, FakeLinuxDriver()))
    assert report.failures == ()
    assert ovs.calls == ["ovsdb", "flows br-int", "flows br-int"]

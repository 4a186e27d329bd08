"""What the loop compares to notice local changes: the VIF fingerprint, and the driver's
port-change announcements reaching the loop's callback."""

from __future__ import annotations

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane, vif_fingerprint
from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeOvsDriver
from dvr.agent.reconcile.observed import ObservedBridge, ObservedPort
from tests.unit.desired.desired_scenarios import BLUE_1, HOST_1, east_west_cloud, tap_name


def bridge(*ports: ObservedPort) -> ObservedBridge:
    return ObservedBridge("br-int", ports=ports)


def vif(name: str, iface_id: str, ofport: int | None, managed: bool = False) -> ObservedPort:
    ids = (("iface-id", iface_id),) + ((("dvr-managed", "true"),) if managed else ())
    return ObservedPort(name, external_ids=ids, ofport=ofport)


def test_a_replug_under_the_same_name_changes_the_fingerprint():
    before = vif_fingerprint(bridge(vif("tapA", "a", 5)))
    assert vif_fingerprint(bridge(vif("tapA", "a", 5))) == before
    assert vif_fingerprint(bridge(vif("tapA", "a", 9))) != before  # a new OpenFlow number
    assert vif_fingerprint(bridge(vif("tapB", "a", 5))) != before  # another port
    assert vif_fingerprint(bridge()) != before


def test_the_agents_own_ports_and_unopened_ports_are_not_vifs():
    ports = (vif("qrb-x", "x", 6, managed=True), vif("tapB", "b", -1), vif("tapC", "c", None),
             ObservedPort("patch-tun", ofport=1))
    assert vif_fingerprint(bridge(*ports)) == frozenset()
    assert vif_fingerprint(None) == frozenset()


def test_a_reconcile_reports_the_fingerprint_the_loop_will_compare_with():
    ovs = FakeOvsDriver()
    dataplane = HostDataplane(AgentConfig(host=HOST_1, server="http://127.0.0.1:1"),
                              Drivers(ovs, FakeLinuxDriver()))
    ovs.plug_vif("br-int", tap_name(BLUE_1), BLUE_1)
    outcome = dataplane.reconcile(east_west_cloud().view(HOST_1))
    assert outcome.plugged == dataplane.plugged_vifs() != frozenset()


def test_plugging_and_unplugging_is_announced_through_the_dataplane():
    ovs = FakeOvsDriver()
    dataplane = HostDataplane(AgentConfig(host=HOST_1, server="http://127.0.0.1:1"),
                              Drivers(ovs, FakeLinuxDriver()))
    told = []
    dataplane.on_local_change(lambda: told.append(dataplane.plugged_vifs()))
    ovs.plug_vif("br-int", tap_name(BLUE_1), BLUE_1)
    ovs.unplug_vif(tap_name(BLUE_1))
    assert len(told) == 2 and told[0] != frozenset() and told[1] == frozenset()

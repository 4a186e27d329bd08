"""The agent's dataplane adapter on the fake drivers: observed inputs, restart stability."""

from dvr.agent.config import AgentConfig
from dvr.agent.dataplane import HostDataplane, host_inputs, plugged_vifs
from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeOvsDriver
from dvr.agent.reconcile.observed import ObservedBridge, ObservedPort
from tests.unit.desired.desired_scenarios import (
    BLUE,
    BLUE_1,
    HOST_1,
    ORANGE,
    east_west_cloud,
    tap_name,
)


def make_dataplane(ovs=None, linux=None):
    config = AgentConfig(host=HOST_1, server="http://127.0.0.1:1")
    return HostDataplane(config, Drivers(ovs or FakeOvsDriver(), linux or FakeLinuxDriver()))


def test_plugged_vifs_ignore_agent_ports_and_unopened_ports():
    bridge = ObservedBridge("br-int", ports=(
        ObservedPort("tapA", external_ids=(("iface-id", "a"),), ofport=5),
        ObservedPort("qrb-x", external_ids=(("iface-id", "x"), ("dvr-managed", "true")),
                     ofport=6),
        ObservedPort("tapB", external_ids=(("iface-id", "b"),), ofport=-1),
        ObservedPort("patch-tun", ofport=1),
    ))
    assert plugged_vifs(bridge) == {"a": "tapA"}
    assert plugged_vifs(None) == {}


def test_host_inputs_take_vlans_back_from_port_tags_and_memory_wins():
    view = east_west_cloud().view(HOST_1)
    bridge = ObservedBridge("br-int", ports=(
        ObservedPort(tap_name(BLUE_1), tag=7, external_ids=(("iface-id", BLUE_1),), ofport=3),
    ))
    assert host_inputs(view, bridge, {}).previous_local_vlans == {BLUE: 7}
    assert host_inputs(view, bridge, {BLUE: 2}).previous_local_vlans == {BLUE: 2}


def test_reconcile_programs_fake_switch_and_reports_plugged_port_up():
    ovs = FakeOvsDriver()
    dp = make_dataplane(ovs)
    view = east_west_cloud().view(HOST_1)
    ovs.plug_vif("br-int", tap_name(BLUE_1), BLUE_1)
    outcome = dp.reconcile(view)
    assert outcome.errors == ()
    assert outcome.ports_up == (BLUE_1,)
    assert outcome.vifs == {BLUE_1: tap_name(BLUE_1)}
    assert set(outcome.local_vlans) == {BLUE, ORANGE}
    assert ovs.flows("br-tun") and ovs.flows("br-int")
    assert outcome.counts.get("flows_added", 0) > 0


def test_restarted_agent_changes_nothing():
    ovs, linux = FakeOvsDriver(), FakeLinuxDriver()
    view = east_west_cloud().view(HOST_1)
    ovs.plug_vif("br-int", tap_name(BLUE_1), BLUE_1)
    first = make_dataplane(ovs, linux)
    first.reconcile(view)
    flows_before = {b: ovs.flows(b) for b in ("br-int", "br-tun")}
    restarted = make_dataplane(ovs, linux)  # a new process: no memory of VLANs
    outcome = restarted.reconcile(view)
    assert outcome.counts == {}
    assert {b: ovs.flows(b) for b in ("br-int", "br-tun")} == flows_before

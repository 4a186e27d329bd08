"""The real OVS driver's cheap paths, against a real switch: port changes are announced as
they happen (statistics are not), and flows applied and observed with ovs-ofctl
--no-names read exactly as ovs-ofctl --names prints them."""

from __future__ import annotations

import threading
import time

import pytest
from dataplane_support import br_int_with_two_ports, comparable, ofctl

from dvr.agent.desired.openflow import DROP, NORMAL, STRIP_VLAN, Match, Output
from dvr.agent.desired.state import Flow
from dvr.agent.drivers.base import DriverError
from dvr.agent.drivers.openflow import parse_dump_flows
from dvr.agent.drivers.ovs import OFPP_LOCAL, OvsConfig, OvsDriver
from dvr.agent.reconcile.commands import EnsureBridge, FlowBundle, SetPortTag
from dvr.lab.hostenv import HostEnv


class Changes:
    def __init__(self) -> None:
        self.count = 0
        self.seen = threading.Condition()

    def __call__(self) -> None:
        with self.seen:
            self.count += 1
            self.seen.notify_all()

    def wait_beyond(self, count: int, timeout: float = 10.0) -> bool:
        with self.seen:
            return self.seen.wait_for(lambda: self.count > count, timeout)


def test_a_port_plugged_by_someone_else_is_announced(host: HostEnv):
    host.run(["ip", "link", "add", "tapv", "type", "veth", "peer", "name", "vmv"])
    host.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    changes = Changes()
    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        ovs.on_port_change(changes)
        before = changes.count
        host.vsctl("add-port", "br-int", "tapv", "--", "set", "interface", "tapv",
                   "external_ids:iface-id=port-1")
        assert changes.wait_beyond(before)
        (bridge,) = ovs.observe(["br-int"], with_flows=False)
        assert bridge.port("tapv").external_id("iface-id") == "port-1"
        before = changes.count
        host.vsctl("del-port", "br-int", "tapv")
        assert changes.wait_beyond(before)
        (bridge,) = ovs.observe(["br-int"], with_flows=False)
        assert bridge.port("tapv") is None


def test_ports_are_read_once_while_ovsdb_is_unchanged_and_again_after_any_change(
        host: HostEnv):
    host.run(["ip", "link", "add", "tapw", "type", "veth", "peer", "name", "vmw"])
    host.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    host.vsctl("add-port", "br-int", "tapw")
    changes = Changes()
    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        ovs.on_port_change(changes)
        (first,) = ovs.observe(["br-int"], with_flows=False)
        (again,) = ovs.observe(["br-int"], with_flows=False)
        assert again is first  # nothing changed in between: the same read, not a new one
        assert first.port("tapw").tag is None
        for change, seen in (
                (["set", "port", "tapw", "tag=7"], lambda b: b.port("tapw").tag == 7),
                (["set", "interface", "tapw", "external_ids:iface-id=port-9"],
                 lambda b: b.port("tapw").external_id("iface-id") == "port-9"),
                (["del-port", "br-int", "tapw"], lambda b: b.port("tapw") is None)):
            before = changes.count
            host.vsctl(*change)
            assert changes.wait_beyond(before)
            (bridge,) = ovs.observe(["br-int"], with_flows=False)
            assert seen(bridge), change
        assert "tapw" not in ovs.port_numbers("br-int")
        host.vsctl("add-port", "br-int", "tapw")  # read alone, then with the bridge: equal
        deadline = time.monotonic() + 10  # the IDL hears of the number a moment later
        while "tapw" not in ovs.port_numbers("br-int") and time.monotonic() < deadline:
            time.sleep(0.01)
        numbers = ovs.port_numbers("br-int")
        assert numbers["tapw"] > 0 and numbers["br-int"] == OFPP_LOCAL
        (bridge,) = ovs.observe(["br-int"], with_flows=False)
        assert ovs.port_numbers("br-int") == numbers == {
            **{p.name: p.ofport for p in bridge.ports if p.ofport}, "br-int": OFPP_LOCAL}


def test_flows_by_name_in_and_out_match_what_ovs_ofctl_names_prints(host: HostEnv):
    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        br_int_with_two_ports(host, ovs)
        flows = (Flow(0, 5, Match(in_port="tap-a"), (Output("patch-x"),), "port:a"),
                 Flow(1, 4, Match(in_port="patch-x", dl_vlan=3),
                      (STRIP_VLAN, Output("tap-a"), NORMAL), "port:x"))
        ovs.apply_flows(FlowBundle("br-int", flows, ()))
        (bridge,) = ovs.observe(["br-int"])  # from the flow mirror
        printed = parse_dump_flows(ofctl(host, "--names", "dump-flows", "br-int"))
        assert [(f.cookie, f.text, f.ports) for f in ovs.dump_flows("br-int")] == [
            (f.cookie, f.text, f.ports) for f in printed]
        assert comparable(bridge.flows) == comparable(printed)
        assert {f.cookie: frozenset(f.ports) for f in bridge.flows} == {
            f.cookie: f.ports for f in flows}
        assert any('in_port="patch-x"' in f.text and 'output:"tap-a"' in f.text
                   for f in bridge.flows)
        assert {f.cookie for f in bridge.flows} == {f.cookie for f in flows}
        # a name the switch does not know: refused as a whole, by ovs-ofctl, naming it
        with pytest.raises(DriverError, match="nosuch"):
            unknown = Flow(0, 6, Match(in_port="nosuch"), (DROP,), "x:y")
            ovs.apply_flows(FlowBundle("br-int", (unknown,),
                                       ()))
        assert {f.cookie for f in ovs.observe(["br-int"])[0].flows} == {f.cookie for f in flows}


def test_a_batch_of_vif_tags_alone_is_committed_without_waiting_for_the_switch(host: HostEnv):
    host.run(["ip", "link", "add", "tapv", "type", "veth", "peer", "name", "vmv"])
    host.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
    host.vsctl("add-port", "br-int", "tapv")

    def read(table: str, record: str, column: str) -> str:
        return host.vsctl("get", table, record, column).strip()

    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        ovs.transact([SetPortTag("tapv", 7)])
        asked = read("Open_vSwitch", ".", "next_cfg")
        assert read("Port", "tapv", "tag") == "7"
        ovs.transact([SetPortTag("tapv", None)])
        assert read("Port", "tapv", "tag") == "[]"
        assert read("Open_vSwitch", ".", "next_cfg") == asked  # no reconfiguration asked for
        ovs.transact([EnsureBridge("br-x", "netdev", "secure")])  # anything else: asked
        assert int(read("Open_vSwitch", ".", "next_cfg")) == int(asked) + 1

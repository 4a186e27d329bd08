"""Bundles over the long-lived OpenFlow connection on a real switch (issue 14).

- the desired flows of realistic HostViews (east/west with the fast path and security
  groups, namespace-routed, north/south; br-int, br-tun, br-ex) and a flow for every rarer
  field and action, installed on one bridge through the connection and on another through
  ``ovs-ofctl --bundle`` text, dump identically;
- a bundle with one flow the switch refuses applies nothing and says which flow and why;
- deletes by table and cookie remove exactly those flows;
- the OVS driver applies bundles over the connection (no ovs-ofctl), connects again after
  the switch dropped it, and still hands what it cannot encode to ovs-ofctl.
"""

from __future__ import annotations

import subprocess

import pytest
from dataplane_support import ofctl

from dvr.agent.desired.openflow import DROP, NORMAL, Ct, Match, Output, Resubmit
from dvr.agent.desired.state import Flow
from dvr.agent.drivers.base import DriverError
from dvr.agent.drivers.ofconn import BridgeConnection, BundleRefused
from dvr.agent.drivers.openflow import numbered_bundle, parse_dump_flows
from dvr.agent.drivers.ovs import OvsConfig, OvsDriver
from dvr.agent.reconcile.commands import EnsureBridge, EnsurePort, FlowBundle, FlowRef
from dvr.lab.hostenv import HostEnv
from tests.unit.drivers.flow_scenarios import realistic_bridges, vocabulary_flows

VIA_CONNECTION, VIA_OFCTL = "br-conn", "br-text"


def add_bridges(host: HostEnv, *names: str) -> None:
    for name in names:
        host.vsctl("add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
                   "fail_mode=secure")


def connection(host: HostEnv, bridge: str) -> BridgeConnection:
    return BridgeConnection(OvsConfig.for_rundir(host.rundir).management_socket(bridge))


def ofctl_bundle(host: HostEnv, bundle: FlowBundle, numbers: dict[str, int]) -> None:
    """What the driver ran before the connection: the bundle as ovs-ofctl text."""
    text = "\n".join(numbered_bundle(bundle, numbers)) + "\n"
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "--no-names", "--bundle", "add-flows",
                    bundle.bridge, "-"], input=text, env=host.env(), text=True,
                   capture_output=True, check=True)


def dumped(host: HostEnv, bridge: str) -> list[tuple]:
    """(cookie, table, priority, text) of every flow, counters and durations left out."""
    return sorted((f.cookie, f.table, f.priority, f.text) for f in parse_dump_flows(
        ofctl(host, "--no-names", "dump-flows", bridge)))


def test_realistic_flows_dump_identically_through_the_connection_and_ovs_ofctl(host: HostEnv):
    add_bridges(host, VIA_CONNECTION, VIA_OFCTL)
    link = connection(host, VIA_CONNECTION)
    scenarios = [*realistic_bridges(), vocabulary_flows()]
    differ, installed = [], 0
    try:
        for scenario in scenarios:
            for bridge in (VIA_CONNECTION, VIA_OFCTL):
                ofctl(host, "del-flows", bridge)
            link.apply(FlowBundle(VIA_CONNECTION, scenario.flows), scenario.numbers)
            ofctl_bundle(host, FlowBundle(VIA_OFCTL, scenario.flows), scenario.numbers)
            mine, theirs = dumped(host, VIA_CONNECTION), dumped(host, VIA_OFCTL)
            installed += len(mine)
            assert len(theirs) == len(scenario.flows), scenario.label
            if mine != theirs:
                differ.append((scenario.label, sorted(set(mine) ^ set(theirs))[:4]))
    finally:
        link.close()
    assert differ == []
    assert installed > 1000


def test_a_bundle_with_one_refused_flow_applies_nothing_and_names_it(host: HostEnv):
    add_bridges(host, VIA_CONNECTION)
    link = connection(host, VIA_CONNECTION)
    kept = Flow(0, 5, Match(in_port="a"), (Output("b"),), "port:kept")
    try:
        link.apply(FlowBundle(VIA_CONNECTION, (kept,)), {"a": 1, "b": 2})
        before = dumped(host, VIA_CONNECTION)
        good = Flow(1, 7, Match(dl_dst="fa:16:3e:00:00:01"), (NORMAL,), "port:good")
        # table 254 is the switch's own: refused when the flow_mod is added to the bundle
        hidden = Flow(254, 7, Match(), (DROP,), "port:bad")
        with pytest.raises(BundleRefused, match=r"^Error OFPBRC_EPERM for: add table=254,"
                                                r"priority=7,cookie=0x[0-9a-f]+,actions=drop$"):
            link.apply(FlowBundle(VIA_CONNECTION, (good, hidden), (FlowRef(0, kept.cookie),)),
                       {"a": 1, "b": 2})
        assert dumped(host, VIA_CONNECTION) == before
        # a full table is found only when the bundle is committed
        host.vsctl("--", "--id=@t", "create", "Flow_Table", "flow_limit=1", "--", "set",
                   "Bridge", VIA_CONNECTION, "flow_tables:3=@t")
        fill = [Flow(3, 10 + n, Match(), (DROP,), f"port:fill{n}") for n in range(2)]
        with pytest.raises(BundleRefused, match=r"Error OFPFMFC_TABLE_FULL for: add table=3,"
                                                r"priority=11,.*; Error OFPBFC_MSG_FAILED for: "
                                                r"the bundle's commit"):
            link.apply(FlowBundle(VIA_CONNECTION, (good, *fill), (FlowRef(0, kept.cookie),)),
                       {"a": 1, "b": 2})
        assert dumped(host, VIA_CONNECTION) == before
        # the connection is still good
        link.apply(FlowBundle(VIA_CONNECTION, (good,)), {})
        assert len(dumped(host, VIA_CONNECTION)) == 2
    finally:
        link.close()


def test_deletes_by_table_and_cookie_remove_exactly_those_flows(host: HostEnv):
    add_bridges(host, VIA_CONNECTION)
    link = connection(host, VIA_CONNECTION)
    owned = [Flow(table, 5 + n, Match(dl_dst=f"fa:16:3e:00:00:0{n}"), (Resubmit(9),), owner)
             for table in (0, 1) for n, owner in enumerate(("port:a", "port:b", "port:a"))]
    try:
        link.apply(FlowBundle(VIA_CONNECTION, tuple(owned)), {})
        assert len(dumped(host, VIA_CONNECTION)) == 6
        gone = [owned[0], owned[4]]
        # a cookie in the wrong table deletes nothing
        refs = (FlowRef(0, gone[0].cookie), FlowRef(1, gone[1].cookie),
                FlowRef(1, owned[1].cookie))
        link.apply(FlowBundle(VIA_CONNECTION, (), refs), {})
        left = {(f[1], f[0]) for f in dumped(host, VIA_CONNECTION)}
        assert left == {(f.table, f.cookie) for f in owned if f not in gone}
    finally:
        link.close()


def test_the_driver_applies_bundles_over_the_connection_and_reconnects(host: HostEnv):
    config = OvsConfig.for_rundir(host.rundir, ofctl="false", flow_mirror=False)
    with OvsDriver(config) as ovs:  # every ovs-ofctl run would fail: none is run
        ovs.transact([EnsureBridge(VIA_CONNECTION, "netdev", "secure"),
                      EnsurePort(VIA_CONNECTION, "p1", "internal")])
        flow = Flow(0, 5, Match(in_port="p1"), (Output(VIA_CONNECTION),), "port:p1")
        ovs.apply_flows(FlowBundle(VIA_CONNECTION, (flow,)))
        assert [f[0] for f in dumped(host, VIA_CONNECTION)] == [flow.cookie]
        # the switch drops the connection (the bridge goes, a new one comes)
        host.vsctl("del-br", VIA_CONNECTION)
        ovs.transact([EnsureBridge(VIA_CONNECTION, "netdev", "secure"),
                      EnsurePort(VIA_CONNECTION, "p1", "internal")])
        ovs.apply_flows(FlowBundle(VIA_CONNECTION, (flow,)))
        assert [f[0] for f in dumped(host, VIA_CONNECTION)] == [flow.cookie]
        # refused by the switch (conntrack needs an IP match): a DriverError naming the
        # error and the flow, and nothing applied
        with pytest.raises(DriverError, match=r"br-conn: Error OFPBAC_MATCH_INCONSISTENT "
                                              r"for: add table=0,priority=6,.*actions=ct\("):
            ovs.apply_flows(FlowBundle(VIA_CONNECTION, (Flow(0, 6, Match(), (Ct(table=1),),
                                                             "port:bad"),),
                                       (FlowRef(0, flow.cookie),)))
        assert [f[0] for f in dumped(host, VIA_CONNECTION)] == [flow.cookie]
        # a port name the switch does not have goes to ovs-ofctl (here: "false", failing)
        with pytest.raises(DriverError, match="false"):
            ovs.apply_flows(FlowBundle(VIA_CONNECTION, (Flow(0, 6, Match(in_port="nosuch"),
                                                             (DROP,), "port:x"),)))

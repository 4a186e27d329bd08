"""The real Linux and OVS drivers, one host, no fabric: what they apply is what the ordinary
tools see, what they observe is what they applied, and drift made behind their back is
planned back exactly."""

from __future__ import annotations

import json
import subprocess

import pytest

from dvr.agent.desired.openflow import DROP, NORMAL, Match, Output
from dvr.agent.desired.state import (
    Address,
    BridgeState,
    DesiredState,
    Flow,
    NamespaceState,
    Neighbor,
    OvsPort,
    Route,
    Rule,
    VethLink,
)
from dvr.agent.reconcile.commands import (
    DeleteNamespace,
    DeleteNeighbor,
    DeleteRoute,
    DeleteRule,
    EnsurePort,
    FlowBundle,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.lab.hostenv import HostEnv
from dvr.lab.inhost import observe_in_host, plan_in_host, reconcile_in_host

NS = "qrouter-drivers"
SYSCTLS = (("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"))


def desired_state() -> DesiredState:
    links = (
        VethLink("qr-one", "qrb-one", "br-int", "fa:16:3e:00:00:01", 1450, tag=1,
                 external_ids=(("iface-id", "one"),)),
        VethLink("qr-two", "qrb-two", "br-int", "fa:16:3e:00:00:02", 1400, tag=2),
    )
    namespace = NamespaceState(
        name=NS, owner="router:drivers", links=links,
        addresses=(Address("qr-one", "192.0.2.1/24"), Address("qr-two", "198.51.100.1/24"),
                   Address("qr-two", "2001:db8::1/64")),
        routes=(Route("default", "qr-one", "192.0.2.254", table=16),
                Route("203.0.113.0/24", "qr-two", "198.51.100.9"),
                Route("203.0.113.128/25", "qr-one", scope="link", table=17)),
        rules=(Rule(32768, 16, "198.51.100.0/24"), Rule(32769, 17, iif="qr-one")),
        neighbors=(Neighbor("qr-one", "192.0.2.11", "fa:16:3e:10:00:11"),
                   Neighbor("qr-two", "198.51.100.22", "fa:16:3e:20:00:22")),
        sysctls=SYSCTLS)
    flows = frozenset({
        Flow(0, 10, Match(in_port="qrb-one"), (Output("qrb-two"),), "port:one"),
        Flow(0, 0, Match(), (NORMAL,), "bridge:br-int"),
    })
    bridge = BridgeState("br-int", (OvsPort("patch-x", "internal"),), flows)
    return DesiredState("drivers", 1, (bridge,), (namespace,))


def ip_json(host: HostEnv, *argv: str) -> list[dict]:
    return json.loads(host.run(["ip", "netns", "exec", NS, "ip", "-j", *argv]).stdout or "[]")


def in_ns(host: HostEnv, *argv: str) -> str:
    return host.run(["ip", "netns", "exec", NS, *argv]).stdout


def test_applied_state_is_what_the_tools_see_and_what_the_driver_observes(host: HostEnv):
    desired = desired_state()
    result = reconcile_in_host(host, desired)
    assert result.failures == ()
    assert plan_in_host(host, desired).commands == ()

    links = {link["ifname"]: link for link in ip_json(host, "link", "show")}
    assert links["qr-one"]["address"] == "fa:16:3e:00:00:01" and links["qr-one"]["mtu"] == 1450
    assert links["qr-two"]["mtu"] == 1400 and "UP" in links["qr-two"]["flags"]
    assert "UP" in links["lo"]["flags"]
    assert "tx-checksumming: off" in in_ns(host, "ethtool", "-k", "qr-one")
    peer = json.loads(host.run(["ip", "-j", "link", "show", "qrb-two"]).stdout)[0]
    assert peer["mtu"] == 1400 and "UP" in peer["flags"]

    table16 = ip_json(host, "route", "show", "table", "16")
    assert [(r["dst"], r["gateway"], r["dev"]) for r in table16] == [
        ("default", "192.0.2.254", "qr-one")]
    main = [(r["dst"], r.get("gateway"), r.get("protocol")) for r in ip_json(host, "route")]
    assert ("203.0.113.0/24", "198.51.100.9", "static") in main
    table17 = ip_json(host, "route", "show", "table", "17")
    assert [(r["dst"], r["scope"]) for r in table17] == [("203.0.113.128/25", "link")]
    rules = {(r["priority"], r["table"], None if r["src"] == "all" else r["src"], r.get("iif"))
             for r in ip_json(host, "rule", "show")}
    assert {(32768, "16", "198.51.100.0", None), (32769, "17", None, "qr-one")} <= rules
    neighbors = {(n["dst"], n["lladdr"], tuple(n["state"]))
                 for n in ip_json(host, "neigh", "show")}
    assert neighbors == {("192.0.2.11", "fa:16:3e:10:00:11", ("PERMANENT",)),
                         ("198.51.100.22", "fa:16:3e:20:00:22", ("PERMANENT",))}
    assert in_ns(host, "sysctl", "-n", "net.ipv4.ip_forward").strip() == "1"

    observed = observe_in_host(host, desired)
    ns = observed.namespace(NS)
    assert set(ns.addresses) == set(desired.namespaces[0].addresses)
    assert set(ns.routes) == set(desired.namespaces[0].routes)
    assert set(ns.rules) == set(desired.namespaces[0].rules)
    assert {(n.device, n.ip_address, n.mac_address, n.state) for n in ns.neighbors} == {
        ("qr-one", "192.0.2.11", "fa:16:3e:10:00:11", "permanent"),
        ("qr-two", "198.51.100.22", "fa:16:3e:20:00:22", "permanent")}
    assert dict(ns.sysctls) == dict(SYSCTLS)
    assert {(link.name, link.kind, link.tx_checksumming) for link in ns.links} == {
        ("qr-one", "veth", False), ("qr-two", "veth", False)}
    br_int = observed.bridge("br-int")
    assert (br_int.datapath_type, br_int.fail_mode) == ("netdev", "secure")
    ports = {p.name: p for p in br_int.ports}
    assert ports["qrb-one"].tag == 1 and ports["qrb-one"].external_id("iface-id") == "one"
    assert ports["qrb-one"].external_id("dvr-managed") == "true"
    assert {f.cookie for f in br_int.flows} == {f.cookie for f in desired.bridges[0].flows}


def test_drift_behind_the_drivers_back_is_planned_back_exactly(host: HostEnv):
    desired = desired_state()
    assert reconcile_in_host(host, desired).failures == ()
    for argv in (
        ["ip", "route", "replace", "default", "via", "192.0.2.253", "dev", "qr-one",
         "table", "16", "proto", "static"],
        ["ip", "route", "add", "192.0.2.128/25", "via", "192.0.2.253", "proto", "static"],
        ["ip", "rule", "add", "priority", "40000", "from", "192.0.2.0/24", "table", "40"],
        ["ip", "neigh", "replace", "192.0.2.11", "lladdr", "fa:16:3e:10:00:99", "dev",
         "qr-one", "nud", "reachable"],
        ["ip", "neigh", "add", "192.0.2.77", "lladdr", "fa:16:3e:10:00:77", "dev", "qr-one",
         "nud", "permanent"],
        ["ip", "link", "set", "qr-two", "mtu", "1300"],
        ["ethtool", "-K", "qr-one", "tx", "on"],
        ["sysctl", "-qw", "net.ipv4.ip_forward=0"],
    ):
        host.run(["ip", "netns", "exec", NS, *argv])
    host.vsctl("set", "port", "qrb-one", "tag=9")
    subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "add-flow", "br-int",
                    "cookie=0x77,table=5,priority=1,actions=drop"], env=host.env(), check=True)

    plan = plan_in_host(host, desired)
    kinds = {type(c) for c in plan.commands}
    assert kinds == {ReplaceRoute, DeleteRoute, DeleteRule, ReplaceNeighbor, DeleteNeighbor,
                     SetLink, SetTxChecksumming, SetSysctl, EnsurePort, FlowBundle}
    assert [c.route.via for c in plan.commands if isinstance(c, ReplaceRoute)] == [
        "192.0.2.254"]
    assert [c.route.destination for c in plan.commands if isinstance(c, DeleteRoute)] == [
        "192.0.2.128/25"]
    assert [c.ip_address for c in plan.commands if isinstance(c, DeleteNeighbor)] == [
        "192.0.2.77"]
    assert [(b.add, [(r.table, r.cookie) for r in b.delete])
            for b in plan.commands if isinstance(b, FlowBundle)] == [((), [(5, 0x77)])]

    result = reconcile_in_host(host, desired)
    assert result.failures == ()
    assert plan_in_host(host, desired).commands == ()
    assert "tx-checksumming: off" in in_ns(host, "ethtool", "-k", "qr-one")


def test_stale_owned_namespaces_go_and_foreign_ones_stay(host: HostEnv):
    desired = desired_state()
    for name in ("qrouter-stale", "snat-stale", "vm-foreign"):
        host.run(["ip", "netns", "add", name])
    plan = plan_in_host(host, desired)
    assert {c for c in plan.commands if isinstance(c, DeleteNamespace)} == {
        DeleteNamespace("qrouter-stale"), DeleteNamespace("snat-stale")}
    assert reconcile_in_host(host, desired).failures == ()
    assert host.namespaces() == sorted([NS, "vm-foreign"])


def test_the_ovs_driver_from_outside_the_host(host: HostEnv):
    """OVSDB and OpenFlow are unix sockets: the OVS driver works from any namespace."""
    from dvr.agent.drivers.base import DriverError
    from dvr.agent.drivers.ovs import OvsConfig, OvsDriver
    from dvr.agent.reconcile.commands import EnsureBridge, FlowRef

    host.run(["ip", "link", "add", "tapx", "type", "veth", "peer", "name", "vmx"])
    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        # a bridge somebody made standalone: the switch's own NORMAL flow has cookie 0
        host.vsctl("add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
        (bridge,) = ovs.observe(["br-int", "br-none"])  # flows from the mirror: no priority
        assert [(f.cookie, f.text) for f in bridge.flows] == [(0, "actions=NORMAL")]
        assert [(f.cookie, f.text) for f in ovs.dump_flows("br-int")] == [
            (0, "priority=0 actions=NORMAL")]
        ovs.transact([EnsureBridge("br-int", "netdev", "secure", (("owner", "dvr"),)),
                      EnsurePort("br-int", "tapx", tag=3, external_ids=(("iface-id", "x"),))])
        keep = Flow(0, 5, Match(in_port="tapx"), (DROP,), "port:x")
        # deleting cookie 0 in every table would hit the hidden table 254: EPERM
        ovs.apply_flows(FlowBundle("br-int", (keep,), (FlowRef(0, 0),)))
        (bridge,) = ovs.observe(["br-int"])
        assert [f.cookie for f in bridge.flows] == [keep.cookie]
        assert (bridge.fail_mode, dict(bridge.external_ids)["owner"]) == ("secure", "dvr")
        (port,) = bridge.ports
        assert (port.name, port.tag, port.external_id("iface-id")) == ("tapx", 3, "x")
        with pytest.raises(DriverError, match="nosuch"):
            unknown = Flow(0, 6, Match(in_port="nosuch"), (DROP,), "x:y")
            ovs.apply_flows(FlowBundle("br-int", (unknown,),
                                       (FlowRef(0, keep.cookie),)))
        assert [f.cookie for f in ovs.observe(["br-int"])[0].flows] == [keep.cookie]
        (cheap,) = ovs.observe(["br-int"], with_flows=False)
        assert cheap.flows == () and cheap.ports == bridge.ports
        # recreating the port gives it a new number; the flow now prints it by number
        ovs.transact([EnsurePort("br-int", "tapx", tag=3, recreate=True)])
        (after,) = ovs.observe(["br-int"])
        assert after.ports[0].ofport != port.ofport
        assert after.flows[0].text == f"in_port={port.ofport} actions=drop"
        assert after.flows[0].ports == (str(port.ofport),)
        assert ovs.dump_flows("br-int")[0].text == f"priority=5,in_port={port.ofport} actions=drop"


def test_a_tunnel_port_moved_to_another_bridge_is_numbered_there(host: HostEnv):
    """Ensured on another bridge without ``recreate`` (the plan did not see where it was):
    the driver unplugs it in a transaction of its own first, or ovs-vswitchd refuses the
    tunnel as a twin of itself ("File exists") and leaves it without a number."""
    from dvr.agent.drivers.ovs import OvsConfig, OvsDriver
    from dvr.agent.reconcile.commands import EnsureBridge

    tunnel = ("vxlan-moved", "vxlan", (("key", "flow"), ("local_ip", "198.18.0.1"),
                                        ("remote_ip", "198.18.0.2")))
    with OvsDriver(OvsConfig.for_rundir(host.rundir)) as ovs:
        ovs.transact([EnsureBridge("br-a", "netdev", "secure"),
                      EnsureBridge("br-b", "netdev", "secure"),
                      EnsurePort("br-a", *tunnel)])
        ovs.transact([EnsurePort("br-b", *tunnel)])
        bridges = {b.name: b for b in ovs.observe(["br-a", "br-b"], with_flows=False)}
        assert bridges["br-a"].ports == ()
        (moved,) = bridges["br-b"].ports
        assert moved.name == "vxlan-moved" and moved.ofport > 0 and not moved.error

"""The fake drivers refuse what the real ones refuse, so plans tested on them are safe."""

from __future__ import annotations

import pytest

from dvr.agent.desired.openflow import DROP, NORMAL, Match, Output
from dvr.agent.desired.state import Address, Flow, Neighbor, Route, Rule
from dvr.agent.drivers.base import DriverError, LinuxScope
from dvr.agent.drivers.fake import FakeLinuxDriver, FakeOvsDriver
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    CreateNamespace,
    CreateVeth,
    DeleteAddress,
    DeleteLink,
    DeleteNamespace,
    DeleteNeighbor,
    DeletePort,
    DeleteRoute,
    DeleteRule,
    EnsureBridge,
    EnsurePort,
    FlowBundle,
    FlowRef,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetPortTag,
)

NS = "qrouter-1"
VETH = CreateVeth(NS, "qr-1", "qrb-1", "fa:16:3e:00:00:01", 1450)


@pytest.fixture
def linux() -> FakeLinuxDriver:
    driver = FakeLinuxDriver()
    driver.apply(CreateNamespace(NS))
    driver.apply(VETH)
    driver.apply(AddAddress(NS, Address("qr-1", "192.0.2.1/24")))
    return driver


def observe(linux: FakeLinuxDriver):
    return linux.observe(LinuxScope(("qrouter-",), host_links=("qrb-1",),
                                    sysctl_keys=("net.ipv4.ip_forward",)))


def test_a_veth_has_its_bridge_end_in_the_host_and_tx_offload_off_inside(linux):
    seen = observe(linux)
    (ns,) = seen.namespaces
    assert [(link.name, link.kind, link.mac_address, link.mtu, link.up, link.tx_checksumming)
            for link in ns.links] == [("qr-1", "veth", "fa:16:3e:00:00:01", 1450, True, False)]
    assert [(link.name, link.mtu, link.up) for link in seen.host_links] == [("qrb-1", 1450, True)]
    assert ns.sysctls == (("net.ipv4.ip_forward", "0"),)


@pytest.mark.parametrize("op", [
    CreateNamespace(NS),
    VETH,
    CreateVeth(NS, "qr-2", "qrb-1", "fa:16:3e:00:00:02", 1450),  # the bridge end exists
    CreateVeth("qrouter-none", "qr-9", "qrb-9", "fa:16:3e:00:00:09", 1450),
    CreateVeth(NS, "qr-name-too-long", "qrb-2", "fa:16:3e:00:00:02", 1450),
    CreateVeth(NS, "qr-3", "qrb-3", "FA-16-3E-00-00-03", 1450),
    AddAddress(NS, Address("qr-1", "192.0.2.1/24")),  # already there
    AddAddress(NS, Address("qr-9", "192.0.2.9/24")),  # no such device
    ReplaceRoute(NS, Route("203.0.113.0/24", "qr-1", "198.51.100.1")),  # gateway not on link
    ReplaceNeighbor(NS, Neighbor("qr-9", "192.0.2.5", "fa:16:3e:00:00:05")),
    SetLink(NS, "qr-9", mtu=1400),
])
def test_refused_like_the_kernel(linux, op):
    with pytest.raises(DriverError):
        linux.apply(op)


def test_a_route_needs_its_device_up(linux):
    linux.apply(SetLink(NS, "qr-1", up=False))
    with pytest.raises(DriverError, match="down"):
        linux.apply(ReplaceRoute(NS, Route("203.0.113.0/24", "qr-1", "192.0.2.9")))


@pytest.mark.parametrize("op", [
    DeleteNamespace("qrouter-none"),
    DeleteLink(NS, "qr-9"),
    DeleteLink(None, "qrb-9"),
    DeleteAddress(NS, Address("qr-1", "192.0.2.99/24")),
    DeleteRoute(NS, Route("203.0.113.0/24", "qr-1", "192.0.2.9")),
    DeleteRule(NS, Rule(40000, 40)),
    DeleteNeighbor(NS, "qr-1", "192.0.2.99"),
])
def test_deleting_what_is_gone_succeeds(linux, op):
    linux.apply(op)


def test_a_device_takes_its_peer_addresses_routes_and_neighbors_with_it(linux):
    linux.apply(ReplaceRoute(NS, Route("203.0.113.0/24", "qr-1", "192.0.2.9")))
    linux.apply(ReplaceNeighbor(NS, Neighbor("qr-1", "192.0.2.9", "fa:16:3e:00:00:09")))
    linux.apply(AddRule(NS, Rule(32768, 16, "192.0.2.0/24")))
    linux.apply(DeleteLink(None, "qrb-1"))  # deleting the bridge end deletes the pair
    (ns,) = observe(linux).namespaces
    assert (ns.links, ns.addresses, ns.routes, ns.neighbors) == ((), (), (), ())
    assert ns.rules == (Rule(32768, 16, "192.0.2.0/24"),)  # rules belong to no device
    assert observe(linux).host_links == ()


def test_setting_a_mac_flushes_permanent_neighbors_but_an_mtu_does_not(linux):
    neighbor = ReplaceNeighbor(NS, Neighbor("qr-1", "192.0.2.9", "fa:16:3e:00:00:09"))
    linux.apply(neighbor)
    linux.apply(SetLink(NS, "qr-1", mtu=1400))
    assert len(observe(linux).namespaces[0].neighbors) == 1
    linux.apply(SetLink(NS, "qr-1", mac_address="fa:16:3e:00:00:01"))  # the same MAC
    assert observe(linux).namespaces[0].neighbors == ()


def test_a_deleted_namespace_takes_the_bridge_ends_of_its_veths():
    linux = FakeLinuxDriver()
    linux.apply(CreateNamespace(NS))
    linux.apply(VETH)
    linux.apply(DeleteNamespace(NS))
    assert observe(linux).host_links == () and observe(linux).namespaces == ()


def test_only_owned_prefixes_and_named_namespaces_are_observed():
    linux = FakeLinuxDriver()
    for name in ("qrouter-1", "vm-1", "fip-1"):
        linux.add_foreign_namespace(name)
    scope = LinuxScope(("qrouter-", "fip-"), namespaces=("vm-1",))
    assert [n.name for n in linux.observe(scope).namespaces] == ["fip-1", "qrouter-1", "vm-1"]
    scope = LinuxScope(("qrouter-",))
    assert [n.name for n in linux.observe(scope).namespaces] == ["qrouter-1"]


# --- OVS ---------------------------------------------------------------------------------


@pytest.fixture
def ovs() -> FakeOvsDriver:
    driver = FakeOvsDriver()
    driver.transact([EnsureBridge("br-int", "netdev", "secure"),
                     EnsurePort("br-int", "patch-tun", "patch", (("peer", "patch-int"),))])
    return driver


def test_a_transaction_is_all_or_nothing(ovs):
    with pytest.raises(DriverError):
        ovs.transact([EnsurePort("br-int", "p1"), EnsurePort("br-nope", "p2")])
    assert set(ovs.bridges["br-int"].ports) == {"patch-tun"}
    with pytest.raises(DriverError):
        ovs.transact([SetPortTag("nope", 1)])


def test_ports_move_between_bridges_and_recreated_ports_get_new_numbers(ovs):
    ovs.transact([EnsureBridge("br-tun", "netdev", "secure"), EnsurePort("br-int", "p1")])
    first = ovs.bridges["br-int"].ports["p1"].ofport
    ovs.transact([EnsurePort("br-tun", "p1")])
    assert "p1" not in ovs.bridges["br-int"].ports and "p1" in ovs.bridges["br-tun"].ports
    ovs.transact([EnsurePort("br-tun", "p1", recreate=True)])
    assert ovs.bridges["br-tun"].ports["p1"].ofport not in (first, first + 1)
    ovs.transact([DeletePort("br-int", "p1")])  # not there: nothing happens
    assert "p1" in ovs.bridges["br-tun"].ports


def test_a_bundle_with_an_unknown_port_name_changes_nothing(ovs):
    good = Flow(0, 1, Match(in_port="patch-tun"), (NORMAL,), "bridge:br-int")
    ovs.apply_flows(FlowBundle("br-int", (good,)))
    bad = Flow(0, 2, Match(in_port="tap-nope"), (DROP,), "port:x")
    with pytest.raises(DriverError, match="tap-nope"):
        ovs.apply_flows(FlowBundle("br-int", (bad,), (FlowRef(0, good.cookie),)))
    assert ovs.flows("br-int") == {good}


def test_an_add_with_the_same_match_replaces_and_deletes_name_their_table(ovs):
    one = Flow(0, 1, Match(in_port="patch-tun"), (NORMAL,), "bridge:br-int")
    other = Flow(0, 1, Match(in_port="patch-tun"), (DROP,), "bridge:br-int")
    ovs.apply_flows(FlowBundle("br-int", (one,)))
    ovs.apply_flows(FlowBundle("br-int", (other,)))
    assert ovs.flows("br-int") == {other}
    ovs.apply_flows(FlowBundle("br-int", (), (FlowRef(5, other.cookie),)))  # other table
    assert ovs.flows("br-int") == {other}
    ovs.apply_flows(FlowBundle("br-int", (), (FlowRef(0, other.cookie),)))
    assert ovs.flows("br-int") == set()


def test_flows_print_a_gone_port_by_number(ovs):
    ovs.plug_vif("br-int", "tap1", "vif-1")
    flow = Flow(1, 4, Match(dl_vlan=1), (Output("tap1"),), "port:vif-1")
    ovs.apply_flows(FlowBundle("br-int", (flow,)))
    number = ovs.bridges["br-int"].ports["tap1"].ofport
    (bridge,) = ovs.observe(["br-int"])
    assert [f.text for f in bridge.flows] == ["dl_vlan=1 actions=output:tap1"]
    assert [f.ports for f in bridge.flows] == [("tap1",)]
    ovs.unplug_vif("tap1")
    (bridge,) = ovs.observe(["br-int"])
    assert [f.text for f in bridge.flows] == [f"dl_vlan=1 actions=output:{number}"]
    assert [f.ports for f in bridge.flows] == [(str(number),)]
    assert ovs.stale_flows("br-int") == [flow]


def test_bridges_can_be_observed_without_their_flows(ovs):
    ovs.apply_flows(FlowBundle("br-int", (Flow(0, 0, Match(), (NORMAL,), "bridge:br-int"),)))
    (cheap,) = ovs.observe(["br-int", "br-none"], with_flows=False)
    (full,) = ovs.observe(["br-int"])
    assert cheap.flows == () and len(full.flows) == 1 and cheap.ports == full.ports

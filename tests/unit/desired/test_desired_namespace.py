"""The qrouter-<id> namespace: devices, addresses, static ARP, routes, sysctls."""

from __future__ import annotations

from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE,
    BLUE_1,
    BLUE_SUBNET,
    HOST_1,
    HOST_2,
    HOST_3,
    IF_BLUE,
    IF_BLUE_MAC,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE,
    ORANGE_1,
    ORANGE_SUBNET,
    ROUTER,
    Cloud,
    east_west_cloud,
)

from dvr.agent.desired import HostInputs, compute_desired_state
from dvr.agent.desired.state import Address, NamespaceState, Neighbor, Route
from dvr.model.hostview import ArpEntry, ExtraRoute

QR_BLUE = "qr-1b1b1b1b-00"
QR_ORANGE = "qr-2c2c2c2c-00"


@pytest.fixture(scope="module")
def cloud() -> Cloud:
    return east_west_cloud()


def router_namespace(cloud: Cloud, host: str, view=None) -> NamespaceState:
    view = view or cloud.view(host)
    state = compute_desired_state(view, HostInputs(plugged=cloud.plugged(host)))
    namespace = state.namespace(f"qrouter-{ROUTER}")
    assert namespace is not None
    return namespace


def test_one_qr_veth_per_interface_with_interface_mac_and_mtu(cloud):
    namespace = router_namespace(cloud, HOST_1)
    assert namespace.owner == f"router:{ROUTER}"
    links = {link.name: link for link in namespace.links}
    assert set(links) == {QR_BLUE, QR_ORANGE}
    blue = links[QR_BLUE]
    assert blue.mac_address == IF_BLUE_MAC and links[QR_ORANGE].mac_address == IF_ORANGE_MAC
    assert blue.peer == "qrb-1b1b1b1b-00" and blue.bridge == "br-int"
    assert blue.mtu == 1450
    assert dict(blue.external_ids) == {"iface-id": IF_BLUE, "attached-mac": IF_BLUE_MAC}
    state = compute_desired_state(cloud.view(HOST_1), HostInputs(plugged=cloud.plugged(HOST_1)))
    assert blue.tag == dict(state.local_vlans)[BLUE]
    assert links[QR_ORANGE].tag == dict(state.local_vlans)[ORANGE]


def test_bridge_end_of_each_veth_is_a_managed_br_int_port_with_same_tag(cloud):
    state = compute_desired_state(cloud.view(HOST_1), HostInputs(plugged=cloud.plugged(HOST_1)))
    namespace = state.namespace(f"qrouter-{ROUTER}")
    ports = {p.name: p for p in state.bridge("br-int").ports}
    for link in namespace.links:
        port = ports[link.peer]
        assert port.managed and port.tag == link.tag and port.external_ids == link.external_ids


def test_gateway_addresses_with_prefix(cloud):
    assert router_namespace(cloud, HOST_1).addresses == (
        Address(QR_BLUE, "203.0.113.1/26"),
        Address(QR_ORANGE, "203.0.113.65/26"),
    )


def test_permanent_neighbor_for_every_port_on_each_attached_subnet(cloud):
    namespace = router_namespace(cloud, HOST_1)
    expected = {
        Neighbor(QR_BLUE if vm.network_id == BLUE else QR_ORANGE, vm.ip, vm.mac)
        for vm in cloud.vms if vm.network_id in (BLUE, ORANGE)
    }
    assert set(namespace.neighbors) == expected
    assert list(namespace.neighbors) == sorted(namespace.neighbors)


def test_ip_forwarding_on(cloud):
    assert ("net.ipv4.ip_forward", "1") in router_namespace(cloud, HOST_1).sysctls


def test_same_router_has_identical_qr_devices_on_every_host(cloud):
    """MACs, IPs, names, MTU, neighbors and routes agree; only the host-local VLAN may differ."""
    namespaces = [router_namespace(cloud, host) for host in (HOST_1, HOST_2, HOST_3)]

    def host_independent(ns: NamespaceState):
        return (ns.name, tuple((k.name, k.peer, k.mac_address, k.mtu, k.external_ids)
                               for k in ns.links),
                ns.addresses, ns.routes, ns.rules, ns.neighbors, ns.sysctls, ns.nat)

    first = host_independent(namespaces[0])
    assert all(host_independent(ns) == first for ns in namespaces[1:])


def test_qr_devices_identical_even_when_local_vlans_differ(cloud):
    view2 = cloud.view(HOST_2)
    state_a = compute_desired_state(view2, HostInputs(plugged=cloud.plugged(HOST_2)))
    swapped = {BLUE: 77, ORANGE: 5}
    state_b = compute_desired_state(
        view2, HostInputs(plugged=cloud.plugged(HOST_2), previous_local_vlans=swapped))
    a, b = state_a.namespace(f"qrouter-{ROUTER}"), state_b.namespace(f"qrouter-{ROUTER}")
    assert [k.tag for k in b.links] != [k.tag for k in a.links]
    assert [replace(k, tag=None) for k in a.links] == [replace(k, tag=None) for k in b.links]
    assert a.addresses == b.addresses and a.neighbors == b.neighbors


def test_extra_routes_use_the_interface_that_reaches_the_nexthop(cloud):
    view = cloud.view(HOST_1)
    router = view.router(ROUTER)
    routes = (ExtraRoute("198.18.0.0/16", "203.0.113.70"),  # via orange
              ExtraRoute("198.19.0.0/16", "203.0.113.20"),  # via blue
              ExtraRoute("192.0.2.0/24", "198.51.100.1"))  # unreachable next hop: skipped
    view = replace(view, routers=(replace(router, routes=routes),))
    assert router_namespace(cloud, HOST_1, view).routes == (
        Route("198.18.0.0/16", QR_ORANGE, via="203.0.113.70"),
        Route("198.19.0.0/16", QR_BLUE, via="203.0.113.20"),
    )


def test_arp_entries_for_unattached_subnets_and_the_gateway_itself_are_skipped(cloud):
    view = cloud.view(HOST_1)
    router = view.router(ROUTER)
    extra = (ArpEntry("sub-elsewhere", "198.18.0.9", "fa:16:3e:99:00:09"),
             ArpEntry(BLUE_SUBNET, "203.0.113.1", IF_BLUE_MAC))
    view = replace(view, routers=(replace(router, arp_entries=router.arp_entries + extra),))
    assert router_namespace(cloud, HOST_1, view) == router_namespace(cloud, HOST_1)


def test_mac_change_of_a_port_changes_exactly_its_neighbor(cloud):
    before = router_namespace(cloud, HOST_1)
    moved = cloud.with_vm(replace(cloud.vm(ORANGE_1), mac="fa:16:3e:00:02:99"))
    after = router_namespace(moved, HOST_1)
    vm = cloud.vm(ORANGE_1)
    assert set(before.neighbors) - set(after.neighbors) == {Neighbor(QR_ORANGE, vm.ip, vm.mac)}
    assert set(after.neighbors) - set(before.neighbors) == {
        Neighbor(QR_ORANGE, vm.ip, "fa:16:3e:00:02:99")}
    assert before.links == after.links


def test_router_not_hosted_without_serviceable_port(cloud):
    without = cloud.without_vm(BLUE_1)
    state = compute_desired_state(without.view(HOST_1),
                                  HostInputs(plugged=without.plugged(HOST_1)))
    assert state.namespaces == ()
    assert not any(p.name.startswith("qrb-") for p in state.bridge("br-int").ports)
    assert not any(f.owner.startswith("subnet:") for f in state.bridge("br-tun").flows)


def test_interface_on_network_missing_from_view_is_isolated(cloud):
    view = cloud.view(HOST_1)
    view = replace(view, networks=tuple(n for n in view.networks if n.id != ORANGE))
    namespace = router_namespace(cloud, HOST_1, view)
    orange = next(k for k in namespace.links if k.name == QR_ORANGE)
    assert orange.tag == 4095
    state = compute_desired_state(view, HostInputs(plugged=cloud.plugged(HOST_1)))
    assert not any(f.owner == f"subnet:{ORANGE_SUBNET}" for f in state.bridge("br-tun").flows)


def test_namespaces_sorted_by_name(cloud):
    view = cloud.view(HOST_1)
    router = view.router(ROUTER)
    view = replace(view, routers=(replace(router, id="zzz-router"), router,
                                  replace(router, id="aaa-router")))
    # three routers with the same interfaces: one namespace each (names differ)
    state = compute_desired_state(view, HostInputs(plugged=cloud.plugged(HOST_1)))
    names = [n.name for n in state.namespaces]
    assert names == sorted(names) and len(names) == 3
    assert ORANGE_1  # (scenario sanity)
    assert IF_ORANGE and IF_BLUE

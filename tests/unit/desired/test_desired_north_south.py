"""North/south desired state: snat-, fip- and legacy qrouter- namespaces, br-ex flows."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from desired_scenarios import (
    BLUE_1,
    BLUE_SUBNET,
    HOST_1,
    HOST_2,
    IF_BLUE,
    IF_BLUE_MAC,
    ORANGE_1,
    ROUTER,
    Cloud,
    Host,
    Net,
    east_west_cloud,
)

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired import north_south as ns
from dvr.agent.desired.openflow import NORMAL, STRIP_VLAN, Match, ModDlSrc, ModVlanVid, Output
from dvr.agent.desired.state import DesiredState, NatRule, PeerLink, Route, Rule
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.reconcile.commands import CreateVethPair, ReplaceNatTable
from dvr.agent.reconcile.reconciler import reconcile

NETWORK_1 = "network-1"
EXT = "ext-net-0000-0000-0000-000000000009"
GATEWAY_IP = "192.0.2.10"
FIP = "192.0.2.50"
MAPPED = DesiredConfig(agent_mode="dvr", bridge_mappings=(("public", "br-ex"),))
SNAT_HOST = DesiredConfig(agent_mode="dvr_snat", bridge_mappings=(("public", "br-ex"),))


@pytest.fixture
def cloud() -> Cloud:
    base = east_west_cloud()
    base = base.with_host(Host(NETWORK_1, "198.51.100.21", "fa:16:3f:00:00:21"))
    base = replace(base, external=Net(EXT, 0, "ext-sub", "192.0.2.0/24", mtu=1500,
                                      network_type="flat"))
    router = replace(base.routers[0], gateway_ip=GATEWAY_IP, snat_host=NETWORK_1,
                     fips=((FIP, ORANGE_1),))
    return base.with_router(router)


def state(cloud: Cloud, host: str, config: DesiredConfig = MAPPED) -> DesiredState:
    return compute_desired_state(cloud.view(host), HostInputs(plugged=cloud.plugged(host)),
                                 config)


def snat_port(cloud: Cloud, subnet_id: str):
    return next(s for s in cloud.view(NETWORK_1).routers[0].snat_ports
                if s.subnet_id == subnet_id)


def test_snat_namespace_on_the_snat_host_only(cloud):
    desired = state(cloud, NETWORK_1, SNAT_HOST)
    snat = desired.namespace(f"snat-{ROUTER}")
    assert snat is not None and snat.owner == f"snat:{ROUTER}"
    assert {link.name[:3] for link in snat.links} == {"sg-", "qg-"}
    gateway = f"qg-gw-{ROUTER}"[:14]
    assert any(a.cidr == f"{GATEWAY_IP}/24" and a.device == gateway for a in snat.addresses)
    assert Route("default", gateway, "192.0.2.1") in snat.routes
    assert snat.nat == (NatRule("postrouting", f"snat:{ROUTER}", oif=gateway,
                                snat_to=GATEWAY_IP),)
    ext_vlan = desired.local_vlan(EXT)
    assert next(link for link in snat.links if link.name == gateway).tag == ext_vlan
    for host in (HOST_1, HOST_2):
        assert state(cloud, host).namespace(f"snat-{ROUTER}") is None


def test_snat_without_enable_snat_routes_but_does_not_translate(cloud):
    cloud = cloud.with_router(replace(cloud.routers[0], enable_snat=False))
    snat = state(cloud, NETWORK_1, SNAT_HOST).namespace(f"snat-{ROUTER}")
    assert snat is not None and snat.nat == ()


def test_snat_port_gets_the_gateway_mac_back_in_br_int_table_1(cloud):
    desired = state(cloud, NETWORK_1, SNAT_HOST)
    port = snat_port(cloud, BLUE_SUBNET)
    flows = [f for f in desired.bridge("br-int").flows if f.owner == f"snat:{ROUTER}"]
    vlan = desired.local_vlan(port.network_id)
    assert any(f.table == 1 and f.match == Match(dl_vlan=vlan, dl_dst=port.mac_address)
               and f.actions == (STRIP_VLAN, ModDlSrc(IF_BLUE_MAC),
                                 Output(f"sgb-{port.port_id[:11]}")) for f in flows)


def test_subnet_rules_towards_the_snat_ports_are_identical_on_every_host(cloud):
    expected = None
    for host, config in ((HOST_1, MAPPED), (HOST_2, MAPPED), (NETWORK_1, SNAT_HOST)):
        qrouter = state(cloud, host, config).namespace(f"qrouter-{ROUTER}")
        snat_rules = {r for r in qrouter.rules if r.table != ns.FIP_TABLE}
        assert expected is None or snat_rules == expected
        expected = snat_rules
    port = snat_port(cloud, BLUE_SUBNET)
    table = int(ipaddress.ip_address("203.0.113.1"))  # blue's gateway IP as an integer
    assert Rule(table, table, "203.0.113.0/26") in expected
    assert all(r.priority > 32766 for r in expected)  # after main: east/west wins
    qrouter = state(cloud, HOST_1).namespace(f"qrouter-{ROUTER}")
    assert Route("default", f"qr-{IF_BLUE[:11]}", port.ip_address, table) in qrouter.routes


def test_floating_ip_plumbing_on_the_host_of_its_port(cloud):
    desired = state(cloud, HOST_2)
    qrouter = desired.namespace(f"qrouter-{ROUTER}")
    rfp, fpr = f"rfp-{ROUTER[:11]}", f"fpr-{ROUTER[:11]}"
    assert qrouter.peer_links == (PeerLink(rfp, fpr, f"fip-{EXT}"),)
    orange_ip = cloud.vm(ORANGE_1).ip
    assert Rule(ns.FIP_RULE_PRIORITY, ns.FIP_TABLE, f"{orange_ip}/32") in qrouter.rules
    assert ns.FIP_RULE_PRIORITY < min(r.priority for r in qrouter.rules
                                      if r.table != ns.FIP_TABLE)
    owner = f"router:{ROUTER}"
    assert NatRule("prerouting", owner, iif=rfp, daddr=FIP, dnat_to=orange_ip) in qrouter.nat
    assert NatRule("postrouting", owner, oif=rfp, saddr=orange_ip, snat_to=FIP) in qrouter.nat
    link = ns.allocate_fip_links({ROUTER: EXT})[ROUTER]
    assert Route("default", rfp, link.fip_ip, ns.FIP_TABLE) in qrouter.routes
    fip = desired.namespace(f"fip-{EXT}")
    fg = fip.links[0].name
    assert fg.startswith("fg-") and fip.links[0].tag == desired.local_vlan(EXT)
    assert (f"net.ipv4.conf.{fg}.proxy_arp", "1") in fip.sysctls
    assert Route(f"{FIP}/32", fpr, link.router_ip) in fip.routes
    assert Route("default", fg, "192.0.2.1") in fip.routes
    # none of it on compute-1 (no FIP port there), nor on the SNAT host
    assert state(cloud, HOST_1).namespace(f"fip-{EXT}") is None
    assert state(cloud, HOST_1).namespace(f"qrouter-{ROUTER}").peer_links == ()
    assert state(cloud, NETWORK_1, SNAT_HOST).namespace(f"fip-{EXT}") is None


def test_disassociation_and_move_take_the_plumbing_away(cloud):
    gone = cloud.with_router(replace(cloud.routers[0], fips=()))
    desired = state(gone, HOST_2)
    assert desired.namespace(f"fip-{EXT}") is None
    qrouter = desired.namespace(f"qrouter-{ROUTER}")
    assert qrouter.peer_links == () and qrouter.nat == ()
    assert all(r.table != ns.FIP_TABLE for r in qrouter.rules)
    moved = cloud.with_vm(replace(cloud.vm(ORANGE_1), host=HOST_1))
    assert state(moved, HOST_2).namespace(f"fip-{EXT}") is None
    assert state(moved, HOST_1).namespace(f"fip-{EXT}") is not None


def test_fip_links_are_deterministic_link_local_and_collision_free():
    routers = {f"router-{i}": "net" for i in range(300)}
    first = ns.allocate_fip_links(routers)
    assert first == ns.allocate_fip_links(dict(reversed(list(routers.items()))))
    subnets = {ipaddress.ip_network(f"{link.router_ip}/31") for link in first.values()}
    assert len(subnets) == len(routers)
    assert all(net.subnet_of(ns.FIP_LINK_RANGE) for net in subnets)
    # an existing router keeps its link when another one comes
    assert ns.allocate_fip_links({"router-1": "net"})["router-1"] == first["router-1"]


def test_provider_network_vlan_translation_on_br_ex_and_br_int(cloud):
    desired = state(cloud, NETWORK_1, SNAT_HOST)
    vlan = desired.local_vlan(EXT)
    br_ex = desired.bridge("br-ex")
    assert br_ex is not None and br_ex.fail_mode == "secure"
    assert {p.name for p in br_ex.ports} == {"phy-br-ex"}  # the uplink is not the agent's
    assert any(f.match == Match(in_port="phy-br-ex", dl_vlan=vlan)
               and f.actions == (STRIP_VLAN, NORMAL) for f in br_ex.flows)
    assert any(f.match == Match() and f.actions == (NORMAL,) for f in br_ex.flows)
    assert any(f.match.in_port == "int-br-ex" and f.match.vlan_tci == 0
               and f.actions[0] == ModVlanVid(vlan) for f in desired.bridge("br-int").flows)
    # without the mapping: no br-ex
    assert state(cloud, NETWORK_1, DesiredConfig(agent_mode="dvr_snat")).bridge("br-ex") is None


def test_legacy_router_lives_on_its_central_host_with_gateway_and_fips(cloud):
    legacy = cloud.with_router(replace(cloud.routers[0], distributed=False))
    for host in (HOST_1, HOST_2):
        assert state(legacy, host).namespace(f"qrouter-{ROUTER}") is None
    desired = state(legacy, NETWORK_1, SNAT_HOST)
    assert desired.namespace(f"snat-{ROUTER}") is None
    qrouter = desired.namespace(f"qrouter-{ROUTER}")
    gateway = next(link.name for link in qrouter.links if link.name.startswith("qg-"))
    assert {a.cidr for a in qrouter.addresses if a.device == gateway} == {
        f"{GATEWAY_IP}/24", f"{FIP}/32"}
    assert Route("default", gateway, "192.0.2.1") in qrouter.routes
    orange_ip = legacy.vm(ORANGE_1).ip
    owner = f"router:{ROUTER}"
    assert qrouter.nat == (
        NatRule("prerouting", owner, daddr=FIP, dnat_to=orange_ip),
        NatRule("postrouting", owner, oif=gateway, saddr=orange_ip, snat_to=FIP),
        NatRule("postrouting", owner, oif=gateway, snat_to=GATEWAY_IP),
    )
    assert qrouter.neighbors == () and qrouter.rules == ()
    assert not [f for f in desired.bridge("br-tun").flows if f.owner.startswith("subnet:")]


def converge(desired: DesiredState, drivers) -> None:
    first = reconcile(desired, drivers)
    assert first.report.ok, first.report.failures
    again = reconcile(desired, drivers)
    assert len(again.plan) == 0, again.plan.commands


def test_fake_drivers_converge_and_a_restart_changes_nothing(cloud):
    for host, config in ((HOST_2, MAPPED), (NETWORK_1, SNAT_HOST)):
        drivers = fake_drivers()
        desired = state(cloud, host, config)
        converge(desired, drivers)
        for namespace in desired.namespaces:
            assert drivers.nat.rules(namespace.name) == namespace.nat


def test_fake_drivers_remove_the_fip_plumbing_on_disassociation(cloud):
    drivers = fake_drivers()
    converge(state(cloud, HOST_2), drivers)
    assert f"fip-{EXT}" in drivers.linux.namespaces
    gone = state(cloud.with_router(replace(cloud.routers[0], fips=())), HOST_2)
    result = reconcile(gone, drivers)
    assert result.report.ok
    assert f"fip-{EXT}" not in drivers.linux.namespaces
    qrouter = drivers.linux.namespaces[f"qrouter-{ROUTER}"]
    assert f"rfp-{ROUTER[:11]}" not in qrouter.links
    assert drivers.nat.rules(f"qrouter-{ROUTER}") == ()
    assert not [r for r in qrouter.rules if r.table == ns.FIP_TABLE]
    assert len(reconcile(gone, drivers).plan) == 0


def test_a_broken_pair_is_recreated_with_its_far_end_configuration(cloud):
    drivers = fake_drivers()
    desired = state(cloud, HOST_2)
    converge(desired, drivers)
    fpr = f"fpr-{ROUTER[:11]}"
    fip_ns = drivers.linux.namespaces[f"fip-{EXT}"]
    fip_ns.forget_device(fpr)  # half of the pair gone (the other end left alone)
    result = reconcile(desired, drivers)
    assert result.plan.of_type(CreateVethPair)
    assert not result.plan.of_type(ReplaceNatTable)  # the NAT table was still right
    assert result.report.ok
    assert len(reconcile(desired, drivers).plan) == 0


def test_blue_vm_without_fip_has_no_fip_rule(cloud):
    qrouter = state(cloud, HOST_1).namespace(f"qrouter-{ROUTER}")
    assert all(r.source != f"{cloud.vm(BLUE_1).ip}/32" for r in qrouter.rules)

"""plan_changes: what is planned, in which order, and that applying it converges."""

from __future__ import annotations

from dataclasses import replace

import pytest
from reconcile_helpers import CONFIGURE, CREATE, FLOWS, REMOVE, phases, plugged_host, replan

from dvr.agent.desired.openflow import IN_PORT, NORMAL, STRIP_VLAN, Match, Output, Resubmit
from dvr.agent.desired.state import (
    Address,
    DesiredState,
    Flow,
    NamespaceState,
    Neighbor,
    OvsPort,
    Route,
    Rule,
    VethLink,
)
from dvr.agent.drivers.fake import fake_drivers
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
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.executor import execute_plan
from dvr.agent.reconcile.observe import ObservedState
from dvr.agent.reconcile.observed import (
    ObservedBridge,
    ObservedFlow,
    ObservedLink,
    ObservedNamespace,
    ObservedNeighbor,
    ObservedPort,
)
from dvr.agent.reconcile.plan import plan_changes
from dvr.agent.reconcile.reconciler import reconcile
from dvr.lab.handmade import two_host_cloud

CLOUD = two_host_cloud()
HOST_A, HOST_B = (h.name for h in CLOUD.hosts)
QROUTER = CLOUD.router_namespace
BLUE, ORANGE = CLOUD.network("blue"), CLOUD.network("orange")
MANAGED = ("dvr-managed", "true")


def namespace_only(namespace: NamespaceState) -> DesiredState:
    return DesiredState(host="h", revision=1, bridges=(), namespaces=(namespace,))


def observed_ns(**fields) -> ObservedState:
    return ObservedState(namespaces=(ObservedNamespace(QROUTER, **fields),),
                         host_links=(QR_PEER,))


QR = ObservedLink("qr-1", "veth", "fa:16:3e:00:00:01", 1450, True, False)
QR_PEER = ObservedLink("qrb-1", "veth", "fe:00:00:00:00:01", 1450, True, True)
QR_LINK = VethLink("qr-1", "qrb-1", "br-int", "fa:16:3e:00:00:01", 1450, tag=5)


# --- from nothing ------------------------------------------------------------------------


def test_from_nothing_everything_is_created_in_a_safe_order():
    desired = CLOUD.desired(HOST_B)
    plan = plan_changes(desired, ObservedState())
    order = phases(plan)
    assert order == sorted(order), "creations, then configuration, then flows, then removals"
    assert REMOVE not in order  # nothing to remove on an empty host
    assert plan.of_type(EnsureBridge) == (
        EnsureBridge("br-int", "netdev", "secure"), EnsureBridge("br-tun", "netdev", "secure"))
    assert plan.of_type(CreateNamespace) == (CreateNamespace(QROUTER),)
    assert {c.name for c in plan.of_type(CreateVeth)} == {BLUE.qr_device, ORANGE.qr_device}
    # VIF taps are not ours: never created, so their flows wait until they are plugged
    assert {c.name for c in plan.of_type(EnsurePort)} == {
        "patch-tun", "patch-int", "vxlan-c6120001", BLUE.qr_bridge_port, ORANGE.qr_bridge_port}
    assert {f.owner for f in plan.deferred} == {
        "port:bb000000-0012-4000-8000-0000000000b2", "port:cc000000-0022-4000-8000-0000000000c3"}
    configured = [c for c, p in zip(plan, order, strict=True) if p == CONFIGURE]
    assert all(isinstance(c, (AddAddress, ReplaceNeighbor)) for c in configured)


def test_from_nothing_one_apply_converges_and_the_next_plan_is_empty():
    desired = CLOUD.desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    result = reconcile(desired, drivers)
    assert result.report.ok, result.report.failures
    assert result.plan.deferred == ()
    assert not replan(desired, drivers)
    br_int = drivers.ovs.bridges["br-int"]
    assert br_int.fail_mode == "secure" and br_int.datapath_type == "netdev"
    assert drivers.ovs.flows("br-int") == set(desired.bridge("br-int").flows)
    assert drivers.ovs.flows("br-tun") == set(desired.bridge("br-tun").flows)


def test_counts_for_the_log_line():
    desired = CLOUD.desired(HOST_B)
    result = reconcile(desired, plugged_host(CLOUD, HOST_B))
    counts = result.report.as_dict()
    flows = len(desired.bridge("br-int").flows) + len(desired.bridge("br-tun").flows)
    assert counts["flows_added"] == flows
    assert counts["links_created"] == 2 and counts["namespaces_created"] == 1
    assert counts["neighbors_set"] == 3 and counts["addresses_added"] == 2
    assert f"flows_added={flows}" in result.log_line()
    assert "failures=0" in result.log_line()


# --- re-apply and restart -------------------------------------------------------------------


def test_reapplying_touches_nothing_and_counters_keep_growing():
    desired = CLOUD.desired(HOST_A)
    drivers = plugged_host(CLOUD, HOST_A)
    reconcile(desired, drivers)
    drivers.ovs.send_packets(7)
    bundles, transactions = drivers.ovs.bundles, drivers.ovs.transactions
    applied = drivers.linux.applied
    again = reconcile(desired, drivers)
    assert len(again.plan) == 0 and again.report.counts == ()
    assert (drivers.ovs.bundles, drivers.ovs.transactions) == (bundles, transactions)
    assert drivers.linux.applied == applied
    drivers.ovs.send_packets(1)
    counters = {f.cookie: f.n_packets for b in drivers.ovs.observe(["br-int", "br-tun"])
                for f in b.flows}
    assert set(counters.values()) == {8}


def test_vif_plugged_later_gets_its_deferred_flow_and_nothing_else_changes():
    desired = CLOUD.desired(HOST_B)
    drivers = fake_drivers()
    first = reconcile(desired, drivers)
    assert len(first.plan.deferred) == 2 and first.report.ok
    drivers.ovs.send_packets(3)
    vm = CLOUD.vm("orange-b")
    drivers.ovs.plug_vif("br-int", vm.tap, vm.port_id)
    second = reconcile(desired, drivers)
    assert second.plan.of_type(SetPortTag) == (SetPortTag(vm.tap, 4),)
    (bundle,) = second.plan.of_type(FlowBundle)
    assert bundle.delete == ()
    assert {f.owner for f in bundle.add} == {f"port:{vm.port_id}"}
    assert [f.owner for f in second.plan.deferred] == ["port:bb000000-0012-4000-8000-0000000000b2"]
    untouched = [f for b in drivers.ovs.observe(["br-int", "br-tun"]) for f in b.flows
                 if f.n_packets == 3]
    assert len(untouched) == sum(len(b.flows) for b in desired.bridges) - 2


# --- removal --------------------------------------------------------------------------------


def test_removing_a_router_interface_removes_exactly_its_flows_devices_and_neighbors():
    before, after = CLOUD.desired(HOST_B), CLOUD.without_interface("orange").desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    reconcile(before, drivers)
    plan = replan(after, drivers)

    gone = {f.cookie for b in before.bridges for f in b.flows} - {
        f.cookie for b in after.bridges for f in b.flows}
    assert gone and all(f.owner in ("subnet:orange", "port:cc000000-0022-4000-8000-0000000000c3")
                        for b in before.bridges for f in b.flows if f.cookie in gone)
    bundles = plan.of_type(FlowBundle)
    assert all(b.add == () for b in bundles)
    assert {ref.cookie for b in bundles for ref in b.delete} == gone
    assert plan.of_type(DeleteLink) == (DeleteLink(QROUTER, ORANGE.qr_device),)
    assert plan.of_type(DeletePort) == (DeletePort("br-int", ORANGE.qr_bridge_port),)
    # the device takes its address and neighbors with it: no separate commands
    assert not plan.of_type(DeleteNeighbor, DeleteAddress, DeleteNamespace, CreateVeth)
    assert set(phases(plan)) == {FLOWS, REMOVE}

    execute_plan(plan, drivers)
    ns = drivers.linux.namespaces[QROUTER]
    assert set(ns.links) == {BLUE.qr_device}
    assert {n.device for n in ns.neighbors.values()} == {BLUE.qr_device}
    assert {a.device for a in ns.addresses} == {BLUE.qr_device}
    assert ORANGE.qr_bridge_port not in drivers.linux.host.links
    assert not replan(after, drivers)


def test_a_stale_owned_namespace_is_removed_last_and_foreign_ones_are_never_seen():
    desired = CLOUD.desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    reconcile(desired, drivers)
    drivers.linux.add_foreign_namespace("qrouter-old")
    drivers.linux.add_foreign_namespace("snat-old")
    drivers.linux.add_foreign_namespace("vm-blue-b")
    drivers.linux.add_foreign_namespace("fipx")
    plan = replan(desired, drivers)
    assert plan.commands == (DeleteNamespace("qrouter-old"), DeleteNamespace("snat-old"))
    execute_plan(plan, drivers)
    assert set(drivers.linux.namespaces) == {QROUTER, "vm-blue-b", "fipx"}


def test_vif_ports_plugged_by_others_are_only_tagged_never_deleted():
    desired = CLOUD.desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    drivers.ovs.plug_vif("br-int", "tapforeign", "ffff", tag=99)
    reconcile(desired, drivers)
    assert "tapforeign" in drivers.ovs.bridges["br-int"].ports
    assert drivers.ovs.bridges["br-int"].ports["tapforeign"].tag == 99
    # the VM leaves this host: the agent stops wanting its port, but does not unplug it
    without_vm = replace(CLOUD, vms=tuple(v for v in CLOUD.vms if v.name != "blue-b"))
    plan = replan(without_vm.desired(HOST_B), drivers)
    assert not plan.of_type(DeletePort, SetPortTag)
    execute_plan(plan, drivers)
    assert CLOUD.vm("blue-b").tap in drivers.ovs.bridges["br-int"].ports


def test_managed_ports_no_longer_desired_are_deleted_unmarked_ones_are_kept():
    observed = ObservedState(bridges=(ObservedBridge("br-tun", "netdev", "secure", ports=(
        ObservedPort("vxlan-old", "vxlan", external_ids=(MANAGED,), ofport=3),
        ObservedPort("someones", "", ofport=4),
    )),))
    desired = DesiredState("h", 1, (CLOUD.desired(HOST_A).bridge("br-tun"),), ())
    plan = plan_changes(desired, observed)
    assert plan.of_type(DeletePort) == (DeletePort("br-tun", "vxlan-old"),)
    assert phases(plan)[-1] == REMOVE


def test_stale_flows_are_deleted_by_cookie_in_the_same_bundle():
    flow = Flow(0, 1, Match(in_port="patch-int"), (Resubmit(1),), "bridge:br-tun")
    stranger = ObservedFlow(cookie=0x1234, table=3, priority=9)
    observed = ObservedState(bridges=(ObservedBridge(
        "br-tun", "netdev", "secure", ports=(ObservedPort("patch-int", "patch"),),
        flows=(ObservedFlow(flow.cookie, 0, 1), stranger)),))
    desired = DesiredState("h", 1, (replace(
        CLOUD.desired(HOST_A).bridge("br-tun"), ports=(), flows=frozenset({flow})),), ())
    plan = plan_changes(desired, observed)
    assert plan.of_type(FlowBundle) == (FlowBundle("br-tun", (), (FlowRef(3, 0x1234),)),)


# --- changes ---------------------------------------------------------------------------------


def test_a_flow_whose_content_changes_swaps_cookies_in_one_bundle():
    desired = CLOUD.desired(HOST_A)
    drivers = plugged_host(CLOUD, HOST_A)
    reconcile(desired, drivers)
    old = next(f for f in desired.bridge("br-tun").flows if f.table == 10)
    new = old._replace(actions=(Output("patch-int"), Output("patch-int")))
    bridge = replace(desired.bridge("br-tun"),
                     flows=(desired.bridge("br-tun").flows - {old}) | {new})
    changed = replace(desired, bridges=(desired.bridge("br-int"), bridge))
    plan = replan(changed, drivers)
    assert plan.commands == (FlowBundle("br-tun", (new,), (FlowRef(10, old.cookie),)),)
    execute_plan(plan, drivers)
    assert new in drivers.ovs.flows("br-tun") and old not in drivers.ovs.flows("br-tun")


def test_a_veth_lost_behind_our_back_is_rebuilt_with_its_port_and_the_flows_naming_it():
    flow = Flow(0, 9, Match(in_port="qrb-1"), (NORMAL,), "router:r")
    desired = DesiredState(
        "h", 1,
        (replace(CLOUD.desired(HOST_A).bridge("br-int"), ports=(), flows=frozenset({flow})),),
        (NamespaceState(QROUTER, "router:r", links=(QR_LINK,),
                        addresses=(Address("qr-1", "192.0.2.1/24"),)),))
    drivers = fake_drivers()
    assert reconcile(desired, drivers).report.ok
    drivers.ovs.send_packets(5)
    # somebody deletes the namespace: the veth (and its bridge end) die with it
    drivers.linux.apply(DeleteNamespace(QROUTER))
    plan = replan(desired, drivers)
    assert EnsurePort("br-int", "qrb-1", tag=5, external_ids=(MANAGED,),
                      recreate=True) in plan.commands
    assert plan.of_type(FlowBundle) == (FlowBundle("br-int", (flow,), (FlowRef(0, flow.cookie),)),)
    execute_plan(plan, drivers)
    assert drivers.ovs.stale_flows("br-int") == []
    assert not replan(desired, drivers)


def test_a_port_on_the_wrong_bridge_is_moved():
    observed = ObservedState(bridges=(
        ObservedBridge("br-int", "netdev", "secure",
                       ports=(ObservedPort("patch-int", "patch", (("peer", "patch-tun"),),
                                           external_ids=(MANAGED,), ofport=1),)),
        ObservedBridge("br-tun", "netdev", "secure")))
    desired = CLOUD.desired(HOST_A)
    plan = plan_changes(desired, observed)
    moved = [c for c in plan.of_type(EnsurePort) if c.name == "patch-int"]
    assert moved == [EnsurePort("br-tun", "patch-int", "patch", (("peer", "patch-tun"),),
                                None, (MANAGED,), recreate=True)]
    assert DeletePort("br-int", "patch-int") not in plan.commands


@pytest.mark.parametrize("drift", [
    {"options": (("key", "flow"), ("local_ip", "198.18.0.1"), ("remote_ip", "198.18.0.9"))},
    {"options": (("key", "flow"), ("local_ip", "198.18.0.1"), ("remote_ip", "198.18.0.2"),
                 ("dst_port", "4790"))},
    {"type": "geneve"},
    {"tag": 7},
    {"external_ids": ()},
])
def test_managed_port_drift_is_corrected_in_place(drift):
    desired = CLOUD.desired(HOST_A)
    want = next(p for p in desired.bridge("br-tun").ports if p.type == "vxlan")
    fields = dict(name=want.name, type=want.type, options=want.options, tag=None,
                  external_ids=(MANAGED, ("other", "x")), ofport=2)
    fields.update(drift)
    observed = ObservedState(bridges=(ObservedBridge("br-tun", "netdev", "secure",
                                                     ports=(ObservedPort(**fields),)),))
    plan = plan_changes(desired, observed)
    fixes = [c for c in plan.of_type(EnsurePort) if c.name == want.name]
    assert fixes == [EnsurePort("br-tun", want.name, "vxlan", want.options, None,
                                (MANAGED,))]


def test_extra_external_ids_on_a_port_are_tolerated():
    desired = CLOUD.desired(HOST_A)
    want = next(p for p in desired.bridge("br-tun").ports if p.type == "vxlan")
    observed = ObservedState(bridges=(ObservedBridge("br-tun", "netdev", "secure", ports=(
        ObservedPort(want.name, "vxlan", want.options, None, (MANAGED, ("x", "y")), 3),)),))
    plan = plan_changes(desired, observed)
    assert not [c for c in plan.of_type(EnsurePort) if c.name == want.name]


def test_a_port_the_switch_could_not_open_is_recreated():
    desired = CLOUD.desired(HOST_A)
    want = next(p for p in desired.bridge("br-tun").ports if p.type == "vxlan")
    observed = ObservedState(bridges=(ObservedBridge("br-tun", "netdev", "secure", ports=(
        ObservedPort(want.name, "vxlan", want.options, None, (MANAGED,), ofport=-1,
                     error="could not open network device"),)),))
    fixes = [c for c in plan_changes(desired, observed).of_type(EnsurePort)
             if c.name == want.name]
    assert [c.recreate for c in fixes] == [True]


def test_bridge_settings_are_converged():
    desired = CLOUD.desired(HOST_A)
    observed = ObservedState(bridges=(ObservedBridge("br-int", "system", "standalone"),
                                      ObservedBridge("br-tun", "netdev", "secure")))
    assert plan_changes(desired, observed).of_type(EnsureBridge) == (
        EnsureBridge("br-int", "netdev", "secure"),)


# --- namespace contents ---------------------------------------------------------------------


def test_link_drift_is_set_back_and_tx_offload_switched_off_again():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,)))
    observed = ObservedState(
        namespaces=(ObservedNamespace(QROUTER, links=(
            replace(QR, mac_address="FA:16:3E:00:00:09", up=False, tx_checksumming=True),),
            sysctls=(("net.ipv4.ip_forward", "1"),)),),
        host_links=(replace(QR_PEER, mtu=1500),))
    plan = plan_changes(desired, observed)
    assert plan.commands == (
        SetLink(QROUTER, "qr-1", "fa:16:3e:00:00:01", None),
        SetTxChecksumming(QROUTER, "qr-1", False),
        SetLink(None, "qrb-1", None, 1450),
        EnsurePort("br-int", "qrb-1", tag=5, external_ids=(MANAGED,)),
    )


def test_only_what_differs_is_set_and_a_new_mac_brings_the_neighbors_back():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,), neighbors=(
        Neighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11"),)))
    permanent = ObservedNeighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11", "permanent")
    port = ObservedBridge("br-int", "netdev", "secure", ports=(
        ObservedPort("qrb-1", tag=5, external_ids=(MANAGED,), ofport=1),))
    mtu_only = ObservedState(
        bridges=(port,), host_links=(QR_PEER,),
        namespaces=(ObservedNamespace(QROUTER, links=(replace(QR, mtu=1300),),
                                      neighbors=(permanent,),
                                      sysctls=(("net.ipv4.ip_forward", "1"),)),))
    assert plan_changes(desired, mtu_only).commands == (SetLink(QROUTER, "qr-1", None, 1450),)
    # the kernel flushes every neighbor of a device whose MAC changes, PERMANENT ones too
    new_mac = replace(mtu_only, namespaces=(replace(
        mtu_only.namespaces[0], links=(replace(QR, mac_address="fa:16:3e:00:00:99"),)),))
    assert plan_changes(desired, new_mac).commands == (
        SetLink(QROUTER, "qr-1", "fa:16:3e:00:00:01", None),
        ReplaceNeighbor(QROUTER, Neighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11")))


def test_a_recreated_device_gets_its_addresses_routes_and_neighbors_again():
    desired = namespace_only(NamespaceState(
        QROUTER, "router:r", links=(QR_LINK,), addresses=(Address("qr-1", "192.0.2.1/24"),),
        routes=(Route("203.0.113.0/24", "qr-1", "192.0.2.6"),),
        neighbors=(Neighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11"),)))
    # a dummy of the right name holds everything: replacing it loses all of it
    observed = ObservedState(namespaces=(ObservedNamespace(
        QROUTER, links=(replace(QR, kind="dummy"),), sysctls=(("net.ipv4.ip_forward", "1"),),
        addresses=(Address("qr-1", "192.0.2.1/24"),),
        routes=(Route("203.0.113.0/24", "qr-1", "192.0.2.6"),),
        neighbors=(ObservedNeighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11", "permanent"),)),),
        host_links=(QR_PEER,))
    plan = plan_changes(desired, observed)
    assert plan.of_type(AddAddress, ReplaceRoute, ReplaceNeighbor) == (
        AddAddress(QROUTER, Address("qr-1", "192.0.2.1/24")),
        ReplaceRoute(QROUTER, Route("203.0.113.0/24", "qr-1", "192.0.2.6")),
        ReplaceNeighbor(QROUTER, Neighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11")))


def test_mac_case_does_not_count_as_drift():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(
        replace(QR_LINK, mac_address="FA:16:3E:00:00:01"),)))
    observed = ObservedState(
        bridges=(ObservedBridge("br-int", "netdev", "secure", ports=(
            ObservedPort("qrb-1", tag=5, external_ids=(MANAGED,), ofport=1),)),),
        namespaces=(ObservedNamespace(QROUTER, links=(QR,),
                                      sysctls=(("net.ipv4.ip_forward", "1"),)),),
        host_links=(QR_PEER,))
    assert not plan_changes(desired, observed)


def test_half_a_veth_pair_or_a_wrong_kind_is_replaced():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,)))
    lonely_peer = ObservedState(
        namespaces=(ObservedNamespace(QROUTER, sysctls=(("net.ipv4.ip_forward", "1"),)),),
        host_links=(QR_PEER,))
    plan = plan_changes(desired, lonely_peer)
    assert plan.commands[:2] == (
        DeleteLink(None, "qrb-1"), CreateVeth(QROUTER, "qr-1", "qrb-1", QR_LINK.mac_address,
                                              1450))
    dummy = ObservedState(namespaces=(ObservedNamespace(
        QROUTER, links=(replace(QR, kind="dummy"),),
        sysctls=(("net.ipv4.ip_forward", "1"),)),))
    plan = plan_changes(desired, dummy)
    assert plan.commands[:2] == (
        DeleteLink(QROUTER, "qr-1"), CreateVeth(QROUTER, "qr-1", "qrb-1", QR_LINK.mac_address,
                                                1450))
    assert phases(plan)[:2] == [CREATE, CREATE]


def test_stale_links_in_an_owned_namespace_are_removed():
    desired = namespace_only(NamespaceState(QROUTER, "router:r"))
    plan = plan_changes(desired, observed_ns(links=(QR,), sysctls=(("net.ipv4.ip_forward", "1"),)))
    assert plan.commands == (DeleteLink(QROUTER, "qr-1"),)


def test_sysctls_are_set_only_when_they_differ():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", sysctls=(
        ("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "0"))))
    plan = plan_changes(desired, observed_ns(sysctls=(
        ("net.ipv4.ip_forward", "1"), ("net.ipv4.conf.all.rp_filter", "2"))))
    assert plan.commands == (SetSysctl(QROUTER, "net.ipv4.conf.all.rp_filter", "0"),)


def test_addresses_are_added_and_stale_ones_removed_last():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,), addresses=(
        Address("qr-1", "192.0.2.1/24"), Address("qr-1", "2001:db8::1/64"))))
    observed = ObservedState(
        bridges=(ObservedBridge("br-int", "netdev", "secure", ports=(
            ObservedPort("qrb-1", tag=5, external_ids=(MANAGED,), ofport=1),)),),
        namespaces=(ObservedNamespace(QROUTER, links=(QR,), addresses=(
            Address("qr-1", "2001:0db8:0::1/64"), Address("qr-1", "192.0.2.7/24")),
            sysctls=(("net.ipv4.ip_forward", "1"),)),),
        host_links=(QR_PEER,))
    plan = plan_changes(desired, observed)
    assert plan.commands == (AddAddress(QROUTER, Address("qr-1", "192.0.2.1/24")),
                             DeleteAddress(QROUTER, Address("qr-1", "192.0.2.7/24")))


def test_routes_are_replaced_by_table_and_destination_and_stale_ones_removed():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,), routes=(
        Route("default", "qr-1", "192.0.2.5", table=16),
        Route("203.0.113.0/24", "qr-1", "192.0.2.6"),
        Route("198.51.100.0/24", "qr-1", scope="link"),
    )))
    observed = observed_ns(links=(QR,), sysctls=(("net.ipv4.ip_forward", "1"),), routes=(
        Route("default", "qr-1", "192.0.2.9", table=16),  # other gateway: replace
        Route("203.0.113.0/24", "qr-1", "192.0.2.6"),  # as wanted: untouched
        Route("default", "qr-1", "192.0.2.5"),  # main table: not wanted
    ))
    plan = plan_changes(desired, observed)
    assert set(plan.of_type(ReplaceRoute)) == {
        ReplaceRoute(QROUTER, Route("default", "qr-1", "192.0.2.5", table=16)),
        ReplaceRoute(QROUTER, Route("198.51.100.0/24", "qr-1", scope="link"))}
    assert plan.of_type(DeleteRoute) == (
        DeleteRoute(QROUTER, Route("default", "qr-1", "192.0.2.5")),)


def test_things_on_a_device_that_goes_away_are_not_removed_one_by_one():
    desired = namespace_only(NamespaceState(QROUTER, "router:r"))
    observed = observed_ns(links=(QR,), sysctls=(("net.ipv4.ip_forward", "1"),),
                           addresses=(Address("qr-1", "192.0.2.1/24"),),
                           routes=(Route("203.0.113.0/24", "qr-1", "192.0.2.6"),),
                           neighbors=(ObservedNeighbor("qr-1", "192.0.2.9", "fa:16:3e:00:00:09",
                                                       "permanent"),))
    assert plan_changes(desired, observed).commands == (DeleteLink(QROUTER, "qr-1"),)


def test_rules_are_added_and_stale_ones_removed():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", rules=(
        Rule(32768, 16, "192.0.2.0/24"), Rule(32769, 17, "198.51.100.0/24"))))
    observed = observed_ns(sysctls=(("net.ipv4.ip_forward", "1"),), rules=(
        Rule(32768, 16, "192.0.2.0/24"), Rule(40000, 18, "203.0.113.0/24")))
    plan = plan_changes(desired, observed)
    assert plan.commands == (AddRule(QROUTER, Rule(32769, 17, "198.51.100.0/24")),
                             DeleteRule(QROUTER, Rule(40000, 18, "203.0.113.0/24")))


def test_neighbors_become_permanent_and_only_stale_permanent_ones_are_removed():
    desired = namespace_only(NamespaceState(QROUTER, "router:r", links=(QR_LINK,), neighbors=(
        Neighbor("qr-1", "192.0.2.11", "FA:16:3E:00:00:11"),
        Neighbor("qr-1", "192.0.2.12", "fa:16:3e:00:00:12"),
        Neighbor("qr-1", "192.0.2.13", "fa:16:3e:00:00:13"),
    )))
    observed = ObservedState(
        bridges=(ObservedBridge("br-int", "netdev", "secure", ports=(
            ObservedPort("qrb-1", tag=5, external_ids=(MANAGED,), ofport=1),)),),
        namespaces=(ObservedNamespace(
            QROUTER, links=(QR,), sysctls=(("net.ipv4.ip_forward", "1"),), neighbors=(
                ObservedNeighbor("qr-1", "192.0.2.11", "fa:16:3e:00:00:11", "permanent"),
                ObservedNeighbor("qr-1", "192.0.2.12", "fa:16:3e:00:00:12", "reachable"),
                ObservedNeighbor("qr-1", "192.0.2.13", "fa:16:3e:00:00:99", "permanent"),
                ObservedNeighbor("qr-1", "192.0.2.50", "fa:16:3e:00:00:50", "permanent"),
                ObservedNeighbor("qr-1", "192.0.2.60", "fa:16:3e:00:00:60", "stale"),
            )),),
        host_links=(QR_PEER,))
    plan = plan_changes(desired, observed)
    assert plan.commands == (
        ReplaceNeighbor(QROUTER, Neighbor("qr-1", "192.0.2.12", "fa:16:3e:00:00:12")),
        ReplaceNeighbor(QROUTER, Neighbor("qr-1", "192.0.2.13", "fa:16:3e:00:00:13")),
        DeleteNeighbor(QROUTER, "qr-1", "192.0.2.50"),
    )


def test_fake_drivers_end_with_permanent_neighbors_only_for_desired_entries():
    desired = CLOUD.desired(HOST_A)
    drivers = plugged_host(CLOUD, HOST_A)
    reconcile(desired, drivers)
    drivers.linux.learn_neighbor(QROUTER, BLUE.qr_device, "192.0.2.11", "fa:16:3e:99:99:99")
    plan = replan(desired, drivers)
    assert plan.commands == (ReplaceNeighbor(QROUTER, Neighbor(
        BLUE.qr_device, "192.0.2.11", CLOUD.vm("blue-a").mac)),)
    execute_plan(plan, drivers)
    states = {n.state for n in drivers.linux.namespaces[QROUTER].neighbors.values()}
    assert states == {"permanent"}


# --- flow port references ----------------------------------------------------------------------


@pytest.mark.parametrize("flow,names", [
    (Flow(0, 1, Match(in_port="patch-tun", dl_src="fa:16:3f:00:00:01"), (Resubmit(1),), "x"),
     {"patch-tun"}),
    (Flow(1, 4, Match(dl_vlan=1), (STRIP_VLAN, Output("tapaa000000-00")), "x"),
     {"tapaa000000-00"}),
    (Flow(22, 1, Match(dl_vlan=1), (Output("vxlan-c6120002"), Output("vxlan-c6120003")), "x"),
     {"vxlan-c6120002", "vxlan-c6120003"}),
    (Flow(0, 1, Match(), (NORMAL, IN_PORT), "x"), set()),
])
def test_flow_port_names(flow, names):
    assert flow.ports == names


# --- flows and port numbers -----------------------------------------------------------------


def test_an_unplugged_vif_loses_its_flows_and_gets_them_back_fresh_when_replugged():
    desired = CLOUD.desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    reconcile(desired, drivers)
    vm = CLOUD.vm("orange-b")
    vm_flows = {f for b in desired.bridges for f in b.flows if f.owner == f"port:{vm.port_id}"}
    drivers.ovs.unplug_vif(vm.tap)
    gone = reconcile(desired, drivers)
    assert set(gone.plan.deferred) == {f for f in vm_flows if f.ports}
    assert not drivers.ovs.flows("br-int") & vm_flows
    drivers.ovs.plug_vif("br-int", vm.tap, vm.port_id)  # a new port number
    back = reconcile(desired, drivers)
    assert back.plan.deferred == () and back.report.ok
    assert drivers.ovs.stale_flows("br-int") == []
    assert not replan(desired, drivers)


def test_a_vif_replugged_between_two_reconciles_gets_its_flows_reinstalled():
    desired = CLOUD.desired(HOST_B)
    drivers = plugged_host(CLOUD, HOST_B)
    reconcile(desired, drivers)
    vm = CLOUD.vm("orange-b")
    drivers.ovs.unplug_vif(vm.tap)
    drivers.ovs.plug_vif("br-int", vm.tap, vm.port_id, tag=4)  # same name, new number
    assert [f.flow for f in drivers.ovs.bridges["br-int"].flows
            if f.flow in drivers.ovs.stale_flows("br-int")]
    plan = replan(desired, drivers)
    (bundle,) = plan.of_type(FlowBundle)
    assert {f.owner for f in bundle.add} == {f"port:{vm.port_id}"}
    assert {ref.cookie for ref in bundle.delete} == {f.cookie for f in bundle.add}
    execute_plan(plan, drivers)
    assert drivers.ovs.stale_flows("br-int") == []
    assert not replan(desired, drivers)


def test_flows_printed_with_the_names_they_were_written_with_are_not_reinstalled():
    flow = Flow(0, 1, Match(in_port="patch-tun"), (Output("tapaa000000-00"),), "port:x")
    seen = ObservedFlow(flow.cookie, 0, 1, 5, 500,
                        'priority=1,in_port="patch-tun" actions=output:"tapaa000000-00"',
                        ("patch-tun", "tapaa000000-00"))
    renumbered = replace(seen, text='priority=1,in_port="patch-tun" actions=output:7',
                         ports=("7", "patch-tun"))
    ports = (ObservedPort("patch-tun", "patch", (("peer", "patch-int"),), None, (MANAGED,), 1),
             ObservedPort("tapaa000000-00", ofport=8))
    wanted_ports = (OvsPort("patch-tun", "patch", (("peer", "patch-int"),)),
                    OvsPort("tapaa000000-00", managed=False))
    desired = DesiredState("h", 1, (replace(CLOUD.desired(HOST_A).bridge("br-int"),
                                            ports=wanted_ports, flows=frozenset({flow})),), ())
    for observed_flow, bundles in ((seen, ()), (renumbered, (FlowBundle(
            "br-int", (flow,), (FlowRef(0, flow.cookie),)),))):
        observed = ObservedState(bridges=(ObservedBridge("br-int", "netdev", "secure", ports=ports,
                                                         flows=(observed_flow,)),))
        assert plan_changes(desired, observed).of_type(FlowBundle) == bundles

"""DesiredState/Plan/ObservedState survive JSON (how they reach a lab host), and the
hand-made two-host cloud is a consistent desired state."""

from __future__ import annotations

import json

from reconcile_helpers import plugged_host

from dvr.agent.desired.openflow import ModDlSrc
from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.flow_mirror import FlowTable
from dvr.agent.reconcile.commands import Op
from dvr.agent.reconcile.observe import ObservedState, observe
from dvr.agent.reconcile.observed import ObservedBridge
from dvr.agent.reconcile.plan import plan_changes
from dvr.agent.reconcile.reconciler import reconcile
from dvr.lab.codec import decode, from_jsonable, to_jsonable
from dvr.lab.handmade import two_host_cloud

CLOUD = two_host_cloud()


def through_json(value, hint):
    return from_jsonable(json.loads(json.dumps(to_jsonable(value))), hint)


def test_desired_state_plan_and_observed_state_round_trip_through_json():
    for host in ("compute-1", "compute-2"):
        desired = CLOUD.desired(host)
        assert through_json(desired, DesiredState) == desired
        plan = plan_changes(desired, ObservedState())
        assert through_json(plan.commands, tuple[Op, ...]) == plan.commands
        drivers = plugged_host(CLOUD, host)
        reconcile(desired, drivers)
        drivers.ovs.send_packets(3)
        observed = observe(drivers, desired)
        assert decode(json.loads(json.dumps(to_jsonable(observed))), ObservedState) == observed


def test_the_handmade_cloud_is_consistent():
    for host in CLOUD.hosts:
        desired = CLOUD.desired(host.name)
        for bridge in desired.bridges:
            cookies = [f.cookie for f in bridge.flows]
            assert len(cookies) == len(set(cookies))
            keys = [(f.table, f.priority, f.match) for f in bridge.flows]
            assert len(keys) == len(set(keys)), "no two flows the switch would merge"
            names = {p.name for p in bridge.ports} | {
                link.peer for ns in desired.namespaces for link in ns.links
                if link.bridge == bridge.name}
            assert all(f.ports <= names for f in bridge.flows)
        (qrouter,) = desired.namespaces
        assert {n.ip_address for n in qrouter.neighbors} == {v.ip for v in CLOUD.vms}
        other = next(h for h in CLOUD.hosts if h.name != host.name)
        tun = desired.bridge("br-tun").flows
        assert any(f.table == 9 and f.match.dl_src == other.host_mac for f in tun)
        assert all(ModDlSrc(host.host_mac) in f.actions
                   for f in tun if f.table == 1 and f.priority == 1)
    # the router is identical on both hosts, but for the local VLAN of its bridge ports
    a, b = (CLOUD.desired(h.name).namespaces[0] for h in CLOUD.hosts)
    assert [(x.name, x.peer, x.mac_address, x.mtu) for x in a.links] == [
        (x.name, x.peer, x.mac_address, x.mtu) for x in b.links]
    assert (a.addresses, a.neighbors) == (b.addresses, b.neighbors)
    assert [x.tag for x in a.links] != [x.tag for x in b.links]


def test_removing_an_interface_leaves_the_other_one_alone():
    smaller = CLOUD.without_interface("orange")
    for host in CLOUD.hosts:
        before, after = CLOUD.desired(host.name), smaller.desired(host.name)
        assert [link.name for link in after.namespaces[0].links] == [
            CLOUD.network("blue").qr_device]
        kept = {f for b in after.bridges for f in b.flows}
        assert kept <= {f for b in before.bridges for f in b.flows}


def test_a_plans_basis_and_a_mirrors_snapshot_stay_in_their_process():
    desired = CLOUD.desired("compute-1")
    mirrored = ObservedBridge("br-int", flows=(), mirror=FlowTable().snapshot())
    plan = plan_changes(desired, ObservedState(bridges=(mirrored,)))
    assert plan.basis  # a mirrored bridge: the next plan may start from here
    encoded = json.loads(json.dumps(to_jsonable(plan)))
    assert "basis" not in encoded and "mirror" not in json.dumps(encoded)
    assert decode(json.loads(json.dumps(to_jsonable(mirrored))), ObservedBridge) == mirrored

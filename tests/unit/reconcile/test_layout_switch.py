"""A host switched between tunnel layouts while it runs (an agent restarted with the other
``tunnel_layout``): one pass moves br-tun's ports and, folded, deletes br-tun; back, one pass
recreates it.  On the fake drivers; the same on real OVS in
``tests/integration/test_fast_path_dataplane.py``."""

from __future__ import annotations

from reconcile_helpers import replan

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.reconcile.commands import DeleteBridge, EnsurePort
from dvr.agent.reconcile.observe import ObservedState
from dvr.agent.reconcile.observed import ObservedBridge, ObservedPort
from dvr.agent.reconcile.plan import Plan, plan_changes
from dvr.agent.reconcile.reconciler import reconcile
from tests.unit.desired.desired_scenarios import HOST_2, east_west_cloud

BRIDGE = DesiredConfig()
FOLDED = DesiredConfig(tunnel_layout="folded")
CLOUD = east_west_cloud()
MANAGED = ("dvr-managed", "true")


def desired(config: DesiredConfig) -> DesiredState:
    return compute_desired_state(CLOUD.view(HOST_2), HostInputs(plugged=CLOUD.plugged(HOST_2)),
                                 config)


def host() -> Drivers:
    drivers = fake_drivers()
    for port_id, name in CLOUD.plugged(HOST_2).items():
        drivers.ovs.plug_vif("br-int", name, port_id)
    return drivers


def converge(drivers: Drivers, config: DesiredConfig) -> Plan:
    """One pass; it must leave nothing to do."""
    state = desired(config)
    result = reconcile(state, drivers)
    assert result.report.ok, result.report.failures
    assert not replan(state, drivers)
    return result.plan


def tunnel_ports(drivers: Drivers, bridge: str) -> set[str]:
    return {name for name in drivers.ovs.bridges[bridge].ports
            if name.startswith(("vxlan-", "patch-int"))}


def test_only_the_folded_layout_retires_br_tun():
    assert FOLDED.retired_bridges == ("br-tun",) == desired(FOLDED).retired_bridges
    assert BRIDGE.retired_bridges == () == desired(BRIDGE).retired_bridges


def test_folding_a_running_host_moves_br_tuns_ports_then_deletes_it_in_one_pass():
    drivers = host()
    converge(drivers, BRIDGE)
    moving = tunnel_ports(drivers, "br-tun")
    assert len(moving) == 3  # patch-int and the tunnels to compute-1 and compute-3
    plan = converge(drivers, FOLDED)
    # recreated, not moved in one transaction: the switch refuses a tunnel it still has
    assert {c.name for c in plan.of_type(EnsurePort) if c.recreate} == moving
    assert plan.commands[-1] == DeleteBridge("br-tun")
    assert "br-tun" not in drivers.ovs.bridges
    assert tunnel_ports(drivers, "br-int") == moving


def test_unfolding_a_running_host_brings_br_tun_back_and_clears_its_tables_from_br_int():
    drivers = host()
    converge(drivers, FOLDED)
    converge(drivers, BRIDGE)
    assert tunnel_ports(drivers, "br-tun") and not tunnel_ports(drivers, "br-int")
    assert drivers.ovs.flows("br-int") == desired(BRIDGE).bridge("br-int").flows
    assert max(f.table for f in drivers.ovs.flows("br-int")) < 200


def test_a_retired_bridge_holding_a_port_of_somebody_else_is_kept():
    state = desired(FOLDED)
    theirs = ObservedBridge("br-tun", "netdev", "secure",
                            ports=(ObservedPort("mirror-0", "", ofport=5),))
    assert not plan_changes(state, ObservedState(bridges=(theirs,))).of_type(DeleteBridge)
    # a VIF this host wants on br-int, plugged into br-tun by mistake: only tagged, never
    # moved, so it keeps br-tun too
    vif = next(p.name for p in state.bridge("br-int").ports if not p.managed)
    misplugged = ObservedBridge("br-tun", "netdev", "secure",
                                ports=(ObservedPort(vif, "", ofport=6),))
    assert not plan_changes(state, ObservedState(bridges=(misplugged,))).of_type(DeleteBridge)
    ours = ObservedBridge("br-tun", "netdev", "secure",
                          ports=(ObservedPort("vxlan-old", "vxlan", external_ids=(MANAGED,),
                                              ofport=5),))
    plan = plan_changes(state, ObservedState(bridges=(ours,)))
    assert plan.of_type(DeleteBridge) == (DeleteBridge("br-tun"),)

"""Shared helpers for the reconcile unit tests (fake drivers, hand-made DVR states)."""

from __future__ import annotations

from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.base import Drivers
from dvr.agent.drivers.fake import fake_drivers
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    CreateNamespace,
    CreateVeth,
    CreateVethPair,
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
    ReplaceNatTable,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetPortTag,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.observe import observe
from dvr.agent.reconcile.plan import Plan, plan_changes
from dvr.lab.handmade import HandmadeCloud

CREATE, CONFIGURE, FLOWS, REMOVE = range(4)
PHASES: dict[type, int] = {
    EnsureBridge: CREATE, CreateNamespace: CREATE, CreateVeth: CREATE, SetLink: CREATE,
    CreateVethPair: CREATE, ReplaceNatTable: CONFIGURE,
    SetTxChecksumming: CREATE, SetSysctl: CREATE, EnsurePort: CREATE, SetPortTag: CREATE,
    AddAddress: CONFIGURE, ReplaceRoute: CONFIGURE, AddRule: CONFIGURE,
    ReplaceNeighbor: CONFIGURE,
    FlowBundle: FLOWS,
    DeleteNeighbor: REMOVE, DeleteRoute: REMOVE, DeleteRule: REMOVE, DeleteAddress: REMOVE,
    DeletePort: REMOVE, DeleteNamespace: REMOVE,
}


def phases(plan: Plan) -> list[int]:
    """The phase of every command.  A DeleteLink belongs to CREATE when the plan recreates
    that veth (a broken pair is cleared right before), else to REMOVE."""
    recreated = {(c.namespace, c.name) for c in plan if isinstance(c, CreateVeth)}
    recreated |= {(None, c.peer) for c in plan if isinstance(c, CreateVeth)}
    result = []
    for command in plan:
        if isinstance(command, DeleteLink):
            key = (command.namespace, command.name)
            result.append(CREATE if key in recreated else REMOVE)
        else:
            result.append(PHASES[type(command)])
    return result


def plugged_host(cloud: HandmadeCloud, host: str) -> Drivers:
    """A fresh fake host whose VMs the 'hypervisor' has plugged into br-int."""
    drivers = fake_drivers()
    for vm in cloud.vms:
        if vm.host == host:
            drivers.ovs.plug_vif("br-int", vm.tap, vm.port_id)
    return drivers


def replan(desired: DesiredState, drivers: Drivers) -> Plan:
    return plan_changes(desired, observe(drivers, desired))

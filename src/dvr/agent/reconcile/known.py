"""The fast phase of a pass: flows and VIF tags planned from what is known, unobserved.

After a pass without errors the agent knows what each bridge observed through a flow
mirror holds: exactly the flows its last plan placed (the plan's ``BridgeFlowBasis``: the
desired flows but the deferred ones) on the ports that plan left present.  A change of
desired state -- a VIF plugged, a port, a route, a host in the view -- can then be planned
against that knowledge and sent at once, before the switch and the kernel are observed:
``plan_from_known`` gives the VIF tags that differ from the ports' (the switch's ports are
read from memory, from the OVSDB connection's copy) and one bundle per bridge.

Each cookie is decided by the full plan's rule (``plan.cookie_changes``) with the flows
the basis placed as the installed ones, so the bundles hold what the full plan would
send; the observation that follows finds them installed and changes nothing.  The plan's
basis is the knowledge after it (the earlier mirror snapshot kept, the cookies it sent
added to ``pending``), so that the full plan that follows, or the next fast phase, starts
from it.

A bridge is left to the full plan (``unplanned``) when there is no basis for it, or when
a port present then is gone or has another number now (its flows must be reinstalled:
only an observation tells which).  Only ports that are on the switch with a number count
as present here; a port the full plan is about to create is not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from dvr.agent.desired.state import BridgeState, DesiredState, Flow
from dvr.agent.reconcile.commands import FlowBundle, FlowRef, Op, SetPortTag
from dvr.agent.reconcile.observed import (
    DEFAULT_OWNERSHIP,
    ObservedBridge,
    ObservedFlow,
    Ownership,
)
from dvr.agent.reconcile.plan import (
    BridgeFlowBasis,
    FlowBasis,
    Plan,
    cookie_changes,
    desired_ports,
    left_out,
    port_numbers,
)


@dataclass(frozen=True)
class KnownPlan:
    """What the fast phase sends (``plan``: VIF tags, then one bundle per bridge; its
    ``basis`` the knowledge once it ran) and the bridges it left to the full plan."""

    plan: Plan = field(default_factory=Plan)
    unplanned: frozenset[str] = frozenset()


def plan_from_known(desired: DesiredState, switch: Sequence[ObservedBridge],
                    basis: FlowBasis, ownership: Ownership = DEFAULT_OWNERSHIP) -> KnownPlan:
    """The fast phase's plan from ``desired``, the bridges' ports as they are now
    (``switch``, no flows needed) and the last plan's ``basis`` (see the module
    docstring)."""
    seen = {bridge.name: bridge for bridge in switch}
    wanted = desired_ports(desired)
    home = {name: bridge for bridge, ports in wanted.items() for name in ports}
    commands: list[Op] = [*_vif_tags(wanted, seen)]
    next_basis: dict[str, BridgeFlowBasis] = dict(basis)
    unplanned: set[str] = set()
    for bridge in desired.bridges:
        previous, observed = basis.get(bridge.name), seen.get(bridge.name)
        here = None if observed is None else _present(observed, home, ownership)
        if previous is None or here is None or not _same_ports(previous, observed, here):
            unplanned.add(bridge.name)
            next_basis.pop(bridge.name, None)
            continue
        bundle, next_basis[bridge.name] = _bridge_from_known(
            previous, bridge, here, port_numbers(observed, here))
        if bundle is not None:
            commands.append(bundle)
    return KnownPlan(Plan(tuple(commands), basis=next_basis), frozenset(unplanned))


def beyond_flows_and_vif_tags(before: DesiredState, after: DesiredState) -> bool:
    """Whether ``after`` differs from ``before`` in anything the fast phase does not
    program: the namespaces, the bridges, or the ports the agent manages."""
    if after.namespaces is not before.namespaces and after.namespaces != before.namespaces:
        return True
    if len(after.bridges) != len(before.bridges):
        return True
    for old, new in zip(before.bridges, after.bridges, strict=True):
        if (old.name, old.datapath_type, old.fail_mode, old.external_ids) != (
                new.name, new.datapath_type, new.fail_mode, new.external_ids):
            return True
        if old.ports is not new.ports and _managed(old.ports) != _managed(new.ports):
            return True
    return False


def _managed(ports: Iterable) -> tuple:
    return tuple(p for p in ports if p.managed)


def _vif_tags(wanted: Mapping[str, Mapping[str, object]],
              seen: Mapping[str, ObservedBridge]) -> list[SetPortTag]:
    """The tag of each VIF (a port somebody else plugged) whose tag differs, as the full
    plan sets it."""
    found = {port.name: port for bridge in seen.values() for port in bridge.ports}
    tags = []
    for ports in wanted.values():
        for name in sorted(ports):
            want = ports[name]
            have = found.get(name)
            if not want.managed and have is not None and have.tag != want.tag:
                tags.append(SetPortTag(name, want.tag))
    return tags


def _present(bridge: ObservedBridge, home: Mapping[str, str], ownership: Ownership
             ) -> set[str]:
    """The ports of ``bridge`` that have a number and stay on it (the full plan's
    ``_ports_present_after`` without the ports it is yet to create), and the bridge's own."""
    here = {p.name for p in bridge.ports
            if p.ofport is not None and p.ofport > 0
            and home.get(p.name, bridge.name) == bridge.name
            and (p.name in home or not ownership.owns_port(p))}
    here.add(bridge.name)
    return here


def _same_ports(previous: BridgeFlowBasis, bridge: ObservedBridge, here: set[str]) -> bool:
    """Every port present for the last plan is still there, under the same number."""
    if not previous.present <= here:
        return False
    numbers = port_numbers(bridge, set(previous.numbers))
    return all(numbers.get(name) == number for name, number in previous.numbers.items())


def _installed(flows: Iterable[Flow], deferred: frozenset[Flow]) -> list[ObservedFlow]:
    """The flows of one cookie the basis placed, as an observation would report them."""
    return [ObservedFlow(f.cookie, f.table, f.priority, ports=tuple(sorted(f.ports)))
            for f in flows if f not in deferred]


def _bridge_from_known(previous: BridgeFlowBasis, bridge: BridgeState, here: set[str],
                       numbers: dict[str, int]
                       ) -> tuple[FlowBundle | None, BridgeFlowBasis]:
    """One bridge: the bundle from ``previous`` to ``bridge``'s flows on the ports
    ``here`` (a superset of those present then), and the basis after it."""
    flows = bridge.flows
    removed, added = previous.flows - flows, flows - previous.flows
    by_cookie = dict(previous.by_cookie)
    dirty: set[int] = set()
    for flow in removed:
        dirty.add(flow.cookie)
        rest = tuple(f for f in by_cookie[flow.cookie] if f != flow)
        if rest:
            by_cookie[flow.cookie] = rest
        else:
            del by_cookie[flow.cookie]
    for flow in added:
        dirty.add(flow.cookie)
        by_cookie[flow.cookie] = by_cookie.get(flow.cookie, ()) + (flow,)
    kept = previous.deferred - removed
    if here != previous.present:  # ports came: flows deferred for them can be placed
        placed = {f for f in kept if not left_out(f, here)}
        dirty.update(f.cookie for f in placed)
        kept -= placed
    deferred = kept | {f for f in added if left_out(f, here)}
    add: list[Flow] = []
    delete: set[FlowRef] = set()
    for cookie in dirty:
        wanted = [f for f in by_cookie.get(cookie, ()) if f not in deferred]
        installed = _installed(previous.by_cookie.get(cookie, ()), previous.deferred)
        cookie_changes(cookie, wanted, installed, add, delete)
    sent = frozenset({f.cookie for f in add} | {ref.cookie for ref in delete})
    after = BridgeFlowBasis(flows, by_cookie, previous.mirror, frozenset(here),
                            frozenset(deferred), previous.pending | sent,
                            previous.incremental, numbers)
    if not add and not delete:
        return None, after
    return FlowBundle(bridge.name, tuple(sorted(add, key=Flow.sort_key)),
                      tuple(sorted(delete))), after

"""observe -> diff -> plan: pure.  ``plan_changes(desired, observed)`` returns the commands
that turn what is observed into what is desired, in a safe order:

1. create: bridges, namespaces, veth pairs, link settings, sysctls, OVS ports, VIF tags;
2. configure: addresses, routes, rules, neighbors, NAT tables (only those whose rules read
   back differ from the desired ones);
3. flows: one atomic bundle per bridge (add new cookies, delete stale ones);
4. remove, last: stale neighbors, routes, rules, addresses, links, ports, namespaces.

Only what the agent owns is ever removed (``Ownership``); ports plugged by others only get
their tag.  Wanted flows and devices are never touched, so their counters keep growing.

Flows, incrementally: a bridge of tens of thousands of flows costs a walk of all of them
per pass, so each plan also returns its *basis* (``BridgeFlowBasis`` per bridge: the
desired flows it planned, indexed by cookie, and the flow mirror's observation it planned
against).  Given the previous plan's basis, a bridge is planned from what changed since:
the cookies of desired flows that came or went (a difference of two frozensets), the
cookies the mirror saw change on the switch in between (ours, and anyone's by hand), and
the cookies the previous plan changed (its bundle may have failed).  Every other cookie
was in sync then and nothing touched it since.  The cookies are decided by the same rule
as in a full plan (``cookie_changes``), so the plans are equal.  A bridge is planned in
full when there is no basis, no mirror, when the mirror cannot say what changed (a new
monitor, a new port naming), or when a port comes, goes or is recreated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from dvr.agent.desired.nftables import canonical_nat_rules
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
)
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    AnnounceAddress,
    CreateNamespace,
    CreateVeth,
    CreateVethPair,
    DeleteAddress,
    DeleteBridge,
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
    Op,
    ReplaceNatTable,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetPortTag,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.observed import (
    DEFAULT_OWNERSHIP,
    MirroredFlows,
    ObservedBridge,
    ObservedFlow,
    ObservedNamespace,
    ObservedPort,
    ObservedState,
    Ownership,
)


@dataclass(frozen=True)
class BridgeFlowBasis:
    """What one bridge's flows were planned from, for the next plan to start from (see the
    module docstring).  Never changed: the next plan builds its own."""

    flows: frozenset[Flow]  # the desired flows
    by_cookie: Mapping[int, tuple[Flow, ...]]  # the same, by cookie
    mirror: MirroredFlows  # the observation planned against
    present: frozenset[str]  # the ports on the bridge once that plan has run
    deferred: frozenset[Flow]  # of ``flows``, those left out for a port not present
    pending: frozenset[int]  # cookies that plan added or deleted: looked at again
    incremental: bool  # planned from an earlier basis (False: in full)
    # the OpenFlow numbers of the ports in ``present`` as observed then (ports that plan
    # created or recreated left out: their numbers come later)
    numbers: Mapping[str, int] = field(default_factory=dict)


FlowBasis = Mapping[str, BridgeFlowBasis]  # bridge name -> its basis


@dataclass(frozen=True)
class Plan:
    """Commands in the order to run them.  ``deferred`` are desired flows left out because
    a port they name is not on the bridge (a VIF not plugged yet, or unplugged): they are
    installed once it is there, with its port number of then.  ``basis``: what the next
    plan may start from (bridges observed through a flow mirror only)."""

    commands: tuple[Op, ...] = ()
    deferred: tuple[Flow, ...] = ()
    basis: FlowBasis = field(default_factory=dict, compare=False, repr=False)

    def __iter__(self) -> Iterator[Op]:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)

    def __bool__(self) -> bool:
        return bool(self.commands)

    def of_type(self, *types: type) -> tuple[Op, ...]:
        return tuple(c for c in self.commands if isinstance(c, types))

    def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for command in self.commands:
            name = type(command).__name__
            counts[name] = counts.get(name, 0) + 1
        return counts


@dataclass
class _Steps:
    """Commands collected per step; ``ordered()`` concatenates them in the safe order."""

    bridges: list[Op] = field(default_factory=list)
    namespaces: list[Op] = field(default_factory=list)
    links: list[Op] = field(default_factory=list)
    link_settings: list[Op] = field(default_factory=list)
    ports: list[Op] = field(default_factory=list)
    addresses: list[Op] = field(default_factory=list)
    routes: list[Op] = field(default_factory=list)
    rules: list[Op] = field(default_factory=list)
    neighbors: list[Op] = field(default_factory=list)
    nat: list[Op] = field(default_factory=list)
    flows: list[Op] = field(default_factory=list)
    announcements: list[Op] = field(default_factory=list)
    stale_neighbors: list[Op] = field(default_factory=list)
    stale_routes: list[Op] = field(default_factory=list)
    stale_rules: list[Op] = field(default_factory=list)
    stale_addresses: list[Op] = field(default_factory=list)
    stale_links: list[Op] = field(default_factory=list)
    stale_ports: list[Op] = field(default_factory=list)
    stale_bridges: list[Op] = field(default_factory=list)
    stale_namespaces: list[Op] = field(default_factory=list)

    def ordered(self) -> tuple[Op, ...]:
        return tuple(
            [
                *self.bridges,
                *self.namespaces,
                *self.links,
                *self.link_settings,
                *self.ports,
                *self.addresses,
                *self.routes,
                *self.rules,
                *self.neighbors,
                *self.nat,
                *self.flows,
                *self.announcements,
                *self.stale_neighbors,
                *self.stale_routes,
                *self.stale_rules,
                *self.stale_addresses,
                *self.stale_links,
                *self.stale_ports,
                *self.stale_bridges,
                *self.stale_namespaces,
            ]
        )


# --- normalization (desired and observed compare in one canonical form) ----------------


def normalize_mac(mac: str | None) -> str | None:
    return mac.lower() if mac else mac


def normalize_address(address: Address) -> Address:
    return Address(address.device, str(ipaddress.ip_interface(address.cidr)))


def _normalize_prefix(prefix: str) -> str:
    if prefix == "default":
        return prefix
    return str(ipaddress.ip_network(prefix, strict=False))


def normalize_route(route: Route) -> Route:
    via = str(ipaddress.ip_address(route.via)) if route.via else None
    return Route(_normalize_prefix(route.destination), route.device, via, route.table,
                 route.scope)


def normalize_rule(rule: Rule) -> Rule:
    source = _normalize_prefix(rule.source) if rule.source else None
    return Rule(rule.priority, rule.table, source, rule.iif)


def normalize_neighbor(neighbor: Neighbor) -> Neighbor:
    ip = str(ipaddress.ip_address(neighbor.ip_address))
    return Neighbor(neighbor.device, ip, neighbor.mac_address.lower())


def route_key(route: Route) -> tuple[int, int, str]:
    """The kernel keeps one route per (family, table, destination) at our metric."""
    if route.destination != "default":
        family = ipaddress.ip_network(route.destination, strict=False).version
    elif route.via:
        family = ipaddress.ip_address(route.via).version
    else:
        family = 4
    return family, route.table, route.destination


# --- the diff --------------------------------------------------------------------------


def plan_changes(
    desired: DesiredState,
    observed: ObservedState,
    ownership: Ownership = DEFAULT_OWNERSHIP,
    basis: FlowBasis | None = None,
) -> Plan:
    """The plan from ``observed`` to ``desired``; with ``basis`` (the previous plan's),
    bridges whose flows a mirror observed are planned from what changed since (the same
    plan, found without walking every flow)."""
    steps = _Steps()
    _plan_bridges(desired.bridges, observed, steps)
    recreated_peers = _plan_namespaces(desired.namespaces, observed, ownership, steps)
    recreated_ports = _plan_ports(desired, observed, ownership, recreated_peers, steps)
    present = _ports_present_after(desired, observed, ownership)
    deferred, next_basis = _plan_flows(desired.bridges, observed, recreated_ports, present,
                                       steps, basis or {})
    return Plan(steps.ordered(), deferred, next_basis)


def _plan_bridges(bridges: Iterable[BridgeState], observed: ObservedState, steps: _Steps):
    for bridge in bridges:
        seen = observed.bridge(bridge.name)
        if (
            seen is None
            or seen.datapath_type != bridge.datapath_type
            or seen.fail_mode != bridge.fail_mode
            or not set(bridge.external_ids) <= set(seen.external_ids)
        ):
            steps.bridges.append(
                EnsureBridge(bridge.name, bridge.datapath_type, bridge.fail_mode,
                             bridge.external_ids)
            )


def _plan_namespaces(
    namespaces: Iterable[NamespaceState],
    observed: ObservedState,
    ownership: Ownership,
    steps: _Steps,
) -> set[str]:
    """Plan every desired namespace; returns the bridge ends of veths (re)created."""
    namespaces = tuple(namespaces)
    recreated_peers: set[str] = set()
    wanted = set()
    for namespace in namespaces:
        wanted.add(namespace.name)
        if observed.namespace(namespace.name) is None:
            steps.namespaces.append(CreateNamespace(namespace.name))
    pairs = _plan_peer_links(namespaces, observed, steps)
    for namespace in namespaces:
        seen = observed.namespace(namespace.name) or ObservedNamespace(namespace.name, nat=())
        changes = _plan_links(namespace, seen, observed, steps,
                              pairs.wanted.get(namespace.name, set()))
        changes.fresh_devices.update(pairs.fresh.get(namespace.name, set()))
        recreated_peers |= changes.recreated_peers
        _plan_sysctls(namespace, seen, steps)
        kept = _forget_devices(seen, changes)
        _plan_namespace_config(namespace, kept, steps)
        _plan_nat(namespace, seen, steps)
        _plan_announcements(namespace, kept, steps)
    for seen in observed.namespaces:
        if seen.name not in wanted and ownership.owns_namespace(seen.name):
            steps.stale_namespaces.append(DeleteNamespace(seen.name))
    return recreated_peers


def _plan_announcements(namespace: NamespaceState, seen: ObservedNamespace,
                        steps: _Steps) -> None:
    """A gratuitous ARP for each announced address that is being (re)configured: not yet an
    address of its device, nor the destination of a host route (proxy ARP) there."""
    configured = {(a.device, a.cidr.split("/")[0]) for a in seen.addresses}
    routed = {r.destination.removesuffix("/32") for r in seen.routes
              if r.destination.endswith("/32")}
    devices = {link.name for link in seen.links}
    for device, ip in namespace.announced:
        if device not in devices or ((device, ip) not in configured and ip not in routed):
            steps.announcements.append(AnnounceAddress(namespace.name, device, ip))


@dataclass(frozen=True)
class _PairChanges:
    wanted: dict[str, set[str]]  # namespace -> devices that are ends of wanted pairs
    fresh: dict[str, set[str]]  # namespace -> ends (re)created: nothing observed holds


def _plan_peer_links(
    namespaces: tuple[NamespaceState, ...], observed: ObservedState, steps: _Steps
) -> _PairChanges:
    """Veth pairs between two namespaces: created when either end is missing (or is not a
    veth), after deleting the end that is left; brought up when down."""
    changes = _PairChanges({}, {})
    for namespace in namespaces:
        for pair in namespace.peer_links:
            changes.wanted.setdefault(namespace.name, set()).add(pair.name)
            changes.wanted.setdefault(pair.peer_namespace, set()).add(pair.peer)
            seen_here = observed.namespace(namespace.name)
            seen_there = observed.namespace(pair.peer_namespace)
            here = seen_here.link(pair.name) if seen_here else None
            there = seen_there.link(pair.peer) if seen_there else None
            if here is None or there is None or here.kind != "veth" or there.kind != "veth":
                if here is not None:
                    steps.links.append(DeleteLink(namespace.name, pair.name))
                if there is not None:
                    steps.links.append(DeleteLink(pair.peer_namespace, pair.peer))
                steps.links.append(CreateVethPair(namespace.name, pair.name,
                                                  pair.peer_namespace, pair.peer, pair.mtu))
                changes.fresh.setdefault(namespace.name, set()).add(pair.name)
                changes.fresh.setdefault(pair.peer_namespace, set()).add(pair.peer)
                continue
            for where, name, link in ((namespace.name, pair.name, here),
                                      (pair.peer_namespace, pair.peer, there)):
                if link.mtu != pair.mtu or not link.up:
                    steps.link_settings.append(SetLink(
                        where, name, None, pair.mtu if link.mtu != pair.mtu else None))
    return changes


def _plan_nat(namespace: NamespaceState, seen: ObservedNamespace, steps: _Steps) -> None:
    """Replace the NAT table only when the rules read back differ from the desired ones."""
    wanted = canonical_nat_rules(namespace.nat)
    if seen.nat is None or tuple(seen.nat) != wanted:
        steps.nat.append(ReplaceNatTable(namespace.name, tuple(namespace.nat)))


@dataclass(frozen=True)
class _LinkChanges:
    recreated_peers: set[str]  # bridge ends of veths (re)created: their OVS ports too
    fresh_devices: set[str]  # (re)created in the namespace: nothing observed on them holds
    new_macs: set[str]  # MAC changed: the kernel flushes even PERMANENT neighbors


def _plan_links(
    namespace: NamespaceState, seen: ObservedNamespace, observed: ObservedState, steps: _Steps,
    pair_ends: set[str] = frozenset(),  # type: ignore[assignment]
) -> _LinkChanges:
    changes = _LinkChanges(set(), set(), set())
    for link in namespace.links:
        inside = seen.link(link.name)
        outside = observed.host_link(link.peer)
        mac = link.mac_address.lower()
        if inside is None or outside is None or inside.kind != "veth":
            # missing, half a pair, or something else by that name: start afresh
            if inside is not None:
                steps.links.append(DeleteLink(namespace.name, link.name))
            if outside is not None:
                steps.links.append(DeleteLink(None, link.peer))
            steps.links.append(CreateVeth(namespace.name, link.name, link.peer, mac, link.mtu))
            changes.recreated_peers.add(link.peer)
            changes.fresh_devices.add(link.name)
            continue
        # only what differs: setting even the same MAC again flushes the neighbor table
        new_mac = mac if normalize_mac(inside.mac_address) != mac else None
        new_mtu = link.mtu if inside.mtu != link.mtu else None
        if new_mac or new_mtu or not inside.up:
            steps.link_settings.append(SetLink(namespace.name, link.name, new_mac, new_mtu))
        if new_mac:
            changes.new_macs.add(link.name)
        if inside.tx_checksumming is True:
            steps.link_settings.append(SetTxChecksumming(namespace.name, link.name, False))
        if outside.mtu != link.mtu or not outside.up:
            new_mtu = link.mtu if outside.mtu != link.mtu else None
            steps.link_settings.append(SetLink(None, link.peer, None, new_mtu))
    wanted = {link.name for link in namespace.links} | set(pair_ends)
    for link in seen.links:
        if link.name not in wanted:
            steps.stale_links.append(DeleteLink(namespace.name, link.name))
    return changes


def _plan_sysctls(namespace: NamespaceState, seen: ObservedNamespace, steps: _Steps) -> None:
    for key, value in namespace.sysctls:
        if seen.sysctl(key) != value:
            steps.link_settings.append(SetSysctl(namespace.name, key, value))


def _forget_devices(seen: ObservedNamespace, changes: _LinkChanges) -> ObservedNamespace:
    """What ``seen`` will still hold once the links are (re)made: nothing on a fresh device,
    no neighbors on a device whose MAC changes."""
    fresh, flushed = changes.fresh_devices, changes.fresh_devices | changes.new_macs
    if not flushed:
        return seen
    return replace(
        seen,
        addresses=tuple(a for a in seen.addresses if a.device not in fresh),
        routes=tuple(r for r in seen.routes if r.device not in fresh),
        neighbors=tuple(n for n in seen.neighbors if n.device not in flushed),
    )


def _plan_namespace_config(
    namespace: NamespaceState, seen: ObservedNamespace, steps: _Steps
) -> None:
    name = namespace.name
    # devices that are going away take their addresses, routes and neighbors with them
    doomed = {link.name for link in seen.links} - {link.name for link in namespace.links} - {
        pair.name for pair in namespace.peer_links} - {
        a.device for a in namespace.addresses}

    addresses = {normalize_address(a) for a in namespace.addresses}
    seen_addresses = {normalize_address(a) for a in seen.addresses}
    steps.addresses += [AddAddress(name, a) for a in sorted(addresses - seen_addresses)]
    steps.stale_addresses += [
        DeleteAddress(name, a)
        for a in sorted(seen_addresses - addresses)
        if a.device not in doomed
    ]

    routes = {route_key(r): r for r in map(normalize_route, namespace.routes)}
    seen_routes = {route_key(r): r for r in map(normalize_route, seen.routes)}
    for key in sorted(routes):
        if seen_routes.get(key) != routes[key]:
            steps.routes.append(ReplaceRoute(name, routes[key]))
    for key in sorted(seen_routes.keys() - routes.keys()):
        if seen_routes[key].device not in doomed:
            steps.stale_routes.append(DeleteRoute(name, seen_routes[key]))

    rules = {normalize_rule(r) for r in namespace.rules}
    seen_rules = {normalize_rule(r) for r in seen.rules}
    steps.rules += [AddRule(name, r) for r in sorted(rules - seen_rules, key=_rule_order)]
    steps.stale_rules += [
        DeleteRule(name, r) for r in sorted(seen_rules - rules, key=_rule_order)
    ]

    neighbors = {(n.device, n.ip_address): n for n in map(normalize_neighbor, namespace.neighbors)}
    seen_neighbors = {(n.device, n.ip_address): n for n in seen.neighbors}
    for key in sorted(neighbors):
        have = seen_neighbors.get(key)
        want = neighbors[key]
        if have is None or not have.is_permanent or normalize_mac(have.mac_address) != (
            want.mac_address
        ):
            steps.neighbors.append(ReplaceNeighbor(name, want))
    for key in sorted(seen_neighbors.keys() - neighbors.keys()):
        have = seen_neighbors[key]
        if have.is_permanent and have.device not in doomed:
            steps.stale_neighbors.append(DeleteNeighbor(name, have.device, have.ip_address))


def _rule_order(rule: Rule) -> tuple[int, int, str, str]:
    return rule.priority, rule.table, rule.source or "", rule.iif or ""


def desired_ports(desired: DesiredState) -> dict[str, dict[str, OvsPort]]:
    """bridge -> port name -> port: the bridges' ports plus the bridge ends of veths."""
    ports: dict[str, dict[str, OvsPort]] = {b.name: {} for b in desired.bridges}
    for bridge in desired.bridges:
        for port in bridge.ports:
            ports[bridge.name][port.name] = port
    for namespace in desired.namespaces:
        for link in namespace.links:
            on_bridge = ports.setdefault(link.bridge, {})
            on_bridge.setdefault(
                link.peer,
                OvsPort(name=link.peer, tag=link.tag, external_ids=link.external_ids),
            )
    return ports


def _port_differs(want: OvsPort, have: ObservedPort, external_ids: set) -> bool:
    return (
        _port_type(want.type) != _port_type(have.type)
        or dict(want.options) != dict(have.options)
        or want.tag != have.tag
        or not external_ids <= set(have.external_ids)
    )


def _port_type(type_: str) -> str:
    return "" if type_ == "system" else type_


def _plan_ports(
    desired: DesiredState,
    observed: ObservedState,
    ownership: Ownership,
    recreated_peers: set[str],
    steps: _Steps,
) -> dict[str, set[str]]:
    """Plan ports; returns bridge -> names of ports created or recreated on it."""
    created: dict[str, set[str]] = {}
    wanted = desired_ports(desired)
    wanted_anywhere = {name for ports in wanted.values() for name in ports}
    located = _ports_by_name(observed)
    for bridge, ports in wanted.items():
        for name in sorted(ports):
            want = ports[name]
            found = located.get(name)
            if not want.managed:
                if found is not None and found[1].tag != want.tag:
                    steps.ports.append(SetPortTag(name, want.tag))
                continue
            external_ids = set(want.external_ids) | {ownership.managed_marker}
            command = EnsurePort(
                bridge, name, want.type, tuple(sorted(want.options)), want.tag,
                tuple(sorted(external_ids)),
            )
            if found is None:
                steps.ports.append(command)
                created.setdefault(bridge, set()).add(name)
                continue
            where, have = found
            if where != bridge or name in recreated_peers or have.ofport == -1:
                steps.ports.append(_with_recreate(command))
                created.setdefault(bridge, set()).add(name)
            elif _port_differs(want, have, external_ids):
                steps.ports.append(command)
    for bridge in observed.bridges:
        if bridge.name not in wanted:
            continue
        for port in bridge.ports:
            if port.name not in wanted_anywhere and ownership.owns_port(port):
                steps.stale_ports.append(DeletePort(bridge.name, port.name))
    moved = {name for ports in wanted.values() for name, port in ports.items() if port.managed}
    for name in desired.retired_bridges:
        retired = observed.bridge(name)
        if retired is not None and all(p.name in moved or ownership.owns_port(p)
                                       for p in retired.ports):
            # the ports the agent wants elsewhere were moved above; any other port on it
            # (a VIF plugged there by somebody else) keeps the bridge
            steps.stale_bridges.append(DeleteBridge(name))
    return created


def _ports_by_name(observed: ObservedState) -> dict[str, tuple[str, ObservedPort]]:
    """``observed.find_port`` for every name at once: (bridge name, port) by port name."""
    found: dict[str, tuple[str, ObservedPort]] = {}
    for bridge in observed.bridges:
        for port in bridge.ports:
            found.setdefault(port.name, (bridge.name, port))
    return found


def _with_recreate(command: EnsurePort) -> EnsurePort:
    return EnsurePort(command.bridge, command.name, command.type, command.options,
                      command.tag, command.external_ids, recreate=True)


def _ports_present_after(
    desired: DesiredState, observed: ObservedState, ownership: Ownership
) -> dict[str, set[str]]:
    """bridge -> names of the ports it will have once the plan has run."""
    wanted = desired_ports(desired)
    home = {name: bridge for bridge, ports in wanted.items() for name in ports}
    present: dict[str, set[str]] = {
        bridge: {name for name, port in ports.items() if port.managed}
        for bridge, ports in wanted.items()
    }
    for bridge in observed.bridges:
        present.setdefault(bridge.name, set()).update(
            p.name for p in bridge.ports
            if home.get(p.name, bridge.name) == bridge.name  # not moving elsewhere
            and (p.name in home or not ownership.owns_port(p))  # not removed as stale
        )
    for bridge in present:
        present[bridge].add(bridge)  # the bridge's own internal port
    return present


def _installed_for_other_ports(flow: Flow, seen: list[ObservedFlow]) -> bool:
    """The switch reports ports by name, and by number once a port is gone: a flow whose
    installed ports differ from its wanted ones was installed for a port that was since
    deleted or recreated (under a new number)."""
    wanted = flow.ports
    for installed in seen:
        ports = installed.ports
        if ports is None:
            continue
        if len(ports) == 1 == len(wanted):  # the common case, without a set
            if ports[0] not in wanted:
                return True
        elif frozenset(ports) != wanted:
            return True
    return False


def _plan_flows(
    bridges: Iterable[BridgeState],
    observed: ObservedState,
    recreated_ports: dict[str, set[str]],
    present: dict[str, set[str]],
    steps: _Steps,
    basis: FlowBasis,
) -> tuple[tuple[Flow, ...], dict[str, BridgeFlowBasis]]:
    """One bundle per bridge; returns the flows deferred because a port they name is not
    (or no longer) on the bridge (they are not installed, and removed if they were), and
    the basis of the next plan."""
    deferred: list[Flow] = []
    next_basis: dict[str, BridgeFlowBasis] = {}
    for bridge in bridges:
        seen = observed.bridge(bridge.name)
        mirror = seen.mirror if seen is not None else None
        here = present.get(bridge.name, set())
        renumbered = recreated_ports.get(bridge.name, set())
        previous = basis.get(bridge.name)
        changed = _changed_since(previous, mirror, here, renumbered)
        if previous is not None and mirror is not None and changed is not None:
            add, delete, left_out, by_cookie = _bridge_flows_since(
                previous, bridge.flows, mirror, here, changed)
        else:
            add, delete, left_out, by_cookie = _bridge_flows(
                bridge.flows, seen, here, renumbered, index=mirror is not None)
        if add or delete:
            steps.flows.append(FlowBundle(bridge.name, tuple(sorted(add, key=Flow.sort_key)),
                                          tuple(sorted(delete))))
        deferred.extend(left_out)
        if mirror is not None:
            next_basis[bridge.name] = BridgeFlowBasis(
                bridge.flows, by_cookie, mirror, frozenset(here), frozenset(left_out),
                frozenset({f.cookie for f in add} | {ref.cookie for ref in delete}),
                incremental=changed is not None,
                numbers=port_numbers(seen, here - renumbered))
    return tuple(sorted(deferred, key=Flow.sort_key)), next_basis


def _changed_since(previous: BridgeFlowBasis | None, mirror: MirroredFlows | None,
                   here: set[str], renumbered: set[str]) -> frozenset[int] | None:
    """The cookies the switch changed since ``previous`` was planned, when the bridge can
    be planned from it: same ports, none recreated, a mirror that can tell."""
    if previous is None or mirror is None or renumbered or previous.present != here:
        return None
    return mirror.changed_since(previous.mirror)


def port_numbers(bridge: ObservedBridge | None, names: set[str]) -> dict[str, int]:
    """The OpenFlow numbers of the ports ``names`` of ``bridge`` that have one."""
    if bridge is None:
        return {}
    return {p.name: p.ofport for p in bridge.ports
            if p.name in names and p.ofport is not None and p.ofport > 0}


def left_out(flow: Flow, here: set[str]) -> bool:
    """Deferred: the flow names a port that is not on the bridge."""
    ports = flow.ports
    return bool(ports) and not ports <= here


def cookie_changes(cookie: int, wanted: Iterable[Flow], installed: Iterable[ObservedFlow],
                    add: list[Flow], delete: set[FlowRef]) -> None:
    """The one rule, per cookie: a wanted flow is added when nothing carries its cookie, or
    reinstalled when what does was installed for other ports; installed flows of a cookie
    nothing wants (or being reinstalled) are deleted."""
    installed = list(installed)
    wanted = list(wanted)
    if not installed:
        add.extend(wanted)
        return
    reinstall = False
    for flow in wanted:
        if _installed_for_other_ports(flow, installed):
            add.append(flow)
            reinstall = True
    if reinstall or not wanted:
        delete.update(FlowRef(f.table, cookie) for f in installed)


def _bridge_flows_since(
    previous: BridgeFlowBasis, flows: frozenset[Flow], mirror: MirroredFlows,
    here: set[str], changed: frozenset[int],
) -> tuple[list[Flow], set[FlowRef], list[Flow], dict[int, tuple[Flow, ...]]]:
    """``_bridge_flows`` for the cookies that changed since ``previous`` (on either side,
    or planned by it), the others being in sync then and untouched since."""
    removed = previous.flows - flows
    added = flows - previous.flows
    by_cookie = dict(previous.by_cookie)
    dirty = set(changed)
    dirty.update(previous.pending)
    for flow in removed:
        cookie = flow.cookie
        dirty.add(cookie)
        rest = tuple(f for f in by_cookie[cookie] if f != flow)
        if rest:
            by_cookie[cookie] = rest
        else:
            del by_cookie[cookie]
    for flow in added:
        cookie = flow.cookie
        dirty.add(cookie)
        by_cookie[cookie] = by_cookie.get(cookie, ()) + (flow,)
    deferred = (previous.deferred - removed) | {f for f in added if left_out(f, here)}
    add: list[Flow] = []
    delete: set[FlowRef] = set()
    for cookie in dirty:
        wanted = by_cookie.get(cookie, ())
        if deferred:
            wanted = [f for f in wanted if f not in deferred]
        cookie_changes(cookie, wanted, mirror.installed(cookie), add, delete)
    return add, delete, list(deferred), by_cookie


def _bridge_flows(
    flows: frozenset[Flow], seen: ObservedBridge | None, here: set[str],
    renumbered: set[str], index: bool,
) -> tuple[list[Flow], set[FlowRef], list[Flow], dict[int, tuple[Flow, ...]]]:
    """Every flow of the bridge against every installed one: (flows to add, flows to
    delete, flows deferred, and with ``index`` the desired flows by cookie).  (Linear in
    the bridge's flows, and lean: it runs whenever a bridge is planned in full.)"""
    deferred: list[Flow] = []
    seen_flows: dict[int, list[ObservedFlow]] = {}
    for observed_flow in seen.flows if seen else ():
        same_cookie = seen_flows.get(observed_flow.cookie)
        if same_cookie is None:
            seen_flows[observed_flow.cookie] = [observed_flow]
        else:
            same_cookie.append(observed_flow)
    by_cookie: dict[int, tuple[Flow, ...]] = {}
    wanted: dict[int, Flow] = {}
    add: list[Flow] = []
    reinstall: set[int] = set()
    for flow in flows:
        cookie = flow.cookie
        if index:
            same = by_cookie.get(cookie)
            by_cookie[cookie] = (flow,) if same is None else same + (flow,)
        ports = flow.ports
        if ports and not ports <= here:
            deferred.append(flow)
            continue
        wanted[cookie] = flow
        installed = seen_flows.get(cookie)
        if installed is None:
            add.append(flow)
        elif (renumbered and ports & renumbered) or _installed_for_other_ports(
                flow, installed):
            # a port recreated by this plan gets a new number: its flows follow it
            reinstall.add(cookie)
            add.append(flow)
    delete = {FlowRef(f.table, cookie) for cookie, installed in seen_flows.items()
              if cookie not in wanted or cookie in reinstall for f in installed}
    return add, delete, deferred, by_cookie

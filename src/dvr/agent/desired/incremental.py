"""Incremental desired state: recompute only the pieces whose inputs changed.

The idea is OVN's incremental processing engine: every piece (see ``pieces.py``) is a
materialized view of declared inputs; a change handler per input turns "these keys
changed" into "these pieces are dirty"; a change no handler covers (the host context:
host name, host MAC, tunnel IP, configuration) falls back to a full recompute.  The
dependency graph, in one place:

| input (node)            | handler marks dirty                                          |
|-------------------------|--------------------------------------------------------------|
| host context            | everything (unhandled: full recompute)                       |
| peer_host_macs[host]    | hostmac:<host>                                               |
| networks[id]            | network:<id>; tunnel:<ip> whose use count goes 0 <-> 1;      |
|                         | local VLANs (when the set of networks changes)               |
| previous_local_vlans    | local VLANs                                                  |
| local VLANs[id]         | network:<id>; network facts[id]                              |
| network facts[id]       | router:<r>, snat:<r>, fastpath:<r> for routers on it         |
|                         | (interfaces, SNAT ports, gateway), port:<p> for ports on it; |
|                         | fip:<id>; firewall:<id>                                      |
| networks[id] (again)    | fastpath:<r> for routers on it (its L2-population entries)   |
| routers[id]             | router:<id>, snat:<id>, fastpath:<id>; DVR gateway MAC of    |
|                         | its interfaces' subnets; FIP links; every fip:<net>;         |
|                         | route domain ids (when the set of routers changes)           |
| route domain id[router] | fastpath:<router>                                            |
| fip_agent_gateways      | FIP links; every fip:<net>                                    |
| FIP links[router]       | router:<router>                                              |
| DVR gateway MAC[subnet] | port:<p> for ports with an address on the subnet             |
| ports[id]               | port:<id>; fastpath:<r> for routers on its network (before   |
|                         | and after)                                                   |
| plugged[port id]        | port:<id> (also for an orphan VIF: plugged, not in ports);   |
|                         | fastpath:<r> for routers on its network                      |
| security_groups[id]     | its selectors (when they changed): the member ports'         |
|                         | firewalls; conj_ids (over every group's selectors)           |
| port firewall[p]        | (derived from port:<p>'s inputs and its groups' selectors)   |
|                         | side changed: port:<p>, fwport:<p>, every fwrule:<p>/<s>;    |
|                         | selectors changed: fwport:<p>, fwrule:<p>/<s> for those that |
|                         | came or went; firewall:<net> when a selector enters or       |
|                         | leaves its network (use counts per network)                  |
| conj_id[selector]       | fwport:<p>, fwrule:<p>/<s> of ports with it; firewall:<net>  |
|                         | of networks with it (changes only on a hash collision)       |
| address_sets[id]        | firewall:<net> for networks with a selector naming the set   |

Because the full computation (``compute.py``) calls the very same piece functions and the
same ``Assembly``, the incremental result equals the full one exactly when this table is
complete; the property test in ``tests/unit/desired`` checks that on random histories.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from dvr.agent.desired import tunnel_bridge as tunbr
from dvr.agent.desired.assembly import Assembly, count_change
from dvr.agent.desired.compute import DEFAULT_CONFIG, NO_INPUTS
from dvr.agent.desired.config import DesiredConfig, HostInputs
from dvr.agent.desired.fast_path import route_domain_ids
from dvr.agent.desired.firewall import ClauseActions, PortFirewall, port_clause_actions
from dvr.agent.desired.firewall_rules import (
    GroupSelectors,
    Selector,
    conjunction_ids,
    group_selectors,
)
from dvr.agent.desired.north_south import FipLink
from dvr.agent.desired.pieces import (
    BASE_KEY,
    HostContext,
    NetworkFacts,
    Piece,
    PieceKey,
    base_piece,
    choose_gateway_mac,
    fast_path_networks,
    fast_path_piece,
    fip_gateway_ports,
    fip_link_allocation,
    fip_piece,
    firewall_clause_piece,
    firewall_zone_piece,
    host_mac_piece,
    network_facts,
    network_piece,
    piece_label,
    port_piece,
    router_gateway_candidates,
    router_piece,
    selector_piece,
    snat_piece,
    tunnel_piece,
    vif_firewall,
)
from dvr.agent.desired.state import DesiredState
from dvr.agent.desired.vlans import allocate_local_vlans
from dvr.model.hostview import (
    AddressSetView,
    HostView,
    NetworkView,
    PortView,
    RouterView,
    SecurityGroupView,
)

K = TypeVar("K", bound=Hashable)
_MISSING = object()


def changed_keys(old: Mapping[K, object], new: Mapping[K, object]) -> list[K]:
    """Keys added, removed, or whose value is not equal (identity checked first: cheap)."""
    changed = [key for key in old if key not in new]
    for key, value in new.items():
        before = old.get(key, _MISSING)
        if before is not value and before != value:
            changed.append(key)
    return changed


@dataclass(frozen=True)
class UpdateStats:
    full: bool  # the whole state was recomputed (first update or unhandled change)
    recomputed: tuple[str, ...]  # labels of the pieces recomputed, e.g. "port:<id>"
    changed: tuple[str, ...]  # labels of the pieces whose output actually changed


def _index_add(index: dict[str, set[str]], key: str, member: str) -> None:
    index.setdefault(key, set()).add(member)


def _index_discard(index: dict[str, set[str]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]


class DesiredStateCache:
    """Per-object pieces of one host's desired state, kept between HostViews.

    ``update(view, inputs)`` returns a DesiredState equal to
    ``compute_desired_state(view, inputs, config)``, recomputing only what changed since the
    previous call.  Not thread-safe: one cache per agent loop.
    """

    def __init__(self, config: DesiredConfig = DEFAULT_CONFIG) -> None:
        self.config = config
        self.last_stats = UpdateStats(full=False, recomputed=(), changed=())
        self._reset(None)

    def _reset(self, ctx: HostContext | None) -> None:
        self._ctx = ctx
        self._view: HostView | None = None
        self._peer_macs: dict[str, str] = {}
        self._networks: dict[str, NetworkView] = {}
        self._routers: dict[str, RouterView] = {}
        self._ports: dict[str, PortView] = {}
        self._plugged: dict[str, str] = {}
        self._vlan_input: dict[str, int] | None = None
        self._vlans: dict[str, int] = {}
        self._facts: dict[str, NetworkFacts] = {}
        self._network_tunnels: dict[str, frozenset[str]] = {}
        self._tunnel_refs: dict[str, int] = {}
        self._router_candidates: dict[str, dict[str, tuple[str, str]]] = {}
        self._subnet_candidates: dict[str, dict[str, tuple[str, str]]] = {}
        self._gateway_macs: dict[str, str] = {}
        self._groups: dict[str, SecurityGroupView] = {}
        self._group_selectors: dict[str, GroupSelectors] = {}
        self._sets: dict[str, AddressSetView] = {}
        self._conj_ids: dict[Selector, int] = {}
        self._firewalls: dict[str, PortFirewall] = {}  # firewalled ports
        self._zone_selectors: dict[str, dict[Selector, int]] = {}  # network -> selector -> uses
        self._ports_by_group: dict[str, set[str]] = {}
        # port_clause_actions per selector set, for one update (conj_ids may change)
        self._clause_actions: dict[frozenset[Selector], ClauseActions] = {}
        self._ports_by_network: dict[str, set[str]] = {}
        self._ports_by_subnet: dict[str, set[str]] = {}
        self._routers_by_network: dict[str, set[str]] = {}
        self._fip_gateways: dict[str, PortView] = {}
        self._fip_links: dict[str, FipLink] = {}
        self._route_domains: dict[str, int] = {}
        self._pieces: dict[PieceKey, Piece] = {}
        self._assembly = Assembly(self.config)

    # --- the public entry point ---------------------------------------------------------------
    def update(self, view: HostView, inputs: HostInputs = NO_INPUTS) -> DesiredState:
        try:
            return self._update(view, inputs)
        except Exception:
            self._reset(None)  # never keep a half-applied cache: next update is full
            raise

    def _update(self, view: HostView, inputs: HostInputs) -> DesiredState:
        ctx = HostContext.of(view, self.config)
        full = ctx != self._ctx
        if full:
            self._reset(ctx)
        old = self._view
        dirty: set[PieceKey] = {BASE_KEY} if full else set()

        if old is None or view.peer_host_macs is not old.peer_host_macs:
            self._on_peer_macs(view, dirty)
        network_set_changed = False
        changed_networks: list[str] = []
        if old is None or view.networks is not old.networks:
            changed_networks, network_set_changed = self._on_networks(view, ctx, dirty)
        vlan_changed = self._on_local_vlans(inputs, network_set_changed, dirty)
        self._on_network_facts(set(changed_networks) | vlan_changed, dirty)
        routers_changed = old is None or view.routers is not old.routers
        if routers_changed:
            self._on_routers(view, ctx, dirty)
        gateways_changed = old is None or view.fip_agent_gateways is not old.fip_agent_gateways
        if routers_changed or gateways_changed:
            self._on_fip_links(view, dirty)
        if old is None or view.ports is not old.ports:
            self._on_ports(view, dirty)
        recheck: set[str] = set()
        renumbered: list[Selector] = []
        changed_sets: set[str] = set()
        if old is None or view.security_groups is not old.security_groups or (
                view.address_sets is not old.address_sets):
            renumbered, changed_sets = self._on_firewall(view, recheck)
        self._on_plugged(inputs, dirty)
        self._on_firewalled_ports(ctx, dirty, recheck)
        self._on_conjunctions(renumbered, changed_sets, dirty)
        self._view = view

        self._clause_actions = {}
        recomputed, changed = self._recompute(ctx, dirty)
        self.last_stats = UpdateStats(
            full=full,
            recomputed=tuple(sorted(piece_label(k) for k in recomputed)),
            changed=tuple(sorted(piece_label(k) for k in changed)),
        )
        return self._assembly.build(view.host, view.revision, self._vlans)

    # --- change handlers ----------------------------------------------------------------------
    def _on_peer_macs(self, view: HostView, dirty: set[PieceKey]) -> None:
        new = {m.host: m.mac_address for m in view.peer_host_macs}
        for host in changed_keys(self._peer_macs, new):
            dirty.add(("hostmac", host))
        self._peer_macs = new

    def _on_networks(
        self, view: HostView, ctx: HostContext, dirty: set[PieceKey]
    ) -> tuple[list[str], bool]:
        new = {n.id: n for n in view.networks}
        changed = changed_keys(self._networks, new)
        set_changed = any((nid in new) != (nid in self._networks) for nid in changed)
        self._networks = new
        for nid in changed:
            dirty.add(("network", nid))
            self._routers_dirty(nid, dirty, "fastpath")
            before = self._network_tunnels.pop(nid, frozenset())
            network = new.get(nid)
            after = (
                tunbr.remote_tunnel_ips(network, ctx.host, ctx.tunnel_ip)
                if network is not None else frozenset()
            )
            if after:
                self._network_tunnels[nid] = after
            for ip in before - after:
                left = self._tunnel_refs[ip] - 1
                if left:
                    self._tunnel_refs[ip] = left
                else:
                    del self._tunnel_refs[ip]
                    dirty.add(("tunnel", ip))
            for ip in after - before:
                count = self._tunnel_refs.get(ip, 0)
                self._tunnel_refs[ip] = count + 1
                if not count:
                    dirty.add(("tunnel", ip))
        return changed, set_changed

    def _on_local_vlans(
        self, inputs: HostInputs, network_set_changed: bool, dirty: set[PieceKey]
    ) -> set[str]:
        previous = inputs.previous_local_vlans
        if not network_set_changed and self._vlan_input is not None and (
            previous == self._vlan_input
        ):
            return set()
        vlans = allocate_local_vlans(self._networks.keys(), previous)
        changed = set(changed_keys(self._vlans, vlans))
        self._vlans = vlans
        self._vlan_input = dict(previous)
        for nid in changed:
            if nid in self._networks:
                dirty.add(("network", nid))
        return changed

    def _on_network_facts(self, network_ids: set[str], dirty: set[PieceKey]) -> None:
        for nid in network_ids:
            network = self._networks.get(nid)
            fact = network_facts(network, self._vlans[nid]) if network is not None else None
            if fact == self._facts.get(nid):
                continue
            if fact is None:
                del self._facts[nid]
            else:
                self._facts[nid] = fact
            self._routers_dirty(nid, dirty, "router", "snat", "fastpath")
            dirty.update((("fip", nid), ("firewall", nid)))
            dirty.update(("port", pid) for pid in self._ports_by_network.get(nid, ()))

    def _on_routers(self, view: HostView, ctx: HostContext, dirty: set[PieceKey]) -> None:
        new = {r.id: r for r in view.routers}
        touched_subnets: set[str] = set()
        changed_routers = changed_keys(self._routers, new)
        for rid in changed_routers:
            dirty.update((("router", rid), ("snat", rid), ("fastpath", rid)))
            before, after = self._routers.get(rid), new.get(rid)
            if before is not None:
                for nid in _router_networks(before):
                    _index_discard(self._routers_by_network, nid, rid)
            if after is not None:
                for nid in _router_networks(after):
                    _index_add(self._routers_by_network, nid, rid)
            old_candidates = self._router_candidates.pop(rid, {})
            new_candidates = router_gateway_candidates(after, ctx) if after is not None else {}
            if new_candidates:
                self._router_candidates[rid] = new_candidates
            for subnet_id in old_candidates.keys() | new_candidates.keys():
                candidate = new_candidates.get(subnet_id)
                if old_candidates.get(subnet_id) == candidate:
                    continue
                per_router = self._subnet_candidates.setdefault(subnet_id, {})
                if candidate is None:
                    per_router.pop(rid, None)
                else:
                    per_router[rid] = candidate
                if not per_router:
                    del self._subnet_candidates[subnet_id]
                touched_subnets.add(subnet_id)
        if any((rid in new) != (rid in self._routers) for rid in changed_routers):
            domains = route_domain_ids(new)
            dirty.update(("fastpath", rid) for rid in changed_keys(self._route_domains, domains))
            self._route_domains = domains
        self._routers = new
        for subnet_id in touched_subnets:
            mac = choose_gateway_mac(self._subnet_candidates.get(subnet_id, {}).values())
            if mac == self._gateway_macs.get(subnet_id):
                continue
            if mac is None:
                del self._gateway_macs[subnet_id]
            else:
                self._gateway_macs[subnet_id] = mac
            dirty.update(("port", pid) for pid in self._ports_by_subnet.get(subnet_id, ()))

    def _on_fip_links(self, view: HostView, dirty: set[PieceKey]) -> None:
        gateways = fip_gateway_ports(view.fip_agent_gateways)
        links = fip_link_allocation(view.routers, view.host, gateways)
        for rid in changed_keys(self._fip_links, links):
            dirty.add(("router", rid))
        keys = (self._fip_gateways.keys() | gateways.keys()
                | {link.network_id for link in (*self._fip_links.values(), *links.values())})
        dirty.update(("fip", nid) for nid in keys)
        self._fip_gateways, self._fip_links = gateways, links

    def _on_ports(self, view: HostView, dirty: set[PieceKey]) -> None:
        new = {p.id: p for p in view.ports}
        for pid in changed_keys(self._ports, new):
            dirty.add(("port", pid))
            before, after = self._ports.get(pid), new.get(pid)
            if before is not None:
                self._routers_dirty(before.network_id, dirty, "fastpath")
                _index_discard(self._ports_by_network, before.network_id, pid)
                for fixed in before.fixed_ips:
                    _index_discard(self._ports_by_subnet, fixed.subnet_id, pid)
                for group_id in before.security_group_ids:
                    _index_discard(self._ports_by_group, group_id, pid)
            if after is not None:
                self._routers_dirty(after.network_id, dirty, "fastpath")
                _index_add(self._ports_by_network, after.network_id, pid)
                for fixed in after.fixed_ips:
                    _index_add(self._ports_by_subnet, fixed.subnet_id, pid)
                for group_id in after.security_group_ids:
                    _index_add(self._ports_by_group, group_id, pid)
        self._ports = new

    def _on_firewall(self, view: HostView, recheck: set[str]) -> tuple[list[Selector], set[str]]:
        """Groups or remote sets changed: the member ports of groups whose selectors changed
        go to ``recheck``.  Returns the selectors whose conj_id changed (a collision came
        or went) and the sets whose addresses changed."""
        groups = {g.id: g for g in view.security_groups}
        sets = {a.id: a for a in view.address_sets}
        changed_groups = changed_keys(self._groups, groups)
        known = {s: s for s in self._conj_ids}  # equal selectors as one object: cheap sets
        for group_id in changed_groups:
            before = self._group_selectors.pop(group_id, None)
            group = groups.get(group_id)
            if group is not None:
                found = group_selectors(group)
                self._group_selectors[group_id] = replace(found, selectors=frozenset(
                    known.get(s, s) for s in found.selectors))
            if before != self._group_selectors.get(group_id):
                recheck.update(self._ports_by_group.get(group_id, ()))
        renumbered: list[Selector] = []
        if changed_groups:
            ids = conjunction_ids(s for g in self._group_selectors.values() for s in g.selectors)
            renumbered = [s for s in changed_keys(self._conj_ids, ids)
                          if s in ids and s in self._conj_ids]
            self._conj_ids = ids
        changed_sets = set(changed_keys(self._sets, sets))
        self._groups, self._sets = groups, sets
        return renumbered, changed_sets

    def _on_firewalled_ports(self, ctx: HostContext, dirty: set[PieceKey],
                             recheck: set[str]) -> None:
        """Each port whose firewall may have changed (its port piece is dirty, or one of
        its groups changed): its rule pieces and its network's shared clauses."""
        candidates = recheck | {ident for kind, ident in dirty
                                if kind == "port" and isinstance(ident, str)}
        for pid in candidates:
            port = self._ports.get(pid)
            after = None if port is None else vif_firewall(
                ctx, port, self._plugged.get(port.id), self._facts.get(port.network_id),
                self._group_selectors)
            before = self._firewalls.get(pid)
            if after == before:
                continue
            if after is None:
                del self._firewalls[pid]
            else:
                self._firewalls[pid] = after
            old = before.selectors if before is not None else frozenset()
            new = after.selectors if after is not None else frozenset()
            if before is None or after is None or before.side != after.side:
                dirty.add(("port", pid))
                rules = old | new
            else:
                rules = old ^ new
            if rules or old != new:
                dirty.add(("fwport", pid))
            dirty.update(("fwrule", (pid, s)) for s in rules)
            if before is not None and after is not None and (
                    before.port.network_id == after.port.network_id):
                self._zone_uses(after.port.network_id, old - new, -1, dirty)
                self._zone_uses(after.port.network_id, new - old, 1, dirty)
                continue
            if before is not None:
                self._zone_uses(before.port.network_id, old, -1, dirty)
            if after is not None:
                self._zone_uses(after.port.network_id, new, 1, dirty)

    def _zone_uses(self, network_id: str, selectors: frozenset[Selector], delta: int,
                   dirty: set[PieceKey]) -> None:
        """Count a port's selectors in (``delta`` 1) or out of (-1) its network's shared
        clauses; the clauses change when a selector comes or goes."""
        uses = self._zone_selectors.setdefault(network_id, {})
        for selector in selectors:
            if count_change(uses, selector, delta):
                dirty.add(("firewall", network_id))
        if not uses:
            del self._zone_selectors[network_id]

    def _on_conjunctions(self, renumbered: list[Selector], changed_sets: set[str],
                         dirty: set[PieceKey]) -> None:
        """A selector's conj_id changed: every piece that names it; a set's addresses
        changed: the shared clauses of the networks whose selectors name it."""
        for selector in renumbered:
            for pid, fw in self._firewalls.items():
                if selector in fw.selectors:
                    dirty.update((("fwport", pid), ("fwrule", (pid, selector))))
        for network_id, uses in self._zone_selectors.items():
            if any(s in uses for s in renumbered) or (changed_sets and any(
                    s.remote_set in changed_sets for s in uses)):
                dirty.add(("firewall", network_id))

    def _on_plugged(self, inputs: HostInputs, dirty: set[PieceKey]) -> None:
        if inputs.plugged == self._plugged:
            return
        new = dict(inputs.plugged)
        for pid in changed_keys(self._plugged, new):
            dirty.add(("port", pid))
            port = self._ports.get(pid)
            if port is not None:
                self._routers_dirty(port.network_id, dirty, "fastpath")
        self._plugged = new

    def _routers_dirty(self, network_id: str, dirty: set[PieceKey], *kinds: str) -> None:
        """Mark the ``kinds`` pieces of every router on ``network_id`` dirty."""
        for rid in self._routers_by_network.get(network_id, ()):
            dirty.update((kind, rid) for kind in kinds)

    # --- recompute ------------------------------------------------------------------------------
    def _compute_piece(self, ctx: HostContext, key: PieceKey) -> Piece | None:
        kind, ident = key
        if kind == "base":
            return base_piece(ctx)
        if kind == "hostmac":
            mac = self._peer_macs.get(ident)
            return None if mac is None else host_mac_piece(ctx, ident, mac)
        if kind == "network":
            network = self._networks.get(ident)
            return None if network is None else network_piece(ctx, network, self._vlans[ident])
        if kind == "tunnel":
            return tunnel_piece(ctx, ident) if ident in self._tunnel_refs else None
        if kind == "router":
            router = self._routers.get(ident)
            return None if router is None else router_piece(
                ctx, router, self._facts, self._fip_links.get(ident))
        if kind == "snat":
            router = self._routers.get(ident)
            return None if router is None else snat_piece(ctx, router, self._facts)
        if kind == "fip":
            return self._fip_piece(ctx, ident)
        if kind == "fastpath":
            router = self._routers.get(ident)
            return None if router is None else self._fast_path_piece(ctx, router)
        if kind == "port":
            port = self._ports.get(ident)
            if port is None:
                plugged = self._plugged.get(ident)
                return None if plugged is None else port_piece(ctx, None, plugged, None, {})
            return port_piece(
                ctx, port, self._plugged.get(ident), self._facts.get(port.network_id),
                self._gateway_macs, self._group_selectors,
            )
        if kind == "fwport":
            fw = self._firewalls.get(ident)
            if fw is None:
                return None
            actions = self._clause_actions.get(fw.selectors)
            if actions is None:  # the first member of its groups in this update
                actions = self._clause_actions[fw.selectors] = port_clause_actions(
                    fw.selectors, self._conj_ids)
            return firewall_clause_piece(ctx, fw.side, actions)
        if kind == "fwrule":
            port_id, selector = ident
            fw = self._firewalls.get(port_id)
            if fw is None or selector not in fw.selectors:
                return None
            return selector_piece(ctx, fw.side, selector, self._conj_ids[selector])
        if kind == "firewall":
            uses = self._zone_selectors.get(ident)
            return None if not uses else firewall_zone_piece(
                ctx, ident, self._facts.get(ident), uses.keys(), self._conj_ids, self._sets)
        raise ValueError(f"unknown piece kind {kind!r}")

    def _fip_piece(self, ctx: HostContext, network_id: str) -> Piece | None:
        gateway = self._fip_gateways.get(network_id)
        routers = tuple((self._routers[rid], link) for rid, link in sorted(self._fip_links.items())
                        if link.network_id == network_id and rid in self._routers)
        if gateway is None and not routers:
            return None
        return fip_piece(ctx, gateway, self._networks.get(network_id),
                         self._facts.get(network_id), routers)

    def _fast_path_piece(self, ctx: HostContext, router: RouterView) -> Piece:
        def ports(network_id: str) -> list[PortView]:
            return [self._ports[pid] for pid in self._ports_by_network.get(network_id, ())]

        networks = fast_path_networks(ctx, router, self._facts, self._networks, ports,
                                      self._plugged)
        return fast_path_piece(ctx, router, self._route_domains[router.id], networks)

    def _recompute(
        self, ctx: HostContext, dirty: set[PieceKey]
    ) -> tuple[list[PieceKey], list[PieceKey]]:
        changed: list[PieceKey] = []
        for key in dirty:
            before = self._pieces.get(key)
            after = self._compute_piece(ctx, key)
            if before == after:
                continue
            changed.append(key)
            self._assembly.replace(before, after)
            if after is None:
                del self._pieces[key]
            else:
                self._pieces[key] = after
        return list(dirty), changed


def _router_networks(router: RouterView) -> set[str]:
    """The networks whose facts a router's pieces read."""
    networks = {i.network_id for i in router.interfaces}
    networks |= {s.network_id for s in router.snat_ports}
    if router.gateway is not None:
        networks.add(router.gateway.network_id)
    return networks

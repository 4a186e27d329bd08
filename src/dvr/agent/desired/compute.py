"""The full desired-state computation: HostView (+ observed inputs) -> DesiredState."""

from __future__ import annotations

from collections.abc import Mapping

from dvr.agent.desired import tunnel_bridge as tunbr
from dvr.agent.desired.assembly import Assembly
from dvr.agent.desired.config import DesiredConfig, HostInputs
from dvr.agent.desired.fast_path import route_domain_ids
from dvr.agent.desired.firewall import ClauseActions, port_clause_actions
from dvr.agent.desired.firewall_rules import Selector, conjunction_ids, group_selectors
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
    firewall_port_pieces,
    firewall_zone_piece,
    host_mac_piece,
    network_facts,
    network_piece,
    port_piece,
    router_gateway_candidates,
    router_piece,
    snat_piece,
    tunnel_piece,
    vif_firewall,
)
from dvr.agent.desired.state import DesiredState
from dvr.agent.desired.vlans import allocate_local_vlans
from dvr.model.hostview import HostView, PortView

DEFAULT_CONFIG = DesiredConfig()
NO_INPUTS = HostInputs()


def compute_dvr_gateway_macs(view: HostView, ctx: HostContext) -> dict[str, str]:
    """subnet id -> gateway MAC of the local DVR router interface on it."""
    candidates: dict[str, list[tuple[str, str]]] = {}
    for router in view.routers:
        for subnet_id, candidate in router_gateway_candidates(router, ctx).items():
            candidates.setdefault(subnet_id, []).append(candidate)
    return {
        subnet_id: mac
        for subnet_id, options in candidates.items()
        if (mac := choose_gateway_mac(options)) is not None
    }


def compute_pieces(
    view: HostView, inputs: HostInputs, config: DesiredConfig
) -> tuple[dict[PieceKey, Piece], dict[str, int]]:
    """Every piece of the host's desired state, and the local VLAN allocation."""
    ctx = HostContext.of(view, config)
    vlans = allocate_local_vlans((n.id for n in view.networks), inputs.previous_local_vlans)
    facts: Mapping[str, NetworkFacts] = {
        n.id: network_facts(n, vlans[n.id]) for n in view.networks
    }
    gateway_macs = compute_dvr_gateway_macs(view, ctx)
    pieces: dict[PieceKey, Piece] = {BASE_KEY: base_piece(ctx)}
    for peer in view.peer_host_macs:
        pieces[("hostmac", peer.host)] = host_mac_piece(ctx, peer.host, peer.mac_address)
    tunnel_ips: set[str] = set()
    for network in view.networks:
        pieces[("network", network.id)] = network_piece(ctx, network, vlans[network.id])
        tunnel_ips |= tunbr.remote_tunnel_ips(network, ctx.host, ctx.tunnel_ip)
    for remote_ip in tunnel_ips:
        pieces[("tunnel", remote_ip)] = tunnel_piece(ctx, remote_ip)
    fip_gateways = fip_gateway_ports(view.fip_agent_gateways)
    fip_links = fip_link_allocation(view.routers, view.host, fip_gateways)
    for router in view.routers:
        pieces[("router", router.id)] = router_piece(
            ctx, router, facts, fip_links.get(router.id))
        pieces[("snat", router.id)] = snat_piece(ctx, router, facts)
    route_domains = route_domain_ids(r.id for r in view.routers)
    networks = {n.id: n for n in view.networks}
    ports_by_network: dict[str, list[PortView]] = {}
    for port in view.ports:
        ports_by_network.setdefault(port.network_id, []).append(port)
    for router in view.routers:
        routed = fast_path_networks(ctx, router, facts, networks,
                                    lambda nid: ports_by_network.get(nid, ()), inputs.plugged)
        pieces[("fastpath", router.id)] = fast_path_piece(
            ctx, router, route_domains[router.id], routed)
    for network_id in sorted(fip_gateways.keys() | {link.network_id for link in
                                                     fip_links.values()}):
        pieces[("fip", network_id)] = fip_piece(
            ctx, fip_gateways.get(network_id), view.network(network_id), facts.get(network_id),
            tuple((router, fip_links[router.id]) for router in view.routers
                  if router.id in fip_links and fip_links[router.id].network_id == network_id))
    groups = {g.id: group_selectors(g) for g in view.security_groups}
    conj_ids = conjunction_ids(s for g in groups.values() for s in g.selectors)
    zones: dict[str, set[Selector]] = {}
    clauses: dict[frozenset[Selector], ClauseActions] = {}  # one per group combination
    for port in view.ports:
        plugged = inputs.plugged.get(port.id)
        fact = facts.get(port.network_id)
        pieces[("port", port.id)] = port_piece(ctx, port, plugged, fact, gateway_macs, groups)
        fw = vif_firewall(ctx, port, plugged, fact, groups)
        if fw is not None:
            actions = clauses.get(fw.selectors)
            if actions is None:
                actions = clauses[fw.selectors] = port_clause_actions(fw.selectors, conj_ids)
            pieces.update(firewall_port_pieces(ctx, fw, conj_ids, actions))
            zones.setdefault(port.network_id, set()).update(fw.selectors)
    for network_id, selectors in zones.items():
        pieces[("firewall", network_id)] = firewall_zone_piece(
            ctx, network_id, facts.get(network_id), selectors, conj_ids,
            {s.id: s for s in view.address_sets})
    for port_id, ovs_port_name in inputs.plugged.items():  # orphan VIFs
        if ("port", port_id) not in pieces:
            pieces[("port", port_id)] = port_piece(ctx, None, ovs_port_name, None, gateway_macs)
    return pieces, vlans


def compute_desired_state(
    view: HostView, inputs: HostInputs = NO_INPUTS, config: DesiredConfig = DEFAULT_CONFIG
) -> DesiredState:
    """Everything this host's OVS bridges and router namespaces should hold.

    The agent mode is the local ``config.agent_mode`` (``view.agent_mode`` is only what the
    server believes).  Pure: the same arguments always give an equal result.  Raises
    ``vlans.LocalVlanExhausted`` when the host has more networks than local VLAN ids.
    """
    pieces, vlans = compute_pieces(view, inputs, config)
    assembly = Assembly(config)
    for piece in pieces.values():
        assembly.add(piece)
    return assembly.build(view.host, view.revision, vlans)

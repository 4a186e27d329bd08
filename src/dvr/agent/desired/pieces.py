"""Pieces: the desired state cut along the objects that own it.

A *piece* is the part of the desired state that one object produces (the bridge skeleton,
one peer host MAC, one network, one tunnel endpoint, one router, one local port).  Each
piece is a pure function of that object plus a few declared derived inputs:

| piece          | reads                                                               |
|----------------|---------------------------------------------------------------------|
| base           | host context (config)                                               |
| hostmac:<host> | host context, that host's MAC                                       |
| network:<id>   | host context, the NetworkView, its local VLAN                       |
| tunnel:<ip>    | host context (local tunnel IP); exists while any network needs <ip> |
| router:<id>    | host context, the RouterView, NetworkFacts of its interfaces' nets  |
|                | (external network's facts, its FIP link allocation)               |
| port:<id>      | host context, the PortView (None: an orphan VIF), plugged name,     |
|                | NetworkFacts of its net, DVR gateway MAC of each of its subnets,    |
|                | whether its groups are stateful (its firewall's ``PortSide``)       |
| fwport:<id>    | the port's ``PortFirewall`` (side and selectors), their conj_ids    |
| fwrule:<id>/<s>| the port's side, one selector s of its groups, its conj_id          |
| firewall:<net> | NetworkFacts of the network, the selectors of its firewalled ports, |
|                | their conj_ids, the AddressSetViews they name                       |
| snat:<id>      | host context, the RouterView, NetworkFacts of its SNAT ports' and   |
|                | gateway's networks (only on the router's SNAT host)                 |
| fip:<net id>   | host context, this host's FIP gateway port on that network, the     |
|                | NetworkView and facts of the network, the routers with a FIP link   |
|                | on it and their links                                               |
| fastpath:<id>  | host context, the RouterView, its route domain id, for each of its  |
|                | interfaces' networks: NetworkView, facts, the local ports on it and |
|                | their plugged names                                                 |

The full computation (``compute.py``) and the incremental cache (``incremental.py``) call
the same functions, so they can only disagree if a dependency above is missed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from dvr.agent.desired import external_bridge as extbr
from dvr.agent.desired import fast_path as fp
from dvr.agent.desired import firewall, names
from dvr.agent.desired import integration_bridge as intbr
from dvr.agent.desired import north_south as ns
from dvr.agent.desired import tunnel_bridge as tunbr
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.firewall_rules import GroupSelectors, Selector
from dvr.agent.desired.router_namespace import compute_router_namespace
from dvr.agent.desired.state import Flow, NamespaceState, OvsPort, VethLink
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import (
    OWNER_FLOATINGIP,
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_INTERFACE,
    OWNER_ROUTER_INTERFACE_DISTRIBUTED,
    OWNER_ROUTER_SNAT,
    AddressSetView,
    HostView,
    NetworkView,
    PortView,
    RouterView,
    is_dvr_serviceable,
)

DVR_AGENT_MODES = frozenset({"dvr", "dvr_snat"})

# Ports whose device the agent itself creates (qr-, sg-, qg-, fg-): never treated as VIFs.
AGENT_DEVICE_OWNERS = frozenset(
    {
        OWNER_ROUTER_INTERFACE_DISTRIBUTED,
        OWNER_ROUTER_INTERFACE,
        OWNER_ROUTER_SNAT,
        OWNER_ROUTER_GATEWAY,
        OWNER_FLOATINGIP_AGENT_GATEWAY,
        OWNER_FLOATINGIP,
    }
)

# (kind, id): ("port", "<uuid>"), ("base", ""); ("fwrule", ("<port uuid>", Selector))
PieceKey = tuple[str, str | tuple[str, Selector]]
BASE_KEY: PieceKey = ("base", "")


@dataclass(frozen=True)
class HostContext:
    """Host-wide inputs: a change here invalidates every piece (full recompute)."""

    host: str
    host_mac: str | None
    tunnel_ip: str | None
    config: DesiredConfig

    @property
    def dvr_enabled(self) -> bool:
        return self.config.agent_mode in DVR_AGENT_MODES

    @property
    def fast_path(self) -> bool:
        """East/west routing in br-int (``fast_path.py``) on this host."""
        return self.dvr_enabled and self.config.fast_path

    @classmethod
    def of(cls, view: HostView, config: DesiredConfig) -> HostContext:
        return cls(view.host, view.host_mac, view.tunnel_ip, config)


@dataclass(frozen=True)
class NetworkFacts:
    """What routers and ports need to know about their network on this host."""

    local_vlan: int
    tunnelled: bool
    mtu: int = 1500


@dataclass(frozen=True)
class Piece:
    flows: tuple[tuple[str, tuple[Flow, ...]], ...] = ()  # (bridge name, its flows)
    ports: tuple[tuple[str, tuple[OvsPort, ...]], ...] = ()  # (bridge name, its ports)
    namespaces: tuple[NamespaceState, ...] = ()


EMPTY_PIECE = Piece()
NO_GROUPS: Mapping[str, GroupSelectors] = {}


def piece_label(key: PieceKey) -> str:
    kind, ident = key
    if isinstance(ident, tuple):
        port_id, selector = ident
        return f"{kind}:{port_id}/{selector.text}"
    return f"{kind}:{ident}" if ident else kind


# --- derived inputs ---------------------------------------------------------------------------


def network_facts(network: NetworkView, local_vlan: int) -> NetworkFacts:
    return NetworkFacts(local_vlan=local_vlan, tunnelled=tunbr.is_tunnelled(network),
                        mtu=network.mtu)


def router_gateway_candidates(router: RouterView, ctx: HostContext) -> dict[str, tuple[str, str]]:
    """subnet id -> (port id, MAC) of this router's DVR interfaces (for br-int table 1)."""
    if not (ctx.dvr_enabled and router.distributed and router.admin_state_up):
        return {}
    candidates: dict[str, tuple[str, str]] = {}
    for interface in router.interfaces:
        candidate = (interface.port_id, interface.mac_address)
        current = candidates.get(interface.subnet_id)
        if current is None or candidate < current:
            candidates[interface.subnet_id] = candidate
    return candidates


def choose_gateway_mac(candidates: Iterable[tuple[str, str]]) -> str | None:
    """Several local routers on one subnet (DVR.md §10): the lowest interface port id wins."""
    best = min(candidates, default=None)
    return None if best is None else best[1]


def dvr_routed_vif(
    ctx: HostContext, port: PortView, ovs_port_name: str | None, fact: NetworkFacts | None
) -> bool:
    """Whether a local port receives routed frames through br-int table 1 (and so can be a
    source or a destination of the east/west fast path)."""
    config = ctx.config
    return (
        ovs_port_name is not None
        and fact is not None
        and ctx.dvr_enabled
        and port.admin_state_up
        and fact.tunnelled
        and is_dvr_serviceable(port.device_owner)
        and not names.is_agent_port_name(
            ovs_port_name, (config.int_peer_patch_port, config.tun_peer_patch_port))
    )


def has_fast_path(ctx: HostContext, router: RouterView) -> bool:
    """Whether the router routes east/west in br-int on this host (``fast_path_piece``)."""
    return ctx.fast_path and router.distributed and router.admin_state_up


def fast_path_networks(
    ctx: HostContext, router: RouterView, facts: Mapping[str, NetworkFacts],
    networks: Mapping[str, NetworkView], ports: Callable[[str], Iterable[PortView]],
    plugged: Mapping[str, str],
) -> dict[str, fp.RoutedNetwork]:
    """The router's interface networks the fast path routes between, with their routed
    VIFs (``ports(network id)``: the local ports on that network) and L2-population MACs;
    none when the router has no fast path here (``has_fast_path``)."""
    found: dict[str, fp.RoutedNetwork] = {}
    if not has_fast_path(ctx, router):
        return found
    for network_id in sorted({i.network_id for i in router.interfaces}):
        fact, network = facts.get(network_id), networks.get(network_id)
        if fact is None or network is None or not fact.tunnelled:
            continue
        vifs = tuple(
            fp.LocalVif(port, plugged[port.id])
            for port in sorted(ports(network_id), key=lambda p: p.id)
            if dvr_routed_vif(ctx, port, plugged.get(port.id), fact)
        )
        found[network_id] = fp.RoutedNetwork(
            fact.local_vlan, vifs, tunbr.l2pop_macs(network, ctx.host, ctx.tunnel_ip))
    return found


# --- piece functions --------------------------------------------------------------------------


def base_piece(ctx: HostContext) -> Piece:
    config = ctx.config
    flows: dict[str, list[Flow]] = {
        config.integration_bridge: list(intbr.integration_bridge_base_flows(config)),
        config.tunnel_bridge: list(tunbr.tunnel_bridge_base_flows(config)),
    }
    ports: dict[str, list[OvsPort]] = {
        config.integration_bridge: [intbr.integration_bridge_patch_port(config)],
        config.tunnel_bridge: [tunbr.tunnel_bridge_patch_port(config)],
    }
    for bridge in extbr.mapped_bridges(config):
        int_side, phys_side = extbr.mapped_bridge_ports(config, bridge)
        ports[config.integration_bridge].append(int_side)
        ports.setdefault(bridge, []).append(phys_side)
        for name, extra in extbr.mapped_bridge_base_flows(config, bridge).items():
            flows.setdefault(name, []).extend(extra)
    if ctx.fast_path:
        flows[config.integration_bridge] += fp.fast_path_table_flows(
            names.bridge_owner(config.integration_bridge))
    return Piece(
        flows=tuple((name, tuple(fs)) for name, fs in flows.items()),
        ports=tuple((name, tuple(ps)) for name, ps in ports.items()),
    )


def host_mac_piece(ctx: HostContext, host: str, mac: str) -> Piece:
    if not ctx.dvr_enabled or host == ctx.host or mac == ctx.host_mac:
        return EMPTY_PIECE
    config = ctx.config
    return Piece(
        flows=(
            (config.integration_bridge, intbr.host_mac_integration_flows(host, mac, config)),
            (config.tunnel_bridge, tunbr.host_mac_tunnel_flows(host, mac, config)),
        )
    )


def network_piece(ctx: HostContext, network: NetworkView, local_vlan: int) -> Piece:
    flows = tunbr.network_tunnel_flows(network, local_vlan, ctx.host, ctx.tunnel_ip)
    by_bridge = [(ctx.config.tunnel_bridge, flows)] if flows else []
    by_bridge += sorted(extbr.provider_network_flows(network, local_vlan, ctx.config).items())
    return Piece(flows=tuple(by_bridge)) if by_bridge else EMPTY_PIECE


def tunnel_piece(ctx: HostContext, remote_ip: str) -> Piece:
    if ctx.tunnel_ip is None:
        return EMPTY_PIECE
    bridge = ctx.config.tunnel_bridge
    return Piece(
        flows=((bridge, tunbr.tunnel_port_flows(remote_ip)),),
        ports=((bridge, (tunbr.tunnel_port(remote_ip, ctx.tunnel_ip),)),),
    )


def _bridge_ports(links: tuple[VethLink, ...]) -> tuple[OvsPort, ...]:
    return tuple(
        intbr.router_interface_bridge_port(
            link.peer, DEAD_VLAN if link.tag is None else link.tag, link.external_ids)
        for link in links
    )


def _zone_flows(ports: Iterable[OvsPort], owner: str) -> tuple[Flow, ...]:
    """Table 0 for the agent's own access ports: their frames carry their network in reg6
    (the firewall's ingress classification of table 60 reads it)."""
    return tuple(flow for port in ports if port.tag is not None and port.tag != DEAD_VLAN
                 for flow in firewall.access_port_zone_flows(port.name, port.tag, owner))


def _with_zone_flows(flows: tuple[tuple[str, tuple[Flow, ...]], ...], bridge: str,
                     ports: tuple[OvsPort, ...], owner: str
                     ) -> tuple[tuple[str, tuple[Flow, ...]], ...]:
    zone = _zone_flows(ports, owner)
    return (*flows, (bridge, zone)) if zone else flows


def _vlans(facts: Mapping[str, NetworkFacts]) -> dict[str, int]:
    return {nid: fact.local_vlan for nid, fact in facts.items()}


def _mtu(facts: Mapping[str, NetworkFacts], network_id: str) -> int:
    fact = facts.get(network_id)
    return 1500 if fact is None else fact.mtu


def router_piece(
    ctx: HostContext, router: RouterView, facts: Mapping[str, NetworkFacts],
    fip_link: ns.FipLink | None = None,
) -> Piece:
    """The router's namespace, its veths' bridge ends and its DVR subnets' br-tun flows.

    A distributed router gains its rules towards the SNAT ports and, with ``fip_link``, its
    floating IPs of this host; a legacy router its gateway side.  An administratively down
    router is not instantiated (as if not hosted here).
    """
    if not router.admin_state_up:
        return EMPTY_PIECE
    config = ctx.config
    vlans = {
        i.network_id: facts[i.network_id].local_vlan
        for i in router.interfaces
        if i.network_id in facts
    }
    namespace = compute_router_namespace(router, vlans, config.integration_bridge)
    namespace = replace(namespace, announced=ns.announced_ipv4(namespace.addresses))
    if router.distributed:
        namespace = ns.distributed_router_north_south(namespace, router, ctx.host, fip_link)
    else:
        gateway_net = router.gateway.network_id if router.gateway else ""
        fact = facts.get(gateway_net)
        namespace = ns.legacy_router_north_south(
            replace(namespace, neighbors=()), router, fact.local_vlan if fact else None,
            _mtu(facts, gateway_net), config.integration_bridge)
    ports = _bridge_ports(namespace.links)
    flows: list[Flow] = []
    if ctx.dvr_enabled and router.distributed:
        for interface in router.interfaces:
            fact = facts.get(interface.network_id)
            if fact is None or not fact.tunnelled:
                continue
            flows.extend(
                tunbr.dvr_subnet_tunnel_flows(interface, fact.local_vlan, ctx.host_mac)
            )
    return Piece(
        flows=_with_zone_flows(((config.tunnel_bridge, tuple(flows)),) if flows else (),
                               config.integration_bridge, ports, names.router_owner(router.id)),
        ports=((config.integration_bridge, ports),) if ports else (),
        namespaces=(namespace,),
    )


def fast_path_piece(
    ctx: HostContext, router: RouterView, route_domain: int,
    networks: Mapping[str, fp.RoutedNetwork],
) -> Piece:
    """``fastpath:<router id>``: the router's east/west flows in br-int (``fast_path.py``)."""
    if not has_fast_path(ctx, router):
        return EMPTY_PIECE
    config = ctx.config
    flows = fp.router_fast_path_flows(router, route_domain, networks, config.int_peer_patch_port)
    return Piece(flows=((config.integration_bridge, flows),)) if flows else EMPTY_PIECE


def hosts_snat(ctx: HostContext, router: RouterView) -> bool:
    """Whether this host runs the router's ``snat-`` namespace."""
    return (router.distributed and router.admin_state_up and router.gateway is not None
            and router.snat_host == ctx.host)


def snat_piece(ctx: HostContext, router: RouterView, facts: Mapping[str, NetworkFacts]) -> Piece:
    """``snat-<router id>`` on the router's SNAT host, and br-int table 1 for its ports."""
    if not hosts_snat(ctx, router) or router.gateway is None:
        return EMPTY_PIECE
    config = ctx.config
    vlans = _vlans(facts)
    namespace = ns.snat_namespace(router, vlans, _mtu(facts, router.gateway.network_id),
                                  config.integration_bridge)
    if namespace is None:
        return EMPTY_PIECE
    tunnelled = {nid: fact.local_vlan for nid, fact in facts.items() if fact.tunnelled}
    flows = ns.snat_port_flows(router, tunnelled) if ctx.dvr_enabled else ()
    ports = _bridge_ports(namespace.links)
    flows += _zone_flows(ports, names.snat_owner(router.id))
    return Piece(
        flows=((config.integration_bridge, flows),) if flows else (),
        ports=((config.integration_bridge, ports),),
        namespaces=(namespace,),
    )


def fip_piece(
    ctx: HostContext,
    gateway_port: PortView | None,
    network: NetworkView | None,
    fact: NetworkFacts | None,
    routers: tuple[tuple[RouterView, ns.FipLink], ...],
) -> Piece:
    """``fip-<network id>``: present while a router has a FIP link on this network here."""
    if gateway_port is None or network is None or not routers:
        return EMPTY_PIECE
    config = ctx.config
    namespace = ns.fip_namespace(
        gateway_port, network.subnets, fact.local_vlan if fact else None, network.mtu,
        config.integration_bridge, routers, ctx.host)
    ports = _bridge_ports(namespace.links)
    zone = _zone_flows(ports, names.fip_owner(network.id))
    return Piece(
        flows=((config.integration_bridge, zone),) if zone else (),
        ports=((config.integration_bridge, ports),),
        namespaces=(namespace,),
    )


def fip_gateway_ports(view_gateways: Iterable[PortView]) -> dict[str, PortView]:
    """external network id -> this host's FIP gateway port on it (lowest port id)."""
    chosen: dict[str, PortView] = {}
    for port in sorted(view_gateways, key=lambda p: p.id):
        chosen.setdefault(port.network_id, port)
    return chosen


def fip_link_allocation(
    routers: Iterable[RouterView], host: str, fip_networks: Iterable[str]
) -> dict[str, ns.FipLink]:
    """router id -> its FIP link on this host (routers with floating IPs here)."""
    networks = set(fip_networks)
    wanted = {}
    for router in routers:
        network_id = ns.needs_fip_link(router, host, networks)
        if network_id is not None:
            wanted[router.id] = network_id
    return ns.allocate_fip_links(wanted)


def _vif_vlan(ctx: HostContext, port: PortView | None, ovs_port_name: str | None,
              fact: NetworkFacts | None) -> int | None:
    """A plugged VIF's local VLAN tag (the dead VLAN when it must not carry one); None for
    a port that is not a VIF here."""
    config = ctx.config
    if ovs_port_name is None or names.is_agent_port_name(
        ovs_port_name, (config.int_peer_patch_port, config.tun_peer_patch_port)
    ):
        return None
    if port is not None and port.device_owner in AGENT_DEVICE_OWNERS:
        return None
    usable = port is not None and port.admin_state_up and fact is not None
    return fact.local_vlan if usable and fact is not None else DEAD_VLAN


def vif_firewall(
    ctx: HostContext, port: PortView | None, ovs_port_name: str | None,
    fact: NetworkFacts | None, groups: Mapping[str, GroupSelectors],
) -> firewall.PortFirewall | None:
    """The firewall of a plugged VIF (its groups of ``groups``); None: not firewalled."""
    tag = _vif_vlan(ctx, port, ovs_port_name, fact)
    if port is None or ovs_port_name is None or tag is None or tag == DEAD_VLAN:
        return None
    return firewall.firewall_inputs(port, ovs_port_name, tag, groups)


def port_piece(
    ctx: HostContext,
    port: PortView | None,
    ovs_port_name: str | None,
    fact: NetworkFacts | None,
    gateway_macs: Mapping[str, str],
    groups: Mapping[str, GroupSelectors] = NO_GROUPS,
) -> Piece:
    """A plugged VIF: its local VLAN tag, its firewall's own flows and, on a DVR subnet,
    br-int table 1.

    Admin-down ports, ports of unknown networks and *orphan* VIFs (plugged with an
    iface-id the server does not bind here, ``port`` None) get the dead VLAN: a stale tap
    must never keep a VLAN that may be reused by another network.  A port with addresses
    on several DVR subnets gets the gateway MAC of the lowest subnet id.  The agent's own
    ports (``qrb-``, ``vxlan-``, patch ports) are never VIFs.  With port security the port
    is firewalled (``firewall.py``, its groups of ``groups``): this piece holds the flows
    that do not depend on its rules (``firewall_clause_piece`` and ``selector_piece`` add
    those); without, its frames only carry their network to table 60.
    """
    tag = _vif_vlan(ctx, port, ovs_port_name, fact)
    if tag is None or ovs_port_name is None:
        return EMPTY_PIECE
    bridge = ctx.config.integration_bridge
    flows: tuple[Flow, ...] = ()
    fw = vif_firewall(ctx, port, ovs_port_name, fact, groups)
    if fw is not None:
        flows = firewall.port_base_flows(fw)
    elif tag != DEAD_VLAN:
        flows = firewall.access_port_zone_flows(
            ovs_port_name, tag, names.port_owner(port.id if port else ovs_port_name))
    if port is not None and fact is not None and dvr_routed_vif(ctx, port, ovs_port_name, fact):
        subnet_ids = sorted({f.subnet_id for f in port.fixed_ips if f.subnet_id in gateway_macs})
        if subnet_ids:
            flows += intbr.dvr_local_port_flows(
                port.id, port.mac_address, fact.local_vlan, gateway_macs[subnet_ids[0]],
                ovs_port_name, firewalled=fw is not None,
            )
    return Piece(
        flows=((bridge, flows),) if flows else (),
        ports=((bridge, (intbr.vif_port(ovs_port_name, tag),)),),
    )


def _int_flows(ctx: HostContext, flows: tuple[Flow, ...]) -> Piece:
    return Piece(flows=((ctx.config.integration_bridge, flows),)) if flows else EMPTY_PIECE


def firewall_clause_piece(
    ctx: HostContext, side: firewall.PortSide, actions: firewall.ClauseActions
) -> Piece:
    """``fwport:<port id>``: the port's clause of each of its selectors' conjunctions
    (``actions``: ``firewall.port_clause_actions`` of its selectors)."""
    return _int_flows(ctx, firewall.port_clause_flows(side, actions))


def selector_piece(
    ctx: HostContext, side: firewall.PortSide, selector: Selector, conj_id: int
) -> Piece:
    """``fwrule:<port id>/<selector>``: one selector of one port (its admission and its
    established traffic)."""
    return _int_flows(ctx, firewall.selector_flows(side, selector, conj_id))


def firewall_port_pieces(
    ctx: HostContext, fw: firewall.PortFirewall, conj_ids: Mapping[Selector, int],
    actions: firewall.ClauseActions,
) -> dict[PieceKey, Piece]:
    """The rule pieces of one firewalled port: its clause piece (``actions``:
    ``firewall.port_clause_actions`` of its selectors) and one per selector."""
    side = fw.side
    pieces: dict[PieceKey, Piece] = {
        ("fwport", side.port_id): firewall_clause_piece(ctx, side, actions)}
    for selector in fw.selectors:
        pieces[("fwrule", (side.port_id, selector))] = selector_piece(
            ctx, side, selector, conj_ids[selector])
    return pieces


def firewall_zone_piece(
    ctx: HostContext, network_id: str, fact: NetworkFacts | None,
    selectors: Collection[Selector], conj_ids: Mapping[Selector, int],
    sets: Mapping[str, AddressSetView],
) -> Piece:
    """``firewall:<network id>``: the clauses the network's firewalled ports share
    (``selectors``: every selector of those ports)."""
    if fact is None or not selectors:
        return EMPTY_PIECE
    return _int_flows(ctx, firewall.zone_flows(
        names.firewall_owner(network_id), fact.local_vlan, selectors, conj_ids, sets))

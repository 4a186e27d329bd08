"""North/south (DVR.md §8-§9): centralized SNAT, distributed floating IPs, legacy routers.

Pure functions of the RouterView (and the host-local VLANs and FIP link allocation):

- ``snat_namespace``: ``snat-<router id>`` on the router's SNAT host;
- ``distributed_router_north_south``: what a distributed router's ``qrouter-`` gains on
  every host (the per-subnet rules towards the SNAT ports) and on a host with floating IPs
  (the ``rfp-`` pair, table 16, DNAT/SNAT);
- ``legacy_router_north_south``: the ``qg-`` side of a legacy router's ``qrouter-``;
- ``fip_namespace``: ``fip-<external network id>`` on a host with floating IPs;
- ``allocate_fip_links``: the link-local /31 of each router's ``rfp-``/``fpr-`` pair.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dvr.agent.desired import names
from dvr.agent.desired.openflow import STRIP_VLAN, Match, ModDlSrc, Output
from dvr.agent.desired.router_namespace import IPV4_FORWARDING, interfaces_by_subnet
from dvr.agent.desired.state import (
    Address,
    Flow,
    NamespaceState,
    NatRule,
    Neighbor,
    PeerLink,
    Route,
    Rule,
    VethLink,
)
from dvr.agent.desired.tables import PRIO_INT_DVR_TO_SRC_MAC, IntTable
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import (
    FloatingIpView,
    GatewayView,
    PortView,
    RouterView,
    SubnetView,
)

FIP_TABLE = 16  # qrouter-: the table of floating-IP traffic (Neutron's)
FIP_RULE_PRIORITY = 32768  # just after main: connected (east/west) destinations win
FIP_LINK_RANGE = ipaddress.ip_network("169.254.64.0/18")
FIP_LINK_SLOTS = FIP_LINK_RANGE.num_addresses // 2
SNAT_RULE_MIN_PRIORITY = FIP_RULE_PRIORITY + 1


def proxy_arp_sysctls(device: str) -> tuple[tuple[str, str], ...]:
    """Proxy ARP on ``device``, answering at once (the default delays up to 0.8 s)."""
    return ((f"net.ipv4.conf.{device}.proxy_arp", "1"),
            (f"net.ipv4.neigh.{device}.proxy_delay", "0"))


def no_redirects_sysctls(devices: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """No ICMP redirects from a router that forwards back out the interface a packet came
    in on (a subnet's traffic towards its SNAT port): the kernel sends one if ``all`` or
    the device says so."""
    return (("net.ipv4.conf.all.send_redirects", "0"),
            *((f"net.ipv4.conf.{device}.send_redirects", "0") for device in devices))


# --- helpers ------------------------------------------------------------------------------


def _prefix(cidr: str) -> int:
    return ipaddress.ip_network(cidr, strict=False).prefixlen


def _ipv4(address: str) -> bool:
    return ":" not in address


def gateway_addresses(gateway: GatewayView) -> tuple[tuple[str, SubnetView], ...]:
    """(IP, its external subnet) of the gateway port's IPv4 addresses."""
    subnets = {s.id: s for s in gateway.subnets}
    return tuple(
        (f.ip_address, subnets[f.subnet_id])
        for f in gateway.fixed_ips
        if f.subnet_id in subnets and _ipv4(f.ip_address)
    )


def external_next_hop(subnets: Iterable[SubnetView], used: Iterable[str]) -> str | None:
    """The gateway IP of the first IPv4 subnet (of those ``used``) that has one."""
    wanted = set(used)
    for subnet in subnets:
        if subnet.id in wanted and subnet.ip_version == 4 and subnet.gateway_ip:
            return subnet.gateway_ip
    return None


def _external_link(name: str, peer: str, port_id: str, mac: str, mtu: int, vlan: int | None,
                   bridge: str) -> VethLink:
    return VethLink(name=name, peer=peer, bridge=bridge, mac_address=mac, mtu=mtu,
                    tag=DEAD_VLAN if vlan is None else vlan,
                    external_ids=(("attached-mac", mac), ("iface-id", port_id)))


def gateway_link(gateway: GatewayView, vlan: int | None, mtu: int, bridge: str) -> VethLink:
    return _external_link(names.gateway_device_name(gateway.port_id),
                          names.gateway_bridge_port_name(gateway.port_id), gateway.port_id,
                          gateway.mac_address, mtu, vlan, bridge)


def gateway_namespace_parts(
    gateway: GatewayView, vlan: int | None, mtu: int, bridge: str
) -> tuple[VethLink, tuple[Address, ...], tuple[Route, ...], str | None]:
    """The ``qg-`` link, its addresses, the default route and the SNAT address."""
    link = gateway_link(gateway, vlan, mtu, bridge)
    ips = gateway_addresses(gateway)
    addresses = tuple(sorted(Address(link.name, f"{ip}/{_prefix(s.cidr)}") for ip, s in ips))
    next_hop = external_next_hop(gateway.subnets, (s.id for _, s in ips))
    routes = (Route("default", link.name, next_hop),) if next_hop else ()
    return link, addresses, routes, (ips[0][0] if ips else None)


# --- centralized SNAT -----------------------------------------------------------------------


def snat_rule_table(gateway_ip: str) -> int:
    """Table and priority of a subnet's rule towards its SNAT port: the subnet's gateway IP
    as an integer (Neutron's choice), identical on every host; after main (> 32766)."""
    value = int(ipaddress.ip_address(gateway_ip))
    return value if value >= SNAT_RULE_MIN_PRIORITY else value + SNAT_RULE_MIN_PRIORITY


def snat_namespace(
    router: RouterView, local_vlans: Mapping[str, int], external_mtu: int, bridge: str
) -> NamespaceState | None:
    """``snat-<router id>``: ``sg-`` per SNAT port, ``qg-``, default route, SNAT."""
    gateway = router.gateway
    if gateway is None:
        return None
    links = []
    addresses = []
    neighbors = set()
    own_ips = {s.ip_address for s in router.snat_ports}
    for port in router.snat_ports:
        device = names.snat_port_device_name(port.port_id)
        links.append(_external_link(device, names.snat_port_bridge_port_name(port.port_id),
                                    port.port_id, port.mac_address, port.mtu,
                                    local_vlans.get(port.network_id), bridge))
        addresses.append(Address(device, f"{port.ip_address}/{_prefix(port.cidr)}"))
        for entry in router.arp_entries:
            if entry.subnet_id == port.subnet_id and entry.ip_address not in own_ips:
                neighbors.add(Neighbor(device, entry.ip_address, entry.mac_address))
    qg, qg_addresses, routes, snat_ip = gateway_namespace_parts(
        gateway, local_vlans.get(gateway.network_id), external_mtu, bridge)
    links.append(qg)
    nat: tuple[NatRule, ...] = ()
    if gateway.enable_snat and snat_ip is not None:
        nat = (NatRule("postrouting", names.snat_owner(router.id), oif=qg.name,
                       snat_to=snat_ip),)
    return NamespaceState(
        name=names.snat_namespace_name(router.id),
        owner=names.snat_owner(router.id),
        links=tuple(sorted(links)),
        addresses=tuple(sorted({*addresses, *qg_addresses})),
        routes=routes,
        neighbors=tuple(sorted(neighbors)),
        sysctls=(IPV4_FORWARDING,),
        nat=nat,
    )


def snat_port_flows(router: RouterView, local_vlans: Mapping[str, int]) -> tuple[Flow, ...]:
    """br-int table 1 on the SNAT host: a frame routed to an SNAT port (it arrives with the
    sending host's MAC) gets the router's gateway MAC back and goes to the ``sg-`` port."""
    by_subnet = interfaces_by_subnet(router)
    flows = []
    for port in router.snat_ports:
        interface = by_subnet.get(port.subnet_id)
        vlan = local_vlans.get(port.network_id)
        if interface is None or vlan is None:
            continue
        flows.append(Flow(
            IntTable.DVR_TO_SRC_MAC, PRIO_INT_DVR_TO_SRC_MAC,
            Match(dl_vlan=vlan, dl_dst=port.mac_address),
            (STRIP_VLAN, ModDlSrc(interface.mac_address),
             Output(names.snat_port_bridge_port_name(port.port_id))),
            names.snat_owner(router.id)))
    return tuple(flows)


# --- floating IPs -----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class FipLink:
    """A router's ``rfp-`` (in qrouter) / ``fpr-`` (in fip-) pair: a link-local /31."""

    router_ip: str  # on rfp-
    fip_ip: str  # on fpr-
    network_id: str  # the external network: the pair's far end is in fip-<network_id>


def _slot(router_id: str) -> int:
    digest = hashlib.blake2b(router_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % FIP_LINK_SLOTS


def allocate_fip_links(routers: Mapping[str, str]) -> dict[str, FipLink]:
    """router id -> its pair's addresses, for the routers (id -> external network id) that
    need one on this host.  Each router hashes to a /31 of 169.254.64.0/18; a collision goes
    to the next free one, in router id order: deterministic, and a router keeps its /31 as
    others come and go unless a lower id collides with it (rare with 8192 slots)."""
    taken: set[int] = set()
    result = {}
    for router_id in sorted(routers):
        slot = _slot(router_id)
        while slot in taken:
            slot = (slot + 1) % FIP_LINK_SLOTS
        taken.add(slot)
        base = int(FIP_LINK_RANGE.network_address) + 2 * slot
        result[router_id] = FipLink(str(ipaddress.ip_address(base)),
                                    str(ipaddress.ip_address(base + 1)), routers[router_id])
    return result


def local_floating_ips(router: RouterView, host: str) -> tuple[FloatingIpView, ...]:
    """The router's floating IPs whose port is on ``host`` (IPv4, on its gateway network)."""
    if router.gateway is None:
        return ()
    return tuple(f for f in router.floating_ips
                 if f.host == host and f.floating_network_id == router.gateway.network_id
                 and _ipv4(f.floating_ip_address) and _ipv4(f.fixed_ip_address))


def needs_fip_link(router: RouterView, host: str, fip_networks: Iterable[str]) -> str | None:
    """The external network of the router's pair on ``host`` (None: no pair here): a
    distributed, up router with floating IPs here and this host's FIP gateway port on it."""
    if not (router.distributed and router.admin_state_up) or router.gateway is None:
        return None
    if router.gateway.network_id not in set(fip_networks):
        return None
    return router.gateway.network_id if local_floating_ips(router, host) else None


def distributed_router_north_south(
    namespace: NamespaceState, router: RouterView, host: str, fip_link: FipLink | None
) -> NamespaceState:
    """A distributed router's qrouter- with its SNAT rules and (on this host) its FIPs."""
    if router.gateway is None:
        return namespace
    by_subnet = interfaces_by_subnet(router)
    rules = list(namespace.rules)
    routes = list(namespace.routes)
    redirecting = []
    for port in router.snat_ports:
        interface = by_subnet.get(port.subnet_id)
        if interface is None or not _ipv4(port.ip_address):
            continue
        redirecting.append(names.router_interface_device_name(interface.port_id))
        table = snat_rule_table(interface.ip_address)
        rules.append(Rule(table, table, str(ipaddress.ip_network(interface.cidr, strict=False))))
        routes.append(Route("default", names.router_interface_device_name(interface.port_id),
                            port.ip_address, table))
    peer_links: tuple[PeerLink, ...] = ()
    addresses = list(namespace.addresses)
    nat = list(namespace.nat)
    if fip_link is not None:
        rfp = names.router_to_fip_device_name(router.id)
        peer_links = (PeerLink(rfp, names.fip_to_router_device_name(router.id),
                               names.fip_namespace_name(fip_link.network_id)),)
        addresses.append(Address(rfp, f"{fip_link.router_ip}/31"))
        routes.append(Route("default", rfp, fip_link.fip_ip, FIP_TABLE))
        owner = names.router_owner(router.id)
        for fip in sorted(local_floating_ips(router, host),
                          key=lambda f: (f.fixed_ip_address, f.floating_ip_address)):
            rules.append(Rule(FIP_RULE_PRIORITY, FIP_TABLE, f"{fip.fixed_ip_address}/32"))
            nat.append(NatRule("prerouting", owner, iif=rfp, daddr=fip.floating_ip_address,
                               dnat_to=fip.fixed_ip_address))
            nat.append(NatRule("postrouting", owner, oif=rfp, saddr=fip.fixed_ip_address,
                               snat_to=fip.floating_ip_address))
    sysctls = {*namespace.sysctls, *no_redirects_sysctls(redirecting)} if redirecting else set(
        namespace.sysctls)
    return replace(namespace, rules=tuple(sorted(set(rules))), routes=tuple(sorted(set(routes))),
                   addresses=tuple(sorted(set(addresses))), nat=tuple(_dedupe(nat)),
                   peer_links=peer_links, sysctls=tuple(sorted(sysctls)))


def _dedupe(rules: Iterable[NatRule]) -> list[NatRule]:
    seen: set[NatRule] = set()
    result = []
    for rule in rules:
        if rule not in seen:
            seen.add(rule)
            result.append(rule)
    return result


def legacy_router_north_south(
    namespace: NamespaceState, router: RouterView, external_vlan: int | None,
    external_mtu: int, bridge: str
) -> NamespaceState:
    """A legacy router's qrouter-: ``qg-``, default route, its FIPs on ``qg-``, NAT."""
    gateway = router.gateway
    if gateway is None:
        return namespace
    qg, qg_addresses, routes, snat_ip = gateway_namespace_parts(
        gateway, external_vlan, external_mtu, bridge)
    owner = names.router_owner(router.id)
    fips = sorted((f for f in router.floating_ips
                   if f.floating_network_id == gateway.network_id
                   and _ipv4(f.floating_ip_address) and _ipv4(f.fixed_ip_address)),
                  key=lambda f: (f.fixed_ip_address, f.floating_ip_address))
    addresses = {*namespace.addresses, *qg_addresses}
    nat: list[NatRule] = []
    for fip in fips:
        addresses.add(Address(qg.name, f"{fip.floating_ip_address}/32"))
        nat.append(NatRule("prerouting", owner, daddr=fip.floating_ip_address,
                           dnat_to=fip.fixed_ip_address))
        nat.append(NatRule("postrouting", owner, oif=qg.name, saddr=fip.fixed_ip_address,
                           snat_to=fip.floating_ip_address))
    if gateway.enable_snat and snat_ip is not None:
        nat.append(NatRule("postrouting", owner, oif=qg.name, snat_to=snat_ip))
    return replace(namespace, links=tuple(sorted({*namespace.links, qg})),
                   addresses=tuple(sorted(addresses)),
                   routes=tuple(sorted({*namespace.routes, *routes})),
                   nat=tuple(_dedupe(nat)))


def fip_namespace(
    gateway_port: PortView,
    external_subnets: Iterable[SubnetView],
    external_vlan: int | None,
    external_mtu: int,
    bridge: str,
    routers: Iterable[tuple[RouterView, FipLink]],
    host: str,
) -> NamespaceState:
    """``fip-<network id>``: ``fg-`` with proxy ARP, default route, and per router its
    ``fpr-`` address and a /32 route per floating IP towards the router's ``rfp-``."""
    subnets = {s.id: s for s in external_subnets}
    fg = _external_link(names.fip_gateway_device_name(gateway_port.id),
                        names.fip_gateway_bridge_port_name(gateway_port.id), gateway_port.id,
                        gateway_port.mac_address, external_mtu, external_vlan, bridge)
    used = [f for f in gateway_port.fixed_ips if f.subnet_id in subnets and _ipv4(f.ip_address)]
    addresses = {Address(fg.name, f"{f.ip_address}/{_prefix(subnets[f.subnet_id].cidr)}")
                 for f in used}
    next_hop = external_next_hop(subnets.values(), (f.subnet_id for f in used))
    routes = {Route("default", fg.name, next_hop)} if next_hop else set()
    for router, link in routers:
        fpr = names.fip_to_router_device_name(router.id)
        addresses.add(Address(fpr, f"{link.fip_ip}/31"))
        for fip in local_floating_ips(router, host):
            routes.add(Route(f"{fip.floating_ip_address}/32", fpr, link.router_ip))
    return NamespaceState(
        name=names.fip_namespace_name(gateway_port.network_id),
        owner=names.fip_owner(gateway_port.network_id),
        links=(fg,),
        addresses=tuple(sorted(addresses)),
        routes=tuple(sorted(routes)),
        sysctls=tuple(sorted({IPV4_FORWARDING, *proxy_arp_sysctls(fg.name)})),
    )

"""East/west fast path: routed unicast between subnets of one distributed router, in br-int.

The ``qrouter-`` namespace stays the slow path and the source of truth; br-int does in one
pass what it would do for the common case (issue 12): a frame from a local port to the
gateway MAC of a DVR interface, bound for a port the router knows (its static ARP entries)
on another of its subnets.

| br-int table          | flow (owner ``fastpath:<router>``)                                |
|-----------------------|-------------------------------------------------------------------|
| 60 TRANSIENT, prio 10 | in_port=<local port>, ip, dl_dst=<gateway MAC of an interface>    |
|                       | -> load <route domain> -> reg8, resubmit(,65)   (per port, iface) |
| 65 FAST_PATH, prio 20 | reg8=<rd>, ip, dl_dst=<gateway MAC>, nw_dst=<its own subnet>      |
|                       | -> NORMAL (back into the source subnet: the namespace decides)    |
| 65, prio 10           | reg8=<rd>, ip, nw_dst=<Y> -> dec_ttl, mod_dl_src:<gateway MAC of  |
|                       | Y's subnet>, mod_dl_dst:<Y's MAC>, mod_vlan_vid:<Y's local VLAN>, |
|                       | then resubmit(,1) (Y local) or output:patch-tun (Y remote)        |
| 65, prio 30 (bridge)  | ip, nw_ttl=0 / ip, nw_ttl=1 -> NORMAL (the namespace sends ICMP   |
|                       | time exceeded)                                                    |
| 65, prio 0 (bridge)   | -> NORMAL (anything else: the namespace routes it)                |

A frame routed here continues exactly as one the namespace emitted: a local destination
through table 1 (strip the VLAN, gateway source MAC, its port), a remote one into br-tun
with the destination network's local VLAN (table 1 there rewrites the source to the host
MAC, table 20 picks the tunnel).  The flow count is linear: sources x interfaces on their
network, plus interfaces, plus known destinations.

Only what the namespace would do without a kernel qualifies, so no flow exists for: ARP,
IPv6, the gateway's own IPs, unknown IPs, subnets of other routers, legacy routers, a
source port with a floating IP on the router (its policy rule is source-based: NAT), a
destination an extra route covers, a destination whose location is unknown (not plugged
here, no L2-population entry) and ports absent from the view (being deleted).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dvr.agent.desired import names
from dvr.agent.desired.openflow import (
    DEC_TTL,
    MATCH_ALL,
    NORMAL,
    Action,
    LoadRegister,
    Match,
    ModDlDst,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
)
from dvr.agent.desired.state import Flow
from dvr.agent.desired.tables import (
    PRIO_DEFAULT,
    PRIO_INT_FAST_PATH_ENTRY,
    PRIO_INT_FAST_PATH_ROUTE,
    PRIO_INT_FAST_PATH_SAME_SUBNET,
    PRIO_INT_FAST_PATH_TTL,
    REG_ROUTE_DOMAIN,
    IntTable,
)
from dvr.model.hostview import PortView, RouterInterfaceView, RouterView

ROUTE_DOMAIN_BITS = 31
TO_FAST_PATH = Resubmit(IntTable.FAST_PATH)
TO_DVR_TO_SRC_MAC = Resubmit(IntTable.DVR_TO_SRC_MAC)


@dataclass(frozen=True)
class LocalVif:
    """A plugged local port that sends and receives routed frames (``dvr_routed_vif``)."""

    port: PortView
    ovs_port_name: str


@dataclass(frozen=True)
class RoutedNetwork:
    """What the fast path needs of one network a router interface is on (this host)."""

    local_vlan: int
    vifs: tuple[LocalVif, ...]  # the routed VIFs on it, sorted by port id
    remote_macs: frozenset[str]  # MACs br-tun table 20 sends to a tunnel


def route_domain_ids(router_ids: Iterable[str]) -> dict[str, int]:
    """router id -> the nonzero value it loads into ``REG_ROUTE_DOMAIN``.

    A hash of the id, so a router keeps its value when others come and go; the rare
    collision goes to the next free value, in router-id order (deterministic).
    """
    taken: set[int] = set()
    ids: dict[str, int] = {}
    for router_id in sorted(router_ids):
        digest = hashlib.blake2b(router_id.encode(), digest_size=4).digest()
        value = int.from_bytes(digest, "big") & ((1 << ROUTE_DOMAIN_BITS) - 1) or 1
        while value in taken:
            value = value % ((1 << ROUTE_DOMAIN_BITS) - 1) + 1
        taken.add(value)
        ids[router_id] = value
    return ids


def fast_path_table_flows(owner: str) -> tuple[Flow, ...]:
    """Table 65's skeleton: TTL 0/1 and anything unmatched go on to NORMAL (the namespace)."""
    return (
        Flow(IntTable.FAST_PATH, PRIO_INT_FAST_PATH_TTL, Match(proto="ip", nw_ttl=0),
             (NORMAL,), owner),
        Flow(IntTable.FAST_PATH, PRIO_INT_FAST_PATH_TTL, Match(proto="ip", nw_ttl=1),
             (NORMAL,), owner),
        Flow(IntTable.FAST_PATH, PRIO_DEFAULT, MATCH_ALL, (NORMAL,), owner),
    )


def _is_ipv4(cidr_or_ip: str) -> bool:
    return ":" not in cidr_or_ip


def _covered_by_extra_route(ip: str, router: RouterView) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(route.destination, strict=False)
               for route in router.routes if _is_ipv4(route.destination))


def _destination_actions(
    interface: RouterInterfaceView, mac: str, network: RoutedNetwork, local: bool,
    patch_port: str,
) -> tuple[Action, ...]:
    delivery = TO_DVR_TO_SRC_MAC if local else Output(patch_port)
    return (DEC_TTL, ModDlSrc(interface.mac_address), ModDlDst(mac),
            ModVlanVid(network.local_vlan), delivery)


def _known_destinations(
    router: RouterView, interfaces: Mapping[str, RouterInterfaceView],
    networks: Mapping[str, RoutedNetwork],
) -> dict[str, tuple[RouterInterfaceView, str, bool]]:
    """ip -> (interface of its subnet, MAC, local?) for every ARP entry the fast path can
    deliver: IPv4, on a subnet with a fast-path interface, not behind an extra route, an
    unambiguous IP, a MAC plugged here or in L2 population."""
    found: dict[str, tuple[RouterInterfaceView, str, bool]] = {}
    ambiguous: set[str] = set()
    for entry in router.arp_entries:
        interface = interfaces.get(entry.subnet_id)
        if interface is None or not _is_ipv4(entry.ip_address) or entry.ip_address in ambiguous:
            continue
        network = networks[interface.network_id]
        mac = entry.mac_address.lower()
        local_macs = {vif.port.mac_address.lower() for vif in network.vifs}
        if mac in local_macs:
            place = (interface, mac, True)
        elif mac in network.remote_macs:
            place = (interface, mac, False)
        else:
            continue
        if entry.ip_address in found and found[entry.ip_address] != place:
            ambiguous.add(entry.ip_address)
            del found[entry.ip_address]
            continue
        if not _covered_by_extra_route(entry.ip_address, router):
            found[entry.ip_address] = place
    return found


def router_fast_path_flows(
    router: RouterView, route_domain: int, networks: Mapping[str, RoutedNetwork],
    patch_port: str,
) -> tuple[Flow, ...]:
    """The fast-path flows of one distributed router on this host.

    ``networks`` holds the router's interface networks that qualify (tunnelled, on this
    host); interfaces on other networks, and IPv6 interfaces, get nothing.
    """
    owner = names.fast_path_owner(router.id)
    reg = ((REG_ROUTE_DOMAIN, route_domain),)
    interfaces = {i.subnet_id: i for i in router.interfaces
                  if i.network_id in networks and _is_ipv4(i.cidr)}
    if len(interfaces) < 2:
        return ()  # nothing to route between
    fip_sources = {fip.port_id for fip in router.floating_ips}
    enter = (LoadRegister(REG_ROUTE_DOMAIN, route_domain), TO_FAST_PATH)
    flows: dict[Flow, None] = {}
    for interface in interfaces.values():
        network = networks[interface.network_id]
        for vif in network.vifs:
            if vif.port.id in fip_sources:
                continue
            flows[Flow(IntTable.TRANSIENT, PRIO_INT_FAST_PATH_ENTRY,
                       Match(in_port=vif.ovs_port_name, proto="ip",
                             dl_dst=interface.mac_address),
                       enter, owner)] = None
        flows[Flow(IntTable.FAST_PATH, PRIO_INT_FAST_PATH_SAME_SUBNET,
                   Match(proto="ip", dl_dst=interface.mac_address, nw_dst=interface.cidr,
                         registers=reg),
                   (NORMAL,), owner)] = None
    for ip, (interface, mac, local) in _known_destinations(router, interfaces, networks).items():
        actions = _destination_actions(interface, mac, networks[interface.network_id], local,
                                       patch_port)
        flows[Flow(IntTable.FAST_PATH, PRIO_INT_FAST_PATH_ROUTE,
                   Match(proto="ip", nw_dst=ip, registers=reg), actions, owner)] = None
    return tuple(flows)

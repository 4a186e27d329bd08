"""The ``qrouter-<router id>`` namespace of a distributed router (DVR.md §5, §7).

Everything here is a function of the RouterView alone (plus the host-local VLAN tags of
the veths' bridge ends), so the same router yields identical ``qr-`` devices, addresses,
neighbors and routes on every host.  ``snat-`` and ``fip-`` namespaces get their own
modules in the next issue; they do not change this one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from dvr.agent.desired import names
from dvr.agent.desired.state import Address, NamespaceState, Neighbor, Route, VethLink
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import RouterInterfaceView, RouterView

IPV4_FORWARDING = ("net.ipv4.ip_forward", "1")
IPV6_FORWARDING = ("net.ipv6.conf.all.forwarding", "1")


def router_interface_external_ids(interface: RouterInterfaceView) -> tuple[tuple[str, str], ...]:
    return (("attached-mac", interface.mac_address), ("iface-id", interface.port_id))


def router_interface_link(
    interface: RouterInterfaceView, local_vlan: int | None, bridge: str
) -> VethLink:
    """The veth of one router interface; an unknown network gets the dead VLAN (isolated)."""
    return VethLink(
        name=names.router_interface_device_name(interface.port_id),
        peer=names.router_interface_bridge_port_name(interface.port_id),
        bridge=bridge,
        mac_address=interface.mac_address,
        mtu=interface.mtu,
        tag=DEAD_VLAN if local_vlan is None else local_vlan,
        external_ids=router_interface_external_ids(interface),
    )


def _prefix_length(cidr: str) -> int:
    _, slash, length = cidr.rpartition("/")
    if slash and length.isdigit():
        return int(length)
    return ipaddress.ip_network(cidr, strict=False).prefixlen


def interface_address(interface: RouterInterfaceView) -> Address:
    prefix = _prefix_length(interface.cidr)
    return Address(
        device=names.router_interface_device_name(interface.port_id),
        cidr=f"{interface.ip_address}/{prefix}",
    )


def interfaces_by_subnet(router: RouterView) -> dict[str, RouterInterfaceView]:
    """The interface serving each attached subnet (lowest port id if there are several)."""
    chosen: dict[str, RouterInterfaceView] = {}
    for interface in router.interfaces:
        current = chosen.get(interface.subnet_id)
        if current is None or interface.port_id < current.port_id:
            chosen[interface.subnet_id] = interface
    return chosen


def router_neighbors(router: RouterView) -> tuple[Neighbor, ...]:
    """PERMANENT neighbors: every port on an attached subnet, on that subnet's ``qr-``."""
    by_subnet = interfaces_by_subnet(router)
    neighbors = set()
    for entry in router.arp_entries:
        interface = by_subnet.get(entry.subnet_id)
        if interface is None or entry.ip_address == interface.ip_address:
            continue
        neighbors.add(
            Neighbor(
                device=names.router_interface_device_name(interface.port_id),
                ip_address=entry.ip_address,
                mac_address=entry.mac_address,
            )
        )
    return tuple(sorted(neighbors))


def router_extra_routes(router: RouterView) -> tuple[Route, ...]:
    """Extra routes via the interface whose subnet holds the next hop (others are skipped)."""
    if not router.routes:
        return ()
    networks = [
        (ipaddress.ip_network(i.cidr, strict=False), i)
        for i in sorted(router.interfaces, key=lambda i: (i.subnet_id, i.port_id))
    ]
    routes = set()
    for extra in router.routes:
        try:
            nexthop = ipaddress.ip_address(extra.nexthop)
        except ValueError:
            continue
        interface = next((i for net, i in networks if nexthop in net), None)
        if interface is None:
            continue
        routes.add(
            Route(
                destination=extra.destination,
                device=names.router_interface_device_name(interface.port_id),
                via=extra.nexthop,
            )
        )
    return tuple(sorted(routes))


def router_sysctls(router: RouterView) -> tuple[tuple[str, str], ...]:
    sysctls = {IPV4_FORWARDING}
    if any(":" in i.ip_address for i in router.interfaces):
        sysctls.add(IPV6_FORWARDING)
    return tuple(sorted(sysctls))


def compute_router_namespace(
    router: RouterView, local_vlans: Mapping[str, int], integration_bridge: str
) -> NamespaceState:
    """``qrouter-<id>``: one ``qr-`` veth per interface, gateway addresses, static ARP."""
    links = tuple(
        sorted(
            router_interface_link(i, local_vlans.get(i.network_id), integration_bridge)
            for i in router.interfaces
        )
    )
    addresses = tuple(sorted({interface_address(i) for i in router.interfaces}))
    return NamespaceState(
        name=names.router_namespace_name(router.id),
        owner=names.router_owner(router.id),
        links=links,
        addresses=addresses,
        routes=router_extra_routes(router),
        neighbors=router_neighbors(router),
        sysctls=router_sysctls(router),
    )

"""Who answers ARP on a segment: the next hop's MAC when no PERMANENT entry gives it (pure).

A *station* owns an IP address on one L2 segment: an outside host (``ExternalHost``), a
namespace device of some host (its own address, or proxy ARP) or a cloud port.  An
outside host whose MAC is unknown, and an address on an external subnet that no known
station has, get a placeholder MAC derived from the IP (locally administered
``02:00:<IPv4 bytes>``), so a trace can still follow the frame to the segment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from dvr.agent.desired.state import NamespaceState, VethLink
from dvr.model.hostview import HostView
from dvr.trace.routing import answers_arp
from dvr.trace.steps import ExternalHost


@dataclass(frozen=True)
class Station:
    """The owner of an address on a segment, as far as ARP is concerned."""

    mac: str
    label: str  # for people: "outside (203.0.113.1)", "qg-1234 in snat-<id> on network-1"
    host: str | None = None  # the cloud host of a namespace device (None: not a namespace)
    namespace: str | None = None
    device: str | None = None
    external: ExternalHost | None = None  # an outside host


def placeholder_mac(ip: str) -> str:
    """A stable, locally administered MAC standing in for an unknown station's."""
    packed = ipaddress.ip_address(ip).packed[-4:]
    return "02:00:" + ":".join(f"{b:02x}" for b in packed)


def external_station(host: ExternalHost) -> Station:
    mac = (host.mac or placeholder_mac(host.ip)).lower()
    known = "" if host.mac else ", MAC unknown"
    return Station(mac=mac, label=f"{host.name} ({host.ip}{known})", external=host)


def assumed_station(ip: str, network_name: str) -> Station:
    """An address on an external subnet that no known station has: something outside."""
    host = ExternalHost(name=ip, ip=ip)
    return Station(mac=placeholder_mac(ip),
                   label=f"{ip} (outside the cloud on {network_name}; MAC unknown)",
                   external=host)


def namespace_station(host: str, namespace: NamespaceState, link: VethLink, ip: str,
                      sender: str) -> Station | None:
    """The station ``link`` of ``namespace`` is for ``ip``, if it answers ARP for it."""
    why = answers_arp(namespace, link.name, ip, sender)
    if why is None:
        return None
    return Station(mac=link.mac_address.lower(),
                   label=f"{link.name} in {namespace.name} on {host} ({why})",
                   host=host, namespace=namespace.name, device=link.name)


def port_station(view: HostView, network_id: str, ip: str) -> Station | None:
    """A port (or L2-population entry) with ``ip`` on ``network_id`` in ``view``."""
    target = ipaddress.ip_address(ip)
    for port in view.ports:
        if port.network_id == network_id and any(
                ipaddress.ip_address(f.ip_address) == target for f in port.fixed_ips):
            name = port.device_id or port.id
            return Station(mac=port.mac_address.lower(), label=f"port {name} on {view.host}")
    network = view.network(network_id)
    for remote in network.remote_hosts if network is not None else ():
        for entry in remote.entries:
            if any(ipaddress.ip_address(a) == target for a in entry.ip_addresses):
                return Station(mac=entry.mac_address.lower(),
                               label=f"a port on {remote.host} (L2 population)")
    return None


def external_subnet_of(views: Iterable[HostView], network_id: str, ip: str) -> str | None:
    """The name of external network ``network_id`` if ``ip`` is on one of its subnets."""
    target = ipaddress.ip_address(ip)
    for view in views:
        network = view.network(network_id)
        if network is not None and network.external and any(
                target in ipaddress.ip_network(s.cidr) for s in network.subnets):
            return network.name or network.id
        for router in view.routers:
            gateway = router.gateway
            if gateway is not None and gateway.network_id == network_id and any(
                    target in ipaddress.ip_network(s.cidr) for s in gateway.subnets):
                return network.name if network is not None else network_id
    return None

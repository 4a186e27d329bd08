"""Where a traced packet starts and ends (pure): ports, floating IPs and outside hosts.

A source or destination is a VM name (its port's ``device_id``), a port id, an IP address
(a port's fixed IP, a floating IP -- then the port it is associated with, addressed by the
floating IP --, an address on an external subnet), or the name of one of the request's
``ExternalHost``s (the lab's ``outside``).  An outside endpoint has ``external`` set and
its MAC (or a placeholder for an unknown one).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import replace

from dvr.model.hostview import PortView, SubnetView
from dvr.trace.hosts import HostData
from dvr.trace.stations import external_subnet_of, placeholder_mac
from dvr.trace.steps import (
    DEFAULT_TTL,
    EPHEMERAL_PORT,
    ICMP_ECHO_REQUEST,
    Endpoint,
    ExternalHost,
    PacketView,
    TraceRequest,
)


def search_order(hosts: Mapping[str, HostData], hint: str | None) -> Iterator[str]:
    if hint is not None and hint in hosts:
        yield hint
    for name in sorted(hosts):
        if name != hint:
            yield name


def is_ip(text: str) -> bool:
    """Is ``text`` an IPv4 or IPv6 address (rather than a port id or VM name)?"""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def subnet_of(view_data: HostData, subnet_id: str) -> SubnetView | None:
    for network in view_data.view.networks:
        for subnet in network.subnets:
            if subnet.id == subnet_id:
                return subnet
    return None


def _endpoint(host: str, port: PortView, version: int | None) -> Endpoint | None:
    fixed = [f for f in port.fixed_ips
             if version is None or ipaddress.ip_address(f.ip_address).version == version]
    if not fixed:
        return None
    preferred = sorted(fixed, key=lambda f: ipaddress.ip_address(f.ip_address).version)[0]
    return Endpoint(ip=preferred.ip_address, port_id=port.id,
                    device=port.device_id or port.id, mac=port.mac_address.lower(), host=host,
                    network_id=port.network_id, subnet_id=preferred.subnet_id)


def find_port(
    hosts: Mapping[str, HostData], ident: str, hint: str | None = None
) -> tuple[str, PortView] | None:
    """The port whose id or device_id (VM name) is ``ident``: (host, port)."""
    for name in search_order(hosts, hint):
        for port in hosts[name].view.ports:
            if ident in (port.id, port.device_id):
                return name, port
    return None


def find_port_by_ip(
    hosts: Mapping[str, HostData], ip: str, hint: str | None = None
) -> tuple[str, PortView] | None:
    target = ipaddress.ip_address(ip)
    for name in search_order(hosts, hint):
        for port in hosts[name].view.ports:
            if any(ipaddress.ip_address(f.ip_address) == target for f in port.fixed_ips):
                return name, port
    return None


def find_floating_ip(
    hosts: Mapping[str, HostData], ip: str, hint: str | None = None
) -> tuple[str, PortView] | None:
    """The port floating IP ``ip`` is associated with: (host, port)."""
    target = ipaddress.ip_address(ip)
    for name in search_order(hosts, hint):
        for router in hosts[name].view.routers:
            for fip in router.floating_ips:
                if ipaddress.ip_address(fip.floating_ip_address) == target:
                    return find_port(hosts, fip.port_id, fip.host or name)
    return None


def external_endpoint(host: ExternalHost) -> Endpoint:
    return Endpoint(ip=str(ipaddress.ip_address(host.ip)), device=host.name,
                    mac=(host.mac or placeholder_mac(host.ip)).lower(), host=host.name,
                    external=True)


def find_external(request: TraceRequest, ident: str) -> ExternalHost | None:
    """The outside host named ``ident`` (or with that IP) in the request."""
    for host in request.external_hosts:
        if ident == host.name or (is_ip(ident) and ipaddress.ip_address(ident)
                                  == ipaddress.ip_address(host.ip)):
            return host
    return None


def external_network_of(hosts: Mapping[str, HostData], ip: str) -> str | None:
    """The name of an external network with ``ip`` on one of its subnets (any host's view)."""
    for name in sorted(hosts):
        view = hosts[name].view
        ids = {n.id for n in view.networks if n.external}
        ids |= {r.gateway.network_id for r in view.routers if r.gateway is not None}
        for network_id in sorted(ids):
            found = external_subnet_of([view], network_id, ip)
            if found is not None:
                return found
    return None


def resolve_source(hosts: Mapping[str, HostData], request: TraceRequest,
                   version: int | None) -> Endpoint | None:
    external = find_external(request, request.source)
    if external is not None:
        return external_endpoint(external)
    found = find_port(hosts, request.source, request.source_host)
    if found is None and is_ip(request.source):
        found = find_port_by_ip(hosts, request.source, request.source_host)
        if found is None and external_network_of(hosts, request.source) is not None:
            return external_endpoint(ExternalHost(name=request.source, ip=request.source))
    return None if found is None else _endpoint(found[0], found[1], version)


def resolve_destination(hosts: Mapping[str, HostData], request: TraceRequest) -> Endpoint | None:
    external = find_external(request, request.destination)
    if external is not None:
        return external_endpoint(external)
    if is_ip(request.destination):
        ip = str(ipaddress.ip_address(request.destination))
        found = find_port_by_ip(hosts, ip, request.destination_host) or find_floating_ip(
            hosts, ip, request.destination_host)
        if found is None and external_network_of(hosts, ip) is not None:
            return external_endpoint(ExternalHost(name=ip, ip=ip))
        if found is None:
            return Endpoint(ip=ip)
        endpoint = _endpoint(found[0], found[1], ipaddress.ip_address(ip).version)
        return None if endpoint is None else replace(endpoint, ip=ip)
    found = find_port(hosts, request.destination, request.destination_host)
    return None if found is None else _endpoint(found[0], found[1], None)


def first_packet(source: Endpoint, destination: Endpoint, request: TraceRequest) -> PacketView:
    ports = request.proto in ("tcp", "udp")
    return PacketView(
        dl_src=source.mac or "00:00:00:00:00:00", dl_dst="00:00:00:00:00:00",
        nw_src=source.ip, nw_dst=destination.ip, proto=request.proto, nw_ttl=DEFAULT_TTL,
        tp_src=EPHEMERAL_PORT if ports else None,
        tp_dst=(request.dport or 0) if ports else None,
        icmp_type=ICMP_ECHO_REQUEST if request.proto == "icmp" else None,
    )

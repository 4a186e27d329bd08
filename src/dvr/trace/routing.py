"""Routing inside a desired namespace, the way the Linux kernel would do it (pure).

Policy rules by priority (the kernel's ``main`` rule sits at priority 32766; the
namespace's own rules -- floating-IP rules, the per-subnet SNAT rules -- come before or
after it), each with its ``from``/``iif`` selectors; then the longest prefix match in the
chosen table.  Connected subnets are the link-scope routes the kernel derives from the
interface addresses.  A table without a matching route falls through to the next rule,
as in Linux.  A device answers ARP for its own addresses, and with proxy ARP
(``net.ipv4.conf.<device>.proxy_arp=1``) for any address the namespace routes out of
another device.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dvr.agent.desired.state import Address, NamespaceState, Neighbor, Route, Rule

MAIN_TABLE = 254
MAIN_RULE_PRIORITY = 32766

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RouteDecision:
    rule: Rule | None  # None: the kernel's main rule
    route: Route
    nexthop: str  # the route's gateway, or the destination itself on a connected subnet


def _network(destination: str, version: int) -> IpNetwork | None:
    if destination == "default":
        return ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
    try:
        return ipaddress.ip_network(destination, strict=False)
    except ValueError:
        return None


def connected_routes(namespace: NamespaceState) -> tuple[Route, ...]:
    """The kernel's link-scope routes for the namespace's addresses (main table)."""
    routes = {
        Route(destination=str(ipaddress.ip_interface(a.cidr).network), device=a.device,
              scope="link")
        for a in namespace.addresses
    }
    return tuple(sorted(routes))


def local_address(namespace: NamespaceState, ip: str) -> Address | None:
    """The namespace's own address ``ip`` (then the packet is for the router itself)."""
    target = ipaddress.ip_address(ip)
    return next((a for a in namespace.addresses
                 if ipaddress.ip_interface(a.cidr).ip == target), None)


def table_routes(namespace: NamespaceState, table: int) -> tuple[Route, ...]:
    explicit = tuple(r for r in namespace.routes if r.table == table)
    return explicit + (connected_routes(namespace) if table == MAIN_TABLE else ())


def longest_match(routes: tuple[Route, ...], destination: str) -> Route | None:
    target = ipaddress.ip_address(destination)
    best: tuple[int, Route] | None = None
    for route in routes:
        network = _network(route.destination, target.version)
        if network is None or network.version != target.version or target not in network:
            continue
        # equal prefixes: the first in sorted order wins (deterministic)
        if best is None or network.prefixlen > best[0]:
            best = (network.prefixlen, route)
    return None if best is None else best[1]


def _rule_applies(rule: Rule, source: str, in_device: str | None) -> bool:
    if rule.iif is not None and rule.iif != in_device:
        return False
    if rule.source is None:
        return True
    network = _network(rule.source, ipaddress.ip_address(source).version)
    return network is not None and ipaddress.ip_address(source) in network


def lookup_route(
    namespace: NamespaceState, source: str, destination: str, in_device: str | None
) -> RouteDecision | None:
    """The route the kernel picks for ``source -> destination`` arriving on ``in_device``."""
    candidates: list[tuple[int, Rule | None, int]] = [
        (rule.priority, rule, rule.table)
        for rule in namespace.rules
        if _rule_applies(rule, source, in_device)
    ]
    candidates.append((MAIN_RULE_PRIORITY, None, MAIN_TABLE))
    for _priority, rule, table in sorted(candidates, key=lambda c: (c[0], c[2])):
        route = longest_match(table_routes(namespace, table), destination)
        if route is not None:
            return RouteDecision(rule=rule, route=route, nexthop=route.via or destination)
    return None


def find_neighbor(namespace: NamespaceState, device: str, ip: str) -> Neighbor | None:
    """The PERMANENT neighbour entry for ``ip`` on ``device`` (DVR never ARPs for it)."""
    target = ipaddress.ip_address(ip)
    return next((n for n in namespace.neighbors
                 if n.device == device and ipaddress.ip_address(n.ip_address) == target), None)


PROXY_ARP_PREFIX = "net.ipv4.conf."
PROXY_ARP_SUFFIX = ".proxy_arp"


def proxy_arp_devices(namespace: NamespaceState) -> frozenset[str]:
    """The devices with ``net.ipv4.conf.<device>.proxy_arp=1``."""
    return frozenset(
        key[len(PROXY_ARP_PREFIX):-len(PROXY_ARP_SUFFIX)]
        for key, value in namespace.sysctls
        if key.startswith(PROXY_ARP_PREFIX) and key.endswith(PROXY_ARP_SUFFIX)
        and value.strip() == "1"
    )


def answers_arp(namespace: NamespaceState, device: str, ip: str, sender: str) -> str | None:
    """Why ``device`` of ``namespace`` answers an ARP request for ``ip`` (None: it does not).

    Its own address; or proxy ARP, when the kernel would route ``ip`` (from ``sender``,
    arriving on ``device``) out of another device."""
    target = ipaddress.ip_address(ip)
    if any(a.device == device and ipaddress.ip_interface(a.cidr).ip == target
           for a in namespace.addresses):
        return f"{device} has {ip}"
    if device not in proxy_arp_devices(namespace):
        return None
    decision = lookup_route(namespace, sender, ip, device)
    if decision is None or decision.route.device == device:
        return None
    return f"proxy ARP on {device} (route {decision.route.destination} dev {decision.route.device})"

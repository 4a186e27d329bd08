"""NAT in a desired namespace, the way netfilter applies it to one connection (pure).

The namespace's typed ``NatRule``s form one nftables table (``dvr.agent.desired.nftables``):
a ``prerouting`` chain (DNAT, before the routing decision) and a ``postrouting`` chain
(SNAT, after it, once the output device is known).  In a chain the first rule whose
matches all hold rewrites the packet and ends the chain.  NAT rules see only the first
packet of a connection: conntrack remembers the translation, and the packets of the
reply direction get it undone -- the destination of a reply to a source-NATed
connection before routing, the source of a reply to a destination-NATed one after it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, replace

from dvr.agent.desired.state import NamespaceState, NatRule
from dvr.trace.steps import PacketView


def _address_matches(spec: str | None, ip: str) -> bool:
    if spec is None:
        return True
    address = ipaddress.ip_address(ip)
    network = ipaddress.ip_network(spec, strict=False)
    return address.version == network.version and address in network


def rule_matches(rule: NatRule, packet: PacketView, in_device: str | None,
                 out_device: str | None) -> bool:
    return ((rule.iif is None or rule.iif == in_device)
            and (rule.oif is None or rule.oif == out_device)
            and _address_matches(rule.saddr, packet.nw_src)
            and _address_matches(rule.daddr, packet.nw_dst))


def _first(rules: Iterable[NatRule], chain: str, packet: PacketView, in_device: str | None,
           out_device: str | None) -> NatRule | None:
    return next((r for r in rules if r.chain == chain
                 and rule_matches(r, packet, in_device, out_device)), None)


def prerouting(namespace: NamespaceState, packet: PacketView,
               in_device: str) -> tuple[NatRule | None, PacketView]:
    """The DNAT rule (if any) a new connection's first packet meets, and the packet after."""
    rule = _first(namespace.nat, "prerouting", packet, in_device, None)
    if rule is None or rule.dnat_to is None:
        return None, packet
    return rule, replace(packet, nw_dst=rule.dnat_to)


def postrouting(namespace: NamespaceState, packet: PacketView, in_device: str,
                out_device: str) -> tuple[NatRule | None, PacketView]:
    """The SNAT rule (if any) a new connection's first packet meets, and the packet after."""
    rule = _first(namespace.nat, "postrouting", packet, in_device, out_device)
    if rule is None or rule.snat_to is None:
        return None, packet
    return rule, replace(packet, nw_src=rule.snat_to)


def describe_rule(rule: NatRule) -> str:
    """``prerouting iif rfp-1 daddr 192.0.2.20 dnat to 10.0.0.5`` (for people)."""
    parts = [rule.chain]
    for label, value in (("iif", rule.iif), ("oif", rule.oif), ("saddr", rule.saddr),
                         ("daddr", rule.daddr)):
        if value is not None:
            parts.append(f"{label} {value}")
    if rule.snat_to is not None:
        parts.append(f"snat to {rule.snat_to}")
    if rule.dnat_to is not None:
        parts.append(f"dnat to {rule.dnat_to}")
    return " ".join(parts)


@dataclass(frozen=True)
class Connection:
    """One translated connection in one namespace: its addresses before and after NAT."""

    host: str
    namespace: str
    original: tuple[str, str]  # (source, destination) as the first packet arrived
    translated: tuple[str, str]  # ... and as it left

    def is_reply(self, packet: PacketView) -> bool:
        return (packet.nw_src, packet.nw_dst) == (self.translated[1], self.translated[0])

    def undo_source_nat(self, packet: PacketView) -> tuple[PacketView, str | None]:
        """Before routing: a reply to a source-NATed connection goes back to the original
        source."""
        if self.translated[0] == self.original[0]:
            return packet, None
        return (replace(packet, nw_dst=self.original[0]),
                f"conntrack: reply to {self.translated[0]} -> {self.original[0]} "
                "(source NAT undone)")

    def undo_destination_nat(self, packet: PacketView) -> tuple[PacketView, str | None]:
        """After routing: a reply from a destination-NATed connection comes from the
        original destination."""
        if self.translated[1] == self.original[1]:
            return packet, None
        return (replace(packet, nw_src=self.original[1]),
                f"conntrack: reply from {self.translated[1]} -> {self.original[1]} "
                "(destination NAT undone)")

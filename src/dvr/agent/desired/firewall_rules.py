"""Security group rules as typed traffic selectors (pure; no flows here).

A port's rules (the rules of every group it is a member of) become ``Selector`` values:
what one rule lets through in one direction, with its remote side resolved to an address
prefix or to an address set.  Rules with equal selectors (the same rule in two groups)
are one selector.  Each selector has a 32-bit ``mark``, a hash of its content: the
firewall stores it in the connection's ``ct_label`` when the selector admits a new
connection, and accepts established traffic only while a selector with that mark is still
in place (that is how removing a rule ends the connections it allowed).  Every selector is
a conjunctive match (``firewall.py``) whose ``conj_id`` is its mark, probed upwards on a
collision among the selectors of every group of the host (``conjunction_ids``).  Marks and
conj_ids depend on content only, so they are equal on every host and across agent
restarts, and an unrelated change never renumbers a conjunction.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from dvr.agent.desired.openflow import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_SCTP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    Protocol,
)
from dvr.model.hostview import AddressSetView, SecurityGroupRuleView, SecurityGroupView

INGRESS = "ingress"
EGRESS = "egress"
IPV4 = "IPv4"
IPV6 = "IPv6"
PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP})
# (ethertype, protocol number) -> the ovs-ofctl shorthand; others are "ip"/"ipv6" + nw_proto
_SHORTHANDS: dict[tuple[str, int], Protocol] = {
    (IPV4, IPPROTO_ICMP): "icmp", (IPV4, IPPROTO_TCP): "tcp", (IPV4, IPPROTO_UDP): "udp",
    (IPV4, IPPROTO_SCTP): "sctp",
    (IPV6, IPPROTO_ICMPV6): "icmp6", (IPV6, IPPROTO_ICMP): "icmp6",  # Neutron: icmp on IPv6
    (IPV6, IPPROTO_TCP): "tcp6", (IPV6, IPPROTO_UDP): "udp6", (IPV6, IPPROTO_SCTP): "sctp6",
}
MAX_PORT = 65535


@dataclass(frozen=True, order=True)
class RuleRef:
    group_id: str
    rule_id: str


@dataclass(frozen=True)
class Selector:
    """What one rule admits, for one port.  ``remote_set`` is an ``AddressSetView`` id
    (the rule's remote group or address group); ``remote_prefix`` a CIDR; neither: any."""

    direction: str
    ethertype: str
    protocol: int | None = None
    port_min: int | None = None
    port_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_prefix: str | None = None
    remote_set: str | None = None

    @cached_property
    def text(self) -> str:
        """The canonical text of the content (the mark hashes it; selectors sort by it)."""
        return "|".join("" if v is None else str(v) for v in (
            self.direction, self.ethertype, self.protocol, self.port_min, self.port_max,
            self.icmp_type, self.icmp_code, self.remote_prefix, self.remote_set))

    def __hash__(self) -> int:  # the text, computed once (selectors are hashed a lot)
        return hash(self.text)

    @cached_property
    def mark(self) -> int:
        digest = hashlib.blake2b(self.text.encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") or 1

    @property
    def l4(self) -> tuple[Protocol, int | None]:
        """(ovs-ofctl protocol shorthand, nw_proto when the shorthand does not fix it)."""
        base: Protocol = "ip" if self.ethertype == IPV4 else "ipv6"
        if self.protocol is None:
            return base, None
        shorthand = _SHORTHANDS.get((self.ethertype, self.protocol))
        return (shorthand, None) if shorthand else (base, self.protocol)


def _version(ethertype: str) -> int:
    return 4 if ethertype == IPV4 else 6


def _prefix_fits(prefix: str | None, ethertype: str) -> bool:
    if prefix is None:
        return True
    try:
        return ipaddress.ip_network(prefix, strict=False).version == _version(ethertype)
    except ValueError:
        return False


def selector_of(rule: SecurityGroupRuleView) -> Selector | None:
    """The rule as a selector; None for a rule no packet can match (a remote prefix of the
    other IP version)."""
    if rule.direction not in (INGRESS, EGRESS) or rule.ethertype not in (IPV4, IPV6):
        return None
    if not _prefix_fits(rule.remote_ip_prefix, rule.ethertype):
        return None
    ports = rule.protocol in PORT_PROTOCOLS
    icmp = _SHORTHANDS.get((rule.ethertype, rule.protocol or 0)) in ("icmp", "icmp6")
    port_min = rule.port_range_min if ports else None
    port_max = (rule.port_range_max if rule.port_range_max is not None else port_min) \
        if ports else None
    if port_min is not None and port_max is not None and (port_min, port_max) == (1, MAX_PORT):
        port_min = port_max = None  # the whole range: the same as no range
    prefix = rule.remote_ip_prefix
    if prefix is not None and ipaddress.ip_network(prefix, strict=False).prefixlen == 0:
        prefix = None  # 0.0.0.0/0 and ::/0 are "any"
    return Selector(
        direction=rule.direction, ethertype=rule.ethertype, protocol=rule.protocol,
        port_min=port_min, port_max=port_max,
        icmp_type=rule.icmp_type if icmp else None,
        icmp_code=rule.icmp_code if icmp and rule.icmp_type is not None else None,
        remote_prefix=prefix,
        remote_set=rule.remote_group_id or rule.remote_address_group_id,
    )


@dataclass(frozen=True)
class GroupSelectors:
    """What the firewall reads of one group: whether it is stateful, and its selectors."""

    stateful: bool
    selectors: frozenset[Selector]


def group_selectors(group: SecurityGroupView) -> GroupSelectors:
    found = (selector_of(rule) for rule in group.rules)
    return GroupSelectors(group.stateful, frozenset(s for s in found if s is not None))


def port_selectors(groups: Iterable[SecurityGroupView]) -> dict[Selector, tuple[RuleRef, ...]]:
    """Every selector of a port's groups, with the rules it stands for (sorted)."""
    found: dict[Selector, list[RuleRef]] = {}
    for group in groups:
        for rule in group.rules:
            selector = selector_of(rule)
            if selector is not None:
                found.setdefault(selector, []).append(RuleRef(group.id, rule.id))
    return {s: tuple(sorted(found[s])) for s in sorted(found, key=lambda s: s.text)}


def set_members(address_set: AddressSetView | None, ethertype: str) -> tuple[str, ...]:
    """The set's CIDRs of the selector's IP version (none for an unknown set).  The CIDRs
    are normalized by the server: an IPv6 one is the one with a colon."""
    if address_set is None:
        return ()
    v6 = ethertype != IPV4
    return tuple(c for c in address_set.cidrs if (":" in c) == v6)


def conjunction_ids(selectors: Iterable[Selector]) -> dict[Selector, int]:
    """A conj_id per selector: its mark, probing upwards on a collision (in selector order,
    so the answer depends only on the set of selectors)."""
    used: set[int] = set()
    ids: dict[Selector, int] = {}
    for selector in sorted(set(selectors), key=lambda s: s.text):
        ident = selector.mark
        while ident in used:
            ident = ident % 0xFFFFFFFF + 1
        used.add(ident)
        ids[selector] = ident
    return ids


def port_range_masks(low: int, high: int) -> tuple[tuple[int, int], ...]:
    """``[low, high]`` as (value, mask) pairs of 16-bit port numbers (the fewest aligned
    blocks), e.g. 1000-1999 -> (1000, 0xfff8), (1008, 0xfff0), ..."""
    blocks: list[tuple[int, int]] = []
    while low <= high:
        size = low & -low if low else 1 << 16
        while size > 1 and low + size - 1 > high:
            size >>= 1
        blocks.append((low, 0xFFFF & ~(size - 1)))
        low += size
    return tuple(blocks)


def describe_selector(selector: Selector, sets: Mapping[str, AddressSetView]) -> str:
    """``ingress IPv4 tcp 80-80 from 192.0.2.0/24`` etc., for people."""
    words = [selector.direction, selector.ethertype]
    shorthand, number = selector.l4
    words.append(str(number) if number is not None else shorthand)
    if selector.port_min is not None:
        words.append(f"{selector.port_min}-{selector.port_max}")
    if selector.icmp_type is not None:
        code = "" if selector.icmp_code is None else f"/{selector.icmp_code}"
        words.append(f"type {selector.icmp_type}{code}")
    side = "from" if selector.direction == INGRESS else "to"
    if selector.remote_prefix is not None:
        words.append(f"{side} {selector.remote_prefix}")
    elif selector.remote_set is not None:
        found = sets.get(selector.remote_set)
        kind = found.kind.replace("_", " ") if found else "set"
        words.append(f"{side} {kind} {selector.remote_set}")
    return " ".join(words)

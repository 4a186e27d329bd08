"""Prefix arithmetic of subnet pools, pure (no database): a pool's prefixes collapsed, what
is still free once its subnets are taken out, and the prefix a new subnet gets.

Neutron's choice, kept here: free space is split into the largest aligned blocks, smallest
block first (then by address), and a subnet of length N takes the first /N of the first
block that holds one.  So small subnets fill the gaps before large blocks are broken up, and
the answer is the same on every server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_PREFIXLEN = {4: 32, 6: 128}
DEFAULT_MIN_PREFIXLEN = {4: 8, 6: 64}


def networks(cidrs: Iterable[str]) -> list[IPNetwork]:
    return [ipaddress.ip_network(cidr) for cidr in cidrs]


def collapse(prefixes: Iterable[IPNetwork]) -> list[IPNetwork]:
    """The same address space as the fewest networks, in address order (one IP version)."""
    return list(ipaddress.collapse_addresses(prefixes))  # type: ignore[arg-type]


def _without(block: IPNetwork, taken: IPNetwork) -> list[IPNetwork]:
    if not block.overlaps(taken):
        return [block]
    if taken.subnet_of(block):  # type: ignore[arg-type]
        return list(block.address_exclude(taken))  # type: ignore[arg-type]
    return []  # the block lies inside what is taken


def free_blocks(prefixes: Iterable[IPNetwork], taken: Iterable[IPNetwork]) -> list[IPNetwork]:
    """What ``prefixes`` still hold once ``taken`` is removed, smallest block first."""
    blocks = collapse(prefixes)
    for used in taken:
        blocks = [piece for block in blocks for piece in _without(block, used)]
    return sorted(collapse(blocks), key=lambda block: -block.prefixlen)


def next_free(
    prefixes: Iterable[IPNetwork], taken: Iterable[IPNetwork], prefixlen: int
) -> IPNetwork | None:
    """The prefix of length ``prefixlen`` a new subnet gets, or None when none is left."""
    for block in free_blocks(prefixes, taken):
        if prefixlen >= block.prefixlen:
            return next(block.subnets(new_prefix=prefixlen))
    return None


def is_free(prefixes: Iterable[IPNetwork], taken: Iterable[IPNetwork], wanted: IPNetwork) -> bool:
    """``wanted`` lies inside the pool and overlaps nothing taken."""
    return any(
        wanted.subnet_of(block)  # type: ignore[arg-type]
        for block in free_blocks(prefixes, taken)
    )


def covers(outer: Iterable[IPNetwork], inner: Iterable[IPNetwork]) -> bool:
    """Every address of ``inner`` is in ``outer`` (either may mix IP versions)."""
    blocks, wanted_all = list(outer), list(inner)
    for version in (4, 6):
        wanted = [n for n in wanted_all if n.version == version]
        have = collapse(b for b in blocks if b.version == version)
        if not all(any(n.subnet_of(b) for b in have) for n in wanted):  # type: ignore[arg-type]
            return False
    return True


def overlap(a: Iterable[IPNetwork], b: Iterable[IPNetwork]) -> bool:
    others = list(b)
    return any(x.overlaps(y) for x in a for y in others)


def subtract(prefixes: Iterable[IPNetwork], removed: Iterable[IPNetwork]) -> list[IPNetwork]:
    """``prefixes`` without ``removed``, collapsed, in address order."""
    return collapse(free_blocks(prefixes, removed))

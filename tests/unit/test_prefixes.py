"""The prefix arithmetic of subnet pools (dvr.server.services.prefixes), against brute force."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.server.services import prefixes as px

SPACE = ipaddress.ip_network("192.0.2.0/24")


def net(cidr: str) -> px.IPNetwork:
    return ipaddress.ip_network(cidr)


def all_of_length(pool: list[px.IPNetwork], prefixlen: int) -> list[px.IPNetwork]:
    return [s for p in pool if p.prefixlen <= prefixlen for s in p.subnets(new_prefix=prefixlen)]


networks_in_space = st.builds(
    lambda length, index: list(SPACE.subnets(new_prefix=length))[index % (1 << (length - 24))],
    st.integers(24, 30),
    st.integers(0, 63),
)


@settings(max_examples=300, deadline=None)
@given(
    pool=st.lists(networks_in_space, min_size=1, max_size=4),
    taken=st.lists(networks_in_space, max_size=6),
    prefixlen=st.integers(24, 30),
)
def test_next_free_is_free_and_found_whenever_one_exists(pool, taken, prefixlen):
    found = px.next_free(pool, taken, prefixlen)
    candidates = [
        c for c in all_of_length(px.collapse(pool), prefixlen)
        if not any(c.overlaps(t) for t in taken)
    ]
    if found is None:
        assert candidates == []
    else:
        assert found in candidates
        assert px.is_free(pool, taken, found)
        # the first prefix of the smallest free block that holds one (Neutron's choice)
        blocks = [b for b in px.free_blocks(pool, taken) if b.prefixlen <= prefixlen]
        smallest = max(b.prefixlen for b in blocks)
        first = min((b for b in blocks if b.prefixlen == smallest), key=lambda b: b.network_address)
        assert found == next(first.subnets(new_prefix=prefixlen))


@settings(max_examples=200, deadline=None)
@given(pool=st.lists(networks_in_space, min_size=1, max_size=4),
       taken=st.lists(networks_in_space, max_size=6))
def test_free_blocks_are_the_pool_minus_what_is_taken(pool, taken):
    free = {int(a) for b in px.free_blocks(pool, taken) for a in b}
    expected = {int(a) for p in pool for a in p} - {int(a) for t in taken for a in t}
    assert free == expected


def test_collapse_covers_subtract_and_overlap():
    assert px.collapse([net("192.0.2.128/25"), net("192.0.2.0/25")]) == [net("192.0.2.0/24")]
    assert px.covers([net("192.0.2.0/24")], [net("192.0.2.0/25"), net("192.0.2.128/26")])
    assert not px.covers([net("192.0.2.0/25")], [net("192.0.2.0/24")])
    assert not px.covers([net("192.0.2.0/24")], [net("2001:db8::/64")])
    assert px.covers([net("192.0.2.0/24"), net("2001:db8::/48")], [net("2001:db8::/64")])
    assert px.subtract([net("192.0.2.0/24")], [net("192.0.2.0/25")]) == [net("192.0.2.128/25")]
    assert px.overlap([net("192.0.2.0/24")], [net("192.0.2.64/26")])
    assert not px.overlap([net("192.0.2.0/24")], [net("198.51.100.0/24"), net("2001:db8::/64")])
    assert px.next_free([net("2001:db8::/63")], [net("2001:db8::/64")], 64) == net(
        "2001:db8:0:1::/64"
    )

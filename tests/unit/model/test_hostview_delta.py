"""HostViewDelta: on random histories of a host's view, the stream of deltas (through JSON)
rebuilds exactly every view of the history; a delta is refused by a view it was not made
from; a view that breaks the ordering contract gets no delta."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.model.hostview import (
    AddressPair,
    AddressSetView,
    ArpEntry,
    ExtraRoute,
    FixedIp,
    FloatingIpView,
    GatewayView,
    HostMac,
    HostView,
    L2Entry,
    NetworkView,
    PortView,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
    SecurityGroupRuleView,
    SecurityGroupView,
    SnatPortView,
    SubnetView,
    host_view_from_dict,
)
from dvr.model.hostview_delta import (
    HostViewDelta,
    InconsistentDelta,
    RevisionMismatch,
    UnsortedView,
    apply,
    delta_from_dict,
    diff,
)

# small domains, so that random views share, change and drop objects of the same ids
IDS = st.sampled_from(["a", "b", "c", "d", "e"])
HOSTS = st.sampled_from(["h1", "h2", "h3", "h4"])
MACS = st.sampled_from(["fa:16:3e:00:00:01", "fa:16:3e:00:00:02", "fa:16:3f:00:00:03"])
IPS = st.sampled_from(["192.0.2.1", "192.0.2.2", "198.51.100.3", "203.0.113.4"])
CIDRS = st.sampled_from(["192.0.2.0/24", "198.51.100.0/25", "203.0.113.7/32", "2001:db8::/64"])
OPTIONAL_IDS = st.none() | IDS


def sorted_tuple(strategy: st.SearchStrategy, max_size: int = 3) -> st.SearchStrategy:
    return st.lists(strategy, max_size=max_size, unique=True).map(lambda v: tuple(sorted(v)))


def keyed(strategy: st.SearchStrategy, key: Callable[[Any], Any],
          max_size: int = 4) -> st.SearchStrategy:
    """A collection as a view holds it: unique keys, sorted by key."""
    return st.lists(strategy, max_size=max_size).map(
        lambda items: tuple(sorted({key(i): i for i in items}.values(), key=key))
    )


FIXED_IPS = st.lists(st.builds(FixedIp, IDS, IPS), max_size=2).map(tuple)
PORTS = st.builds(
    PortView, id=IDS, network_id=IDS, mac_address=MACS, fixed_ips=FIXED_IPS,
    device_owner=st.sampled_from(["compute:nova", "network:dhcp",
                                  "network:floatingip_agent_gateway"]),
    device_id=IDS, host=HOSTS, admin_state_up=st.booleans(),
    port_security_enabled=st.booleans(), security_group_ids=sorted_tuple(IDS),
    allowed_address_pairs=st.lists(st.builds(AddressPair, MACS, CIDRS), max_size=2).map(tuple),
)
SUBNETS = st.builds(SubnetView, IDS, IDS, CIDRS, st.none() | IPS, st.sampled_from([4, 6]))
REMOTE_HOSTS = st.builds(
    RemoteHost, HOSTS, IPS,
    st.lists(st.builds(L2Entry, MACS, sorted_tuple(IPS, 2)), max_size=2).map(tuple),
)
NETWORKS = st.builds(
    NetworkView, id=IDS, name=IDS, network_type=st.sampled_from(["vxlan", "flat", "vlan"]),
    segmentation_id=st.none() | st.integers(1, 4), mtu=st.sampled_from([1450, 1500]),
    external=st.booleans(), physical_network=st.none() | st.just("public"),
    subnets=keyed(SUBNETS, lambda s: s.id, 2),
    remote_hosts=keyed(REMOTE_HOSTS, lambda r: r.host),
)
ARP_ENTRIES = st.builds(ArpEntry, IDS, IPS, MACS)


def arp_key(entry: ArpEntry) -> tuple[str, str, str]:
    return (entry.subnet_id, entry.ip_address, entry.mac_address)


ROUTERS = st.builds(
    RouterView, id=IDS, name=IDS, distributed=st.booleans(), ha=st.booleans(),
    admin_state_up=st.booleans(),
    interfaces=keyed(st.builds(RouterInterfaceView, IDS, IDS, IDS, MACS, IPS, CIDRS,
                               st.just(1450)), lambda i: i.subnet_id, 2),
    arp_entries=keyed(ARP_ENTRIES, arp_key, 5),
    routes=st.lists(st.builds(ExtraRoute, CIDRS, IPS), max_size=2).map(tuple),
    gateway=st.none() | st.builds(GatewayView, IDS, IDS, MACS, FIXED_IPS,
                                  keyed(SUBNETS, lambda s: s.id, 1), st.booleans()),
    snat_host=st.none() | HOSTS,
    snat_ports=keyed(st.builds(SnatPortView, IDS, IDS, IDS, MACS, IPS, CIDRS, st.just(1450)),
                     lambda s: s.subnet_id, 2),
    floating_ips=keyed(st.builds(FloatingIpView, IDS, IPS, IDS, IPS, IDS, HOSTS),
                       lambda f: f.id, 2),
)
RULES = st.builds(
    SecurityGroupRuleView, id=IDS, direction=st.sampled_from(["ingress", "egress"]),
    ethertype=st.sampled_from(["IPv4", "IPv6"]), protocol=st.none() | st.sampled_from([1, 6]),
    port_range_min=st.none() | st.just(80), port_range_max=st.none() | st.just(443),
    remote_ip_prefix=st.none() | CIDRS, remote_group_id=OPTIONAL_IDS,
)
GROUPS = st.builds(SecurityGroupView, IDS, st.booleans(), keyed(RULES, lambda r: r.id, 3))
ADDRESS_SETS = st.builds(AddressSetView, IDS, st.sampled_from(["security_group", "address_group"]),
                         sorted_tuple(CIDRS, 4))


@dataclass(frozen=True)
class Collection:
    """A collection of HostView: how to draw one object, its key, how to change one object
    while keeping its key."""

    name: str
    draw: st.SearchStrategy
    key: Callable[[Any], Any]
    change: Callable[[st.DataObject, Any], Any]


def redraw(strategy: st.SearchStrategy, rekey: Callable[[Any, Any], Any]) -> Callable:
    return lambda data, old: rekey(data.draw(strategy), old)


def mutate(data: st.DataObject, items: tuple, collection: Collection) -> tuple:
    """Keep, change or drop each object, and add a few: one step of a history."""
    result = {}
    for item in items:
        action = data.draw(st.sampled_from(["keep", "keep", "keep", "change", "drop"]))
        if action == "keep":
            result[collection.key(item)] = item
        elif action == "change":
            new = collection.change(data, item)
            result[collection.key(new)] = new
    for item in data.draw(st.lists(collection.draw, max_size=2)):
        result.setdefault(collection.key(item), item)
    return tuple(result[k] for k in sorted(result))


def cannot_change(data: st.DataObject, old: Any) -> Any:
    return old  # its key is its whole value


REMOTE = Collection("remote_hosts", REMOTE_HOSTS, lambda r: r.host,
                    redraw(REMOTE_HOSTS, lambda new, old: replace(new, host=old.host)))
ARP = Collection("arp_entries", ARP_ENTRIES, arp_key, cannot_change)
CIDR = Collection("cidrs", CIDRS, lambda c: c, cannot_change)


def change_network(data: st.DataObject, old: NetworkView) -> NetworkView:
    base = data.draw(st.sampled_from([old, data.draw(NETWORKS)]))
    return replace(base, id=old.id, remote_hosts=mutate(data, old.remote_hosts, REMOTE))


def change_router(data: st.DataObject, old: RouterView) -> RouterView:
    base = data.draw(st.sampled_from([old, data.draw(ROUTERS)]))
    return replace(base, id=old.id, arp_entries=mutate(data, old.arp_entries, ARP))


def change_address_set(data: st.DataObject, old: AddressSetView) -> AddressSetView:
    return replace(old, cidrs=mutate(data, old.cidrs, CIDR))


COLLECTIONS = (
    Collection("ports", PORTS, lambda p: p.id,
               redraw(PORTS, lambda new, old: replace(new, id=old.id))),
    Collection("networks", NETWORKS, lambda n: n.id, change_network),
    Collection("routers", ROUTERS, lambda r: r.id, change_router),
    Collection("peer_host_macs", st.builds(HostMac, HOSTS, MACS), lambda m: m.host,
               redraw(MACS, lambda mac, old: replace(old, mac_address=mac))),
    Collection("fip_agent_gateways", PORTS, lambda p: p.id,
               redraw(PORTS, lambda new, old: replace(new, id=old.id))),
    Collection("security_groups", GROUPS, lambda g: g.id,
               redraw(GROUPS, lambda new, old: replace(new, id=old.id))),
    Collection("address_sets", ADDRESS_SETS, lambda a: (a.kind, a.id), change_address_set),
)
EMPTY = HostView(host="h1", revision=0, agent_mode="dvr", host_mac=None, tunnel_ip=None,
                 ports=(), networks=(), routers=(), peer_host_macs=())


def next_view(data: st.DataObject, old: HostView) -> HostView:
    scalars = {}
    if data.draw(st.booleans(), label="scalars change"):
        scalars = {"agent_mode": data.draw(st.sampled_from(["dvr", "dvr_snat"])),
                   "host_mac": data.draw(st.none() | MACS),
                   "tunnel_ip": data.draw(st.none() | IPS)}
    collections = {c.name: mutate(data, getattr(old, c.name), c) for c in COLLECTIONS}
    step = data.draw(st.integers(0, 3), label="revision step")
    return replace(old, revision=old.revision + step, **scalars, **collections)


def history(data: st.DataObject) -> list[HostView]:
    views = [EMPTY]
    for _ in range(data.draw(st.integers(1, 6), label="length")):
        views.append(next_view(data, views[-1]))
    return views


def through_json(delta: HostViewDelta) -> HostViewDelta:
    return delta_from_dict(json.loads(json.dumps(delta.to_dict())))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_delta_stream_rebuilds_every_view_of_a_random_history(data: st.DataObject) -> None:
    views = history(data)
    start = data.draw(st.integers(0, len(views) - 2), label="agent holds")
    held = views[start]
    for new in views[start + 1:]:
        old, delta = held, through_json(diff(held, new))
        held = apply(held, delta)
        assert held == new
        # exactly: it serializes identically, and the codec reads it back
        assert json.dumps(held.to_dict()) == json.dumps(new.to_dict())
        assert host_view_from_dict(json.loads(json.dumps(held.to_dict()))) == new
        # what did not change is the held view's own objects (cheap for the agent's cache)
        for c in COLLECTIONS:
            if getattr(old, c.name) == getattr(new, c.name):
                assert getattr(held, c.name) is getattr(old, c.name)
    # one delta over the whole history equals the stream
    assert apply(views[start], through_json(diff(views[start], views[-1]))) == views[-1]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_a_delta_is_refused_by_a_view_of_another_revision(data: st.DataObject) -> None:
    views = history(data)
    old, new = views[-2], views[-1]
    other = data.draw(st.sampled_from(views), label="other view")
    other = replace(other, revision=old.revision + data.draw(st.sampled_from([-2, -1, 1, 5])))
    with pytest.raises(RevisionMismatch):
        apply(other, diff(old, new))
    with pytest.raises(RevisionMismatch):
        apply(replace(old, host="h2"), diff(old, new))


def test_a_view_diffed_with_itself_is_an_empty_delta() -> None:
    view = replace(EMPTY, revision=4, peer_host_macs=(HostMac("h2", "fa:16:3f:00:00:02"),))
    delta = diff(view, replace(view, revision=6))
    assert delta.empty and (delta.from_revision, delta.to_revision) == (4, 6)
    assert not diff(view, replace(view, tunnel_ip="198.51.100.9")).empty


def test_a_big_network_travels_as_the_one_remote_host_that_changed() -> None:
    remote = tuple(RemoteHost(f"h{i:03d}", "198.51.100.1", ()) for i in range(100))
    network = NetworkView("n", "n", "vxlan", 7, 1450, False, None, (), remote)
    old = replace(EMPTY, networks=(network,))
    grown = replace(remote[42], entries=(L2Entry("fa:16:3e:00:00:09", ("192.0.2.9",)),))
    new = replace(old, revision=1, networks=(replace(
        network, remote_hosts=remote[:42] + (grown,) + remote[43:]),))
    (patch,) = diff(old, new).networks.changed
    assert patch.remote_hosts.changed == (grown,)
    assert not patch.remote_hosts.added and not patch.remote_hosts.removed
    assert patch.network.remote_hosts == ()
    assert apply(old, through_json(diff(old, new))) == new


def test_a_delta_whose_objects_are_not_where_it_says_is_refused() -> None:
    port = PortView("p", "n", "fa:16:3e:00:00:01", (), "compute:nova", "vm", "h1")
    with_port = replace(EMPTY, revision=1, ports=(port,))
    adds = diff(EMPTY, with_port)
    with pytest.raises(InconsistentDelta):  # same revision, but the port is already there
        apply(replace(with_port, revision=0), adds)
    removes = diff(with_port, replace(EMPTY, revision=2))
    with pytest.raises(InconsistentDelta):  # same revision, but there is no port to remove
        apply(replace(EMPTY, revision=1), removes)


def test_a_view_that_breaks_the_ordering_gets_no_delta() -> None:
    a = HostMac("h2", "fa:16:3f:00:00:02")
    b = HostMac("h3", "fa:16:3f:00:00:03")
    with pytest.raises(UnsortedView):
        diff(EMPTY, replace(EMPTY, peer_host_macs=(b, a)))
    with pytest.raises(UnsortedView):
        diff(EMPTY, replace(EMPTY, peer_host_macs=(a, a)))

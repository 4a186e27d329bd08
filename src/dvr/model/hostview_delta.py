"""HostViewDelta: what changed in one host's HostView between two revisions, as plain frozen
data (docs/API.md, "view?since=R").

``diff(old, new)`` and ``apply(old, delta)`` are pure and inverse: ``apply(old, diff(old,
new)) == new``, and ``apply`` refuses (``DeltaRefused``) a delta that was not made from the
view it is given — another host, another revision, or objects that are not where the delta
says they are — rather than produce a wrong view.

Every collection of a HostView is sorted by a key that is unique in it (an object's id, a
peer's host name, an address set's (kind, id), a static ARP entry's whole value), so a
collection's change is the objects *added*, *changed* (sent whole) and *removed* (by key),
and ``apply`` puts them back in key order.  The three big sub-collections are patched the
same way instead of being sent whole: a network's remote hosts (one new port on a network
that spans 1,000 hosts changes one of its 999 remote hosts), a router's static ARP entries
and an address set's CIDRs.  ``diff`` refuses (``UnsortedView``) a view that breaks the
ordering, so the server falls back to the full view instead of sending a delta that would
not rebuild it.  It travels as JSON: ``to_dict`` and ``delta_from_dict`` are exact inverses.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, TypeVar

from dvr.model.hostview import (
    AddressSetView,
    ArpEntry,
    HostMac,
    HostView,
    NetworkView,
    PortView,
    RemoteHost,
    RouterView,
    SecurityGroupView,
    address_set_from_dict,
    arp_entry_from_dict,
    host_mac_from_dict,
    network_from_dict,
    port_from_dict,
    remote_hosts_from_list,
    router_from_dict,
    security_group_from_dict,
)

HOLDS_NO_VIEW = 0  # the revision a caller asking for a delta names when it holds no view

T = TypeVar("T")  # an object of a collection
P = TypeVar("P")  # how a changed one travels: the object itself, or a patch of it
Key = Hashable


class DeltaRefused(ValueError):
    """This delta cannot be applied to this view (it was made from another one)."""


class RevisionMismatch(DeltaRefused):
    """The delta starts from another host's view, or from another revision."""


class InconsistentDelta(DeltaRefused):
    """The delta adds an object the view has, or changes or removes one it lacks."""


class UnsortedView(ValueError):
    """A collection of a view is not strictly sorted by its key: no delta can rebuild it."""


@dataclass(frozen=True)
class Changes(Generic[T, P]):
    """One collection's change: objects added, changed (``P``), removed (by key)."""

    added: tuple[T, ...] = ()  # in key order
    changed: tuple[P, ...] = ()  # in key order
    removed: tuple[Key, ...] = ()  # in key order

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


@dataclass(frozen=True)
class NetworkPatch:
    network: NetworkView  # the new network, without remote hosts
    remote_hosts: Changes[RemoteHost, RemoteHost]


@dataclass(frozen=True)
class RouterPatch:
    router: RouterView  # the new router, without static ARP entries
    arp_entries: Changes[ArpEntry, ArpEntry]


@dataclass(frozen=True)
class AddressSetPatch:
    address_set: AddressSetView  # the new set, without CIDRs
    cidrs: Changes[str, str]


@dataclass(frozen=True)
class HostFields:
    """The view's own scalar fields (the host and the revision aside)."""

    agent_mode: str
    host_mac: str | None
    tunnel_ip: str | None


@dataclass(frozen=True)
class HostViewDelta:
    host: str
    from_revision: int
    to_revision: int
    host_fields: HostFields | None = None  # None: unchanged
    ports: Changes[PortView, PortView] = Changes()
    networks: Changes[NetworkView, NetworkPatch] = Changes()
    routers: Changes[RouterView, RouterPatch] = Changes()
    peer_host_macs: Changes[HostMac, HostMac] = Changes()
    fip_agent_gateways: Changes[PortView, PortView] = Changes()
    security_groups: Changes[SecurityGroupView, SecurityGroupView] = Changes()
    address_sets: Changes[AddressSetView, AddressSetPatch] = Changes()

    @property
    def empty(self) -> bool:
        """Nothing but the revision moved."""
        return self.host_fields is None and not any(
            getattr(self, name) for name in _COLLECTIONS
        )

    def to_dict(self) -> dict[str, Any]:
        return compact_delta_dict(asdict(self))


# -- the collections: key, and how a changed object is patched ---------------------------------


def _port_key(port: PortView) -> Key:
    return port.id


def _network_key(network: NetworkView) -> Key:
    return network.id


def _router_key(router: RouterView) -> Key:
    return router.id


def _host_mac_key(host_mac: HostMac) -> Key:
    return host_mac.host


def _group_key(group: SecurityGroupView) -> Key:
    return group.id


def _address_set_key(address_set: AddressSetView) -> Key:
    return (address_set.kind, address_set.id)


def _remote_host_key(remote: RemoteHost) -> Key:
    return remote.host


def _arp_key(entry: ArpEntry) -> Key:
    return (entry.subnet_id, entry.ip_address, entry.mac_address)


def _cidr_key(cidr: str) -> Key:
    return cidr


@dataclass(frozen=True)
class _Patcher(Generic[T, P]):
    """How a changed object of a collection travels as a patch, and is applied."""

    make: Callable[[T, T], P]  # (old, new) -> patch
    key: Callable[[P], Key]  # the key of the object a patch is for
    apply: Callable[[T, P], T]  # (old, patch) -> new


def _network_patch(old: NetworkView, new: NetworkView) -> NetworkPatch:
    return NetworkPatch(
        replace(new, remote_hosts=()),
        _diff_items(old.remote_hosts, new.remote_hosts, _remote_host_key),
    )


def _apply_network_patch(old: NetworkView, patch: NetworkPatch) -> NetworkView:
    remote = _apply_items(old.remote_hosts, patch.remote_hosts, _remote_host_key)
    return replace(patch.network, remote_hosts=remote)


def _router_patch(old: RouterView, new: RouterView) -> RouterPatch:
    return RouterPatch(
        replace(new, arp_entries=()), _diff_items(old.arp_entries, new.arp_entries, _arp_key)
    )


def _apply_router_patch(old: RouterView, patch: RouterPatch) -> RouterView:
    return replace(patch.router, arp_entries=_apply_items(old.arp_entries, patch.arp_entries,
                                                          _arp_key))


def _address_set_patch(old: AddressSetView, new: AddressSetView) -> AddressSetPatch:
    return AddressSetPatch(replace(new, cidrs=()), _diff_items(old.cidrs, new.cidrs, _cidr_key))


def _apply_address_set_patch(old: AddressSetView, patch: AddressSetPatch) -> AddressSetView:
    return replace(patch.address_set, cidrs=_apply_items(old.cidrs, patch.cidrs, _cidr_key))


_NETWORK_PATCHER = _Patcher(_network_patch, lambda p: _network_key(p.network),
                            _apply_network_patch)
_ROUTER_PATCHER = _Patcher(_router_patch, lambda p: _router_key(p.router), _apply_router_patch)
_ADDRESS_SET_PATCHER = _Patcher(_address_set_patch, lambda p: _address_set_key(p.address_set),
                                _apply_address_set_patch)

# field of HostView (and of HostViewDelta) -> (key, patcher or None: changed objects sent whole)
_COLLECTIONS: dict[str, tuple[Callable[[Any], Key], _Patcher | None]] = {
    "ports": (_port_key, None),
    "networks": (_network_key, _NETWORK_PATCHER),
    "routers": (_router_key, _ROUTER_PATCHER),
    "peer_host_macs": (_host_mac_key, None),
    "fip_agent_gateways": (_port_key, None),
    "security_groups": (_group_key, None),
    "address_sets": (_address_set_key, _ADDRESS_SET_PATCHER),
}


# -- diff -----------------------------------------------------------------------------------------


def _indexed(items: Sequence[T], key: Callable[[T], Key]) -> dict[Key, T]:
    """The items by key; ``UnsortedView`` unless the keys are strictly increasing."""
    result: dict[Key, T] = {}
    previous: Any = None
    for item in items:
        k = key(item)
        if result and not previous < k:
            raise UnsortedView(f"{k!r} follows {previous!r}")
        result[k] = item
        previous = k
    return result


def _aligned_changes(old: Sequence[T], new: Sequence[T], key: Callable[[T], Key],
                     patcher: _Patcher[T, Any] | None) -> Changes[T, Any] | None:
    """The change of two collections of one length whose items differ only in place (the
    same key at every position where they are not the same object): the changed ones, in
    key order.  None when some position holds another key.  Cheap for the common case of a
    big collection where a few objects changed and the rest are the very same objects (a
    network's 999 remote hosts after one port): ``new`` is sorted exactly when ``old`` is,
    the keys being position for position the same."""
    changed: list[Any] = []
    for before, item in zip(old, new, strict=True):
        if before is item:
            continue
        if key(before) != key(item):
            return None
        if before != item:
            changed.append(item if patcher is None else patcher.make(before, item))
    return Changes(changed=tuple(changed))


def _diff_items(old: Sequence[T], new: Sequence[T], key: Callable[[T], Key],
                patcher: _Patcher[T, Any] | None = None) -> Changes[T, Any]:
    if old == new:  # (mostly the same objects: cheap)
        return Changes()
    if len(old) == len(new):
        aligned = _aligned_changes(old, new, key, patcher)
        if aligned is not None:
            return aligned
    old_by_key = _indexed(old, key)
    new_by_key = _indexed(new, key)
    added: list[T] = []
    changed: list[Any] = []
    for k, item in new_by_key.items():
        before = old_by_key.get(k)
        if before is None:
            added.append(item)
        elif before is not item and before != item:
            changed.append(item if patcher is None else patcher.make(before, item))
    removed = tuple(k for k in old_by_key if k not in new_by_key)
    return Changes(tuple(added), tuple(changed), removed)


def diff(old: HostView, new: HostView) -> HostViewDelta:
    """What turns ``old`` into ``new`` (two views of one host); ``UnsortedView`` if a
    collection of either is not strictly sorted by its key."""
    if old.host != new.host:
        raise ValueError(f"views of two hosts: {old.host!r} and {new.host!r}")
    fields = HostFields(new.agent_mode, new.host_mac, new.tunnel_ip)
    unchanged = fields == HostFields(old.agent_mode, old.host_mac, old.tunnel_ip)
    return HostViewDelta(
        host=new.host,
        from_revision=old.revision,
        to_revision=new.revision,
        host_fields=None if unchanged else fields,
        **{
            name: _diff_items(getattr(old, name), getattr(new, name), key, patcher)
            for name, (key, patcher) in _COLLECTIONS.items()
        },
    )


# -- apply ----------------------------------------------------------------------------------------


def _apply_items(items: tuple[T, ...], changes: Changes[T, Any], key: Callable[[T], Key],
                 patcher: _Patcher[T, Any] | None = None) -> tuple[T, ...]:
    if not changes:
        return items
    by_key = {key(item): item for item in items}
    for k in changes.removed:
        if by_key.pop(k, None) is None:
            raise InconsistentDelta(f"removes {k!r}, which the view does not have")
    for change in changes.changed:
        k = key(change) if patcher is None else patcher.key(change)
        before = by_key.get(k)
        if before is None:
            raise InconsistentDelta(f"changes {k!r}, which the view does not have")
        by_key[k] = change if patcher is None else patcher.apply(before, change)
    for item in changes.added:
        k = key(item)
        if k in by_key:
            raise InconsistentDelta(f"adds {k!r}, which the view already has")
        by_key[k] = item
    return tuple(by_key[k] for k in sorted(by_key))


def apply(old: HostView, delta: HostViewDelta) -> HostView:
    """The view ``delta`` leads to from ``old``; ``DeltaRefused`` if it was made from another
    view (unchanged collections are ``old``'s own objects)."""
    if old.host != delta.host:
        raise RevisionMismatch(f"a delta of host {delta.host!r} for a view of {old.host!r}")
    if old.revision != delta.from_revision:
        raise RevisionMismatch(
            f"a delta from revision {delta.from_revision} for a view at {old.revision}"
        )
    fields = delta.host_fields or HostFields(old.agent_mode, old.host_mac, old.tunnel_ip)
    return HostView(
        host=old.host,
        revision=delta.to_revision,
        agent_mode=fields.agent_mode,
        host_mac=fields.host_mac,
        tunnel_ip=fields.tunnel_ip,
        **{
            name: _apply_items(getattr(old, name), getattr(delta, name), key, patcher)
            for name, (key, patcher) in _COLLECTIONS.items()
        },
    )


# -- JSON -----------------------------------------------------------------------------------------

# the fields of the patches that hold a nested collection's changes
_NESTED_CHANGES = {"networks": "remote_hosts", "routers": "arp_entries", "address_sets": "cidrs"}


def _compact_changes(changes: dict[str, Any]) -> dict[str, Any]:
    return {name: items for name, items in changes.items() if items}


def compact_delta_dict(raw: dict[str, Any]) -> dict[str, Any]:
    """A delta's dict (``asdict`` or the server's faster equivalent) without the empty
    lists of its changes and without unchanged collections: what travels."""
    result = {k: v for k, v in raw.items() if k not in _COLLECTIONS}
    for name in _COLLECTIONS:
        changes = _compact_changes(raw[name])
        nested = _NESTED_CHANGES.get(name)
        if nested and "changed" in changes:
            changes["changed"] = [
                {**patch, nested: _compact_changes(patch[nested])} for patch in changes["changed"]
            ]
        if changes:
            result[name] = changes
    return result


def _key_from_json(raw: Any) -> Key:
    return tuple(raw) if isinstance(raw, list) else raw


def _each(decode: Callable[[Any], T]) -> Callable[[list[Any]], tuple[T, ...]]:
    """A decoder of a list of objects from that of one object."""
    return lambda items: tuple([decode(i) for i in items])


def _changes_from_dict(d: dict[str, Any] | None, added: Callable[[list[Any]], tuple[T, ...]],
                       changed: Callable[[list[Any]], tuple[P, ...]]) -> Changes[T, P]:
    """One collection's changes; ``added`` / ``changed`` decode a list of them."""
    if not d:
        return Changes()
    return Changes(
        added=added(d.get("added", ())),
        changed=changed(d.get("changed", ())),
        removed=tuple([_key_from_json(k) for k in d.get("removed", ())]),
    )


def _network_patch_from_dict(d: dict[str, Any]) -> NetworkPatch:
    return NetworkPatch(
        network_from_dict(d["network"]),
        _changes_from_dict(d.get("remote_hosts"), remote_hosts_from_list, remote_hosts_from_list),
    )


def _router_patch_from_dict(d: dict[str, Any]) -> RouterPatch:
    return RouterPatch(
        router_from_dict(d["router"]),
        _changes_from_dict(d.get("arp_entries"), _ARP_ENTRIES, _ARP_ENTRIES),
    )


def _address_set_patch_from_dict(d: dict[str, Any]) -> AddressSetPatch:
    return AddressSetPatch(
        address_set_from_dict(d["address_set"]),
        _changes_from_dict(d.get("cidrs"), tuple, tuple),  # (CIDRs are strings)
    )


# each collection's decoders of its added objects and of its changed ones
_PORTS = _each(port_from_dict)
_NETWORKS, _NETWORK_PATCHES = _each(network_from_dict), _each(_network_patch_from_dict)
_ROUTERS, _ROUTER_PATCHES = _each(router_from_dict), _each(_router_patch_from_dict)
_ARP_ENTRIES = _each(arp_entry_from_dict)
_HOST_MACS = _each(host_mac_from_dict)
_SECURITY_GROUPS = _each(security_group_from_dict)
_ADDRESS_SETS = _each(address_set_from_dict)
_ADDRESS_SET_PATCHES = _each(_address_set_patch_from_dict)


def delta_from_dict(d: dict[str, Any]) -> HostViewDelta:
    """Inverse of ``HostViewDelta.to_dict`` (lists in JSON become tuples again)."""
    fields = d.get("host_fields")
    return HostViewDelta(
        host=d["host"],
        from_revision=d["from_revision"],
        to_revision=d["to_revision"],
        host_fields=None if fields is None else HostFields(**fields),
        ports=_changes_from_dict(d.get("ports"), _PORTS, _PORTS),
        networks=_changes_from_dict(d.get("networks"), _NETWORKS, _NETWORK_PATCHES),
        routers=_changes_from_dict(d.get("routers"), _ROUTERS, _ROUTER_PATCHES),
        peer_host_macs=_changes_from_dict(d.get("peer_host_macs"), _HOST_MACS, _HOST_MACS),
        fip_agent_gateways=_changes_from_dict(d.get("fip_agent_gateways"), _PORTS, _PORTS),
        security_groups=_changes_from_dict(d.get("security_groups"), _SECURITY_GROUPS,
                                           _SECURITY_GROUPS),
        address_sets=_changes_from_dict(d.get("address_sets"), _ADDRESS_SETS,
                                        _ADDRESS_SET_PATCHES),
    )

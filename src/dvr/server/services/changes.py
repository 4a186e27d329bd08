"""The change bookkeeping of writes, one context manager per kind of write.

A write that may change what some host sees runs as the body of one of these::

    with port_change(tx, before, after):
        ...write the port...

On entry the context manager snapshots who may be affected (``tx.impact.track_*``: the
hosts touching the networks, the hosts of the routers); on a normal exit, after the write,
it declares what changed (``tx.impact.*_changed``) and names the subject.  So the snapshot
cannot be taken after the write, nor the declaration made before it.  ``notify.Impact``
turns the two into the hosts to notify.

- ``port_change``: a port created, updated or deleted (its state before and after);
- ``subnets_change``: the subnets of a network (created, deleted, gateway moved);
- ``network_change``: what host views show of a network (name, MTU, external);
- ``router_change``: a router's interfaces, gateway, central host or attributes;
- ``floatingip_change``: a floating IP mapped to, or unmapped from, a port on a host;
- ``host_registration_change``: a host registered, re-registered differently, or gone;
- ``firewall_change``: a security group's rules or attributes, or an address group's
  addresses (a port's groups and addresses are part of ``port_change``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, select

from dvr.db.tables import floatingips, routers
from dvr.model.hostview import OWNER_ROUTER_INTERFACE, OWNER_ROUTER_INTERFACE_DISTRIBUTED
from dvr.server.services.firewall_queries import groups_of_ports, hosts_seeing
from dvr.server.services.firewall_rules import is_filtered
from dvr.server.services.l2pop import bound_port_networks
from dvr.server.services.queries import gateway_routers, get_port, port_ips
from dvr.server.services.scheduler import (
    central_hosts,
    router_networks,
    routers_hosted_on,
    routers_on_networks,
    routers_on_subnets,
)
from dvr.server.tx import WriteTx

ROUTER_INTERFACE_OWNERS = (OWNER_ROUTER_INTERFACE, OWNER_ROUTER_INTERFACE_DISTRIBUTED)


@dataclass(frozen=True)
class PortState:
    id: str
    network_id: str
    host: str
    mac_address: str
    ips: tuple[tuple[str, str], ...]  # sorted (subnet_id, ip)
    device_owner: str
    device_id: str
    admin_state_up: bool
    port_security_enabled: bool = False  # filtered: port security on, not a network's port
    security_groups: tuple[str, ...] = ()  # sorted
    address_pairs: tuple[tuple[str, str], ...] = ()  # sorted (mac, ip or CIDR)

    @property
    def subnet_ids(self) -> set[str]:
        return {s for s, _ in self.ips}

    def l2_entry(self) -> tuple | None:
        if not self.host:
            return None
        return (self.network_id, self.host, self.mac_address, self.ips)

    def arp_entries(self) -> frozenset[tuple[str, str, str]]:
        if self.device_owner in ROUTER_INTERFACE_OWNERS:
            return frozenset()
        return frozenset((s, ip, self.mac_address) for s, ip in self.ips)

    def member_addresses(self) -> tuple[tuple[str, ...], frozenset[str]]:
        """What the port adds to its groups' address sets: (groups, addresses)."""
        ips = {ip for _, ip in self.ips} | {ip for _, ip in self.address_pairs}
        return self.security_groups, frozenset(ips)


def load_state(conn: Connection, port_id: str) -> PortState:
    row = get_port(conn, port_id)
    return PortState(
        id=row.id,
        network_id=row.network_id,
        host=row.host,
        mac_address=row.mac_address,
        ips=port_ips(conn, port_id),
        device_owner=row.device_owner,
        device_id=row.device_id,
        admin_state_up=row.admin_state_up,
        port_security_enabled=is_filtered(row.port_security_enabled, row.device_owner),
        security_groups=tuple(groups_of_ports(conn, [port_id]).get(port_id, ())),
        address_pairs=address_pairs_of(row.allowed_address_pairs),
    )


def address_pairs_of(pairs: list[dict[str, str]] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((p["mac_address"], p["ip_address"]) for p in pairs or ()))


# -- ports -----------------------------------------------------------------------------------
@contextmanager
def port_change(tx: WriteTx, before: PortState | None, after: PortState | None) -> Iterator[None]:
    """Wrap the write that turns ``before`` into ``after`` (None: the port does not exist)."""
    _track(tx, before, after)
    yield
    _declare(tx, before, after)


def _track(tx: WriteTx, before: PortState | None, after: PortState | None) -> None:
    """Snapshot the networks and routers the change may affect (before the write)."""
    states = [s for s in (before, after) if s is not None]
    tx.impact.track_networks({s.network_id for s in states})
    subnet_ids = set().union(*(s.subnet_ids for s in states))
    tx.impact.track_routers(routers_on_subnets(tx.conn, subnet_ids))


def _declare(tx: WriteTx, before: PortState | None, after: PortState | None) -> None:
    """Declare what the change changed (after the write)."""
    states = [s for s in (before, after) if s is not None]
    if before != after:
        tx.impact.host_changed(*(s.host for s in states))
    before_l2 = before.l2_entry() if before else None
    after_l2 = after.l2_entry() if after else None
    if before_l2 != after_l2:
        for state in states:
            if state.host:
                tx.impact.network_entries_changed(state.network_id, state.host)
    if before is not None and after is not None and before.host != after.host:
        # a centralized router shows every floating IP with its port's host
        for router_id in centralized_fip_routers(tx.conn, before.id):
            _central_host_changed(tx, router_id)
    before_arp = before.arp_entries() if before else frozenset()
    after_arp = after.arp_entries() if after else frozenset()
    if before_arp != after_arp:
        subnet_ids = {s for s, _, _ in before_arp | after_arp}
        for router_id in routers_on_subnets(tx.conn, subnet_ids):
            tx.impact.router_changed(router_id)
    before_members = before.member_addresses() if before else ((), frozenset())
    after_members = after.member_addresses() if after else ((), frozenset())
    if before_members != after_members:
        # the address sets of its groups, before and after, changed for their referrers
        groups = set(before_members[0]) | set(after_members[0])
        tx.impact.members_changed(groups)
        tx.impact.hosts_told(*hosts_seeing(tx.conn, remote_group_ids=groups))
    port_id = (after or before).id  # type: ignore[union-attr]
    tx.impact.subject("port", port_id)


# -- networks and subnets --------------------------------------------------------------------
@contextmanager
def subnets_change(tx: WriteTx, network_id: str, subnet_id: str) -> Iterator[None]:
    """Wrap a write to the subnets of a network: every host touching the network sees them,
    and so does every host of a router with its gateway on it."""
    tx.impact.track_networks([network_id])
    tx.impact.track_routers(gateway_routers(tx.conn, network_id))
    yield
    tx.impact.network_changed(network_id)
    for router_id in gateway_routers(tx.conn, network_id):
        tx.impact.router_changed(router_id)
    tx.impact.subject("subnet", subnet_id)


@contextmanager
def network_change(tx: WriteTx, network_id: str, mtu_written: bool) -> Iterator[None]:
    """Wrap a write to what host views show of a network (name, MTU, external): every host
    touching it sees it; when the MTU is written, every host of a router on it too."""
    tx.impact.track_networks([network_id])
    attached = routers_on_networks(tx.conn, [network_id])[network_id]
    tx.impact.track_routers(attached)
    yield
    tx.impact.network_changed(network_id)
    if mtu_written:
        for router_id in attached:
            tx.impact.router_changed(router_id)
    tx.impact.subject("network", network_id)


# -- routers and floating IPs ----------------------------------------------------------------
@contextmanager
def router_change(
    tx: WriteTx,
    router_id: str,
    networks: Iterable[str] = (),
    seen: bool = True,
    subject: bool = True,
) -> Iterator[None]:
    """Wrap a write to a router.  ``networks``: networks the write adds to or removes from
    the router's (interface, gateway).  ``seen``: every host of the router, before or after,
    sees the write (False: only hosts that start or stop hosting it).  ``subject`` False:
    the router is not named (the enclosing write names it)."""
    tx.impact.track_routers([router_id])
    tx.impact.track_networks(networks)
    yield
    if seen:
        tx.impact.router_changed(router_id)
    if subject:
        tx.impact.subject("router", router_id)


@contextmanager
def floatingip_change(
    tx: WriteTx, fip_id: str, router_id: str, network_id: str, host: str
) -> Iterator[None]:
    """Wrap mapping a floating IP (of ``router_id``, on external network ``network_id``) to a
    port bound to ``host``, or unmapping it: only ``host`` sees it, if it hosts the router."""
    tx.impact.track_routers([router_id])
    tx.impact.track_networks([network_id])
    yield
    tx.impact.router_host_changed(router_id, host)
    if not tx.conn.execute(select(routers.c.distributed).where(routers.c.id == router_id)
                           ).scalar():
        _central_host_changed(tx, router_id)  # it serves the floating IP, wherever the port
    tx.impact.subject("floatingip", fip_id)


def centralized_fip_routers(conn: Connection, port_id: str) -> set[str]:
    """The centralized routers with a floating IP mapped to this port."""
    query = (
        select(floatingips.c.router_id)
        .join(routers, routers.c.id == floatingips.c.router_id)
        .where(floatingips.c.fixed_port_id == port_id, routers.c.distributed.is_(False))
    )
    return {row[0] for row in conn.execute(query)}


def _central_host_changed(tx: WriteTx, router_id: str) -> None:
    """Only the central host of a centralized router sees its floating IPs."""
    for host in central_hosts(tx.conn, [router_id]).values():
        tx.impact.router_host_changed(router_id, host)


# -- security groups and address groups -----------------------------------------------------
@contextmanager
def firewall_change(
    tx: WriteTx,
    kind: str,
    object_id: str,
    groups: Iterable[str] = (),
    remote_groups: Iterable[str] = (),
    address_groups: Iterable[str] = (),
) -> Iterator[None]:
    """Wrap a write to the rules or attributes of ``groups``, or to what ``remote_groups``
    and ``address_groups`` stand for in rules that reference them: the hosts that show any
    of them, before or after the write, see it."""
    seen = {"group_ids": set(groups), "remote_group_ids": set(remote_groups),
            "address_group_ids": set(address_groups)}
    before = hosts_seeing(tx.conn, **seen)
    yield
    # a group in use is never deleted: no port's groups, no host's own rows, change here
    tx.impact.hosts_told(*before, *hosts_seeing(tx.conn, **seen))
    tx.impact.subject(kind, object_id)


# -- hosts -----------------------------------------------------------------------------------
@contextmanager
def host_registration_change(tx: WriteTx, host: str) -> Iterator[None]:
    """Wrap a write to a host's registration (registered, agent mode or tunnel IP changed,
    gone): the host sees it, and so does every host on a tunnel network it touches (a tunnel
    endpoint appeared, moved or left)."""
    touched = networks_touched_by(tx.conn, host)
    tx.impact.track_networks(touched)
    yield
    tx.impact.host_changed(host)
    for network_id in touched:
        tx.impact.network_endpoints_changed(network_id)
    tx.impact.subject("agent", host)


def networks_touched_by(conn: Connection, host: str) -> set[str]:
    """Networks with a port bound to the host, or an interface of a router it hosts."""
    return bound_port_networks(conn, host) | router_networks(conn, routers_hosted_on(conn, host))

"""Who a port write affects: the port's state before and after, and ``port_change``, the
context manager every port write runs inside.

``with port_change(tx, before, after):`` snapshots the networks and routers the change may
affect on entry (before the write), and on a normal exit (after the write) declares what
changed: the hosts of the port, the L2 entries of its networks, the ARP entries of the
routers on its subnets.  The write cannot come before the snapshot or after the
declaration, because it is the body of the ``with``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection

from dvr.model.hostview import OWNER_ROUTER_INTERFACE, OWNER_ROUTER_INTERFACE_DISTRIBUTED
from dvr.server.services.queries import get_port, port_ips
from dvr.server.services.scheduler import routers_on_subnets
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
    )


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
    before_arp = before.arp_entries() if before else frozenset()
    after_arp = after.arp_entries() if after else frozenset()
    if before_arp != after_arp:
        subnet_ids = {s for s, _, _ in before_arp | after_arp}
        for router_id in routers_on_subnets(tx.conn, subnet_ids):
            tx.impact.router_changed(router_id)
    port_id = (after or before).id  # type: ignore[union-attr]
    tx.impact.subject("port", port_id)

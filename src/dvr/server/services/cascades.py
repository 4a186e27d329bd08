"""What a delete (or a port's move) takes with it, in one place, top to bottom.

- ``delete_network``: its DHCP ports (``delete_port``), then its subnets
  (``delete_subnet``), then the network.  Any other port on it refuses (NetworkInUse).
- ``delete_subnet``: the addresses DHCP ports hold on it (``update_port``), then the
  subnet.  Any other port with an address on it refuses (SubnetInUse).
- ``delete_floatingip``: its mapping (``disassociate_floatingip``), the floating IP, then
  its own port (``delete_port``).
- ``delete_port``: its floating IPs are disassociated (``disassociate_floatingip``), then
  the port goes.
- ``update_port``: the port; when it moved to another host, the FIP agent gateway ports of
  its floating IPs follow it (created on the new host, deleted from the old one).
- ``router_fip_gateways_follow``: a router changed between distributed and centralized:
  the FIP agent gateway ports its floating IPs need are created, the unneeded deleted.
- ``disassociate_floatingip``: the mapping goes; so does the host's FIP agent gateway port
  if no floating IP needs it any more (``delete_port``: the one recursion here; it ends at
  the gateway port, which has no floating IP of its own).

Each write keeps its own change bookkeeping (the context managers of ``changes``); this
module only decides what goes with what, and in which order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from dvr.db.tables import floatingips, ip_allocations, networks, ports, routers, subnets
from dvr.server.errors import conflict
from dvr.server.services import ports as port_service
from dvr.server.services.changes import floatingip_change, load_state, subnets_change
from dvr.server.services.common import bump
from dvr.server.services.fip_gateways import ensure_fip_agent_gateway, unused_fip_agent_gateways
from dvr.server.services.queries import (
    get_floatingip,
    get_network,
    get_port,
    get_subnet,
    subnet_ids_by_network,
)
from dvr.server.tx import WriteTx

AUTO_DELETE_OWNERS = ("network:dhcp",)  # ports that go with their network, and addresses
# that go with their subnet


# -- networks and subnets --------------------------------------------------------------------
def delete_network(tx: WriteTx, network_id: str) -> None:
    get_network(tx.conn, network_id)
    rows = list(
        tx.conn.execute(
            select(ports.c.id, ports.c.device_owner).where(ports.c.network_id == network_id)
        )
    )
    blocking = sorted(r.id for r in rows if r.device_owner not in AUTO_DELETE_OWNERS)
    if blocking:
        raise conflict(
            "NetworkInUse",
            f"Unable to complete operation on network {network_id}. There are one or more "
            f"ports still in use on the network, id for these ports is: {', '.join(blocking)}.",
        )
    for row in rows:
        delete_port(tx, row.id, internal=True)
    for subnet_id in subnet_ids_by_network(tx.conn, [network_id]).get(network_id, []):
        delete_subnet(tx, subnet_id)
    tx.conn.execute(delete(networks).where(networks.c.id == network_id))


def delete_subnet(tx: WriteTx, subnet_id: str) -> None:
    row = get_subnet(tx.conn, subnet_id)
    users = list(
        tx.conn.execute(
            select(ports.c.id, ports.c.device_owner)
            .select_from(ip_allocations.join(ports, ports.c.id == ip_allocations.c.port_id))
            .where(ip_allocations.c.subnet_id == subnet_id)
        )
    )
    if any(u.device_owner not in AUTO_DELETE_OWNERS for u in users):
        raise conflict(
            "SubnetInUse",
            f"Unable to complete operation on subnet {subnet_id}: One or more ports have an IP "
            "allocation from this subnet.",
        )
    for user in users:
        _remove_subnet_addresses(tx, user.id, subnet_id)
    with subnets_change(tx, row.network_id, subnet_id):
        tx.conn.execute(delete(subnets).where(subnets.c.id == subnet_id))
        bump(tx.conn, networks, row.network_id, tx.now)


def _remove_subnet_addresses(tx: WriteTx, port_id: str, subnet_id: str) -> None:
    before = load_state(tx.conn, port_id)
    keep = [{"subnet_id": s, "ip_address": ip} for s, ip in before.ips if s != subnet_id]
    update_port(tx, port_id, {"fixed_ips": keep}, internal=True)


# -- floating IPs ----------------------------------------------------------------------------
def delete_floatingip(tx: WriteTx, fip_id: str) -> None:
    fip = get_floatingip(tx.conn, fip_id)
    disassociate_floatingip(tx, fip_id)
    tx.conn.execute(delete(floatingips).where(floatingips.c.id == fip_id))
    delete_port(tx, fip.floating_port_id, internal=True)
    tx.impact.subject("floatingip", fip_id)


# -- ports -----------------------------------------------------------------------------------
def delete_port(tx: WriteTx, port_id: str, internal: bool = False) -> None:
    port_service.check_deletable(get_port(tx.conn, port_id), internal)
    query = select(floatingips.c.id).where(floatingips.c.fixed_port_id == port_id)
    for (fip_id,) in list(tx.conn.execute(query)):
        disassociate_floatingip(tx, fip_id)
    port_service.delete_row(tx, port_id)


def update_port(tx: WriteTx, port_id: str, body: dict[str, Any], internal: bool = False) -> None:
    before, after = port_service.update_row(tx, port_id, body, internal)
    if after.host != before.host:
        _fip_gateways_follow(tx, port_id, before.host, after.host)


def _fip_gateways_follow(tx: WriteTx, port_id: str, old_host: str, new_host: str) -> None:
    """A port with floating IPs of distributed routers changed host: so do their gateways."""
    query = (
        select(floatingips.c.floating_network_id, routers.c.distributed)
        .select_from(floatingips.join(routers, routers.c.id == floatingips.c.router_id))
        .where(floatingips.c.fixed_port_id == port_id)
    )
    for network_id, distributed in list(tx.conn.execute(query)):
        if distributed:
            ensure_fip_agent_gateway(tx, network_id, new_host)
            _drop_unused_fip_gateways(tx, network_id, old_host)


def router_fip_gateways_follow(tx: WriteTx, router_id: str) -> None:
    """After a router's ``distributed`` flag changed: a distributed router's floating IPs
    need their ports' hosts' gateway ports; a centralized router's need none."""
    query = (
        select(floatingips.c.floating_network_id, ports.c.host, routers.c.distributed)
        .select_from(
            floatingips.join(ports, ports.c.id == floatingips.c.fixed_port_id).join(
                routers, routers.c.id == floatingips.c.router_id
            )
        )
        .where(floatingips.c.router_id == router_id)
    )
    for network_id, host, distributed in list(tx.conn.execute(query)):
        if distributed:
            ensure_fip_agent_gateway(tx, network_id, host)
        else:
            _drop_unused_fip_gateways(tx, network_id, host)


def disassociate_floatingip(tx: WriteTx, fip_id: str) -> None:
    fip = get_floatingip(tx.conn, fip_id)
    if fip.fixed_port_id is None:
        return
    query = select(ports.c.host).where(ports.c.id == fip.fixed_port_id)
    host = tx.conn.execute(query).scalar() or ""
    with floatingip_change(tx, fip_id, fip.router_id, fip.floating_network_id, host):
        bump(
            tx.conn,
            floatingips,
            fip_id,
            tx.now,
            fixed_port_id=None,
            fixed_ip_address=None,
            router_id=None,
            status="DOWN",
        )
        _drop_unused_fip_gateways(tx, fip.floating_network_id, host)


def _drop_unused_fip_gateways(tx: WriteTx, network_id: str, host: str) -> None:
    for port_id in unused_fip_agent_gateways(tx.conn, network_id, host):
        delete_port(tx, port_id, internal=True)

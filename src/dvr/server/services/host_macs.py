"""Per-host DVR MACs (DVR.md §2, §4): allocate-or-return, unique by DB constraint."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from dvr.db.tables import dvr_host_macs, dvr_hosts
from dvr.server.errors import NeutronError, NotFoundError
from dvr.server.services.hosts import all_hosts
from dvr.server.services.macs import random_mac
from dvr.server.tx import ReadTx, WriteTx

HOST_MAC_TRIES = 16


def host_mac(tx: WriteTx, host: str) -> str | None:
    query = select(dvr_host_macs.c.mac_address).where(dvr_host_macs.c.host == host)
    return tx.conn.execute(query).scalar()


def registered_host_mac(tx: ReadTx, host: str) -> str | None:
    """The MAC of ``host`` if it is registered and has one (None: ask
    ``allocate_or_return``): what an agent's every start asks, answered without a write."""
    query = (
        select(dvr_host_macs.c.mac_address)
        .join(dvr_hosts, dvr_hosts.c.host == dvr_host_macs.c.host)
        .where(dvr_host_macs.c.host == host)
    )
    return tx.conn.execute(query).scalar()


def allocate_or_return(tx: WriteTx, host: str) -> str:
    """The host's MAC; the first allocation notifies every host (all peers' views change).
    Only a registered host gets one (invented hosts cannot drain the pool)."""
    registered = select(dvr_hosts.c.host).where(dvr_hosts.c.host == host)
    if tx.conn.execute(registered).first() is None:
        raise NotFoundError(
            f"Host {host} is not registered: register its agent first (POST /dvr/v1/agents).",
            type_name="HostNotFound",
        )
    existing = host_mac(tx, host)
    if existing is not None:
        return existing
    for _ in range(HOST_MAC_TRIES):
        mac = random_mac(tx.config.host_mac_base, tx.rng)
        try:
            with tx.conn.begin_nested():
                tx.conn.execute(insert(dvr_host_macs).values(host=host, mac_address=mac))
        except IntegrityError:
            continue  # collision with another host's MAC: draw again
        tx.impact.host_changed(host)
        tx.impact.host_macs_changed(*all_hosts(tx.conn))
        tx.impact.subject("hostmac", host)
        return mac
    raise NeutronError(
        f"Unable to generate unique DVR MAC for host {host}.",
        type_name="MacAddressGenerationFailure",
        status=503,
    )

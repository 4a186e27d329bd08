"""Network segments: VXLAN VNIs from the configured range; flat/vlan on physical networks."""

from __future__ import annotations

import random

from sqlalchemy import Connection, insert, select

from dvr.db.tables import segment_allocations
from dvr.server.errors import NeutronError, conflict, invalid_input

NETWORK_TYPES = ("vxlan", "flat", "vlan")
ENUMERATE_LIMIT = 1 << 17
RANDOM_TRIES = 256


def _taken(conn: Connection, network_type: str, physnet: str, segmentation_id: int) -> bool:
    query = select(segment_allocations.c.network_id).where(
        segment_allocations.c.network_type == network_type,
        segment_allocations.c.physical_network == physnet,
        segment_allocations.c.segmentation_id == segmentation_id,
    )
    return conn.execute(query).first() is not None


def pick_vni(conn: Connection, vni_range: tuple[int, int], rng: random.Random) -> int:
    first, last = vni_range
    used_query = select(segment_allocations.c.segmentation_id).where(
        segment_allocations.c.network_type == "vxlan",
        segment_allocations.c.segmentation_id.between(first, last),
    )
    used = {row[0] for row in conn.execute(used_query)}
    if last - first + 1 <= ENUMERATE_LIMIT:
        free = [v for v in range(first, last + 1) if v not in used]
        if free:
            return rng.choice(free)
    else:
        for _ in range(RANDOM_TRIES):
            candidate = rng.randint(first, last)
            if candidate not in used:
                return candidate
    raise NeutronError(
        "Unable to create the network. No tenant network is available for allocation.",
        type_name="NoNetworkAvailable",
        status=503,
    )


def validate_segment(
    network_type: str, physical_network: str | None, segmentation_id: int | None
) -> None:
    if network_type not in NETWORK_TYPES:
        raise invalid_input(f"network_type value '{network_type}' not supported")
    if network_type == "vxlan":
        if physical_network:
            raise invalid_input("provider:physical_network specified for vxlan network")
        if segmentation_id is not None and not 1 <= segmentation_id < 2**24:
            raise invalid_input(f"segmentation_id {segmentation_id} out of range (1..16777215)")
    if network_type in ("flat", "vlan") and not physical_network:
        raise invalid_input(f"physical_network required for {network_type} provider network")
    if network_type == "flat" and segmentation_id is not None:
        raise invalid_input("segmentation_id specified for flat network")
    if network_type == "vlan" and (segmentation_id is None or not 1 <= segmentation_id <= 4094):
        raise invalid_input("segmentation_id out of range (1 through 4094)")


def allocate_segment(
    conn: Connection,
    network_id: str,
    network_type: str,
    physical_network: str | None,
    segmentation_id: int | None,
    vni_range: tuple[int, int],
    rng: random.Random,
) -> int | None:
    """Reserve the segment for ``network_id``; returns the segmentation id."""
    validate_segment(network_type, physical_network, segmentation_id)
    physnet = physical_network or ""
    if network_type == "vxlan" and segmentation_id is None:
        segmentation_id = pick_vni(conn, vni_range, rng)
    key = segmentation_id if segmentation_id is not None else 0
    if _taken(conn, network_type, physnet, key):
        if network_type == "flat":
            raise conflict(
                "FlatNetworkInUse",
                f"Unable to create the flat network. Physical network {physnet} is in use.",
            )
        kind, what = (
            ("TunnelIdInUse", "Tunnel id")
            if network_type == "vxlan"
            else (
                "VlanIdInUse",
                "VLAN",
            )
        )
        raise conflict(
            kind,
            f"Unable to create the network. The {what} {segmentation_id} "
            + (f"on physical network {physnet} " if physnet else "")
            + "is in use.",
        )
    conn.execute(
        insert(segment_allocations).values(
            network_type=network_type,
            physical_network=physnet,
            segmentation_id=key,
            network_id=network_id,
        )
    )
    return segmentation_id

"""MAC address generation under a base (Neutron's ``base_mac`` rule).

The first three octets of the base are kept; the fourth too when it is not zero; the rest
is random.  ``fa:16:3e:00:00:00`` -> ``fa:16:3e:xx:xx:xx``.
"""

from __future__ import annotations

import random

from sqlalchemy import Connection, select

from dvr.db.tables import ports
from dvr.server.errors import NeutronError
from dvr.server.validate import to_mac

MAC_TRIES = 16


def random_mac(base: str, rng: random.Random) -> str:
    octets = to_mac(base).split(":")
    fixed = 4 if octets[3] != "00" else 3
    tail = [f"{rng.randrange(256):02x}" for _ in range(6 - fixed)]
    return ":".join(octets[:fixed] + tail)


def mac_in_use(conn: Connection, network_id: str, mac: str) -> bool:
    query = select(ports.c.id).where(ports.c.network_id == network_id, ports.c.mac_address == mac)
    return conn.execute(query).first() is not None


def allocate_port_mac(conn: Connection, network_id: str, base: str, rng: random.Random) -> str:
    for _ in range(MAC_TRIES):
        mac = random_mac(base, rng)
        if not mac_in_use(conn, network_id, mac):
            return mac
    raise NeutronError(
        f"Unable to generate unique mac on network {network_id}.",
        type_name="MacAddressGenerationFailure",
        status=503,
    )

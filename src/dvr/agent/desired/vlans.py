"""Local VLAN allocation: one host-local VLAN id per network, stable across restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MIN_LOCAL_VLAN = 1
MAX_LOCAL_VLAN = 4094
DEAD_VLAN = 4095  # Neutron's tag for ports that must not forward (admin down, unknown network)


class LocalVlanExhausted(Exception):
    """More networks on this host than local VLAN ids (1..4094)."""


def allocate_local_vlans(
    network_ids: Iterable[str], previous: Mapping[str, int]
) -> dict[str, int]:
    """Give every network a local VLAN.

    Networks keep their previous VLAN when it is valid (1..4094) and not claimed by another
    network (the lowest network id wins a duplicate); every other network, in network id
    order, gets the lowest free VLAN.  Networks not in ``network_ids`` release theirs.
    Raises ``LocalVlanExhausted`` when there are more networks than VLAN ids.
    """
    wanted = sorted(set(network_ids))
    if len(wanted) > MAX_LOCAL_VLAN - MIN_LOCAL_VLAN + 1:
        raise LocalVlanExhausted(
            f"{len(wanted)} networks need a local VLAN, only "
            f"{MAX_LOCAL_VLAN - MIN_LOCAL_VLAN + 1} exist"
        )
    allocation: dict[str, int] = {}
    used: set[int] = set()
    for network_id in wanted:
        vlan = previous.get(network_id)
        if isinstance(vlan, int) and MIN_LOCAL_VLAN <= vlan <= MAX_LOCAL_VLAN and vlan not in used:
            allocation[network_id] = vlan
            used.add(vlan)
    candidate = MIN_LOCAL_VLAN
    for network_id in wanted:
        if network_id in allocation:
            continue
        while candidate in used:
            candidate += 1
        allocation[network_id] = candidate
        used.add(candidate)
    return allocation

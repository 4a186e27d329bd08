"""Mapped bridges (``br-ex``): how flat/VLAN networks reach br-int, as Neutron's OVS agent
does it (``bridge_mappings``).

Per mapping ``physnet:br-ex``: patch ports ``int-br-ex`` (on br-int) and ``phy-br-ex`` (on
br-ex); br-ex is ``secure`` with NORMAL at priority 0 and drops what comes from br-int
unless a network claims its local VLAN.  Per network on that physical network: on br-ex,
frames from ``phy-br-ex`` with the network's local VLAN lose it (flat) or get the segment's
VLAN (vlan); on br-int, frames from ``int-br-ex`` untagged (flat) or with the segment's VLAN
get the local VLAN and go on to NORMAL.  The bridge's other ports (the uplink) are not the
agent's: it leaves them alone.
"""

from __future__ import annotations

from dvr.agent.desired import names
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.openflow import (
    DROP_ONLY,
    MATCH_ALL,
    NORMAL,
    STRIP_VLAN,
    Action,
    Match,
    ModVlanVid,
    Resubmit,
)
from dvr.agent.desired.state import Flow, OvsPort
from dvr.agent.desired.tables import PRIO_DEFAULT, IntTable
from dvr.model.hostview import NetworkView

PROVIDER_NETWORK_TYPES = frozenset({"flat", "vlan"})
PRIO_PHYS_DROP = 2  # frames from the other bridge that no network claims
PRIO_PHYS_TRANSLATE = 4  # a network's VLAN translation (above the drop)
VLAN_PRESENT_MASK = 0x1FFF  # vlan_tci=0x0000/0x1fff: untagged


def mapped_bridges(config: DesiredConfig) -> tuple[str, ...]:
    return tuple(sorted({bridge for _, bridge in config.bridge_mappings}))


def mapped_bridge_ports(config: DesiredConfig, bridge: str) -> tuple[OvsPort, OvsPort]:
    """(the patch port on br-int, its peer on ``bridge``)."""
    int_side = names.int_to_phys_patch_name(bridge)
    phys_side = names.phys_to_int_patch_name(bridge)
    return (
        OvsPort(name=int_side, type="patch", options=(("peer", phys_side),)),
        OvsPort(name=phys_side, type="patch", options=(("peer", int_side),)),
    )


def mapped_bridge_base_flows(config: DesiredConfig, bridge: str) -> dict[str, tuple[Flow, ...]]:
    """bridge name -> base flows: NORMAL on ``bridge``, drops of unclaimed patch traffic."""
    owner = names.bridge_owner(bridge)
    return {
        bridge: (
            Flow(0, PRIO_DEFAULT, MATCH_ALL, (NORMAL,), owner),
            Flow(0, PRIO_PHYS_DROP, Match(in_port=names.phys_to_int_patch_name(bridge)),
                 DROP_ONLY, owner),
        ),
        config.integration_bridge: (
            Flow(IntTable.LOCAL_SWITCHING, PRIO_PHYS_DROP,
                 Match(in_port=names.int_to_phys_patch_name(bridge)), DROP_ONLY, owner),
        ),
    }


def is_provider_network(network: NetworkView, config: DesiredConfig) -> bool:
    return (network.network_type in PROVIDER_NETWORK_TYPES
            and config.bridge_for(network.physical_network) is not None
            and (network.network_type == "flat" or network.segmentation_id is not None))


def provider_network_flows(
    network: NetworkView, local_vlan: int, config: DesiredConfig
) -> dict[str, tuple[Flow, ...]]:
    """bridge name -> the network's VLAN translation flows (empty if it is not mapped)."""
    if not is_provider_network(network, config):
        return {}
    bridge = config.bridge_for(network.physical_network)
    assert bridge is not None
    owner = names.network_owner(network.id)
    flat = network.network_type == "flat"
    outbound: tuple[Action, ...] = (
        (STRIP_VLAN, NORMAL) if flat else (ModVlanVid(network.segmentation_id or 0), NORMAL))
    inbound_match = (
        Match(in_port=names.int_to_phys_patch_name(bridge), vlan_tci=0,
              vlan_tci_mask=VLAN_PRESENT_MASK)
        if flat else Match(in_port=names.int_to_phys_patch_name(bridge),
                           dl_vlan=network.segmentation_id))
    return {
        bridge: (
            Flow(0, PRIO_PHYS_TRANSLATE,
                 Match(in_port=names.phys_to_int_patch_name(bridge), dl_vlan=local_vlan),
                 outbound, owner),
        ),
        config.integration_bridge: (
            Flow(IntTable.LOCAL_SWITCHING, PRIO_PHYS_TRANSLATE - 1, inbound_match,
                 (ModVlanVid(local_vlan), Resubmit(IntTable.TRANSIENT)), owner),
        ),
    }

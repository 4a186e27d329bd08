"""br-int: ports and flow families (Neutron's tables, DVR.md §5-§6)."""

from __future__ import annotations

from dvr.agent.desired import names
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.state import Flow, OvsPort
from dvr.agent.desired.tables import (
    PRIO_DEFAULT,
    PRIO_INT_DVR_TO_SRC_MAC,
    PRIO_INT_HOST_MAC,
    PRIO_INT_NORMAL,
    IntTable,
)


def _resubmit(table: int) -> str:
    return f"resubmit(,{table})"


def integration_bridge_patch_port(config: DesiredConfig) -> OvsPort:
    return OvsPort(
        name=config.int_peer_patch_port,
        type="patch",
        options=(("peer", config.tun_peer_patch_port),),
    )


def vif_port(ovs_port_name: str, local_vlan: int) -> OvsPort:
    """A plugged VIF: the agent does not own the port, it only sets its local VLAN tag."""
    return OvsPort(name=ovs_port_name, tag=local_vlan, managed=False)


def router_interface_bridge_port(
    ovs_port_name: str, local_vlan: int, external_ids: tuple[tuple[str, str], ...]
) -> OvsPort:
    """The br-int end of a router interface veth (created and deleted by the agent)."""
    return OvsPort(name=ovs_port_name, tag=local_vlan, external_ids=external_ids)


def integration_bridge_base_flows(config: DesiredConfig) -> tuple[Flow, ...]:
    """Table skeleton: everything not claimed by DVR ends in NORMAL (owner bridge)."""
    owner = names.bridge_owner(config.integration_bridge)
    return (
        Flow(IntTable.LOCAL_SWITCHING, PRIO_DEFAULT, "", _resubmit(IntTable.TRANSIENT), owner),
        Flow(IntTable.DVR_TO_SRC_MAC, PRIO_DEFAULT, "", _resubmit(IntTable.TRANSIENT), owner),
        Flow(IntTable.TRANSIENT, PRIO_INT_NORMAL, "", "NORMAL", owner),
    )


def host_mac_integration_flows(host: str, mac: str, config: DesiredConfig) -> tuple[Flow, ...]:
    """Table 0: a frame from br-tun with another host's MAC as source was routed there."""
    patch = names.ofctl_port(config.int_peer_patch_port)
    return (
        Flow(IntTable.LOCAL_SWITCHING, PRIO_INT_HOST_MAC, f"in_port={patch},dl_src={mac}",
             _resubmit(IntTable.DVR_TO_SRC_MAC), names.host_mac_owner(host)),
    )


def dvr_local_port_flows(
    port_id: str, port_mac: str, local_vlan: int, gateway_mac: str, ovs_port_name: str
) -> tuple[Flow, ...]:
    """Table 1: a routed frame for a local VM gets the gateway MAC back as source."""
    return (
        Flow(IntTable.DVR_TO_SRC_MAC, PRIO_INT_DVR_TO_SRC_MAC,
             f"dl_vlan={local_vlan},dl_dst={port_mac}",
             f"strip_vlan,mod_dl_src:{gateway_mac},output:{names.ofctl_port(ovs_port_name)}",
             names.port_owner(port_id)),
    )

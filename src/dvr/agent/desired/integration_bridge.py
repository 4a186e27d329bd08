"""br-int: ports and flow families (Neutron's tables, DVR.md §5-§6)."""

from __future__ import annotations

from dvr.agent.desired import firewall, names
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.openflow import (
    MATCH_ALL,
    NORMAL,
    STRIP_VLAN,
    ModDlSrc,
    Output,
    Resubmit,
    match_builder,
)
from dvr.agent.desired.state import Flow, OvsPort
from dvr.agent.desired.tables import (
    PRIO_DEFAULT,
    PRIO_INT_DVR_TO_SRC_MAC,
    PRIO_INT_HOST_MAC,
    PRIO_INT_NORMAL,
    IntTable,
)

# actions shared by every flow that uses them (immutable; built once)
TO_DVR_TO_SRC_MAC = (Resubmit(IntTable.DVR_TO_SRC_MAC),)

# the match shapes built per host and local port (positional, see match_builder)
MATCH_IN_PORT_SRC = match_builder("in_port", "dl_src")
MATCH_VLAN_DST = match_builder("dl_vlan", "dl_dst")


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
    """Table skeleton: everything not claimed by DVR or the firewall ends in NORMAL (owner
    bridge); the firewall tables drop what they do not claim."""
    owner = names.bridge_owner(config.integration_bridge)
    return (
        Flow(IntTable.LOCAL_SWITCHING, PRIO_DEFAULT, MATCH_ALL,
             (Resubmit(IntTable.TRANSIENT),), owner),
        Flow(IntTable.DVR_TO_SRC_MAC, PRIO_DEFAULT, MATCH_ALL,
             (Resubmit(IntTable.TRANSIENT),), owner),
        Flow(IntTable.TRANSIENT, PRIO_INT_NORMAL, MATCH_ALL, (NORMAL,), owner),
        *firewall.firewall_base_flows(config.integration_bridge),
    )


def host_mac_integration_flows(host: str, mac: str, config: DesiredConfig) -> tuple[Flow, ...]:
    """Table 0: a frame from br-tun with another host's MAC as source was routed there."""
    return (
        Flow(IntTable.LOCAL_SWITCHING, PRIO_INT_HOST_MAC,
             MATCH_IN_PORT_SRC(config.int_peer_patch_port, mac),
             TO_DVR_TO_SRC_MAC, names.host_mac_owner(host)),
    )


def dvr_local_port_flows(
    port_id: str, port_mac: str, local_vlan: int, gateway_mac: str, ovs_port_name: str,
    firewalled: bool = False,
) -> tuple[Flow, ...]:
    """Table 1: a routed frame for a local VM gets the gateway MAC back as source; it goes
    to the VM's port, through the port's ingress firewall when it has one."""
    actions = (
        firewall.dvr_ingress_actions(local_vlan, (ModDlSrc(gateway_mac),)) if firewalled
        else (STRIP_VLAN, ModDlSrc(gateway_mac), Output(ovs_port_name)))
    return (
        Flow(IntTable.DVR_TO_SRC_MAC, PRIO_INT_DVR_TO_SRC_MAC,
             MATCH_VLAN_DST(local_vlan, port_mac), actions, names.port_owner(port_id)),
    )

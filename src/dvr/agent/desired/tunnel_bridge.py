"""br-tun: ports and flow families (Neutron's tables, DVR.md §5-§6).

Each function returns the flows of one family for one owner object, so a family can be
tested alone and an object's removal removes exactly its flows.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from dvr.agent.desired import names
from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.openflow import (
    DROP_ONLY,
    MATCH_ALL,
    STRIP_VLAN,
    Action,
    Match,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
    match_builder,
)
from dvr.agent.desired.state import Flow, OvsPort
from dvr.agent.desired.tables import (
    GROUP_BIT_MASK,
    MULTICAST_DST,
    PRIO_DEFAULT,
    PRIO_TUN_CLASSIFY,
    PRIO_TUN_DVR_DROP_GATEWAY_ARP,
    PRIO_TUN_DVR_DROP_TO_GATEWAY_MAC,
    PRIO_TUN_DVR_REWRITE_SOURCE,
    PRIO_TUN_FLOOD,
    PRIO_TUN_HOST_MAC,
    PRIO_TUN_L2POP_UNICAST,
    PRIO_TUN_LEARN,
    PRIO_TUN_TUNNEL_TO_LOCAL_VLAN,
    PRIO_TUN_UNICAST_MULTICAST_SPLIT,
    UNICAST_DST,
    TunTable,
)
from dvr.agent.desired.vlans import DEAD_VLAN
from dvr.model.hostview import NetworkView, RemoteHost, RouterInterfaceView

TUNNEL_NETWORK_TYPES = frozenset({"vxlan"})

# action values shared by every flow that uses them (immutable; built once)
TO_VXLAN_TUN_TO_LV = (Resubmit(TunTable.VXLAN_TUN_TO_LV),)
TO_DVR_NOT_LEARN = Resubmit(TunTable.DVR_NOT_LEARN)
TO_PATCH_LV_TO_TUN = Resubmit(TunTable.PATCH_LV_TO_TUN)

# the match shapes built per remote MAC, host and tunnel (positional, see match_builder)
MATCH_IN_PORT = match_builder("in_port")
MATCH_TUN_ID = match_builder("tun_id")
MATCH_DL_SRC = match_builder("dl_src")
MATCH_VLAN = match_builder("dl_vlan")
MATCH_VLAN_DST = match_builder("dl_vlan", "dl_dst")
MATCH_VLAN_SRC = match_builder("dl_vlan", "dl_src")


@lru_cache(maxsize=16)
def output_only(port: str) -> tuple[Action, ...]:
    """``(Output(port),)``, one tuple per port name for all the flows that use it."""
    return (Output(port),)


@lru_cache(maxsize=names.VXLAN_PORT_NAMES_CACHED)
def output_to_tunnel(port: str) -> Output:
    """``Output(port)`` of a vxlan port, one value for all the flows that use it."""
    return Output(port)


@lru_cache(maxsize=DEAD_VLAN + 1)
def tag_and_continue(vlan: int) -> tuple[Action, ...]:
    """Table 4: a frame from a tunnel gets its network's local VLAN (one tuple per VLAN)."""
    return (ModVlanVid(vlan), TO_DVR_NOT_LEARN)


@lru_cache(maxsize=16)
def rewrite_source(host_mac: str) -> tuple[Action, ...]:
    """A frame the local router sends leaves with this host's MAC (one tuple per MAC)."""
    return (ModDlSrc(host_mac), TO_PATCH_LV_TO_TUN)


# --- ports --------------------------------------------------------------------------------


def tunnel_bridge_patch_port(config: DesiredConfig) -> OvsPort:
    return OvsPort(
        name=config.tun_peer_patch_port,
        type="patch",
        options=(("peer", config.int_peer_patch_port),),
    )


@lru_cache(maxsize=names.VXLAN_PORT_NAMES_CACHED)
def tunnel_port(remote_ip: str, local_ip: str) -> OvsPort:
    """The vxlan port towards ``remote_ip`` (VNI chosen per packet by the flows).  One value
    per endpoint: every computation builds each of a host's few thousand."""
    return OvsPort(
        name=names.vxlan_port_name(remote_ip),
        type="vxlan",
        options=(
            ("in_key", "flow"),
            ("key", "flow"),
            ("local_ip", local_ip),
            ("out_key", "flow"),
            ("remote_ip", remote_ip),
        ),
    )


def valid_remote_tunnel_ip(remote_ip: str, local_ip: str | None) -> bool:
    """A remote endpoint we can build a tunnel to: an IP of the local IP's family, not ours."""
    if local_ip is None:
        return False
    if names.is_canonical_ipv4(remote_ip) and names.is_canonical_ipv4(local_ip):
        return remote_ip != local_ip
    try:
        remote = ipaddress.ip_address(remote_ip)
        local = ipaddress.ip_address(local_ip)
    except ValueError:
        return False
    return remote.version == local.version and remote != local


@lru_cache(maxsize=names.VXLAN_PORT_NAMES_CACHED)
def tunnel_port_name(remote_ip: str, local_ip: str | None) -> str | None:
    """The vxlan port towards ``remote_ip``; None when it is no endpoint we can tunnel to
    (``valid_remote_tunnel_ip``).  Kept per address: every computation asks for each remote
    host of each network."""
    return names.vxlan_port_name(remote_ip) if valid_remote_tunnel_ip(remote_ip, local_ip) \
        else None


def tunnel_remotes(network: NetworkView, host: str,
                   local_ip: str | None) -> list[tuple[RemoteHost, str]]:
    """The remote hosts of ``network`` this host tunnels to (``valid_remote_tunnel_ip``),
    each with the vxlan port towards it."""
    if local_ip is None or not is_tunnelled(network):
        return []
    found = []
    for remote in network.remote_hosts:
        if remote.host != host:
            port = tunnel_port_name(remote.tunnel_ip, local_ip)
            if port is not None:
                found.append((remote, port))
    return found


def remote_tunnel_ips(network: NetworkView, host: str, local_ip: str | None) -> frozenset[str]:
    """The tunnel endpoints this host needs for ``network`` (flood targets)."""
    return frozenset(remote.tunnel_ip for remote, _ in tunnel_remotes(network, host, local_ip))


def l2pop_macs(network: NetworkView, host: str, local_ip: str | None) -> frozenset[str]:
    """The MACs that table 20 sends straight to a tunnel (``network_tunnel_flows``)."""
    return frozenset(entry.mac_address for remote, _ in tunnel_remotes(network, host, local_ip)
                     for entry in remote.entries)


def is_tunnelled(network: NetworkView) -> bool:
    return network.network_type in TUNNEL_NETWORK_TYPES and network.segmentation_id is not None


# --- flow families ------------------------------------------------------------------------


def tunnel_bridge_base_flows(config: DesiredConfig) -> tuple[Flow, ...]:
    """Table skeleton: classify, defaults and the unicast/multicast split (owner bridge)."""
    owner = names.bridge_owner(config.tunnel_bridge)
    return (
        Flow(TunTable.CLASSIFY, PRIO_TUN_CLASSIFY, Match(in_port=config.tun_peer_patch_port),
             (Resubmit(TunTable.DVR_PROCESS),), owner),
        Flow(TunTable.CLASSIFY, PRIO_DEFAULT, MATCH_ALL, DROP_ONLY, owner),
        Flow(TunTable.DVR_PROCESS, PRIO_DEFAULT, MATCH_ALL,
             (Resubmit(TunTable.PATCH_LV_TO_TUN),), owner),
        Flow(TunTable.PATCH_LV_TO_TUN, PRIO_TUN_UNICAST_MULTICAST_SPLIT,
             Match(dl_dst=UNICAST_DST, dl_dst_mask=GROUP_BIT_MASK),
             (Resubmit(TunTable.UCAST_TO_TUN),), owner),
        Flow(TunTable.PATCH_LV_TO_TUN, PRIO_TUN_UNICAST_MULTICAST_SPLIT,
             Match(dl_dst=MULTICAST_DST, dl_dst_mask=GROUP_BIT_MASK),
             (Resubmit(TunTable.FLOOD_TO_TUN),), owner),
        Flow(TunTable.VXLAN_TUN_TO_LV, PRIO_DEFAULT, MATCH_ALL, DROP_ONLY, owner),
        Flow(TunTable.DVR_NOT_LEARN, PRIO_DEFAULT, MATCH_ALL,
             (Resubmit(TunTable.LEARN_FROM_TUN),), owner),
        # L2 population tells us every MAC, so table 10 does not learn (a learn() action
        # would install flows with cookies the reconciler does not own).
        Flow(TunTable.LEARN_FROM_TUN, PRIO_TUN_LEARN, MATCH_ALL,
             (Output(config.tun_peer_patch_port),), owner),
        Flow(TunTable.UCAST_TO_TUN, PRIO_DEFAULT, MATCH_ALL,
             (Resubmit(TunTable.FLOOD_TO_TUN),), owner),
        Flow(TunTable.FLOOD_TO_TUN, PRIO_DEFAULT, MATCH_ALL, DROP_ONLY, owner),
    )


def tunnel_port_flows(remote_ip: str) -> tuple[Flow, ...]:
    """Table 0: frames arriving from the tunnel towards ``remote_ip`` go to table 4."""
    return (
        Flow(TunTable.CLASSIFY, PRIO_TUN_CLASSIFY,
             MATCH_IN_PORT(names.vxlan_port_name(remote_ip)), TO_VXLAN_TUN_TO_LV,
             names.tunnel_owner(remote_ip)),
    )


def host_mac_tunnel_flows(host: str, mac: str, config: DesiredConfig) -> tuple[Flow, ...]:
    """Table 9: a frame from another host's MAC (routed there) goes to br-int unlearned."""
    return (
        Flow(TunTable.DVR_NOT_LEARN, PRIO_TUN_HOST_MAC, MATCH_DL_SRC(mac),
             output_only(config.tun_peer_patch_port), names.host_mac_owner(host)),
    )


def dvr_subnet_tunnel_flows(
    interface: RouterInterfaceView, local_vlan: int, host_mac: str | None
) -> tuple[Flow, ...]:
    """Table 1 for a subnet whose distributed router interface is on this host.

    The gateway is local on every host, so ARP for the gateway IP (IPv6: neighbour
    solicitations) and frames to the gateway MAC never leave the host; frames the local
    router sends (source = gateway MAC) leave with this host's MAC.  Without a host MAC
    (not allocated yet) such frames are dropped rather than leak the gateway MAC.
    """
    owner = names.subnet_owner(interface.subnet_id)
    if ":" not in interface.ip_address:
        gateway_probe = Match(proto="arp", dl_vlan=local_vlan, arp_tpa=interface.ip_address)
    else:
        gateway_probe = Match(proto="icmp6", dl_vlan=local_vlan, icmp_type=135,
                              nd_target=interface.ip_address)
    rewrite = rewrite_source(host_mac) if host_mac else DROP_ONLY
    return (
        Flow(TunTable.DVR_PROCESS, PRIO_TUN_DVR_DROP_GATEWAY_ARP, gateway_probe, DROP_ONLY, owner),
        Flow(TunTable.DVR_PROCESS, PRIO_TUN_DVR_DROP_TO_GATEWAY_MAC,
             MATCH_VLAN_DST(local_vlan, interface.mac_address), DROP_ONLY, owner),
        Flow(TunTable.DVR_PROCESS, PRIO_TUN_DVR_REWRITE_SOURCE,
             MATCH_VLAN_SRC(local_vlan, interface.mac_address), rewrite, owner),
    )


def network_tunnel_flows(
    network: NetworkView, local_vlan: int, host: str, local_ip: str | None
) -> tuple[Flow, ...]:
    """Tables 4, 20 and 22 for one tunnelled network (owner network).

    Only remote hosts with a valid tunnel endpoint are used, the same rule that decides
    which vxlan ports exist, so every output names a port of the desired bridge.  When two
    remote hosts claim the same MAC the first by host name wins (deterministic).
    """
    if not is_tunnelled(network):
        return ()
    owner = names.network_owner(network.id)
    vni = network.segmentation_id
    assert vni is not None
    to_tunnel: tuple[Action, ...] = (STRIP_VLAN, SetTunnel(vni))
    flows = [
        Flow(TunTable.VXLAN_TUN_TO_LV, PRIO_TUN_TUNNEL_TO_LOCAL_VLAN, MATCH_TUN_ID(vni),
             tag_and_continue(local_vlan), owner),
    ]
    seen_macs: set[str] = set()
    outputs: dict[str, Output] = {}  # port name -> its output action
    for remote, port in tunnel_remotes(network, host, local_ip):
        output = outputs[port] = output_to_tunnel(port)
        unicast = (*to_tunnel, output)  # shared by this remote host's entries
        for entry in remote.entries:
            if entry.mac_address in seen_macs:
                continue
            seen_macs.add(entry.mac_address)
            flows.append(
                Flow(TunTable.UCAST_TO_TUN, PRIO_TUN_L2POP_UNICAST,
                     MATCH_VLAN_DST(local_vlan, entry.mac_address), unicast, owner)
            )
    if outputs:
        flows.append(
            Flow(TunTable.FLOOD_TO_TUN, PRIO_TUN_FLOOD, MATCH_VLAN(local_vlan),
                 (*to_tunnel, *(outputs[p] for p in sorted(outputs))), owner)
        )
    return tuple(flows)

"""OpenFlow table numbers (Neutron's, DVR.md §6) and the priorities we use in them."""

from __future__ import annotations

from typing import Final


class IntTable:
    """br-int tables."""

    LOCAL_SWITCHING: Final = 0
    DVR_TO_SRC_MAC: Final = 1
    DVR_TO_SRC_MAC_VLAN: Final = 2  # VLAN tenant networks: not built (tunnelled networks only)
    TRANSIENT: Final = 60
    FAST_PATH: Final = 65  # east/west routing in OpenFlow (fast_path.py); not Neutron's


# Registers (Neutron's firewall uses reg5-reg7; these stay clear of it)
REG_ROUTE_DOMAIN: Final = 8  # br-int: the distributed router a frame is routed by (table 65)


class TunTable:
    """br-tun tables."""

    CLASSIFY: Final = 0
    DVR_PROCESS: Final = 1
    PATCH_LV_TO_TUN: Final = 2
    GRE_TUN_TO_LV: Final = 3  # not built (VXLAN only)
    VXLAN_TUN_TO_LV: Final = 4
    DVR_NOT_LEARN: Final = 9
    LEARN_FROM_TUN: Final = 10
    UCAST_TO_TUN: Final = 20
    ARP_RESPONDER: Final = 21  # not built (static ARP in the router namespaces makes it optional)
    FLOOD_TO_TUN: Final = 22


# br-int
PRIO_INT_HOST_MAC = 2  # table 0: from br-tun with a known host-MAC source
PRIO_INT_DVR_TO_SRC_MAC = 4  # table 1: local VM port on a DVR subnet
PRIO_INT_NORMAL = 3  # table 60
PRIO_INT_FAST_PATH_ENTRY = 10  # table 60: from a local port to a DVR gateway MAC
PRIO_INT_FAST_PATH_TTL = 30  # table 65: TTL 0/1 goes to the namespace (ICMP time exceeded)
PRIO_INT_FAST_PATH_SAME_SUBNET = 20  # table 65: back into the source subnet: namespace
PRIO_INT_FAST_PATH_ROUTE = 10  # table 65: one known destination of the router
# br-tun
PRIO_TUN_CLASSIFY = 1  # table 0: from patch / from a tunnel port
PRIO_TUN_DVR_DROP_GATEWAY_ARP = 3  # table 1
PRIO_TUN_DVR_DROP_TO_GATEWAY_MAC = 2  # table 1
PRIO_TUN_DVR_REWRITE_SOURCE = 1  # table 1
PRIO_TUN_UNICAST_MULTICAST_SPLIT = 1  # table 2
PRIO_TUN_TUNNEL_TO_LOCAL_VLAN = 1  # table 4
PRIO_TUN_HOST_MAC = 1  # table 9
PRIO_TUN_LEARN = 1  # table 10
PRIO_TUN_L2POP_UNICAST = 2  # table 20
PRIO_TUN_FLOOD = 1  # table 22
PRIO_DEFAULT = 0

# Ethernet destinations (value, mask) of the unicast / multicast split of table 2
GROUP_BIT_MASK = "01:00:00:00:00:00"
UNICAST_DST = "00:00:00:00:00:00"
MULTICAST_DST = "01:00:00:00:00:00"

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
    # the firewall (dvr.agent.desired.firewall; Neutron's openvswitch firewall tables)
    BASE_EGRESS: Final = 71  # anti-spoofing, then conntrack lookup
    RULES_EGRESS: Final = 72  # conntrack state and the egress rules, then commit
    ACCEPT_OR_INGRESS: Final = 73  # accepted egress: back to table 60 (ingress or NORMAL)
    BASE_INGRESS: Final = 81  # always-allowed traffic (ARP, ND, DHCP), conntrack lookup
    RULES_INGRESS: Final = 82  # conntrack state and the ingress rules, commit and output


# Registers (br-int; a frame crossing a patch port arrives with all of them 0)
REG_ZONE: Final = 6  # the firewall's conntrack zone (Match.reg6, LoadZone), as Neutron's
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
PRIO_INT_ACCESS_PORT = 1  # table 0: a frame from an access port gets its VLAN as zone (reg6)
PRIO_FW_FROM_PORT = 5  # table 0: a frame from a firewalled port enters the egress firewall
PRIO_FW_TO_PORT = 90  # table 60: a unicast frame for a firewalled port enters its ingress
# firewall tables 71/72/81/82
PRIO_FW_FORBIDDEN = 100  # frames a VM never sends (DHCP server replies, router advertisements)
PRIO_FW_ALWAYS = 95  # ARP, ND, DHCP client/server exchanges (after anti-spoofing)
PRIO_FW_INVALID = 100  # ct_state +inv
PRIO_FW_CONNTRACK = 90  # anti-spoofed IP to the conntrack lookup; established / related
PRIO_FW_RULE = 70  # one rule (also the conj_id flow of a conjunctive rule)
PRIO_FW_CONJUNCTION = 60  # the clauses of conjunctive (remote group / address group) rules
PRIO_FW_PORT_DROP = 10  # anything else from / to the port
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

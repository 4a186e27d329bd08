"""Naming conventions: device names, OVS port names, namespace names and owner strings.

Every name is a deterministic function of the object it belongs to, so the same router
gets byte-identical devices on every host and an agent restart finds its own objects again.
Linux interface names are at most 15 characters (IFNAMSIZ - 1).

| object                         | name                                  | example              |
|--------------------------------|---------------------------------------|----------------------|
| router namespace               | ``qrouter-<router id>``               | qrouter-6f1c...      |
| router interface (in qrouter)  | ``qr-`` + port_id[:11]                | qr-0a1b2c3d-4e       |
| its veth peer (port on br-int) | ``qrb-`` + port_id[:11]               | qrb-0a1b2c3d-4e      |
| tunnel port (on br-tun)        | ``vxlan-`` + 8 hex digits of the IPv4 | vxlan-c0000202       |
|                                | (IPv6: 8 hex digits of a hash)        |                      |
| SNAT namespace                 | ``snat-<router id>``                  |                      |
| SNAT port (in snat-)           | ``sg-`` + port_id[:11], bridge end    | sg-0a1b2c3d-4e       |
|                                | ``sgb-`` + port_id[:11]               |                      |
| gateway port (snat-/qrouter-)  | ``qg-`` / ``qgb-`` + port_id[:11]     |                      |
| FIP namespace                  | ``fip-<external network id>``         |                      |
| FIP gateway port (in fip-)     | ``fg-`` / ``fgb-`` + port_id[:11]     |                      |
| router <-> fip- veth pair      | ``rfp-`` (qrouter) / ``fpr-`` (fip-)  | rfp-6f1c0a1b-2c      |
|                                | + router_id[:11]                      |                      |
| patch br-int <-> mapped bridge | ``int-<bridge>`` / ``phy-<bridge>``   | int-br-ex            |

Owner strings ("<kind>:<id>") name the object a flow or namespace belongs to; the kind is
one of ``state.OWNER_KIND_CODES``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from functools import lru_cache

IFNAME_MAX = 15

ROUTER_NS_PREFIX = "qrouter-"
SNAT_NS_PREFIX = "snat-"
FIP_NS_PREFIX = "fip-"
ROUTER_INTERFACE_PREFIX = "qr-"
ROUTER_INTERFACE_BRIDGE_PREFIX = "qrb-"
SNAT_PORT_PREFIX = "sg-"
SNAT_PORT_BRIDGE_PREFIX = "sgb-"
GATEWAY_PREFIX = "qg-"
GATEWAY_BRIDGE_PREFIX = "qgb-"
FIP_GATEWAY_PREFIX = "fg-"
FIP_GATEWAY_BRIDGE_PREFIX = "fgb-"
ROUTER_TO_FIP_PREFIX = "rfp-"
FIP_TO_ROUTER_PREFIX = "fpr-"
INT_TO_PHYS_PREFIX = "int-"
PHYS_TO_INT_PREFIX = "phy-"
VXLAN_PORT_PREFIX = "vxlan-"
# ports the agent itself creates on its bridges
AGENT_PORT_PREFIXES = (ROUTER_INTERFACE_BRIDGE_PREFIX, SNAT_PORT_BRIDGE_PREFIX,
                       GATEWAY_BRIDGE_PREFIX, FIP_GATEWAY_BRIDGE_PREFIX, VXLAN_PORT_PREFIX,
                       INT_TO_PHYS_PREFIX, PHYS_TO_INT_PREFIX)

# --- namespaces and devices -------------------------------------------------------------


def router_namespace_name(router_id: str) -> str:
    return f"{ROUTER_NS_PREFIX}{router_id}"


def snat_namespace_name(router_id: str) -> str:
    return f"{SNAT_NS_PREFIX}{router_id}"


def fip_namespace_name(external_network_id: str) -> str:
    return f"{FIP_NS_PREFIX}{external_network_id}"


def router_interface_device_name(port_id: str) -> str:
    """The ``qr-`` device inside ``qrouter-<id>`` (identical on every host)."""
    return f"{ROUTER_INTERFACE_PREFIX}{port_id[:11]}"


def router_interface_bridge_port_name(port_id: str) -> str:
    """The veth peer of the ``qr-`` device, a port on the integration bridge."""
    return f"{ROUTER_INTERFACE_BRIDGE_PREFIX}{port_id[:11]}"


def snat_port_device_name(port_id: str) -> str:
    return f"{SNAT_PORT_PREFIX}{port_id[:11]}"


def snat_port_bridge_port_name(port_id: str) -> str:
    return f"{SNAT_PORT_BRIDGE_PREFIX}{port_id[:11]}"


def gateway_device_name(port_id: str) -> str:
    return f"{GATEWAY_PREFIX}{port_id[:11]}"


def gateway_bridge_port_name(port_id: str) -> str:
    return f"{GATEWAY_BRIDGE_PREFIX}{port_id[:11]}"


def fip_gateway_device_name(port_id: str) -> str:
    return f"{FIP_GATEWAY_PREFIX}{port_id[:11]}"


def fip_gateway_bridge_port_name(port_id: str) -> str:
    return f"{FIP_GATEWAY_BRIDGE_PREFIX}{port_id[:11]}"


def router_to_fip_device_name(router_id: str) -> str:
    return f"{ROUTER_TO_FIP_PREFIX}{router_id[:11]}"


def fip_to_router_device_name(router_id: str) -> str:
    return f"{FIP_TO_ROUTER_PREFIX}{router_id[:11]}"


def int_to_phys_patch_name(bridge: str) -> str:
    """The patch port on br-int towards a mapped bridge (Neutron's ``int-br-ex``)."""
    return f"{INT_TO_PHYS_PREFIX}{bridge}"[:IFNAME_MAX]


def phys_to_int_patch_name(bridge: str) -> str:
    """Its peer on the mapped bridge (Neutron's ``phy-br-ex``)."""
    return f"{PHYS_TO_INT_PREFIX}{bridge}"[:IFNAME_MAX]


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def is_canonical_ipv4(text: str) -> bool:
    """Dotted quad without leading zeros: string equality is then address equality."""
    return _CANONICAL_IPV4.fullmatch(text) is not None


# tunnel port names kept (one per remote endpoint; a host asks for each of its few thousand
# peers' on every computation)
VXLAN_PORT_NAMES_CACHED = 16384


@lru_cache(maxsize=VXLAN_PORT_NAMES_CACHED)
def vxlan_port_name(remote_ip: str) -> str:
    """Tunnel port towards ``remote_ip``: ``vxlan-c0000202`` for 192.0.2.2 (like Neutron)."""
    if is_canonical_ipv4(remote_ip):
        return VXLAN_PORT_PREFIX + bytes(map(int, remote_ip.split("."))).hex()
    address = ipaddress.ip_address(remote_ip)
    if address.version == 4:
        return VXLAN_PORT_PREFIX + address.packed.hex()
    digest = hashlib.blake2b(address.packed, digest_size=4).hexdigest()
    return f"{VXLAN_PORT_PREFIX}{digest}"


def is_agent_port_name(name: str, patch_ports: tuple[str, ...] = ()) -> bool:
    """A bridge port the agent creates itself (never a VIF, whatever its iface-id says)."""
    return name.startswith(AGENT_PORT_PREFIXES) or name in patch_ports


# --- owners -------------------------------------------------------------------------------


def bridge_owner(bridge: str) -> str:
    return f"bridge:{bridge}"


def host_mac_owner(host: str) -> str:
    return f"hostmac:{host}"


def network_owner(network_id: str) -> str:
    return f"network:{network_id}"


def subnet_owner(subnet_id: str) -> str:
    return f"subnet:{subnet_id}"


def port_owner(port_id: str) -> str:
    return f"port:{port_id}"


def router_owner(router_id: str) -> str:
    return f"router:{router_id}"


def tunnel_owner(remote_ip: str) -> str:
    return f"tunnel:{remote_ip}"


def snat_owner(router_id: str) -> str:
    return f"snat:{router_id}"


def fip_owner(external_network_id: str) -> str:
    return f"fip:{external_network_id}"


def firewall_owner(network_id: str) -> str:
    """The firewall clauses that the ports of one network share (``firewall.zone_flows``)."""
    return f"firewall:{network_id}"


FAST_PATH_OWNER_PREFIX = "fastpath:"


def fast_path_owner(router_id: str) -> str:
    """The east/west fast-path flows of one distributed router (``fast_path.py``)."""
    return f"{FAST_PATH_OWNER_PREFIX}{router_id}"

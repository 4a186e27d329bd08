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
| SNAT namespace (next issue)    | ``snat-<router id>``                  |                      |
| FIP namespace (next issue)     | ``fip-<external network id>``         |                      |

Owner strings ("<kind>:<id>") name the object a flow or namespace belongs to; the kind is
one of ``state.OWNER_KIND_CODES``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re

IFNAME_MAX = 15

ROUTER_NS_PREFIX = "qrouter-"
SNAT_NS_PREFIX = "snat-"
FIP_NS_PREFIX = "fip-"
ROUTER_INTERFACE_PREFIX = "qr-"
ROUTER_INTERFACE_BRIDGE_PREFIX = "qrb-"
VXLAN_PORT_PREFIX = "vxlan-"
# ports the agent itself creates on its bridges (the next issue adds sg-/qg-/fg- bridge ends)
AGENT_PORT_PREFIXES = (ROUTER_INTERFACE_BRIDGE_PREFIX, VXLAN_PORT_PREFIX)

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


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}")


def is_canonical_ipv4(text: str) -> bool:
    """Dotted quad without leading zeros: string equality is then address equality."""
    return _CANONICAL_IPV4.fullmatch(text) is not None


def canonical_ipv4_port_name(remote_ip: str) -> str:
    """``vxlan_port_name`` of an address already known to be a canonical dotted quad."""
    return VXLAN_PORT_PREFIX + bytes(map(int, remote_ip.split("."))).hex()


def vxlan_port_name(remote_ip: str) -> str:
    """Tunnel port towards ``remote_ip``: ``vxlan-c0000202`` for 192.0.2.2 (like Neutron)."""
    if is_canonical_ipv4(remote_ip):
        return canonical_ipv4_port_name(remote_ip)
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

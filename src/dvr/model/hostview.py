"""HostView: everything one host needs from the server, as plain frozen data.

This is the contract between the server (which builds it from the database) and the
agent (which turns it into desired dataplane state).  It travels as JSON; ``to_dict`` and
``host_view_from_dict`` are exact inverses.  Nothing here does I/O.

Conventions:
- every tuple is sorted by the object's id (or natural key) so that two views built from
  the same database state compare equal and serialize identically;
- MAC addresses are lower-case ``aa:bb:cc:dd:ee:ff``; IPs are strings as Python's
  ``ipaddress`` prints them; CIDRs are normalized networks (``192.0.2.0/24``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

AGENT_MODES = ("dvr", "dvr_snat", "legacy")
# how an agent routes east/west traffic between subnets of one distributed router (its
# local setting, reported in heartbeats): "openflow" in br-int (the namespace keeps what the
# switch cannot do) or "namespace" (every routed packet through qrouter-: the reference,
# and a fallback)
EAST_WEST_MODES = ("openflow", "namespace")
DEFAULT_EAST_WEST = "openflow"
# where an agent keeps br-tun's tables (its local setting, reported in heartbeats): on a
# bridge of their own (Neutron's layout) or "folded" into br-int at an offset (one bridge
# fewer, as OVN lays out its tunnels; ``dvr.agent.desired.folding``)
TUNNEL_LAYOUTS = ("bridge", "folded")
DEFAULT_TUNNEL_LAYOUT = "bridge"
# the local settings of an agent that shape its host's dataplane and that it reports, so
# that the server can rebuild the host's desired state (``dvr flows``, ``dvr trace``): each
# name with its choices and its default (a report leaves out a default)
LAYOUT_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "east_west": (EAST_WEST_MODES, DEFAULT_EAST_WEST),
    "tunnel_layout": (TUNNEL_LAYOUTS, DEFAULT_TUNNEL_LAYOUT),
}

# device_owner values (Neutron's)
OWNER_ROUTER_INTERFACE_DISTRIBUTED = "network:router_interface_distributed"
OWNER_ROUTER_INTERFACE = "network:router_interface"
OWNER_ROUTER_SNAT = "network:router_centralized_snat"
OWNER_ROUTER_GATEWAY = "network:router_gateway"
OWNER_FLOATINGIP_AGENT_GATEWAY = "network:floatingip_agent_gateway"
OWNER_FLOATINGIP = "network:floatingip"
OWNER_DHCP = "network:dhcp"
OWNER_COMPUTE_PREFIX = "compute:"
OWNER_LOADBALANCER = "neutron:LOADBALANCERV2"


def is_dvr_serviceable(device_owner: str) -> bool:
    """A port whose presence on a host makes the host need the subnet's DVR router."""
    return (
        device_owner.startswith(OWNER_COMPUTE_PREFIX)
        or device_owner in (OWNER_DHCP, OWNER_LOADBALANCER)
    )


@dataclass(frozen=True)
class FixedIp:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True)
class AddressPair:
    """An allowed (MAC, IP or CIDR) pair a port may also send from (Neutron's
    ``allowed_address_pairs``; the MAC defaults to the port's own on the server)."""

    mac_address: str
    ip_address: str  # an address or a normalized CIDR


@dataclass(frozen=True)
class PortView:
    """A port bound to this host (a VM, DHCP, or an SNAT/FIP-gateway port of this host).

    Firewall inputs: when ``port_security_enabled`` the port may only send from its own
    MAC/fixed IPs and ``allowed_address_pairs``, and the rules of ``security_group_ids``
    (each a ``SecurityGroupView`` of ``HostView.security_groups``) filter it statefully.
    When it is off, the port is neither filtered nor anti-spoofed."""

    id: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIp, ...]
    device_owner: str
    device_id: str
    host: str
    admin_state_up: bool = True
    port_security_enabled: bool = False
    security_group_ids: tuple[str, ...] = ()  # sorted
    allowed_address_pairs: tuple[AddressPair, ...] = ()  # sorted by (mac, ip)


@dataclass(frozen=True)
class SecurityGroupRuleView:
    """One rule, typed.  ``protocol`` is the IP protocol number (None: any); port ranges
    apply to TCP (6), UDP (17), SCTP (132) and UDP-Lite (136); ICMP(v6) rules use
    ``icmp_type``/``icmp_code`` (Neutron's port_range_min/max for ICMP).  At most one of
    ``remote_ip_prefix`` / ``remote_group_id`` / ``remote_address_group_id`` is set; none
    set means any remote address."""

    id: str
    direction: str  # "ingress" | "egress"
    ethertype: str  # "IPv4" | "IPv6"
    protocol: int | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    remote_ip_prefix: str | None = None  # normalized CIDR
    remote_group_id: str | None = None  # an AddressSetView(kind="security_group") id
    remote_address_group_id: str | None = None  # an AddressSetView(kind="address_group") id


@dataclass(frozen=True)
class SecurityGroupView:
    """A group that at least one port of this host is a member of."""

    id: str
    stateful: bool
    rules: tuple[SecurityGroupRuleView, ...]  # sorted by id


ADDRESS_SET_KINDS = ("security_group", "address_group")


@dataclass(frozen=True)
class AddressSetView:
    """The addresses a remote group or address group stands for, as this host needs them:
    for a security group, every member port's fixed IPs and allowed-address-pair IPs (any
    host); for an address group, its CIDRs.  Only sets that a rule of a group in
    ``HostView.security_groups`` references are sent."""

    id: str
    kind: str  # one of ADDRESS_SET_KINDS
    cidrs: tuple[str, ...]  # normalized CIDRs (a host address is /32 or /128), sorted


@dataclass(frozen=True)
class SubnetView:
    id: str
    network_id: str
    cidr: str
    gateway_ip: str | None
    ip_version: int


@dataclass(frozen=True)
class L2Entry:
    """One unicast L2-population entry: a MAC (and its IPs) behind a remote tunnel."""

    mac_address: str
    ip_addresses: tuple[str, ...]


@dataclass(frozen=True)
class RemoteHost:
    """Another host that takes part in a network: flood target and unicast entries."""

    host: str
    tunnel_ip: str
    entries: tuple[L2Entry, ...]


@dataclass(frozen=True)
class NetworkView:
    """A network this host touches (a local port on it, or a local router interface)."""

    id: str
    name: str
    network_type: str  # "vxlan" (tenant) or "flat"/"vlan" (external/provider)
    segmentation_id: int | None
    mtu: int
    external: bool
    physical_network: str | None
    subnets: tuple[SubnetView, ...]
    remote_hosts: tuple[RemoteHost, ...]  # sorted by host


@dataclass(frozen=True)
class RouterInterfaceView:
    """A distributed router interface: identical (MAC, IP) on every host of the router."""

    port_id: str
    subnet_id: str
    network_id: str
    mac_address: str
    ip_address: str  # the subnet's gateway IP
    cidr: str  # the subnet's CIDR (prefix length comes from here)
    mtu: int


@dataclass(frozen=True)
class ArpEntry:
    """A static (PERMANENT) neighbor for a port on a subnet attached to the router."""

    subnet_id: str
    ip_address: str
    mac_address: str


@dataclass(frozen=True)
class ExtraRoute:
    destination: str
    nexthop: str


@dataclass(frozen=True)
class SnatPortView:
    """A router's centralized-SNAT port on one internal subnet (lives on the SNAT host)."""

    port_id: str
    subnet_id: str
    network_id: str
    mac_address: str
    ip_address: str
    cidr: str
    mtu: int


@dataclass(frozen=True)
class GatewayView:
    """The router's external gateway port (on the external network)."""

    port_id: str
    network_id: str
    mac_address: str
    fixed_ips: tuple[FixedIp, ...]
    subnets: tuple[SubnetView, ...]  # the external subnets (their gateway_ip is the next hop)
    enable_snat: bool


@dataclass(frozen=True)
class FloatingIpView:
    id: str
    floating_ip_address: str
    floating_network_id: str
    fixed_ip_address: str
    port_id: str
    host: str  # host of the associated port


@dataclass(frozen=True)
class RouterView:
    id: str
    name: str
    distributed: bool
    ha: bool
    admin_state_up: bool
    interfaces: tuple[RouterInterfaceView, ...]  # sorted by subnet_id
    arp_entries: tuple[ArpEntry, ...]  # sorted by (subnet_id, ip_address)
    routes: tuple[ExtraRoute, ...]
    gateway: GatewayView | None
    snat_host: str | None  # host that runs this router's centralized SNAT part
    snat_ports: tuple[SnatPortView, ...]  # sorted by subnet_id
    floating_ips: tuple[FloatingIpView, ...]  # FIPs of ports on *this* host


@dataclass(frozen=True)
class HostMac:
    host: str
    mac_address: str


@dataclass(frozen=True)
class HostView:
    host: str
    revision: int
    agent_mode: str
    host_mac: str | None
    tunnel_ip: str | None
    ports: tuple[PortView, ...]  # ports bound to this host, sorted by id
    networks: tuple[NetworkView, ...]  # sorted by id
    routers: tuple[RouterView, ...]  # routers hosted here, sorted by id
    peer_host_macs: tuple[HostMac, ...]  # every other host's MAC, sorted by host
    fip_agent_gateways: tuple[PortView, ...] = field(default=())  # this host's fg- ports
    security_groups: tuple[SecurityGroupView, ...] = field(default=())  # sorted by id
    address_sets: tuple[AddressSetView, ...] = field(default=())  # sorted by (kind, id)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def network(self, network_id: str) -> NetworkView | None:
        return next((n for n in self.networks if n.id == network_id), None)

    def router(self, router_id: str) -> RouterView | None:
        return next((r for r in self.routers if r.id == router_id), None)


# -- from JSON ------------------------------------------------------------------------------
# An agent decodes every object of every full view it fetches (at 1,000 hosts: ~2,000 remote
# hosts, ~2,500 L2 entries, ~1,000 peer MACs), so these build the many small frozen
# dataclasses positionally from the keys every view has (cheaper than ``**`` a dict, which
# copies it and matches names): a key the view lacks raises KeyError, a key the class does
# not know is ignored.  The optional keys (those with a default: views of older servers lack
# them) are read with their default.  ``tuple([...])``: cheaper than ``tuple(<generator>)``.
# (Filling ``__dict__`` instead of calling the frozen ``__init__`` saves another ~13 % but
# makes each object's attributes a dict of its own: 2.4x the memory, slower reads.)


def _fixed_ips(items: list[dict[str, Any]]) -> tuple[FixedIp, ...]:
    return tuple([FixedIp(i["subnet_id"], i["ip_address"]) for i in items])


def port_from_dict(d: dict[str, Any]) -> PortView:
    return PortView(
        d["id"], d["network_id"], d["mac_address"], _fixed_ips(d["fixed_ips"]),
        d["device_owner"], d["device_id"], d["host"], d.get("admin_state_up", True),
        d.get("port_security_enabled", False), tuple(d.get("security_group_ids", ())),
        tuple([AddressPair(a["mac_address"], a["ip_address"])
               for a in d.get("allowed_address_pairs", ())]),
    )


def security_group_rule_from_dict(d: dict[str, Any]) -> SecurityGroupRuleView:
    get = d.get
    return SecurityGroupRuleView(
        d["id"], d["direction"], d["ethertype"], get("protocol"), get("port_range_min"),
        get("port_range_max"), get("icmp_type"), get("icmp_code"), get("remote_ip_prefix"),
        get("remote_group_id"), get("remote_address_group_id"),
    )


def security_group_from_dict(d: dict[str, Any]) -> SecurityGroupView:
    return SecurityGroupView(
        d["id"], d["stateful"], tuple([security_group_rule_from_dict(r) for r in d["rules"]])
    )


def address_set_from_dict(d: dict[str, Any]) -> AddressSetView:
    return AddressSetView(d["id"], d["kind"], tuple(d["cidrs"]))


def _subnets(items: list[dict[str, Any]]) -> tuple[SubnetView, ...]:
    return tuple([
        SubnetView(s["id"], s["network_id"], s["cidr"], s["gateway_ip"], s["ip_version"])
        for s in items
    ])


def remote_hosts_from_list(items: list[dict[str, Any]]) -> tuple[RemoteHost, ...]:
    """A network's remote hosts, the bulk of a big view: decoded in one comprehension (a
    function call per remote host costs a third more)."""
    return tuple([
        RemoteHost(r["host"], r["tunnel_ip"], tuple([
            L2Entry(e["mac_address"], tuple(e["ip_addresses"])) for e in r["entries"]
        ]))
        for r in items
    ])


def network_from_dict(d: dict[str, Any]) -> NetworkView:
    return NetworkView(
        d["id"], d["name"], d["network_type"], d["segmentation_id"], d["mtu"], d["external"],
        d["physical_network"], _subnets(d["subnets"]),
        remote_hosts_from_list(d["remote_hosts"]),
    )


def _gateway(d: dict[str, Any] | None) -> GatewayView | None:
    if d is None:
        return None
    return GatewayView(d["port_id"], d["network_id"], d["mac_address"],
                       _fixed_ips(d["fixed_ips"]), _subnets(d["subnets"]), d["enable_snat"])


def arp_entry_from_dict(d: dict[str, Any]) -> ArpEntry:
    return ArpEntry(d["subnet_id"], d["ip_address"], d["mac_address"])


def router_from_dict(d: dict[str, Any]) -> RouterView:
    return RouterView(
        d["id"], d["name"], d["distributed"], d["ha"], d["admin_state_up"],
        tuple([RouterInterfaceView(i["port_id"], i["subnet_id"], i["network_id"],
                                   i["mac_address"], i["ip_address"], i["cidr"], i["mtu"])
               for i in d["interfaces"]]),
        tuple([arp_entry_from_dict(a) for a in d["arp_entries"]]),
        tuple([ExtraRoute(r["destination"], r["nexthop"]) for r in d["routes"]]),
        _gateway(d["gateway"]),
        d["snat_host"],
        tuple([SnatPortView(s["port_id"], s["subnet_id"], s["network_id"], s["mac_address"],
                            s["ip_address"], s["cidr"], s["mtu"]) for s in d["snat_ports"]]),
        tuple([FloatingIpView(f["id"], f["floating_ip_address"], f["floating_network_id"],
                              f["fixed_ip_address"], f["port_id"], f["host"])
               for f in d["floating_ips"]]),
    )


def host_mac_from_dict(d: dict[str, Any]) -> HostMac:
    return HostMac(d["host"], d["mac_address"])


def host_view_from_dict(d: dict[str, Any]) -> HostView:
    """Inverse of ``HostView.to_dict`` (lists in JSON become tuples again)."""
    return HostView(
        host=d["host"],
        revision=d["revision"],
        agent_mode=d["agent_mode"],
        host_mac=d["host_mac"],
        tunnel_ip=d["tunnel_ip"],
        ports=tuple([port_from_dict(p) for p in d["ports"]]),
        networks=tuple([network_from_dict(n) for n in d["networks"]]),
        routers=tuple([router_from_dict(r) for r in d["routers"]]),
        peer_host_macs=tuple([host_mac_from_dict(m) for m in d["peer_host_macs"]]),
        fip_agent_gateways=tuple([port_from_dict(p) for p in d.get("fip_agent_gateways", ())]),
        security_groups=tuple([security_group_from_dict(g)
                               for g in d.get("security_groups", ())]),
        address_sets=tuple([address_set_from_dict(a) for a in d.get("address_sets", ())]),
    )

"""A small DVR cloud written by hand, as DesiredStates (pure; no I/O).

This is the east/west walk of DVR.md §5 with Neutron's tables (§6) and static ARP (§7),
written out flow by flow without the server or the desired-state functions: the fixture
that proves the drivers and the reconciler on real OVS and real namespaces, and a baseline
the computed desired state can be compared with.

Names follow ``dvr.agent.desired.names``: ``qrouter-<router>``, ``qr-<port id[:11]>`` in the
namespace with its veth peer ``qrb-<port id[:11]>`` on br-int, ``vxlan-<hex of remote IP>``
on br-tun, and VM ports ``tap<port id[:11]>`` (plugged by the lab, not by the agent).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from dvr.agent.desired.openflow import (
    DROP,
    NORMAL,
    STRIP_VLAN,
    Match,
    ModDlSrc,
    ModVlanVid,
    Output,
    Resubmit,
    SetTunnel,
)
from dvr.agent.desired.state import (
    Address,
    BridgeState,
    DesiredState,
    Flow,
    NamespaceState,
    Neighbor,
    OvsPort,
    VethLink,
)

INTEGRATION_BRIDGE = "br-int"
TUNNEL_BRIDGE = "br-tun"
PATCH_INT = "patch-int"  # on br-tun
PATCH_TUN = "patch-tun"  # on br-int
GROUP_BIT = "01:00:00:00:00:00"
UNICAST = Match(dl_dst="00:00:00:00:00:00", dl_dst_mask=GROUP_BIT)
MULTICAST = Match(dl_dst="01:00:00:00:00:00", dl_dst_mask=GROUP_BIT)
ANY = Match()


@dataclass(frozen=True)
class HmNetwork:
    id: str
    vni: int
    cidr: str
    gateway_ip: str
    gateway_mac: str  # the router interface's MAC (identical on every host)
    gateway_port_id: str

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.cidr).prefixlen

    @property
    def qr_device(self) -> str:
        return f"qr-{self.gateway_port_id[:11]}"

    @property
    def qr_bridge_port(self) -> str:
        return f"qrb-{self.gateway_port_id[:11]}"


@dataclass(frozen=True)
class HmVm:
    name: str
    network: str  # network id
    host: str
    mac: str
    ip: str
    port_id: str

    @property
    def tap(self) -> str:
        return f"tap{self.port_id[:11]}"


@dataclass(frozen=True)
class HmHost:
    name: str
    tunnel_ip: str
    host_mac: str
    local_vlans: tuple[tuple[str, int], ...]  # (network id, local VLAN on this host's br-int)

    def vlan(self, network: str) -> int:
        return dict(self.local_vlans)[network]


def vxlan_port(remote_ip: str) -> str:
    return f"vxlan-{int(ipaddress.ip_address(remote_ip)):08x}"


@dataclass(frozen=True)
class HandmadeCloud:
    router_id: str
    hosts: tuple[HmHost, ...]
    networks: tuple[HmNetwork, ...]
    vms: tuple[HmVm, ...]
    routed: tuple[str, ...]  # ids of the networks attached to the router
    mtu: int = 1450
    revision: int = 1

    # -- queries -----------------------------------------------------------------------------
    def host(self, name: str) -> HmHost:
        return next(h for h in self.hosts if h.name == name)

    def network(self, network_id: str) -> HmNetwork:
        return next(n for n in self.networks if n.id == network_id)

    def vm(self, name: str) -> HmVm:
        return next(v for v in self.vms if v.name == name)

    @property
    def router_namespace(self) -> str:
        return f"qrouter-{self.router_id}"

    def hosts_router(self, host: str) -> bool:
        """DVR scheduling: the router is on every host with a VM on one of its subnets."""
        return any(v.host == host and v.network in self.routed for v in self.vms)

    def networks_on(self, host: str) -> list[HmNetwork]:
        present = {v.network for v in self.vms if v.host == host}
        if self.hosts_router(host):
            present |= set(self.routed)
        return [n for n in self.networks if n.id in present]

    def without_interface(self, network_id: str) -> HandmadeCloud:
        """The same cloud after ``router-interface-remove`` of ``network_id``."""
        routed = tuple(n for n in self.routed if n != network_id)
        return replace(self, routed=routed, revision=self.revision + 1)

    # -- desired state -----------------------------------------------------------------------
    def desired(self, host_name: str) -> DesiredState:
        host = self.host(host_name)
        return DesiredState(
            host=host.name,
            revision=self.revision,
            bridges=(self._integration_bridge(host), self._tunnel_bridge(host)),
            namespaces=self._namespaces(host),
            local_vlans=tuple(sorted(
                (n.id, host.vlan(n.id)) for n in self.networks_on(host.name))),
        )

    def _others(self, host: HmHost) -> list[HmHost]:
        return [h for h in self.hosts if h.name != host.name]

    def _integration_bridge(self, host: HmHost) -> BridgeState:
        own = "bridge:br-int"
        flows = {
            Flow(0, 65535, Match(vlan_tci=0x0FFF, vlan_tci_mask=0x1FFF), (DROP,), own),
            Flow(0, 0, ANY, (Resubmit(60),), own),
            Flow(60, 3, ANY, (NORMAL,), own),
        }
        for other in self._others(host):
            flows.add(Flow(0, 2, Match(in_port=PATCH_TUN, dl_src=other.host_mac),
                           (Resubmit(1),), f"hostmac:{other.name}"))
        for vm in self.vms:
            if vm.host != host.name or vm.network not in self.routed:
                continue
            net = self.network(vm.network)
            flows.add(Flow(1, 4, Match(dl_vlan=host.vlan(net.id), dl_dst=vm.mac),
                           (STRIP_VLAN, ModDlSrc(net.gateway_mac), Output(vm.tap)),
                           f"port:{vm.port_id}"))
        ports = [OvsPort(PATCH_TUN, "patch", (("peer", PATCH_INT),))]
        for vm in self.vms:
            if vm.host == host.name:
                ports.append(OvsPort(vm.tap, tag=host.vlan(vm.network), managed=False,
                                     external_ids=(("iface-id", vm.port_id),)))
        return BridgeState(INTEGRATION_BRIDGE, tuple(sorted(ports)), frozenset(flows))

    def _tunnel_bridge(self, host: HmHost) -> BridgeState:
        own = "bridge:br-tun"
        flows = {
            Flow(0, 1, Match(in_port=PATCH_INT), (Resubmit(1),), own),
            Flow(0, 0, ANY, (DROP,), own),
            Flow(1, 0, ANY, (Resubmit(2),), own),
            Flow(2, 1, UNICAST, (Resubmit(20),), own),
            Flow(2, 1, MULTICAST, (Resubmit(22),), own),
            Flow(4, 0, ANY, (DROP,), own),
            Flow(9, 0, ANY, (Resubmit(10),), own),
            Flow(10, 1, ANY, (Output(PATCH_INT),), own),
            Flow(20, 0, ANY, (Resubmit(22),), own),
            Flow(22, 0, ANY, (DROP,), own),
        }
        ports = [OvsPort(PATCH_INT, "patch", (("peer", PATCH_TUN),))]
        others = self._others(host)
        for other in others:
            port = vxlan_port(other.tunnel_ip)
            ports.append(OvsPort(port, "vxlan", (
                ("key", "flow"), ("local_ip", host.tunnel_ip), ("remote_ip", other.tunnel_ip))))
            flows.add(Flow(0, 1, Match(in_port=port), (Resubmit(4),),
                           f"tunnel:{other.tunnel_ip}"))
            flows.add(Flow(9, 1, Match(dl_src=other.host_mac), (Output(PATCH_INT),),
                           f"hostmac:{other.name}"))
        hosted = self.hosts_router(host.name)
        for net in self.networks_on(host.name):
            vlan = host.vlan(net.id)
            owner = f"network:{net.id}"
            flows.add(Flow(4, 1, Match(tun_id=net.vni), (ModVlanVid(vlan), Resubmit(9)),
                           owner))
            outputs = tuple(Output(vxlan_port(o.tunnel_ip)) for o in others)
            flows.add(Flow(22, 1, Match(dl_vlan=vlan),
                           (STRIP_VLAN, SetTunnel(net.vni), *outputs), owner))
            if hosted and net.id in self.routed:
                subnet = f"subnet:{net.id}"
                flows.add(Flow(1, 3, Match(proto="arp", dl_vlan=vlan, arp_tpa=net.gateway_ip),
                               (DROP,), subnet))
                flows.add(Flow(1, 2, Match(dl_vlan=vlan, dl_dst=net.gateway_mac), (DROP,),
                               subnet))
                flows.add(Flow(1, 1, Match(dl_vlan=vlan, dl_src=net.gateway_mac),
                               (ModDlSrc(host.host_mac), Resubmit(2)), subnet))
            for vm in self.vms:
                if vm.network != net.id or vm.host == host.name:
                    continue
                remote = self.host(vm.host)
                flows.add(Flow(20, 2, Match(dl_vlan=vlan, dl_dst=vm.mac),
                               (STRIP_VLAN, SetTunnel(net.vni),
                                Output(vxlan_port(remote.tunnel_ip))),
                               f"port:{vm.port_id}"))
        return BridgeState(TUNNEL_BRIDGE, tuple(sorted(ports)), frozenset(flows))

    def _namespaces(self, host: HmHost) -> tuple[NamespaceState, ...]:
        if not self.hosts_router(host.name):
            return ()
        links, addresses, neighbors = [], [], []
        for net_id in self.routed:
            net = self.network(net_id)
            links.append(VethLink(net.qr_device, net.qr_bridge_port, INTEGRATION_BRIDGE,
                                  net.gateway_mac, self.mtu, tag=host.vlan(net.id),
                                  external_ids=(("iface-id", net.gateway_port_id),)))
            addresses.append(Address(net.qr_device, f"{net.gateway_ip}/{net.prefixlen}"))
            neighbors += [Neighbor(net.qr_device, vm.ip, vm.mac)
                          for vm in self.vms if vm.network == net.id]
        return (NamespaceState(
            name=self.router_namespace,
            owner=f"router:{self.router_id}",
            links=tuple(sorted(links)),
            addresses=tuple(sorted(addresses)),
            neighbors=tuple(sorted(neighbors)),
        ),)


@dataclass(frozen=True)
class TwoHostNames:
    """Names for one instance of the two-host scenario (unique per test run if wanted)."""

    host_a: str = "compute-1"
    host_b: str = "compute-2"
    router_id: str = "6f1c0a52-0d3e-4b47-9a55-2f1d7c3b9e01"


def two_host_cloud(names: TwoHostNames = TwoHostNames()) -> HandmadeCloud:
    """DVR.md §5: blue (192.0.2.0/24) and orange (198.51.100.0/24) behind one router.

    blue-a on host A; blue-b and orange-b on host B.  Local VLANs differ per host on
    purpose (the tunnel carries the VNI, not the VLAN).
    """
    blue = HmNetwork("blue", 0x64, "192.0.2.0/24", "192.0.2.1", "fa:16:3e:00:01:01",
                     "b1b1b1b1-0001-4000-8000-000000000001")
    orange = HmNetwork("orange", 0xC8, "198.51.100.0/24", "198.51.100.1", "fa:16:3e:00:02:01",
                       "0a0a0a0a-0002-4000-8000-000000000002")
    hosts = (
        HmHost(names.host_a, "198.18.0.1", "fa:16:3f:00:00:0a", (("blue", 1), ("orange", 2))),
        HmHost(names.host_b, "198.18.0.2", "fa:16:3f:00:00:0b", (("blue", 3), ("orange", 4))),
    )
    vms = (
        HmVm("blue-a", "blue", names.host_a, "fa:16:3e:10:00:0a", "192.0.2.11",
             "aa000000-0011-4000-8000-0000000000a1"),
        HmVm("blue-b", "blue", names.host_b, "fa:16:3e:10:00:0b", "192.0.2.12",
             "bb000000-0012-4000-8000-0000000000b2"),
        HmVm("orange-b", "orange", names.host_b, "fa:16:3e:20:00:0b", "198.51.100.22",
             "cc000000-0022-4000-8000-0000000000c3"),
    )
    return HandmadeCloud(names.router_id, hosts, (blue, orange), vms, ("blue", "orange"))

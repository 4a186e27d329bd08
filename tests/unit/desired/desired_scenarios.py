"""A tiny in-memory 'cloud' that builds HostViews the way the server does (for tests).

It mirrors the server's rules closely enough for the desired-state tests: a distributed
router is hosted where a DVR-serviceable port sits on one of its subnets; a host touches a
network when it has a port or a hosted router interface on it; remote hosts of a network
are the other hosts touching it, with their VM ports as L2-population entries; ARP entries
are every port on each attached subnet.

North/south: a router may have a gateway on the cloud's ``external`` network (flat, physical
network ``public``) with an SNAT host; a distributed router is also hosted on its SNAT host,
which holds its gateway port and one SNAT port per interface; a legacy router is hosted
only there.  Floating IPs (address, VM id) of a distributed router go to the VM's host,
which then has a FIP agent gateway port; a legacy router's all go to its SNAT host.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass, field, replace

from dvr.model.hostview import (
    OWNER_FLOATINGIP_AGENT_GATEWAY,
    OWNER_ROUTER_GATEWAY,
    OWNER_ROUTER_SNAT,
    ArpEntry,
    ExtraRoute,
    FixedIp,
    FloatingIpView,
    GatewayView,
    HostMac,
    HostView,
    L2Entry,
    NetworkView,
    PortView,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
    SnatPortView,
    SubnetView,
    is_dvr_serviceable,
)


@dataclass(frozen=True)
class Host:
    name: str
    tunnel_ip: str
    mac: str | None


@dataclass(frozen=True)
class Net:
    id: str
    vni: int
    subnet_id: str
    cidr: str
    mtu: int = 1450
    network_type: str = "vxlan"

    @property
    def gateway_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.cidr).hosts()))


@dataclass(frozen=True)
class Vm:
    id: str
    network_id: str
    mac: str
    ip: str
    host: str
    device_owner: str = "compute:nova"
    admin_state_up: bool = True


@dataclass(frozen=True)
class Interface:
    port_id: str
    network_id: str
    mac: str


@dataclass(frozen=True)
class Router:
    id: str
    interfaces: tuple[Interface, ...]
    distributed: bool = True
    admin_state_up: bool = True
    routes: tuple[tuple[str, str], ...] = ()
    gateway_ip: str | None = None  # on the cloud's external network
    enable_snat: bool = True
    snat_host: str | None = None
    fips: tuple[tuple[str, str], ...] = ()  # (floating IP, VM id)


@dataclass(frozen=True)
class Cloud:
    hosts: tuple[Host, ...]
    networks: tuple[Net, ...]
    vms: tuple[Vm, ...]
    routers: tuple[Router, ...] = ()
    revision: int = 1
    extra_remote: dict = field(default_factory=dict, compare=False)
    external: Net | None = None

    def net(self, network_id: str) -> Net:
        return next(n for n in self.networks if n.id == network_id)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def vm(self, vm_id: str) -> Vm:
        return next(v for v in self.vms if v.id == vm_id)

    # --- server rules ----------------------------------------------------------------------
    def routers_on(self, host: str) -> list[Router]:
        local_nets = {
            v.network_id for v in self.vms if v.host == host and is_dvr_serviceable(v.device_owner)
        }
        return [
            r for r in self.routers
            if (r.distributed and any(i.network_id in local_nets for i in r.interfaces))
            or (r.snat_host == host and (r.gateway_ip is not None or not r.distributed))
        ]

    def _with_gateway(self, router: Router) -> bool:
        return router.gateway_ip is not None and self.external is not None

    def local_fips(self, router: Router, host: str) -> list[tuple[str, Vm]]:
        if not self._with_gateway(router):
            return []
        vms = {v.id: v for v in self.vms}
        found = [(ip, vms[vm_id]) for ip, vm_id in router.fips if vm_id in vms]
        if not router.distributed:
            return found if router.snat_host == host else []
        return [(ip, vm) for ip, vm in found if vm.host == host]

    def agent_ports(self, host: str) -> list[PortView]:
        """The SNAT, gateway and FIP agent gateway ports bound to ``host``."""
        ports = []
        external = self.external
        fg_needed = False
        for router in self.routers:
            if not self._with_gateway(router) or external is None:
                continue
            if router.distributed and self.local_fips(router, host):
                fg_needed = True
            if router.snat_host != host:
                continue
            ports.append(PortView(
                id=f"gw-{router.id}", network_id=external.id, mac_address=_mac(router.id, 1),
                fixed_ips=(FixedIp(external.subnet_id, router.gateway_ip),),
                device_owner=OWNER_ROUTER_GATEWAY, device_id=router.id, host=host))
            if router.distributed:
                for snat in self.snat_ports(router):
                    ports.append(PortView(
                        id=snat.port_id, network_id=snat.network_id,
                        mac_address=snat.mac_address,
                        fixed_ips=(FixedIp(snat.subnet_id, snat.ip_address),),
                        device_owner=OWNER_ROUTER_SNAT, device_id=router.id, host=host))
        if fg_needed and external is not None:
            index = sorted(h.name for h in self.hosts).index(host) if host in {
                h.name for h in self.hosts} else 0
            ports.append(PortView(
                id=f"fg-{host}", network_id=external.id, mac_address=_mac(host, 2),
                fixed_ips=(FixedIp(external.subnet_id, _nth(external.cidr, 200 + index)),),
                device_owner=OWNER_FLOATINGIP_AGENT_GATEWAY, device_id=host, host=host))
        return ports

    def snat_ports(self, router: Router) -> list[SnatPortView]:
        if not (router.distributed and self._with_gateway(router)):
            return []
        return sorted(
            (SnatPortView(f"5{i.port_id}", self.net(i.network_id).subnet_id,
                          i.network_id, _mac(i.port_id, 3), _nth(self.net(i.network_id).cidr, -2),
                          self.net(i.network_id).cidr, self.net(i.network_id).mtu)
             for i in router.interfaces),
            key=lambda s: (s.subnet_id, s.port_id))

    def networks_touched(self, host: str) -> set[str]:
        nets = {v.network_id for v in self.vms if v.host == host}
        for router in self.routers_on(host):
            nets |= {i.network_id for i in router.interfaces}
        nets |= {p.network_id for p in self.agent_ports(host)}
        known = {n.id for n in self.networks}
        if self.external is not None:
            known.add(self.external.id)
        return nets & known

    def _network_view(self, net: Net, host: str) -> NetworkView:
        external = self.external is not None and net.id == self.external.id
        remotes = []
        if not external:
            for other in sorted(self.hosts, key=lambda h: h.name):
                if other.name == host or net.id not in self.networks_touched(other.name):
                    continue
                entries = tuple(
                    L2Entry(v.mac, (v.ip,))
                    for v in sorted(self.vms, key=lambda v: v.id)
                    if v.host == other.name and v.network_id == net.id
                )
                remotes.append(RemoteHost(other.name, other.tunnel_ip, entries))
        return NetworkView(
            id=net.id, name=net.id, network_type=net.network_type,
            segmentation_id=None if external else net.vni, mtu=net.mtu, external=external,
            physical_network="public" if external else None,
            subnets=(SubnetView(net.subnet_id, net.id, net.cidr, net.gateway_ip, 4),),
            remote_hosts=tuple(remotes),
        )

    def view(self, host: str) -> HostView:
        me = self.host(host)
        touched = self.networks_touched(host)
        all_networks = list(self.networks) + ([self.external] if self.external else [])
        networks = [self._network_view(net, host)
                    for net in sorted(all_networks, key=lambda n: n.id) if net.id in touched]
        routers = []
        for router in sorted(self.routers_on(host), key=lambda r: r.id):
            interfaces = tuple(
                sorted(
                    (
                        RouterInterfaceView(
                            port_id=i.port_id,
                            subnet_id=self.net(i.network_id).subnet_id,
                            network_id=i.network_id,
                            mac_address=i.mac,
                            ip_address=self.net(i.network_id).gateway_ip,
                            cidr=self.net(i.network_id).cidr,
                            mtu=self.net(i.network_id).mtu,
                        )
                        for i in router.interfaces
                    ),
                    key=lambda i: (i.subnet_id, i.port_id),
                )
            )
            attached = {i.network_id for i in router.interfaces}
            snat_ports = self.snat_ports(router)
            arp = tuple(
                sorted(
                    [
                        ArpEntry(self.net(v.network_id).subnet_id, v.ip, v.mac)
                        for v in self.vms
                        if v.network_id in attached
                    ] + [ArpEntry(s.subnet_id, s.ip_address, s.mac_address) for s in snat_ports],
                    key=lambda a: (a.subnet_id, a.ip_address),
                )
            )
            gateway = None
            external = self.external
            if self._with_gateway(router) and external is not None:
                gateway = GatewayView(
                    port_id=f"gw-{router.id}", network_id=external.id,
                    mac_address=_mac(router.id, 1),
                    fixed_ips=(FixedIp(external.subnet_id, router.gateway_ip or ""),),
                    subnets=(SubnetView(external.subnet_id, external.id, external.cidr,
                                        external.gateway_ip, 4),),
                    enable_snat=router.enable_snat)
            fips = tuple(sorted(
                (FloatingIpView(f"fip-{ip}", ip, external.id, vm.ip, vm.id, vm.host)
                 for ip, vm in self.local_fips(router, host) if external is not None),
                key=lambda f: f.id))
            routers.append(
                RouterView(
                    id=router.id, name=router.id, distributed=router.distributed, ha=False,
                    admin_state_up=router.admin_state_up, interfaces=interfaces,
                    arp_entries=arp,
                    routes=tuple(ExtraRoute(d, n) for d, n in router.routes),
                    gateway=gateway,
                    snat_host=router.snat_host if gateway or not router.distributed else None,
                    snat_ports=tuple(snat_ports), floating_ips=fips,
                )
            )
        vm_ports = [
            PortView(
                id=v.id, network_id=v.network_id, mac_address=v.mac,
                fixed_ips=(FixedIp(self.net(v.network_id).subnet_id, v.ip),),
                device_owner=v.device_owner, device_id=f"device-{v.id}", host=v.host,
                admin_state_up=v.admin_state_up,
            )
            for v in self.vms
            if v.host == host
        ]
        agent_ports = self.agent_ports(host)
        ports = tuple(sorted(vm_ports + agent_ports, key=lambda p: p.id))
        return HostView(
            host=host,
            revision=self.revision,
            agent_mode="dvr",
            host_mac=me.mac,
            tunnel_ip=me.tunnel_ip,
            ports=ports,
            networks=tuple(networks),
            routers=tuple(routers),
            peer_host_macs=tuple(
                HostMac(h.name, h.mac)
                for h in sorted(self.hosts, key=lambda h: h.name)
                if h.name != host and h.mac is not None
            ),
            fip_agent_gateways=tuple(p for p in ports
                                     if p.device_owner == OWNER_FLOATINGIP_AGENT_GATEWAY),
        )

    def plugged(self, host: str) -> dict[str, str]:
        """Every VM port on ``host`` plugged as ``tap`` + port id[:11] (like Nova)."""
        return {v.id: tap_name(v.id) for v in self.vms if v.host == host}

    # --- edits ---------------------------------------------------------------------------------
    def with_vm(self, vm: Vm) -> Cloud:
        return replace(self, vms=tuple(v for v in self.vms if v.id != vm.id) + (vm,))

    def without_vm(self, vm_id: str) -> Cloud:
        return replace(self, vms=tuple(v for v in self.vms if v.id != vm_id))

    def with_router(self, router: Router) -> Cloud:
        return replace(
            self, routers=tuple(r for r in self.routers if r.id != router.id) + (router,)
        )

    def with_host(self, host: Host) -> Cloud:
        return replace(self, hosts=tuple(h for h in self.hosts if h.name != host.name) + (host,))

    def without_host(self, name: str) -> Cloud:
        return replace(
            self,
            hosts=tuple(h for h in self.hosts if h.name != name),
            vms=tuple(v for v in self.vms if v.host != name),
        )


def tap_name(port_id: str) -> str:
    return f"tap{port_id[:11]}"


def _mac(seed: str, kind: int) -> str:
    """A stable MAC for an agent-owned port (``kind`` tells gateway/FIP/SNAT ports apart)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=2).digest()
    return f"fa:16:3e:{kind:02x}:{digest[0]:02x}:{digest[1]:02x}"


def _nth(cidr: str, index: int) -> str:
    """The ``index``-th address of ``cidr`` (negative: from the end, -1 the broadcast)."""
    return str(ipaddress.ip_network(cidr)[index])


# --- the standard east/west scenario (DVR.md §5) ------------------------------------------------

BLUE = "net-blue-0000-0000-0000-000000000001"
ORANGE = "net-orange-000-0000-0000-000000000002"
GREEN = "net-green-0000-0000-0000-000000000003"
BLUE_SUBNET = "sub-blue-0000-0000-0000-000000000001"
ORANGE_SUBNET = "sub-orange-000-0000-0000-000000000002"
GREEN_SUBNET = "sub-green-0000-0000-0000-000000000003"
ROUTER = "rtr-0000-0000-0000-0000-000000000001"
IF_BLUE = "1b1b1b1b-0000-0000-0000-00000000000b"
IF_ORANGE = "2c2c2c2c-0000-0000-0000-00000000000c"
IF_BLUE_MAC = "fa:16:3e:aa:00:0b"
IF_ORANGE_MAC = "fa:16:3e:aa:00:0c"
BLUE_1 = "b1000000-0000-0000-0000-000000000001"  # blue VM on compute-1
BLUE_2 = "b2000000-0000-0000-0000-000000000002"  # blue VM on compute-2
BLUE_3 = "b3000000-0000-0000-0000-000000000003"  # blue VM on compute-3
ORANGE_1 = "c1000000-0000-0000-0000-000000000001"  # orange VM on compute-2
GREEN_1 = "d1000000-0000-0000-0000-000000000001"  # green VM on compute-3 (no router)
HOST_1, HOST_2, HOST_3 = "compute-1", "compute-2", "compute-3"
HOST_MAC_1, HOST_MAC_2, HOST_MAC_3 = "fa:16:3f:00:00:01", "fa:16:3f:00:00:02", "fa:16:3f:00:00:03"
TUNNEL_IP_1, TUNNEL_IP_2, TUNNEL_IP_3 = "198.51.100.11", "198.51.100.12", "198.51.100.13"
BLUE_VNI, ORANGE_VNI, GREEN_VNI = 1001, 1002, 1003


def east_west_cloud() -> Cloud:
    """Three hosts; router R on blue and orange; blue-1 on compute-1, orange-1 and blue-2 on
    compute-2, blue-3 and green-1 (a network without router) on compute-3."""
    return Cloud(
        hosts=(
            Host(HOST_1, TUNNEL_IP_1, HOST_MAC_1),
            Host(HOST_2, TUNNEL_IP_2, HOST_MAC_2),
            Host(HOST_3, TUNNEL_IP_3, HOST_MAC_3),
        ),
        networks=(
            Net(BLUE, BLUE_VNI, BLUE_SUBNET, "203.0.113.0/26"),
            Net(ORANGE, ORANGE_VNI, ORANGE_SUBNET, "203.0.113.64/26"),
            Net(GREEN, GREEN_VNI, GREEN_SUBNET, "203.0.113.128/26"),
        ),
        vms=(
            Vm(BLUE_1, BLUE, "fa:16:3e:00:01:01", "203.0.113.11", HOST_1),
            Vm(BLUE_2, BLUE, "fa:16:3e:00:01:02", "203.0.113.12", HOST_2),
            Vm(BLUE_3, BLUE, "fa:16:3e:00:01:03", "203.0.113.13", HOST_3),
            Vm(ORANGE_1, ORANGE, "fa:16:3e:00:02:01", "203.0.113.75", HOST_2),
            Vm(GREEN_1, GREEN, "fa:16:3e:00:03:01", "203.0.113.139", HOST_3),
        ),
        routers=(
            Router(ROUTER, (Interface(IF_BLUE, BLUE, IF_BLUE_MAC),
                            Interface(IF_ORANGE, ORANGE, IF_ORANGE_MAC))),
        ),
    )

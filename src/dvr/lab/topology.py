"""The lab's scenario as data (pure): hosts, tenant networks, router and VMs.

The default is the scenario of DVR.md §5: compute-1 and compute-2 (agent mode ``dvr``),
network-1 (``dvr_snat``), networks ``blue`` and ``orange`` on the distributed router
``demo-router``, VMs ``blue-1`` on compute-1, ``orange-1`` and ``blue-2`` on compute-2; the
external network ``public`` (flat, physical network ``public``) and the ``outside`` host
on it at the external subnet's gateway address. The external subnet's allocation pool
leaves its top addresses to hosts outside the cloud (the tests' probes).
Only documentation/benchmark ranges are used.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

UNDERLAY = ipaddress.ip_network("198.18.0.0/24")
UNDERLAY_FIRST_HOST = 11  # compute-1 = 198.18.0.11, ...
NETWORK_NODE_OFFSET = 100  # network-1 = 198.18.0.101
TENANT_MTU = 1450
EXTERNAL_PHYSNET = "public"  # the provider network the external segment carries
OUTSIDE_HOST = "outside"
OUTSIDE_ONLY = 32  # the external subnet's top addresses, never allocated: for outside hosts
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,14}$")


@dataclass(frozen=True)
class LabHost:
    name: str
    mode: str  # dvr | dvr_snat
    tunnel_ip: str


@dataclass(frozen=True)
class LabNetwork:
    name: str
    cidr: str
    external: bool = False

    @property
    def gateway_ip(self) -> str:
        return str(next(ipaddress.ip_network(self.cidr).hosts()))

    def api_body(self) -> dict[str, object]:
        """The network's create request: an external network is flat on ``public``."""
        body: dict[str, object] = {"name": self.name}
        if self.external:
            body.update({"router:external": True, "provider:network_type": "flat",
                         "provider:physical_network": EXTERNAL_PHYSNET})
        return body

    def subnet_body(self, network_id: str) -> dict[str, object]:
        """The subnet's create request: an external subnet's pool stops short of
        :meth:`outside_addresses`, as a provider network leaves room for its own routers."""
        body: dict[str, object] = {"name": f"{self.name}-subnet", "network_id": network_id,
                                   "cidr": self.cidr, "ip_version": 4}
        if self.external:
            first_outside = ipaddress.ip_address(self.outside_addresses()[0])
            body["allocation_pools"] = [{"start": str(ipaddress.ip_address(self.gateway_ip) + 1),
                                         "end": str(first_outside - 1)}]
        return body

    def outside_addresses(self) -> tuple[str, ...]:
        """Addresses of an external subnet that no port of the cloud is ever given."""
        hosts = list(ipaddress.ip_network(self.cidr).hosts())
        return tuple(str(a) for a in hosts[-OUTSIDE_ONLY:]) if self.external else ()


@dataclass(frozen=True)
class LabVm:
    name: str
    network: str
    host: str


@dataclass(frozen=True)
class LabTopology:
    name: str
    hosts: tuple[LabHost, ...]
    networks: tuple[LabNetwork, ...]
    router: str
    router_networks: tuple[str, ...]
    vms: tuple[LabVm, ...]

    @property
    def external_network(self) -> LabNetwork:
        return next(n for n in self.networks if n.external)

    @property
    def outside_cidr(self) -> str:
        """The outside host's address: the external subnet's gateway (its upstream router)."""
        prefix = ipaddress.ip_network(self.external_network.cidr).prefixlen
        return f"{self.external_network.gateway_ip}/{prefix}"

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ValueError(f"no lab host named {name!r} (hosts: "
                         f"{', '.join(h.name for h in self.hosts)})")


def validate_lab_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError("lab name: 1-15 characters, lower-case letters, digits and '-', "
                         "starting with a letter")
    return name


def compute_host_name(index: int) -> str:
    return f"compute-{index}"


def lab_hosts(computes: int) -> tuple[LabHost, ...]:
    if not 1 <= computes <= 50:
        raise ValueError("--computes must be between 1 and 50")
    base = int(UNDERLAY.network_address)
    hosts = [LabHost(compute_host_name(i), "dvr",
                     str(ipaddress.ip_address(base + UNDERLAY_FIRST_HOST - 1 + i)))
             for i in range(1, computes + 1)]
    hosts.append(LabHost("network-1", "dvr_snat",
                         str(ipaddress.ip_address(base + NETWORK_NODE_OFFSET + 1))))
    return tuple(hosts)


def default_topology(name: str = "dvr", computes: int = 2) -> LabTopology:
    hosts = lab_hosts(computes)
    vms = [LabVm("blue-1", "blue", "compute-1")]
    second = "compute-2" if computes >= 2 else "compute-1"
    vms += [LabVm("orange-1", "orange", second), LabVm("blue-2", "blue", second)]
    return LabTopology(
        name=validate_lab_name(name),
        hosts=hosts,
        networks=(
            LabNetwork("blue", "192.0.2.0/24"),
            LabNetwork("orange", "198.51.100.0/24"),
            LabNetwork("public", "203.0.113.0/24", external=True),
        ),
        router="demo-router",
        router_networks=("blue", "orange"),
        vms=tuple(vms),
    )

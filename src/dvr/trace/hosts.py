"""Per-host inputs of the tracer and what it derives from them (pure).

``HostData`` is what the tracer needs of one host: the server's HostView and the desired
state the host's agent computes from it (plus, optionally, the VIF names the agent
reported).  ``HostSwitch`` compiles the host's bridges once and answers the questions the
walk asks: which OVS port is a VM's, which namespace a router port leads to, and what a
learning switch's MAC table would hold (NORMAL is modelled with it).

External bridges (every bridge but the integration and tunnel bridges, e.g. ``br-ex``)
reach their physical segment through an *uplink* port the agent does not own: the
desired state's own unmanaged port on that bridge if it lists one, else the name the
caller gives in ``HostData.uplinks``, else ``DEFAULT_UPLINK``.  It is added to the
simulated bridge so that NORMAL can send frames out to the segment.

A namespace device is either a ``VethLink`` (its peer is a port on a bridge) or one end
of a veth pair between two namespaces (``rfp-``/``fpr-``): a ``PeerLink`` declared once,
in one of the two namespaces' ``peer_links``; the kernel picks those devices' MACs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import NamedTuple

from dvr.agent.desired.config import DesiredConfig
from dvr.agent.desired.folding import TUNNEL_TABLE_OFFSET, is_folded_port
from dvr.agent.desired.names import router_namespace_name
from dvr.agent.desired.state import (
    BridgeState,
    DesiredState,
    NamespaceState,
    OvsPort,
    VethLink,
)
from dvr.model.hostview import HostView, PortView, RouterInterfaceView, RouterView
from dvr.trace import ofsim

VIF_PREFIX = "tap"  # Nova's (and the lab's) name for a VM port on br-int: tap<port id[:11]>
DEFAULT_BRIDGES = DesiredConfig()
DEFAULT_UPLINK = "uplink"  # the name of an external bridge's physical port when none is known


class HostData(NamedTuple):
    """One host as the tracer sees it."""

    view: HostView
    state: DesiredState
    plugged: Mapping[str, str] | None = None  # port id -> OVS port name (agent's report)
    uplinks: Mapping[str, str] | None = None  # external bridge -> its physical port's name


def default_vif_name(port_id: str) -> str:
    return f"{VIF_PREFIX}{port_id[:11]}"


class LazyHostData(Mapping[str, HostData]):
    """host name -> HostData, each loaded on first access by ``load`` (then kept).

    The tracer reads only the hosts a packet visits, so a caller that fetches host state
    over the network pays only for those.
    """

    def __init__(self, names: Iterable[str], load: Callable[[str], HostData]) -> None:
        self._names = sorted(set(names))
        self._load = load
        self._loaded: dict[str, HostData] = {}

    def __getitem__(self, host: str) -> HostData:
        if host not in self._names:
            raise KeyError(host)
        if host not in self._loaded:
            self._loaded[host] = self._load(host)
        return self._loaded[host]

    def __contains__(self, host: object) -> bool:  # without loading it
        return host in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def loaded(self) -> dict[str, HostData]:
        """The hosts loaded so far."""
        return dict(self._loaded)


@dataclass(frozen=True)
class HostSwitch:
    """A host's compiled pipeline and the facts the walk looks up on it."""

    host: str
    data: HostData
    pipeline: ofsim.Pipeline
    integration_bridge: str
    tunnel_bridge: str  # the bridge that holds br-tun's tables: br-int when folded into it
    tunnel_table_offset: int  # br-tun's table N is ``tunnel_bridge``'s N + this
    mac_table: Mapping[str, str]
    uplinks: Mapping[str, str]  # external bridge -> its uplink port (on the segment)

    @classmethod
    def of(cls, data: HostData) -> HostSwitch:
        """Compile ``data``; raises ``ofsim.UnsupportedFlow`` for flows it cannot model."""
        integration = DEFAULT_BRIDGES.integration_bridge
        links = [link for ns in data.state.namespaces for link in bridge_links(ns)]
        if links:
            integration = links[0].bridge
        tunnel = DEFAULT_BRIDGES.tunnel_bridge
        folded = data.state.bridge(tunnel) is None  # its tables are br-int's (folding.py)
        bridges, uplinks = with_uplinks(data, (integration, tunnel))
        return cls(
            host=data.view.host,
            data=data,
            pipeline=ofsim.Pipeline(bridges),
            integration_bridge=integration,
            tunnel_bridge=integration if folded else tunnel,
            tunnel_table_offset=TUNNEL_TABLE_OFFSET if folded else 0,
            mac_table=learned_macs(data, integration),
            uplinks=uplinks,
        )

    @property
    def view(self) -> HostView:
        return self.data.view

    def tunnel_table(self, table: int) -> int:
        """The number on the switch of br-tun's ``table``."""
        return table + self.tunnel_table_offset

    @property
    def state(self) -> DesiredState:
        return self.data.state

    def bridge_ports(self, bridge: str) -> dict[str, OvsPort]:
        found = self.state.bridge(bridge)
        return {} if found is None else {p.name: p for p in found.ports}

    def vif_name(self, port_id: str) -> str:
        plugged = self.data.plugged or {}
        return plugged.get(port_id) or default_vif_name(port_id)

    def vif_plugged(self, port_id: str) -> bool:
        return self.vif_name(port_id) in self.bridge_ports(self.integration_bridge)

    def port(self, port_id: str) -> PortView | None:
        return next((p for p in self.view.ports if p.id == port_id), None)

    def router_link(self, ovs_port: str) -> tuple[NamespaceState, VethLink] | None:
        """The namespace device whose veth peer is ``ovs_port`` (``qrb-``, ``sg-``, ``qg-``,
        ``fg-`` bridge ends)."""
        for namespace in self.state.namespaces:
            for link in bridge_links(namespace):
                if link.peer == ovs_port:
                    return namespace, link
        return None

    def namespace_peer(self, namespace: NamespaceState,
                       device: str) -> tuple[NamespaceState, str] | None:
        """For ``device``, one end of a namespace-to-namespace veth: (the namespace of the
        other end, the other end's name)."""
        for link in namespace.peer_links:
            if link.name == device:
                peer_ns = self.state.namespace(link.peer_namespace)
                return None if peer_ns is None else (peer_ns, link.peer)
        for other in self.state.namespaces:
            for link in other.peer_links:
                if link.peer_namespace == namespace.name and link.peer == device:
                    return other, link.name
        return None

    def has_device(self, namespace: NamespaceState, device: str) -> bool:
        return (namespace_link(namespace, device) is not None
                or self.namespace_peer(namespace, device) is not None)

    def network_of_vlan(self, vlan: int | None) -> str | None:
        """The network whose local VLAN on this host is ``vlan``."""
        return next((net for net, tag in self.state.local_vlans if tag == vlan), None)

    def network_links(self, network_id: str) -> list[tuple[NamespaceState, VethLink]]:
        """Namespace devices attached to ``network_id`` (tagged with its local VLAN)."""
        vlan = self.state.local_vlan(network_id)
        if vlan is None:
            return []
        return [(ns, link) for ns in self.state.namespaces for link in bridge_links(ns)
                if link.tag == vlan]

    def external_patch(self) -> str | None:
        """The integration bridge's patch port towards an external bridge."""
        ports = self.bridge_ports(self.integration_bridge)
        for port in ports.values():
            if port.type == "patch":
                peer = dict(port.options).get("peer", "")
                if self.pipeline.bridge_of_port(peer) in self.uplinks:
                    return port.name
        return None

    def gateway_interface(
        self, subnet_id: str, gateway_ip: str | None
    ) -> tuple[RouterView, RouterInterfaceView] | None:
        """The local distributed router interface that is ``subnet_id``'s gateway."""
        found: list[tuple[RouterView, RouterInterfaceView]] = [
            (router, interface)
            for router in self.view.routers
            for interface in router.interfaces
            if interface.subnet_id == subnet_id
        ]
        exact = [f for f in found if gateway_ip is None or f[1].ip_address == gateway_ip]
        chosen = sorted(exact or found, key=lambda f: f[1].port_id)
        return chosen[0] if chosen else None

    def router_namespace(self, router_id: str) -> NamespaceState | None:
        return self.state.namespace(router_namespace_name(router_id))

    def host_by_tunnel_ip(self, tunnel_ip: str) -> str | None:
        """The host behind ``tunnel_ip`` as this host's view names it (L2 population)."""
        for network in self.view.networks:
            for remote in network.remote_hosts:
                if remote.tunnel_ip == tunnel_ip:
                    return remote.host
        return None


def learned_macs(data: HostData, integration_bridge: str) -> dict[str, str]:
    """MAC -> port of br-int's NORMAL: what a learning switch holds once traffic flowed.

    Local VIFs sit behind their tap, router interfaces behind their ``qrb-`` port, and
    every other MAC the host knows of (L2-population entries, static ARP entries) behind
    the patch port to br-tun.
    """
    bridge = data.state.bridge(integration_bridge)
    if bridge is None:
        return {}
    names = {p.name for p in bridge.ports}
    tunnel = data.state.bridge(DEFAULT_BRIDGES.tunnel_bridge)
    # br-tun's ports; folded into br-int, those on the dead VLAN, which NORMAL never uses
    tunnel_ports = ({p.name for p in tunnel.ports} if tunnel is not None else
                    {p.name for p in bridge.ports if is_folded_port(p)})
    patch = next((p.name for p in bridge.ports if p.type == "patch"
                  and p.name not in tunnel_ports
                  and dict(p.options).get("peer") in tunnel_ports), None)
    table: dict[str, str] = {}
    if patch is not None:
        remote = {e.mac_address for n in data.view.networks for r in n.remote_hosts
                  for e in r.entries}
        remote |= {a.mac_address for r in data.view.routers for a in r.arp_entries}
        table.update({mac.lower(): patch for mac in remote})
    plugged = data.plugged or {}
    for port in data.view.ports:
        name = plugged.get(port.id) or default_vif_name(port.id)
        if name in names:
            table[port.mac_address.lower()] = name
    for namespace in data.state.namespaces:
        for link in bridge_links(namespace):
            if link.bridge == integration_bridge and link.peer in names:
                table[link.mac_address.lower()] = link.peer
    return table


def namespace_link(namespace: NamespaceState, device: str) -> VethLink | None:
    """The namespace's veth ``device`` whose peer is a port on a bridge."""
    return next((link for link in namespace.links if link.name == device), None)


def bridge_links(namespace: NamespaceState) -> tuple[VethLink, ...]:
    """The namespace's veths whose peer is a port on a bridge."""
    return namespace.links


def with_uplinks(data: HostData, internal: tuple[str, ...]
                 ) -> tuple[tuple[BridgeState, ...], dict[str, str]]:
    """The host's bridges with every external bridge's uplink port present, and the uplinks."""
    bridges: list[BridgeState] = []
    uplinks: dict[str, str] = {}
    given = data.uplinks or {}
    for bridge in data.state.bridges:
        if bridge.name in internal:
            bridges.append(bridge)
            continue
        own = next((p.name for p in bridge.ports
                    if not p.managed and p.type not in ("patch", "vxlan")), None)
        name = own or given.get(bridge.name) or DEFAULT_UPLINK
        uplinks[bridge.name] = name
        if bridge.port(name) is None:
            ports = tuple(sorted(bridge.ports + (OvsPort(name=name, managed=False),)))
            bridge = replace(bridge, ports=ports)
        bridges.append(bridge)
    return tuple(bridges), uplinks

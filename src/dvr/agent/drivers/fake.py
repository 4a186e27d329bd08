"""In-memory drivers with the same interface as the real ones.

They model what matters for reconciling, including the ways the real things refuse
commands: OVSDB transactions and OpenFlow bundles are all-or-nothing; ``ovs-ofctl`` only
resolves names of ports that exist (and a flow keeps the port *number* it was installed
with); a route needs its device up and its gateway on a connected subnet; an address or
neighbor needs its device; a veth end needs its namespace; names are at most 15 bytes.
Deleting what is already gone succeeds, as in the real drivers.

Test helpers (not part of the driver interface): ``plug_vif``, ``send_packets``,
``stale_flows``, ``add_foreign_namespace``, ``learn_neighbor``.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from dvr.agent.desired.nftables import canonical_nat_rules
from dvr.agent.desired.openflow import port_text, render_actions, render_match
from dvr.agent.desired.state import Address, Flow, NatRule, Route, Rule
from dvr.agent.drivers.base import DriverError, Drivers, LinuxScope
from dvr.agent.drivers.flow_mirror import FlowTable, MirrorSnapshot
from dvr.agent.drivers.openflow import FlowEvent, MonitoredFlow, monitored_flow
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    AnnounceAddress,
    CreateNamespace,
    CreateVeth,
    CreateVethPair,
    DeleteAddress,
    DeleteBridge,
    DeleteLink,
    DeleteNamespace,
    DeleteNeighbor,
    DeletePort,
    DeleteRoute,
    DeleteRule,
    EnsureBridge,
    EnsurePort,
    FlowBundle,
    LinuxOp,
    OvsdbOp,
    ReplaceNatTable,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetPortTag,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.observed import (
    NEIGHBOR_PERMANENT,
    ObservedBridge,
    ObservedFlow,
    ObservedLink,
    ObservedLinux,
    ObservedNamespace,
    ObservedNeighbor,
    ObservedPort,
)

IFNAMSIZ = 15
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


# --- OVS --------------------------------------------------------------------------------


@dataclass
class _Port:
    name: str
    type: str
    options: dict[str, str]
    tag: int | None
    external_ids: dict[str, str]
    ofport: int


@dataclass
class _Flow:
    flow: Flow
    ofports: dict[str, int]  # port name -> number it resolved to when installed
    n_packets: int = 0


@dataclass
class _Bridge:
    datapath_type: str
    fail_mode: str
    external_ids: dict[str, str]
    ports: dict[str, _Port] = field(default_factory=dict)
    flows: list[_Flow] = field(default_factory=list)


class FakeOvsDriver:
    """The switch in memory.  With ``flow_mirror`` each bridge's flow changes are also
    replayed into a ``FlowTable`` as a flow monitor reports them, and an observation's
    flows carry its snapshot, as the real driver's do (the incremental plan's input)."""

    def __init__(self, flow_mirror: bool = False) -> None:
        self.bridges: dict[str, _Bridge] = {}
        self._next_ofport = 1
        self.transactions = 0
        self.bundles = 0
        self._port_listeners: list[Callable[[], None]] = []
        self.mirrors: dict[str, FlowTable] | None = {} if flow_mirror else None

    # -- driver interface ---------------------------------------------------------------
    def observe(self, bridges: Iterable[str], with_flows: bool = True
                ) -> tuple[ObservedBridge, ...]:
        found = []
        for name in bridges:
            bridge = self.bridges.get(name)
            if bridge is None:
                continue
            ports = tuple(
                ObservedPort(p.name, p.type, tuple(sorted(p.options.items())), p.tag,
                             tuple(sorted(p.external_ids.items())), p.ofport)
                for p in sorted(bridge.ports.values(), key=lambda p: p.name)
            )
            flows = tuple(sorted(_observed(f, bridge) for f in bridge.flows)) \
                if with_flows else ()
            found.append(ObservedBridge(name, bridge.datapath_type, bridge.fail_mode,
                                        tuple(sorted(bridge.external_ids.items())),
                                        ports, flows, self._snapshot(name) if with_flows
                                        else None))
        return tuple(found)

    def _snapshot(self, name: str) -> MirrorSnapshot | None:
        table = self.mirrors.get(name) if self.mirrors is not None else None
        if table is None or not table.consistent:
            return None
        ports = self.bridges[name].ports.values()
        return table.snapshot({p.ofport: p.name for p in ports})

    def transact(self, ops: Sequence[OvsdbOp]) -> None:
        bridges = copy.deepcopy(self.bridges)
        next_ofport = self._next_ofport
        for op in ops:
            next_ofport = self._apply_db(bridges, op, next_ofport)
        self.bridges, self._next_ofport = bridges, next_ofport
        self.transactions += 1
        self._ports_changed()

    def on_port_change(self, callback: Callable[[], None]) -> None:
        self._port_listeners.append(callback)

    def _ports_changed(self) -> None:
        for callback in list(self._port_listeners):
            callback()

    def apply_flows(self, bundle: FlowBundle) -> None:
        bridge = self.bridges.get(bundle.bridge)
        if bridge is None:
            raise DriverError(f"{bundle.bridge} is not a bridge or a socket")
        installed = []
        for flow in bundle.add:
            ofports = {}
            for name in sorted(flow.ports):
                if name not in bridge.ports:
                    raise DriverError(f"{name}: invalid or unknown port")
                ofports[name] = bridge.ports[name].ofport
            installed.append(_Flow(flow, ofports))
        deleted = {(ref.table, ref.cookie) for ref in bundle.delete}
        flows = [f for f in bridge.flows if (f.flow.table, f.flow.cookie) not in deleted]
        events = [FlowEvent("DELETED", _monitored(f)) for f in bridge.flows
                  if (f.flow.table, f.flow.cookie) in deleted]
        for new in installed:
            same = (new.flow.table, new.flow.priority, new.flow.match)
            flows = [f for f in flows
                     if (f.flow.table, f.flow.priority, f.flow.match) != same]
            flows.append(new)
            events.append(FlowEvent("ADDED", _monitored(new)))  # a replacement too
        bridge.flows = flows
        self.bundles += 1
        if self.mirrors is not None:
            table = self.mirrors.setdefault(bundle.bridge, FlowTable())
            for event in events:
                table.apply(event)

    # -- test helpers ---------------------------------------------------------------------
    def plug_vif(self, bridge: str, name: str, iface_id: str, tag: int | None = None) -> None:
        """A port plugged by somebody else (a hypervisor): no managed marker.  Like
        ``ovs-vsctl --may-exist add-br``, creates the bridge (standalone) if missing."""
        ops: list[OvsdbOp] = []
        if bridge not in self.bridges:
            ops.append(EnsureBridge(bridge, "netdev", ""))
        ops.append(EnsurePort(bridge, name, tag=tag, external_ids=(("iface-id", iface_id),)))
        self.transact(ops)

    def unplug_vif(self, name: str) -> None:
        for bridge in self.bridges.values():
            bridge.ports.pop(name, None)
        self._ports_changed()

    def send_packets(self, count: int = 1) -> None:
        """Every installed flow matches ``count`` more packets."""
        for bridge in self.bridges.values():
            for flow in bridge.flows:
                flow.n_packets += count

    def stale_flows(self, bridge: str) -> list[Flow]:
        """Flows installed for a port number that its port no longer has."""
        ports = self.bridges[bridge].ports
        return [f.flow for f in self.bridges[bridge].flows
                if any(name not in ports or ports[name].ofport != number
                       for name, number in f.ofports.items())]

    def flows(self, bridge: str) -> set[Flow]:
        return {f.flow for f in self.bridges[bridge].flows}

    # -- internals ------------------------------------------------------------------------
    def _apply_db(self, bridges: dict[str, _Bridge], op: OvsdbOp, next_ofport: int) -> int:
        if isinstance(op, EnsureBridge):
            bridge = bridges.setdefault(op.name, _Bridge(op.datapath_type, op.fail_mode, {}))
            bridge.datapath_type, bridge.fail_mode = op.datapath_type, op.fail_mode
            bridge.external_ids.update(op.external_ids)
        elif isinstance(op, EnsurePort):
            if op.bridge not in bridges:
                raise DriverError(f"no bridge named {op.bridge}")
            _check_name(op.name)
            where = _port_bridge(bridges, op.name)
            if where is not None and (op.recreate or where != op.bridge):
                del bridges[where].ports[op.name]
                where = None
            if where is None:
                bridges[op.bridge].ports[op.name] = _Port(
                    op.name, op.type, dict(op.options), op.tag, dict(op.external_ids),
                    next_ofport)
                return next_ofport + 1
            port = bridges[where].ports[op.name]
            port.type, port.options, port.tag = op.type, dict(op.options), op.tag
            port.external_ids.update(op.external_ids)
        elif isinstance(op, SetPortTag):
            where = _port_bridge(bridges, op.name)
            if where is None:
                raise DriverError(f"no port named {op.name}")
            bridges[where].ports[op.name].tag = op.tag
        elif isinstance(op, DeletePort):
            if op.bridge in bridges:
                bridges[op.bridge].ports.pop(op.name, None)
        elif isinstance(op, DeleteBridge):
            bridges.pop(op.name, None)
        else:
            raise DriverError(f"not an OVSDB command: {op!r}")
        return next_ofport


def _observed(installed: _Flow, bridge: _Bridge) -> ObservedFlow:
    """The flow as ``ovs-ofctl --names dump-flows`` reports it: each port by the name of the
    port that now has the number it was installed with, or by that number if none has."""
    by_number = {port.ofport: name for name, port in bridge.ports.items()}

    def now(name: str) -> str:
        number = installed.ofports[name]
        return by_number.get(number, str(number))

    def printed(name: str) -> str:
        current = now(name)
        return current if current.isdigit() else port_text(current)

    flow = installed.flow
    text = " ".join(p for p in (render_match(flow.match, printed),
                                f"actions={render_actions(flow.actions, printed)}") if p)
    return ObservedFlow(flow.cookie, flow.table, flow.priority, installed.n_packets,
                        installed.n_packets * 100, text,
                        tuple(sorted(now(name) for name in flow.ports)))


def _monitored(installed: _Flow) -> MonitoredFlow:
    return monitored_flow(installed.flow, installed.ofports)


def _port_bridge(bridges: dict[str, _Bridge], name: str) -> str | None:
    return next((b for b, bridge in bridges.items() if name in bridge.ports), None)


def _check_name(name: str) -> None:
    if not name or len(name.encode()) > IFNAMSIZ:
        raise DriverError(f"invalid device name {name!r} (1..{IFNAMSIZ} bytes)")


# --- Linux ------------------------------------------------------------------------------


@dataclass
class _Link:
    name: str
    kind: str
    mac_address: str
    mtu: int
    up: bool
    tx_checksumming: bool
    peer: tuple[str | None, str] | None = None  # (namespace, name) of the other veth end


@dataclass
class _Namespace:
    links: dict[str, _Link] = field(default_factory=dict)
    addresses: set[Address] = field(default_factory=set)
    routes: dict[tuple[int, int, str], Route] = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)
    neighbors: dict[tuple[str, str], ObservedNeighbor] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=lambda: {"net.ipv4.ip_forward": "0"})

    def forget_device(self, device: str) -> None:
        self.links.pop(device, None)
        self.addresses = {a for a in self.addresses if a.device != device}
        self.routes = {k: r for k, r in self.routes.items() if r.device != device}
        self.neighbors = {k: n for k, n in self.neighbors.items() if n.device != device}


def _route_key(route: Route) -> tuple[int, int, str]:
    if route.destination != "default":
        family = ipaddress.ip_network(route.destination, strict=False).version
    elif route.via:
        family = ipaddress.ip_address(route.via).version
    else:
        family = 4
    return family, route.table, route.destination


class FakeLinuxDriver:
    def __init__(self) -> None:
        self.host = _Namespace()  # the host's own namespace (bridge ends of veths)
        self.namespaces: dict[str, _Namespace] = {}
        self.applied = 0
        self.deleted_namespaces: set[str] = set()  # a NAT table dies with its namespace
        self.announced: list[tuple[str, str, str]] = []  # (namespace, device, ip) sent

    # -- driver interface ---------------------------------------------------------------
    def observe(self, scope: LinuxScope) -> ObservedLinux:
        names = sorted(n for n in self.namespaces
                       if n.startswith(scope.namespace_prefixes) or n in scope.namespaces)
        namespaces = tuple(self._observe_ns(n, scope.sysctl_keys) for n in names)
        host_links = tuple(_observe_link(self.host.links[n])
                           for n in sorted(scope.host_links) if n in self.host.links)
        return ObservedLinux(namespaces, host_links)

    def apply(self, op: LinuxOp) -> None:
        handler = getattr(self, f"_do_{type(op).__name__}", None)
        if handler is None:
            raise DriverError(f"not a Linux command: {op!r}")
        handler(op)
        self.applied += 1

    # -- test helpers ---------------------------------------------------------------------
    def add_foreign_namespace(self, name: str) -> None:
        self.namespaces[name] = _Namespace()

    def learn_neighbor(self, namespace: str, device: str, ip: str, mac: str | None,
                       state: str = "reachable") -> None:
        ns = self._ns(namespace)
        ns.neighbors[(device, ip)] = ObservedNeighbor(device, ip, mac, state)

    # -- internals ------------------------------------------------------------------------
    def _ns(self, name: str | None) -> _Namespace:
        if name is None:
            return self.host
        if name not in self.namespaces:
            raise DriverError(f"Cannot open network namespace {name!r}: no such file")
        return self.namespaces[name]

    def _link(self, namespace: str | None, name: str) -> _Link:
        link = self._ns(namespace).links.get(name)
        if link is None:
            raise DriverError(f"Cannot find device {name!r} in {namespace or 'host'}")
        return link

    def _observe_ns(self, name: str, sysctl_keys: Sequence[str]) -> ObservedNamespace:
        ns = self.namespaces[name]
        return ObservedNamespace(
            name=name,
            links=tuple(_observe_link(link) for _, link in sorted(ns.links.items())),
            addresses=tuple(sorted(ns.addresses)),
            routes=tuple(sorted(ns.routes.values())),
            rules=tuple(ns.rules),
            neighbors=tuple(sorted(ns.neighbors.values())),
            sysctls=tuple((k, ns.sysctls[k]) for k in sysctl_keys if k in ns.sysctls),
        )

    def _do_CreateNamespace(self, op: CreateNamespace) -> None:
        if op.name in self.namespaces:
            raise DriverError(f"Cannot create namespace file {op.name!r}: File exists")
        self.namespaces[op.name] = _Namespace()

    def _do_DeleteNamespace(self, op: DeleteNamespace) -> None:
        self.deleted_namespaces.add(op.name)
        ns = self.namespaces.pop(op.name, None)
        if ns is None:
            return
        for link in ns.links.values():
            self._forget_peer(link)

    def _do_CreateVeth(self, op: CreateVeth) -> None:
        ns = self._ns(op.namespace)
        _check_name(op.name)
        _check_name(op.peer)
        if not _MAC.match(op.mac_address):
            raise DriverError(f"invalid MAC {op.mac_address!r}")
        if op.name in ns.links or op.peer in self.host.links:
            raise DriverError(f"RTNETLINK answers: File exists ({op.name}/{op.peer})")
        ns.links[op.name] = _Link(op.name, "veth", op.mac_address, op.mtu, True, False,
                                  (None, op.peer))
        self.host.links[op.peer] = _Link(op.peer, "veth", "fe:00:00:00:00:01", op.mtu, True,
                                         True, (op.namespace, op.name))

    def _do_CreateVethPair(self, op: CreateVethPair) -> None:
        ns, peer_ns = self._ns(op.namespace), self._ns(op.peer_namespace)
        _check_name(op.name)
        _check_name(op.peer)
        if op.name in ns.links or op.peer in peer_ns.links:
            raise DriverError(f"RTNETLINK answers: File exists ({op.name}/{op.peer})")
        ns.links[op.name] = _Link(op.name, "veth", "fe:00:00:00:00:02", op.mtu, True, True,
                                  (op.peer_namespace, op.peer))
        peer_ns.links[op.peer] = _Link(op.peer, "veth", "fe:00:00:00:00:03", op.mtu, True,
                                       True, (op.namespace, op.name))

    def _do_AnnounceAddress(self, op: AnnounceAddress) -> None:
        self._link(op.namespace, op.device)
        self.announced.append((op.namespace, op.device, op.ip_address))

    def _do_SetLink(self, op: SetLink) -> None:
        link = self._link(op.namespace, op.name)
        ns = self._ns(op.namespace)
        if op.mac_address is not None or (link.up and not op.up):
            # like the kernel: setting a MAC (even the same one) or taking the device down
            # flushes its neighbor entries, PERMANENT ones included
            ns.neighbors = {k: n for k, n in ns.neighbors.items() if n.device != op.name}
        if op.mac_address is not None:
            link.mac_address = op.mac_address
        if op.mtu is not None:
            link.mtu = op.mtu
        link.up = op.up

    def _do_DeleteLink(self, op: DeleteLink) -> None:
        ns = self._ns(op.namespace)
        link = ns.links.get(op.name)
        if link is None:
            return
        ns.forget_device(op.name)
        self._forget_peer(link)

    def _forget_peer(self, link: _Link) -> None:
        if link.peer is None:
            return
        namespace, name = link.peer
        peer_ns = self.host if namespace is None else self.namespaces.get(namespace)
        if peer_ns is not None:
            peer_ns.forget_device(name)

    def _do_SetTxChecksumming(self, op: SetTxChecksumming) -> None:
        self._link(op.namespace, op.device).tx_checksumming = op.enabled

    def _do_SetSysctl(self, op: SetSysctl) -> None:
        self._ns(op.namespace).sysctls[op.key] = op.value

    def _do_AddAddress(self, op: AddAddress) -> None:
        ns = self._ns(op.namespace)
        self._link(op.namespace, op.address.device)
        if op.address in ns.addresses:
            raise DriverError(f"RTNETLINK answers: File exists ({op.address.cidr})")
        ns.addresses.add(op.address)

    def _do_DeleteAddress(self, op: DeleteAddress) -> None:
        self._ns(op.namespace).addresses.discard(op.address)

    def _do_ReplaceRoute(self, op: ReplaceRoute) -> None:
        ns = self._ns(op.namespace)
        link = self._link(op.namespace, op.route.device)
        if not link.up:
            raise DriverError(f"RTNETLINK answers: Network is down ({op.route.device})")
        if op.route.via:
            via = ipaddress.ip_address(op.route.via)
            connected = [ipaddress.ip_interface(a.cidr).network for a in ns.addresses
                         if a.device == op.route.device]
            if op.route.scope != "link" and not any(via in net for net in connected):
                raise DriverError(f"RTNETLINK answers: Nexthop has invalid gateway ({via})")
        ns.routes[_route_key(op.route)] = op.route

    def _do_DeleteRoute(self, op: DeleteRoute) -> None:
        self._ns(op.namespace).routes.pop(_route_key(op.route), None)

    def _do_AddRule(self, op: AddRule) -> None:
        ns = self._ns(op.namespace)
        if op.rule in ns.rules:
            raise DriverError(f"RTNETLINK answers: File exists ({op.rule})")
        ns.rules.append(op.rule)

    def _do_DeleteRule(self, op: DeleteRule) -> None:
        ns = self._ns(op.namespace)
        if op.rule in ns.rules:
            ns.rules.remove(op.rule)

    def _do_ReplaceNeighbor(self, op: ReplaceNeighbor) -> None:
        ns = self._ns(op.namespace)
        self._link(op.namespace, op.neighbor.device)
        n = op.neighbor
        ns.neighbors[(n.device, n.ip_address)] = ObservedNeighbor(
            n.device, n.ip_address, n.mac_address, NEIGHBOR_PERMANENT)

    def _do_DeleteNeighbor(self, op: DeleteNeighbor) -> None:
        self._ns(op.namespace).neighbors.pop((op.device, op.ip_address), None)


def _observe_link(link: _Link) -> ObservedLink:
    return ObservedLink(link.name, link.kind, link.mac_address, link.mtu, link.up,
                        link.tx_checksumming)


class FakeNatDriver:
    """nftables tables per namespace of a ``FakeLinuxDriver``: rules are kept as nft lists
    them back (``canonical_nat_rules``); a table in a namespace that is gone is gone."""

    def __init__(self, linux: FakeLinuxDriver) -> None:
        self.linux = linux
        self.tables: dict[str, tuple[NatRule, ...]] = {}
        self.applied = 0

    def observe(self, namespaces: Iterable[str]) -> dict[str, tuple[NatRule, ...] | None]:
        self._forget_deleted()
        return {name: self.tables.get(name, ()) for name in namespaces
                if name in self.linux.namespaces}

    def _forget_deleted(self) -> None:
        for name in self.linux.deleted_namespaces:
            self.tables.pop(name, None)
        self.linux.deleted_namespaces.clear()

    def apply(self, op: ReplaceNatTable) -> None:
        self._forget_deleted()
        if op.namespace not in self.linux.namespaces:
            raise DriverError(f"Cannot open network namespace {op.namespace!r}")
        self.tables[op.namespace] = canonical_nat_rules(op.rules)
        self.applied += 1

    def rules(self, namespace: str) -> tuple[NatRule, ...]:
        """The rules the namespace's table holds now (``()`` without a table or namespace)."""
        self._forget_deleted()
        if namespace not in self.linux.namespaces:
            return ()
        return self.tables.get(namespace, ())


def fake_drivers() -> Drivers:
    """A fresh in-memory host: fake OVS, fake Linux and fake nftables."""
    linux = FakeLinuxDriver()
    return Drivers(ovs=FakeOvsDriver(), linux=linux, nat=FakeNatDriver(linux))

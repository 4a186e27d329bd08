"""The Linux driver: namespaces, veths, addresses, routes, rules, neighbors (netlink through
pyroute2), sysctls and TX checksum offload.

It runs in the host's own namespaces (on a lab host: inside ``HostEnv.command``), names
namespaces by files in ``netns_dir`` (``/run/netns``, private per lab host), and puts the
bridge end of every veth into the namespace the driver runs in.

Kernel-made things are not reported: connected and local routes (``proto kernel``, table
local), the three default rules, IPv6 link-local addresses, NOARP neighbor entries, ``lo``.
Routes the driver installs carry ``proto static``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dvr.agent.desired.state import Address, Route, Rule
from dvr.agent.drivers import netns, rtnl_neighbors
from dvr.agent.drivers.base import DriverError, LinuxScope
from dvr.agent.drivers.namespace_mirror import (
    KeptHostLinks,
    SeenNamespace,
    caught_up,
    names_kept_link,
)
from dvr.agent.drivers.netlink_watch import (
    LINK_GROUPS,
    NETLINK_ROUTE,
    ROUTE_GROUPS,
    ChangeWatch,
    link_notices,
    route_messages,
)
from dvr.agent.reconcile.commands import (
    AddAddress,
    AddRule,
    AnnounceAddress,
    CreateNamespace,
    CreateVeth,
    CreateVethPair,
    DeleteAddress,
    DeleteLink,
    DeleteNamespace,
    DeleteNeighbor,
    DeleteRoute,
    DeleteRule,
    LinuxOp,
    ReplaceNeighbor,
    ReplaceRoute,
    SetLink,
    SetSysctl,
    SetTxChecksumming,
)
from dvr.agent.reconcile.observed import (
    ObservedLink,
    ObservedLinux,
    ObservedNamespace,
    ObservedNeighbor,
)

IFF_UP = 0x1
RTPROT_BOOT, RTPROT_STATIC = 3, 4
RT_TABLE_LOCAL = 255
RTN_UNICAST = 1
RT_SCOPE_LINK = 253
NUD_NOARP = 0x40
NUD_NAMES = {0x01: "incomplete", 0x02: "reachable", 0x04: "stale", 0x08: "delay",
             0x10: "probe", 0x20: "failed", 0x40: "noarp", 0x80: "permanent"}
KERNEL_DEFAULT_RULES = {(0, 255), (32766, 254), (32767, 253)}
# errors that mean "already gone" for a delete
GONE = {errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL}
NETLINK_TIMEOUT = 10.0  # seconds a neighbor request waits for the kernel's answer


@dataclass(frozen=True)
class LinuxConfig:
    netns_dir: Path = Path("/run/netns")
    # keep each reading between observations, caught up from netlink notifications
    # (``namespace_mirror``); False: read every namespace every time
    follow_changes: bool = True


class LinuxDriver:
    """``close()`` ends the notification sockets of the readings it keeps."""

    def __init__(self, config: LinuxConfig = LinuxConfig()):
        self.config = config
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[ChangeWatch, SeenNamespace | None]] = {}
        self._host: tuple[ChangeWatch, KeptHostLinks | None] | None = None
        self._deleting: list[Callable[[str], None]] = []

    def on_namespace_delete(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(name)`` just before the driver deletes a namespace: whoever
        holds a socket in it (a notification watch) closes it, so the namespace and its
        devices go at once, not when the last socket does."""
        self._deleting.append(callback)

    def netns_path(self, namespace: str | None) -> Path | None:
        return None if namespace is None else self.config.netns_dir / namespace

    @contextmanager
    def _rtnl(self, namespace: str | None) -> Iterator[socket.socket]:
        """A route netlink socket in ``namespace``; a refusal becomes a ``DriverError``."""
        path = self.netns_path(namespace)
        if path is not None and not path.exists():
            raise DriverError(f"Cannot open network namespace {namespace!r}: no such file")
        try:
            sock = netns.socket_in(path, socket.AF_NETLINK, socket.SOCK_DGRAM)
        except OSError as error:
            raise DriverError(f"cannot enter namespace {namespace!r}: {error}") from error
        try:
            yield sock
        except NetlinkError as error:
            raise DriverError(f"{namespace or 'host'}: netlink error {error.code}: "
                              f"{os.strerror(error.code)}") from error
        except OSError as error:  # the socket's own failures, e.g. its timeout
            raise DriverError(f"{namespace or 'host'}: netlink: {error}") from error
        finally:
            sock.close()

    @contextmanager
    def _ipr(self, namespace: str | None) -> Iterator[IPRoute]:
        with self._rtnl(namespace) as sock:
            ipr = IPRoute(fileno=sock.detach())
            try:
                yield ipr
            finally:
                ipr.close()

    # -- observe ----------------------------------------------------------------------------
    def list_namespaces(self) -> list[str]:
        try:
            return sorted(os.listdir(self.config.netns_dir))
        except FileNotFoundError:
            return []

    def observe(self, scope: LinuxScope) -> ObservedLinux:
        names = [n for n in self.list_namespaces()
                 if n.startswith(scope.namespace_prefixes) or n in scope.namespaces]
        with self._lock:
            for gone in set(self._kept) - set(names):
                self._forget(gone)
            namespaces = []
            for name in names:
                try:
                    namespaces.append(self._observe_namespace(name, scope.sysctl_keys))
                except DriverError:
                    self._forget(name)
                    continue  # vanished while we looked: it is not there
            host_links: tuple[ObservedLink, ...] = ()
            if scope.host_links:
                host_links = self._host_links(frozenset(scope.host_links))
        return ObservedLinux(tuple(namespaces), host_links)

    def observe_namespace(self, name: str,
                          sysctl_keys: tuple[str, ...] = ()) -> ObservedNamespace:
        with self._lock:
            return self._observe_namespace(name, sysctl_keys)

    def _observe_namespace(self, name: str, sysctl_keys: tuple[str, ...]) -> ObservedNamespace:
        path = self.netns_path(name)
        seen = self._seen(name)
        sysctls = tuple((key, value) for key in sysctl_keys
                        if (value := netns.read_sysctl(path, key)) is not None)
        return ObservedNamespace(name, seen.links, seen.addresses, seen.routes, seen.rules,
                                 seen.neighbors, sysctls)

    def _seen(self, name: str) -> SeenNamespace:
        """The namespace as it is: the kept reading caught up with what changed since, or
        (the first time, after a change other than a neighbor's, a lost notification or an
        error) a new reading."""
        if not self.config.follow_changes:
            return self._read_namespace(name)
        path = self.netns_path(name)
        watch, seen = self._kept.get(name, (None, None))
        if watch is not None and not watch.is_for(path):
            self._forget(name)  # another namespace by that name now
            watch = seen = None
        if watch is None:
            try:  # listen first: a change made while reading is not missed
                watch = ChangeWatch(path, NETLINK_ROUTE, ROUTE_GROUPS)
            except OSError:  # gone (the reading says so), or no socket: read every time
                return self._read_namespace(name)
            self._kept[name] = (watch, None)
        chunks = watch.drain()
        if seen is not None and chunks is not None:
            seen = caught_up(seen, route_messages(chunks), _neighbor)
        else:
            seen = None
        if seen is None:
            seen = self._read_namespace(name)
        self._kept[name] = (watch, seen)
        return seen

    def _read_namespace(self, name: str) -> SeenNamespace:
        with self._ipr(name) as ipr:
            raw_links = ipr.get_links()
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in raw_links}
            with self._ethtool_socket(name) as sock:
                links = tuple(sorted(
                    _link(link, sock) for link in raw_links
                    if link.get_attr("IFLA_IFNAME") != "lo"))
            addresses = tuple(sorted(_addresses(ipr, names)))
            routes = tuple(sorted(_routes(ipr, names)))
            rules = tuple(_rules(ipr))
            neighbors = tuple(sorted(
                found for message in ipr.get_neighbours()
                if (found := _neighbor(message, names)) is not None))
        return SeenNamespace(names, links, addresses, routes, rules, neighbors)

    def _host_links(self, wanted: frozenset[str]) -> tuple[ObservedLink, ...]:
        """The links of the driver's own namespace named ``wanted``, sorted: kept while no
        link notification names one of them and the names asked for stay the same."""
        if not self.config.follow_changes:
            return self._read_host_links(wanted).links
        if self._host is None:
            try:
                self._host = (ChangeWatch(None, NETLINK_ROUTE, LINK_GROUPS), None)
            except OSError:  # no socket: read every time
                return self._read_host_links(wanted).links
        watch, kept = self._host
        chunks = watch.drain()
        if (kept is None or kept.wanted != wanted or chunks is None
                or names_kept_link(link_notices(chunks), wanted, kept.indexes)):
            kept = self._read_host_links(wanted)
            self._host = (watch, kept)
        return kept.links

    def _read_host_links(self, wanted: frozenset[str]) -> KeptHostLinks:
        with self._ipr(None) as ipr, self._ethtool_socket(None) as sock:
            found = [(link["index"], _link(link, sock)) for link in ipr.get_links()
                     if link.get_attr("IFLA_IFNAME") in wanted]
        return KeptHostLinks(wanted, frozenset(index for index, _ in found),
                             tuple(sorted(link for _, link in found)))

    def _forget(self, name: str) -> None:
        watch, _ = self._kept.pop(name, (None, None))
        if watch is not None:
            watch.close()

    def forget_all(self) -> None:
        """Read everything afresh next time (after an error)."""
        with self._lock:
            for name in list(self._kept):
                self._forget(name)
            if self._host is not None:
                self._host = (self._host[0], None)

    def close(self) -> None:
        self.forget_all()
        with self._lock:
            if self._host is not None:
                self._host[0].close()
                self._host = None

    @contextmanager
    def _ethtool_socket(self, namespace: str | None) -> Iterator[socket.socket]:
        sock = netns.socket_in(self.netns_path(namespace), socket.AF_INET, socket.SOCK_DGRAM)
        try:
            yield sock
        finally:
            sock.close()

    # -- apply ------------------------------------------------------------------------------
    def apply(self, op: LinuxOp) -> None:
        handler = getattr(self, f"_do_{type(op).__name__}", None)
        if handler is None:
            raise DriverError(f"not a Linux command: {op!r}")
        try:
            handler(op)
        except OSError as error:
            self.forget_all()
            raise DriverError(f"{type(op).__name__}: {error}") from error
        except DriverError:
            self.forget_all()
            raise

    def _index(self, ipr: IPRoute, name: str, namespace: str | None) -> int:
        found = ipr.link_lookup(ifname=name)
        if not found:
            raise DriverError(f"Cannot find device {name!r} in {namespace or 'host'}")
        return found[0]

    def _do_CreateNamespace(self, op: CreateNamespace) -> None:
        path = self.netns_path(op.name)
        if path.exists():
            raise DriverError(f"Cannot create namespace file {str(path)!r}: File exists")
        netns.create_named(path)
        with self._ipr(op.name) as ipr:
            ipr.link("set", index=self._index(ipr, "lo", op.name), state="up")

    def _do_DeleteNamespace(self, op: DeleteNamespace) -> None:
        with self._lock:
            self._forget(op.name)
        for callback in self._deleting:
            callback(op.name)
        path = self.netns_path(op.name)
        if path.exists():
            netns.delete_named(path)

    def _do_CreateVeth(self, op: CreateVeth) -> None:
        own = os.open(netns.THREAD_NETNS, os.O_RDONLY)  # the bridge end stays here
        try:
            with self._ipr(op.namespace) as ipr:
                ipr.link("add", ifname=op.name, kind="veth", mtu=op.mtu,
                         address=op.mac_address, peer={"ifname": op.peer, "net_ns_fd": own})
                ipr.link("set", index=self._index(ipr, op.name, op.namespace), state="up")
        finally:
            os.close(own)
        with self._ipr(None) as ipr:
            ipr.link("set", index=self._index(ipr, op.peer, None), mtu=op.mtu, state="up")
        self._do_SetTxChecksumming(SetTxChecksumming(op.namespace, op.name, False))

    def _do_CreateVethPair(self, op: CreateVethPair) -> None:
        peer_path = self.netns_path(op.peer_namespace)
        if not peer_path.exists():
            raise DriverError(f"Cannot open network namespace {op.peer_namespace!r}")
        peer_fd = os.open(str(peer_path), os.O_RDONLY)
        try:
            with self._ipr(op.namespace) as ipr:
                ipr.link("add", ifname=op.name, kind="veth", mtu=op.mtu,
                         peer={"ifname": op.peer, "net_ns_fd": peer_fd, "mtu": op.mtu})
                ipr.link("set", index=self._index(ipr, op.name, op.namespace), state="up")
        finally:
            os.close(peer_fd)
        with self._ipr(op.peer_namespace) as ipr:
            ipr.link("set", index=self._index(ipr, op.peer, op.peer_namespace), mtu=op.mtu,
                     state="up")

    def _do_AnnounceAddress(self, op: AnnounceAddress) -> None:
        with self._ipr(op.namespace) as ipr:
            [link] = ipr.get_links(self._index(ipr, op.device, op.namespace))
            mac = link.get_attr("IFLA_ADDRESS")
        netns.send_gratuitous_arp(self.netns_path(op.namespace), op.device, mac, op.ip_address)

    def _do_SetLink(self, op: SetLink) -> None:
        with self._ipr(op.namespace) as ipr:
            index = self._index(ipr, op.name, op.namespace)
            settings = {}
            if op.mac_address is not None:
                settings["address"] = op.mac_address
            if op.mtu is not None:
                settings["mtu"] = op.mtu
            ipr.link("set", index=index, state="up" if op.up else "down", **settings)

    def _do_DeleteLink(self, op: DeleteLink) -> None:
        with self._ipr(op.namespace) as ipr:
            found = ipr.link_lookup(ifname=op.name)
            if found:
                _ignore_gone(lambda: ipr.link("del", index=found[0]))

    def _do_SetTxChecksumming(self, op: SetTxChecksumming) -> None:
        with self._ethtool_socket(op.namespace) as sock:
            netns.set_tx_checksumming(sock, op.device, op.enabled)

    def _do_SetSysctl(self, op: SetSysctl) -> None:
        netns.write_sysctl(self.netns_path(op.namespace), op.key, op.value)

    def _do_AddAddress(self, op: AddAddress) -> None:
        interface = ipaddress.ip_interface(op.address.cidr)
        with self._ipr(op.namespace) as ipr:
            ipr.addr("add", index=self._index(ipr, op.address.device, op.namespace),
                     address=str(interface.ip), prefixlen=interface.network.prefixlen)

    def _do_DeleteAddress(self, op: DeleteAddress) -> None:
        interface = ipaddress.ip_interface(op.address.cidr)
        with self._ipr(op.namespace) as ipr:
            found = ipr.link_lookup(ifname=op.address.device)
            if found:
                _ignore_gone(lambda: ipr.addr("del", index=found[0], address=str(interface.ip),
                                              prefixlen=interface.network.prefixlen))

    def _route_args(self, ipr: IPRoute, namespace: str, route: Route) -> dict:
        args = {"table": route.table, "proto": RTPROT_STATIC,
                "oif": self._index(ipr, route.device, namespace)}
        if route.destination == "default":
            version = ipaddress.ip_address(route.via).version if route.via else 4
            args["dst"] = "0.0.0.0/0" if version == 4 else "::/0"
        else:
            network = ipaddress.ip_network(route.destination, strict=False)
            version = network.version
            args["dst"] = str(network)
        args["family"] = socket.AF_INET if version == 4 else socket.AF_INET6
        if route.via:
            args["gateway"] = route.via
        if route.scope == "link":
            args["scope"] = RT_SCOPE_LINK
        return args

    def _do_ReplaceRoute(self, op: ReplaceRoute) -> None:
        with self._ipr(op.namespace) as ipr:
            ipr.route("replace", **self._route_args(ipr, op.namespace, op.route))

    def _do_DeleteRoute(self, op: DeleteRoute) -> None:
        with self._ipr(op.namespace) as ipr:
            if not ipr.link_lookup(ifname=op.route.device):
                return  # the device took its routes with it
            args = self._route_args(ipr, op.namespace, op.route)
            _ignore_gone(lambda: ipr.route("del", **args))

    def _rule_args(self, rule: Rule) -> dict:
        args: dict = {"priority": rule.priority, "table": rule.table}
        family = socket.AF_INET
        if rule.source:
            network = ipaddress.ip_network(rule.source, strict=False)
            family = socket.AF_INET if network.version == 4 else socket.AF_INET6
            args.update(src=str(network.network_address), src_len=network.prefixlen)
        if rule.iif:
            args["iifname"] = rule.iif
        args["family"] = family
        return args

    def _do_AddRule(self, op: AddRule) -> None:
        with self._ipr(op.namespace) as ipr:
            ipr.rule("add", **self._rule_args(op.rule))

    def _do_DeleteRule(self, op: DeleteRule) -> None:
        with self._ipr(op.namespace) as ipr:
            _ignore_gone(lambda: ipr.rule("del", **self._rule_args(op.rule)))

    def _do_ReplaceNeighbor(self, op: ReplaceNeighbor) -> None:
        n = op.neighbor
        with self._rtnl(op.namespace) as sock:
            sock.settimeout(NETLINK_TIMEOUT)
            index = rtnl_neighbors.link_index(sock, n.device)
            if index is None:
                raise DriverError(f"Cannot find device {n.device!r} in {op.namespace or 'host'}")
            rtnl_neighbors.set_neighbor(sock, index, n.ip_address, n.mac_address)

    def _do_DeleteNeighbor(self, op: DeleteNeighbor) -> None:
        with self._rtnl(op.namespace) as sock:
            sock.settimeout(NETLINK_TIMEOUT)
            index = rtnl_neighbors.link_index(sock, op.device)
            if index is not None:
                _ignore_gone(lambda: rtnl_neighbors.set_neighbor(sock, index, op.ip_address,
                                                                 None))


def _ignore_gone(call) -> None:
    try:
        call()
    except NetlinkError as error:
        if error.code not in GONE:
            raise


# --- netlink messages -> observed values -----------------------------------------------------


def _link(message, sock: socket.socket) -> ObservedLink:
    name = message.get_attr("IFLA_IFNAME")
    return ObservedLink(
        name=name,
        kind=message.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") or "",
        mac_address=(message.get_attr("IFLA_ADDRESS") or "").lower(),
        mtu=message.get_attr("IFLA_MTU") or 0,
        up=bool(message["flags"] & IFF_UP),
        tx_checksumming=netns.tx_checksumming(sock, name),
    )


def _addresses(ipr: IPRoute, names: dict[int, str]) -> Iterator[Address]:
    for message in ipr.get_addr():
        device = names.get(message["index"])
        if device is None or device == "lo":
            continue
        ip = message.get_attr("IFA_LOCAL") or message.get_attr("IFA_ADDRESS")
        if ip is None:
            continue
        address = ipaddress.ip_address(ip)
        if address.version == 6 and address.is_link_local:
            continue  # the kernel's own (IPv4 link-local ones are ours: rfp-/fpr- pairs)
        yield Address(device, f"{ip}/{message['prefixlen']}")


def _routes(ipr: IPRoute, names: dict[int, str]) -> Iterator[Route]:
    for family in (socket.AF_INET, socket.AF_INET6):
        for message in ipr.get_routes(family=family):
            table = message.get_attr("RTA_TABLE") or message["table"]
            if (message["proto"] not in (RTPROT_BOOT, RTPROT_STATIC) or table == RT_TABLE_LOCAL
                    or message["type"] != RTN_UNICAST):
                continue
            device = names.get(message.get_attr("RTA_OIF"))
            if device is None:
                continue  # multipath or device-less routes are not ours
            if message["dst_len"] == 0:
                destination = "default"
            else:
                destination = f"{message.get_attr('RTA_DST')}/{message['dst_len']}"
            yield Route(
                destination=destination,
                device=device,
                via=message.get_attr("RTA_GATEWAY"),
                table=table,
                scope="link" if message["scope"] == RT_SCOPE_LINK else "universe",
            )


def _rules(ipr: IPRoute) -> Iterator[Rule]:
    for family in (socket.AF_INET, socket.AF_INET6):
        for message in ipr.get_rules(family=family):
            priority = message.get_attr("FRA_PRIORITY") or 0
            table = message.get_attr("FRA_TABLE") or message["table"]
            source = message.get_attr("FRA_SRC")
            iif = message.get_attr("FRA_IIFNAME")
            if source is None and iif is None and (priority, table) in KERNEL_DEFAULT_RULES:
                continue
            yield Rule(priority, table,
                       f"{source}/{message['src_len']}" if source is not None else None, iif)


def _neighbor(message, names: Mapping[int, str]) -> ObservedNeighbor | None:
    """A neighbor as a dump reports it (None: left out: unknown device, no address, NOARP)."""
    state = message["state"]
    device = names.get(message["ifindex"])
    ip = message.get_attr("NDA_DST")
    if device is None or ip is None or state & NUD_NOARP:
        return None
    highest = max((bit for bit in NUD_NAMES if state & bit), default=0)
    mac = message.get_attr("NDA_LLADDR")
    return ObservedNeighbor(device, ip, mac.lower() if mac else None,
                            NUD_NAMES.get(highest, "none"))

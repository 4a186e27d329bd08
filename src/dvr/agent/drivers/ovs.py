"""The Open vSwitch driver: OVSDB through ovsdbapp, OpenFlow through ``ovs-ofctl --bundle``.

- OVSDB: one ovsdbapp connection (``unix:<rundir>/db.sock`` or any OVSDB remote); a batch of
  commands is one transaction, which returns once ovs-vswitchd has applied it (the numbers
  of new ports are read next) -- but a batch of VIF tags alone returns once ovsdb-server
  has committed it: nothing the agent does next waits for ovs-vswitchd's reconfiguration,
  which it makes moments later (and which costs a busy switch several milliseconds).
- OpenFlow bundles: over one long-lived OpenFlow 1.5 connection per bridge to its
  management socket (``ofconn``, the messages from ``ofwire``: what ovs-ofctl would send,
  without starting a process per bundle).  Where that cannot be used -- a flow the encoder
  cannot express, no connection, ``openflow_connection`` off -- ``ovs-ofctl -O OpenFlow15
  --bundle add-flows <bridge> -`` with ``OVS_RUNDIR`` set, one run per bundle (the reason
  is logged once per bridge).  Typed flows name ports by *name*; the driver binds names
  to the numbers OVSDB reports.  ovs-ofctl then runs with ``--no-names`` (it would
  otherwise ask the switch for its ports on a second connection, the larger part of its
  run time); a name OVSDB does not know is left to ovs-ofctl to resolve or refuse (an
  unknown name fails the whole bundle, nothing is applied).  A bundle the switch refuses
  is refused as a whole either way, and the error names the switch's reason and flow.
- Flows are observed from a mirror kept per bridge by a long-lived ``ovs-ofctl monitor``
  (``flow_monitor``), synced by a barrier before each observation; where none is in sync
  (``flow_mirror`` off, the monitor died or lags) with ``dump-flows``.  Either way the
  ports are named as ``ovs-ofctl --names`` prints them (``openflow``).
- Changes to the ports of any bridge (seen by the OVSDB connection as they happen) are
  announced to the callbacks given to ``on_port_change``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovs.db import idl as ovs_idl
from ovsdbapp.backend.ovs_idl import command as ovs_command
from ovsdbapp.backend.ovs_idl import connection, idlutils
from ovsdbapp.backend.ovs_idl import transaction as ovs_transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from dvr.agent.drivers.base import DriverError
from dvr.agent.drivers.children import ChildStarter
from dvr.agent.drivers.flow_monitor import FlowMirrors, FlowMonitor
from dvr.agent.drivers.ofconn import BridgeConnection, BundleRefused, ConnectionFailed
from dvr.agent.drivers.ofwire import NotEncodable
from dvr.agent.drivers.openflow import bundle_lines, numbered_bundle, parse_dump_flows
from dvr.agent.reconcile.commands import (
    DeleteBridge,
    DeletePort,
    EnsureBridge,
    EnsurePort,
    FlowBundle,
    OvsdbOp,
    SetPortTag,
)
from dvr.agent.reconcile.observed import (
    MirroredFlows,
    ObservedBridge,
    ObservedFlow,
    ObservedPort,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OvsConfig:
    ovsdb: str  # "unix:/run/openvswitch/db.sock" or "unix:<rundir>/db.sock"
    rundir: Path | None = None  # OVS_RUNDIR for ovs-ofctl (None: keep the environment's)
    timeout: float = 10.0
    ofctl: str = "ovs-ofctl"
    openflow_version: str = "OpenFlow15"
    flow_mirror: bool = True  # observe flows from flow monitors (False: dump every time)
    mirror_sync_timeout: float = 2.0  # a monitor slower than this is replaced by dumps
    # apply bundles over a long-lived OpenFlow connection per bridge (False: ovs-ofctl)
    openflow_connection: bool = True

    @classmethod
    def for_rundir(cls, rundir: str | Path, **kwargs) -> OvsConfig:
        rundir = Path(rundir)
        return cls(ovsdb=f"unix:{rundir / 'db.sock'}", rundir=rundir, **kwargs)

    def management_socket(self, bridge: str) -> Path:
        """The bridge's OpenFlow management socket, where ovs-ofctl finds it."""
        rundir = self.rundir or Path(os.environ.get("OVS_RUNDIR", DEFAULT_OVS_RUNDIR))
        return rundir / f"{bridge}.mgmt"


def _single(value: list) -> object | None:
    return value[0] if value else None


DEFAULT_OVS_RUNDIR = "/var/run/openvswitch"
OFPP_LOCAL = 65534  # the bridge's own internal port; ovs-ofctl prints it as LOCAL

# the columns whose changes alter what ``observe(with_flows=False)`` reports
_PORT_COLUMNS: dict[str, frozenset[str]] = {
    "Bridge": frozenset({"name", "ports"}),
    "Port": frozenset({"name", "interfaces", "tag"}),
    "Interface": frozenset({"name", "type", "options", "external_ids", "ofport", "error"}),
}


class _PortWatchingIdl(connection.OvsdbIdl):
    """The OVSDB IDL, calling ``listeners`` (from the connection's thread) whenever a row
    change touches what the driver reports about ports; statistics updates do not."""

    def __init__(self, *args, listeners: Sequence[Callable[[], None]] = (), **kwargs):
        self.listeners = listeners
        super().__init__(*args, **kwargs)

    def notify(self, event, row, updates=None) -> None:
        if not self.listeners:
            return
        columns = _PORT_COLUMNS.get(row._table.name)
        if columns is None:
            return
        if event == ovs_idl.ROW_UPDATE and updates is not None:
            if not columns.intersection(updates._data or ()):
                return
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener must never break the OVSDB connection
                log.exception("port change listener failed")


class _HostOvsdbApi(impl_idl.OvsdbIdl):
    """ovsdbapp's Open_vSwitch API, whose transactions may leave out the wait for
    ovs-vswitchd (``transaction(wait_for_switch=False)``)."""

    def create_transaction(self, check_error=False, log_errors=True, wait_for_switch=True,
                           **kwargs):
        if wait_for_switch:
            return super().create_transaction(check_error, log_errors, **kwargs)
        return ovs_transaction.Transaction(self, self.ovsdb_connection,
                                           self.ovsdb_connection.timeout, check_error,
                                           log_errors)


class BridgeReads:
    """What ``_ObserveBridges`` last read, by bridge name (None: no such bridge), valid while
    the IDL's ``change_seqno`` stays what it was then: reading a bridge's ports through the
    IDL converts every column of every row again, which made up a quarter of a busy
    agent's CPU, and a pass reads the same bridges several times with nothing changed in
    between.  ``change_seqno`` moves with every update the IDL applies (a reconnection
    too), so a read at an unchanged seqno would find exactly what is kept.  Only used
    under the connection's lock, which ``idl.run()`` and every transaction hold too."""

    def __init__(self) -> None:
        self.seqno: int | None = None
        self.bridges: dict[str, ObservedBridge | None] = {}

    def at(self, seqno: int) -> dict[str, ObservedBridge | None]:
        """The bridges read at ``seqno`` so far (forgetting those of any other)."""
        if seqno != self.seqno:
            self.seqno, self.bridges = seqno, {}
        return self.bridges


class _ObserveBridges(ovs_command.ReadOnlyCommand):
    def __init__(self, api, names: Sequence[str], reads: BridgeReads | None = None):
        super().__init__(api)
        self.names = names
        self.reads = reads if reads is not None else BridgeReads()

    def run_idl(self, txn) -> None:
        known = self.reads.at(self.api.idl.change_seqno)
        found = []
        for name in self.names:
            if name not in known:
                known[name] = _read_bridge(self.api.idl, name)
            if known[name] is not None:
                found.append(known[name])
        self.result = found


class _PortNumbers(ovs_command.ReadOnlyCommand):
    """name -> OpenFlow number of a bridge's numbered ports (``_port_numbers``): from the
    bridge ``_ObserveBridges`` read at this ``change_seqno``, else from the two columns it
    needs.  A fast phase's VIF tags move the seqno just before its bundle asks for the
    numbers; converting the whole bridge again then cost a sixth of that phase."""

    def __init__(self, api, name: str, reads: BridgeReads):
        super().__init__(api)
        self.name = name
        self.reads = reads

    def run_idl(self, txn) -> None:
        known = self.reads.at(self.api.idl.change_seqno)
        if self.name in known:
            bridge = known[self.name]
            self.result = {} if bridge is None else _port_numbers(bridge)
            return
        row = idlutils.row_by_value(self.api.idl, "Bridge", "name", self.name, None)
        self.result = {} if row is None else _numbered(self.name, (
            (port.name, _single(iface.ofport)) for port, iface in _port_rows(row, self.name)))


def _port_rows(bridge, name: str) -> Iterator[tuple[Any, Any]]:
    """(Port row, its Interface row) of each port of the bridge row ``bridge`` named
    ``name``, but the bridge's own internal port."""
    for port in bridge.ports:
        if port.name != name and port.interfaces:
            yield port, port.interfaces[0]


def _read_bridge(idl, name: str) -> ObservedBridge | None:
    bridge = idlutils.row_by_value(idl, "Bridge", "name", name, None)
    if bridge is None:
        return None
    ports = []
    for port, iface in _port_rows(bridge, name):
        ports.append(ObservedPort(
            name=port.name,
            type=iface.type,
            options=tuple(sorted(iface.options.items())),
            tag=_single(port.tag),
            external_ids=tuple(sorted(iface.external_ids.items())),
            ofport=_single(iface.ofport),
            error=_single(iface.error),
        ))
    return ObservedBridge(
        name=name,
        datapath_type=bridge.datapath_type,
        fail_mode=_single(bridge.fail_mode) or "",
        external_ids=tuple(sorted(bridge.external_ids.items())),
        ports=tuple(sorted(ports)),
    )


def _find_port(api, name: str):
    return idlutils.row_by_value(api.idl, "Port", "name", name, None)


def _port_bridge(api, port):
    return next((b for b in api.tables["Bridge"].rows.values() if port in b.ports), None)


def _delete_port(api, port) -> None:
    bridge = _port_bridge(api, port)
    if bridge is not None:
        bridge.delvalue("ports", port)
    for iface in port.interfaces:
        iface.delete()
    port.delete()


class _Apply(ovs_command.BaseCommand):
    """One driver op inside an ovsdbapp transaction (idempotent, like ovs-vsctl --may-exist
    / --if-exists)."""

    def __init__(self, api, op: OvsdbOp):
        super().__init__(api)
        self.op = op

    def run_idl(self, txn) -> None:
        op = self.op
        if isinstance(op, EnsureBridge):
            self._ensure_bridge(txn, op)
        elif isinstance(op, EnsurePort):
            self._ensure_port(txn, op)
        elif isinstance(op, SetPortTag):
            port = _find_port(self.api, op.name)
            if port is None:
                raise DriverError(f"no port named {op.name}")
            port.tag = [] if op.tag is None else [op.tag]
        elif isinstance(op, DeletePort):
            port = _find_port(self.api, op.name)
            bridge = idlutils.row_by_value(self.api.idl, "Bridge", "name", op.bridge, None)
            if port is not None and bridge is not None and port in bridge.ports:
                _delete_port(self.api, port)
        elif isinstance(op, DeleteBridge):
            bridge = idlutils.row_by_value(self.api.idl, "Bridge", "name", op.name, None)
            if bridge is not None:
                for port in list(bridge.ports):
                    _delete_port(self.api, port)
                self.api._ovs.delvalue("bridges", bridge)
                bridge.delete()
        else:
            raise DriverError(f"not an OVSDB command: {op!r}")

    def _ensure_bridge(self, txn, op: EnsureBridge) -> None:
        fail_mode = [op.fail_mode] if op.fail_mode else []
        bridge = idlutils.row_by_value(self.api.idl, "Bridge", "name", op.name, None)
        if bridge is None:  # a new row has no readable defaults: set every column we own
            iface = txn.insert(self.api.tables["Interface"])
            iface.name, iface.type = op.name, "internal"
            port = txn.insert(self.api.tables["Port"])
            port.name, port.interfaces = op.name, [iface]
            bridge = txn.insert(self.api.tables["Bridge"])
            bridge.name, bridge.ports = op.name, [port]
            bridge.datapath_type, bridge.fail_mode = op.datapath_type, fail_mode
            bridge.external_ids = dict(op.external_ids)
            self.api._ovs.addvalue("bridges", bridge)
            return
        if bridge.datapath_type != op.datapath_type:
            bridge.datapath_type = op.datapath_type
        if list(bridge.fail_mode) != fail_mode:
            bridge.fail_mode = fail_mode
        for key, value in op.external_ids:
            if bridge.external_ids.get(key) != value:
                bridge.setkey("external_ids", key, value)

    def _ensure_port(self, txn, op: EnsurePort) -> None:
        bridge = idlutils.row_by_value(self.api.idl, "Bridge", "name", op.bridge, None)
        if bridge is None:
            raise DriverError(f"no bridge named {op.bridge}")
        tag = [] if op.tag is None else [op.tag]
        port = _find_port(self.api, op.name)
        if port is not None and port not in bridge.ports:
            _delete_port(self.api, port)  # on another bridge: move it
            port = None
        if port is None:  # a new row has no readable defaults: set every column we own
            iface = txn.insert(self.api.tables["Interface"])
            iface.name, iface.type, iface.options = op.name, op.type, dict(op.options)
            iface.external_ids = dict(op.external_ids)
            port = txn.insert(self.api.tables["Port"])
            port.name, port.interfaces, port.tag = op.name, [iface], tag
            bridge.addvalue("ports", port)
            return
        iface = port.interfaces[0]
        if iface.type != op.type:
            iface.type = op.type
        if dict(iface.options) != dict(op.options):
            iface.options = dict(op.options)
        if list(port.tag) != tag:
            port.tag = tag
        for key, value in op.external_ids:
            if iface.external_ids.get(key) != value:
                iface.setkey("external_ids", key, value)


class _Elsewhere(ovs_command.ReadOnlyCommand):
    """The names of the ports ``ops`` ensure that exist on another bridge than theirs."""

    def __init__(self, api, ops: Sequence[EnsurePort]):
        super().__init__(api)
        self.ops = ops

    def run_idl(self, txn) -> None:
        found = set()
        for op in self.ops:
            port = _find_port(self.api, op.name)
            bridge = None if port is None else _port_bridge(self.api, port)
            if bridge is not None and bridge.name != op.bridge:
                found.add(op.name)
        self.result = found


class _Unplug(ovs_command.BaseCommand):
    """Remove port ``name`` from whatever bridge has it (the first step of a recreate)."""

    def __init__(self, api, name: str):
        super().__init__(api)
        self.name = name

    def run_idl(self, txn) -> None:
        port = _find_port(self.api, self.name)
        if port is not None:
            _delete_port(self.api, port)


def _port_numbers(bridge: ObservedBridge) -> dict[str, int]:
    return _numbered(bridge.name, ((p.name, p.ofport) for p in bridge.ports))


def _numbered(bridge: str, ports: Iterable[tuple[str, Any]]) -> dict[str, int]:
    """name -> number of the (name, OpenFlow number) ``ports`` that have one, and the
    bridge's own port (LOCAL)."""
    numbers = {name: number for name, number in ports if number is not None and number > 0}
    numbers[bridge] = OFPP_LOCAL
    return numbers


def _port_names(bridge: ObservedBridge | None) -> dict[int, str]:
    """OpenFlow number -> name, as ``ovs-ofctl --names`` names ports in what it prints."""
    if bridge is None:
        return {}
    return {number: name for name, number in _port_numbers(bridge).items()
            if number != OFPP_LOCAL}


class OvsDriver:
    """The real OVS driver (see the module docstring).  ``close()`` ends the connection."""

    def __init__(self, config: OvsConfig):
        self.config = config
        self._api = None
        self._port_listeners: list[Callable[[], None]] = []
        self._children: ChildStarter | None = None
        self._mirrors: FlowMirrors | None = None
        self._openflow: dict[str, BridgeConnection] = {}
        self._openflow_lock = threading.Lock()
        self._ofctl_reason_logged: set[str] = set()
        self._reads = BridgeReads()  # the bridges as last read, while OVSDB is unchanged

    # -- connection ---------------------------------------------------------------------------
    @property
    def api(self):
        if self._api is None:
            idl = _PortWatchingIdl.from_server(self.config.ovsdb, "Open_vSwitch",
                                               listeners=self._port_listeners)
            conn = connection.Connection(idl=idl, timeout=self.config.timeout)
            self._reads = BridgeReads()  # a new IDL counts its changes from 0 again
            # ovsdbapp keeps the connection on the API *class*: one class per driver lets
            # several drivers (several lab hosts) live in one process
            api_class = type("HostOvsdbApi", (_HostOvsdbApi,), {})
            self._api = api_class(conn)
        return self._api

    @property
    def children(self) -> ChildStarter:
        if self._children is None:
            self._children = ChildStarter()
        return self._children

    @property
    def mirrors(self) -> FlowMirrors | None:
        if self._mirrors is None and self.config.flow_mirror:
            self._mirrors = FlowMirrors(
                self.children,
                lambda bridge: self._ofctl_argv(["--no-names", "monitor", bridge, "watch:"]),
                self._ofctl_env(), self.config.timeout, self.config.mirror_sync_timeout)
        return self._mirrors

    def close(self) -> None:
        with self._openflow_lock:
            connections, self._openflow = list(self._openflow.values()), {}
        for bridge_connection in connections:
            bridge_connection.close()
        if self._mirrors is not None:
            self._mirrors.close()
            self._mirrors = None
        if self._children is not None:
            self._children.close()
            self._children = None
        if self._api is not None:
            self._api.ovsdb_connection.stop(timeout=self.config.timeout)
            self._api = None

    def __enter__(self) -> OvsDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- driver interface -----------------------------------------------------------------------
    def observe(self, bridges: Iterable[str], with_flows: bool = True
                ) -> tuple[ObservedBridge, ...]:
        found = _ObserveBridges(self.api, list(bridges), self._reads).execute(check_error=True)
        if not with_flows:
            return tuple(found)
        flows = self.read_flows([b.name for b in found])
        return tuple(
            ObservedBridge(b.name, b.datapath_type, b.fail_mode, b.external_ids, b.ports,
                           *flows[b.name])
            for b in found
        )

    def on_port_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the OVSDB connection's thread; it must be quick) when a
        port of any bridge appears, goes, or changes what ``observe`` reports about it."""
        self._port_listeners.append(callback)
        _ = self.api  # connect now: changes are only seen by a live connection

    def transact(self, ops: Sequence[OvsdbOp]) -> None:
        # a port recreated under the same name, or moved to another bridge, must disappear
        # in a transaction of its own: ovs-vswitchd matches ports by name and would keep the
        # old device open, and refuses a tunnel moved in one transaction as a twin of itself
        ensured = [o for o in ops if isinstance(o, EnsurePort)]
        moving = _Elsewhere(self.api, ensured).execute(check_error=True) if ensured else set()
        unplug = [o.name for o in ensured if o.recreate or o.name in moving]
        if unplug:
            self._commit([_Unplug(self.api, name) for name in unplug])
        self._commit([_Apply(self.api, o) for o in ops],
                     wait_for_switch=not all(isinstance(o, SetPortTag) for o in ops))

    def apply_flows(self, bundle: FlowBundle) -> None:
        numbers = self.port_numbers(bundle.bridge)
        if self.config.openflow_connection:
            try:
                self._bridge_connection(bundle.bridge).apply(bundle, numbers)
                return
            except BundleRefused as error:
                raise DriverError(f"{bundle.bridge}: {error}") from error
            except (NotEncodable, ConnectionFailed) as error:
                self._log_ofctl_reason(bundle.bridge, error)
        self._apply_with_ofctl(bundle, numbers)

    def _bridge_connection(self, bridge: str) -> BridgeConnection:
        with self._openflow_lock:
            found = self._openflow.get(bridge)
            if found is None:
                found = self._openflow[bridge] = BridgeConnection(
                    self.config.management_socket(bridge), self.config.timeout)
            return found

    def _log_ofctl_reason(self, bridge: str, error: Exception) -> None:
        """Say once per bridge why a bundle went through ovs-ofctl (then at debug level)."""
        level = logging.DEBUG if bridge in self._ofctl_reason_logged else logging.WARNING
        self._ofctl_reason_logged.add(bridge)
        log.log(level, "%s: bundle applied with ovs-ofctl, not the OpenFlow connection (%s: %s)",
                bridge, type(error).__name__, error)

    def _apply_with_ofctl(self, bundle: FlowBundle, numbers: Mapping[str, int]) -> None:
        numbered = numbered_bundle(bundle, numbers)
        if numbered is None:  # a name OVSDB does not know: ovs-ofctl resolves or refuses it
            text = "\n".join(bundle_lines(bundle)) + "\n"
            self._ofctl(["--bundle", "add-flows", bundle.bridge, "-"], text)
        else:
            self._ofctl(["--no-names", "--bundle", "add-flows", bundle.bridge, "-"],
                        "\n".join(numbered) + "\n")

    def _feed(self, process: subprocess.Popen, args: Sequence[str], stdin: str | None) -> str:
        """Give a started ovs-ofctl (stdout and stderr piped) its input; its output."""
        try:
            out, err = process.communicate(stdin, timeout=self.config.timeout)
        except subprocess.TimeoutExpired as error:
            process.kill()
            process.communicate()
            raise DriverError(f"{' '.join(self._ofctl_argv(args))} timed out") from error
        if process.returncode != 0:
            raise DriverError(f"{' '.join(self._ofctl_argv(args))}: {err.strip()}")
        return out

    # -- helpers --------------------------------------------------------------------------------
    def port_numbers(self, bridge: str) -> dict[str, int]:
        """name -> OpenFlow port number of the ports of ``bridge`` that have one."""
        return _PortNumbers(self.api, bridge, self._reads).execute(check_error=True)

    def dump_flows(self, bridge: str) -> tuple[ObservedFlow, ...]:
        return self._dump_all_flows([bridge])[bridge][0]

    def read_flows(self, bridges: Sequence[str]
                   ) -> dict[str, tuple[tuple[ObservedFlow, ...], MirroredFlows | None]]:
        """The flows of several bridges: from their mirrors where those are in sync (with
        the mirror's snapshot), the others dumped (None)."""
        mirrored = self.mirrors.synced(bridges) if self.mirrors is not None else {}
        return self._dump_all_flows([b for b in bridges if b not in mirrored], mirrored)

    def _dump_all_flows(self, bridges: Sequence[str],
                        mirrored: Mapping[str, FlowMonitor] | None = None,
                        ) -> dict[str, tuple[tuple[ObservedFlow, ...], MirroredFlows | None]]:
        """``dump-flows`` of several bridges at once (one ovs-ofctl each, run side by side:
        starting ovs-ofctl costs more than the dump), and the flows of ``mirrored`` with
        their snapshots (a dumped bridge has none)."""
        mirrored = mirrored or {}
        running = {b: subprocess.Popen(self._ofctl_argv(["--no-names", "dump-flows", b]),
                                       env=self._ofctl_env(), text=True, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE) for b in bridges}
        flows = {bridge: self._feed(process, ["dump-flows", bridge], None)
                 for bridge, process in running.items()}
        # port names as they are once the flows are read: a number printed for a port that
        # has since gone stays a number, as with ovs-ofctl --names
        ports = {b.name: b for b in _ObserveBridges(
            self.api, [*flows, *mirrored], self._reads).execute(check_error=True)}
        found: dict[str, tuple[tuple[ObservedFlow, ...], MirroredFlows | None]] = {
            bridge: (parse_dump_flows(out, _port_names(ports.get(bridge))), None)
            for bridge, out in flows.items()}
        found.update({bridge: monitor.observation(_port_names(ports.get(bridge)))
                      for bridge, monitor in mirrored.items()})
        return found

    def _commit(self, commands: Sequence[ovs_command.BaseCommand],
                wait_for_switch: bool = True) -> None:
        try:
            with self.api.transaction(check_error=True,
                                      wait_for_switch=wait_for_switch) as txn:
                for command in commands:
                    txn.add(command)
        except DriverError:
            raise
        except Exception as error:
            raise DriverError(f"OVSDB transaction failed: {error}") from error

    def _ofctl_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.config.rundir is not None:
            env["OVS_RUNDIR"] = str(self.config.rundir)
        return env

    def _ofctl_argv(self, args: Sequence[str]) -> list[str]:
        return [self.config.ofctl, "-O", self.config.openflow_version, *args]

    def _ofctl(self, args: Sequence[str], stdin: str | None = None) -> str:
        process = subprocess.Popen(self._ofctl_argv(args), env=self._ofctl_env(), text=True,
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        return self._feed(process, args, stdin)

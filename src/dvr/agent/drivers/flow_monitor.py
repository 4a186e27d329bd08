"""A bridge's flows mirrored in memory from a long-lived ``ovs-ofctl monitor``.

Why a child process: the ``ovs`` Python package speaks OVSDB but has no OpenFlow code, and
``ovs-ofctl monitor <bridge> watch:`` is exactly a flow monitor: it prints the bridge's
flows (INITIAL events, a full dump) and then every change any connection makes, in order.
Its lines (stdout and stderr, one pipe) are parsed by ``openflow.parse_monitor_line`` and
replayed into a ``FlowTable`` by a reader thread.

Being up to date: ``send_barrier`` asks the monitor, over its unixctl socket
(``ofctl/barrier``), to send an OpenFlow barrier on its own connection.  The switch queues
flow-monitor updates to that connection as it commits each change (a bundle of the
driver's own included), so the barrier reply comes after every update of a change
committed before it; once the reader has seen that reply (``wait_for_barrier``), the table
holds every flow change made before the barrier was sent.  ``FlowMirrors.synced`` sends
every monitor's barrier first, then waits for each, so the replies arrive side by side.

The children are started by a ``ChildStarter``: an agent killed with ``kill -9`` leaves
no monitor behind.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dvr.agent.drivers.children import ChildStarter
from dvr.agent.drivers.flow_mirror import FlowTable, MirrorSnapshot
from dvr.agent.drivers.openflow import BarrierReply, FlowEvent, UnexpectedLine, parse_monitor_line
from dvr.agent.reconcile.observed import ObservedFlow

log = logging.getLogger(__name__)


class UnixctlError(Exception):
    """The unixctl server refused, answered nonsense, or did not answer in time."""


class UnixctlClient:
    """A minimal client of an OVS unixctl socket (JSON-RPC over a unix stream socket, the
    protocol of ``ovs-appctl``), with a timeout on every call."""

    def __init__(self, path: str | Path, timeout: float):
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout)
        try:
            self._socket.connect(str(path))
        except OSError:
            self._socket.close()
            raise
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._next_id = 0
        self._method = ""  # of the last request sent

    def call(self, method: str, params: Sequence[str] = (), timeout: float | None = None
             ) -> object:
        return self.reply(self.send(method, params, timeout), timeout)

    def send(self, method: str, params: Sequence[str] = (), timeout: float | None = None
             ) -> int:
        """Send a request without waiting for its answer (``reply``); its id."""
        self._next_id += 1
        request = {"method": method, "params": list(params), "id": self._next_id}
        self._method = method
        if timeout is not None:
            self._socket.settimeout(max(timeout, 0.001))
        try:
            self._socket.sendall(json.dumps(request).encode())
        except OSError as error:
            raise UnixctlError(f"{method}: {error}") from error
        return self._next_id

    def reply(self, request_id: int, timeout: float | None = None) -> object:
        """The answer to the request ``request_id``, the last one sent."""
        method = self._method
        if timeout is not None:
            self._socket.settimeout(max(timeout, 0.001))
        try:
            reply = self._read_message()
        except (OSError, ValueError) as error:
            raise UnixctlError(f"{method}: {error}") from error
        if not isinstance(reply, dict) or reply.get("id") != request_id:
            raise UnixctlError(f"{method}: unexpected answer {reply!r}")
        if reply.get("error") is not None:
            raise UnixctlError(f"{method}: {reply['error']}")
        return reply.get("result")

    def _read_message(self) -> object:
        while True:
            text = self._buffer.lstrip()
            if text:
                try:
                    message, end = self._decoder.raw_decode(text)
                except ValueError:
                    pass  # not complete yet
                else:
                    self._buffer = text[end:]
                    return message
            chunk = self._socket.recv(65536)
            if not chunk:
                raise ConnectionError("unixctl connection closed")
            self._buffer += chunk.decode()

    def close(self) -> None:
        self._socket.close()


class FlowMonitor:
    """One ``ovs-ofctl monitor`` child for one bridge (``process``, started with
    ``--unixctl=<control_path>``, stdout and stderr in one pipe) and the ``FlowTable`` it
    feeds.

    ``failure`` is None while the mirror can be trusted; once set (the child exited, printed
    something unexpected, an event contradicted the table, a barrier timed out) it stays
    set: the owner closes this monitor and starts another."""

    def __init__(self, bridge: str, process: subprocess.Popen, control_path: Path):
        self.bridge = bridge
        self.table = FlowTable()
        self.control_path = control_path
        self._changed = threading.Condition()
        self._barriers_seen = 0
        self._barriers_sent = 0
        self._failure: str | None = None
        self._sync_lock = threading.Lock()
        self._control: UnixctlClient | None = None
        self._answer_due: int | None = None  # a request to ``_control`` not answered yet
        self.process = process
        self._reader = threading.Thread(target=self._read, name=f"dvr-flowmon-{bridge}",
                                        daemon=True)
        self._reader.start()

    @property
    def failure(self) -> str | None:
        return self._failure

    def _fail(self, reason: str) -> None:  # with self._changed held
        if self._failure is None:
            self._failure = reason
        self._changed.notify_all()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            parsed = parse_monitor_line(line)
            if parsed is None:
                continue
            with self._changed:
                if isinstance(parsed, FlowEvent):
                    if not self.table.apply(parsed):
                        self._fail(f"an event the mirror cannot place: {line.strip()}")
                elif isinstance(parsed, BarrierReply):
                    self._barriers_seen += 1
                elif isinstance(parsed, UnexpectedLine):
                    self._fail(f"ovs-ofctl monitor said: {parsed.text}")
                self._changed.notify_all()
        with self._changed:
            self._fail(f"ovs-ofctl monitor exited ({self.process.wait()})")

    def send_barrier(self, timeout: float) -> int | None:
        """Ask the monitor to send a barrier on its connection (at most ``timeout`` seconds
        for the first connection to it; its answer is read by ``wait_for_barrier``): the
        barrier's number; None if the mirror cannot be trusted."""
        deadline = time.monotonic() + timeout
        with self._sync_lock:
            if self._failure is not None:
                return None
            try:
                control = self._connect(deadline)
                self._collect_answer(deadline)
                self._answer_due = control.send("ofctl/barrier",
                                                timeout=deadline - time.monotonic())
            except (OSError, UnixctlError) as error:
                with self._changed:
                    self._fail(f"barrier: {error}")
                return None
            self._barriers_sent += 1
            return self._barriers_sent

    def _collect_answer(self, deadline: float) -> None:  # with self._sync_lock held
        """Read the monitor's answer to the last request, if not read yet."""
        if self._answer_due is not None and self._control is not None:
            due, self._answer_due = self._answer_due, None
            self._control.reply(due, timeout=deadline - time.monotonic())

    def wait_for_barrier(self, number: int, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) for the reply to barrier ``number``: then
        ``table`` holds every flow change the switch made before that barrier was sent;
        False if the mirror cannot be trusted."""
        deadline = time.monotonic() + timeout
        with self._sync_lock:
            try:
                self._collect_answer(deadline)
            except (OSError, UnixctlError) as error:
                with self._changed:
                    self._fail(f"barrier: {error}")
        with self._changed:
            self._changed.wait_for(
                lambda: self._barriers_seen >= number or self._failure is not None,
                max(deadline - time.monotonic(), 0))
            if self._barriers_seen < number:
                self._fail(f"no barrier reply within {timeout:.1f}s")
            return self._failure is None

    def _connect(self, deadline: float) -> UnixctlClient:
        """The unixctl connection; the socket appears once the monitor request is sent."""
        while self._control is None:
            try:
                self._control = UnixctlClient(self.control_path,
                                              max(deadline - time.monotonic(), 0.001))
            except (FileNotFoundError, ConnectionRefusedError):
                if self._failure is not None or time.monotonic() >= deadline:
                    raise UnixctlError(self._failure or "no unixctl socket in time") from None
                time.sleep(0.002)
        return self._control

    def flows(self, names: Mapping[int, str] | None = None) -> tuple[ObservedFlow, ...]:
        with self._changed:
            return self.table.flows(names)

    def observation(self, names: Mapping[int, str] | None = None
                    ) -> tuple[tuple[ObservedFlow, ...], MirrorSnapshot]:
        """Every flow (``flows``) and the same by cookie, with the journal (one moment)."""
        with self._changed:
            return self.table.flows(names), self.table.snapshot(names)

    def close(self, timeout: float = 5.0) -> None:
        if self._control is not None:
            self._control.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout)
        try:
            os.unlink(self.control_path)
        except FileNotFoundError:
            pass


class FlowMirrors:
    """The OVS driver's flow monitors, one per bridge it observes.

    ``synced(bridges)`` starts the monitors that are missing (the first sync waits for the
    initial dump, up to ``start_timeout``), syncs them (up to ``sync_timeout``) and returns
    those that are in sync; for the others the driver dumps.  A monitor that fails is
    closed, said once in the log, and replaced no sooner than after a backoff (1 s doubling
    to 30 s) so that a bridge whose monitor cannot work costs a dump, not a process, per
    observation."""

    def __init__(self, children: ChildStarter, argv: Callable[[str], list[str]],
                 env: Mapping[str, str], start_timeout: float, sync_timeout: float,
                 clock: Callable[[], float] = time.monotonic):
        self._children = children
        self._argv = argv
        self._env = dict(env)
        self.start_timeout = start_timeout
        self.sync_timeout = sync_timeout
        self._clock = clock
        self._monitors: dict[str, FlowMonitor] = {}
        self._in_sync: set[str] = set()  # monitors that have synced at least once
        self._retry: dict[str, tuple[float, float]] = {}  # bridge -> (not before, backoff)
        self._degraded: set[str] = set()  # bridges whose failure was logged
        self._directory = Path(tempfile.mkdtemp(prefix="dvr-flowmon-"))

    def synced(self, bridges: Sequence[str]) -> dict[str, FlowMonitor]:
        """The monitors of ``bridges`` whose tables hold every flow change made before this
        call."""
        for bridge in bridges:
            self._ensure(bridge)
        monitors = {b: self._monitors[b] for b in bridges if b in self._monitors}
        # every barrier first (each monitor's reply arrives meanwhile), then the waits
        numbers = {bridge: monitor.send_barrier(self._timeout(bridge))
                   for bridge, monitor in monitors.items()}
        found = {}
        for bridge, monitor in monitors.items():
            number = numbers[bridge]
            if number is not None and monitor.wait_for_barrier(number, self._timeout(bridge)):
                found[bridge] = monitor
                self._in_sync.add(bridge)
                self._retry.pop(bridge, None)
                if bridge in self._degraded:
                    self._degraded.discard(bridge)
                    log.info("flow monitor of %s in sync again: flows come from it", bridge)
            else:
                self._drop(bridge, monitor)
        return found

    def _timeout(self, bridge: str) -> float:
        """The first sync of a monitor also waits for its initial dump."""
        return self.sync_timeout if bridge in self._in_sync else self.start_timeout

    def _ensure(self, bridge: str) -> None:
        if bridge in self._monitors:
            return
        not_before, _ = self._retry.get(bridge, (0.0, 0.0))
        if self._clock() < not_before:
            return
        control = self._directory / f"{bridge}.ctl"
        process = self._children.start([*self._argv(bridge), f"--unixctl={control}"],
                                       self._env)
        self._monitors[bridge] = FlowMonitor(bridge, process, control)

    def _drop(self, bridge: str, monitor: FlowMonitor) -> None:
        del self._monitors[bridge]
        self._in_sync.discard(bridge)
        monitor.close()
        _, backoff = self._retry.get(bridge, (0.0, 0.0))
        backoff = min(max(backoff * 2, 1.0), 30.0)
        self._retry[bridge] = (self._clock() + backoff, backoff)
        if bridge not in self._degraded:
            self._degraded.add(bridge)
            log.warning("flow monitor of %s stopped (%s): dumping its flows until a new "
                        "one is in sync", bridge, monitor.failure)

    def close(self) -> None:
        for monitor in self._monitors.values():
            monitor.close()
        self._monitors.clear()
        shutil.rmtree(self._directory, ignore_errors=True)

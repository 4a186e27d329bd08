"""A long-lived OpenFlow 1.5 connection to one bridge: flow bundles without a process each.

``BridgeConnection`` connects to ovs-vswitchd's management socket of the bridge
(``<OVS rundir>/<bridge>.mgmt``, what ``ovs-ofctl`` uses) when first needed, says hello
(OpenFlow 1.5 only) and then applies ``FlowBundle``s as ``ovs-ofctl --bundle`` does
(``ofwire.bundle_messages``): open, every flow_mod, a barrier; commit only if the switch
refused none of them, else discard; then wait for the commit's reply.

The thread that applies a bundle reads the replies itself: handing them over from a reader
thread costs a GIL hand-off per reply, up to 5 ms each while other agent threads run
Python (the flow monitors parse the very flows the bundle adds).  Between bundles a
keepalive thread looks at the socket every few seconds and answers the switch's echo
requests (ovs-vswitchd drops a connection that leaves its probes unanswered for a minute).

Two failures, two types: ``BundleRefused`` -- the switch answered with errors, nothing of
the bundle was applied, the connection stays; ``ConnectionFailed`` -- no usable connection
(none, broken, timed out, no OpenFlow 1.5), dropped; the next bundle connects again.  A
connection found broken before the bundle's commit was sent (the switch dropped it while
idle) is replaced at once and the bundle sent again.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from dvr.agent.drivers import ofwire
from dvr.agent.drivers.ofwire import (
    BarrierReply,
    BundleControl,
    BundleReply,
    EchoRequest,
    ErrorReply,
    Hello,
    ProtocolError,
    Reply,
)
from dvr.agent.reconcile.commands import FlowBundle

_READ_SIZE = 1 << 16
KEEPALIVE_SECONDS = 5.0  # how often an idle connection answers the switch's echo requests


class ConnectionFailed(Exception):
    """The connection could not carry the bundle (the message says why).  If it broke
    after the commit was sent, the bundle may or may not have been applied."""


class BundleRefused(Exception):
    """The switch refused the bundle; nothing of it was applied.  The message names each
    error and the flow_mod it was for, as ``ovs-ofctl`` prints them."""


class _NotCommitted(ConnectionFailed):
    """The connection failed before the bundle's commit was sent: nothing was applied."""


class _Link:
    """One connected socket past the hello exchange, read by whoever holds the
    connection's lock.  Echo requests are answered as they are read."""

    def __init__(self, sock: socket.socket, pending: bytes):
        self._sock = sock
        self._buffer = pending

    def send(self, data: bytes, deadline: float) -> None:
        self._sock.settimeout(_left(deadline))
        self._sock.sendall(data)

    def next_reply(self, deadline: float) -> Reply:
        """The next message from the switch other than an echo request."""
        while True:
            reply = self._buffered()
            if reply is not None:
                return reply
            self._sock.settimeout(_left(deadline))
            try:
                self._receive()
            except TimeoutError:
                raise ConnectionFailed("no reply from the switch in time") from None

    def drain(self) -> None:
        """Read what the switch sent while nobody waited (answering echo requests, dropping
        the rest) without blocking; raises ConnectionFailed if it closed the connection."""
        while select.select([self._sock], [], [], 0)[0]:
            self._sock.settimeout(1.0)
            self._receive()
            while self._buffered() is not None:
                pass

    def close(self) -> None:
        self._sock.close()

    def _receive(self) -> None:
        chunk = self._sock.recv(_READ_SIZE)
        if not chunk:
            raise ConnectionFailed("the switch closed the connection")
        self._buffer += chunk

    def _buffered(self) -> Reply | None:
        """The next whole message already read (echo requests answered on the way)."""
        while True:
            messages, _ = ofwire.split_messages(self._buffer)
            if not messages:
                return None
            self._buffer = self._buffer[len(messages[0]):]
            reply = ofwire.decode(messages[0])
            if not isinstance(reply, EchoRequest):
                return reply
            self._sock.settimeout(1.0)
            self._sock.sendall(ofwire.echo_reply(reply.xid, reply.data))


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ConnectionFailed("no reply from the switch in time")
    return left


def _connect(path: Path, timeout: float) -> _Link:
    """A link to ``path`` past the hello exchange."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(ofwire.hello(0))
        buffer = b""
        while not (messages := ofwire.split_messages(buffer)[0]):
            chunk = sock.recv(_READ_SIZE)
            if not chunk:
                raise ConnectionFailed("closed before saying hello")
            buffer += chunk
        hello = ofwire.decode(messages[0])
        if not isinstance(hello, Hello) or ofwire.OFP15_VERSION not in hello.versions:
            raise ConnectionFailed(f"the switch does not offer OpenFlow 1.5 ({hello})")
        return _Link(sock, buffer[len(messages[0]):])
    except (OSError, ProtocolError) as error:
        sock.close()
        raise ConnectionFailed(str(error) or type(error).__name__) from error
    except ConnectionFailed:
        sock.close()
        raise


class BridgeConnection:
    """The OpenFlow connection to one bridge (see the module docstring).  One bundle at a
    time; ``close()`` ends it and its keepalive."""

    def __init__(self, path: Path, timeout: float = 10.0,
                 keepalive: float = KEEPALIVE_SECONDS):
        self.path = path
        self.timeout = timeout
        self.keepalive = keepalive
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._xid = 1
        self._bundle_id = 0
        self._closed = threading.Event()
        self._keepalive: threading.Thread | None = None

    def apply(self, bundle: FlowBundle, numbers: Mapping[str, int]) -> None:
        """Apply ``bundle`` atomically, ports bound by ``numbers``.  Raises
        ``ofwire.NotEncodable`` (before anything is sent), ``BundleRefused`` or
        ``ConnectionFailed``."""
        with self._lock:
            self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
            messages = ofwire.bundle_messages(bundle, numbers, self._bundle_id, self._xid)
            self._xid = (messages.discard_xid + 1) & 0x7FFFFFFF or 1
            try:
                link, fresh = self._connected()
                try:
                    self._transact(link, messages)
                except _NotCommitted:
                    if fresh:
                        raise
                    self._drop()  # dropped by the switch while idle: once more, afresh
                    self._transact(self._connected()[0], messages)
            except ConnectionFailed as error:
                self._drop()
                raise ConnectionFailed(f"{self.path}: {error}") from error

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._drop()
        if self._keepalive is not None and self._keepalive is not threading.current_thread():
            self._keepalive.join(timeout=5)

    # -- the exchange ------------------------------------------------------------------------
    def _transact(self, link: _Link, messages: ofwire.BundleMessages) -> None:
        """Raises ``_NotCommitted`` when the connection failed before the commit was sent
        (the switch discards a bundle whose connection goes), ``ConnectionFailed`` after."""
        deadline = time.monotonic() + self.timeout
        try:
            link.send(messages.staged, deadline)
            errors = _errors_until(link, deadline, messages.open_xid, messages.barrier_xid,
                                   lambda r: isinstance(r, BarrierReply))
            if errors:
                link.send(messages.discard, deadline)
                _errors_until(link, deadline, messages.discard_xid, messages.discard_xid,
                              _bundle_reply(BundleControl.DISCARD_REPLY))
                raise BundleRefused(_describe(errors, messages))
            link.send(messages.commit, deadline)
        except (OSError, ProtocolError, ConnectionFailed) as error:
            raise _NotCommitted(str(error) or type(error).__name__) from error
        try:
            errors = _errors_until(link, deadline, messages.open_xid, messages.commit_xid,
                                   _bundle_reply(BundleControl.COMMIT_REPLY))
        except (OSError, ProtocolError) as error:
            raise ConnectionFailed(str(error) or type(error).__name__) from error
        if errors:
            raise BundleRefused(_describe(errors, messages))

    def _connected(self) -> tuple[_Link, bool]:
        """The live link (what the switch sent meanwhile read), and whether it is new."""
        if self._link is not None:
            try:
                self._link.drain()
                return self._link, False
            except (OSError, ProtocolError, ConnectionFailed):
                self._drop()
        self._link = _connect(self.path, self.timeout)
        if self._keepalive is None and self.keepalive > 0:
            self._keepalive = threading.Thread(target=self._keep_alive, daemon=True,
                                               name=f"openflow-{self.path.stem}")
            self._keepalive.start()
        return self._link, True

    def _keep_alive(self) -> None:
        """Every ``keepalive`` seconds, unless a bundle holds the connection: answer what
        the switch asked meanwhile (a connection that fails is dropped)."""
        while not self._closed.wait(self.keepalive):
            if not self._lock.acquire(blocking=False):
                continue
            try:
                if self._link is not None:
                    self._link.drain()
            except (OSError, ProtocolError, ConnectionFailed):
                self._drop()
            finally:
                self._lock.release()

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


def _errors_until(link: _Link, deadline: float, first_xid: int, last_xid: int,
                  done: Callable[[Reply], bool]) -> list[ErrorReply]:
    """Read replies until one with ``last_xid`` for which ``done`` holds, or an error for
    ``last_xid``; the errors for xids from ``first_xid`` to ``last_xid`` seen on the way
    (replies to earlier exchanges are skipped)."""
    errors = []
    while True:
        reply = link.next_reply(deadline)
        if not first_xid <= reply.xid <= last_xid:
            continue
        if isinstance(reply, ErrorReply):
            errors.append(reply)
            if reply.xid == last_xid:
                return errors
        elif reply.xid == last_xid and done(reply):
            return errors


def _bundle_reply(kind: BundleControl) -> Callable[[Reply], bool]:
    return lambda reply: isinstance(reply, BundleReply) and reply.kind == kind


def _describe(errors: list[ErrorReply], messages: ofwire.BundleMessages) -> str:
    """``Error OFPBAC_BAD_OUT_PORT for: add table=..`` per error (ovs-ofctl's words)."""
    lines = []
    for error in errors:
        item = messages.what.get(error.xid)
        if item is not None:
            what = ofwire.describe(item)
        elif error.xid == messages.commit_xid:
            what = "the bundle's commit"
        else:
            what = f"message xid {error.xid:#x}"
        lines.append(f"Error {error.name} for: {what}")
    return "; ".join(lines)

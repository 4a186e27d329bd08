"""A long-lived OpenFlow 1.5 connection to one bridge: flow bundles without a process each.

``BridgeConnection`` connects to ovs-vswitchd's management socket of the bridge
(``<OVS rundir>/<bridge>.mgmt``, what ``ovs-ofctl`` uses) when first needed, says hello
(OpenFlow 1.5 only) and then applies ``FlowBundle``s as ``ovs-ofctl --bundle`` does
(``ofwire.bundle_messages``): open, every flow_mod, a barrier; commit only if the switch
refused none of them, else discard; then wait for the commit's reply.  A thread per
connection reads what the switch sends, answers its echo requests (the switch drops a
connection that leaves its probes unanswered) and hands everything else to the waiting
bundle.

Two failures, two types: ``BundleRefused`` -- the switch answered with errors, nothing of
the bundle was applied, the connection stays; ``ConnectionFailed`` -- no usable connection
(none, broken, timed out, no OpenFlow 1.5), dropped; the next bundle connects again.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
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


class ConnectionFailed(Exception):
    """The connection could not carry the bundle (the message says why).  If it broke
    after the commit was sent, the bundle may or may not have been applied."""


class BundleRefused(Exception):
    """The switch refused the bundle; nothing of it was applied.  The message names each
    error and the flow_mod it was for, as ``ovs-ofctl`` prints them."""


class _NotCommitted(ConnectionFailed):
    """The connection failed before the bundle's commit was sent: nothing was applied."""


class _Link:
    """One connected socket and the thread that reads it."""

    def __init__(self, sock: socket.socket, pending: bytes, name: str):
        self._sock = sock
        self._send_lock = threading.Lock()
        self._arrived = threading.Condition()
        self._replies: deque[Reply] = deque()
        self.broken: str | None = None
        self._thread = threading.Thread(target=self._read, args=(pending,), daemon=True,
                                        name=f"openflow-{name}")
        self._thread.start()

    def send(self, data: bytes) -> None:
        with self._send_lock:
            self._sock.sendall(data)

    def next_reply(self, deadline: float) -> Reply:
        """The next message from the switch (echo requests are answered, not returned)."""
        with self._arrived:
            while not self._replies:
                if self.broken is not None:
                    raise ConnectionFailed(self.broken)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ConnectionFailed("no reply from the switch in time")
                self._arrived.wait(left)
            return self._replies.popleft()

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader
        except OSError:
            pass
        self._sock.close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _read(self, pending: bytes) -> None:
        buffer = pending
        try:
            while True:
                messages, buffer = ofwire.split_messages(buffer)
                for data in messages:
                    reply = ofwire.decode(data)
                    if isinstance(reply, EchoRequest):
                        self.send(ofwire.echo_reply(reply.xid, reply.data))
                        continue
                    with self._arrived:
                        self._replies.append(reply)
                        self._arrived.notify_all()
                chunk = self._sock.recv(_READ_SIZE)
                if not chunk:
                    raise ConnectionFailed("the switch closed the connection")
                buffer += chunk
        except (OSError, ProtocolError, ConnectionFailed) as error:
            with self._arrived:
                self.broken = str(error) or type(error).__name__
                self._arrived.notify_all()


def _connect(path: Path, timeout: float) -> tuple[socket.socket, bytes]:
    """A socket to ``path`` past the hello exchange, and what followed the switch's hello."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(ofwire.hello(0))
        buffer = b""
        while True:
            messages, rest = ofwire.split_messages(buffer)
            if messages:
                break
            chunk = sock.recv(_READ_SIZE)
            if not chunk:
                raise ConnectionFailed("closed before saying hello")
            buffer += chunk
        hello = ofwire.decode(messages[0])
        if not isinstance(hello, Hello) or ofwire.OFP15_VERSION not in hello.versions:
            raise ConnectionFailed(f"the switch does not offer OpenFlow 1.5 ({hello})")
        sock.settimeout(None)  # the reader blocks; sends time out on their own
        seconds = max(int(timeout), 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, 0))
        return sock, b"".join(messages[1:]) + rest
    except (OSError, ProtocolError) as error:
        sock.close()
        raise ConnectionFailed(str(error)) from error
    except ConnectionFailed:
        sock.close()
        raise


class BridgeConnection:
    """The OpenFlow connection to one bridge (see the module docstring).  One bundle at a
    time; ``close()`` ends it."""

    def __init__(self, path: Path, timeout: float = 10.0):
        self.path = path
        self.timeout = timeout
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._xid = 1
        self._bundle_id = 0

    def apply(self, bundle: FlowBundle, numbers: Mapping[str, int]) -> None:
        """Apply ``bundle`` atomically, ports bound by ``numbers``.  Raises
        ``ofwire.NotEncodable`` (before anything is sent), ``BundleRefused`` or
        ``ConnectionFailed``."""
        with self._lock:
            self._bundle_id = (self._bundle_id + 1) & 0xFFFFFFFF
            messages = ofwire.bundle_messages(bundle, numbers, self._bundle_id, self._xid)
            self._xid = (messages.discard_xid + 1) & 0x7FFFFFFF or 1
            reused = self._link is not None and self._link.broken is None
            try:
                self._transact(self._connected(), messages)
            except _NotCommitted as error:
                # nothing was committed: a connection the switch dropped while idle (not
                # yet noticed) is replaced, and the bundle sent again, once
                self._drop()
                if not reused:
                    raise ConnectionFailed(f"{self.path}: {error}") from error
                try:
                    self._transact(self._connected(), messages)
                except ConnectionFailed as again:
                    self._drop()
                    raise ConnectionFailed(f"{self.path}: {again}") from again
            except ConnectionFailed as error:
                self._drop()
                raise ConnectionFailed(f"{self.path}: {error}") from error

    def close(self) -> None:
        with self._lock:
            self._drop()

    # -- the exchange ------------------------------------------------------------------------
    def _transact(self, link: _Link, messages: ofwire.BundleMessages) -> None:
        """Raises ``_NotCommitted`` when the connection failed before the commit was sent
        (the switch discards a bundle whose connection goes), ``ConnectionFailed`` after."""
        deadline = time.monotonic() + self.timeout
        try:
            link.send(messages.staged)
            errors = self._errors_until(link, deadline, messages.open_xid,
                                        messages.barrier_xid,
                                        lambda r: isinstance(r, BarrierReply))
            if errors:
                link.send(messages.discard)
                self._errors_until(link, deadline, messages.discard_xid, messages.discard_xid,
                                   _bundle_reply(BundleControl.DISCARD_REPLY))
                raise BundleRefused(_describe(errors, messages))
            link.send(messages.commit)
        except (OSError, ConnectionFailed) as error:
            raise _NotCommitted(str(error) or type(error).__name__) from error
        try:
            errors = self._errors_until(link, deadline, messages.open_xid, messages.commit_xid,
                                        _bundle_reply(BundleControl.COMMIT_REPLY))
        except OSError as error:
            raise ConnectionFailed(str(error)) from error
        if errors:
            raise BundleRefused(_describe(errors, messages))

    @staticmethod
    def _errors_until(link: _Link, deadline: float, first_xid: int, last_xid: int,
                      done) -> list[ErrorReply]:
        """Read replies until one with ``last_xid`` for which ``done`` holds, or an error
        for ``last_xid``; the errors for xids from ``first_xid`` to ``last_xid`` seen on
        the way (replies to earlier exchanges are skipped)."""
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

    def _connected(self) -> _Link:
        """The live link, connecting first if there is none (raises ConnectionFailed)."""
        if self._link is not None and self._link.broken is not None:
            self._drop()
        if self._link is None:
            sock, pending = _connect(self.path, self.timeout)
            self._link = _Link(sock, pending, self.path.stem)
        return self._link

    def _drop(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None


def _bundle_reply(kind: BundleControl):
    return lambda reply: isinstance(reply, BundleReply) and reply.kind == kind


def _describe(errors: list[ErrorReply], messages: ofwire.BundleMessages) -> str:
    """``Error OFPBAC_BAD_OUT_PORT for: add table=..`` per error (ovs-ofctl's words)."""
    lines = []
    for error in errors:
        what = messages.what.get(error.xid)
        if what is None:
            what = "the bundle's commit" if error.xid == messages.commit_xid else \
                f"message xid {error.xid:#x}"
        lines.append(f"Error {error.name} for: {what}")
    return "; ".join(lines)

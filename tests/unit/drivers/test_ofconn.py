"""The OpenFlow connection against a scripted switch on a unix socket (no OVS): the bundle
exchange, a refused flow_mod (discard, never commit), echo requests answered while idle,
hello negotiation, a dropped connection replaced by the next bundle, a silent switch."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dvr.agent.desired.openflow import DROP, Match
from dvr.agent.desired.state import Flow
from dvr.agent.drivers import ofwire
from dvr.agent.drivers.ofconn import BridgeConnection, BundleRefused, ConnectionFailed
from dvr.agent.reconcile.commands import FlowBundle, FlowRef

BUNDLE = FlowBundle("br-x", (Flow(0, 1, Match(), (DROP,), "a:b"),
                             Flow(1, 2, Match(), (DROP,), "a:c")), (FlowRef(0, 0x5),))


def header(kind: int, xid: int, body: bytes = b"", version: int = 6) -> bytes:
    return struct.pack("!BBHI", version, kind, 8 + len(body), xid) + body


def error(xid: int, error_type: int, code: int) -> bytes:
    return header(1, xid, struct.pack("!HH", error_type, code))


@dataclass
class FakeSwitch:
    """Accepts connections on ``path`` one at a time; answers as OVS does, except where
    told: ``refuse_add`` (the nth bundle add gets an error), ``fail_commit``,
    ``silent_commit`` (no answer), ``versions`` (its hello's bitmap)."""

    path: Path
    versions: int = 0x7E
    refuse_add: int | None = None
    fail_commit: bool = False
    silent_commit: bool = False
    received: list[tuple[int, int, bytes]] = field(default_factory=list)
    connections: int = 0
    echo_replies: list[int] = field(default_factory=list)
    replied: threading.Event = field(default_factory=threading.Event)
    current: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(self.path))
        self.server.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.close()
        if self.current is not None:
            self.current.close()

    def hang_up(self) -> None:
        self.current.shutdown(socket.SHUT_RDWR)

    def send_echo_request(self, xid: int) -> None:
        self.current.sendall(header(2, xid, b"ping"))

    def kinds(self) -> list[int]:
        return [kind for kind, _, _ in self.received]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.current, self.connections = conn, self.connections + 1
            conn.sendall(header(0, 0, struct.pack("!HHI", 1, 8, self.versions)))
            try:
                self._answer(conn)
            except OSError:
                pass

    def _answer(self, conn: socket.socket) -> None:
        buffer, adds = b"", 0
        while chunk := conn.recv(65536):
            messages, buffer = ofwire.split_messages(buffer + chunk)
            for message in messages:
                kind, xid, body = message[1], struct.unpack_from("!I", message, 4)[0], \
                    message[8:]
                if kind == 0:
                    continue
                self.received.append((kind, xid, body))
                if kind == 3:
                    self.echo_replies.append(xid)
                    self.replied.set()
                elif kind == 34:
                    adds += 1
                    if adds == self.refuse_add:
                        conn.sendall(error(xid, 2, 4))
                elif kind == 20:
                    conn.sendall(header(21, xid))
                elif kind == 33:
                    bundle_id, control, flags = struct.unpack("!IHH", body)
                    if control == 4 and self.silent_commit:
                        continue
                    if control == 4 and self.fail_commit:
                        conn.sendall(error(xid - 2, 5, 1) + error(xid, 17, 13))
                        continue
                    conn.sendall(header(33, xid, struct.pack("!IHH", bundle_id, control + 1,
                                                             flags)))


@pytest.fixture
def switch(tmp_path) -> Iterator[FakeSwitch]:
    fake = FakeSwitch(tmp_path / "br-x.mgmt")
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def connection(switch) -> Iterator[BridgeConnection]:
    found = BridgeConnection(switch.path, timeout=2.0)
    yield found
    found.close()


def test_a_bundle_is_opened_filled_synced_and_committed(switch, connection):
    connection.apply(BUNDLE, {})
    assert switch.kinds() == [33, 34, 34, 34, 20, 33]
    controls = [struct.unpack("!IHH", body)[1] for kind, _, body in switch.received
                if kind == 33]
    assert controls == [0, 4]  # open, commit
    connection.apply(BUNDLE, {})
    assert switch.connections == 1  # the same connection carries the next bundle
    ids = {struct.unpack_from("!I", body)[0] for kind, _, body in switch.received
           if kind in (33, 34)}
    assert len(ids) == 2  # one bundle id each


def test_a_refused_flow_mod_discards_the_bundle_and_is_named(switch, connection):
    switch.refuse_add = 3
    with pytest.raises(BundleRefused, match=r"^Error OFPBAC_BAD_OUT_PORT for: add table=1,"
                                            r"priority=2,cookie=0x[0-9a-f]+,actions=drop$"):
        connection.apply(BUNDLE, {})
    controls = [struct.unpack("!IHH", body)[1] for kind, _, body in switch.received
                if kind == 33]
    assert controls == [0, 6]  # open, discard: never a commit
    switch.refuse_add = None
    connection.apply(BUNDLE, {})  # the connection stays usable
    assert switch.connections == 1


def test_a_commit_the_switch_fails_is_refused_with_both_errors(switch, connection):
    switch.fail_commit = True
    with pytest.raises(BundleRefused, match=r"Error OFPFMFC_TABLE_FULL for: add table=1.*; "
                                            r"Error OFPBFC_MSG_FAILED for: the bundle's commit"):
        connection.apply(BUNDLE, {})


def test_echo_requests_are_answered_between_bundles(switch):
    connection = BridgeConnection(switch.path, timeout=2.0, keepalive=0.05)
    try:
        connection.apply(BUNDLE, {})
        switch.send_echo_request(0x77)
        assert switch.replied.wait(2.0)
        assert switch.echo_replies == [0x77]
        assert switch.received[-1] == (3, 0x77, b"ping")
    finally:
        connection.close()


def test_echo_requests_are_answered_before_a_bundle(switch):
    connection = BridgeConnection(switch.path, timeout=2.0, keepalive=0)  # no keepalive
    try:
        connection.apply(BUNDLE, {})
        switch.send_echo_request(0x78)
        time.sleep(0.1)
        assert switch.echo_replies == []
        connection.apply(BUNDLE, {})
        assert switch.echo_replies == [0x78]
        assert switch.kinds()[-7:] == [3, 33, 34, 34, 34, 20, 33]
    finally:
        connection.close()


def test_a_dropped_connection_is_replaced_by_the_next_bundle(switch, connection):
    connection.apply(BUNDLE, {})
    switch.hang_up()
    connection.apply(BUNDLE, {})
    assert switch.connections == 2
    assert switch.kinds()[-6:] == [33, 34, 34, 34, 20, 33]


def test_a_switch_without_openflow_15_is_a_connection_failure(switch, connection):
    switch.versions = 0x10  # OpenFlow 1.3 only
    with pytest.raises(ConnectionFailed, match="OpenFlow 1.5"):
        connection.apply(BUNDLE, {})
    assert switch.received == []


def test_a_silent_switch_times_out_and_the_connection_is_dropped(switch):
    switch.silent_commit = True
    connection = BridgeConnection(switch.path, timeout=0.3)
    try:
        with pytest.raises(ConnectionFailed, match="no reply"):
            connection.apply(BUNDLE, {})
        switch.silent_commit = False
        connection.apply(BUNDLE, {})
        assert switch.connections == 2
    finally:
        connection.close()


def test_no_switch_is_a_connection_failure(tmp_path):
    with pytest.raises(ConnectionFailed, match="nothing.mgmt"):
        BridgeConnection(tmp_path / "nothing.mgmt").apply(BUNDLE, {})


def test_a_bundle_it_cannot_encode_sends_nothing(switch, connection):
    bad = FlowBundle("br-x", (Flow(0, 1, Match(in_port="nosuch"), (DROP,), "a:b"),))
    with pytest.raises(ofwire.NotEncodable):
        connection.apply(bad, {})
    assert switch.connections == 0

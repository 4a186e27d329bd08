"""The flow mirror's pure parts: monitor lines parsed, events replayed into a FlowTable, and
the unixctl client the driver syncs through (against a fake server)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from dvr.agent.drivers.flow_mirror import FlowTable
from dvr.agent.drivers.flow_monitor import UnixctlClient, UnixctlError
from dvr.agent.drivers.openflow import (
    BarrierReply,
    FlowEvent,
    MonitoredFlow,
    UnexpectedLine,
    parse_flow_line,
    parse_monitor_line,
)

ADDED = " event=ADDED table=2 cookie=0x22 in_port=1,dl_vlan=3 actions=strip_vlan,output:2"


def event(line: str) -> FlowEvent:
    parsed = parse_monitor_line(line)
    assert isinstance(parsed, FlowEvent)
    return parsed


def test_monitor_lines_are_events_barriers_headers_or_unexpected():
    assert event(ADDED) == FlowEvent("ADDED", MonitoredFlow(
        2, 0x22, "in_port=1,dl_vlan=3", "strip_vlan,output:2"))
    deleted = event(" event=DELETED reason=idle table=1 cookie=0x11 dl_dst=fa:16:3e:00:00:01")
    assert deleted == FlowEvent("DELETED", MonitoredFlow(1, 0x11, "dl_dst=fa:16:3e:00:00:01",
                                                         "drop"))
    assert event(" event=INITIAL table=0 idle_timeout=5 cookie=0 actions=NORMAL").flow == \
        MonitoredFlow(0, 0, "", "NORMAL")
    assert event(" event=MODIFIED table=60 cookie=0x5 ip actions=drop").kind == "MODIFIED"
    assert parse_monitor_line("OFPT_BARRIER_REPLY (OF1.5) (xid=0x5):") == BarrierReply()
    assert parse_monitor_line("OFPST_FLOW_MONITOR reply (OF1.5) (xid=0x0):") is None
    assert parse_monitor_line("NXST_FLOW_MONITOR reply (xid=0x2):") is None
    assert parse_monitor_line("   ") is None
    for line in (" event=ABBREV xid=0x5", "NXT_FLOW_MONITOR_PAUSED (xid=0x0):",
                 "2026-12-02T17:19:22Z|00001|vconn|WARN|connection dropped",
                 " event=ADDED table=x cookie=0x1 actions=drop"):
        assert isinstance(parse_monitor_line(line), UnexpectedLine), line


def test_a_monitored_flow_reads_like_a_dumped_one_without_priority_and_counters():
    names = {1: "tap-a", 2: "patch-tun"}
    observed = event(ADDED).flow.observed(names)
    dumped = parse_flow_line(" cookie=0x22, duration=1.0s, table=2, n_packets=7, n_bytes=9, "
                             "priority=4,in_port=1,dl_vlan=3 actions=strip_vlan,output:2",
                             names)
    assert (observed.cookie, observed.table, observed.ports) == (
        dumped.cookie, dumped.table, dumped.ports) == (0x22, 2, ("patch-tun", "tap-a"))
    assert dumped.text == f"priority=4,{observed.text}"
    assert observed.text == 'in_port="tap-a",dl_vlan=3 actions=strip_vlan,output:"patch-tun"'
    assert (observed.priority, observed.n_packets) == (None, 0)
    match_all = MonitoredFlow(0, 1, "", "NORMAL").observed()
    assert (match_all.text, match_all.ports) == ("actions=NORMAL", ())


def replay(*lines: str) -> FlowTable:
    table = FlowTable()
    for line in lines:
        table.apply(event(line))
    return table


def cookies(table: FlowTable) -> list[int]:
    return [f.cookie for f in table.flows()]


def test_the_table_replays_adds_deletes_and_modifications():
    table = replay(" event=INITIAL table=0 cookie=0x1 in_port=1 actions=drop",
                   " event=INITIAL table=0 cookie=0x2 in_port=2 actions=drop",
                   " event=ADDED table=1 cookie=0x3 ip actions=NORMAL",
                   " event=DELETED reason=delete table=0 cookie=0x1 in_port=1",
                   " event=MODIFIED table=1 cookie=0x3 ip actions=drop")
    assert table.consistent and len(table) == 2
    assert cookies(table) == [0x2, 0x3]
    assert [f.text for f in table.flows()] == ["in_port=2 actions=drop", "ip actions=drop"]
    # an add over the same flow replaces it; a modification may bring a new cookie
    table.apply(event(" event=ADDED table=1 cookie=0x3 ip actions=NORMAL"))
    table.apply(event(" event=MODIFIED table=0 cookie=0x9 in_port=2 actions=NORMAL"))
    assert table.consistent and cookies(table) == [0x3, 0x9]
    # the same match at two priorities is two flows (the agent's cookies differ)
    table.apply(event(" event=ADDED table=1 cookie=0x4 ip actions=drop"))
    assert cookies(table) == [0x3, 0x4, 0x9]


@pytest.mark.parametrize("line", [
    " event=DELETED reason=delete table=0 cookie=0x7 in_port=1",  # never added
    " event=MODIFIED table=1 cookie=0x5 ip actions=drop",  # which of 0x3 and 0x4?
])
def test_an_event_that_does_not_fit_makes_the_table_inconsistent(line: str):
    table = replay(" event=ADDED table=1 cookie=0x3 ip actions=NORMAL",
                   " event=ADDED table=1 cookie=0x4 ip actions=drop")
    assert table.consistent
    assert table.apply(event(line)) is False
    assert table.consistent is False


def test_flows_are_named_by_the_ports_of_now_and_cached_while_nothing_changes():
    table = replay(" event=ADDED table=0 cookie=0x1 in_port=5 actions=output:6")
    first = table.flows({5: "tap-a", 6: "patch-tun"})
    assert first[0].ports == ("patch-tun", "tap-a")
    assert table.flows({5: "tap-a", 6: "patch-tun"}) is first
    assert table.flows({6: "patch-tun"})[0].ports == ("5", "patch-tun")  # tap-a is gone
    version = table.version
    table.apply(event(" event=DELETED reason=delete table=0 cookie=0x1 in_port=5"))
    assert table.version > version and table.flows({5: "tap-a"}) == ()


class FakeUnixctl:
    """A unixctl server answering each request with ``answer(request)``, optionally in
    two pieces, on a real unix socket."""

    def __init__(self, path: str, answer):
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.answer = answer
        self.requests: list[dict] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        decoder, buffer = json.JSONDecoder(), ""
        while chunk := conn.recv(4096):
            buffer += chunk.decode()
            while buffer:
                try:
                    request, end = decoder.raw_decode(buffer)
                except ValueError:
                    break
                buffer = buffer[end:]
                self.requests.append(request)
                reply = self.answer(request)
                if reply is not None:
                    text = json.dumps(reply)
                    conn.sendall(text[:5].encode())
                    conn.sendall(text[5:].encode())
        conn.close()


def test_the_unixctl_client_calls_and_reads_replies_in_pieces(tmp_path):
    FakeUnixctl(str(tmp_path / "ctl"),
                lambda r: {"id": r["id"], "result": "", "error": None})
    client = UnixctlClient(tmp_path / "ctl", timeout=2)
    assert client.call("ofctl/barrier") == ""
    assert client.call("ofctl/barrier") == ""
    client.close()


def test_the_unixctl_client_reports_errors_and_silence(tmp_path):
    FakeUnixctl(str(tmp_path / "ctl"), lambda r: (
        {"id": r["id"], "result": None, "error": "already waiting for barrier reply"}
        if r["method"] == "ofctl/barrier" else None))
    client = UnixctlClient(tmp_path / "ctl", timeout=2)
    with pytest.raises(UnixctlError, match="already waiting"):
        client.call("ofctl/barrier")
    with pytest.raises(UnixctlError, match="ofctl/other"):
        client.call("ofctl/other", timeout=0.05)  # no answer
    client.close()

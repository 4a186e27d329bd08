"""The flow mirror's pure parts: monitor lines parsed, events replayed into a FlowTable, and
the unixctl client the driver syncs through (against a fake server); the monitors' life
(start, sync, failure, backoff) against a stand-in for ``ovs-ofctl monitor``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvr.agent.drivers.children import ChildStarter
from dvr.agent.drivers.flow_mirror import FlowTable
from dvr.agent.drivers.flow_monitor import FlowMirrors, FlowMonitor, UnixctlClient, UnixctlError
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


def test_a_flow_of_conjunctions_only_reads_as_the_full_parse_reads_it():
    names = {1: "tap-a", 2: "patch-tun"}
    for match in ("in_port=1,reg6=0x1,ip", "reg6=0x1,tcp,tp_dst=22", ""):
        for actions in ("conjunction(7,1/3)", "conjunction(7,1/3),conjunction(12,2/2)"):
            flow = MonitoredFlow(82, 0x5, match, actions)
            full = parse_flow_line(f"cookie=0x5, table=82, {match or 'priority=32768'} "
                                   f"actions={actions}", names)
            observed = flow.observed(names)
            assert observed.ports == full.ports
            assert observed.text == full.text.removeprefix("priority=32768 ").removeprefix(
                "priority=32768,")
    # anything else takes the full parse: a port among the actions is found
    assert MonitoredFlow(82, 0x5, "ip", "conjunction(7,1/3),output:1").observed(
        names).ports == ("tap-a",)


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
    table = replay(" event=INITIAL table=1 cookie=0x3 ip actions=NORMAL",
                   " event=INITIAL table=1 cookie=0x4 ip actions=drop")
    assert table.consistent and cookies(table) == [0x3, 0x4]


@pytest.mark.parametrize("line", [
    " event=DELETED reason=delete table=0 cookie=0x7 in_port=1",  # never added
    " event=MODIFIED table=1 cookie=0x5 ip actions=drop",  # which of 0x3 and 0x4?
    " event=ADDED table=1 cookie=0x5 ip actions=drop",  # replacing 0x3 or 0x4, or not?
])
def test_an_event_that_does_not_fit_makes_the_table_inconsistent(line: str):
    table = replay(" event=INITIAL table=1 cookie=0x3 ip actions=NORMAL",
                   " event=INITIAL table=1 cookie=0x4 ip actions=drop")
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


# --- FlowMirrors and FlowMonitor, with a stand-in for ``ovs-ofctl monitor`` -------------------

FAKE_MONITOR = Path(__file__).with_name("fake_ofctl_monitor.py")
INITIAL = " event=INITIAL table=0 cookie=0x1 in_port=1 actions=output:2"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mirrors(clock) -> Iterator[FlowMirrors]:
    children = ChildStarter()
    found = FlowMirrors(children, lambda bridge: [sys.executable, str(FAKE_MONITOR), INITIAL],
                        os.environ, start_timeout=10, sync_timeout=5, clock=clock)
    yield found
    found.close()
    children.close()


def switch(monitor: FlowMonitor, method: str, *params: str) -> None:
    """What the switch does behind the mirror's back (through the stand-in)."""
    client = UnixctlClient(monitor.control_path, timeout=5)
    try:
        client.call(method, params)
    except UnixctlError:
        pass  # test/exit: no answer
    client.close()


def test_mirrors_start_with_the_initial_dump_and_follow_changes(mirrors: FlowMirrors):
    monitor, tunnel = mirrors.synced(["br-int", "br-tun"]).values()  # synced side by side
    assert (monitor.bridge, tunnel.bridge) == ("br-int", "br-tun")
    assert [(f.cookie, f.ports) for f in monitor.flows({1: "tap", 2: "patch"})] == [
        (0x1, ("patch", "tap"))]
    switch(monitor, "test/emit", " event=ADDED table=1 cookie=0x2 actions=drop")
    switch(monitor, "test/emit", " event=DELETED reason=delete table=0 cookie=0x1 in_port=1")
    assert mirrors.synced(["br-int"]) == {"br-int": monitor}
    assert [f.cookie for f in monitor.flows()] == [0x2]


def barriers_asked(monitor: FlowMonitor) -> int:
    client = UnixctlClient(monitor.control_path, timeout=5)
    try:
        return int(client.call("test/barriers"))
    finally:
        client.close()


def test_each_sync_sends_its_own_barrier_to_the_monitors_asked_for_only(
        mirrors: FlowMirrors):
    monitor, tunnel = mirrors.synced(["br-int", "br-tun"]).values()
    assert (barriers_asked(monitor), barriers_asked(tunnel)) == (1, 1)
    switch(monitor, "test/emit", " event=ADDED table=1 cookie=0x2 actions=drop")
    assert mirrors.synced(["br-int"]) == {"br-int": monitor}
    assert (barriers_asked(monitor), barriers_asked(tunnel)) == (2, 1)
    assert [f.cookie for f in monitor.flows()] == [0x1, 0x2]  # the change before the sync


def test_a_failed_monitor_is_said_once_and_replaced_after_its_backoff(
        mirrors: FlowMirrors, clock: Clock, caplog):
    (first,) = mirrors.synced(["br-int"]).values()
    switch(first, "test/exit")
    first.process.wait(5)
    with caplog.at_level(logging.INFO, logger="dvr.agent.drivers.flow_monitor"):
        assert mirrors.synced(["br-int"]) == {}
        assert first.failure  # it exited (seen by the reader or by the barrier)
        clock.now += 0.5
        assert mirrors.synced(["br-int"]) == {}  # no new monitor before the backoff is over
        clock.now += 0.6
        (second,) = mirrors.synced(["br-int"]).values()
        switch(second, "test/emit", " event=ABBREV xid=0x1")  # cannot be placed: dropped
        assert mirrors.synced(["br-int"]) == {}
        assert second.failure.endswith("event=ABBREV xid=0x1")
        clock.now += 0.5  # the second one was in sync: its backoff starts again at 1 s
        assert mirrors.synced(["br-int"]) == {}
        clock.now += 0.6
        (third,) = mirrors.synced(["br-int"]).values()
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "stopped" in m]) == 2  # said once per outage
    assert len([m for m in messages if "in sync again" in m]) == 2
    assert second.process.poll() is not None and first.process.poll() is not None
    assert [f.cookie for f in third.flows()] == [0x1]


def test_the_unixctl_client_calls_reads_replies_in_pieces_and_reports_refusals(
        mirrors: FlowMirrors):
    (monitor,) = mirrors.synced(["br-int"]).values()
    client = UnixctlClient(monitor.control_path, timeout=5)
    assert client.call("ofctl/barrier") == ""
    assert client.call("test/emit", [" event=ADDED table=3 cookie=0x3 actions=drop"]) == ""
    with pytest.raises(UnixctlError, match="not a valid command"):
        client.call("ofctl/nosuch")
    with pytest.raises(UnixctlError, match="test/silent"):
        client.call("test/silent", timeout=0.05)  # no answer
    client.close()
    assert mirrors.synced(["br-int"]) == {"br-int": monitor}
    assert [f.cookie for f in monitor.flows()] == [0x1, 0x3]


def test_a_monitor_that_does_not_answer_the_barrier_in_time_is_dropped(clock: Clock):
    children = ChildStarter()
    silent = [sys.executable, "-c", "import time; print(' event=INITIAL table=0 cookie=0x1 "
              "actions=drop', flush=True); time.sleep(60)"]
    mirrors = FlowMirrors(children, lambda bridge: silent, os.environ, start_timeout=0.3,
                          sync_timeout=0.3, clock=clock)
    try:
        assert mirrors.synced(["br-int"]) == {}  # no unixctl socket ever appears
    finally:
        mirrors.close()
        children.close()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(("add", "delete", "modify", "recookie", "rename",
                                            "look")),
                          st.integers(0, 30), st.integers(0, 3)), max_size=60))
def test_the_flows_after_changes_equal_a_fresh_tables(history):
    """``flows()`` places only what changed since its last answer (or sorts everything
    again), and after a port is renamed (plugged, unplugged) names again only the flows
    that name it: either way, what a table built afresh from the same flows answers."""
    table, held = FlowTable(), {}
    names = {1: "tap-a", 2: "tap-b"}
    for n in range(40):  # enough flows that a few changes are placed, not sorted again
        flow = MonitoredFlow(n % 3, 0x100 + n, f"reg5={n}", f"output:{n % 4}")
        held[(flow.table, flow.match)] = flow
        table.apply(FlowEvent("INITIAL", flow))
    table.flows(names)
    for kind, pick, port in history:
        keys = sorted(held)
        key = keys[pick % len(keys)] if keys else None
        if kind == "add":
            flow = MonitoredFlow(7, 0x900 + pick, f"reg6={pick}", f"output:{port}")
            if (flow.table, flow.match) in held:
                continue
            held[(flow.table, flow.match)] = flow
            assert table.apply(FlowEvent("ADDED", flow))
        elif key is None:
            continue
        elif kind == "delete":
            assert table.apply(FlowEvent("DELETED", held.pop(key)))
        elif kind == "modify":  # new actions, same cookie
            held[key] = flow = MonitoredFlow(*key[:1], held[key].cookie, key[1], f"output:{port}")
            assert table.apply(FlowEvent("MODIFIED", flow))
        elif kind == "recookie":
            held[key] = flow = MonitoredFlow(key[0], 0x500 + pick, key[1], held[key].actions)
            assert table.apply(FlowEvent("MODIFIED", flow))
        elif kind == "rename":  # port ``port`` gets another name, or goes (pick % 3 == 0)
            names = {n: name for n, name in names.items() if n != port}
            if pick % 3:
                names[port] = f"tap-{pick}"
        else:
            fresh = FlowTable()
            for flow in held.values():
                fresh.apply(FlowEvent("INITIAL", flow))
            assert table.flows(names) == fresh.flows(names)
            mirrored, afresh = table.snapshot(names), fresh.snapshot(names)
            for flow in held.values():
                assert mirrored.installed(flow.cookie) == afresh.installed(flow.cookie)

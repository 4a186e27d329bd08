"""Traces over hosts whose br-tun is folded into br-int (``tunnel_layout = "folded"``): the
same walks as with br-tun, br-tun's tables found at their offset in br-int."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dvr.agent.desired import DesiredConfig
from dvr.agent.desired.folding import TUNNEL_TABLE_OFFSET
from dvr.trace.hosts import HostData
from dvr.trace.steps import DropStep, OpenFlowStep, Trace, TraceRequest
from dvr.trace.tracer import trace_packet
from dvr.trace.verify import labelled_segments, switch_passes
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    BLUE_2,
    HOST_1,
    HOST_2,
    ORANGE,
    ORANGE_1,
    east_west_cloud,
    tap_name,
)
from tests.unit.desired.firewall_scenarios import firewall_cloud, overlay
from tests.unit.trace.trace_scenarios import NAMESPACE_PATH, east_west_hosts

CLOUD = east_west_cloud()
FOLDED = DesiredConfig(tunnel_layout="folded")
FOLDED_NAMESPACE_PATH = replace(NAMESPACE_PATH, tunnel_layout="folded")

Path = tuple[tuple[str, str, int], ...]


def folded(path: Path) -> Path:
    """A path through br-tun as it runs with br-tun folded into br-int: br-tun's tables at
    their offset, each run of them entered through br-int's table 0 (the port it arrives
    at, patch-int or a VXLAN port, is on br-int)."""
    out: list[tuple[str, str, int]] = []
    for index, (host, bridge, table) in enumerate(path):
        if bridge != "br-tun":
            out.append((host, bridge, table))
            continue
        if index == 0 or path[index - 1][:2] != (host, "br-tun"):
            out.append((host, "br-int", 0))
        out.append((host, "br-int", table + TUNNEL_TABLE_OFFSET))
    return tuple(out)


def trace_both(request: TraceRequest, bridge: DesiredConfig, folded_config: DesiredConfig,
               **edits) -> tuple[Trace, Trace]:
    return (trace_packet(east_west_hosts(config=bridge, **edits), request),
            trace_packet(east_west_hosts(config=folded_config, **edits), request))


@pytest.mark.parametrize("request_", [
    TraceRequest(BLUE_1, ORANGE_1),  # routed on compute-1, cross host
    TraceRequest(BLUE_1, BLUE_2),  # same subnet, cross host
    TraceRequest(ORANGE_1, BLUE_1, proto="tcp", dport=22),
], ids=["routed", "same-subnet", "routed-back-tcp"])
@pytest.mark.parametrize("configs", [(NAMESPACE_PATH, FOLDED_NAMESPACE_PATH),
                                     (DesiredConfig(), FOLDED)], ids=["namespace", "openflow"])
def test_a_folded_host_walks_the_same_path_through_br_tuns_tables(request_, configs):
    apart, merged = trace_both(request_, *configs)
    assert apart.delivered and merged.delivered
    assert any(bridge == "br-tun" for _, bridge, _ in apart.path())
    assert merged.path() == folded(apart.path())
    assert merged.verdict.where == apart.verdict.where == \
        f"{tap_name(request_.destination)} on br-int"
    assert merged.reply is not None and apart.reply is not None
    assert merged.reply.path() == folded(apart.reply.path())


def test_a_missing_l2pop_entry_is_named_at_br_tuns_table_20_in_br_int():
    edits = {"edits": {HOST_1: lambda v: replace(v, networks=tuple(
        replace(n, remote_hosts=()) if n.id == ORANGE else n for n in v.networks))}}
    _apart, merged = trace_both(TraceRequest(BLUE_1, ORANGE_1), DesiredConfig(), FOLDED,
                                **edits)
    drop = merged.steps[-1]
    assert isinstance(drop, DropStep) and not merged.delivered
    table = 20 + TUNNEL_TABLE_OFFSET
    assert (drop.host, drop.bridge, drop.table) == (HOST_1, "br-int", table)
    assert drop.place == f"br-int table {table}"
    assert f"no L2-population entry for {CLOUD.vm(ORANGE_1).mac}" in drop.reason
    assert "nowhere to flood" in drop.reason


def test_the_folded_hosts_have_no_br_tun():
    hosts: dict[str, HostData] = east_west_hosts(config=FOLDED)
    assert {b.name for h in hosts.values() for b in h.state.bridges} == {"br-int"}
    assert HOST_2 in hosts


def test_verify_asks_a_labelled_lookup_from_where_the_frame_last_entered_br_int():
    """A firewalled reply on compute-1 arrives from a VXLAN port into br-int, crosses the
    patch pair into br-int again, and its established connection's conntrack lookup needs
    a ct_label that the patch crossing clears: verify asks for it in a second trace from
    ``patch-tun`` (asked from the VXLAN port, the real switch found no label and dropped)."""
    cloud = firewall_cloud()
    rules = overlay(cloud=cloud)
    hosts = east_west_hosts(cloud, {h.name: rules.apply for h in cloud.hosts}, config=FOLDED)
    reply = trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1, proto="tcp", dport=8080)).reply
    assert reply is not None and reply.delivered
    steps = list(reply.steps)
    arrival = next((indexes, tunnel) for indexes, tunnel in switch_passes(reply.steps)
                   if steps[indexes[0]].host == HOST_1)
    (first, tunnel), (second, none) = labelled_segments(steps, *arrival)
    assert tunnel is not None and none is None
    assert steps[first[0]].in_port.startswith("vxlan-")
    entry = steps[second[0]]
    assert isinstance(entry, OpenFlowStep)
    assert (entry.bridge, entry.table, entry.in_port) == ("br-int", 0, "patch-tun")
    assert any(isinstance(steps[i], OpenFlowStep) and steps[i].ct_lookup
               and steps[i].ct_lookup[1] for i in second)

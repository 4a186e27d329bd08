"""Tracer inputs built in memory from ``east_west_cloud()`` (the server's rules, DVR.md §5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.model.hostview import HostView
from dvr.trace.hosts import HostData
from dvr.trace.steps import TraceRequest
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    BLUE_2,
    HOST_2,
    ORANGE_1,
    Cloud,
    east_west_cloud,
)

ViewEdit = Callable[[HostView], HostView]

FAST_PATH = DesiredConfig()  # the default: east/west routed in br-int
NAMESPACE_PATH = DesiredConfig(east_west="namespace")  # every routed packet via qrouter-


def host_data(cloud: Cloud, host: str, edit: ViewEdit | None = None,
              config: DesiredConfig = FAST_PATH) -> HostData:
    """``host`` as its agent would compute it (optionally from an edited view)."""
    view = cloud.view(host)
    if edit is not None:
        view = edit(view)
    plugged = cloud.plugged(host)
    state = compute_desired_state(view, HostInputs(plugged=plugged), config)
    return HostData(view, state, plugged)


def east_west_hosts(cloud: Cloud | None = None, edits: dict[str, ViewEdit] | None = None,
                    config: DesiredConfig = FAST_PATH) -> dict[str, HostData]:
    cloud = cloud or east_west_cloud()
    edits = edits or {}
    return {h.name: host_data(cloud, h.name, edits.get(h.name), config) for h in cloud.hosts}


# the traces whose real ofproto/trace texts are recorded in data/ofproto_traces.json (from
# switches built with NAMESPACE_PATH)
RECORDED_REQUESTS = (
    TraceRequest(BLUE_1, ORANGE_1),  # routed on compute-1, cross host (and the reply)
    TraceRequest(BLUE_1, BLUE_2),  # same subnet, cross host
    TraceRequest(BLUE_2, ORANGE_1, proto="tcp", dport=80),  # routed, same host
)


def orange_1_port_flow_cookie(hosts: dict[str, HostData]) -> int:
    """br-int table 1 on compute-2: restore the gateway MAC and output to orange-1."""
    bridge = hosts[HOST_2].state.bridge("br-int")
    assert bridge is not None
    flow = next(f for f in bridge.flows if f.owner == f"port:{ORANGE_1}" and f.table == 1)
    return flow.cookie


def deleted_variants(hosts: dict[str, HostData]) -> dict[str, list[tuple[str, str, str]]]:
    """Flows deleted by hand on the real switch: variant -> [(host, bridge, del-flows spec)]."""
    cookie = orange_1_port_flow_cookie(hosts)
    return {
        "deleted-port-flow": [(HOST_2, "br-int", f"cookie={cookie:#x}/-1")],
        "deleted-table": [(HOST_2, "br-int", "table=1")],
    }


# real `ovs-appctl ofproto/trace` texts (OVS 3.1) for every switch pass of RECORDED_REQUESTS
RECORDED = json.loads((Path(__file__).parent / "data" / "ofproto_traces.json").read_text())


class RecordedSwitches:
    """The tracer's switch port answered from recorded texts; remembers what it was asked."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.asked: list[tuple[str, str, str]] = []

    def trace(self, host: str, bridge: str, flow: str, ct_next: tuple[str, ...] = ()) -> str:
        self.asked.append((host, bridge, flow))
        key = f"{self.variant}|{host}|{bridge}|{flow}"
        if key not in RECORDED["traces"]:
            raise AssertionError(
                f"no recorded ofproto/trace for {key}: the desired flows or the walk changed; "
                "re-record (as root): .venv/bin/python tests/unit/trace/record_ofproto_traces.py")
        return RECORDED["traces"][key]

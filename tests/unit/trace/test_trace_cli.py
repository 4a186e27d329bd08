"""`dvr trace` over a fake server (the cloud of ``east_west_cloud()``) and its outputs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dvr.cli.main import main
from dvr.client import ServerError
from dvr.trace import cli as trace_cli
from dvr.trace.render import rewrites, step_to_dict, trace_to_dict
from dvr.trace.steps import ExternalHost, PacketView, TraceRequest
from dvr.trace.tracer import trace_packet
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    HOST_1,
    HOST_2,
    HOST_3,
    ORANGE,
    ORANGE_1,
    east_west_cloud,
)
from tests.unit.trace.north_south_scenarios import north_south_hosts
from tests.unit.trace.trace_scenarios import RecordedSwitches, east_west_hosts

CLOUD = east_west_cloud()
BLUE_1_NAME, ORANGE_1_NAME = f"device-{BLUE_1}", f"device-{ORANGE_1}"


class FakeServer:
    """The few ServerClient calls `dvr trace` makes, answered from the in-memory cloud."""

    def __init__(self, reports: dict[str, dict[str, Any]] | None = None) -> None:
        self.reports = reports or {}
        self.views_fetched: list[str] = []

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def list(self, collection: str, **filters: Any) -> list[dict[str, Any]]:
        assert collection == "ports"
        return [
            {"id": vm.id, "name": f"device-{vm.id}", "device_id": f"device-{vm.id}",
             "binding:host_id": vm.host, "mac_address": vm.mac,
             "fixed_ips": [{"subnet_id": CLOUD.net(vm.network_id).subnet_id,
                            "ip_address": vm.ip}]}
            for vm in CLOUD.vms
        ]

    def hosts(self) -> list[dict[str, Any]]:
        return [{"host": h.name} for h in CLOUD.hosts]

    def host_view(self, host: str):
        self.views_fetched.append(host)
        return CLOUD.view(host)

    def agent_state(self, host: str) -> dict[str, Any]:
        if host not in self.reports:
            raise ServerError(404, "HTTPNotFound", "no such route")
        return self.reports[host]


@pytest.fixture
def server(monkeypatch) -> FakeServer:
    fake = FakeServer()
    monkeypatch.setattr(trace_cli, "_client", lambda args: fake)
    return fake


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(["trace", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_text_output_one_block_per_host_and_the_verdict(server, capsys):
    status, out, err = run(capsys, BLUE_1_NAME, ORANGE_1_NAME)
    assert status == trace_cli.EXIT_DELIVERED
    assert "\033[" not in out  # not a terminal: no colour
    lines = out.splitlines()
    assert lines[0].startswith(f"forward: {BLUE_1_NAME} (203.0.113.11) -> {ORANGE_1_NAME}")
    headers = [line for line in lines if line.startswith("== ")]
    assert headers == [f"== {HOST_1} ==", f"== {HOST_2} ==", f"== {HOST_2} ==",
                       f"== {HOST_1} =="]  # forward, then the reply
    assert not any(line.startswith("  route    qrouter-") for line in lines)  # fast path
    routed = next(i for i, line in enumerate(lines) if line.startswith("  br-int    65"))
    assert "dec_ttl,mod_dl_src:fa:16:3e:aa:00:0c,mod_dl_dst:fa:16:3e:00:02:01" in lines[routed]
    assert "[fastpath:" in lines[routed]
    assert "ttl 64 -> 63" in lines[routed + 1]
    assert "dl_src fa:16:3e:00:01:01 -> fa:16:3e:aa:00:0c" in lines[routed + 1]
    assert "east/west fast path of router" in lines[routed + 1]
    assert "  tunnel   compute-1 198.51.100.11 -> compute-2 198.51.100.12  VNI 1002" in out
    assert any("br-tun     1  prio 1   dl_vlan=" in line and "mod_dl_src:fa:16:3f:00:00:01"
               in line for line in lines)
    assert "dl_src fa:16:3e:aa:00:0c -> fa:16:3f:00:00:01" in out  # the host-MAC rewrite
    assert f"verdict: delivered to {ORANGE_1_NAME} (203.0.113.75) on {HOST_2}" in out
    assert f"verdict: delivered to {BLUE_1_NAME} (203.0.113.11) on {HOST_1}" in out
    assert "no agent report for compute-1, compute-2" in err
    assert HOST_3 not in server.views_fetched  # only the hosts the packet visits


def test_colour_on_request(server, capsys):
    _, out, _ = run(capsys, BLUE_1_NAME, ORANGE_1_NAME, "--color", "always")
    assert "\033[32mverdict: delivered" in out


def test_json_output_has_stable_keys(server, capsys):
    status, out, _ = run(capsys, BLUE_1_NAME, ORANGE_1, "--json", "--proto", "tcp",
                         "--dport", "22")
    assert status == 0
    doc = json.loads(out)
    assert set(doc) >= {"request", "source", "destination", "steps", "verdict", "reply",
                        "verified", "disagreements", "assumed_plugged"}
    assert doc["request"] == {"source": BLUE_1_NAME, "destination": ORANGE_1,
                              "proto": "tcp", "dport": 22}
    assert doc["verdict"]["delivered"] is True and doc["verdict"]["host"] == HOST_2
    kinds = [s["kind"] for s in doc["steps"]]
    assert kinds[0] == "send" and kinds[-1] == "delivery"
    assert {"tunnel", "openflow"} <= set(kinds) and "namespace" not in kinds  # fast path
    flow = next(s for s in doc["steps"] if s["kind"] == "openflow" and s["table"] == 20)
    assert {"kind", "host", "bridge", "table", "priority", "match", "actions", "owner",
            "cookie", "packet", "packet_in", "check", "owner_description"} <= set(flow)
    assert flow["cookie"].startswith("0x") and flow["owner"].startswith("network:")
    assert flow["owner_description"].startswith("network ")
    assert flow["packet"]["tun_id"] == 1002 and flow["packet"]["tp_dst"] == 22
    tunnel = next(s for s in doc["steps"] if s["kind"] == "tunnel")
    assert (tunnel["from_host"], tunnel["to_host"], tunnel["vni"]) == (HOST_1, HOST_2, 1002)
    routed = next(s for s in doc["steps"] if s["kind"] == "openflow" and s["table"] == 65)
    assert routed["owner"].startswith("fastpath:")
    assert routed["owner_description"].startswith("east/west fast path of router")
    assert routed["packet_in"]["nw_ttl"] - routed["packet"]["nw_ttl"] == 1
    assert doc["reply"]["verdict"]["delivered"] is True
    assert doc["reply"]["steps"][0]["host"] == HOST_2
    assert doc["assumed_plugged"] == [HOST_1, HOST_2]


def test_dropped_exit_status(server, capsys):
    status, out, _ = run(capsys, BLUE_1_NAME, "203.0.113.40")
    assert status == trace_cli.EXIT_DROPPED
    assert "verdict: dropped on compute-1 at source VM" in out


def test_verify_names_the_disagreeing_step(server, capsys, monkeypatch):
    monkeypatch.setattr(trace_cli, "_probe", lambda args: RecordedSwitches("deleted-port-flow"))
    status, out, _ = run(capsys, BLUE_1_NAME, ORANGE_1_NAME, "--verify")
    assert status == trace_cli.EXIT_DISAGREES
    assert "verify: the real switch disagrees at compute-2 br-int table 1" in out
    assert "REAL SWITCH DISAGREES: the real switch hit br-int table 1: priority 0" in out
    assert out.count("[ok]") == 11 + 12  # every other step of both directions


def test_verify_agreeing(server, capsys, monkeypatch):
    monkeypatch.setattr(trace_cli, "_probe", lambda args: RecordedSwitches("intact"))
    status, out, _ = run(capsys, BLUE_1_NAME, ORANGE_1_NAME, "--verify")
    assert status == trace_cli.EXIT_DELIVERED
    assert "verify: the real switches agree with all 12 OpenFlow steps" in out


def test_agent_reports_are_used_when_the_server_has_them(monkeypatch, capsys):
    fake = FakeServer(reports={
        HOST_2: {"vifs": CLOUD.plugged(HOST_2),
                 "local_vlans": {ORANGE: 7, "net-blue-0000-0000-0000-000000000001": 8}},
    })
    monkeypatch.setattr(trace_cli, "_client", lambda args: fake)
    status, out, err = run(capsys, BLUE_1_NAME, ORANGE_1_NAME, "--json")
    doc = json.loads(out)
    table_4 = next(s for s in doc["steps"]
                   if s["kind"] == "openflow" and s["host"] == HOST_2 and s["table"] == 4)
    assert table_4["packet"]["dl_vlan"] == 7 and table_4["actions"].startswith("mod_vlan_vid:7")
    assert doc["assumed_plugged"] == [HOST_1]


def test_ambiguous_name_is_an_error(monkeypatch, capsys):
    fake = FakeServer()
    ports = fake.list("ports")
    ports[1]["name"] = ports[0]["name"]
    monkeypatch.setattr(fake, "list", lambda collection, **f: ports)
    monkeypatch.setattr(trace_cli, "_client", lambda args: fake)
    status, _, err = run(capsys, ports[0]["name"], ORANGE_1_NAME)
    assert status == 1 and "names 2 ports" in err


def test_build_request_resolves_names_ips_and_host_hints():
    ports = FakeServer().list("ports")
    request = trace_cli.build_request(ports, BLUE_1_NAME, "203.0.113.75", "udp", 53, True)
    assert request == TraceRequest(BLUE_1, "203.0.113.75", "udp", 53, True, HOST_1, HOST_2)
    unknown = trace_cli.build_request(ports, "ghost", ORANGE_1_NAME, "icmp", None, False)
    assert unknown.source == "ghost" and unknown.source_host is None
    assert unknown.destination == ORANGE_1 and not unknown.with_reply
    outside = ExternalHost("outside", "192.0.2.1")
    north = trace_cli.build_request(ports, "outside", BLUE_1_NAME, "icmp", None, True,
                                    (outside,))
    assert north.source == "outside" and north.source_host is None
    assert north.destination == BLUE_1 and north.external_hosts == (outside,)


# --- renderers -----------------------------------------------------------------------------------


def test_rewrites_lists_changed_headers_only():
    before = PacketView("fa:16:3e:aa:00:0c", "fa:16:3e:00:02:01", "203.0.113.11",
                        "203.0.113.75", dl_vlan=2)
    after = PacketView("fa:16:3f:00:00:01", "fa:16:3e:00:02:01", "203.0.113.11",
                       "203.0.113.75", tun_id=1002)
    assert rewrites(before, after) == ["dl_src fa:16:3e:aa:00:0c -> fa:16:3f:00:00:01",
                                       "vlan 2 -> -", "tun_id - -> 0x3ea"]


def test_every_step_kind_serialises_with_kind_and_host():
    hosts = east_west_hosts()
    traces = [trace_packet(hosts, TraceRequest(BLUE_1, ORANGE_1)),
              trace_packet(hosts, TraceRequest(BLUE_1, "nothing")),
              trace_packet(north_south_hosts(), TraceRequest(BLUE_1, "192.0.2.1"))]
    seen = set()
    for trace in traces:
        doc = trace_to_dict(trace)
        json.dumps(doc)
        for step in trace.steps:
            data = step_to_dict(step)
            assert data["kind"] == step.kind and "host" in data
            seen.add(step.kind)
    assert seen == {"send", "openflow", "namespace", "tunnel", "segment", "delivery", "drop"}

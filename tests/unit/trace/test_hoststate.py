"""dvr.hoststate: one host's desired state rebuilt from the server's data, with Nova's tap
names assumed when the agent never said which VIFs are plugged (`dvr trace`, `dvr flows`
and the web trace all use it)."""

from __future__ import annotations

from typing import Any

import pytest

from dvr.agent.desired.openflow import port_text
from dvr.cli import ops as ops_cli
from dvr.cli.main import main
from dvr.cli.server_state import fetch_host_state
from dvr.client import ServerError
from dvr.hoststate import assumed_vifs, rebuild_host
from tests.unit.desired.desired_scenarios import (
    BLUE,
    BLUE_1,
    HOST_1,
    Vm,
    east_west_cloud,
    tap_name,
)

ROUTER_PORT = "3d3d3d3d-0000-0000-0000-00000000000d"
CLOUD = east_west_cloud().with_vm(
    Vm(ROUTER_PORT, BLUE, "fa:16:3e:00:01:09", "203.0.113.19", HOST_1,
       device_owner="network:router_gateway")
)


def vif_ports(state) -> set[str]:
    bridge = state.bridge("br-int")
    return {p.name for p in bridge.ports if p.name.startswith("tap")}


def test_without_a_report_vm_ports_are_assumed_plugged_under_nova_tap_names():
    view = CLOUD.view(HOST_1)
    rebuilt = rebuild_host(view, None)
    assert rebuilt.assumed
    assert dict(rebuilt.plugged) == {BLUE_1: tap_name(BLUE_1)} == assumed_vifs(view)
    assert vif_ports(rebuilt.state) == {tap_name(BLUE_1)}  # not the router's port


def test_a_report_without_vifs_keeps_its_local_vlans():
    rebuilt = rebuild_host(CLOUD.view(HOST_1), {"vifs": None, "local_vlans": {BLUE: 9}})
    assert rebuilt.assumed and rebuilt.state.local_vlan(BLUE) == 9


def test_reported_vifs_are_used_as_they_are():
    rebuilt = rebuild_host(CLOUD.view(HOST_1), {"vifs": {}, "local_vlans": {}})
    assert not rebuilt.assumed and rebuilt.plugged == {}
    assert vif_ports(rebuilt.state) == set()
    renamed = rebuild_host(CLOUD.view(HOST_1), {"vifs": {BLUE_1: "vm-eth0"}})
    assert not renamed.assumed and "vm-eth0" in {p.name for p in
                                                  renamed.state.bridge("br-int").ports}


def test_reported_bridge_mappings_give_the_mapped_bridge():
    plain = rebuild_host(CLOUD.view(HOST_1), {"vifs": {}})
    assert plain.state.bridge("br-ex") is None
    mapped = rebuild_host(CLOUD.view(HOST_1), {"vifs": {}, "bridge_mappings": {"public": "br-ex"}})
    bridge = mapped.state.bridge("br-ex")
    assert bridge is not None and bridge.port("phy-br-ex") is not None


def test_reported_east_west_mode_decides_the_fast_path():
    def owners(report: dict[str, Any]) -> set[str]:
        state = rebuild_host(CLOUD.view(HOST_1), report).state
        return {f.owner.partition(":")[0] for f in state.bridge("br-int").flows}

    assert "fastpath" in owners({})  # the default
    assert "fastpath" in owners({"east_west": "openflow"})
    assert "fastpath" not in owners({"east_west": "namespace"})


def test_fetched_state_takes_the_callers_bridge_mappings_only_without_the_agents():
    lab = {"public": "br-ex"}
    rebuilt = fetch_host_state(FakeServer({"vifs": {}}), HOST_1, lab)
    assert rebuilt.state.bridge("br-ex") is not None
    own = fetch_host_state(FakeServer({"vifs": {}, "bridge_mappings": {"public": "br-pub"}}),
                           HOST_1, lab)
    assert own.state.bridge("br-pub") is not None and own.state.bridge("br-ex") is None


class FakeServer:
    def __init__(self, answer: dict[str, Any] | ServerError) -> None:
        self.answer = answer

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def host_view(self, host: str):
        return CLOUD.view(host)

    def agent_state(self, host: str) -> dict[str, Any]:
        if isinstance(self.answer, ServerError):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("answer", [
    {"host": HOST_1, "reported": False, "vifs": {}, "local_vlans": {}},  # a silent agent
    {"host": HOST_1, "vifs": {}, "local_vlans": {}},  # the same from an older server
    ServerError(404, "HostNotFound", "no such host"),
    ServerError(405, "HTTPMethodNotAllowed", "older server"),
])
def test_fetched_state_assumes_vifs_when_the_server_has_none(answer):
    rebuilt = fetch_host_state(FakeServer(answer), HOST_1)
    assert rebuilt.assumed and dict(rebuilt.plugged) == {BLUE_1: tap_name(BLUE_1)}


def test_a_host_whose_agent_reported_no_vifs_has_none_assumed():
    rebuilt = fetch_host_state(FakeServer({"reported": True, "vifs": {}, "local_vlans": {}}),
                               HOST_1)
    assert not rebuilt.assumed and dict(rebuilt.plugged) == {}


def test_fetched_state_uses_a_report_and_passes_other_server_errors_on():
    reported = {"vifs": {BLUE_1: "vm-eth0"}, "local_vlans": {BLUE: 5}}
    rebuilt = fetch_host_state(FakeServer(reported), HOST_1)
    assert not rebuilt.assumed and rebuilt.plugged == {BLUE_1: "vm-eth0"}
    assert rebuilt.state.local_vlan(BLUE) == 5
    with pytest.raises(ServerError):
        fetch_host_state(FakeServer(ServerError(500, "Internal", "boom")), HOST_1)


def test_dvr_flows_says_when_it_assumed_the_vifs(monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "server_client", lambda args: FakeServer({"vifs": {}}))
    assert main(["flows", HOST_1, "--bridge", "br-int"]) == 0
    out, err = capsys.readouterr()
    assert f"no agent report for {HOST_1}: VM ports assumed plugged" in err
    assert f"output:{port_text(tap_name(BLUE_1))}" in out  # the assumed tap's DVR flow
    reported = FakeServer({"vifs": {BLUE_1: tap_name(BLUE_1)}, "local_vlans": {}})
    monkeypatch.setattr(ops_cli, "server_client", lambda args: reported)
    assert main(["flows", HOST_1, "--bridge", "br-int"]) == 0
    out_reported, err = capsys.readouterr()
    assert err == "" and out_reported == out


def test_dvr_flows_explain_names_the_fast_path(monkeypatch, capsys):
    monkeypatch.setattr(ops_cli, "server_client", lambda args: FakeServer({"vifs": {}}))
    assert main(["flows", HOST_1, "--bridge", "br-int", "--explain"]) == 0
    out = capsys.readouterr().out
    router = CLOUD.view(HOST_1).routers[0]
    header = (f"  fastpath:{router.id} — east/west fast path of router {router.name}: routed "
              "in br-int, not in its qrouter- namespace")
    lines = out.splitlines()
    assert header in lines
    flows = lines[lines.index(header) + 1:]
    flows = flows[:next((i for i, line in enumerate(flows) if not line.startswith("      ")),
                        len(flows))]
    assert any("table=60" in line and "resubmit(,65)" in line for line in flows)
    assert any("table=65" in line and "dec_ttl" in line for line in flows)

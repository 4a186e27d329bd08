"""A lab whose agents fold br-tun into br-int (`dvr lab up --tunnel-layout folded`): one
bridge per host for the tunnels and br-int, and everything a user does still works the same
way: pings across hosts bridged and routed, SNAT out through network-1, `dvr trace --verify`
agreeing with the real switches (br-tun's tables found in br-int, 200 up), and an agent
restart that changes no flow.  The lab is this module's own (``fld``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dvr.agent.desired.folding import TUNNEL_TABLE_OFFSET
from tests.e2e.conftest import LabDriver, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LAB_NAME = "fld"
OUTSIDE_IP = "203.0.113.1"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabDriver]:
    yield from running_lab(LAB_NAME, tunnel_layout="folded")


def host_ovs(lab: LabDriver, host: str, *argv: str) -> str:
    return lab.run(host, list(argv)).stdout


def flows(lab: LabDriver, host: str) -> list[str]:
    """br-int's flows without their counters (what an agent restart must not change)."""
    out = host_ovs(lab, host, "ovs-ofctl", "dump-flows", "br-int", "--no-stats")
    return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


def test_each_host_runs_no_br_tun_and_its_tunnels_sit_on_br_int(lab):
    for host in ("compute-1", "compute-2", "network-1"):
        bridges = host_ovs(lab, host, "ovs-vsctl", "list-br").split()
        assert "br-int" in bridges and "br-tun" not in bridges, bridges
        ports = host_ovs(lab, host, "ovs-vsctl", "list-ports", "br-int").split()
        assert "patch-int" in ports and any(p.startswith("vxlan-") for p in ports), ports
        tables = {int(line.split("table=")[1].split(",")[0])
                  for line in flows(lab, host) if "table=" in line}
        assert {TUNNEL_TABLE_OFFSET + t for t in (0, 1, 2, 4, 9, 20, 22)} <= tables


def test_pings_cross_hosts_bridged_routed_and_out_through_snat(lab):
    for source, destination in (("blue-1", "blue-2"), ("blue-1", "orange-1"),
                                ("orange-1", "blue-1"), ("blue-1", OUTSIDE_IP)):
        result = lab.ping(source, destination)
        assert result.returncode == 0, (source, destination, result.stdout, result.stderr)


def test_trace_verify_agrees_with_the_folded_switches(lab):
    result = subprocess.run([sys.executable, "-m", "dvr.cli.main", "trace", "blue-1",
                             "orange-1", "--verify", "--json", "--lab", LAB_NAME],
                            text=True, capture_output=True, timeout=120)
    doc = json.loads(result.stdout)
    assert doc["verified"] is True and doc["verdict"]["delivered"] is True, result.stdout[-2000:]
    assert doc["disagreements"] == 0 and doc["reply"]["disagreements"] == 0
    tunnel_steps = [(s["host"], s["table"]) for s in doc["steps"]
                    if s["kind"] == "openflow" and s["bridge"] == "br-int"
                    and s["table"] >= TUNNEL_TABLE_OFFSET]
    # br-tun's table 1 rewrote the source to compute-1's host MAC; compute-2's table 9 knew it
    assert ("compute-1", TUNNEL_TABLE_OFFSET + 1) in tunnel_steps
    assert ("compute-2", TUNNEL_TABLE_OFFSET + 9) in tunnel_steps
    assert not any(s.get("bridge") == "br-tun" for s in doc["steps"])


def test_an_agent_restart_changes_no_flow(lab):
    lab.wait_converged()
    before = flows(lab, "compute-1")
    lab.lab.restart_agent("compute-1")
    lab.wait_converged()
    assert flows(lab, "compute-1") == before
    assert lab.ping("blue-1", "orange-1").returncode == 0


def test_a_running_host_switched_to_br_tun_and_back_keeps_forwarding(lab):
    """`dvr lab restart-agent compute-1 --tunnel-layout bridge`, then `folded` again: each
    restarted agent's first pass moves br-tun's ports (and deletes or recreates br-tun); the
    lab runs both layouts side by side meanwhile, and `dvr trace --verify` agrees with each
    host's switch as it is laid out."""
    for layout in ("bridge", "folded"):
        passes = lab.reconciles("compute-1")
        lab.lab.restart_agent("compute-1", layout)
        lab.wait_for(lambda before=passes: lab.reconciles("compute-1") > before,
                     "the agent's first pass")
        lab.wait_converged()
        bridges = host_ovs(lab, "compute-1", "ovs-vsctl", "list-br").split()
        assert ("br-tun" in bridges) == (layout == "bridge"), bridges
        assert lab.record.layout_of(lab.record.hosts["compute-1"]) == layout
        for source, destination in (("blue-1", "blue-2"), ("blue-1", "orange-1"),
                                    ("orange-1", "blue-1")):
            result = lab.ping(source, destination)
            assert result.returncode == 0, (layout, source, destination, result.stdout)
        result = subprocess.run([sys.executable, "-m", "dvr.cli.main", "trace", "blue-1",
                                 "orange-1", "--verify", "--json", "--lab", LAB_NAME],
                                text=True, capture_output=True, timeout=120)
        doc = json.loads(result.stdout)
        assert doc["verified"] is True and doc["disagreements"] == 0, result.stdout[-2000:]
        assert doc["reply"]["disagreements"] == 0
        assert any(s.get("bridge") == "br-tun" for s in doc["steps"]) == (layout == "bridge")

"""The east/west fast path stays exact while ports come, move and go (issue 12's e2e
acceptance), on the shared lab with real agents and packets.

A VM ``fp-1`` on orange is added on compute-2, moved to compute-3, then to compute-1 (beside
the sender), then deleted.  At every stage a routed ping from blue-1 (compute-1) and from
blue-2 (compute-2) arrives, the path is routed by a fast-path flow of the sender's br-int,
and ``dvr trace --verify`` has the real switches agree that the frame goes to the VM's
*current* host: no flow left over from an earlier place delivers it anywhere else.  Once the
VM is gone, no host's br-int holds a flow naming its address or MAC.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import LabDriver, temporary_vm

pytestmark = [pytest.mark.e2e, pytest.mark.root]

VM = "fp-1"
SENDERS = {"blue-1": "compute-1", "blue-2": "compute-2"}
FAST_PATH_TABLE = 65


def trace(lab: LabDriver, source: str, destination: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "dvr.cli.main", "trace", source, destination, "--verify",
         "--json", "--lab", lab.lab.name], text=True, capture_output=True, timeout=120)
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def assert_routed_to(lab: LabDriver, host: str) -> None:
    """From each sender: a routed ping arrives, and the verified trace routes it in the
    sender's br-int fast path and delivers it to ``VM`` on ``host``, the switches agreeing."""
    mac = lab.record.vms[VM].mac_address
    for sender, sender_host in SENDERS.items():
        ping = lab.ping(sender, VM, count=2)
        assert ping.returncode == 0, f"{sender} -> {VM} on {host}: {ping.stdout}"
        doc = trace(lab, sender, VM)
        wrong = [s for s in doc["steps"] if s["kind"] == "openflow"
                 and s["check"]["status"] != "agree"]
        assert doc["verified"] and doc["disagreements"] == 0, json.dumps(wrong, indent=1)
        routed = next(s for s in doc["steps"] if s["kind"] == "openflow"
                      and s["table"] == FAST_PATH_TABLE and s["bridge"] == "br-int")
        assert routed["host"] == sender_host and routed["owner"].startswith("fastpath:")
        assert routed["packet"]["dl_dst"] == mac
        delivered = doc["steps"][-1]
        assert delivered["kind"] == "delivery", delivered
        assert (delivered["host"], delivered["device"]) == (host, VM), (
            f"{sender} -> {VM}: delivered on {delivered['host']}, the VM is on {host}")


def flows_naming(lab: LabDriver, ip: str, mac: str) -> dict[str, list[str]]:
    found = {}
    for host in lab.record.hosts:
        lines = [line for line in lab.dump_flows(host, "br-int")
                 if f"={ip}," in line or f"={ip} " in line or mac in line]
        if lines:
            found[host] = lines
    return found


def test_the_fast_path_follows_a_port_that_is_added_moved_and_deleted(lab3):
    lab = lab3
    with temporary_vm(lab, VM, "orange", "compute-2") as vm:
        assert_routed_to(lab, "compute-2")
        for host in ("compute-3", "compute-1"):
            lab.lab.vm_move(VM, host)
            lab.wait_converged()
            assert_routed_to(lab, host)
        ip, mac = vm.ip_address, vm.mac_address
    lab.wait_converged()
    assert flows_naming(lab, ip, mac) == {}, "flows for a deleted port remain"

"""`dvr trace --verify` on a real lab (issue 5's acceptance).

`dvr trace blue-1 orange-1 --verify` shows routing on compute-1, the host-MAC rewrite in
br-tun table 1, the tunnel to compute-2, table 9 and br-int table 1 on compute-2, and no
disagreement with the real switches; after one of those flows is deleted by hand on
compute-2, `--verify` names that step.  The lab is this module's own (``trc``), on a free
API port, torn down in a finalizer.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LabDriver, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LAB_NAME = "trc"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabDriver]:
    yield from running_lab(LAB_NAME)


def dvr_trace(*argv: str, server: str | None = None) -> subprocess.CompletedProcess[str]:
    """`dvr trace ... --lab trc`, or with ``server``: `dvr --server URL trace ...` (the lab
    found from its API URL, as a user types it after `dvr lab up`)."""
    where = ["--server", server, "trace", *argv] if server else ["trace", *argv, "--lab", LAB_NAME]
    return subprocess.run([sys.executable, "-m", "dvr.cli.main", *where], text=True,
                          capture_output=True, timeout=120)


def trace_json(*argv: str) -> tuple[int, dict[str, Any]]:
    result = dvr_trace(*argv, "--json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def openflow(doc: dict[str, Any], host: str, bridge: str, table: int) -> dict[str, Any]:
    return next(s for s in doc["steps"] if s["kind"] == "openflow" and s["host"] == host
                and s["bridge"] == bridge and s["table"] == table)


def test_routed_ping_works_before_tracing(lab):
    assert lab.ping("blue-1", "orange-1").returncode == 0


def test_trace_shows_the_dvr_path_and_the_real_switches_agree(lab):
    status, doc = trace_json("blue-1", "orange-1", "--verify")
    assert doc["verified"] is True
    assert doc["disagreements"] == 0 and doc["reply"]["disagreements"] == 0, json.dumps(
        [s for s in doc["steps"] + doc["reply"]["steps"]
         if s["kind"] == "openflow" and s["check"]["status"] != "agree"], indent=1)
    assert doc["unverified"] == 0
    assert status == 0
    assert doc["verdict"]["delivered"] and doc["verdict"]["host"] == "compute-2"
    # routed by the east/west fast path in compute-1's br-int, the real switch agreeing
    assert not any(s["kind"] == "namespace" for s in doc["steps"])
    routed = openflow(doc, "compute-1", "br-int", 65)
    assert routed["owner"].startswith("fastpath:") and routed["check"]["status"] == "agree"
    assert routed["packet"]["dl_dst"] == lab.record.vms["orange-1"].mac_address
    assert routed["packet"]["nw_ttl"] == routed["packet_in"]["nw_ttl"] - 1
    rewrite = openflow(doc, "compute-1", "br-tun", 1)
    assert rewrite["packet"]["dl_src"] == lab.host_mac("compute-1")
    assert rewrite["check"]["status"] == "agree"
    tunnel = next(s for s in doc["steps"] if s["kind"] == "tunnel")
    assert (tunnel["from_host"], tunnel["to_host"]) == ("compute-1", "compute-2")
    assert openflow(doc, "compute-2", "br-tun", 9)["owner"] == "hostmac:compute-1"
    table_1 = openflow(doc, "compute-2", "br-int", 1)
    assert table_1["owner"] == f"port:{lab.record.vms['orange-1'].port_id}"
    delivered = doc["steps"][-1]
    assert delivered["kind"] == "delivery" and delivered["host"] == "compute-2"
    assert delivered["device"] == "orange-1"
    # the reply is routed on compute-2, in its br-int too
    reply_routed = next(s for s in doc["reply"]["steps"]
                        if s["kind"] == "openflow" and s["table"] == 65)
    assert reply_routed["host"] == "compute-2" and reply_routed["owner"].startswith("fastpath:")


def test_text_output_for_people(lab):
    result = dvr_trace("blue-1", "orange-1", "--verify")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== compute-1 ==" in result.stdout and "== compute-2 ==" in result.stdout
    assert "verify: the real switches agree" in result.stdout
    assert "\033[" not in result.stdout


def test_verify_finds_the_lab_from_its_api_url(lab):
    """`dvr trace blue-1 orange-1 --verify` with no --lab: the lab serving the API is used."""
    result = dvr_trace("blue-1", "orange-1", "--verify", "--json", server=lab.lab.api_url)
    assert result.returncode == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["verified"] is True and doc["unverified"] == 0 and doc["disagreements"] == 0


def test_deleting_a_flow_by_hand_is_named_by_verify(lab):
    _, doc = trace_json("blue-1", "orange-1", "--no-reply")
    step = openflow(doc, "compute-2", "br-int", 1)
    cookie = step["cookie"]
    # the agent restores the flow at its next full reconcile (every 60 s): retry if it did
    # so before the real switch was asked
    for _attempt in range(3):
        lab.run("compute-2", ["ovs-ofctl", "del-flows", "br-int", f"cookie={cookie}/-1"])
        status, verified = trace_json("blue-1", "orange-1", "--no-reply", "--verify")
        still_deleted = not any(f"cookie={cookie}," in line
                                for line in lab.dump_flows("compute-2", "br-int"))
        if still_deleted:
            break
    assert still_deleted, "the agent restored the flow before every verification"
    assert status == 3
    bad = [s for s in verified["steps"]
           if s["kind"] == "openflow" and s["check"]["status"] != "agree"]
    assert (bad[0]["host"], bad[0]["bridge"], bad[0]["table"], bad[0]["cookie"]) == (
        "compute-2", "br-int", 1, cookie)
    assert "instead of cookie " + cookie in bad[0]["check"]["detail"]
    # after the divergence, the rest of that pass (the ingress firewall) was not looked up
    assert all((s["host"], s["bridge"], s["check"]["status"]) == ("compute-2", "br-int",
                                                                   "missing") for s in bad[1:])
    text = dvr_trace("blue-1", "orange-1", "--no-reply", "--verify")
    if not any(f"cookie={cookie}," in line for line in lab.dump_flows("compute-2", "br-int")):
        assert "the real switch disagrees at compute-2 br-int table 1" in text.stdout

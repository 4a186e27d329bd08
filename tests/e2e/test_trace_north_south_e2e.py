"""`dvr trace --verify` of north/south paths on a real lab (issue 9, tracer half).

SNAT (blue-1 -> outside through network-1's snat- namespace), a floating IP out
(orange-1 -> outside through compute-2's fip- namespace) and in (outside -> the floating
IP), and east/west through a legacy router on network-1: every OpenFlow step (br-int,
br-tun and br-ex) agrees with ``ofproto/trace`` on the real switches and every namespace
step with the kernel (``ip route get``, ``nft -j list ruleset``), in both directions.  The
lab is this module's own (``nst``), on a free API port, torn down in a finalizer; each test
brings what it needs (the floating IP, the legacy router).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import LabDriver, legacy_tenant, running_lab

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LAB_NAME = "nst"
OUTSIDE = "outside"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabDriver]:
    yield from running_lab(LAB_NAME)


def floating_ip(lab: LabDriver, vm: str) -> str:
    """The VM's floating IP (created once), answering pings from outside."""
    with lab.client() as client:
        port_id = lab.record.vms[vm].port_id
        found = client.list("floatingips", port_id=port_id)
    address = found[0]["floating_ip_address"] if found else lab.lab.fip_add(vm)
    lab.wait_for(lambda: lab.ping(OUTSIDE, address, count=1).returncode == 0,
                 f"{OUTSIDE} reaching {address}")
    return address


def trace_json(*argv: str) -> tuple[int, dict[str, Any]]:
    result = subprocess.run([sys.executable, "-m", "dvr.cli.main", "trace", *argv, "--lab",
                             LAB_NAME, "--verify", "--json"], text=True, capture_output=True,
                            timeout=180)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def all_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["steps"] + (doc["reply"]["steps"] if doc["reply"] else [])


def assert_all_confirmed(status: int, doc: dict[str, Any]) -> None:
    """Delivered both ways, and every OpenFlow and namespace step confirmed for real."""
    unconfirmed = [s for s in all_steps(doc) if s["kind"] in ("openflow", "namespace")
                   and (s["check"] is None or s["check"]["status"] != "agree")]
    assert unconfirmed == [], json.dumps(unconfirmed, indent=1)
    assert doc["verdict"]["delivered"], doc["verdict"]
    assert doc["reply"] is not None and doc["reply"]["verdict"]["delivered"], doc["reply"]
    assert status == 0


def namespaces(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["host"], s["namespace"].split("-")[0]) for s in steps if s["kind"] == "namespace"]


def test_snat_path_is_traced_and_confirmed(lab):
    assert lab.ping("blue-1", OUTSIDE).returncode == 0
    status, doc = trace_json("blue-1", OUTSIDE)
    assert_all_confirmed(status, doc)
    assert namespaces(doc["steps"]) == [("compute-1", "qrouter"), ("network-1", "snat")]
    router, snat = (s for s in doc["steps"] if s["kind"] == "namespace")
    assert router["rule"] is not None and router["rule"]["priority"] > 32766  # after main
    assert [n["chain"] for n in snat["nat"]] == ["postrouting"]
    gateway_ip = snat["packet"]["nw_src"]
    assert gateway_ip != lab.record.vms["blue-1"].ip_address
    assert any(s["kind"] == "openflow" and s["bridge"] == "br-ex" and s["host"] == "network-1"
               for s in doc["steps"])
    assert doc["steps"][-1]["kind"] == "delivery" and doc["steps"][-1]["host"] == OUTSIDE
    # the reply comes back through the same snat- namespace (conntrack) to compute-1
    assert namespaces(doc["reply"]["steps"]) == [("network-1", "snat")]
    assert doc["reply"]["steps"][-1]["host"] == "compute-1"


def test_floating_ip_out_is_traced_and_confirmed(lab):
    address = floating_ip(lab, "orange-1")
    status, doc = trace_json("orange-1", OUTSIDE)
    assert_all_confirmed(status, doc)
    assert namespaces(doc["steps"]) == [("compute-2", "qrouter"), ("compute-2", "fip")]
    assert not any(s["kind"] == "tunnel" for s in doc["steps"])  # network-1 is not involved
    assert doc["steps"][-1]["packet"]["nw_src"] == address


def test_floating_ip_in_is_traced_and_confirmed(lab):
    address = floating_ip(lab, "orange-1")
    # TCP 80: the lab's demo-web group lets it in from anywhere (22 would be refused)
    status, doc = trace_json(OUTSIDE, address, "--proto", "tcp", "--dport", "80")
    assert_all_confirmed(status, doc)
    assert "proxy ARP" in doc["steps"][0]["why"]
    assert namespaces(doc["steps"]) == [("compute-2", "fip"), ("compute-2", "qrouter")]
    router = [s for s in doc["steps"] if s["kind"] == "namespace"][-1]
    assert [n["chain"] for n in router["nat"]] == ["prerouting"]
    end = doc["steps"][-1]
    assert end["kind"] == "delivery" and end["device"] == "orange-1"
    assert end["packet"]["nw_dst"] == lab.record.vms["orange-1"].ip_address
    assert doc["reply"]["steps"][-1]["packet"]["nw_src"] == address


def test_legacy_router_path_is_traced_and_confirmed(lab):
    with legacy_tenant(lab, "legacy-t", (("lred", "198.18.20.0/24"),
                                          ("lgreen", "198.18.21.0/24"))) as router_id:
        lab.wait_for(lambda: lab.ping("lred-1", "lgreen-1", count=1).returncode == 0,
                     "lred-1 reaching lgreen-1 through the legacy router")
        status, doc = trace_json("lred-1", "lgreen-1")
        assert_all_confirmed(status, doc)
        assert "centralized router" in doc["steps"][0]["why"]
        assert namespaces(doc["steps"]) == [("network-1", "qrouter")]
        assert [s["namespace"] for s in doc["steps"] if s["kind"] == "namespace"] == [
            f"qrouter-{router_id}"]
        tunnels = [(s["from_host"], s["to_host"]) for s in doc["steps"] if s["kind"] == "tunnel"]
        assert tunnels == [("compute-1", "network-1"), ("network-1", "compute-2")]

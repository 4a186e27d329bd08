"""The commands a user types, run as subprocesses against the shared e2e lab (read-only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def dvr(lab3, *argv: str) -> subprocess.CompletedProcess[str]:
    server = f"http://127.0.0.1:{lab3.lab.api_port}"
    return subprocess.run([sys.executable, "-m", "dvr.cli.main", "--server", server, *argv],
                          text=True, capture_output=True, timeout=60)


def lab_cmd(lab3, *argv: str) -> subprocess.CompletedProcess[str]:
    return dvr(lab3, "lab", argv[0], "--name", lab3.lab.name, *argv[1:])


def test_lab_status_json_lists_hosts_vms_and_the_api(lab3):
    result = lab_cmd(lab3, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["api"] == f"http://127.0.0.1:{lab3.lab.api_port}"
    assert {h["host"] for h in status["hosts"]} == {"compute-1", "compute-2", "compute-3",
                                                    "network-1"}
    assert all(h["alive"] and h["host_mac"] for h in status["hosts"])
    statuses = {v["vm"]: v["status"] for v in status["vms"]}
    assert statuses.items() >= {"blue-1": "ACTIVE", "orange-1": "ACTIVE",
                                "blue-2": "ACTIVE"}.items()
    router = next(r for r in status["routers"] if r["name"] == "demo-router")
    # its VMs' hosts, and network-1 for its SNAT part (the gateway on "public")
    assert router["hosts"] == ["compute-1", "compute-2", "network-1"]
    [gateway_ip] = router["gateway_ips"]
    assert gateway_ip.startswith("203.0.113.")


def test_lab_exec_runs_ovs_and_ip_tools_inside_a_host(lab3):
    show = lab_cmd(lab3, "exec", "compute-1", "--", "ovs-vsctl", "show")
    assert show.returncode == 0, show.stderr
    assert "br-int" in show.stdout and "br-tun" in show.stdout
    netns = lab_cmd(lab3, "exec", "compute-1", "--", "ip", "netns", "list")
    assert f"qrouter-{lab3.router_id()}" in netns.stdout
    flows = lab_cmd(lab3, "exec", "compute-1", "--", "ovs-ofctl", "dump-flows", "br-tun")
    assert flows.returncode == 0 and "table=9" in flows.stdout
    appctl = lab_cmd(lab3, "exec", "compute-1", "--", "ovs-appctl", "-t", "ovs-vswitchd",
                     "version")
    assert appctl.returncode == 0, appctl.stderr


def test_lab_ping_by_name_and_by_ip(lab3):
    by_name = lab_cmd(lab3, "ping", "blue-1", "orange-1")
    assert by_name.returncode == 0, by_name.stdout
    by_ip = lab_cmd(lab3, "ping", "blue-2", lab3.lab.resolve_ip("blue-1"))
    assert by_ip.returncode == 0
    unknown = lab_cmd(lab3, "ping", "nobody", "blue-1")
    assert unknown.returncode == 1 and "no VM named" in unknown.stderr


def test_operator_commands(lab3):
    hosts = dvr(lab3, "hosts", "--json")
    assert hosts.returncode == 0
    by_host = {h["host"]: h for h in json.loads(hosts.stdout)}
    assert by_host["network-1"]["agent_mode"] == "dvr_snat"
    routers = dvr(lab3, "routers", "--host", "compute-1")
    assert lab3.router_id() in routers.stdout and "compute-2" not in routers.stdout
    snat = dvr(lab3, "routers", "--host", "network-1")  # its SNAT part
    assert lab3.router_id() in snat.stdout
    nothing = dvr(lab3, "routers", "--host", "compute-3")
    assert lab3.router_id() not in nothing.stdout
    flows = dvr(lab3, "flows", "compute-1", "--bridge", "br-tun", "--explain")
    assert flows.returncode == 0, flows.stderr
    mac2 = by_host["compute-2"]["host_mac"]
    assert f"hostmac:compute-2 — host MAC {mac2} of compute-2" in flows.stdout
    assert "DVR subnet 192.0.2.0/24 of router demo-router" in flows.stdout
    # the desired flows are exactly what the switch holds (same cookies)
    desired = {f["cookie"] for f in json.loads(dvr(lab3, "flows", "compute-1", "--bridge",
                                                   "br-tun", "--json").stdout)}
    real = {line.split("cookie=", 1)[1].split(",", 1)[0]
            for line in lab3.dump_flows("compute-1", "br-tun")}
    assert desired == real


@pytest.mark.skipif(shutil.which("openstack") is None
                    and not (Path(sys.executable).parent / "openstack").exists(),
                    reason="the openstack client is not installed")
def test_unchanged_openstack_client_manages_the_lab(lab3):
    openstack = shutil.which("openstack") or str(Path(sys.executable).parent / "openstack")
    base = [openstack, "--os-auth-type", "admin_token", "--os-token", lab3.lab.admin_token(),
            "--os-endpoint", f"http://127.0.0.1:{lab3.lab.api_port}"]
    routers = subprocess.run([*base, "router", "list", "-f", "json"], text=True,
                             capture_output=True, timeout=60)
    assert routers.returncode == 0, routers.stderr
    assert any(r["Name"] == "demo-router" for r in json.loads(routers.stdout))
    agents = subprocess.run([*base, "network", "agent", "list", "--router", "demo-router",
                             "-f", "json"], text=True, capture_output=True, timeout=60)
    assert agents.returncode == 0, agents.stderr
    assert {a["Host"] for a in json.loads(agents.stdout)} == {"compute-1", "compute-2",
                                                               "network-1"}

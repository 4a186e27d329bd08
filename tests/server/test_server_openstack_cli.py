"""The unchanged `openstack` command-line client against a real dvr-server process
(the acceptance list of the issue)."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

OPENSTACK = Path(sys.executable).parent / "openstack"
pytestmark = pytest.mark.skipif(not OPENSTACK.exists(), reason="openstack client not installed")


def run_cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(OPENSTACK), "--os-auth-type", "none", "--os-endpoint", url, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result


def cli_json(url: str, *args: str):
    return json.loads(run_cli(url, *args, "-f", "json").stdout)


def test_acceptance_commands(live_server):
    url = live_server.url
    httpx.post(
        f"{url}/dvr/v1/agents",
        json={"host": "net-1", "agent_mode": "dvr_snat", "tunnel_ip": "192.0.2.21"},
    )
    httpx.post(
        f"{url}/dvr/v1/agents",
        json={"host": "compute-1", "agent_mode": "dvr", "tunnel_ip": "192.0.2.11"},
    )
    blue = cli_json(url, "network", "create", "blue")
    assert (blue["mtu"], blue["provider:network_type"]) == (1450, "vxlan")
    subnet = cli_json(
        url,
        "subnet",
        "create",
        "--network",
        "blue",
        "--subnet-range",
        "198.51.100.0/24",
        "blue-sub",
    )
    assert subnet["gateway_ip"] == "198.51.100.1"
    ext = cli_json(url, "network", "create", "--external", "ext")
    assert ext["router:external"] is True
    cli_json(
        url,
        "subnet",
        "create",
        "--network",
        "ext",
        "--subnet-range",
        "203.0.113.0/24",
        "--no-dhcp",
        "ext-sub",
    )
    router = cli_json(url, "router", "create", "--distributed", "r1")
    assert router["distributed"] is True
    run_cli(url, "router", "add", "subnet", "r1", "blue-sub")
    port = cli_json(
        url,
        "port",
        "create",
        "--network",
        "blue",
        "--host",
        "compute-1",
        "--device-owner",
        "compute:nova",
        "--fixed-ip",
        "subnet=blue-sub,ip-address=198.51.100.10",
        "vm1",
    )
    assert port["binding_host_id"] == "compute-1"
    assert port["fixed_ips"][0]["ip_address"] == "198.51.100.10"
    run_cli(url, "router", "set", "--external-gateway", "ext", "r1")
    shown = cli_json(url, "router", "show", "r1")
    assert shown["external_gateway_info"]["network_id"] == ext["id"]
    fip = cli_json(url, "floating", "ip", "create", "ext")
    run_cli(url, "floating", "ip", "set", "--port", "vm1", fip["floating_ip_address"])
    fips = cli_json(url, "floating", "ip", "list")
    assert [(f["Floating IP Address"], f["Fixed IP Address"]) for f in fips] == [
        (fip["floating_ip_address"], "198.51.100.10")
    ]
    agents = cli_json(url, "network", "agent", "list", "--router", "r1")
    assert sorted(a["Host"] for a in agents) == ["compute-1", "net-1"]
    all_agents = cli_json(url, "network", "agent", "list")
    assert len(all_agents) == 4
    run_cli(url, "floating", "ip", "unset", "--port", fip["floating_ip_address"])
    run_cli(url, "floating", "ip", "delete", fip["floating_ip_address"])
    run_cli(url, "router", "unset", "--external-gateway", "r1")
    run_cli(url, "port", "delete", "vm1")
    run_cli(url, "router", "remove", "subnet", "r1", "blue-sub")
    run_cli(url, "router", "delete", "r1")
    networks = cli_json(url, "network", "list")
    assert sorted(n["Name"] for n in networks) == ["blue", "ext"]


def test_cli_errors_are_reported(live_server):
    url = live_server.url
    run_cli(url, "network", "create", "n")
    result = run_cli(
        url,
        "subnet",
        "create",
        "--network",
        "n",
        "--subnet-range",
        "198.51.100.0/33",
        "bad",
        check=False,
    )
    assert result.returncode != 0
    assert "is not in a CIDR format" in result.stderr
    missing = run_cli(url, "network", "show", "no-such-network", check=False)
    assert missing.returncode != 0
    assert "No Network found" in missing.stderr or "could not be found" in missing.stderr

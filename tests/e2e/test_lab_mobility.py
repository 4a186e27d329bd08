"""`dvr lab vm move` and `dvr lab fip` as a user types them, on the shared e2e lab.

Each test makes its own VM and removes it, so the tests run alone or in any order."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dvr.lab.vm import tap_name, vm_namespace

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def lab_cmd(lab3, *argv: str) -> subprocess.CompletedProcess[str]:
    server = f"http://127.0.0.1:{lab3.lab.api_port}"
    return subprocess.run([sys.executable, "-m", "dvr.cli.main", "--server", server, "lab",
                           *argv, "--name", lab3.lab.name],
                          text=True, capture_output=True, timeout=120)


def run_in(lab3, target: str, *argv: str) -> str:
    command, env = lab3.lab.target_command(target, list(argv))
    result = subprocess.run(command, env=env, text=True, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def mover(lab3):
    lab3.lab.vm_add("blue-9", "blue", "compute-1")
    yield "blue-9"
    lab3.lab.vm_del("blue-9")


def test_vm_move_rebinds_the_port_and_keeps_routing(lab3, mover):
    port_id = lab3.lab.record().vms[mover].port_id
    moved = lab_cmd(lab3, "vm", "move", "--host", "compute-3", mover)
    assert moved.returncode == 0, moved.stderr
    assert "now on compute-3" in moved.stdout
    with lab3.lab.client() as client:
        assert client.show("ports", "port", port_id)["binding:host_id"] == "compute-3"
    assert lab3.lab.record().vms[mover].host == "compute-3"
    # routed from orange-1 (compute-2) to the moved VM, and same-subnet from blue-1
    assert lab_cmd(lab3, "ping", "-c", "2", "orange-1", mover).returncode == 0
    assert lab_cmd(lab3, "ping", "-c", "2", "blue-1", mover).returncode == 0
    # compute-1 holds nothing of the VM any more
    assert tap_name(port_id) not in run_in(lab3, "compute-1", "ovs-vsctl", "list-ports",
                                           "br-int")
    assert vm_namespace(mover) not in run_in(lab3, "compute-1", "ip", "netns", "list")
    assert tap_name(port_id) in run_in(lab3, "compute-3", "ovs-vsctl", "list-ports", "br-int")


def test_vm_move_refuses_bad_targets(lab3, mover):
    same = lab_cmd(lab3, "vm", "move", "--host", "compute-1", mover)
    assert same.returncode == 1 and "already" in same.stderr
    nowhere = lab_cmd(lab3, "vm", "move", "--host", "compute-9", mover)
    assert nowhere.returncode == 1 and "no lab host" in nowhere.stderr
    nobody = lab_cmd(lab3, "vm", "move", "--host", "compute-2", "nobody")
    assert nobody.returncode == 1 and "no VM named" in nobody.stderr


@pytest.fixture
def green_vm(lab3):
    """A VM on its own network behind its own router with a gateway on ``public``."""
    with lab3.lab.client() as client:
        [public] = client.list("networks", name="public")
        net = client.create("networks", "network", {"name": "green"})
        subnet = client.create("subnets", "subnet", {
            "name": "green-subnet", "network_id": net["id"], "cidr": "198.19.7.0/24",
            "ip_version": 4})
        router = client.create("routers", "router", {
            "name": "green-router", "distributed": True,
            "external_gateway_info": {"network_id": public["id"]}})
        client.add_router_interface(router["id"], subnet["id"])
    lab3.lab.vm_add("green-1", "green", "compute-1")
    yield "green-1"
    lab3.lab.fip_delete("green-1")
    lab3.lab.vm_del("green-1")
    with lab3.lab.client() as client:
        client.remove_router_interface(router["id"], subnet["id"])
        client.delete("routers", router["id"])
        client.delete("networks", net["id"])


def test_fip_create_list_and_delete(lab3, green_vm):
    mover = green_vm
    created = lab_cmd(lab3, "fip", mover)
    assert created.returncode == 0, created.stderr
    address = created.stdout.strip()
    assert address.startswith("203.0.113.")
    status = json.loads(lab_cmd(lab3, "status", "--json").stdout)
    assert {"floating_ip": address, "vm": mover,
            "fixed_ip": lab3.lab.resolve_ip(mover), "host": "compute-1"} in status["floating_ips"]
    deleted = lab_cmd(lab3, "fip", "--delete", mover)
    assert deleted.returncode == 0 and deleted.stdout.strip() == address
    status = json.loads(lab_cmd(lab3, "status", "--json").stdout)
    assert all(f["floating_ip"] != address for f in status["floating_ips"])
    again = lab_cmd(lab3, "fip", "--delete", mover)
    assert again.returncode == 1 and "has no floating IP" in again.stderr


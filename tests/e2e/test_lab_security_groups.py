"""The lab's VMs and security groups: every VM in the project's default group and
demo-web; ``dvr lab vm add --security-group G`` and ``--no-port-security`` (the real CLI)."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.root]


def vm_add(lab3, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvr.cli.main", "lab", "vm", "add", "--name", lab3.lab.name,
         "--api-port", str(lab3.lab.api_port), *argv],
        text=True, capture_output=True, timeout=120,
    )


def port_of(lab3, vm_name: str) -> dict:
    with lab3.client() as client:
        return client.show("ports", "port", lab3.record.vms[vm_name].port_id)


def group_names(lab3) -> dict[str, str]:
    with lab3.client() as client:
        groups = client.get("/v2.0/security-groups")["security_groups"]
    return {g["id"]: g["name"] for g in groups}


def test_lab_vms_are_in_default_and_demo_web(lab3):
    names = group_names(lab3)
    for vm_name in ("blue-1", "orange-1"):
        port = port_of(lab3, vm_name)
        assert port["port_security_enabled"]
        assert sorted(names[g] for g in port["security_groups"]) == ["default", "demo-web"]
    with lab3.client() as client:
        [web] = [g for g in client.get("/v2.0/security-groups")["security_groups"]
                 if g["name"] == "demo-web"]
    ingress = sorted((r["protocol"], r["port_range_min"]) for r in web["security_group_rules"]
                     if r["direction"] == "ingress")
    assert ingress == [("icmp", None), ("tcp", 80)]


def test_vm_add_with_a_group_and_without_port_security(lab3):
    with lab3.client() as client:
        extra = client.request("POST", "/v2.0/security-groups",
                               json={"security_group": {"name": "e2e-extra"}})
    extra_id = extra["security_group"]["id"]
    made = []
    try:
        result = vm_add(lab3, "sg-1", "--network", "blue", "--host", "compute-3",
                        "--security-group", "e2e-extra")
        assert result.returncode == 0, result.stderr
        made.append("sg-1")
        names = group_names(lab3)
        port = port_of(lab3, "sg-1")
        assert sorted(names[g] for g in port["security_groups"]) == [
            "default", "demo-web", "e2e-extra"]
        result = vm_add(lab3, "open-1", "--network", "blue", "--host", "compute-3",
                        "--no-port-security")
        assert result.returncode == 0, result.stderr
        made.append("open-1")
        port = port_of(lab3, "open-1")
        assert not port["port_security_enabled"] and port["security_groups"] == []
        result = vm_add(lab3, "bad-1", "--network", "blue", "--host", "compute-3",
                        "--security-group", "no-such-group")
        assert result.returncode == 1 and "no security group 'no-such-group'" in result.stderr
        assert "bad-1" not in lab3.record.vms
        assert lab3.ping("blue-1", "sg-1").returncode == 0  # default: group-mates get in
    finally:
        for name in made:
            lab3.lab.vm_del(name)
        lab3.wait_converged()
        with lab3.client() as client:
            client.delete("security-groups", extra_id)

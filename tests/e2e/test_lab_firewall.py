"""Security groups on the real lab (issue 13 acceptance, the dataplane part): real agents,
real OVS conntrack, real packets.  Needs the server's security-group API (sg-api); skips
without it.

- the default group: blue-1 -> orange-1 (routed cross-host) ICMP works;
- a VM in a group without ingress rules is unreachable, and a rule added for TCP 8080
  opens a listener within 1 s on the routed and the switched path; removing the rule stops
  new connections.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from dvr.client import ServerError

pytestmark = [pytest.mark.e2e, pytest.mark.root]

LISTENER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    s.accept()[0].close()
"""
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1)"
PORT = 8080
RULE_BOUND_S = 10.0


@pytest.fixture(scope="module")
def lab(lab3):
    with lab3.client() as client:
        try:
            client.get("/v2.0/security-groups")
        except ServerError as exc:
            pytest.skip(f"the server has no security-group API ({exc})")
    return lab3


def port_of(lab, vm: str) -> dict:
    with lab.client() as client:
        (port,) = client.list("ports", device_id=vm)
    return port


def connects(lab, source: str, destination: str, port: int = PORT) -> bool:
    ip = lab.lab.resolve_ip(destination)
    return lab.run(source, [sys.executable, "-c", CONNECT, ip, str(port)],
                   check=False).returncode == 0


def within(seconds: float, check) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.fixture
def closed_vm(lab) -> Iterator[tuple[str, str]]:
    """``web-1`` on blue (compute-2, beside blue-2's network) in a new group without
    ingress rules, a TCP listener on it; (group id, VM name)."""
    with lab.client() as client:
        group = client.create("security-groups", "security_group", {"name": "e2e-closed"})
        rules = client.get("/v2.0/security-group-rules",
                           security_group_id=group["id"])["security_group_rules"]
        for rule in rules:
            if rule["direction"] == "ingress":
                client.delete("security-group-rules", rule["id"])
    lab.lab.vm_add("web-1", "blue", "compute-2")
    listener = None
    try:
        with lab.client() as client:
            client.update("ports", "port", port_of(lab, "web-1")["id"],
                          {"security_groups": [group["id"]]})
        lab.wait_converged()
        command, env = lab.lab.target_command("web-1", [sys.executable, "-c", LISTENER,
                                                        str(PORT)])
        listener = subprocess.Popen(command, env=env, text=True, stdout=subprocess.PIPE)
        assert listener.stdout is not None and listener.stdout.readline().strip() == "ready"
        yield group["id"], "web-1"
    finally:
        if listener is not None:
            listener.kill()
            listener.communicate(timeout=10)
        lab.lab.vm_del("web-1")
        with lab.client() as client:
            client.delete("security-groups", group["id"])


def test_default_group_lets_routed_cross_host_traffic_through(lab):
    assert lab.ping("blue-1", "orange-1").returncode == 0


def test_a_rule_opens_and_closes_a_listener_on_the_routed_and_switched_path(lab, closed_vm):
    group, vm = closed_vm
    assert not connects(lab, "orange-1", vm), "routed: no ingress rule"
    assert not connects(lab, "blue-1", vm), "switched: no ingress rule"
    with lab.client() as client:
        rule = client.create("security-group-rules", "security_group_rule", {
            "security_group_id": group, "direction": "ingress", "ethertype": "IPv4",
            "protocol": "tcp", "port_range_min": PORT, "port_range_max": PORT})
    # here only a bound: each failed try costs a 1 s connect timeout; the issue's "within
    # 1 s" is asserted, timed inside the VMs, by test_lab_sg_acceptance.py
    assert within(RULE_BOUND_S, lambda: connects(lab, "orange-1", vm)), "routed"
    assert within(RULE_BOUND_S, lambda: connects(lab, "blue-1", vm)), "switched"
    traced = subprocess.run(
        [sys.executable, "-m", "dvr.cli.main", "trace", "orange-1", vm, "--proto", "tcp",
         "--dport", str(PORT), "--verify", "--lab", lab.lab.name],
        text=True, capture_output=True, timeout=120)
    assert traced.returncode == 0, traced.stdout + traced.stderr  # request and reply agree
    with lab.client() as client:
        client.delete("security-group-rules", rule["id"])
    lab.wait_converged()
    assert not connects(lab, "orange-1", vm)
    assert not connects(lab, "blue-1", vm)

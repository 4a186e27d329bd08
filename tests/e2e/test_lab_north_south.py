"""North/south on the real lab (issue 9): centralized SNAT on network-1, distributed floating
IPs on the compute hosts, legacy routers and their migration, agent restarts.

The lab's ``demo-router`` has a gateway on ``public`` (203.0.113.0/24, the ``outside`` host at
203.0.113.1).  The tests share the session's lab and each leaves it as it found it, so any
of them can run alone or in any order.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.e2e.conftest import flow_counters, legacy_tenant

pytestmark = [pytest.mark.e2e, pytest.mark.root]

OUTSIDE_IP = "203.0.113.1"
SAME_INSTALL = 0.5


# --- helpers ----------------------------------------------------------------------------------


def gateway_ip(lab3) -> str:
    with lab3.client() as client:
        router = client.show("routers", "router", lab3.router_id())
    return router["external_gateway_info"]["external_fixed_ips"][0]["ip_address"]


def tunnel_packets(lab3, host: str) -> int:
    """Packets ``host``'s br-tun flows matched (everything its tunnels carried)."""
    return sum(flow_counters(lab3.dump_flows(host, "br-tun")).values())


def snat_packets(lab3) -> int:
    """Packets network-1's snat- namespace sent to the external network (out of its qg-):
    what it forwarded with source NAT (broadcasts from outside never count)."""
    links = lab3.netns_json("network-1", f"snat-{lab3.router_id()}", ["-s", "link", "show"])
    return sum(link["stats64"]["tx"]["packets"] for link in links
               if link["ifname"].startswith("qg-"))


def answers(lab3, source: str, ip: str, wait: float = 0.5) -> bool:
    result = lab3.run(source, ["ping", "-c", "1", "-W", str(wait), ip], check=False)
    return result.returncode == 0


def wait_answering(lab3, source: str, ip: str, timeout: float) -> float:
    """Seconds until ``ip`` answers a ping from ``source``."""
    started = time.monotonic()
    lab3.wait_for(lambda: answers(lab3, source, ip, 0.3), f"{ip} to answer {source}", timeout)
    return time.monotonic() - started


def wait_silent(lab3, source: str, ip: str, timeout: float) -> float:
    started = time.monotonic()
    lab3.wait_for(lambda: not answers(lab3, source, ip, 0.3), f"{ip} to stop answering",
                  timeout)
    return time.monotonic() - started


@contextmanager
def tcp_server(lab3, target: str, port: int) -> Iterator[subprocess.Popen]:
    """A one-shot iperf3 server in ``target``; yields the process (its JSON on stdout)."""
    command, env = lab3.lab.target_command(target, ["iperf3", "-s", "-1", "-J", "-p",
                                                    str(port)])
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        lab3.wait_for(lambda: str(port) in lab3.run(
            target, ["ss", "-Hltn", f"sport = :{port}"]).stdout,
            f"iperf3 to listen in {target}", timeout=15)
        yield server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(timeout=10)


def tcp_transfer(lab3, client: str, server: str, server_ip: str, port: int) -> str:
    """A 1-second TCP transfer; the client address the server saw."""
    with tcp_server(lab3, server, port) as process:
        result = lab3.run(client, ["iperf3", "-c", server_ip, "-p", str(port), "-t", "1",
                                   "-J"], timeout=30)
        assert json.loads(result.stdout)["end"]["sum_received"]["bytes"] > 100_000
        out, _ = process.communicate(timeout=15)
    return json.loads(out)["start"]["connected"][0]["remote_host"]


def port_id(lab3, vm: str) -> str:
    return lab3.record.vms[vm].port_id


@contextmanager
def floating_ip(lab3, vm: str) -> Iterator[dict]:
    """A floating IP on ``vm`` for the length of a test (the FIP object as created)."""
    with lab3.client() as client:
        [public] = client.list("networks", name="public")
        fip = client.create("floatingips", "floatingip", {
            "floating_network_id": public["id"], "port_id": port_id(lab3, vm)})
    try:
        yield fip
    finally:
        with lab3.client() as client:
            client.delete("floatingips", fip["id"])
        lab3.wait_converged()


def set_fip_port(lab3, fip: dict, port: str | None) -> None:
    with lab3.client() as client:
        client.update("floatingips", "floatingip", fip["id"], {"port_id": port})


def north_south_traces(lab3, host: str) -> dict[str, str]:
    """What ``host`` holds of the north/south plumbing, as text: per namespace its IPv4
    rules, routes of every table but the kernel's local one, and nft ruleset (handles
    included: a replaced table gets new ones)."""
    found = {}
    for namespace in lab3.namespaces(host):
        if not namespace.startswith(("qrouter-", "snat-", "fip-")):
            continue
        prefix = ["ip", "netns", "exec", namespace]
        routes = lab3.run(host, prefix + ["ip", "-4", "route", "show", "table", "all"]).stdout
        found[namespace] = "\n".join([
            lab3.run(host, prefix + ["ip", "-4", "rule"]).stdout,
            "\n".join(line for line in routes.splitlines() if "table local" not in line),
            lab3.run(host, prefix + ["nft", "-a", "list", "ruleset"]).stdout])
    return found


def flows_of(lab3, host: str) -> dict[str, dict[str, float]]:
    return {bridge: lab3.flows_installed_at(host, bridge)
            for bridge in ("br-int", "br-tun", "br-ex")}


def assert_flows_untouched(before, after) -> None:
    for bridge, flows in before.items():
        assert set(after[bridge]) == set(flows), f"{bridge} flows changed"
        for flow, installed in flows.items():
            assert abs(after[bridge][flow] - installed) < SAME_INSTALL, (
                f"{bridge} flow {flow} was reinstalled")


# --- SNAT ---------------------------------------------------------------------------------------


def test_snat_ping_and_tcp_leave_through_network_1_from_the_gateway_ip(lab3):
    lab3.wait_converged()
    before = snat_packets(lab3)
    result = lab3.ping("blue-1", OUTSIDE_IP)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0% packet loss" in result.stdout
    assert snat_packets(lab3) >= before + 3
    assert tcp_transfer(lab3, "blue-1", "outside", OUTSIDE_IP, 5301) == gateway_ip(lab3)
    assert snat_packets(lab3) > before + 100
    snat = f"snat-{lab3.router_id()}"
    assert snat in lab3.namespaces("network-1")
    for host in ("compute-1", "compute-2"):
        assert snat not in lab3.namespaces(host)


# --- floating IPs ---------------------------------------------------------------------------------


def test_floating_ip_reaches_and_is_reached_directly_on_compute_2(lab3):
    with floating_ip(lab3, "orange-1") as fip:
        address = fip["floating_ip_address"]
        elapsed = wait_answering(lab3, "outside", address, timeout=10)
        lab3.wait_converged()
        before = snat_packets(lab3)
        result = lab3.ping("outside", address, count=5)
        assert " 0% packet loss" in result.stdout, result.stdout
        # port 80: the lab's demo-web group lets TCP 80 in from anywhere
        assert tcp_transfer(lab3, "outside", "orange-1", address, 80) == OUTSIDE_IP
        assert tcp_transfer(lab3, "orange-1", "outside", OUTSIDE_IP, 5303) == address
        # 5 pings and two TCP transfers (hundreds of segments) went by: none through the
        # snat- namespace (an ARP refresh of its own next hop may go out meanwhile)
        assert snat_packets(lab3) - before <= 2
        assert f"fip-{fip['floating_network_id']}" in lab3.namespaces("compute-2")
        assert f"fip-{fip['floating_network_id']}" not in lab3.namespaces("compute-1")
        assert elapsed < 10


def test_disassociate_then_reassociate_to_blue_2(lab3):
    with floating_ip(lab3, "orange-1") as fip:
        address = fip["floating_ip_address"]
        wait_answering(lab3, "outside", address, timeout=10)
        orange_ip = lab3.record.vms["orange-1"].ip_address
        set_fip_port(lab3, fip, None)
        assert wait_silent(lab3, "outside", address, timeout=5) < 2.5
        lab3.wait_converged()
        held = "\n".join(north_south_traces(lab3, "compute-2").values())
        assert address not in held and f"{orange_ip} lookup 16" not in held
        assert f"fip-{fip['floating_network_id']}" not in lab3.namespaces("compute-2")

        set_fip_port(lab3, fip, port_id(lab3, "blue-2"))
        wait_answering(lab3, "outside", address, timeout=10)
        blue_ip = lab3.record.vms["blue-2"].ip_address
        traces = north_south_traces(lab3, "compute-2")
        assert f"from {blue_ip} lookup 16" in traces[lab3.qrouter()]
        assert address in traces[f"fip-{fip['floating_network_id']}"]


def test_moving_a_vm_moves_its_floating_ip(lab3):
    with floating_ip(lab3, "orange-1") as fip:
        address = fip["floating_ip_address"]
        wait_answering(lab3, "outside", address, timeout=10)
        lab3.lab.vm_move("orange-1", "compute-1")
        try:
            assert wait_answering(lab3, "outside", address, timeout=5) < 2.5
            lab3.wait_converged()
            assert address in north_south_traces(lab3, "compute-1")[
                f"fip-{fip['floating_network_id']}"]
            held = "\n".join(north_south_traces(lab3, "compute-2").values())
            assert address not in held
            assert f"fip-{fip['floating_network_id']}" not in lab3.namespaces("compute-2")
        finally:
            lab3.lab.vm_move("orange-1", "compute-2")
            lab3.wait_converged()
        wait_answering(lab3, "outside", address, timeout=10)


# --- legacy routers ------------------------------------------------------------------------------


def migrate(lab3, router_id: str, distributed: bool) -> None:
    with lab3.client() as client:
        client.update("routers", "router", router_id, {"admin_state_up": False})
        client.update("routers", "router", router_id, {"distributed": distributed})
        client.update("routers", "router", router_id, {"admin_state_up": True})


def forwarded_by(lab3, host: str, namespace: str) -> int:
    """Packets received by the router's qr- devices in ``namespace`` on ``host``."""
    links = lab3.netns_json(host, namespace, ["-s", "link", "show"])
    return sum(link["stats64"]["rx"]["packets"] for link in links
               if link["ifname"].startswith("qr-"))


def routed_by_fast_path(lab3, host: str) -> int:
    """Packets the east/west fast path routed in ``host``'s br-int (its dec_ttl flows)."""
    return sum(int(line.split("n_packets=", 1)[1].split(",", 1)[0])
               for line in lab3.dump_flows(host, "br-int")
               if " table=65," in line and "dec_ttl" in line)


def assert_routed_by_fast_path(lab3, host: str, attempts: int = 3) -> None:
    """Five routed pings pass ``host``'s fast-path flows.  A flow group the agent rewrites
    while the pings run starts its counters again, so a short count is tried again (a
    bounded number of times) before it fails."""
    deltas = []
    for _ in range(attempts):
        before = routed_by_fast_path(lab3, host)
        routed_ping(lab3)
        deltas.append(routed_by_fast_path(lab3, host) - before)
        if deltas[-1] >= 5:
            return
    raise AssertionError(f"the fast path of {host} routed {deltas} of 5 pings per attempt")


def routed_ping(lab3) -> None:
    green = lab3.lab.resolve_ip("green-1")
    wait_answering(lab3, "red-1", green, timeout=15)
    lab3.wait_converged()
    result = lab3.ping("red-1", "green-1", count=5)
    assert " 0% packet loss" in result.stdout, result.stdout


def test_legacy_router_routes_through_network_1_and_migrates_both_ways(lab3):
    with legacy_tenant(lab3, "legacy-r", (("red", "198.18.10.0/24"),
                                            ("green", "198.18.11.0/24"))) as router_id:
        qrouter = f"qrouter-{router_id}"
        lab3.wait_for(lambda: qrouter in lab3.namespaces("network-1"), "the legacy qrouter")
        routed_ping(lab3)
        assert qrouter not in lab3.namespaces("compute-1")
        before = forwarded_by(lab3, "network-1", qrouter)
        routed_ping(lab3)
        assert forwarded_by(lab3, "network-1", qrouter) >= before + 10  # 5 requests, 5 replies

        migrate(lab3, router_id, distributed=True)
        routed_ping(lab3)
        assert qrouter in lab3.namespaces("compute-1")
        # routed on compute-1, by the east/west fast path in its br-int
        assert_routed_by_fast_path(lab3, "compute-1")

        migrate(lab3, router_id, distributed=False)
        routed_ping(lab3)
        lab3.wait_for(lambda: qrouter not in lab3.namespaces("compute-1"),
                      "the distributed copy to leave compute-1")
        before = forwarded_by(lab3, "network-1", qrouter)
        routed_ping(lab3)
        assert forwarded_by(lab3, "network-1", qrouter) >= before + 10


# --- agent restarts -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["restart", "kill -9"])
def test_agent_restart_loses_no_packet_and_changes_nothing(lab3, how):
    hosts = ("compute-2", "network-1")
    with floating_ip(lab3, "orange-1") as fip:
        address = fip["floating_ip_address"]
        wait_answering(lab3, "outside", address, timeout=10)
        wait_answering(lab3, "blue-1", OUTSIDE_IP, timeout=10)
        lab3.wait_converged()
        time.sleep(2 * SAME_INSTALL)
        flows = {h: flows_of(lab3, h) for h in hosts}
        kernel = {h: north_south_traces(lab3, h) for h in hosts}
        pings = {}
        for source, target in (("outside", address), ("blue-1", OUTSIDE_IP)):
            command, env = lab3.lab.target_command(
                source, ["ping", "-c", "120", "-i", "0.05", "-W", "1", target])
            pings[source] = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(0.5)
            for host in hosts:
                started = lab3.reconciles(host)
                if how == "restart":
                    lab3.lab.restart_agent(host)
                else:
                    lab3.kill_agent(host)
                lab3.wait_for(lambda host=host, started=started: lab3.reconciles(host) > started,
                              f"the restarted agent of {host} to reconcile", timeout=30)
        finally:
            outputs = {source: p.communicate(timeout=30)[0] for source, p in pings.items()}
        for source, out in outputs.items():
            assert " 0% packet loss" in out, f"{source}: {out}"
        for host in hosts:
            assert_flows_untouched(flows[host], flows_of(lab3, host))
            assert north_south_traces(lab3, host) == kernel[host]

"""The east/west fast path on real OVS (issue 12): two real lab hosts with the agent's own
desired states (``east_west_cloud`` without compute-3: blue-1 on host A, blue-2 and orange-1
on host B); routed packets are delivered with the right headers and the ``qrouter-``
namespaces see none of them, while TTL 1 still gets its ICMP error from the namespace."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dataplane_support import assert_nothing_left

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.names import router_interface_device_name, router_namespace_name
from dvr.lab.fabric import Fabric
from dvr.lab.hostenv import HostEnv
from dvr.lab.inhost import plan_in_host, reconcile_in_host
from dvr.lab.vm import VmPlug, plug_commands, vm_namespace
from tests.unit.desired.desired_scenarios import (
    BLUE_1,
    BLUE_2,
    HOST_1,
    HOST_2,
    HOST_3,
    IF_BLUE,
    IF_ORANGE,
    IF_ORANGE_MAC,
    ORANGE_1,
    ROUTER,
    Cloud,
    east_west_cloud,
)

FAST = DesiredConfig()
SLOW = DesiredConfig(east_west="namespace")
FOLDED = DesiredConfig(tunnel_layout="folded")  # br-tun's tables and ports in br-int
QROUTER = router_namespace_name(ROUTER)
QR_DEVICES = (router_interface_device_name(IF_BLUE), router_interface_device_name(IF_ORANGE))
IPERF_PORT = 5201
# counts the TCP packets the router namespace receives and sends (its own table: the
# agent's NAT table is left alone)
PROBE = """table ip fastpath_probe {
    chain seen_in { type filter hook prerouting priority -300; ip protocol tcp counter; }
    chain seen_out { type filter hook postrouting priority 300; ip protocol tcp counter; }
}
"""


def two_host_cloud(prefix: str) -> Cloud:
    """``east_west_cloud`` on two lab hosts named after the run, with underlay tunnel IPs."""
    base = east_west_cloud().without_host(HOST_3)
    names = {HOST_1: f"{prefix}-a", HOST_2: f"{prefix}-b"}
    tunnel_ips = {HOST_1: "198.18.0.11", HOST_2: "198.18.0.12"}
    return replace(
        base,
        hosts=tuple(replace(h, name=names[h.name], tunnel_ip=tunnel_ips[h.name])
                    for h in base.hosts),
        vms=tuple(replace(v, host=names[v.host]) for v in base.vms),
    )


@dataclass
class FastPathLab:
    cloud: Cloud
    hosts: dict[str, HostEnv]

    def host_of(self, vm_id: str) -> HostEnv:
        return self.hosts[self.cloud.vm(vm_id).host]

    def apply(self, config: DesiredConfig) -> None:
        for name, host in self.hosts.items():
            state = compute_desired_state(self.cloud.view(name),
                                          HostInputs(plugged=self.cloud.plugged(name)), config)
            result = reconcile_in_host(host, state)
            assert not result.failures, result.failures
            assert len(plan_in_host(host, state)) == 0

    def in_vm(self, vm_id: str, argv: list[str], timeout: float = 30
              ) -> subprocess.CompletedProcess[str]:
        return self.host_of(vm_id).run(["ip", "netns", "exec", vm_namespace(vm_id[:8]), *argv],
                                       check=False, timeout=timeout)

    def ping(self, source: str, destination: str, *extra: str) -> subprocess.CompletedProcess:
        return self.in_vm(source, ["ping", "-c", "3", "-W", "1", "-i", "0.2", *extra,
                                   self.cloud.vm(destination).ip])

    def reachable(self, source: str, destination: str) -> bool:
        return any(self.ping(source, destination).returncode == 0 for _ in range(5))

    # -- what the router namespaces see ---------------------------------------------------------
    def reset_probes(self) -> None:
        for host in self.hosts.values():
            host.run(["ip", "netns", "exec", QROUTER, "nft", "delete", "table", "ip",
                      "fastpath_probe"], check=False)
            host.run(["ip", "netns", "exec", QROUTER, "nft", "-f", "-"], input=PROBE)

    def tcp_seen_by_namespaces(self) -> int:
        total = 0
        for host in self.hosts.values():
            out = host.run(["ip", "netns", "exec", QROUTER, "nft", "-j", "list", "table", "ip",
                            "fastpath_probe"]).stdout
            for item in json.loads(out)["nftables"]:
                for expr in item.get("rule", {}).get("expr", []):
                    if "counter" in expr:
                        total += expr["counter"]["packets"]
        return total

    def qr_packets(self) -> int:
        """rx + tx packets of every qr- device on both hosts."""
        total = 0
        for host in self.hosts.values():
            out = host.run(["ip", "netns", "exec", QROUTER, "ip", "-s", "-j", "link",
                            "show"]).stdout
            for link in json.loads(out):
                if link["ifname"] in QR_DEVICES:
                    stats = link["stats64"]
                    total += stats["rx"]["packets"] + stats["tx"]["packets"]
        return total

    def tcp_stream(self, source: str, destination: str, seconds: int = 2) -> int:
        """An iperf3 TCP stream; the number of segments the sender sent (about)."""
        server_host = self.host_of(destination)
        server = subprocess.Popen(
            server_host.command(["ip", "netns", "exec", vm_namespace(destination[:8]),
                                 "iperf3", "-s", "-1", "-p", str(IPERF_PORT)]),
            env=server_host.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(25):
                time.sleep(0.2)
                result = self.in_vm(source, ["iperf3", "-c", self.cloud.vm(destination).ip,
                                             "-p", str(IPERF_PORT), "-t", str(seconds), "-J"],
                                    timeout=seconds + 60)
                data = json.loads(result.stdout or "{}")
                if "end" in data and "sum_sent" in data["end"]:
                    return int(data["end"]["sum_sent"]["bytes"] // 1400)
            raise AssertionError(f"iperf3 never ran: {result.stdout} {result.stderr}")
        finally:
            if server.poll() is None:
                server.terminate()
            server.wait(timeout=10)

    def capture_one(self, vm_id: str, trigger: list[str], source_vm: str) -> str:
        """tcpdump -e -v in ``vm_id`` for one ICMP echo request while ``source_vm`` runs
        ``trigger``: the link and IP header lines as printed."""
        host = self.host_of(vm_id)
        capture = subprocess.Popen(
            host.command(["ip", "netns", "exec", vm_namespace(vm_id[:8]), "timeout", "15",
                          "tcpdump", "-l", "-e", "-v", "-n", "-c", "1", "-i", "eth0",
                          "icmp and icmp[icmptype] == icmp-echo"]),
            env=host.env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(10):
                time.sleep(0.5)  # until tcpdump listens
                self.in_vm(source_vm, trigger)
                if capture.poll() is not None:
                    break
            out, _ = capture.communicate(timeout=20)
        finally:
            if capture.poll() is None:
                capture.terminate()
                capture.wait(timeout=10)
        return out


@pytest.fixture
def lab(unique_names, workroot: Path) -> Iterator[FastPathLab]:
    prefix = next(unique_names)
    workdir = workroot / prefix.rsplit("-", 1)[1]
    cloud = two_host_cloud(prefix)
    hosts = {h.name: HostEnv(h.name, workdir / h.name[-1]) for h in cloud.hosts}
    fabric = Fabric(f"{prefix}-fab", workdir / "fab")
    try:
        fabric.start()
        for host in cloud.hosts:
            hosts[host.name].start()
            fabric.attach(hosts[host.name], host.tunnel_ip)
        for vm in cloud.vms:
            net = cloud.net(vm.network_id)
            plug = VmPlug(name=vm.id[:8], port_id=vm.id, mac_address=vm.mac,
                          ip_address=vm.ip, cidr=net.cidr, gateway_ip=net.gateway_ip,
                          mtu=net.mtu, ovsdb=hosts[vm.host].ovsdb)
            for argv in plug_commands(plug):
                hosts[vm.host].run(argv)
        yield FastPathLab(cloud, hosts)
    finally:
        fabric.stop()
        for host in hosts.values():
            host.stop()
        assert_nothing_left(prefix, workdir)


def test_routed_tcp_never_touches_the_router_namespaces(lab: FastPathLab):
    lab.apply(FAST)
    assert lab.reachable(BLUE_1, ORANGE_1)  # cross host (and ARP for the gateways settled)
    assert lab.reachable(BLUE_2, ORANGE_1)  # same host
    lab.reset_probes()
    before = lab.qr_packets()
    segments = lab.tcp_stream(BLUE_1, ORANGE_1) + lab.tcp_stream(BLUE_2, ORANGE_1)
    assert segments > 1000
    assert lab.tcp_seen_by_namespaces() == 0
    # flat: a stream through the namespace would add thousands; what remains is link-local
    # chatter (IPv6 ND/MLD), more of it on a loaded machine
    assert lab.qr_packets() - before < segments // 20

    # the control: the same streams through the namespaces are seen there
    lab.apply(SLOW)
    assert lab.reachable(BLUE_1, ORANGE_1)
    lab.reset_probes()
    before = lab.qr_packets()
    segments = lab.tcp_stream(BLUE_1, ORANGE_1)
    assert lab.tcp_seen_by_namespaces() > segments // 2
    assert lab.qr_packets() - before > segments // 2


@pytest.mark.parametrize("source", [BLUE_1, BLUE_2], ids=["cross-host", "same-host"])
def test_a_routed_frame_arrives_with_gateway_source_mac_and_ttl_decremented(lab, source):
    lab.apply(FAST)
    assert lab.reachable(source, ORANGE_1)
    seen = lab.capture_one(ORANGE_1, ["ping", "-c", "1", "-W", "1", "-t", "9",
                                      lab.cloud.vm(ORANGE_1).ip], source)
    orange_1 = lab.cloud.vm(ORANGE_1)
    assert f"{IF_ORANGE_MAC} > {orange_1.mac}, ethertype IPv4" in seen, seen
    assert "802.1Q" not in seen and "vlan" not in seen  # untagged on the VM's port
    assert "ttl 8," in seen, seen  # routed once
    assert f"{lab.cloud.vm(source).ip} > {orange_1.ip}" in seen


def test_ttl_1_gets_time_exceeded_from_the_namespace(lab: FastPathLab):
    lab.apply(FAST)
    assert lab.reachable(BLUE_1, ORANGE_1)
    result = lab.ping(BLUE_1, ORANGE_1, "-t", "1")
    gateway = lab.cloud.net(lab.cloud.vm(BLUE_1).network_id).gateway_ip
    assert f"From {gateway}" in result.stdout and "Time to live exceeded" in result.stdout, (
        result.stdout)


def test_with_br_tun_folded_into_br_int_the_same_packets_arrive(lab: FastPathLab):
    """One bridge per host (br-tun's tables at an offset in br-int, its ports on the dead
    VLAN): the agent's plan finds the switch converged after one pass (``apply``), and
    frames cross hosts bridged and routed as with br-tun, the routed stream still past the
    namespaces."""
    lab.apply(FOLDED)
    for host in lab.hosts.values():
        assert host.vsctl("list-br").split() == ["br-int", "br-phy"]  # br-phy: the underlay
        tags = {name: host.vsctl("get", "port", name, "tag").strip()
                for name in host.vsctl("list-ports", "br-int").split()
                if name.startswith(("vxlan-", "patch-int"))}
        assert tags and set(tags.values()) == {"4095"}, tags
    assert lab.reachable(BLUE_1, BLUE_2)  # same subnet, cross host
    assert lab.reachable(BLUE_1, ORANGE_1)  # routed on host A, cross host
    assert lab.reachable(ORANGE_1, BLUE_1)  # and back, routed on host B
    seen = lab.capture_one(ORANGE_1, ["ping", "-c", "1", "-W", "1", "-t", "9",
                                      lab.cloud.vm(ORANGE_1).ip], BLUE_1)
    assert f"{IF_ORANGE_MAC} > {lab.cloud.vm(ORANGE_1).mac}, ethertype IPv4" in seen, seen
    assert "ttl 8," in seen, seen
    lab.reset_probes()
    assert lab.tcp_stream(BLUE_1, ORANGE_1) > 1000
    assert lab.tcp_seen_by_namespaces() == 0



def test_a_running_host_switches_layouts_in_one_pass_each_way(lab: FastPathLab):
    """An agent restarted with the other ``tunnel_layout`` on a host that runs: br-tun's
    ports move to br-int and br-tun goes (its tunnel ports recreated in a transaction of
    their own, or the switch refuses the same tunnel twice), then back; each way one pass
    converges (``apply``) and frames cross hosts bridged and routed."""
    lab.apply(FAST)
    assert lab.reachable(BLUE_1, ORANGE_1)
    for config, bridges in ((FOLDED, ["br-int", "br-phy"]),
                            (FAST, ["br-int", "br-phy", "br-tun"])):
        lab.apply(config)
        for host in lab.hosts.values():
            assert host.vsctl("list-br").split() == bridges
            tunnel_side = "br-int" if config.folded else "br-tun"
            assert {name for name in host.vsctl("list-ports", tunnel_side).split()
                    if name.startswith(("vxlan-", "patch-int"))}, tunnel_side
        assert lab.reachable(BLUE_1, BLUE_2)  # same subnet, cross host
        assert lab.reachable(BLUE_1, ORANGE_1)  # routed, cross host

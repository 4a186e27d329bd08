"""The firewall on one real host (OVS userspace conntrack, real namespaces, no server): three
firewalled VMs, two on blue and one on orange behind a distributed router, and real TCP.

- same network (br-int NORMAL switching) and routed by the router namespace (qr- -> VM):
  a rule with a remote group admits TCP 8080, a port without a rule is dropped, replies to
  an egress-only connection come back, a new inbound connection is not;
- a forged source MAC or IP gets nothing delivered;
- removing the rule ends an established connection;
- recomputing the desired state from scratch (an agent restart) changes no flow;
- on two hosts, the cross-host switched path and the DVR-routed path (delivered by br-int
  table 1 on the destination host) pass the destination's ingress firewall;
- a connection routed by the east/west fast path (br-int table 65, not the namespace) is
  dropped by the destination's rules and admitted once a rule allows it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from dataplane_support import assert_nothing_left

from dvr.agent.desired import DesiredConfig, HostInputs, compute_desired_state
from dvr.agent.desired.state import DesiredState
from dvr.agent.desired.tables import IntTable
from dvr.agent.drivers.openflow import parse_dump_flows
from dvr.lab.fabric import Fabric
from dvr.lab.hostenv import HostEnv
from dvr.lab.inhost import plan_in_host, reconcile_in_host
from dvr.lab.procs import poll_until
from dvr.lab.vm import VmPlug, plug_commands, tap_name, vm_namespace
from dvr.model.hostview import (
    AddressSetView,
    ArpEntry,
    FixedIp,
    HostMac,
    HostView,
    L2Entry,
    NetworkView,
    PortView,
    RemoteHost,
    RouterInterfaceView,
    RouterView,
    SecurityGroupRuleView,
    SecurityGroupView,
    SubnetView,
)

HOST = "fw-host"
BLUE, ORANGE = "net-blue-000000000001", "net-orange-00000000002"
BLUE_SUBNET, ORANGE_SUBNET = "sub-blue-000000000001", "sub-orange-00000000002"
ROUTER = "rtr-00000000-0000-0000-0000-000000000001"
GROUP = "sg-web-0000-0000-0000-000000000001"
CONFIG = DesiredConfig(agent_mode="dvr")


@dataclass(frozen=True)
class Vm:
    name: str
    port_id: str
    network: str
    subnet: str
    mac: str
    ip: str
    cidr: str
    gateway: str


VMS = (
    Vm("b1", "a1000000-0000-0000-0000-000000000001", BLUE, BLUE_SUBNET, "fa:16:3e:10:00:0b",
       "192.0.2.11", "192.0.2.0/24", "192.0.2.1"),
    Vm("b2", "a2000000-0000-0000-0000-000000000002", BLUE, BLUE_SUBNET, "fa:16:3e:10:00:0c",
       "192.0.2.12", "192.0.2.0/24", "192.0.2.1"),
    Vm("o1", "a3000000-0000-0000-0000-000000000003", ORANGE, ORANGE_SUBNET,
       "fa:16:3e:20:00:0b", "198.51.100.21", "198.51.100.0/24", "198.51.100.1"),
)
VM = {vm.name: vm for vm in VMS}
OPEN_PORT, CLOSED_PORT = 8080, 9090

INGRESS_8080 = SecurityGroupRuleView("r-in-8080", "ingress", "IPv4", protocol=6,
                                     port_range_min=OPEN_PORT, port_range_max=OPEN_PORT,
                                     remote_group_id=GROUP)
RULES = (
    SecurityGroupRuleView("r-egress", "egress", "IPv4"),
    SecurityGroupRuleView("r-in-icmp", "ingress", "IPv4", protocol=1),
    INGRESS_8080,
)


TUNNEL_IPS = {"fw-a": "198.18.0.11", "fw-b": "198.18.0.12"}
HOST_MACS = {HOST: "fa:16:3f:00:00:01", "fw-a": "fa:16:3f:00:00:0a", "fw-b": "fa:16:3f:00:00:0b"}
ONE_HOST = {vm.name: HOST for vm in VMS}
TWO_HOSTS = {"b1": "fw-a", "b2": "fw-b", "o1": "fw-b"}  # b2 switched, o1 routed across


def remote_hosts(network: str, host: str, placement: dict[str, str]) -> tuple[RemoteHost, ...]:
    others = sorted({placement[vm.name] for vm in VMS} - {host})
    return tuple(
        RemoteHost(other, TUNNEL_IPS[other], tuple(
            L2Entry(vm.mac, (vm.ip,)) for vm in VMS
            if vm.network == network and placement[vm.name] == other))
        for other in others)


def host_view(rules=RULES, secured: tuple[str, ...] = ("b1", "b2", "o1"), host: str = HOST,
              placement: dict[str, str] = ONE_HOST) -> HostView:
    ports = tuple(
        PortView(vm.port_id, vm.network, vm.mac, (FixedIp(vm.subnet, vm.ip),), "compute:nova",
                 vm.name, host, port_security_enabled=vm.name in secured,
                 security_group_ids=(GROUP,))
        for vm in VMS if placement[vm.name] == host)
    interfaces = (
        RouterInterfaceView("e1000000-0000-0000-0000-00000000000b", BLUE_SUBNET, BLUE,
                            "fa:16:3e:10:00:01", "192.0.2.1", "192.0.2.0/24", 1450),
        RouterInterfaceView("e2000000-0000-0000-0000-00000000000o", ORANGE_SUBNET, ORANGE,
                            "fa:16:3e:20:00:01", "198.51.100.1", "198.51.100.0/24", 1450),
    )
    router = RouterView(
        id=ROUTER, name="r", distributed=True, ha=False, admin_state_up=True,
        interfaces=interfaces,
        arp_entries=tuple(ArpEntry(vm.subnet, vm.ip, vm.mac) for vm in VMS),
        routes=(), gateway=None, snat_host=None, snat_ports=(), floating_ips=())
    return HostView(
        host=host, revision=1, agent_mode="dvr", host_mac=HOST_MACS[host],
        tunnel_ip=TUNNEL_IPS.get(host), ports=ports,
        networks=(
            NetworkView(BLUE, "blue", "vxlan", 101, 1450, False, None,
                        (SubnetView(BLUE_SUBNET, BLUE, "192.0.2.0/24", "192.0.2.1", 4),),
                        remote_hosts(BLUE, host, placement)),
            NetworkView(ORANGE, "orange", "vxlan", 102, 1450, False, None,
                        (SubnetView(ORANGE_SUBNET, ORANGE, "198.51.100.0/24", "198.51.100.1",
                                    4),), remote_hosts(ORANGE, host, placement)),
        ),
        routers=(router,),
        peer_host_macs=tuple(HostMac(h, HOST_MACS[h]) for h in sorted(set(placement.values()))
                             if h != host),
        security_groups=(SecurityGroupView(GROUP, True, tuple(sorted(rules,
                                                                     key=lambda r: r.id))),),
        address_sets=(AddressSetView(GROUP, "security_group",
                                     tuple(sorted(f"{vm.ip}/32" for vm in VMS))),),
    )


def desired(view: HostView) -> DesiredState:
    plugged = {p.id: tap_name(p.id) for p in view.ports}
    return compute_desired_state(view, HostInputs(plugged=plugged), CONFIG)


# a TCP echo server on several ports, and a client that sends one line per stdin line and
# prints "ok" or "fail" (the connection stays open between lines)
SERVER = """
import socket, sys, threading
def serve(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept()
        threading.Thread(target=echo, args=(c,), daemon=True).start()
def echo(c):
    while True:
        data = c.recv(64)
        if not data:
            return
        c.sendall(data)
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
except OSError as exc:
    print("connect-failed", exc, flush=True); sys.exit(0)
print("connected", flush=True)
c.settimeout(2)
for line in sys.stdin:
    try:
        c.sendall(b"x"); print("ok" if c.recv(1) == b"x" else "fail", flush=True)
    except OSError:
        print("fail", flush=True)
"""


class FirewallHost:
    def __init__(self, host: HostEnv) -> None:
        self.host = host
        self.processes: list[subprocess.Popen] = []

    def apply(self, view: HostView) -> DesiredState:
        state = desired(view)
        result = reconcile_in_host(self.host, state)
        assert not result.failures, result.failures
        return state

    def in_vm(self, vm: str, argv: list[str], check: bool = False) -> subprocess.CompletedProcess:
        return self.host.run(["ip", "netns", "exec", vm_namespace(vm), *argv], check=check,
                             timeout=30)

    def spawn(self, vm: str, script: str, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            self.host.command(["ip", "netns", "exec", vm_namespace(vm), sys.executable, "-c",
                               script, *args]),
            env=self.host.env(), text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def serve(self, vm: str) -> None:
        server = self.spawn(vm, SERVER, str(OPEN_PORT), str(CLOSED_PORT))
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"

    def connect(self, vm: str, ip: str, port: int) -> subprocess.Popen | None:
        """A client connection (None when it cannot connect)."""
        client = self.spawn(vm, CLIENT, ip, str(port))
        assert client.stdout is not None
        if client.stdout.readline().strip() != "connected":
            client.wait(timeout=10)
            return None
        return client

    def connects(self, vm: str, ip: str, port: int) -> bool:
        client = self.connect(vm, ip, port)
        if client is None:
            return False
        return echo(client)

    def ping(self, vm: str, ip: str) -> bool:
        return self.in_vm(vm, ["ping", "-c", "2", "-W", "1", "-i", "0.2", ip]).returncode == 0

    def flows(self) -> set[tuple[int, int]]:
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int"],
                             env=self.host.env(), text=True, capture_output=True,
                             check=True).stdout
        return {(f.table, f.cookie) for f in parse_dump_flows(out)}

    def fast_path_packets(self, destination_ip: str) -> int:
        """Packets br-int routed to ``destination_ip`` by its fast-path flow (table 65)."""
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int",
                              f"table={IntTable.FAST_PATH},ip,nw_dst={destination_ip}"],
                             env=self.host.env(), text=True, capture_output=True,
                             check=True).stdout
        routes = [f for f in parse_dump_flows(out) if "dec_ttl" in f.text]
        assert routes, out
        return sum(f.n_packets for f in routes)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=10)


def plug_vm(host: HostEnv, vm: Vm) -> None:
    plug = VmPlug(name=vm.name, port_id=vm.port_id, mac_address=vm.mac, ip_address=vm.ip,
                  cidr=vm.cidr, gateway_ip=vm.gateway, mtu=1450, ovsdb=host.ovsdb)
    for argv in plug_commands(plug):
        host.run(argv)


def echo(client: subprocess.Popen) -> bool:
    assert client.stdin is not None and client.stdout is not None
    client.stdin.write("x\n")
    client.stdin.flush()
    return client.stdout.readline().strip() == "ok"


@pytest.fixture
def fw_host(unique_names, workroot: Path) -> Iterator[FirewallHost]:
    prefix = next(unique_names)
    workdir = workroot / prefix.rsplit("-", 1)[1]
    host = HostEnv(f"{prefix}-h", workdir / "h")
    lab = FirewallHost(host)
    try:
        host.start()
        for vm in VMS:
            plug_vm(host, vm)
        yield lab
    finally:
        lab.stop()
        host.stop()
        assert_nothing_left(prefix, workdir)


def test_rules_decide_on_the_switched_and_the_routed_path(fw_host: FirewallHost):
    lab = fw_host
    lab.apply(host_view())
    for vm in VMS:
        lab.serve(vm.name)
    b2, o1 = VM["b2"].ip, VM["o1"].ip
    assert lab.ping("b1", b2), "ICMP is allowed in (switched)"
    assert lab.ping("b1", o1), "ICMP is allowed in (routed by the namespace)"
    # the remote-group rule admits members; its replies come back to b1, whose only
    # ingress rules are ICMP and 8080 (stateful)
    assert lab.connects("b1", b2, OPEN_PORT), "switched, allowed by the remote group rule"
    assert lab.connects("b1", o1, OPEN_PORT), "routed, allowed by the remote group rule"
    assert lab.connect("b1", b2, CLOSED_PORT) is None, "switched, no rule: dropped"
    assert lab.connect("o1", VM["b1"].ip, CLOSED_PORT) is None, "routed, no rule: dropped"


def test_a_fast_path_routed_connection_obeys_the_destinations_rules(fw_host: FirewallHost):
    """Issue 13: routed in br-int (table 65), not by the namespace, and still filtered."""
    lab = fw_host
    lab.apply(host_view(rules=tuple(r for r in RULES if r != INGRESS_8080)))
    lab.serve("o1")
    o1 = VM["o1"].ip
    assert lab.ping("b1", o1), "ICMP is allowed in (ARP for the gateway settled)"
    before = lab.fast_path_packets(o1)
    assert lab.connect("b1", o1, OPEN_PORT) is None, "fast-path routed, no rule: dropped"
    assert lab.fast_path_packets(o1) > before, "the SYNs were routed by the fast path"
    lab.apply(host_view())
    before = lab.fast_path_packets(o1)
    assert lab.connects("b1", o1, OPEN_PORT), "fast-path routed, the rule admits it"
    assert lab.fast_path_packets(o1) > before


def test_port_security_off_is_not_filtered(fw_host: FirewallHost):
    lab = fw_host
    lab.apply(host_view(secured=("b1", "o1")))
    lab.serve("b2")
    assert lab.connects("b1", VM["b2"].ip, CLOSED_PORT)


def test_forged_source_mac_or_ip_is_dropped(fw_host: FirewallHost):
    lab = fw_host
    lab.apply(host_view())
    b2 = VM["b2"].ip
    assert lab.ping("b1", b2)
    lab.in_vm("b1", ["ip", "addr", "add", "192.0.2.99/24", "dev", "eth0"], check=True)
    forged_ip = lab.in_vm("b1", ["ping", "-c", "2", "-W", "1", "-I", "192.0.2.99", b2])
    assert forged_ip.returncode != 0, "a source IP that is not the port's"
    lab.in_vm("b1", ["ip", "addr", "del", "192.0.2.99/24", "dev", "eth0"], check=True)
    lab.in_vm("b1", ["ip", "link", "set", "eth0", "address", "fa:16:3e:10:00:99"], check=True)
    lab.in_vm("b1", ["ip", "neigh", "flush", "all"])
    lab.in_vm("b2", ["ip", "neigh", "flush", "all"])
    assert not lab.ping("b1", b2), "a source MAC that is not the port's"
    lab.in_vm("b1", ["ip", "link", "set", "eth0", "address", VM["b1"].mac], check=True)
    lab.in_vm("b2", ["ip", "neigh", "flush", "all"])
    assert lab.ping("b1", b2)


def test_removing_the_rule_ends_the_established_connection(fw_host: FirewallHost):
    lab = fw_host
    lab.apply(host_view())
    lab.serve("b2")
    client = lab.connect("b1", VM["b2"].ip, OPEN_PORT)
    assert client is not None and echo(client)
    lab.apply(host_view(rules=tuple(r for r in RULES if r != INGRESS_8080)))
    assert not echo(client), "the established connection ended with its rule"
    assert lab.connect("b1", VM["b2"].ip, OPEN_PORT) is None
    lab.apply(host_view())
    assert lab.connects("b1", VM["b2"].ip, OPEN_PORT), "the rule is back: new connections"


def test_a_restart_changes_no_firewall_flow(fw_host: FirewallHost):
    lab = fw_host
    state = lab.apply(host_view())
    before = lab.flows()
    assert any(table in (71, 72, 81, 82) for table, _ in before)
    again = desired(replace(host_view(), revision=2))  # a fresh agent, a new revision
    assert len(plan_in_host(lab.host, again)) == 0
    assert again.bridge("br-int") == state.bridge("br-int")
    time.sleep(0.1)
    assert lab.flows() == before


# --- two hosts: the cross-host switched path and the DVR-routed path (br-int table 1) -------


@pytest.fixture
def two_fw_hosts(unique_names, workroot: Path) -> Iterator[dict[str, FirewallHost]]:
    prefix = next(unique_names)
    workdir = workroot / prefix.rsplit("-", 1)[1]
    fabric = Fabric(f"{prefix}-fab", workdir / "fab")
    labs = {name: FirewallHost(HostEnv(f"{prefix}-{name[-1]}", workdir / name[-1]))
            for name in TUNNEL_IPS}
    try:
        fabric.start()
        for name, lab in labs.items():
            lab.host.start()
            fabric.attach(lab.host, TUNNEL_IPS[name])
        for vm in VMS:
            plug_vm(labs[TWO_HOSTS[vm.name]].host, vm)
        yield labs
    finally:
        for lab in labs.values():
            lab.stop()
        fabric.stop()
        for lab in labs.values():
            lab.host.stop()
        assert_nothing_left(prefix, workdir)


def test_cross_host_paths_pass_the_destination_firewall(two_fw_hosts):
    a, b = two_fw_hosts["fw-a"], two_fw_hosts["fw-b"]
    for name, lab in two_fw_hosts.items():
        lab.apply(host_view(host=name, placement=TWO_HOSTS))
    b.serve("b2")
    b.serve("o1")
    b2, o1 = VM["b2"].ip, VM["o1"].ip
    assert poll_until(lambda: a.ping("b1", o1), timeout=10, interval=0.2), "routed, table 1"
    assert a.ping("b1", b2), "switched across hosts"
    assert a.connects("b1", b2, OPEN_PORT), "cross-host switched, allowed"
    assert a.connects("b1", o1, OPEN_PORT), "DVR-routed, allowed"
    assert a.connect("b1", b2, CLOSED_PORT) is None, "cross-host switched, no rule"
    assert a.connect("b1", o1, CLOSED_PORT) is None, "DVR-routed, no rule"
    out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", "br-int", "table=1"],
                         env=b.host.env(), text=True, capture_output=True, check=True).stdout
    delivered = [f for f in parse_dump_flows(out) if "resubmit(,81)" in f.text]
    assert delivered and sum(f.n_packets for f in delivered) > 0, out
    assert a.fast_path_packets(o1) > 0, "routed by fw-a's fast path, then fw-b's table 1"

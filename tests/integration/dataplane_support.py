"""Helpers for the integration tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dvr.agent.desired.state import DesiredState
from dvr.agent.drivers.openflow import parse_dump_flows
from dvr.agent.drivers.ovs import OvsDriver
from dvr.agent.reconcile.commands import EnsureBridge, EnsurePort
from dvr.agent.reconcile.observed import ObservedFlow
from dvr.agent.reconcile.plan import Plan
from dvr.lab.fabric import Fabric
from dvr.lab.handmade import HandmadeCloud, HmVm
from dvr.lab.hostenv import OVS_SCHEMA, HostEnv
from dvr.lab.inhost import InHostResult, plan_in_host, reconcile_in_host
from dvr.lab.vm import VmPlug, plug_commands, unplug_commands, vm_namespace

REQUIRED_TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl",
                  "ovs-appctl", "ip", "ethtool", "nsenter", "unshare", "ping")


def prerequisites_missing() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (network namespaces, OVS daemons)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (apt-get install openvswitch-switch ...)"
    if not OVS_SCHEMA.exists():
        return f"missing OVS schema {OVS_SCHEMA}"
    return None


# --- leftovers ----------------------------------------------------------------------------


def ofctl(host: HostEnv, *args: str) -> str:
    """``ovs-ofctl -O OpenFlow15 ARGS`` on a lab host's switch; its output."""
    return subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", *args], env=host.env(),
                          text=True, capture_output=True, check=True).stdout


def comparable(flows: Iterable[ObservedFlow]) -> list[tuple]:
    """What a flow mirror and a dump both tell of each flow: cookie, table, ports, and the
    text without the priority (a flow monitor does not print it)."""
    return sorted((f.cookie, f.table, f.ports, re.sub(r"^priority=\d+[, ]", "", f.text))
                  for f in flows)


def br_int_with_two_ports(host: HostEnv, ovs: OvsDriver) -> None:
    """br-int (netdev, secure) with ``tap-a`` (a veth end) and ``patch-x`` (internal)."""
    host.run(["ip", "link", "add", "tap-a", "type", "veth", "peer", "name", "vm-a"])
    ovs.transact([EnsureBridge("br-int", "netdev", "secure"), EnsurePort("br-int", "tap-a"),
                  EnsurePort("br-int", "patch-x", "internal")])


def root_namespaces(prefix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    except FileNotFoundError:
        return []


def processes_mentioning(text: str) -> list[str]:
    """Live (non-zombie) processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:  # a zombie has an empty command line
            found.append(f"{entry.name}: {cmdline.strip()}")
    return found


def assert_nothing_left(prefix: str, workdir: Path) -> None:
    """No namespace, daemon or host holder of a test's lab hosts outlives the test."""
    leftovers = (root_namespaces(prefix) + processes_mentioning(str(workdir))
                 + processes_mentioning(f"dvrhost-{prefix}"))
    assert leftovers == [], f"left behind: {leftovers}"


# --- the two-host lab -----------------------------------------------------------------------


@dataclass
class TwoHosts:
    """Host A and host B on one fabric, with the hand-written DVR cloud of DVR.md §5."""

    prefix: str
    workdir: Path
    hosts: dict[str, HostEnv]
    fabric: Fabric
    cloud: HandmadeCloud
    plugged: set[str] = field(default_factory=set)

    @property
    def names(self) -> list[str]:
        return list(self.hosts)

    def host_of(self, vm: str) -> HostEnv:
        return self.hosts[self.cloud.vm(vm).host]

    # -- plugging VMs like a hypervisor --------------------------------------------------
    def vm_plug(self, vm: HmVm) -> VmPlug:
        net = self.cloud.network(vm.network)
        host = self.hosts[vm.host]
        return VmPlug(name=vm.name, port_id=vm.port_id, mac_address=vm.mac, ip_address=vm.ip,
                      cidr=net.cidr, gateway_ip=net.gateway_ip, mtu=self.cloud.mtu,
                      ovsdb=host.ovsdb)

    def plug(self, *vm_names: str) -> None:
        for name in vm_names or [v.name for v in self.cloud.vms]:
            vm = self.cloud.vm(name)
            for argv in plug_commands(self.vm_plug(vm)):
                self.hosts[vm.host].run(argv)
            self.plugged.add(name)

    def unplug(self, name: str) -> None:
        vm = self.cloud.vm(name)
        host = self.hosts[vm.host]
        for argv in unplug_commands(vm.name, vm.port_id, host.ovsdb):
            host.run(argv, check=False)
        self.plugged.discard(name)

    # -- the agent's part ----------------------------------------------------------------
    def desired(self, host: str, cloud: HandmadeCloud | None = None) -> DesiredState:
        return (cloud or self.cloud).desired(host)

    def apply(self, host: str, cloud: HandmadeCloud | None = None) -> InHostResult:
        result = reconcile_in_host(self.hosts[host], self.desired(host, cloud))
        assert not result.failures, result.failures
        return result

    def apply_all(self, cloud: HandmadeCloud | None = None) -> dict[str, InHostResult]:
        return {name: self.apply(name, cloud) for name in self.hosts}

    def plan(self, host: str, cloud: HandmadeCloud | None = None) -> Plan:
        return plan_in_host(self.hosts[host], self.desired(host, cloud))

    # -- looking at the dataplane with the ordinary tools ---------------------------------------
    def ping(self, vm: str, ip: str, count: int = 3) -> bool:
        result = self.host_of(vm).run(
            ["ip", "netns", "exec", vm_namespace(vm), "ping", "-c", str(count), "-W", "1",
             "-i", "0.2", ip], check=False, timeout=30)
        return result.returncode == 0

    def flows(self, host: str, bridge: str) -> dict[tuple[int, int], ObservedFlow]:
        """(table, cookie) -> flow, as ``ovs-ofctl dump-flows`` prints them."""
        out = subprocess.run(["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", bridge],
                             env=self.hosts[host].env(), text=True, capture_output=True,
                             check=True).stdout
        return {(f.table, f.cookie): f for f in parse_dump_flows(out)}

    def all_flows(self, host: str) -> dict[tuple[str, int, int], ObservedFlow]:
        return {(bridge, *key): flow for bridge in ("br-int", "br-tun")
                for key, flow in self.flows(host, bridge).items()}

    def ip_json(self, host: str, namespace: str, *argv: str) -> list[dict]:
        out = self.hosts[host].run(["ip", "netns", "exec", namespace, "ip", "-j", *argv]).stdout
        return json.loads(out or "[]")

    def ports(self, host: str, bridge: str) -> set[str]:
        return set(self.hosts[host].vsctl("list-ports", bridge).split())



"""End-to-end fixtures: a real lab (server, agents, OVS, namespaces) and helpers to poke it."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dvr.client import ServerClient
from dvr.lab.lab import Lab
from dvr.lab.procs import ProcessRef, is_alive
from dvr.lab.state import VmRecord
from dvr.model.hostview import DEFAULT_TUNNEL_LAYOUT

REQUIRED_TOOLS = ("ovs-vsctl", "ovsdb-server", "ovs-vswitchd", "ip", "nsenter", "unshare",
                  "ethtool", "ping")


def lab_prerequisites_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, OVS)"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    return f"missing tools: {', '.join(missing)}" if missing else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabDriver:
    """A running lab plus small helpers that run things in it."""

    def __init__(self, lab: Lab):
        self.lab = lab

    @property
    def record(self):
        return self.lab.record()

    def client(self) -> ServerClient:
        return self.lab.client()

    def run(self, target: str, argv: list[str], timeout: float = 30,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        command, env = self.lab.target_command(target, argv)
        result = subprocess.run(command, env=env, text=True, capture_output=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{target}: {' '.join(argv)} -> {result.returncode}\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def ping(self, source: str, destination: str, count: int = 3) -> subprocess.CompletedProcess:
        ip = self.lab.resolve_ip(destination)
        return self.run(source, ["ping", "-c", str(count), "-W", "1", "-i", "0.2", ip],
                        check=False)

    def router_id(self) -> str:
        return self.record.router_id

    def qrouter(self) -> str:
        return f"qrouter-{self.router_id()}"

    def netns_json(self, host: str, namespace: str, argv: list[str]) -> list[dict]:
        out = self.run(host, ["ip", "netns", "exec", namespace, "ip", "-j", *argv]).stdout
        return json.loads(out or "[]")

    def namespaces(self, host: str) -> list[str]:
        out = self.run(host, ["ip", "netns", "list"]).stdout
        return sorted(line.split()[0] for line in out.splitlines() if line.strip())

    def dump_flows(self, host: str, bridge: str) -> list[str]:
        out = self.run(host, ["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", bridge]).stdout
        return [line.strip() for line in out.splitlines() if "cookie=" in line]

    def flows_installed_at(self, host: str, bridge: str) -> dict[str, float]:
        """``flow_install_times`` of a bridge, on this process's monotonic clock."""
        lines = self.dump_flows(host, bridge)
        return flow_install_times(lines, time.monotonic())

    def converged(self) -> bool:
        """Every agent has applied every change that concerns its host."""
        with self.client() as c:
            for host in c.hosts():
                pending = c.watch(host["host"], host["applied_revision"], 0)
                if pending.changes or pending.resync:
                    return False
        return True

    def wait_converged(self, timeout: float = 30) -> None:
        self.wait_for(self.converged, "every agent to apply the latest changes", timeout)

    def host_mac(self, host: str) -> str:
        with self.client() as c:
            return next(h["host_mac"] for h in c.hosts() if h["host"] == host)

    def wait_for(self, check: Callable[[], bool], what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def reconciles(self, host: str) -> int:
        """How many reconciles the agents of ``host`` have logged (all its runs)."""
        log = Path(self.record.hosts[host].workdir) / "agent.log"
        return log.read_text(errors="replace").count(f" reconcile host={host} ")

    def kill_agent(self, host: str) -> None:
        """kill -9 the host's agent (by its PID) and start it again."""
        record = self.record
        ref = ProcessRef.from_dict(record.hosts[host].agent)
        os.kill(ref.pid, signal.SIGKILL)
        self.wait_for(lambda: not is_alive(ref), f"the agent of {host} to die", timeout=10)
        self.lab._start_agent(record, record.hosts[host])

    def set_port_groups(self, vm: str, groups: list[str]) -> None:
        with self.client() as client:
            client.update("ports", "port", self.record.vms[vm].port_id,
                          {"security_groups": groups})


class VmProgram:
    """A program running in a lab VM or host, fed through stdin; its output lines, each
    read with a bound (a reader thread queues them; None marks the end of its output)."""

    def __init__(self, process: subprocess.Popen[str]):
        self.process = process
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float) -> str | None:
        """The next output line (None: none within ``timeout`` s, or the program ended)."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def stop(self) -> str:
        """Kill it if it still runs; what it wrote to stderr."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.communicate(timeout=10)[1]


@contextmanager
def vm_program(lab: LabDriver, target: str, script: str, *args: str,
               ready: float = 15) -> Iterator[VmProgram]:
    """A Python ``script`` run in ``target`` for the length of a block; it prints ``ready``
    (or anything else, which fails the block) first, and is killed afterwards."""
    command, env = lab.lab.target_command(target, [sys.executable, "-c", script, *args])
    program = VmProgram(subprocess.Popen(command, env=env, text=True, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        first = program.line(ready)
        if first != "ready":
            raise AssertionError(f"{target}: the program said {first!r}, not ready: "
                                 f"{program.stop()}")
        yield program
    finally:
        program.stop()


@contextmanager
def temporary_vm(lab: LabDriver, name: str, network: str, host: str,
                 groups: list[str] | None = None) -> Iterator[VmRecord]:
    """A VM for the length of a block, in ``groups`` (ids) if given, else the lab's
    default groups; every agent has applied it when the block starts."""
    try:
        vm = lab.lab.vm_add(name, network, host)
        if groups is not None:
            lab.set_port_groups(name, groups)
        lab.wait_converged()
        yield vm
    finally:
        if name in lab.record.vms:
            lab.lab.vm_del(name)
        lab.wait_converged()


@contextmanager
def security_group(lab: LabDriver, name: str,
                   rules: tuple[dict, ...] = ()) -> Iterator[str]:
    """A new group (Neutron gives it egress-any rules) with ``rules`` besides, for the length
    of a block; its id.  Delete its members first: the group goes at the end."""
    with lab.client() as client:
        group = client.create("security-groups", "security_group", {"name": name})
    try:
        for rule in rules:
            add_rule(lab, group["id"], rule)
        yield group["id"]
    finally:
        with lab.client() as client:
            client.delete("security-groups", group["id"])


def add_rule(lab: LabDriver, group: str, rule: dict) -> str:
    """Add a rule (IPv4 unless ``rule`` says otherwise) to ``group``; its id."""
    with lab.client() as client:
        return client.create("security-group-rules", "security_group_rule", {
            "security_group_id": group, "ethertype": "IPv4", **rule})["id"]


@contextmanager
def port_groups(lab: LabDriver, vm: str, groups: list[str]) -> Iterator[None]:
    """``vm``'s port in ``groups`` (ids) for the length of a block, then in its own again."""
    with lab.client() as client:
        before = client.show("ports", "port", lab.record.vms[vm].port_id)["security_groups"]
    try:
        lab.set_port_groups(vm, groups)
        lab.wait_converged()
        yield
    finally:
        lab.set_port_groups(vm, before)
        lab.wait_converged()


def flow_counters(lines: list[str]) -> dict[str, int]:
    """cookie -> n_packets for dump-flows lines."""
    counters = {}
    for line in lines:
        fields = dict(part.split("=", 1) for part in line.replace(",", " ").split()
                      if "=" in part and part.split("=", 1)[0] in ("cookie", "n_packets"))
        counters[fields["cookie"]] = int(fields.get("n_packets", 0))
    return counters


FLOW_STATISTICS = frozenset({"duration", "n_packets", "n_bytes", "idle_age", "hard_age"})


def flow_identity(line: str) -> str:
    """What names one flow of a dump-flows line: its cookie, table, priority and match (the
    text before its actions, without the statistics)."""
    head = line.split(" actions=", 1)[0]
    fields = [f for f in head.replace(",", " ").split()
              if f.split("=", 1)[0] not in FLOW_STATISTICS]
    return ",".join(fields)


def flow_install_times(lines: list[str], now: float) -> dict[str, float]:
    """flow identity -> when the switch installed it (``now`` minus its duration).

    A flow that is deleted and added again keeps its cookie, and its packet counter may
    have been 0 anyway: only its install time tells that it was reinstalled."""
    times = {}
    for line in lines:
        duration = next(f for f in line.replace(",", " ").split() if f.startswith("duration="))
        times[flow_identity(line)] = now - float(duration.removeprefix("duration=").rstrip("s"))
    return times


def flows_by_cookie(lines: list[str]) -> dict[str, str]:
    """cookie -> the flow's text for dump-flows lines."""
    return {line.split("cookie=", 1)[1].split(",", 1)[0]: line for line in lines}


def running_lab(name: str, computes: int = 2,
                tunnel_layout: str = DEFAULT_TUNNEL_LAYOUT) -> Iterator[LabDriver]:
    """Bring lab ``name`` up, yield it, and take it down again.

    A running lab of the same name (another test run on this machine) is never touched.
    """
    reason = lab_prerequisites_missing()
    if reason:
        pytest.skip(reason)
    lab = Lab(name=name, api_port=free_port(), out=lambda m: None)
    if lab.is_up():
        pytest.fail(f"a lab named {name!r} is running already (another test run?); "
                    f"`dvr lab down --name {name}` if it is a leftover")
    try:
        lab.up(computes=computes, tunnel_layout=tunnel_layout)
        yield LabDriver(lab)
    finally:
        lab.down(quiet=True)


@pytest.fixture(scope="session")
def lab3() -> Iterator[LabDriver]:
    """The default scenario with a third, initially empty, compute host, shared by the e2e
    files that use it; it goes down at the end of the run (tests/e2e is not a package, so a
    package scope would be the session anyway)."""
    yield from running_lab("e2e", computes=3)


@contextmanager
def legacy_tenant(lab: LabDriver, router_name: str,
                  networks: tuple[tuple[str, str], tuple[str, str]]) -> Iterator[str]:
    """A legacy (centralized) router between two new networks ``(name, cidr)``, a VM
    ``<name>-1`` on each (compute-1, compute-2); everything is removed afterwards."""
    made_networks: list[str] = []
    vms: list[str] = []
    router = None
    with lab.client() as client:
        try:
            router = client.create("routers", "router", {"name": router_name,
                                                          "distributed": False})
            for name, cidr in networks:
                network = client.create("networks", "network", {"name": name})
                made_networks.append(network["id"])
                subnet = client.create("subnets", "subnet", {
                    "network_id": network["id"], "cidr": cidr, "ip_version": 4})
                client.add_router_interface(router["id"], subnet["id"])
            for (name, _), host in zip(networks, ("compute-1", "compute-2"), strict=True):
                lab.lab.vm_add(f"{name}-1", name, host)
                vms.append(f"{name}-1")
            yield router["id"]
        finally:
            for vm in vms:
                lab.lab.vm_del(vm)
            if router is not None:
                for port in client.list("ports", device_id=router["id"]):
                    if port["device_owner"].startswith("network:router_interface"):
                        client.request("PUT", f"/v2.0/routers/{router['id']}/"
                                       "remove_router_interface", json={"port_id": port["id"]})
                client.delete("routers", router["id"])
            for network in made_networks:
                client.delete("networks", network)
            lab.wait_converged()
